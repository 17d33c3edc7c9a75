//! The RSS feed of a show and its token.

use super::covers::cover_feed_url;
use super::feed_links::{CHAPTERS_PURPOSE, EPISODE_AUDIO_PURPOSE, FEED_LINK_S, TRANSCRIPT_PURPOSE};
use crate::auth::secret;
use crate::db::podcasts::FeedRows;
use crate::db::{PodcastId, UserId};
use crate::error::{AppError, Result};
use crate::podcast::feed::{self, Item, Show};
use crate::services::Services;

/// A feed lists the show's newest episodes, of these the ones that are finished.
const FEED_EPISODES: usize = 1000;

/// A new feed token; only its digest is kept, so the previous one stops working.
pub async fn rotate_feed_token(
    state: &Services,
    user: UserId,
    podcast: PodcastId,
) -> Result<String> {
    let token = secret::random_256();
    let digest = secret::digest(&token);
    let ok = state
        .db
        .podcasts()
        .set_feed_token(user, podcast, digest)
        .await?;
    if !ok {
        return Err(AppError::NotFound);
    }
    Ok(state.links.feed(&podcast.to_string(), Some(&token)))
}

/// The RSS feed of a public show, or of a private one with its current token; 404 otherwise,
/// so a private show's existence is not revealed.
pub async fn feed(state: &Services, podcast: PodcastId, token: Option<&str>) -> Result<String> {
    let FeedRows {
        show,
        token_digest: digest,
        episodes: items,
    } = state
        .db
        .podcasts()
        .feed(podcast, FEED_EPISODES)
        .await?
        .ok_or(AppError::NotFound)?;
    let token = token.filter(|t| secret::looks_like_256(t));
    let allowed = show.public
        || matches!((token, &digest), (Some(t), Some(d)) if secret::digest(t).as_slice() == d.as_slice());
    if !allowed {
        return Err(AppError::NotFound);
    }
    let generation = show.feed_generation;
    let items: Vec<Item> = items
        .into_iter()
        .map(|(e, a)| {
            let exp = e.created_at / 1000 + FEED_LINK_S;
            let link = |file: String, purpose| {
                state
                    .links
                    .feed_file(&file, purpose, &e.id.to_string(), generation, exp)
            };
            let rendered = e.timings_json.is_some();
            Item {
                guid: e.id.to_string(),
                title: e.title.clone(),
                description: None,
                link: None,
                published_ms: e.created_at,
                audio_url: link(
                    format!("episodes/{}/audio.{}", e.id, a.format),
                    EPISODE_AUDIO_PURPOSE,
                ),
                audio_bytes: a.size_bytes.unwrap_or(0) as u64,
                audio_type: if a.format == "wav" {
                    "audio/wav"
                } else {
                    "audio/mpeg"
                }
                .into(),
                duration_ms: a.duration_ms.unwrap_or(0) as u64,
                transcript_url: rendered.then(|| {
                    link(
                        format!("episodes/{}/transcript.vtt", e.id),
                        TRANSCRIPT_PURPOSE,
                    )
                }),
                chapters_url: rendered
                    .then(|| link(format!("episodes/{}/chapters.json", e.id), CHAPTERS_PURPOSE)),
            }
        })
        .collect();
    let image_url = cover_feed_url(state, &show);
    let rss = Show {
        title: show.title,
        link: state.links.show_page(&show.id.to_string()),
        description: show.description,
        author: show.author,
        language: show.language,
        image_url,
        category: show.category,
        explicit: false,
        feed_url: Some(
            state
                .links
                .feed(&show.id.to_string(), if show.public { None } else { token }),
        ),
    };
    Ok(feed::render(&rss, &items))
}
