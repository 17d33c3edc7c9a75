//! `/api/transcriptions`: transcripts in the library (an upload or a library audio, heard by
//! the `transcribe` job), their downloads and their recordings; and the multipart reading
//! the OpenAI-compatible endpoints share.

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::{Bytes, BytesMut};
use serde::Deserialize;

use super::HttpState;
use super::files;
use super::params::{parse_id, parse_id_filter};
use crate::auth::AuthUser;
use crate::config::Config;
use crate::db::transcripts::ListFilter;
use crate::db::{AudioId, TranscriptId};
use crate::error::{AppError, AppJson, ErrorCode, Result};
use crate::http::extract::RateLimitedUser;
use crate::pagination::{Page, PageQuery};
use crate::state::AppState;
use crate::transcription::service::{self, Choices, Download, Source, TranscriptView};

/// Room over the file limit for the form's other fields and boundaries, so an oversized file
/// is refused by the file's own check with the JSON 413.
pub(super) const FORM_SLACK: u64 = 64 * 1024;

pub fn router(config: &Config) -> Router<HttpState> {
    let limit = config
        .transcription
        .max_upload_bytes
        .saturating_add(FORM_SLACK);
    Router::new()
        .route(
            "/api/transcriptions",
            post(create).get(list).layer(DefaultBodyLimit::max(
                usize::try_from(limit).unwrap_or(usize::MAX),
            )),
        )
        .route("/api/transcriptions/{id}", get(read).delete(remove))
        .route("/api/transcriptions/{id}/recording", get(recording))
}

/// A multipart form as the transcription endpoints read it: text fields in order (repeated
/// names kept) and the `file` part.
#[derive(Debug, Default)]
pub(super) struct Form {
    pub fields: Vec<(String, String)>,
    /// The upload's file name (never used to find its format) and bytes.
    pub file: Option<(Option<String>, Bytes)>,
}

impl Form {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, names: &'a [&str]) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .map(|(_, v)| v.as_str())
    }

    /// The uploaded file; 400 naming the `file` field when there is none (or it is empty).
    pub fn take_file(&mut self) -> Result<(Option<String>, Bytes)> {
        match self.file.take() {
            Some((name, bytes)) if !bytes.is_empty() => Ok((name, bytes)),
            _ => Err(AppError::field(
                ErrorCode::InvalidRequest,
                "file",
                "Missing required parameter: 'file' (the recording, as a multipart file)",
            )),
        }
    }
}

/// 413 before a byte of the body is read when its declared length is over `limit`.
pub(super) fn refuse_oversized(headers: &HeaderMap, limit: u64) -> Result<()> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => Err(AppError::PayloadTooLarge),
        _ => Ok(()),
    }
}

/// Reads a `multipart/form-data` request: a `file` over `max_file` bytes is refused as soon
/// as it passes the limit, the rest of the body unread.
pub(super) async fn read_form(request: Request, max_file: u64) -> Result<Form> {
    refuse_oversized(request.headers(), max_file.saturating_add(FORM_SLACK))?;
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| AppError::invalid(format!("Expected a multipart form: {}", e.body_text())))?;
    let mut form = Form::default();
    while let Some(mut field) = multipart.next_field().await.map_err(unreadable_form)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let file_name = field.file_name().map(str::to_string);
            let mut bytes = BytesMut::new();
            while let Some(chunk) = field.chunk().await.map_err(unreadable_form)? {
                if (bytes.len() + chunk.len()) as u64 > max_file {
                    return Err(AppError::PayloadTooLarge);
                }
                bytes.extend_from_slice(&chunk);
            }
            form.file = Some((file_name, bytes.freeze()));
        } else {
            let value = field.text().await.map_err(unreadable_form)?;
            form.fields.push((name, value));
        }
    }
    Ok(form)
}

fn unreadable_form(e: axum::extract::multipart::MultipartError) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge
    } else {
        AppError::invalid(format!("The form could not be read: {}", e.body_text()))
    }
}

/// `true`/`false` (and `1`/`0`, `on`/`off`) as forms send them.
pub(super) fn flag(form: &Form, name: &str) -> Result<bool> {
    match form.field(name).map(str::trim) {
        None | Some("") => Ok(false),
        Some("true" | "1" | "on") => Ok(true),
        Some("false" | "0" | "off") => Ok(false),
        Some(other) => Err(AppError::field(
            ErrorCode::InvalidRequest,
            name,
            format!("`{other}` is not true or false"),
        )),
    }
}

/// The JSON body that transcribes an audio of the library.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FromAudio {
    audio_id: String,
    provider: Option<String>,
    model: Option<String>,
    language: Option<String>,
    #[serde(default)]
    speakers: bool,
}

