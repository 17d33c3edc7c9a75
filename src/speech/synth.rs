//! What every synthesis job shares (a library audio, a podcast episode): provider failures as
//! job errors, result-cache keys, usage service names, text pieces, the format of kept objects,
//! audio work off the executor, progress reports, and how an audio's job ends.

use std::sync::atomic::{AtomicUsize, Ordering};

use futures::FutureExt;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::audio::{AudioError, Format};
use crate::db::{AudioId, AudioStatus};
use crate::error::ErrorCode;
use crate::jobs::events::{ErrorInfo, StatusEvent};
use crate::jobs::{JobContext, JobError};
use crate::providers::{ProviderError, Tts};
use crate::services::Services;
use crate::speech::chunk::LimitTooSmall;
use crate::storage::{Key, keys};

/// Silence between chunks of one text: they were split at sentence or clause ends.
pub(crate) const CHUNK_PAUSE_MS: u32 = 150;

/// A provider's failure as a job error: its code, message and whether to try again.
pub(crate) fn provider_error(e: ProviderError) -> JobError {
    JobError {
        code: e.code(),
        retryable: e.kind.is_retryable(),
        retry_after: e.retry_after,
        message: e.message,
    }
}

/// The usage ledger's service for what a provider speaks: `tts:<provider>:<model>`.
pub(crate) fn service_of(provider: &dyn Tts) -> String {
    service_named(provider, provider.model())
}

/// The usage ledger's service for what a provider speaks with one of its models.
pub(crate) fn service_named(provider: &dyn Tts, model: &str) -> String {
    format!("tts:{}:{model}", provider.id())
}

/// A text cut to what `provider` takes in one request with `voice`, the first piece small
/// for providers that start faster on a short request.
pub(crate) fn split_for_provider<'a>(
    provider: &dyn Tts,
    voice: &str,
    text: &'a str,
) -> Result<Vec<&'a str>, LimitTooSmall> {
    let limit = provider.limits(voice);
    match provider.first_chunk_units(voice) {
        Some(first) => crate::speech::chunk::split_ramped(text, &limit, first),
        None => crate::speech::chunk::split_for(text, &limit),
    }
}

/// The cached result of the same request, when its object is still there (a cache row whose
/// object is gone, e.g. removed by hand, is a miss).
pub(crate) async fn cached(
    state: &Services,
    key: String,
) -> anyhow::Result<Option<crate::db::tts_cache::Entry>> {
    let hit = state.db.tts_cache().get(key).await?;
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

/// A text cut to the provider's request limit, as the pieces the provider is sent.
pub(crate) fn owned_pieces(
    split: Result<Vec<&str>, LimitTooSmall>,
) -> Result<Vec<String>, JobError> {
    Ok(split
        .map_err(|e| JobError::fatal(ErrorCode::TextTooLong, e.to_string()))?
        .into_iter()
        .map(str::to_string)
        .collect())
}

/// Stops before a piece is paid for once the job was canceled.
pub(crate) fn ensure_not_canceled(cancel: &CancellationToken) -> Result<(), JobError> {
    if cancel.is_cancelled() {
        return Err(JobError::canceled());
    }
    Ok(())
}

/// A provider's answer that does not decode: retried, as the next answer may.
pub(crate) fn unusable_audio(e: AudioError) -> JobError {
    JobError::retryable(
        ErrorCode::BadAudio,
        format!("Unusable audio from the provider: {e}"),
    )
}

/// Pieces that could not be joined, mastered or encoded: retried like unusable audio.
pub(crate) fn unprocessable_audio(e: AudioError) -> JobError {
    JobError::retryable(
        ErrorCode::BadAudio,
        format!("The provider's audio could not be processed: {e}"),
    )
}

/// Runs CPU-bound audio work on the blocking pool, its failure mapped by `fail`.
pub(crate) async fn audio_work<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AudioError> + Send + 'static,
    fail: fn(AudioError) -> JobError,
) -> Result<T, JobError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(anyhow::Error::from)?
        .map_err(fail)
}

