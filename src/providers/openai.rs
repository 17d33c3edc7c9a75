//! Any OpenAI-compatible `POST /v1/audio/speech`: OpenAI itself, Kokoro-FastAPI, LocalAI, speaches.

use async_trait::async_trait;
use serde_json::json;

use super::http::{HttpBase, Reply};
use super::scrub::Scrubber;
use super::{
    ErrorKind, ProviderError, ProviderStatus, RetryPolicy, SynthesisRequest, Synthesized,
    TextLimit, Tts, Voice,
};
use crate::audio::Format;
use crate::config::{OpenAiConfig, Secret};

const ID: &str = "openai";
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// `input` may hold at most 4096 characters.
const MAX_INPUT_CHARS: usize = 4096;

/// The voices `tts-1` and `tts-1-hd` have always had.
const CLASSIC_VOICES: &[&str] = &["alloy", "echo", "fable", "onyx", "nova", "shimmer"];

/// The built-in voices of the newer speech models.
const ALL_VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
    "marin", "cedar",
];

/// Whether `model` takes `instructions`: OpenAI's `tts-1` and `tts-1-hd` refuse them.
fn takes_instructions(model: &str) -> bool {
    !model.starts_with("tts-1")
}

/// The `response_format` to ask for a wanted format, and the format of the answer: what the
/// speech API can return as it is, else MP3.
fn response_format(wanted: Format) -> (&'static str, Format) {
    match wanted {
        Format::Wav => ("wav", Format::Wav),
        Format::Flac => ("flac", Format::Flac),
        // OpenAI's `opus` is Opus in an Ogg container.
        Format::Ogg => ("opus", Format::Ogg),
        Format::PcmS16Le {
            sample_rate: 24_000,
            channels: 1,
        } => ("pcm", wanted),
        _ => ("mp3", Format::Mp3),
    }
}

pub struct OpenAi {
    http: HttpBase,
    speech_url: String,
    api_key: Option<Secret>,
    model: String,
    voices: Vec<String>,
    price: u64,
}

impl OpenAi {
    /// A key, or a base URL of another (often keyless, local) compatible server.
    pub fn is_configured(config: &OpenAiConfig) -> bool {
        config.api_key.is_some() || config.base_url.trim_end_matches('/') != DEFAULT_BASE_URL
    }

    pub fn new(config: &OpenAiConfig, retry: RetryPolicy, scrub: Scrubber) -> anyhow::Result<Self> {
        let base = url::Url::parse(&config.base_url)?;
        let display = display_name(&base, "speech server", "providers.openai.base_url")?;
        let voices = if config.voices.is_empty() {
            let builtin = if config.model.starts_with("tts-1") {
                CLASSIC_VOICES
            } else {
                ALL_VOICES
            };
            builtin.iter().map(|v| v.to_string()).collect()
        } else {
            config.voices.clone()
        };
        Ok(Self {
            http: HttpBase::new(
                ID,
                display,
                retry,
                config.timeout_ms,
                config.max_concurrency,
                scrub,
            )?,
            speech_url: format!("{}/audio/speech", config.base_url.trim_end_matches('/')),
            api_key: config.api_key.clone(),
            model: config.model.clone(),
            voices,
            price: config.price_micros_per_1k_chars,
        })
    }

    fn classify(&self, reply: &Reply) -> ProviderError {
        let said = Said::read(reply);
        match reply.status.as_u16() {
            400 | 404 | 422 if said.param.as_deref() == Some("voice") => self.http.error(
                ErrorKind::UnknownVoice,
                format!(
                    "{} does not know this voice: {}",
                    self.http.display,
                    self.http
                        .excerpt(said.message.as_deref().unwrap_or("unknown voice"))
                ),
            ),
            _ => classify(&self.http, reply, &said),
        }
    }