/// `POST /api/transcriptions`: a multipart upload (`file`, and optionally `provider`,
/// `model`, `language`, `speakers`) or JSON `{"audio_id", …}`. 202 with the queued transcript.
#[tracing::instrument(skip_all)]
async fn create(
    State(state): State<AppState>,
    user: RateLimitedUser,
    request: Request,
) -> Result<(StatusCode, Json<TranscriptView>)> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    let (source, choices) = if multipart {
        let mut form = read_form(request, state.config.transcription.max_upload_bytes).await?;
        let (file_name, bytes) = form.take_file()?;
        let choices = Choices {
            provider: form.field("provider").map(str::to_string),
            model: form.field("model").map(str::to_string),
            language: form.field("language").map(str::to_string),
            speakers: flag(&form, "speakers")?,
        };
        (Source::Upload { bytes, file_name }, choices)
    } else {
        let AppJson(body) = AppJson::<FromAudio>::from_request(request, &()).await?;
        let audio: AudioId = parse_id(&body.audio_id)?;
        let choices = Choices {
            provider: body.provider,
            model: body.model,
            language: body.language,
            speakers: body.speakers,
        };
        (Source::Audio(audio), choices)
    };
    let row = service::create(&state, user.id, source, choices).await?;
    Ok((StatusCode::ACCEPTED, Json(row.into())))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    q: Option<String>,
    audio_id: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(query): Query<ListQuery>,
) -> Result<Page<TranscriptView>> {
    let req = query.page.request()?;
    let before = req
        .ulid_cursor()?
        .map(|c| c.parse::<TranscriptId>())
        .transpose()
        .map_err(|_| AppError::invalid("cursor is not valid"))?;
    let filter = ListFilter {
        q: query.q,
        audio: parse_id_filter("audio_id", query.audio_id.as_deref())?,
    };
    let rows = service::list(&state, user.id, filter, before, req.fetch()).await?;
    let page = Page::from_rows(rows, &req, |r| r.id.to_string());
    Ok(page.map(TranscriptView::from))
}

#[derive(Debug, Deserialize)]
struct ReadQuery {
    format: Option<String>,
}

/// `GET /api/transcriptions/{id}`: the transcript (with what was heard once done); with an
/// extension (`{id}.srt`) or `?format=`, the download in that format.
#[tracing::instrument(skip_all, fields(transcript = %id))]
async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    Query(query): Query<ReadQuery>,
) -> Result<Response> {
    let (id, extension) = match id.split_once('.') {
        Some((id, ext)) => (id, Some(ext)),
        None => (id.as_str(), None),
    };
    let id: TranscriptId = parse_id(id)?;
    let wanted = extension.or(query.format.as_deref().filter(|f| !f.is_empty()));
    let Some(wanted) = wanted else {
        return Ok(Json(service::read(&state, user.id, id).await?).into_response());
    };
    let format = Download::parse(&wanted.to_ascii_lowercase()).ok_or_else(|| {
        AppError::field(
            ErrorCode::InvalidRequest,
            "format",
            format!("format must be one of {}", Download::NAMES.join(", ")),
        )
    })?;
    let (row, body) = service::download(&state, user.id, id, format).await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            ),
            (
                header::CONTENT_DISPOSITION,
                files::disposition(&row.title, format.extension()),
            ),
        ],
        body,
    )
        .into_response())
}

/// `GET /api/transcriptions/{id}/recording`: the uploaded recording as it was sent, in byte
/// ranges as players seek. It never changes, so its id is its entity tag.
#[tracing::instrument(skip_all, fields(transcript = %id))]
async fn recording(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response> {
    let row = service::get(&state, user.id, parse_id(&id)?).await?;
    let (key, mime) = service::recording(&row)?;
    let size = match row.size_bytes {
        Some(size) => size as u64,
        None => state.storage.head(&key).await?.size,
    };
    let stored = files::Stored {
        key: key.as_str(),
        size,
        etag: format!("\"{}\"", row.id),
        modified_ms: row.created_at,
        content_type: mime,
        disposition: None,
    };
    let ask = files::Ask {
        method: &method,
        headers: &headers,
        link_exp: None,
    };
    files::serve_object(&state, stored, &ask, "private, max-age=0, must-revalidate").await
}

#[tracing::instrument(skip_all, fields(transcript = %id))]
async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    // Unparseable ids name nothing: deleting nothing succeeds, as for any gone transcript.
    if let Ok(id) = id.parse::<TranscriptId>() {
        service::delete(&state, user.id, id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
