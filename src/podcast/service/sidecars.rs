//! Subtitles and chapters of a rendered episode, for its owner and through feed links.

use super::episodes::Timings;
use super::feed_links::{CHAPTERS_PURPOSE, TRANSCRIPT_PURPOSE, signed_episode};
use super::published::{self, FeedFile};
use crate::db::episodes::EpisodeRow;
use crate::db::{EpisodeId, PodcastId, UserId};
use crate::error::{AppError, Result};
use crate::podcast::subtitles;
use crate::services::Services;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sidecar {
    Vtt,
    Srt,
    Chapters,
}

impl Sidecar {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Vtt => "text/vtt; charset=utf-8",
            Self::Srt => "application/x-subrip; charset=utf-8",
            Self::Chapters => "application/json+chapters",
        }
    }
}

fn render_sidecar(e: &EpisodeRow, kind: Sidecar) -> Result<String> {
    let timings: Timings = match &e.timings_json {
        Some(j) => serde_json::from_str(j).map_err(anyhow::Error::from)?,
        None => {
            return Err(AppError::Conflict("The episode is not rendered yet".into()));
        }
    };
    Ok(match kind {
        Sidecar::Vtt => subtitles::to_vtt(&timings.lines),
        Sidecar::Srt => subtitles::to_srt(&timings.lines),
        Sidecar::Chapters => subtitles::to_chapters_json(&timings.chapters),
    })
}

/// Subtitles or chapters of the caller's episode.
pub async fn sidecar(
    state: &Services,
    user: UserId,
    podcast: PodcastId,
    id: EpisodeId,
    kind: Sidecar,
) -> Result<String> {
    let e = state
        .db
        .episodes()
        .get(user, podcast, id)
        .await?
        .ok_or(AppError::NotFound)?;
    render_sidecar(&e, kind)
}

/// The transcript or chapters through a signed feed link: a public show's transcript is
/// published when `storage.public_base_url` is set.
pub async fn signed_sidecar(
    state: &Services,
    id: &str,
    exp: i64,
    sig: &str,
    kind: Sidecar,
) -> Result<FeedFile<String>> {
    let purpose = if kind == Sidecar::Chapters {
        CHAPTERS_PURPOSE
    } else {
        TRANSCRIPT_PURPOSE
    };
    let (e, public) = signed_episode(state, purpose, id, exp, sig).await?;
    let body = render_sidecar(&e, kind)?;
    if public
        && kind == Sidecar::Vtt
        && let Some(url) = published::transcript(state, &e, &body).await?
    {
        return Ok(FeedFile::Published(url));
    }
    Ok(FeedFile::Here(body))
}
