//! Fetches, verifies, installs, imports and removes the models in the manifest
//! (docs/neural.md, "Model manager").
//!
//! Every file is written under `.partial/` first, checked against the manifest's size and
//! sha256, and only then renamed into place, so a file in the layout is always complete and
//! verified. A model is worked on by one pull, removal or import at a time: each takes the
//! model's lock file in `.partial/`, which the OS releases if the process dies.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::ggml;
use super::layout::Layout;
use super::manifest::{MULTILINGUAL, Manifest, ModelEntry, ModelFile, ModelKind, whisper_name};
use crate::config::Config;
use crate::lockfile::LockFile;

/// Tries per file before a download is given up on.
const ATTEMPTS: u32 = 3;
/// Wait before the second try; doubled before each further one.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A download that receives nothing for this long is abandoned (and retried).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("There is no model called \"{name}\". Known models: {known}.")]
    UnknownModel { name: String, known: String },
    #[error(
        "{name} is being pulled, imported or removed by this server or another aimake process; try again when it has finished."
    )]
    Busy { name: String },
    #[error(
        "Cannot download {file} from {url}: {reason}. If this machine cannot reach it, set models.mirror to a server that holds the files under their official names, or copy the files here with `aimake models import DIR`."
    )]
    Network {
        file: String,
        url: String,
        reason: String,
    },
    #[error(
        "{file} from {source_url} is not the file in the manifest: expected sha256 {expected}, got {actual}. Nothing of it was installed."
    )]
    HashMismatch {
        file: String,
        source_url: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{file} from {source_url} has {actual} bytes where the manifest says {expected}. Nothing of it was installed."
    )]
    SizeMismatch {
        file: String,
        source_url: String,
        expected: u64,
        actual: u64,
    },
    #[error("Cannot unpack {file}: {reason}.")]
    Archive { file: String, reason: String },
    #[error("{file} cannot be imported: {reason}. Nothing was installed.")]
    Invalid { file: String, reason: String },
    #[error("{context}: {error}")]
    Io {
        context: String,
        error: std::io::Error,
    },
}

impl ModelError {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |error| Self::Io { context, error }
    }

    /// Whether the failure means the files could not be reached (no network, no mirror).
    pub fn is_network(&self) -> bool {
        matches!(self, Self::Network { .. })
    }
}

/// One model as `aimake models list` and the admin API show it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub name: String,
    pub kind: ModelKind,
    pub languages: Vec<String>,
    /// Bytes on disk once installed.
    pub size_bytes: u64,
    pub license: String,
    pub commercial_use: bool,
    pub quality: Option<String>,
    /// Every file is present with the size the manifest gives.
    pub installed: bool,
    /// The files are the ones the manifest pins by sha256; `false` for a user's own Whisper
    /// model brought in by `aimake models import FILE`, whose licence is the one its author
    /// gave it.
    pub verified: bool,
}

/// Where a pull is; reported after every chunk received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullProgress {
    pub model: String,
    /// The official name of the file being fetched (`voices/af_heart.bin`).
    pub file: String,
    /// Bytes received so far of everything this pull fetches.
    pub done_bytes: u64,
    /// Bytes this pull fetches in all (files already installed are not counted).
    pub total_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullReport {
    pub name: String,
    /// Official names of the files fetched and installed.
    pub downloaded: Vec<String>,
    /// Official names of the files that were installed and verified already.
    pub already_installed: Vec<String>,
    /// Bytes fetched.
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Installed files, as paths under `models.dir` (`kokoro/voices/af_heart.bin`).
    pub installed: Vec<String>,
    /// Files under the imported directory that were not installed (path relative to it) and why.
    pub skipped: Vec<(String, String)>,
}

/// One file brought in by `aimake models import FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedFile {
    /// The model it installed or belongs to: `whisper:base`, `whisper:my-finetune`.
    pub model: String,
    /// Where it went, under `models.dir`.
    pub path: String,
    pub bytes: u64,
    /// It is an official file, recognised by its sha256; otherwise an imported Whisper model.
    pub verified: bool,
    /// An imported model of that name was there before and has been replaced.
    pub replaced: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveReport {
    pub files: usize,
    pub bytes: u64,
}

/// A model's lock: while it is held, no other pull, import or removal of the model runs.
#[derive(Debug)]
pub struct ModelLock {
    entry: &'static ModelEntry,
    _file: LockFile,
}

impl ModelLock {
    pub fn name(&self) -> &str {
        &self.entry.name
    }
}

pub struct Manager {
    layout: Layout,
    mirror: Option<String>,
    client: reqwest::Client,
    timeout: Duration,
    manifest: &'static Manifest,
}

impl Manager {
    pub fn new(config: &Config) -> anyhow::Result<Manager> {
        Self::with_manifest(config, Manifest::builtin())
    }

