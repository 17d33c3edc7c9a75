//! How much a backup stalls the single writer: `VACUUM INTO` and SQLite's online backup API
//! on a connection of their own (for comparison), the backup API stepped on the app's writer
//! connection (what the server uses), then whole backups (snapshot, zstd, upload) the way the
//! server and the `aimake backup` command take them.
//!
//! `cargo bench --bench backup` (or `make bench`); `AIMAKE_BENCH_DB_MB` sets the database size
//! (default 1024), `BENCH_ONLY=text` runs only the methods whose label contains `text`.
//! Under `cargo test` it only checks that it builds.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aimake::backup::{Backups, Trigger, online};
use aimake::config::Config;
use aimake::db::Db;
use aimake::storage::Storage;
use rusqlite::Connection;

#[path = "support/fill.rs"]
mod fill;
use fill::fill;

/// A stepped backup that keeps restarting under the writer is given up after this long
/// (the methods that finish take a few seconds).
const STEPPED_LIMIT: Duration = Duration::from_secs(30);

/// Writes that waited at least this long are listed with the time they started.
const SLOW: Duration = Duration::from_millis(40);

fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("backup bench: run it with `cargo bench --bench backup`");
        return Ok(());
    }
    let mb: usize = std::env::var("AIMAKE_BENCH_DB_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir_in(std::env::current_dir()?)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(dir.path(), mb))
}

