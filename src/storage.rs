//! Object storage for audio and backups: local filesystem or any S3-compatible bucket.
//!
//! This module owns key naming: keys are built here from server-generated ids, never from
//! user input, so a request can never address another object than the one it owns.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig, WriteMultipart,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{Config, StorageKind};

/// The readiness probe must answer well inside a load balancer's health-check timeout.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Files up to this size go up in one request; larger ones in parts of this size, so a
/// 1 GB database snapshot never sits in memory and a failed part is retried alone.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts of one upload in flight at once.
const PART_CONCURRENCY: usize = 4;

/// The folder of a bucket that `storage.public_base_url` serves: only public shows' files are
/// ever put under it.
const PUBLIC_FOLDER: &str = "public/";

/// The type a bucket stores with each new object, so what it answers itself (a presigned or
/// public URL) plays in a browser: by the extensions aimake writes.
const CONTENT_TYPES: [(&str, &str); 6] = [
    ("mp3", "audio/mpeg"),
    ("wav", "audio/wav"),
    ("vtt", "text/vtt; charset=utf-8"),
    ("json", "application/json"),
    ("jpg", "image/jpeg"),
    ("png", "image/png"),
];

/// A storage key. Only this module can make one, which is what keeps keys server-generated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key(String);

impl Key {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A key previously produced by this module and stored in the database.
    pub fn from_stored(stored: impl Into<String>) -> Self {
        Self(stored.into())
    }

