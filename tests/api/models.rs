//! The model manager on real files: pulls from a local mirror (which can corrupt, cut or hold
//! its answers), the `aimake models` command, import, and the admin API.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aimake::auth::Role;
use aimake::config::Config;
use aimake::models::{Manager, ModelError, ModelsService, PullPhase};
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;
use tokio_util::io::ReaderStream;

use crate::helpers::{CapturedLogs, TestApp, bin, error_code, neural_fixtures, test_config};

const JOE: &str = "piper:en_US-joe-medium";
const JOE_ONNX: &str = "en_US-joe-medium.onnx";
const JOE_JSON: &str = "en_US-joe-medium.onnx.json";
const WHEEL: &str = "onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl";
const LIBRARY: &str = "libonnxruntime.so.1.32.0";

/// How the mirror misbehaves for one file.
#[derive(Clone)]
enum Fault {
    /// The right length with one byte changed.
    Corrupt,
    /// Announces the whole length, sends half and drops the connection.
    Cut,
    /// Answers only once a permit is added to the semaphore.
    Hold(Arc<Semaphore>),
}

struct MirrorState {
    root: PathBuf,
    faults: Mutex<HashMap<String, Fault>>,
    requests: Mutex<HashMap<String, usize>>,
}

/// A models mirror on 127.0.0.1: the fixture files under their official names.
struct Mirror {
    url: String,
    state: Arc<MirrorState>,
    task: tokio::task::JoinHandle<()>,
}

