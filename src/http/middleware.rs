//! Cross-cutting request handling: request ids, one log line per request, panics as JSON 500s.
//! The log line names the route pattern, never the concrete URL, and no header: ids in paths,
//! cookies and tokens stay out of the log.

use std::any::Any;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Response, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing::Instrument;

use super::REQUEST_ID;

/// Request ids are ULIDs like every other id, so they sort by time in the logs.
#[derive(Clone, Copy)]
pub struct MakeUlidRequestId;

impl MakeRequestId for MakeUlidRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&ulid::Ulid::generate().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// Runs the request inside a span (method, matched route, request id) and logs it once at the end.
pub async fn log_request(req: Request, next: Next) -> axum::response::Response {
    let start = Instant::now();
    let method = req.method().clone();
    // The route pattern, not the concrete path: ids and tokens stay out of the log.
    let route = req.extensions().get::<MatchedPath>().map_or_else(
        || fallback_label(req.uri().path()),
        |p| p.as_str().to_string(),
    );
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let client_ip = req
        .extensions()
        .get::<super::perimeter::ClientIp>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    // `user_id` is filled in by the authentication extractors.
    let span = tracing::info_span!(
        "request",
        %method,
        route,
        request_id,
        client_ip,
        user_id = tracing::field::Empty
    );
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let duration_ms = start.elapsed().as_micros() as f64 / 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, duration_ms, "request");
        } else {
            tracing::info!(status, duration_ms, "request");
        }
    });
    response
}

/// Unmatched paths are the SPA's: log them as such rather than echo arbitrary URLs.
fn fallback_label(path: &str) -> String {
    if path.starts_with("/assets/") {
        "/assets/*".into()
    } else {
        "spa".into()
    }
}

pub fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(crate::error::error_body(
            "internal",
            "Something went wrong on the server",
        )),
    )
        .into_response()
}
