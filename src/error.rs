//! `AppError`: every failure a handler can return, mapped to the JSON error shape in docs/api.md.

use axum::Json;
use axum::extract::FromRequest;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

pub use crate::error_code::ErrorCode;
use crate::providers::{ErrorKind, ProviderError};

pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400 with a specific code (`invalid_request`, `text_too_long`, …) and optional field details.
    #[error("{message}")]
    BadRequest {
        code: ErrorCode,
        message: String,
        details: Option<Value>,
    },
    #[error("{0}")]
    Unauthenticated(String),
    /// The same answer for an unknown email and a wrong password.
    #[error("Wrong email or password")]
    InvalidCredentials,
    #[error("{message}")]
    Forbidden { code: ErrorCode, message: String },
    /// Also answers for other users' resources, so their existence is never revealed.
    #[error("not found")]
    NotFound,
    /// 404 for something a request named that does not exist (a `/v1` model), with its own
    /// code and message and the field that named it in `details`.
    #[error("{message}")]
    Unknown {
        code: ErrorCode,
        message: String,
        details: Option<Value>,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    TooMany {
        code: ErrorCode,
        message: String,
        retry_after_s: u64,
    },
    #[error("{message}")]
    Unavailable { code: ErrorCode, message: String },
    /// The request body stopped arriving (`server.body_idle_timeout_s`).
    #[error("The request body stopped arriving")]
    BodyTimeout,
    /// Infrastructure failures: logged with the request id, answered with an opaque 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::BadRequest {
            code: ErrorCode::InvalidRequest,
            message: message.into(),
            details: None,
        }
    }

    /// A 400 about one input field; `details` names the field, as clients expect.
    pub fn field(code: ErrorCode, name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::BadRequest {
            code,
            details: Some(serde_json::json!({ name: message.clone() })),
            message,
        }
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthenticated(_) | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound | Self::Unknown { .. } => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest { code, .. }
            | Self::Unknown { code, .. }
            | Self::Forbidden { code, .. }
            | Self::TooMany { code, .. }
            | Self::Unavailable { code, .. } => *code,
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::InvalidCredentials => ErrorCode::InvalidCredentials,
            Self::NotFound => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            Self::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            Self::BodyTimeout => ErrorCode::BodyTimeout,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Refusals a hostile client can make by the thousand (no credentials, over a limit, a
    /// forged origin, a stalled body): the log summarises them per client instead of
    /// writing a line for each.
    fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Unauthenticated(_)
                | Self::TooMany { .. }
                | Self::BodyTimeout
                | Self::Unavailable {
                    code: ErrorCode::Overloaded,
                    ..
                }
                | Self::Forbidden {
                    code: ErrorCode::CsrfRejected,
                    ..
                }
        )
    }

    /// What the client is told: an infrastructure failure's cause stays in the log.
    pub fn public_message(&self) -> String {
        match self {
            Self::NotFound => "Not found".into(),
            Self::PayloadTooLarge => "The request body is too large".into(),
            Self::Internal(_) => "Something went wrong on the server".into(),
            other => other.to_string(),
        }
    }
}

impl From<crate::storage::StorageError> for AppError {
    fn from(e: crate::storage::StorageError) -> Self {
        match e {
            crate::storage::StorageError::NotFound(_) => Self::NotFound,
            crate::storage::StorageError::Other(e) => Self::Internal(e),
        }
    }
}

