//! ElevenLabs speech to text (Scribe): `POST /v1/speech-to-text`, word times and speakers.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;

use super::{
    Asr, AsrLimits, Capabilities, InputFormat, Transcript, TranscriptionRequest, Word,
    language_code, precheck, segments_from_words,
};
use crate::config::{ElevenLabsConfig, Secret};
use crate::providers::elevenlabs::classify;
use crate::providers::http::HttpBase;
use crate::providers::{ErrorKind, ProviderError, ProviderStatus, RetryPolicy, Scrubber};

const ID: &str = "elevenlabs";
const DISPLAY: &str = "ElevenLabs";

/// Scribe reads the common audio and video containers.
const FORMATS: &[InputFormat] = &[
    InputFormat::Flac,
    InputFormat::Mp3,
    InputFormat::Mp4,
    InputFormat::M4a,
    InputFormat::Ogg,
    InputFormat::Wav,
    InputFormat::Webm,
    InputFormat::Aac,
];

/// Files up to 3 GB and 10 hours.
const MAX_BYTES: u64 = 3_000_000_000;
const MAX_DURATION: Duration = Duration::from_secs(10 * 3600);

const MODELS: &[&str] = &["scribe_v1", "scribe_v2"];

pub struct ElevenLabsAsr {
    http: HttpBase,
    url: url::Url,
    api_key: Secret,
    model: String,
    price: u64,
}

#[derive(Deserialize)]
struct Answer {
    language_code: Option<String>,
    text: String,
    #[serde(default)]
    words: Vec<Entry>,
}

/// One item of the timeline: a word, the spacing between words, or a sound such as
/// `(laughter)`.
#[derive(Deserialize)]
struct Entry {
    text: String,
    #[serde(default)]
    start: f64,
    #[serde(default)]
    end: f64,
    #[serde(rename = "type")]
    kind: String,
    speaker_id: Option<String>,
}

/// Words of speech, and separately the timeline segments are made from: words and sounds,
/// with the spacing left to [`super::join_words`].
fn timeline(entries: Vec<Entry>) -> (Vec<Word>, Vec<Word>) {
    let mut words = Vec::new();
    let mut timeline = Vec::new();
    for e in entries {
        let word = Word {
            start: e.start,
            end: e.end,
            word: e.text,
            speaker: e.speaker_id,
        };
        match e.kind.as_str() {
            "word" => {
                words.push(word.clone());
                timeline.push(word);
            }
            "audio_event" => timeline.push(word),
            _ => {}
        }
    }
    (words, timeline)
}

impl ElevenLabsAsr {
    pub fn new(
        config: &ElevenLabsConfig,
        retry: RetryPolicy,
        scrub: Scrubber,
    ) -> anyhow::Result<Self> {
        let api_key = config
            .api_key
            .clone()
            .ok_or_else(|| anyhow::anyhow!("providers.elevenlabs.api_key is not set"))?;
        let mut url = url::Url::parse(&config.base_url)?;
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("providers.elevenlabs.base_url cannot have a path"))?
            .pop_if_empty()
            .extend(["v1", "speech-to-text"]);
        Ok(Self {
            http: HttpBase::new(
                ID,
                DISPLAY,
                retry,
                config.asr_timeout_ms,
                config.asr_max_concurrency,
                scrub,
            )?,
            url,
            api_key,
            model: config.asr_model.clone(),
            price: config.asr_price_micros_per_minute,
        })
    }

    fn form(&self, request: &TranscriptionRequest, model: &str) -> Form {
        let length = request.audio.len() as u64;
        let file = Part::stream_with_length(reqwest::Body::from(request.audio.clone()), length)
            .file_name(format!("audio.{}", request.format.extension()))
            .mime_str(request.format.mime_type())
            .expect("the audio MIME types parse");
        let timestamps = if request.granularities.any() {
            "word"
        } else {
            "none"
        };
        let mut form = Form::new()
            .text("model_id", model.to_string())
            .part("file", file)
            .text("diarize", request.speaker_labels.to_string())
            .text("timestamps_granularity", timestamps);
        if let Some(language) = &request.language {
            form = form.text("language_code", language.clone());
        }
        form
    }

    async fn attempt(
        &self,
        request: &TranscriptionRequest,
        model: &str,
    ) -> Result<Bytes, ProviderError> {
        let call = self
            .http
            .client
            .post(self.url.clone())
            .header("xi-api-key", self.api_key.expose())
            .multipart(self.form(request, model));
        let reply = self.http.send(call).await?;
        if !reply.status.is_success() {
            return Err(classify(&self.http, &reply));
        }
        Ok(reply.body)
    }
}

