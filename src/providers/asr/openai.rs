//! Any OpenAI-compatible `POST /v1/audio/transcriptions` and `/translations`: OpenAI itself,
//! speaches and other faster-whisper servers, vLLM, LocalAI.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;

use super::{
    Asr, AsrLimits, Capabilities, InputFormat, Segment, Task, Transcript, TranscriptionRequest,
    Word, language_code, measure, precheck, segments_from_words,
};
use crate::config::{OpenAiConfig, Secret};
use crate::providers::http::{HttpBase, Reply};
use crate::providers::openai::{DEFAULT_BASE_URL, OpenAi, Said, classify, display_name};
use crate::providers::{ErrorKind, ProviderError, ProviderStatus, RetryPolicy, Scrubber, round2};

const ID: &str = "openai";

/// The formats OpenAI lists (`mpeg` and `mpga` are MP3 by another name).
const FORMATS: &[InputFormat] = &[
    InputFormat::Flac,
    InputFormat::Mp3,
    InputFormat::Mp4,
    InputFormat::M4a,
    InputFormat::Ogg,
    InputFormat::Wav,
    InputFormat::Webm,
];

/// OpenAI's own transcription models.
const OPENAI_MODELS: &[&str] = &["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"];

/// The gpt-4o models refuse audio longer than this.
const GPT_4O_MAX_DURATION: Duration = Duration::from_secs(1500);

/// The gpt-4o transcription models answer `json` and `text` only: no timestamps, no
/// language, no duration, and no translation endpoint.
fn json_only(model: &str) -> bool {
    model.starts_with("gpt-4o")
}

/// OpenAI's price per minute of audio, in micro-dollars.
pub fn public_price(model: &str) -> u64 {
    if model.starts_with("gpt-4o-mini-transcribe") {
        3_000
    } else {
        // whisper-1 and gpt-4o-transcribe: $0.006 a minute.
        6_000
    }
}

pub struct OpenAiAsr {
    http: HttpBase,
    base_url: String,
    /// api.openai.com, whose models and prices are known.
    official: bool,
    api_key: Option<Secret>,
    model: String,
    max_upload_bytes: u64,
    price: Option<u64>,
}

#[derive(Deserialize)]
struct Verbose {
    language: Option<String>,
    duration: Option<f64>,
    text: String,
    segments: Option<Vec<VerboseSegment>>,
    words: Option<Vec<VerboseWord>>,
}

#[derive(Deserialize)]
struct VerboseSegment {
    start: f64,
    end: f64,
    text: String,
}

#[derive(Deserialize)]
struct VerboseWord {
    word: String,
    start: f64,
    end: f64,
}

#[derive(Deserialize)]
struct Plain {
    text: String,
}

impl OpenAiAsr {
    /// Whatever enables the speech provider, or a transcription server of its own.
    pub fn is_configured(config: &OpenAiConfig) -> bool {
        OpenAi::is_configured(config) || !config.asr_base_url.is_empty()
    }

    pub fn new(config: &OpenAiConfig, retry: RetryPolicy, scrub: Scrubber) -> anyhow::Result<Self> {
        let (base_url, key) = if config.asr_base_url.is_empty() {
            (&config.base_url, "providers.openai.base_url")
        } else {
            (&config.asr_base_url, "providers.openai.asr_base_url")
        };
        let base = url::Url::parse(base_url)?;
        let display = display_name(&base, "transcription server", key)?;
        let base_url = base_url.trim_end_matches('/').to_string();
        Ok(Self {
            http: HttpBase::new(
                ID,
                display,
                retry,
                config.asr_timeout_ms,
                config.asr_max_concurrency,
                scrub,
            )?,
            official: base_url == DEFAULT_BASE_URL,
            base_url,
            api_key: config.api_key.clone(),
            model: config.asr_model.clone(),
            max_upload_bytes: config.asr_max_upload_bytes,
            price: config.asr_price_micros_per_minute,
        })
    }

    fn classify(&self, reply: &Reply) -> ProviderError {
        let said = Said::read(reply);
        let display = &self.http.display;
        let message = said.message.as_deref().unwrap_or_default();
        let about_file = said.param.as_deref() == Some("file")
            || message.contains("file format")
            || message.contains("corrupted");
        match reply.status.as_u16() {
            400 if about_file => self.http.error(
                ErrorKind::UnsupportedFormat,
                format!(
                    "{display} cannot read the audio: {}",
                    self.http.excerpt(message)
                ),
            ),
            404 => self.http.error(
                ErrorKind::Unavailable,
                format!(
                    "{display} has no transcription endpoint (404); point \
                     providers.openai.asr_base_url at a server that transcribes"
                ),
            ),
            _ => classify(&self.http, reply, &said),
        }
    }

