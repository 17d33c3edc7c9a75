//! `POST /v1/audio/speech` without HTTP: an OpenAI-style request is checked and routed, then
//! spoken with the synthesis toolkit the library's jobs use (the text rule, chunking, the
//! provider's concurrency, the result cache, usage and cost, the monthly quota), as pieces of
//! audio sent as soon as they are made. Results are not library audios: they are cached and
//! billed, not stored in anyone's library (OpenAI's API keeps nothing either).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::route::{self, RouteError};
use crate::audio::{self, AudioError, Encoding, Format, StreamEncoder};
use crate::db::audios::StoredFile;
use crate::db::usage::Billed;
use crate::db::{UsageSource, UserId};
use crate::error::{AppError, ErrorCode, Result};
use crate::providers::{SynthesisRequest, Tts};
use crate::services::Services;
use crate::speech::synth::{self, CHUNK_PAUSE_MS, cache_key};
use crate::storage::{Key, keys};

/// OpenAI's bounds for `speed`; each provider clamps to its own range within them.
pub const MIN_SPEED: f64 = 0.25;
pub const MAX_SPEED: f64 = 4.0;
/// OpenAI's limit on `instructions`.
pub const MAX_INSTRUCTIONS_CHARS: usize = 4096;

/// A speech request as OpenAI's clients send it. Fields it does not know are ignored, as
/// OpenAI-compatible servers do; the required ones are checked by [`speak`] so each missing
/// one is named.
#[derive(Debug, Default, Deserialize)]
pub struct SpeechRequest {
    pub model: Option<String>,
    pub input: Option<String>,
    pub voice: Option<VoiceParam>,
    pub instructions: Option<String>,
    pub response_format: Option<String>,
    pub speed: Option<f64>,
    pub stream_format: Option<String>,
}

/// `voice`: a name (`"nova"`, `"kokoro:af_heart"`) or a custom-voice object `{"id": …}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum VoiceParam {
    Name(String),
    Object { id: String },
}

impl VoiceParam {
    fn name(&self) -> &str {
        match self {
            Self::Name(name) | Self::Object { id: name } => name.trim(),
        }
    }
}

/// How the audio travels: raw bytes, or Server-Sent Events with base64 pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    Audio,
    Sse,
}

/// What one answer is made of, in order: audio pieces, then the usage.
#[derive(Debug)]
pub enum Piece {
    /// Encoded audio in the requested format (empty while FLAC waits for its end).
    Audio(Bytes),
    Done(SpeechUsage),
}

/// What the request counted: aimake meters speech in characters, which the SSE `done` event
/// reports in OpenAI's usage fields (`input_tokens` and `total_tokens` are characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SpeechUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub characters: u64,
}

impl SpeechUsage {
    fn of(characters: u64) -> Self {
        Self {
            input_tokens: characters,
            output_tokens: 0,
            total_tokens: characters,
            characters,
        }
    }
}

/// A request on its way: the first piece was made, so nothing before the audio failed.
pub struct Speech {
    pub stream_format: StreamFormat,
    pub content_type: &'static str,
    /// Audio pieces, then `Done`; an error after the first piece ends it early.
    pub pieces: BoxStream<'static, Result<Piece>>,
}

/// What a request speaks, checked and routed; nothing is paid yet.
struct Plan {
    user: UserId,
    provider: Arc<dyn Tts>,
    /// The provider's own voice name.
    voice: String,
    /// The model the route names for the provider, if any.
    model: Option<String>,
    instructions: Option<String>,
    text: String,
    speed: f64,
    /// The `response_format` name, which also names the kept object.
    format_name: &'static str,
    encoding: Encoding,
    /// The result cache's key for this exact request.
    key: String,
    service: String,
}

