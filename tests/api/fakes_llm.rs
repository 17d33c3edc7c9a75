//! A fake OpenAI-compatible chat server: checks the key and the request like the real API,
//! answers from a script of replies, and records what it was sent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const API_KEY: &str = "sk-fake-llm-key";

/// One scripted answer to a chat request that passed the checks.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    content: Option<String>,
    delay: Option<Duration>,
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl Reply {
    /// 200 with this assistant message; usage 1000 prompt and 500 completion tokens.
    pub fn content(content: impl Into<String>) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            content: Some(content.into()),
            delay: None,
            prompt_tokens: 1000,
            completion_tokens: 500,
        }
    }

    pub fn usage(mut self, prompt_tokens: u64, completion_tokens: u64) -> Self {
        self.prompt_tokens = prompt_tokens;
        self.completion_tokens = completion_tokens;
        self
    }

    /// 429 `rate_limit_exceeded` with one retry header (`retry-after` or `retry-after-ms`).
    pub fn rate_limited(header: &'static str, value: &str) -> Self {
        Self {
            status: 429,
            headers: vec![(header, value.to_string())],
            content: None,
            delay: None,
            prompt_tokens: 0,
            completion_tokens: 0,
        }
    }

    pub fn server_error() -> Self {
        Self {
            status: 500,
            ..Self::rate_limited("x-unused", "")
        }
    }

    /// A 400 whose message quotes the request's `Authorization` header and the key, as
    /// misconfigured gateways do.
    pub fn echo_credentials() -> Self {
        Self {
            status: 400,
            ..Self::rate_limited("x-unused", "")
        }
    }

    /// Answers only after `delay`, so a client timeout fires first.
    pub fn slow(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

#[derive(Default)]
struct Inner {
    reject_json_schema: bool,
    replies: VecDeque<Reply>,
    requests: usize,
    bodies: Vec<Value>,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeLlm {
    /// What `llm.base_url` is set to: `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    inner: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FakeLlm {
    pub async fn start() -> Self {
        let inner: Shared = Arc::default();
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .with_state(inner.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            base_url,
            inner,
            stop: Some(tx),
        }
    }

    /// Like servers that predate structured outputs: `json_schema` is a 400 naming `response_format`.
    pub fn reject_json_schema(&self) {
        self.inner.lock().unwrap().reject_json_schema = true;
    }

    pub fn push(&self, reply: Reply) {
        self.inner.lock().unwrap().replies.push_back(reply);
    }

    /// Every request received, including rejected ones.
    pub fn requests(&self) -> usize {
        self.inner.lock().unwrap().requests
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.inner.lock().unwrap().bodies.clone()
    }

    pub fn last_body(&self) -> Value {
        self.bodies().pop().expect("at least one request")
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// OpenAI's error envelope.
fn error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    (status, [("x-request-id", "req_fake")], axum::Json(body)).into_response()
}

fn invalid(message: &str, param: Option<&str>) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        param,
        None,
    )
}

/// What OpenAI's strict mode demands of a schema: every object closes its properties and
/// requires all of them.
fn strict_schema_problem(node: &Value) -> Option<String> {
    match node {
        Value::Object(map) => {
            if map.get("type") == Some(&json!("object")) {
                if map.get("additionalProperties") != Some(&json!(false)) {
                    return Some(
                        "'additionalProperties' is required to be supplied and to be false".into(),
                    );
                }
                let props: Vec<&String> = map
                    .get("properties")
                    .and_then(Value::as_object)
                    .map(|p| p.keys().collect())
                    .unwrap_or_default();
                let required: Vec<&str> = map
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if let Some(missing) = props.iter().find(|p| !required.contains(&p.as_str())) {
                    return Some(format!(
                        "'required' is required to include every key in properties. Missing '{missing}'."
                    ));
                }
            }
            map.values().find_map(strict_schema_problem)
        }
        Value::Array(items) => items.iter().find_map(strict_schema_problem),
        _ => None,
    }
}

/// The rejection to send back, if the request breaks the API's rules.
fn check(inner: &Inner, headers: &HeaderMap, body: &Value) -> Option<Response> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(format!("Bearer {API_KEY}").as_str()) {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided.",
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        ));
    }
    if body["model"].as_str().is_none_or(str::is_empty) {
        return Some(invalid("you must provide a model parameter", Some("model")));
    }
    let Some(messages) = body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return Some(invalid(
            "'messages' must be a non-empty array",
            Some("messages"),
        ));
    };
    for m in messages {
        let role_ok = matches!(m["role"].as_str(), Some("system" | "user" | "assistant"));
        if !role_ok || !m["content"].is_string() {
            return Some(invalid(
                "each message needs a role and a string content",
                Some("messages"),
            ));
        }
    }
    let format = &body["response_format"];
    match format["type"].as_str() {
        None if format.is_null() => {}
        Some("json_schema") => {
            if inner.reject_json_schema {
                return Some(invalid(
                    "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
                    Some("response_format"),
                ));
            }
            let spec = &format["json_schema"];
            if !spec["name"].is_string() || !spec["schema"].is_object() {
                return Some(invalid(
                    "Missing required parameter: 'response_format.json_schema.name'.",
                    Some("response_format.json_schema"),
                ));
            }
            if spec["strict"] == json!(true)
                && let Some(problem) = strict_schema_problem(&spec["schema"])
            {
                return Some(invalid(
                    &format!("Invalid schema for response_format 'podcast_script': {problem}"),
                    Some("response_format"),
                ));
            }
        }
        Some("json_object") => {
            let mentions_json = messages.iter().any(|m| {
                m["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase()
                    .contains("json")
            });
            if !mentions_json {
                return Some(invalid(
                    "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
                    Some("messages"),
                ));
            }
        }
        _ => {
            return Some(invalid(
                "Invalid value for 'response_format.type'.",
                Some("response_format.type"),
            ));
        }
    }
    None
}

