//! Backups: online database snapshots plus content-addressed media in a backup target, and
//! the list, verify, prune, delete and restore operations on them. Knows nothing of HTTP.
//!
//! Layout in the target (the main store, a local directory or a separate bucket):
//! `backups/aimake-<UTC yyyymmddThhmmssZ>/{db.sqlite.zst, manifest.json | failure.json,
//! verification.json}` and `backups/media/<aa>/<sha256>` shared by every set.

pub mod cli;
mod manifest;
mod media;
pub mod online;
pub mod restore;
mod snapshot;
pub mod target;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;
use tracing::Instrument;

pub use manifest::{FailureRecord, Manifest, MediaEntry, Trigger, Verification, VerifyResult};
pub use media::CopyStats;
pub use restore::{RestoreOptions, RestorePlan, RestoreReport, restore};
pub use target::Target;

use crate::config::Config;
use crate::db::Db;
use crate::error::AppError;
use crate::lockfile::{BACKUP_LOCK, LockFile};
use crate::ops::alerts::LastBackup;
use crate::ops::scheduler::{Clock, SystemClock};
use crate::storage::{Storage, StorageError, keys};
use manifest::{FAILURE_FILE, FORMAT_VERSION, MANIFEST_FILE, SNAPSHOT_FILE, VERIFICATION_FILE};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("a backup or restore is already running ({0})")]
    AlreadyRunning(String),
    #[error("no backup named {0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidName(String),
    /// The set exists but cannot be used; the live database was not touched.
    #[error("backup {name} is unusable: {reason}")]
    Unusable { name: String, reason: String },
    #[error("an aimake server is running on this data dir ({0}): stop it before restoring")]
    ServerRunning(String),
    #[error("restore cancelled: nothing was changed")]
    Cancelled,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<StorageError> for BackupError {
    fn from(e: StorageError) -> Self {
        Self::Other(e.into())
    }
}

impl From<BackupError> for AppError {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::AlreadyRunning(_) => {
                AppError::Conflict("A backup or restore is already running".into())
            }
            BackupError::NotFound(_) => AppError::NotFound,
            BackupError::InvalidName(m) => AppError::invalid(m),
            BackupError::Other(e) => AppError::Internal(e),
            other => AppError::Internal(anyhow::anyhow!("{other}")),
        }
    }
}

/// A backup set's name, `aimake-<UTC yyyymmddThhmmssZ>`, with `-<n>` when two start in the
/// same second. Parsing is the only way to get one from outside, which keeps names that
/// reach storage keys free of `/` and `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct BackupName(String);

impl BackupName {
    pub fn parse(s: &str) -> Result<Self, BackupError> {
        let invalid = || {
            BackupError::InvalidName(format!(
                "`{s}` is not a backup name (expected aimake-YYYYMMDDTHHMMSSZ)"
            ))
        };
        let rest = s.strip_prefix("aimake-").ok_or_else(invalid)?;
        let (stamp, suffix) = match rest.split_once('-') {
            Some((stamp, n)) => (stamp, Some(n)),
            None => (rest, None),
        };
        let b = stamp.as_bytes();
        let shape = b.len() == 16
            && b[8] == b'T'
            && b[15] == b'Z'
            && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
        let suffix_ok = suffix
            .is_none_or(|n| !n.is_empty() && n.len() <= 4 && n.bytes().all(|c| c.is_ascii_digit()));
        if shape && suffix_ok {
            Ok(Self(s.to_string()))
        } else {
            Err(invalid())
        }
    }

    /// The name for a backup started at `at`; `n` > 1 disambiguates the same second.
    fn at(at: OffsetDateTime, n: u32) -> Self {
        let at = at.to_offset(time::UtcOffset::UTC);
        let base = format!(
            "aimake-{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            at.year(),
            at.month() as u8,
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        );
        Self(if n > 1 { format!("{base}-{n}") } else { base })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BackupName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
}

/// One line of `aimake backup list` and one item of `GET /api/admin/backups`.
#[derive(Debug, Clone, Serialize)]
pub struct BackupInfo {
    pub name: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    #[serde(skip)]
    pub created_at_ms: i64,
    pub trigger: Trigger,
    pub status: Status,
    pub error: Option<String>,
    /// The stored (compressed) snapshot; media is shared between sets and counted apart.
    pub size_bytes: u64,
    /// Checksum of the stored snapshot object.
    pub sha256: Option<String>,
    pub db_size_bytes: u64,
    pub schema_version: Option<u32>,
    pub app_version: String,
    pub media_count: u64,
    pub media_bytes: u64,
    /// The latest verification; None when the set was never verified (or failed).
    pub verification: Option<Verification>,
}

impl BackupInfo {
    fn from_manifest(m: &Manifest) -> Self {
        Self {
            name: m.name.clone(),
            created_at: m.created_at.clone(),
            created_at_ms: m.created_at_ms,
            trigger: m.trigger,
            status: Status::Ok,
            error: None,
            size_bytes: m.db.stored_bytes,
            sha256: Some(m.db.stored_sha256.clone()),
            db_size_bytes: m.db.size_bytes,
            schema_version: Some(m.schema_version),
            app_version: m.app_version.clone(),
            media_count: m.media.len() as u64,
            media_bytes: m.media.iter().map(|e| e.size_bytes).sum(),
            verification: None,
        }
    }

