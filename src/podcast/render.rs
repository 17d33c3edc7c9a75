//! The episode render job: each line synthesized with its speaker's voice (through the result
//! cache, and kept in storage until the job ends so a resumed job never pays twice), then
//! mastered into one MP3 with chapters; audio, timings, usage and cache entries commit together.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use super::service::{EpisodeScript, Timings};
use super::subtitles::{TimedChapter, TimedLine};
use crate::audio::{self, Cover, Encoding, Format, Id3Tags, MasterOptions, SourcePart};
use crate::db::audios::{self, Finished};
use crate::db::jobs as queue;
use crate::db::podcasts::PodcastRow;
use crate::db::tts_cache::{self, NewEntry};
use crate::db::usage::{self, NewUsage};
use crate::db::{episodes, now_ms, podcasts};
use crate::error::AppError;
use crate::jobs::{Handler, JobContext, JobError};
use crate::providers::{SynthesisRequest, Tts};
use crate::services::Services;
use crate::speech::synth::{
    self, CHUNK_PAUSE_MS, Progress, cache_key, format_of, provider_error, publish_done,
};
use crate::storage::{Key, keys};

/// The format component of line cache keys: line objects are raw provider output (any
/// container), unlike library audios, so they never answer a library request.
const LINE_FORMAT: &str = "line";

pub struct PodcastJob;

impl Handler<Services> for PodcastJob {
    fn run(&self, ctx: JobContext<Services>) -> BoxFuture<'static, Result<(), JobError>> {
        run(ctx).boxed()
    }

    /// Same bookkeeping as a speech job: the audio fails, the kept lines go.
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

/// One line to speak, with what identifies its result.
struct Planned {
    provider: Arc<dyn Tts>,
    voice: String,
    /// The line cut to the provider's request limit: what it is sent, and billed for.
    chunks: Vec<String>,
    key: String,
    service: String,
}

impl Planned {
    /// Characters the provider is sent for this line (blank stretches are not sent).
    fn sent_chars(&self) -> usize {
        self.chunks.iter().map(|c| c.chars().count()).sum()
    }
}

/// `jobs/<id>/line-00007-p.wav` → (7, paid, ext).
fn line_entry(key: &str) -> Option<(usize, bool, String)> {
    let name = key.rsplit('/').next()?.strip_prefix("line-")?;
    let (stem, ext) = name.split_once('.')?;
    let (index, how) = stem.split_once('-')?;
    Some((index.parse().ok()?, how == "p", ext.to_string()))
}

