//! ElevenLabs text to speech: `POST /v1/text-to-speech/{voice_id}`, voices from `GET /v1/voices`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use super::http::{HttpBase, Reply};
use super::scrub::Scrubber;
use super::{
    ErrorKind, Gender, ProviderError, ProviderStatus, RetryPolicy, SynthesisRequest, Synthesized,
    TextLimit, Tts, Voice,
};
use crate::audio::Format;
use crate::config::{ElevenLabsConfig, Secret};

const ID: &str = "elevenlabs";
const DISPLAY: &str = "ElevenLabs";

/// The documented range of `voice_settings.speed`.
const MIN_SPEED: f32 = 0.7;
const MAX_SPEED: f32 = 1.2;

pub struct ElevenLabs {
    http: HttpBase,
    base: url::Url,
    api_key: Secret,
    model: String,
    output_format: String,
    format: Format,
    price: u64,
    /// One entry (the key is `()`): the account's voice list, fetched at most once per TTL
    /// even when many requests ask at the same moment.
    voices: moka::future::Cache<(), Arc<Vec<Voice>>>,
}

/// What one request's `text` may hold, per model (ElevenLabs' help centre).
pub fn max_chars(model: &str) -> usize {
    match model {
        "eleven_flash_v2_5" | "eleven_turbo_v2_5" => 40_000,
        "eleven_flash_v2" | "eleven_turbo_v2" => 30_000,
        "eleven_multilingual_v2"
        | "eleven_multilingual_v1"
        | "eleven_monolingual_v1"
        | "eleven_english_v2" => 10_000,
        // eleven_v3's API limit is not documented firmly; its early limit was 3,000.
        "eleven_v3" => 3_000,
        // Unknown models get the old subscribed-user limit, which every model allows.
        _ => 5_000,
    }
}

/// Models that speak English only; the rest read whatever language the text is in.
fn english_only(model: &str) -> bool {
    matches!(
        model,
        "eleven_monolingual_v1" | "eleven_english_v2" | "eleven_flash_v2" | "eleven_turbo_v2"
    )
}

/// `mp3_44100_128` → mp3, `pcm_24000` → 24 kHz mono PCM, `opus_48000_64` → Ogg.
pub fn parse_output_format(name: &str) -> anyhow::Result<Format> {
    let mut parts = name.split('_');
    let codec = parts.next().unwrap_or_default();
    let rate = parts.next().and_then(|r| r.parse::<u32>().ok());
    match (codec, rate) {
        ("mp3", Some(_)) => Ok(Format::Mp3),
        ("opus", Some(_)) => Ok(Format::Ogg),
        ("pcm", Some(sample_rate)) => Ok(Format::PcmS16Le {
            sample_rate,
            channels: 1,
        }),
        _ => anyhow::bail!(
            "providers.elevenlabs.output_format: `{name}` is not an mp3_*, pcm_* or opus_* format"
        ),
    }
}

#[derive(Deserialize)]
struct VoiceList {
    voices: Vec<VoiceEntry>,
}

#[derive(Deserialize)]
struct VoiceEntry {
    voice_id: String,
    name: String,
    #[serde(default)]
    labels: std::collections::HashMap<String, String>,
}

impl ElevenLabs {
    pub fn new(
        config: &ElevenLabsConfig,
        retry: RetryPolicy,
        scrub: Scrubber,
    ) -> anyhow::Result<Self> {
        let api_key = config
            .api_key
            .clone()
            .ok_or_else(|| anyhow::anyhow!("providers.elevenlabs.api_key is not set"))?;
        Ok(Self {
            http: HttpBase::new(
                ID,
                DISPLAY,
                retry,
                config.timeout_ms,
                config.max_concurrency,
                scrub,
            )?,
            base: url::Url::parse(&config.base_url)?,
            api_key,
            model: config.model.clone(),
            output_format: config.output_format.clone(),
            format: parse_output_format(&config.output_format)?,
            price: config.price_micros_per_1k_chars,
            voices: moka::future::Cache::builder()
                .max_capacity(1)
                .time_to_live(Duration::from_secs(config.voices_cache_s.max(1)))
                .build(),
        })
    }

    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http(s) base URL has a path")
            .pop_if_empty()
            .extend(segments);
        url
    }

    async fn fetch_voices(&self) -> Result<Vec<Voice>, ProviderError> {
        let url = self.url(&["v1", "voices"]);
        let list = self
            .http
            .call(|| async {
                let request = self
                    .http
                    .client
                    .get(url.clone())
                    .header("xi-api-key", self.api_key.expose());
                let reply = self.http.send(request).await?;
                if !reply.status.is_success() {
                    return Err(classify(&self.http, &reply));
                }
                serde_json::from_slice::<VoiceList>(&reply.body).map_err(|e| {
                    self.http.error(
                        ErrorKind::ServerError,
                        format!("ElevenLabs sent a voice list that cannot be read: {e}"),
                    )
                })
            })
            .await?;
        let language = if english_only(&self.model) {
            "en"
        } else {
            "mul"
        };
        Ok(list
            .voices
            .into_iter()
            .filter(|v| super::VoiceId::parse(&format!("{ID}:{}", v.voice_id)).is_ok())
            .map(|v| {
                let gender = v.labels.get("gender").and_then(|g| Gender::parse(g));
                Voice::new(ID, &v.voice_id, v.name, language, gender)
            })
            .collect())
    }

    async fn attempt(
        &self,
        url: &url::Url,
        body: &serde_json::Value,
    ) -> Result<Synthesized, ProviderError> {
        let request = self
            .http
            .client
            .post(url.clone())
            .header("xi-api-key", self.api_key.expose())
            .header("accept", self.format.mime_type())
            .json(body);
        let reply = self.http.send(request).await?;
        if !reply.status.is_success() {
            return Err(classify(&self.http, &reply));
        }
        if !self.format.looks_like(&reply.body) {
            return Err(self.http.error(
                ErrorKind::BadAudio,
                format!(
                    "ElevenLabs answered with something that is not {} audio",
                    self.output_format
                ),
            ));
        }
        Ok(Synthesized {
            bytes: reply.body,
            format: self.format,
            model: self.model.clone(),
        })
    }
}