    fn from_failure(f: &FailureRecord) -> Self {
        Self {
            name: f.name.clone(),
            created_at: f.created_at.clone(),
            created_at_ms: f.created_at_ms,
            trigger: f.trigger,
            status: Status::Failed,
            error: Some(f.error.clone()),
            size_bytes: 0,
            sha256: None,
            db_size_bytes: 0,
            schema_version: None,
            app_version: f.app_version.clone(),
            media_count: 0,
            media_bytes: 0,
            verification: None,
        }
    }
}

/// What one finished backup did.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub info: BackupInfo,
    pub media: CopyStats,
}

#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub name: String,
    pub schema_version: u32,
    pub db_size_bytes: u64,
    pub media_checked: u64,
}

/// Which media blobs a check reads back and hashes.
#[derive(Clone, Copy)]
enum MediaScope<'a> {
    /// None: the media is left out (`restore --no-media`).
    Skip,
    /// Every blob of the set (`backup verify`, restore).
    All,
    /// The blobs a backup run just wrote; the others are checked against a listing
    /// (present, right size), which costs no download.
    Written(&'a HashSet<String>),
}

/// A set whose snapshot checked out, and what its media check found.
struct Checked {
    /// Holds `aimake.db`, decompressed and checked.
    tmp: tempfile::TempDir,
    schema_version: u32,
    blobs: media::BlobCheck,
}

#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    /// Expired scheduled backups and old failure records.
    pub deleted: Vec<String>,
    /// Sets left without a manifest by an interrupted backup.
    pub incomplete: Vec<String>,
    pub blobs_removed: u64,
}

/// The state of one set in the target.
enum SetState {
    Good(Box<Manifest>),
    Failed(FailureRecord),
    Incomplete,
}

/// The backup service: one per process, cheap to clone.
#[derive(Clone)]
pub struct Backups {
    inner: Arc<Inner>,
}

struct Inner {
    data_dir: PathBuf,
    db_path: PathBuf,
    /// The server's database: snapshots are then taken on its writer connection.
    writer: Option<Db>,
    main: Storage,
    target: Target,
    include_media: bool,
    keep_days: u32,
    clock: Arc<dyn Clock>,
    /// The latest finished run (good or failed), for whoever waits on it.
    finished: watch::Sender<Option<BackupInfo>>,
}

/// Held for the length of one backup, prune, delete or restore.
pub struct RunGuard {
    _lock: LockFile,
}

impl Backups {
    /// The service for `config`, backing up the database in `data.dir` and the media of `main`.
    /// `writer` is the database when this process has it open (the server): snapshots then
    /// run on its writer connection and stall writes least (see `snapshot.rs`).
    pub fn from_config(config: &Config, main: Storage, writer: Option<Db>) -> anyhow::Result<Self> {
        Self::with_clock(config, main, writer, Arc::new(SystemClock))
    }

    /// Same, with a clock of the caller's choosing (tests drive time by hand).
    pub fn with_clock(
        config: &Config,
        main: Storage,
        writer: Option<Db>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let target = Target::from_config(config, &main)?;
        Ok(Self {
            inner: Arc::new(Inner {
                data_dir: config.data.dir.clone(),
                db_path: config.data.dir.join("aimake.db"),
                writer,
                main,
                target,
                include_media: config.backup.include_media,
                keep_days: config.backup.keep_days,
                clock,
                finished: watch::Sender::new(None),
            }),
        })
    }

    /// The storage backups are written to.
    pub fn target(&self) -> &Storage {
        &self.inner.target.storage
    }

    /// Where backups go, in words (`main object store (backups/)`, `directory /srv/b`, …).
    pub fn target_label(&self) -> &str {
        &self.inner.target.label
    }

    /// Wakes whenever a backup run finishes, good or failed.
    pub fn subscribe(&self) -> watch::Receiver<Option<BackupInfo>> {
        self.inner.finished.subscribe()
    }

    /// Takes the one-at-a-time lock shared by the CLI and the server.
    pub async fn lock(&self) -> Result<RunGuard, BackupError> {
        let path = self.inner.data_dir.join(BACKUP_LOCK);
        let taken = tokio::task::spawn_blocking(move || LockFile::try_acquire(&path))
            .await
            .context("lock task failed")??;
        match taken {
            Ok(lock) => Ok(RunGuard { _lock: lock }),
            Err(held) => Err(BackupError::AlreadyRunning(held.to_string())),
        }
    }

