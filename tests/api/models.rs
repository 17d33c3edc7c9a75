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
use tokio::io::{AsyncReadExt, AsyncSeekExt};
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
    /// Like `Cut`, once; then the file is served whole (and ranges of it).
    CutOnce,
    /// Answers only once a permit is added to the semaphore.
    Hold(Arc<Semaphore>),
}

struct MirrorState {
    root: PathBuf,
    faults: Mutex<HashMap<String, Fault>>,
    requests: Mutex<HashMap<String, usize>>,
    /// The `Range` header of every request that had one.
    ranges: Mutex<Vec<String>>,
}

/// A models mirror on 127.0.0.1: the fixture files under their official names.
struct Mirror {
    url: String,
    state: Arc<MirrorState>,
    task: tokio::task::JoinHandle<()>,
}

impl Mirror {
    async fn start() -> Self {
        Self::serving(neural_fixtures().join("mirror")).await
    }

    /// A mirror of the files under `root`.
    async fn serving(root: PathBuf) -> Self {
        let state = Arc::new(MirrorState {
            root,
            faults: Mutex::default(),
            requests: Mutex::default(),
            ranges: Mutex::default(),
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

async fn mirror_file(
    State(state): State<Arc<MirrorState>>,
    uri: Uri,
    headers: axum::http::HeaderMap,
) -> Response {
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
    let mut fault = state.faults.lock().unwrap().get(&name).cloned();
    if let Some(Fault::CutOnce) = fault {
        state.faults.lock().unwrap().remove(&name);
        fault = Some(Fault::Cut);
    }
    let range = headers
        .get(header::RANGE)
        .map(|v| v.to_str().unwrap().to_string());
    if let Some(r) = &range {
        state.ranges.lock().unwrap().push(r.clone());
    }
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
        None if range.is_some() => {
            // `bytes=<from>-`, the only form the manager sends.
            let from: u64 = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|r| r.parse().ok())
                .unwrap();
            file.seek(std::io::SeekFrom::Start(from)).await.unwrap();
            return Response::builder()
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_LENGTH, len - from)
                .header(
                    header::CONTENT_RANGE,
                    format!("bytes {from}-{}/{len}", len - 1),
                )
                .body(Body::from_stream(ReaderStream::new(file)))
                .unwrap();
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

#[tokio::test]
async fn a_download_cut_off_goes_on_from_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    // Big enough that half of it is on the wire before the connection drops.
    let bytes: Vec<u8> = (0..8_000_000u32).map(|i| (i % 251) as u8).collect();
    let (mirror, manifest) = whisper_mirror_of(dir.path(), bytes).await;
    let size = manifest.get("whisper:base").unwrap().files[0].size;
    mirror.fault("ggml-base.bin", Fault::CutOnce);
    let config = config_with_mirror(&dir.path().join("data"), &mirror);
    let manager = Manager::with_manifest(&config, manifest).unwrap();
    let last = Mutex::new(0);
    let report = manager
        .pull("whisper:base", &|p| *last.lock().unwrap() = p.done_bytes)
        .await
        .unwrap();
    assert_eq!(report.downloaded, ["ggml-base.bin"]);
    assert_eq!(report.bytes, size);
    assert_eq!(*last.lock().unwrap(), size);
    assert_eq!(mirror.requests("ggml-base.bin"), 2);
    // The second request asks only for the rest of what the first one delivered.
    let ranges = mirror.state.ranges.lock().unwrap().clone();
    let [range] = ranges.as_slice() else {
        panic!("one request with a range: {ranges:?}")
    };
    let from: u64 = range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("{range}"));
    assert!(from > 0 && from <= size / 2, "{range}");
    let models = manager.layout().root().to_path_buf();
    assert_eq!(
        sha256_of(&models.join("whisper/ggml-base.bin")),
        manifest.get("whisper:base").unwrap().files[0].sha256
    );
    assert_eq!(partials(&models), Vec::<String>::new());
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
    // The runtime, Kokoro, one Piper voice and 18 Whisper models.
    assert_eq!(body["models"].as_array().unwrap().len(), 21);
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

/// A whole Whisper model in whisper.cpp's format, tiny: one encoder and one decoder layer of
/// width 4 and every tensor whisper.cpp expects, f16 zeros. `n_vocab` 51864 is English only.
fn tiny_whisper_model(n_vocab: i32) -> Vec<u8> {
    let mut out = Vec::new();
    let put = |out: &mut Vec<u8>, x: i32| out.extend_from_slice(&x.to_le_bytes());
    put(&mut out, 0x6767_6d6c);
    for x in [n_vocab, 8, 4, 1, 1, 4, 4, 1, 1, 80, 1] {
        put(&mut out, x);
    }
    put(&mut out, 80);
    put(&mut out, 3);
    out.extend(std::iter::repeat_n(0u8, 4 * 80 * 3));
    put(&mut out, 1);
    put(&mut out, 5);
    out.extend_from_slice(b"hello");
    // 7 + 15 per encoder layer + 4 + 24 per decoder layer.
    for i in 0..50 {
        let name = format!("t.{i}.weight");
        for x in [2, name.len() as i32, 1, 4, 3] {
            put(&mut out, x);
        }
        out.extend_from_slice(name.as_bytes());
        out.extend(std::iter::repeat_n(0u8, 2 * 12));
    }
    out
}

/// A manifest whose `whisper:base` is `bytes`, served as `ggml-base.bin`.
fn whisper_manifest(bytes: &[u8]) -> &'static aimake::models::Manifest {
    use aimake::models::manifest::Destination;
    use aimake::models::{Manifest, ModelEntry, ModelFile, ModelKind};
    Box::leak(Box::new(Manifest::new(vec![ModelEntry {
        name: "whisper:base".into(),
        kind: ModelKind::Whisper,
        languages: vec!["mul".into()],
        license: "MIT".into(),
        commercial_use: true,
        quality: None,
        files: vec![ModelFile {
            name: "ggml-base.bin".into(),
            url: "https://huggingface.co/ggerganov/whisper.cpp/resolve/main/ggml-base.bin".into(),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
            extract: None,
            destination: Destination::WhisperModel("base".into()),
        }],
    }])))
}

/// A mirror holding `ggml-base.bin`, and a manifest pinning that file as `whisper:base`.
async fn whisper_mirror(dir: &Path) -> (Mirror, &'static aimake::models::Manifest) {
    whisper_mirror_of(dir, tiny_whisper_model(51_865)).await
}

async fn whisper_mirror_of(
    dir: &Path,
    bytes: Vec<u8>,
) -> (Mirror, &'static aimake::models::Manifest) {
    let root = dir.join("mirror");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("ggml-base.bin"), &bytes).unwrap();
    (Mirror::serving(root).await, whisper_manifest(&bytes))
}

#[tokio::test]
async fn whisper_base_is_pulled_from_a_mirror_checked_against_its_hash_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (mirror, manifest) = whisper_mirror(dir.path()).await;
    let config = config_with_mirror(&dir.path().join("data"), &mirror);
    let manager = Manager::with_manifest(&config, manifest).unwrap();
    let models = manager.layout().root().to_path_buf();

