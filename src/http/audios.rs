//! `/api/audios`: the library, each audio's events, file, stream and peaks, and share links.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

use super::HttpState;
use super::files::Ask;
use super::params::{parse_choice, parse_id};
use crate::auth::AuthUser;
use crate::db::audios::{self, Cursor, ListFilter};
use crate::db::{AudioId, AudioStatus};
use crate::error::ErrorCode;
use crate::error::{AppError, AppJson, Result};
use crate::http::extract::RateLimitedUser;
use crate::pagination::{Page, PageQuery};
use crate::speech::service::{self, AudioView, CreateAudio};
use crate::speech::stream::{self, Listen};
use crate::state::AppState;

/// Share links live an hour unless asked otherwise, and at most a year.
const DEFAULT_SHARE_S: i64 = 3600;
pub(super) const MAX_SHARE_S: i64 = 365 * 86_400;

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/api/audios", post(create).get(list))
        .route("/api/audios/{id}", get(read).patch(rename).delete(remove))
        .route("/api/audios/{id}/retry", post(retry))
        .route("/api/audios/{id}/events", get(events))
        .route("/api/audios/{id}/file", get(file))
        .route("/api/audios/{id}/stream", get(stream))
        .route("/api/audios/{id}/peaks", get(peaks))
        .route("/api/audios/{id}/share", post(share))
}

#[tracing::instrument(skip_all)]
async fn create(
    State(state): State<AppState>,
    user: RateLimitedUser,
    AppJson(req): AppJson<CreateAudio>,
) -> Result<(StatusCode, Json<AudioView>)> {
    let row = service::create(&state, user.id, req).await?;
    Ok((StatusCode::ACCEPTED, Json(row.into())))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    kind: Option<String>,
    status: Option<String>,
    q: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

/// The library page: the hottest API route, so its span is at debug level.
#[tracing::instrument(level = "debug", skip_all)]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(query): Query<ListQuery>,
) -> Result<Page<AudioView>> {
    let req = query.page.request()?;
    let cursor = match &req.cursor {
        Some(c) => Some(Cursor::decode(c).ok_or_else(|| AppError::invalid("cursor is not valid"))?),
        None => None,
    };
    let filter = ListFilter {
        kind: parse_choice("kind", query.kind.as_deref())?,
        status: parse_choice("status", query.status.as_deref())?,
        q: query.q,
    };
    let rows = service::list(&state.db, user.id, filter, cursor, req.fetch()).await?;
    let page = Page::from_rows(rows, &req, |r: &audios::AudioRow| {
        Cursor {
            created_at: r.created_at,
            id: r.id,
        }
        .encode()
    });
    Ok(page.map(AudioView::from))
}

#[tracing::instrument(skip_all, fields(audio = %id))]
async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<AudioView>> {
    Ok(Json(
        service::get(&state, user.id, parse_id(&id)?).await?.into(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameBody {
    title: String,
}

#[tracing::instrument(skip_all, fields(audio = %id))]
async fn rename(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    AppJson(body): AppJson<RenameBody>,
) -> Result<Json<AudioView>> {
    Ok(Json(
        service::rename(&state, user.id, parse_id(&id)?, &body.title)
            .await?
            .into(),
    ))
}

#[tracing::instrument(skip_all, fields(audio = %id))]
async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    // Unparseable ids name nothing: deleting nothing succeeds, as for any gone audio.
    if let Ok(id) = id.parse::<AudioId>() {
        service::delete(&state, user.id, id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[tracing::instrument(skip_all, fields(audio = %id))]
async fn retry(
    State(state): State<AppState>,
    user: RateLimitedUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<AudioView>)> {
    let row = service::retry(&state, user.id, parse_id(&id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(row.into())))
}

/// Server-Sent Events: the current status at once, then every change until a final state.
#[tracing::instrument(skip_all, fields(audio = %id))]
async fn events(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let id = parse_id(&id)?;
    // Subscribe before reading, so no change between the read and the subscription is lost.
    let rx = state.jobs.events.subscribe(id);
    let current = AudioView::from(service::get(&state, user.id, id).await?).status_event();
    let events = stream::status_events(rx, current).map(|ev| {
        Ok(Event::default()
            .event("status")
            .json_data(&ev)
            .unwrap_or_else(|_| Event::default().event("status")))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Progressive MP3 while the audio is being made: each chunk is sent as soon as it is
/// synthesized, so a listener hears a long text after about one chunk's latency. A finished
/// audio is simply its file.
#[tracing::instrument(skip_all, fields(audio = %id))]
async fn stream(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let audio = service::get(&state, user.id, id).await?;
    match stream::listen(&state.db, &state.storage, &state.jobs, id, &audio).await? {
        Listen::File => {
            let ask = Ask {
                method: &method,
                headers: &headers,
                link_exp: None,
            };
            super::files::serve(&state, &audio, &ask, false, "private, max-age=0").await
        }
        Listen::Live(body) => Ok((
            [
                (header::CONTENT_TYPE, "audio/mpeg"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            axum::body::Body::from_stream(body),
        )
            .into_response()),
    }
}

#[derive(Debug, Deserialize)]
struct FileQuery {
    download: Option<String>,
}

/// An audio's bytes: hot (players fetch ranges of it), so its span is at debug level.
#[tracing::instrument(level = "debug", skip_all, fields(audio = %id))]
async fn file(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    Query(q): Query<FileQuery>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response> {
    let audio = service::get(&state, user.id, parse_id(&id)?).await?;
    let download = q
        .download
        .as_deref()
        .is_some_and(|v| v != "0" && v != "false");
    let ask = Ask {
        method: &method,
        headers: &headers,
        link_exp: None,
    };
    super::files::serve(
        &state,
        &audio,
        &ask,
        download,
        "private, max-age=0, must-revalidate",
    )
    .await
}

#[tracing::instrument(skip_all, fields(audio = %id))]
async fn peaks(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let audio = service::get(&state, user.id, parse_id(&id)?).await?;
    let bytes = service::peaks(&state.db, &state.storage, audio).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "private, max-age=86400"),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareBody {
    expires_in_s: Option<i64>,
}

/// The body is optional: none means the defaults.
#[tracing::instrument(skip_all, fields(audio = %id))]
async fn share(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    body: Option<AppJson<ShareBody>>,
) -> Result<Json<Value>> {
    let body = body.map(|AppJson(b)| b).unwrap_or_default();
    let audio = service::get(&state, user.id, parse_id(&id)?).await?;
    if audio.status != AudioStatus::Succeeded {
        return Err(AppError::Conflict(
            "Only finished audios can be shared".into(),
        ));
    }
    let ttl = body.expires_in_s.unwrap_or(DEFAULT_SHARE_S);
    if !(60..=MAX_SHARE_S).contains(&ttl) {
        return Err(AppError::BadRequest {
            code: ErrorCode::InvalidRequest,
            message: format!("expires_in_s must be between 60 and {MAX_SHARE_S}"),
            details: Some(json!({ "expires_in_s": ttl })),
        });
    }
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + ttl;
    let url = state.links.media(&audio.id.to_string(), exp);
    Ok(Json(
        json!({ "url": url, "expires_at": crate::db::to_rfc3339(exp * 1000) }),
    ))
}
