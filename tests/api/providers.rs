//! The provider layer end to end: each client against its fake server, the local voice against
//! the real espeak-ng, and the registry that resolves `provider:voice` ids.

use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aimake::audio::Format;
use aimake::config::{Config, Secret};
use aimake::providers::{
    ErrorKind, Gender, Providers, RetryPolicy, SynthesisRequest, Synthesized, Tts,
};

use crate::fakes::{Failure, FakeElevenLabs, FakeOpenAi, FakeTencent};

pub(crate) type Waits = Arc<Mutex<Vec<Duration>>>;

/// The configured policy, except that waiting only records how long it would have waited
/// (the speech and the recognition provider tests share it).
pub(crate) fn instant_retries(config: &Config) -> (RetryPolicy, Waits) {
    let waits: Waits = Arc::default();
    let recorded = waits.clone();
    let policy =
        RetryPolicy::from_config(&config.providers.retry).with_sleeper(Arc::new(move |d| {
            recorded.lock().unwrap().push(d);
            Box::pin(async {})
        }));
    (policy, waits)
}

fn provider(config: &Config, id: &str) -> (Arc<dyn Tts>, Waits) {
    let (policy, waits) = instant_retries(config);
    let providers = Providers::from_config_with(config, policy).expect("providers build");
    (providers.get(id).expect("provider is enabled"), waits)
}

fn request(text: &str, voice: &str) -> SynthesisRequest {
    SynthesisRequest {
        text: text.into(),
        voice: voice.into(),
        speed: 1.0,
        format_hint: Format::Mp3,
        model: None,
        instructions: None,
    }
}

