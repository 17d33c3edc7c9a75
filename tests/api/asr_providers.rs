//! Speech recognition end to end: each provider against its fake server, which hears one word
//! per half second of the real audio it is sent, and the registry that builds them.

use std::sync::Arc;
use std::time::Duration;

use aimake::config::{Config, Secret};
use aimake::providers::asr::{
    self, Asr, Granularities, InputFormat, Task, Transcript, TranscriptionRequest,
};
use aimake::providers::{ErrorKind, Providers};

use crate::fakes::{self, Failure, FakeElevenLabs, FakeOpenAi, FakeTencent, WORD_EVERY_S};
use crate::providers::{Waits, instant_retries};

fn provider(config: &Config, id: &str) -> (Arc<dyn Asr>, Waits) {
    let (policy, waits) = instant_retries(config);
    let providers = Providers::from_config_with(config, policy).expect("providers build");
    (providers.asr(id).expect("provider is enabled"), waits)
}

/// `seconds` of a 16 kHz tone as WAV: real audio the decoder measures.
fn wav(seconds: u32) -> TranscriptionRequest {
    TranscriptionRequest::new(fakes::wav(seconds * 1000, 16_000), InputFormat::Wav)
}

/// A span in whole milliseconds, so times compare exactly.
fn ms(start: f64, end: f64) -> (u64, u64) {
    (
        (start * 1000.0).round() as u64,
        (end * 1000.0).round() as u64,
    )
}

fn words(t: &Transcript) -> Vec<&str> {
    t.words.iter().map(|w| w.word.as_str()).collect()
}

/// Times never go back and stay within the audio.
fn assert_monotonic(t: &Transcript) {
    for pair in t.words.windows(2) {
        assert!(pair[0].start <= pair[1].start, "{:?}", t.words);
    }
    for pair in t.segments.windows(2) {
        assert!(pair[0].start <= pair[1].start, "{:?}", t.segments);
    }
    for w in &t.words {
        assert!(
            w.start <= w.end && w.end <= t.duration,
            "{w:?} in {}",
            t.duration
        );
    }
}

// ---------------------------------------------------------------------------------------------
// OpenAI-compatible

async fn openai() -> (FakeOpenAi, Config) {
    let fake = FakeOpenAi::start().await;
    let mut config = Config::default();
    fake.configure(&mut config);
    (fake, config)
}