    /// A manager of the models in `manifest` rather than the built-in one (tests pin files
    /// of their own this way).
    pub fn with_manifest(config: &Config, manifest: &'static Manifest) -> anyhow::Result<Manager> {
        let timeout = Duration::from_secs(config.models.download_timeout_s.max(1));
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .read_timeout(READ_TIMEOUT.min(timeout))
            .timeout(timeout)
            .user_agent(concat!("aimake/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Manager {
            layout: Layout::new(config.models.dir(&config.data)),
            mirror: config
                .models
                .mirror
                .clone()
                .filter(|m| !m.trim().is_empty()),
            client,
            timeout,
            manifest,
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn manifest(&self) -> &'static Manifest {
        self.manifest
    }

    /// The manifest's entry, or an error that lists the known names.
    pub fn entry(&self, name: &str) -> Result<&'static ModelEntry, ModelError> {
        self.manifest
            .get(name)
            .ok_or_else(|| ModelError::UnknownModel {
                name: name.to_string(),
                known: self.manifest.names().join(", "),
            })
    }

    pub fn status(&self, entry: &ModelEntry) -> ModelStatus {
        ModelStatus {
            name: entry.name.clone(),
            kind: entry.kind,
            languages: entry.languages.clone(),
            size_bytes: entry.size_bytes(),
            license: entry.license.clone(),
            commercial_use: entry.commercial_use,
            quality: entry.quality.clone(),
            installed: self.is_installed(entry),
            verified: true,
        }
    }

    /// The manifest's models, then the imported Whisper models.
    pub fn list(&self) -> Vec<ModelStatus> {
        let mut list: Vec<ModelStatus> = self
            .manifest
            .entries()
            .iter()
            .map(|e| self.status(e))
            .collect();
        list.extend(
            self.layout
                .whisper_customs()
                .iter()
                .map(|name| self.custom_status(name)),
        );
        list
    }

    /// An imported Whisper model's row: its languages come from its vocabulary.
    fn custom_status(&self, name: &str) -> ModelStatus {
        let path = self.layout.whisper_custom(name);
        let languages = match ggml::read_hparams(&path) {
            Ok(h) if h.multilingual() => vec![MULTILINGUAL.to_string()],
            Ok(_) => vec!["en".to_string()],
            Err(_) => Vec::new(),
        };
        ModelStatus {
            name: whisper_name(name),
            kind: ModelKind::Whisper,
            languages,
            size_bytes: std::fs::metadata(&path).map_or(0, |m| m.len()),
            license: String::new(),
            commercial_use: true,
            quality: None,
            installed: true,
            verified: false,
        }
    }

    /// The imported Whisper model `whisper:<name>` stands for, if it is not in the manifest.
    fn custom_name<'a>(&self, name: &'a str) -> Option<&'a str> {
        name.strip_prefix("whisper:")
            .filter(|n| self.manifest.get(name).is_none() && valid_custom_name(n).is_ok())
    }

    /// Every file of the model is present with the size the manifest gives (hashes are
    /// checked when files are installed, not on every look).
    pub fn is_installed(&self, entry: &ModelEntry) -> bool {
        entry.files.iter().all(|f| {
            std::fs::metadata(f.destination.path(&self.layout))
                .is_ok_and(|m| m.is_file() && m.len() == f.installed_size())
        })
    }

    /// Bytes of every file under `models.dir`.
    pub fn disk_used(&self) -> u64 {
        walkdir::WalkDir::new(self.layout.root())
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Fetches the model's missing files (`runtime`, `kokoro`, `piper:<voice>`), verifying each
    /// before it is installed. Files installed already with the right size and hash are kept.
    pub async fn pull(
        &self,
        name: &str,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<PullReport, ModelError> {
        let lock = self.lock(name).await?;
        self.pull_locked(&lock, progress).await
    }

    /// Takes the model's lock without waiting: held by a pull, import or removal of it, in
    /// this process or another. [`ModelError::Busy`] when someone has it.
    pub async fn lock(&self, name: &str) -> Result<ModelLock, ModelError> {
        let entry = self.entry(name)?;
        let file = lock_model(&self.layout, name).await?;
        Ok(ModelLock { entry, _file: file })
    }

    /// [`Self::pull`] for a model whose lock the caller took.
    pub async fn pull_locked(
        &self,
        lock: &ModelLock,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<PullReport, ModelError> {
        let entry = lock.entry;
        let name = entry.name.as_str();
        self.clean_partials(name).await?;
        let mut report = PullReport {
            name: name.to_string(),
            ..PullReport::default()
        };
        let mut todo = Vec::new();
        for file in &entry.files {
            if self.verified(file).await? {
                report.already_installed.push(file.name.clone());
            } else {
                todo.push(file);
            }
        }
        let tracker = Tracker {
            model: name,
            total: todo.iter().map(|f| f.size).sum(),
            done: AtomicU64::new(0),
            progress,
        };
        for file in todo {
            self.fetch(name, file, &tracker).await?;
            report.downloaded.push(file.name.clone());
        }
        report.bytes = tracker.done.load(Ordering::Relaxed);
        Ok(report)
    }

    /// Deletes the model's installed files (an imported Whisper model's file too).
    pub async fn remove(&self, name: &str) -> Result<RemoveReport, ModelError> {
        if let Some(custom) = self.custom_name(name) {
            let path = self.layout.whisper_custom(custom);
            if let Ok(meta) = tokio::fs::metadata(&path).await {
                let _lock = lock_model(&self.layout, name).await?;
                tokio::fs::remove_file(&path)
                    .await
                    .map_err(ModelError::io(format!("cannot delete {}", path.display())))?;
                let _ = tokio::fs::remove_dir(self.layout.whisper_custom_dir()).await;
                let _ = tokio::fs::remove_dir(self.layout.whisper_dir()).await;
                return Ok(RemoveReport {
                    files: 1,
                    bytes: meta.len(),
                });
            }
        }
        let lock = self.lock(name).await?;
        let entry = lock.entry;
        let mut report = RemoveReport::default();
        for file in &entry.files {
            let path = file.destination.path(&self.layout);
            let Ok(meta) = tokio::fs::metadata(&path).await else {
                continue;
            };
            tokio::fs::remove_file(&path)
                .await
                .map_err(ModelError::io(format!("cannot delete {}", path.display())))?;
            report.files += 1;
            report.bytes += meta.len();
        }
        // Folders left empty go too; ones holding anything else stay.
        for dir in [
            self.layout.kokoro_voices_dir(),
            self.layout.kokoro_dir(),
            self.layout.piper_dir(),
            self.layout.runtime_dir(),
            self.layout.whisper_dir(),
        ] {
            let _ = tokio::fs::remove_dir(dir).await;
        }
        Ok(report)
    }

    /// Installs every file under `dir` whose sha256 is one the manifest knows (a model file,
    /// a Kokoro voice, a Piper voice or its config, ONNX Runtime's library or its wheel),
    /// whatever it is called, and says why every other file was skipped.
    pub async fn import(&self, dir: &Path) -> Result<ImportReport, ModelError> {
        let importer = Importer {
            layout: self.layout.clone(),
            manifest: self.manifest,
            locks: HashMap::new(),
        };
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || importer.run(&dir))
            .await
            .map_err(|e| ModelError::Io {
                context: "the import stopped".into(),
                error: std::io::Error::other(e.to_string()),
            })?
    }

    /// Installs one file: an official one (recognised by its sha256, whatever it is called),
    /// or else a user's own Whisper model in whisper.cpp's ggml format, which is checked
    /// whole and installed unverified as `whisper:<name>`. `name` defaults to the file's name
    /// without `ggml-` and `.bin`.
    pub async fn import_file(
        &self,
        path: &Path,
        name: Option<&str>,
    ) -> Result<ImportedFile, ModelError> {
        let mut importer = Importer {
            layout: self.layout.clone(),
            manifest: self.manifest,
            locks: HashMap::new(),
        };
        let (path, name) = (path.to_path_buf(), name.map(str::to_string));
        tokio::task::spawn_blocking(move || importer.import_file(&path, name.as_deref()))
            .await
            .map_err(|e| ModelError::Io {
                context: "the import stopped".into(),
                error: std::io::Error::other(e.to_string()),
            })?
    }

    /// Removes what an earlier pull of this model left in `.partial/` (a killed process).
    async fn clean_partials(&self, name: &str) -> Result<(), ModelError> {
        let prefix = format!("{}--", partial_key(name));
        let Ok(mut dir) = tokio::fs::read_dir(self.layout.partial_dir()).await else {
            return Ok(());
        };
        while let Ok(Some(e)) = dir.next_entry().await {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let path = e.path();
                tracing::info!(path = %path.display(), "removing an unfinished download");
                tokio::fs::remove_file(&path)
                    .await
                    .map_err(ModelError::io(format!("cannot delete {}", path.display())))?;
            }
        }
        Ok(())
    }

    /// The file is installed with the size and sha256 the manifest gives.
    async fn verified(&self, file: &ModelFile) -> Result<bool, ModelError> {
        let path = file.destination.path(&self.layout);
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() && m.len() == file.installed_size() => {}
            _ => return Ok(false),
        }
        let actual = tokio::task::spawn_blocking(move || sha256_file(&path))
            .await
            .map_err(|e| ModelError::Io {
                context: "cannot hash an installed file".into(),
                error: std::io::Error::other(e.to_string()),
            })??;
        Ok(actual == file.installed_sha256())
    }

    async fn fetch(
        &self,
        model: &str,
        file: &ModelFile,
        tracker: &Tracker<'_>,
    ) -> Result<(), ModelError> {
        let partial = self.layout.partial_dir();
        tokio::fs::create_dir_all(&partial)
            .await
            .map_err(ModelError::io(format!(
                "cannot create {}",
                partial.display()
            )))?;
        let part = partial_path(&self.layout, model, &file.name);
        let url = file.source_url(self.mirror.as_deref());
        let result = self.download(&url, file, &part, tracker).await;
        let result = match result {
            Ok(()) => match &file.extract {
                None => install(&part, &file.destination.path(&self.layout)).await,
                Some(_) => {
                    let member_part =
                        partial_path(&self.layout, model, &format!("{}.member", file.name));
                    let r = extract_and_install(&self.layout, file, &part, &member_part).await;
                    let _ = tokio::fs::remove_file(&member_part).await;
                    r
                }
            },
            Err(e) => Err(e),
        };
        let _ = tokio::fs::remove_file(&part).await;
        result
    }

    /// Streams `url` into `part` while hashing it; retries network failures and 5xx answers.
    async fn download(
        &self,
        url: &str,
        file: &ModelFile,
        part: &Path,
        tracker: &Tracker<'_>,
    ) -> Result<(), ModelError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let before = tracker.done.load(Ordering::Relaxed);
            match self.download_once(url, file, part, tracker).await {
                Ok(()) => return Ok(()),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(reason)) => {
                    tracker.done.store(before, Ordering::Relaxed);
                    if attempt >= ATTEMPTS {
                        return Err(ModelError::Network {
                            file: file.name.clone(),
                            url: url.to_string(),
                            reason: format!("{reason} (gave up after {ATTEMPTS} attempts)"),
                        });
                    }
                    tracing::warn!(
                        file = %file.name,
                        url,
                        attempt,
                        wait_ms = backoff.as_millis() as u64,
                        "download failed, retrying: {reason}"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
            }
        }
    }

    async fn download_once(
        &self,
        url: &str,
        file: &ModelFile,
        part: &Path,
        tracker: &Tracker<'_>,
    ) -> Result<(), Failure> {
        let describe = |e: reqwest::Error| {
            if e.is_timeout() {
                format!(
                    "no complete answer within {} s (models.download_timeout_s) or no data for {} s",
                    self.timeout.as_secs(),
                    READ_TIMEOUT.min(self.timeout).as_secs()
                )
            } else {
                error_chain(&e)
            }
        };
        // What an earlier attempt of this pull received is kept and asked for no more.
        let have = match tokio::fs::metadata(part).await {
            Ok(m) if m.len() < file.size => m.len(),
            _ => 0,
        };
        let mut request = self.client.get(url);
        if have > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let resp = request
            .send()
            .await
            .map_err(|e| Failure::Retry(describe(e)))?;
        let status = resp.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(Failure::Retry(format!("the server answered {status}")));
        }
        if !status.is_success() {
            return Err(Failure::Fatal(ModelError::Network {
                file: file.name.clone(),
                url: url.to_string(),
                reason: format!("the server answered {status}"),
            }));
        }
        let size_mismatch = |actual| {
            Failure::Fatal(ModelError::SizeMismatch {
                file: file.name.clone(),
                source_url: url.to_string(),
                expected: file.size,
                actual,
            })
        };
        // A server that ignores the range sends the whole file (200): it is written afresh.
        let resumed = have > 0 && status == reqwest::StatusCode::PARTIAL_CONTENT;
        if resumed && !content_range_starts_at(&resp, have, file.size) {
            let _ = tokio::fs::remove_file(part).await;
            return Err(Failure::Retry(format!(
                "the server answered the range from byte {have} with another range"
            )));
        }
        let start = if resumed { have } else { 0 };
        if let Some(len) = resp.content_length()
            && start + len != file.size
        {
            return Err(size_mismatch(start + len));
        }
        let open_error =
            |e| Failure::Fatal(ModelError::io(format!("cannot open {}", part.display()))(e));
        let mut hasher = Sha256::new();
        let mut out = if resumed {
            let kept = part.to_path_buf();
            hasher = tokio::task::spawn_blocking(move || {
                let mut f = std::fs::File::open(&kept)?.take(have);
                let mut hasher = Sha256::new();
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    match f.read(&mut buf)? {
                        0 => break,
                        n => hasher.update(&buf[..n]),
                    }
                }
                Ok::<_, std::io::Error>(hasher)
            })
            .await
            .map_err(|e| open_error(std::io::Error::other(e.to_string())))?
            .map_err(open_error)?;
            let mut f = tokio::fs::OpenOptions::new()
                .write(true)
                .open(part)
                .await
                .map_err(open_error)?;
            f.set_len(have).await.map_err(open_error)?;
            f.seek(std::io::SeekFrom::Start(have))
                .await
                .map_err(open_error)?;
            tracker.add(&file.name, have);
            f
        } else {
            tokio::fs::File::create(part).await.map_err(open_error)?
        };
        let write_error = |e| {
            Failure::Fatal(ModelError::io(format!("cannot write {}", part.display()))(
                e,
            ))
        };
        let mut received = start;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Failure::Retry(describe(e)))?;
            received += chunk.len() as u64;
            if received > file.size {
                return Err(size_mismatch(received));
            }
            hasher.update(&chunk);
            out.write_all(&chunk).await.map_err(write_error)?;
            tracker.add(&file.name, chunk.len() as u64);
        }
        out.flush().await.map_err(write_error)?;
        out.sync_all().await.map_err(write_error)?;
        if received != file.size {
            return Err(size_mismatch(received));
        }
        let actual = hex::encode(hasher.finalize());
        if actual != file.sha256 {
            return Err(Failure::Fatal(ModelError::HashMismatch {
                file: file.name.clone(),
                source_url: url.to_string(),
                expected: file.sha256.clone(),
                actual,
            }));
        }
        Ok(())
    }
}