/// Reads a WAV back and returns (sample rate, samples).
fn decode_wav(audio: &Synthesized) -> (u32, Vec<i16>) {
    assert_eq!(audio.format, Format::Wav);
    let reader = hound::WavReader::new(Cursor::new(audio.bytes.to_vec())).expect("a valid WAV");
    let rate = reader.spec().sample_rate;
    let samples: Vec<i16> = reader.into_samples().map(|s| s.unwrap()).collect();
    (rate, samples)
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
async fn openai_speech_sends_key_model_voice_and_speed_and_returns_mp3() {
    let (fake, config) = openai().await;
    let (tts, waits) = provider(&config, "openai");
    let mut req = request("Hello from aimake.", "alloy");
    req.speed = 1.2;
    let audio = tts.synthesize(&req).await.unwrap();

    assert_eq!(audio.format, Format::Mp3);
    assert_eq!(audio.model, "tts-1");
    assert_eq!(&audio.bytes[..2], &[0xFF, 0xFB], "an MPEG audio frame");
    let sent = fake.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path(), "/v1/audio/speech");
    assert_eq!(
        sent[0].header("authorization"),
        Some(format!("Bearer {}", fake.api_key()).as_str())
    );
    let body = sent[0].json();
    assert_eq!(body["model"], "tts-1");
    assert_eq!(body["input"], "Hello from aimake.");
    assert_eq!(body["voice"], "alloy");
    assert_eq!(body["response_format"], "mp3");
    assert_eq!(body["speed"], 1.2);
    assert!(waits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn openai_asked_for_wav_returns_a_playable_wav() {
    let (_fake, config) = openai().await;
    let (tts, _) = provider(&config, "openai");
    let mut req = request("A short sentence.", "nova");
    req.format_hint = Format::Wav;
    let audio = tts.synthesize(&req).await.unwrap();
    let (rate, samples) = decode_wav(&audio);
    assert_eq!(rate, 24_000);
    assert!(samples.len() > 1000 && samples.iter().any(|s| *s != 0));
}

#[tokio::test]
async fn openai_server_errors_are_retried_until_the_audio_arrives() {
    let (fake, config) = openai().await;
    let (tts, waits) = provider(&config, "openai");
    fake.fail_next(2, Failure::ServerError);
    let audio = tts
        .synthesize(&request("Try again.", "echo"))
        .await
        .unwrap();
    assert_eq!(audio.format, Format::Mp3);
    assert_eq!(fake.requests().len(), 3);
    let waits = waits.lock().unwrap();
    assert_eq!(waits.len(), 2);
    assert!(waits[1] <= Duration::from_millis(config.providers.retry.base_delay_ms * 2));
}

#[tokio::test]
async fn openai_rate_limits_wait_as_long_as_retry_after_says() {
    let (fake, config) = openai().await;
    let (tts, waits) = provider(&config, "openai");
    fake.fail_next(
        1,
        Failure::RateLimited {
            retry_after_s: Some(7),
        },
    );
    tts.synthesize(&request("Patience.", "fable"))
        .await
        .unwrap();
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(*waits.lock().unwrap(), vec![Duration::from_secs(7)]);
}

#[tokio::test]
async fn a_rejected_openai_key_fails_at_once_without_repeating_the_key() {
    let (fake, mut config) = openai().await;
    config.providers.openai.api_key = Some(Secret::new("sk-wrong-key-998877"));
    let (tts, waits) = provider(&config, "openai");
    let e = tts.synthesize(&request("Hi.", "alloy")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_eq!(e.code(), "provider_auth");
    let port = fake
        .base_url()
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        e.message,
        format!("The speech server at 127.0.0.1:{port} rejected the API key")
    );
    assert!(!e.message.contains("sk-wr") && !e.message.contains("***"));
    assert_eq!(fake.requests().len(), 1);
    assert!(waits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_openai_server_that_hangs_times_out_after_bounded_attempts() {
    let (fake, mut config) = openai().await;
    config.providers.openai.timeout_ms = 150;
    config.providers.retry.max_attempts = 3;
    let (tts, waits) = provider(&config, "openai");
    fake.fail_next(10, Failure::Hang);
    let e = tts
        .synthesize(&request("Anyone there?", "onyx"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout);
    assert!(e.is_retryable(), "a timeout is retryable by kind");
    assert!(
        e.message.contains("did not answer within 150 ms"),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("gave up after 3 attempts"),
        "{}",
        e.message
    );
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(waits.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn garbage_instead_of_audio_is_retried_and_then_reported() {
    let (fake, mut config) = openai().await;
    config.providers.retry.max_attempts = 2;
    let (tts, _) = provider(&config, "openai");
    fake.fail_next(1, Failure::GarbageAudio);
    tts.synthesize(&request("One.", "alloy")).await.unwrap();
    assert_eq!(fake.requests().len(), 2);

    fake.fail_next(2, Failure::GarbageAudio);
    let e = tts.synthesize(&request("Two.", "alloy")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadAudio);
    assert_eq!(fake.requests().len(), 4);
}

#[tokio::test]
async fn openai_refuses_text_over_its_limit_and_the_limit_says_4096_chars() {
    let (fake, config) = openai().await;
    let (tts, _) = provider(&config, "openai");
    let limit = tts.limits("alloy");
    assert_eq!(limit.max_units, 4096);
    let at_limit = "a".repeat(4096);
    assert!(limit.fits(&at_limit));
    tts.synthesize(&request(&at_limit, "alloy")).await.unwrap();

    let e = tts
        .synthesize(&request(&"a".repeat(4097), "alloy"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Rejected);
    assert!(
        e.message.contains("at most 4096 characters"),
        "{}",
        e.message
    );
    assert_eq!(
        fake.requests().len(),
        2,
        "a rejected request is not retried"
    );
}

#[tokio::test]
async fn an_exhausted_openai_quota_is_final() {
    let (fake, config) = openai().await;
    let (tts, _) = provider(&config, "openai");
    fake.fail_next(1, Failure::QuotaExceeded);
    let e = tts.synthesize(&request("Hi.", "alloy")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Quota);
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn an_unknown_openai_voice_is_reported_as_such() {
    let (fake, config) = openai().await;
    let (tts, _) = provider(&config, "openai");
    let e = tts.synthesize(&request("Hi.", "darth")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnknownVoice);
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn an_unreachable_openai_server_is_a_retryable_network_error() {
    let fake = FakeOpenAi::start().await;
    let mut config = Config::default();
    fake.configure(&mut config);
    drop(fake);
    config.providers.retry.max_attempts = 2;
    let (tts, waits) = provider(&config, "openai");
    let e = tts.synthesize(&request("Hi.", "alloy")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Network);
    assert!(
        e.message.contains("cannot connect to 127.0.0.1"),
        "{}",
        e.message
    );
    assert_eq!(waits.lock().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// ElevenLabs

async fn elevenlabs() -> (FakeElevenLabs, Config) {
    let fake = FakeElevenLabs::start().await;
    let mut config = Config::default();
    fake.configure(&mut config);
    (fake, config)
}

const RACHEL: &str = "21m00Tcm4TlvDq8ikWAM";

#[tokio::test]
async fn elevenlabs_speech_sends_key_model_and_output_format() {
    let (fake, config) = elevenlabs().await;
    let (tts, _) = provider(&config, "elevenlabs");
    let mut req = request("Hello there.", RACHEL);
    req.speed = 1.1;
    let audio = tts.synthesize(&req).await.unwrap();
    assert_eq!(audio.format, Format::Mp3);
    assert_eq!(audio.model, "eleven_multilingual_v2");
    let sent = fake.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].uri,
        format!("/v1/text-to-speech/{RACHEL}?output_format=mp3_44100_128")
    );
    assert_eq!(sent[0].header("xi-api-key"), Some(fake.api_key()));
    let body = sent[0].json();
    assert_eq!(body["text"], "Hello there.");
    assert_eq!(body["model_id"], "eleven_multilingual_v2");
    assert_eq!(body["voice_settings"]["speed"], 1.1);
}

#[tokio::test]
async fn elevenlabs_pcm_output_is_labelled_with_its_sample_rate() {
    let (_fake, mut config) = elevenlabs().await;
    config.providers.elevenlabs.output_format = "pcm_24000".into();
    let (tts, _) = provider(&config, "elevenlabs");
    let audio = tts
        .synthesize(&request("Raw samples.", RACHEL))
        .await
        .unwrap();
    assert_eq!(
        audio.format,
        Format::PcmS16Le {
            sample_rate: 24_000,
            channels: 1
        }
    );
    assert!(audio.bytes.len() > 1000 && audio.bytes.len() % 2 == 0);
}

#[tokio::test]
async fn the_elevenlabs_voice_list_is_fetched_once_and_then_cached() {
    let (fake, config) = elevenlabs().await;
    let (tts, _) = provider(&config, "elevenlabs");
    let (a, b) = tokio::join!(tts.voices(), tts.voices());
    let voices = a.unwrap();
    assert_eq!(voices, b.unwrap());
    tts.voices().await.unwrap();
    assert_eq!(fake.voice_list_requests(), 1);

    let rachel = voices.iter().find(|v| v.name == "Rachel").unwrap();
    assert_eq!(rachel.id, format!("elevenlabs:{RACHEL}"));
    assert_eq!(rachel.gender, Some(Gender::Female));
    assert_eq!(rachel.language, "mul");
    assert_eq!(voices.len(), 2);
}

#[tokio::test]
async fn a_rejected_elevenlabs_key_fails_fast_with_a_human_message() {
    let (fake, mut config) = elevenlabs().await;
    config.providers.elevenlabs.api_key = Some(Secret::new("el-wrong-5566"));
    let (tts, waits) = provider(&config, "elevenlabs");
    let e = tts.synthesize(&request("Hi.", RACHEL)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_eq!(e.message, "ElevenLabs rejected the API key");
    assert_eq!(fake.requests().len(), 1);
    assert!(waits.lock().unwrap().is_empty());

    let e = tts.voices().await.unwrap_err();
    assert_eq!(e.message, "ElevenLabs rejected the API key");
}

#[tokio::test]
async fn elevenlabs_never_runs_more_requests_than_the_plan_allows() {
    let (fake, mut config) = elevenlabs().await;
    fake.set_concurrency_limit(2);
    fake.set_delay(Duration::from_millis(40));
    config.providers.elevenlabs.max_concurrency = 2;
    let (tts, waits) = provider(&config, "elevenlabs");
    assert_eq!(tts.max_concurrency(), 2);
    let requests: Vec<SynthesisRequest> = (0..6)
        .map(|i| request(&format!("Sentence number {i}."), RACHEL))
        .collect();
    let results = futures::future::join_all(requests.iter().map(|r| tts.synthesize(r))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(
        fake.requests().len(),
        6,
        "no request was refused and retried"
    );
    assert_eq!(fake.max_in_flight(), 2);
    assert!(waits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn elevenlabs_busy_answers_are_retried() {
    let (fake, config) = elevenlabs().await;
    let (tts, waits) = provider(&config, "elevenlabs");
    fake.fail_next(
        1,
        Failure::RateLimited {
            retry_after_s: Some(3),
        },
    );
    tts.synthesize(&request("Busy?", RACHEL)).await.unwrap();
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(*waits.lock().unwrap(), vec![Duration::from_secs(3)]);
}

#[tokio::test]
async fn elevenlabs_unknown_voices_quota_and_long_texts_are_final() {
    let (fake, mut config) = elevenlabs().await;
    config.providers.elevenlabs.model = "eleven_multilingual_v1".into();
    let (tts, _) = provider(&config, "elevenlabs");

    let e = tts.synthesize(&request("Hi.", "nobody")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnknownVoice);

    assert_eq!(tts.limits(RACHEL).max_units, 10_000);
    let e = tts
        .synthesize(&request(&"a".repeat(10_001), RACHEL))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Rejected);
    assert!(e.message.contains("10001 characters"), "{}", e.message);

    fake.fail_next(1, Failure::QuotaExceeded);
    let e = tts.synthesize(&request("Hi.", RACHEL)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Quota);
    assert_eq!(fake.requests().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// Tencent Cloud

async fn tencent() -> (FakeTencent, Config) {
    let fake = FakeTencent::start().await;
    let mut config = Config::default();
    fake.configure(&mut config);
    (fake, config)
}

#[tokio::test]
async fn tencent_requests_are_signed_and_the_fake_verifies_the_signature() {
    let (fake, config) = tencent().await;
    let (tts, _) = provider(&config, "tencent");
    let audio = tts
        .synthesize(&request("你好，世界。", "101001"))
        .await
        .unwrap();
    assert_eq!(audio.format, Format::Mp3);
    assert_eq!(&audio.bytes[..2], &[0xFF, 0xFB]);

    let sent = fake.requests();
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.header("x-tc-action"), Some("TextToVoice"));
    assert_eq!(r.header("x-tc-version"), Some("2019-08-23"));
    assert_eq!(r.header("x-tc-region"), Some("ap-guangzhou"));
    let auth = r.header("authorization").unwrap();
    assert!(
        auth.starts_with(&format!("TC3-HMAC-SHA256 Credential={}/", fake.secret_id())),
        "{auth}"
    );
    assert!(auth.contains("/tts/tc3_request, SignedHeaders=content-type;host, Signature="));
    let body = r.json();
    assert_eq!(body["Text"], "你好，世界。");
    assert_eq!(body["VoiceType"], 101001);
    assert_eq!(body["PrimaryLanguage"], 1);
    assert_eq!(body["Codec"], "mp3");
    assert_eq!(body["SampleRate"], 16000);
    assert!(body["SessionId"].as_str().is_some_and(|s| !s.is_empty()));
}

#[tokio::test]
async fn tencent_wav_output_for_an_english_voice_is_a_valid_wav() {
    let (fake, config) = tencent().await;
    let (tts, _) = provider(&config, "tencent");
    let mut req = request("Hello world.", "1051");
    req.format_hint = Format::Wav;
    req.speed = 2.0;
    let audio = tts.synthesize(&req).await.unwrap();
    let (rate, samples) = decode_wav(&audio);
    assert_eq!(rate, 16_000);
    assert!(!samples.is_empty());
    let body = fake.requests()[0].json();
    assert_eq!(body["PrimaryLanguage"], 2);
    assert_eq!(body["Speed"], 4.0);
}

#[tokio::test]
async fn a_wrong_tencent_secret_key_fails_the_signature_check_at_once() {
    let (fake, mut config) = tencent().await;
    config.providers.tencent.secret_key = Some(Secret::new("not-the-right-key"));
    let (tts, waits) = provider(&config, "tencent");
    let e = tts.synthesize(&request("你好", "1001")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_eq!(
        e.message,
        "Tencent Cloud rejected the SecretId/SecretKey (AuthFailure.SignatureFailure)"
    );
    assert!(!e.message.contains("not-the-right-key"));
    assert_eq!(fake.requests().len(), 1);
    assert!(waits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn tencent_throttling_and_internal_errors_in_a_200_body_are_retried() {
    let (fake, config) = tencent().await;
    let (tts, waits) = provider(&config, "tencent");
    fake.fail_next(
        1,
        Failure::RateLimited {
            retry_after_s: None,
        },
    );
    fake.fail_next(1, Failure::ServerError);
    tts.synthesize(&request("重试", "1001")).await.unwrap();
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(waits.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn tencent_limits_match_what_the_service_accepts() {
    let (fake, config) = tencent().await;
    let (tts, _) = provider(&config, "tencent");
    let chinese = "字".repeat(150);
    assert!(tts.limits("101001").fits(&chinese));
    tts.synthesize(&request(&chinese, "101001")).await.unwrap();
    let english = "a".repeat(500);
    assert!(tts.limits("101051").fits(&english));
    tts.synthesize(&request(&english, "101051")).await.unwrap();

    let too_long = "字".repeat(151);
    assert!(!tts.limits("101001").fits(&too_long));
    let e = tts
        .synthesize(&request(&too_long, "101001"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Rejected);
    assert!(
        e.message.contains("InvalidParameterValue.TextTooLong"),
        "{}",
        e.message
    );
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn tencent_garbage_audio_and_used_up_packages_are_reported() {
    let (fake, mut config) = tencent().await;
    config.providers.retry.max_attempts = 2;
    let (tts, _) = provider(&config, "tencent");
    fake.fail_next(2, Failure::GarbageAudio);
    let e = tts.synthesize(&request("坏", "1001")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadAudio);
    fake.fail_next(1, Failure::QuotaExceeded);
    let e = tts.synthesize(&request("坏", "1001")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Quota);
    assert_eq!(fake.requests().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// The local voice (the real espeak-ng)

fn local() -> Arc<dyn Tts> {
    provider(&Config::default(), "local").0
}

#[tokio::test]
async fn the_local_voice_speaks_english_into_a_valid_wav() {
    let tts = local();
    let audio = tts
        .synthesize(&request("Hello, this is the offline voice.", "en-us"))
        .await
        .unwrap();
    let (rate, samples) = decode_wav(&audio);
    assert_eq!(rate, 22_050);
    assert!(samples.len() > rate as usize / 2, "at least half a second");
    assert!(
        samples.iter().any(|s| s.unsigned_abs() > 1000),
        "not silence"
    );
    assert_eq!(audio.model, "espeak-ng");
}

#[tokio::test]
async fn the_local_mandarin_voice_speaks_chinese() {
    let tts = local();
    let audio = tts
        .synthesize(&request("你好，世界。今天天气很好。", "cmn"))
        .await
        .unwrap();
    let (_, samples) = decode_wav(&audio);
    assert!(samples.len() > 11_025);
    assert!(samples.iter().any(|s| s.unsigned_abs() > 1000));
}

#[tokio::test]
async fn local_speed_changes_how_long_the_speech_lasts() {
    let tts = local();
    let text = "The quick brown fox jumps over the lazy dog.";
    let mut slow = request(text, "en-us");
    slow.speed = 0.5;
    let mut fast = request(text, "en-us");
    fast.speed = 2.0;
    let (_, slow) = decode_wav(&tts.synthesize(&slow).await.unwrap());
    let (_, fast) = decode_wav(&tts.synthesize(&fast).await.unwrap());
    assert!(
        slow.len() > fast.len() * 2,
        "{} vs {}",
        slow.len(),
        fast.len()
    );
}

#[tokio::test]
async fn text_that_looks_like_options_is_spoken_not_obeyed() {
    let tts = local();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("owned.wav");
    let text = format!("-w {} --help", target.display());
    let audio = tts.synthesize(&request(&text, "en-us")).await.unwrap();
    assert!(!decode_wav(&audio).1.is_empty());
    assert!(!target.exists());
}

#[tokio::test]
async fn the_local_engine_lists_english_and_mandarin_voices() {
    let tts = local();
    let status = tts.status().await;
    assert!(status.available);
    assert!(status.detail.contains("eSpeak NG"), "{}", status.detail);
    let voices = tts.voices().await.unwrap();
    let en = voices.iter().find(|v| v.id == "local:en-us").unwrap();
    assert_eq!(en.language, "en-US");
    assert_eq!(en.provider, "local");
    let cmn = voices.iter().find(|v| v.id == "local:cmn").unwrap();
    assert_eq!(cmn.language, "zh-CN");
    assert!(voices.len() > 50);
}

#[tokio::test]
async fn a_missing_local_engine_is_unavailable_with_the_install_hint() {
    let mut config = Config::default();
    config.providers.local.command = "/nonexistent/espeak-ng".into();
    let (policy, _) = instant_retries(&config);
    let providers = Providers::from_config_with(&config, policy).unwrap();
    let tts = providers.get("local").unwrap();

    let status = tts.status().await;
    assert!(!status.available);
    assert!(
        status.detail.contains("apt-get install espeak-ng"),
        "{}",
        status.detail
    );
    let listed = providers.list().await;
    let local = listed.iter().find(|p| p.id == "local").unwrap();
    assert!(!local.available);

    let e = tts
        .synthesize(&request("Hello.", "en-us"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert_eq!(e.code(), "provider_unavailable");
    assert!(
        e.message.contains("apt-get install espeak-ng"),
        "{}",
        e.message
    );
    assert!(tts.voices().await.is_err());
}

// ---------------------------------------------------------------------------------------------
// The registry

#[tokio::test]
async fn with_no_keys_only_the_local_voice_is_enabled_and_the_rest_say_why() {
    let config = Config::default();
    let providers = Providers::from_config(&config).unwrap();
    let listed = providers.list().await;
    let ids: Vec<&str> = listed.iter().map(|p| p.id).collect();
    assert_eq!(
        ids,
        [
            "kokoro",
            "piper",
            "local",
            "openai",
            "elevenlabs",
            "tencent"
        ]
    );
    // Neural voices need models (and a runtime) first; the message says how to get them.
    for p in &listed[..2] {
        assert!(!p.available);
        assert!(p.detail.contains("aimake models pull"), "{}", p.detail);
    }
    assert!(listed[2].available);
    for p in &listed[3..] {
        assert!(!p.available);
        assert!(p.detail.starts_with("not configured"), "{}", p.detail);
        assert_eq!(p.kind, "tts");
    }
    let e = providers.resolve("elevenlabs:abc").err().unwrap();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(e.message.contains("ELEVENLABS_API_KEY"), "{}", e.message);
    let e = providers.resolve("azure:jenny").err().unwrap();
    assert_eq!(e.kind, ErrorKind::UnknownVoice);
}

#[tokio::test]
async fn the_registry_resolves_voice_ids_and_merges_voice_lists() {
    let openai = FakeOpenAi::start().await;
    let eleven = FakeElevenLabs::start().await;
    let tencent = FakeTencent::start().await;
    let mut config = Config::default();
    openai.configure(&mut config);
    eleven.configure(&mut config);
    tencent.configure(&mut config);
    let (policy, _) = instant_retries(&config);
    let providers = Providers::from_config_with(&config, policy).unwrap();

    assert!(
        providers
            .list()
            .await
            .iter()
            .filter(|p| !["kokoro", "piper"].contains(&p.id))
            .all(|p| p.available)
    );
    let (tts, voice) = providers.voice("tencent:101001").await.unwrap();
    assert_eq!(tts.id(), "tencent");
    assert_eq!(voice.language, "zh-CN");
    let (tts, voice) = providers
        .voice(&format!("elevenlabs:{RACHEL}"))
        .await
        .unwrap();
    assert_eq!(tts.id(), "elevenlabs");
    assert_eq!(voice.name, "Rachel");
    let e = providers.voice("openai:nobody").await.err().unwrap();
    assert_eq!(e.kind, ErrorKind::UnknownVoice);

    let all = providers.voices(None, None).await;
    for id in ["local:en-us", "openai:alloy", "tencent:1051"] {
        assert!(all.iter().any(|v| v.id == id), "{id}");
    }
    let only_tencent = providers.voices(Some("tencent"), None).await;
    assert!(!only_tencent.is_empty() && only_tencent.iter().all(|v| v.provider == "tencent"));
    let chinese = providers.voices(None, Some("zh-CN")).await;
    assert!(chinese.iter().any(|v| v.id == "local:cmn"));
    assert!(chinese.iter().any(|v| v.id == "tencent:101001"));
    assert!(!chinese.iter().any(|v| v.id == "tencent:1051"));
    assert!(!chinese.iter().any(|v| v.id == "local:en-us"));
}

#[tokio::test]
async fn a_provider_that_cannot_list_voices_does_not_hide_the_others() {
    let eleven = FakeElevenLabs::start().await;
    let mut config = Config::default();
    eleven.configure(&mut config);
    config.providers.elevenlabs.api_key = Some(Secret::new("el-wrong"));
    let (policy, _) = instant_retries(&config);
    let providers = Providers::from_config_with(&config, policy).unwrap();
    let voices = providers.voices(None, None).await;
    assert!(voices.iter().any(|v| v.provider == "local"));
    assert!(!voices.iter().any(|v| v.provider == "elevenlabs"));
}
