//! The library's operations (create, list, retry, rename, delete, peaks), shared by the API,
//! the podcast renderer and tests; nothing here knows about HTTP.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::db::audios::{AudioRow, Cursor, Deleted, ListFilter, QueuedAudio, RequeueRefusal};
use crate::db::transcripts::NewestTranscript;
use crate::db::{AudioId, AudioKind, AudioStatus, Db, JobId, UserId};
use crate::error::{AppError, ErrorCode, Result};
use crate::jobs::NewJob;
use crate::jobs::events::StatusEvent;
use crate::services::Services;
use crate::storage::{Key, Storage};

/// The job kind that synthesizes a library audio.
pub const TTS_JOB: &str = "tts";
/// Attempts before a synthesis is marked failed (each attempt already retries inside the provider).
const MAX_ATTEMPTS: u32 = 3;
/// Titles are derived from the text when none is given.
const TITLE_CHARS: usize = 60;
pub const MIN_SPEED: f64 = 0.5;
pub const MAX_SPEED: f64 = 2.0;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAudio {
    pub text: String,
    /// Omitted: the server's default voice for the text's language (`/api/voices` `default`).
    #[serde(default)]
    pub voice: Option<String>,
    pub title: Option<String>,
    pub format: Option<String>,
    pub speed: Option<f64>,
}

/// The audio object of docs/api.md.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AudioView {
    pub id: AudioId,
    pub title: String,
    pub kind: AudioKind,
    pub status: AudioStatus,
    pub progress: f64,
    pub voice: Option<String>,
    pub format: String,
    pub speed: f64,
    pub chars: i64,
    pub duration_ms: Option<i64>,
    pub size_bytes: Option<i64>,
    pub error: Option<crate::jobs::events::ErrorInfo>,
    pub file_url: Option<String>,
    pub peaks_url: Option<String>,
    /// The audio's newest transcript (`{id, status}`), or null: the web app links to it.
    pub transcript: Option<NewestTranscript>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<AudioRow> for AudioView {
    fn from(r: AudioRow) -> Self {
        let done = r.status == AudioStatus::Succeeded;
        let error = match (r.error_code, r.error_message) {
            (Some(code), message) if r.status == AudioStatus::Failed => {
                Some(crate::jobs::events::ErrorInfo {
                    code,
                    message: message.unwrap_or_default(),
                })
            }
            _ => None,
        };
        Self {
            file_url: done.then(|| format!("/api/audios/{}/file", r.id)),
            peaks_url: (done && r.peaks_key.is_some())
                .then(|| format!("/api/audios/{}/peaks", r.id)),
            id: r.id,
            title: r.title,
            kind: r.kind,
            status: r.status,
            progress: r.progress,
            voice: r.voice,
            format: r.format,
            speed: r.speed,
            chars: r.chars,
            duration_ms: r.duration_ms,
            size_bytes: r.size_bytes,
            error,
            transcript: r.transcript,
            created_at: crate::db::to_rfc3339(r.created_at),
            updated_at: crate::db::to_rfc3339(r.updated_at),
        }
    }
}

impl AudioView {
    pub fn status_event(&self) -> StatusEvent {
        StatusEvent {
            status: self.status,
            progress: self.progress,
            error: self.error.clone(),
        }
    }
}

/// Validates a request, checks the voice and the monthly quota, and stores the audio with
/// its job in one transaction. The audio comes back `queued`.
pub async fn create(state: &Services, user: UserId, req: CreateAudio) -> Result<AudioRow> {
    let text =
        crate::speech::text::spoken(&req.text).map_err(|p| p.for_field("text", "The text"))?;
    let chars = text.chars().count();
    let max = state.config.tts.max_chars;
    if chars > max {
        return Err(AppError::field(
            ErrorCode::TextTooLong,
            "text",
            format!("The text has {chars} characters; the limit is {max}"),
        ));
    }
    let speed = req.speed.unwrap_or(1.0);
    if !(MIN_SPEED..=MAX_SPEED).contains(&speed) || !speed.is_finite() {
        return Err(AppError::field(
            ErrorCode::InvalidRequest,
            "speed",
            format!("Speed must be between {MIN_SPEED} and {MAX_SPEED}"),
        ));
    }
    let format = req.format.as_deref().unwrap_or("mp3").to_ascii_lowercase();
    if !matches!(format.as_str(), "mp3" | "wav") {
        return Err(AppError::field(
            ErrorCode::InvalidRequest,
            "format",
            "Format must be mp3 or wav",
        ));
    }
    let title = match req.title.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => super::text::title(t)?,
        _ => default_title(&text),
    };
    let voice_id = match req.voice.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => {
            let language = if text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)) {
                "zh"
            } else {
                "en"
            };
            state.providers.default_voice(language).await.ok_or_else(|| {
                AppError::field(
                    ErrorCode::UnknownVoice,
                    "voice",
                    format!("No voice speaks `{language}` on this server; choose one from /api/voices"),
                )
            })?
        }
    };
    let (_, voice) = state.providers.voice(&voice_id).await.map_err(|e| {
        let mut err = AppError::from(e);
        if let AppError::BadRequest { details, .. } = &mut err {
            *details = Some(json!({ "voice": details.take().unwrap_or(json!("unknown voice")) }));
        }
        err
    })?;

    state.auth.ensure_quota(user, chars, "text").await?;

    let (id, job) = (AudioId::new(&state.db), JobId::new(&state.db));
    let audio = QueuedAudio {
        id,
        user_id: user,
        kind: AudioKind::Tts,
        title,
        voice: Some(voice.id.clone()),
        format,
        speed,
        text: Some(text),
        chars: chars as i64,
    };
    let row = state
        .db
        .audios()
        .create(audio, tts_job(job, user, id))
        .await?;
    state.jobs.notify();
    Ok(row)
}

