//! Speech recognition behind one `Asr` trait: what a provider accepts in one call, what it can
//! do, what it costs, and the `Transcript` every provider's answer is mapped into.
//!
//! Callers never branch on the provider: a splitter cuts pieces that fit `limits`, runs up to
//! `max_concurrency` of them, and stitches the transcripts with [`Transcript::shifted`]. An
//! engine on this machine (Whisper) is one more implementation of the same trait.

pub mod elevenlabs;
pub mod openai;
pub mod tencent;
mod transcript;
pub mod whisper;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{ErrorKind, ProviderError, ProviderStatus};
use crate::audio::Format;
pub use transcript::{
    Segment, Transcript, Word, join_words, language_code, language_name, segments_from_words,
};

/// The ids of the speech recognition providers, in the order they are listed to users.
pub const ASR_PROVIDER_IDS: [&str; 4] = crate::config::ASR_PROVIDERS;

/// One speech recognition engine. Used as `Arc<dyn Asr>`; implementations are cheap to share.
#[async_trait]
pub trait Asr: Send + Sync + 'static {
    /// `openai`, `elevenlabs`, `tencent` or `whisper`: the provider part of the usage service.
    fn id(&self) -> &'static str;

    /// The model used when a request names none.
    fn model(&self) -> &str;

    /// Models a request may name (the default first), for model lists.
    fn models(&self) -> Vec<String>;

    /// Whether transcription can work right now, with a sentence for the operator.
    async fn status(&self) -> ProviderStatus;

    /// A cheap guess at `status().available` (no process, no network).
    fn ready(&self) -> bool {
        true
    }

    /// What one `transcribe` call with `model` accepts; a splitter cuts pieces within it.
    fn limits(&self, model: &str) -> AsrLimits;

    fn capabilities(&self, model: &str) -> Capabilities;

    /// Requests worth running at once; `transcribe` never exceeds it either way.
    fn max_concurrency(&self) -> usize;

    fn price_micros_per_minute(&self, model: &str) -> u64;

    /// Micro-dollars for `duration` of audio with `model`, rounded up so short pieces are
    /// never free.
    fn cost_micros(&self, model: &str, duration: Duration) -> u64 {
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let micros = u128::from(ms) * u128::from(self.price_micros_per_minute(model));
        u64::try_from(micros.div_ceil(60_000)).unwrap_or(u64::MAX)
    }

    /// Transcribes (or translates) `request.audio`, which must fit `limits`: audio that does
    /// not is refused before anything is sent. Retries retryable failures itself; an error
    /// returned here is final. Callers use [`transcribe`], which counts the call.
    async fn transcribe(&self, request: &TranscriptionRequest)
    -> Result<Transcript, ProviderError>;
}

/// Transcribes through `provider`: every transcription goes through here, so each is counted
/// in the metrics (the call, its outcome and duration, and its cost).
pub async fn transcribe(
    provider: &dyn Asr,
    request: &TranscriptionRequest,
) -> Result<Transcript, ProviderError> {
    let started = std::time::Instant::now();
    let result = provider.transcribe(request).await;
    let id = provider.id();
    let kind = crate::monitor::series::ProviderKind::Asr;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.kind.code().as_str(),
    };
    crate::monitor::metrics::provider_call(id, kind, outcome, started.elapsed());
    if let Ok(transcript) = &result {
        let cost = provider.cost_micros(&transcript.model, transcript.duration());
        crate::monitor::metrics::provider_usage(id, kind, 0, cost);
    }
    result
}

/// The usage ledger's service for a transcription: `asr:<provider>:<model>`.
pub fn service_of(provider: &dyn Asr, transcript: &Transcript) -> String {
    format!("asr:{}:{}", provider.id(), transcript.model)
}

/// Audio containers a transcription request may carry. `mpeg`/`mpga` are MP3 and `oga`/`opus`
/// are Ogg by their extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    Flac,
    Mp3,
    Mp4,
    M4a,
    /// Ogg Vorbis or Opus.
    Ogg,
    Wav,
    Webm,
    /// Raw ADTS AAC.
    Aac,
    Amr,
}

impl InputFormat {
    pub const ALL: [InputFormat; 9] = [
        Self::Flac,
        Self::Mp3,
        Self::Mp4,
        Self::M4a,
        Self::Ogg,
        Self::Wav,
        Self::Webm,
        Self::Aac,
        Self::Amr,
    ];

