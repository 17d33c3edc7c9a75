//! `/api/admin/notifiers` and `/api/admin/alerts/test`: the configured alert notifiers with
//! their record, and a test notification through them, for admins only.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::HttpState;
use super::extract::AdminUser;
use crate::error::{AppError, AppJson, ErrorCode, Result};
use crate::ops::notify::UnknownNotifier;
use crate::state::AppState;

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/api/admin/notifiers", get(list))
        .route("/api/admin/alerts/test", post(test))
}

impl From<UnknownNotifier> for AppError {
    fn from(e: UnknownNotifier) -> Self {
        AppError::BadRequest {
            code: ErrorCode::UnknownNotifier,
            message: e.to_string(),
            details: None,
        }
    }
}

#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<AppState>,
    _: AdminUser,
) -> Result<axum::Json<serde_json::Value>> {
    Ok(axum::Json(
        serde_json::json!({ "notifiers": state.notifiers.status() }),
    ))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestRequest {
    /// One notifier by name; every notifier when absent.
    #[serde(default)]
    notifier: Option<String>,
}

/// Waits for the deliveries and answers 200 with each outcome: a failed delivery is the test's
/// result, not a failed request. Retries can outlast the request timeout; then the deliveries
/// go on in the background and the answer is 202 (their outcome shows in the notifier list).
/// Each test spends the admin's creation budget, so a held-down button cannot flood a channel.
#[tracing::instrument(skip_all)]
async fn test(
    State(state): State<AppState>,
    State(http): State<HttpState>,
    admin: AdminUser,
    body: std::result::Result<Option<AppJson<TestRequest>>, AppError>,
) -> Result<Response> {
    http.limits.check_user(admin.id)?;
    let body = body?.map(|AppJson(b)| b).unwrap_or_default();
    let name = body.notifier;
    if let Some(name) = &name
        && !state.notifiers.names().any(|n| n == name)
    {
        return Err(UnknownNotifier(name.clone()).into());
    }
    let notifiers = state.notifiers.clone();
    let public_url = state.links.public_url().to_string();
    let mut deliveries =
        tokio::spawn(async move { notifiers.test(name.as_deref(), &public_url).await });
    // Leaves the answer time to be written before the request's own timeout.
    let wait = Duration::from_secs(
        state
            .config
            .server
            .request_timeout_s
            .saturating_sub(2)
            .max(1),
    );
    match tokio::time::timeout(wait, &mut deliveries).await {
        Ok(joined) => {
            let results = joined.map_err(anyhow::Error::from)??;
            Ok(axum::Json(serde_json::json!({ "results": results })).into_response())
        }
        Err(_) => Ok((
            StatusCode::ACCEPTED,
            axum::Json(serde_json::json!({ "results": null, "pending": true })),
        )
            .into_response()),
    }
}
