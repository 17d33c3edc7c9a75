//! Speech recognition of whole recordings: a recording is decoded to 16 kHz mono, split at
//! pauses into pieces the provider takes, the pieces heard in parallel within the provider's
//! concurrency, and their transcripts stitched into one with times from the recording's start.
//!
//! The library's `transcribe` job (`job.rs`) keeps each heard piece in the database, so a
//! resumed job pays for no piece twice; the OpenAI-compatible endpoints (`gateway.rs`) run the
//! same steps within the request. `service.rs` holds the library's operations and `render.rs`
//! the downloads (JSON, SRT, VTT, text) and OpenAI's answer shapes.

pub mod gateway;
pub mod job;
pub mod render;
pub mod selftest;
pub mod service;

use std::sync::Arc;
use std::time::Duration;

use crate::audio::{self, AudioError, Pcm, Piece, SplitLimits};
use crate::error::{AppError, ErrorCode};
use crate::jobs::JobError;
use crate::providers::ProviderError;
use crate::providers::asr::{
    self, Asr, AsrLimits, Granularities, InputFormat, Task, Transcript, TranscriptionRequest,
};

/// The job kind that transcribes a recording of the library.
pub const TRANSCRIBE_JOB: &str = "transcribe";

/// Pieces last at most this long whatever the provider takes, so a long recording is heard
/// in parallel and a resumed job has little to repeat.
const MAX_PIECE_MS: u64 = 10 * 60 * 1000;

/// What to ask the provider for each piece, whoever asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// The provider's own model name.
    pub model: String,
    /// ISO 639-1 of the speech, when known.
    pub language: Option<String>,
    pub prompt: Option<String>,
    pub temperature: Option<f32>,
    pub task: Task,
    pub granularities: Granularities,
    pub speaker_labels: bool,
}

/// Why a piece could not be heard.
#[derive(Debug)]
pub enum Failure {
    /// The provider's answer, as final as the provider made it (it retries itself).
    Provider(ProviderError),
    /// Encoding the piece failed, or a task died: a bug or a server fault.
    Internal(anyhow::Error),
}

impl From<Failure> for JobError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Provider(e) => crate::speech::synth::provider_error(e),
            Failure::Internal(e) => e.into(),
        }
    }
}

impl From<Failure> for AppError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Provider(e) => e.into(),
            Failure::Internal(e) => AppError::Internal(e),
        }
    }
}

/// A recording as speech recognition takes it: decoded whatever its container, mono at 16 kHz.
/// Bytes that are no supported audio, or that do not decode, are the caller's to fix.
pub async fn decode(bytes: bytes::Bytes) -> Result<Pcm, AudioError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        audio::decode_for_recognition(&bytes)
    })
    .await
    .unwrap_or_else(|e| {
        Err(AudioError::Decode {
            format: "audio",
            reason: e.to_string(),
        })
    })
}

/// The 400 for an upload that is not a recording aimake reads, naming the formats it does.
pub fn unreadable(e: &AudioError) -> AppError {
    let formats = audio::RECORDING_FORMATS.join(", ");
    let message = match e {
        AudioError::Unsupported => {
            format!("The file is not audio in a supported format ({formats})")
        }
        other => {
            format!("The file could not be read as audio ({other}); the formats read are {formats}")
        }
    };
    AppError::field(ErrorCode::InvalidRequest, "file", message)
}

/// An upload that decodes to nothing.
fn silent(format: &'static str) -> AudioError {
    AudioError::Decode {
        format,
        reason: "it holds no audio".into(),
    }
}

/// The first piece of a streamed transcript (`stream=true`) lasts at most this long, so its
/// first text arrives after the time to hear half a minute rather than a whole piece; the
/// pieces after it are as long as usual.
pub const STREAMED_FIRST_PIECE_MS: u64 = 30_000;

/// The pieces `provider` hears `pcm` in: within its duration and byte limits for `model` and
/// [`MAX_PIECE_MS`], cut at pauses; the first within [`STREAMED_FIRST_PIECE_MS`] when
/// `streamed`.
pub fn plan(
    provider: &dyn Asr,
    model: &str,
    pcm: &Pcm,
    streamed: bool,
) -> Result<Vec<Piece>, AudioError> {
    let limits = provider.limits(model);
    let max_ms = limits.max_duration.map_or(MAX_PIECE_MS, |d| {
        u64::try_from(d.as_millis())
            .unwrap_or(u64::MAX)
            .min(MAX_PIECE_MS)
    });
    let limits = SplitLimits {
        max_ms,
        max_bytes: Some(limits.max_bytes),
    };
    if streamed {
        audio::split_first_within(pcm, limits, STREAMED_FIRST_PIECE_MS)
    } else {
        audio::split(pcm, limits)
    }
}