    async fn attempt(
        &self,
        body: &serde_json::Value,
        format: Format,
        model: &str,
    ) -> Result<Synthesized, ProviderError> {
        let mut request = self.http.client.post(&self.speech_url).json(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        let reply = self.http.send(request).await?;
        if !reply.status.is_success() {
            return Err(self.classify(&reply));
        }
        if !format.looks_like(&reply.body) {
            return Err(self.http.error(
                ErrorKind::BadAudio,
                format!(
                    "{} answered with something that is not {} audio",
                    self.http.display,
                    format.extension()
                ),
            ));
        }
        Ok(Synthesized {
            bytes: reply.body,
            format,
            model: model.to_string(),
        })
    }
}

#[async_trait]
impl Tts for OpenAi {
    fn id(&self) -> &'static str {
        ID
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn model_for<'a>(&'a self, requested: Option<&'a str>) -> &'a str {
        requested.unwrap_or(&self.model)
    }

    async fn status(&self) -> ProviderStatus {
        ProviderStatus {
            available: true,
            detail: format!("{}, model {}", self.http.display, self.model),
        }
    }

    async fn voices(&self) -> Result<Vec<Voice>, ProviderError> {
        // The built-in voices speak the language of the text they are given.
        Ok(self
            .voices
            .iter()
            .map(|v| Voice::new(ID, v, v.clone(), "mul", None))
            .collect())
    }

    fn limits(&self, _voice: &str) -> TextLimit {
        TextLimit::chars(MAX_INPUT_CHARS)
    }

    fn max_concurrency(&self) -> usize {
        self.http.max_concurrency
    }

    fn price_micros_per_1k_chars(&self) -> u64 {
        self.price
    }

    #[tracing::instrument(skip_all, fields(provider = ID, voice = %request.voice, chars = request.text.chars().count()), err)]
    async fn synthesize(&self, request: &SynthesisRequest) -> Result<Synthesized, ProviderError> {
        let (response_format, format) = response_format(request.format_hint);
        let model = self.model_for(request.model.as_deref());
        let mut body = json!({
            "model": model,
            "input": request.text,
            "voice": request.voice,
            "response_format": response_format,
            "speed": super::round2(request.speed.clamp(0.25, 4.0)),
        });
        if let Some(instructions) = &request.instructions
            && takes_instructions(model)
        {
            body["instructions"] = json!(instructions);
        }
        self.http.call(|| self.attempt(&body, format, model)).await
    }
}

/// What an OpenAI(-compatible) error body says: `{"error": {message, type, param, code}}`.
#[derive(Debug, Default)]
pub(crate) struct Said {
    pub message: Option<String>,
    pub param: Option<String>,
    pub code: Option<String>,
}

impl Said {
    pub fn read(reply: &Reply) -> Self {
        let body = reply.json();
        let error = body.as_ref().and_then(|b| b.get("error"));
        let field = |name: &str| {
            error
                .and_then(|e| e.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        Self {
            message: field("message"),
            param: field("param"),
            code: field("code"),
        }
    }
}

/// The readings of an OpenAI error every endpoint shares: a refused key, an account without
/// credit, then the status.
pub(crate) fn classify(http: &HttpBase, reply: &Reply, said: &Said) -> ProviderError {
    let display = &http.display;
    match reply.status.as_u16() {
        // The upstream message for a bad key quotes part of it: never pass it on.
        401 => http.error(ErrorKind::Auth, format!("{display} rejected the API key")),
        429 if said.code.as_deref() == Some("insufficient_quota") => http.error(
            ErrorKind::Quota,
            format!("{display} says the account has no credit left"),
        ),
        _ => http.status_error(reply, said.message.as_deref()),
    }
}

/// How an OpenAI-compatible server is named in messages: "OpenAI", or "The {what} at host:port".
pub(crate) fn display_name(base: &url::Url, what: &str, key: &str) -> anyhow::Result<String> {
    Ok(match base.host_str() {
        Some("api.openai.com") => "OpenAI".to_string(),
        Some(host) => match base.port() {
            Some(port) => format!("The {what} at {host}:{port}"),
            None => format!("The {what} at {host}"),
        },
        None => anyhow::bail!("{key} has no host"),
    })
}
