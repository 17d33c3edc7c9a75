//! Tencent Cloud text to speech: the synchronous `TextToVoice` action, signed with TC3-HMAC-SHA256.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::json;

use super::http::{HttpBase, Reply};
use super::scrub::Scrubber;
use super::tc3::{JSON_CONTENT_TYPE, Tc3Request};
use super::{
    Counting, ErrorKind, Gender, ProviderError, ProviderStatus, RetryPolicy, SynthesisRequest,
    Synthesized, TextLimit, Tts, Voice,
};
use crate::audio::Format;
use crate::config::{Secret, TencentConfig};

const ID: &str = "tencent";
const DISPLAY: &str = "Tencent Cloud";
const SERVICE: &str = "tts";
const ACTION: &str = "TextToVoice";
const VERSION: &str = "2019-08-23";

/// One request holds at most 150 Chinese characters (full-width punctuation included)...
pub const MAX_CHINESE_CHARS: usize = 150;
/// ...or 500 English letters (half-width punctuation included).
pub const MAX_ENGLISH_CHARS: usize = 500;

/// A documented `VoiceType`: id, name, BCP-47 language, gender.
type VoiceRow = (u32, &'static str, &'static str, Gender);

/// Voices from Tencent's published voice list that every account can use. Ids below 10000
/// are standard voices, 101xxx premium ones.
const VOICES: &[VoiceRow] = &[
    (1001, "智瑜", "zh-CN", Gender::Female),
    (1002, "智聆", "zh-CN", Gender::Female),
    (1003, "智美", "zh-CN", Gender::Female),
    (1004, "智云", "zh-CN", Gender::Male),
    (1005, "智莉", "zh-CN", Gender::Female),
    (1007, "智娜", "zh-CN", Gender::Female),
    (1008, "智琪", "zh-CN", Gender::Female),
    (1009, "智芸", "zh-CN", Gender::Female),
    (1010, "智华", "zh-CN", Gender::Male),
    (1017, "智蓉", "zh-CN", Gender::Female),
    (1018, "智靖", "zh-CN", Gender::Male),
    (1050, "WeJack", "en-US", Gender::Male),
    (1051, "WeRose", "en-US", Gender::Female),
    (101001, "智瑜 (premium)", "zh-CN", Gender::Female),
    (101002, "智聆 (premium)", "zh-CN", Gender::Female),
    (101003, "智美 (premium)", "zh-CN", Gender::Female),
    (101004, "智云 (premium)", "zh-CN", Gender::Male),
    (101005, "智莉 (premium)", "zh-CN", Gender::Female),
    (101006, "智言 (premium)", "zh-CN", Gender::Female),
    (101007, "智娜 (premium)", "zh-CN", Gender::Female),
    (101008, "智琪 (premium)", "zh-CN", Gender::Female),
    (101009, "智芸 (premium)", "zh-CN", Gender::Female),
    (101010, "智华 (premium)", "zh-CN", Gender::Male),
    (101019, "智彤 (premium, Cantonese)", "zh-HK", Gender::Female),
    (101050, "WeJack (premium)", "en-US", Gender::Male),
    (101051, "WeRose (premium)", "en-US", Gender::Female),
];

fn voice_row(voice: &str) -> Option<&'static VoiceRow> {
    let id: u32 = voice.parse().ok()?;
    VOICES.iter().find(|row| row.0 == id)
}

fn is_english(voice: &str) -> bool {
    voice_row(voice).is_some_and(|row| row.2.starts_with("en"))
}

/// The text limit of one request. A Chinese voice counts every character against 150; an
/// English voice has 500 units where a Chinese character weighs as much as 10/3 letters,
/// so both documented limits hold whatever the mix.
pub fn text_limit(voice: &str) -> TextLimit {
    if is_english(voice) {
        TextLimit {
            max_units: 3 * MAX_ENGLISH_CHARS,
            counting: Counting::Weighted {
                wide: 10,
                narrow: 3,
            },
        }
    } else {
        TextLimit::chars(MAX_CHINESE_CHARS)
    }
}

