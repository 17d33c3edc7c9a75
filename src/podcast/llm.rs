//! Writes podcast scripts with any OpenAI-compatible `/chat/completions` server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::script::{FlatScript, Problem, Script, ScriptError, ScriptLimits};
use crate::config::{LlmConfig, Secret};
use crate::error::AppError;
use crate::providers::Scrubber;

/// Spoken English runs at about 150 words a minute.
const WORDS_PER_MINUTE: u32 = 150;
/// Chinese, Japanese and Korean are counted in characters: about 250 a minute.
const CJK_CHARS_PER_MINUTE: u32 = 250;
const MAX_MINUTES: u32 = 60;
const MAX_SPEAKERS: usize = 8;
const MAX_NAME_CHARS: usize = 40;
const MAX_STYLE_CHARS: usize = 500;

/// What the script is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A subject for the model to talk about from its own knowledge.
    Topic(String),
    /// A pasted text (article, notes) for the speakers to discuss.
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeakerBrief {
    pub name: String,
    /// "host", "skeptical guest", … : shapes how the model writes this speaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptRequest {
    pub source: Source,
    pub speakers: Vec<SpeakerBrief>,
    #[serde(default = "default_minutes")]
    pub minutes: u32,
    /// A language tag or name ("en", "zh-CN", "German"); none means the source's language.
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub style: Option<String>,
}

fn default_minutes() -> u32 {
    5
}

/// Tokens of all calls made for one script, and what they cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_micros: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScriptDraft {
    pub script: Script,
    /// Things the user should know, e.g. that a long source was trimmed.
    pub notes: Vec<String>,
    pub usage: Usage,
    /// The model that wrote it, for the usage ledger.
    pub model: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// No model, or neither a key nor a non-default server: the HTTP layer answers 503.
    #[error("no language model is configured")]
    NotConfigured,
    #[error("invalid script request: {0}")]
    InvalidRequest(ScriptError),
    #[error("the language model server is rate limiting requests")]
    RateLimited { retry_after: Option<Duration> },
    /// Failed after retries, or refused the request (bad key, unknown model, …).
    #[error("the language model server failed (status {status:?}): {message}")]
    Unavailable {
        status: Option<u16>,
        message: String,
    },
    /// Two answers in a row were not a valid script. The tokens were still spent.
    #[error("the language model returned no usable script: {problem}")]
    BadOutput { problem: String, usage: Usage },
}

impl From<LlmError> for AppError {
    fn from(e: LlmError) -> Self {
        let unavailable = |message: &str| AppError::Unavailable {
            code: "provider_unavailable",
            message: message.into(),
        };
        match e {
            LlmError::NotConfigured => unavailable(
                "No language model is configured; write the script by hand or set llm.model",
            ),
            LlmError::InvalidRequest(e) => AppError::BadRequest {
                code: "invalid_request",
                message: format!("The request is not valid: {e}"),
                details: Some(e.details()),
            },
            LlmError::RateLimited { .. } => {
                unavailable("The language model is busy; try again in a minute")
            }
            LlmError::Unavailable { .. } => {
                unavailable("The language model server is not answering; try again later")
            }
            LlmError::BadOutput { .. } => {
                unavailable("The language model did not write a usable script; try again")
            }
        }
    }
}

/// How long to keep trying when the server is busy or failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    /// First backoff; doubled on each retry, with jitter, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not waited out: the user hears "busy" at once.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    pub fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
        }
    }

    /// The wait before retry number `retry` (0-based): exponential, half of it random, so
    /// clients that failed together do not come back together.
    fn backoff(&self, retry: u32) -> Duration {
        let full = self
            .base_delay
            .saturating_mul(1u32 << retry.min(16))
            .min(self.max_delay);
        full.mul_f64(rand::random_range(0.5..=1.0))
    }
}

/// The structured-output mode, from best to most widely supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    JsonSchema,
    JsonObject,
    Plain,
}