async fn chat(State(inner): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let reply = {
        let mut inner = inner.lock().unwrap();
        inner.requests += 1;
        let Ok(body) = parsed else {
            return invalid("We could not parse the JSON body of your request.", None);
        };
        inner.bodies.push(body.clone());
        if let Some(rejection) = check(&inner, &headers, &body) {
            return rejection;
        }
        inner.replies.pop_front()
    };
    let Some(reply) = reply else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the fake has no reply left",
            "server_error",
            None,
            None,
        );
    };
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    let mut response = match (reply.status, reply.content) {
        (200, Some(content)) => {
            let body = json!({
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1_767_225_600,
                "model": "fake-model",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": null},
                    "logprobs": null,
                    "finish_reason": "stop"
                }],
                "usage": {
                    "prompt_tokens": reply.prompt_tokens,
                    "completion_tokens": reply.completion_tokens,
                    "total_tokens": reply.prompt_tokens + reply.completion_tokens
                }
            });
            (
                StatusCode::OK,
                [("x-request-id", "req_fake")],
                axum::Json(body),
            )
                .into_response()
        }
        (429, _) => error(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit reached for requests",
            "requests",
            None,
            Some("rate_limit_exceeded"),
        ),
        (400, _) => {
            let auth = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            invalid(
                &format!("Bad request for key {API_KEY}. Received Authorization: {auth}"),
                None,
            )
        }
        (status, _) => error(
            StatusCode::from_u16(status).unwrap(),
            "The server had an error while processing your request.",
            "server_error",
            None,
            None,
        ),
    };
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// A valid script answer for these speakers: two chapters, alternating lines.
pub fn script_json(speakers: &[&str]) -> String {
    let line = |i: usize| json!({"speaker": speakers[i % speakers.len()], "text": format!("Line number {i}.")});
    json!({"chapters": [
        {"title": "Opening", "lines": [line(0), line(1)]},
        {"title": "Closing", "lines": [line(2), line(3)]},
    ]})
    .to_string()
}