/// Maps a speed factor to Tencent's `Speed` scale, which is piecewise: -2 = 0.6×, -1 = 0.8×,
/// 0 = 1.0×, 1 = 1.2×, 2 = 1.5×, 6 = 2.5×. Between points it interpolates linearly.
pub fn speed_param(speed: f32) -> f64 {
    const POINTS: [(f64, f64); 6] = [
        (0.6, -2.0),
        (0.8, -1.0),
        (1.0, 0.0),
        (1.2, 1.0),
        (1.5, 2.0),
        (2.5, 6.0),
    ];
    let s = if speed.is_finite() {
        f64::from(speed)
    } else {
        1.0
    };
    if s <= POINTS[0].0 {
        return POINTS[0].1;
    }
    for pair in POINTS.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        if s <= x1 {
            let y = y0 + (s - x0) * (y1 - y0) / (x1 - x0);
            return (y * 100.0).round() / 100.0;
        }
    }
    POINTS[5].1
}

pub struct Tencent {
    http: HttpBase,
    endpoint: url::Url,
    /// `host[:port]` exactly as the HTTP client sends it, since it is signed.
    host: String,
    secret_id: Secret,
    secret_key: Secret,
    region: String,
    sample_rate: u32,
    price: u64,
}

impl Tencent {
    pub fn new(
        config: &TencentConfig,
        retry: RetryPolicy,
        scrub: Scrubber,
    ) -> anyhow::Result<Self> {
        let (endpoint, host) = endpoint_host(&config.endpoint, "providers.tencent.endpoint")?;
        let (Some(secret_id), Some(secret_key)) =
            (config.secret_id.clone(), config.secret_key.clone())
        else {
            anyhow::bail!("providers.tencent.secret_id and secret_key must both be set");
        };
        Ok(Self {
            http: HttpBase::new(
                ID,
                DISPLAY,
                retry,
                config.timeout_ms,
                config.max_concurrency,
                scrub,
            )?,
            endpoint,
            host,
            secret_id,
            secret_key,
            region: config.region.clone(),
            sample_rate: config.sample_rate,
            price: config.price_micros_per_1k_chars,
        })
    }

    fn read_reply(&self, reply: &Reply, format: Format) -> Result<Synthesized, ProviderError> {
        let response = response_of(&self.http, reply, |code, message| {
            business_error(&self.http, code, message)
        })?;
        let audio = response
            .get("Audio")
            .and_then(|a| a.as_str())
            .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
            .filter(|bytes| format.looks_like(bytes))
            .ok_or_else(|| {
                self.http.error(
                    ErrorKind::BadAudio,
                    format!(
                        "Tencent Cloud answered without usable {} audio",
                        format.extension()
                    ),
                )
            })?;
        Ok(Synthesized {
            bytes: audio.into(),
            format,
            model: self.model().to_string(),
        })
    }

    async fn attempt(&self, body: &[u8], format: Format) -> Result<Synthesized, ProviderError> {
        let action = Action {
            service: SERVICE,
            name: ACTION,
            version: VERSION,
            region: Some(&self.region),
        };
        let request = signed(&self.http, &self.credentials(), &action, body);
        let reply = self.http.send(request).await?;
        self.read_reply(&reply, format)
    }

    fn credentials(&self) -> Credentials<'_> {
        Credentials {
            endpoint: &self.endpoint,
            host: &self.host,
            secret_id: &self.secret_id,
            secret_key: &self.secret_key,
        }
    }
}

/// Where and as whom Tencent Cloud API 3.0 calls are made.
pub(crate) struct Credentials<'a> {
    pub endpoint: &'a url::Url,
    /// `host[:port]` exactly as the HTTP client sends it, since it is signed.
    pub host: &'a str,
    pub secret_id: &'a Secret,
    pub secret_key: &'a Secret,
}

