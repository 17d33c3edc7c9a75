//! The episode render job: each line synthesized with its speaker's voice (through the result
//! cache, and kept in storage until the job ends so a resumed job never pays twice), then
//! mastered into one MP3 with chapters; audio, timings, usage and cache entries commit together.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use super::service::{EpisodeScript, Timings};
use super::subtitles::{TimedChapter, TimedLine};
use crate::audio::{self, Cover, Encoding, Format, Id3Tags, MasterOptions, SourcePart};
use crate::db::episodes::EpisodeRow;
use crate::db::podcasts::PodcastRow;
use crate::db::{AudioId, JobId, UserId};
use crate::error::{AppError, ErrorCode};
use crate::jobs::{Handler, JobContext, JobError};
use crate::providers::{SynthesisRequest, Tts};
use crate::services::Services;
use crate::speech::synth::{
    self, Billed, CHUNK_PAUSE_MS, Outcome, Progress, StoredFile, Tally, announce_or_discard,
    cache_key, ensure_not_canceled, format_of, owned_pieces, provider_error, service_of,
    unprocessable_audio, unusable_audio,
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

/// What the render makes, decided before anything is paid for.
struct Plan {
    job: JobId,
    audio: AudioId,
    user: UserId,
    episode: EpisodeRow,
    show: PodcastRow,
    script: EpisodeScript,
    /// One per script line, in script order.
    lines: Vec<Planned>,
}

/// A line's audio as synthesis left it under the job's folder.
struct Spoken {
    /// Its place in the script.
    index: usize,
    /// Paid for by this job, so it becomes a cache entry; false when it came from the cache.
    paid: bool,
    ext: String,
    bytes: Bytes,
}

/// The mastered episode and its measured timings.
struct Assembled {
    mastered: audio::Mastered,
    timings_json: String,
}

/// `jobs/<id>/line-00007-p.wav` → (7, paid, ext).
fn line_entry(key: &str) -> Option<(usize, bool, String)> {
    let name = key.rsplit('/').next()?.strip_prefix("line-")?;
    let (stem, ext) = name.split_once('.')?;
    let (index, how) = stem.split_once('-')?;
    Some((index.parse().ok()?, how == "p", ext.to_string()))
}

async fn run(ctx: JobContext<Services>) -> Result<(), JobError> {
    let Some(plan) = plan(&ctx).await? else {
        return Ok(()); // deleted or settled meanwhile
    };
    let progress = Progress::new(&ctx.state, plan.audio);
    progress.report(0.01).await?;
    let lines = synthesize(&ctx, &plan, &progress).await?;
    let assembled = assemble(&ctx.state, &plan, &lines).await?;
    commit(&ctx.state, &plan, &lines, assembled).await
}

/// Plan: loads the audio with its episode and show, reads the script and gives every line its
/// speaker's provider and voice, its chunks and its cache key. `None` when there is nothing to
/// do: the audio, episode or show is gone, or the audio is no longer waiting for this job.
#[tracing::instrument(skip_all)]
async fn plan(ctx: &JobContext<Services>) -> Result<Option<Plan>, JobError> {
    let state = &ctx.state;
    let Some(audio_id) = ctx.job.audio_id else {
        return Err(JobError::fatal(
            ErrorCode::Internal,
            "A render job without an audio",
        ));
    };
    let loaded = state.db.episodes().for_render(audio_id).await?;
    let Some((audio, episode, show)) = loaded else {
        return Ok(None);
    };
    if !audio.status.is_live() {
        return Ok(None);
    }
    let user = audio.user_id;
    let script: EpisodeScript = serde_json::from_str(&episode.script_json)
        .map_err(|e| JobError::fatal(ErrorCode::Internal, format!("Unreadable script: {e}")))?;
    let lines = plan_lines(state, &script)?;
    Ok(Some(Plan {
        job: ctx.job.id,
        audio: audio_id,
        user,
        episode,
        show,
        script,
        lines,
    }))
}

/// Each line's request: its speaker's voice, the line cut to that provider's limit, and the
/// cache key of the whole line.
fn plan_lines(state: &Services, script: &EpisodeScript) -> Result<Vec<Planned>, JobError> {
    let voices: HashMap<&str, &str> = script
        .speakers
        .iter()
        .map(|c| (c.name.as_str(), c.voice.as_str()))
        .collect();
    let mut lines = Vec::with_capacity(script.lines.len());
    for line in &script.lines {
        let voice_id = voices.get(line.speaker.as_str()).ok_or_else(|| {
            JobError::fatal(
                ErrorCode::InvalidRequest,
                format!("No voice for {}", line.speaker),
            )
        })?;
        let (provider, voice) = state.providers.resolve(voice_id).map_err(provider_error)?;
        let chunks = owned_pieces(crate::speech::chunk::split_for(
            &line.text,
            &provider.limits(&voice.voice),
        ))?;
        lines.push(Planned {
            key: cache_key(
                provider.id(),
                provider.model(),
                &voice.voice,
                1.0,
                LINE_FORMAT,
                &line.text,
            ),
            service: service_of(provider.as_ref()),
            provider,
            voice: voice.voice,
            chunks,
        });
    }
    Ok(lines)
}

/// Synthesize: every line an earlier attempt did not keep comes from the result cache or the
/// provider (up to the lowest concurrency of the providers involved) and is kept under the
/// job's folder as it arrives, progress going from 5% to 85%. Returns every line in script
/// order, read back from that folder.
#[tracing::instrument(skip_all, fields(lines = plan.lines.len()))]
async fn synthesize(
    ctx: &JobContext<Services>,
    plan: &Plan,
    progress: &Progress,
) -> Result<Vec<Spoken>, JobError> {
    let state = &ctx.state;
    let job = plan.job;
    // Lines kept by an earlier attempt are neither looked up nor paid again.
    let kept = kept_lines(state, job).await?;
    let total = plan.lines.len();
    let tally = Tally::new(kept.len(), total, 0.8);
    let concurrency = plan
        .lines
        .iter()
        .map(|p| p.provider.max_concurrency())
        .min()
        .unwrap_or(1)
        .max(1);
    futures::stream::iter(0..total)
        .map(|i| {
            let (kept, tally) = (&kept, &tally);
            async move {
                let p = &plan.lines[i];
                if kept.contains_key(&i) {
                    return Ok::<_, JobError>(());
                }
                ensure_not_canceled(&ctx.cancel)?;
                let (bytes, ext, paid) = match cached_line(state, p.key.clone()).await? {
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
                tally.piece_done(progress).await
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;

    let lines = kept_lines(state, job).await?;
    if lines.len() != total {
        return Err(JobError::retryable(
            ErrorCode::Internal,
            "Some synthesized lines went missing; retrying",
        ));
    }
    let mut spoken = Vec::with_capacity(total);
    for (index, (paid, ext, key)) in lines {
        let bytes = state.storage.get(&key).await.map_err(anyhow::Error::from)?;
        spoken.push(Spoken {
            index,
            paid,
            ext,
            bytes,
        });
    }
    Ok(spoken)
}

/// The lines kept under the job's folder, by their place in the script.
async fn kept_lines(
    state: &Services,
    job: JobId,
) -> Result<BTreeMap<usize, (bool, String, Key)>, JobError> {
    let mut lines = BTreeMap::new();
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
    Ok(lines)
}

/// Assemble: masters the lines in script order into one MP3 (pauses, loudness, ID3 chapters,
/// title, author, show and cover, peaks) and turns where each line landed into the episode's
/// line and chapter timings.
#[tracing::instrument(skip_all)]
async fn assemble(state: &Services, plan: &Plan, lines: &[Spoken]) -> Result<Assembled, JobError> {
    let (script, show) = (&plan.script, &plan.show);
    let sources: Vec<(Bytes, Format)> = lines
        .iter()
        .map(|l| (l.bytes.clone(), format_of(&l.ext)))
        .collect();
    let chapters: Vec<Option<String>> = script.lines.iter().map(|l| l.chapter.clone()).collect();
    let tags = Id3Tags {
        title: Some(plan.episode.title.clone()),
        artist: show.author.clone(),
        album: Some(show.title.clone()),
        cover: episode_cover(state, show).await?,
        ..Id3Tags::default()
    };
    let options = MasterOptions {
        pause_ms: script.pause_ms,
        ..MasterOptions::default()
    };
    let mastered = synth::audio_work(
        move || {
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
        },
        unprocessable_audio,
    )
    .await?;

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
    Ok(Assembled {
        mastered,
        timings_json,
    })
}

/// Commit: paid lines become cache entries (their objects outside the job's folder, so they
/// outlive it), the episode's file is stored, then one transaction records the audio's
/// result, its peaks and timings, the usage rows and cache entries with the job's success.
/// When the job was canceled meanwhile nothing is recorded and the file goes again; the job's
/// folder goes either way.
#[tracing::instrument(skip_all)]
async fn commit(
    state: &Services,
    plan: &Plan,
    lines: &[Spoken],
    assembled: Assembled,
) -> Result<(), JobError> {
    let (job, audio_id, user) = (plan.job, plan.audio, plan.user);
    let Assembled {
        mastered,
        timings_json,
    } = assembled;
    let cache = cache_paid_lines(state, plan, lines, &mastered.spans).await?;
    let object_key = keys::audio(user, audio_id, "mp3");
    let file = StoredFile {
        object_key: object_key.as_str().to_string(),
        peaks_key: keys::peaks(user, audio_id).as_str().to_string(),
        duration_ms: mastered.duration_ms as i64,
        size_bytes: mastered.bytes.len() as i64,
        sha256: hex::encode(Sha256::digest(&mastered.bytes)),
    };
    state
        .storage
        .put(&object_key, Bytes::from(mastered.bytes))
        .await
        .map_err(anyhow::Error::from)?;
    let outcome = Outcome {
        job,
        audio: audio_id,
        user,
        file,
        peaks: Some(mastered.peaks),
        reused: false,
        usage: ledger(&plan.lines, lines),
        cache,
        timings_json: Some(timings_json),
    };
    let committed = synth::record(state, outcome).await?;
    announce_or_discard(state, audio_id, committed, &object_key).await?;
    state
        .storage
        .delete_prefix(&keys::job_prefix(job))
        .await
        .map_err(anyhow::Error::from)?;
    Ok(())
}

/// Stores each line this job paid for under its cache key; the entries are recorded with
/// the commit.
async fn cache_paid_lines(
    state: &Services,
    plan: &Plan,
    lines: &[Spoken],
    spans: &[audio::Span],
) -> Result<Vec<(String, StoredFile)>, JobError> {
    let mut new_cache = Vec::new();
    for line in lines.iter().filter(|l| l.paid) {
        let p = &plan.lines[line.index];
        let key = keys::cached_line(&p.key, &line.ext);
        state
            .storage
            .put(&key, line.bytes.clone())
            .await
            .map_err(anyhow::Error::from)?;
        let span = spans[line.index];
        new_cache.push((
            p.key.clone(),
            StoredFile {
                object_key: key.as_str().to_string(),
                peaks_key: String::new(),
                duration_ms: span.end_ms.saturating_sub(span.start_ms) as i64,
                size_bytes: line.bytes.len() as i64,
                sha256: hex::encode(Sha256::digest(&line.bytes)),
            },
        ));
    }
    Ok(new_cache)
}

/// One usage row per service and kind (paid, or from the cache at no cost): the characters
/// sent for its lines and, for paid ones, their price.
fn ledger(planned: &[Planned], lines: &[Spoken]) -> Vec<Billed> {
    let mut ledger: BTreeMap<(String, bool), (i64, i64)> = BTreeMap::new();
    for line in lines {
        let p = &planned[line.index];
        let chars = p.sent_chars();
        let entry = ledger.entry((p.service.clone(), !line.paid)).or_default();
        entry.0 += chars as i64;
        if line.paid {
            entry.1 += p.provider.cost_micros(chars) as i64;
        }
    }
    ledger
        .into_iter()
        .map(|((service, cached), (units, cost_micros))| Billed {
            service,
            units,
            cost_micros,
            cached,
        })
        .collect()
}

/// The show's cover for the APIC frame; a cover that vanished meanwhile is simply left out.
async fn episode_cover(state: &Services, show: &PodcastRow) -> Result<Option<Cover>, JobError> {
    match crate::podcast::service::load_cover(state, show).await {
        Ok((kind, data)) => Ok(Some(Cover {
            mime: kind.mime().into(),
            data: data.to_vec(),
        })),
        Err(AppError::NotFound) => Ok(None),
        Err(e) => Err(JobError::retryable(ErrorCode::Storage, e.to_string())),
    }
}

/// A line's audio from the result cache, when its object is still there.
async fn cached_line(state: &Services, key: String) -> Result<Option<(Bytes, String)>, JobError> {
    let hit = state.db.tts_cache().get(key).await?.map(|e| e.object_key);
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
        let request = SynthesisRequest {
            text: chunk.clone(),
            voice: p.voice.clone(),
            speed: 1.0,
            format_hint: Format::Mp3,
            model: None,
            instructions: None,
        };
        let out = crate::providers::speak(p.provider.as_ref(), &request)
            .await
            .map_err(provider_error)?;
        outs.push((out.bytes, out.format));
    }
    if let [(bytes, format)] = outs.as_slice()
        && !format.is_raw()
    {
        return Ok((bytes.clone(), format.extension().to_string()));
    }
    let wav = synth::audio_work(
        move || {
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
        },
        unusable_audio,
    )
    .await?;
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
            2_000
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

    fn spoken(index: usize, paid: bool) -> Spoken {
        Spoken {
            index,
            paid,
            ext: "mp3".into(),
            bytes: Bytes::new(),
        }
    }

    #[test]
    fn paid_lines_are_billed_and_lines_from_the_cache_are_counted_free_in_a_row_of_their_own() {
        let planned: Vec<Planned> = (0..3).map(|_| line(Format::Mp3, vec![])).collect();
        let ledger = ledger(
            &planned,
            &[spoken(0, true), spoken(1, false), spoken(2, true)],
        );
        let service = "tts:kokoro:fixed".to_string();
        assert_eq!(
            ledger
                .into_iter()
                .map(|b| ((b.service, b.cached), (b.units, b.cost_micros)))
                .collect::<Vec<_>>(),
            vec![
                ((service.clone(), false), (12, 24)),
                ((service, true), (6, 0))
            ]
        );
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