/// Checks, routes and starts speaking `request` for `user`; answers once the first piece of
/// audio is made (or known to come from the cache), so a refused key, a bad field, an
/// exhausted quota or a provider failing at once is an ordinary error answer.
#[tracing::instrument(
    skip_all,
    fields(
        model = tracing::field::Empty,
        provider = tracing::field::Empty,
        voice = tracing::field::Empty,
        chars = tracing::field::Empty
    )
)]
pub async fn speak(state: &Services, user: UserId, request: SpeechRequest) -> Result<Speech> {
    let stream_format = match request.stream_format.as_deref() {
        None | Some("audio") => StreamFormat::Audio,
        Some("sse") => StreamFormat::Sse,
        Some(other) => {
            return Err(AppError::field(
                ErrorCode::InvalidRequest,
                "stream_format",
                format!("stream_format must be audio or sse, not `{other}`"),
            ));
        }
    };
    let plan = plan(state, user, request).await?;
    let content_type = content_type(plan.encoding);
    let span = tracing::Span::current();
    span.record("provider", plan.provider.id());
    span.record("voice", plan.voice.as_str());
    span.record("chars", plan.text.chars().count() as u64);

    let chars = plan.text.chars().count() as u64;
    state
        .auth
        .ensure_quota(user, chars as usize, "input")
        .await?;
    if let Some(hit) = synth::cached(state, plan.key.clone()).await? {
        let bytes = state.storage.get(&Key::from_stored(hit.object_key)).await?;
        let billed = Billed {
            service: plan.service.clone(),
            units: chars as i64,
            cost_micros: 0,
            cached: true,
        };
        state
            .db
            .usage()
            .record(user, None, billed, UsageSource::Gateway)
            .await?;
        let pieces = [
            Ok(Piece::Audio(bytes)),
            Ok(Piece::Done(SpeechUsage::of(chars))),
        ];
        return Ok(Speech {
            stream_format,
            content_type,
            pieces: futures::stream::iter(pieces).boxed(),
        });
    }
    let state = state.clone();
    let mut pieces = crate::speech::stream::channel_stream(move |tx| produce(state, plan, tx));
    let first = match pieces.next().await {
        Some(Ok(first)) => first,
        Some(Err(e)) => return Err(e),
        None => {
            return Err(AppError::Internal(anyhow::anyhow!(
                "the speech ended before it began"
            )));
        }
    };
    Ok(Speech {
        stream_format,
        content_type,
        pieces: futures::stream::once(async move { Ok(first) })
            .chain(pieces)
            .boxed(),
    })
}

/// Checks every field (each refusal names its field), routes the model and voice, and names
/// the result.
async fn plan(state: &Services, user: UserId, request: SpeechRequest) -> Result<Plan> {
    let model = request
        .model
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| missing("model"))?;
    tracing::Span::current().record("model", model);
    let input = request.input.as_deref().ok_or_else(|| missing("input"))?;
    let text = crate::speech::text::spoken(input).map_err(|p| p.for_field("input", "The input"))?;
    let max = state.config.gateway.max_input_chars;
    let chars = text.chars().count();
    if chars > max {
        return Err(AppError::field(
            ErrorCode::TextTooLong,
            "input",
            format!("The input has {chars} characters; the limit is {max}"),
        ));
    }
    let voice = request
        .voice
        .as_ref()
        .map(VoiceParam::name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| missing("voice"))?;
    let format_name = request.response_format.as_deref().unwrap_or("mp3");
    let encoding = Encoding::for_response_format(format_name).map_err(|e| {
        AppError::field(
            ErrorCode::InvalidRequest,
            "response_format",
            format!("Unsupported response_format: {e}"),
        )
    })?;
    let format_name = audio::RESPONSE_FORMATS
        .into_iter()
        .find(|f| *f == format_name)
        .expect("an encodable format is listed");
    let speed = request.speed.unwrap_or(1.0);
    if !(MIN_SPEED..=MAX_SPEED).contains(&speed) {
        return Err(AppError::field(
            ErrorCode::InvalidRequest,
            "speed",
            format!("speed must be between {MIN_SPEED} and {MAX_SPEED}"),
        ));
    }
    let instructions = request.instructions.filter(|i| !i.trim().is_empty());
    if let Some(i) = &instructions
        && i.chars().count() > MAX_INSTRUCTIONS_CHARS
    {
        return Err(AppError::field(
            ErrorCode::InvalidRequest,
            "instructions",
            format!("instructions may have at most {MAX_INSTRUCTIONS_CHARS} characters"),
        ));
    }

    let ready = super::ready(&state.providers);
    let route = route::route(&state.config.gateway, model, voice, &ready).map_err(|e| match e {
        RouteError::UnknownModel(_) => AppError::Unknown {
            code: ErrorCode::ModelNotFound,
            details: Some(serde_json::json!({ "model": e.to_string() })),
            message: e.to_string(),
        },
        RouteError::UnknownVoice { .. } => {
            AppError::field(ErrorCode::UnknownVoice, "voice", e.to_string())
        }
    })?;
    let voice_id = format!("{}:{}", route.provider, route.voice);
    let on_voice = |e: crate::providers::ProviderError| match AppError::from(e) {
        AppError::BadRequest { code, message, .. } => AppError::field(code, "voice", message),
        other => other,
    };
    // OpenAI-compatible servers know their own voices; the rest are checked against their
    // provider's list, as the library checks them.
    let provider = if route.provider == "openai" {
        state.providers.resolve(&voice_id).map_err(on_voice)?.0
    } else {
        state.providers.voice(&voice_id).await.map_err(on_voice)?.0
    };
    let spoken_by = provider.model_for(route.model.as_deref()).to_string();
    let mut format_part = format!("v1:{format_name}");
    if let Some(i) = &instructions {
        format_part.push('\n');
        format_part.push_str(i);
    }
    Ok(Plan {
        user,
        key: cache_key(
            provider.id(),
            &spoken_by,
            &route.voice,
            speed,
            &format_part,
            &text,
        ),
        service: synth::service_named(provider.as_ref(), &spoken_by),
        provider,
        voice: route.voice,
        model: route.model,
        instructions,
        text,
        speed,
        format_name,
        encoding,
    })
}