#[tokio::test]
async fn openai_transcription_uploads_the_audio_with_its_fields_and_maps_words_and_segments() {
    let (fake, config) = openai().await;
    let (asr, waits) = provider(&config, "openai");
    let mut request = wav(6);
    request.language = Some("en".into());
    request.prompt = Some("Spelled: alpha, bravo.".into());
    request.temperature = Some(0.2);
    let t = asr.transcribe(&request).await.unwrap();

    let sent = fake.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path(), "/v1/audio/transcriptions");
    assert_eq!(
        sent[0].header("authorization"),
        Some(format!("Bearer {}", fake.api_key()).as_str())
    );
    let upload = &fake.uploads()[0];
    let (file_name, content_type, bytes) = upload.file.as_ref().unwrap();
    assert_eq!(file_name, "audio.wav");
    assert_eq!(content_type, "audio/wav");
    assert_eq!(bytes, &request.audio);
    assert_eq!(upload.field("model"), Some("whisper-1"));
    assert_eq!(upload.field("response_format"), Some("verbose_json"));
    assert_eq!(upload.field("language"), Some("en"));
    assert_eq!(upload.field("prompt"), Some("Spelled: alpha, bravo."));
    assert_eq!(upload.field("temperature"), Some("0.2"));
    assert_eq!(upload.all("timestamp_granularities[]"), ["word", "segment"]);

    assert_eq!(t.model, "whisper-1");
    assert_eq!(
        t.language.as_deref(),
        Some("en"),
        "`english` read as a code"
    );
    assert_eq!(t.duration, 6.0);
    assert_eq!(t.words.len(), 12, "one word per half second");
    assert_eq!(words(&t)[..3], ["alpha", "bravo", "charlie"]);
    assert_eq!(ms(t.words[3].start, t.words[3].end), ms(1.5, 1.9));
    assert_eq!(t.segments.len(), 2);
    assert_eq!(
        t.segments[0].text,
        "alpha bravo charlie delta echo foxtrot golf hotel india juliett."
    );
    assert_eq!(ms(t.segments[1].start, t.segments[1].end), ms(5.0, 5.9));
    assert!(t.text.starts_with("alpha bravo"));
    assert_monotonic(&t);
    assert!(waits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn longer_audio_gives_more_words_with_times_that_scale() {
    let (_fake, config) = openai().await;
    let (asr, _) = provider(&config, "openai");
    let short = asr.transcribe(&wav(3)).await.unwrap();
    let long = asr.transcribe(&wav(21)).await.unwrap();
    assert_eq!(short.words.len(), 6);
    assert_eq!(long.words.len(), 42);
    let last = long.words.last().unwrap();
    assert_eq!(ms(last.start, last.end), ms(41.0 * WORD_EVERY_S, 20.9));
    assert_eq!(long.duration, 21.0);
    assert_eq!(long.segments.len(), 5);
    assert_monotonic(&long);
}

#[tokio::test]
async fn only_the_granularities_asked_for_are_requested_and_returned() {
    let (fake, config) = openai().await;
    let (asr, _) = provider(&config, "openai");
    let mut request = wav(6);
    request.granularities = Granularities {
        words: true,
        segments: false,
    };
    let t = asr.transcribe(&request).await.unwrap();
    assert_eq!(fake.uploads()[0].all("timestamp_granularities[]"), ["word"]);
    assert_eq!(t.words.len(), 12);
    assert!(t.segments.is_empty());

    request.granularities = Granularities {
        words: false,
        segments: false,
    };
    let t = asr.transcribe(&request).await.unwrap();
    let upload = &fake.uploads()[1];
    assert_eq!(upload.field("response_format"), Some("json"));
    assert!(upload.all("timestamp_granularities[]").is_empty());
    assert!(t.words.is_empty() && t.segments.is_empty());
    assert!(t.text.starts_with("alpha bravo"));
    assert_eq!(t.duration, 6.0, "measured by the decoder");
}

#[tokio::test]
async fn gpt_4o_models_get_json_and_one_segment_over_the_whole_audio() {
    let (fake, mut config) = openai().await;
    config.providers.openai.asr_price_micros_per_minute = Some(3_000);
    let (asr, _) = provider(&config, "openai");
    let mut request = wav(4);
    request.model = Some("gpt-4o-mini-transcribe".into());
    let t = asr.transcribe(&request).await.unwrap();
    let upload = &fake.uploads()[0];
    assert_eq!(upload.field("model"), Some("gpt-4o-mini-transcribe"));
    assert_eq!(upload.field("response_format"), Some("json"));
    assert!(upload.all("timestamp_granularities[]").is_empty());
    assert_eq!(t.model, "gpt-4o-mini-transcribe");
    assert!(t.words.is_empty(), "gpt-4o models give no word times");
    assert_eq!(t.segments.len(), 1);
    assert_eq!(ms(t.segments[0].start, t.segments[0].end), ms(0.0, 4.0));
    assert_eq!(t.segments[0].text, t.text);
    assert_eq!(t.language, None, "nobody said");
    assert_eq!(
        asr.cost_micros(&t.model, t.duration()),
        200,
        "the configured price"
    );
    assert!(!asr.capabilities("gpt-4o-mini-transcribe").word_timestamps);
}

#[tokio::test]
async fn translation_goes_to_the_translations_endpoint_and_comes_back_in_english() {
    let (fake, config) = openai().await;
    let (asr, _) = provider(&config, "openai");
    let mut request = wav(3);
    request.task = Task::Translate;
    request.language = Some("zh".into());
    let t = asr.transcribe(&request).await.unwrap();
    assert_eq!(fake.requests()[0].path(), "/v1/audio/translations");
    assert_eq!(
        fake.uploads()[0].field("language"),
        None,
        "translations take no language"
    );
    assert_eq!(t.language.as_deref(), Some("en"));
    assert_eq!(words(&t)[0], "alpha");

    request.model = Some("gpt-4o-transcribe".into());
    let e = asr.transcribe(&request).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Rejected);
    assert!(
        e.message
            .ends_with("cannot translate speech with gpt-4o-transcribe"),
        "{}",
        e.message
    );
    assert_eq!(fake.requests().len(), 1, "refused before sending");
}

#[tokio::test]
async fn a_chinese_transcription_says_chinese_and_keeps_cjk_words_unspaced() {
    let (_fake, config) = openai().await;
    let (asr, _) = provider(&config, "openai");
    let mut request = wav(2);
    request.language = Some("zh".into());
    let t = asr.transcribe(&request).await.unwrap();
    assert_eq!(t.language.as_deref(), Some("zh"));
    assert_eq!(t.text, "你好世界今天天气。");
    assert_eq!(words(&t), ["你好", "世界", "今天", "天气。"]);
}