enum Failure {
    /// Worth another try: the network, a timeout, a 5xx.
    Retry(String),
    Fatal(ModelError),
}

struct Tracker<'a> {
    model: &'a str,
    total: u64,
    done: AtomicU64,
    progress: &'a (dyn Fn(PullProgress) + Send + Sync),
}

impl Tracker<'_> {
    fn add(&self, file: &str, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        (self.progress)(PullProgress {
            model: self.model.to_string(),
            file: file.to_string(),
            done_bytes: done,
            total_bytes: self.total,
        });
    }
}

/// The answer's `Content-Range` is `bytes <from>-<size - 1>/<size>`.
fn content_range_starts_at(resp: &reqwest::Response, from: u64, size: u64) -> bool {
    resp.headers()
        .get(reqwest::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("bytes {from}-{}/{size}", size - 1))
}

/// The model's name as it appears in file names under `.partial/`.
fn partial_key(model: &str) -> String {
    model.replace([':', '/'], "_")
}

fn partial_path(layout: &Layout, model: &str, official: &str) -> PathBuf {
    layout.partial_dir().join(format!(
        "{}--{}.part",
        partial_key(model),
        official.replace('/', "_")
    ))
}

/// Takes the model's lock without waiting.
async fn lock_model(layout: &Layout, name: &str) -> Result<LockFile, ModelError> {
    let path = layout
        .partial_dir()
        .join(format!("{}.lock", partial_key(name)));
    let name = name.to_string();
    tokio::task::spawn_blocking(move || try_lock(&path, &name))
        .await
        .map_err(|e| ModelError::Io {
            context: "cannot take the model's lock".into(),
            error: std::io::Error::other(e.to_string()),
        })?
}

