//! What every synthesis job shares (a library audio, a podcast episode): provider failures as
//! job errors, result-cache keys, the format of kept objects, progress reports, and how an
//! audio's job ends.

use futures::FutureExt;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

use crate::audio::Format;
use crate::db::audios;
use crate::db::{AudioId, AudioStatus, now_ms};
use crate::jobs::events::{ErrorInfo, StatusEvent};
use crate::jobs::{JobContext, JobError};
use crate::providers::ProviderError;
use crate::services::Services;
use crate::storage::keys;

/// Silence between chunks of one text: they were split at sentence or clause ends.
pub(crate) const CHUNK_PAUSE_MS: u32 = 150;

/// A provider's failure as a job error: its code, message and whether to try again.
pub(crate) fn provider_error(e: ProviderError) -> JobError {
    JobError {
        code: e.code().to_string(),
        retryable: e.kind.is_retryable(),
        retry_after: e.retry_after,
        message: e.message,
    }
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
        let (code, message) = (error.code.clone(), error.message.clone());
        ctx.state
            .db
            .transaction(move |tx| {
                audios::fail(tx, id, &code, &message, now_ms())?;
                Ok(())
            })
            .await?;
        ctx.state.jobs.events.publish(
            id,
            StatusEvent {
                status: AudioStatus::Failed,
                progress: 0.0,
                error: Some(ErrorInfo {
                    code: error.code,
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
            let audio = self.audio;
            self.state
                .db
                .write(move |c| {
                    Ok(audios::set_progress(
                        c,
                        audio,
                        AudioStatus::Running,
                        progress,
                        now_ms(),
                    )?)
                })
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