impl Mirror {
    async fn start() -> Self {
        let state = Arc::new(MirrorState {
            root: neural_fixtures().join("mirror"),
            faults: Mutex::default(),
            requests: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(mirror_file)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, state, task }
    }

    fn fault(&self, file: &str, fault: Fault) {
        self.state
            .faults
            .lock()
            .unwrap()
            .insert(file.to_string(), fault);
    }

    fn heal(&self, file: &str) {
        self.state.faults.lock().unwrap().remove(file);
    }

    fn requests(&self, file: &str) -> usize {
        self.state
            .requests
            .lock()
            .unwrap()
            .get(file)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn mirror_file(State(state): State<Arc<MirrorState>>, uri: Uri) -> Response {
    let name = uri.path().trim_start_matches('/').to_string();
    if name.split('/').any(|s| s == ".." || s.is_empty()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    *state
        .requests
        .lock()
        .unwrap()
        .entry(name.clone())
        .or_default() += 1;
    let fault = state.faults.lock().unwrap().get(&name).cloned();
    if let Some(Fault::Hold(gate)) = &fault {
        gate.acquire().await.unwrap().forget();
    }
    let path = state.root.join(&name);
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let len = file.metadata().await.unwrap().len();
    let body = match fault {
        Some(Fault::Corrupt) => {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).await.unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            Body::from(bytes)
        }
        Some(Fault::Cut) => {
            let half = ReaderStream::new(file.take(len / 2));
            let cut = futures::stream::once(async {
                Err(std::io::Error::other("the mirror drops the connection"))
            });
            Body::from_stream(half.chain(cut))
        }
        _ => Body::from_stream(ReaderStream::new(file)),
    };
    Response::builder()
        .header(header::CONTENT_LENGTH, len)
        .body(body)
        .unwrap()
}

fn sha256_of(path: &Path) -> String {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    hex::encode(Sha256::digest(&bytes))
}

/// Files left in `.partial/` other than the models' lock files.
fn partials(models: &Path) -> Vec<String> {
    std::fs::read_dir(models.join(".partial"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect()
}

fn config_with_mirror(dir: &Path, mirror: &Mirror) -> Config {
    let mut config = test_config(dir);
    config.models.mirror = Some(mirror.url.clone());
    config
}

async fn aimake(data: &Path, mirror: &Mirror, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(bin())
        .args(args)
        .current_dir(data.parent().unwrap())
        .env_remove("AIMAKE_CONFIG")
        .env_remove("RUST_LOG")
        .env("AIMAKE_DATA__DIR", data)
        .env("AIMAKE_MODELS__MIRROR", &mirror.url)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The INSTALLED column of `aimake models list` for `name`.
fn listed_installed(list: &str, name: &str) -> String {
    let line = list
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("{name} is not listed: {list}"));
    line.split_whitespace().last().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_pulls_lists_and_removes_models_from_a_mirror() {
    let fixtures = neural_fixtures();
    let mirror = Mirror::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let models = data.join("models");

    let out = aimake(&data, &mirror, &["models", "pull", JOE]).await;
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Not a terminal: plain lines at each tenth of the way.
    for line in [
        "piper:en_US-joe-medium: en_US-joe-medium.onnx 10% (",
        "piper:en_US-joe-medium: en_US-joe-medium.onnx 50% (",
        " of 63.21 MB)",
        "piper:en_US-joe-medium: en_US-joe-medium.onnx.json 100% (63.21 MB of 63.21 MB)",
        "installed piper:en_US-joe-medium: 2 file(s), 63.21 MB fetched",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    assert!(!text.contains('\r') && !text.contains('\u{1b}'), "{text}");
    for file in [JOE_ONNX, JOE_JSON] {
        assert_eq!(
            sha256_of(&models.join("piper").join(file)),
            sha256_of(&fixtures.join("mirror").join(file)),
            "{file}"
        );
    }

    let out = aimake(&data, &mirror, &["models", "pull", "runtime"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains(&format!("runtime: {WHEEL} 100% (27.77 MB of 27.77 MB)")));
    assert_eq!(
        sha256_of(&models.join("runtime").join(LIBRARY)),
        sha256_of(&fixtures.join("runtime").join(LIBRARY))
    );
    assert_eq!(partials(&models), Vec::<String>::new(), "the wheel is gone");

    let out = aimake(&data, &mirror, &["models", "list"]).await;
    let list = stdout(&out);
    assert!(out.status.success());
    assert!(list.starts_with("NAME"), "{list}");
    assert_eq!(listed_installed(&list, JOE), "yes");
    assert_eq!(listed_installed(&list, "runtime"), "yes");
    assert_eq!(listed_installed(&list, "kokoro"), "no");
    assert!(
        list.contains("CC0-1.0") && list.contains("Apache-2.0"),
        "{list}"
    );

    // Verified files are not fetched again.
    let before = mirror.requests(JOE_ONNX);
    let out = aimake(&data, &mirror, &["models", "pull", JOE]).await;
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("installed already"),
        "{}",
        stdout(&out)
    );
    assert_eq!(mirror.requests(JOE_ONNX), before);

    let out = aimake(&data, &mirror, &["models", "remove", JOE]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!models.join("piper").join(JOE_ONNX).exists());
    assert!(!models.join("piper").join(JOE_JSON).exists());
    assert!(models.join("runtime").join(LIBRARY).exists());
    let list = stdout(&aimake(&data, &mirror, &["models", "list"]).await);
    assert_eq!(listed_installed(&list, JOE), "no");

    let out = aimake(
        &data,
        &mirror,
        &["models", "pull", "piper:en_US-nobody-low"],
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("runtime, kokoro, piper:en_US-joe-medium"),
        "{err}"
    );
}

#[tokio::test]
async fn a_file_with_other_bytes_is_refused_and_nothing_of_it_is_installed() {
    let mirror = Mirror::start().await;
    mirror.fault(JOE_ONNX, Fault::Corrupt);
    let dir = tempfile::tempdir().unwrap();
    let manager = Manager::new(&config_with_mirror(dir.path(), &mirror)).unwrap();
    let err = manager.pull(JOE, &|_| {}).await.unwrap_err();
    let ModelError::HashMismatch {
        file,
        expected,
        actual,
        ..
    } = &err
    else {
        panic!("not a hash mismatch: {err}");
    };
    assert_eq!(file, JOE_ONNX);
    assert_eq!(
        expected,
        "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
    );
    assert_ne!(actual, expected);
    let message = err.to_string();
    for part in [JOE_ONNX, expected.as_str(), actual.as_str(), &mirror.url] {
        assert!(message.contains(part), "{part:?} missing from {message}");
    }
    // A wrong file is not a network failure: it is not fetched again and again.
    assert_eq!(mirror.requests(JOE_ONNX), 1);
    let models = manager.layout().root().to_path_buf();
    assert!(!models.join("piper").join(JOE_ONNX).exists());
    assert_eq!(partials(&models), Vec::<String>::new());
    assert!(manager.list().iter().all(|m| !m.installed));
}

#[tokio::test]
async fn a_cut_download_installs_nothing_and_leaves_no_partial_behind() {
    let mirror = Mirror::start().await;
    mirror.fault(JOE_ONNX, Fault::Cut);
    let dir = tempfile::tempdir().unwrap();
    let manager = Manager::new(&config_with_mirror(dir.path(), &mirror)).unwrap();
    let models = manager.layout().root().to_path_buf();

    let err = manager.pull(JOE, &|_| {}).await.unwrap_err();
    assert!(err.is_network(), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("{}/{JOE_ONNX}", mirror.url)),
        "{message}"
    );
    assert!(message.contains("gave up after 3 attempts"), "{message}");
    assert!(message.contains("models.mirror") && message.contains("aimake models import"));
    assert_eq!(mirror.requests(JOE_ONNX), 3, "bounded retries");
    assert!(!models.join("piper").join(JOE_ONNX).exists());
    assert!(!models.join("piper").join(JOE_JSON).exists());
    assert_eq!(partials(&models), Vec::<String>::new());

    // A process killed mid-download leaves its partial file; the next pull clears it.
    let stale = models
        .join(".partial")
        .join("piper_en_US-joe-medium--en_US-joe-medium.onnx.part");
    std::fs::write(&stale, b"half a model").unwrap();
    mirror.heal(JOE_ONNX);
    let report = manager.pull(JOE, &|_| {}).await.unwrap();
    assert_eq!(report.downloaded, [JOE_ONNX, JOE_JSON]);
    assert_eq!(partials(&models), Vec::<String>::new());
    assert_eq!(
        sha256_of(&models.join("piper").join(JOE_ONNX)),
        "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_installs_the_known_files_and_says_why_it_skipped_the_rest() {
    let fixtures = neural_fixtures();
    let mirror = fixtures.join("mirror");
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("usb");
    std::fs::create_dir_all(from.join("voices")).unwrap();
    std::fs::create_dir_all(from.join("lib")).unwrap();
    for file in [JOE_ONNX, JOE_JSON, "voices/af_heart.bin"] {
        std::fs::copy(mirror.join(file), from.join(file)).unwrap();
    }
    std::fs::copy(
        fixtures.join("runtime").join(LIBRARY),
        from.join("lib").join(LIBRARY),
    )
    .unwrap();
    std::fs::write(from.join("README.txt"), "voices for the studio").unwrap();
    // The size of a Kokoro voice, but not one.
    std::fs::write(from.join("voices/zz_fake.bin"), vec![7u8; 522_240]).unwrap();

    let data = dir.path().join("data");
    let out = tokio::process::Command::new(bin())
        .args(["models", "import"])
        .arg(&from)
        .current_dir(dir.path())
        .env_remove("AIMAKE_CONFIG")
        .env("AIMAKE_DATA__DIR", &data)
        .output()
        .await
        .unwrap();
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "installed piper/en_US-joe-medium.onnx\n",
        "installed piper/en_US-joe-medium.onnx.json\n",
        "installed kokoro/voices/af_heart.bin\n",
        "installed runtime/libonnxruntime.so.1.32.0\n",
        "skipped README.txt: not a file of any known model (21 bytes",
        "skipped voices/zz_fake.bin: not a file of any known model (unknown sha256 ",
        "4 file(s) installed",
        "2 skipped",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    let models = data.join("models");
    assert_eq!(
        sha256_of(&models.join("kokoro/voices/af_heart.bin")),
        sha256_of(&mirror.join("voices/af_heart.bin"))
    );
    assert_eq!(
        sha256_of(&models.join("runtime").join(LIBRARY)),
        sha256_of(&fixtures.join("runtime").join(LIBRARY))
    );
    assert!(!models.join("kokoro/voices/zz_fake.bin").exists());
    assert_eq!(partials(&models), Vec::<String>::new());

    let config = test_config(&data);
    let manager = Manager::new(&config).unwrap();
    let installed: HashMap<String, bool> = manager
        .list()
        .into_iter()
        .map(|m| (m.name, m.installed))
        .collect();
    assert!(installed[JOE] && installed["runtime"]);
    assert!(!installed["kokoro"], "one voice is not the whole model");

    // The wheel is recognised too: its library is unpacked from it.
    let wheel_only = dir.path().join("wheel");
    std::fs::create_dir_all(&wheel_only).unwrap();
    std::fs::copy(mirror.join(WHEEL), wheel_only.join(WHEEL)).unwrap();
    std::fs::remove_file(models.join("runtime").join(LIBRARY)).unwrap();
    let report = manager.import(&wheel_only).await.unwrap();
    assert_eq!(report.installed, ["runtime/libonnxruntime.so.1.32.0"]);
    assert_eq!(
        sha256_of(&models.join("runtime").join(LIBRARY)),
        sha256_of(&fixtures.join("runtime").join(LIBRARY))
    );

    // A directory with nothing known in it is a failure.
    let junk = dir.path().join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("a.onnx"), b"not a model").unwrap();
    let out = tokio::process::Command::new(bin())
        .args(["models", "import"])
        .arg(&junk)
        .current_dir(dir.path())
        .env_remove("AIMAKE_CONFIG")
        .env("AIMAKE_DATA__DIR", &data)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("skipped a.onnx: "),
        "{}",
        stdout(&out)
    );
}

async fn models_body(session: &crate::helpers::Session) -> Value {
    let resp = session.get("/api/admin/models").await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn row<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing from {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_list_pull_and_delete_models_over_the_api() {
    let mirror = Mirror::start().await;
    let gate = Arc::new(Semaphore::new(0));
    mirror.fault(JOE_ONNX, Fault::Hold(gate.clone()));
    let url = mirror.url.clone();
    let app = TestApp::spawn_with(move |c| c.models.mirror = Some(url)).await;
    let admin = app.signed_in("admin@example.com", Role::Admin).await;
    let user = app.signed_in("user@example.com", Role::User).await;

    let resp = user.get("/api/admin/models").await;
    assert_eq!(resp.status(), 403);
    let resp = user
        .post(&format!("/api/admin/models/{JOE}/pull"), &json!({}))
        .await;
    assert_eq!(resp.status(), 403);

    let body = models_body(&admin).await;
    assert_eq!(
        body["dir"],
        app.dir.path().join("models").display().to_string()
    );
    assert_eq!(body["disk_used_bytes"], 0);
    assert_eq!(body["models"].as_array().unwrap().len(), 3);
    let joe = row(&body, JOE);
    assert_eq!(joe["kind"], "piper");
    assert_eq!(joe["languages"], json!(["en-US"]));
    assert_eq!(joe["license"], "CC0-1.0");
    assert_eq!(joe["commercial_use"], true);
    assert_eq!(joe["quality"], "medium");
    assert_eq!(joe["size_bytes"], 63_201_294 + 4_794);
    assert_eq!(joe["installed"], false);
    assert_eq!(joe["pull"], Value::Null);
    assert_eq!(row(&body, "kokoro")["quality"], Value::Null);
    assert_eq!(
        row(&body, "kokoro")["languages"].as_array().unwrap().len(),
        9
    );

    let resp = admin
        .post("/api/admin/models/piper:nobody/pull", &json!({}))
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp).await, "unknown_model");

    let resp = admin
        .post(&format!("/api/admin/models/{JOE}/pull"), &json!({}))
        .await;
    assert_eq!(resp.status(), 202);
    let started: Value = resp.json().await.unwrap();
    assert_eq!(started["name"], JOE);
    assert_eq!(started["pull"]["state"], "running");
    assert_eq!(started["pull"]["total_bytes"], 63_201_294 + 4_794);

    // The mirror holds the first file, so the pull is still running.
    let resp = admin
        .post(&format!("/api/admin/models/{JOE}/pull"), &json!({}))
        .await;
    assert_eq!(resp.status(), 409);
    assert_eq!(error_code(resp).await, "conflict");
    let resp = admin.delete(&format!("/api/admin/models/{JOE}")).await;
    assert_eq!(resp.status(), 409);
    assert_eq!(
        row(&models_body(&admin).await, JOE)["pull"]["state"],
        "running"
    );

    gate.add_permits(1);
    let finished = loop {
        let body = models_body(&admin).await;
        let joe = row(&body, JOE).clone();
        if joe["pull"]["state"] != "running" {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let joe = row(&finished, JOE);
    assert_eq!(joe["pull"]["state"], "done", "{joe}");
    assert_eq!(joe["pull"]["error"], Value::Null);
    assert_eq!(joe["pull"]["done_bytes"], 63_201_294 + 4_794);
    assert_eq!(joe["installed"], true);
    // The voice, and the lock files in .partial/.
    let used = finished["disk_used_bytes"].as_u64().unwrap();
    assert!((63_206_088..63_206_088 + 1024).contains(&used), "{used}");
    assert_eq!(
        sha256_of(&app.dir.path().join("models/piper").join(JOE_ONNX)),
        "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
    );

    // The name's `:` may come percent-encoded.
    let resp = admin
        .delete("/api/admin/models/piper%3Aen_US-joe-medium")
        .await;
    assert_eq!(resp.status(), 204);
    let body = models_body(&admin).await;
    assert_eq!(row(&body, JOE)["installed"], false);
    assert!(!app.dir.path().join("models/piper").join(JOE_ONNX).exists());
    let resp = admin.delete("/api/admin/models/nothing").await;
    assert_eq!(resp.status(), 400);

    // A failed pull is reported with its reason.
    mirror.fault(JOE_ONNX, Fault::Corrupt);
    let resp = admin
        .post(&format!("/api/admin/models/{JOE}/pull"), &json!({}))
        .await;
    assert_eq!(resp.status(), 202);
    let failed = loop {
        let body = models_body(&admin).await;
        let joe = row(&body, JOE).clone();
        if joe["pull"]["state"] != "running" {
            break joe;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed["pull"]["state"], "failed");
    assert!(
        failed["pull"]["error"]
            .as_str()
            .unwrap()
            .contains("expected sha256 58afce03"),
        "{failed}"
    );
    assert_eq!(failed["installed"], false);
    app.stop().await;
}

#[tokio::test]
async fn the_first_run_pull_without_network_warns_once_and_gives_up() {
    let logs = CapturedLogs::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    // Nothing listens on port 1.
    config.models.mirror = Some("http://127.0.0.1:1".into());
    let service = ModelsService::new(Manager::new(&config).unwrap());
    service.auto_pull(&config.models).await;
    let runtime = service
        .progress("runtime")
        .expect("the runtime was tried first");
    assert_eq!(runtime.state, PullPhase::Failed);
    assert!(
        runtime
            .error
            .unwrap()
            .contains("http://127.0.0.1:1/onnxruntime-1.32.0")
    );
    assert_eq!(
        service.progress("kokoro"),
        None,
        "no second try without network"
    );
    let text = logs.text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") && !l.contains("retrying"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(
        warnings[0].contains("`aimake models pull runtime`"),
        "{text}"
    );
    assert!(warnings[0].contains("aimake models import DIR"), "{text}");
    assert!(
        text.contains("fetching model runtime (27.77 MB) in the background"),
        "{text}"
    );
}

#[tokio::test]
async fn the_first_run_pull_skips_a_configured_runtime_and_an_installed_kokoro() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.models.mirror = Some("http://127.0.0.1:1".into());
    config.models.onnxruntime = Some(neural_fixtures().join("runtime").join(LIBRARY));
    let manager = Manager::new(&config).unwrap();
    // Kokoro counts as installed when every file has its size.
    let layout = manager.layout().clone();
    std::fs::create_dir_all(layout.kokoro_voices_dir()).unwrap();
    std::fs::File::create(layout.kokoro_model())
        .unwrap()
        .set_len(92_361_271)
        .unwrap();
    for voice in aimake::models::manifest::KOKORO_VOICES.map(|(v, _)| v) {
        std::fs::File::create(layout.kokoro_voice(voice))
            .unwrap()
            .set_len(522_240)
            .unwrap();
    }
    let service = ModelsService::new(manager);
    service.auto_pull(&config.models).await;
    assert_eq!(service.progress("runtime"), None);
    assert_eq!(service.progress("kokoro"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_is_worked_on_by_one_pull_at_a_time() {
    let fixtures = neural_fixtures();
    let mirror = Mirror::start().await;
    let gate = Arc::new(Semaphore::new(0));
    mirror.fault(JOE_ONNX, Fault::Hold(gate.clone()));
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_mirror(dir.path(), &mirror);
    // Two managers on one models.dir, as a server and an `aimake models` process would be.
    let first = Arc::new(Manager::new(&config).unwrap());
    let second = Manager::new(&config).unwrap();
    let pulling = {
        let first = first.clone();
        tokio::spawn(async move { first.pull(JOE, &|_| {}).await })
    };
    while mirror.requests(JOE_ONNX) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let err = second.pull(JOE, &|_| {}).await.unwrap_err();
    assert!(matches!(err, ModelError::Busy { .. }), "{err}");
    assert!(err.to_string().contains(JOE), "{err}");
    let err = second.remove(JOE).await.unwrap_err();
    assert!(matches!(err, ModelError::Busy { .. }), "{err}");
    let import = dir.path().join("import");
    std::fs::create_dir_all(&import).unwrap();
    std::fs::copy(
        fixtures.join("mirror").join(JOE_JSON),
        import.join(JOE_JSON),
    )
    .unwrap();
    let report = second.import(&import).await.unwrap();
    assert!(report.installed.is_empty(), "{report:?}");
    assert_eq!(report.skipped.len(), 1);
    assert!(report.skipped[0].1.contains("being pulled"), "{report:?}");
    // Other models are not held up.
    assert!(second.remove("kokoro").await.is_ok());

    // A server refuses too, with 409.
    let url = mirror.url.clone();
    let models_dir = first.layout().root().to_path_buf();
    let app = TestApp::spawn_with(move |c| {
        c.models.mirror = Some(url);
        c.models.dir = Some(models_dir);
    })
    .await;
    let admin = app.signed_in("admin@example.com", Role::Admin).await;
    let resp = admin
        .post(&format!("/api/admin/models/{JOE}/pull"), &json!({}))
        .await;
    assert_eq!(resp.status(), 409);
    assert_eq!(row(&models_body(&admin).await, JOE)["pull"], Value::Null);

    gate.add_permits(1);
    let report = pulling.await.unwrap().unwrap();
    assert_eq!(report.downloaded, [JOE_ONNX, JOE_JSON]);
    assert_eq!(mirror.requests(JOE_ONNX), 1);
    let resp = admin.delete(&format!("/api/admin/models/{JOE}")).await;
    assert_eq!(resp.status(), 204);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_fetches_the_runtime_and_kokoro_in_the_background_on_first_run() {
    use std::io::BufRead;

    let fixtures = neural_fixtures();
    let mirror = Mirror::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = std::process::Command::new(bin())
        .args(["serve", "--log-format", "json"])
        .current_dir(dir.path())
        .env_remove("AIMAKE_CONFIG")
        .env_remove("RUST_LOG")
        .env("AIMAKE_DATA__DIR", &data)
        .env("AIMAKE_SERVER__BIND", "127.0.0.1:0")
        .env("AIMAKE_MODELS__MIRROR", &mirror.url)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (seen, rest) = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let last = line.contains("model kokoro installed") || is_model_warning(&line);
            seen.push(line);
            if last {
                break;
            }
        }
        (seen, lines)
    })
    .await
    .unwrap();
    let position = |needle: &str| {
        seen.iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not logged: {seen:#?}"))
    };
    let ready = position("aimake is ready");
    let runtime_start = position("fetching model runtime (27.77 MB) in the background");
    let runtime_done = position("model runtime installed (27.77 MB fetched in");
    let kokoro_start = position("fetching model kokoro (120.56 MB) in the background");
    let kokoro_done = position("model kokoro installed (120.56 MB fetched in");
    assert!(
        ready < runtime_done && runtime_start < runtime_done,
        "{seen:#?}"
    );
    assert!(
        runtime_done < kokoro_start && kokoro_start < kokoro_done,
        "{seen:#?}"
    );
    assert!(!seen.iter().any(|l| is_model_warning(l)), "{seen:#?}");

    let models = data.join("models");
    assert_eq!(
        sha256_of(&models.join("runtime").join(LIBRARY)),
        sha256_of(&fixtures.join("runtime").join(LIBRARY))
    );
    assert_eq!(
        sha256_of(&models.join("kokoro/kokoro-v1.0.int8.onnx")),
        "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
    );
    assert_eq!(
        std::fs::read_dir(models.join("kokoro/voices"))
            .unwrap()
            .count(),
        54
    );
    assert_eq!(mirror.requests(JOE_ONNX), 0, "only the runtime and kokoro");

    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || {
        rest.for_each(drop);
        child.wait().unwrap()
    })
    .await
    .unwrap();
    assert!(exit.success(), "{exit:?}");
}

fn is_model_warning(line: &str) -> bool {
    line.contains("\"WARN\"") && line.contains("aimake::models")
}