async fn run(dir: &Path, mb: usize) -> anyhow::Result<()> {
    let db_path = dir.join("aimake.db");
    let db = Db::open(&db_path)?;
    let started = Instant::now();
    fill(&db, &db_path, mb).await?;
    let size = std::fs::metadata(&db_path)?.len();
    println!(
        "database: {:.0} MB, filled in {:.1} s",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:<38} {:>9} {:>8} {:>9} {:>10} {:>8} {:>8}",
        "method", "time", "MB/s", "commits", "max stall", "p99", "done"
    );

    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |label: &str| only.is_empty() || label.contains(only.as_str());
    let mb = size as f64 / 1e6;

    let label = "VACUUM INTO, own conn, sync FULL";
    if wanted(label) {
        let out = dir.join("vacuum-into.db");
        let (src_path, dst_path) = (db_path.clone(), out.clone());
        measure(&db, label, mb, move || {
            // The connection's default `synchronous` (FULL): the output is fsynced.
            let conn = Connection::open(&src_path)?;
            conn.execute("VACUUM INTO ?1", [dst_path.to_str().unwrap()])?;
            Ok(true)
        })
        .await?;
        std::fs::remove_file(&out)?;
    }

    let label = "VACUUM INTO, own conn, sync OFF";
    if wanted(label) {
        let out = dir.join("vacuum-into-nosync.db");
        let (src_path, dst_path) = (db_path.clone(), out.clone());
        measure(&db, label, mb, move || {
            let conn = Connection::open(&src_path)?;
            conn.execute_batch("PRAGMA synchronous = OFF")?;
            conn.execute("VACUUM INTO ?1", [dst_path.to_str().unwrap()])?;
            Ok(true)
        })
        .await?;
        std::fs::remove_file(&out)?;
    }

    let label = "backup API, own conn, one step";
    if wanted(label) {
        let out = dir.join("backup-one-step.db");
        let (src_path, dst_path) = (db_path.clone(), out.clone());
        measure(&db, label, mb, move || {
            let src = Connection::open(&src_path)?;
            let mut dst = Connection::open(&dst_path)?;
            let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
            backup.step(-1)?;
            Ok(true)
        })
        .await?;
        std::fs::remove_file(&out)?;
    }

    let label = "backup API, own conn, 256 pages/step";
    if wanted(label) {
        let out = dir.join("backup-stepped.db");
        let (src_path, dst_path) = (db_path.clone(), out.clone());
        measure(&db, label, mb, move || {
            let src = Connection::open(&src_path)?;
            let mut dst = Connection::open(&dst_path)?;
            let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
            let begun = Instant::now();
            loop {
                match backup.step(256)? {
                    rusqlite::backup::StepResult::Done => return Ok(true),
                    _ if begun.elapsed() > STEPPED_LIMIT => return Ok(false),
                    _ => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        })
        .await?;
        let _ = std::fs::remove_file(&out);
    }

    for pages in [online::PAGES_PER_STEP, 1024, 4096] {
        let label = format!("backup API, writer conn, {pages} p/step");
        if !wanted(&label) {
            continue;
        }
        let out = dir.join("backup-on-writer.db");
        let (writer, dst_path) = (db.clone(), out.clone());
        measure(&db, &label, mb, move || {
            online::copy(&writer, &dst_path, pages)?;
            Ok(true)
        })
        .await?;
        std::fs::remove_file(&out)?;
    }

    let mut config = Config::default();
    config.data.dir = dir.to_path_buf();
    config.backup.include_media = false;
    for (label, writer) in [
        ("aimake backup, server (writer conn)", Some(db.clone())),
        ("aimake backup, CLI (VACUUM INTO)", None),
    ] {
        if !wanted(label) {
            continue;
        }
        let main = Storage::from_config(&config)?;
        let backups = Backups::from_config(&config, main, writer)?;
        let report = Arc::new(std::sync::Mutex::new(None));
        let slot = report.clone();
        let handle = tokio::runtime::Handle::current();
        measure(&db, label, mb, move || {
            let r = handle.block_on(backups.run(Trigger::Manual))?;
            *slot.lock().unwrap() = Some(r);
            Ok(true)
        })
        .await?;
        if let Some(r) = report.lock().unwrap().take() {
            println!(
                "  stored {:.0} MB for a {:.0} MB database",
                r.info.size_bytes as f64 / 1e6,
                r.info.db_size_bytes as f64 / 1e6
            );
        }
    }
    Ok(())
}

/// Runs `snapshot` on a blocking thread while a writer commits one row at a time through
/// the app's single writer, and prints the writer's stalls.
async fn measure(
    db: &Db,
    label: &str,
    mb: f64,
    snapshot: impl FnOnce() -> anyhow::Result<bool> + Send + 'static,
) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        tokio::spawn(async move {
            let mut waits = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                db.write(|c| {
                    c.execute("INSERT INTO bench_writes (at) VALUES (1)", [])?;
                    Ok(())
                })
                .await?;
                waits.push((t, t.elapsed()));
            }
            anyhow::Ok(waits)
        })
    };
    let started = Instant::now();
    let done = tokio::task::spawn_blocking(snapshot).await??;
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let timed = writer.await??;
    // When the long waits happened, to line them up with the snapshot's phases.
    let slow: Vec<String> = timed
        .iter()
        .filter(|(_, w)| *w >= SLOW)
        .map(|(at, w)| {
            let at = at.saturating_duration_since(started).as_secs_f64() * 1e3;
            format!("{at:.0}ms+{:.0}", w.as_secs_f64() * 1e3)
        })
        .collect();
    let mut waits: Vec<Duration> = timed.into_iter().map(|(_, w)| w).collect();
    waits.sort();
    let max = waits.last().copied().unwrap_or_default();
    let p99 = waits
        .get(waits.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default();
    println!(
        "{label:<38} {:>7.2} s {:>8.0} {:>9} {:>8.1}ms {:>6.2}ms {:>8}",
        took.as_secs_f64(),
        mb / took.as_secs_f64(),
        waits.len(),
        max.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        if done { "yes" } else { "gave up" }
    );
    if !slow.is_empty() {
        let shown = slow.len().min(12);
        println!(
            "  waits >= {} ms (start+wait): {}{}",
            SLOW.as_millis(),
            slow[..shown].join(" "),
            if slow.len() > shown { " …" } else { "" }
        );
    }
    Ok(())
}