/// What identifies a synthesis result: the same request always gives the same audio.
pub fn cache_key(
    provider: &str,
    model: &str,
    voice: &str,
    speed: f64,
    format: &str,
    text: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [provider, model, voice, &format!("{speed:.3}"), format, text] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The container of a stored key (or a bare extension) by its extension. Kept objects are
/// always containers (raw PCM is wrapped before it is kept), MP3 when the name says nothing.
pub(crate) fn format_of(key: &str) -> Format {
    key.rsplit('.')
        .next()
        .and_then(Format::from_extension)
        .unwrap_or(Format::Mp3)
}

/// The end of a job that gave up: its audio fails with the job's error, listeners hear it,
/// and what the job kept in storage goes.
pub(crate) fn fail(
    ctx: JobContext<Services>,
    error: JobError,
) -> BoxFuture<'static, anyhow::Result<()>> {
    async move {
        let Some(id) = ctx.job.audio_id else {
            return Ok(());
        };
        let (code, message) = (error.code, error.message.clone());
        ctx.state
            .db
            .audios()
            .mark_failed(id, code.as_str(), message)
            .await?;
        ctx.state.jobs.events.publish(
            id,
            StatusEvent {
                status: AudioStatus::Failed,
                progress: 0.0,
                error: Some(ErrorInfo {
                    code: error.code.as_str().into(),
                    message: error.message,
                }),
            },
        );
        discard_kept(ctx).await
    }
    .boxed()
}

/// The end of a canceled job: what it kept in storage goes (the audio row went with the cancel).
pub(crate) fn discard_kept(ctx: JobContext<Services>) -> BoxFuture<'static, anyhow::Result<()>> {
    async move {
        ctx.state
            .storage
            .delete_prefix(&keys::job_prefix(ctx.job.id))
            .await?;
        Ok(())
    }
    .boxed()
}

// What a job records at its end is typed where it is recorded.
pub(crate) use crate::db::audios::{StoredFile, Synthesized as Outcome};
pub(crate) use crate::db::usage::Billed;

/// The job's end, in one transaction with the job's success (see
/// [`finish_synthesis`](crate::db::audios::Audios::finish_synthesis)). False (and nothing
/// written) when the job was canceled meanwhile, or when a reused result was deleted in
/// between.
pub(crate) async fn record(state: &Services, outcome: Outcome) -> Result<bool, JobError> {
    Ok(state.db.audios().finish_synthesis(outcome).await?.is_ok())
}

/// After the job's final transaction: listeners hear the audio is ready, or, when the job was
/// canceled meanwhile and nothing was recorded, the file just stored goes (it belongs to no audio).
pub(crate) async fn announce_or_discard(
    state: &Services,
    audio: AudioId,
    committed: bool,
    object_key: &Key,
) -> Result<(), JobError> {
    if committed {
        publish_done(state, audio);
    } else {
        state
            .storage
            .delete(object_key)
            .await
            .map_err(anyhow::Error::from)?;
    }
    Ok(())
}

/// Tells listeners the audio is ready (after the commit that made it so).
pub(crate) fn publish_done(state: &Services, audio: AudioId) {
    state.jobs.events.publish(
        audio,
        StatusEvent {
            status: AudioStatus::Succeeded,
            progress: 1.0,
            error: None,
        },
    );
}

/// Announces a running audio's progress (0..1) to listeners at every step, but saves it at
/// most every [`SAVE_PROGRESS_EVERY`]: the single writer would otherwise take one
/// transaction per chunk, while pages that poll the row do not need finer steps.
pub(crate) struct Progress {
    state: Services,
    audio: AudioId,
    /// When the row last changed; the claim that started the job marked it running.
    saved: std::sync::Mutex<std::time::Instant>,
}

