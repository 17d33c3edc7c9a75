//! `/api/podcasts` (shows, scripts, episodes, subtitles, feed tokens) and the public `/feeds`.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::HttpState;
use super::files::{self, Ask};
use super::params::parse_id;
use crate::auth::AuthUser;
use crate::error::{AppError, AppJson, Result};
use crate::http::extract::RateLimitedUser;
use crate::pagination::{Page, PageQuery};
use crate::podcast::service::{
    self, CoverType, EpisodeBody, EpisodeView, FeedFile, PodcastFields, PodcastView, ScriptBody,
    ScriptView, Sidecar,
};
use crate::state::AppState;

/// Feed readers poll often; a few minutes of caching spares the server without delaying
/// new episodes much.
const FEED_CACHE: &str = "public, max-age=300";

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/api/podcasts", post(create).get(list))
        .route("/api/podcasts/{id}", get(read).patch(update).delete(remove))
        .route(
            "/api/podcasts/{id}/cover",
            get(cover)
                .put(set_cover)
                .delete(remove_cover)
                // Room over the image limit, so an oversized cover gets the JSON 413 below.
                .layer(DefaultBodyLimit::max(service::MAX_COVER_BYTES + 64 * 1024)),
        )
        .route("/api/podcasts/{id}/scripts", post(script))
        .route("/api/podcasts/{id}/feed-token", post(feed_token))
        .route(
            "/api/podcasts/{id}/episodes",
            post(create_episode).get(list_episodes),
        )
        .route(
            "/api/podcasts/{id}/episodes/{eid}",
            get(read_episode).delete(remove_episode),
        )
        .route("/api/podcasts/{id}/episodes/{eid}/{file}", get(sidecar))
        .route("/feeds/{file}", get(feed))
        .route("/feeds/episodes/{eid}/{file}", get(signed_episode_file))
        .route("/feeds/podcasts/{id}/{file}", get(signed_cover))
}

#[tracing::instrument(skip_all)]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<PodcastFields>,
) -> Result<(StatusCode, Json<PodcastView>)> {
    let row = service::create(&state, user.id, body).await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<PageQuery>,
) -> Result<Page<PodcastView>> {
    let page = service::list(&state, user.id, &q.request()?).await?;
    Ok(page.map(PodcastView::from))
}

#[tracing::instrument(skip_all, fields(podcast = %id))]
async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<PodcastView>> {
    Ok(Json(
        service::get(&state, user.id, parse_id(&id)?).await?.into(),
    ))
}

#[tracing::instrument(skip_all, fields(podcast = %id))]
async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    AppJson(body): AppJson<PodcastFields>,
) -> Result<Json<PodcastView>> {
    Ok(Json(
        service::update(&state, user.id, parse_id(&id)?, body)
            .await?
            .into(),
    ))
}

