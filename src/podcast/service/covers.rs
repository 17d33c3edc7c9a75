//! Cover images: uploading, replacing, serving and the long-lived link feeds carry.

use super::feed_links::{COVER_PURPOSE, FEED_LINK_S, check_feed_link, link_refused};
use super::shows::get;
use crate::db::podcasts::PodcastRow;
use crate::db::{PodcastId, UserId};
use crate::error::{AppError, Result};
use crate::services::Services;
use crate::storage::{Key, StorageError, keys};

/// Podcast apps ask for square artwork of a few hundred KiB; 1 MiB leaves room.
pub const MAX_COVER_BYTES: usize = 1024 * 1024;

/// The image types a cover may have, told apart by their leading bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoverType {
    Jpeg,
    Png,
}

impl CoverType {
    pub fn from_mime(mime: &str) -> Option<Self> {
        let essence = mime.split(';').next().unwrap_or_default().trim();
        match essence.to_ascii_lowercase().as_str() {
            "image/jpeg" | "image/jpg" => Some(Self::Jpeg),
            "image/png" => Some(Self::Png),
            _ => None,
        }
    }

    pub fn from_ext(ext: &str) -> Option<Self> {
        match ext {
            "jpg" => Some(Self::Jpeg),
            "png" => Some(Self::Png),
            _ => None,
        }
    }

    fn of_key(key: &str) -> Option<Self> {
        Self::from_ext(key.rsplit_once('.')?.1)
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
        }
    }

    pub fn ext(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
        }
    }

    fn matches(self, bytes: &[u8]) -> bool {
        match self {
            Self::Jpeg => bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
            Self::Png => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        }
    }
}

/// Best effort: a leftover object only costs space, and the row no longer points at it.
pub(super) async fn delete_object(state: &Services, key: &str) {
    if let Err(e) = state.storage.delete(&Key::from_stored(key)).await {
        tracing::warn!(key, error = %e, "could not delete a cover image");
    }
}

/// Stores a JPEG or PNG cover (checked by its leading bytes, not only the declared type),
/// replacing the previous one.
pub async fn set_cover(
    state: &Services,
    user: UserId,
    id: PodcastId,
    content_type: Option<&str>,
    bytes: bytes::Bytes,
) -> Result<PodcastRow> {
    let kind = content_type
        .and_then(CoverType::from_mime)
        .ok_or_else(|| AppError::UnsupportedMediaType("A cover is a JPEG or PNG image".into()))?;
    if bytes.len() > MAX_COVER_BYTES {
        return Err(AppError::PayloadTooLarge);
    }
    if !kind.matches(&bytes) {
        return Err(AppError::UnsupportedMediaType(format!(
            "The body is not a {} image",
            kind.mime()
        )));
    }
    get(state, user, id).await?;
    let key = keys::cover(id, kind.ext());
    state
        .storage
        .put(&key, bytes)
        .await
        .map_err(anyhow::Error::from)?;
    let old = state
        .db
        .podcasts()
        .set_cover(user, id, Some(key.as_str().to_string()))
        .await?;
    match old {
        None => {
            // Deleted while uploading.
            delete_object(state, key.as_str()).await;
            return Err(AppError::NotFound);
        }
        Some(Some(previous)) if previous != key.as_str() => delete_object(state, &previous).await,
        Some(_) => {}
    }
    get(state, user, id).await
}

/// Removes the cover; removing a missing cover is not an error.
pub async fn delete_cover(state: &Services, user: UserId, id: PodcastId) -> Result<()> {
    let old = state.db.podcasts().set_cover(user, id, None).await?;
    match old {
        None => Err(AppError::NotFound),
        Some(Some(previous)) => {
            delete_object(state, &previous).await;
            Ok(())
        }
        Some(None) => Ok(()),
    }
}

/// The image and its type.
pub(crate) async fn load_cover(
    state: &Services,
    show: &PodcastRow,
) -> Result<(CoverType, bytes::Bytes)> {
    let key = show.cover_key.as_deref().ok_or(AppError::NotFound)?;
    let kind = CoverType::of_key(key).ok_or(AppError::NotFound)?;
    let bytes = state
        .storage
        .get(&Key::from_stored(key))
        .await
        .map_err(|e| match e {
            StorageError::NotFound(_) => AppError::NotFound,
            other => anyhow::Error::from(other).into(),
        })?;
    Ok((kind, bytes))
}

/// The caller's cover image.
pub async fn cover(
    state: &Services,
    user: UserId,
    id: PodcastId,
) -> Result<(CoverType, bytes::Bytes)> {
    let show = get(state, user, id).await?;
    load_cover(state, &show).await
}

/// The cover through a signed feed link; the link names the image type it was made for.
pub async fn signed_cover(
    state: &Services,
    id: &str,
    ext: &str,
    exp: i64,
    sig: &str,
) -> Result<(CoverType, bytes::Bytes)> {
    let id: PodcastId = id.parse().map_err(|_| link_refused())?;
    let show = state
        .db
        .podcasts()
        .get_any(id)
        .await?
        // The same refusal as a forged signature: a link never tells which ids exist.
        .ok_or_else(link_refused)?;
    check_feed_link(
        state,
        COVER_PURPOSE,
        &show.id.to_string(),
        show.feed_generation,
        exp,
        sig,
    )?;
    let (kind, bytes) = load_cover(state, &show).await?;
    if CoverType::from_ext(ext) != Some(kind) {
        return Err(AppError::NotFound);
    }
    Ok((kind, bytes))
}

/// A long-lived signed link to the show's cover, for feeds; it changes when the show does,
/// so podcast apps fetch a replaced image.
pub(super) fn cover_feed_url(state: &Services, show: &PodcastRow) -> Option<String> {
    let kind = CoverType::of_key(show.cover_key.as_deref()?)?;
    let exp = show.updated_at / 1000 + FEED_LINK_S;
    Some(state.links.feed_file(
        &format!("podcasts/{}/cover.{}", show.id, kind.ext()),
        COVER_PURPOSE,
        &show.id.to_string(),
        show.feed_generation,
        exp,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover_types_come_from_the_declared_type_and_must_match_the_leading_bytes() {
        assert_eq!(CoverType::from_mime("image/PNG; q=1"), Some(CoverType::Png));
        assert_eq!(CoverType::from_mime("image/jpeg"), Some(CoverType::Jpeg));
        assert_eq!(CoverType::from_mime("image/gif"), None);
        assert!(CoverType::Png.matches(b"\x89PNG\r\n\x1a\n rest"));
        assert!(!CoverType::Png.matches(b"\xFF\xD8\xFF\xE0"));
        assert!(CoverType::Jpeg.matches(b"\xFF\xD8\xFF\xE0"));
        assert!(!CoverType::Jpeg.matches(b"<svg"));
        assert_eq!(CoverType::of_key("covers/01HX.jpg"), Some(CoverType::Jpeg));
        assert_eq!(CoverType::of_key("covers/01HX"), None);
    }
}
