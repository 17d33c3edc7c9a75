//! Episodes: validating a script and its cast, queueing the render, listing and deleting.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::scripts::{SpeakerVoice, limits};
use super::shows::get;
use crate::db::audios::AudioRow;
use crate::db::episodes::{EpisodeRow, QueuedEpisode};
use crate::db::{AudioId, EpisodeId, JobId, PodcastId, UserId, to_rfc3339};
use crate::error::ErrorCode;
use crate::error::{AppError, Result};
use crate::jobs::NewJob;
use crate::pagination::{Page, PageRequest};
use crate::podcast::script::{FlatLine, FlatScript};
use crate::podcast::subtitles::{TimedChapter, TimedLine};
use crate::services::Services;
use crate::speech::service::AudioView;

/// The job kind that renders an episode.
pub const PODCAST_JOB: &str = "podcast";
const MAX_ATTEMPTS: u32 = 3;
const DEFAULT_PAUSE_MS: u32 = 350;
const MAX_PAUSE_MS: u32 = 5000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpisodeBody {
    pub title: String,
    pub lines: Vec<FlatLine>,
    pub speakers: Vec<SpeakerVoice>,
    pub pause_ms: Option<u32>,
}

/// A speaker and the voice that speaks their lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cast {
    pub name: String,
    pub voice: String,
}

/// What `episodes.script_json` holds: everything the render job needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpisodeScript {
    pub lines: Vec<FlatLine>,
    pub speakers: Vec<Cast>,
    pub pause_ms: u32,
}

/// What `episodes.timings_json` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    pub lines: Vec<TimedLine>,
    pub chapters: Vec<TimedChapter>,
}

/// The episode object of the API.
#[derive(Debug, Clone, Serialize)]
pub struct EpisodeView {
    pub id: EpisodeId,
    pub podcast_id: PodcastId,
    pub title: String,
    pub audio: AudioView,
    pub lines: Vec<FlatLine>,
    pub speakers: Vec<Cast>,
    pub pause_ms: u32,
    pub created_at: String,
}

impl EpisodeView {
    fn new(e: EpisodeRow, audio: AudioRow) -> Self {
        let script: EpisodeScript = serde_json::from_str(&e.script_json).unwrap_or(EpisodeScript {
            lines: Vec::new(),
            speakers: Vec::new(),
            pause_ms: DEFAULT_PAUSE_MS,
        });
        Self {
            id: e.id,
            podcast_id: e.podcast_id,
            title: e.title,
            audio: audio.into(),
            lines: script.lines,
            speakers: script.speakers,
            pause_ms: script.pause_ms,
            created_at: to_rfc3339(e.created_at),
        }
    }
}

/// Validates the script and the voices, checks the quota, and stores the audio (kind
/// `podcast`), the episode and its render job in one transaction.
pub async fn create_episode(
    state: &Services,
    user: UserId,
    podcast: PodcastId,
    body: EpisodeBody,
) -> Result<EpisodeView> {
    get(state, user, podcast).await?;
    let title = crate::speech::text::title(&body.title)?;
    let pause_ms = body.pause_ms.unwrap_or(DEFAULT_PAUSE_MS);
    if pause_ms > MAX_PAUSE_MS {
        return Err(AppError::field(
            ErrorCode::InvalidRequest,
            "pause_ms",
            format!("At most {MAX_PAUSE_MS} ms"),
        ));
    }
    let names: Vec<String> = body
        .speakers
        .iter()
        .map(|s| s.name.trim().to_string())
        .collect();
    let mut script = FlatScript { lines: body.lines }.into_script();
    script.normalize(&names);
    script.validate(&names, &limits(state))?;
    let mut cast = Vec::with_capacity(body.speakers.len());
    for (i, s) in body.speakers.iter().enumerate() {
        let Some(voice) = s.voice.as_deref().filter(|v| !v.trim().is_empty()) else {
            return Err(AppError::BadRequest {
                code: ErrorCode::UnknownVoice,
                message: format!("Choose a voice for {}", s.name),
                details: Some(json!({ format!("speakers[{i}].voice"): "missing" })),
            });
        };
        let (_, v) = state.providers.voice(voice).await.map_err(|e| {
            let mut err = AppError::from(e);
            if let AppError::BadRequest { details, .. } = &mut err {
                *details = Some(json!({ format!("speakers[{i}].voice"): details.take().unwrap_or(json!("unknown voice")) }));
            }
            err
        })?;
        cast.push(Cast {
            name: names[i].clone(),
            voice: v.id,
        });
    }
    let chars = script.char_count();
    state.auth.ensure_quota(user, chars, "script").await?;
    let stored = EpisodeScript {
        lines: script.to_flat().lines,
        speakers: cast,
        pause_ms,
    };
    let script_json = serde_json::to_string(&stored).map_err(anyhow::Error::from)?;
    let text = script.to_dialogue_text();
    let (audio_id, episode_id, job_id) = (
        AudioId::new(&state.db),
        EpisodeId::new(&state.db),
        JobId::new(&state.db),
    );
    let (episode, audio) = state
        .db
        .episodes()
        .create(QueuedEpisode {
            id: episode_id,
            podcast_id: podcast,
            user_id: user,
            audio_id,
            title,
            text,
            chars: chars as i64,
            format: "mp3",
            script_json,
            job: NewJob {
                id: job_id,
                kind: PODCAST_JOB,
                user_id: Some(user),
                audio_id: Some(audio_id),
                payload: json!({ "episode": episode_id.to_string() }),
                max_attempts: MAX_ATTEMPTS,
            },
        })
        .await?;
    state.jobs.notify();
    Ok(EpisodeView::new(episode, audio))
}

async fn episode_with_audio(
    state: &Services,
    user: UserId,
    podcast: PodcastId,
    id: EpisodeId,
) -> Result<(EpisodeRow, AudioRow)> {
    state
        .db
        .episodes()
        .with_audio(user, podcast, id)
        .await?
        .ok_or(AppError::NotFound)
}

pub async fn get_episode(
    state: &Services,
    user: UserId,
    podcast: PodcastId,
    id: EpisodeId,
) -> Result<EpisodeView> {
    let (e, a) = episode_with_audio(state, user, podcast, id).await?;
    Ok(EpisodeView::new(e, a))
}

pub async fn list_episodes(
    state: &Services,
    user: UserId,
    podcast: PodcastId,
    req: &PageRequest,
) -> Result<Page<EpisodeView>> {
    get(state, user, podcast).await?;
    let cursor = req.ulid_cursor()?;
    let fetch = req.fetch();
    let rows = state
        .db
        .episodes()
        .page(user, podcast, cursor, fetch)
        .await?;
    let page = Page::from_rows(rows, req, |(e, _)| e.id.to_string());
    Ok(page.map(|(e, a)| EpisodeView::new(e, a)))
}

/// Deleting the audio removes the episode with it (the row cascades).
pub async fn delete_episode(
    state: &Services,
    user: UserId,
    podcast: PodcastId,
    id: EpisodeId,
) -> Result<()> {
    let found = state.db.episodes().get(user, podcast, id).await?;
    if let Some(e) = found {
        crate::speech::service::delete(state, user, e.audio_id).await?;
    }
    Ok(())
}