/// A piece's audio as the provider takes it: FLAC, or WAV for a provider without FLAC (the
/// splitter's byte limit bounds both).
fn encode(pcm: &Pcm, piece: &Piece, limits: &AsrLimits) -> audio::Result<(Vec<u8>, InputFormat)> {
    if limits.accepts(InputFormat::Flac) {
        return Ok((audio::encode_piece(pcm, piece)?, InputFormat::Flac));
    }
    let width = usize::from(pcm.channels);
    let samples = pcm
        .samples
        .get(piece.start * width..piece.end * width)
        .ok_or_else(|| AudioError::Invalid(format!("piece {piece:?} is outside the audio")))?;
    let slice = Pcm::new(pcm.sample_rate, pcm.channels, samples.to_vec())?;
    Ok((audio::encode_wav(&slice)?, InputFormat::Wav))
}

/// Hears one piece: encodes it off the executor and sends it through [`asr::transcribe`]
/// (which counts the call). Times in the answer are from the piece's start.
pub async fn hear(
    provider: &dyn Asr,
    options: &Options,
    pcm: Arc<Pcm>,
    piece: Piece,
) -> Result<Transcript, Failure> {
    let limits = provider.limits(&options.model);
    let span = tracing::Span::current();
    let (bytes, format) = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        encode(&pcm, &piece, &limits)
    })
    .await
    .map_err(|e| Failure::Internal(e.into()))?
    .map_err(|e| Failure::Internal(e.into()))?;
    let mut request = TranscriptionRequest::new(bytes, format);
    request.duration = Some(piece_duration(&piece));
    request.model = Some(options.model.clone());
    request.language = options.language.clone();
    request.prompt = options.prompt.clone();
    request.temperature = options.temperature;
    request.task = options.task;
    request.granularities = options.granularities;
    request.speaker_labels = options.speaker_labels;
    asr::transcribe(provider, &request)
        .await
        .map_err(Failure::Provider)
}

pub fn piece_duration(piece: &Piece) -> Duration {
    Duration::from_millis(piece.end_ms.saturating_sub(piece.start_ms))
}

/// What a heard piece costs: a usage row of `asr:<provider>:<model>`, its units the seconds of
/// audio sent (rounded up), priced by the minute.
pub fn billed(provider: &dyn Asr, piece: &Piece, heard: &Transcript) -> crate::db::usage::Billed {
    let duration = piece_duration(piece);
    crate::db::usage::Billed {
        service: asr::service_of(provider, heard),
        units: duration.as_millis().div_ceil(1000) as i64,
        cost_micros: i64::try_from(provider.cost_micros(&heard.model, duration))
            .unwrap_or(i64::MAX),
        cached: false,
    }
}

