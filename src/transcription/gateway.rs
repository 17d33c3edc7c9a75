//! OpenAI's transcription and translation endpoints over every provider: which provider and
//! model a request's `model` names, and the transcription itself within the request, split
//! and heard in parallel like the library's job, billed piece by piece.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::{Value, json};

use super::{Options, hear, plan, stitch};
use crate::audio::{Pcm, Piece};
use crate::db::{UsageSource, UserId};
use crate::error::{AppError, ErrorCode, Result};
use crate::providers::asr::{ASR_PROVIDER_IDS, Asr, Task, Transcript, join_words};
use crate::services::Services;

/// OpenAI's own transcription models: they go to OpenAI when its key is set, else to the
/// configured (or first enabled) provider with that provider's model.
pub const OPENAI_MODELS: [&str; 3] = ["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"];

fn is_openai_model(model: &str) -> bool {
    OPENAI_MODELS.contains(&model) || (model.starts_with("gpt-4o") && model.contains("transcribe"))
}

/// A provider and its own model, as a request's `model` names them.
#[derive(Clone)]
pub struct Route {
    pub provider: Arc<dyn Asr>,
    pub model: String,
}

/// Where `model` goes, in this order: a name from `gateway.transcription.models`; OpenAI's
/// names (to OpenAI with its key, else to `gateway.transcription.provider` or the first
/// enabled provider); `provider` or `provider:model`; any other name to the OpenAI-compatible
/// server when one is configured (such servers name their models freely). `task` must be
/// one the provider's model can do.
pub fn route(state: &Services, model: &str, task: Task) -> Result<Route> {
    let model = model.trim();
    if model.is_empty() {
        return Err(AppError::field(
            ErrorCode::InvalidRequest,
            "model",
            "you must provide a model parameter",
        ));
    }
    let config = &state.config.gateway.transcription;
    let route = if let Some(target) = config.models.get(model) {
        named(state, target)?
    } else if is_openai_model(model) {
        match state.providers.asr("openai") {
            Some(openai) if state.config.providers.openai.api_key.is_some() => Route {
                provider: openai,
                model: model.to_string(),
            },
            _ => {
                let provider = match local_whisper(state) {
                    Some(local) => local,
                    None => {
                        super::service::provider(state, Some(config.provider.as_str()), "model")?
                    }
                };
                Route {
                    model: provider.model().to_string(),
                    provider,
                }
            }
        }
    } else if ASR_PROVIDER_IDS.contains(&model.split(':').next().unwrap_or_default()) {
        named(state, model)?
    } else {
        match state.providers.asr("openai") {
            Some(openai) => Route {
                provider: openai,
                model: model.to_string(),
            },
            None => {
                return Err(AppError::field(
                    ErrorCode::InvalidRequest,
                    "model",
                    format!(
                        "The model `{model}` does not exist; use {} or provider:model with a \
                         provider of {}",
                        OPENAI_MODELS.join(", "),
                        ASR_PROVIDER_IDS.join(", ")
                    ),
                ));
            }
        }
    };
    if task == Task::Translate && !route.provider.capabilities(&route.model).translate {
        return Err(AppError::field(
            ErrorCode::InvalidRequest,
            "model",
            format!(
                "{} cannot translate speech with {}",
                crate::providers::display_name(route.provider.id()),
                route.model
            ),
        ));
    }
    Ok(route)
}

/// The engine on this machine, for OpenAI's model names without an OpenAI key: when a Whisper
/// model is installed and no provider is configured for them (`gateway.transcription.provider`,
/// then `transcription.provider`), Whisper's own names are heard by Whisper.
fn local_whisper(state: &Services) -> Option<Arc<dyn Asr>> {
    let configured = !state.config.gateway.transcription.provider.is_empty()
        || !state.config.transcription.provider.is_empty();
    state
        .providers
        .asr("whisper")
        .filter(|w| !configured && w.ready())
}

