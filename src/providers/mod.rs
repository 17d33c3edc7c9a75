//! Text-to-speech providers behind one `Tts` trait, speech recognition behind one `Asr` trait
//! (`asr/`), the registry that holds both and resolves `provider:voice` ids, and the language
//! model client; all on one HTTP base, retry policy and error kind.

pub mod asr;
pub mod elevenlabs;
pub(crate) mod http;
pub mod llm;
pub mod local;
pub mod neural;
pub mod openai;
pub mod retry;
pub mod scrub;
pub mod tc3;
pub mod tencent;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::audio::Format;
use crate::config::Config;
use crate::error_code::ErrorCode;
pub use asr::Asr;
pub use retry::RetryPolicy;
pub use scrub::Scrubber;

/// The ids of every provider aimake knows, in the order they are listed to users.
/// Neural voices on this machine come first: they are free, private and sound natural.
pub const PROVIDER_IDS: [&str; 6] = [
    "kokoro",
    "piper",
    "local",
    "openai",
    "elevenlabs",
    "tencent",
];

/// One text-to-speech engine. Used as `Arc<dyn Tts>`; implementations are cheap to share.
#[async_trait]
pub trait Tts: Send + Sync + 'static {
    /// `local`, `openai`, `elevenlabs` or `tencent`: the part before `:` in a voice id.
    fn id(&self) -> &'static str;

    /// The model or engine that speaks, for usage rows (`tts:openai:tts-1`) and cache keys.
    fn model(&self) -> &str;

    /// The model that speaks a request naming `requested` ([`SynthesisRequest::model`]):
    /// providers with one model ignore the name.
    fn model_for<'a>(&'a self, requested: Option<&'a str>) -> &'a str {
        let _ = requested;
        self.model()
    }

    /// Whether synthesis can work right now, with a sentence for the operator.
    async fn status(&self) -> ProviderStatus;

    /// A cheap guess at `status().available` (no process, no network): whether this provider's
    /// voices can be a default.
    fn ready(&self) -> bool {
        true
    }

    /// A smaller first chunk for long texts, so progressive playback starts early (local engines
    /// that synthesize one chunk at a time). Later chunks grow towards `limits`.
    fn first_chunk_units(&self, _voice: &str) -> Option<usize> {
        None
    }

    async fn voices(&self) -> Result<Vec<Voice>, ProviderError>;

    /// How much text one `synthesize` call accepts with `voice` (the name after `provider:`).
    fn limits(&self, voice: &str) -> TextLimit;

    /// Requests worth running at once; `synthesize` never exceeds it either way.
    fn max_concurrency(&self) -> usize;

    fn price_micros_per_1k_chars(&self) -> u64;

    /// Micro-dollars for `chars` characters, rounded up so small calls are never free.
    fn cost_micros(&self, chars: usize) -> u64 {
        (chars as u64 * self.price_micros_per_1k_chars()).div_ceil(1000)
    }

    /// Speaks `request.text`, which must fit `limits(&request.voice)`. Retries retryable
    /// failures itself; an error returned here is final. Callers use [`speak`], which counts
    /// the call.
    async fn synthesize(&self, request: &SynthesisRequest) -> Result<Synthesized, ProviderError>;
}

/// Speaks through `provider`: every synthesis goes through here, so each is counted in the
/// metrics (the call, its outcome and duration, characters and cost).
pub async fn speak(
    provider: &dyn Tts,
    request: &SynthesisRequest,
) -> Result<Synthesized, ProviderError> {
    let started = std::time::Instant::now();
    let result = provider.synthesize(request).await;
    let id = provider.id();
    let kind = crate::monitor::series::ProviderKind::Tts;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.kind.code().as_str(),
    };
    crate::monitor::metrics::provider_call(id, kind, outcome, started.elapsed());
    if result.is_ok() {
        let chars = request.text.chars().count();
        crate::monitor::metrics::provider_usage(
            id,
            kind,
            chars as u64,
            provider.cost_micros(chars),
        );
    }
    result
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderStatus {
    pub available: bool,
    pub detail: String,
}

/// One row of `GET /api/providers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderInfo {
    pub id: &'static str,
    pub kind: &'static str,
    pub available: bool,
    pub detail: String,
}