fn try_lock(path: &Path, name: &str) -> Result<LockFile, ModelError> {
    match LockFile::try_acquire(path) {
        Ok(Ok(lock)) => Ok(lock),
        Ok(Err(_held)) => Err(ModelError::Busy {
            name: name.to_string(),
        }),
        Err(e) => Err(ModelError::Io {
            context: format!("cannot lock {}", path.display()),
            error: std::io::Error::other(format!("{e:#}")),
        }),
    }
}

/// Moves a verified file from `.partial/` into place (same filesystem: an atomic rename).
async fn install(part: &Path, dest: &Path) -> Result<(), ModelError> {
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(ModelError::io(format!(
                "cannot create {}",
                parent.display()
            )))?;
    }
    tokio::fs::rename(part, dest)
        .await
        .map_err(ModelError::io(format!(
            "cannot move a download to {}",
            dest.display()
        )))
}

/// Unpacks the file's archive member from `archive` into `member_part`, checks it and installs it.
async fn extract_and_install(
    layout: &Layout,
    file: &ModelFile,
    archive: &Path,
    member_part: &Path,
) -> Result<(), ModelError> {
    let (f, a, m) = (
        file.clone(),
        archive.to_path_buf(),
        member_part.to_path_buf(),
    );
    tokio::task::spawn_blocking(move || extract_member(&f, &a, &m))
        .await
        .map_err(|e| ModelError::Io {
            context: "the unpacking stopped".into(),
            error: std::io::Error::other(e.to_string()),
        })??;
    install(member_part, &file.destination.path(layout)).await
}

