//! A fake Tencent Cloud TTS endpoint: `POST /` routed by `X-TC-Action`, every request's
//! TC3-HMAC-SHA256 signature recomputed, errors always as `Response.Error` in a 200 body.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aimake::config::{Config, Secret};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Control, Failure, GARBAGE, Recorded, Server, mp3, speech_ms, wav};

const SECRET_ID: &str = "AKIDfaketencent0000000000000000000000";
const SECRET_KEY: &str = "faketencentsecretkey0000000000000";
/// Signatures older or newer than this are `AuthFailure.SignatureExpire`.
const MAX_SKEW_S: i64 = 300;
const VOICE_TYPES: &[u64] = &[
    1001, 1002, 1003, 1004, 1005, 1007, 1008, 1009, 1010, 1017, 1018, 1050, 1051, 101001, 101002,
    101003, 101004, 101005, 101006, 101007, 101008, 101009, 101010, 101019, 101050, 101051,
];

pub struct FakeTencent {
    control: Arc<Control>,
    server: Server,
}

impl FakeTencent {
    pub async fn start() -> Self {
        let control = Arc::new(Control::default());
        let router = Router::new()
            .route("/", post(handle))
            .with_state(control.clone());
        Self {
            control,
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

    /// Points the Tencent provider at this fake with the right credentials.
    pub fn configure(&self, config: &mut Config) {
        let c = &mut config.providers.tencent;
        c.endpoint = self.endpoint();
        c.secret_id = Some(Secret::new(SECRET_ID));
        c.secret_key = Some(Secret::new(SECRET_KEY));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.control.requests()
    }

    pub fn fail_next(&self, n: usize, failure: Failure) {
        self.control.fail_next(n, failure);
    }

    pub fn set_delay(&self, delay: Duration) {
        self.control.set_delay(delay);
    }

    pub fn max_in_flight(&self) -> usize {
        self.control.max_in_flight()
    }
}

fn error(code: &str, message: &str) -> Response {
    axum::Json(json!({"Response": {
        "Error": {"Code": code, "Message": message},
        "RequestId": ulid::Ulid::generate().to_string(),
    }}))
    .into_response()
}

async fn handle(
    State(control): State<Arc<Control>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    control.record(&method, &uri, &headers, &body);
    if let Err((code, message)) = verify_signature(&headers, &body) {
        return error(code, &message);
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match header("x-tc-action") {
        Some("TextToVoice") => {}
        Some(other) => {
            return error(
                "InvalidAction",
                &format!("The action `{other}` is not supported here."),
            );
        }
        None => {
            return error(
                "MissingParameter",
                "The request is missing the X-TC-Action header.",
            );
        }
    }
    if header("x-tc-version") != Some("2019-08-23") {
        return error("NoSuchVersion", "The requested version does not exist.");
    }
    if header("x-tc-region").is_none_or(str::is_empty) {
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
        Some(Failure::GarbageAudio) => {
            return text_to_voice_reply(&control, &json!({}), GARBAGE.to_vec());
        }
        None => {}
    }
    text_to_voice(&control, &body).await
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
fn verify_signature(headers: &HeaderMap, body: &[u8]) -> Result<(), (&'static str, String)> {
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
    if date != expected_date || service != "tts" {
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