    fn form(&self, request: &TranscriptionRequest, model: &str, verbose: bool) -> Form {
        let length = request.audio.len() as u64;
        let file = Part::stream_with_length(reqwest::Body::from(request.audio.clone()), length)
            .file_name(format!("audio.{}", request.format.extension()))
            .mime_str(request.format.mime_type())
            .expect("the audio MIME types parse");
        let mut form = Form::new()
            .part("file", file)
            .text("model", model.to_string())
            .text(
                "response_format",
                if verbose { "verbose_json" } else { "json" },
            );
        if request.task == Task::Transcribe
            && let Some(language) = &request.language
        {
            form = form.text("language", language.clone());
        }
        if let Some(prompt) = &request.prompt {
            form = form.text("prompt", prompt.clone());
        }
        if let Some(temperature) = request.temperature {
            let t = round2(temperature.clamp(0.0, 1.0));
            form = form.text("temperature", t.to_string());
        }
        if verbose {
            let g = request.granularities;
            for (wanted, name) in [(g.words, "word"), (g.segments, "segment")] {
                if wanted {
                    form = form.text("timestamp_granularities[]", name);
                }
            }
        }
        form
    }

    async fn attempt(
        &self,
        url: &str,
        request: &TranscriptionRequest,
        model: &str,
        verbose: bool,
    ) -> Result<Bytes, ProviderError> {
        let mut call = self
            .http
            .client
            .post(url)
            .multipart(self.form(request, model, verbose));
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key.expose());
        }
        let reply = self.http.send(call).await?;
        if !reply.status.is_success() {
            return Err(self.classify(&reply));
        }
        // The transcript is read after the call, so a body that is not one is not retried as if
        // the server were busy: it would answer the same again.
        Ok(reply.body)
    }

    fn unreadable(&self, e: serde_json::Error) -> ProviderError {
        self.http.error(
            ErrorKind::ServerError,
            format!(
                "{} sent a transcript that cannot be read: {e}",
                self.http.display
            ),
        )
    }
}

#[async_trait]
impl Asr for OpenAiAsr {
    fn id(&self) -> &'static str {
        ID
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn models(&self) -> Vec<String> {
        let mut models = vec![self.model.clone()];
        if self.official {
            models.extend(
                OPENAI_MODELS
                    .iter()
                    .filter(|m| **m != self.model)
                    .map(|m| m.to_string()),
            );
        }
        models
    }

    async fn status(&self) -> ProviderStatus {
        ProviderStatus {
            available: true,
            detail: format!("{}, model {}", self.http.display, self.model),
        }
    }

    fn limits(&self, model: &str) -> AsrLimits {
        AsrLimits {
            max_bytes: self.max_upload_bytes,
            max_duration: json_only(model).then_some(GPT_4O_MAX_DURATION),
            formats: FORMATS,
        }
    }

    fn capabilities(&self, model: &str) -> Capabilities {
        let timed = !json_only(model);
        Capabilities {
            // OpenAI translates with whisper-1 only; compatible servers with their Whisper models.
            translate: if self.official {
                model == "whisper-1"
            } else {
                timed
            },
            word_timestamps: timed,
            segment_timestamps: timed,
            speaker_labels: false,
            language_detection: timed,
            streaming: false,
        }
    }

    fn max_concurrency(&self) -> usize {
        self.http.max_concurrency
    }

    fn price_micros_per_minute(&self, model: &str) -> u64 {
        match self.price {
            Some(price) => price,
            None if self.official => public_price(model),
            None => 0,
        }
    }