/// Writes the archive member named in `file.extract` to `out`, checking size and sha256.
fn extract_member(file: &ModelFile, archive: &Path, out: &Path) -> Result<(), ModelError> {
    let extract = file.extract.as_ref().expect("only archives are extracted");
    let archive_error = |reason: String| ModelError::Archive {
        file: file.name.clone(),
        reason,
    };
    let reader = std::fs::File::open(archive)
        .map_err(ModelError::io(format!("cannot open {}", archive.display())))?;
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| archive_error(e.to_string()))?;
    let mut member = zip
        .by_name(&extract.member)
        .map_err(|e| archive_error(format!("{}: {e}", extract.member)))?;
    let mut writer = std::fs::File::create(out)
        .map_err(ModelError::io(format!("cannot create {}", out.display())))?;
    let (size, sha256) = copy_hashing(&mut member, &mut writer, extract.size)
        .map_err(|e| archive_error(format!("{}: {e}", extract.member)))?;
    writer
        .sync_all()
        .map_err(ModelError::io(format!("cannot write {}", out.display())))?;
    let member_name = format!("{} in {}", extract.member, file.name);
    if size != extract.size {
        return Err(ModelError::SizeMismatch {
            file: member_name,
            source_url: archive.display().to_string(),
            expected: extract.size,
            actual: size,
        });
    }
    if sha256 != extract.sha256 {
        return Err(ModelError::HashMismatch {
            file: member_name,
            source_url: archive.display().to_string(),
            expected: extract.sha256.clone(),
            actual: sha256,
        });
    }
    Ok(())
}

