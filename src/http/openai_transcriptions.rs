//! `POST /v1/audio/transcriptions` and `/v1/audio/translations`: OpenAI's speech-to-text
//! endpoints over every provider, answered within the request (`stream=true`: as server-sent
//! events while the pieces of a long recording are heard). Errors are the app's own; the edge
//! renders them in OpenAI's envelope on `/v1`.

use std::convert::Infallible;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;

use super::HttpState;
use super::transcriptions::{FORM_SLACK, Form, flag, read_form};
use crate::config::Config;
use crate::error::{AppError, ErrorCode, Result};
use crate::http::extract::RateLimitedUser;
use crate::providers::asr::{Granularities, Task};
use crate::state::AppState;
use crate::transcription::{Options, gateway, render, service};

pub fn router(config: &Config) -> Router<HttpState> {
    let limit = config
        .gateway
        .transcription
        .max_upload_bytes
        .saturating_add(FORM_SLACK);
    let limit = DefaultBodyLimit::max(usize::try_from(limit).unwrap_or(usize::MAX));
    Router::new()
        .route(
            "/v1/audio/transcriptions",
            post(transcriptions).layer(limit),
        )
        .route("/v1/audio/translations", post(translations).layer(limit))
}

/// OpenAI's `response_format`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseFormat {
    Json,
    Text,
    Srt,
    VerboseJson,
    Vtt,
}

const RESPONSE_FORMATS: [&str; 5] = ["json", "text", "srt", "verbose_json", "vtt"];

impl ResponseFormat {
    fn parse(form: &Form) -> Result<Self> {
        Ok(match form.field("response_format").map(str::trim) {
            None | Some("" | "json") => Self::Json,
            Some("text") => Self::Text,
            Some("srt") => Self::Srt,
            Some("verbose_json") => Self::VerboseJson,
            Some("vtt") => Self::Vtt,
            Some(other) => {
                return Err(AppError::field(
                    ErrorCode::InvalidRequest,
                    "response_format",
                    format!("'{other}' is not one of {}", RESPONSE_FORMATS.join(", ")),
                ));
            }
        })
    }
}

/// `timestamp_granularities[]` (or the field repeated without brackets): which timestamps a
/// `verbose_json` answer lists, `(words, segments)`. None asked: segments, as OpenAI answers.
fn granularities(form: &Form) -> Result<(bool, bool)> {
    let (mut words, mut segments) = (false, false);
    for value in form.all(&["timestamp_granularities[]", "timestamp_granularities"]) {
        // Some clients send the list as one comma-separated value.
        for g in value.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            match g {
                "word" => words = true,
                "segment" => segments = true,
                other => {
                    return Err(AppError::field(
                        ErrorCode::InvalidRequest,
                        "timestamp_granularities",
                        format!("'{other}' is not one of word, segment"),
                    ));
                }
            }
        }
    }
    Ok((words, segments))
}

fn temperature(form: &Form) -> Result<Option<f32>> {
    match form.field("temperature").map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => match t.parse::<f32>() {
            Ok(t) if (0.0..=1.0).contains(&t) => Ok(Some(t)),
            _ => Err(AppError::field(
                ErrorCode::InvalidRequest,
                "temperature",
                "temperature must be a number from 0 to 1",
            )),
        },
    }
}

#[tracing::instrument(skip_all)]
async fn transcriptions(
    State(state): State<AppState>,
    user: RateLimitedUser,
    request: Request,
) -> Result<Response> {
    answer(state, user, request, Task::Transcribe).await
}

#[tracing::instrument(skip_all)]
async fn translations(
    State(state): State<AppState>,
    user: RateLimitedUser,
    request: Request,
) -> Result<Response> {
    answer(state, user, request, Task::Translate).await
}

async fn answer(
    state: AppState,
    user: RateLimitedUser,
    request: Request,
    task: Task,
) -> Result<Response> {
    let mut form = read_form(request, state.config.gateway.transcription.max_upload_bytes).await?;
    let (_, file) = form.take_file()?;
    let model = form.field("model").unwrap_or_default().to_string();
    let format = ResponseFormat::parse(&form)?;
    let (words, segments) = granularities(&form)?;
    let streamed = flag(&form, "stream")?;
    let language = match task {
        // A translation is English whatever was spoken; OpenAI takes no language for it.
        Task::Translate => None,
        Task::Transcribe => service::language(form.field("language"), "language")?,
    };
    let route = gateway::route(&state, &model, task)?;
    let options = Options {
        model: route.model.clone(),
        language,
        prompt: form
            .field("prompt")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        temperature: temperature(&form)?,
        task,
        // Every timestamp the provider has: the answer shows what was asked for.
        granularities: Granularities::default(),
        speaker_labels: false,
    };
    let prepared = gateway::prepare(&state, user.id, route, options, file, streamed).await?;
    if streamed {
        let events = gateway::stream(state.services.clone(), prepared)
            .map(|event| Ok::<_, Infallible>(Event::default().data(event.to_string())));
        return Ok(Sse::new(events)
            .keep_alive(KeepAlive::default())
            .into_response());
    }
    let transcript = gateway::transcribe(&state, prepared).await?;
    let text = |body: String| {
        ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
    };
    Ok(match format {
        ResponseFormat::Json => axum::Json(render::openai_json(&transcript)).into_response(),
        ResponseFormat::VerboseJson => {
            axum::Json(render::openai_verbose(&transcript, task, words, segments)).into_response()
        }
        ResponseFormat::Text => text(render::text(&transcript)),
        ResponseFormat::Srt => text(render::srt(&transcript)),
        ResponseFormat::Vtt => text(render::vtt(&transcript)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> Form {
        Form {
            fields: fields
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            file: None,
        }
    }

    #[test]
    fn granularities_are_read_from_both_field_forms() {
        assert_eq!(granularities(&form(&[])).unwrap(), (false, false));
        assert_eq!(
            granularities(&form(&[("timestamp_granularities[]", "word")])).unwrap(),
            (true, false)
        );
        assert_eq!(
            granularities(&form(&[
                ("timestamp_granularities", "segment"),
                ("timestamp_granularities", "word"),
            ]))
            .unwrap(),
            (true, true)
        );
        let e = granularities(&form(&[("timestamp_granularities[]", "char")])).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidRequest);
    }

    #[test]
    fn response_formats_and_temperatures_are_checked() {
        assert_eq!(
            ResponseFormat::parse(&form(&[])).unwrap(),
            ResponseFormat::Json
        );
        assert_eq!(
            ResponseFormat::parse(&form(&[("response_format", "verbose_json")])).unwrap(),
            ResponseFormat::VerboseJson
        );
        let e = ResponseFormat::parse(&form(&[("response_format", "xml")])).unwrap_err();
        assert!(
            e.to_string().contains("json, text, srt, verbose_json, vtt"),
            "{e}"
        );
        assert_eq!(
            temperature(&form(&[("temperature", "0.2")])).unwrap(),
            Some(0.2)
        );
        assert!(temperature(&form(&[("temperature", "1.5")])).is_err());
    }
}
