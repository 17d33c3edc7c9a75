//! Backups and restore, each scenario against the main store and against a separate
//! S3-compatible bucket as the backup target.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aimake::backup::{
    BackupError, BackupInfo, Backups, RestoreOptions, Status, Trigger, VerifyResult, restore,
};
use aimake::config::Config;
use aimake::db::Db;
use aimake::error::AppError;
use aimake::ops::scheduler::{Clock, ManualClock};
use aimake::storage::{Key, Storage, keys};
use bytes::Bytes;
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use time::macros::datetime;
use ulid::Ulid;

use crate::helpers::{S3Server, TestApp, test_config};

/// Generous on purpose: a debug build on a shared 2-core machine. The real figure is
/// measured by `cargo bench --bench backup`.
const MAX_WRITER_STALL: Duration = Duration::from_secs(2);

#[derive(Clone, Copy)]
enum Kind {
    MainStore,
    S3,
}

struct Fixture {
    dir: tempfile::TempDir,
    config: Config,
    main: Storage,
    backups: Backups,
    clock: Arc<ManualClock>,
    _s3: Option<S3Server>,
}

impl Fixture {
    async fn new(kind: Kind) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        let s3 = match kind {
            Kind::MainStore => None,
            Kind::S3 => {
                let s3 = S3Server::start().await;
                s3.configure_backup(&mut config);
                Some(s3)
            }
        };
        let main = Storage::from_config(&config).unwrap();
        let clock = ManualClock::new(datetime!(2026-11-01 03:00:00 UTC));
        let backups = Backups::with_clock(&config, main.clone(), None, clock.clone()).unwrap();
        Self {
            dir,
            config,
            main,
            backups,
            clock,
            _s3: s3,
        }
    }

    fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("aimake.db")
    }

    /// The app's database with a `notes` table the tests fill.
    async fn open_db(&self) -> Db {
        let db = Db::open(&self.db_path()).unwrap();
        db.write(|c| {
            c.execute_batch(
                "CREATE TABLE IF NOT EXISTS notes (n INTEGER PRIMARY KEY, body TEXT NOT NULL)",
            )?;
            Ok(())
        })
        .await
        .unwrap();
        db
    }

    async fn put_audio(&self, body: &[u8]) -> Key {
        let key = keys::audio(Ulid::generate().into(), Ulid::generate().into(), "mp3");
        self.main
            .put(&key, Bytes::copy_from_slice(body))
            .await
            .unwrap();
        key
    }

    async fn blob_count(&self) -> usize {
        self.backups
            .target()
            .list(&keys::backup_media_prefix())
            .await
            .unwrap()
            .len()
    }

    fn yes() -> impl FnOnce(&aimake::backup::RestorePlan) -> bool {
        |_| true
    }
}

async fn insert_notes(db: &Db, from: i64, count: i64) {
    db.write(move |c| {
        let tx = c.transaction()?;
        for n in from..from + count {
            tx.execute(
                "INSERT INTO notes (n, body) VALUES (?1, ?2)",
                rusqlite::params![n, format!("note {n} ").repeat(40)],
            )?;
        }
        tx.commit()?;
        Ok(())
    })
    .await
    .unwrap();
}

fn note_stats(path: &std::path::Path) -> (i64, i64) {
    let conn = Connection::open(path).unwrap();
    conn.query_row(
        "SELECT count(*), coalesce(max(n), -1) FROM notes",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

fn integrity(path: &std::path::Path) -> String {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

macro_rules! on_both_targets {
    ($($name:ident),* $(,)?) => {
        mod main_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::MainStore).await
                }
            )*
        }
        mod s3_bucket {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::S3).await
                }
            )*
        }
    };
}

on_both_targets!(
    a_backup_taken_while_a_writer_inserts_restores_exactly_the_rows_committed_before_it,
    corrupted_truncated_or_too_new_backups_are_refused_and_the_live_database_is_untouched,
    a_set_without_a_manifest_is_not_listed_and_prune_removes_it,
    a_second_backup_copies_only_new_media,
    retention_keeps_manual_backups_and_the_newest_good_one_and_drops_unreferenced_media,
    restore_puts_back_media_missing_from_the_store,
    a_failed_backup_is_recorded_and_listed_with_its_error,
    only_one_backup_runs_at_a_time,
    a_flipped_byte_in_a_media_blob_or_the_snapshot_fails_verify_and_dry_run_naming_it,
);

