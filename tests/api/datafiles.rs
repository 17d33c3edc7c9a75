//! The data directory's files, with the real binary: what a clean stop leaves in `aimake.db`,
//! who may read what aimake writes, and a damaged database at start.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::{Value, json};

use crate::fakes::FakeOpenAi;
use crate::helpers::{PASSWORD, bin, session_cookie};

const ADMIN: &str = "admin@example.com";

/// `aimake ARGS` on `data`, started the way a shell with the usual umask 022 starts it.
fn aimake(data: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"umask 022; exec "$0" "$@""#)
        .arg(bin())
        .args(args)
        .env_remove("AIMAKE_CONFIG")
        .env_remove("RUST_LOG")
        .env("AIMAKE_DATA__DIR", data)
        .env("AIMAKE_MODELS__AUTO_PULL", "false")
        .current_dir(data.parent().unwrap());
    cmd
}

/// Creates the admin account with `aimake user add`.
fn add_admin(data: &Path) {
    use std::io::Write;
    let mut child = aimake(data, &["user", "add", ADMIN, "--admin", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `aimake serve` as a child process, its log lines collected as they come.
struct Served {
    child: Child,
    base: String,
    lines: Receiver<String>,
    log: Vec<String>,
    client: reqwest::Client,
    cookie: String,
}

impl Served {
    /// Starts the server and waits for its "ready" line; `Err` holds the log and exit status
    /// of a server that stopped instead.
    fn start(data: &Path, env: &[(&str, String)]) -> Result<Self, String> {
        let mut cmd = aimake(data, &["serve", "--log-format", "json"]);
        cmd.env("AIMAKE_SERVER__BIND", "127.0.0.1:0")
            .env("AIMAKE_BACKUP__SCHEDULE", "")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut log = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    let ready = line.contains("aimake is ready");
                    log.push(line);
                    if ready {
                        break;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = child.wait().unwrap();
                    return Err(format!("{status}: {}", log.join("\n")));
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!("the server did not get ready: {log:?}");
                }
            }
        }
        let event: Value = serde_json::from_str(log.last().unwrap()).unwrap();
        let base = format!("http://{}", event["addr"].as_str().unwrap());
        Ok(Self {
            child,
            base,
            lines,
            log,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            cookie: String::new(),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .header("origin", &self.base)
            .header("cookie", format!("aimake_session={}", self.cookie))
    }

    async fn get(&self, path: &str) -> Value {
        let resp = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let resp = self
            .request(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "POST {path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    async fn sign_in(&mut self) {
        let resp = self
            .request(reqwest::Method::POST, "/api/auth/login")
            .json(&json!({ "email": ADMIN, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        self.cookie = session_cookie(&resp).unwrap();
    }

    /// Creates an audio with the fake provider and waits until it has succeeded.
    async fn speak(&self, text: &str) -> String {
        let audio = self
            .post(
                "/api/audios",
                json!({ "text": text, "voice": "openai:alloy" }),
            )
            .await;
        let id = audio["id"].as_str().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let audio = self.get(&format!("/api/audios/{id}")).await;
            match audio["status"].as_str() {
                Some("succeeded") => return id,
                Some("failed" | "canceled") => panic!("{audio}"),
                _ => {}
            }
            assert!(Instant::now() < deadline, "never finished: {audio}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Takes a backup through the API and waits until it is listed as ok.
    async fn back_up(&self) {
        let name = self.post("/api/admin/backups", json!({})).await["name"]
            .as_str()
            .unwrap()
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let list = self.get("/api/admin/backups").await;
            let item = list["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["name"] == name.as_str())
                .cloned();
            match item.as_ref().and_then(|i| i["status"].as_str()) {
                Some("ok") => return,
                Some("failed") => panic!("backup failed: {item:?}"),
                _ => {}
            }
            assert!(Instant::now() < deadline, "backup {name} never finished");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Log lines so far (waiting up to `wait` for one that contains `needle`).
    fn log_until(&mut self, needle: &str, wait: Duration) -> &[String] {
        let deadline = Instant::now() + wait;
        while !self.log.iter().any(|l| l.contains(needle)) {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.log.push(line),
                Err(_) => break,
            }
        }
        &self.log
    }

    /// SIGTERM, then waits for a clean exit; returns the whole log.
    fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        self.log.extend(self.lines.iter());
        assert!(
            exit.success(),
            "clean exit on SIGTERM: {exit:?} {:?}",
            self.log
        );
        self.log
    }
}

/// Every file and directory below `root` (itself included), with its permission bits.
fn modes(root: &Path) -> Vec<(PathBuf, bool, u32)> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.path().symlink_metadata().unwrap();
            (
                e.path().to_path_buf(),
                meta.is_dir(),
                meta.permissions().mode() & 0o7777,
            )
        })
        .collect()
}

/// Asserts that every directory below `root` is 0700 and every file 0600; returns the paths.
fn assert_owner_only(root: &Path) -> Vec<PathBuf> {
    let all = modes(root);
    let loose: Vec<_> = all
        .iter()
        .filter(|(_, dir, mode)| *mode != if *dir { 0o700 } else { 0o600 })
        .map(|(p, _, m)| format!("{} {m:o}", p.display()))
        .collect();
    assert!(loose.is_empty(), "readable by others: {loose:#?}");
    all.into_iter().map(|(p, _, _)| p).collect()
}

fn fake_env(fake: &FakeOpenAi) -> Vec<(&'static str, String)> {
    vec![
        ("AIMAKE_PROVIDERS__OPENAI__BASE_URL", fake.base_url()),
        (
            "AIMAKE_PROVIDERS__OPENAI__API_KEY",
            fake.api_key().to_string(),
        ),
        ("AIMAKE_PROVIDERS__OPENAI__MODEL", "tts-1".to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_clean_stop_aimake_db_alone_holds_every_row() {
    let fake = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_admin(&data);
    let env = fake_env(&fake);
    let mut server = Served::start(&data, &env).unwrap();
    server.sign_in().await;
    server
        .post("/api/tokens", json!({ "name": "deploy" }))
        .await;
    let mut audios = Vec::new();
    for n in 0..3 {
        audios.push(server.speak(&format!("Row number {n} must survive.")).await);
    }
    let log = server.stop();
    assert!(
        log.iter().any(|l| l.contains("database checkpointed")),
        "{log:?}"
    );
    let wal = data.join("aimake.db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "the WAL is empty after a clean stop"
    );

    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("aimake.db");
    std::fs::copy(data.join("aimake.db"), &copy).unwrap();
    let conn = Connection::open(&copy).unwrap();
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(
        count("SELECT count(*) FROM users WHERE email = 'admin@example.com'"),
        1
    );
    assert!(count("SELECT count(*) FROM sessions") >= 1, "the sign-in");
    assert_eq!(
        count("SELECT count(*) FROM api_tokens WHERE name = 'deploy'"),
        1
    );
    for id in &audios {
        let status: String = conn
            .query_row("SELECT status FROM audios WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(status, "succeeded", "audio {id}");
    }
}

/// Starts a server on a new data dir with an admin and a few rows, then opens a read
/// transaction on its database from another connection and keeps it open, as Litestream does
/// while it replicates.
async fn served_with_a_reader(env: &[(&str, String)]) -> (tempfile::TempDir, Served, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_admin(&data);
    let mut server = Served::start(&data, env).unwrap();
    server.sign_in().await;
    server.post("/api/tokens", json!({ "name": "row" })).await;
    let reader = Connection::open(data.join("aimake.db")).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let users: i64 = reader
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 1);
    (dir, server, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_database_leaves_its_wal_to_the_replicator_at_a_clean_stop() {
    // Not replicated: the stop tries to empty the WAL, waits for the reader, and says so.
    let (_dir, server, reader) = served_with_a_reader(&[]).await;
    let log = server.stop();
    assert!(
        log.iter()
            .any(|l| l.contains("another process kept reading the database")),
        "{log:?}"
    );
    drop(reader);

    // `data.replicated`: the WAL is the replicator's, and the stop does not wait for it.
    let (dir, server, reader) =
        served_with_a_reader(&[("AIMAKE_DATA__REPLICATED", "true".into())]).await;
    let log = server.stop();
    assert!(
        log.iter()
            .any(|l| l.contains("its WAL is left to the replicator")),
        "{log:?}"
    );
    assert!(!log.iter().any(|l| l.contains("kept reading")), "{log:?}");
    drop(reader);
    // Every row is in the database and its WAL together, as the replicator copies them.
    let conn = Connection::open(dir.path().join("data/aimake.db")).unwrap();
    let tokens: i64 = conn
        .query_row(
            "SELECT count(*) FROM api_tokens WHERE name = 'row'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tokens, 1);
}

#[test]
fn config_check_warns_when_litestream_replicates_the_database_and_aimake_is_not_told() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join(".aimake.db-litestream/ltx")).unwrap();
    let check = |replicated: &str| {
        let out = aimake(&data, &["config", "check"])
            .env("AIMAKE_DATA__REPLICATED", replicated)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let warned = check("false");
    assert!(
        warned.contains("warning:") && warned.contains("data.replicated = true"),
        "{warned}"
    );
    let told = check("true");
    assert!(!told.contains("warning:"), "{told}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_aimake_creates_is_owner_only_under_umask_022() {
    let fake = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backups = dir.path().join("backups");
    add_admin(&data);
    let mut env = fake_env(&fake);
    env.push((
        "AIMAKE_BACKUP__TARGET",
        format!("dir:{}", backups.display()),
    ));
    let mut server = Served::start(&data, &env).unwrap();
    server.sign_in().await;
    server.speak("Nobody else may read this.").await;
    server.back_up().await;

    // While the server runs: the database's WAL and shared memory, the lock, media, secrets.
    let running = assert_owner_only(&data);
    for name in [
        "aimake.db",
        "aimake.db-wal",
        "aimake.db-shm",
        "aimake.lock",
        "server.secret",
        "backup.lock",
    ] {
        assert!(running.contains(&data.join(name)), "{name} in {running:?}");
    }
    let media_files = running
        .iter()
        .filter(|p| p.starts_with(data.join("media")) && p.is_file())
        .count();
    assert!(
        media_files > 0,
        "the audio is stored as a file: {running:?}"
    );
    let backup_files = assert_owner_only(&backups)
        .into_iter()
        .filter(|p| p.is_file())
        .count();
    assert!(backup_files >= 2, "a snapshot, its manifest and the media");

    server.stop();
    assert_owner_only(&data);
    assert_owner_only(&backups);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_loose_install_is_tightened_at_start_with_one_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_admin(&data);
    // As an older aimake left it under umask 022, with media a few levels down.
    let blob_dir = data.join("media/audio/01");
    std::fs::create_dir_all(&blob_dir).unwrap();
    std::fs::write(blob_dir.join("blob.mp3"), b"ID3").unwrap();
    let before = modes(&data);
    for (path, is_dir, _) in &before {
        let mode = if *is_dir { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    let mut server = Served::start(&data, &[]).unwrap();
    let needle = "private to this account";
    let log = server.log_until(needle, Duration::from_secs(20)).to_vec();
    let lines: Vec<_> = log.iter().filter(|l| l.contains(needle)).collect();
    assert_eq!(lines.len(), 1, "one line: {log:?}");
    let event: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(
        event["changed"].as_u64().unwrap(),
        before.len() as u64,
        "{event}"
    );
    assert_owner_only(&data);
    server.stop();
}

#[test]
fn a_damaged_database_stops_the_start_and_names_the_restore_command() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_admin(&data);
    // Enough accounts for the table to span several full pages.
    {
        let conn = Connection::open(data.join("aimake.db")).unwrap();
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
             INSERT INTO users (id, email, password_hash, created_at, updated_at)
             SELECT printf('user-%04d', i), printf('user%d@example.com', i), 'x', 0, 0 FROM n;
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
    }
    let healthy = Served::start(&data, &[]).expect("a healthy database starts");
    healthy.stop();

    damage_a_page_of(&data.join("aimake.db"), "users");

    let refused = match Served::start(&data, &[]) {
        Ok(server) => panic!("served a damaged database: {:?}", server.stop()),
        Err(log) => log,
    };
    assert!(refused.contains("exit status: 1"), "{refused}");
    assert!(refused.contains("damaged"), "{refused}");
    assert!(refused.contains("aimake restore latest"), "{refused}");
}

/// Writes garbage over the middle of a full leaf page near the end of `tree` (a table or an
/// index) in the database file.
fn damage_a_page_of(db: &Path, tree: &str) {
    use std::io::{Seek, SeekFrom, Write};
    let page: i64 = Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = 'leaf'
             ORDER BY pageno DESC LIMIT 1 OFFSET 1",
            [tree],
            |r| r.get(0),
        )
        .unwrap();
    let mut file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    file.seek(SeekFrom::Start((page as u64 - 1) * 4096 + 2048 - 256))
        .unwrap();
    file.write_all(&[0xff; 512]).unwrap();
    file.sync_all().unwrap();
}

/// `/health/ready`'s status and body.
async fn readiness(server: &Served) -> (u16, Value) {
    let resp = server
        .request(reqwest::Method::GET, "/health/ready")
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// Polls readiness until `done` says the answer is final; returns it.
async fn readiness_until(server: &Served, done: impl Fn(u16, &Value) -> bool) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = readiness(server).await;
        if done(status, &body) {
            return (status, body);
        }
        assert!(
            Instant::now() < deadline,
            "readiness stayed {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_database_is_checked_while_serving_and_ready_only_if_it_passes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_admin(&data);
    let db = data.join("aimake.db");
    // Large enough that the check outlasts the wait at start.
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE filler (n INTEGER NOT NULL, t TEXT NOT NULL) STRICT;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000000)
             INSERT INTO filler SELECT i, printf('%d', i) FROM n;
             CREATE INDEX filler_t ON filler (t);
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();

    let server = Served::start(&data, &[]).unwrap();
    let (status, body) = readiness(&server).await;
    assert_eq!(status, 503, "not ready while the check runs: {body}");
    assert_eq!(body["checks"]["database"], false, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("integrity"),
        "{body}"
    );
    let (status, body) = readiness_until(&server, |s, _| s == 200).await;
    assert_eq!(body["status"], "ok", "{status} {body}");
    server.stop();

    // The index is the last tree the check reads.
    damage_a_page_of(&db, "filler_t");
    let mut server = Served::start(&data, &[]).expect("the check outlasts the wait at start");
    let (status, body) = readiness_until(&server, |_, b| {
        b["message"].as_str().is_some_and(|m| m.contains("damaged"))
    })
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "degraded");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("aimake restore latest"),
        "{body}"
    );
    let path = db.display().to_string();
    assert!(
        !body["message"].as_str().unwrap().contains(&path) && !body.to_string().contains("data/"),
        "an outsider learns where the data lives: {body}"
    );
    let log = server.log_until("damaged", Duration::from_secs(10));
    assert!(
        log.iter()
            .any(|l| l.contains("\"ERROR\"") && l.contains("aimake restore latest")),
        "{log:?}"
    );
    server.stop();
}