/// Copies at most `limit + 1` bytes, returning how many were copied and their sha256.
fn copy_hashing(
    from: &mut impl Read,
    to: &mut impl Write,
    limit: u64,
) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let mut from = from.take(limit + 1);
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
}

fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut f = std::fs::File::open(path)
        .map_err(ModelError::io(format!("cannot read {}", path.display())))?;
    let (_, sha) = copy_hashing(&mut f, &mut std::io::sink(), u64::MAX - 1)
        .map_err(ModelError::io(format!("cannot read {}", path.display())))?;
    Ok(sha)
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// What a file found by an import turned out to be.
struct Known<'a> {
    entry: &'a ModelEntry,
    file: &'a ModelFile,
    /// The file is the published archive (a wheel), not the installed member.
    archive: bool,
}

struct Importer {
    layout: Layout,
    manifest: &'static Manifest,
    locks: HashMap<String, LockFile>,
}

impl Importer {
    fn run(mut self, dir: &Path) -> Result<ImportReport, ModelError> {
        if !dir.is_dir() {
            return Err(ModelError::Io {
                context: format!("cannot import from {}", dir.display()),
                error: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
            });
        }
        let partial = self.layout.partial_dir();
        std::fs::create_dir_all(&partial).map_err(ModelError::io(format!(
            "cannot create {}",
            partial.display()
        )))?;
        let mut report = ImportReport::default();
        let mut paths: Vec<PathBuf> = Vec::new();
        for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
            match e {
                Ok(e) if e.file_type().is_file() => paths.push(e.into_path()),
                Ok(e) if e.file_type().is_dir() => {}
                Ok(e) => report.skipped.push((
                    relative(dir, e.path()),
                    "not a regular file (links are not followed)".into(),
                )),
                Err(e) => report.skipped.push((
                    e.path().map(|p| relative(dir, p)).unwrap_or_default(),
                    format!("cannot read it: {e}"),
                )),
            }
        }
        for path in paths {
            let rel = relative(dir, &path);
            match self.import_one(&path) {
                Ok(Outcome::Installed { path, .. }) => report.installed.push(path),
                Ok(Outcome::Unknown(reason)) if ggml::read_hparams(&path).is_ok() => {
                    report.skipped.push((
                        rel,
                        format!(
                            "{reason}; it is a Whisper model in ggml format: import it on its own (`aimake models import FILE --name NAME`) to install it as a model of your own"
                        ),
                    ))
                }
                Ok(Outcome::Unknown(reason) | Outcome::Busy(reason)) => {
                    report.skipped.push((rel, reason))
                }
                Err(e) => report.skipped.push((rel, e.to_string())),
            }
        }
        Ok(report)
    }

    fn import_file(&mut self, path: &Path, name: Option<&str>) -> Result<ImportedFile, ModelError> {
        let invalid = |reason: String| ModelError::Invalid {
            file: path.display().to_string(),
            reason,
        };
        let meta = std::fs::metadata(path)
            .map_err(ModelError::io(format!("cannot import {}", path.display())))?;
        if !meta.is_file() {
            return Err(invalid("it is not a regular file".into()));
        }
        if meta.len() == 0 {
            return Err(invalid("it is empty".into()));
        }
        let partial = self.layout.partial_dir();
        std::fs::create_dir_all(&partial).map_err(ModelError::io(format!(
            "cannot create {}",
            partial.display()
        )))?;
        let reason = match self.import_one(path)? {
            Outcome::Installed { model, path } => {
                return Ok(ImportedFile {
                    model,
                    path,
                    bytes: meta.len(),
                    verified: true,
                    replaced: false,
                });
            }
            Outcome::Busy(reason) => return Err(invalid(format!("it {reason}"))),
            Outcome::Unknown(reason) => reason,
        };
        // Not an official file: a Whisper model of the user's own, or nothing aimake knows.
        ggml::read_hparams(path).map_err(|e| {
            invalid(format!(
                "{e}; and it is {reason}, so it is not an official file either"
            ))
        })?;
        let name = match name {
            Some(n) => n.to_string(),
            None => derived_name(path),
        };
        valid_custom_name(&name).map_err(|why| invalid(format!("the name {name:?} {why}")))?;
        let model = whisper_name(&name);
        if self.manifest.get(&model).is_some() {
            return Err(invalid(format!(
                "it is not the official {model} (its sha256 differs), and {name:?} is that model's name; choose another with --name"
            )));
        }
        let lock_path = partial.join(format!("{}.lock", partial_key(&model)));
        let _lock = try_lock(&lock_path, &model)?;
        let dest = self.layout.whisper_custom(&name);
        let part = partial_path(&self.layout, &model, &format!("{name}.bin"));
        let result = copy_checked_model(path, &part, meta.len())
            .map_err(|e| match e {
                CopyError::Io(e) => e,
                CopyError::Invalid(reason) => invalid(reason),
            })
            .and_then(|()| {
                let replaced = dest.is_file();
                install_blocking(&part, &dest).map(|()| replaced)
            });
        let _ = std::fs::remove_file(&part);
        let replaced = result?;
        Ok(ImportedFile {
            model,
            path: relative(self.layout.root(), &dest),
            bytes: meta.len(),
            verified: false,
            replaced,
        })
    }

    /// Installs `path` if its sha256 is one the manifest knows.
    fn import_one(&mut self, path: &Path) -> Result<Outcome, ModelError> {
        let size = std::fs::metadata(path)
            .map_err(ModelError::io(format!("cannot read {}", path.display())))?
            .len();
        let by_size: Vec<Known> = self
            .manifest
            .entries()
            .iter()
            .flat_map(|entry| {
                entry.files.iter().flat_map(move |file| {
                    let published = Known {
                        entry,
                        file,
                        archive: file.extract.is_some(),
                    };
                    let member = file.extract.as_ref().map(|_| Known {
                        entry,
                        file,
                        archive: false,
                    });
                    std::iter::once(published).chain(member)
                })
            })
            .filter(|k| {
                if k.archive {
                    k.file.size == size
                } else {
                    k.file.installed_size() == size
                }
            })
            .collect();
        if by_size.is_empty() {
            return Ok(Outcome::Unknown(format!(
                "not a file of any known model ({size} bytes: no file in the manifest has that size)"
            )));
        }
        let actual = sha256_file(path)?;
        let Some(known) = by_size.into_iter().find(|k| {
            if k.archive {
                k.file.sha256 == actual
            } else {
                k.file.installed_sha256() == actual
            }
        }) else {
            return Ok(Outcome::Unknown(format!(
                "not a file of any known model (unknown sha256 {actual})"
            )));
        };
        let model = known.entry.name.as_str();
        if !self.locks.contains_key(model) {
            let path = self
                .layout
                .partial_dir()
                .join(format!("{}.lock", partial_key(model)));
            match try_lock(&path, model) {
                Ok(lock) => {
                    self.locks.insert(model.to_string(), lock);
                }
                Err(ModelError::Busy { .. }) => {
                    return Ok(Outcome::Busy(format!(
                        "belongs to {model}, which is being pulled or removed right now; import it again afterwards"
                    )));
                }
                Err(e) => return Err(e),
            }
        }
        let dest = known.file.destination.path(&self.layout);
        if known.archive {
            let member_part =
                partial_path(&self.layout, model, &format!("{}.member", known.file.name));
            let r = extract_member(known.file, path, &member_part)
                .and_then(|()| install_blocking(&member_part, &dest));
            let _ = std::fs::remove_file(&member_part);
            r?;
        } else {
            let part = partial_path(&self.layout, model, &known.file.name);
            let r = copy_verified(path, &part, known.file)
                .and_then(|()| install_blocking(&part, &dest));
            let _ = std::fs::remove_file(&part);
            r?;
        }
        Ok(Outcome::Installed {
            model: model.to_string(),
            path: relative(self.layout.root(), &dest),
        })
    }
}