async fn a_backup_taken_while_a_writer_inserts_restores_exactly_the_rows_committed_before_it(
    kind: Kind,
) {
    let f = Fixture::new(kind).await;
    let db = f.open_db().await;
    // A few MB of existing rows, so the snapshot takes long enough to overlap many commits.
    for batch in 0..8 {
        insert_notes(&db, 1_000_000 + batch * 2_000, 2_000).await;
    }
    db.write(|c| {
        c.execute_batch("CREATE TABLE writes (n INTEGER PRIMARY KEY)")?;
        Ok(())
    })
    .await
    .unwrap();

    let committed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, committed, stop) = (db.clone(), committed.clone(), stop.clone());
        tokio::spawn(async move {
            let mut max_stall = Duration::ZERO;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                db.write(move |c| {
                    c.execute("INSERT INTO writes (n) VALUES (?1)", [n as i64])?;
                    Ok(())
                })
                .await
                .unwrap();
                max_stall = max_stall.max(started.elapsed());
                n += 1;
                committed.store(n, Ordering::SeqCst);
            }
            (max_stall, n)
        })
    };
    while committed.load(Ordering::SeqCst) < 20 {
        tokio::task::yield_now().await;
    }
    // As the server takes it: on the writer connection the inserts go through.
    let backups =
        Backups::with_clock(&f.config, f.main.clone(), Some(db.clone()), f.clock.clone()).unwrap();
    let before = committed.load(Ordering::SeqCst);
    let report = backups.run(Trigger::Manual).await.unwrap();
    let after = committed.load(Ordering::SeqCst);
    while committed.load(Ordering::SeqCst) < after + 20 {
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    let (max_stall, total) = writer.await.unwrap();
    drop((db, backups));

    assert!(
        after > before,
        "the writer kept committing while the backup ran ({before} → {after})"
    );
    assert!(
        max_stall < MAX_WRITER_STALL,
        "a write waited {max_stall:?} during the backup"
    );
    assert_eq!(report.info.status, Status::Ok);
    assert!(report.info.size_bytes > 0 && report.info.size_bytes < report.info.db_size_bytes);

    let done = restore(
        &f.config,
        &report.info.name,
        RestoreOptions::default(),
        Fixture::yes(),
    )
    .await
    .unwrap();
    assert!(done.restored);
    let db_path = f.db_path();
    assert_eq!(integrity(&db_path), "ok");
    let conn = Connection::open(&db_path).unwrap();
    let (rows, max): (i64, i64) = conn
        .query_row(
            "SELECT count(*), coalesce(max(n), -1) FROM writes",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let rows = rows as u64;
    assert_eq!(
        max + 1,
        rows as i64,
        "the rows form one unbroken prefix of the commits"
    );
    assert!(
        (before..=after).contains(&rows),
        "the snapshot holds the {rows} rows committed before it, between {before} and {after}"
    );
    assert!(
        rows < total,
        "rows committed after the snapshot are not in it"
    );
    assert_eq!(note_stats(&db_path).0, 16_000);

    let kept = done.plan.keep_as.expect("the live database is kept");
    let old = Connection::open(&kept).unwrap();
    let old_rows: i64 = old
        .query_row("SELECT count(*) FROM writes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(old_rows as u64, total, "the kept database has every commit");
}

async fn corrupted_truncated_or_too_new_backups_are_refused_and_the_live_database_is_untouched(
    kind: Kind,
) {
    let f = Fixture::new(kind).await;
    let db = f.open_db().await;
    insert_notes(&db, 0, 300).await;
    let name = f.backups.run(Trigger::Manual).await.unwrap().info.name;
    insert_notes(&db, 300, 5).await;
    drop(db);
    let live_before = std::fs::read(f.db_path()).unwrap();

    let target = f.backups.target();
    let snap_key = Key::from_stored(format!("backups/{name}/db.sqlite.zst"));
    let manifest_key = Key::from_stored(format!("backups/{name}/manifest.json"));
    let good_snap = target.get(&snap_key).await.unwrap();
    let good_manifest = target.get(&manifest_key).await.unwrap();
    f.backups
        .verify(&name)
        .await
        .expect("the untouched backup verifies");

    // A flipped byte, a cut-off upload, damaged pages with matching checksums (a bad
    // snapshot written as is), and a backup from a newer aimake.
    let mut flipped = good_snap.to_vec();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x55;
    let truncated = good_snap.slice(..good_snap.len() / 2);
    let (damaged, damaged_manifest) = damage_pages(&good_snap, &good_manifest);
    let mut newer: serde_json::Value = serde_json::from_slice(&good_manifest).unwrap();
    newer["schema_version"] = 999.into();
    let cases: Vec<(&str, Bytes, Bytes, &str)> = vec![
        ("flipped", flipped.into(), good_manifest.clone(), "checksum"),
        ("truncated", truncated, good_manifest.clone(), "truncated"),
        ("damaged", damaged, damaged_manifest, "integrity check"),
        (
            "newer",
            good_snap.clone(),
            serde_json::to_vec(&newer).unwrap().into(),
            "newer",
        ),
    ];
    for (case, snap, manifest, reason) in cases {
        target.put(&snap_key, snap).await.unwrap();
        target.put(&manifest_key, manifest).await.unwrap();
        if case != "newer" {
            let err = f.backups.verify(&name).await.unwrap_err();
            assert!(
                matches!(err, BackupError::Unusable { .. }) && err.to_string().contains(reason),
                "{case}: verify said {err}"
            );
        }
        let err = restore(&f.config, &name, RestoreOptions::default(), Fixture::yes())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains(reason),
            "{case}: restore said {err}"
        );
        assert_eq!(
            std::fs::read(f.db_path()).unwrap(),
            live_before,
            "{case}: the live database is untouched"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("pre-restore") || n.starts_with(".restore-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(note_stats(&f.db_path()), (305, 304));
}

/// A snapshot whose pages are damaged but whose manifest checksums match it.
fn damage_pages(snapshot: &[u8], manifest: &[u8]) -> (Bytes, Bytes) {
    let mut db = zstd::decode_all(snapshot).unwrap();
    let mid = db.len() / 2;
    db[mid..mid + 4096].fill(0x5a);
    let stored = zstd::encode_all(&db[..], 3).unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    m["db"]["size_bytes"] = db.len().into();
    m["db"]["sha256"] = hex::encode(Sha256::digest(&db)).into();
    m["db"]["stored_bytes"] = stored.len().into();
    m["db"]["stored_sha256"] = hex::encode(Sha256::digest(&stored)).into();
    (stored.into(), serde_json::to_vec(&m).unwrap().into())
}

async fn a_set_without_a_manifest_is_not_listed_and_prune_removes_it(kind: Kind) {
    let f = Fixture::new(kind).await;
    drop(f.open_db().await);
    let good = f.backups.run(Trigger::Manual).await.unwrap().info.name;
    // What an interrupted backup leaves: a snapshot, no manifest.
    let orphan = Key::from_stored("backups/aimake-20261101T040000Z/db.sqlite.zst");
    f.backups
        .target()
        .put(&orphan, Bytes::from_static(b"half"))
        .await
        .unwrap();

    let listed: Vec<String> = f
        .backups
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(listed, std::slice::from_ref(&good));
    assert!(matches!(
        restore(
            &f.config,
            "aimake-20261101T040000Z",
            RestoreOptions::default(),
            Fixture::yes()
        )
        .await,
        Err(BackupError::NotFound(_))
    ));

    let report = f.backups.prune(None).await.unwrap();
    assert_eq!(report.incomplete, ["aimake-20261101T040000Z"]);
    assert!(report.deleted.is_empty());
    assert!(
        f.backups.target().head(&orphan).await.is_err(),
        "the orphan is gone"
    );
    f.backups.verify(&good).await.unwrap();
}

async fn a_second_backup_copies_only_new_media(kind: Kind) {
    let f = Fixture::new(kind).await;
    drop(f.open_db().await);
    for i in 0..3u8 {
        f.put_audio(&[i; 5000]).await;
    }
    let target = f.backups.target();
    let puts = target.objects_written();
    let first = f.backups.run(Trigger::Manual).await.unwrap();
    assert_eq!(first.info.media_count, 3);
    assert_eq!(first.media.copied, 3);
    assert_eq!(
        target.objects_written() - puts,
        5,
        "snapshot, three blobs, manifest"
    );

    f.clock.advance(time::Duration::minutes(1));
    f.put_audio(b"a new episode").await;
    // Same bytes as an existing object under a new key: stored once.
    f.put_audio(&[0u8; 5000]).await;
    let puts = target.objects_written();
    let second = f.backups.run(Trigger::Manual).await.unwrap();
    assert_eq!(second.info.media_count, 5);
    assert_eq!(second.media.copied, 1);
    assert_eq!(second.media.reused, 4);
    assert_eq!(
        target.objects_written() - puts,
        3,
        "snapshot, one new blob, manifest"
    );
    assert_eq!(f.blob_count().await, 4);
    assert_ne!(first.info.name, second.info.name);
}

async fn retention_keeps_manual_backups_and_the_newest_good_one_and_drops_unreferenced_media(
    kind: Kind,
) {
    let f = Fixture::new(kind).await;
    drop(f.open_db().await);
    let day0 = datetime!(2026-11-01 03:00:00 UTC);
    let at = |day: i64| day0 + time::Duration::days(day);
    f.put_audio(b"kept all along").await;

    f.clock.set(at(0));
    f.backups.run_scheduled(at(0)).await;
    f.clock.set(at(5));
    let short_lived = f.put_audio(b"only in early backups").await;
    let manual = f.backups.run(Trigger::Manual).await.unwrap().info.name;
    f.clock.set(at(10));
    f.backups.run_scheduled(at(10)).await;
    f.main.delete(&short_lived).await.unwrap();
    f.clock.set(at(20));
    f.backups.run_scheduled(at(20)).await;
    assert_eq!(f.blob_count().await, 2);

    f.clock.set(at(45));
    f.backups.run_scheduled(at(45)).await;
    let names = |items: Vec<BackupInfo>| -> Vec<(String, Trigger, Status)> {
        items
            .into_iter()
            .map(|b| (b.name, b.trigger, b.status))
            .collect()
    };
    assert_eq!(
        names(f.backups.list().await.unwrap()),
        [
            (
                "aimake-20261216T030000Z".to_string(),
                Trigger::Scheduled,
                Status::Ok
            ),
            (
                "aimake-20261121T030000Z".to_string(),
                Trigger::Scheduled,
                Status::Ok
            ),
            (manual.clone(), Trigger::Manual, Status::Ok),
        ],
        "day 0 and day 10 are past 30 days; the manual one stays"
    );
    assert_eq!(
        f.blob_count().await,
        2,
        "the manual backup still refers to the short-lived object"
    );
    f.backups.delete(&manual).await.unwrap();
    assert_eq!(
        f.blob_count().await,
        1,
        "no kept backup refers to the short-lived object any more"
    );

    // Backups start failing (the database is gone); months later the newest good one is
    // still there.
    std::fs::rename(f.db_path(), f.dir.path().join("moved.db")).unwrap();
    f.clock.set(at(200));
    f.backups.run_scheduled(at(200)).await;
    let after = names(f.backups.list().await.unwrap());
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(after[0].2, Status::Failed);
    assert_eq!(
        after[1],
        (
            "aimake-20261216T030000Z".to_string(),
            Trigger::Scheduled,
            Status::Ok
        )
    );
    assert_eq!(f.blob_count().await, 1);
}

async fn restore_puts_back_media_missing_from_the_store(kind: Kind) {
    let f = Fixture::new(kind).await;
    drop(f.open_db().await);
    let lost = f.put_audio(b"the lost episode").await;
    let kept = f.put_audio(b"the kept episode").await;
    f.backups.run(Trigger::Manual).await.unwrap();
    f.main.delete(&lost).await.unwrap();

    let dry = restore(
        &f.config,
        "latest",
        RestoreOptions {
            dry_run: true,
            skip_media: false,
        },
        |_| panic!("a dry run asks nothing"),
    )
    .await
    .unwrap();
    assert!(!dry.restored);
    assert_eq!((dry.plan.media_total, dry.plan.media_missing), (2, 1));
    assert!(
        f.main.get(&lost).await.is_err(),
        "a dry run changes nothing"
    );

    let db_only = restore(
        &f.config,
        "latest",
        RestoreOptions {
            dry_run: false,
            skip_media: true,
        },
        Fixture::yes(),
    )
    .await
    .unwrap();
    assert_eq!(db_only.media_restored, 0);
    assert!(f.main.get(&lost).await.is_err(), "--no-media leaves media");

    let full = restore(
        &f.config,
        "latest",
        RestoreOptions::default(),
        Fixture::yes(),
    )
    .await
    .unwrap();
    assert_eq!(full.media_restored, 1);
    assert_eq!(
        f.main.get(&lost).await.unwrap(),
        Bytes::from_static(b"the lost episode")
    );
    assert_eq!(
        f.main.get(&kept).await.unwrap(),
        Bytes::from_static(b"the kept episode")
    );
}

async fn a_failed_backup_is_recorded_and_listed_with_its_error(kind: Kind) {
    let f = Fixture::new(kind).await;
    // No database in the data dir: the snapshot cannot be taken.
    let mut finished = f.backups.subscribe();
    let err = f.backups.run(Trigger::Manual).await.unwrap_err();
    assert!(err.to_string().contains("no database"), "{err}");
    let listed = f.backups.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, Status::Failed);
    assert!(
        listed[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no database")),
        "{listed:?}"
    );
    let json = serde_json::to_value(&listed[0]).unwrap();
    for field in [
        "name",
        "size_bytes",
        "sha256",
        "created_at",
        "trigger",
        "status",
        "error",
        "media_count",
    ] {
        assert!(json.get(field).is_some(), "{field} missing from {json}");
    }
    assert!(finished.has_changed().unwrap());
    assert_eq!(
        finished.borrow_and_update().as_ref().unwrap().status,
        Status::Failed
    );
    let err = restore(
        &f.config,
        "latest",
        RestoreOptions::default(),
        Fixture::yes(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, BackupError::NotFound(_)),
        "a failed backup is never restored: {err}"
    );
}

async fn only_one_backup_runs_at_a_time(kind: Kind) {
    let f = Fixture::new(kind).await;
    drop(f.open_db().await);
    let held = f.backups.lock().await.unwrap();
    for err in [
        f.backups.run(Trigger::Manual).await.unwrap_err(),
        f.backups.start(Trigger::Manual).await.unwrap_err(),
        f.backups.prune(None).await.unwrap_err(),
        restore(
            &f.config,
            "latest",
            RestoreOptions::default(),
            Fixture::yes(),
        )
        .await
        .unwrap_err(),
    ] {
        assert!(
            matches!(err, BackupError::AlreadyRunning(_)),
            "expected already running, got {err}"
        );
        assert!(err.to_string().contains("already running"), "{err}");
    }
    let api = AppError::from(f.backups.run(Trigger::Manual).await.unwrap_err());
    assert_eq!(api.status_code(), http::StatusCode::CONFLICT);
    drop(held);

    // A background start returns its name at once and finishes on its own.
    let mut finished = f.backups.subscribe();
    let name = f.backups.start(Trigger::Manual).await.unwrap();
    let again = f.backups.start(Trigger::Manual).await;
    let done = tokio::time::timeout(
        Duration::from_secs(30),
        finished.wait_for(|i| i.as_ref().is_some_and(|i| i.name == name.as_str())),
    )
    .await
    .expect("the background backup finishes")
    .unwrap()
    .clone()
    .unwrap();
    assert_eq!(done.status, Status::Ok);
    match again {
        // Usually the first one is still running.
        Err(e) => assert!(matches!(e, BackupError::AlreadyRunning(_)), "{e}"),
        Ok(second) => {
            tokio::time::timeout(
                Duration::from_secs(30),
                finished.wait_for(|i| i.as_ref().is_some_and(|i| i.name == second.as_str())),
            )
            .await
            .expect("the second one finishes too")
            .unwrap();
        }
    }
}

#[tokio::test]
async fn restore_refuses_while_the_server_runs_on_the_same_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let app = TestApp::spawn_with(|c| c.data.dir = dir.path().to_path_buf()).await;
    let name = app
        .state
        .backups
        .run(Trigger::Manual)
        .await
        .unwrap()
        .info
        .name;

    let err = restore(&config, "latest", RestoreOptions::default(), |_| true)
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::ServerRunning(_)), "{err}");
    assert!(err.to_string().contains("stop it"), "{err}");
    assert!(
        !std::fs::read_dir(dir.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("pre-restore")),
        "nothing was touched"
    );

    app.stop().await;
    let done = restore(&config, "latest", RestoreOptions::default(), |_| true)
        .await
        .expect("restores once the server has stopped");
    assert_eq!(done.plan.name, name);
    assert!(done.restored);
}

#[tokio::test]
async fn the_cron_schedule_runs_backups_inside_the_server() {
    let app = TestApp::spawn_with(|c| c.backup.schedule = "* * * * * *".into()).await;
    let mut finished = app.state.backups.subscribe();
    tokio::time::timeout(Duration::from_secs(10), finished.changed())
        .await
        .expect("a scheduled backup within the next seconds")
        .unwrap();
    let done = finished.borrow().clone().unwrap();
    assert_eq!(
        (done.trigger, done.status),
        (Trigger::Scheduled, Status::Ok)
    );
    let listed = app.state.backups.list().await.unwrap();
    assert!(listed.iter().any(|b| b.name == done.name), "{listed:?}");
    app.stop().await;
}

pub(crate) fn aimake(dir: &std::path::Path, backups: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(crate::helpers::bin());
    cmd.current_dir(dir)
        .env_remove("AIMAKE_CONFIG")
        .env_remove("RUST_LOG")
        .env("AIMAKE_DATA__DIR", dir.join("data"))
        .env(
            "AIMAKE_BACKUP__TARGET",
            format!("dir:{}", backups.display()),
        )
        .stdin(std::process::Stdio::null());
    cmd
}

pub(crate) fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_backup_and_restore_commands_work_end_to_end_with_a_directory_target() {
    let dir = tempfile::tempdir().unwrap();
    let offsite = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        aimake(dir.path(), offsite.path())
            .args(args)
            .output()
            .unwrap()
    };
    ok(run(&["migrate"]));

    let name = ok(run(&["backup"])).trim().to_string();
    assert!(name.starts_with("aimake-"), "{name}");
    assert!(
        offsite
            .path()
            .join(format!("backups/{name}/manifest.json"))
            .exists(),
        "the set is in the directory target"
    );
    let list = ok(run(&["backup", "list"]));
    assert!(
        list.contains(&name) && list.contains("manual") && list.contains("ok"),
        "{list}"
    );
    assert!(ok(run(&["backup", "verify", &name])).contains("ok"));

    let out = run(&["restore", "latest"]);
    assert!(
        !out.status.success(),
        "no terminal, no --yes: not confirmed"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));

    let dry = ok(run(&["restore", &name, "--dry-run"]));
    assert!(dry.contains("nothing was changed"), "{dry}");
    let done = ok(run(&["restore", "latest", "--yes"]));
    assert!(done.contains("keep the current database as"), "{done}");
    let kept: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("aimake.db.pre-restore-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");

    ok(run(&["backup", "delete", &name]));
    assert!(!ok(run(&["backup", "list"])).contains(&name));
    assert!(ok(run(&["backup", "prune"])).contains("pruned"));
    let out = run(&["restore", "aimake-../../etc"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a backup name"));
}

#[tokio::test]
async fn the_backup_command_says_already_running_while_the_server_backs_up() {
    let dir = tempfile::tempdir().unwrap();
    let offsite = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir.path().join("data"));
    config.backup.target = format!("dir:{}", offsite.path().display());
    let backups =
        Backups::from_config(&config, Storage::from_config(&config).unwrap(), None).unwrap();
    // What a running server holds while its backup runs.
    let _running = backups.lock().await.unwrap();
    let out = aimake(dir.path(), offsite.path())
        .arg("backup")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already running"), "{stderr}");
}

