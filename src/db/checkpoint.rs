//! Checkpoints run on a thread of their own instead of inside some write.
//!
//! SQLite's default is that the commit which takes the WAL past 1,000 pages copies the WAL back
//! into the database and syncs it before returning: that request waits for the disk. After a
//! long read transaction (`aimake backup` from a shell runs `VACUUM INTO`) the WAL has grown
//! with every commit meanwhile, and the unlucky commit syncs all of it (120 ms on a 1 GB
//! database under a busy writer, `benches/backup.rs`). Here the writer only signals when the
//! WAL is long; a checkpointer with its own connection copies it back in passive mode, which
//! never blocks the writer or readers, and the writer starts the WAL over once everything in
//! it is in the database.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;

/// The WAL length, in pages, that asks for a checkpoint (SQLite's own default).
pub const WAL_PAGES: i32 = 1000;

/// How long a clean stop waits for other connections (a backup from another process, say) to
/// stop reading from the WAL so it can be emptied.
const TRUNCATE_PATIENCE: Duration = Duration::from_secs(3);

enum Signal {
    Checkpoint,
    Stop,
}

/// The checkpointer thread; stopped and joined on drop, so the database's files are settled
/// when the last handle goes.
pub struct Checkpointer {
    signal: SyncSender<Signal>,
    thread: Option<JoinHandle<()>>,
    done: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Starts the thread and hooks `writer`'s commits to it (which turns off the writer's own
    /// automatic checkpoints).
    pub fn start(path: &Path, writer: &mut Connection) -> anyhow::Result<Self> {
        let conn = super::open_connection(path, false)?;
        let (signal, signals) = sync_channel(1);
        let done = Arc::new(AtomicU64::new(0));
        let thread = {
            let done = done.clone();
            std::thread::Builder::new()
                .name("db-checkpoint".into())
                .spawn(move || run(&conn, &signals, &done))?
        };
        let hook = signal.clone();
        writer.wal_hook(Some(move |_: &mut Wal, pages: i32| {
            if pages >= WAL_PAGES {
                // A full channel means a checkpoint is asked for already; a closed one, that
                // the database is closing.
                let _ = hook.try_send(Signal::Checkpoint);
            }
            Ok(())
        }))?;
        Ok(Self {
            signal,
            thread: Some(thread),
            done,
        })
    }

    /// How many checkpoints have run.
    pub fn checkpoints(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

fn run(conn: &Connection, signals: &Receiver<Signal>, done: &AtomicU64) {
    while let Ok(Signal::Checkpoint) = signals.recv() {
        match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
            Ok((log, copied)) => tracing::debug!(log, copied, "database checkpoint"),
            Err(e) => tracing::warn!(error = %e, "database checkpoint failed"),
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Copies the whole WAL into the database, syncs it and empties the WAL file
/// (`wal_checkpoint(TRUNCATE)`), trying again while other connections still read from the WAL,
/// for up to [`TRUNCATE_PATIENCE`]. Returns whether the WAL is empty. Run on the writer
/// connection, so no write can slip in between.
pub fn truncate(conn: &Connection) -> anyhow::Result<bool> {
    let deadline = Instant::now() + TRUNCATE_PATIENCE;
    conn.busy_timeout(Duration::from_millis(100))?;
    let emptied = loop {
        // SQLite reports a checkpoint that readers held back as `busy = 1`, not as an error.
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy == 0 {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    conn.busy_timeout(super::BUSY_TIMEOUT)?;
    Ok(emptied)
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Blocks only while a checkpoint is queued; the thread takes it, then stops.
        let _ = self.signal.send(Signal::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