/// One row of `GET /api/voices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Voice {
    /// `provider:voice`, what clients send back in `POST /api/audios`.
    pub id: String,
    pub provider: String,
    pub name: String,
    /// BCP-47 (`en-US`, `zh-CN`); `mul` for voices that speak whatever language they are given.
    pub language: String,
    pub gender: Option<Gender>,
    pub quality: Quality,
    /// The voice's own licence, where it has one (neural models on this machine).
    pub license: Option<String>,
    /// False for voices whose licence forbids commercial use.
    pub commercial_use: bool,
    /// The server's pick for this voice's language (one per language, set by the registry).
    pub default: bool,
}

/// How natural a voice sounds, for ordering and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    /// Natural speech: Kokoro, Piper high, the cloud providers.
    High,
    /// Clear, a little flat: Piper medium and low.
    Good,
    /// Robotic: espeak-ng.
    Basic,
}

impl Voice {
    pub fn new(
        provider: &str,
        voice: &str,
        name: impl Into<String>,
        language: impl Into<String>,
        gender: Option<Gender>,
    ) -> Self {
        Self {
            id: format!("{provider}:{voice}"),
            provider: provider.to_string(),
            name: name.into(),
            language: language.into(),
            gender,
            quality: if provider == "local" {
                Quality::Basic
            } else {
                Quality::High
            },
            license: None,
            commercial_use: true,
            default: false,
        }
    }

    pub fn with_quality(mut self, quality: Quality) -> Self {
        self.quality = quality;
        self
    }

    pub fn with_license(mut self, license: &str, commercial_use: bool) -> Self {
        self.license = Some(license.to_string());
        self.commercial_use = commercial_use;
        self
    }

    /// `en` matches `en-US` and `en-GB`; a multilingual voice matches every language.
    pub fn speaks(&self, language: &str) -> bool {
        let own = self.language.to_ascii_lowercase();
        let wanted = language.trim().to_ascii_lowercase();
        own == "mul"
            || own == wanted
            || own.starts_with(&format!("{wanted}-"))
            || wanted.starts_with(&format!("{own}-"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Female,
    Male,
    Neutral,
}

impl Gender {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "female" | "f" | "woman" => Some(Self::Female),
            "male" | "m" | "man" => Some(Self::Male),
            "neutral" | "non-binary" | "nonbinary" => Some(Self::Neutral),
            _ => None,
        }
    }
}

/// A parsed `provider:voice` id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VoiceId {
    pub provider: String,
    pub voice: String,
}

impl VoiceId {
    pub fn parse(id: &str) -> Result<Self, ProviderError> {
        let invalid = || {
            ProviderError::new(
                "registry",
                ErrorKind::UnknownVoice,
                format!("`{id}` is not a voice id; voice ids look like `local:en-us`"),
            )
        };
        let (provider, voice) = id.split_once(':').ok_or_else(invalid)?;
        let provider_ok = !provider.is_empty() && provider.bytes().all(|b| b.is_ascii_lowercase());
        // Voice names end up in URL paths and process arguments: keep them plain.
        let voice_ok = !voice.is_empty()
            && voice.len() <= 200
            && !voice.starts_with('-')
            && voice
                .chars()
                .all(|c| c.is_alphanumeric() || "-_.+()".contains(c));
        if !provider_ok || !voice_ok {
            return Err(invalid());
        }
        Ok(Self {
            provider: provider.to_string(),
            voice: voice.to_string(),
        })
    }
}

impl fmt::Display for VoiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.provider, self.voice)
    }
}

/// How a provider measures the length of a request's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Unicode scalar values (what `str::chars` yields).
    Chars,
    /// A wide (CJK, full-width) character costs `wide` units, anything else `narrow`.
    Weighted { wide: usize, narrow: usize },
}

/// The most text one request may carry, in the provider's own units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextLimit {
    pub max_units: usize,
    pub counting: Counting,
}

impl TextLimit {
    pub const fn chars(max: usize) -> Self {
        Self {
            max_units: max,
            counting: Counting::Chars,
        }
    }

    /// What one character costs; a chunker adds these up as it goes.
    pub fn char_units(&self, c: char) -> usize {
        match self.counting {
            Counting::Chars => 1,
            Counting::Weighted { wide, narrow } => {
                if is_wide(c) {
                    wide
                } else {
                    narrow
                }
            }
        }
    }

    pub fn units(&self, text: &str) -> usize {
        match self.counting {
            Counting::Chars => text.chars().count(),
            Counting::Weighted { .. } => text.chars().map(|c| self.char_units(c)).sum(),
        }
    }

