//! Tencent Cloud speech recognition: `SentenceRecognition` for short audio, a recording task
//! (`CreateRecTask`, then `DescribeTaskStatus` until it is done) for the rest; TC3-signed.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::{
    Asr, AsrLimits, Capabilities, InputFormat, Segment, Transcript, TranscriptionRequest, Word,
    language_code, measure, precheck, segments_from_words,
};
use crate::config::{Secret, TencentConfig};
use crate::providers::http::HttpBase;
use crate::providers::retry::Resend;
use crate::providers::tencent::{
    Action, Credentials, business_error, endpoint_host, response_of, signed,
};
use crate::providers::{ErrorKind, ProviderError, ProviderStatus, RetryPolicy, Scrubber};

const ID: &str = "tencent";
const DISPLAY: &str = "Tencent Cloud";
const SERVICE: &str = "asr";
const VERSION: &str = "2019-06-14";

/// `SentenceRecognition` takes at most 60 seconds...
pub const SENTENCE_MAX_DURATION: Duration = Duration::from_secs(60);
/// ...and 3 MB of audio.
pub const SENTENCE_MAX_BYTES: u64 = 3 * 1024 * 1024;
/// A recording task takes at most 5 MB of audio sent inline (longer audio goes by URL)...
const TASK_MAX_BYTES: u64 = 5 * 1024 * 1024;
/// ...and 5 hours.
const TASK_MAX_DURATION: Duration = Duration::from_secs(5 * 3600);

/// What either action reads. Ogg must carry Opus: Vorbis is refused.
const FORMATS: &[InputFormat] = &[
    InputFormat::Wav,
    InputFormat::Mp3,
    InputFormat::M4a,
    InputFormat::Aac,
    InputFormat::Amr,
    InputFormat::Ogg,
    InputFormat::Flac,
    InputFormat::Mp4,
];

/// `SentenceRecognition`'s `VoiceFormat` for what it reads; the others go to a recording task.
fn sentence_format(format: InputFormat) -> Option<&'static str> {
    match format {
        InputFormat::Wav => Some("wav"),
        InputFormat::Mp3 => Some("mp3"),
        InputFormat::M4a => Some("m4a"),
        InputFormat::Aac => Some("aac"),
        InputFormat::Amr => Some("amr"),
        InputFormat::Ogg => Some("ogg-opus"),
        _ => None,
    }
}

/// The 16 kHz engine for a language (ISO 639-1), where Tencent has one.
pub fn engine_for(language: &str) -> Option<&'static str> {
    Some(match language_code(language).as_str() {
        "zh" => "16k_zh",
        "en" => "16k_en",
        "yue" => "16k_yue",
        "ja" => "16k_ja",
        "ko" => "16k_ko",
        "vi" => "16k_vi",
        "ms" => "16k_ms",
        "id" => "16k_id",
        "tl" => "16k_fil",
        "th" => "16k_th",
        "pt" => "16k_pt",
        "tr" => "16k_tr",
        "ar" => "16k_ar",
        "es" => "16k_es",
        "hi" => "16k_hi",
        "fr" => "16k_fr",
        "de" => "16k_de",
        _ => return None,
    })
}

/// The language an engine hears: `16k_zh_medical` is Chinese, `8k_en` English.
pub fn engine_language(engine: &str) -> Option<String> {
    let language = engine.split('_').nth(1)?.split('-').next()?;
    Some(match language {
        "fil" => "tl".to_string(),
        other => language_code(other),
    })
}

