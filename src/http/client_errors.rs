//! `POST /api/client-errors`: the web app's uncaught errors, logged, counted and forwarded to
//! the error reports when they are on. Anyone may report, signed in or not, within a small
//! per-IP budget and a small body.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde::Deserialize;

use super::perimeter::ClientIp;
use super::{HttpState, REQUEST_ID};
use crate::auth::AuthUser;
use crate::error::{AppError, AppJson, ErrorCode, Result};
use crate::ops::error_reports::{ClientError, page_path};

/// Largest report accepted, in bytes (413 beyond): a message and a stack trace, not a page.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub fn router() -> Router<HttpState> {
    Router::new().route(
        "/api/client-errors",
        post(create).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
    )
}

/// Reports received since start; the one place that counts them.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn total(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A report within its client IP's budget (`limits.client_errors_per_minute`). First among
/// the handler's arguments, so a refused report's body is never read.
struct ReportBudget;

impl FromRequestParts<HttpState> for ReportBudget {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, AppError> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|never| match never {});
        state.limits.check_client_error(ip)?;
        Ok(Self)
    }
}

/// What the web app sends about one uncaught error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    message: String,
    #[serde(default)]
    stack: Option<String>,
    /// The page's path; a query string or fragment is dropped here too.
    path: String,
    #[serde(default)]
    user_agent: Option<String>,
    /// The web app's build.
    #[serde(default)]
    release: Option<String>,
}

/// Not instrumented: its warning then sits in the request's span, whose request id, route,
/// client address and user id the log line carries.
async fn create(
    _: ReportBudget,
    State(http): State<HttpState>,
    user: Option<AuthUser>,
    headers: HeaderMap,
    AppJson(report): AppJson<Report>,
) -> Result<StatusCode> {
    if report.message.trim().is_empty() {
        return Err(AppError::field(
            ErrorCode::InvalidRequest,
            "message",
            "The error's message is missing",
        ));
    }
    if !report.path.starts_with('/') {
        return Err(AppError::field(
            ErrorCode::InvalidRequest,
            "path",
            "The page's path must start with /",
        ));
    }
    http.client_errors.add();
    let path = page_path(&report.path);
    tracing::warn!(
        error = http.scrub.message(&report.message),
        path = http.scrub.clean(&path),
        release = report.release.as_deref().map(|r| http.scrub.message(r)),
        "web app error"
    );
    if let Some(reports) = &http.reports {
        let request_id = headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        reports.client_error(
            &ClientError {
                message: &report.message,
                stack: report.stack.as_deref(),
                path: &path,
                user_agent: report.user_agent.as_deref(),
                release: report.release.as_deref(),
            },
            request_id,
            user.map(|u| u.id),
        );
    }
    Ok(StatusCode::NO_CONTENT)
}
