//! The round trip that shows both directions work on this machine: a known sentence spoken by
//! each voice engine that runs here (espeak-ng, Kokoro, Piper), heard by Whisper, and compared
//! word by word. `aimake selftest` prints it; `POST /api/admin/selftest` answers it.

use serde::Serialize;

use crate::error::{AppError, ErrorCode};
use crate::providers::asr::{self, InputFormat, TranscriptionRequest};
use crate::providers::{Providers, SynthesisRequest};

/// Short enough to be heard in seconds, with words every engine says clearly.
pub const SENTENCE: &str = "Please call me back when you have a moment.";

/// The voice engines on this machine, in the order they are reported.
const ENGINES: [&str; 3] = ["local", "kokoro", "piper"];

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub sentence: &'static str,
    /// The Whisper model that listened.
    pub model: String,
    pub voices: Vec<VoiceCheck>,
}

impl Report {
    /// Whether any voice could not be spoken or heard.
    pub fn failed(&self) -> bool {
        self.voices.iter().any(|v| v.error.is_some())
    }
}

/// One voice's round trip.
#[derive(Debug, Clone, Serialize)]
pub struct VoiceCheck {
    pub voice: String,
    /// What Whisper heard; `None` when a step failed.
    pub heard: Option<String>,
    /// Word-level edit distance over the sentence's words: 0 is word for word.
    pub word_error_rate: Option<f64>,
    pub audio_ms: Option<u64>,
    /// Time to speak and hear it.
    pub elapsed_ms: u64,
    pub error: Option<String>,
}

/// Runs the round trip with every ready voice engine. Fails (503) when Whisper has no model,
/// since there is nothing to listen with; a voice that fails is reported in its row.
pub async fn run(providers: &Providers) -> Result<Report, AppError> {
    let whisper = providers
        .asr("whisper")
        .filter(|w| w.ready())
        .ok_or_else(|| AppError::Unavailable {
            code: ErrorCode::ProviderUnavailable,
            message: format!(
                "No Whisper model is installed to listen with: run `{}`",
                asr::whisper::PULL_BASE
            ),
        })?;
    let mut voices = Vec::new();
    for engine in ENGINES {
        if !providers.get(engine).is_some_and(|p| p.ready()) {
            continue;
        }
        let Some(voice) = english_voice(providers, engine).await else {
            continue;
        };
        let started = std::time::Instant::now();
        let mut check = VoiceCheck {
            voice: voice.clone(),
            heard: None,
            word_error_rate: None,
            audio_ms: None,
            elapsed_ms: 0,
            error: None,
        };
        match round_trip(providers, whisper.as_ref(), &voice).await {
            Ok((heard, audio_ms)) => {
                check.word_error_rate = Some(word_error_rate(SENTENCE, &heard));
                check.heard = Some(heard);
                check.audio_ms = Some(audio_ms);
            }
            Err(e) => check.error = Some(e),
        }
        check.elapsed_ms = started.elapsed().as_millis() as u64;
        voices.push(check);
    }
    Ok(Report {
        sentence: SENTENCE,
        model: whisper.model().to_string(),
        voices,
    })
}

/// The engine's English voice: the server's default for English where it is this engine's,
/// else its first US English voice, else its first English one.
async fn english_voice(providers: &Providers, engine: &str) -> Option<String> {
    let voices = providers.voices(Some(engine), Some("en")).await;
    voices
        .iter()
        .find(|v| v.default)
        .or_else(|| {
            voices
                .iter()
                .find(|v| v.language.eq_ignore_ascii_case("en-US"))
        })
        .or_else(|| voices.first())
        .map(|v| v.id.clone())
}

/// Speaks [`SENTENCE`] with `voice` and has Whisper hear it; the text and the audio's length.
async fn round_trip(
    providers: &Providers,
    whisper: &dyn asr::Asr,
    voice: &str,
) -> Result<(String, u64), String> {
    let (provider, id) = providers.resolve(voice).map_err(|e| e.message)?;
    let spoken = provider
        .synthesize(&SynthesisRequest {
            text: SENTENCE.into(),
            voice: id.voice,
            speed: 1.0,
            format_hint: crate::audio::Format::Wav,
            model: None,
            instructions: None,
        })
        .await
        .map_err(|e| format!("speaking failed: {e}"))?;
    let span = tracing::Span::current();
    let (wav, audio_ms) = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let pcm = crate::audio::decode(&spoken.bytes, spoken.format)?;
        let pcm = crate::audio::for_recognition(pcm)?;
        let ms = pcm.duration_ms();
        Ok::<_, crate::audio::AudioError>((crate::audio::encode_wav(&pcm)?, ms))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("the spoken audio could not be read: {e}"))?;
    let mut request = TranscriptionRequest::new(wav, InputFormat::Wav);
    request.language = Some("en".into());
    let heard = asr::transcribe(whisper, &request)
        .await
        .map_err(|e| format!("hearing failed: {e}"))?;
    Ok((heard.text, audio_ms))
}

/// Lower-case words without punctuation.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word error rate: the fewest words substituted, dropped or added to turn `heard` into
/// `reference`, over the reference's length.
pub fn word_error_rate(reference: &str, heard: &str) -> f64 {
    let (r, h) = (words(reference), words(heard));
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(rw != hw))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[h.len()] as f64 / r.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_error_rate_counts_substitutions_drops_and_additions_over_the_reference() {
        let r = "Please call me back when you have a moment.";
        assert_eq!(
            word_error_rate(r, "please, call me back when you have a moment"),
            0.0
        );
        // "me" dropped, "moment" heard as "minute", "now" added: 3 of 9.
        let rate = word_error_rate(r, "Please call back when you have a minute now.");
        assert!((rate - 3.0 / 9.0).abs() < 1e-9, "{rate}");
        assert_eq!(word_error_rate(r, ""), 1.0);
        assert_eq!(word_error_rate("", "anything"), 1.0);
    }

    #[tokio::test]
    async fn without_a_whisper_model_the_selftest_says_how_to_get_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config::default();
        config.data.dir = dir.path().to_path_buf();
        let providers = Providers::from_config(&config).unwrap();
        let e = run(&providers).await.unwrap_err();
        assert!(
            e.to_string().contains("aimake models pull whisper:base"),
            "{e}"
        );
    }
}
