//! `/api/admin/notifiers` and `/api/admin/alerts/test`: the configured alert notifiers with
//! their record, and a test notification through them, for admins only.

use axum::Router;
use axum::extract::State;
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

/// Waits for the deliveries (bounded by each notifier's timeout and retries) and answers 200
/// with each outcome: a failed delivery is the test's result, not a failed request. Each test
/// spends the admin's creation budget, so a held-down button cannot flood a channel.
#[tracing::instrument(skip_all)]
async fn test(
    State(state): State<AppState>,
    State(http): State<HttpState>,
    admin: AdminUser,
    body: std::result::Result<Option<AppJson<TestRequest>>, AppError>,
) -> Result<axum::Json<serde_json::Value>> {
    http.limits.check_user(admin.id)?;
    let body = body?.map(|AppJson(b)| b).unwrap_or_default();
    let results = state
        .notifiers
        .test(body.notifier.as_deref(), state.links.public_url())
        .await?;
    Ok(axum::Json(serde_json::json!({ "results": results })))
}