    pub fn fits(&self, text: &str) -> bool {
        self.units(text) <= self.max_units
    }
}

/// CJK ideographs, kana, hangul and full-width forms: what Tencent counts as a "Chinese character".
pub fn is_wide(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF        // Hangul Jamo
        | 0x2E80..=0x2FDF      // CJK radicals, Kangxi radicals
        | 0x3000..=0x303F      // CJK symbols and punctuation (、。「」)
        | 0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3100..=0x31FF      // Bopomofo, Hangul compatibility, Katakana extensions
        | 0x3200..=0x4DBF      // enclosed CJK, compatibility, extension A
        | 0x4E00..=0x9FFF      // CJK unified ideographs
        | 0xA960..=0xA97F
        | 0xAC00..=0xD7FF      // Hangul syllables
        | 0xF900..=0xFAFF      // CJK compatibility ideographs
        | 0xFE30..=0xFE4F      // CJK compatibility forms
        | 0xFF00..=0xFF60      // full-width forms (，！？)
        | 0xFFE0..=0xFFE6
        | 0x20000..=0x3FFFF // extensions B and later
    )
}

#[derive(Debug, Clone, PartialEq)]
pub struct SynthesisRequest {
    pub text: String,
    /// The voice's name within the provider: the part after `provider:`.
    pub voice: String,
    /// 1.0 is the voice's normal pace; the API accepts 0.5..=2.0 and providers clamp to theirs.
    pub speed: f32,
    /// The format the caller will finally store; providers that can pick their output use it.
    pub format_hint: Format,
    /// A model other than the provider's own, for providers that have several (OpenAI and
    /// compatible servers); see [`Tts::model_for`]. Others ignore it.
    pub model: Option<String>,
    /// How to speak (tone, pace, accent), for models that take it (gpt-4o-mini-tts); ignored
    /// by the rest.
    pub instructions: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Synthesized {
    pub bytes: Bytes,
    /// The container or sample layout of `bytes`, so the audio pipeline knows how to decode.
    pub format: Format,
    /// The model that produced it (as in `Tts::model`).
    pub model: String,
}

/// What went wrong, in the terms a retry decision and a user message need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No answer within the attempt's timeout.
    Timeout,
    /// Connection refused, reset, DNS failure, a body cut short.
    Network,
    /// 429 or a throttling code; may carry `retry_after`.
    RateLimited,
    /// 5xx or the provider's own "internal error" / "busy" codes.
    ServerError,
    /// A 200 whose body is not the audio that was asked for.
    BadAudio,
    /// The key or signature was refused.
    Auth,
    /// The provider refused the request itself (too long, bad parameter).
    Rejected,
    /// The upload is over what the provider takes in one request (bytes or duration).
    TooLarge,
    /// The provider cannot read audio in this format (or the file is corrupt).
    UnsupportedFormat,
    UnknownVoice,
    /// The account is out of credit or characters.
    Quota,
    /// Not configured, or the local engine is missing.
    Unavailable,
    /// Anything else that retrying will not fix.
    Failed,
}

impl ErrorKind {
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::Timeout | Self::Network | Self::RateLimited | Self::ServerError | Self::BadAudio
        )
    }

    /// The `code` stored with a failed job and sent in API errors.
    pub fn code(self) -> ErrorCode {
        match self {
            Self::Timeout => ErrorCode::ProviderTimeout,
            Self::Network => ErrorCode::ProviderNetwork,
            Self::RateLimited => ErrorCode::ProviderRateLimited,
            Self::ServerError => ErrorCode::ProviderError,
            Self::BadAudio => ErrorCode::ProviderBadAudio,
            Self::Auth => ErrorCode::ProviderAuth,
            Self::Rejected => ErrorCode::ProviderRejected,
            Self::TooLarge => ErrorCode::PayloadTooLarge,
            Self::UnsupportedFormat => ErrorCode::UnsupportedMediaType,
            Self::UnknownVoice => ErrorCode::UnknownVoice,
            Self::Quota => ErrorCode::ProviderQuota,
            Self::Unavailable => ErrorCode::ProviderUnavailable,
            Self::Failed => ErrorCode::ProviderFailed,
        }
    }
}

