//! The OpenAI-compatible speech API (`/v1`) through the real server: routing to the fake
//! OpenAI and to the local espeak-ng voice, every response format, streaming and SSE, the
//! result cache, quotas, usage, discovery, OpenAI's error envelope on every `/v1` path, and
//! the official OpenAI Python SDK as the client.

use std::time::{Duration, Instant};

use aimake::audio::Format;
use aimake::config::Config;
use serde_json::{Value, json};

use crate::fakes::{Failure, FakeOpenAi};
use crate::helpers::{Session, TestApp, client_python, sse_data};

const HELLO: &str = "Hello there. This is the gateway speaking.";

async fn speech(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/audio/speech"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The whole body of a successful speech answer, with its content type.
async fn audio(resp: reqwest::Response) -> (String, Vec<u8>) {
    assert_eq!(resp.status(), 200, "{:?}", resp.headers());
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    (content_type, resp.bytes().await.unwrap().to_vec())
}

/// An error answer's `error` object, checked to be exactly OpenAI's envelope.
async fn openai_error(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    let error = body["error"].clone();
    let mut keys: Vec<&str> = error
        .as_object()
        .unwrap_or_else(|| panic!("no error object: {body}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message", "param", "type"], "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    error
}

/// How long the audio lasts, decoded as the `response_format` says it is.
fn decoded_ms(bytes: &[u8], response_format: &str) -> u64 {
    let format = match response_format {
        "pcm" => Format::PcmS16Le {
            sample_rate: 24_000,
            channels: 1,
        },
        other => {
            let container = match other {
                "mp3" => Format::Mp3,
                "opus" => Format::Ogg,
                "flac" => Format::Flac,
                "wav" => Format::Wav,
                _ => unreachable!(),
            };
            assert_eq!(Format::sniff(bytes), Some(container), "{other}");
            container
        }
    };
    aimake::audio::decode(bytes, format)
        .unwrap_or_else(|e| panic!("{response_format} does not decode: {e}"))
        .duration_ms()
}

/// The caller's usage rows.
async fn usage(session: &Session) -> Vec<Value> {
    let resp = session.get("/api/usage").await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn speech_requests(fake: &FakeOpenAi) -> Vec<Value> {
    fake.requests()
        .iter()
        .filter(|r| r.path().ends_with("/audio/speech"))
        .map(|r| r.json())
        .collect()
}

/// The library audio (`wav`) the app makes of `text` with `voice`, byte for byte.
async fn library_wav(session: &Session, text: &str, voice: &str) -> Vec<u8> {
    let audio = session
        .create_finished(&json!({"text": text, "voice": voice, "format": "wav"}))
        .await;
    assert_eq!(audio["status"], "succeeded", "{audio}");
    let file = session
        .get(audio["file_url"].as_str().unwrap())
        .await
        .bytes()
        .await
        .unwrap();
    file.to_vec()
}

#[tokio::test]
async fn an_openai_voice_name_reaches_the_mapped_local_voice_when_no_openai_key_is_set() {
    let app = TestApp::spawn().await;
    let (session, key) = app.user_with_key("ada@example.com").await;
    let (content_type, fable) = audio(
        speech(
            &app,
            &key,
            json!({"model": "tts-1", "voice": "fable", "input": HELLO, "response_format": "wav"}),
        )
        .await,
    )
    .await;
    assert_eq!(content_type, "audio/wav");
    // `fable` is British: the local voice en-gb, exactly as the library makes it.
    assert_eq!(fable, library_wav(&session, HELLO, "local:en-gb").await);
    assert_ne!(fable, library_wav(&session, HELLO, "local:en-us").await);
    let (_, nova) = audio(
        speech(
            &app,
            &key,
            json!({"model": "gpt-4o-mini-tts", "voice": "nova", "input": HELLO, "response_format": "wav"}),
        )
        .await,
    )
    .await;
    assert_eq!(nova, library_wav(&session, HELLO, "local:en-us").await);
    app.stop().await;
}

#[tokio::test]
async fn every_response_format_decodes_to_audio_from_a_local_voice_and_from_openai() {
    let fake = FakeOpenAi::start().await;
    let local = TestApp::spawn().await;
    let openai = TestApp::spawn_with(|c| fake.configure(c)).await;
    for app in [&local, &openai] {
        let (_, key) = app.user_with_key("ada@example.com").await;
        for (format, content_type) in [
            ("mp3", "audio/mpeg"),
            ("opus", "audio/ogg"),
            ("flac", "audio/flac"),
            ("wav", "audio/wav"),
            ("pcm", "audio/pcm"),
        ] {
            let body = json!({"model": "tts-1", "voice": "alloy", "input": HELLO, "response_format": format});
            let (got_type, bytes) = audio(speech(app, &key, body).await).await;
            assert_eq!(got_type, content_type, "{format}");
            let ms = decoded_ms(&bytes, format);
            assert!(ms > 1000, "{format}: {ms} ms of audio");
        }
    }
    // OpenAI was asked for each format itself, and its answers passed through.
    let formats: Vec<String> = speech_requests(&fake)
        .iter()
        .map(|r| r["response_format"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(formats, ["mp3", "opus", "flac", "wav", "pcm"]);
    local.stop().await;
    openai.stop().await;
}

#[tokio::test]
async fn openai_models_reach_openai_with_their_model_voice_speed_and_instructions() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let (session, key) = app.user_with_key("ada@example.com").await;
    for body in [
        json!({"model": "tts-1-hd", "voice": "nova", "input": "One.", "speed": 1.5}),
        json!({"model": "gpt-4o-mini-tts", "voice": "marin", "input": "Two.", "instructions": "Speak softly."}),
        json!({"model": "tts-1", "voice": {"id": "echo"}, "input": "Three.", "instructions": "Ignored here.", "user": "x", "extra": {"a": 1}}),
    ] {
        let (content_type, bytes) = audio(speech(&app, &key, body).await).await;
        assert_eq!(content_type, "audio/mpeg");
        assert!(decoded_ms(&bytes, "mp3") > 0);
    }
    let sent = speech_requests(&fake);
    assert_eq!(sent.len(), 3);
    assert_eq!(
        (&sent[0]["model"], &sent[0]["voice"]),
        (&json!("tts-1-hd"), &json!("nova"))
    );
    assert_eq!(sent[0]["speed"], 1.5);
    assert_eq!(sent[1]["model"], "gpt-4o-mini-tts");
    assert_eq!(sent[1]["instructions"], "Speak softly.");
    // tts-1 takes no instructions: they are left out rather than refused.
    assert_eq!(
        (&sent[2]["model"], &sent[2]["voice"]),
        (&json!("tts-1"), &json!("echo"))
    );
    assert!(sent[2].get("instructions").is_none(), "{}", sent[2]);
    let services: Vec<String> = usage(&session)
        .await
        .iter()
        .map(|r| r["service"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        services,
        [
            "tts:openai:gpt-4o-mini-tts",
            "tts:openai:tts-1",
            "tts:openai:tts-1-hd"
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn stream_format_audio_arrives_in_several_pieces_as_they_are_made() {
    let fake = FakeOpenAi::start().await;
    fake.set_delay(Duration::from_millis(400));
    let app = TestApp::spawn_with(|c| {
        fake.configure(c);
        c.providers.openai.max_concurrency = 1;
        c.gateway.max_input_chars = 12_000;
    })
    .await;
    let (_, key) = app.user_with_key("ada@example.com").await;
    // Three of OpenAI's 4096-character requests, made one after another.
    let input = "The quick brown fox jumps over the lazy dog. ".repeat(200);
    let started = Instant::now();
    let mut resp = speech(
        &app,
        &key,
        json!({"model": "tts-1", "voice": "alloy", "input": input, "stream_format": "audio"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/mpeg");
    let mut arrivals = Vec::new();
    let mut bytes = Vec::new();
    while let Some(piece) = resp.chunk().await.unwrap() {
        arrivals.push(started.elapsed());
        bytes.extend_from_slice(&piece);
    }
    assert_eq!(speech_requests(&fake).len(), 3);
    assert!(arrivals.len() >= 3, "{arrivals:?}");
    let (first, last) = (arrivals[0], *arrivals.last().unwrap());
    assert!(
        last - first >= Duration::from_millis(600),
        "the first audio came before the rest was made: {arrivals:?}"
    );
    // The fake speaks 60 ms a character, at most 20 s a request.
    let ms = decoded_ms(&bytes, "mp3");
    assert!(ms > 55_000, "{ms} ms for {} characters", input.len());
    app.stop().await;
}

#[tokio::test]
async fn sse_sends_base64_deltas_then_a_done_event_with_the_usage() {
    let app = TestApp::spawn().await;
    let (session, key) = app.user_with_key("ada@example.com").await;
    let resp = speech(
        &app,
        &key,
        json!({"model": "tts-1", "voice": "alloy", "input": HELLO, "response_format": "wav", "stream_format": "sse"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = resp.text().await.unwrap();
    let events = sse_data(&text);
    let (done, deltas) = events.split_last().expect("events");
    assert!(!deltas.is_empty());
    use base64::Engine as _;
    let mut bytes = Vec::new();
    for delta in deltas {
        assert_eq!(delta["type"], "speech.audio.delta", "{delta}");
        bytes.extend(
            base64::engine::general_purpose::STANDARD
                .decode(delta["audio"].as_str().unwrap())
                .unwrap(),
        );
    }
    assert!(decoded_ms(&bytes, "wav") > 1000);
    assert_eq!(done["type"], "speech.audio.done", "{done}");
    let chars = HELLO.chars().count() as u64;
    assert_eq!(done["usage"]["input_tokens"], chars);
    assert_eq!(done["usage"]["total_tokens"], chars);
    assert_eq!(done["usage"]["characters"], chars);
    let rows = usage(&session).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["units"], chars);
    app.stop().await;
}

#[tokio::test]
async fn a_repeat_request_is_answered_from_the_cache_billed_once_and_marked_as_gateway_use() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let (session, key) = app.user_with_key("ada@example.com").await;
    let body =
        json!({"model": "tts-1", "voice": "alloy", "input": HELLO, "response_format": "wav"});
    let (_, first) = audio(speech(&app, &key, body.clone()).await).await;
    assert_eq!(speech_requests(&fake).len(), 1);
    let (_, again) = audio(speech(&app, &key, body.clone()).await).await;
    assert_eq!(again, first);
    assert_eq!(speech_requests(&fake).len(), 1, "answered from the cache");
    // Another format is another result.
    let other =
        json!({"model": "tts-1", "voice": "alloy", "input": HELLO, "response_format": "mp3"});
    audio(speech(&app, &key, other).await).await;
    assert_eq!(speech_requests(&fake).len(), 2);

    let rows = usage(&session).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    let chars = HELLO.chars().count() as i64;
    assert_eq!(row["service"], "tts:openai:tts-1");
    assert_eq!(row["source"], "gateway");
    assert_eq!(row["units"], 3 * chars);
    assert_eq!(row["cached_units"], chars);
    // Two paid at $0.015 per 1,000 characters, rounded up; the cached one is free.
    assert_eq!(
        row["cost_micros"],
        2 * (chars as u64 * 15_000).div_ceil(1000)
    );
    // Nothing went into the library.
    let library: Value = session.get("/api/audios").await.json().await.unwrap();
    assert_eq!(library["items"], json!([]));
    // The app's own use stays apart.
    session
        .create_finished(&json!({"text": "From the app.", "voice": "openai:alloy"}))
        .await;
    let sources: Vec<(String, String)> = usage(&session)
        .await
        .iter()
        .map(|r| {
            (
                r["service"].as_str().unwrap().to_string(),
                r["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [
            ("tts:openai:tts-1".to_string(), "app".to_string()),
            ("tts:openai:tts-1".to_string(), "gateway".to_string())
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn an_exhausted_quota_is_429_insufficient_quota_and_nothing_is_paid() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fake.configure(c);
        c.limits.quota_chars_per_month = 10;
    })
    .await;
    let (_, key) = app.user_with_key("ada@example.com").await;
    let resp = speech(
        &app,
        &key,
        json!({"model": "tts-1", "voice": "alloy", "input": HELLO}),
    )
    .await;
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let error = openai_error(resp, 429).await;
    assert_eq!(error["type"], "insufficient_quota");
    assert_eq!(error["code"], "insufficient_quota");
    assert!(speech_requests(&fake).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_provider_refusing_at_once_is_an_openai_shaped_server_error_and_nothing_is_billed() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let (session, key) = app.user_with_key("ada@example.com").await;
    fake.fail_next(1, Failure::QuotaExceeded);
    let resp = speech(
        &app,
        &key,
        json!({"model": "tts-1", "voice": "alloy", "input": HELLO}),
    )
    .await;
    let error = openai_error(resp, 503).await;
    assert_eq!(
        (&error["type"], &error["code"]),
        (&json!("server_error"), &json!("provider_quota"))
    );
    assert_eq!(speech_requests(&fake).len(), 1, "not retried");
    assert!(usage(&session).await.is_empty());
    // The provider recovered: the same request is spoken and billed.
    audio(
        speech(
            &app,
            &key,
            json!({"model": "tts-1", "voice": "alloy", "input": HELLO}),
        )
        .await,
    )
    .await;
    assert_eq!(usage(&session).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_or_missing_key_is_401_invalid_api_key() {
    let app = TestApp::spawn().await;
    let body = json!({"model": "tts-1", "voice": "alloy", "input": HELLO});
    let wrong = speech(&app, "amk_not_a_real_key", body.clone()).await;
    let error = openai_error(wrong, 401).await;
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["code"], "invalid_api_key");
    assert!(error["param"].is_null());
    let missing = app
        .client
        .post(app.url("/v1/audio/speech"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(openai_error(missing, 401).await["code"], "invalid_api_key");
    let models = app.get("/v1/models").await;
    assert_eq!(openai_error(models, 401).await["code"], "invalid_api_key");
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_are_refused_naming_their_param() {
    let app = TestApp::spawn_with(|c| c.gateway.max_input_chars = 20).await;
    let (_, key) = app.user_with_key("ada@example.com").await;
    let unknown_model = speech(
        &app,
        &key,
        json!({"model": "tts-9", "voice": "alloy", "input": "Hi."}),
    )
    .await;
    let error = openai_error(unknown_model, 404).await;
    assert_eq!(
        (&error["type"], &error["code"], &error["param"]),
        (
            &json!("invalid_request_error"),
            &json!("model_not_found"),
            &json!("model")
        )
    );
    assert!(error["message"].as_str().unwrap().contains("tts-9"));

    let aac = speech(
        &app,
        &key,
        json!({"model": "tts-1", "voice": "alloy", "input": "Hi.", "response_format": "aac"}),
    )
    .await;
    let error = openai_error(aac, 400).await;
    assert_eq!(
        (&error["type"], &error["param"]),
        (&json!("invalid_request_error"), &json!("response_format"))
    );
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("mp3, opus, flac, wav, pcm"), "{message}");

    let long = speech(
        &app,
        &key,
        json!({"model": "tts-1", "voice": "alloy", "input": "a".repeat(21)}),
    )
    .await;
    let error = openai_error(long, 400).await;
    assert_eq!(error["param"], "input");
    assert!(error["message"].as_str().unwrap().contains("limit is 20"));

    for (body, param) in [
        (json!({"voice": "alloy", "input": "Hi."}), "model"),
        (json!({"model": "tts-1", "voice": "alloy"}), "input"),
        (
            json!({"model": "tts-1", "voice": "alloy", "input": "  "}),
            "input",
        ),
        (json!({"model": "tts-1", "input": "Hi."}), "voice"),
        (
            json!({"model": "tts-1", "voice": "af_bella", "input": "Hi."}),
            "voice",
        ),
        (
            json!({"model": "tts-1", "voice": "local:xx-nowhere", "input": "Hi."}),
            "voice",
        ),
        (
            json!({"model": "tts-1", "voice": "alloy", "input": "Hi.", "speed": 4.5}),
            "speed",
        ),
        (
            json!({"model": "tts-1", "voice": "alloy", "input": "Hi.", "stream_format": "ws"}),
            "stream_format",
        ),
        (
            json!({"model": "tts-1", "voice": "alloy", "input": "Hi.", "instructions": "x".repeat(4097)}),
            "instructions",
        ),
    ] {
        let error = openai_error(speech(&app, &key, body.clone()).await, 400).await;
        assert_eq!(error["param"], param, "{body}: {error}");
        assert_eq!(error["type"], "invalid_request_error");
    }
    // Malformed JSON is OpenAI-shaped too.
    let resp = app
        .client
        .post(app.url("/v1/audio/speech"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        openai_error(resp, 400).await["type"],
        "invalid_request_error"
    );
    app.stop().await;
}

#[tokio::test]
async fn refusals_before_any_handler_use_openai_s_envelope_on_v1_and_the_app_s_on_api() {
    let app = TestApp::spawn_with(|c| {
        c.limits.requests_per_minute = 5;
        c.server.max_body_bytes = 512;
    })
    .await;
    let (_, key) = app.user_with_key("ada@example.com").await;
    // The body limit (413).
    let big = speech(
        &app,
        &key,
        json!({"model": "tts-1", "voice": "alloy", "input": "a".repeat(600)}),
    )
    .await;
    let error = openai_error(big, 413).await;
    assert_eq!(
        (&error["type"], &error["code"]),
        (&json!("invalid_request_error"), &json!("payload_too_large"))
    );
    // An unknown path and a wrong method.
    assert_eq!(
        openai_error(app.get("/v1/chat/nothing").await, 404).await["code"],
        "not_found"
    );
    let put = app
        .client
        .put(app.url("/v1/audio/speech"))
        .send()
        .await
        .unwrap();
    assert_eq!(openai_error(put, 405).await["code"], "method_not_allowed");
    // The per-IP budget (the sign-in, the token and the three requests above spent it).
    let limited = app.get("/v1/audio/models").await;
    assert!(limited.headers().contains_key("retry-after"));
    let error = openai_error(limited, 429).await;
    assert_eq!(
        (&error["type"], &error["code"]),
        (&json!("requests"), &json!("rate_limit_exceeded"))
    );
    // The app's own API keeps its shape.
    let api = app.get("/api/voices").await;
    assert_eq!(api.status(), 429);
    let body: Value = api.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body["error"].get("type").is_none());
    app.stop().await;
}

#[tokio::test]
async fn models_and_voices_are_listed_in_openai_s_and_open_webui_s_shapes() {
    let fake = FakeOpenAi::start().await;
    let local = TestApp::spawn().await;
    let openai = TestApp::spawn_with(|c| {
        fake.configure(c);
        let routes = &mut c.gateway.transcription.models;
        routes.insert(
            "faster-whisper".into(),
            "openai:Systran/faster-whisper-small".into(),
        );
        // ElevenLabs has no key here: nothing hears this name, so it is not offered.
        routes.insert("scribe".into(), "elevenlabs:scribe_v1".into());
    })
    .await;
    // Speech models, then the transcription models a provider hears now: none without one.
    let speech_models = ["gpt-4o-mini-tts", "tts-1", "tts-1-hd"];
    let transcription_models = [
        "whisper-1",
        "gpt-4o-transcribe",
        "gpt-4o-mini-transcribe",
        "faster-whisper",
    ];
    for (app, speaker, heard) in [
        (&local, "local", &[][..]),
        (&openai, "openai", &transcription_models[..]),
    ] {
        let (_, key) = app.user_with_key("ada@example.com").await;
        let resp = app.get_with_key("/v1/models", &key).await;
        assert_eq!(resp.status(), 200);
        let list: Value = resp.json().await.unwrap();
        assert_eq!(list["object"], "list");
        let data = list["data"].as_array().unwrap();
        let ids: Vec<&str> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(ids[..3], speech_models);
        assert_eq!(ids[3..], *heard);
        for m in data {
            assert_eq!(m["object"], "model");
            assert!(m["created"].as_u64().unwrap() > 1_700_000_000);
            assert_eq!(m["owned_by"], speaker, "{m}");
        }
        let whisper = app.get_with_key("/v1/models/whisper-1", &key).await;
        if heard.is_empty() {
            assert_eq!(openai_error(whisper, 404).await["code"], "model_not_found");
        } else {
            let whisper: Value = whisper.json().await.unwrap();
            assert_eq!(
                (&whisper["id"], &whisper["owned_by"]),
                (&json!("whisper-1"), &json!("openai"))
            );
        }
        let one: Value = app
            .get_with_key("/v1/models/tts-1-hd", &key)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(one["id"], "tts-1-hd");
        let missing = app.get_with_key("/v1/models/tts-9", &key).await;
        assert_eq!(openai_error(missing, 404).await["code"], "model_not_found");

        // What Open WebUI asks an OpenAI-compatible TTS server for, without a key.
        let models: Value = app.get("/v1/audio/models").await.json().await.unwrap();
        let ids: Vec<&str> = models["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["gpt-4o-mini-tts", "tts-1", "tts-1-hd"]);
        let voices: Value = app.get("/v1/audio/voices").await.json().await.unwrap();
        let voices = voices["voices"].as_array().unwrap();
        let ids: Vec<&str> = voices.iter().map(|v| v["id"].as_str().unwrap()).collect();
        assert_eq!(ids[..3], ["alloy", "ash", "ballad"]);
        assert!(ids.contains(&"cedar"));
        assert!(ids.contains(&"local:en-us"), "{ids:?}");
        assert!(
            voices
                .iter()
                .all(|v| v["name"].as_str().is_some_and(|n| !n.is_empty()))
        );
    }
    local.stop().await;
    openai.stop().await;
}

#[tokio::test]
async fn the_official_openai_sdk_speaks_streams_lists_models_and_reads_errors() {
    let Some(python) = client_python() else {
        eprintln!(
            "SKIPPED the_official_openai_sdk_speaks_streams_lists_models_and_reads_errors: \
             python3 is not installed, so the official OpenAI SDK cannot run"
        );
        return;
    };
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let (session, key) = app.user_with_key("ada@example.com").await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/openai_speech.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .env("OPENAI_BASE_URL", app.url("/v1"))
        .env("OPENAI_API_KEY", &key)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    let plain = &report["plain"];
    assert_eq!(plain["content_type"], "audio/mpeg");
    let bytes = hex::decode(plain["hex"].as_str().unwrap()).unwrap();
    assert!(decoded_ms(&bytes, "mp3") > 0);

    let streamed = &report["streamed"];
    assert_eq!(streamed["content_type"], "audio/wav");
    let bytes = hex::decode(streamed["hex"].as_str().unwrap()).unwrap();
    assert!(decoded_ms(&bytes, "wav") > 1000);

    let sse = &report["sse"];
    let types: Vec<&str> = sse["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(types.len() >= 2, "{types:?}");
    assert!(
        types[..types.len() - 1]
            .iter()
            .all(|t| *t == "speech.audio.delta")
    );
    assert_eq!(types.last(), Some(&"speech.audio.done"));
    assert!(sse["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let bytes = hex::decode(sse["hex"].as_str().unwrap()).unwrap();
    assert!(decoded_ms(&bytes, "mp3") > 0);

    assert_eq!(
        report["models"],
        json!([
            "gpt-4o-mini-transcribe",
            "gpt-4o-mini-tts",
            "gpt-4o-transcribe",
            "tts-1",
            "tts-1-hd",
            "whisper-1"
        ])
    );

    let bad_key = &report["bad_key"];
    assert_eq!(bad_key["class"], "AuthenticationError");
    assert_eq!(bad_key["status"], 401);
    assert_eq!(bad_key["code"], "invalid_api_key");
    let unknown = &report["unknown_model"];
    assert_eq!(unknown["class"], "NotFoundError");
    assert_eq!(unknown["code"], "model_not_found");
    assert_eq!(unknown["param"], "model");
    let aac = &report["aac"];
    assert_eq!(aac["class"], "BadRequestError");
    assert_eq!(aac["param"], "response_format");

    // The SDK's calls went through: three syntheses at OpenAI, usage on the account.
    assert_eq!(speech_requests(&fake).len(), 3);
    let rows = usage(&session).await;
    assert!(rows.iter().all(|r| r["source"] == "gateway"), "{rows:?}");
    app.stop().await;
}

/// Routing reads the config as loaded: a route of the operator's own reaches its provider.
#[tokio::test]
async fn a_configured_model_name_routes_to_its_provider() {
    let app = TestApp::spawn_with(|c: &mut Config| {
        c.gateway.models.0.insert("espeak".into(), "local".into());
    })
    .await;
    let (session, key) = app.user_with_key("ada@example.com").await;
    let (_, bytes) = audio(
        speech(
            &app,
            &key,
            json!({"model": "espeak", "voice": "en-gb", "input": HELLO, "response_format": "wav"}),
        )
        .await,
    )
    .await;
    assert_eq!(bytes, library_wav(&session, HELLO, "local:en-gb").await);
    app.stop().await;
}
