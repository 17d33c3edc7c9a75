//! The synthesis job: split the text, synthesize the chunks in parallel (each kept in storage
//! until the job ends, so a resumed job never pays twice for a chunk), assemble, store, and
//! commit the audio, its usage and its cache entry together.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use super::synth::{
    self, CHUNK_PAUSE_MS, Progress, cache_key, format_of, provider_error, publish_done,
};
use crate::audio::{self, Encoding, Format, MasterOptions, SourcePart};
use crate::db::audios::{self, Finished};
use crate::db::jobs as queue;
use crate::db::tts_cache::{self, NewEntry};
use crate::db::usage::{self, NewUsage};
use crate::db::{AudioId, JobId, UserId, now_ms};
use crate::jobs::{Handler, JobContext, JobError};
use crate::providers::SynthesisRequest;
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

async fn run(ctx: JobContext<Services>) -> Result<(), JobError> {
    let state = ctx.state.clone();
    let job = ctx.job.id;
    let Some(audio_id) = ctx.job.audio_id else {
        return Err(JobError::fatal(
            "internal",
            "A synthesis job without an audio",
        ));
    };
    // Two rows by id: cheaper on this thread than a trip through the blocking pool.
    let (audio, text) = state
        .db
        .lookup(move |c| Ok((audios::get_any(c, audio_id)?, audios::text(c, audio_id)?)))
        .await?;
    let (Some(audio), Some(text)) = (audio, text) else {
        return Ok(()); // deleted meanwhile: nothing to do
    };
    if !audio.status.is_live() {
        return Ok(());
    }
    let user = audio.user_id;
    let voice_id = audio.voice.clone().unwrap_or_default();
    let (provider, voice) = state.providers.resolve(&voice_id).map_err(provider_error)?;
    let format = if audio.format == "wav" {
        Format::Wav
    } else {
        Format::Mp3
    };
    let service = format!("tts:{}:{}", provider.id(), provider.model());
    let progress = Progress::new(&state, audio_id);
    progress.report(0.01).await?;

    let key = cache_key(
        provider.id(),
        provider.model(),
        &voice.voice,
        audio.speed,
        &audio.format,
        &text,
    );
    if let Some(hit) = cached(&state, key.clone()).await? {
        let finished = Finished {
            object_key: &hit.object_key,
            peaks_key: &hit.peaks_key,
            duration_ms: hit.duration_ms,
            size_bytes: hit.size_bytes,
            sha256: &hit.sha256,
        };
        let usage = Usage {
            user,
            service: &service,
            units: text.chars().count() as i64,
            cost: 0,
            cached: true,
        };
        if commit(&state, job, audio_id, &finished, &usage, None).await? {
            publish_done(&state, audio_id);
        }
        return Ok(());
    }

    let limit = provider.limits(&voice.voice);
    let split = match provider.first_chunk_units(&voice.voice) {
        Some(first) => crate::speech::chunk::split_ramped(&text, &limit, first),
        None => crate::speech::chunk::split_for(&text, &limit),
    };
    let chunks: Vec<String> = split
        .map_err(|e| JobError::fatal("text_too_long", e.to_string()))?
        .into_iter()
        .map(str::to_string)
        .collect();
    // Billed: exactly the characters the provider is sent (blank stretches are not sent).
    let chars = chunks.iter().map(|c| c.chars().count()).sum::<usize>() as i64;
    let total = chunks.len();
    // A text of one chunk keeps nothing between attempts: its only chunk becomes the audio
    // right after it arrives, so storing it first would cost three object writes and
    // deletes per job to guard a window of a few milliseconds. Longer texts keep every
    // chunk, so a resumed job never pays twice and `/stream` can play them as they come.
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
    let done = Arc::new(AtomicUsize::new(stored.len().min(total)));
    let stored = Arc::new(stored);
    let concurrency = provider.max_concurrency().max(1);
    let speed = audio.speed as f32;
    let progress = Arc::new(progress);

    // Each chunk comes back with its bytes (read from storage when an earlier attempt kept
    // it), so assembling needs no second listing or reading of what was just written.
    let mut sources: Vec<(usize, Bytes, Format)> =
        futures::stream::iter(chunks.into_iter().enumerate())
            .map(|(i, chunk)| {
                let (state, provider, voice, stored, done, progress) = (
                    state.clone(),
                    provider.clone(),
                    voice.voice.clone(),
                    stored.clone(),
                    done.clone(),
                    progress.clone(),
                );
                let cancel = ctx.cancel.clone();
                async move {
                    if let Some(key) = stored.get(&i) {
                        let bytes = state.storage.get(key).await.map_err(anyhow::Error::from)?;
                        return Ok::<_, JobError>((i, bytes, format_of(key.as_str())));
                    }
                    if cancel.is_cancelled() {
                        return Err(JobError::fatal("canceled", "The job was canceled"));
                    }
                    let request = SynthesisRequest {
                        text: chunk,
                        voice,
                        speed,
                        format_hint: format,
                    };
                    let out = provider
                        .synthesize(&request)
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
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    progress
                        .report(0.05 + 0.85 * n as f64 / total as f64)
                        .await?;
                    Ok((i, bytes, kept))
                }
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
    sources.sort_by_key(|(i, _, _)| *i);
    let sources: Vec<(Bytes, Format)> = sources.into_iter().map(|(_, b, f)| (b, f)).collect();
    let built = tokio::task::spawn_blocking(move || assemble(sources, format))
        .await
        .map_err(anyhow::Error::from)?
        .map_err(|e| {
            JobError::retryable(
                "bad_audio",
                format!("The provider's audio could not be processed: {e}"),
            )
        })?;

    let ext = format.extension();
    let object_key = keys::audio(user, audio_id, ext);
    let peaks_key = keys::peaks(user, audio_id);
    let sha = hex::encode(Sha256::digest(&built.bytes));
    let size = built.bytes.len() as i64;
    state
        .storage
        .put(&object_key, built.bytes)
        .await
        .map_err(anyhow::Error::from)?;
    let finished = Finished {
        object_key: object_key.as_str(),
        peaks_key: peaks_key.as_str(),
        duration_ms: built.duration_ms as i64,
        size_bytes: size,
        sha256: &sha,
    };
    let cost = provider.cost_micros(chars as usize) as i64;
    let usage = Usage {
        user,
        service: &service,
        units: chars,
        cost,
        cached: false,
    };
    let fresh = Fresh {
        cache_key: key,
        peaks: built.peaks,
    };
    if commit(&state, job, audio_id, &finished, &usage, Some(fresh)).await? {
        publish_done(&state, audio_id);
    } else {
        // Canceled while finishing: the object belongs to no audio.
        state
            .storage
            .delete(&object_key)
            .await
            .map_err(anyhow::Error::from)?;
    }
    // A progressive listener may still be reading the chunks: the last one cleans up.
    if left_objects && !state.jobs.streams.is_streamed(job) {
        state
            .storage
            .delete_prefix(&keys::job_prefix(job))
            .await
            .map_err(anyhow::Error::from)?;
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
        Format::Mp3 | Format::Wav | Format::Ogg | Format::Flac => Ok((bytes, format)),
        Format::PcmS16Le { .. } => {
            let wav = tokio::task::spawn_blocking(move || {
                let pcm = audio::decode(&bytes, format)?;
                audio::encode_wav(&pcm)
            })
            .await
            .map_err(anyhow::Error::from)?
            .map_err(|e| {
                JobError::retryable(
                    "bad_audio",
                    format!("Unusable audio from the provider: {e}"),
                )
            })?;
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
fn assemble(sources: Vec<(Bytes, Format)>, wanted: Format) -> Result<Built, audio::AudioError> {
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

async fn cached(state: &Services, key: String) -> Result<Option<tts_cache::Entry>, JobError> {
    let hit = state
        .db
        .lookup(move |c| Ok(tts_cache::get(c, &key)?))
        .await?;
    // A cache row whose object is gone (e.g. removed by hand) is treated as a miss.
    match hit {
        Some(h)
            if state
                .storage
                .head(&Key::from_stored(h.object_key.clone()))
                .await
                .is_ok() =>
        {
            Ok(Some(h))
        }
        _ => Ok(None),
    }
}

struct Usage<'a> {
    user: UserId,
    service: &'a str,
    units: i64,
    cost: i64,
    cached: bool,
}

/// What a job that called the provider adds to the database: its result's cache entry and
/// waveform.
struct Fresh {
    cache_key: String,
    peaks: audio::Peaks,
}

/// The job's end, in one transaction: the audio's final state, its usage row, the cache entry,
/// its peaks and the job's success. False (and nothing written) when the job was canceled
/// meanwhile, or when a reused result was deleted in between.
async fn commit(
    state: &Services,
    job: JobId,
    audio: AudioId,
    f: &Finished<'_>,
    u: &Usage<'_>,
    fresh: Option<Fresh>,
) -> Result<bool, JobError> {
    let (object_key, peaks_key, sha) = (
        f.object_key.to_string(),
        f.peaks_key.to_string(),
        f.sha256.to_string(),
    );
    let (duration_ms, size_bytes) = (f.duration_ms, f.size_bytes);
    let (user, service, units, cost, cached) =
        (u.user, u.service.to_string(), u.units, u.cost, u.cached);
    let usage_id = state.db.new_id();
    let committed = state
        .db
        .write(move |c| {
            let tx = c.transaction()?;
            let now = now_ms();
            if cached && !tts_cache::holds_object(&tx, &object_key)? {
                return Ok(false);
            }
            if !queue::succeed(&tx, job, now)? {
                return Ok(false);
            }
            let finished = Finished {
                object_key: &object_key,
                peaks_key: &peaks_key,
                duration_ms,
                size_bytes,
                sha256: &sha,
            };
            if !audios::finish(&tx, audio, &finished, now)? {
                return Ok(false);
            }
            usage::insert(
                &tx,
                &NewUsage {
                    id: usage_id,
                    user_id: user,
                    audio_id: Some(audio),
                    service: &service,
                    units,
                    cost_micros: cost,
                    cached,
                },
                now,
            )?;
            if let Some(fresh) = fresh {
                audios::put_peaks(&tx, &peaks_key, &fresh.peaks)?;
                let entry = NewEntry {
                    key: &fresh.cache_key,
                    object_key: &object_key,
                    peaks_key: &peaks_key,
                    duration_ms,
                    size_bytes,
                    sha256: &sha,
                };
                tts_cache::put(&tx, &entry, now)?;
            }
            tx.commit()?;
            Ok(true)
        })
        .await?;
    Ok(committed)
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