    // A corrupt answer installs nothing.
    mirror.fault("ggml-base.bin", Fault::Corrupt);
    let err = manager.pull("whisper:base", &|_| {}).await.unwrap_err();
    assert!(matches!(err, ModelError::HashMismatch { .. }), "{err}");
    assert!(!models.join("whisper/ggml-base.bin").exists());
    assert_eq!(partials(&models), Vec::<String>::new());

    mirror.heal("ggml-base.bin");
    let report = manager.pull("whisper:base", &|_| {}).await.unwrap();
    assert_eq!(report.downloaded, ["ggml-base.bin"]);
    assert_eq!(
        sha256_of(&models.join("whisper/ggml-base.bin")),
        manifest.get("whisper:base").unwrap().files[0].sha256
    );
    let base = manager.list().into_iter().next().unwrap();
    assert_eq!(base.name, "whisper:base");
    assert!(base.installed && base.verified);
    assert_eq!(manager.layout().whisper_models(), ["base"]);

    // Installed and verified: not fetched again.
    let report = manager.pull("whisper:base", &|_| {}).await.unwrap();
    assert_eq!(report.already_installed, ["ggml-base.bin"]);
    assert_eq!(mirror.requests("ggml-base.bin"), 2);

    let removed = manager.remove("whisper:base").await.unwrap();
    assert_eq!(removed.files, 1);
    assert!(
        !models.join("whisper").exists(),
        "the emptied folder goes too"
    );
    assert!(!manager.list()[0].installed);
}

