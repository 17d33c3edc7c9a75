//! Signed feed links: what each one is for, how long it lives, and checking one.

use crate::db::EpisodeId;
use crate::db::audios::AudioRow;
use crate::db::episodes::EpisodeRow;
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
/// show's current feed generation.
pub(super) async fn signed_episode(
    state: &Services,
    purpose: &'static str,
    id: &str,
    exp: i64,
    sig: &str,
) -> Result<EpisodeRow> {
    let id: EpisodeId = id.parse().map_err(|_| link_refused())?;
    let (episode, generation) = state
        .db
        .episodes()
        .with_feed_generation(id)
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
    Ok(episode)
}

/// The finished audio of an episode through its signed feed (enclosure) link.
pub async fn signed_episode_audio(
    state: &Services,
    id: &str,
    exp: i64,
    sig: &str,
) -> Result<AudioRow> {
    let episode = signed_episode(state, EPISODE_AUDIO_PURPOSE, id, exp, sig).await?;
    state
        .db
        .audios()
        .get_any(episode.audio_id)
        .await?
        .ok_or(AppError::NotFound)
}