    /// Backs up now and waits for it to finish, without reading the set back (the backup
    /// benchmark measures this).
    pub async fn run(&self, trigger: Trigger) -> Result<BackupReport, BackupError> {
        let _guard = self.lock().await?;
        let name = self.next_name().await?;
        self.run_locked(name, trigger, false).await
    }

    /// Backs up now, then checks what it wrote (see `run_locked`) and records the outcome:
    /// what `aimake backup` does. A set that does not read back is `Unusable`.
    pub async fn run_checked(&self, trigger: Trigger) -> Result<BackupReport, BackupError> {
        let _guard = self.lock().await?;
        let name = self.next_name().await?;
        self.run_locked(name, trigger, true).await
    }

    /// Starts a backup in the background and returns its name at once (`POST
    /// /api/admin/backups` → 202). `AlreadyRunning` when another one (or a restore) holds the
    /// lock. The outcome shows in `list()` and through `subscribe()`.
    pub async fn start(&self, trigger: Trigger) -> Result<BackupName, BackupError> {
        let guard = self.lock().await?;
        let name = self.next_name().await?;
        let this = self.clone();
        let bg_name = name.clone();
        tokio::spawn(async move {
            let _guard = guard;
            // Failures are logged and recorded by run_locked.
            let _ = this.run_locked(bg_name, trigger, true).await;
        });
        Ok(name)
    }

