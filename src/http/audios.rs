//! `/api/audios`, `/api/voices`, `/api/providers`, `/api/usage` and signed `/media` links.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use ulid::Ulid;

use super::HttpState;
use crate::auth::AuthUser;
use crate::db::audios::{self, Cursor, ListFilter};
use crate::error::{AppError, AppJson, Result};
use crate::http::extract::RateLimitedUser;
use crate::pagination::{Page, PageQuery};
use crate::speech::service::{self, AudioView, CreateAudio};
use crate::state::AppState;

/// Share links live an hour unless asked otherwise, and at most a year.
const DEFAULT_SHARE_S: i64 = 3600;
const MAX_SHARE_S: i64 = 365 * 86_400;

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
        .route("/media/{id}", get(media))
        .route("/api/providers", get(providers))
        .route("/api/voices", get(voices))
        .route("/api/voices/{id}/preview", post(preview))
        .route("/api/usage", get(usage))
}

/// Ids are ULIDs; anything else cannot name an audio, so it is simply not found.
pub fn parse_id(id: &str) -> Result<Ulid> {
    id.parse().map_err(|_| AppError::NotFound)
}

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
    for (name, value, allowed) in [
        ("kind", &query.kind, &["tts", "podcast", "upload"][..]),
        (
            "status",
            &query.status,
            &["queued", "running", "succeeded", "failed", "canceled"][..],
        ),
    ] {
        if let Some(v) = value
            .as_deref()
            .filter(|v| !allowed.contains(v) && !v.is_empty())
        {
            return Err(AppError::BadRequest {
                code: "invalid_request",
                message: format!("{name} must be one of {}", allowed.join(", ")),
                details: Some(json!({ name: v })),
            });
        }
    }
    let filter = ListFilter {
        kind: query.kind.filter(|k| !k.is_empty()),
        status: query.status.filter(|s| !s.is_empty()),
        q: query.q,
    };
    let fetch = req.fetch();
    let user_id = user.id;
    // An unfiltered page walks the index and stops after `fetch` rows; filters and search
    // may scan all of the user's audios, so they go through the blocking pool.
    let unfiltered = filter.kind.is_none() && filter.status.is_none() && filter.q.is_none();
    let query = move |c: &rusqlite::Connection| {
        Ok(audios::list(c, user_id, &filter, cursor.as_ref(), fetch)?)
    };
    let rows = if unfiltered {
        state.db.lookup(query).await?
    } else {
        state.db.read(query).await?
    };
    let page = Page::from_rows(rows, &req, |r: &audios::AudioRow| {
        Cursor {
            created_at: r.created_at,
            id: r.id.clone(),
        }
        .encode()
    });
    Ok(page.map(AudioView::from))
}

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

