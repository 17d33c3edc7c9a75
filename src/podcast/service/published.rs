//! The files of public shows that `storage.public_base_url` serves: copied into the bucket's
//! `public/` folder when a feed link first asks for them, removed when the show goes private,
//! is deleted, or loses the episode. Nothing else is ever put there.

use std::future::Future;

use sha2::{Digest, Sha256};

use crate::db::AudioStatus;
use crate::db::PodcastId;
use crate::db::audios::AudioRow;
use crate::db::episodes::EpisodeRow;
use crate::error::Result;
use crate::services::Services;
use crate::storage::{Key, StorageResult, keys};

/// What a signed feed link leads to: a public show's file where `storage.public_base_url`
/// serves it, or the thing itself, to be served here.
#[derive(Debug)]
pub enum FeedFile<T> {
    Published(String),
    Here(T),
}

/// Published names carry this many hex digits of their content's SHA-256: unique per
/// content, and not guessable from the episode's id.
const NAME_DIGITS: usize = 32;

/// The public URL of a public show's episode audio, copied into the public folder (inside
/// the bucket) first if need be; None when nothing is published.
pub(super) async fn audio(
    state: &Services,
    episode: &EpisodeRow,
    audio: &AudioRow,
) -> Result<Option<String>> {
    let (Some(object), AudioStatus::Succeeded) = (&audio.object_key, audio.status) else {
        return Ok(None);
    };
    let digest = match audio.sha256.as_deref() {
        Some(sha) => sha[..sha.len().min(NAME_DIGITS)].to_string(),
        None => audio.id.to_string(),
    };
    let key = keys::public_episode_file(
        episode.podcast_id,
        episode.id,
        &format!("{digest}.{}", audio.format),
    );
    let from = Key::from_stored(object.as_str());
    publish(state, episode.podcast_id, &key, || {
        state.storage.copy(&from, &key)
    })
    .await
}

/// The public URL of a public show's episode transcript (WebVTT), stored in the public
/// folder first if need be; None when nothing is published.
pub(super) async fn transcript(
    state: &Services,
    episode: &EpisodeRow,
    vtt: &str,
) -> Result<Option<String>> {
    let digest = hex::encode(Sha256::digest(vtt.as_bytes()));
    let key = keys::public_episode_file(
        episode.podcast_id,
        episode.id,
        &format!("transcript-{}.vtt", &digest[..NAME_DIGITS]),
    );
    let body = bytes::Bytes::from(vtt.to_owned());
    // The bucket stores it typed by its extension (`CONTENT_TYPES` in storage.rs).
    publish(state, episode.podcast_id, &key, || {
        state.storage.put(&key, body)
    })
    .await
}

/// Puts `key` in the public folder unless it is there already, and gives its public URL.
async fn publish<F>(
    state: &Services,
    podcast: PodcastId,
    key: &Key,
    put: impl FnOnce() -> F,
) -> Result<Option<String>>
where
    F: Future<Output = StorageResult<()>>,
{
    let Some(url) = state.storage.public_url(key) else {
        return Ok(None);
    };
    if state.storage.is_published(key).await? {
        return Ok(Some(url));
    }
    put().await?;
    state.storage.note_published(key);
    // The show may have gone private while this was being put, after its files were removed.
    let public = state
        .db
        .podcasts()
        .get_any(podcast)
        .await?
        .is_some_and(|show| show.public);
    if !public {
        unpublish_show(state, podcast).await?;
        return Ok(None);
    }
    Ok(Some(url))
}

/// Removes every published file of a show: it went private or is being deleted.
pub(super) async fn unpublish_show(state: &Services, podcast: PodcastId) -> Result<()> {
    Ok(state.storage.unpublish(&keys::public_show(podcast)).await?)
}
