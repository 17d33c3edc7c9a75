//! The synthesis job: split the text, synthesize the chunks in parallel (each kept in storage
//! until the job ends, so a resumed job never pays twice for a chunk), assemble, store, and
//! commit the audio, its usage and its cache entry together.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use super::synth::{
    self, Billed, CHUNK_PAUSE_MS, Outcome, Progress, StoredFile, Tally, announce_or_discard,
    cache_key, ensure_not_canceled, format_of, owned_pieces, provider_error, publish_done,
    service_of, unprocessable_audio, unusable_audio,
};
use crate::audio::{self, Encoding, Format, MasterOptions, SourcePart};
use crate::db::{AudioId, JobId, UserId, tts_cache};
use crate::error::ErrorCode;
use crate::jobs::{Handler, JobContext, JobError};
use crate::providers::{SynthesisRequest, Tts};
use crate::services::Services;
use crate::storage::{Key, keys};

/// Buckets of the waveform drawn by the player.
const PEAK_BUCKETS: usize = 1000;

pub struct TtsJob;

impl Handler<Services> for TtsJob {
    fn run(&self, ctx: JobContext<Services>) -> BoxFuture<'static, Result<(), JobError>> {
        run(ctx).boxed()
    }

    fn failed(
        &self,
        ctx: JobContext<Services>,
        error: JobError,
    ) -> BoxFuture<'static, anyhow::Result<()>> {
        synth::fail(ctx, error)
    }

    fn canceled(&self, ctx: JobContext<Services>) -> BoxFuture<'static, anyhow::Result<()>> {
        synth::discard_kept(ctx)
    }
}

/// What the job makes, decided before anything is paid for.
struct Plan {
    job: JobId,
    audio: AudioId,
    user: UserId,
    text: String,
    provider: Arc<dyn Tts>,
    /// The provider's own voice name.
    voice: String,
    speed: f64,
    format: Format,
    service: String,
    /// The result cache's key for this exact request.
    key: String,
}

/// The text cut to the provider's request limit.
struct Pieces {
    chunks: Vec<String>,
    /// Billed: exactly the characters the provider is sent (blank stretches are not sent).
    chars: i64,
}

/// Every chunk's audio in text order, and whether the job's folder holds objects to remove.
struct Synthesized {
    sources: Vec<(Bytes, Format)>,
    left_objects: bool,
}

async fn run(ctx: JobContext<Services>) -> Result<(), JobError> {
    let Some(plan) = plan(&ctx).await? else {
        return Ok(()); // deleted or settled meanwhile: nothing to do
    };
    let progress = Progress::new(&ctx.state, plan.audio);
    progress.report(0.01).await?;
    // The same request answered before: its result is reused and nothing is paid.
    if let Some(hit) = synth::cached(&ctx.state, plan.key.clone()).await? {
        return commit_cached(&ctx.state, &plan, hit).await;
    }
    let pieces = pieces(&plan)?;
    let synthesized = synthesize(&ctx, &plan, pieces.chunks, &progress).await?;
    let built = assemble(synthesized.sources, plan.format).await?;
    commit(
        &ctx.state,
        &plan,
        pieces.chars,
        built,
        synthesized.left_objects,
    )
    .await
}

/// Plan: loads the audio and its text, resolves its voice and names the result it asks for.
/// `None` when there is nothing to do: the audio is gone or no longer waiting for this job.
#[tracing::instrument(skip_all)]
async fn plan(ctx: &JobContext<Services>) -> Result<Option<Plan>, JobError> {
    let state = &ctx.state;
    let Some(audio_id) = ctx.job.audio_id else {
        return Err(JobError::fatal(
            ErrorCode::Internal,
            "A synthesis job without an audio",
        ));
    };
    let Some((audio, text)) = state.db.audios().get_with_text(audio_id).await? else {
        return Ok(None);
    };
    if !audio.status.is_live() {
        return Ok(None);
    }
    let user = audio.user_id;
    let voice_id = audio.voice.clone().unwrap_or_default();
    let (provider, voice) = state.providers.resolve(&voice_id).map_err(provider_error)?;
    let format = if audio.format == "wav" {
        Format::Wav
    } else {
        Format::Mp3
    };
    let key = cache_key(
        provider.id(),
        provider.model(),
        &voice.voice,
        audio.speed,
        &audio.format,
        &text,
    );
    Ok(Some(Plan {
        job: ctx.job.id,
        audio: audio_id,
        user,
        text,
        service: service_of(provider.as_ref()),
        provider,
        voice: voice.voice,
        speed: audio.speed,
        format,
        key,
    }))
}