/// Listeners of the events see every step; a page polling the row sees at least this often.
const SAVE_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl Progress {
    pub(crate) fn new(state: &Services, audio: AudioId) -> Self {
        Self {
            state: state.clone(),
            audio,
            saved: std::sync::Mutex::new(std::time::Instant::now()),
        }
    }

    pub(crate) async fn report(&self, progress: f64) -> Result<(), JobError> {
        let due = {
            let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
            let due = saved.elapsed() >= SAVE_PROGRESS_EVERY;
            if due {
                *saved = std::time::Instant::now();
            }
            due
        };
        if due {
            self.state
                .db
                .audios()
                .set_progress(self.audio, AudioStatus::Running, progress)
                .await?;
        }
        self.state.jobs.events.publish(
            self.audio,
            StatusEvent {
                status: AudioStatus::Running,
                progress,
                error: None,
            },
        );
        Ok(())
    }
}

/// The pieces of a job done so far, reported as progress: 5% once under way, then `share` of the
/// bar spread over the pieces.
pub(crate) struct Tally {
    done: AtomicUsize,
    total: usize,
    share: f64,
}

impl Tally {
    /// `kept` pieces were done by an earlier attempt.
    pub(crate) fn new(kept: usize, total: usize, share: f64) -> Self {
        Self {
            done: AtomicUsize::new(kept.min(total)),
            total,
            share,
        }
    }

    /// Counts one more piece done and reports the progress it makes.
    pub(crate) async fn piece_done(&self, progress: &Progress) -> Result<(), JobError> {
        progress.report(self.count_one()).await
    }

    /// Counts one more piece done: the progress it makes.
    fn count_one(&self) -> f64 {
        let n = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        0.05 + self.share * n as f64 / self.total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ErrorKind;

    #[test]
    fn cache_keys_separate_every_input() {
        let base = cache_key("openai", "tts-1", "alloy", 1.0, "mp3", "hello");
        assert_eq!(
            base,
            cache_key("openai", "tts-1", "alloy", 1.0, "mp3", "hello")
        );
        for other in [
            cache_key("elevenlabs", "tts-1", "alloy", 1.0, "mp3", "hello"),
            cache_key("openai", "tts-1-hd", "alloy", 1.0, "mp3", "hello"),
            cache_key("openai", "tts-1", "nova", 1.0, "mp3", "hello"),
            cache_key("openai", "tts-1", "alloy", 1.25, "mp3", "hello"),
            cache_key("openai", "tts-1", "alloy", 1.0, "wav", "hello"),
            cache_key("openai", "tts-1", "alloy", 1.0, "mp3", "hello!"),
            cache_key("openai", "tts-1a", "lloy", 1.0, "mp3", "hello"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn kept_objects_are_read_by_their_extension() {
        let job = crate::db::JobId::from(ulid::Ulid::generate());
        assert_eq!(
            format_of(keys::job_chunk(job, 12, "wav").as_str()),
            Format::Wav
        );
        assert_eq!(format_of("jobs/x/line-00001-p.ogg"), Format::Ogg);
        assert_eq!(format_of("flac"), Format::Flac);
        assert_eq!(format_of("jobs/x/chunk-00001.mp3"), Format::Mp3);
        assert_eq!(format_of("jobs/x/unnamed"), Format::Mp3);
    }

    #[test]
    fn progress_resumes_after_the_pieces_an_earlier_attempt_kept() {
        let tally = Tally::new(2, 4, 0.8);
        assert_eq!(tally.count_one(), 0.05 + 0.8 * 3.0 / 4.0);
        assert_eq!(tally.count_one(), 0.05 + 0.8);
        let fresh = Tally::new(0, 4, 0.85);
        assert_eq!(fresh.count_one(), 0.05 + 0.85 / 4.0);
    }

    #[test]
    fn provider_failures_keep_their_code_wait_and_retry_decision() {
        let e = provider_error(
            ProviderError::new("openai", ErrorKind::RateLimited, "slow down")
                .with_retry_after(Some(std::time::Duration::from_secs(3))),
        );
        assert_eq!(e.code, "provider_rate_limited");
        assert!(e.retryable);
        assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(3)));
        assert_eq!(e.message, "slow down");
        let e = provider_error(ProviderError::new("openai", ErrorKind::Auth, "bad key"));
        assert_eq!(e.code, "provider_auth");
        assert!(!e.retryable);
    }
}
