//! Shows: creating, listing, changing and deleting them.

use serde::{Deserialize, Serialize};

use super::covers::delete_object;
use super::published::unpublish_show;
use crate::db::podcasts::{Changes, PodcastRow};
use crate::db::{PodcastId, UserId, to_rfc3339};
use crate::error::{AppError, ErrorCode, Result};
use crate::pagination::{Page, PageRequest};
use crate::services::Services;

const MAX_DESCRIPTION_CHARS: usize = 4000;
const MAX_CATEGORY_CHARS: usize = 100;

/// The podcast object of the API.
#[derive(Debug, Clone, Serialize)]
pub struct PodcastView {
    pub id: PodcastId,
    pub title: String,
    pub description: String,
    pub language: Option<String>,
    pub author: Option<String>,
    pub category: Option<String>,
    /// The owner's link to the cover image, when one was uploaded.
    pub cover_url: Option<String>,
    pub public: bool,
    pub has_feed_token: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<PodcastRow> for PodcastView {
    fn from(r: PodcastRow) -> Self {
        let cover_url = r
            .cover_key
            .is_some()
            .then(|| format!("/api/podcasts/{}/cover", r.id));
        Self {
            id: r.id,
            title: r.title,
            description: r.description,
            language: r.language,
            author: r.author,
            category: r.category,
            cover_url,
            public: r.public,
            has_feed_token: r.has_feed_token,
            created_at: to_rfc3339(r.created_at),
            updated_at: to_rfc3339(r.updated_at),
        }
    }
}

/// Body of create and update. On create, `title` is required.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodcastFields {
    pub title: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub language: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub author: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub category: Option<Option<String>>,
    pub public: Option<bool>,
}

fn changes(f: PodcastFields) -> Result<Changes> {
    let title = f
        .title
        .as_deref()
        .map(crate::speech::text::title)
        .transpose()?;
    if f.description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
    {
        return Err(AppError::field(
            ErrorCode::InvalidRequest,
            "description",
            "Descriptions are at most 4000 characters",
        ));
    }
    let short = |name: &str, v: Option<Option<String>>| -> Result<Option<Option<String>>> {
        match v {
            Some(Some(s)) if s.chars().count() > 100 => Err(AppError::field(
                ErrorCode::InvalidRequest,
                name,
                "At most 100 characters",
            )),
            Some(Some(s)) if s.trim().is_empty() => Ok(Some(None)),
            Some(Some(s)) => Ok(Some(Some(s.trim().to_string()))),
            other => Ok(other),
        }
    };
    let category = match f.category {
        Some(Some(c)) => {
            let c = c.trim().to_string();
            if c.is_empty() || c.chars().count() > MAX_CATEGORY_CHARS {
                return Err(AppError::field(
                    ErrorCode::InvalidRequest,
                    "category",
                    "A category has 1 to 100 characters",
                ));
            }
            Some(Some(c))
        }
        other => other,
    };
    Ok(Changes {
        title,
        category,
        description: f.description.map(|d| d.trim().to_string()),
        language: short("language", f.language)?,
        author: short("author", f.author)?,
        public: f.public,
    })
}

pub async fn create(state: &Services, user: UserId, f: PodcastFields) -> Result<PodcastRow> {
    if f.title.is_none() {
        return Err(AppError::field(
            ErrorCode::InvalidRequest,
            "title",
            "A podcast needs a title",
        ));
    }
    let c = changes(f)?;
    let id = PodcastId::new(&state.db);
    state
        .db
        .podcasts()
        .create(user, id, c)
        .await?
        .ok_or(AppError::NotFound)
}

pub async fn get(state: &Services, user: UserId, id: PodcastId) -> Result<PodcastRow> {
    state
        .db
        .podcasts()
        .get(user, id)
        .await?
        .ok_or(AppError::NotFound)
}

pub async fn list(state: &Services, user: UserId, req: &PageRequest) -> Result<Page<PodcastRow>> {
    let cursor = req.ulid_cursor()?;
    let fetch = req.fetch();
    let rows = state.db.podcasts().page(user, cursor, fetch).await?;
    Ok(Page::from_rows(rows, req, |r| r.id.to_string()))
}

pub async fn update(
    state: &Services,
    user: UserId,
    id: PodcastId,
    f: PodcastFields,
) -> Result<PodcastRow> {
    let c = changes(f)?;
    let show = state
        .db
        .podcasts()
        .update(user, id, c)
        .await?
        .ok_or(AppError::NotFound)?;
    // After the change, so a file being published meanwhile sees the show private and goes
    // too; on every update of a private show, so a failed removal is retried by saving again.
    if !show.public {
        unpublish_show(state, id).await?;
    }
    Ok(show)
}

/// Deletes the show, its cover, its episodes and their audios (objects included).
pub async fn delete(state: &Services, user: UserId, id: PodcastId) -> Result<()> {
    let Some(show) = state.db.podcasts().get(user, id).await? else {
        return Ok(());
    };
    // First, so a failed removal leaves the show there to delete again.
    unpublish_show(state, id).await?;
    let audios = state.db.podcasts().episode_audios(id).await?;
    for audio in audios {
        crate::speech::service::delete(state, user, audio).await?;
    }
    state.db.podcasts().delete(user, id).await?;
    if let Some(key) = show.cover_key {
        delete_object(state, &key).await;
    }
    Ok(())
}
