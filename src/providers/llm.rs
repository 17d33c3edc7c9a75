//! A client for any OpenAI-compatible `/chat/completions` server, on the providers' shared
//! HTTP base: the one retry policy, the one Retry-After parser, scrubbed messages.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::http::{HttpBase, Reply, status_kind};
use super::{ErrorKind, ProviderError, RetryPolicy, Scrubber};
use crate::config::{LlmConfig, RetryConfig, Secret};

const ID: &str = "llm";
const DISPLAY: &str = "The language model server";

/// Someone waits on every chat call, so backoff stays short, and a server asking for a pause
/// longer than `max_retry_after_ms` is reported busy at once.
const RETRY: RetryConfig = RetryConfig {
    max_attempts: 1,
    base_delay_ms: 500,
    max_delay_ms: 8_000,
    max_retry_after_ms: 30_000,
};

/// Who says a message in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// The JSON shape the answer must have, for servers that support structured output.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonSchema<'a> {
    pub name: &'a str,
    /// A strict schema: every object closes its properties and requires all of them.
    pub schema: Value,
}

/// One successful chat call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub content: Option<String>,
    pub refusal: Option<String>,
    /// `length` when the answer was cut off at the token limit.
    pub finish_reason: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
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

/// What one HTTP exchange gave, when it was not a failure to retry or report.
enum Exchange {
    Answer(Answer),
    /// The server does not understand the `response_format` sent.
    FormatRejected,
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

#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// The language model client. Cheap to share: one per process.
pub struct LlmClient {
    http: HttpBase,
    endpoint: String,
    api_key: Option<Secret>,
    model: String,
    configured: bool,
    price_input_per_1m_micros: u64,
    price_output_per_1m_micros: u64,
    /// Set once a server rejects `json_schema`, so later calls skip the doomed first try.
    schema_unsupported: AtomicBool,
}

impl LlmClient {
    pub fn new(config: &LlmConfig) -> anyhow::Result<Self> {
        let default_base = LlmConfig::default().base_url;
        let has_key = config
            .api_key
            .as_ref()
            .is_some_and(|k| !k.expose().trim().is_empty());
        let configured = !config.model.trim().is_empty()
            && (has_key || config.base_url.trim_end_matches('/') != default_base);
        let retry = RetryPolicy::from_config(&RetryConfig {
            max_attempts: config.max_retries.saturating_add(1),
            ..RETRY
        })
        .giving_up_on_long_waits();
        let http = HttpBase::new(
            ID,
            DISPLAY,
            retry,
            config.timeout_s.max(1).saturating_mul(1000),
            // No gate of its own: the server answers 429 when it is too busy.
            Semaphore::MAX_PERMITS,
            Scrubber::new(config.api_key.iter()),
        )?;
        Ok(Self {
            http,
            endpoint: format!("{}/chat/completions", config.base_url.trim_end_matches('/')),
            api_key: config.api_key.clone().filter(|_| has_key),
            model: config.model.trim().to_string(),
            configured,
            price_input_per_1m_micros: config.price_input_per_1m_micros,
            price_output_per_1m_micros: config.price_output_per_1m_micros,
            schema_unsupported: AtomicBool::new(false),
        })
    }

    /// Masks these secrets too (the app passes every secret of its config), not only this
    /// client's own key.
    pub fn with_scrubber(mut self, scrub: Scrubber) -> Self {
        self.http.scrub = scrub;
        self
    }

    /// Replaces the retry policy (tests make backoff short). Someone waits on every call, so
    /// a long Retry-After still ends it at once.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.http.retry = retry.giving_up_on_long_waits();
        self
    }