/// Every media object of the main store with the sha256 of its bytes.
async fn store_state(main: &Storage) -> Vec<(String, String)> {
    let mut state = Vec::new();
    for prefix in keys::media_prefixes() {
        for o in main.list(&prefix).await.unwrap() {
            let bytes = main.get(&o.key).await.unwrap();
            state.push((
                o.key.as_str().to_string(),
                hex::encode(Sha256::digest(&bytes)),
            ));
        }
    }
    state.sort();
    state
}

/// Flips one byte in the middle of an object of the target.
async fn flip_byte(target: &Storage, key: &Key) -> Bytes {
    let good = target.get(key).await.unwrap();
    let mut bad = good.to_vec();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x01;
    target.put(key, bad.into()).await.unwrap();
    good
}

async fn a_flipped_byte_in_a_media_blob_or_the_snapshot_fails_verify_and_dry_run_naming_it(
    kind: Kind,
) {
    let f = Fixture::new(kind).await;
    let db = f.open_db().await;
    insert_notes(&db, 0, 50).await;
    drop(db);
    for i in 0..3u8 {
        f.put_audio(&[i; 4000]).await;
    }
    let name = f.backups.run(Trigger::Manual).await.unwrap().info.name;
    let listed = |items: Vec<BackupInfo>| {
        items
            .into_iter()
            .find(|b| b.name == name)
            .unwrap()
            .verification
    };
    assert!(
        listed(f.backups.list().await.unwrap()).is_none(),
        "never verified yet"
    );
    let report = f.backups.verify(&name).await.unwrap();
    assert_eq!(report.media_checked, 3, "every blob read back and hashed");
    let v = listed(f.backups.list().await.unwrap()).expect("the verification is recorded");
    assert_eq!(v.result, VerifyResult::Ok);
    assert_eq!(v.verified_at, "2026-11-01T03:00:00Z");
    assert_eq!((v.media_hashed, v.media_total), (3, 3));

    let live_db = std::fs::read(f.db_path()).unwrap();
    let store = store_state(&f.main).await;
    let dry_run = RestoreOptions {
        dry_run: true,
        skip_media: false,
    };
    let manifest = f.backups.resolve(&name).await.unwrap();
    let blob = keys::backup_media(&manifest.media[1].sha256);
    let snapshot = Key::from_stored(format!("backups/{name}/db.sqlite.zst"));
    for (damaged, named) in [(&blob, blob.as_str()), (&snapshot, "db.sqlite.zst")] {
        f.clock.advance(time::Duration::minutes(1));
        let good = flip_byte(f.backups.target(), damaged).await;
        let err = f.backups.verify(&name).await.unwrap_err();
        assert!(
            matches!(err, BackupError::Unusable { .. }) && err.to_string().contains(named),
            "verify said {err}"
        );
        let v = listed(f.backups.list().await.unwrap()).unwrap();
        assert_eq!(v.result, VerifyResult::Corrupt);
        assert!(v.reason.as_deref().unwrap().contains(named), "{v:?}");
        assert_eq!(v.verified_at, rfc3339(f.clock.now()));

        let err = restore(&f.config, &name, dry_run, Fixture::yes())
            .await
            .unwrap_err();
        assert!(err.to_string().contains(named), "dry run said {err}");
        let err = restore(&f.config, &name, RestoreOptions::default(), Fixture::yes())
            .await
            .unwrap_err();
        assert!(err.to_string().contains(named), "restore said {err}");
        assert_eq!(
            std::fs::read(f.db_path()).unwrap(),
            live_db,
            "the live database is untouched"
        );
        assert_eq!(store_state(&f.main).await, store, "the store is untouched");

        // Repaired, it verifies again, and the list says so.
        f.backups.target().put(damaged, good).await.unwrap();
        f.clock.advance(time::Duration::minutes(1));
        f.backups.verify(&name).await.unwrap();
        let v = listed(f.backups.list().await.unwrap()).unwrap();
        assert_eq!((v.result, v.reason), (VerifyResult::Ok, None));
        assert_eq!(v.verified_at, rfc3339(f.clock.now()));
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test]
async fn back_up_now_and_the_schedule_read_back_and_record_what_they_wrote() {
    let app = TestApp::spawn_with(|c| c.backup.schedule = "* * * * * *".into()).await;
    let audio = keys::audio(Ulid::generate().into(), Ulid::generate().into(), "mp3");
    app.state
        .storage
        .put(&audio, Bytes::from_static(b"an audio's bytes"))
        .await
        .unwrap();
    let mut finished = app.state.backups.subscribe();
    tokio::time::timeout(Duration::from_secs(10), finished.changed())
        .await
        .expect("a scheduled backup within the next seconds")
        .unwrap();
    let done = finished.borrow_and_update().clone().unwrap();
    assert_eq!(done.trigger, Trigger::Scheduled);
    let v = done
        .verification
        .expect("the scheduled run verified its set");
    assert_eq!(v.result, VerifyResult::Ok, "{v:?}");
    assert_eq!((v.media_hashed, v.media_total), (1, 1), "{v:?}");
    app.stop().await;

    let app = TestApp::spawn().await;
    let admin = app
        .signed_in("root@example.com", aimake::auth::Role::Admin)
        .await;
    let mut finished = app.state.backups.subscribe();
    let resp = admin
        .post("/api/admin/backups", &serde_json::json!({}))
        .await;
    assert_eq!(resp.status(), 202);
    tokio::time::timeout(Duration::from_secs(20), finished.changed())
        .await
        .expect("the backup finishes")
        .unwrap();
    let listed: serde_json::Value = admin.get("/api/admin/backups").await.json().await.unwrap();
    let v = &listed["items"][0]["verification"];
    assert_eq!(v["result"], "ok", "{listed}");
    assert!(v["verified_at"].is_string(), "{listed}");
    app.stop().await;
}

#[test]
fn the_backup_commands_report_a_flipped_byte_by_name_and_list_shows_when_and_what() {
    let dir = tempfile::tempdir().unwrap();
    let offsite = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        aimake(dir.path(), offsite.path())
            .args(args)
            .output()
            .unwrap()
    };
    ok(run(&["migrate"]));
    let media = dir.path().join("data/media/audio/u1");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::write(media.join("a1.mp3"), vec![7u8; 3000]).unwrap();

    let name = ok(run(&["backup"])).trim().to_string();
    let row = |list: &str| {
        list.lines()
            .find(|l| l.starts_with(&name))
            .unwrap_or_else(|| panic!("{list}"))
            .to_string()
    };
    let line = row(&ok(run(&["backup", "list"])));
    assert!(
        line.trim_end().ends_with(" ok"),
        "verified when written: {line}"
    );
    assert!(!line.contains("never"), "{line}");
    assert_eq!(
        line.matches(&format!("{}-", &name[7..11])).count(),
        2,
        "created and verified dates: {line}"
    );

    let sha = hex::encode(Sha256::digest(vec![7u8; 3000]));
    let blob = offsite
        .path()
        .join(format!("backups/media/{}/{sha}", &sha[..2]));
    let snapshot = offsite.path().join(format!("backups/{name}/db.sqlite.zst"));
    for (file, named) in [(blob, sha.as_str()), (snapshot, "db.sqlite.zst")] {
        let good = std::fs::read(&file).unwrap();
        let mut bad = good.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x80;
        std::fs::write(&file, &bad).unwrap();

        for args in [
            &["backup", "verify", name.as_str()][..],
            &["restore", name.as_str(), "--dry-run"][..],
        ] {
            let out = run(args);
            assert!(!out.status.success(), "{args:?} must fail");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains(named), "{args:?}: {stderr}");
        }
        let line = row(&ok(run(&["backup", "list"])));
        assert!(line.contains("corrupt: "), "{line}");
        assert!(line.contains(named), "{line}");

        std::fs::write(&file, &good).unwrap();
        assert!(ok(run(&["backup", "verify", &name])).contains("ok"));
        let line = row(&ok(run(&["backup", "list"])));
        assert!(line.trim_end().ends_with(" ok"), "{line}");
    }
}
