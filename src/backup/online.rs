//! SQLite's online backup API run step by step on the app's writer connection.
//!
//! A backup restarts from page one whenever a *different* connection writes the source;
//! writes through the connection that runs the backup are copied into the destination as
//! they commit instead. So the steps run on the single writer: each step holds the writer
//! for a few hundred pages, queued writes run between steps, and the copy still finishes
//! under a steady writer. What it holds when it finishes is the database as of its last
//! step, every commit before that included.

use std::ffi::CStr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use rusqlite::{Connection, OpenFlags, ffi};

use crate::db::Db;

/// How much one step copies. 4 KiB pages: 1 MiB per step keeps a step around a millisecond
/// (`benches/backup.rs`), so it is the most a queued write waits for the copy.
pub const PAGES_PER_STEP: i32 = 256;

/// A write from another process (`aimake migrate`, a second tool) sends the copy back to
/// page one; past this many restarts the caller falls back to a snapshot that cannot restart.
const MAX_RESTARTS: u32 = 3;

/// How long a step waits when another process holds a lock the step needs.
const BUSY_PAUSE: Duration = Duration::from_millis(10);

/// What a finished copy did.
#[derive(Debug, Clone, Default)]
pub struct CopyStats {
    pub pages: u64,
    pub steps: u64,
    pub restarts: u32,
    /// The longest time one step held the writer.
    pub longest_step: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Other processes kept writing the database; nothing usable was written.
    #[error("the online copy restarted {0} times because another process kept writing")]
    Restarted(u32),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Copies the database behind `db` into a new file at `dest`, `pages_per_step` pages at a
/// time, each step on the writer connection. Blocks: call it from a blocking thread.
pub fn copy(db: &Db, dest: &Path, pages_per_step: i32) -> Result<CopyStats, CopyError> {
    copy_with(db, dest, pages_per_step, || {})
}

/// `copy`, running `between` after every step (tests write from elsewhere there).
fn copy_with(
    db: &Db,
    dest: &Path,
    pages_per_step: i32,
    mut between: impl FnMut(),
) -> Result<CopyStats, CopyError> {
    if dest.exists() {
        return Err(anyhow::anyhow!("{} already exists", dest.display()).into());
    }
    let dest_conn = Connection::open_with_flags(
        dest,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot create {}", dest.display()))?;
    // A scratch file: it is compressed and deleted, and a crash leaves nothing to recover,
    // so no journal and no fsync (an fsync of a whole database's pages is exactly the disk
    // traffic that delays the writer's own WAL syncs).
    dest_conn
        .execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        .context("cannot set up the copy")?;
    let backup = Backup::start(db, dest_conn)?;
    let mut stats = CopyStats::default();
    let mut copied_before = 0;
    loop {
        let (outcome, took) = db.write_blocking(|_writer| {
            let started = Instant::now();
            let outcome = backup.step(pages_per_step);
            (outcome, started.elapsed())
        });
        stats.steps += 1;
        stats.longest_step = stats.longest_step.max(took);
        match outcome? {
            Step::Done { pages } => {
                stats.pages = pages;
                break;
            }
            Step::More { copied } => {
                // Each step moves on by its pages; a write from another connection starts
                // the copy over, and its step then ends at or before where the last one did.
                if copied <= copied_before {
                    stats.restarts += 1;
                    tracing::warn!(restarts = stats.restarts, "the online copy restarted");
                    if stats.restarts > MAX_RESTARTS {
                        return Err(CopyError::Restarted(stats.restarts));
                    }
                }
                copied_before = copied;
            }
            Step::Busy => std::thread::sleep(BUSY_PAUSE),
        }
        between();
    }
    backup
        .finish()
        .context("finishing the online copy failed")?;
    Ok(stats)
}

enum Step {
    More { copied: u64 },
    Done { pages: u64 },
    Busy,
}

/// An `sqlite3_backup` from the writer connection into a connection of its own.
///
/// SAFETY, for every `unsafe` block below. The handle points into two connections: the
/// writer, which lives as long as `Db` does (`source` keeps it alive), and `dest`, owned
/// here and closed only after the handle is released (`Drop` releases it, and fields drop
/// after `drop` runs). Both connections are opened without SQLite's mutexes, so nothing of
/// theirs may run on two threads at once. The writer's commits touch the backup (they copy
/// the pages they change into `dest`) and every commit happens under the writer lock; so
/// the handle is only used under that lock too, and `dest` is used nowhere else.
struct Backup {
    handle: *mut ffi::sqlite3_backup,
    dest: Connection,
    source: Db,
}

impl Backup {
    fn start(db: &Db, dest: Connection) -> anyhow::Result<Self> {
        let handle = db.write_blocking(|writer| unsafe {
            ffi::sqlite3_backup_init(
                dest.handle(),
                c"main".as_ptr(),
                writer.handle(),
                c"main".as_ptr(),
            )
        });
        if handle.is_null() {
            anyhow::bail!("cannot start the online copy: {}", errmsg(&dest));
        }
        Ok(Self {
            handle,
            dest,
            source: db.clone(),
        })
    }

    /// Copies up to `pages` more pages. Must run under the writer lock.
    fn step(&self, pages: i32) -> anyhow::Result<Step> {
        let rc = unsafe { ffi::sqlite3_backup_step(self.handle, pages) };
        let (total, remaining) = unsafe {
            (
                ffi::sqlite3_backup_pagecount(self.handle),
                ffi::sqlite3_backup_remaining(self.handle),
            )
        };
        match rc {
            ffi::SQLITE_OK => Ok(Step::More {
                copied: (total - remaining).max(0) as u64,
            }),
            ffi::SQLITE_DONE => Ok(Step::Done {
                pages: total.max(0) as u64,
            }),
            ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED => Ok(Step::Busy),
            _ => anyhow::bail!(
                "online copy step failed: {} ({})",
                ffi::Error::new(rc),
                errmsg(&self.dest)
            ),
        }
    }

    /// Releases the handle; the error of a failed step, if any.
    fn finish(mut self) -> anyhow::Result<()> {
        match self.release() {
            ffi::SQLITE_OK => Ok(()),
            rc => anyhow::bail!("{} ({})", ffi::Error::new(rc), errmsg(&self.dest)),
        }
    }

    fn release(&mut self) -> std::ffi::c_int {
        let handle = std::mem::replace(&mut self.handle, std::ptr::null_mut());
        if handle.is_null() {
            return ffi::SQLITE_OK;
        }
        self.source
            .write_blocking(|_writer| unsafe { ffi::sqlite3_backup_finish(handle) })
    }
}

impl Drop for Backup {
    /// Reached without `finish` when a copy gives up or a step panics.
    fn drop(&mut self) {
        self.release();
    }
}

fn errmsg(conn: &Connection) -> String {
    unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(conn.handle())) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

    use super::*;
    use crate::backup::snapshot::check_database;

    /// The app's database with a few MB in `filler` and an empty `writes` table.
    async fn filled_db(dir: &Path) -> Db {
        let db = Db::open(&dir.join("live.db")).unwrap();
        db.write(|c| {
            c.execute_batch(
                "CREATE TABLE filler (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
                 CREATE TABLE writes (n INTEGER PRIMARY KEY);",
            )?;
            let tx = c.transaction()?;
            for i in 0..4_000 {
                tx.execute(
                    "INSERT INTO filler (body) VALUES (?1)",
                    [format!("row {i} ").repeat(60)],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
        .unwrap();
        db
    }

    fn writes(path: &Path) -> (i64, i64) {
        Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT count(*), coalesce(max(n), -1) FROM writes",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_copy_made_while_the_writer_commits_holds_every_commit_before_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let db = filled_db(dir.path()).await;
        let committed = Arc::new(AtomicI64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (db, committed, stop) = (db.clone(), committed.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let committed = committed.clone();
                    // Counted on the writer, before it is released: the copy's steps need the
                    // writer too, so the count is never behind what a step can see.
                    db.write(move |c| {
                        c.execute("INSERT INTO writes (n) VALUES (?1)", [n])?;
                        committed.store(n + 1, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
                    .unwrap();
                    n += 1;
                }
            })
        };
        while committed.load(Ordering::SeqCst) < 10 {
            tokio::task::yield_now().await;
        }
        let before = committed.load(Ordering::SeqCst);
        let out = dir.path().join("copy.db");
        let (source, dest, seen) = (db.clone(), out.clone(), committed.clone());
        // Few pages per step: hundreds of steps. After each of the first few, wait for the
        // writer to commit once more, so commits surely land between steps however busy the
        // machine is.
        let mut steps = 0;
        let stats = tokio::task::spawn_blocking(move || {
            copy_with(&source, &dest, 4, move || {
                steps += 1;
                if steps <= 5 {
                    let at = seen.load(Ordering::SeqCst);
                    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
                    while seen.load(Ordering::SeqCst) == at && std::time::Instant::now() < give_up {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
            })
        })
        .await
        .unwrap()
        .unwrap();
        let after = committed.load(Ordering::SeqCst);
        stop.store(true, Ordering::Relaxed);
        writer.await.unwrap();

        assert!(stats.steps > 100, "{stats:?}");
        assert_eq!(stats.restarts, 0, "its own writer never restarts the copy");
        assert!(
            after > before,
            "the writer committed during the copy ({before} → {after})"
        );
        assert!(
            check_database(&out).is_ok(),
            "the copy passes integrity_check"
        );
        let (rows, max) = writes(&out);
        assert_eq!(
            max + 1,
            rows,
            "the copy holds an unbroken prefix of the commits"
        );
        assert!(
            (before..=after).contains(&rows),
            "{rows} rows: every commit before the copy started and none after it ended \
             ({before}..={after})"
        );
        let filler: i64 = Connection::open(&out)
            .unwrap()
            .query_row("SELECT count(*) FROM filler", [], |r| r.get(0))
            .unwrap();
        assert_eq!(filler, 4_000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_from_another_connection_restart_the_copy_until_it_gives_up() {
        let dir = tempfile::tempdir().unwrap();
        let db = filled_db(dir.path()).await;
        let other = Connection::open(db.path()).unwrap();
        let out = dir.path().join("copy.db");
        let source = db.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut n = 0;
            copy_with(&source, &out, 64, || {
                other
                    .execute("INSERT INTO writes (n) VALUES (?1)", [n])
                    .unwrap();
                n += 1;
            })
        })
        .await
        .unwrap();
        assert!(
            matches!(result, Err(CopyError::Restarted(n)) if n == MAX_RESTARTS + 1),
            "{result:?}"
        );
        // The writer was released: it still commits.
        db.write(|c| Ok(c.execute("INSERT INTO writes (n) VALUES (-1)", [])?))
            .await
            .unwrap();
    }
}