    /// The extension of the file name it is uploaded under.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Flac => "flac",
            Self::Mp3 => "mp3",
            Self::Mp4 => "mp4",
            Self::M4a => "m4a",
            Self::Ogg => "ogg",
            Self::Wav => "wav",
            Self::Webm => "webm",
            Self::Aac => "aac",
            Self::Amr => "amr",
        }
    }

    pub fn from_extension(extension: &str) -> Option<Self> {
        Some(match extension.to_ascii_lowercase().as_str() {
            "flac" => Self::Flac,
            "mp3" | "mpeg" | "mpga" => Self::Mp3,
            "mp4" => Self::Mp4,
            "m4a" => Self::M4a,
            "ogg" | "oga" | "opus" => Self::Ogg,
            "wav" => Self::Wav,
            "webm" => Self::Webm,
            "aac" => Self::Aac,
            "amr" => Self::Amr,
            _ => return None,
        })
    }

    pub fn mime_type(self) -> &'static str {
        match self {
            Self::Flac => "audio/flac",
            Self::Mp3 => "audio/mpeg",
            Self::Mp4 => "audio/mp4",
            Self::M4a => "audio/mp4",
            Self::Ogg => "audio/ogg",
            Self::Wav => "audio/wav",
            Self::Webm => "audio/webm",
            Self::Aac => "audio/aac",
            Self::Amr => "audio/amr",
        }
    }

    /// The container the leading bytes show, so a file is judged by what it holds rather
    /// than by its name: [`Format::sniff`], the one reading of magic numbers, told apart
    /// further where uploads differ (audio-only `M4A `/`M4B ` brands are m4a), plus the two
    /// containers some providers take that the decoder does not read (ADTS AAC, AMR).
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        let at =
            |offset: usize, magic: &[u8]| bytes.get(offset..offset + magic.len()) == Some(magic);
        match Format::sniff(bytes) {
            Some(Format::Mp4) => Some(if at(8, b"M4A ") || at(8, b"M4B ") {
                Self::M4a
            } else {
                Self::Mp4
            }),
            Some(Format::Mp3) => Some(Self::Mp3),
            Some(Format::Wav) => Some(Self::Wav),
            Some(Format::Flac) => Some(Self::Flac),
            Some(Format::Ogg) => Some(Self::Ogg),
            Some(Format::Webm) => Some(Self::Webm),
            Some(Format::PcmS16Le { .. }) => None,
            None if at(0, b"#!AMR") => Some(Self::Amr),
            // ADTS: the sync bits with layer 00, which MPEG audio (read above) never uses.
            None if bytes.len() >= 4 && bytes[0] == 0xFF && bytes[1] & 0xF6 == 0xF0 => {
                Some(Self::Aac)
            }
            None => None,
        }
    }

    /// The decoder's name for it, where `audio::probe` can measure it.
    pub fn decodable(self) -> Option<Format> {
        match self {
            Self::Flac => Some(Format::Flac),
            Self::Mp3 => Some(Format::Mp3),
            Self::Ogg => Some(Format::Ogg),
            Self::Wav => Some(Format::Wav),
            Self::Mp4 | Self::M4a => Some(Format::Mp4),
            Self::Webm => Some(Format::Webm),
            Self::Aac | Self::Amr => None,
        }
    }

    /// Ogg that carries Opus (the first page's packet starts `OpusHead`), which some
    /// providers take where they refuse Vorbis.
    pub fn is_opus(bytes: &[u8]) -> bool {
        bytes.starts_with(b"OggS") && bytes.get(28..36) == Some(b"OpusHead")
    }
}

/// The length of `audio` as the decoder reads it (every container but raw AAC and AMR); `None` for
/// containers it cannot read or audio that does not decode.
pub async fn measure(audio: &Bytes, format: InputFormat) -> Option<Duration> {
    let decodable = format.decodable()?;
    let bytes = audio.clone();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        crate::audio::probe(&bytes, decodable).ok()
    })
    .await
    .ok()
    .flatten()
    .map(|p| Duration::from_millis(p.duration_ms))
}

