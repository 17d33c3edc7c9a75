//! `/api/admin/*`: accounts, invites, usage, backups, system status and neural voice models,
//! for admins only.
//!
//! Every handler takes [`AdminUser`]: that is what makes a route an admin route.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use serde::Deserialize;

use super::HttpState;
use super::extract::AdminUser;
use super::params::{RangeQuery, parse_id};
use crate::auth::{UserPatch, UserSummary};
use crate::error::ErrorCode;
use crate::error::{AppError, AppJson, Result};
use crate::pagination::PageQuery;
use crate::state::AppState;

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/api/admin/users", get(list_users))
        .route("/api/admin/users/{id}", patch(update_user))
        .route("/api/admin/invites", get(list_invites).post(create_invite))
        .route("/api/admin/invites/{code}", delete(delete_invite))
        .route("/api/admin/usage", get(usage))
        .route("/api/admin/backups", get(list_backups).post(start_backup))
        .route("/api/admin/system", get(system))
        .route("/api/admin/alerts", get(list_alerts))
        .route("/api/admin/models", get(list_models))
        .route("/api/admin/models/{name}", delete(remove_model))
        .route("/api/admin/models/{name}/pull", post(pull_model))
        .route("/api/admin/selftest", post(selftest))
}

/// `POST /api/admin/selftest`: each voice engine on this machine speaks a known sentence and
/// Whisper hears it; the word error rate per voice.
#[tracing::instrument(skip_all)]
async fn selftest(
    State(state): State<AppState>,
    _: AdminUser,
) -> Result<axum::Json<crate::transcription::selftest::Report>> {
    Ok(axum::Json(
        crate::transcription::selftest::run(&state.providers).await?,
    ))
}

impl From<crate::models::ModelError> for AppError {
    fn from(e: crate::models::ModelError) -> Self {
        use crate::models::ModelError;
        match e {
            ModelError::UnknownModel { .. } => AppError::BadRequest {
                code: ErrorCode::UnknownModel,
                message: e.to_string(),
                details: None,
            },
            ModelError::Busy { .. } => AppError::Conflict(e.to_string()),
            e => AppError::Internal(e.into()),
        }
    }
}

#[tracing::instrument(skip_all)]
async fn list_models(
    State(state): State<AppState>,
    _: AdminUser,
) -> Result<axum::Json<serde_json::Value>> {
    let models = state.models.clone();
    let body = tokio::task::spawn_blocking(move || {
        let manager = models.manager();
        let rows: Vec<serde_json::Value> = manager.list().iter().map(|s| models.row(s)).collect();
        serde_json::json!({
            "dir": manager.layout().root().display().to_string(),
            "disk_used_bytes": manager.disk_used(),
            "models": rows,
        })
    })
    .await
    .map_err(anyhow::Error::from)?;
    Ok(axum::Json(body))
}

#[tracing::instrument(skip_all, fields(model = %name))]
async fn pull_model(
    State(state): State<AppState>,
    _: AdminUser,
    Path(name): Path<String>,
) -> Result<(StatusCode, axum::Json<serde_json::Value>)> {
    state.models.start_pull(&name).await?;
    let entry = state.models.manager().entry(&name)?;
    let status = state.models.manager().status(entry);
    Ok((StatusCode::ACCEPTED, axum::Json(state.models.row(&status))))
}

#[tracing::instrument(skip_all, fields(model = %name))]
async fn remove_model(
    State(state): State<AppState>,
    _: AdminUser,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    state.models.remove(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[tracing::instrument(skip_all)]
async fn usage(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<RangeQuery>,
) -> Result<axum::Json<serde_json::Value>> {
    let (from, to) = q.days()?;
    let rows = state.db.usage().per_day(None, from, to).await?;
    let units: i64 = rows.iter().map(|r| r.units).sum();
    let cost: i64 = rows.iter().map(|r| r.cost_micros).sum();
    Ok(axum::Json(serde_json::json!({
        "items": rows,
        "totals": { "units": units, "cost_micros": cost },
    })))
}

#[tracing::instrument(skip_all)]
async fn list_backups(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> Result<axum::Json<serde_json::Value>> {
    let items = state.backups.list().await?;
    Ok(axum::Json(serde_json::json!({ "items": items })))
}

#[tracing::instrument(skip_all)]
async fn start_backup(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> Result<(StatusCode, axum::Json<serde_json::Value>)> {
    let name = state.backups.start(crate::backup::Trigger::Manual).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "name": name.to_string() })),
    ))
}

#[tracing::instrument(skip_all)]
async fn system(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> Result<axum::Json<serde_json::Value>> {
    let path = state.db.path().to_path_buf();
    let (queued, running, failed) = state.db.jobs().counts().await?;
    let db_bytes = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
        .map(|m| m.len())
        .sum::<u64>();
    let kind = match state.storage.kind() {
        crate::config::StorageKind::Local => "local",
        crate::config::StorageKind::S3 => "s3",
    };
    Ok(axum::Json(serde_json::json!({
        "version": crate::VERSION,
        "uptime_s": state.started.elapsed().as_secs(),
        "db_bytes": db_bytes,
        "jobs": { "queued": queued, "running": running, "failed_24h": failed },
        "storage": { "kind": kind },
    })))
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
    Ok(AppJson(
        state.auth.update_user(parse_id(&id)?, patch).await?,
    ))
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

#[tracing::instrument(skip_all)]
async fn list_alerts(
    State(state): State<AppState>,
    _: AdminUser,
    Query(page): Query<PageQuery>,
) -> Result<Response> {
    let page = crate::ops::alerts::list(&state.db, &page.request()?).await?;
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
    State(http): State<HttpState>,
    admin: AdminUser,
    body: std::result::Result<Option<AppJson<InviteBody>>, AppError>,
) -> Result<Response> {
    http.limits.check_user(admin.id)?;
    let body = body?.map(|AppJson(b)| b).unwrap_or_default();
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