    #[tracing::instrument(skip_all, fields(provider = ID, format = request.format.extension(), bytes = request.audio.len()), err)]
    async fn transcribe(
        &self,
        request: &TranscriptionRequest,
    ) -> Result<Transcript, ProviderError> {
        precheck(self, &self.http.display, request)
            .map_err(|(kind, message)| self.http.error(kind, message))?;
        let model = request.model_for(self);
        let verbose = request.granularities.any() && !json_only(model);
        let url = match request.task {
            Task::Transcribe => format!("{}/audio/transcriptions", self.base_url),
            Task::Translate => format!("{}/audio/translations", self.base_url),
        };
        let body = self
            .http
            .call(|| self.attempt(&url, request, model, verbose))
            .await?;
        let language = match request.task {
            Task::Translate => Some("en".to_string()),
            Task::Transcribe => request.language.as_deref().map(language_code),
        };
        let wanted = request.granularities;
        let transcript = if verbose {
            let v: Verbose = serde_json::from_slice(&body).map_err(|e| self.unreadable(e))?;
            let words: Vec<Word> = v
                .words
                .unwrap_or_default()
                .into_iter()
                .map(|w| Word {
                    start: w.start,
                    end: w.end,
                    word: w.word,
                    speaker: None,
                })
                .collect();
            let segments = match v.segments {
                Some(segments) if !segments.is_empty() => segments
                    .into_iter()
                    .map(|s| Segment {
                        start: s.start,
                        end: s.end,
                        text: s.text,
                        speaker: None,
                    })
                    .collect(),
                // Only words were asked for: their sentences are the segments.
                _ => segments_from_words(&words),
            };
            let duration = v
                .duration
                .or(request.duration.map(|d| d.as_secs_f64()))
                .unwrap_or_default();
            Transcript {
                language: v.language.as_deref().map(language_code).or(language),
                duration,
                text: v.text,
                segments: if wanted.segments {
                    segments
                } else {
                    Vec::new()
                },
                words: if wanted.words { words } else { Vec::new() },
                model: model.to_string(),
            }
        } else {
            let plain: Plain = serde_json::from_slice(&body).map_err(|e| self.unreadable(e))?;
            let duration = match request.duration {
                Some(d) => Some(d),
                None => measure(&request.audio, request.format).await,
            }
            .map_or(0.0, |d| d.as_secs_f64());
            // Without times, the whole text is one segment over the whole audio, so subtitles
            // and players still have something to show.
            let whole = Segment {
                start: 0.0,
                end: duration,
                text: plain.text.clone(),
                speaker: None,
            };
            Transcript {
                language,
                duration,
                segments: if wanted.segments {
                    vec![whole]
                } else {
                    Vec::new()
                },
                text: plain.text,
                words: Vec::new(),
                model: model.to_string(),
            }
        };
        Ok(transcript.tidy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn provider(base_url: &str, model: &str) -> OpenAiAsr {
        let mut config = Config::default();
        config.providers.openai.base_url = base_url.into();
        config.providers.openai.asr_model = model.into();
        let retry = RetryPolicy::from_config(&config.providers.retry);
        OpenAiAsr::new(&config.providers.openai, retry, Scrubber::default()).unwrap()
    }

    #[test]
    fn openai_prices_follow_the_model_and_other_servers_are_free() {
        let official = provider("https://api.openai.com/v1", "whisper-1");
        assert_eq!(official.price_micros_per_minute("whisper-1"), 6_000);
        assert_eq!(official.price_micros_per_minute("gpt-4o-transcribe"), 6_000);
        assert_eq!(
            official.price_micros_per_minute("gpt-4o-mini-transcribe"),
            3_000
        );
        assert_eq!(
            official.cost_micros("whisper-1", Duration::from_secs(600)),
            60_000
        );
        let local = provider("http://127.0.0.1:8000/v1", "Systran/faster-whisper-small");
        assert_eq!(local.price_micros_per_minute("whisper-1"), 0);
    }

    #[test]
    fn gpt_4o_models_have_no_timestamps_and_a_duration_limit() {
        let p = provider("https://api.openai.com/v1", "whisper-1");
        let whisper = p.capabilities("whisper-1");
        assert!(whisper.translate && whisper.word_timestamps && whisper.segment_timestamps);
        let gpt = p.capabilities("gpt-4o-mini-transcribe");
        assert!(!gpt.translate && !gpt.word_timestamps && !gpt.language_detection);
        assert_eq!(p.limits("whisper-1").max_duration, None);
        assert_eq!(
            p.limits("gpt-4o-transcribe").max_duration,
            Some(Duration::from_secs(1500))
        );
        assert_eq!(p.limits("whisper-1").max_bytes, 26_214_400);
        assert_eq!(
            p.models(),
            ["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"]
        );
        let local = provider("http://127.0.0.1:8000/v1", "Systran/faster-whisper-small");
        assert!(local.capabilities("Systran/faster-whisper-small").translate);
        assert_eq!(local.models(), ["Systran/faster-whisper-small"]);
    }
}