    fn path(&self) -> StorePath {
        StorePath::from(self.0.as_str())
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where each kind of object lives.
pub mod keys {
    use super::Key;
    use crate::db::{AudioId, EpisodeId, JobId, PodcastId, TranscriptId, UserId};

    /// The finished audio of a library item, e.g. `audio/<user>/<audio>.mp3`.
    pub fn audio(user: UserId, audio: AudioId, ext: &str) -> Key {
        debug_assert!(ext.chars().all(|c| c.is_ascii_alphanumeric()));
        Key(format!("audio/{user}/{audio}.{ext}"))
    }

    /// Waveform peaks of a library item, for the player.
    pub fn peaks(user: UserId, audio: AudioId) -> Key {
        Key(format!("audio/{user}/{audio}.peaks.json"))
    }

    /// Everything a job keeps between attempts (synthesized chunks), removed when it ends.
    pub fn job_prefix(job: JobId) -> Key {
        Key(format!("jobs/{job}/"))
    }

    /// How many chunks a job's text was split into, for progressive listeners.
    pub fn job_parts(job: JobId) -> Key {
        Key(format!("jobs/{job}/parts.json"))
    }

    pub fn job_chunk(job: JobId, index: usize, ext: &str) -> Key {
        Key(format!("jobs/{job}/chunk-{index:05}.{ext}"))
    }

    /// A recording uploaded to be transcribed, e.g. `recordings/<user>/<transcript>.m4a`.
    pub fn recording(user: UserId, transcript: TranscriptId, ext: &str) -> Key {
        debug_assert!(ext.chars().all(|c| c.is_ascii_alphanumeric()));
        Key(format!("recordings/{user}/{transcript}.{ext}"))
    }

    /// A voice's preview sample, shared by everyone (`digest` names the voice and its text).
    pub fn preview(digest: &str, ext: &str) -> Key {
        debug_assert!(digest.chars().all(|c| c.is_ascii_hexdigit()));
        Key(format!("previews/{digest}.{ext}"))
    }

    /// One synthesized podcast line kept between attempts of a render job; `paid` says
    /// whether a provider was called for it (rather than the result cache).
    pub fn job_line(job: JobId, index: usize, paid: bool, ext: &str) -> Key {
        let how = if paid { "p" } else { "c" };
        Key(format!("jobs/{job}/line-{index:05}-{how}.{ext}"))
    }

    /// A synthesized podcast line shared through the result cache, named by its cache key.
    pub fn cached_line(cache_key: &str, ext: &str) -> Key {
        debug_assert!(cache_key.bytes().all(|b| b.is_ascii_hexdigit()));
        Key(format!("cache/lines/{cache_key}.{ext}"))
    }

    /// A result of the OpenAI-compatible speech API (`/v1/audio/speech`), named by its cache
    /// key and its `response_format` (`mp3`, `opus`, `flac`, `wav`, `pcm`).
    pub fn cached_speech(cache_key: &str, response_format: &str) -> Key {
        debug_assert!(cache_key.bytes().all(|b| b.is_ascii_hexdigit()));
        debug_assert!(response_format.bytes().all(|b| b.is_ascii_alphanumeric()));
        Key(format!("cache/speech/{cache_key}.{response_format}"))
    }

    /// Everything of a show that `storage.public_base_url` serves: `public/<podcast>/`.
    pub fn public_show(podcast: PodcastId) -> Key {
        Key(format!("{}{podcast}/", super::PUBLIC_FOLDER))
    }

    /// The published files of one episode of a public show.
    pub fn public_episode(podcast: PodcastId, episode: EpisodeId) -> Key {
        Key(format!("{}{podcast}/{episode}/", super::PUBLIC_FOLDER))
    }

    /// One published file of an episode, named by its content (`<digest>.mp3`,
    /// `transcript-<digest>.vtt`), so a changed file gets a new URL past every cache.
    pub fn public_episode_file(podcast: PodcastId, episode: EpisodeId, name: &str) -> Key {
        debug_assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        );
        Key(format!(
            "{}{podcast}/{episode}/{name}",
            super::PUBLIC_FOLDER
        ))
    }

    /// A podcast's cover image, e.g. `covers/<podcast>.png`.
    pub fn cover(podcast: PodcastId, ext: &str) -> Key {
        debug_assert!(ext.chars().all(|c| c.is_ascii_alphanumeric()));
        Key(format!("covers/{podcast}.{ext}"))
    }

    /// Written, read back and deleted by the readiness check.
    pub fn probe() -> Key {
        Key(format!("health/probe-{}", ulid::Ulid::generate()))
    }

    /// Every library object (audio files and their peaks): the media a backup covers.
    pub fn audio_prefix() -> Key {
        Key("audio/".into())
    }

    /// Everything a backup must carry besides the database: audio, show covers, the
    /// per-line synthesis results the podcast cache points at, and uploaded recordings.
    pub fn media_prefixes() -> [Key; 4] {
        [
            audio_prefix(),
            Key("covers/".into()),
            Key("cache/lines/".into()),
            Key("recordings/".into()),
        ]
    }

    /// The backup area of a backup target: one folder per backup set plus the shared media.
    pub fn backups_root() -> Key {
        Key("backups/".into())
    }

    /// The folder of one backup set. `name` comes from `backup::BackupName`, which only
    /// admits `aimake-<timestamp>[-n]`.
    pub fn backup_set(name: &str) -> Key {
        debug_assert!(is_backup_name(name), "{name}");
        Key(format!("backups/{name}/"))
    }

    /// A file of one backup set (`manifest.json`, the compressed snapshot, a failure record).
    pub fn backup_file(name: &str, file: &'static str) -> Key {
        debug_assert!(is_backup_name(name), "{name}");
        Key(format!("backups/{name}/{file}"))
    }

    /// Content-addressed media shared by every backup set of a target, fanned out by the
    /// first two hex digits so no folder grows too large for a local filesystem.
    pub fn backup_media(sha256_hex: &str) -> Key {
        debug_assert!(sha256_hex.len() == 64 && sha256_hex.bytes().all(|b| b.is_ascii_hexdigit()));
        Key(format!("backups/media/{}/{sha256_hex}", &sha256_hex[..2]))
    }

    pub fn backup_media_prefix() -> Key {
        Key("backups/media/".into())
    }

    fn is_backup_name(name: &str) -> bool {
        name.starts_with("aimake-") && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<object_store::Error> for StorageError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => Self::NotFound(path),
            // Every failing store call comes through here: counted for the metrics.
            other => {
                crate::monitor::metrics::storage_error();
                Self::Other(anyhow::Error::new(other))
            }
        }
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

/// What the store knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: Key,
    pub size: u64,
    pub last_modified: time::OffsetDateTime,
    pub etag: Option<String>,
}

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    kind: StorageKind,
    /// Objects written through this handle, so callers (and tests) can tell how much work a
    /// backup really did.
    writes: Arc<AtomicU64>,
    /// The directory of a local store: big reads go to the file directly (see `stream`).
    local: Option<Arc<LocalFiles>>,
    /// A bucket signs URLs that reach its objects without the server (`presigned_get`).
    signer: Option<Arc<AmazonS3>>,
    /// Where the bucket's `public/` folder is served, without a trailing slash.
    public_base: Option<Arc<str>>,
    /// The origin of the bucket's URLs, presigned ones included.
    bucket_origin: Option<Arc<str>>,
    /// Published files known to be in the bucket, so a feed's every request for one does not
    /// ask the bucket again; forgotten whenever anything is unpublished, and after a while in
    /// case one was removed from outside.
    published: moka::sync::Cache<String, ()>,
}