#[async_trait]
impl Asr for ElevenLabsAsr {
    fn id(&self) -> &'static str {
        ID
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn models(&self) -> Vec<String> {
        let mut models = vec![self.model.clone()];
        models.extend(
            MODELS
                .iter()
                .filter(|m| **m != self.model)
                .map(|m| m.to_string()),
        );
        models
    }

    async fn status(&self) -> ProviderStatus {
        ProviderStatus {
            available: true,
            detail: format!("speech to text, model {}", self.model),
        }
    }

    fn limits(&self, _model: &str) -> AsrLimits {
        AsrLimits {
            max_bytes: MAX_BYTES,
            max_duration: Some(MAX_DURATION),
            formats: FORMATS,
        }
    }

    fn capabilities(&self, _model: &str) -> Capabilities {
        Capabilities {
            translate: false,
            word_timestamps: true,
            segment_timestamps: true,
            speaker_labels: true,
            language_detection: true,
            streaming: false,
        }
    }

    fn max_concurrency(&self) -> usize {
        self.http.max_concurrency
    }

    fn price_micros_per_minute(&self, _model: &str) -> u64 {
        self.price
    }

    #[tracing::instrument(skip_all, fields(provider = ID, format = request.format.extension(), bytes = request.audio.len()), err)]
    async fn transcribe(
        &self,
        request: &TranscriptionRequest,
    ) -> Result<Transcript, ProviderError> {
        precheck(self, DISPLAY, request)
            .map_err(|(kind, message)| self.http.error(kind, message))?;
        let model = request.model_for(self);
        let body = self.http.call(|| self.attempt(request, model)).await?;
        let answer: Answer = serde_json::from_slice(&body).map_err(|e| {
            self.http.error(
                ErrorKind::ServerError,
                format!("ElevenLabs sent a transcript that cannot be read: {e}"),
            )
        })?;
        let (words, timeline) = timeline(answer.words);
        let duration = request
            .duration
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let wanted = request.granularities;
        let transcript = Transcript {
            language: answer
                .language_code
                .as_deref()
                .map(language_code)
                .or_else(|| request.language.as_deref().map(language_code)),
            duration,
            segments: if wanted.segments {
                segments_from_words(&timeline)
            } else {
                Vec::new()
            },
            words: if wanted.words { words } else { Vec::new() },
            text: answer.text,
            model: model.to_string(),
        };
        Ok(transcript.tidy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str, start: f64, end: f64, kind: &str, speaker: &str) -> Entry {
        Entry {
            text: text.into(),
            start,
            end,
            kind: kind.into(),
            speaker_id: Some(speaker.into()),
        }
    }

    #[test]
    fn words_keep_their_speakers_and_sounds_stay_out_of_the_words() {
        let (words, timeline) = timeline(vec![
            entry("Hello", 0.1, 0.4, "word", "speaker_0"),
            entry(" ", 0.4, 0.5, "spacing", "speaker_0"),
            entry("there.", 0.5, 0.9, "word", "speaker_0"),
            entry("(laughter)", 1.0, 1.6, "audio_event", "speaker_1"),
            entry("Hi", 1.7, 1.9, "word", "speaker_1"),
        ]);
        let texts: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(texts, ["Hello", "there.", "Hi"]);
        assert_eq!(words[2].speaker.as_deref(), Some("speaker_1"));
        let segments = segments_from_words(&timeline);
        let texts: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["Hello there.", "(laughter) Hi"]);
        assert_eq!(segments[1].speaker.as_deref(), Some("speaker_1"));
        assert_eq!((segments[1].start, segments[1].end), (1.0, 1.9));
    }
}