#[tokio::test]
async fn the_first_run_pull_fetches_whisper_base_only_when_no_whisper_model_is_installed() {
    let dir = tempfile::tempdir().unwrap();
    let (mirror, manifest) = whisper_mirror(dir.path()).await;
    let mut config = config_with_mirror(&dir.path().join("data"), &mirror);
    // The runtime is configured; this manifest has no Kokoro.
    config.models.onnxruntime = Some(dir.path().join("libonnxruntime.so"));

    // Turned off: nothing is fetched.
    config.models.auto_pull_whisper = String::new();
    let service = ModelsService::new(Manager::with_manifest(&config, manifest).unwrap());
    service.auto_pull(&config.models).await;
    assert_eq!(service.progress("whisper:base"), None);
    assert_eq!(mirror.requests("ggml-base.bin"), 0);

    // A model of the user's own counts as a Whisper model.
    config.models.auto_pull_whisper = "base".into();
    let own = dir.path().join("own.bin");
    std::fs::write(&own, tiny_whisper_model(51_864)).unwrap();
    service
        .manager()
        .import_file(&own, Some("mine"))
        .await
        .unwrap();
    service.auto_pull(&config.models).await;
    assert_eq!(service.progress("whisper:base"), None);
    service.remove("whisper:mine").await.unwrap();

    service.auto_pull(&config.models).await;
    let pull = service
        .progress("whisper:base")
        .expect("whisper:base was pulled");
    assert_eq!(pull.state, PullPhase::Done, "{:?}", pull.error);
    assert!(service.manager().layout().whisper_model("base").is_file());
    assert_eq!(mirror.requests("ggml-base.bin"), 1);

    // Installed: a second start fetches nothing.
    let service = ModelsService::new(Manager::with_manifest(&config, manifest).unwrap());
    service.auto_pull(&config.models).await;
    assert_eq!(service.progress("whisper:base"), None);
    assert_eq!(mirror.requests("ggml-base.bin"), 1);
}

#[tokio::test]
async fn the_first_run_whisper_pull_without_network_warns_once_how_to_install_it_later() {
    let logs = CapturedLogs::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.models.mirror = Some("http://127.0.0.1:1".into());
    config.models.onnxruntime = Some(dir.path().join("libonnxruntime.so"));
    let manifest = whisper_manifest(&tiny_whisper_model(51_865));
    let service = ModelsService::new(Manager::with_manifest(&config, manifest).unwrap());
    service.auto_pull(&config.models).await;
    assert_eq!(
        service.progress("whisper:base").unwrap().state,
        PullPhase::Failed
    );
    let text = logs.text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") && !l.contains("retrying"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    for part in [
        "Transcription on this machine stays off until whisper:base is installed",
        "`aimake models pull whisper:base`",
        "models.auto_pull_whisper = \"\"",
    ] {
        assert!(warnings[0].contains(part), "{part:?} missing from {text}");
    }
}

