//! A fake Tencent Cloud endpoint for TTS (`TextToVoice`) and ASR (`SentenceRecognition`,
//! `CreateRecTask`, `DescribeTaskStatus`): `POST /` routed by `X-TC-Action`, every request's
//! TC3-HMAC-SHA256 signature recomputed for its product's service, errors always as
//! `Response.Error` in a 200 body. Recognition hears the audio it is sent; recording tasks go
//! waiting → doing → success over a set number of polls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aimake::config::{Config, Secret};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    Control, Failure, GARBAGE, Recorded, Server, audio_seconds, heard, heard_text, mp3, sentences,
    speech_ms, wav,
};

const SECRET_ID: &str = "AKIDfaketencent0000000000000000000000";
const SECRET_KEY: &str = "faketencentsecretkey0000000000000";
/// Signatures older or newer than this are `AuthFailure.SignatureExpire`.
const MAX_SKEW_S: i64 = 300;
const VOICE_TYPES: &[u64] = &[
    1001, 1002, 1003, 1004, 1005, 1007, 1008, 1009, 1010, 1017, 1018, 1050, 1051, 101001, 101002,
    101003, 101004, 101005, 101006, 101007, 101008, 101009, 101010, 101019, 101050, 101051,
];

/// A recording task as the fake keeps it.
struct Task {
    seconds: f64,
    engine: String,
    diarize: bool,
    polls: u32,
}

#[derive(Default)]
struct FakeState {
    control: Control,
    tasks: Mutex<HashMap<u64, Task>>,
    next_task: AtomicU64,
    /// Polls of `DescribeTaskStatus` until a task succeeds: the first answers waiting, the
    /// ones before the last doing.
    polls_to_finish: AtomicU32,
    /// Tasks fail (status 3) instead of succeeding.
    fail_tasks: AtomicBool,
}

pub struct FakeTencent {
    state: Arc<FakeState>,
    server: Server,
}

impl FakeTencent {
    pub async fn start() -> Self {
        let state = Arc::new(FakeState {
            next_task: AtomicU64::new(1_234_567_890),
            polls_to_finish: AtomicU32::new(3),
            ..FakeState::default()
        });
        let router = Router::new()
            .route("/", post(handle))
            .layer(DefaultBodyLimit::disable())
            .with_state(state.clone());
        Self {
            state,
            server: Server::start(router).await,
        }
    }

    /// What `providers.tencent.endpoint` should be.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    pub fn secret_id(&self) -> &'static str {
        SECRET_ID
    }

    pub fn secret_key(&self) -> &'static str {
        SECRET_KEY
    }

    /// Points the Tencent provider (speech and recognition) at this fake with the right
    /// credentials.
    pub fn configure(&self, config: &mut Config) {
        let c = &mut config.providers.tencent;
        c.endpoint = self.endpoint();
        c.asr_endpoint = self.endpoint();
        c.secret_id = Some(Secret::new(SECRET_ID));
        c.secret_key = Some(Secret::new(SECRET_KEY));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.control.requests()
    }

    pub fn fail_next(&self, n: usize, failure: Failure) {
        self.state.control.fail_next(n, failure);
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state.control.set_delay(delay);
    }

    pub fn max_in_flight(&self) -> usize {
        self.state.control.max_in_flight()
    }

    /// The `X-TC-Action` of every request, in order.
    pub fn actions(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r.header("x-tc-action").unwrap_or_default().to_string())
            .collect()
    }

    /// Polls until a recording task succeeds; `u32::MAX` means never.
    pub fn set_polls_to_finish(&self, polls: u32) {
        self.state.polls_to_finish.store(polls, Ordering::SeqCst);
    }

    /// Recording tasks fail (status 3) from now on.
    pub fn fail_tasks(&self) {
        self.state.fail_tasks.store(true, Ordering::SeqCst);
    }
}

fn error(code: &str, message: &str) -> Response {
    axum::Json(json!({"Response": {
        "Error": {"Code": code, "Message": message},
        "RequestId": ulid::Ulid::generate().to_string(),
    }}))
    .into_response()
}