    /// Per-attempt timeout, at most `llm.timeout_s`; config gives whole seconds, tests want less.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.http.timeout = timeout;
        self
    }

    /// A model, and a key or a server of the operator's own.
    pub fn is_configured(&self) -> bool {
        self.configured
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// Micro-dollars for these tokens, rounded up: a call that cost anything never records as free.
    pub fn cost_micros(&self, prompt_tokens: u64, completion_tokens: u64) -> u64 {
        let total = u128::from(prompt_tokens) * u128::from(self.price_input_per_1m_micros)
            + u128::from(completion_tokens) * u128::from(self.price_output_per_1m_micros);
        u64::try_from(total.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }

    /// One answer shaped by `schema`: asked for with strict structured output first, stepping
    /// down to JSON mode and then to plain text when the server rejects a mode. Busy, failing
    /// or slow servers are retried under the shared policy.
    #[tracing::instrument(skip_all, fields(provider = ID, model = %self.model), err(Display))]
    pub async fn chat(
        &self,
        messages: &[Message],
        schema: &JsonSchema<'_>,
    ) -> Result<Answer, ProviderError> {
        let started = std::time::Instant::now();
        let result = self.chat_uncounted(messages, schema).await;
        let kind = crate::monitor::series::ProviderKind::Llm;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind.code().as_str(),
        };
        crate::monitor::metrics::provider_call(ID, kind, outcome, started.elapsed());
        if let Ok(a) = &result {
            let cost = self.cost_micros(a.prompt_tokens, a.completion_tokens);
            crate::monitor::metrics::provider_usage(ID, kind, 0, cost);
        }
        result
    }

    async fn chat_uncounted(
        &self,
        messages: &[Message],
        schema: &JsonSchema<'_>,
    ) -> Result<Answer, ProviderError> {
        if !self.configured {
            return Err(self.http.error(
                ErrorKind::Unavailable,
                "No language model is configured (llm.model)",
            ));
        }
        let mut format = if self.schema_unsupported.load(Ordering::Relaxed) {
            Format::JsonObject
        } else {
            Format::JsonSchema
        };
        loop {
            let body = request_body(&self.model, messages, format, schema);
            match self.http.call(|| self.attempt(&body)).await? {
                Exchange::Answer(answer) => return Ok(answer),
                Exchange::FormatRejected => match format.weaker() {
                    Some(weaker) => {
                        tracing::info!(?format, "the server rejects this response_format");
                        if format == Format::JsonSchema {
                            self.schema_unsupported.store(true, Ordering::Relaxed);
                        }
                        format = weaker;
                    }
                    None => {
                        return Err(self
                            .http
                            .error(ErrorKind::Rejected, "the server rejects the request")
                            .with_status(StatusCode::BAD_REQUEST.as_u16()));
                    }
                },
            }
        }
    }

    /// One HTTP exchange; failures worth retrying are errors of a retryable kind.
    async fn attempt(&self, body: &Value) -> Result<Exchange, ProviderError> {
        let mut request = self.http.client.post(&self.endpoint).json(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        let reply = self.http.send(request).await?;
        if reply.status.is_success() {
            return self.answer(&reply).map(Exchange::Answer);
        }
        let message = error_message(&reply.body);
        let lower = message.to_lowercase();
        if matches!(
            reply.status,
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
        ) && ["response_format", "json_schema", "json_object"]
            .iter()
            .any(|k| lower.contains(k))
        {
            return Ok(Exchange::FormatRejected);
        }
        Err(self
            .http
            .error(status_kind(reply.status), message)
            .with_retry_after(reply.retry_after())
            .with_status(reply.status.as_u16()))
    }

    fn answer(&self, reply: &Reply) -> Result<Answer, ProviderError> {
        let failed = |message: String| {
            self.http
                .error(ErrorKind::Failed, message)
                .with_status(reply.status.as_u16())
        };
        let parsed: ChatResponse = serde_json::from_slice(&reply.body)
            .map_err(|e| failed(format!("not a chat completion response: {e}")))?;
        let usage = parsed.usage.unwrap_or_default();
        let Some(choice) = parsed.choices.into_iter().next() else {
            return Err(failed("the response has no choices".into()));
        };
        Ok(Answer {
            content: choice.message.content,
            refusal: choice.message.refusal,
            finish_reason: choice.finish_reason,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        })
    }
}

fn request_body(
    model: &str,
    messages: &[Message],
    format: Format,
    schema: &JsonSchema<'_>,
) -> Value {
    let mut body = json!({ "model": model, "messages": messages });
    let response_format = match format {
        Format::JsonSchema => Some(json!({
            "type": "json_schema",
            "json_schema": {"name": schema.name, "strict": true, "schema": schema.schema}
        })),
        Format::JsonObject => Some(json!({"type": "json_object"})),
        Format::Plain => None,
    };
    if let Some(rf) = response_format {
        body["response_format"] = rf;
    }
    body
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
                LlmClient::new(&c).unwrap().is_configured(),
                expected,
                "{c:?}"
            );
        }
    }

    #[test]
    fn retries_follow_the_configured_count_on_the_shared_policy() {
        let mut c = config("http://127.0.0.1:1/v1", None, "m");
        c.max_retries = 4;
        let client = LlmClient::new(&c).unwrap();
        assert_eq!(
            client.http.retry.max_attempts, 5,
            "one call and four retries"
        );
        assert_eq!(client.http.retry.max_retry_after, Duration::from_secs(30));
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
    fn cost_is_rounded_up_to_a_micro_dollar() {
        let mut c = config("http://127.0.0.1:1/v1", None, "m");
        c.price_input_per_1m_micros = 150_000;
        c.price_output_per_1m_micros = 600_000;
        let client = LlmClient::new(&c).unwrap();
        assert_eq!(client.cost_micros(1_000_000, 0), 150_000);
        assert_eq!(client.cost_micros(1000, 500), 150 + 300);
        assert_eq!(client.cost_micros(1, 0), 1);
        assert_eq!(client.cost_micros(0, 0), 0);
    }

    #[test]
    fn each_output_mode_asks_for_its_response_format() {
        let schema = JsonSchema {
            name: "podcast_script",
            schema: json!({"type": "object"}),
        };
        let messages = [Message::new(Role::User, "hi")];
        let strict = request_body("m", &messages, Format::JsonSchema, &schema);
        assert_eq!(strict["response_format"]["type"], "json_schema");
        assert_eq!(
            strict["response_format"]["json_schema"]["name"],
            "podcast_script"
        );
        assert_eq!(strict["messages"][0]["role"], "user");
        let object = request_body("m", &messages, Format::JsonObject, &schema);
        assert_eq!(object["response_format"]["type"], "json_object");
        let plain = request_body("m", &messages, Format::Plain, &schema);
        assert!(plain.get("response_format").is_none());
    }
}