/// `aimake models import PATH [--name NAME]` with no mirror.
async fn import(data: &Path, args: &[&std::ffi::OsStr]) -> std::process::Output {
    tokio::process::Command::new(bin())
        .args(["models", "import"])
        .args(args)
        .current_dir(data.parent().unwrap())
        .env_remove("AIMAKE_CONFIG")
        .env_remove("RUST_LOG")
        .env("AIMAKE_DATA__DIR", data)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_imports_a_whisper_model_of_your_own_lists_it_unverified_and_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let models = data.join("models");
    let mirror = Mirror::serving(dir.path().to_path_buf()).await;
    let own = dir.path().join("ggml-german-ft.bin");
    std::fs::write(&own, tiny_whisper_model(51_865)).unwrap();

    let out = import(&data, &[own.as_os_str()]).await;
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("installed whisper/custom/german-ft.bin (whisper:german-ft, "),
        "{text}"
    );
    assert!(text.contains("unverified"), "{text}");
    assert!(
        text.contains("[providers.whisper] model = \"german-ft\""),
        "{text}"
    );
    assert_eq!(
        sha256_of(&models.join("whisper/custom/german-ft.bin")),
        sha256_of(&own)
    );

    // In a directory it is not taken for an official file, and the report says what to do.
    let folder = dir.path().join("folder");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(&own, folder.join("ggml-german-ft.bin")).unwrap();
    let out = import(&data, &[folder.as_os_str()]).await;
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("skipped ggml-german-ft.bin: not a file of any known model")
            && stdout(&out)
                .contains("import it on its own (`aimake models import FILE --name NAME`)"),
        "{}",
        stdout(&out)
    );

    // Under a name of its own choosing, and again: replaced.
    let name = std::ffi::OsStr::new("--name");
    for verb in ["installed", "replaced"] {
        let out = import(&data, &[own.as_os_str(), name, "de.v2".as_ref()]).await;
        assert!(out.status.success(), "{}", stdout(&out));
        assert!(
            stdout(&out).starts_with(&format!("{verb} whisper/custom/de.v2.bin")),
            "{}",
            stdout(&out)
        );
    }

    let list = stdout(&aimake(&data, &mirror, &["models", "list"]).await);
    assert_eq!(listed_installed(&list, "whisper:german-ft"), "unverified");
    assert_eq!(listed_installed(&list, "whisper:de.v2"), "unverified");
    assert_eq!(listed_installed(&list, "whisper:base"), "no");
    let row = list
        .lines()
        .find(|l| l.starts_with("whisper:german-ft "))
        .unwrap();
    assert!(row.contains(" whisper ") && row.contains(" mul "), "{row}");
    let base = list
        .lines()
        .find(|l| l.starts_with("whisper:base "))
        .unwrap();
    assert!(base.contains("147.95 MB") && base.contains("MIT"), "{base}");
    let tiny_en = list
        .lines()
        .find(|l| l.starts_with("whisper:tiny.en "))
        .unwrap();
    assert!(tiny_en.contains(" en "), "{tiny_en}");

    let out = aimake(&data, &mirror, &["models", "remove", "whisper:german-ft"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("removed whisper:german-ft: 1 file(s)"));
    assert!(!models.join("whisper/custom/german-ft.bin").exists());
    assert!(models.join("whisper/custom/de.v2.bin").exists());
    let out = aimake(&data, &mirror, &["models", "remove", "whisper:german-ft"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("There is no model called \"whisper:german-ft\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_a_file_that_is_no_whole_whisper_model_fails_clearly_and_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let models = data.join("models");
    let model = tiny_whisper_model(51_865);
    let name = std::ffi::OsStr::new("--name");
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "voice.onnx",
            [&[0x08u8, 0x07, 0x12, 0x04][..], b"pytorch"].concat(),
            "looks like an ONNX file (a Piper or Kokoro voice?)",
        ),
        (
            "notes.txt",
            b"a transcript, not a model".to_vec(),
            "not a whisper.cpp model",
        ),
        ("half.bin", model[..model.len() / 2].to_vec(), "cut short"),
        ("empty.bin", Vec::new(), "it is empty"),
        (
            // Official name, other bytes: the official model's name is not taken.
            "ggml-base.bin",
            model.clone(),
            "it is not the official whisper:base (its sha256 differs), and \"base\" is that model's name; choose another with --name",
        ),
    ];
    for (file, bytes, expected) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, &bytes).unwrap();
        let out = import(&data, &[path.as_os_str()]).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file}: {}", stdout(&out));
        assert!(
            err.contains(expected),
            "{file}: {expected:?} missing from {err}"
        );
        assert!(err.contains("Nothing was installed"), "{file}: {err}");
    }
    let out = import(
        &data,
        &[
            dir.path().join("ggml-base.bin").as_os_str(),
            name,
            "a/x".as_ref(),
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may hold only letters"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = import(&data, &[dir.path().as_os_str(), name, "x".as_ref()]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a directory"));
    assert!(!models.join("whisper").exists());
    assert_eq!(partials(&models), Vec::<String>::new());
}

