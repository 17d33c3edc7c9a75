//! `GET /metrics` on the main port (only with `metrics.token`, to that bearer token) and
//! `GET /api/admin/metrics/series`, the minute series the admin's charts draw.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::HttpState;
use super::extract::AdminUser;
use crate::error::{AppError, Result};
use crate::monitor::metrics::{self, HttpMetrics};
use crate::monitor::series;
use crate::state::AppState;

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/api/admin/metrics/series", get(minute_series))
}

/// The Prometheus text format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The scrape answer, from a server's counters.
pub fn exposition(http: &HttpMetrics) -> Response {
    let mut response = metrics::render(http).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
    response
}

/// The separate listener's whole application: `GET /metrics` and nothing else.
pub fn listener_router(http: Arc<HttpMetrics>) -> Router {
    Router::new().route("/metrics", get(move || async move { exposition(&http) }))
}

#[tracing::instrument(level = "debug", skip_all)]
async fn scrape(State(http): State<HttpState>, headers: HeaderMap) -> Result<Response> {
    let (Some(counters), Some(token)) = (&http.metrics, http.app.config.metrics.token()) else {
        return Err(AppError::NotFound);
    };
    let offered = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !bool::from(offered.as_bytes().ct_eq(token.expose().as_bytes())) {
        return Err(AppError::Unauthenticated(
            "Send the metrics token as Authorization: Bearer <token>".into(),
        ));
    }
    Ok(exposition(counters))
}

#[derive(Deserialize)]
struct SeriesQuery {
    range: Option<String>,
}

/// The last hour's or day's minutes, oldest first, with today's provider cost against the
/// daily budget.
#[tracing::instrument(skip_all)]
async fn minute_series(
    State(state): State<AppState>,
    _: AdminUser,
    Query(q): Query<SeriesQuery>,
) -> Result<axum::Json<serde_json::Value>> {
    let (range, last) = match q.range.as_deref().unwrap_or("1h") {
        "1h" => ("1h", Duration::from_secs(3600)),
        "24h" => ("24h", Duration::from_secs(24 * 3600)),
        other => {
            return Err(AppError::field(
                crate::error::ErrorCode::InvalidRequest,
                "range",
                format!("range must be 1h or 24h, not `{other}`"),
            ));
        }
    };
    let cost_today_usd = crate::ops::alerts::cost_today_usd(&state.db).await?;
    let s = series::series();
    Ok(axum::Json(serde_json::json!({
        "range": range,
        "minutes": s.minutes(last),
        "window": s.window(last),
        "cost_today_usd": cost_today_usd,
        "daily_budget_usd": state.config.alerts.daily_budget(),
    })))
}
