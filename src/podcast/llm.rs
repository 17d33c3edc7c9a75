//! Podcast scripts written by a language model: the prompts, the checks of the model's
//! answer, and one more try, told what was wrong, when the answer is not a usable script.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::script::{FlatScript, Problem, Script, ScriptError, ScriptLimits};
use crate::config::LlmConfig;
use crate::error::AppError;
use crate::error::ErrorCode;
use crate::providers::llm::{Answer, JsonSchema, LlmClient, Message, Role};
use crate::providers::{ErrorKind, ProviderError, RetryPolicy, Scrubber};

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
            code: ErrorCode::ProviderUnavailable,
            message: message.into(),
        };
        match e {
            LlmError::NotConfigured => unavailable(
                "No language model is configured; write the script by hand or set llm.model",
            ),
            LlmError::InvalidRequest(e) => AppError::BadRequest {
                code: ErrorCode::InvalidRequest,
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

/// A language model's failure, as the script writer reports it.
impl From<ProviderError> for LlmError {
    fn from(e: ProviderError) -> Self {
        match e.kind {
            ErrorKind::RateLimited => LlmError::RateLimited {
                retry_after: e.retry_after,
            },
            _ => LlmError::Unavailable {
                status: e.status,
                message: e.message,
            },
        }
    }
}

/// The script writer. Cheap to share: one per process, in `AppState`.
pub struct ScriptWriter {
    client: LlmClient,
    max_source_chars: usize,
    limits: ScriptLimits,
}

impl ScriptWriter {
    /// `limits` are applied to every script the model writes (usually `tts.max_chars`).
    pub fn new(config: &LlmConfig, limits: ScriptLimits) -> anyhow::Result<Self> {
        Ok(Self {
            client: LlmClient::new(config)?,
            max_source_chars: config.max_source_chars.max(1),
            limits,
        })
    }

    /// Masks these secrets too (the app passes every secret of its config), not only the
    /// model server's key.
    pub fn with_scrubber(mut self, scrub: Scrubber) -> Self {
        self.client = self.client.with_scrubber(scrub);
        self
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.client = self.client.with_retry_policy(retry);
        self
    }

    /// Per-request timeout; config gives whole seconds, tests want less.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.with_timeout(timeout);
        self
    }

    pub fn is_configured(&self) -> bool {
        self.client.is_configured()
    }

    pub fn model(&self) -> &str {
        self.client.model()
    }

    /// Asks the model for a script and checks it; one more try, told what was wrong, when the
    /// first answer is not a valid script.
    #[tracing::instrument(skip_all, fields(model = %self.client.model(), speakers = request.speakers.len(), minutes = request.minutes), err(Display))]
    pub async fn write_script(&self, request: &ScriptRequest) -> Result<ScriptDraft, LlmError> {
        if !self.client.is_configured() {
            return Err(LlmError::NotConfigured);
        }
        validate_request(request).map_err(LlmError::InvalidRequest)?;
        let mut notes = Vec::new();
        let source = self.trim_source(&request.source, &mut notes);
        let names: Vec<&str> = request.speakers.iter().map(|s| s.name.trim()).collect();
        let mut messages = vec![
            Message::new(Role::System, system_prompt(&names)),
            Message::new(Role::User, user_prompt(request, &source)),
        ];
        let schema = JsonSchema {
            name: "podcast_script",
            schema: script_schema(&names),
        };
        let mut usage = Usage::default();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let answer = self.client.chat(&messages, &schema).await?;
            usage.prompt_tokens += answer.prompt_tokens;
            usage.completion_tokens += answer.completion_tokens;
            usage.cost_micros = self
                .client
                .cost_micros(usage.prompt_tokens, usage.completion_tokens);
            match interpret(&answer, &names, &self.limits) {
                Ok(script) => {
                    return Ok(ScriptDraft {
                        script,
                        notes,
                        usage,
                        model: self.client.model().to_string(),
                    });
                }
                Err(problem) if attempt == 1 => {
                    tracing::info!(%problem, "the model's script was not usable; asking again");
                    messages.push(Message::new(
                        Role::Assistant,
                        answer.content.unwrap_or_default(),
                    ));
                    messages.push(Message::new(
                        Role::User,
                        format!(
                            "That answer cannot be used: {problem}. Reply again with the complete, \
                             corrected script as one JSON object in the same shape, and nothing else."
                        ),
                    ));
                }
                Err(problem) => return Err(LlmError::BadOutput { problem, usage }),
            }
        }
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
    fn model_server_failures_become_busy_or_unavailable_with_their_status() {
        let busy = ProviderError::new("llm", ErrorKind::RateLimited, "slow down")
            .with_retry_after(Some(Duration::from_secs(3600)))
            .with_status(429);
        assert!(matches!(
            LlmError::from(busy),
            LlmError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(3600)
        ));
        let refused =
            ProviderError::new("llm", ErrorKind::Auth, "Incorrect API key").with_status(401);
        match LlmError::from(refused) {
            LlmError::Unavailable { status, message } => {
                assert_eq!(status, Some(401));
                assert_eq!(message, "Incorrect API key");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        let unreachable = ProviderError::new("llm", ErrorKind::Network, "cannot connect");
        assert!(matches!(
            LlmError::from(unreachable),
            LlmError::Unavailable { status: None, .. }
        ));
    }
}