/// One API 3.0 action: the product it belongs to (the signature's service) and its version.
pub(crate) struct Action<'a> {
    pub service: &'a str,
    pub name: &'a str,
    pub version: &'a str,
    /// Required by some actions (TextToVoice), not sent for the others.
    pub region: Option<&'a str>,
}

/// An endpoint that is a bare origin, and its `host[:port]` as signed.
pub(crate) fn endpoint_host(endpoint: &str, key: &str) -> anyhow::Result<(url::Url, String)> {
    let url = url::Url::parse(endpoint)?;
    if url.path() != "/" || url.query().is_some() {
        anyhow::bail!(
            "{key}: must be a bare origin such as https://tts.tencentcloudapi.com (no path)"
        );
    }
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => anyhow::bail!("{key} has no host"),
    };
    Ok((url, host))
}

/// A POST of `body` to the endpoint, signed with TC3-HMAC-SHA256 now: the exact bytes signed
/// are the bytes sent.
pub(crate) fn signed(
    http: &HttpBase,
    credentials: &Credentials<'_>,
    action: &Action<'_>,
    body: &[u8],
) -> reqwest::RequestBuilder {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let signature = Tc3Request {
        secret_id: credentials.secret_id.expose(),
        secret_key: credentials.secret_key.expose(),
        service: action.service,
        timestamp,
        headers: &[
            ("content-type", JSON_CONTENT_TYPE),
            ("host", credentials.host),
        ],
        body,
    };
    let mut request = http
        .client
        .post(credentials.endpoint.clone())
        .header("content-type", JSON_CONTENT_TYPE)
        .header("authorization", signature.authorization())
        .header("x-tc-action", action.name)
        .header("x-tc-version", action.version)
        .header("x-tc-timestamp", timestamp.to_string());
    if let Some(region) = action.region {
        request = request.header("x-tc-region", region);
    }
    request.body(body.to_vec())
}

/// The `Response` object of an answer. Business errors arrive in a 200 body as
/// `Response.Error {Code, Message}` and are read by `classify`; such an answer means the
/// action was not performed (no task made, nothing billed), so it counts as nothing done.
pub(crate) fn response_of(
    http: &HttpBase,
    reply: &Reply,
    classify: impl FnOnce(&str, &str) -> ProviderError,
) -> Result<serde_json::Value, ProviderError> {
    let mut body = reply.json();
    let response = body.as_mut().and_then(|b| b.get_mut("Response"));
    if let Some(error) = response.as_ref().and_then(|r| r.get("Error")) {
        let text = |k: &str| error.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        return Err(classify(text("Code"), text("Message")).with_nothing_done());
    }
    if !reply.status.is_success() {
        return Err(http.status_error(reply, None));
    }
    match response {
        Some(response) => Ok(response.take()),
        None => Err(http.error(
            ErrorKind::ServerError,
            "Tencent Cloud answered without a Response object",
        )),
    }
}

/// The error codes every Tencent Cloud product shares.
pub(crate) fn business_error(http: &HttpBase, code: &str, message: &str) -> ProviderError {
    let said = http.excerpt(message);
    if code.starts_with("AuthFailure") {
        let hint = if code == "AuthFailure.SignatureExpire" {
            " (the server clock is more than 5 minutes off)"
        } else {
            ""
        };
        return http.error(
            ErrorKind::Auth,
            format!("Tencent Cloud rejected the SecretId/SecretKey ({code}){hint}"),
        );
    }
    let kind = if code.starts_with("RequestLimitExceeded") {
        ErrorKind::RateLimited
    } else if code.starts_with("InternalError")
        || code == "ServiceUnavailable"
        || code == "ResourceUnavailable"
    {
        ErrorKind::ServerError
    } else if code.contains("Insufficient")
        || code.contains("Arrears")
        || code.contains("PkgExhausted")
    {
        ErrorKind::Quota
    } else if code.contains("VoiceType") {
        ErrorKind::UnknownVoice
    } else {
        ErrorKind::Rejected
    };
    http.error(
        kind,
        format!("Tencent Cloud refused the request ({code}): {said}"),
    )
}