/// Providers describe what went wrong (`ErrorKind`); the API decides what that answers: a
/// request the provider refused is the client's to fix (400; an upload too large 413, in a
/// format it cannot read 415), a rate limit is passed on with its wait (429), anything else
/// means the provider is unavailable for now (503).
impl From<ProviderError> for AppError {
    fn from(e: ProviderError) -> Self {
        match e.kind {
            ErrorKind::UnknownVoice | ErrorKind::Rejected => AppError::BadRequest {
                code: e.code(),
                message: e.message,
                details: None,
            },
            ErrorKind::TooLarge => AppError::PayloadTooLarge,
            ErrorKind::UnsupportedFormat => AppError::UnsupportedMediaType(e.message),
            ErrorKind::RateLimited => AppError::TooMany {
                code: e.code(),
                message: e.message,
                retry_after_s: e.retry_after.map_or(1, |d| d.as_secs().max(1)),
            },
            _ => AppError::Unavailable {
                code: e.code(),
                message: e.message,
            },
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: ErrorCode,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Value>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let problem = match &self {
            Self::Internal(e) => {
                let detail = format!("{e:#}");
                // The request span carries method, path and request id.
                tracing::error!(error = detail.as_str(), "request failed");
                Some(detail)
            }
            _ if status.is_server_error() => Some(self.public_message()),
            _ => None,
        };
        let details = match &self {
            Self::BadRequest { details, .. } | Self::Unknown { details, .. } => details.as_ref(),
            _ => None,
        };
        let body = Body {
            error: Inner {
                code: self.code(),
                message: self.public_message(),
                details,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Self::TooMany { retry_after_s, .. } = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
        }
        if self.is_refusal() {
            response.extensions_mut().insert(Refusal(self.code()));
        } else if let Some(detail) = problem {
            // For the error report the edge sends, when reports are on.
            response
                .extensions_mut()
                .insert(ServerProblem::Error(detail.into()));
        }
        response
    }
}

/// What an answer's 5xx was about, for the report: left in the response's extensions by
/// `AppError` and the panic catcher.
#[derive(Debug, Clone)]
pub enum ServerProblem {
    /// A handler panicked with this message.
    Panic(std::sync::Arc<str>),
    /// An error's description (for infrastructure errors, the whole chain).
    Error(std::sync::Arc<str>),
}

/// Marks an answer as a refusal (see [`AppError::is_refusal`]) with its error code, for the
/// log line at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal(pub ErrorCode);

/// The owner-scoped lookup rule in one place: a query that includes the owner
/// (`WHERE id = ? AND user_id = ?`) finds nothing for another user's id, and that answers 404,
/// exactly like an id that never existed.
pub trait OrNotFound<T> {
    fn or_not_found(self) -> Result<T>;
}

impl<T> OrNotFound<T> for Option<T> {
    fn or_not_found(self) -> Result<T> {
        self.ok_or(AppError::NotFound)
    }
}

/// A JSON body extractor whose rejections use the API's error shape.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct AppJson<T>(pub T);

impl<T: Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType(
                "Expected a JSON body (Content-Type: application/json)".into(),
            ),
            JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge
            }
            other => Self::BadRequest {
                code: ErrorCode::InvalidRequest,
                message: other.body_text(),
                details: None,
            },
        }
    }
}

/// `{"error": …}` for a status and code, for places that build responses without an `AppError`.
pub fn error_body(code: ErrorCode, message: &str) -> Value {
    json!({ "error": { "code": code, "message": message } })
}

/// The same error in OpenAI's envelope, which every `/v1` answer uses:
/// `{"error": {"message", "type", "param", "code"}}`. `code` is OpenAI's where it has one
/// (`invalid_api_key`, `rate_limit_exceeded`, `insufficient_quota`, `model_not_found`), else
/// aimake's own; `type` follows the status as OpenAI's does; `param` is the field `details`
/// names first.
pub fn openai_error_body(
    status: StatusCode,
    code: &str,
    message: &str,
    details: Option<&Value>,
) -> Value {
    let (kind, code) = match code {
        "unauthenticated" | "invalid_credentials" => ("invalid_request_error", "invalid_api_key"),
        "quota_exceeded" => ("insufficient_quota", "insufficient_quota"),
        "rate_limited" => ("requests", "rate_limit_exceeded"),
        _ if status == StatusCode::TOO_MANY_REQUESTS => ("requests", code),
        _ if status.is_server_error() => ("server_error", code),
        _ => ("invalid_request_error", code),
    };
    let param = details
        .and_then(Value::as_object)
        .and_then(|fields| fields.keys().next());
    json!({ "error": { "message": message, "type": kind, "param": param, "code": code } })
}

