//! The RSS feed of a show and its token.

use super::covers::cover_feed_url;
use super::feed_links::{CHAPTERS_PURPOSE, EPISODE_AUDIO_PURPOSE, FEED_LINK_S, TRANSCRIPT_PURPOSE};
use crate::auth::secret;
use crate::db::{AudioStatus, PodcastId, UserId, audios, episodes, now_ms, podcasts};
use crate::error::{AppError, Result};
use crate::podcast::feed::{self, Item, Show};
use crate::services::Services;

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
        .write(move |c| {
            Ok(podcasts::set_feed_token(
                c,
                user,
                podcast,
                &digest,
                now_ms(),
            )?)
        })
        .await?;
    if !ok {
        return Err(AppError::NotFound);
    }
    Ok(state.links.feed(&podcast.to_string(), Some(&token)))
}

/// The RSS feed of a public show, or of a private one with its current token; 404 otherwise,
/// so a private show's existence is not revealed.
pub async fn feed(state: &Services, podcast: PodcastId, token: Option<&str>) -> Result<String> {
    let (show, digest, items) = state
        .db
        .read(move |c| {
            let Some(show) = podcasts::get_any(c, podcast)? else {
                return Ok(None);
            };
            let digest = podcasts::feed_token_digest(c, podcast)?;
            let mut items = Vec::new();
            for e in episodes::list(c, podcast, None, 1000)? {
                if let Some(a) = audios::get_any(c, e.audio_id)?
                    && a.status == AudioStatus::Succeeded
                {
                    items.push((e, a));
                }
            }
            Ok(Some((show, digest, items)))
        })
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