#[async_trait]
impl Tts for Tencent {
    fn id(&self) -> &'static str {
        ID
    }

    fn model(&self) -> &str {
        "TextToVoice"
    }

    async fn status(&self) -> ProviderStatus {
        ProviderStatus {
            available: true,
            detail: format!("TextToVoice in {}", self.region),
        }
    }

    async fn voices(&self) -> Result<Vec<Voice>, ProviderError> {
        Ok(VOICES
            .iter()
            .map(|(id, name, language, gender)| {
                Voice::new(ID, &id.to_string(), *name, *language, Some(*gender))
            })
            .collect())
    }

    fn limits(&self, voice: &str) -> TextLimit {
        text_limit(voice)
    }

    fn max_concurrency(&self) -> usize {
        self.http.max_concurrency
    }

    fn price_micros_per_1k_chars(&self) -> u64 {
        self.price
    }

    #[tracing::instrument(skip_all, fields(provider = ID, voice = %request.voice, chars = request.text.chars().count()), err)]
    async fn synthesize(&self, request: &SynthesisRequest) -> Result<Synthesized, ProviderError> {
        let voice_type: u64 = request.voice.parse().map_err(|_| {
            self.http.error(
                ErrorKind::UnknownVoice,
                format!("`{}` is not a Tencent Cloud VoiceType", request.voice),
            )
        })?;
        let (codec, format) = match request.format_hint {
            Format::Wav => ("wav", Format::Wav),
            _ => ("mp3", Format::Mp3),
        };
        // The exact bytes signed are the bytes sent.
        let body = serde_json::to_vec(&json!({
            "Text": request.text,
            "SessionId": ulid::Ulid::generate().to_string(),
            "VoiceType": voice_type,
            "Codec": codec,
            "SampleRate": self.sample_rate,
            "Speed": speed_param(request.speed),
            "PrimaryLanguage": if is_english(&request.voice) { 2 } else { 1 },
            "ModelType": 1,
        }))
        .expect("a JSON value serializes");
        self.http.call(|| self.attempt(&body, format)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_follows_the_documented_scale() {
        assert_eq!(speed_param(1.0), 0.0);
        assert_eq!(speed_param(0.8), -1.0);
        assert_eq!(speed_param(0.5), -2.0);
        assert_eq!(speed_param(1.2), 1.0);
        assert_eq!(speed_param(1.5), 2.0);
        assert_eq!(speed_param(2.0), 4.0);
        assert_eq!(speed_param(9.0), 6.0);
        assert_eq!(speed_param(1.1), 0.5);
    }

    #[test]
    fn chinese_and_english_voices_have_their_own_limits() {
        let zh = text_limit("101001");
        assert!(zh.fits(&"字".repeat(150)));
        assert!(!zh.fits(&"字".repeat(151)));
        assert!(
            !zh.fits(&"a".repeat(151)),
            "a Chinese voice counts letters too"
        );
        let en = text_limit("1051");
        assert!(en.fits(&"a".repeat(500)));
        assert!(!en.fits(&"a".repeat(501)));
        assert!(en.fits(&"字".repeat(150)));
        assert!(!en.fits(&"字".repeat(151)));
        assert_eq!(
            text_limit("999999"),
            zh,
            "unknown voices get the strict limit"
        );
    }

    #[test]
    fn the_voice_table_has_unique_ids_in_both_languages() {
        let mut ids: Vec<u32> = VOICES.iter().map(|v| v.0).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), VOICES.len());
        assert!(VOICES.iter().any(|v| v.2 == "zh-CN"));
        assert!(VOICES.iter().any(|v| v.2 == "en-US"));
    }
}