    /// What the scheduler runs at each slot: a backup, then retention as of `slot`.
    /// Never fails: problems are logged at error level and recorded in the target.
    pub async fn run_scheduled(&self, slot: OffsetDateTime) {
        let guard = match self.lock().await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, "scheduled backup skipped");
                return;
            }
        };
        // An unreachable target fails the listing too: the run under this name then fails
        // and is logged like any other failure.
        let name = match self.next_name().await {
            Ok(n) => n,
            Err(_) => BackupName::at(self.now(), 1),
        };
        // Failures are logged and recorded by run_locked; retention runs either way, and it
        // never removes the newest good backup.
        let _ = self.run_locked(name, Trigger::Scheduled, true).await;
        match self.prune_locked(slot).await {
            Ok(r) => tracing::info!(
                deleted = r.deleted.len(),
                incomplete = r.incomplete.len(),
                blobs_removed = r.blobs_removed,
                "backup retention applied"
            ),
            Err(e) => tracing::error!(error = format!("{e:#}"), "backup retention failed"),
        }
        drop(guard);
    }

    /// Writes a set; with `check`, then reads back what it wrote (the snapshot end to end,
    /// every blob this run uploaded, the presence of the others) and records the outcome
    /// beside the set, as `backup list` shows it.
    async fn run_locked(
        &self,
        name: BackupName,
        trigger: Trigger,
        check: bool,
    ) -> Result<BackupReport, BackupError> {
        let started = self.inner.clock.now();
        let timer = std::time::Instant::now();
        let span = tracing::info_span!("backup", name = %name, %trigger);
        match self
            .write_set(&name, trigger, started)
            .instrument(span)
            .await
        {
            Ok((mut report, manifest, written)) => {
                let checked = if check {
                    let checked = self.check(&manifest, MediaScope::Written(&written)).await;
                    let (checked, verification) =
                        self.settle(&manifest, checked, true, false).await;
                    report.info.verification = verification;
                    checked.map(drop)
                } else {
                    Ok(())
                };
                if let Err(e) = checked {
                    tracing::error!(name = %name, %trigger, error = %e, target = self.target_label(), "the backup just written does not verify");
                    crate::monitor::metrics::backup_finished(false, timer.elapsed());
                    self.inner.finished.send_replace(Some(report.info.clone()));
                    return Err(e);
                }
                tracing::info!(
                    name = %name,
                    %trigger,
                    size_bytes = report.info.size_bytes,
                    media = report.info.media_count,
                    media_copied = report.media.copied,
                    verified = report.info.verification.is_some(),
                    target = self.target_label(),
                    "backup finished"
                );
                crate::monitor::metrics::backup_finished(true, timer.elapsed());
                self.inner.finished.send_replace(Some(report.info.clone()));
                Ok(report)
            }
            Err(e) => {
                let reason = format!("{e:#}");
                tracing::error!(name = %name, %trigger, error = %reason, target = self.target_label(), "backup failed");
                crate::monitor::metrics::backup_finished(false, timer.elapsed());
                let record = FailureRecord {
                    format: FORMAT_VERSION,
                    name: name.to_string(),
                    app_version: crate::VERSION.into(),
                    created_at: rfc3339(started),
                    created_at_ms: unix_ms(started),
                    trigger,
                    error: reason,
                };
                if let Err(e2) = self.record_failure(&name, &record).await {
                    tracing::error!(name = %name, error = format!("{e2:#}"), "cannot record the backup failure in the target");
                }
                self.inner
                    .finished
                    .send_replace(Some(BackupInfo::from_failure(&record)));
                Err(e)
            }
        }
    }

    /// Snapshot, upload, media, then the manifest last. Also returns the manifest and the
    /// blobs this run wrote, for the check that follows.
    async fn write_set(
        &self,
        name: &BackupName,
        trigger: Trigger,
        started: OffsetDateTime,
    ) -> Result<(BackupReport, Manifest, HashSet<String>), BackupError> {
        let inner = &self.inner;
        let target = &inner.target.storage;
        let (db, writer, data_dir) = (
            inner.db_path.clone(),
            inner.writer.clone(),
            inner.data_dir.clone(),
        );
        let span = tracing::Span::current();
        let (_tmp, snap) = tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            remove_stale_temp_dirs(&data_dir, BACKUP_TEMP_PREFIX);
            let tmp = temp_dir(&data_dir, BACKUP_TEMP_PREFIX)?;
            let snap = snapshot::take(&db, writer.as_ref(), tmp.path())?;
            anyhow::Ok((tmp, snap))
        })
        .await
        .context("snapshot task failed")??;
        let result = async {
            target
                .put_file(
                    &keys::backup_file(name.as_str(), SNAPSHOT_FILE),
                    &snap.compressed,
                )
                .await?;
            let (media, stats, written) = if inner.include_media {
                let previous = self.newest_good().await?;
                let known = previous.map(|m| m.media).unwrap_or_default();
                media::copy(&inner.main, target, &known).await?
            } else {
                (Vec::new(), CopyStats::default(), HashSet::new())
            };
            let manifest = Manifest {
                format: FORMAT_VERSION,
                name: name.to_string(),
                app_version: crate::VERSION.into(),
                schema_version: snap.schema_version,
                created_at: rfc3339(started),
                created_at_ms: unix_ms(started),
                trigger,
                db: manifest::DbEntry {
                    file: SNAPSHOT_FILE.into(),
                    compression: "zstd".into(),
                    size_bytes: snap.size_bytes,
                    sha256: snap.sha256.clone(),
                    stored_bytes: snap.stored_bytes,
                    stored_sha256: snap.stored_sha256.clone(),
                },
                media,
            };
            let body = serde_json::to_vec_pretty(&manifest).context("cannot encode manifest")?;
            target
                .put(
                    &keys::backup_file(name.as_str(), MANIFEST_FILE),
                    Bytes::from(body),
                )
                .await?;
            let report = BackupReport {
                info: BackupInfo::from_manifest(&manifest),
                media: stats,
            };
            Ok::<_, BackupError>((report, manifest, written))
        }
        .await;
        if result.is_err() {
            // No half set left behind; blobs already copied are reused by the next run.
            let _ = target.delete_prefix(&keys::backup_set(name.as_str())).await;
        }
        result
    }

    async fn record_failure(
        &self,
        name: &BackupName,
        record: &FailureRecord,
    ) -> anyhow::Result<()> {
        let body = serde_json::to_vec_pretty(record)?;
        self.inner
            .target
            .storage
            .put(&keys::backup_file(name.as_str(), FAILURE_FILE), body.into())
            .await?;
        Ok(())
    }

    /// A fresh name for a backup starting now, never one a set already uses.
    async fn next_name(&self) -> Result<BackupName, BackupError> {
        let now = self.inner.clock.now();
        let taken: HashSet<String> = self
            .inner
            .target
            .storage
            .list_folders(&keys::backups_root())
            .await?
            .into_iter()
            .collect();
        (1..10_000)
            .map(|n| BackupName::at(now, n))
            .find(|name| !taken.contains(name.as_str()))
            .ok_or_else(|| anyhow::anyhow!("too many backups in one second").into())
    }

    /// Every set in the target with what it holds.
    async fn sets(&self) -> Result<Vec<(BackupName, SetState)>, BackupError> {
        let target = &self.inner.target.storage;
        let mut sets = Vec::new();
        for folder in target.list_folders(&keys::backups_root()).await? {
            let Ok(name) = BackupName::parse(&folder) else {
                continue;
            };
            let state = match self.manifest(&name).await {
                Ok(m) => SetState::Good(Box::new(m)),
                Err(BackupError::NotFound(_)) => {
                    match target
                        .get(&keys::backup_file(name.as_str(), FAILURE_FILE))
                        .await
                    {
                        Ok(bytes) => match serde_json::from_slice::<FailureRecord>(&bytes) {
                            Ok(f) => SetState::Failed(f),
                            Err(_) => SetState::Incomplete,
                        },
                        Err(StorageError::NotFound(_)) => SetState::Incomplete,
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(BackupError::Unusable { .. }) => SetState::Incomplete,
                Err(e) => return Err(e),
            };
            sets.push((name, state));
        }
        Ok(sets)
    }

    /// A set's manifest: `NotFound` when it has none, `Unusable` when it does not parse.
    pub async fn manifest(&self, name: &BackupName) -> Result<Manifest, BackupError> {
        let key = keys::backup_file(name.as_str(), MANIFEST_FILE);
        let bytes = match self.inner.target.storage.get(&key).await {
            Ok(b) => b,
            Err(StorageError::NotFound(_)) => return Err(BackupError::NotFound(name.to_string())),
            Err(e) => return Err(e.into()),
        };
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| BackupError::Unusable {
            name: name.to_string(),
            reason: format!("its manifest does not parse: {e}"),
        })?;
        if m.format > FORMAT_VERSION {
            return Err(BackupError::Unusable {
                name: name.to_string(),
                reason: format!(
                    "it was written in format {} by aimake {}; this aimake reads format {FORMAT_VERSION}",
                    m.format, m.app_version
                ),
            });
        }
        Ok(m)
    }

    async fn newest_good(&self) -> Result<Option<Manifest>, BackupError> {
        Ok(self
            .sets()
            .await?
            .into_iter()
            .filter_map(|(_, s)| match s {
                SetState::Good(m) => Some(*m),
                _ => None,
            })
            .max_by_key(|m| (m.created_at_ms, m.name.clone())))
    }

    /// The latest backup as the alert engine reads it: seeded from the target's list, then
    /// kept current by every backup that finishes, until `stop`.
    pub fn last_backup(
        &self,
        stop: tokio_util::sync::CancellationToken,
    ) -> watch::Receiver<LastBackup> {
        let (tx, rx) = watch::channel(LastBackup::default());
        let this = self.clone();
        tokio::spawn(async move {
            let mut finished = this.subscribe();
            match this.list().await {
                Ok(list) => {
                    tx.send_replace(last_backup_of(&list, LastBackup::default()));
                }
                Err(e) => tracing::warn!(error = %e, "alerts: cannot list backups"),
            }
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    changed = finished.changed() => if changed.is_err() { break },
                }
                let latest = finished.borrow_and_update().clone();
                if let Some(info) = latest {
                    let before = *tx.borrow();
                    tx.send_replace(last_backup_of(std::slice::from_ref(&info), before));
                }
            }
        });
        rx
    }

    /// Good and failed backups, newest first. Sets without a manifest or failure record
    /// (running or interrupted) are not listed.
    pub async fn list(&self) -> Result<Vec<BackupInfo>, BackupError> {
        let mut items: Vec<BackupInfo> = self
            .sets()
            .await?
            .into_iter()
            .filter_map(|(_, s)| match s {
                SetState::Good(m) => Some(BackupInfo::from_manifest(&m)),
                SetState::Failed(f) => Some(BackupInfo::from_failure(&f)),
                SetState::Incomplete => None,
            })
            .collect();
        for item in items.iter_mut().filter(|i| i.status == Status::Ok) {
            item.verification = self.verification(&item.name).await?;
        }
        items.sort_by(|a, b| (b.created_at_ms, &b.name).cmp(&(a.created_at_ms, &a.name)));
        Ok(items)
    }

    /// The latest verification recorded for a set; None when there is none (or it does not
    /// parse: it is rewritten by the next verification).
    async fn verification(&self, name: &str) -> Result<Option<Verification>, BackupError> {
        let name = BackupName::parse(name)?;
        match self
            .inner
            .target
            .storage
            .get(&keys::backup_file(name.as_str(), VERIFICATION_FILE))
            .await
        {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(StorageError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks the snapshot end to end (see `fetch_checked`) and reads back the media blobs
    /// in `scope`. `Unusable` when the snapshot is bad; bad blobs are in `Checked::blobs`.
    async fn check(&self, m: &Manifest, scope: MediaScope<'_>) -> Result<Checked, BackupError> {
        let (tmp, schema_version) = self.fetch_checked(m).await?;
        let target = &self.inner.target.storage;
        let blobs = match scope {
            MediaScope::Skip => media::BlobCheck::default(),
            MediaScope::All => media::check_blobs(target, &m.media, |_| true).await?,
            MediaScope::Written(written) => {
                let mut blobs =
                    media::check_blobs(target, &m.media, |e| written.contains(&e.sha256)).await?;
                let listed = self.missing_blobs(m).await?;
                blobs
                    .absent
                    .extend(listed.into_iter().filter(|e| !written.contains(&e.sha256)));
                blobs
            }
        };
        Ok(Checked {
            tmp,
            schema_version,
            blobs,
        })
    }

    /// Records the outcome of a check beside the set and turns bad blobs into `Unusable`.
    /// `ok` is only recorded when `covers_media` (the check looked at the media too);
    /// with `tolerate_absent`, missing blobs are recorded but left to the caller (a restore
    /// does not need the blobs of objects the main store still holds). Errors that say
    /// nothing about the set (an unreachable target) record nothing.
    async fn settle(
        &self,
        m: &Manifest,
        checked: Result<Checked, BackupError>,
        covers_media: bool,
        tolerate_absent: bool,
    ) -> (Result<Checked, BackupError>, Option<Verification>) {
        let total = m.media.len();
        let (reason, hashed) = match &checked {
            Ok(c) => (c.blobs.problem(total), c.blobs.hashed),
            Err(BackupError::Unusable { reason, .. }) => (Some(reason.clone()), 0),
            Err(_) => return (checked, None),
        };
        let Ok(name) = BackupName::parse(&m.name) else {
            return (checked, None);
        };
        if reason.is_none() && !covers_media {
            return (checked, None);
        }
        let result = match checked {
            Ok(c)
                if !c.blobs.corrupt.is_empty()
                    || (!tolerate_absent && !c.blobs.absent.is_empty()) =>
            {
                Err(BackupError::Unusable {
                    name: m.name.clone(),
                    reason: reason.clone().unwrap_or_default(),
                })
            }
            other => other,
        };
        let now = self.now();
        let verification = Verification {
            format: FORMAT_VERSION,
            verified_at: rfc3339(now),
            verified_at_ms: unix_ms(now),
            result: if reason.is_some() {
                VerifyResult::Corrupt
            } else {
                VerifyResult::Ok
            },
            reason,
            media_hashed: hashed,
            media_total: total as u64,
        };
        let body = serde_json::to_vec_pretty(&verification).unwrap_or_default();
        let recorded = self
            .inner
            .target
            .storage
            .put(
                &keys::backup_file(name.as_str(), VERIFICATION_FILE),
                body.into(),
            )
            .await;
        match recorded {
            Ok(()) => (result, Some(verification)),
            Err(e) => {
                tracing::warn!(name = %m.name, error = format!("{:#}", anyhow::Error::from(e)), "cannot record the verification in the target");
                (result, None)
            }
        }
    }

    /// `NAME` or `latest` (the newest good backup).
    pub async fn resolve(&self, which: &str) -> Result<Manifest, BackupError> {
        if which == "latest" {
            return self
                .newest_good()
                .await?
                .ok_or_else(|| BackupError::NotFound("latest (there is no good backup)".into()));
        }
        let name = BackupName::parse(which)?;
        match self.manifest(&name).await {
            Err(BackupError::NotFound(n)) => {
                let failed = self
                    .inner
                    .target
                    .storage
                    .get(&keys::backup_file(name.as_str(), FAILURE_FILE))
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice::<FailureRecord>(&b).ok());
                match failed {
                    Some(f) => Err(BackupError::Unusable {
                        name: n,
                        reason: format!("that backup failed: {}", f.error),
                    }),
                    None => Err(BackupError::NotFound(n)),
                }
            }
            other => other,
        }
    }

    /// Downloads the snapshot to a temp dir in `data.dir` and checks it end to end; the
    /// returned dir holds `aimake.db` ready to move into place.
    async fn fetch_checked(&self, m: &Manifest) -> Result<(tempfile::TempDir, u32), BackupError> {
        let tmp = temp_dir(&self.inner.data_dir, ".restore-")?;
        let compressed = tmp.path().join(SNAPSHOT_FILE);
        let name = BackupName::parse(&m.name)?;
        if m.db.file != SNAPSHOT_FILE || m.db.compression != "zstd" {
            return Err(BackupError::Unusable {
                name: m.name.clone(),
                reason: format!("unknown snapshot {} ({})", m.db.file, m.db.compression),
            });
        }
        match self
            .inner
            .target
            .storage
            .get_to_file(
                &keys::backup_file(name.as_str(), SNAPSHOT_FILE),
                &compressed,
            )
            .await
        {
            Ok(_) => {}
            Err(StorageError::NotFound(_)) => {
                return Err(BackupError::Unusable {
                    name: m.name.clone(),
                    reason: format!(
                        "its database snapshot {} is missing from the target",
                        keys::backup_file(name.as_str(), SNAPSHOT_FILE)
                    ),
                });
            }
            Err(e) => return Err(e.into()),
        }
        let out = tmp.path().join("aimake.db");
        let db = m.db.clone();
        let schema = m.schema_version;
        let span = tracing::Span::current();
        let checked = tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            snapshot::unpack_and_check(
                &compressed,
                &out,
                &snapshot::Expected {
                    stored_bytes: db.stored_bytes,
                    stored_sha256: &db.stored_sha256,
                    size_bytes: db.size_bytes,
                    sha256: &db.sha256,
                    schema_version: schema,
                },
            )
        })
        .await
        .context("verify task failed")?;
        match checked {
            Ok(v) => Ok((tmp, v)),
            Err(snapshot::Unusable::Bad(reason)) => Err(BackupError::Unusable {
                name: m.name.clone(),
                reason: format!(
                    "snapshot {}: {reason}",
                    keys::backup_file(name.as_str(), SNAPSHOT_FILE)
                ),
            }),
            Err(snapshot::Unusable::Io(e)) => Err(e.into()),
        }
    }

    /// The manifest's media entries whose blob the target does not hold (or holds at the
    /// wrong size).
    async fn missing_blobs(&self, m: &Manifest) -> Result<Vec<MediaEntry>, BackupError> {
        let held: std::collections::HashMap<String, u64> = self
            .inner
            .target
            .storage
            .list(&keys::backup_media_prefix())
            .await?
            .into_iter()
            .filter_map(|o| {
                let sha = o.key.as_str().rsplit('/').next()?.to_string();
                Some((sha, o.size))
            })
            .collect();
        Ok(m.media
            .iter()
            .filter(|e| held.get(&e.sha256) != Some(&e.size_bytes))
            .cloned()
            .collect())
    }

    /// Checksums of the snapshot, `PRAGMA integrity_check` on a temp copy, the schema
    /// version, and every media blob read back and hashed. The outcome is recorded beside
    /// the set (`backup list` shows it); `Unusable` names the snapshot or the first bad blob.
    pub async fn verify(&self, which: &str) -> Result<VerifyReport, BackupError> {
        let m = self.resolve(which).await?;
        let checked = self.check(&m, MediaScope::All).await;
        let checked = self.settle(&m, checked, true, false).await.0?;
        Ok(VerifyReport {
            name: m.name,
            schema_version: checked.schema_version,
            db_size_bytes: m.db.size_bytes,
            media_checked: checked.blobs.hashed,
        })
    }

    /// Applies retention as of `now` (see `plan_prune`), then removes unreferenced blobs.
    pub async fn prune(&self, now: Option<OffsetDateTime>) -> Result<PruneReport, BackupError> {
        let _guard = self.lock().await?;
        let now = now.unwrap_or_else(|| self.inner.clock.now());
        self.prune_locked(now).await
    }

    async fn prune_locked(&self, now: OffsetDateTime) -> Result<PruneReport, BackupError> {
        let sets = self.sets().await?;
        let summary: Vec<SetSummary> = sets
            .iter()
            .map(|(name, state)| SetSummary {
                name: name.to_string(),
                kind: match state {
                    SetState::Good(m) => SetKind::Good(m.trigger),
                    SetState::Failed(_) => SetKind::Failed,
                    SetState::Incomplete => SetKind::Incomplete,
                },
                created_at_ms: match state {
                    SetState::Good(m) => m.created_at_ms,
                    SetState::Failed(f) => f.created_at_ms,
                    SetState::Incomplete => 0,
                },
            })
            .collect();
        let doomed: HashSet<String> = plan_prune(&summary, unix_ms(now), self.inner.keep_days)
            .into_iter()
            .collect();
        let mut report = PruneReport::default();
        let mut referenced = HashSet::new();
        for (name, state) in &sets {
            if doomed.contains(name.as_str()) {
                self.inner
                    .target
                    .storage
                    .delete_prefix(&keys::backup_set(name.as_str()))
                    .await?;
                match state {
                    SetState::Incomplete => report.incomplete.push(name.to_string()),
                    _ => report.deleted.push(name.to_string()),
                }
            } else if let SetState::Good(m) = state {
                referenced.extend(m.media.iter().map(|e| e.sha256.clone()));
            }
        }
        report.blobs_removed =
            media::collect_garbage(&self.inner.target.storage, &referenced).await?;
        Ok(report)
    }

    /// Removes one set (any trigger) and the blobs only it referred to.
    pub async fn delete(&self, name: &str) -> Result<PruneReport, BackupError> {
        let name = BackupName::parse(name)?;
        let _guard = self.lock().await?;
        let sets = self.sets().await?;
        if !sets.iter().any(|(n, _)| *n == name) {
            return Err(BackupError::NotFound(name.to_string()));
        }
        self.inner
            .target
            .storage
            .delete_prefix(&keys::backup_set(name.as_str()))
            .await?;
        let referenced: HashSet<String> = sets
            .iter()
            .filter(|(n, _)| *n != name)
            .filter_map(|(_, s)| match s {
                SetState::Good(m) => Some(m.media.iter().map(|e| e.sha256.clone())),
                _ => None,
            })
            .flatten()
            .collect();
        Ok(PruneReport {
            deleted: vec![name.to_string()],
            incomplete: Vec::new(),
            blobs_removed: media::collect_garbage(&self.inner.target.storage, &referenced).await?,
        })
    }

    fn main(&self) -> &Storage {
        &self.inner.main
    }

    fn db_path(&self) -> &Path {
        &self.inner.db_path
    }

    fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetKind {
    Good(Trigger),
    Failed,
    Incomplete,
}