async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    // Unparseable ids name nothing: deleting nothing succeeds, as for any gone audio.
    if let Ok(id) = id.parse::<Ulid>() {
        service::delete(&state, user.id, id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn retry(
    State(state): State<AppState>,
    user: RateLimitedUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<AudioView>)> {
    let row = service::retry(&state, user.id, parse_id(&id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(row.into())))
}

/// Server-Sent Events: the current status at once, then every change until a final state.
async fn events(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let id = parse_id(&id)?;
    // Subscribe before reading, so no change between the read and the subscription is lost.
    let mut rx = state.jobs.events.subscribe(id);
    let current = AudioView::from(service::get(&state, user.id, id).await?).status_event();
    let stream = async_stream(move |tx| async move {
        let done = current.is_final();
        if tx.send(current).await.is_err() || done {
            return;
        }
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    let done = ev.is_final();
                    if tx.send(ev).await.is_err() || done {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    // The job ended without a final event reaching us (e.g. it was deleted).
                    return;
                }
            }
        }
    });
    let events = futures::StreamExt::map(stream, |ev| {
        Ok(Event::default()
            .event("status")
            .json_data(&ev)
            .unwrap_or_else(|_| Event::default().event("status")))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// A small channel-backed stream: the producer runs as its own task.
fn async_stream<T, F, Fut>(producer: F) -> impl Stream<Item = T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(producer(tx));
    tokio_stream_from(rx)
}

fn tokio_stream_from<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Progressive MP3 while the audio is being made: each chunk is sent as soon as it is
/// synthesized, so a listener hears a long text after about one chunk's latency. A finished
/// audio is simply its file.
async fn stream(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let audio = service::get(&state, user.id, id).await?;
    let job: Option<String> = state
        .db
        .read(move |c| {
            Ok(c.query_row(
                "SELECT id FROM jobs WHERE audio_id = ?1 AND status IN ('queued', 'running')
                  ORDER BY created_at DESC LIMIT 1",
                [id.to_string()],
                |r| r.get(0),
            )
            .ok())
        })
        .await?;
    let job = match (
        job.and_then(|j| j.parse::<Ulid>().ok()),
        audio.status.as_str(),
    ) {
        (Some(job), "queued" | "running") => job,
        (_, "succeeded") if audio.format == "mp3" => {
            return super::files::serve(&state, &audio, &headers, false, "private, max-age=0")
                .await;
        }
        _ => {
            return Err(AppError::Conflict(format!(
                "The audio is {}; there is nothing to stream",
                audio.status
            )));
        }
    };
    let guard = state.jobs.streams.open(job);
    let body = async_stream(move |tx| progressive(state, id, job, guard, tx));
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "audio/mpeg"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// Sample rate of the progressive stream: every provider's output is brought to it.
const STREAM_RATE: u32 = 24_000;

async fn progressive(
    state: AppState,
    audio: Ulid,
    job: Ulid,
    guard: crate::jobs::StreamGuard,
    tx: tokio::sync::mpsc::Sender<std::result::Result<bytes::Bytes, std::io::Error>>,
) {
    use crate::storage::keys;
    let mut events = state.jobs.events.subscribe(audio);
    let mut encoder = crate::audio::Mp3Encoder::new(STREAM_RATE, 1, 64).ok();
    let mut next = 0usize;
    let mut total: Option<usize> = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    while encoder.is_some()
        && total.is_none_or(|t| next < t)
        && tokio::time::Instant::now() < deadline
    {
        if total.is_none()
            && let Ok(b) = state.storage.get(&keys::job_parts(job)).await
        {
            total = serde_json::from_slice::<Value>(&b)
                .ok()
                .and_then(|v| v["total"].as_u64())
                .map(|t| t as usize);
        }
        let listed = state
            .storage
            .list(&keys::job_prefix(job))
            .await
            .unwrap_or_default();
        let wanted = format!("chunk-{next:05}.");
        if let Some(obj) = listed.iter().find(|o| {
            o.key
                .as_str()
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with(&wanted))
        }) {
            let Ok(bytes) = state.storage.get(&obj.key).await else {
                break;
            };
            let format = crate::speech::job::format_of(obj.key.as_str());
            let enc = encoder.take().expect("checked above");
            let Ok((enc, out)) = reencode(enc, bytes, format).await else {
                break;
            };
            encoder = Some(enc);
            if tx.send(Ok(bytes::Bytes::from(out))).await.is_err() {
                break;
            }
            next += 1;
            continue;
        }
        // The job is over and the chunk is not there: nothing more will come.
        let finished = !matches!(
            service::get_any_status(&state, audio).await.as_deref(),
            Some("queued" | "running")
        );
        if finished {
            break;
        }
        // Wait for the next chunk: progress events announce them; the timer covers the rest.
        tokio::select! {
            _ = events.recv() => {}
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
    // A one-chunk text keeps no chunks (see `speech::job`): when it finished before anything
    // was streamed, its file is the whole stream.
    if next == 0
        && let Some(enc) = encoder.take()
    {
        let file = match service::get_any(&state, audio).await {
            Some(row) if row.status == "succeeded" => row.object_key,
            _ => None,
        };
        let bytes = match &file {
            Some(key) => state
                .storage
                .get(&crate::storage::Key::from_stored(key.clone()))
                .await
                .ok(),
            None => None,
        };
        encoder = match (file, bytes) {
            (Some(key), Some(bytes)) => {
                let format = crate::speech::job::format_of(&key);
                match reencode(enc, bytes, format).await {
                    Ok((enc, out)) => tx
                        .send(Ok(bytes::Bytes::from(out)))
                        .await
                        .is_ok()
                        .then_some(enc),
                    Err(_) => None,
                }
            }
            _ => Some(enc),
        };
    }
    if let Some(enc) = encoder {
        let mut out = Vec::new();
        if enc.finish(&mut out).is_ok() && !out.is_empty() {
            let _ = tx.send(Ok(bytes::Bytes::from(out))).await;
        }
    }
    // The job left its chunks for us; the last reader of a finished job removes them.
    if guard.release() {
        let status = service::get_any_status(&state, audio).await;
        if !matches!(status.as_deref(), Some("queued" | "running")) {
            let _ = state.storage.delete_prefix(&keys::job_prefix(job)).await;
        }
    }
}

/// One part of the progressive stream: decoded, brought to the stream's rate and encoded
/// with the stream's encoder (handed back, since it carries the stream's state).
async fn reencode(
    mut enc: crate::audio::Mp3Encoder,
    bytes: bytes::Bytes,
    format: crate::audio::Format,
) -> std::result::Result<(crate::audio::Mp3Encoder, Vec<u8>), tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let pcm = crate::audio::decode(&bytes, format)
            .and_then(|p| crate::audio::conform(p, STREAM_RATE, 1));
        if let Ok(pcm) = pcm {
            let _ = enc.encode(&pcm.samples, &mut out);
        }
        (enc, out)
    })
    .await
}

#[derive(Debug, Deserialize)]
struct FileQuery {
    download: Option<String>,
}

async fn file(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    Query(q): Query<FileQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let audio = service::get(&state, user.id, parse_id(&id)?).await?;
    let download = q
        .download
        .as_deref()
        .is_some_and(|v| v != "0" && v != "false");
    super::files::serve(
        &state,
        &audio,
        &headers,
        download,
        "private, max-age=0, must-revalidate",
    )
    .await
}

async fn peaks(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let audio = service::get(&state, user.id, parse_id(&id)?).await?;
    let key = audio.peaks_key.ok_or(AppError::NotFound)?;
    let lookup = key.clone();
    let stored = state
        .db
        .lookup(move |c| Ok(crate::db::audios::peaks(c, &lookup)?))
        .await?;
    let bytes = match stored {
        Some(peaks) => {
            axum::body::Bytes::from(serde_json::to_vec(&peaks).map_err(anyhow::Error::from)?)
        }
        // Finished before peaks moved into the database: they are an object in the store.
        None => {
            state
                .storage
                .get(&crate::storage::Key::from_stored(key))
                .await?
        }
    };
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/json"),
            (axum::http::header::CACHE_CONTROL, "private, max-age=86400"),
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

async fn share(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>> {
    // The body is optional: an empty one means the defaults.
    let body: ShareBody = if body.is_empty() {
        ShareBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| AppError::invalid(format!("Invalid JSON body: {e}")))?
    };
    let audio = service::get(&state, user.id, parse_id(&id)?).await?;
    if audio.status != "succeeded" {
        return Err(AppError::Conflict(
            "Only finished audios can be shared".into(),
        ));
    }
    let ttl = body.expires_in_s.unwrap_or(DEFAULT_SHARE_S);
    if !(60..=MAX_SHARE_S).contains(&ttl) {
        return Err(AppError::BadRequest {
            code: "invalid_request",
            message: format!("expires_in_s must be between 60 and {MAX_SHARE_S}"),
            details: Some(json!({ "expires_in_s": ttl })),
        });
    }
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + ttl;
    let url = state.links.media(&audio.id, exp);
    Ok(Json(
        json!({ "url": url, "expires_at": crate::db::to_rfc3339(exp * 1000) }),
    ))
}

#[derive(Debug, Deserialize)]
struct MediaQuery {
    exp: Option<i64>,
    sig: Option<String>,
}

/// Public, signed access to an audio's bytes; tampered or expired links are refused with 403.
async fn media(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<MediaQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (Some(exp), Some(sig)) = (q.exp, q.sig) else {
        return Err(link_refused());
    };
    // No share link lives longer than MAX_SHARE_S; one that does is a feed enclosure from
    // before feed links were bound to the show's feed generation, and is revoked.
    if exp > now + MAX_SHARE_S || !state.links.media_valid(&id, exp, &sig, now) {
        return Err(link_refused());
    }
    let id = parse_id(&id)?;
    let audio = state
        .db
        .lookup(move |c| Ok(audios::get_any(c, id)?))
        .await?
        .ok_or(AppError::NotFound)?;
    super::files::serve(&state, &audio, &headers, false, "public, max-age=3600").await
}

fn link_refused() -> AppError {
    AppError::Forbidden {
        code: "forbidden",
        message: "This link is invalid or has expired".into(),
    }
}

async fn providers(State(state): State<AppState>, _user: AuthUser) -> Json<Value> {
    let mut rows = json!(state.providers.list().await);
    // While the models a neural provider needs are downloading, its row carries the progress.
    for row in rows.as_array_mut().into_iter().flatten() {
        let needs: &[&str] = match row["id"].as_str() {
            Some("kokoro") => &["runtime", "kokoro"],
            Some("piper") => &["runtime", "piper:en_US-joe-medium"],
            _ => continue,
        };
        let running: Vec<_> = needs
            .iter()
            .filter_map(|name| state.models.progress(name))
            .filter(|p| p.state == crate::models::PullPhase::Running)
            .collect();
        row["progress"] = if running.is_empty() {
            Value::Null
        } else {
            json!({
                "done_bytes": running.iter().map(|p| p.done_bytes).sum::<u64>(),
                "total_bytes": running.iter().map(|p| p.total_bytes).sum::<u64>(),
            })
        };
    }
    Json(rows)
}

#[derive(Debug, Deserialize)]
struct VoicesQuery {
    provider: Option<String>,
    language: Option<String>,
}

async fn voices(
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
async fn preview(
    State(state): State<AppState>,
    user: RateLimitedUser,
    Path(voice_id): Path<String>,
) -> Result<Response> {
    let (provider, voice) = state.providers.voice(&voice_id).await?;
    let text = if voice.language.starts_with("zh") || voice.language.starts_with("yue") {
        format!("你好，我是{}。这是一段试听。", voice.name)
    } else {
        format!(
            "Hello! This is {}, one of the voices you can use.",
            voice.name
        )
    };
    let digest = crate::speech::job::cache_key(
        provider.id(),
        provider.model(),
        &voice.id,
        1.0,
        "preview",
        &text,
    );
    for ext in ["mp3", "wav"] {
        if let Ok(bytes) = state
            .storage
            .get(&crate::storage::keys::preview(&digest, ext))
            .await
        {
            return Ok(sample(bytes, ext));
        }
    }
    let name = voice
        .id
        .split_once(':')
        .map_or(voice.id.as_str(), |(_, v)| v)
        .to_string();
    let request = crate::providers::SynthesisRequest {
        text: text.clone(),
        voice: name,
        speed: 1.0,
        format_hint: crate::providers::OutputFormat::Mp3,
    };
    let out = provider.synthesize(&request).await?;
    let ext = match out.format {
        crate::providers::AudioFormat::Mp3 => "mp3",
        crate::providers::AudioFormat::Wav => "wav",
        _ => {
            return Err(AppError::Unavailable {
                code: "provider_unavailable",
                message: "This voice cannot be previewed".into(),
            });
        }
    };
    state
        .storage
        .put(
            &crate::storage::keys::preview(&digest, ext),
            out.bytes.clone(),
        )
        .await?;
    let (user_id, service, chars) = (
        user.id,
        format!("tts:{}:{}", provider.id(), provider.model()),
        text.chars().count(),
    );
    let cost = provider.cost_micros(chars) as i64;
    state
        .db
        .write(move |c| {
            let tx = c.transaction()?;
            crate::db::usage::insert(
                &tx,
                &crate::db::usage::NewUsage {
                    user_id,
                    audio_id: None,
                    service: &service,
                    units: chars as i64,
                    cost_micros: cost,
                    cached: false,
                },
                crate::db::now_ms(),
            )?;
            tx.commit()?;
            Ok(())
        })
        .await?;
    Ok(sample(out.bytes, ext))
}

fn sample(bytes: bytes::Bytes, ext: &str) -> Response {
    let content_type = if ext == "wav" {
        "audio/wav"
    } else {
        "audio/mpeg"
    };
    (
        [
            (axum::http::header::CONTENT_TYPE, content_type),
            (axum::http::header::CACHE_CONTROL, "private, max-age=86400"),
        ],
        bytes,
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct RangeQuery {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl RangeQuery {
    /// Validated `YYYY-MM-DD` bounds; the last 30 days when absent. At most 366 days.
    pub fn days(&self) -> Result<(String, String)> {
        let today = time::OffsetDateTime::now_utc().date();
        let parse = |name: &str, v: &Option<String>, default: time::Date| -> Result<time::Date> {
            match v.as_deref().filter(|s| !s.is_empty()) {
                None => Ok(default),
                Some(s) => {
                    time::Date::parse(s, &time::format_description::well_known::Iso8601::DATE)
                        .map_err(|_| AppError::BadRequest {
                            code: "invalid_request",
                            message: format!("{name} must be a date like 2026-01-31"),
                            details: Some(json!({ name: s })),
                        })
                }
            }
        };
        let to = parse("to", &self.to, today)?;
        let from = parse("from", &self.from, to - time::Duration::days(29))?;
        if from > to || (to - from).whole_days() > 366 {
            return Err(AppError::invalid(
                "from must be on or before to, at most 366 days apart",
            ));
        }
        Ok((from.to_string(), to.to_string()))
    }
}

async fn usage(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<RangeQuery>,
) -> Result<Json<Value>> {
    let (from, to) = q.days()?;
    let id = user.id;
    let rows = state
        .db
        .read(move |c| Ok(crate::db::usage::per_day(c, Some(id), &from, &to)?))
        .await?;
    Ok(Json(json!(rows)))
}
