//! `/api/voices`: the voices to choose from, and a short preview of each.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::HttpState;
use crate::auth::AuthUser;
use crate::error::Result;
use crate::http::extract::RateLimitedUser;
use crate::speech::preview;
use crate::state::AppState;

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/api/voices", get(list))
        .route("/api/voices/{id}/preview", post(preview))
}

#[derive(Debug, Deserialize)]
struct VoicesQuery {
    provider: Option<String>,
    language: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<AppState>,
    _user: AuthUser,
    Query(q): Query<VoicesQuery>,
) -> Json<Value> {
    let voices = state
        .providers
        .voices(
            q.provider.as_deref().filter(|p| !p.is_empty()),
            q.language.as_deref().filter(|l| !l.is_empty()),
        )
        .await;
    Json(json!(voices))
}

/// A short sample of a voice, synthesized once and then served from storage.
#[tracing::instrument(skip_all, fields(voice = %voice_id))]
async fn preview(
    State(state): State<AppState>,
    user: RateLimitedUser,
    Path(voice_id): Path<String>,
) -> Result<Response> {
    let sample = preview::preview(
        &state.providers,
        &state.storage,
        &state.db,
        user.id,
        &voice_id,
    )
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, sample.format.mime_type()),
            (header::CACHE_CONTROL, "private, max-age=86400"),
        ],
        sample.bytes,
    )
        .into_response())
}