/// The text in chunks the provider accepts, the first one small for providers that start
/// faster on a short request.
fn pieces(plan: &Plan) -> Result<Pieces, JobError> {
    let chunks = owned_pieces(synth::split_for_provider(
        plan.provider.as_ref(),
        &plan.voice,
        &plan.text,
    ))?;
    let chars = chunks.iter().map(|c| c.chars().count()).sum::<usize>() as i64;
    Ok(Pieces { chunks, chars })
}

/// Synthesize: the chunks in parallel up to the provider's concurrency, progress going from 5%
/// to 90%. A text of more than one chunk keeps every chunk under the job's folder, so a
/// resumed job never pays twice and `/stream` can play them as they come.
#[tracing::instrument(skip_all, fields(chunks = chunks.len()))]
async fn synthesize(
    ctx: &JobContext<Services>,
    plan: &Plan,
    chunks: Vec<String>,
    progress: &Progress,
) -> Result<Synthesized, JobError> {
    let state = &ctx.state;
    let job = plan.job;
    let total = chunks.len();
    // A text of one chunk keeps nothing between attempts: its only chunk becomes the audio
    // right after it arrives, so storing it first would cost three object writes and
    // deletes per job to guard a window of a few milliseconds.
    let keep_chunks = total > 1;
    if keep_chunks {
        state
            .storage
            .put(
                &keys::job_parts(job),
                Bytes::from(serde_json::json!({ "total": total }).to_string()),
            )
            .await
            .map_err(anyhow::Error::from)?;
    }
    // Chunks already stored by an earlier attempt of this job are reused, not paid again.
    let stored: HashMap<usize, Key> = state
        .storage
        .list(&keys::job_prefix(job))
        .await
        .map_err(anyhow::Error::from)?
        .into_iter()
        .filter_map(|o| chunk_index(o.key.as_str()).map(|i| (i, o.key)))
        .collect();
    let left_objects = keep_chunks || !stored.is_empty();
    let tally = Tally::new(stored.len(), total, 0.85);
    let concurrency = plan.provider.max_concurrency().max(1);
    let speed = plan.speed as f32;

    // Each chunk comes back with its bytes (read from storage when an earlier attempt kept
    // it), so assembling needs no second listing or reading of what was just written.
    let mut sources: Vec<(usize, Bytes, Format)> =
        futures::stream::iter(chunks.into_iter().enumerate())
            .map(|(i, chunk)| {
                let (stored, tally) = (&stored, &tally);
                async move {
                    if let Some(key) = stored.get(&i) {
                        let bytes = state.storage.get(key).await.map_err(anyhow::Error::from)?;
                        return Ok::<_, JobError>((i, bytes, format_of(key.as_str())));
                    }
                    ensure_not_canceled(&ctx.cancel)?;
                    let request = SynthesisRequest {
                        text: chunk,
                        voice: plan.voice.clone(),
                        speed,
                        format_hint: plan.format,
                        model: None,
                        instructions: None,
                    };
                    let out = crate::providers::speak(plan.provider.as_ref(), &request)
                        .await
                        .map_err(provider_error)?;
                    let (bytes, kept) = storable(out.bytes, out.format).await?;
                    if keep_chunks {
                        state
                            .storage
                            .put(&keys::job_chunk(job, i, kept.extension()), bytes.clone())
                            .await
                            .map_err(anyhow::Error::from)?;
                    }
                    tally.piece_done(progress).await?;
                    Ok((i, bytes, kept))
                }
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
    sources.sort_by_key(|(i, _, _)| *i);
    Ok(Synthesized {
        sources: sources.into_iter().map(|(_, b, f)| (b, f)).collect(),
        left_objects,
    })
}

/// Assemble: the chunks become the audio in the wanted format, with its peaks.
#[tracing::instrument(skip_all, fields(chunks = sources.len()))]
async fn assemble(sources: Vec<(Bytes, Format)>, format: Format) -> Result<Built, JobError> {
    synth::audio_work(move || build(sources, format), unprocessable_audio).await
}

/// Commit: the file is stored, then one transaction records the audio's result, its usage
/// row, peaks and cache entry with the job's success. When the job was canceled meanwhile
/// nothing is recorded and the file goes again. Kept chunks go unless a progressive
/// listener is still reading them (the last one cleans up).
#[tracing::instrument(skip_all)]
async fn commit(
    state: &Services,
    plan: &Plan,
    chars: i64,
    built: Built,
    left_objects: bool,
) -> Result<(), JobError> {
    let (job, audio_id) = (plan.job, plan.audio);
    let object_key = keys::audio(plan.user, audio_id, plan.format.extension());
    let file = StoredFile {
        object_key: object_key.as_str().to_string(),
        peaks_key: keys::peaks(plan.user, audio_id).as_str().to_string(),
        duration_ms: built.duration_ms as i64,
        size_bytes: built.bytes.len() as i64,
        sha256: hex::encode(Sha256::digest(&built.bytes)),
    };
    state
        .storage
        .put(&object_key, built.bytes)
        .await
        .map_err(anyhow::Error::from)?;
    let outcome = Outcome {
        job,
        audio: audio_id,
        user: plan.user,
        cache: vec![(plan.key.clone(), file.clone())],
        file,
        peaks: Some(built.peaks),
        reused: false,
        usage: vec![Billed {
            service: plan.service.clone(),
            units: chars,
            cost_micros: plan.provider.cost_micros(chars as usize) as i64,
            cached: false,
        }],
        timings_json: None,
    };
    let committed = synth::record(state, outcome).await?;
    announce_or_discard(state, audio_id, committed, &object_key).await?;
    if left_objects && !state.jobs.streams.is_streamed(job) {
        state
            .storage
            .delete_prefix(&keys::job_prefix(job))
            .await
            .map_err(anyhow::Error::from)?;
    }
    Ok(())
}

/// Commit from the cache: the audio points at the cached result's object, with a free usage
/// row marked cached; nothing is synthesized or stored.
#[tracing::instrument(skip_all)]
async fn commit_cached(
    state: &Services,
    plan: &Plan,
    hit: tts_cache::Entry,
) -> Result<(), JobError> {
    let outcome = Outcome {
        job: plan.job,
        audio: plan.audio,
        user: plan.user,
        file: StoredFile {
            object_key: hit.object_key,
            peaks_key: hit.peaks_key,
            duration_ms: hit.duration_ms,
            size_bytes: hit.size_bytes,
            sha256: hit.sha256,
        },
        peaks: None,
        reused: true,
        usage: vec![Billed {
            service: plan.service.clone(),
            units: plan.text.chars().count() as i64,
            cost_micros: 0,
            cached: true,
        }],
        cache: Vec::new(),
        timings_json: None,
    };
    if synth::record(state, outcome).await? {
        publish_done(state, plan.audio);
    }
    Ok(())
}

/// `jobs/<id>/chunk-00007.wav` → 7.
fn chunk_index(key: &str) -> Option<usize> {
    let name = key.rsplit('/').next()?;
    name.strip_prefix("chunk-")?.split('.').next()?.parse().ok()
}

/// Provider output as it is kept between attempts: containers as they came, raw PCM
/// wrapped in a WAV header so the stored file describes itself.
async fn storable(bytes: Bytes, format: Format) -> Result<(Bytes, Format), JobError> {
    match format {
        Format::Mp3 | Format::Wav | Format::Ogg | Format::Flac | Format::Mp4 | Format::Webm => {
            Ok((bytes, format))
        }
        Format::PcmS16Le { .. } => {
            let wav = synth::audio_work(
                move || {
                    let pcm = audio::decode(&bytes, format)?;
                    audio::encode_wav(&pcm)
                },
                unusable_audio,
            )
            .await?;
            Ok((Bytes::from(wav), Format::Wav))
        }
    }
}

struct Built {
    bytes: Bytes,
    peaks: audio::Peaks,
    duration_ms: u64,
}

/// One chunk already in the wanted format is kept byte for byte; anything else is decoded,
/// joined, brought to a common loudness and encoded once.
fn build(sources: Vec<(Bytes, Format)>, wanted: Format) -> Result<Built, audio::AudioError> {
    if let [(bytes, format)] = sources.as_slice()
        && *format == wanted
    {
        let pcm = audio::decode(bytes, *format)?;
        return Ok(Built {
            duration_ms: pcm.duration_ms(),
            peaks: audio::Peaks::of(&pcm, PEAK_BUCKETS),
            bytes: bytes.clone(),
        });
    }
    let parts: Vec<SourcePart<'_>> = sources
        .iter()
        .map(|(b, f)| SourcePart {
            bytes: b,
            format: *f,
            chapter: None,
        })
        .collect();
    let options = MasterOptions {
        pause_ms: CHUNK_PAUSE_MS,
        chapter_pause_ms: CHUNK_PAUSE_MS,
        output: if wanted == Format::Wav {
            Encoding::Wav
        } else {
            Encoding::Mp3 { bitrate_kbps: 64 }
        },
        peak_buckets: PEAK_BUCKETS,
        ..MasterOptions::default()
    };
    let mastered = audio::master_episode(&parts, &options, None)?;
    Ok(Built {
        duration_ms: mastered.duration_ms,
        peaks: mastered.peaks,
        bytes: Bytes::from(mastered.bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_names_round_trip() {
        let job = JobId::from(ulid::Ulid::generate());
        let key = keys::job_chunk(job, 12, "wav");
        assert_eq!(chunk_index(key.as_str()), Some(12));
        assert_eq!(format_of(key.as_str()), Format::Wav);
        assert_eq!(chunk_index("jobs/x/other.json"), None);
    }
}