/// The product (signature service), version and whether a region is required, per action.
fn product(action: &str) -> Option<(&'static str, &'static str, bool)> {
    match action {
        "TextToVoice" => Some(("tts", "2019-08-23", true)),
        "SentenceRecognition" | "CreateRecTask" | "DescribeTaskStatus" => {
            Some(("asr", "2019-06-14", false))
        }
        _ => None,
    }
}

async fn handle(
    State(state): State<Arc<FakeState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let control = &state.control;
    control.record(&method, &uri, &headers, &body);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let action = header("x-tc-action").unwrap_or_default();
    let (service, version, needs_region) = product(action).unwrap_or(("tts", "", false));
    if let Err((code, message)) = verify_signature(&headers, &body, service) {
        return error(code, &message);
    }
    match action {
        "" => {
            return error(
                "MissingParameter",
                "The request is missing the X-TC-Action header.",
            );
        }
        other if product(other).is_none() => {
            return error(
                "InvalidAction",
                &format!("The action `{other}` is not supported here."),
            );
        }
        _ => {}
    }
    if header("x-tc-version") != Some(version) {
        return error("NoSuchVersion", "The requested version does not exist.");
    }
    if needs_region && header("x-tc-region").is_none_or(str::is_empty) {
        return error(
            "MissingParameter",
            "The request is missing the X-TC-Region header.",
        );
    }
    match control.next_failure() {
        Some(Failure::RateLimited { .. }) => {
            return error(
                "RequestLimitExceeded",
                "Your current request rate exceeds the limit.",
            );
        }
        Some(Failure::ServerError) => {
            return error(
                "InternalError.ErrorGetRoute",
                "Internal error, please retry.",
            );
        }
        Some(Failure::QuotaExceeded) => {
            return error(
                "UnsupportedOperation.PkgExhausted",
                "Your resource package is used up.",
            );
        }
        Some(Failure::Hang) => {
            std::future::pending::<()>().await;
        }
        Some(Failure::EchoCredentials) => {
            let auth = header("authorization").unwrap_or_default();
            return error(
                "InvalidParameter",
                &format!(
                    "The request could not be parsed. Authorization: {auth}; SecretId {SECRET_ID}, key {SECRET_KEY}"
                ),
            );
        }
        Some(Failure::GarbageAudio) if action == "TextToVoice" => {
            return text_to_voice_reply(control, &json!({}), GARBAGE.to_vec());
        }
        Some(Failure::GarbageAudio) => {
            return axum::Json(json!({"Response": {"Data": "<html>", "Result": 7}}))
                .into_response();
        }
        None => {}
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error("InvalidParameter", "The request body is not valid JSON.");
    };
    match action {
        "SentenceRecognition" => sentence_recognition(&state, &req).await,
        "CreateRecTask" => create_rec_task(&state, &req),
        "DescribeTaskStatus" => describe_task_status(&state, &req),
        _ => text_to_voice(control, &body).await,
    }
}

fn reply(response: Value) -> Response {
    let mut response = response;
    response["RequestId"] = json!(ulid::Ulid::generate().to_string());
    axum::Json(json!({ "Response": response })).into_response()
}

/// The 16 kHz engines a request may name (8 kHz ones are for telephone audio).
const ENGINES: &[&str] = &[
    "16k_zh",
    "16k_zh-PY",
    "16k_zh_medical",
    "16k_en",
    "16k_yue",
    "16k_ja",
    "16k_ko",
    "16k_vi",
    "16k_ms",
    "16k_id",
    "16k_fil",
    "16k_th",
    "16k_pt",
    "16k_tr",
    "16k_ar",
    "16k_es",
    "16k_hi",
    "16k_fr",
    "16k_de",
    "16k_zh_dialect",
    "8k_zh",
    "8k_en",
];
const SENTENCE_FORMATS: &[&str] = &[
    "wav", "pcm", "ogg-opus", "speex", "silk", "mp3", "m4a", "aac", "amr",
];
const SENTENCE_MAX_BYTES: usize = 3 * 1024 * 1024;
const TASK_MAX_BYTES: usize = 5 * 1024 * 1024;