fn missing(field: &str) -> AppError {
    AppError::field(
        ErrorCode::InvalidRequest,
        field,
        format!("Missing required parameter: `{field}`"),
    )
}

/// The media type of each `response_format` (OpenAI's; raw PCM is `audio/pcm`).
pub fn content_type(encoding: Encoding) -> &'static str {
    match encoding.format() {
        Format::PcmS16Le { .. } => "audio/pcm",
        other => other.mime_type(),
    }
}

/// The audio a request made, for the cache.
struct Made {
    bytes: Bytes,
    /// Known when the pieces were encoded here; a provider's own file is measured.
    duration_ms: Option<u64>,
}

/// Synthesizes and sends the pieces, then keeps the result and bills it. Whatever happens,
/// the characters the provider was paid for are billed: when the listener goes away, the
/// chunks not yet asked for are never paid for.
async fn produce(state: Services, plan: Plan, tx: mpsc::Sender<Result<Piece>>) {
    let paid = AtomicUsize::new(0);
    let made = synthesize(&plan, &tx, &paid).await;
    let chars = paid.load(Ordering::SeqCst);
    let billed = Billed {
        service: plan.service.clone(),
        units: chars as i64,
        cost_micros: plan.provider.cost_micros(chars) as i64,
        cached: false,
    };
    let recorded = match made {
        Ok(Some(made)) => remember(&state, &plan, made, billed).await.map(|()| true),
        Ok(None) => bill(&state, &plan, chars, billed).await.map(|()| false),
        Err(e) => {
            if let Err(bill_error) = bill(&state, &plan, chars, billed).await {
                tracing::error!(error = %bill_error, "could not record the usage of a failed speech");
            }
            let _ = tx.send(Err(e)).await;
            return;
        }
    };
    match recorded {
        Ok(true) => {
            let usage = SpeechUsage::of(chars as u64);
            let _ = tx.send(Ok(Piece::Done(usage))).await;
        }
        Ok(false) => {}
        Err(e) => {
            let _ = tx.send(Err(e)).await;
        }
    }
}

/// The usage of chunks that were paid for but make no result (the listener left, or a later
/// chunk failed).
async fn bill(state: &Services, plan: &Plan, chars: usize, billed: Billed) -> Result<()> {
    if chars > 0 {
        state
            .db
            .usage()
            .record(plan.user, None, billed, UsageSource::Gateway)
            .await?;
    }
    Ok(())
}

/// The pieces in text order, each chunk synthesized as soon as the provider's concurrency
/// allows and sent as soon as the ones before it were. `None` when the listener went away.
async fn synthesize(
    plan: &Plan,
    tx: &mpsc::Sender<Result<Piece>>,
    paid: &AtomicUsize,
) -> Result<Option<Made>> {
    let chunks: Vec<String> =
        synth::split_for_provider(plan.provider.as_ref(), &plan.voice, &plan.text)
            .map_err(|e| AppError::field(ErrorCode::TextTooLong, "input", e.to_string()))?
            .into_iter()
            .map(str::to_string)
            .collect();
    let wanted = plan.encoding.format();
    let single = chunks.len() == 1;
    let concurrency = plan.provider.max_concurrency().max(1);
    let mut spoken = futures::stream::iter(chunks)
        .map(|text| async move {
            let chars = text.chars().count();
            let request = SynthesisRequest {
                text,
                voice: plan.voice.clone(),
                speed: plan.speed as f32,
                format_hint: wanted,
                model: plan.model.clone(),
                instructions: plan.instructions.clone(),
            };
            let out = crate::providers::speak(plan.provider.as_ref(), &request).await?;
            paid.fetch_add(chars, Ordering::SeqCst);
            Ok::<_, AppError>(out)
        })
        .buffered(concurrency);
    let mut made = Vec::new();
    let mut encoder: Option<Encoder> = None;
    while let Some(out) = spoken.next().await {
        let out = out?;
        let piece = if single && out.format == wanted {
            // One chunk already in the wanted format goes out byte for byte.
            out.bytes
        } else {
            let (kept, bytes) =
                encode(encoder.take(), plan.encoding, out.bytes, out.format).await?;
            encoder = Some(kept);
            Bytes::from(bytes)
        };
        made.extend_from_slice(&piece);
        if tx.send(Ok(Piece::Audio(piece))).await.is_err() {
            return Ok(None);
        }
    }
    let duration_ms = match encoder {
        Some(encoder) => {
            let (duration_ms, tail) = finish(encoder).await?;
            made.extend_from_slice(&tail);
            if tx.send(Ok(Piece::Audio(Bytes::from(tail)))).await.is_err() {
                return Ok(None);
            }
            Some(duration_ms)
        }
        None => None,
    };
    Ok(Some(Made {
        bytes: Bytes::from(made),
        duration_ms,
    }))
}