/// What became of one file an import looked at.
enum Outcome {
    /// It is a file of `model`, now installed at `path` (under `models.dir`).
    Installed { model: String, path: String },
    /// Not a file of any model in the manifest, and why.
    Unknown(String),
    /// Its model is being pulled or removed.
    Busy(String),
}

/// The name an imported Whisper model gets from its file: `ggml-medium-ft.bin` → `medium-ft`.
fn derived_name(path: &Path) -> String {
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.strip_suffix(".bin").unwrap_or(&stem);
    let stem = stem.strip_prefix("ggml-").unwrap_or(stem);
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// An imported model's name is a file name under `whisper/custom/` and part of a config value.
fn valid_custom_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters long");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err("must not start with '.' or '-'");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err("may hold only letters, digits, '.', '-' and '_'");
    }
    Ok(())
}

enum CopyError {
    Io(ModelError),
    Invalid(String),
}

/// Copies a user's model to `part` and checks the copy whole (the source could change while
/// it is read): every byte a whisper.cpp model needs is there, and nothing else.
fn copy_checked_model(from: &Path, part: &Path, size: u64) -> Result<(), CopyError> {
    let mut reader = std::fs::File::open(from)
        .map_err(|e| CopyError::Io(ModelError::io(format!("cannot read {}", from.display()))(e)))?;
    let mut writer = std::fs::File::create(part).map_err(|e| {
        CopyError::Io(ModelError::io(format!("cannot create {}", part.display()))(
            e,
        ))
    })?;
    copy_hashing(&mut reader, &mut writer, size)
        .and_then(|_| writer.sync_all())
        .map_err(|e| CopyError::Io(ModelError::io(format!("cannot copy {}", from.display()))(e)))?;
    ggml::check_file(part).map_err(|e| CopyError::Invalid(e.to_string()))?;
    Ok(())
}