/// The transcription model names `route` sends to a provider now, each with that provider's
/// id: OpenAI's names, then `gateway.transcription.models`, then each installed Whisper model
/// as `whisper:<model>`, each name once. Names that reach no enabled provider are left out.
pub fn models(state: &Services) -> Vec<(String, &'static str)> {
    let mut routed: Vec<(String, &'static str)> = Vec::new();
    let names = OPENAI_MODELS
        .iter()
        .map(|m| m.to_string())
        .chain(state.config.gateway.transcription.models.keys().cloned())
        .chain(
            state
                .providers
                .asr("whisper")
                .filter(|w| w.ready())
                .into_iter()
                .flat_map(|w| w.models())
                .map(|m| format!("whisper:{m}")),
        );
    for name in names {
        if routed.iter().any(|(n, _)| *n == name) {
            continue;
        }
        if let Ok(route) = route(state, &name, Task::Transcribe) {
            routed.push((name, route.provider.id()));
        }
    }
    routed
}

/// `provider` or `provider:model`.
fn named(state: &Services, target: &str) -> Result<Route> {
    let (id, model) = target.split_once(':').unwrap_or((target, ""));
    let provider = super::service::provider(state, Some(id), "model")?;
    let model = if model.is_empty() {
        provider.model().to_string()
    } else {
        model.to_string()
    };
    Ok(Route { provider, model })
}

/// An upload checked and decoded, split for its provider: what is left is paid work.
pub struct Prepared {
    route: Route,
    options: Options,
    user: UserId,
    pcm: Arc<Pcm>,
    pieces: Vec<Piece>,
}

impl Prepared {
    pub fn duration_ms(&self) -> u64 {
        self.pcm.duration_ms()
    }
}

/// Checks the allowance and decodes the upload (400 naming the formats read when it is not
/// audio), then plans its pieces (a short first one when the answer is `streamed`). Nothing
/// is paid for yet.
pub async fn prepare(
    state: &Services,
    user: UserId,
    route: Route,
    mut options: Options,
    upload: Bytes,
    streamed: bool,
) -> Result<Prepared> {
    state.auth.ensure_quota_left(user, "transcription").await?;
    let pcm = super::decode(upload)
        .await
        .map_err(|e| super::unreadable(&e))?;
    if pcm.frames() == 0 {
        return Err(super::unreadable(&super::silent("audio")));
    }
    let pieces = plan(route.provider.as_ref(), &route.model, &pcm, streamed)
        .map_err(|e| AppError::Internal(e.into()))?;
    options.model = route.model.clone();
    Ok(Prepared {
        route,
        options,
        user,
        pcm: Arc::new(pcm),
        pieces,
    })
}

/// Hears every piece of a prepared upload, in parallel within the provider's concurrency,
/// billing each as it arrives; the stitched transcript. After a piece fails no further piece
/// is sent, but those on their way are waited for and billed: they are paid.
pub async fn transcribe(state: &Services, prepared: Prepared) -> Result<Transcript> {
    let concurrency = prepared.route.provider.max_concurrency().max(1);
    let failed = AtomicBool::new(false);
    let outcomes: Vec<Result<Option<(u64, Transcript)>>> =
        futures::stream::iter(prepared.pieces.clone())
            .map(|piece| {
                let (prepared, failed) = (&prepared, &failed);
                async move {
                    if failed.load(Ordering::SeqCst) {
                        return Ok(None);
                    }
                    let heard = heard_and_billed(state, prepared, piece).await;
                    if heard.is_err() {
                        failed.store(true, Ordering::SeqCst);
                    }
                    heard.map(Some)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
    let mut heard = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        heard.extend(outcome?);
    }
    Ok(stitch(&prepared.route.model, prepared.duration_ms(), heard))
}

async fn heard_and_billed(
    state: &Services,
    prepared: &Prepared,
    piece: Piece,
) -> Result<(u64, Transcript)> {
    let provider = prepared.route.provider.as_ref();
    let heard = hear(provider, &prepared.options, prepared.pcm.clone(), piece)
        .await
        .map_err(AppError::from)?;
    let billed = super::billed(provider, &piece, &heard);
    state
        .db
        .usage()
        .record(prepared.user, None, billed, UsageSource::Gateway)
        .await?;
    Ok((piece.start_ms, heard))
}

/// OpenAI's streamed transcription (`stream=true`) of an upload prepared as `streamed`: a
/// `transcript.text.delta` event with each piece's text as soon as it and every piece before
/// it are heard (pieces are heard in parallel, sent in order), then `transcript.text.done`
/// with the whole text and its usage. A failure mid-way is an `error` event and the end of
/// the stream. Dropping the stream stops the pieces not yet sent for.
pub fn stream(state: Services, prepared: Prepared) -> impl Stream<Item = Value> + Send {
    let concurrency = prepared.route.provider.max_concurrency().max(1);
    let prepared = Arc::new(prepared);
    let texts: Arc<Mutex<Vec<String>>> = Arc::default();
    let seconds = (prepared.duration_ms().div_ceil(1000)).max(1);
    let heard = {
        let (state, prepared) = (state.clone(), prepared.clone());
        futures::stream::iter(prepared.pieces.clone())
            .map(move |piece| {
                let (state, prepared) = (state.clone(), prepared.clone());
                async move { heard_and_billed(&state, &prepared, piece).await }
            })
            .buffered(concurrency)
    };
    let deltas = {
        let texts = texts.clone();
        heard
            .scan(false, move |failed, result| {
                if *failed {
                    return futures::future::ready(None);
                }
                let event = match result {
                    Ok((_, heard)) => {
                        let mut texts = texts.lock().unwrap_or_else(|e| e.into_inner());
                        let before = join_words(texts.iter().map(String::as_str));
                        texts.push(heard.text);
                        let after = join_words(texts.iter().map(String::as_str));
                        let delta = after.get(before.len()..).unwrap_or_default().to_string();
                        json!({"type": "transcript.text.delta", "delta": delta})
                    }
                    Err(e) => {
                        *failed = true;
                        texts.lock().unwrap_or_else(|e| e.into_inner()).clear();
                        json!({"type": "error", "error": {
                            "message": e.to_string(), "code": e.code().as_str(),
                        }})
                    }
                };
                futures::future::ready(Some(event))
            })
            .filter(|event| futures::future::ready(event["delta"] != ""))
    };
    let done = futures::stream::once(async move {
        let texts = texts.lock().unwrap_or_else(|e| e.into_inner());
        if texts.is_empty() && !prepared.pieces.is_empty() {
            return None;
        }
        Some(json!({
            "type": "transcript.text.done",
            "text": join_words(texts.iter().map(String::as_str)),
            "usage": {"type": "duration", "seconds": seconds},
        }))
    })
    .filter_map(futures::future::ready);
    deltas.chain(done)
}