fn tts_job(id: JobId, user: UserId, audio: AudioId) -> NewJob<'static> {
    NewJob {
        id,
        kind: TTS_JOB,
        user_id: Some(user),
        audio_id: Some(audio),
        payload: json!({}),
        max_attempts: MAX_ATTEMPTS,
    }
}

/// The first words of the text, cut at a word boundary.
fn default_title(text: &str) -> String {
    let line = text.lines().next().unwrap_or(text).trim();
    if line.chars().count() <= TITLE_CHARS {
        return line.to_string();
    }
    let cut: String = line.chars().take(TITLE_CHARS).collect();
    let trimmed = match cut.rfind(char::is_whitespace) {
        Some(i) if i > TITLE_CHARS / 2 => &cut[..i],
        _ => &cut,
    };
    format!("{}…", trimmed.trim_end())
}

pub async fn get(state: &Services, user: UserId, id: AudioId) -> Result<AudioRow> {
    state
        .db
        .audios()
        .get(user, id)
        .await?
        .ok_or(AppError::NotFound)
}

/// Any audio, whoever owns it: for signed links and streams, which are authorized already.
pub async fn find(db: &Db, id: AudioId) -> Result<Option<AudioRow>> {
    Ok(db.audios().get_any(id).await?)
}

/// One page of a user's library (`fetch` rows at most, after `cursor`).
pub async fn list(
    db: &Db,
    user: UserId,
    filter: ListFilter,
    cursor: Option<Cursor>,
    fetch: usize,
) -> Result<Vec<AudioRow>> {
    Ok(db.audios().page(user, filter, cursor, fetch).await?)
}

/// An audio's peaks as JSON (`{sample_rate, duration_ms, peaks}`); not found before it
/// succeeded.
pub async fn peaks(db: &Db, storage: &Storage, audio: AudioRow) -> Result<Bytes> {
    let key = audio.peaks_key.ok_or(AppError::NotFound)?;
    let stored = db.audios().peaks(key.clone()).await?;
    Ok(match stored {
        Some(peaks) => Bytes::from(serde_json::to_vec(&peaks).map_err(anyhow::Error::from)?),
        // Finished before peaks moved into the database: they are an object in the store.
        None => storage.get(&Key::from_stored(key)).await?,
    })
}

pub async fn rename(state: &Services, user: UserId, id: AudioId, title: &str) -> Result<AudioRow> {
    let title = super::text::title(title)?;
    state
        .db
        .audios()
        .rename(user, id, title)
        .await?
        .ok_or(AppError::NotFound)
}

/// Queues a failed (or canceled) audio again with a fresh job.
pub async fn retry(state: &Services, user: UserId, id: AudioId) -> Result<AudioRow> {
    // A retry speaks the whole text again: the month's allowance must cover it, as at create.
    let chars = state.db.audios().text_chars(user, id).await?;
    if let Some(chars) = chars {
        state.auth.ensure_quota(user, chars, "text").await?;
    }
    let job = JobId::new(&state.db);
    let row = state
        .db
        .audios()
        .requeue(user, id, tts_job(job, user, id))
        .await?
        .map_err(|refusal| match refusal {
            RequeueRefusal::NotFound => AppError::NotFound,
            RequeueRefusal::NotSpeech => {
                AppError::Conflict("Only speech audios can be retried here".into())
            }
            RequeueRefusal::NotFailed(status) => AppError::Conflict(format!(
                "The audio is {status}; only failed audios can be retried"
            )),
        })?;
    state.jobs.notify();
    state
        .jobs
        .events
        .publish(id, AudioView::from(row.clone()).status_event());
    Ok(row)
}

/// Deletes an audio and its stored objects (unless another audio shares them); cancels its
/// job when it is running. Deleting an audio that is already gone succeeds.
pub async fn delete(state: &Services, user: UserId, id: AudioId) -> Result<()> {
    // An episode's files published for its public show go first: a failure leaves the audio
    // to delete again.
    if state.storage.publishes()
        && let Some(e) = state.db.episodes().of_audio(id).await?
        && e.user_id == user
    {
        state
            .storage
            .unpublish(&crate::storage::keys::public_episode(e.podcast_id, e.id))
            .await?;
    }
    let Deleted { jobs, orphans } = state
        .db
        .audios()
        .delete(user, id)
        .await?
        .unwrap_or_default();
    for job in jobs {
        state.jobs.cancel(job);
        state
            .storage
            .delete_prefix(&crate::storage::keys::job_prefix(job))
            .await?;
    }
    for key in orphans {
        state.storage.delete(&Key::from_stored(key)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_come_from_the_first_line_cut_at_a_word() {
        assert_eq!(default_title("Hello world.\nSecond line"), "Hello world.");
        let long = "word ".repeat(30);
        let t = default_title(&long);
        assert!(
            t.ends_with('…') && t.chars().count() <= TITLE_CHARS + 1,
            "{t}"
        );
        assert!(!t.contains("wor…"), "cut at a word boundary: {t}");
        let cjk = "你".repeat(100);
        assert_eq!(default_title(&cjk).chars().count(), TITLE_CHARS + 1);
    }
}