/// A provider failure with a message that is safe to show users: it never contains a key.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub kind: ErrorKind,
    pub provider: &'static str,
    pub message: String,
    /// The provider's own wait hint (`Retry-After`), before any cap.
    pub retry_after: Option<Duration>,
    /// The HTTP status of the answer that failed, when there was one (for logs and callers
    /// that report it).
    pub status: Option<u16>,
    /// The provider certainly did nothing with the request: no connection was made, or it
    /// answered with a refusal of its own. A call that must not run twice (one that creates
    /// something billed) is sent again only then (`retry::Resend::NothingDone`).
    pub nothing_done: bool,
}

impl ProviderError {
    pub fn new(provider: &'static str, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            provider,
            message: message.into(),
            retry_after: None,
            status: None,
            nothing_done: false,
        }
    }

    /// Marks a failure after which the provider certainly did nothing (see `nothing_done`).
    pub fn with_nothing_done(mut self) -> Self {
        self.nothing_done = true;
        self
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    pub fn code(&self) -> ErrorCode {
        self.kind.code()
    }
}

/// The enabled providers, built once from config and shared through `AppState`.
#[derive(Clone)]
pub struct Providers {
    enabled: Vec<Arc<dyn Tts>>,
    /// Known providers that are switched off, with what would switch them on.
    disabled: Vec<(&'static str, String)>,
    /// Speech recognition, from the same provider sections and keys.
    asr: Vec<Arc<dyn Asr>>,
    asr_disabled: Vec<(&'static str, String)>,
}

impl Providers {
    /// Every provider whose keys are configured, plus `local`, which is always present.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        Self::from_config_with(config, RetryPolicy::from_config(&config.providers.retry))
    }

    /// As `from_config`, with a retry policy of the caller's (tests make backoff instant).
    pub fn from_config_with(config: &Config, retry: RetryPolicy) -> anyhow::Result<Self> {
        let p = &config.providers;
        let scrub = Scrubber::from_config(config);
        let mut enabled: Vec<Arc<dyn Tts>> = neural::providers(config);
        enabled.push(Arc::new(local::Local::new(&p.local)));
        let mut disabled = Vec::new();
        if openai::OpenAi::is_configured(&p.openai) {
            enabled.push(Arc::new(openai::OpenAi::new(
                &p.openai,
                retry.clone(),
                scrub.clone(),
            )?));
        } else {
            disabled.push((
                "openai",
                "not configured: set providers.openai.api_key (or OPENAI_API_KEY), or \
                 providers.openai.base_url for a local OpenAI-compatible server"
                    .to_string(),
            ));
        }
        if p.elevenlabs.api_key.is_some() {
            enabled.push(Arc::new(elevenlabs::ElevenLabs::new(
                &p.elevenlabs,
                retry.clone(),
                scrub.clone(),
            )?));
        } else {
            disabled.push((
                "elevenlabs",
                "not configured: set providers.elevenlabs.api_key (or ELEVENLABS_API_KEY)"
                    .to_string(),
            ));
        }
        let tencent_keys = p.tencent.secret_id.is_some() && p.tencent.secret_key.is_some();
        let tencent_hint = "not configured: set providers.tencent.secret_id and secret_key \
                            (or TENCENT_SECRET_ID and TENCENT_SECRET_KEY)";
        if tencent_keys {
            enabled.push(Arc::new(tencent::Tencent::new(
                &p.tencent,
                retry.clone(),
                scrub.clone(),
            )?));
        } else {
            disabled.push(("tencent", tencent_hint.to_string()));
        }

        let mut asr: Vec<Arc<dyn Asr>> = Vec::new();
        let mut asr_disabled = Vec::new();
        if asr::openai::OpenAiAsr::is_configured(&p.openai) {
            asr.push(Arc::new(asr::openai::OpenAiAsr::new(
                &p.openai,
                retry.clone(),
                scrub.clone(),
            )?));
        } else {
            asr_disabled.push((
                "openai",
                "not configured: set providers.openai.api_key (or OPENAI_API_KEY), or \
                 providers.openai.asr_base_url for a local OpenAI-compatible server"
                    .to_string(),
            ));
        }
        if p.elevenlabs.api_key.is_some() {
            asr.push(Arc::new(asr::elevenlabs::ElevenLabsAsr::new(
                &p.elevenlabs,
                retry.clone(),
                scrub.clone(),
            )?));
        } else {
            asr_disabled.push((
                "elevenlabs",
                "not configured: set providers.elevenlabs.api_key (or ELEVENLABS_API_KEY)"
                    .to_string(),
            ));
        }
        if tencent_keys {
            asr.push(Arc::new(asr::tencent::TencentAsr::new(
                &p.tencent, retry, scrub,
            )?));
        } else {
            asr_disabled.push(("tencent", tencent_hint.to_string()));
        }
        if p.whisper.enabled {
            let m = &config.models;
            asr.push(Arc::new(asr::whisper::Whisper::new(
                &p.whisper,
                crate::models::Layout::new(m.dir(&config.data)),
                m.threads,
                m.idle_unload_s,
            )));
        } else {
            asr_disabled.push((
                "whisper",
                "switched off: set providers.whisper.enabled = true".to_string(),
            ));
        }
        Ok(Self {
            enabled,
            disabled,
            asr,
            asr_disabled,
        })
    }

    /// A registry of exactly these providers (tests use it with in-process engines).
    pub fn new(enabled: Vec<Arc<dyn Tts>>) -> Self {
        Self {
            enabled,
            disabled: Vec::new(),
            asr: Vec::new(),
            asr_disabled: Vec::new(),
        }
    }

    /// The same registry with exactly these speech recognition providers.
    pub fn with_asr(mut self, asr: Vec<Arc<dyn Asr>>) -> Self {
        self.asr = asr;
        self.asr_disabled.clear();
        self
    }

    /// The enabled speech recognition provider `id`.
    pub fn asr(&self, id: &str) -> Option<Arc<dyn Asr>> {
        self.asr.iter().find(|p| p.id() == id).cloned()
    }

    /// The enabled speech recognition providers that can work now by their own cheap check
    /// (the engine on this machine once a model is installed), in `ASR_PROVIDER_IDS` order.
    pub fn asr_enabled(&self) -> impl Iterator<Item = &Arc<dyn Asr>> {
        self.asr.iter().filter(|p| p.ready())
    }

    /// The speech recognition provider `id`, or why there is none: switched off (and what
    /// would switch it on) or unknown.
    pub fn resolve_asr(&self, id: &str) -> Result<Arc<dyn Asr>, ProviderError> {
        if let Some(p) = self.asr(id) {
            return Ok(p);
        }
        match self.asr_disabled.iter().find(|(p, _)| *p == id) {
            Some((_, why)) => Err(ProviderError::new(
                "registry",
                ErrorKind::Unavailable,
                format!(
                    "Speech recognition by {} is {why}",
                    display_name(id).trim_start_matches("The ")
                ),
            )),
            None => Err(ProviderError::new(
                "registry",
                ErrorKind::Unavailable,
                format!("There is no speech recognition provider `{id}`"),
            )),
        }
    }

    /// Every known speech recognition provider, enabled or not, with `kind: "asr"`.
    pub async fn list_asr(&self) -> Vec<ProviderInfo> {
        let statuses = futures::future::join_all(
            self.asr
                .iter()
                .map(|p| async move { (p.id(), p.status().await) }),
        )
        .await;
        let mut listed: Vec<ProviderInfo> = statuses
            .into_iter()
            .map(|(id, s)| ProviderInfo {
                id,
                kind: "asr",
                available: s.available,
                detail: s.detail,
            })
            .chain(self.asr_disabled.iter().map(|(id, why)| ProviderInfo {
                id,
                kind: "asr",
                available: false,
                detail: why.clone(),
            }))
            .collect();
        listed.sort_by_key(|p| asr::ASR_PROVIDER_IDS.iter().position(|id| *id == p.id));
        listed
    }

    pub fn get(&self, provider: &str) -> Option<Arc<dyn Tts>> {
        self.enabled.iter().find(|p| p.id() == provider).cloned()
    }

    pub fn enabled(&self) -> impl Iterator<Item = &Arc<dyn Tts>> {
        self.enabled.iter()
    }

    /// The provider of a `provider:voice` id, without checking that the voice exists.
    pub fn resolve(&self, voice_id: &str) -> Result<(Arc<dyn Tts>, VoiceId), ProviderError> {
        let id = VoiceId::parse(voice_id)?;
        if let Some(p) = self.get(&id.provider) {
            return Ok((p, id));
        }
        if let Some((_, why)) = self.disabled.iter().find(|(p, _)| *p == id.provider) {
            return Err(ProviderError::new(
                "registry",
                ErrorKind::Unavailable,
                format!(
                    "The voice {voice_id} needs the {} provider, which is {why}",
                    display_name(&id.provider)
                ),
            ));
        }
        Err(ProviderError::new(
            "registry",
            ErrorKind::UnknownVoice,
            format!("There is no provider `{}` (voice {voice_id})", id.provider),
        ))
    }

    /// The provider and voice of a voice id, checked against the provider's voice list.
    pub async fn voice(&self, voice_id: &str) -> Result<(Arc<dyn Tts>, Voice), ProviderError> {
        let (provider, id) = self.resolve(voice_id)?;
        let voices = provider.voices().await?;
        match voices.into_iter().find(|v| v.id == voice_id) {
            Some(v) => Ok((provider, v)),
            None => Err(ProviderError::new(
                provider.id(),
                ErrorKind::UnknownVoice,
                format!(
                    "{} has no voice named `{}`",
                    display_name(provider.id()),
                    id.voice
                ),
            )),
        }
    }

    /// Every known provider, enabled or not, for `GET /api/providers`.
    pub async fn list(&self) -> Vec<ProviderInfo> {
        let statuses = futures::future::join_all(
            self.enabled
                .iter()
                .map(|p| async move { (p.id(), p.status().await) }),
        )
        .await;
        let mut out: Vec<ProviderInfo> = statuses
            .into_iter()
            .map(|(id, s)| ProviderInfo {
                id,
                kind: "tts",
                available: s.available,
                detail: s.detail,
            })
            .chain(self.disabled.iter().map(|(id, why)| ProviderInfo {
                id,
                kind: "tts",
                available: false,
                detail: why.clone(),
            }))
            .collect();
        out.sort_by_key(|i| {
            PROVIDER_IDS
                .iter()
                .position(|p| *p == i.id)
                .unwrap_or(usize::MAX)
        });
        out
    }

    /// The voices of every enabled provider (or one), optionally only those speaking
    /// `language`. A provider that cannot list its voices right now is skipped and logged,
    /// so one outage does not hide the others.
    pub async fn voices(&self, provider: Option<&str>, language: Option<&str>) -> Vec<Voice> {
        let chosen = self
            .enabled
            .iter()
            .filter(|p| provider.is_none_or(|want| p.id() == want));
        let lists = futures::future::join_all(chosen.map(|p| async move {
            match p.voices().await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(provider = p.id(), error = %e, "cannot list voices");
                    Vec::new()
                }
            }
        }))
        .await;
        let mut all: Vec<Voice> = lists.into_iter().flatten().collect();
        self.mark_defaults(&mut all);
        all.into_iter()
            .filter(|v| language.is_none_or(|l| l.trim().is_empty() || v.speaks(l)))
            .collect()
    }

    /// The id of the default voice for `language` (`en`, `zh-CN`, …), if any voice speaks it.
    pub async fn default_voice(&self, language: &str) -> Option<String> {
        self.voices(None, Some(language))
            .await
            .into_iter()
            .find(|v| v.default)
            .map(|v| v.id)
    }

    /// Sets `default` on one voice per primary language (`en`, `zh`, …): the first voice of the
    /// first ready provider in `PROVIDER_IDS` order, preferring that provider's own pick.
    fn mark_defaults(&self, voices: &mut [Voice]) {
        let ready: Vec<&str> = self
            .enabled
            .iter()
            .filter(|p| p.ready())
            .map(|p| p.id())
            .collect();
        let rank = |v: &Voice| {
            let provider = PROVIDER_IDS
                .iter()
                .position(|p| *p == v.provider)
                .unwrap_or(usize::MAX);
            let preferred = neural::kokoro::DEFAULT_VOICES
                .iter()
                .any(|(_, name)| v.id == format!("kokoro:{name}"));
            // Where a language has regional voices, its most widely used region first.
            let usual = !v.language.contains('-')
                || matches!(
                    v.language.as_str(),
                    "en-US" | "zh-CN" | "fr-FR" | "pt-BR" | "es-ES" | "de-DE"
                );
            (provider, !preferred, !usual)
        };
        let mut best: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (i, v) in voices.iter().enumerate() {
            if !ready.contains(&v.provider.as_str()) || v.language == "mul" {
                continue;
            }
            let primary = v
                .language
                .split('-')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            match best.get(&primary) {
                Some(&j) if rank(&voices[j]) <= rank(v) => {}
                _ => {
                    best.insert(primary, i);
                }
            }
        }
        for i in best.into_values() {
            voices[i].default = true;
        }
    }
}