#[tracing::instrument(skip_all, fields(podcast = %id))]
async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    if let Ok(id) = id.parse() {
        service::delete(&state, user.id, id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[tracing::instrument(skip_all, fields(podcast = %id))]
async fn set_cover(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PodcastView>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    Ok(Json(
        service::set_cover(&state, user.id, parse_id(&id)?, content_type, body)
            .await?
            .into(),
    ))
}

#[tracing::instrument(skip_all, fields(podcast = %id))]
async fn remove_cover(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    service::delete_cover(&state, user.id, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn image_response(kind: CoverType, bytes: Bytes, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind.mime()),
            (header::CACHE_CONTROL, cache),
        ],
        bytes,
    )
        .into_response()
}

#[tracing::instrument(skip_all, fields(podcast = %id))]
async fn cover(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let (kind, bytes) = service::cover(&state, user.id, parse_id(&id)?).await?;
    Ok(image_response(
        kind,
        bytes,
        "private, max-age=0, must-revalidate",
    ))
}

#[tracing::instrument(skip_all, fields(podcast = %id))]
async fn signed_cover(
    State(state): State<AppState>,
    Path((id, file)): Path<(String, String)>,
    Query(q): Query<SignedQuery>,
) -> Result<Response> {
    let ext = file.strip_prefix("cover.").ok_or(AppError::NotFound)?;
    let (kind, bytes) = service::signed_cover(
        &state,
        &id,
        ext,
        q.exp.unwrap_or(0),
        q.sig.as_deref().unwrap_or_default(),
    )
    .await?;
    Ok(image_response(kind, bytes, FEED_CACHE))
}

#[tracing::instrument(skip_all, fields(podcast = %id))]
async fn script(
    State(state): State<AppState>,
    user: RateLimitedUser,
    Path(id): Path<String>,
    AppJson(body): AppJson<ScriptBody>,
) -> Result<Json<ScriptView>> {
    Ok(Json(
        service::write_script(&state, &state.llm, user.id, parse_id(&id)?, body).await?,
    ))
}

#[tracing::instrument(skip_all, fields(podcast = %id))]
async fn feed_token(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let url = service::rotate_feed_token(&state, user.id, parse_id(&id)?).await?;
    Ok(Json(json!({ "feed_url": url })))
}

#[tracing::instrument(skip_all, fields(podcast = %id))]
async fn create_episode(
    State(state): State<AppState>,
    user: RateLimitedUser,
    Path(id): Path<String>,
    AppJson(body): AppJson<EpisodeBody>,
) -> Result<(StatusCode, Json<EpisodeView>)> {
    let view = service::create_episode(&state, user.id, parse_id(&id)?, body).await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

#[tracing::instrument(skip_all, fields(podcast = %id))]
async fn list_episodes(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Page<EpisodeView>> {
    service::list_episodes(&state, user.id, parse_id(&id)?, &q.request()?).await
}

#[tracing::instrument(skip_all, fields(podcast = %id, episode = %eid))]
async fn read_episode(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, eid)): Path<(String, String)>,
) -> Result<Json<EpisodeView>> {
    Ok(Json(
        service::get_episode(&state, user.id, parse_id(&id)?, parse_id(&eid)?).await?,
    ))
}

#[tracing::instrument(skip_all, fields(podcast = %id, episode = %eid))]
async fn remove_episode(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, eid)): Path<(String, String)>,
) -> Result<StatusCode> {
    if let (Ok(id), Ok(eid)) = (id.parse(), eid.parse()) {
        service::delete_episode(&state, user.id, id, eid).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

fn sidecar_kind(file: &str) -> Result<Sidecar> {
    match file {
        "subtitles.vtt" | "transcript.vtt" => Ok(Sidecar::Vtt),
        "subtitles.srt" => Ok(Sidecar::Srt),
        "chapters.json" => Ok(Sidecar::Chapters),
        _ => Err(AppError::NotFound),
    }
}

fn text_response(kind: Sidecar, body: String, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind.content_type()),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}

#[tracing::instrument(skip_all, fields(podcast = %id, episode = %eid, file = %file))]
async fn sidecar(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, eid, file)): Path<(String, String, String)>,
) -> Result<Response> {
    let kind = sidecar_kind(&file)?;
    let body = service::sidecar(&state, user.id, parse_id(&id)?, parse_id(&eid)?, kind).await?;
    Ok(text_response(
        kind,
        body,
        "private, max-age=0, must-revalidate",
    ))
}

#[derive(Debug, Deserialize)]
struct SignedQuery {
    exp: Option<i64>,
    sig: Option<String>,
}

/// An episode's audio (the feed's enclosure), transcript or chapters through a signed feed link.
#[tracing::instrument(skip_all, fields(episode = %eid, file = %file))]
async fn signed_episode_file(
    State(state): State<AppState>,
    Path((eid, file)): Path<(String, String)>,
    Query(q): Query<SignedQuery>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response> {
    let (exp, sig) = (q.exp.unwrap_or(0), q.sig.as_deref().unwrap_or_default());
    let kind = match file.as_str() {
        "transcript.vtt" => Sidecar::Vtt,
        "chapters.json" => Sidecar::Chapters,
        "audio.mp3" | "audio.wav" => {
            let ext = &file["audio.".len()..];
            return match service::signed_episode_audio(&state, &eid, ext, exp, sig).await? {
                FeedFile::Published(url) => files::redirect(&url, FEED_CACHE),
                FeedFile::Here(audio) => {
                    let ask = Ask {
                        method: &method,
                        headers: &headers,
                        link_exp: Some(exp),
                    };
                    files::serve(&state, &audio, &ask, false, FEED_CACHE).await
                }
            };
        }
        _ => return Err(AppError::NotFound),
    };
    match service::signed_sidecar(&state, &eid, exp, sig, kind).await? {
        FeedFile::Published(url) => files::redirect(&url, FEED_CACHE),
        FeedFile::Here(body) => Ok(text_response(kind, body, FEED_CACHE)),
    }
}

#[derive(Debug, Deserialize)]
struct FeedQuery {
    token: Option<String>,
}

#[tracing::instrument(skip_all, fields(file = %file))]
async fn feed(
    State(state): State<AppState>,
    Path(file): Path<String>,
    Query(q): Query<FeedQuery>,
) -> Result<Response> {
    let id = file.strip_suffix(".xml").ok_or(AppError::NotFound)?;
    let xml = service::feed(&state, parse_id(id)?, q.token.as_deref()).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/rss+xml; charset=utf-8"),
            (header::CACHE_CONTROL, FEED_CACHE),
        ],
        xml,
    )
        .into_response())
}
