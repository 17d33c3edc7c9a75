//! `/api/admin/users` and `/api/admin/invites`: account administration, for admins only.
//!
//! Every handler takes [`AdminUser`]: that is what makes a route an admin route.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch};
use serde::Deserialize;

use super::extract::AdminUser;
use crate::app::AppState;
use crate::auth::{UserPatch, UserSummary};
use crate::error::{AppError, AppJson, Result};
use crate::pagination::PageQuery;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/users", get(list_users))
        .route("/api/admin/users/{id}", patch(update_user))
        .route("/api/admin/invites", get(list_invites).post(create_invite))
        .route("/api/admin/invites/{code}", delete(delete_invite))
}

#[derive(Deserialize)]
struct UsersQuery {
    #[serde(flatten)]
    page: PageQuery,
    /// Part of an email address.
    q: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn list_users(
    State(state): State<AppState>,
    _: AdminUser,
    Query(query): Query<UsersQuery>,
) -> Result<Response> {
    let page = state
        .auth
        .list_users(&query.page.request()?, query.q)
        .await?;
    Ok(AppJson(page).into_response())
}

#[tracing::instrument(skip_all, fields(target_user = %id))]
async fn update_user(
    State(state): State<AppState>,
    _: AdminUser,
    Path(id): Path<String>,
    AppJson(patch): AppJson<UserPatch>,
) -> Result<AppJson<UserSummary>> {
    Ok(AppJson(state.auth.update_user(&id, patch).await?))
}

#[tracing::instrument(skip_all)]
async fn list_invites(
    State(state): State<AppState>,
    _: AdminUser,
    Query(page): Query<PageQuery>,
) -> Result<Response> {
    let page = state.auth.list_invites(&page.request()?).await?;
    Ok(AppJson(page).into_response())
}

#[derive(Deserialize, Default)]
struct InviteBody {
    expires_in_s: Option<u64>,
}

/// The body is optional: no body, `{}` and `{"expires_in_s": null}` make a code that never expires.
#[tracing::instrument(skip_all)]
async fn create_invite(
    State(state): State<AppState>,
    admin: AdminUser,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    state.limits.check_user(admin.id)?;
    let body = body.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
        _ => AppError::invalid(r.body_text()),
    })?;
    let body: InviteBody = if body.iter().all(u8::is_ascii_whitespace) {
        InviteBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| AppError::invalid(format!("Invalid JSON body: {e}")))?
    };
    let invite = state.auth.create_invite(&admin, body.expires_in_s).await?;
    Ok((StatusCode::CREATED, AppJson(invite)).into_response())
}

#[tracing::instrument(skip_all)]
async fn delete_invite(
    State(state): State<AppState>,
    _: AdminUser,
    Path(code): Path<String>,
) -> Result<StatusCode> {
    state.auth.delete_invite(&code).await?;
    Ok(StatusCode::NO_CONTENT)
}