impl Format {
    fn weaker(self) -> Option<Self> {
        match self {
            Self::JsonSchema => Some(Self::JsonObject),
            Self::JsonObject => Some(Self::Plain),
            Self::Plain => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Message {
    role: &'static str,
    content: String,
}

#[derive(Debug, Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: ChoiceMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// One successful chat call.
struct Answer {
    content: Option<String>,
    refusal: Option<String>,
    finish_reason: Option<String>,
    prompt_tokens: u64,
    completion_tokens: u64,
}

/// Why one HTTP exchange did not give an answer.
enum Failure {
    /// The server does not understand the `response_format` we sent.
    FormatRejected,
    Retryable {
        status: Option<u16>,
        retry_after: Option<Duration>,
        message: String,
    },
    Fatal(LlmError),
}

/// The script writer. Cheap to share: one per process, in `AppState`.
#[derive(Debug)]
pub struct LlmClient {
    http: reqwest::Client,
    endpoint: String,
    api_key: Option<Secret>,
    model: String,
    configured: bool,
    timeout: Duration,
    retry: RetryPolicy,
    max_source_chars: usize,
    price_input_per_1m_micros: u64,
    price_output_per_1m_micros: u64,
    limits: ScriptLimits,
    /// Set once a server rejects `json_schema`, so later scripts skip the doomed first try.
    schema_unsupported: AtomicBool,
    /// Every message made from the server's answers passes through it.
    scrub: Scrubber,
}

impl LlmClient {
    /// `limits` are applied to every script the model writes (usually `tts.max_chars`).
    pub fn new(config: &LlmConfig, limits: ScriptLimits) -> anyhow::Result<Self> {
        let default_base = LlmConfig::default().base_url;
        let has_key = config
            .api_key
            .as_ref()
            .is_some_and(|k| !k.expose().trim().is_empty());
        let configured = !config.model.trim().is_empty()
            && (has_key || config.base_url.trim_end_matches('/') != default_base);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("aimake/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            endpoint: format!("{}/chat/completions", config.base_url.trim_end_matches('/')),
            api_key: config.api_key.clone().filter(|_| has_key),
            model: config.model.trim().to_string(),
            configured,
            timeout: Duration::from_secs(config.timeout_s.max(1)),
            retry: RetryPolicy::new(config.max_retries),
            max_source_chars: config.max_source_chars.max(1),
            price_input_per_1m_micros: config.price_input_per_1m_micros,
            price_output_per_1m_micros: config.price_output_per_1m_micros,
            limits,
            schema_unsupported: AtomicBool::new(false),
            scrub: Scrubber::new(config.api_key.iter()),
        })
    }

    /// Masks these secrets too (the app passes every secret of its config), not only this
    /// client's own key.
    pub fn with_scrubber(mut self, scrub: Scrubber) -> Self {
        self.scrub = scrub;
        self
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Per-request timeout; config gives whole seconds, tests want less.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn is_configured(&self) -> bool {
        self.configured
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// Asks the model for a script and checks it; one more try, told what was wrong, when the
    /// first answer is not a valid script.
    #[tracing::instrument(skip_all, fields(model = %self.model, speakers = request.speakers.len(), minutes = request.minutes), err(Display))]
    pub async fn write_script(&self, request: &ScriptRequest) -> Result<ScriptDraft, LlmError> {
        if !self.configured {
            return Err(LlmError::NotConfigured);
        }
        validate_request(request).map_err(LlmError::InvalidRequest)?;
        let mut notes = Vec::new();
        let source = self.trim_source(&request.source, &mut notes);
        let names: Vec<&str> = request.speakers.iter().map(|s| s.name.trim()).collect();
        let mut messages = vec![
            Message {
                role: "system",
                content: system_prompt(&names),
            },
            Message {
                role: "user",
                content: user_prompt(request, &source),
            },
        ];
        let mut usage = Usage::default();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let answer = self.chat(&messages, &names).await?;
            usage.prompt_tokens += answer.prompt_tokens;
            usage.completion_tokens += answer.completion_tokens;
            usage.cost_micros = self.cost_micros(usage.prompt_tokens, usage.completion_tokens);
            match interpret(&answer, &names, &self.limits) {
                Ok(script) => {
                    return Ok(ScriptDraft {
                        script,
                        notes,
                        usage,
                        model: self.model.clone(),
                    });
                }
                Err(problem) if attempt == 1 => {
                    tracing::info!(%problem, "the model's script was not usable; asking again");
                    messages.push(Message {
                        role: "assistant",
                        content: answer.content.unwrap_or_default(),
                    });
                    messages.push(Message {
                        role: "user",
                        content: format!(
                            "That answer cannot be used: {problem}. Reply again with the complete, \
                             corrected script as one JSON object in the same shape, and nothing else."
                        ),
                    });
                }
                Err(problem) => return Err(LlmError::BadOutput { problem, usage }),
            }
        }
    }

    fn cost_micros(&self, prompt_tokens: u64, completion_tokens: u64) -> u64 {
        let total = u128::from(prompt_tokens) * u128::from(self.price_input_per_1m_micros)
            + u128::from(completion_tokens) * u128::from(self.price_output_per_1m_micros);
        // Rounded up: a call that cost anything never records as free.
        u64::try_from(total.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }

    fn trim_source(&self, source: &Source, notes: &mut Vec<String>) -> Source {
        let (text, what) = match source {
            Source::Topic(t) => (t.trim(), "topic"),
            Source::Text(t) => (t.trim(), "source text"),
        };
        let total = text.chars().count();
        if total <= self.max_source_chars {
            return source.clone();
        }
        let kept = trim_at_boundary(text, self.max_source_chars);
        notes.push(format!(
            "The {what} was trimmed from {total} to {} characters (the limit is {}); \
             the script covers only its beginning.",
            kept.chars().count(),
            self.max_source_chars
        ));
        match source {
            Source::Topic(_) => Source::Topic(kept.to_string()),
            Source::Text(_) => Source::Text(kept.to_string()),
        }
    }

    /// One chat answer, stepping down the structured-output mode when the server rejects it
    /// and retrying busy, failing or slow servers with backoff.
    async fn chat(&self, messages: &[Message], names: &[&str]) -> Result<Answer, LlmError> {
        let mut format = if self.schema_unsupported.load(Ordering::Relaxed) {
            Format::JsonObject
        } else {
            Format::JsonSchema
        };
        let mut retries = 0;
        loop {
            let body = request_body(&self.model, messages, format, names);
            match self.send(&body).await {
                Ok(answer) => return Ok(answer),
                Err(Failure::FormatRejected) => match format.weaker() {
                    Some(weaker) => {
                        tracing::info!(?format, "the server rejects this response_format");
                        if format == Format::JsonSchema {
                            self.schema_unsupported.store(true, Ordering::Relaxed);
                        }
                        format = weaker;
                    }
                    None => {
                        return Err(LlmError::Unavailable {
                            status: Some(400),
                            message: "the server rejects the request".into(),
                        });
                    }
                },
                Err(Failure::Retryable {
                    status,
                    retry_after,
                    message,
                }) => {
                    let too_long = retry_after.is_some_and(|d| d > self.retry.max_retry_after);
                    if retries >= self.retry.max_retries || too_long {
                        tracing::warn!(?status, %message, retries, "giving up on the language model");
                        return Err(if status == Some(429) {
                            LlmError::RateLimited { retry_after }
                        } else {
                            LlmError::Unavailable { status, message }
                        });
                    }
                    let wait = retry_after.unwrap_or_else(|| self.retry.backoff(retries));
                    tracing::info!(?status, %message, wait_ms = wait.as_millis() as u64, "retrying the language model");
                    tokio::time::sleep(wait).await;
                    retries += 1;
                }
                Err(Failure::Fatal(e)) => return Err(e),
            }
        }
    }

    async fn send(&self, body: &Value) -> Result<Answer, Failure> {
        let mut request = self
            .http
            .post(&self.endpoint)
            .timeout(self.timeout)
            .json(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        let transport = |e: reqwest::Error| Failure::Retryable {
            status: None,
            retry_after: None,
            message: if e.is_timeout() {
                "timed out".to_string()
            } else {
                self.scrub.message(&e.to_string())
            },
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let bytes = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            let parsed: ChatResponse = serde_json::from_slice(&bytes).map_err(|e| {
                Failure::Fatal(LlmError::Unavailable {
                    status: Some(status.as_u16()),
                    message: self
                        .scrub
                        .message(&format!("not a chat completion response: {e}")),
                })
            })?;
            let usage = parsed.usage.unwrap_or(WireUsage {
                prompt_tokens: 0,
                completion_tokens: 0,
            });
            let Some(choice) = parsed.choices.into_iter().next() else {
                return Err(Failure::Fatal(LlmError::Unavailable {
                    status: Some(status.as_u16()),
                    message: "the response has no choices".into(),
                }));
            };
            return Ok(Answer {
                content: choice.message.content,
                refusal: choice.message.refusal,
                finish_reason: choice.finish_reason,
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
            });
        }
        let message = self.scrub.message(&error_message(&bytes));
        let lower = message.to_lowercase();
        if matches!(
            status,
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
        ) && ["response_format", "json_schema", "json_object"]
            .iter()
            .any(|k| lower.contains(k))
        {
            return Err(Failure::FormatRejected);
        }
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            return Err(Failure::Retryable {
                status: Some(status.as_u16()),
                retry_after,
                message,
            });
        }
        Err(Failure::Fatal(LlmError::Unavailable {
            status: Some(status.as_u16()),
            message,
        }))
    }
}

fn validate_request(request: &ScriptRequest) -> Result<(), ScriptError> {
    let mut problems = Vec::new();
    let mut problem = |field: String, message: String| problems.push(Problem { field, message });
    let (field, source) = match &request.source {
        Source::Topic(t) => ("source.topic", t),
        Source::Text(t) => ("source.text", t),
    };
    if source.trim().is_empty() {
        problem(field.into(), "must not be empty".into());
    }
    if request.speakers.is_empty() || request.speakers.len() > MAX_SPEAKERS {
        problem(
            "speakers".into(),
            format!("between 1 and {MAX_SPEAKERS} speakers are needed"),
        );
    }
    for (i, speaker) in request.speakers.iter().enumerate() {
        let name = speaker.name.trim();
        let field = format!("speakers[{i}].name");
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            problem(field, format!("must have 1 to {MAX_NAME_CHARS} characters"));
        } else if name.contains([':', '：', '\n', '"']) {
            problem(
                field,
                "must not contain colons, quotes or line breaks".into(),
            );
        } else if request.speakers[..i]
            .iter()
            .any(|o| o.name.trim().to_lowercase() == name.to_lowercase())
        {
            problem(field, format!("\"{name}\" is listed twice"));
        }
    }
    if !(1..=MAX_MINUTES).contains(&request.minutes) {
        problem(
            "minutes".into(),
            format!("must be between 1 and {MAX_MINUTES}"),
        );
    }
    if request
        .style
        .as_ref()
        .is_some_and(|s| s.chars().count() > MAX_STYLE_CHARS)
    {
        problem(
            "style".into(),
            format!("at most {MAX_STYLE_CHARS} characters"),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ScriptError { problems })
    }
}

/// The first `max` characters, cut back to the last paragraph, sentence or word break when one
/// is near, so the model does not see half a sentence.
fn trim_at_boundary(text: &str, max: usize) -> &str {
    let end = text.char_indices().nth(max).map_or(text.len(), |(i, _)| i);
    let head = &text[..end];
    let floor = head.len() * 9 / 10;
    for breaks in [
        &["\n\n"][..],
        &[". ", "。", "! ", "? ", "！", "？", "\n"],
        &[" "],
    ] {
        if let Some(at) = breaks
            .iter()
            .filter_map(|b| head.rfind(b).map(|i| i + b.len()))
            .max()
            .filter(|&at| at >= floor)
        {
            return head[..at].trim_end();
        }
    }
    head
}

fn is_cjk_language(language: &str) -> bool {
    let l = language.trim().to_lowercase();
    [
        "zh",
        "ja",
        "ko",
        "chinese",
        "japanese",
        "korean",
        "中文",
        "日本語",
        "한국어",
    ]
    .iter()
    .any(|p| l.starts_with(p))
}

fn system_prompt(names: &[&str]) -> String {
    let list = names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "You write scripts for spoken podcasts. Answer with one JSON object and nothing else, \
         shaped as {{\"chapters\": [{{\"title\": \"...\", \"lines\": [{{\"speaker\": \"...\", \"text\": \"...\"}}]}}]}}. \
         The speaker of every line is exactly one of: {list}. Each text is what that speaker says \
         aloud: no stage directions, sound effects, markdown or speaker names inside it. Use one \
         to six chapters with short titles, and keep turns natural and varied in length."
    )
}

fn user_prompt(request: &ScriptRequest, source: &Source) -> String {
    let mut out = String::new();
    let language = request
        .language
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty());
    match language {
        Some(l) => out.push_str(&format!("Write the dialogue in this language: {l}.\n")),
        None => out.push_str("Write the dialogue in the language of the topic or source.\n"),
    }
    let minutes = request.minutes;
    if language.is_some_and(is_cjk_language) {
        out.push_str(&format!(
            "Length: about {} characters of speech in total (about {minutes} minutes spoken).\n",
            minutes * CJK_CHARS_PER_MINUTE
        ));
    } else {
        out.push_str(&format!(
            "Length: about {} words in total (about {minutes} minutes spoken).\n",
            minutes * WORDS_PER_MINUTE
        ));
    }
    out.push_str("Speakers:\n");
    for s in &request.speakers {
        match s.role.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
            Some(role) => out.push_str(&format!("- {} ({role})\n", s.name.trim())),
            None => out.push_str(&format!("- {}\n", s.name.trim())),
        }
    }
    if let Some(style) = request
        .style
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        out.push_str(&format!("Style: {style}\n"));
    }
    match source {
        Source::Topic(topic) => out.push_str(&format!("Topic: {}\n", topic.trim())),
        Source::Text(text) => out.push_str(&format!(
            "The speakers discuss the following text. Stay faithful to it.\n<<<SOURCE\n{}\nSOURCE>>>\n",
            text.trim()
        )),
    }
    out
}

