//! `/api/usage`: the signed-in user's usage per day and service.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::HttpState;
use super::params::RangeQuery;
use crate::auth::AuthUser;
use crate::error::Result;
use crate::state::AppState;

pub fn router() -> Router<HttpState> {
    Router::new().route("/api/usage", get(list))
}

#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<RangeQuery>,
) -> Result<Json<Value>> {
    let (from, to) = q.days()?;
    let rows = state.db.usage().per_day(Some(user.id), from, to).await?;
    Ok(Json(json!(rows)))
}
