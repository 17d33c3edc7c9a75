//! Signed feed links: what each one is for, how long it lives, and checking one.

use super::published::{self, FeedFile};
use crate::db::EpisodeId;
use crate::db::audios::AudioRow;
use crate::db::episodes::EpisodeRow;
use crate::db::podcasts::FeedState;
use crate::error::ErrorCode;
use crate::error::{AppError, Result};
use crate::services::Services;

/// Feed links must keep working in podcast apps for as long as anyone listens.
pub(super) const FEED_LINK_S: i64 = 10 * 365 * 86_400;
/// Signature purposes of the feed's links: episode audio, transcript, chapters and cover.
pub const EPISODE_AUDIO_PURPOSE: &str = "episode-audio";
pub const TRANSCRIPT_PURPOSE: &str = "transcript";
pub const CHAPTERS_PURPOSE: &str = "chapters";
pub const COVER_PURPOSE: &str = "cover";

/// Checks a feed link against the show's current generation.
pub(super) fn check_feed_link(
    state: &Services,
    purpose: &str,
    id: &str,
    generation: i64,
    exp: i64,
    sig: &str,
) -> Result<()> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if state
        .links
        .feed_file_valid(purpose, id, generation, exp, sig, now)
    {
        Ok(())
    } else {
        Err(link_refused())
    }
}

pub(super) fn link_refused() -> AppError {
    AppError::Forbidden {
        code: ErrorCode::Forbidden,
        message: "This link is invalid or has expired".into(),
    }
}

/// An episode reached through a signed feed link, once the link checks out against its
/// show's current feed generation, and whether the show is public.
pub(super) async fn signed_episode(
    state: &Services,
    purpose: &'static str,
    id: &str,
    exp: i64,
    sig: &str,
) -> Result<(EpisodeRow, bool)> {
    let id: EpisodeId = id.parse().map_err(|_| link_refused())?;
    let (episode, FeedState { generation, public }) = state
        .db
        .episodes()
        .with_feed_state(id)
        .await?
        // The same refusal as a forged signature: a link never tells which ids exist.
        .ok_or_else(link_refused)?;
    check_feed_link(
        state,
        purpose,
        &episode.id.to_string(),
        generation,
        exp,
        sig,
    )?;
    Ok((episode, public))
}

/// The audio of an episode through its signed feed (enclosure) link, whose extension `ext`
/// must be the audio's format: a public show's published copy when
/// `storage.public_base_url` is set, else the audio to serve here.
pub async fn signed_episode_audio(
    state: &Services,
    id: &str,
    ext: &str,
    exp: i64,
    sig: &str,
) -> Result<FeedFile<AudioRow>> {
    let (episode, public) = signed_episode(state, EPISODE_AUDIO_PURPOSE, id, exp, sig).await?;
    let audio = state
        .db
        .audios()
        .get_any(episode.audio_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if audio.format != ext {
        return Err(AppError::NotFound);
    }
    if public && let Some(url) = published::audio(state, &episode, &audio).await? {
        return Ok(FeedFile::Published(url));
    }
    Ok(FeedFile::Here(audio))
}