/// Copies `from` to `part`, checking the copy against the file's installed size and sha256
/// (the source could change between the first look and the copy).
fn copy_verified(from: &Path, part: &Path, file: &ModelFile) -> Result<(), ModelError> {
    let mut reader = std::fs::File::open(from)
        .map_err(ModelError::io(format!("cannot read {}", from.display())))?;
    let mut writer = std::fs::File::create(part)
        .map_err(ModelError::io(format!("cannot create {}", part.display())))?;
    let (size, sha) = copy_hashing(&mut reader, &mut writer, file.installed_size())
        .map_err(ModelError::io(format!("cannot copy {}", from.display())))?;
    writer
        .sync_all()
        .map_err(ModelError::io(format!("cannot write {}", part.display())))?;
    if size != file.installed_size() || sha != file.installed_sha256() {
        return Err(ModelError::HashMismatch {
            file: file.name.clone(),
            source_url: from.display().to_string(),
            expected: file.installed_sha256().to_string(),
            actual: sha,
        });
    }
    Ok(())
}

fn install_blocking(part: &Path, dest: &Path) -> Result<(), ModelError> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(ModelError::io(format!(
            "cannot create {}",
            parent.display()
        )))?;
    }
    std::fs::rename(part, dest).map_err(ModelError::io(format!(
        "cannot move a file to {}",
        dest.display()
    )))
}

fn relative(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_names_stay_inside_the_partial_dir() {
        let l = Layout::new("/m");
        assert_eq!(
            partial_path(&l, "piper:en_US-joe-medium", "en_US-joe-medium.onnx"),
            PathBuf::from("/m/.partial/piper_en_US-joe-medium--en_US-joe-medium.onnx.part")
        );
        assert_eq!(
            partial_path(&l, "kokoro", "voices/af_heart.bin"),
            PathBuf::from("/m/.partial/kokoro--voices_af_heart.bin.part")
        );
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.data.dir = dir.path().to_path_buf();
        let m = Manager::new(&config).unwrap();
        let e = m.entry("kokoro:v2").unwrap_err().to_string();
        assert!(e.contains("\"kokoro:v2\""), "{e}");
        assert!(e.contains("runtime, kokoro, piper:en_US-joe-medium"), "{e}");
        assert_eq!(m.layout().root(), dir.path().join("models"));
        assert!(m.list().iter().all(|s| !s.installed));
    }

    #[test]
    fn an_imported_models_name_comes_from_its_file_and_is_checked() {
        assert_eq!(
            derived_name(Path::new("/x/ggml-medium-ft.bin")),
            "medium-ft"
        );
        assert_eq!(
            derived_name(Path::new("my model (v2).bin")),
            "my-model--v2-"
        );
        assert_eq!(
            derived_name(Path::new("whisper-de.ggml")),
            "whisper-de.ggml"
        );
        assert!(valid_custom_name("de-ft_2.1").is_ok());
        for bad in ["", ".hidden", "-x", "a/b", "a b", &"x".repeat(65)] {
            assert!(valid_custom_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn copies_are_hashed_and_capped() {
        let data = b"hello world".to_vec();
        let mut out = Vec::new();
        let (n, sha) = copy_hashing(&mut data.as_slice(), &mut out, 100).unwrap();
        assert_eq!(n, 11);
        assert_eq!(
            sha,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        let (n, _) = copy_hashing(&mut data.as_slice(), &mut Vec::new(), 4).unwrap();
        assert_eq!(n, 5);
    }
}