/// The encoder of one answer, at the rate of its first chunk, with the frames it took.
struct Encoder {
    inner: StreamEncoder,
    rate: u32,
    frames: u64,
}

/// One chunk into the answer's format, after a short pause when it is not the first.
async fn encode(
    encoder: Option<Encoder>,
    encoding: Encoding,
    bytes: Bytes,
    format: Format,
) -> Result<(Encoder, Vec<u8>)> {
    let work = move || -> std::result::Result<(Encoder, Vec<u8>), AudioError> {
        let pcm = audio::decode(&bytes, format)?;
        let mut encoder = match encoder {
            Some(encoder) => encoder,
            None => Encoder {
                inner: StreamEncoder::new(encoding, pcm.sample_rate, 1)?,
                rate: pcm.sample_rate,
                frames: 0,
            },
        };
        let pcm = audio::conform(pcm, encoder.rate, 1)?;
        let mut out = Vec::new();
        if encoder.frames > 0 {
            let pause =
                vec![0.0; (u64::from(encoder.rate) * u64::from(CHUNK_PAUSE_MS) / 1000) as usize];
            encoder.inner.push(&pause, &mut out)?;
            encoder.frames += pause.len() as u64;
        }
        encoder.inner.push(&pcm.samples, &mut out)?;
        encoder.frames += pcm.samples.len() as u64;
        Ok((encoder, out))
    };
    tokio::task::spawn_blocking(work)
        .await
        .map_err(anyhow::Error::from)?
        .map_err(unusable)
}

/// The encoder's last bytes (all of FLAC), and the answer's length.
async fn finish(encoder: Encoder) -> Result<(u64, Vec<u8>)> {
    let work = move || -> std::result::Result<(u64, Vec<u8>), AudioError> {
        let mut out = Vec::new();
        let duration_ms = encoder.frames * 1000 / u64::from(encoder.rate);
        encoder.inner.finish(&mut out)?;
        Ok((duration_ms, out))
    };
    tokio::task::spawn_blocking(work)
        .await
        .map_err(anyhow::Error::from)?
        .map_err(unusable)
}

fn unusable(e: AudioError) -> AppError {
    AppError::Unavailable {
        code: ErrorCode::ProviderBadAudio,
        message: format!("Unusable audio from the provider: {e}"),
    }
}

/// Keeps the result for the cache and records its usage with its cache entry. A result that
/// cannot be kept is still billed.
async fn remember(state: &Services, plan: &Plan, made: Made, billed: Billed) -> Result<()> {
    let key = keys::cached_speech(&plan.key, plan.format_name);
    let duration_ms = match made.duration_ms {
        Some(ms) => ms,
        None => {
            let (bytes, format) = (made.bytes.clone(), plan.encoding.format());
            tokio::task::spawn_blocking(move || audio::probe(&bytes, format))
                .await
                .map_err(anyhow::Error::from)?
                .map_err(unusable)?
                .duration_ms
        }
    };
    let file = StoredFile {
        object_key: key.as_str().to_string(),
        peaks_key: String::new(),
        duration_ms: duration_ms as i64,
        size_bytes: made.bytes.len() as i64,
        sha256: hex::encode(Sha256::digest(&made.bytes)),
    };
    match state.storage.put(&key, made.bytes).await {
        Ok(()) => {
            state
                .db
                .tts_cache()
                .put_billed(
                    plan.key.clone(),
                    file,
                    plan.user,
                    billed,
                    UsageSource::Gateway,
                )
                .await?
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not keep a speech result for the cache");
            state
                .db
                .usage()
                .record(plan.user, None, billed, UsageSource::Gateway)
                .await?;
        }
    }
    Ok(())
}