#[tokio::test]
async fn an_official_whisper_file_dropped_into_import_is_the_official_model() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = tiny_whisper_model(51_865);
    let config = test_config(&dir.path().join("data"));
    let manager = Manager::with_manifest(&config, whisper_manifest(&bytes)).unwrap();
    // Whatever it is called, and whatever name is asked for.
    let copy = dir.path().join("downloaded (1).bin");
    std::fs::write(&copy, &bytes).unwrap();
    let imported = manager.import_file(&copy, Some("mine")).await.unwrap();
    assert_eq!(imported.model, "whisper:base");
    assert_eq!(imported.path, "whisper/ggml-base.bin");
    assert!(imported.verified);
    assert!(manager.layout().whisper_customs().is_empty());
    let base = &manager.list()[0];
    assert!(base.installed && base.verified);

    // A Piper voice's config dropped into import is recognised by the built-in manifest.
    let builtin = Manager::new(&config).unwrap();
    let json = neural_fixtures().join("mirror").join(JOE_JSON);
    let imported = builtin.import_file(&json, None).await.unwrap();
    assert_eq!(imported.model, JOE);
    assert_eq!(imported.path, format!("piper/{JOE_JSON}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_the_whisper_models_and_remove_an_imported_one() {
    let app = TestApp::spawn().await;
    let admin = app.signed_in("admin@example.com", Role::Admin).await;
    let own = app.dir.path().join("ft.bin");
    std::fs::write(&own, tiny_whisper_model(51_864)).unwrap();
    let manager = Manager::new(&test_config(app.dir.path())).unwrap();
    manager.import_file(&own, Some("ft-en")).await.unwrap();

    let body = models_body(&admin).await;
    let base = row(&body, "whisper:base");
    assert_eq!(base["kind"], "whisper");
    assert_eq!(base["languages"], json!(["mul"]));
    assert_eq!(base["size_bytes"], 147_951_465);
    assert_eq!(base["license"], "MIT");
    assert_eq!(base["installed"], false);
    assert_eq!(base["verified"], true);
    assert_eq!(
        row(&body, "whisper:small.en-q8_0")["languages"],
        json!(["en"])
    );
    let own_row = row(&body, "whisper:ft-en");
    assert_eq!(own_row["kind"], "whisper");
    assert_eq!(own_row["installed"], true);
    assert_eq!(own_row["verified"], false);
    assert_eq!(
        own_row["languages"],
        json!(["en"]),
        "51864 tokens: English only"
    );
    assert_eq!(own_row["license"], "");
    assert_eq!(
        own_row["size_bytes"],
        std::fs::metadata(&own).unwrap().len()
    );
    assert_eq!(row(&body, JOE)["verified"], true);

    let resp = admin.delete("/api/admin/models/whisper%3Aft-en").await;
    assert_eq!(resp.status(), 204);
    assert!(manager.layout().whisper_customs().is_empty());
    let body = models_body(&admin).await;
    assert!(
        !body["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "whisper:ft-en")
    );
    let resp = admin.delete("/api/admin/models/whisper:ft-en").await;
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp).await, "unknown_model");
    app.stop().await;
}