#[tokio::test]
async fn a_wrong_openai_key_is_an_auth_error_at_once_without_the_key() {
    let (fake, mut config) = openai().await;
    config.providers.openai.api_key = Some(Secret::new("sk-wrong-key-998877"));
    let (asr, waits) = provider(&config, "openai");
    let e = asr.transcribe(&wav(1)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_eq!(e.code(), "provider_auth");
    assert!(e.message.ends_with("rejected the API key"), "{}", e.message);
    assert!(!e.message.contains("sk-wr"));
    assert_eq!(fake.requests().len(), 1);
    assert!(waits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn uploads_over_25_mb_are_refused_before_sending_and_a_413_is_too_large() {
    let (fake, mut config) = openai().await;
    let (asr, _) = provider(&config, "openai");
    let over = TranscriptionRequest::new(vec![0u8; 26_214_401], InputFormat::Wav);
    let e = asr.transcribe(&over).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooLarge);
    assert_eq!(e.code(), "payload_too_large");
    assert!(e.message.contains("at most 26214400"), "{}", e.message);
    assert!(fake.requests().is_empty());

    // A server with a smaller limit than configured answers 413 itself.
    config.providers.openai.asr_max_upload_bytes = 30_000_000;
    let (asr, waits) = provider(&config, "openai");
    let e = asr.transcribe(&over).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooLarge);
    assert_eq!(e.status, Some(413));
    assert!(
        e.message
            .contains("Maximum content size limit (26214400) exceeded"),
        "{}",
        e.message
    );
    assert_eq!(fake.requests().len(), 1, "not retried");
    assert!(waits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn rate_limits_are_retried_after_the_retry_after_the_server_asks_for() {
    let (fake, config) = openai().await;
    let (asr, waits) = provider(&config, "openai");
    fake.fail_next(
        1,
        Failure::RateLimited {
            retry_after_s: Some(7),
        },
    );
    fake.fail_next(1, Failure::ServerError);
    let t = asr.transcribe(&wav(2)).await.unwrap();
    assert_eq!(t.words.len(), 4);
    assert_eq!(fake.requests().len(), 3);
    let waits = waits.lock().unwrap();
    assert_eq!(waits.len(), 2);
    assert_eq!(waits[0], Duration::from_secs(7));
}

#[tokio::test]
async fn formats_the_server_cannot_read_and_corrupt_files_are_unsupported_formats() {
    let (fake, config) = openai().await;
    let (asr, _) = provider(&config, "openai");
    let amr = TranscriptionRequest::new(b"#!AMR\n0123".to_vec(), InputFormat::Amr);
    let e = asr.transcribe(&amr).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnsupportedFormat);
    assert!(
        e.message.contains("cannot transcribe amr audio"),
        "{}",
        e.message
    );
    assert!(fake.requests().is_empty());

    let mut corrupt = fakes::wav(1000, 16_000);
    corrupt.truncate(20);
    let e = asr
        .transcribe(&TranscriptionRequest::new(corrupt, InputFormat::Wav))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnsupportedFormat);
    assert_eq!(e.code(), "unsupported_media_type");
    assert!(e.message.contains("might be corrupted"), "{}", e.message);
    assert_eq!(fake.requests().len(), 1, "not retried");
}

#[tokio::test]
async fn an_exhausted_quota_and_a_transcript_that_is_not_one_are_reported() {
    let (fake, mut config) = openai().await;
    config.providers.retry.max_attempts = 2;
    let (asr, _) = provider(&config, "openai");
    fake.fail_next(1, Failure::QuotaExceeded);
    let e = asr.transcribe(&wav(1)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Quota);
    fake.fail_next(1, Failure::GarbageAudio);
    let e = asr.transcribe(&wav(1)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ServerError);
    assert!(e.message.contains("cannot be read"), "{}", e.message);
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn an_asr_base_url_sends_transcriptions_to_another_server_than_speech() {
    let speech = FakeOpenAi::start().await;
    let whisper = FakeOpenAi::start().await;
    let mut config = Config::default();
    speech.configure(&mut config);
    config.providers.openai.asr_base_url = whisper.base_url();
    let (asr, _) = provider(&config, "openai");
    let t = asr.transcribe(&wav(2)).await.unwrap();
    assert_eq!(t.words.len(), 4);
    assert!(speech.requests().is_empty());
    assert_eq!(whisper.requests().len(), 1);
    assert!(
        asr.status()
            .await
            .detail
            .contains("transcription server at 127.0.0.1")
    );
    assert_eq!(
        asr.price_micros_per_minute("whisper-1"),
        0,
        "not OpenAI's price"
    );

    // A speech-only server has no transcription endpoint: the message says what to set.
    let speech_only = FakeElevenLabs::start().await;
    let mut config = Config::default();
    config.providers.openai.asr_base_url = speech_only.base_url();
    let (asr, _) = provider(&config, "openai");
    let e = asr.transcribe(&wav(1)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(
        e.message.contains("providers.openai.asr_base_url"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn a_hanging_transcription_server_times_out_on_the_asr_timeout() {
    let (fake, mut config) = openai().await;
    config.providers.openai.timeout_ms = 60_000;
    config.providers.openai.asr_timeout_ms = 150;
    config.providers.retry.max_attempts = 2;
    let (asr, waits) = provider(&config, "openai");
    fake.fail_next(5, Failure::Hang);
    let e = asr.transcribe(&wav(1)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout);
    assert!(
        e.message
            .contains("did not answer within 150 ms (gave up after 2 attempts)"),
        "{}",
        e.message
    );
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(waits.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn credentials_a_recogniser_echoes_back_never_reach_the_message() {
    let (fake, config) = openai().await;
    let (asr, _) = provider(&config, "openai");
    fake.fail_next(1, Failure::EchoCredentials);
    let e = asr.transcribe(&wav(1)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Rejected);
    assert!(!e.message.contains(fake.api_key()), "{}", e.message);
    assert!(e.message.contains("[redacted]"), "{}", e.message);

    let tencent = FakeTencent::start().await;
    let mut config = Config::default();
    tencent.configure(&mut config);
    let (asr, _) = provider(&config, "tencent");
    tencent.fail_next(1, Failure::EchoCredentials);
    let e = asr.transcribe(&wav(1)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Rejected);
    for secret in [tencent.secret_id(), tencent.secret_key()] {
        assert!(!e.message.contains(secret), "{}", e.message);
    }
}

/// The fake's own contract, which clients of aimake's API (SDKs asking for subtitles or
/// plain text) rely on through it.
#[tokio::test]
async fn the_fake_openai_answers_every_response_format_and_refuses_bad_combinations() {
    let fake = FakeOpenAi::start().await;
    let url = format!("{}/audio/transcriptions", fake.base_url());
    let send = |fields: &[(&str, &str)]| {
        let mut form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(fakes::wav(6000, 16_000)).file_name("talk.wav"),
        );
        for (name, value) in fields {
            form = form.text(name.to_string(), value.to_string());
        }
        reqwest::Client::new()
            .post(&url)
            .bearer_auth(fake.api_key())
            .multipart(form)
            .send()
    };
    let text = |r: reqwest::Response| async move { (r.status().as_u16(), r.text().await.unwrap()) };

    let (status, body) = text(
        send(&[("model", "whisper-1"), ("response_format", "text")])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body.starts_with("alpha bravo") && body.ends_with("bravo."),
        "{body}"
    );

    let (_, srt) = text(
        send(&[("model", "whisper-1"), ("response_format", "srt")])
            .await
            .unwrap(),
    )
    .await;
    assert!(
        srt.starts_with("1\n00:00:00,000 --> 00:00:04,900\nalpha bravo"),
        "{srt}"
    );
    assert!(
        srt.contains("\n2\n00:00:05,000 --> 00:00:05,900\n"),
        "{srt}"
    );

    let (_, vtt) = text(
        send(&[("model", "whisper-1"), ("response_format", "vtt")])
            .await
            .unwrap(),
    )
    .await;
    assert!(
        vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:04.900\n"),
        "{vtt}"
    );

    let (_, json) = text(send(&[("model", "whisper-1")]).await.unwrap()).await;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["usage"]["seconds"], 6);

    let (_, verbose) = text(
        send(&[("model", "whisper-1"), ("response_format", "verbose_json")])
            .await
            .unwrap(),
    )
    .await;
    let verbose: serde_json::Value = serde_json::from_str(&verbose).unwrap();
    assert_eq!(verbose["language"], "english");
    assert_eq!(verbose["segments"].as_array().unwrap().len(), 2);
    assert!(verbose.get("words").is_none(), "words only when asked for");

    for (fields, param) in [
        (
            &[
                ("model", "whisper-1"),
                ("timestamp_granularities[]", "word"),
            ][..],
            "timestamp_granularities",
        ),
        (
            &[("model", "gpt-4o-transcribe"), ("response_format", "srt")][..],
            "response_format",
        ),
        (&[("model", "tts-1")][..], "model"),
        (&[("response_format", "json")][..], "model"),
    ] {
        let (status, body) = text(send(fields).await.unwrap()).await;
        assert_eq!(status, 400, "{fields:?}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["param"], param, "{fields:?}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test]
async fn counted_transcriptions_name_their_usage_service_and_cost() {
    let (_fake, mut config) = openai().await;
    // OpenAI's price, set by hand: the fake is not api.openai.com.
    config.providers.openai.asr_price_micros_per_minute = Some(6_000);
    let (asr, _) = provider(&config, "openai");
    let t = asr::transcribe(asr.as_ref(), &wav(90)).await.unwrap();
    assert_eq!(asr::service_of(asr.as_ref(), &t), "asr:openai:whisper-1");
    assert_eq!(
        asr.cost_micros(&t.model, t.duration()),
        9_000,
        "$0.006 a minute"
    );
}

// ---------------------------------------------------------------------------------------------
// ElevenLabs

async fn elevenlabs() -> (FakeElevenLabs, Config) {
    let fake = FakeElevenLabs::start().await;
    let mut config = Config::default();
    fake.configure(&mut config);
    (fake, config)
}

#[tokio::test]
async fn scribe_maps_words_speakers_and_sounds_into_the_transcript() {
    let (fake, config) = elevenlabs().await;
    let (asr, _) = provider(&config, "elevenlabs");
    let mut request = wav(8);
    request.speaker_labels = true;
    let t = asr.transcribe(&request).await.unwrap();

    let sent = fake.requests();
    assert_eq!(sent[0].path(), "/v1/speech-to-text");
    assert_eq!(sent[0].header("xi-api-key"), Some(fake.api_key()));
    let upload = &fake.uploads()[0];
    assert_eq!(upload.field("model_id"), Some("scribe_v1"));
    assert_eq!(upload.field("diarize"), Some("true"));
    assert_eq!(upload.field("timestamps_granularity"), Some("word"));
    assert_eq!(upload.file.as_ref().unwrap().0, "audio.wav");

    assert_eq!(t.model, "scribe_v1");
    assert_eq!(t.language.as_deref(), Some("en"), "`eng` read as a code");
    assert_eq!(t.words.len(), 16);
    assert!(!words(&t).contains(&"(laughter)"), "sounds are not words");
    assert_eq!(t.words[0].speaker.as_deref(), Some("speaker_0"));
    assert_eq!(t.words[12].speaker.as_deref(), Some("speaker_1"));
    assert_eq!(ms(t.words[12].start, t.words[12].end), ms(6.0, 6.4));
    let segments: Vec<(&str, Option<&str>)> = t
        .segments
        .iter()
        .map(|s| (s.text.as_str(), s.speaker.as_deref()))
        .collect();
    assert_eq!(segments.len(), 2, "{segments:?}");
    assert!(segments[0].0.ends_with("juliett."));
    assert!(
        segments[1].0.starts_with("(laughter) alpha"),
        "{segments:?}"
    );
    assert_eq!(segments[1].1, Some("speaker_1"));
    assert!(t.text.contains("(laughter)"));
    assert_eq!(ms(0.0, t.duration), ms(0.0, 7.9), "the last time heard");
    assert_monotonic(&t);
}

#[tokio::test]
async fn scribe_without_diarization_has_no_speakers_and_prices_by_the_minute() {
    let (fake, config) = elevenlabs().await;
    let (asr, _) = provider(&config, "elevenlabs");
    let mut request = wav(3);
    request.duration = Some(Duration::from_secs(3));
    request.model = Some("scribe_v2".into());
    request.language = Some("en".into());
    let t = asr.transcribe(&request).await.unwrap();
    let upload = &fake.uploads()[0];
    assert_eq!(upload.field("diarize"), Some("false"));
    assert_eq!(upload.field("model_id"), Some("scribe_v2"));
    assert_eq!(upload.field("language_code"), Some("en"));
    assert!(t.words.iter().all(|w| w.speaker.is_none()));
    assert_eq!(t.duration, 3.0);
    assert_eq!(asr.cost_micros(&t.model, Duration::from_secs(60)), 6_667);
    assert_eq!(
        asr.cost_micros(&t.model, Duration::from_secs(3600)),
        400_020
    );
}

#[tokio::test]
async fn scribe_refuses_a_wrong_key_retries_a_busy_answer_and_cannot_translate() {
    let (fake, mut config) = elevenlabs().await;
    let (asr, waits) = provider(&config, "elevenlabs");
    fake.fail_next(
        1,
        Failure::RateLimited {
            retry_after_s: Some(3),
        },
    );
    asr.transcribe(&wav(1)).await.unwrap();
    assert_eq!(*waits.lock().unwrap(), [Duration::from_secs(3)]);
    assert_eq!(fake.requests().len(), 2);

    let mut translate = wav(1);
    translate.task = Task::Translate;
    let e = asr.transcribe(&translate).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Rejected);
    assert_eq!(
        e.message,
        "ElevenLabs cannot translate speech with scribe_v1"
    );
    assert_eq!(fake.requests().len(), 2);

    config.providers.elevenlabs.api_key = Some(Secret::new("el-wrong-5566"));
    let (asr, _) = provider(&config, "elevenlabs");
    let e = asr.transcribe(&wav(1)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_eq!(e.message, "ElevenLabs rejected the API key");
    assert_eq!(fake.requests().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// Tencent Cloud

async fn tencent() -> (FakeTencent, Config) {
    let fake = FakeTencent::start().await;
    let mut config = Config::default();
    fake.configure(&mut config);
    config.providers.tencent.asr_poll_interval_ms = 5;
    (fake, config)
}

#[tokio::test]
async fn short_audio_goes_to_sentence_recognition_signed_for_asr() {
    let (fake, config) = tencent().await;
    let (asr, _) = provider(&config, "tencent");
    let request = wav(5);
    let t = asr.transcribe(&request).await.unwrap();

    assert_eq!(fake.actions(), ["SentenceRecognition"]);
    let r = &fake.requests()[0];
    assert_eq!(r.header("x-tc-version"), Some("2019-06-14"));
    assert_eq!(r.header("x-tc-region"), None, "ASR takes no region");
    let auth = r.header("authorization").unwrap();
    assert!(
        auth.contains("/asr/tc3_request, SignedHeaders=content-type;host"),
        "{auth}"
    );
    let body = r.json();
    assert_eq!(body["EngSerViceType"], "16k_zh");
    assert_eq!(body["SourceType"], 1);
    assert_eq!(body["VoiceFormat"], "wav");
    assert_eq!(body["DataLen"], request.audio.len());
    assert_eq!(body["WordInfo"], 2);

    assert_eq!(t.model, "16k_zh");
    assert_eq!(t.language.as_deref(), Some("zh"));
    assert_eq!(t.duration, 5.0);
    assert_eq!(t.words.len(), 10);
    assert_eq!(words(&t)[..2], ["你好", "世界"]);
    assert_eq!(ms(t.words[9].start, t.words[9].end), ms(4.5, 4.9));
    assert_eq!(t.text, "你好世界今天天气很好我们一起录音谢谢再见。");
    assert_eq!(t.segments.len(), 1);
    assert_eq!(t.segments[0].text, t.text);
    assert_monotonic(&t);
}

#[tokio::test]
async fn a_language_picks_the_engine_and_a_model_names_it() {
    let (fake, config) = tencent().await;
    let (asr, _) = provider(&config, "tencent");
    let mut request = wav(2);
    request.language = Some("en".into());
    let t = asr.transcribe(&request).await.unwrap();
    assert_eq!(fake.requests()[0].json()["EngSerViceType"], "16k_en");
    assert_eq!(t.language.as_deref(), Some("en"));
    assert_eq!(words(&t), ["alpha", "bravo", "charlie", "delta."]);
    assert_eq!(t.text, "alpha bravo charlie delta.");

    request.language = Some("tlh".into());
    let e = asr.transcribe(&request).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Rejected);
    assert!(e.message.contains("no recognition engine"), "{}", e.message);
    request.model = Some("16k_yue".into());
    let t = asr.transcribe(&request).await.unwrap();
    assert_eq!(t.model, "16k_yue");
    assert_eq!(t.language.as_deref(), Some("yue"));
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn long_audio_becomes_a_recording_task_polled_until_it_is_done() {
    let (fake, config) = tencent().await;
    let (asr, _) = provider(&config, "tencent");
    let t = asr.transcribe(&wav(75)).await.unwrap();
    assert_eq!(
        fake.actions(),
        [
            "CreateRecTask",
            "DescribeTaskStatus",
            "DescribeTaskStatus",
            "DescribeTaskStatus"
        ]
    );
    let create = fake.requests()[0].json();
    assert_eq!(create["EngineModelType"], "16k_zh");
    assert_eq!(create["ChannelNum"], 1);
    assert_eq!(create["ResTextFormat"], 2);
    assert!(create.get("SpeakerDiarization").is_none());
    let poll = fake.requests()[1].json();
    assert_eq!(poll["TaskId"], 1_234_567_890u64);

    assert_eq!(t.duration, 75.0);
    assert_eq!(t.words.len(), 150);
    assert_eq!(t.segments.len(), 15);
    let w = &t.words[123];
    assert_eq!(
        ms(w.start, w.end),
        ms(61.5, 61.9),
        "offsets from the sentence start"
    );
    assert_eq!(ms(t.segments[12].start, t.segments[12].end), ms(60.0, 64.9));
    assert!(t.segments[12].text.ends_with('。'));
    assert!(
        t.words.iter().all(|w| w.speaker.is_none()),
        "no speakers unless asked for"
    );
    assert_monotonic(&t);
}

#[tokio::test]
async fn speaker_labels_send_even_short_audio_to_a_task_with_diarization() {
    let (fake, config) = tencent().await;
    let (asr, _) = provider(&config, "tencent");
    let mut request = wav(12);
    request.speaker_labels = true;
    let t = asr.transcribe(&request).await.unwrap();
    assert_eq!(fake.actions()[0], "CreateRecTask");
    let create = fake.requests()[0].json();
    assert_eq!(create["SpeakerDiarization"], 1);
    assert_eq!(create["SpeakerNumber"], 0);
    let speakers: Vec<Option<&str>> = t.segments.iter().map(|s| s.speaker.as_deref()).collect();
    assert_eq!(
        speakers,
        [Some("speaker_0"), Some("speaker_1"), Some("speaker_0")]
    );
    assert_eq!(t.words[10].speaker.as_deref(), Some("speaker_1"));
}

#[tokio::test]
async fn flac_goes_to_a_task_and_ogg_vorbis_is_refused() {
    let (fake, config) = tencent().await;
    let (asr, _) = provider(&config, "tencent");
    let e = asr
        .transcribe(&TranscriptionRequest::new(
            b"OggS\0\x02\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01vorbis".to_vec(),
            InputFormat::Ogg,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnsupportedFormat);
    assert!(fake.requests().is_empty());

    // A WAV labelled FLAC: Tencent finds out what it is; the provider only routes by label.
    let mut request = wav(3);
    request.format = InputFormat::Flac;
    request.duration = Some(Duration::from_secs(3));
    let t = asr.transcribe(&request).await.unwrap();
    assert_eq!(fake.actions()[0], "CreateRecTask");
    assert_eq!(t.words.len(), 6);
}

#[tokio::test]
async fn a_task_that_fails_or_never_finishes_is_given_up_without_a_second_task() {
    let (fake, mut config) = tencent().await;
    fake.fail_tasks();
    let (asr, _) = provider(&config, "tencent");
    let e = asr.transcribe(&wav(65)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Failed);
    assert!(!e.is_retryable());
    assert!(
        e.message.contains("Failed to decode audio data."),
        "{}",
        e.message
    );

    let fake = FakeTencent::start().await;
    fake.configure(&mut config);
    fake.set_polls_to_finish(u32::MAX);
    config.providers.tencent.asr_task_timeout_ms = 100;
    let (asr, _) = provider(&config, "tencent");
    let e = asr.transcribe(&wav(65)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Failed);
    assert!(
        e.message
            .contains("did not finish recording task 1234567890 within 100 ms"),
        "{}",
        e.message
    );
    let actions = fake.actions();
    assert_eq!(actions.iter().filter(|a| *a == "CreateRecTask").count(), 1);
    // How many polls fit in 100 ms depends on the machine's load; that it polled does not.
    assert!(
        actions.iter().any(|a| a == "DescribeTaskStatus"),
        "it polled: {actions:?}"
    );
}

#[tokio::test]
async fn a_recording_task_is_created_again_only_when_tencent_certainly_made_none() {
    // Throttling and internal errors are Tencent Cloud's own refusals: no task was made, so
    // the create is sent again.
    let (fake, mut config) = tencent().await;
    fake.fail_next(
        1,
        Failure::RateLimited {
            retry_after_s: None,
        },
    );
    fake.fail_next(1, Failure::ServerError);
    let (asr, waits) = provider(&config, "tencent");
    let t = asr.transcribe(&wav(65)).await.unwrap();
    assert_eq!(t.words.len(), 130);
    let actions = fake.actions();
    assert_eq!(actions.iter().filter(|a| *a == "CreateRecTask").count(), 3);
    assert_eq!(waits.lock().unwrap().len(), 2);

    // No answer within the timeout: the task may exist and be billed, so it is not asked
    // for again, and the failure is final for the job too.
    let fake = FakeTencent::start().await;
    fake.configure(&mut config);
    fake.fail_next(1, Failure::Hang);
    config.providers.tencent.asr_timeout_ms = 200;
    let (asr, _) = provider(&config, "tencent");
    let e = asr.transcribe(&wav(65)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Failed);
    assert!(!e.is_retryable());
    assert!(e.message.contains("not requested again"), "{}", e.message);
    assert_eq!(fake.actions(), ["CreateRecTask"]);

    // Nothing listening: the request never left, so it is sent again until attempts run out.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    config.providers.tencent.asr_endpoint = format!("http://127.0.0.1:{port}");
    let (asr, waits) = provider(&config, "tencent");
    let e = asr.transcribe(&wav(65)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Network);
    assert!(e.is_retryable());
    assert_eq!(waits.lock().unwrap().len(), 3, "every attempt was made");
}

#[tokio::test]
async fn a_wrong_tencent_secret_key_fails_the_asr_signature_check() {
    let (fake, mut config) = tencent().await;
    config.providers.tencent.secret_key = Some(Secret::new("not-the-right-key"));
    let (asr, waits) = provider(&config, "tencent");
    let e = asr.transcribe(&wav(1)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_eq!(
        e.message,
        "Tencent Cloud rejected the SecretId/SecretKey (AuthFailure.SignatureFailure)"
    );
    assert_eq!(fake.requests().len(), 1);
    assert!(waits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_fake_accepts_a_tc3_signature_and_refuses_a_tampered_body() {
    use aimake::providers::tc3::{JSON_CONTENT_TYPE, Tc3Request};
    let fake = FakeTencent::start().await;
    let host = fake.endpoint().trim_start_matches("http://").to_string();
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let body = br#"{"TaskId":42}"#;
    let authorization = Tc3Request {
        secret_id: fake.secret_id(),
        secret_key: fake.secret_key(),
        service: "asr",
        timestamp,
        headers: &[("content-type", JSON_CONTENT_TYPE), ("host", &host)],
        body,
    }
    .authorization();
    let send = |body: &'static [u8]| {
        reqwest::Client::new()
            .post(fake.endpoint())
            .header("content-type", JSON_CONTENT_TYPE)
            .header("authorization", authorization.clone())
            .header("x-tc-action", "DescribeTaskStatus")
            .header("x-tc-version", "2019-06-14")
            .header("x-tc-timestamp", timestamp.to_string())
            .body(body)
            .send()
    };
    let answer: serde_json::Value = send(body).await.unwrap().json().await.unwrap();
    assert_eq!(
        answer["Response"]["Error"]["Code"], "FailedOperation.NoSuchTask",
        "the signature passed: {answer}"
    );
    let answer: serde_json::Value = send(br#"{"TaskId":43}"#)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["Response"]["Error"]["Code"], "AuthFailure.SignatureFailure",
        "{answer}"
    );
}

#[tokio::test]
async fn tencent_throttling_is_retried_and_too_long_audio_is_too_large() {
    let (fake, config) = tencent().await;
    let (asr, waits) = provider(&config, "tencent");
    fake.fail_next(
        1,
        Failure::RateLimited {
            retry_after_s: None,
        },
    );
    asr.transcribe(&wav(1)).await.unwrap();
    assert_eq!(
        fake.actions(),
        ["SentenceRecognition", "SentenceRecognition"]
    );
    assert_eq!(waits.lock().unwrap().len(), 1);

    // Told the audio is short, the provider asks for a sentence; the service measures.
    let mut request = wav(62);
    request.duration = Some(Duration::from_secs(30));
    let e = asr.transcribe(&request).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooLarge);
    assert!(e.message.contains("ErrorVoicedataTooLong"), "{}", e.message);
    assert_eq!(asr.cost_micros("16k_zh", Duration::from_secs(60)), 16_667);
}

// ---------------------------------------------------------------------------------------------
// The registry

#[tokio::test]
async fn the_registry_builds_speech_recognition_from_the_provider_sections() {
    let providers = Providers::from_config(&Config::default()).unwrap();
    assert_eq!(providers.asr_enabled().count(), 0);
    let listed = providers.list_asr().await;
    let ids: Vec<&str> = listed.iter().map(|p| p.id).collect();
    assert_eq!(ids, asr::ASR_PROVIDER_IDS);
    assert!(listed.iter().all(|p| p.kind == "asr" && !p.available));
    let e = providers.resolve_asr("elevenlabs").err().unwrap();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(e.message.contains("ELEVENLABS_API_KEY"), "{}", e.message);
    let e = providers.resolve_asr("azure").err().unwrap();
    assert!(
        e.message.contains("no speech recognition provider"),
        "{}",
        e.message
    );
    assert_eq!(
        providers.list().await.len(),
        6,
        "speech's list is unchanged"
    );

    let openai = FakeOpenAi::start().await;
    let eleven = FakeElevenLabs::start().await;
    let tencent = FakeTencent::start().await;
    let mut config = Config::default();
    openai.configure(&mut config);
    eleven.configure(&mut config);
    tencent.configure(&mut config);
    // And Whisper on this machine, with a model file named by path.
    let models = tempfile::tempdir().unwrap();
    let ggml = models.path().join("ggml-mine.bin");
    std::fs::write(&ggml, b"lmgg").unwrap();
    config.providers.whisper.model = ggml.to_string_lossy().into_owned();
    let providers = Providers::from_config(&config).unwrap();
    let ids: Vec<&str> = providers.asr_enabled().map(|p| p.id()).collect();
    assert_eq!(ids, asr::ASR_PROVIDER_IDS);
    assert!(providers.list_asr().await.iter().all(|p| p.available));
    let p = providers.resolve_asr("openai").unwrap();
    assert_eq!(p.model(), "whisper-1");
    assert_eq!(p.max_concurrency(), 4);
    assert_eq!(
        providers.asr("elevenlabs").unwrap().models(),
        ["scribe_v1", "scribe_v2"]
    );
    assert_eq!(providers.asr("tencent").unwrap().model(), "16k_zh");

    // A keyless local server for transcription alone enables the provider.
    let mut config = Config::default();
    config.providers.openai.asr_base_url = openai.base_url();
    config.providers.openai.asr_model = "Systran/faster-whisper-small".into();
    let providers = Providers::from_config(&config).unwrap();
    assert!(providers.get("openai").is_none(), "speech stays off");
    let p = providers.asr("openai").unwrap();
    assert_eq!(p.models(), ["Systran/faster-whisper-small"]);
}
