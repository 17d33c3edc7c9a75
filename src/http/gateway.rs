//! `/v1`: the OpenAI-compatible speech API. Speech with an API token (`Authorization: Bearer
//! amk_…`; a session works too, under the same CSRF check as `/api`), the model list, and the
//! two lists Open WebUI reads, which it asks for without a key. Errors on every `/v1` path
//! take OpenAI's envelope at the edge (`middleware::json_error`).

use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};

use super::HttpState;
use crate::auth::AuthUser;
use crate::error::{AppError, AppJson, ErrorCode, Result};
use crate::gateway::speech::{self, Piece, SpeechRequest, StreamFormat};
use crate::gateway::{self, Model};
use crate::http::extract::RateLimitedUser;
use crate::state::AppState;

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/v1/audio/speech", post(speak))
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route("/v1/audio/models", get(audio_models))
        .route("/v1/audio/voices", get(audio_voices))
}

/// `POST /v1/audio/speech`: the audio as it is made, or Server-Sent Events carrying it.
#[tracing::instrument(skip_all)]
async fn speak(
    State(state): State<AppState>,
    user: RateLimitedUser,
    AppJson(request): AppJson<SpeechRequest>,
) -> Result<Response> {
    let speech = speech::speak(&state, user.id, request).await?;
    Ok(match speech.stream_format {
        StreamFormat::Audio => {
            let mut response = Body::from_stream(audio_bytes(speech.pieces)).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(speech.content_type),
            );
            response
        }
        StreamFormat::Sse => Sse::new(events(speech.pieces)).into_response(),
    })
}

/// Audio bytes until `Done`; an error ends the body early, so the client sees it cut short.
fn audio_bytes(
    pieces: BoxStream<'static, Result<Piece>>,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> {
    pieces.filter_map(|piece| async move {
        match piece {
            Ok(Piece::Audio(bytes)) if !bytes.is_empty() => Some(Ok(bytes)),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(code = %e.code(), "speech cut short: {e:#}");
                Some(Err(std::io::Error::other(e.public_message())))
            }
        }
    })
}

/// OpenAI's speech events: `speech.audio.delta` with base64 audio, then `speech.audio.done`
/// with the usage; an error after the first piece is an `error` event in OpenAI's envelope.
fn events(
    pieces: BoxStream<'static, Result<Piece>>,
) -> impl futures::Stream<Item = std::result::Result<Event, Infallible>> {
    pieces.filter_map(|piece| async move {
        let data = match piece {
            Ok(Piece::Audio(bytes)) if bytes.is_empty() => return None,
            Ok(Piece::Audio(bytes)) => json!({
                "type": "speech.audio.delta",
                "audio": base64::engine::general_purpose::STANDARD.encode(&bytes),
            }),
            Ok(Piece::Done(usage)) => json!({"type": "speech.audio.done", "usage": usage}),
            Err(e) => {
                tracing::warn!(code = %e.code(), "speech cut short: {e:#}");
                let mut body = crate::error::openai_error_body(
                    e.status_code(),
                    e.code().as_str(),
                    &e.public_message(),
                    None,
                );
                body["type"] = json!("error");
                body
            }
        };
        Some(Ok(Event::default().data(data.to_string())))
    })
}

/// When the routes were made: the server's start, in Unix seconds.
fn created(state: &AppState) -> u64 {
    let started = SystemTime::now()
        .checked_sub(state.started.elapsed())
        .unwrap_or(UNIX_EPOCH);
    started
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// `GET /v1/models`: OpenAI's list of the speech models.
#[tracing::instrument(skip_all)]
async fn models(State(state): State<AppState>, _: AuthUser) -> Json<Value> {
    Json(json!({ "object": "list", "data": all_models(&state) }))
}

/// The speech models, then the transcription models the engine on this machine hears.
fn all_models(state: &AppState) -> Vec<Model> {
    let ready = gateway::ready(&state.providers);
    let created = created(state);
    let mut data = gateway::models(&state.config.gateway, &ready, created);
    data.extend(
        crate::transcription::gateway::local_models(state)
            .into_iter()
            .map(|id| Model {
                id,
                object: "model",
                created,
                owned_by: "whisper".into(),
            }),
    );
    data
}

/// `GET /v1/models/{id}`: one of them.
#[tracing::instrument(skip_all)]
async fn model(
    State(state): State<AppState>,
    _: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Model>> {
    all_models(&state)
        .into_iter()
        .find(|m| m.id == id)
        .map(Json)
        .ok_or_else(|| AppError::Unknown {
            code: ErrorCode::ModelNotFound,
            message: format!("The model `{id}` does not exist"),
            details: Some(json!({ "model": "unknown model" })),
        })
}

/// `GET /v1/audio/models`: `{models: [{id, name}]}`, which Open WebUI reads without a key.
#[tracing::instrument(skip_all)]
async fn audio_models(State(state): State<AppState>) -> Json<Value> {
    let models: Vec<gateway::Named> = state
        .config
        .gateway
        .models
        .0
        .keys()
        .map(|id| gateway::Named {
            id: id.clone(),
            name: id.clone(),
        })
        .collect();
    Json(json!({ "models": models }))
}

/// `GET /v1/audio/voices`: `{voices: [{id, name}]}`, which Open WebUI reads without a key.
#[tracing::instrument(skip_all)]
async fn audio_voices(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "voices": gateway::voices(&state.providers).await }))
}