/// What one `transcribe` call accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsrLimits {
    /// The largest upload, in bytes.
    pub max_bytes: u64,
    /// The longest audio, where the provider has a limit of its own.
    pub max_duration: Option<Duration>,
    pub formats: &'static [InputFormat],
}

impl AsrLimits {
    pub fn accepts(&self, format: InputFormat) -> bool {
        self.formats.contains(&format)
    }

    /// Whether `request` is within these limits; otherwise the kind of refusal and a sentence
    /// naming `display` (the provider as users read it).
    pub fn check(
        &self,
        display: &str,
        request: &TranscriptionRequest,
    ) -> Result<(), (ErrorKind, String)> {
        if !self.accepts(request.format) {
            let names: Vec<&str> = self.formats.iter().map(|f| f.extension()).collect();
            return Err((
                ErrorKind::UnsupportedFormat,
                format!(
                    "{display} cannot transcribe {} audio; it takes {}",
                    request.format.extension(),
                    names.join(", ")
                ),
            ));
        }
        let bytes = request.audio.len() as u64;
        if bytes > self.max_bytes {
            return Err((
                ErrorKind::TooLarge,
                format!(
                    "The audio is {bytes} bytes; {display} takes at most {} in one request",
                    self.max_bytes
                ),
            ));
        }
        if let (Some(max), Some(length)) = (self.max_duration, request.duration)
            && length > max
        {
            return Err((
                ErrorKind::TooLarge,
                format!(
                    "The audio lasts {} s; {display} takes at most {} s in one request",
                    length.as_secs(),
                    max.as_secs()
                ),
            ));
        }
        Ok(())
    }
}

/// What a provider can do with a model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Speech in any language to English text ([`Task::Translate`]).
    pub translate: bool,
    pub word_timestamps: bool,
    pub segment_timestamps: bool,
    /// Who speaks when ([`TranscriptionRequest::speaker_labels`]).
    pub speaker_labels: bool,
    /// The transcript says which language was spoken when the request did not.
    pub language_detection: bool,
    /// Partial text while the audio is still being recognized. `transcribe` returns the whole
    /// transcript whatever this says; a caller that streams to its own clients sends it then.
    pub streaming: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Text in the language spoken.
    #[default]
    Transcribe,
    /// English text, whatever language was spoken.
    Translate,
}

/// Which timestamps to ask for. Providers that give them anyway still leave out what was
/// not asked for, so the same request gives the same shape everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granularities {
    pub words: bool,
    pub segments: bool,
}

impl Default for Granularities {
    fn default() -> Self {
        Self {
            words: true,
            segments: true,
        }
    }
}

impl Granularities {
    pub fn any(self) -> bool {
        self.words || self.segments
    }
}

#[derive(Clone)]
pub struct TranscriptionRequest {
    pub audio: Bytes,
    /// What `audio` holds; it is uploaded as `audio.<extension>` (the user's file name never
    /// leaves the server).
    pub format: InputFormat,
    /// The audio's length when the caller knows it; providers that need it measure it
    /// otherwise.
    pub duration: Option<Duration>,
    /// A model of the provider's own (`gpt-4o-transcribe`, `scribe_v2`, `16k_en`); `None`
    /// means `Asr::model`.
    pub model: Option<String>,
    /// ISO 639-1 (`en`, `zh`) of the speech, when known; providers detect it otherwise.
    pub language: Option<String>,
    /// Spelling hints or the text before this piece, where the provider takes one.
    pub prompt: Option<String>,
    /// 0.0..=1.0, where the provider takes one.
    pub temperature: Option<f32>,
    pub task: Task,
    pub granularities: Granularities,
    /// Ask for who speaks when, where the provider can tell.
    pub speaker_labels: bool,
}

/// The audio by its size: a request may carry 25 MB and more.
impl std::fmt::Debug for TranscriptionRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TranscriptionRequest")
            .field("audio", &format_args!("{} bytes", self.audio.len()))
            .field("format", &self.format)
            .field("duration", &self.duration)
            .field("model", &self.model)
            .field("language", &self.language)
            .field("task", &self.task)
            .field("granularities", &self.granularities)
            .field("speaker_labels", &self.speaker_labels)
            .finish_non_exhaustive()
    }
}