/// A business error: its code and message.
type Refusal = (&'static str, String);

/// The audio of `Data` with `DataLen` checked, and its length in seconds.
fn inline_audio(req: &Value, max_bytes: usize) -> Result<(Vec<u8>, f64), Refusal> {
    if req.get("SourceType").and_then(Value::as_u64) != Some(1) {
        return Err((
            "InvalidParameterValue",
            "SourceType must be 0 (Url) or 1 (Data); this fake takes Data.".into(),
        ));
    }
    let audio = req
        .get("Data")
        .and_then(Value::as_str)
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
        .ok_or(("InvalidParameter", "Data is missing or not base64.".into()))?;
    if req.get("DataLen").and_then(Value::as_u64) != Some(audio.len() as u64) {
        return Err((
            "InvalidParameterValue",
            "DataLen must be the length of the audio before base64.".into(),
        ));
    }
    if audio.len() > max_bytes {
        return Err((
            "InvalidParameterValue.ErrorVoicedataTooLong",
            "The audio data is too long.".into(),
        ));
    }
    let seconds = audio_seconds(&audio).ok_or((
        "FailedOperation.ErrorDecodeVoice",
        "The audio could not be decoded.".into(),
    ))?;
    Ok((audio, seconds))
}

fn engine_of<'a>(req: &'a Value, field: &str) -> Result<&'a str, Refusal> {
    match req.get(field).and_then(Value::as_str) {
        Some(engine) if ENGINES.contains(&engine) => Ok(engine),
        Some(engine) => Err((
            "InvalidParameterValue.ErrorInvalidEngine",
            format!("The engine {engine} does not exist."),
        )),
        None => Err((
            "MissingParameter",
            format!("The parameter `{field}` is missing."),
        )),
    }
}

async fn sentence_recognition(state: &FakeState, req: &Value) -> Response {
    let engine = match engine_of(req, "EngSerViceType") {
        Ok(e) => e,
        Err((code, message)) => return error(code, &message),
    };
    match req.get("VoiceFormat").and_then(Value::as_str) {
        Some(f) if SENTENCE_FORMATS.contains(&f) => {}
        _ => {
            return error(
                "InvalidParameterValue.ErrorInvalidVoiceFormat",
                "VoiceFormat is not supported.",
            );
        }
    }
    let (_, seconds) = match inline_audio(req, SENTENCE_MAX_BYTES) {
        Ok(audio) => audio,
        Err((code, message)) => return error(code, &message),
    };
    if seconds > 60.0 {
        return error(
            "InvalidParameterValue.ErrorVoicedataTooLong",
            "SentenceRecognition takes at most 60 seconds of audio.",
        );
    }
    let (_guard, _) = state.control.enter();
    state.control.work().await;
    let chinese = engine.contains("zh");
    let words = heard(seconds, chinese);
    let with_words = req.get("WordInfo").and_then(Value::as_u64).unwrap_or(0) > 0;
    let list: Vec<Value> = words
        .iter()
        .map(|w| {
            json!({
                "Word": w.word,
                "StartTime": (w.start * 1000.0).round() as u64,
                "EndTime": (w.end * 1000.0).round() as u64,
            })
        })
        .collect();
    reply(json!({
        "Result": heard_text(&words, chinese),
        "AudioDuration": (seconds * 1000.0).round() as u64,
        "WordSize": words.len(),
        "WordList": if with_words { Value::Array(list) } else { Value::Null },
    }))
}

fn create_rec_task(state: &FakeState, req: &Value) -> Response {
    let engine = match engine_of(req, "EngineModelType") {
        Ok(e) => e.to_string(),
        Err((code, message)) => return error(code, &message),
    };
    if req.get("ChannelNum").and_then(Value::as_u64) != Some(1) {
        return error(
            "InvalidParameterValue",
            "ChannelNum must be 1 for 16k engines.",
        );
    }
    if req
        .get("ResTextFormat")
        .and_then(Value::as_u64)
        .is_none_or(|f| f > 3)
    {
        return error("InvalidParameterValue", "ResTextFormat must be 0 to 3.");
    }
    let (_, seconds) = match inline_audio(req, TASK_MAX_BYTES) {
        Ok(audio) => audio,
        Err((code, message)) => return error(code, &message),
    };
    let id = state.next_task.fetch_add(1, Ordering::SeqCst);
    let diarize = req.get("SpeakerDiarization").and_then(Value::as_u64) == Some(1);
    state.tasks.lock().unwrap().insert(
        id,
        Task {
            seconds,
            engine,
            diarize,
            polls: 0,
        },
    );
    reply(json!({"Data": {"TaskId": id}}))
}