async fn run(ctx: JobContext<Services>) -> Result<(), JobError> {
    let state = ctx.state.clone();
    let job = ctx.job.id;
    let Some(audio_id) = ctx.job.audio_id else {
        return Err(JobError::fatal("internal", "A render job without an audio"));
    };
    let loaded = state
        .db
        .read(move |c| {
            let Some(audio) = audios::get_any(c, audio_id)? else {
                return Ok(None);
            };
            let Some(episode) = episodes::by_audio(c, audio_id)? else {
                return Ok(None);
            };
            let show = podcasts::get_any(c, episode.podcast_id)?;
            Ok(show.map(|s| (audio, episode, s)))
        })
        .await?;
    let Some((audio, episode, show)) = loaded else {
        return Ok(()); // deleted meanwhile
    };
    if !audio.status.is_live() {
        return Ok(());
    }
    let user = audio.user_id;
    let script: EpisodeScript = serde_json::from_str(&episode.script_json)
        .map_err(|e| JobError::fatal("internal", format!("Unreadable script: {e}")))?;
    let voices: HashMap<&str, &str> = script
        .speakers
        .iter()
        .map(|c| (c.name.as_str(), c.voice.as_str()))
        .collect();
    let mut plan = Vec::with_capacity(script.lines.len());
    for line in &script.lines {
        let voice_id = voices.get(line.speaker.as_str()).ok_or_else(|| {
            JobError::fatal("invalid_request", format!("No voice for {}", line.speaker))
        })?;
        let (provider, voice) = state.providers.resolve(voice_id).map_err(provider_error)?;
        let chunks = crate::speech::chunk::split_for(&line.text, &provider.limits(&voice.voice))
            .map_err(|e| JobError::fatal("text_too_long", e.to_string()))?
            .into_iter()
            .map(str::to_string)
            .collect();
        plan.push(Planned {
            key: cache_key(
                provider.id(),
                provider.model(),
                &voice.voice,
                1.0,
                LINE_FORMAT,
                &line.text,
            ),
            service: format!("tts:{}:{}", provider.id(), provider.model()),
            provider,
            voice: voice.voice,
            chunks,
        });
    }
    let progress = Arc::new(Progress::new(&state, audio_id));
    progress.report(0.01).await?;

    // Lines kept by an earlier attempt are neither looked up nor paid again.
    let kept: HashMap<usize, (bool, String)> = state
        .storage
        .list(&keys::job_prefix(job))
        .await
        .map_err(anyhow::Error::from)?
        .into_iter()
        .filter_map(|o| line_entry(o.key.as_str()).map(|(i, paid, ext)| (i, (paid, ext))))
        .collect();
    let total = plan.len();
    let done = Arc::new(AtomicUsize::new(kept.len().min(total)));
    let kept = Arc::new(kept);
    let plan = Arc::new(plan);
    let concurrency = plan
        .iter()
        .map(|p| p.provider.max_concurrency())
        .min()
        .unwrap_or(1)
        .max(1);
    futures::stream::iter(0..total)
        .map(|i| {
            let (state, kept, done, cancel, plan, progress) = (
                state.clone(),
                kept.clone(),
                done.clone(),
                ctx.cancel.clone(),
                plan.clone(),
                progress.clone(),
            );
            async move {
                let p = &plan[i];
                if kept.contains_key(&i) {
                    return Ok::<_, JobError>(());
                }
                if cancel.is_cancelled() {
                    return Err(JobError::fatal("canceled", "The job was canceled"));
                }
                let (bytes, ext, paid) = match cached_line(&state, p.key.clone()).await? {
                    Some((bytes, ext)) => (bytes, ext, false),
                    None => {
                        let (bytes, ext) = synthesize_line(p).await?;
                        (bytes, ext, true)
                    }
                };
                state
                    .storage
                    .put(&keys::job_line(job, i, paid, &ext), bytes)
                    .await
                    .map_err(anyhow::Error::from)?;
                let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                progress
                    .report(0.05 + 0.8 * n as f64 / total as f64)
                    .await?;
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;

    // Master in script order.
    let mut lines: BTreeMap<usize, (bool, String, Key)> = BTreeMap::new();
    for o in state
        .storage
        .list(&keys::job_prefix(job))
        .await
        .map_err(anyhow::Error::from)?
    {
        if let Some((i, paid, ext)) = line_entry(o.key.as_str()) {
            lines.insert(i, (paid, ext, o.key));
        }
    }
    if lines.len() != total {
        return Err(JobError::retryable(
            "internal",
            "Some synthesized lines went missing; retrying",
        ));
    }
    let mut sources: Vec<(Bytes, Format)> = Vec::with_capacity(total);
    for (_, ext, key) in lines.values() {
        let bytes = state.storage.get(key).await.map_err(anyhow::Error::from)?;
        sources.push((bytes, format_of(ext)));
    }
    let chapters: Vec<Option<String>> = script.lines.iter().map(|l| l.chapter.clone()).collect();
    let tags = Id3Tags {
        title: Some(episode.title.clone()),
        artist: show.author.clone(),
        album: Some(show.title.clone()),
        cover: episode_cover(&state, &show).await?,
        ..Id3Tags::default()
    };
    let options = MasterOptions {
        pause_ms: script.pause_ms,
        ..MasterOptions::default()
    };
    let kept_sources = sources.clone();
    let mastered = tokio::task::spawn_blocking(move || {
        let parts: Vec<SourcePart<'_>> = sources
            .iter()
            .zip(&chapters)
            .map(|((b, f), ch)| SourcePart {
                bytes: b,
                format: *f,
                chapter: ch.as_deref(),
            })
            .collect();
        audio::master_episode(&parts, &options, Some(&tags))
    })
    .await
    .map_err(anyhow::Error::from)?
    .map_err(|e| {
        JobError::retryable(
            "bad_audio",
            format!("The provider's audio could not be processed: {e}"),
        )
    })?;

    let timings = Timings {
        lines: script
            .lines
            .iter()
            .zip(&mastered.spans)
            .map(|(l, s)| TimedLine {
                speaker: l.speaker.clone(),
                text: l.text.clone(),
                start_ms: s.start_ms,
                end_ms: s.end_ms,
            })
            .collect(),
        chapters: mastered
            .chapters
            .iter()
            .map(|c| TimedChapter {
                title: c.title.clone(),
                start_ms: c.start_ms,
                end_ms: c.end_ms,
            })
            .collect(),
    };
    let timings_json = serde_json::to_string(&timings).map_err(anyhow::Error::from)?;

    // Paid lines become cache entries, outside the job's folder so they outlive it.
    let mut new_cache = Vec::new();
    for ((i, (paid, ext, _)), (bytes, _)) in lines.iter().zip(&kept_sources) {
        if !paid {
            continue;
        }
        let p = &plan[*i];
        let key = keys::cached_line(&p.key, ext);
        state
            .storage
            .put(&key, bytes.clone())
            .await
            .map_err(anyhow::Error::from)?;
        let span = mastered.spans[*i];
        new_cache.push(CacheRow {
            key: p.key.clone(),
            object_key: key.as_str().to_string(),
            duration_ms: span.end_ms.saturating_sub(span.start_ms) as i64,
            size_bytes: bytes.len() as i64,
            sha256: hex::encode(Sha256::digest(bytes)),
        });
    }
    // One ledger row per service and kind (paid or from the cache).
    let mut ledger: BTreeMap<(String, bool), (i64, i64)> = BTreeMap::new();
    for (i, (paid, _, _)) in &lines {
        let p = &plan[*i];
        let chars = p.sent_chars();
        let entry = ledger.entry((p.service.clone(), !paid)).or_default();
        entry.0 += chars as i64;
        if *paid {
            entry.1 += p.provider.cost_micros(chars) as i64;
        }
    }

    let ledger: Vec<_> = ledger
        .into_iter()
        .map(|(entry, sums)| (state.db.new_id(), entry, sums))
        .collect();

    let object_key = keys::audio(user, audio_id, "mp3");
    let peaks_key = keys::peaks(user, audio_id);
    let sha = hex::encode(Sha256::digest(&mastered.bytes));
    let size = mastered.bytes.len() as i64;
    let peaks = mastered.peaks;
    state
        .storage
        .put(&object_key, Bytes::from(mastered.bytes))
        .await
        .map_err(anyhow::Error::from)?;
    let duration_ms = mastered.duration_ms as i64;
    let (ok, pk) = (
        object_key.as_str().to_string(),
        peaks_key.as_str().to_string(),
    );
    let committed = state
        .db
        .write(move |c| {
            let tx = c.transaction()?;
            let now = now_ms();
            if !queue::succeed(&tx, job, now)? {
                return Ok(false);
            }
            let finished = Finished {
                object_key: &ok,
                peaks_key: &pk,
                duration_ms,
                size_bytes: size,
                sha256: &sha,
            };
            if !audios::finish(&tx, audio_id, &finished, now)? {
                return Ok(false);
            }
            audios::put_peaks(&tx, &pk, &peaks)?;
            episodes::set_timings(&tx, audio_id, &timings_json, now)?;
            for (id, (service, cached), (units, cost)) in &ledger {
                usage::insert(
                    &tx,
                    &NewUsage {
                        id: *id,
                        user_id: user,
                        audio_id: Some(audio_id),
                        service,
                        units: *units,
                        cost_micros: *cost,
                        cached: *cached,
                    },
                    now,
                )?;
            }
            for row in &new_cache {
                let entry = NewEntry {
                    key: &row.key,
                    object_key: &row.object_key,
                    peaks_key: "",
                    duration_ms: row.duration_ms,
                    size_bytes: row.size_bytes,
                    sha256: &row.sha256,
                };
                tts_cache::put(&tx, &entry, now)?;
            }
            tx.commit()?;
            Ok(true)
        })
        .await?;
    if committed {
        publish_done(&state, audio_id);
    } else {
        state
            .storage
            .delete(&object_key)
            .await
            .map_err(anyhow::Error::from)?;
    }
    state
        .storage
        .delete_prefix(&keys::job_prefix(job))
        .await
        .map_err(anyhow::Error::from)?;
    Ok(())
}

struct CacheRow {
    key: String,
    object_key: String,
    duration_ms: i64,
    size_bytes: i64,
    sha256: String,
}

/// A line's audio from the result cache, when its object is still there.
/// The show's cover for the APIC frame; a cover that vanished meanwhile is simply left out.
async fn episode_cover(state: &Services, show: &PodcastRow) -> Result<Option<Cover>, JobError> {
    match crate::podcast::service::load_cover(state, show).await {
        Ok((kind, data)) => Ok(Some(Cover {
            mime: kind.mime().into(),
            data: data.to_vec(),
        })),
        Err(AppError::NotFound) => Ok(None),
        Err(e) => Err(JobError::retryable("storage", e.to_string())),
    }
}

async fn cached_line(state: &Services, key: String) -> Result<Option<(Bytes, String)>, JobError> {
    let hit: Option<String> = state
        .db
        .read(move |c| Ok(tts_cache::get(c, &key)?.map(|e| e.object_key)))
        .await?;
    let Some(object_key) = hit else {
        return Ok(None);
    };
    let ext = object_key.rsplit('.').next().unwrap_or("mp3").to_string();
    match state.storage.get(&Key::from_stored(object_key)).await {
        Ok(bytes) => Ok(Some((bytes, ext))),
        Err(_) => Ok(None),
    }
}

/// Speaks one line: a line over the provider's limit was split, and its chunks are joined.
async fn synthesize_line(p: &Planned) -> Result<(Bytes, String), JobError> {
    let mut outs = Vec::with_capacity(p.chunks.len());
    for chunk in &p.chunks {
        let out = p
            .provider
            .synthesize(&SynthesisRequest {
                text: chunk.clone(),
                voice: p.voice.clone(),
                speed: 1.0,
                format_hint: Format::Mp3,
            })
            .await
            .map_err(provider_error)?;
        outs.push((out.bytes, out.format));
    }
    if let [(bytes, format)] = outs.as_slice()
        && !format.is_raw()
    {
        return Ok((bytes.clone(), format.extension().to_string()));
    }
    let wav = tokio::task::spawn_blocking(move || {
        let mut pcms = Vec::with_capacity(outs.len());
        for (bytes, format) in outs {
            pcms.push(audio::encode_wav(&audio::decode(&bytes, format)?)?);
        }
        let parts: Vec<SourcePart<'_>> = pcms
            .iter()
            .map(|b| SourcePart {
                bytes: b,
                format: Format::Wav,
                chapter: None,
            })
            .collect();
        let options = MasterOptions {
            pause_ms: CHUNK_PAUSE_MS,
            chapter_pause_ms: CHUNK_PAUSE_MS,
            loudness: None,
            output: Encoding::Wav,
            ..MasterOptions::default()
        };
        audio::master_episode(&parts, &options, None).map(|m| m.bytes)
    })
    .await
    .map_err(anyhow::Error::from)?
    .map_err(|e| {
        JobError::retryable(
            "bad_audio",
            format!("Unusable audio from the provider: {e}"),
        )
    })?;
    Ok((Bytes::from(wav), "wav".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_line_names_round_trip() {
        let job = crate::db::JobId::from(ulid::Ulid::generate());
        let key = keys::job_line(job, 12, true, "wav");
        assert_eq!(line_entry(key.as_str()), Some((12, true, "wav".into())));
        let key = keys::job_line(job, 3, false, "mp3");
        assert_eq!(line_entry(key.as_str()), Some((3, false, "mp3".into())));
        assert_eq!(line_entry("jobs/x/chunk-00001.wav"), None);
    }

    /// Answers every request with the same bytes.
    struct Fixed(Format, Bytes);

    #[async_trait::async_trait]
    impl Tts for Fixed {
        fn id(&self) -> &'static str {
            "kokoro"
        }
        fn model(&self) -> &str {
            "fixed"
        }
        async fn status(&self) -> crate::providers::ProviderStatus {
            unreachable!()
        }
        async fn voices(
            &self,
        ) -> Result<Vec<crate::providers::Voice>, crate::providers::ProviderError> {
            unreachable!()
        }
        fn limits(&self, _: &str) -> crate::providers::TextLimit {
            crate::providers::TextLimit::chars(100)
        }
        fn max_concurrency(&self) -> usize {
            1
        }
        fn price_micros_per_1k_chars(&self) -> u64 {
            0
        }
        async fn synthesize(
            &self,
            _: &SynthesisRequest,
        ) -> Result<crate::providers::Synthesized, crate::providers::ProviderError> {
            Ok(crate::providers::Synthesized {
                bytes: self.1.clone(),
                format: self.0,
                model: "fixed".into(),
            })
        }
    }

    fn line(format: Format, bytes: Vec<u8>) -> Planned {
        Planned {
            provider: Arc::new(Fixed(format, Bytes::from(bytes))),
            voice: "v".into(),
            chunks: vec!["Hello.".into()],
            key: "k".into(),
            service: "tts:kokoro:fixed".into(),
        }
    }

    #[tokio::test]
    async fn a_one_chunk_line_of_raw_pcm_is_kept_as_a_wav() {
        // 100 ms of 24 kHz mono 16-bit samples, as the neural voices answer.
        let pcm = Format::PcmS16Le {
            sample_rate: 24_000,
            channels: 1,
        };
        let (bytes, ext) = synthesize_line(&line(pcm, vec![0; 4800])).await.unwrap();
        assert_eq!(ext, "wav");
        let kept = audio::decode(&bytes, Format::Wav).unwrap();
        assert!(
            (95..=105).contains(&kept.duration_ms()),
            "{} ms",
            kept.duration_ms()
        );
    }

    #[tokio::test]
    async fn a_one_chunk_line_in_a_container_is_kept_byte_for_byte() {
        let wav = audio::encode_wav(&audio::Pcm::silence(22_050, 1, 100)).unwrap();
        let (bytes, ext) = synthesize_line(&line(Format::Wav, wav.clone()))
            .await
            .unwrap();
        assert_eq!(ext, "wav");
        assert_eq!(bytes, wav);
    }
}