/// The strict JSON schema of a script, with the speaker names as an enum so a model that
/// honours the schema cannot invent a speaker.
fn script_schema(names: &[&str]) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["chapters"],
        "properties": {
            "chapters": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["title", "lines"],
                    "properties": {
                        "title": {"type": "string"},
                        "lines": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "additionalProperties": false,
                                "required": ["speaker", "text"],
                                "properties": {
                                    "speaker": {"type": "string", "enum": names},
                                    "text": {"type": "string"}
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

fn request_body(model: &str, messages: &[Message], format: Format, names: &[&str]) -> Value {
    let mut body = json!({ "model": model, "messages": messages });
    let response_format = match format {
        Format::JsonSchema => Some(json!({
            "type": "json_schema",
            "json_schema": {"name": "podcast_script", "strict": true, "schema": script_schema(names)}
        })),
        Format::JsonObject => Some(json!({"type": "json_object"})),
        Format::Plain => None,
    };
    if let Some(rf) = response_format {
        body["response_format"] = rf;
    }
    body
}

/// `Retry-After` in seconds or as an HTTP date, or OpenAI's `retry-after-ms`.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = header("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// The readable part of an error body: OpenAI's `{"error": {"message"}}`, other servers'
/// `{"error": "…"}` or `{"detail": …}`, else the text; scrubbed and cut by the caller.
fn error_message(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => match (&v["error"], &v["detail"], &v["message"]) {
            (Value::Object(e), _, _) => {
                let mut m = e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if let Some(param) = e.get("param").and_then(Value::as_str) {
                    m.push_str(&format!(" (param {param})"));
                }
                m
            }
            (Value::String(s), _, _) | (_, Value::String(s), _) | (_, _, Value::String(s)) => {
                s.clone()
            }
            (_, d, _) if !d.is_null() => d.to_string(),
            _ => text.to_string(),
        },
        Err(_) => text.to_string(),
    }
}

/// Drops `<think>…</think>` blocks (reasoning models) and Markdown code fences around JSON.
fn strip_wrapping(content: &str) -> String {
    let mut text = content.to_string();
    while let Some(start) = text.find("<think>") {
        match text[start..].find("</think>") {
            Some(end) => text.replace_range(start..start + end + "</think>".len(), ""),
            None => text.truncate(start),
        }
    }
    if let Some(open) = text.find("```") {
        let after = &text[open + 3..];
        let body_start = after.find('\n').map_or(0, |i| i + 1);
        let body = &after[body_start..];
        if let Some(close) = body.find("```") {
            return body[..close].to_string();
        }
    }
    text
}

/// The first JSON object in a model's answer, tolerating prose, fences and trailing text.
pub fn find_json_object(content: &str) -> Option<Value> {
    let text = strip_wrapping(content);
    // A few tries: prose before the JSON may contain a stray brace.
    for (at, _) in text.match_indices('{').take(16) {
        let mut values = serde_json::Deserializer::from_str(&text[at..]).into_iter::<Value>();
        if let Some(Ok(value @ Value::Object(_))) = values.next() {
            return Some(value);
        }
    }
    None
}

/// A script from the model's JSON: `{"chapters": […]}`, or a flat `{"lines": […]}`.
fn script_from_value(value: Value) -> Result<Script, String> {
    if value.get("chapters").is_some() {
        serde_json::from_value::<Script>(value)
            .map_err(|e| format!("the JSON does not have the script's shape ({e})"))
    } else if value.get("lines").is_some() {
        serde_json::from_value::<FlatScript>(value)
            .map(FlatScript::into_script)
            .map_err(|e| format!("the JSON does not have the script's shape ({e})"))
    } else {
        Err("the JSON object has no \"chapters\" list".into())
    }
}

fn interpret(answer: &Answer, names: &[&str], limits: &ScriptLimits) -> Result<Script, String> {
    let Some(content) = answer.content.as_deref().filter(|c| !c.trim().is_empty()) else {
        return Err(match &answer.refusal {
            Some(r) => format!("the model refused: {r}"),
            None => "the answer was empty".into(),
        });
    };
    let Some(value) = find_json_object(content) else {
        return Err(if answer.finish_reason.as_deref() == Some("length") {
            "the answer was cut off before the JSON ended; write a shorter script".into()
        } else {
            "the answer contains no JSON object".into()
        });
    };
    let mut script = script_from_value(value)?;
    script.normalize(names);
    script.validate(names, limits).map_err(|e| e.to_string())?;
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base_url: &str, key: Option<&str>, model: &str) -> LlmConfig {
        LlmConfig {
            base_url: base_url.into(),
            api_key: key.map(Secret::new),
            model: model.into(),
            ..LlmConfig::default()
        }
    }

    #[test]
    fn a_client_is_configured_by_a_model_and_a_key_or_a_local_server() {
        let limits = ScriptLimits::default();
        let default = LlmConfig::default().base_url;
        let cases = [
            (config(&default, Some("sk"), "gpt-4o-mini"), true),
            (config(&default, None, "gpt-4o-mini"), false),
            (config(&default, Some("  "), "gpt-4o-mini"), false),
            (config(&default, Some("sk"), ""), false),
            (config("http://127.0.0.1:11434/v1", None, "qwen2.5"), true),
            (config("http://127.0.0.1:11434/v1", None, ""), false),
        ];
        for (c, expected) in cases {
            assert_eq!(
                LlmClient::new(&c, limits).unwrap().is_configured(),
                expected,
                "{c:?}"
            );
        }
    }

    #[test]
    fn json_is_found_inside_fences_prose_and_reasoning() {
        let cases = [
            "{\"chapters\": []}",
            "```json\n{\"chapters\": []}\n```",
            "Here you go:\n```\n{\"chapters\": []}\n```\nEnjoy!",
            "<think>maybe {\"no\": 1}</think>\nSure! {\"chapters\": []} Hope it helps {.}",
            "Format {like this}: {\"chapters\": []}",
        ];
        for c in cases {
            assert_eq!(find_json_object(c), Some(json!({"chapters": []})), "{c}");
        }
        assert_eq!(find_json_object("no json {here"), None);
        assert_eq!(find_json_object("[1, 2]"), None);
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_milliseconds() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = HeaderMap::new();
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        h.insert("retry-after", later.parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy::new(5);
        for retry in 0..8 {
            let full = (p.base_delay * 2u32.pow(retry)).min(p.max_delay);
            let d = p.backoff(retry);
            assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?}");
        }
    }

    #[test]
    fn long_sources_are_cut_at_a_sentence_break() {
        let text = "First sentence here. Second sentence is longer. Third.";
        assert_eq!(trim_at_boundary(text, 22), "First sentence here.");
        // No sentence break near the end: the last word break.
        assert_eq!(trim_at_boundary(text, 30), "First sentence here. Second");
        assert_eq!(
            trim_at_boundary("无标点的中文文本很长很长", 5),
            "无标点的中"
        );
        assert_eq!(trim_at_boundary("short", 100), "short");
    }

    #[test]
    fn error_messages_come_from_any_common_envelope() {
        let openai = br#"{"error":{"message":"Invalid parameter","type":"invalid_request_error","param":"response_format","code":null}}"#;
        assert_eq!(
            error_message(openai),
            "Invalid parameter (param response_format)"
        );
        assert_eq!(
            error_message(br#"{"error":"model not found"}"#),
            "model not found"
        );
        assert_eq!(error_message(br#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(
            error_message(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }

    #[test]
    fn the_prompt_asks_for_a_word_budget_in_the_right_unit() {
        let mut request = ScriptRequest {
            source: Source::Topic("tea".into()),
            speakers: vec![
                SpeakerBrief {
                    name: "Alice".into(),
                    role: Some("host".into()),
                },
                SpeakerBrief {
                    name: "Bob".into(),
                    role: None,
                },
            ],
            minutes: 4,
            language: Some("en".into()),
            style: Some("cheerful".into()),
        };
        let p = user_prompt(&request, &request.source);
        assert!(p.contains("about 600 words"), "{p}");
        assert!(p.contains("- Alice (host)\n- Bob\n"), "{p}");
        assert!(p.contains("Style: cheerful"), "{p}");
        request.language = Some("zh-CN".into());
        let p = user_prompt(&request, &request.source);
        assert!(p.contains("about 1000 characters"), "{p}");
    }

    #[test]
    fn requests_are_checked_before_any_call() {
        let request = ScriptRequest {
            source: Source::Text("  ".into()),
            speakers: vec![
                SpeakerBrief {
                    name: "Al: x".into(),
                    role: None,
                },
                SpeakerBrief {
                    name: "Bo".into(),
                    role: None,
                },
                SpeakerBrief {
                    name: "bo".into(),
                    role: None,
                },
            ],
            minutes: 0,
            language: None,
            style: None,
        };
        let details = validate_request(&request).unwrap_err().details();
        for field in [
            "source.text",
            "speakers[0].name",
            "speakers[2].name",
            "minutes",
        ] {
            assert!(details[field].is_string(), "{field}: {details}");
        }
        let parsed: ScriptRequest = serde_json::from_value(
            json!({"source": {"topic": "tea"}, "speakers": [{"name": "A", "voice": "x"}]}),
        )
        .unwrap();
        assert_eq!(parsed.minutes, 5);
        assert_eq!(parsed.source, Source::Topic("tea".into()));
    }

    #[test]
    fn cost_is_rounded_up_to_a_micro_dollar() {
        let mut c = config("http://127.0.0.1:1/v1", None, "m");
        c.price_input_per_1m_micros = 150_000;
        c.price_output_per_1m_micros = 600_000;
        let client = LlmClient::new(&c, ScriptLimits::default()).unwrap();
        assert_eq!(client.cost_micros(1_000_000, 0), 150_000);
        assert_eq!(client.cost_micros(1000, 500), 150 + 300);
        assert_eq!(client.cost_micros(1, 0), 1);
        assert_eq!(client.cost_micros(0, 0), 0);
    }
}
