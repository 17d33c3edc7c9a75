//! How much a backup stalls the single writer: `VACUUM INTO` against SQLite's online backup
//! API (stepped, and in one step), then a whole `aimake backup` (snapshot, zstd, upload).
//!
//! `cargo bench --bench backup` (or `make bench`); `AIMAKE_BENCH_DB_MB` sets the database size
//! (default 1024). Under `cargo test` it only checks that it builds.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aimake::backup::{Backups, Trigger};
use aimake::config::Config;
use aimake::db::Db;
use aimake::storage::Storage;
use rusqlite::Connection;

/// A stepped backup that keeps restarting under the writer is given up after this long.
const STEPPED_LIMIT: Duration = Duration::from_secs(120);

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
        "{:<34} {:>10} {:>9} {:>9} {:>9} {:>8}",
        "method", "time", "commits", "max stall", "p99", "done"
    );

    let out = dir.join("vacuum-into.db");
    let (src_path, dst_path) = (db_path.clone(), out.clone());
    measure(&db, "VACUUM INTO (own connection)", move || {
        let conn = Connection::open(&src_path)?;
        conn.execute("VACUUM INTO ?1", [dst_path.to_str().unwrap()])?;
        Ok(true)
    })
    .await?;
    std::fs::remove_file(&out)?;

    let out = dir.join("backup-one-step.db");
    let (src_path, dst_path) = (db_path.clone(), out.clone());
    measure(&db, "backup API, one step", move || {
        let src = Connection::open(&src_path)?;
        let mut dst = Connection::open(&dst_path)?;
        let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
        backup.step(-1)?;
        Ok(true)
    })
    .await?;
    std::fs::remove_file(&out)?;

    let out = dir.join("backup-stepped.db");
    let (src_path, dst_path) = (db_path.clone(), out.clone());
    measure(&db, "backup API, 256 pages per step", move || {
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

    let mut config = Config::default();
    config.data.dir = dir.to_path_buf();
    config.backup.include_media = false;
    let main = Storage::from_config(&config)?;
    let backups = Backups::from_config(&config, main)?;
    let report = Arc::new(std::sync::Mutex::new(None));
    let slot = report.clone();
    let handle = tokio::runtime::Handle::current();
    measure(&db, "aimake backup (snapshot+zstd+put)", move || {
        let r = handle.block_on(backups.run(Trigger::Manual))?;
        *slot.lock().unwrap() = Some(r);
        Ok(true)
    })
    .await?;
    if let Some(r) = report.lock().unwrap().take() {
        println!(
            "stored {:.0} MB for a {:.0} MB database",
            r.info.size_bytes as f64 / 1e6,
            r.info.db_size_bytes as f64 / 1e6
        );
    }
    Ok(())
}

/// Rows of varied text until the file reaches `mb` megabytes.
async fn fill(db: &Db, path: &Path, mb: usize) -> anyhow::Result<()> {
    db.write(|c| {
        c.execute_batch(
            "CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
             CREATE TABLE bench_writes (id INTEGER PRIMARY KEY, at INTEGER NOT NULL);",
        )?;
        Ok(())
    })
    .await?;
    let mut start = 0;
    while std::fs::metadata(path)?.len() < mb as u64 * 1_000_000 {
        db.write(move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare("INSERT INTO bench_rows (body) VALUES (?1)")?;
                for i in start..start + 20_000 {
                    let body: String = (0..24)
                        .map(|k| format!("{:08x}-{k} ", (i as u64).wrapping_mul(2654435761) ^ k))
                        .collect();
                    stmt.execute([body])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await?;
        start += 20_000;
    }
    Ok(())
}

/// Runs `snapshot` on a blocking thread while a writer commits one row at a time through
/// the app's single writer, and prints the writer's stalls.
async fn measure(
    db: &Db,
    label: &str,
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
                waits.push(t.elapsed());
            }
            anyhow::Ok(waits)
        })
    };
    let started = Instant::now();
    let done = tokio::task::spawn_blocking(snapshot).await??;
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut waits = writer.await??;
    waits.sort();
    let max = waits.last().copied().unwrap_or_default();
    let p99 = waits
        .get(waits.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default();
    println!(
        "{label:<34} {:>8.2} s {:>9} {:>7.1}ms {:>7.2}ms {:>8}",
        took.as_secs_f64(),
        waits.len(),
        max.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        if done { "yes" } else { "gave up" }
    );
    Ok(())
}
