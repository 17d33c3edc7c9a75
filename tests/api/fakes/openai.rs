//! A fake OpenAI-compatible speech server: `POST /v1/audio/speech` with Bearer keys.

use std::sync::Arc;
use std::time::Duration;

use aimake::config::{Config, Secret};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Control, Failure, GARBAGE, Recorded, Server, mp3, pcm, speech_ms, wav};

const KEY: &str = "sk-test-0123456789abcdef";
const MAX_INPUT_CHARS: usize = 4096;
const VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
];

pub struct FakeOpenAi {
    control: Arc<Control>,
    server: Server,
}

impl FakeOpenAi {
    pub async fn start() -> Self {
        let control = Arc::new(Control::default());
        let router = Router::new()
            .route("/v1/audio/speech", post(speech))
            .with_state(control.clone());
        Self {
            control,
            server: Server::start(router).await,
        }
    }

    /// What `providers.openai.base_url` should be.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.server.addr)
    }

    pub fn api_key(&self) -> &'static str {
        KEY
    }

    /// Points the OpenAI provider at this fake, with the right key and `tts-1`.
    pub fn configure(&self, config: &mut Config) {
        let c = &mut config.providers.openai;
        c.base_url = self.base_url();
        c.api_key = Some(Secret::new(KEY));
        c.model = "tts-1".into();
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.control.requests()
    }

    pub fn fail_next(&self, n: usize, failure: Failure) {
        self.control.fail_next(n, failure);
    }

    /// Answers as usual again, whatever failures were still queued.
    pub fn recover(&self) {
        self.control.recover();
    }

    /// How long each synthesis takes from now on.
    pub fn set_delay(&self, delay: Duration) {
        self.control.set_delay(delay);
    }

    pub fn max_in_flight(&self) -> usize {
        self.control.max_in_flight()
    }
}

fn error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    (status, axum::Json(body)).into_response()
}

fn invalid(message: &str, param: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        Some(param),
        None,
    )
}

async fn speech(
    State(control): State<Arc<Control>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    control.record(&method, &uri, &headers, &body);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(KEY) {
        // The real message quotes part of the key, which clients must not pass on.
        let shown = bearer.map_or("none".to_string(), |k| {
            format!(
                "{}***{}",
                &k[..k.len().min(5)],
                &k[k.len().saturating_sub(2)..]
            )
        });
        return error(
            StatusCode::UNAUTHORIZED,
            &format!(
                "Incorrect API key provided: {shown}. You can find your API key in your account settings."
            ),
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        );
    }
    let mut response = match control.next_failure() {
        Some(Failure::EchoCredentials) => {
            let auth = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            return invalid(
                &format!(
                    "The gateway refused the request (key {KEY}). Received headers: authorization: {auth}"
                ),
                "headers",
            );
        }
        Some(failure) => return fail(&control, failure).await,
        None => synthesize(&control, &body).await,
    };
    let h = response.headers_mut();
    h.insert(
        "x-request-id",
        ulid::Ulid::generate().to_string().parse().unwrap(),
    );
    h.insert("openai-version", "2020-10-01".parse().unwrap());
    h.insert("openai-processing-ms", "12".parse().unwrap());
    h.insert("x-ratelimit-limit-requests", "500".parse().unwrap());
    h.insert("x-ratelimit-remaining-requests", "499".parse().unwrap());
    h.insert("x-ratelimit-reset-requests", "120ms".parse().unwrap());
    response
}

async fn fail(control: &Control, failure: Failure) -> Response {
    match failure {
        Failure::RateLimited { retry_after_s } => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached for requests per min. Please try again later.",
                "requests",
                None,
                Some("rate_limit_exceeded"),
            );
            if let Some(s) = retry_after_s {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, s.to_string().parse().unwrap());
            }
            r.headers_mut()
                .insert("x-ratelimit-remaining-requests", "0".parse().unwrap());
            r
        }
        Failure::QuotaExceeded => error(
            StatusCode::TOO_MANY_REQUESTS,
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            None,
            Some("insufficient_quota"),
        ),
        Failure::ServerError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
            None,
        ),
        Failure::Hang => {
            let (_guard, _) = control.enter();
            std::future::pending::<()>().await;
            unreachable!()
        }
        Failure::GarbageAudio => ([(header::CONTENT_TYPE, "audio/mpeg")], GARBAGE).into_response(),
        Failure::EchoCredentials => unreachable!("answered with the request's headers"),
    }
}

async fn synthesize(control: &Control, body: &Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return invalid("We could not parse the JSON body of your request.", "body");
    };
    let text = |k: &str| req.get(k).and_then(Value::as_str);
    let Some(model) = text("model") else {
        return invalid("you must provide a model parameter", "model");
    };
    let Some(input) = text("input") else {
        return invalid("Missing required parameter: 'input'.", "input");
    };
    let Some(voice) = text("voice") else {
        return invalid("Missing required parameter: 'voice'.", "voice");
    };
    if input.chars().count() > MAX_INPUT_CHARS {
        return invalid(
            &format!("String should have at most {MAX_INPUT_CHARS} characters"),
            "input",
        );
    }
    if !VOICES.contains(&voice) {
        return invalid(&format!("Input should be {}", VOICES.join(", ")), "voice");
    }
    if model.starts_with("tts-1") && text("stream_format") == Some("sse") {
        return invalid(
            "stream_format 'sse' is not supported for this model",
            "stream_format",
        );
    }
    if let Some(speed) = req.get("speed") {
        match speed.as_f64() {
            Some(s) if (0.25..=4.0).contains(&s) => {}
            _ => return invalid("speed must be between 0.25 and 4.0", "speed"),
        }
    }
    let (_guard, _) = control.enter();
    control.work().await;
    let ms = speech_ms(input);
    let (content_type, audio) = match text("response_format").unwrap_or("mp3") {
        "mp3" => ("audio/mpeg", mp3(ms)),
        "wav" => ("audio/wav", wav(ms, 24_000)),
        "pcm" => ("audio/pcm", pcm(ms, 24_000)),
        other => {
            return invalid(
                &format!("response_format '{other}' is not supported by this fake"),
                "response_format",
            );
        }
    };
    ([(header::CONTENT_TYPE, content_type)], audio).into_response()
}