#[derive(Debug, Clone)]
struct SetSummary {
    name: String,
    kind: SetKind,
    created_at_ms: i64,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The sets retention removes at `now_ms`: scheduled backups and failure records older than
/// `keep_days` (0 keeps them all), and incomplete sets (the caller holds the lock, so none is
/// still being written). Manual backups and the newest good backup are always kept.
fn plan_prune(sets: &[SetSummary], now_ms: i64, keep_days: u32) -> Vec<String> {
    let newest_good = sets
        .iter()
        .filter(|s| matches!(s.kind, SetKind::Good(_)))
        .max_by_key(|s| (s.created_at_ms, s.name.clone()))
        .map(|s| s.name.clone());
    let cutoff = now_ms - i64::from(keep_days) * DAY_MS;
    sets.iter()
        .filter(|s| {
            let expired = keep_days > 0 && s.created_at_ms < cutoff;
            match s.kind {
                SetKind::Incomplete => true,
                SetKind::Failed => expired,
                SetKind::Good(Trigger::Manual) => false,
                SetKind::Good(Trigger::Scheduled) => {
                    expired && newest_good.as_deref() != Some(s.name.as_str())
                }
            }
        })
        .map(|s| s.name.clone())
        .collect()
}

/// Snapshots are staged here, in `data.dir`, which has room for the database by definition
/// (a tmpfs `/tmp` may not).
const BACKUP_TEMP_PREFIX: &str = ".backup-";

/// Staging dirs left by a process that died mid-backup. Only called under the backup lock,
/// so none of them is in use.
fn remove_stale_temp_dirs(data_dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn temp_dir(data_dir: &Path, prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(data_dir)
        .with_context(|| format!("cannot create a temp dir in {}", data_dir.display()))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// `before` updated with backups listed newest first: the newest good one's time, and
/// whether the newest of all failed.
fn last_backup_of(newest_first: &[BackupInfo], before: LastBackup) -> LastBackup {
    let last_ok_ms = newest_first
        .iter()
        .find(|b| b.status == Status::Ok)
        .map(|b| b.created_at_ms)
        .max(before.last_ok_ms);
    match newest_first.first() {
        Some(newest) => LastBackup {
            last_ok_ms,
            failed: newest.status == Status::Failed,
        },
        None => before,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_shape_and_reject_paths() {
        let at = time::macros::datetime!(2026-11-03 03:00:07 UTC);
        assert_eq!(BackupName::at(at, 1).as_str(), "aimake-20261103T030007Z");
        assert_eq!(BackupName::at(at, 2).as_str(), "aimake-20261103T030007Z-2");
        for good in ["aimake-20261103T030007Z", "aimake-20261103T030007Z-12"] {
            BackupName::parse(good).unwrap();
        }
        for bad in [
            "aimake-20261103T030007Z/../x",
            "../aimake-20261103T030007Z",
            "aimake-2026110T030007Z",
            "aimake-20261103T030007Z-",
            "media",
            "latest",
            "",
        ] {
            assert!(BackupName::parse(bad).is_err(), "{bad}");
        }
    }

    fn set(name: &str, kind: SetKind, day: i64) -> SetSummary {
        SetSummary {
            name: name.into(),
            kind,
            created_at_ms: day * DAY_MS,
        }
    }

    #[test]
    fn retention_drops_old_scheduled_sets_but_keeps_manual_and_the_newest_good_one() {
        let sched = SetKind::Good(Trigger::Scheduled);
        let sets = vec![
            set("s0", sched, 0),
            set("m5", SetKind::Good(Trigger::Manual), 5),
            set("s20", sched, 20),
            set("f21", SetKind::Failed, 21),
            set("s40", sched, 40),
            set("i41", SetKind::Incomplete, 41),
        ];
        let mut doomed = plan_prune(&sets, 45 * DAY_MS, 30);
        doomed.sort();
        assert_eq!(doomed, ["i41", "s0"]);

        // Long after the last backup: only the newest good one and the manual one remain.
        let mut doomed = plan_prune(&sets, 200 * DAY_MS, 30);
        doomed.sort();
        assert_eq!(doomed, ["f21", "i41", "s0", "s20"]);

        assert_eq!(
            plan_prune(&sets, 200 * DAY_MS, 0),
            ["i41"],
            "keep_days = 0 keeps everything"
        );
    }
}