pub struct TencentAsr {
    http: HttpBase,
    endpoint: url::Url,
    host: String,
    secret_id: Secret,
    secret_key: Secret,
    engine: String,
    poll_interval: Duration,
    task_timeout: Duration,
    price: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SentenceAnswer {
    #[serde(default)]
    result: String,
    /// Milliseconds.
    #[serde(default)]
    audio_duration: f64,
    word_list: Option<Vec<SentenceWord>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SentenceWord {
    word: String,
    /// Milliseconds from the start.
    start_time: f64,
    end_time: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TaskData {
    status: i64,
    #[serde(default)]
    result: String,
    #[serde(default)]
    error_msg: String,
    result_detail: Option<Vec<SentenceDetail>>,
    /// Seconds.
    #[serde(default)]
    audio_duration: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SentenceDetail {
    #[serde(default)]
    final_sentence: String,
    start_ms: f64,
    end_ms: f64,
    words: Option<Vec<DetailWord>>,
    speaker_id: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DetailWord {
    word: String,
    /// Milliseconds from the sentence's start.
    offset_start_ms: f64,
    offset_end_ms: f64,
}

/// A recording task's sentences as segments, and their words with times from the start.
/// Speakers count only when they were asked for (the service says 0 otherwise).
fn map_details(details: Vec<SentenceDetail>, diarized: bool) -> (Vec<Segment>, Vec<Word>) {
    let mut segments = Vec::new();
    let mut words = Vec::new();
    for d in details {
        let speaker = d
            .speaker_id
            .filter(|_| diarized)
            .map(|id| format!("speaker_{id}"));
        for w in d.words.unwrap_or_default() {
            words.push(Word {
                start: (d.start_ms + w.offset_start_ms) / 1000.0,
                end: (d.start_ms + w.offset_end_ms) / 1000.0,
                word: w.word,
                speaker: speaker.clone(),
            });
        }
        segments.push(Segment {
            start: d.start_ms / 1000.0,
            end: d.end_ms / 1000.0,
            text: d.final_sentence,
            speaker,
        });
    }
    (segments, words)
}

/// A failed `CreateRecTask` as the caller gets it. A failure worth retrying after which a task
/// may exist (a timeout, a dropped connection, an answer that is not Tencent Cloud's own) is
/// final: another attempt, here or by the job, would make and bill a second task.
fn unconfirmed_task(http: &HttpBase, e: ProviderError) -> ProviderError {
    if !e.is_retryable() || e.nothing_done {
        return e;
    }
    http.error(
        ErrorKind::Failed,
        format!(
            "{e}; the recording task is not requested again, since Tencent Cloud may have \
             created (and will bill) it"
        ),
    )
}

/// A task that cannot be followed any more (its status calls failed after their retries) is
/// given up: a later attempt would create and bill a second task.
fn lost_task(http: &HttpBase, task_id: u64, e: ProviderError) -> ProviderError {
    if !e.is_retryable() {
        return e;
    }
    http.error(
        ErrorKind::Failed,
        format!("{e}; recording task {task_id} could not be followed to its end"),
    )
}

impl TencentAsr {
    pub fn new(
        config: &TencentConfig,
        retry: RetryPolicy,
        scrub: Scrubber,
    ) -> anyhow::Result<Self> {
        let (endpoint, host) =
            endpoint_host(&config.asr_endpoint, "providers.tencent.asr_endpoint")?;
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
                config.asr_timeout_ms,
                config.asr_max_concurrency,
                scrub,
            )?,
            endpoint,
            host,
            secret_id,
            secret_key,
            engine: config.asr_engine.clone(),
            poll_interval: Duration::from_millis(config.asr_poll_interval_ms.max(1)),
            task_timeout: Duration::from_millis(config.asr_task_timeout_ms),
            price: config.asr_price_micros_per_minute,
        })
    }

    /// ASR's own codes first (formats it cannot read, audio over its limits), then the ones
    /// every product shares.
    fn classify(&self, code: &str, message: &str) -> ProviderError {
        let kind = if code.contains("VoiceFormat") || code.contains("Decode") {
            Some(ErrorKind::UnsupportedFormat)
        } else if code.contains("TooLong")
            || code.contains("TooLarge")
            || code.contains("SizeLimit")
        {
            Some(ErrorKind::TooLarge)
        } else {
            None
        };
        match kind {
            Some(kind) => self.http.error(
                kind,
                format!(
                    "Tencent Cloud refused the audio ({code}): {}",
                    self.http.excerpt(message)
                ),
            ),
            None => business_error(&self.http, code, message),
        }
    }

    /// One signed call of `action`, retried under the shared policy as `resend` allows; its
    /// `Response`.
    async fn call(
        &self,
        action: &str,
        resend: Resend,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, ProviderError> {
        let body = serde_json::to_vec(&body).expect("a JSON value serializes");
        let action = Action {
            service: SERVICE,
            name: action,
            version: VERSION,
            region: None,
        };
        let credentials = Credentials {
            endpoint: &self.endpoint,
            host: &self.host,
            secret_id: &self.secret_id,
            secret_key: &self.secret_key,
        };
        self.http
            .call_with(resend, || async {
                let reply = self
                    .http
                    .send(signed(&self.http, &credentials, &action, &body))
                    .await?;
                response_of(&self.http, &reply, |code, message| {
                    self.classify(code, message)
                })
            })
            .await
    }

    fn unreadable(&self, what: &str, e: serde_json::Error) -> ProviderError {
        self.http.error(
            ErrorKind::ServerError,
            format!("Tencent Cloud sent {what} that cannot be read: {e}"),
        )
    }

    async fn sentence(
        &self,
        request: &TranscriptionRequest,
        engine: &str,
        voice_format: &str,
    ) -> Result<Transcript, ProviderError> {
        let response = self
            .call(
                "SentenceRecognition",
                Resend::Retryable,
                json!({
                    "EngSerViceType": engine,
                    "SourceType": 1,
                    "VoiceFormat": voice_format,
                    "Data": base64::engine::general_purpose::STANDARD.encode(&request.audio),
                    "DataLen": request.audio.len(),
                    // Word times, punctuation included.
                    "WordInfo": 2,
                }),
            )
            .await?;
        let answer: SentenceAnswer =
            serde_json::from_value(response).map_err(|e| self.unreadable("a result", e))?;
        let words: Vec<Word> = answer
            .word_list
            .unwrap_or_default()
            .into_iter()
            .map(|w| Word {
                start: w.start_time / 1000.0,
                end: w.end_time / 1000.0,
                word: w.word,
                speaker: None,
            })
            .collect();
        let duration = match request.duration {
            Some(d) if answer.audio_duration <= 0.0 => d.as_secs_f64(),
            _ => answer.audio_duration / 1000.0,
        };
        let segments = if words.is_empty() && !answer.result.trim().is_empty() {
            vec![Segment {
                start: 0.0,
                end: duration,
                text: answer.result.clone(),
                speaker: None,
            }]
        } else {
            segments_from_words(&words)
        };
        Ok(Transcript {
            language: engine_language(engine),
            duration,
            text: answer.result,
            segments,
            words,
            model: engine.to_string(),
        })
    }

    async fn task(
        &self,
        request: &TranscriptionRequest,
        engine: &str,
    ) -> Result<Transcript, ProviderError> {
        let mut body = json!({
            "EngineModelType": engine,
            "ChannelNum": 1,
            // Sentences with word times, punctuation included.
            "ResTextFormat": 2,
            "SourceType": 1,
            "Data": base64::engine::general_purpose::STANDARD.encode(&request.audio),
            "DataLen": request.audio.len(),
        });
        if request.speaker_labels {
            body["SpeakerDiarization"] = json!(1);
            // 0: let the engine tell how many there are.
            body["SpeakerNumber"] = json!(0);
        }
        // A task is billed once made: the create is sent again only when Tencent Cloud
        // certainly made none (see `unconfirmed_task`).
        let created = self
            .call("CreateRecTask", Resend::NothingDone, body)
            .await
            .map_err(|e| unconfirmed_task(&self.http, e))?;
        let task_id = created
            .pointer("/Data/TaskId")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| {
                self.http.error(
                    ErrorKind::ServerError,
                    "Tencent Cloud created a recording task without a TaskId",
                )
            })?;
        tracing::debug!(task_id, "recording task created");
        let deadline = Instant::now() + self.task_timeout;
        let data = loop {
            let mut status = self
                .call(
                    "DescribeTaskStatus",
                    Resend::Retryable,
                    json!({ "TaskId": task_id }),
                )
                .await
                .map_err(|e| lost_task(&self.http, task_id, e))?;
            let data: TaskData = serde_json::from_value(status["Data"].take())
                .map_err(|e| self.unreadable("a task status", e))?;
            match data.status {
                2 => break data,
                3 => {
                    return Err(self.http.error(
                        ErrorKind::Failed,
                        format!(
                            "Tencent Cloud could not recognise the audio (task {task_id}): {}",
                            self.http.excerpt(&data.error_msg)
                        ),
                    ));
                }
                _ => {}
            }
            // Not retryable: asking again would start (and bill) a second task.
            if Instant::now() + self.poll_interval > deadline {
                return Err(self.http.error(
                    ErrorKind::Failed,
                    format!(
                        "Tencent Cloud did not finish recording task {task_id} within {}",
                        crate::providers::retry::human_duration(self.task_timeout)
                    ),
                ));
            }
            tokio::time::sleep(self.poll_interval).await;
        };
        let (segments, words) = map_details(
            data.result_detail.unwrap_or_default(),
            request.speaker_labels,
        );
        let text = if segments.is_empty() {
            data.result
        } else {
            super::join_words(segments.iter().map(|s| s.text.as_str()))
        };
        let duration = if data.audio_duration > 0.0 {
            data.audio_duration
        } else {
            request.duration.map_or(0.0, |d| d.as_secs_f64())
        };
        Ok(Transcript {
            language: engine_language(engine),
            duration,
            text,
            segments,
            words,
            model: engine.to_string(),
        })
    }
}

#[async_trait]
impl Asr for TencentAsr {
    fn id(&self) -> &'static str {
        ID
    }

    /// The engine (`16k_zh`), which is what Tencent prices and names.
    fn model(&self) -> &str {
        &self.engine
    }

    fn models(&self) -> Vec<String> {
        vec![self.engine.clone()]
    }

    async fn status(&self) -> ProviderStatus {
        ProviderStatus {
            available: true,
            detail: format!("speech recognition, engine {}", self.engine),
        }
    }

    fn limits(&self, _model: &str) -> AsrLimits {
        AsrLimits {
            max_bytes: TASK_MAX_BYTES,
            max_duration: Some(TASK_MAX_DURATION),
            formats: FORMATS,
        }
    }

    fn capabilities(&self, _model: &str) -> Capabilities {
        Capabilities {
            translate: false,
            word_timestamps: true,
            segment_timestamps: true,
            speaker_labels: true,
            language_detection: false,
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
        if request.format == InputFormat::Ogg && !InputFormat::is_opus(&request.audio) {
            return Err(self.http.error(
                ErrorKind::UnsupportedFormat,
                "Tencent Cloud reads Ogg Opus only, not Ogg Vorbis",
            ));
        }
        let engine = match (&request.model, &request.language) {
            (Some(model), _) => model.clone(),
            (None, Some(language)) => engine_for(language)
                .ok_or_else(|| {
                    self.http.error(
                        ErrorKind::Rejected,
                        format!(
                            "Tencent Cloud has no recognition engine for the language `{language}`"
                        ),
                    )
                })?
                .to_string(),
            (None, None) => self.engine.clone(),
        };
        let duration = match request.duration {
            Some(d) => Some(d),
            None => measure(&request.audio, request.format).await,
        };
        let short = duration.is_some_and(|d| d <= SENTENCE_MAX_DURATION)
            && request.audio.len() as u64 <= SENTENCE_MAX_BYTES
            && !request.speaker_labels;
        let transcript = match sentence_format(request.format) {
            Some(voice_format) if short => self.sentence(request, &engine, voice_format).await?,
            _ => self.task(request, &engine).await?,
        };
        let wanted = request.granularities;
        let mut transcript = transcript;
        if !wanted.words {
            transcript.words.clear();
        }
        if !wanted.segments {
            transcript.segments.clear();
        }
        Ok(transcript.tidy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http() -> HttpBase {
        let retry = RetryPolicy::from_config(&crate::config::RetryConfig::default());
        HttpBase::new(
            ID,
            DISPLAY,
            retry,
            1000,
            1,
            Scrubber::new(Vec::<&Secret>::new()),
        )
        .unwrap()
    }

    #[test]
    fn a_create_that_may_have_made_a_task_is_final_and_a_refused_one_is_not() {
        let http = http();
        let failed = |kind: ErrorKind| http.error(kind, "Tencent Cloud failed");
        // Tencent Cloud's own refusals and connections never made: no task exists.
        let throttled = failed(ErrorKind::RateLimited).with_nothing_done();
        let internal = failed(ErrorKind::ServerError).with_nothing_done();
        let unreachable = failed(ErrorKind::Network).with_nothing_done();
        for e in [throttled, internal, unreachable] {
            let kind = e.kind;
            let kept = unconfirmed_task(&http, e);
            assert_eq!(kept.kind, kind);
            assert!(kept.is_retryable(), "{kind:?} is retried: no task was made");
        }
        // A timeout, a dropped connection, a gateway's 502: the task may exist.
        for kind in [
            ErrorKind::Timeout,
            ErrorKind::Network,
            ErrorKind::ServerError,
        ] {
            let e = unconfirmed_task(&http, failed(kind));
            assert_eq!(e.kind, ErrorKind::Failed, "{kind:?}");
            assert!(!e.is_retryable(), "{kind:?}");
            assert!(e.message.contains("not requested again"), "{}", e.message);
        }
        // Failures no retry would fix stay what they are.
        let e = unconfirmed_task(&http, failed(ErrorKind::Auth));
        assert_eq!(e.kind, ErrorKind::Auth);
    }

    #[test]
    fn a_task_that_cannot_be_followed_is_given_up_naming_it() {
        let http = http();
        let e = lost_task(&http, 42, http.error(ErrorKind::Timeout, "no answer"));
        assert_eq!(e.kind, ErrorKind::Failed);
        assert!(e.message.contains("task 42"), "{}", e.message);
        let e = lost_task(&http, 42, http.error(ErrorKind::Auth, "bad key"));
        assert_eq!(e.kind, ErrorKind::Auth);
    }

    #[test]
    fn languages_pick_their_engine_and_engines_say_their_language() {
        assert_eq!(engine_for("zh"), Some("16k_zh"));
        assert_eq!(engine_for("en-US"), Some("16k_en"));
        assert_eq!(engine_for("english"), Some("16k_en"));
        assert_eq!(engine_for("tl"), Some("16k_fil"));
        assert_eq!(engine_for("xx"), None);
        assert_eq!(engine_language("16k_zh").as_deref(), Some("zh"));
        assert_eq!(engine_language("16k_zh-PY").as_deref(), Some("zh"));
        assert_eq!(engine_language("8k_en").as_deref(), Some("en"));
        assert_eq!(engine_language("16k_zh_medical").as_deref(), Some("zh"));
        assert_eq!(engine_language("16k_fil").as_deref(), Some("tl"));
        assert_eq!(engine_language("odd"), None);
    }

    #[test]
    fn task_words_are_timed_from_their_sentence_start() {
        let details: Vec<SentenceDetail> = serde_json::from_value(json!([
            {"FinalSentence": "你好。", "StartMs": 0, "EndMs": 900, "SpeakerId": 0,
             "Words": [{"Word": "你好", "OffsetStartMs": 100, "OffsetEndMs": 700}]},
            {"FinalSentence": "再见。", "StartMs": 2000, "EndMs": 2600, "SpeakerId": 1,
             "Words": [{"Word": "再见", "OffsetStartMs": 50, "OffsetEndMs": 550}]},
        ]))
        .unwrap();
        let (segments, words) = map_details(details, true);
        assert_eq!((segments[1].start, segments[1].end), (2.0, 2.6));
        assert_eq!(segments[1].speaker.as_deref(), Some("speaker_1"));
        assert_eq!((words[1].start, words[1].end), (2.05, 2.55));
        assert_eq!(words[0].speaker.as_deref(), Some("speaker_0"));
    }

    #[test]
    fn speakers_are_left_out_when_they_were_not_asked_for() {
        let details: Vec<SentenceDetail> = serde_json::from_value(json!([
            {"FinalSentence": "你好。", "StartMs": 0, "EndMs": 900, "SpeakerId": 0,
             "Words": [{"Word": "你好", "OffsetStartMs": 100, "OffsetEndMs": 700}]},
        ]))
        .unwrap();
        let (segments, words) = map_details(details, false);
        assert_eq!(segments[0].speaker, None);
        assert_eq!(words[0].speaker, None);
    }
}