/// The error code for an HTTP status, for errors raised below the handlers (extractor
/// rejections, body limits, the HTTP parser), which know only their status.
pub fn code_for_status(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::InvalidRequest,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::REQUEST_TIMEOUT => ErrorCode::BodyTimeout,
        StatusCode::CONFLICT => ErrorCode::Conflict,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::URI_TOO_LONG => ErrorCode::UriTooLong,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::RANGE_NOT_SATISFIABLE => ErrorCode::RangeNotSatisfiable,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ErrorCode::HeadersTooLarge,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::InvalidRequest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(e: AppError) -> (StatusCode, Value, Option<String>) {
        let resp = e.into_response();
        let status = resp.status();
        let retry = resp
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap(), retry)
    }

    #[tokio::test]
    async fn internal_errors_never_leak_their_cause() {
        let (status, body, _) = body_of(AppError::Internal(anyhow::anyhow!(
            "disk /secret/path full"
        )))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("/secret/path"));
    }

    #[tokio::test]
    async fn rate_limits_carry_retry_after_and_details_are_kept() {
        let (status, body, retry) = body_of(AppError::TooMany {
            code: ErrorCode::RateLimited,
            message: "Too many requests".into(),
            retry_after_s: 12,
        })
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body["error"]["code"], "rate_limited");
        assert_eq!(retry.as_deref(), Some("12"));

        let (status, body, _) = body_of(AppError::BadRequest {
            code: ErrorCode::TextTooLong,
            message: "Text is too long".into(),
            details: Some(json!({"text": "at most 10 characters"})),
        })
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["details"]["text"], "at most 10 characters");
    }

    #[test]
    fn openai_envelopes_carry_openai_s_types_and_codes_and_the_field_as_param() {
        let body = |status: u16, code: &str, details: Option<Value>| {
            let status = StatusCode::from_u16(status).unwrap();
            openai_error_body(status, code, "m", details.as_ref())["error"].clone()
        };
        let e = body(401, "unauthenticated", None);
        assert_eq!(
            (
                e["type"].as_str(),
                e["code"].as_str(),
                e["message"].as_str()
            ),
            (
                Some("invalid_request_error"),
                Some("invalid_api_key"),
                Some("m")
            )
        );
        assert!(e["param"].is_null());
        let fields = |e: &Value, names: &[&str]| -> Vec<String> {
            names
                .iter()
                .map(|n| e[*n].as_str().unwrap_or("null").to_string())
                .collect()
        };
        let e = body(429, "rate_limited", None);
        assert_eq!(
            fields(&e, &["type", "code"]),
            ["requests", "rate_limit_exceeded"]
        );
        let e = body(429, "quota_exceeded", None);
        assert_eq!(
            fields(&e, &["type", "code"]),
            ["insufficient_quota", "insufficient_quota"]
        );
        let e = body(400, "text_too_long", Some(json!({"input": "too long"})));
        assert_eq!(
            fields(&e, &["type", "code", "param"]),
            ["invalid_request_error", "text_too_long", "input"]
        );
        let e = body(404, "model_not_found", Some(json!({"model": "no"})));
        assert_eq!(fields(&e, &["code", "param"]), ["model_not_found", "model"]);
        let e = body(503, "provider_timeout", None);
        assert_eq!(
            fields(&e, &["type", "code"]),
            ["server_error", "provider_timeout"]
        );
    }

    #[test]
    fn provider_errors_map_to_api_errors_with_their_code() {
        let e: AppError = ProviderError::new(
            "elevenlabs",
            ErrorKind::Auth,
            "ElevenLabs rejected the API key",
        )
        .into();
        assert_eq!(e.code(), "provider_auth");
        assert_eq!(e.status_code(), 503);
        let e: AppError = ProviderError::new("local", ErrorKind::UnknownVoice, "no").into();
        assert_eq!(e.status_code(), 400);
        let e: AppError = ProviderError::new("openai", ErrorKind::RateLimited, "slow down")
            .with_retry_after(Some(std::time::Duration::from_secs(7)))
            .into();
        assert_eq!(e.status_code(), 429);
    }
}