#[async_trait]
impl Tts for ElevenLabs {
    fn id(&self) -> &'static str {
        ID
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn status(&self) -> ProviderStatus {
        ProviderStatus {
            available: true,
            detail: format!("model {}, {}", self.model, self.output_format),
        }
    }

    async fn voices(&self) -> Result<Vec<Voice>, ProviderError> {
        let voices = self
            .voices
            .try_get_with((), async { self.fetch_voices().await.map(Arc::new) })
            .await
            .map_err(|e: Arc<ProviderError>| (*e).clone())?;
        Ok(voices.as_ref().clone())
    }

    fn limits(&self, _voice: &str) -> TextLimit {
        TextLimit::chars(max_chars(&self.model))
    }

    fn max_concurrency(&self) -> usize {
        self.http.max_concurrency
    }

    fn price_micros_per_1k_chars(&self) -> u64 {
        self.price
    }

    #[tracing::instrument(skip_all, fields(provider = ID, voice = %request.voice, chars = request.text.chars().count()), err)]
    async fn synthesize(&self, request: &SynthesisRequest) -> Result<Synthesized, ProviderError> {
        let mut url = self.url(&["v1", "text-to-speech", &request.voice]);
        url.query_pairs_mut()
            .append_pair("output_format", &self.output_format);
        let mut body = json!({ "text": request.text, "model_id": self.model });
        let speed = request.speed.clamp(MIN_SPEED, MAX_SPEED);
        if (speed - 1.0).abs() > f32::EPSILON {
            body["voice_settings"] = json!({ "speed": super::round2(speed) });
        }
        self.http.call(|| self.attempt(&url, &body)).await
    }
}

/// Reads an ElevenLabs error, `{"detail": {"status", "message"}}` (or FastAPI's `{"detail": [..]}` on 422).
pub(crate) fn classify(http: &HttpBase, reply: &Reply) -> ProviderError {
    let body = reply.json();
    let detail = body.as_ref().and_then(|b| b.get("detail"));
    let status = detail
        .and_then(|d| d.get("status"))
        .and_then(|s| s.as_str());
    let message = detail
        .and_then(|d| d.get("message"))
        .and_then(|s| s.as_str())
        .map(str::to_string)
        .or_else(|| {
            detail
                .and_then(|d| d.as_array())
                .and_then(|items| items.first())
                .and_then(|i| i.get("msg"))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        });
    let said = message
        .as_deref()
        .map(|m| format!(": {}", http.excerpt(m)))
        .unwrap_or_default();
    let retry_after = reply.retry_after();
    match status {
        Some("invalid_api_key") => http.error(ErrorKind::Auth, "ElevenLabs rejected the API key"),
        Some("quota_exceeded") => http.error(
            ErrorKind::Quota,
            format!("ElevenLabs says the account's quota is used up{said}"),
        ),
        Some("voice_not_found") => http.error(
            ErrorKind::UnknownVoice,
            format!("ElevenLabs does not know this voice{said}"),
        ),
        Some("too_many_concurrent_requests") => http
            .error(
                ErrorKind::RateLimited,
                "ElevenLabs refused a request over the plan's concurrency limit \
                 (lower providers.elevenlabs.max_concurrency)",
            )
            .with_retry_after(retry_after),
        Some("system_busy") => http
            .error(ErrorKind::RateLimited, "ElevenLabs is busy right now")
            .with_retry_after(retry_after),
        Some("max_character_limit_exceeded") => http.error(
            ErrorKind::Rejected,
            format!("ElevenLabs refused the text as too long{said}"),
        ),
        _ => http.status_error(reply, message.as_deref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_formats_name_their_audio_layout() {
        assert_eq!(parse_output_format("mp3_44100_128").unwrap(), Format::Mp3);
        assert_eq!(
            parse_output_format("pcm_24000").unwrap(),
            Format::PcmS16Le {
                sample_rate: 24000,
                channels: 1
            }
        );
        assert_eq!(parse_output_format("opus_48000_64").unwrap(), Format::Ogg);
        assert!(parse_output_format("ulaw_8000").is_err());
        assert!(parse_output_format("pcm").is_err());
    }

    #[test]
    fn character_limits_follow_the_model() {
        assert_eq!(max_chars("eleven_flash_v2_5"), 40_000);
        assert_eq!(max_chars("eleven_turbo_v2"), 30_000);
        assert_eq!(max_chars("eleven_multilingual_v2"), 10_000);
        assert_eq!(max_chars("something_new"), 5_000);
    }
}