/// The pieces' transcripts as one, in recording order: each piece's times moved by its
/// offset, texts joined as they are written, times kept monotonic and within `duration_ms`.
/// The language is the first one a piece heard (or was asked for).
pub fn stitch(
    model: &str,
    duration_ms: u64,
    pieces: impl IntoIterator<Item = (u64, Transcript)>,
) -> Transcript {
    let mut pieces: Vec<(u64, Transcript)> = pieces.into_iter().collect();
    pieces.sort_by_key(|(start, _)| *start);
    let mut whole = Transcript {
        language: None,
        duration: duration_ms as f64 / 1000.0,
        text: String::new(),
        segments: Vec::new(),
        words: Vec::new(),
        model: model.to_string(),
    };
    let mut texts = Vec::with_capacity(pieces.len());
    for (start_ms, heard) in pieces {
        let heard = heard.shifted(start_ms as f64 / 1000.0);
        if whole.language.is_none() {
            whole.language = heard.language;
        }
        texts.push(heard.text);
        whole.segments.extend(heard.segments);
        whole.words.extend(heard.words);
    }
    whole.text = asr::join_words(texts.iter().map(String::as_str));
    whole.tidy()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::asr::{Segment, Word};

    fn heard(words: &[(f64, f64, &str)], duration: f64) -> Transcript {
        Transcript {
            language: Some("en".into()),
            duration,
            text: asr::join_words(words.iter().map(|w| w.2)),
            segments: vec![Segment {
                start: words[0].0,
                end: words[words.len() - 1].1,
                text: asr::join_words(words.iter().map(|w| w.2)),
                speaker: None,
            }],
            words: words
                .iter()
                .map(|&(start, end, word)| Word {
                    start,
                    end,
                    word: word.into(),
                    speaker: None,
                })
                .collect(),
            model: "whisper-1".into(),
        }
    }

    #[test]
    fn stitched_pieces_keep_recording_order_and_monotonic_times() {
        let second = heard(&[(0.0, 0.4, "three"), (0.5, 0.9, "four.")], 1.0);
        let first = heard(&[(0.0, 0.4, "One"), (0.5, 1.2, "two")], 1.5);
        let whole = stitch("whisper-1", 2500, [(1500, second), (0, first)]);
        assert_eq!(whole.text, "One two three four.");
        let times: Vec<(f64, f64)> = whole.words.iter().map(|w| (w.start, w.end)).collect();
        assert_eq!(times, [(0.0, 0.4), (0.5, 1.2), (1.5, 1.9), (2.0, 2.4)]);
        assert_eq!(whole.segments.len(), 2);
        assert_eq!(whole.segments[1].start, 1.5);
        assert_eq!(whole.duration, 2.5);
        assert_eq!(whole.language.as_deref(), Some("en"));
        for pair in whole.words.windows(2) {
            assert!(pair[1].start >= pair[0].start);
        }
    }

    #[test]
    fn chinese_pieces_join_without_spaces() {
        let a = heard(&[(0.0, 0.4, "你好")], 0.5);
        let b = heard(&[(0.0, 0.4, "世界。")], 0.5);
        assert_eq!(stitch("m", 1000, [(0, a), (500, b)]).text, "你好世界。");
    }

    #[test]
    fn pieces_are_billed_by_the_second_rounded_up() {
        struct Priced;
        #[async_trait::async_trait]
        impl Asr for Priced {
            fn id(&self) -> &'static str {
                "openai"
            }
            fn model(&self) -> &str {
                "whisper-1"
            }
            fn models(&self) -> Vec<String> {
                Vec::new()
            }
            async fn status(&self) -> crate::providers::ProviderStatus {
                unreachable!()
            }
            fn limits(&self, _: &str) -> AsrLimits {
                AsrLimits {
                    max_bytes: 1 << 30,
                    max_duration: None,
                    formats: &[InputFormat::Flac],
                }
            }
            fn capabilities(&self, _: &str) -> asr::Capabilities {
                asr::Capabilities::default()
            }
            fn max_concurrency(&self) -> usize {
                2
            }
            fn price_micros_per_minute(&self, _: &str) -> u64 {
                6_000
            }
            async fn transcribe(
                &self,
                _: &TranscriptionRequest,
            ) -> Result<Transcript, ProviderError> {
                unreachable!()
            }
        }
        let piece = Piece {
            start: 0,
            end: 16_000 * 90 + 16,
            start_ms: 0,
            end_ms: 90_001,
            cut: audio::Cut::End,
        };
        let b = billed(&Priced, &piece, &heard(&[(0.0, 0.4, "a")], 90.0));
        assert_eq!(b.service, "asr:openai:whisper-1");
        assert_eq!(b.units, 91);
        assert_eq!(b.cost_micros, 9_001);
        // Pieces are capped at ten minutes even where the provider takes hours.
        let pcm = Pcm::new(16_000, 1, vec![0.0; 16_000 * 60 * 25]).unwrap();
        let pieces = plan(&Priced, "whisper-1", &pcm, false).unwrap();
        assert_eq!(pieces.len(), 3);
        assert!(pieces.iter().all(|p| p.end_ms - p.start_ms <= MAX_PIECE_MS));
        // Streamed, the first piece is half a minute and the rest as long as before.
        let streamed = plan(&Priced, "whisper-1", &pcm, true).unwrap();
        assert!(
            (24_000..=STREAMED_FIRST_PIECE_MS).contains(&streamed[0].end_ms),
            "{streamed:?}"
        );
        assert_eq!(streamed.len(), 4);
        assert!(
            streamed
                .iter()
                .all(|p| p.end_ms - p.start_ms <= MAX_PIECE_MS)
        );
    }
}