fn describe_task_status(state: &FakeState, req: &Value) -> Response {
    let Some(id) = req.get("TaskId").and_then(Value::as_u64) else {
        return error("MissingParameter", "The parameter `TaskId` is missing.");
    };
    let mut tasks = state.tasks.lock().unwrap();
    let Some(task) = tasks.get_mut(&id) else {
        return error(
            "FailedOperation.NoSuchTask",
            &format!("The task {id} does not exist."),
        );
    };
    task.polls += 1;
    let to_finish = state.polls_to_finish.load(Ordering::SeqCst);
    let status = if task.polls >= to_finish {
        if state.fail_tasks.load(Ordering::SeqCst) {
            3
        } else {
            2
        }
    } else if task.polls == 1 {
        0
    } else {
        1
    };
    let status_str = ["waiting", "doing", "success", "failed"][status];
    let mut data = json!({
        "TaskId": id, "Status": status, "StatusStr": status_str,
        "Result": "", "ErrorMsg": "", "ResultDetail": null, "AudioDuration": 0.0,
    });
    if status == 3 {
        data["ErrorMsg"] = json!("Failed to decode audio data.");
    }
    if status == 2 {
        let chinese = task.engine.contains("zh");
        let words = heard(task.seconds, chinese);
        let mut result = String::new();
        let mut details = Vec::new();
        for (n, (start, end, text)) in sentences(&words, chinese).into_iter().enumerate() {
            let start_ms = (start * 1000.0).round() as u64;
            let in_sentence: Vec<Value> = words
                .iter()
                .filter(|w| w.sentence == n)
                .map(|w| {
                    json!({
                        "Word": w.word.trim_end_matches(['.', '。']),
                        "OffsetStartMs": (w.start * 1000.0).round() as u64 - start_ms,
                        "OffsetEndMs": (w.end * 1000.0).round() as u64 - start_ms,
                    })
                })
                .collect();
            result.push_str(&format!(
                "[0:{start:.3},0:{end:.3}]  {text}
"
            ));
            details.push(json!({
                "FinalSentence": text,
                "SliceSentence": text,
                "StartMs": start_ms,
                "EndMs": (end * 1000.0).round() as u64,
                "WordsNum": in_sentence.len(),
                "Words": in_sentence,
                "SpeechSpeed": 4.0,
                "SpeakerId": if task.diarize { n % 2 } else { 0 },
            }));
        }
        data["Result"] = json!(result);
        data["ResultDetail"] = json!(details);
        data["AudioDuration"] = json!(task.seconds);
    }
    reply(json!({ "Data": data }))
}

async fn text_to_voice(control: &Control, body: &Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return error("InvalidParameter", "The request body is not valid JSON.");
    };
    let Some(text) = req.get("Text").and_then(Value::as_str) else {
        return error("MissingParameter", "The parameter `Text` is missing.");
    };
    if req.get("SessionId").and_then(Value::as_str).is_none() {
        return error("MissingParameter", "The parameter `SessionId` is missing.");
    }
    let voice = req.get("VoiceType").and_then(Value::as_u64).unwrap_or(0);
    if !VOICE_TYPES.contains(&voice) {
        return error(
            "InvalidParameterValue.VoiceType",
            &format!("VoiceType {voice} is not available."),
        );
    }
    let english = req.get("PrimaryLanguage").and_then(Value::as_u64) == Some(2);
    // 150 Chinese characters (full-width punctuation included) or 500 English letters.
    let too_long = if english {
        text.chars()
            .map(|c| if is_cjk(c) { 10 } else { 3 })
            .sum::<usize>()
            > 1500
    } else {
        text.chars().count() > 150
    };
    if too_long || text.trim().is_empty() {
        return error(
            "InvalidParameterValue.TextTooLong",
            "The text is empty or too long for one request.",
        );
    }
    if let Some(speed) = req.get("Speed") {
        match speed.as_f64() {
            Some(s) if (-2.0..=6.0).contains(&s) => {}
            _ => return error("InvalidParameterValue", "Speed must be within [-2, 6]."),
        }
    }
    let rate = req
        .get("SampleRate")
        .and_then(Value::as_u64)
        .unwrap_or(16000);
    if rate != 16000 && rate != 8000 {
        return error("InvalidParameterValue", "SampleRate must be 16000 or 8000.");
    }
    let (_guard, _) = control.enter();
    control.work().await;
    let ms = speech_ms(text);
    let audio = match req.get("Codec").and_then(Value::as_str).unwrap_or("wav") {
        "wav" => wav(ms, rate as u32),
        "mp3" => mp3(ms),
        "pcm" => super::pcm(ms, rate as u32),
        _ => {
            return error(
                "InvalidParameterValue.Codec",
                "Codec must be wav, mp3 or pcm.",
            );
        }
    };
    text_to_voice_reply(control, &req, audio)
}