/// Speeds go over the wire as decimals people would write (1.2, not 1.2000000476837158).
pub(crate) fn round2(x: f32) -> f64 {
    (f64::from(x) * 100.0).round() / 100.0
}

/// How providers are named in messages to users.
pub fn display_name(provider: &str) -> &'static str {
    match provider {
        "local" => "The local voice",
        "kokoro" => "Kokoro",
        "piper" => "Piper",
        "openai" => "OpenAI",
        "elevenlabs" => "ElevenLabs",
        "tencent" => "Tencent Cloud",
        "whisper" => "Whisper",
        _ => "The provider",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_ids_split_into_provider_and_voice() {
        let id = VoiceId::parse("elevenlabs:21m00Tcm4TlvDq8ikWAM").unwrap();
        assert_eq!(id.provider, "elevenlabs");
        assert_eq!(id.voice, "21m00Tcm4TlvDq8ikWAM");
        assert_eq!(id.to_string(), "elevenlabs:21m00Tcm4TlvDq8ikWAM");
        assert_eq!(VoiceId::parse("local:en-us").unwrap().voice, "en-us");
        assert_eq!(
            VoiceId::parse("openai:af_bella+af_sky").unwrap().voice,
            "af_bella+af_sky"
        );
    }

    #[test]
    fn malformed_voice_ids_are_unknown_voices() {
        for bad in [
            "",
            "local",
            ":en",
            "local:",
            "Local:en",
            "openai:../../admin",
            "local:-w/etc/passwd",
            "local:en us",
        ] {
            let e = VoiceId::parse(bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::UnknownVoice, "{bad}");
        }
    }

    #[test]
    fn tencent_style_weighted_counting_treats_cjk_as_wide() {
        let limit = TextLimit {
            max_units: 1500,
            counting: Counting::Weighted {
                wide: 10,
                narrow: 3,
            },
        };
        assert_eq!(limit.units("你好，world!"), 3 * 10 + 6 * 3);
        assert!(limit.fits(&"字".repeat(150)));
        assert!(!limit.fits(&"字".repeat(151)));
        assert!(limit.fits(&"a".repeat(500)));
        assert!(!limit.fits(&"a".repeat(501)));
        assert_eq!(TextLimit::chars(4096).units("héllo 世界"), 8);
    }

    #[test]
    fn wide_characters_include_full_width_punctuation_but_not_ascii() {
        for c in ['中', '。', '，', '！', 'あ', 'カ', '한', '「'] {
            assert!(is_wide(c), "{c}");
        }
        for c in ['a', ',', '.', ' ', 'é', '—', '1'] {
            assert!(!is_wide(c), "{c}");
        }
    }

    #[test]
    fn language_filters_match_regions_and_multilingual_voices() {
        let v = |lang: &str| Voice::new("x", "y", "n", lang, None);
        assert!(v("en-US").speaks("en"));
        assert!(v("en-US").speaks("en-us"));
        assert!(!v("en-US").speaks("en-GB"));
        assert!(v("zh-CN").speaks("zh"));
        assert!(v("zh").speaks("zh-CN"));
        assert!(v("mul").speaks("zh-CN"));
        assert!(!v("zh-CN").speaks("en"));
    }

    #[test]
    fn costs_round_up_to_a_whole_micro_dollar() {
        struct Priced;
        #[async_trait]
        impl Tts for Priced {
            fn id(&self) -> &'static str {
                "openai"
            }
            fn model(&self) -> &str {
                "tts-1"
            }
            async fn status(&self) -> ProviderStatus {
                unreachable!()
            }
            async fn voices(&self) -> Result<Vec<Voice>, ProviderError> {
                unreachable!()
            }
            fn limits(&self, _: &str) -> TextLimit {
                TextLimit::chars(1)
            }
            fn max_concurrency(&self) -> usize {
                1
            }
            fn price_micros_per_1k_chars(&self) -> u64 {
                15_000
            }
            async fn synthesize(&self, _: &SynthesisRequest) -> Result<Synthesized, ProviderError> {
                unreachable!()
            }
        }
        assert_eq!(Priced.cost_micros(1000), 15_000);
        assert_eq!(Priced.cost_micros(1), 15);
        assert_eq!(Priced.cost_micros(0), 0);
        assert_eq!(Priced.cost_micros(4096), 61_440);
    }
}
