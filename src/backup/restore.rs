//! `aimake restore`: verify a backup completely, put its missing media back, then swap the
//! database file in atomically, keeping the current one beside it.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{BackupError, Backups, media};
use crate::config::{Config, litestream_sidecar};
use crate::db::migrations;
use crate::lockfile::{LockFile, SERVER_LOCK};
use crate::storage::Storage;

#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreOptions {
    /// Verify everything and say what would happen, change nothing.
    pub dry_run: bool,
    /// Leave media alone (restore the database only).
    pub skip_media: bool,
}

/// What a restore is about to do, shown before it is confirmed.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    pub name: String,
    pub created_at: String,
    pub schema_version: u32,
    pub db_size_bytes: u64,
    pub live_db: PathBuf,
    /// Where the current database will be kept; `None` when there is none.
    pub keep_as: Option<PathBuf>,
    pub media_total: u64,
    /// Objects of the backup the main store lacks (0 with `skip_media`).
    pub media_missing: u64,
}

#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub plan: RestorePlan,
    /// False for a dry run.
    pub restored: bool,
    pub media_restored: u64,
}

/// Restores `which` (a name or `latest`) into `config.data.dir`. Refuses while a server
/// holds the data dir, and changes nothing unless the whole backup checks out and `confirm`
/// agrees to the plan.
pub async fn restore(
    config: &Config,
    which: &str,
    opts: RestoreOptions,
    confirm: impl FnOnce(&RestorePlan) -> bool,
) -> Result<RestoreReport, BackupError> {
    let data_dir = config.data.dir.clone();
    let lock_path = data_dir.join(SERVER_LOCK);
    // Held to the end, so a server cannot start on a half-restored data dir either.
    let _server = tokio::task::spawn_blocking(move || LockFile::try_acquire(&lock_path))
        .await
        .context("lock task failed")??
        .map_err(|held| BackupError::ServerRunning(held.to_string()))?;
    let main = Storage::from_config(config)?;
    let backups = Backups::from_config(config, main, None)?;
    restore_with(&backups, which, opts, confirm).await
}

/// The restore itself, for callers that already built the service and hold the server lock.
pub async fn restore_with(
    backups: &Backups,
    which: &str,
    opts: RestoreOptions,
    confirm: impl FnOnce(&RestorePlan) -> bool,
) -> Result<RestoreReport, BackupError> {
    let _guard = backups.lock().await?;
    let m = backups.resolve(which).await?;
    let latest = migrations::latest_version();
    if m.schema_version > latest {
        return Err(BackupError::Unusable {
            name: m.name.clone(),
            reason: format!(
                "it holds schema version {}, newer than this aimake knows ({latest}): restore it with a newer aimake",
                m.schema_version
            ),
        });
    }
    // The whole set is checked, media blobs read back and hashed, dry run or not; the
    // outcome is recorded like a `backup verify`.
    let scope = if opts.skip_media {
        super::MediaScope::Skip
    } else {
        super::MediaScope::All
    };
    let checked = backups.check(&m, scope).await;
    let checked = backups
        .settle(&m, checked, !opts.skip_media, true)
        .await
        .0?;
    let (tmp, schema_version) = (checked.tmp, checked.schema_version);

    let missing = if opts.skip_media {
        Vec::new()
    } else {
        let missing = media::missing_from_main(backups.main(), &m.media).await?;
        let absent = &checked.blobs.absent;
        if let Some(lost) = missing
            .iter()
            .find(|e| absent.iter().any(|a| a.sha256 == e.sha256))
        {
            return Err(BackupError::Unusable {
                name: m.name.clone(),
                reason: format!(
                    "media object {} is missing from the store and from the backup target",
                    lost.key
                ),
            });
        }
        missing
    };

    let live_db = backups.db_path().to_path_buf();
    let stamp = super::BackupName::at(backups.now(), 1)
        .as_str()
        .trim_start_matches("aimake-")
        .to_string();
    let plan = RestorePlan {
        name: m.name.clone(),
        created_at: m.created_at.clone(),
        schema_version,
        db_size_bytes: m.db.size_bytes,
        keep_as: live_db
            .exists()
            .then(|| sibling(&live_db, &format!(".pre-restore-{stamp}"))),
        live_db,
        media_total: m.media.len() as u64,
        media_missing: missing.len() as u64,
    };
    if opts.dry_run {
        return Ok(RestoreReport {
            plan,
            restored: false,
            media_restored: 0,
        });
    }
    if !confirm(&plan) {
        return Err(BackupError::Cancelled);
    }

    // Media first: it only adds objects, so a failure here leaves the database as it was.
    let media_restored = media::restore(backups.main(), backups.target(), &missing).await?;

    let restored = tmp.path().join("aimake.db");
    let (live, keep) = (plan.live_db.clone(), plan.keep_as.clone());
    tokio::task::spawn_blocking(move || swap_in(&restored, &live, keep.as_deref()))
        .await
        .context("restore task failed")??;
    tracing::info!(
        name = %plan.name,
        kept_as = plan.keep_as.as_ref().map(|p| p.display().to_string()),
        media_restored,
        "database restored"
    );
    Ok(RestoreReport {
        plan,
        restored: true,
        media_restored,
    })
}

/// `aimake.db` + suffix → `aimake.db.pre-restore-…`, and the same for `-wal`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Moves `restored` over `live`. The current database is folded into one file first (WAL
/// checkpoint) and kept as `keep_as`; leftover `-wal`/`-shm` files go with it, so SQLite can
/// never replay the old WAL onto the restored file. So does Litestream's state
/// (`.aimake.db-litestream`): it describes the replaced file's WAL, and Litestream, started
/// again, takes the restored file as a new database and snapshots it to the replica.
/// The checkpoint is SQLite's own file handling (SQLite-specific by nature, like
/// `snapshot.rs`), so it is run here rather than through `db/`.
fn swap_in(restored: &Path, live: &Path, keep_as: Option<&Path>) -> anyhow::Result<()> {
    if let Some(keep) = keep_as {
        match rusqlite::Connection::open(live).and_then(|c| {
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            c.close().map_err(|(_, e)| e)
        }) {
            Ok(()) => {}
            // A damaged live database is a reason to restore: keep its WAL beside the copy.
            Err(e) => tracing::warn!(error = %e, "cannot checkpoint the current database"),
        }
        std::fs::hard_link(live, keep)
            .or_else(|_| std::fs::copy(live, keep).map(|_| ()))
            .with_context(|| format!("cannot keep the current database as {}", keep.display()))?;
        for (from, to) in ["-wal", "-shm"]
            .map(|ext| (sibling(live, ext), sibling(keep, ext)))
            .into_iter()
            .chain([(litestream_sidecar(live), litestream_sidecar(keep))])
        {
            if from.exists() {
                std::fs::rename(&from, to)
                    .with_context(|| format!("cannot move {} aside", from.display()))?;
            }
        }
    } else {
        for ext in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(sibling(live, ext));
        }
        let _ = std::fs::remove_dir_all(litestream_sidecar(live));
    }
    std::fs::File::open(restored)
        .and_then(|f| f.sync_all())
        .context("cannot sync the restored database")?;
    // Same directory, same filesystem: the rename replaces the file in one step.
    std::fs::rename(restored, live)
        .with_context(|| format!("cannot move the restored database to {}", live.display()))?;
    if let Some(dir) = live.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}