fn text_to_voice_reply(_control: &Control, req: &Value, audio: Vec<u8>) -> Response {
    axum::Json(json!({"Response": {
        "Audio": base64::engine::general_purpose::STANDARD.encode(audio),
        "SessionId": req.get("SessionId").cloned().unwrap_or(Value::Null),
        "Subtitles": [],
        "RequestId": ulid::Ulid::generate().to_string(),
    }}))
    .into_response()
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3000..=0x303F | 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xFF00..=0xFF60)
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// Recomputes the request's TC3-HMAC-SHA256 signature from what actually arrived.
fn verify_signature(
    headers: &HeaderMap,
    body: &[u8],
    expected_service: &str,
) -> Result<(), (&'static str, String)> {
    let bad = |m: &str| ("AuthFailure.InvalidAuthorization", m.to_string());
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| bad("The Authorization header is missing."))?;
    let rest = auth
        .strip_prefix("TC3-HMAC-SHA256 ")
        .ok_or_else(|| bad("The signing algorithm must be TC3-HMAC-SHA256."))?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(", ") {
        match part.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => return Err(bad("The Authorization header is malformed.")),
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(bad("The Authorization header is incomplete."));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [secret_id, date, service, "tc3_request"] = scope[..] else {
        return Err(bad("The credential scope is malformed."));
    };
    if secret_id != SECRET_ID {
        return Err((
            "AuthFailure.SecretIdNotFound",
            "The SecretId is not found.".into(),
        ));
    }
    let timestamp: i64 = headers
        .get("x-tc-timestamp")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("X-TC-Timestamp is missing."))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - timestamp).abs() > MAX_SKEW_S {
        return Err((
            "AuthFailure.SignatureExpire",
            "The signature has expired.".into(),
        ));
    }
    let day = time::OffsetDateTime::from_unix_timestamp(timestamp)
        .unwrap()
        .date();
    let expected_date = format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        day.month() as u8,
        day.day()
    );
    if date != expected_date || service != expected_service {
        return Err((
            "AuthFailure.SignatureFailure",
            "The credential scope does not match the request.".into(),
        ));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !names.contains(&"content-type") || !names.contains(&"host") {
        return Err(bad("content-type and host must be signed."));
    }
    let mut canonical_headers = String::new();
    for name in &names {
        let value = headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| bad("A signed header is missing."))?;
        canonical_headers.push_str(&format!("{name}:{}\n", value.trim().to_ascii_lowercase()));
    }
    let canonical = format!(
        "POST\n/\n\n{canonical_headers}\n{signed_headers}\n{}",
        hex::encode(Sha256::digest(body))
    );
    let to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{date}/{service}/tc3_request\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac(format!("TC3{SECRET_KEY}").as_bytes(), date.as_bytes());
    let k_service = hmac(&k_date, service.as_bytes());
    let k_signing = hmac(&k_service, b"tc3_request");
    let expected = hex::encode(hmac(&k_signing, to_sign.as_bytes()));
    if expected != signature {
        return Err((
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. Please check your signature is correct.".into(),
        ));
    }
    Ok(())
}