/// How long a published file is taken to be there without asking the bucket again.
const PUBLISHED_KNOWN_FOR: Duration = Duration::from_secs(600);

fn published_cache() -> moka::sync::Cache<String, ()> {
    moka::sync::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(PUBLISHED_KNOWN_FOR)
        .build()
}

/// A local store's directory, and the turns for opening its files on the blocking pool.
struct LocalFiles {
    root: std::path::PathBuf,
    /// Mapping a cached file takes microseconds, so a few blocking threads keep up with any
    /// number of listeners. Without a bound, a burst of downloads grows the pool by a thread
    /// per connection, and the spare threads then take turns at every later blocking task
    /// (database writes, audio work) with cold caches until they idle out.
    opening: tokio::sync::Semaphore,
}

/// How many files a local store opens at once (see [`LocalFiles::opening`]).
const OPENING_AT_ONCE: usize = 4;

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Storage({:?})", self.kind)
    }
}

impl Storage {
    /// The store the config asks for; `local` lives under `<data.dir>/media`.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        match config.storage.kind {
            StorageKind::Local => Self::local(&config.data.dir.join("media")),
            StorageKind::S3 => Ok(Self {
                public_base: config.storage.public_base().map(Arc::from),
                ..Self::s3(&config.storage.s3)?
            }),
        }
    }

    pub fn local(dir: &std::path::Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .with_context(|| format!("cannot use {} for media", dir.display()))?
            .with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
            kind: StorageKind::Local,
            writes: Arc::default(),
            local: Some(Arc::new(LocalFiles {
                root: dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()),
                opening: tokio::sync::Semaphore::new(OPENING_AT_ONCE),
            })),
            signer: None,
            public_base: None,
            bucket_origin: None,
            published: published_cache(),
        })
    }

    pub fn s3(cfg: &crate::config::S3Config) -> anyhow::Result<Self> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_virtual_hosted_style_request(!cfg.path_style)
            .with_client_options(
                CONTENT_TYPES.iter().fold(
                    ClientOptions::new()
                        .with_timeout(Duration::from_secs(cfg.timeout_s))
                        .with_connect_timeout(Duration::from_secs(5)),
                    |options, (ext, mime)| options.with_content_type_for_suffix(*ext, *mime),
                ),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(5),
                    base: 2.0,
                },
                max_retries: cfg.max_retries,
                retry_timeout: Duration::from_secs(cfg.timeout_s.max(1) * 2),
            });
        if !cfg.endpoint.is_empty() {
            builder = builder
                .with_endpoint(&cfg.endpoint)
                .with_allow_http(cfg.endpoint.starts_with("http://"));
        }
        if let (Some(ak), Some(sk)) = (&cfg.access_key, &cfg.secret_key) {
            builder = builder
                .with_access_key_id(ak.expose())
                .with_secret_access_key(sk.expose());
        }
        let store = Arc::new(builder.build().context("invalid storage.s3 settings")?);
        Ok(Self {
            store: store.clone(),
            kind: StorageKind::S3,
            writes: Arc::default(),
            local: None,
            signer: Some(store),
            public_base: None,
            bucket_origin: bucket_origin(cfg).map(Arc::from),
            published: published_cache(),
        })
    }

    pub fn kind(&self) -> StorageKind {
        self.kind
    }

    /// How many objects have been written through this handle (and its clones).
    pub fn objects_written(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    pub async fn put(&self, key: &Key, bytes: Bytes) -> StorageResult<()> {
        self.store.put(&key.path(), bytes.into()).await?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Copies an object inside the store (a bucket copies it without the bytes passing here).
    pub async fn copy(&self, from: &Key, to: &Key) -> StorageResult<()> {
        self.store.copy(&from.path(), &to.path()).await?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Whether an object exists.
    pub async fn exists(&self, key: &Key) -> StorageResult<bool> {
        match self.store.head(&key.path()).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// A URL that GETs the object straight from the bucket for `expires_in` (whole seconds,
    /// at least one), which makes the bucket answer with `content_type`, `cache_control` and,
    /// for a download, `disposition` whatever the object was stored with. Range and
    /// conditional requests work on it as on any object. Only an S3 store can sign.
    pub async fn presigned_get(
        &self,
        key: &Key,
        expires_in: Duration,
        content_type: &str,
        cache_control: &str,
        disposition: Option<&str>,
    ) -> StorageResult<String> {
        let signer = self
            .signer
            .as_ref()
            .ok_or_else(|| StorageError::Other(anyhow::anyhow!("only an S3 store signs URLs")))?;
        let mut query = vec![
            ("response-content-type", content_type),
            ("response-cache-control", cache_control),
        ];
        query.extend(disposition.map(|d| ("response-content-disposition", d)));
        let options = SignedUrlOptions::new().with_query(query);
        let url = signer
            .signed_url_opts(Method::GET, &key.path(), expires_in, &options)
            .await?;
        Ok(url.into())
    }

    /// The address `storage.public_base_url` serves an object at: only objects under the
    /// `public/` folder have one.
    pub fn public_url(&self, key: &Key) -> Option<String> {
        let base = self.public_base.as_deref()?;
        let rest = key.as_str().strip_prefix(PUBLIC_FOLDER)?;
        Some(format!("{base}/{rest}"))
    }

    /// The origin (`https://host[:port]`) of the bucket's URLs, presigned ones included.
    pub fn bucket_origin(&self) -> Option<&str> {
        self.bucket_origin.as_deref()
    }

    /// Whether `storage.public_base_url` is set: files of public shows are published.
    pub fn publishes(&self) -> bool {
        self.public_base.is_some()
    }

    /// Removes published files (a show's or an episode's folder under `public/`). Without a
    /// public base URL nothing is published, so nothing is looked for: files published before
    /// it was turned off stay until the folder is emptied by hand.
    pub async fn unpublish(&self, prefix: &Key) -> StorageResult<()> {
        debug_assert!(prefix.as_str().starts_with(PUBLIC_FOLDER));
        if self.publishes() {
            // Before and after: a lookup racing the removal cannot keep the file known.
            self.published.invalidate_all();
            self.delete_prefix(prefix).await?;
            self.published.invalidate_all();
        }
        Ok(())
    }

    /// Whether a published file (under `public/`) is in the bucket: asked once, then known
    /// until something is unpublished or [`PUBLISHED_KNOWN_FOR`] has passed.
    pub async fn is_published(&self, key: &Key) -> StorageResult<bool> {
        if self.published.contains_key(key.as_str()) {
            return Ok(true);
        }
        let there = self.exists(key).await?;
        if there {
            self.published.insert(key.as_str().to_string(), ());
        }
        Ok(there)
    }

    /// A published file was just put in the bucket.
    pub fn note_published(&self, key: &Key) {
        self.published.insert(key.as_str().to_string(), ());
    }

    /// Uploads a local file without holding it in memory; large files go up in parts.
    /// Returns the number of bytes stored.
    pub async fn put_file(&self, key: &Key, file: &std::path::Path) -> StorageResult<u64> {
        let mut f = tokio::fs::File::open(file)
            .await
            .with_context(|| format!("cannot open {}", file.display()))?;
        let len = f.metadata().await.context("cannot stat upload")?.len();
        if len <= PART_SIZE as u64 {
            let mut buf = Vec::with_capacity(len as usize);
            f.read_to_end(&mut buf)
                .await
                .context("cannot read upload")?;
            self.put(key, buf.into()).await?;
            return Ok(len);
        }
        let upload = self.store.put_multipart(&key.path()).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; PART_SIZE];
        let copied = async {
            loop {
                let n = f.read(&mut buf).await.context("cannot read upload")?;
                if n == 0 {
                    return Ok::<_, StorageError>(());
                }
                writer.wait_for_capacity(PART_CONCURRENCY).await?;
                writer.write(&buf[..n]);
            }
        }
        .await;
        match copied {
            Ok(()) => {
                writer.finish().await?;
                self.writes.fetch_add(1, Ordering::Relaxed);
                Ok(len)
            }
            Err(e) => {
                // Leaves no half-uploaded parts billed in the bucket.
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Streams an object into a local file (created or truncated). Returns its size.
    pub async fn get_to_file(&self, key: &Key, file: &std::path::Path) -> StorageResult<u64> {
        let mut stream = self.store.get(&key.path()).await?.into_stream();
        let mut out = tokio::fs::File::create(file)
            .await
            .with_context(|| format!("cannot create {}", file.display()))?;
        let mut written = 0u64;
        while let Some(chunk) = stream.try_next().await? {
            out.write_all(&chunk)
                .await
                .context("cannot write download")?;
            written += chunk.len() as u64;
        }
        out.flush().await.context("cannot write download")?;
        out.sync_all().await.context("cannot sync download")?;
        Ok(written)
    }

    pub async fn get(&self, key: &Key) -> StorageResult<Bytes> {
        Ok(self.store.get(&key.path()).await?.bytes().await?)
    }

    /// Bytes `range.start..range.end` of an object (end exclusive).
    pub async fn get_range(&self, key: &Key, range: Range<u64>) -> StorageResult<Bytes> {
        Ok(self.store.get_range(&key.path(), range).await?)
    }

    /// Streams an object, or the bytes `range.start..range.end` of it, without buffering it.
    pub async fn stream(
        &self,
        key: &Key,
        range: Option<Range<u64>>,
    ) -> StorageResult<futures::stream::BoxStream<'static, object_store::Result<Bytes>>> {
        if let Some(local) = &self.local {
            return self.stream_file(local, key, range).await;
        }
        let options = object_store::GetOptions::new().with_range(range);
        Ok(self
            .store
            .get_opts(&key.path(), options)
            .await?
            .into_stream())
    }

    /// Local objects are plain files under the root, served from a memory map of the part
    /// asked for: the bytes go from the page cache to the socket without being copied into
    /// a buffer first, and a range costs one trip to the blocking pool however long it is.
    async fn stream_file(
        &self,
        local: &LocalFiles,
        key: &Key,
        range: Option<Range<u64>>,
    ) -> StorageResult<futures::stream::BoxStream<'static, object_store::Result<Bytes>>> {
        use futures::StreamExt;
        /// Slices handed to the connection one by one, so a slow listener holds it back.
        const SLICE: usize = 256 * 1024;
        // Keys are server-made (ULIDs and fixed names), so joining them cannot leave the root.
        let path = local.root.join(key.as_str());
        let name = key.to_string();
        let _turn = local
            .opening
            .acquire()
            .await
            .map_err(|e| StorageError::Other(e.into()))?;
        let mapped = tokio::task::spawn_blocking(move || map_file(&path, range))
            .await
            .map_err(|e| StorageError::Other(e.into()))?;
        let bytes = match mapped {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound(name));
            }
            Err(e) => {
                // The store's own failures are counted in `From<object_store::Error>`; this
                // read goes around it.
                crate::monitor::metrics::storage_error();
                return Err(StorageError::Other(
                    anyhow::Error::new(e).context(format!("reading {name}")),
                ));
            }
        };
        let slices = (0..bytes.len())
            .step_by(SLICE)
            .map(move |at| Ok(bytes.slice(at..(at + SLICE).min(bytes.len()))));
        Ok(futures::stream::iter(slices).boxed())
    }

    pub async fn head(&self, key: &Key) -> StorageResult<ObjectInfo> {
        Ok(info(self.store.head(&key.path()).await?))
    }

    /// Every object whose key starts with `prefix` (a folder-like prefix ending in `/`).
    pub async fn list(&self, prefix: &Key) -> StorageResult<Vec<ObjectInfo>> {
        let prefix = StorePath::from(prefix.as_str().trim_end_matches('/'));
        let mut items: Vec<ObjectInfo> = self
            .store
            .list(Some(&prefix))
            .map_ok(info)
            .try_collect()
            .await?;
        items.sort_by(|a, b| a.key.0.cmp(&b.key.0));
        Ok(items)
    }

    /// The names of the folders directly under `prefix` (`backups/` → `aimake-…`, `media`).
    pub async fn list_folders(&self, prefix: &Key) -> StorageResult<Vec<String>> {
        let prefix = StorePath::from(prefix.as_str().trim_end_matches('/'));
        let listed = self.store.list_with_delimiter(Some(&prefix)).await?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Removes an object; removing one that is already gone succeeds, so deletes can be retried.
    pub async fn delete(&self, key: &Key) -> StorageResult<()> {
        match self.store.delete(&key.path()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes every object under a prefix (a job's scratch space, a deleted user's audio).
    pub async fn delete_prefix(&self, prefix: &Key) -> StorageResult<usize> {
        let items = self.list(prefix).await?;
        for item in &items {
            self.delete(&item.key).await?;
        }
        Ok(items.len())
    }

    /// Proves the store works end to end: write, read back, delete a small probe object.
    pub async fn probe(&self) -> anyhow::Result<()> {
        let key = keys::probe();
        let body = Bytes::from_static(b"aimake readiness probe");
        let check = async {
            self.put(&key, body.clone()).await?;
            let read = self.get(&key).await?;
            self.delete(&key).await?;
            anyhow::ensure!(read == body, "probe object came back different");
            Ok(())
        };
        tokio::time::timeout(PROBE_TIMEOUT, check)
            .await
            .context("storage probe timed out")?
    }
}

/// The origin of a bucket's URLs, as `object_store` builds them: the endpoint (which names
/// the bucket itself in virtual-hosted style), else AWS's regional host.
fn bucket_origin(cfg: &crate::config::S3Config) -> Option<String> {
    let endpoint = match (cfg.endpoint.is_empty(), cfg.path_style) {
        (false, _) => cfg.endpoint.clone(),
        (true, true) => format!("https://s3.{}.amazonaws.com", cfg.region),
        (true, false) => format!("https://{}.s3.{}.amazonaws.com", cfg.bucket, cfg.region),
    };
    let origin = url::Url::parse(&endpoint).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// The bytes `range` of a file (all of it when `None`), mapped rather than read.
fn map_file(path: &std::path::Path, range: Option<Range<u64>>) -> std::io::Result<Bytes> {
    let file = std::fs::File::open(path)?;
    // Never map past the end, whatever the caller believes the size is: touching such a page
    // would fault.
    let size = file.metadata()?.len();
    let range = match range {
        Some(r) => r.start.min(size)..r.end.min(size),
        None => 0..size,
    };
    let len = usize::try_from(range.end - range.start)
        .map_err(|_| std::io::Error::other("range does not fit in memory"))?;
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: a mapped file must not shrink while mapped, or reading the lost pages faults.
    // Stored objects never change in place: every write goes to a temporary file that is
    // renamed over the key, and deleting one only unlinks it, which leaves the mapping whole.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(range.start)
            .len(len)
            .populate()
            .map(&file)?
    };
    Ok(Bytes::from_owner(map))
}

fn info(meta: object_store::ObjectMeta) -> ObjectInfo {
    let nanos = meta.last_modified.timestamp_nanos_opt().unwrap_or_default();
    ObjectInfo {
        key: Key(meta.location.to_string()),
        size: meta.size,
        last_modified: time::OffsetDateTime::from_unix_timestamp_nanos(nanos.into())
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        etag: meta.e_tag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_range_never_reaches_past_the_end_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(&map_file(&path, None).unwrap()[..], b"0123456789");
        assert_eq!(&map_file(&path, Some(2..5)).unwrap()[..], b"234");
        assert_eq!(&map_file(&path, Some(5..100)).unwrap()[..], b"56789");
        assert!(map_file(&path, Some(20..30)).unwrap().is_empty());
        std::fs::write(&path, b"").unwrap();
        assert!(map_file(&path, None).unwrap().is_empty());
        let missing = map_file(&dir.path().join("gone"), None).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn a_bucket_s_origin_is_where_object_store_points_its_urls() {
        let mut cfg = crate::config::S3Config {
            bucket: "b".into(),
            region: "eu-west-1".into(),
            ..Default::default()
        };
        assert_eq!(
            bucket_origin(&cfg).as_deref(),
            Some("https://s3.eu-west-1.amazonaws.com")
        );
        cfg.path_style = false;
        assert_eq!(
            bucket_origin(&cfg).as_deref(),
            Some("https://b.s3.eu-west-1.amazonaws.com")
        );
        cfg.endpoint = "http://127.0.0.1:9000/".into();
        assert_eq!(
            bucket_origin(&cfg).as_deref(),
            Some("http://127.0.0.1:9000")
        );
    }

    #[test]
    fn only_the_public_folder_has_public_urls() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Storage::local(dir.path()).unwrap();
        let show: crate::db::PodcastId = "01JABCDEFGHJKMNPQRSTVWXYZ0".parse().unwrap();
        let episode: crate::db::EpisodeId = "01JABCDEFGHJKMNPQRSTVWXYZ1".parse().unwrap();
        let file = keys::public_episode_file(show, episode, "abc.mp3");
        assert_eq!(store.public_url(&file), None, "nothing without a base");
        store.public_base = Some("https://cdn.example/shows".into());
        assert_eq!(
            store.public_url(&file).unwrap(),
            format!("https://cdn.example/shows/{show}/{episode}/abc.mp3")
        );
        assert!(
            file.as_str()
                .starts_with(keys::public_episode(show, episode).as_str())
        );
        assert!(file.as_str().starts_with(keys::public_show(show).as_str()));
        let private = keys::audio(
            "01JABCDEFGHJKMNPQRSTVWXYZ2".parse().unwrap(),
            "01JABCDEFGHJKMNPQRSTVWXYZ3".parse().unwrap(),
            "mp3",
        );
        assert_eq!(store.public_url(&private), None);
    }

    #[test]
    fn keys_are_built_from_ids_only() {
        let u: crate::db::UserId = "01JABCDEFGHJKMNPQRSTVWXYZ0".parse().unwrap();
        let a: crate::db::AudioId = "01JABCDEFGHJKMNPQRSTVWXYZ1".parse().unwrap();
        let j = crate::db::JobId::from(a.ulid());
        assert_eq!(
            keys::audio(u, a, "mp3").as_str(),
            format!("audio/{u}/{a}.mp3")
        );
        assert_eq!(
            keys::job_chunk(j, 7, "wav").as_str(),
            format!("jobs/{a}/chunk-00007.wav")
        );
        assert!(
            keys::job_chunk(j, 7, "wav")
                .as_str()
                .starts_with(keys::job_prefix(j).as_str())
        );
        assert_ne!(
            keys::probe(),
            keys::probe(),
            "concurrent probes never collide"
        );
    }
}