impl TranscriptionRequest {
    /// A transcription of `audio` with word and segment timestamps and nothing else set.
    pub fn new(audio: impl Into<Bytes>, format: InputFormat) -> Self {
        Self {
            audio: audio.into(),
            format,
            duration: None,
            model: None,
            language: None,
            prompt: None,
            temperature: None,
            task: Task::Transcribe,
            granularities: Granularities::default(),
            speaker_labels: false,
        }
    }

    /// The model this request runs on with `provider`.
    pub fn model_for<'a>(&'a self, provider: &'a dyn Asr) -> &'a str {
        self.model.as_deref().unwrap_or_else(|| provider.model())
    }
}

/// The refusals every provider makes before sending anything: audio over its limits, and a
/// task or a feature its model does not have.
pub(crate) fn precheck(
    provider: &dyn Asr,
    display: &str,
    request: &TranscriptionRequest,
) -> Result<(), (ErrorKind, String)> {
    let model = request.model_for(provider);
    provider.limits(model).check(display, request)?;
    if request.task == Task::Translate && !provider.capabilities(model).translate {
        return Err((
            ErrorKind::Rejected,
            format!("{display} cannot translate speech with {model}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_recognised_by_their_leading_bytes() {
        let mut wav = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        wav.resize(64, 0);
        assert_eq!(InputFormat::sniff(&wav), Some(InputFormat::Wav));
        assert_eq!(InputFormat::sniff(b"fLaC\0\0\0\""), Some(InputFormat::Flac));
        assert_eq!(InputFormat::sniff(b"OggS\0\x02"), Some(InputFormat::Ogg));
        assert_eq!(InputFormat::sniff(b"ID3\x04\0\0"), Some(InputFormat::Mp3));
        assert_eq!(
            InputFormat::sniff(&[0xFF, 0xFB, 0x90, 0xC4]),
            Some(InputFormat::Mp3)
        );
        assert_eq!(
            InputFormat::sniff(&[0xFF, 0xF1, 0x50, 0x80]),
            Some(InputFormat::Aac)
        );
        assert_eq!(
            InputFormat::sniff(b"\0\0\0\x20ftypM4A \0\0"),
            Some(InputFormat::M4a)
        );
        assert_eq!(
            InputFormat::sniff(b"\0\0\0\x20ftypisom\0\0"),
            Some(InputFormat::Mp4)
        );
        assert_eq!(
            InputFormat::sniff(&[0x1A, 0x45, 0xDF, 0xA3, 0x01]),
            Some(InputFormat::Webm)
        );
        assert_eq!(InputFormat::sniff(b"#!AMR\n"), Some(InputFormat::Amr));
        assert_eq!(InputFormat::sniff(b"<html>"), None);
        assert_eq!(InputFormat::sniff(b""), None);
    }

    #[test]
    fn extensions_name_formats_with_openai_s_aliases() {
        for format in InputFormat::ALL {
            assert_eq!(
                InputFormat::from_extension(format.extension()),
                Some(format)
            );
        }
        assert_eq!(InputFormat::from_extension("MPGA"), Some(InputFormat::Mp3));
        assert_eq!(InputFormat::from_extension("mpeg"), Some(InputFormat::Mp3));
        assert_eq!(InputFormat::from_extension("oga"), Some(InputFormat::Ogg));
        assert_eq!(InputFormat::from_extension("exe"), None);
    }

    #[test]
    fn ogg_opus_is_told_apart_from_vorbis() {
        let mut opus = b"OggS".to_vec();
        opus.resize(28, 0);
        opus.extend_from_slice(b"OpusHead");
        assert!(InputFormat::is_opus(&opus));
        let mut vorbis = b"OggS".to_vec();
        vorbis.resize(28, 0);
        vorbis.extend_from_slice(b"\x01vorbis\0");
        assert!(!InputFormat::is_opus(&vorbis));
    }

    #[test]
    fn limits_refuse_formats_bytes_and_durations_over_them() {
        let limits = AsrLimits {
            max_bytes: 10,
            max_duration: Some(Duration::from_secs(60)),
            formats: &[InputFormat::Wav, InputFormat::Mp3],
        };
        let mut request = TranscriptionRequest::new(vec![0u8; 10], InputFormat::Wav);
        assert_eq!(limits.check("X", &request), Ok(()));
        request.duration = Some(Duration::from_secs(61));
        let (kind, message) = limits.check("X", &request).unwrap_err();
        assert_eq!(kind, ErrorKind::TooLarge);
        assert_eq!(
            message,
            "The audio lasts 61 s; X takes at most 60 s in one request"
        );
        request.duration = None;
        request.audio = vec![0u8; 11].into();
        let (kind, message) = limits.check("X", &request).unwrap_err();
        assert_eq!(kind, ErrorKind::TooLarge);
        assert!(message.contains("11 bytes"), "{message}");
        request.format = InputFormat::Webm;
        let (kind, message) = limits.check("X", &request).unwrap_err();
        assert_eq!(kind, ErrorKind::UnsupportedFormat);
        assert_eq!(message, "X cannot transcribe webm audio; it takes wav, mp3");
    }

    struct Priced;

    #[async_trait]
    impl Asr for Priced {
        fn id(&self) -> &'static str {
            "openai"
        }
        fn model(&self) -> &str {
            "whisper-1"
        }
        fn models(&self) -> Vec<String> {
            vec!["whisper-1".into()]
        }
        async fn status(&self) -> ProviderStatus {
            unreachable!()
        }
        fn limits(&self, _: &str) -> AsrLimits {
            unreachable!()
        }
        fn capabilities(&self, _: &str) -> Capabilities {
            Capabilities::default()
        }
        fn max_concurrency(&self) -> usize {
            1
        }
        fn price_micros_per_minute(&self, model: &str) -> u64 {
            if model == "cheap" { 3_000 } else { 6_000 }
        }
        async fn transcribe(&self, _: &TranscriptionRequest) -> Result<Transcript, ProviderError> {
            unreachable!()
        }
    }

    #[test]
    fn a_request_shows_its_audio_by_size_only() {
        let request = TranscriptionRequest::new(vec![7u8; 4096], InputFormat::Mp3);
        let shown = format!("{request:?}");
        assert!(shown.contains("audio: 4096 bytes"), "{shown}");
        assert!(!shown.contains("7, 7"), "{shown}");
    }

    #[test]
    fn audio_is_priced_by_the_minute_and_rounded_up() {
        assert_eq!(
            Priced.cost_micros("whisper-1", Duration::from_secs(60)),
            6_000
        );
        assert_eq!(
            Priced.cost_micros("whisper-1", Duration::from_secs(90)),
            9_000
        );
        assert_eq!(Priced.cost_micros("cheap", Duration::from_secs(60)), 3_000);
        assert_eq!(Priced.cost_micros("whisper-1", Duration::from_millis(1)), 1);
        assert_eq!(Priced.cost_micros("whisper-1", Duration::ZERO), 0);
        assert_eq!(
            Priced.cost_micros("whisper-1", Duration::from_secs(3600)),
            360_000
        );
    }

    #[test]
    fn a_model_without_translation_is_refused_before_sending() {
        let mut request = TranscriptionRequest::new(vec![0u8; 4], InputFormat::Wav);
        request.task = Task::Translate;
        struct Limited;
        #[async_trait]
        impl Asr for Limited {
            fn id(&self) -> &'static str {
                "x"
            }
            fn model(&self) -> &str {
                "m"
            }
            fn models(&self) -> Vec<String> {
                Vec::new()
            }
            async fn status(&self) -> ProviderStatus {
                unreachable!()
            }
            fn limits(&self, _: &str) -> AsrLimits {
                AsrLimits {
                    max_bytes: 100,
                    max_duration: None,
                    formats: &[InputFormat::Wav],
                }
            }
            fn capabilities(&self, _: &str) -> Capabilities {
                Capabilities::default()
            }
            fn max_concurrency(&self) -> usize {
                1
            }
            fn price_micros_per_minute(&self, _: &str) -> u64 {
                0
            }
            async fn transcribe(
                &self,
                _: &TranscriptionRequest,
            ) -> Result<Transcript, ProviderError> {
                unreachable!()
            }
        }
        let (kind, message) = precheck(&Limited, "X", &request).unwrap_err();
        assert_eq!(kind, ErrorKind::Rejected);
        assert_eq!(message, "X cannot translate speech with m");
        request.task = Task::Transcribe;
        assert_eq!(precheck(&Limited, "X", &request), Ok(()));
    }
}
