//! Podcast shows: owner-scoped rows, and the feed-token digest that opens a private feed.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::audios::AudioRow;
use super::episodes::EpisodeRow;
use super::{AudioId, PodcastId, UserId, now_ms};

/// The `podcasts` table's operations, for services and jobs: `db.podcasts().…`. Each method picks
/// the connection it needs (see [`Db`](super::Db)); callers never hold one.
pub struct Podcasts<'a>(pub(super) &'a super::Db);

#[derive(Debug, Clone, PartialEq)]
pub struct PodcastRow {
    pub id: PodcastId,
    pub user_id: UserId,
    pub title: String,
    pub description: String,
    pub language: Option<String>,
    pub author: Option<String>,
    pub category: Option<String>,
    /// Object key of the cover image, if one was uploaded.
    pub cover_key: Option<String>,
    pub public: bool,
    /// Whether a feed token was ever issued (its digest is never read back out).
    pub has_feed_token: bool,
    /// Signed into every feed link; bumped by a new feed token and by going private.
    pub feed_generation: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, user_id, title, description, language, author, public, \
     feed_token_hash IS NOT NULL, created_at, updated_at, category, cover_key, feed_generation";

fn from_row(r: &Row<'_>) -> rusqlite::Result<PodcastRow> {
    Ok(PodcastRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        title: r.get(2)?,
        description: r.get(3)?,
        language: r.get(4)?,
        author: r.get(5)?,
        public: r.get(6)?,
        has_feed_token: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        category: r.get(10)?,
        cover_key: r.get(11)?,
        feed_generation: r.get(12)?,
    })
}

/// The editable fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub title: Option<String>,
    pub description: Option<String>,
    /// `Some(None)` clears it.
    pub language: Option<Option<String>>,
    pub author: Option<Option<String>>,
    pub category: Option<Option<String>>,
    pub public: Option<bool>,
}

pub fn insert(
    conn: &Connection,
    id: PodcastId,
    user: UserId,
    c: &Changes,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO podcasts (id, user_id, title, description, language, author, public, created_at, updated_at, category)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)")?.execute(params![
            id,
            user,
            c.title.as_deref().unwrap_or_default(),
            c.description.as_deref().unwrap_or_default(),
            c.language.clone().flatten(),
            c.author.clone().flatten(),
            c.public.unwrap_or(false),
            now,
            c.category.clone().flatten()
        ],
    )?;
    Ok(())
}

/// The caller's podcast, or None (also when it belongs to someone else).
pub fn get(conn: &Connection, user: UserId, id: PodcastId) -> rusqlite::Result<Option<PodcastRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM podcasts WHERE id = ?1 AND user_id = ?2"
    ))?
    .query_row(params![id, user], from_row)
    .optional()
}

/// Any podcast by id: for feeds, which are authorized by publicity or token.
pub fn get_any(conn: &Connection, id: PodcastId) -> rusqlite::Result<Option<PodcastRow>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM podcasts WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// Up to `fetch` of the caller's podcasts older than the cursor (an id), newest first.
pub fn list(
    conn: &Connection,
    user: UserId,
    cursor: Option<&str>,
    fetch: usize,
) -> rusqlite::Result<Vec<PodcastRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM podcasts WHERE user_id = ?1 AND (?2 IS NULL OR id < ?2)
         ORDER BY id DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![user, cursor, fetch as i64], from_row)?;
    rows.collect()
}

/// Applies the changes; false when the podcast is not the caller's. Making a public show
/// private bumps its feed generation, which revokes the links its public feed handed out.
pub fn update(
    conn: &Connection,
    user: UserId,
    id: PodcastId,
    c: &Changes,
    now: i64,
) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE podcasts SET
             title = COALESCE(?3, title),
             description = COALESCE(?4, description),
             language = CASE WHEN ?5 THEN ?6 ELSE language END,
             author = CASE WHEN ?7 THEN ?8 ELSE author END,
             feed_generation = feed_generation + (public = 1 AND ?9 IS 0),
             public = COALESCE(?9, public),
             updated_at = ?10,
             category = CASE WHEN ?11 THEN ?12 ELSE category END
         WHERE id = ?1 AND user_id = ?2",
        )?
        .execute(params![
            id,
            user,
            c.title,
            c.description,
            c.language.is_some(),
            c.language.clone().flatten(),
            c.author.is_some(),
            c.author.clone().flatten(),
            c.public,
            now,
            c.category.is_some(),
            c.category.clone().flatten()
        ])?;
    Ok(n == 1)
}

/// Points the show at a new cover object (or none) and returns the key it replaced; None
/// when the podcast is not the caller's.
pub fn set_cover(
    conn: &Connection,
    user: UserId,
    id: PodcastId,
    key: Option<&str>,
    now: i64,
) -> rusqlite::Result<Option<Option<String>>> {
    let old: Option<Option<String>> = conn
        .query_row(
            "SELECT cover_key FROM podcasts WHERE id = ?1 AND user_id = ?2",
            params![id, user],
            |r| r.get(0),
        )
        .optional()?;
    if old.is_some() {
        conn.prepare_cached(
            "UPDATE podcasts SET cover_key = ?3, updated_at = ?4 WHERE id = ?1 AND user_id = ?2",
        )?
        .execute(params![id, user, key, now])?;
    }
    Ok(old)
}

/// Audio ids of the podcast's episodes, so they can be deleted with their objects.
pub fn episode_audios(conn: &Connection, id: PodcastId) -> rusqlite::Result<Vec<AudioId>> {
    let mut stmt = conn.prepare_cached("SELECT audio_id FROM episodes WHERE podcast_id = ?1")?;
    let rows = stmt.query_map([id], |r| r.get(0))?;
    rows.collect()
}

pub fn delete(tx: &Transaction<'_>, user: UserId, id: PodcastId) -> rusqlite::Result<bool> {
    let n = tx
        .prepare_cached("DELETE FROM podcasts WHERE id = ?1 AND user_id = ?2")?
        .execute(params![id, user])?;
    Ok(n == 1)
}

/// Replaces the feed token's digest and bumps the feed generation: the old token and every
/// link its feeds carried stop working at once.
pub fn set_feed_token(
    conn: &Connection,
    user: UserId,
    id: PodcastId,
    digest: &[u8],
    now: i64,
) -> rusqlite::Result<bool> {
    let n = conn.prepare_cached("UPDATE podcasts SET feed_token_hash = ?3, feed_generation = feed_generation + 1, updated_at = ?4 WHERE id = ?1 AND user_id = ?2")?.execute(params![id, user, digest, now],
    )?;
    Ok(n == 1)
}

pub fn feed_token_digest(conn: &Connection, id: PodcastId) -> rusqlite::Result<Option<Vec<u8>>> {
    Ok(conn
        .query_row(
            "SELECT feed_token_hash FROM podcasts WHERE id = ?1",
            [id],
            |r| r.get::<_, Option<Vec<u8>>>(0),
        )
        .optional()?
        .flatten())
}

/// What a signed feed link is checked against, and what decides where its file is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedState {
    /// Signed into every feed link (see [`PodcastRow::feed_generation`]).
    pub generation: i64,
    pub public: bool,
}

/// The feed generation and visibility of a show; None when it is gone.
pub fn feed_state(conn: &Connection, id: PodcastId) -> rusqlite::Result<Option<FeedState>> {
    conn.prepare_cached("SELECT feed_generation, public FROM podcasts WHERE id = ?1")?
        .query_row([id], |r| {
            Ok(FeedState {
                generation: r.get(0)?,
                public: r.get(1)?,
            })
        })
        .optional()
}

/// What a show's RSS feed is made from, read together.
#[derive(Debug, Clone)]
pub struct FeedRows {
    pub show: PodcastRow,
    /// Digest of the feed token, when one was issued.
    pub token_digest: Option<Vec<u8>>,
    /// Of the show's newest episodes (see [`super::episodes::published`]), those whose audio is
    /// finished, newest first, each with its audio.
    pub episodes: Vec<(EpisodeRow, AudioRow)>,
}

// Used by podcast.
impl Podcasts<'_> {
    /// Inserts the caller's new show and reads it back.
    pub async fn create(
        &self,
        user: UserId,
        id: PodcastId,
        c: Changes,
    ) -> anyhow::Result<Option<PodcastRow>> {
        self.0
            .write(move |conn| {
                insert(conn, id, user, &c, now_ms())?;
                Ok(get(conn, user, id)?)
            })
            .await
    }

    /// The caller's show, or None (also when it belongs to someone else).
    pub async fn get(&self, user: UserId, id: PodcastId) -> anyhow::Result<Option<PodcastRow>> {
        self.0.read(move |c| Ok(get(c, user, id)?)).await
    }

    /// Any show by id: for signed feed links, which are authorized another way.
    pub async fn get_any(&self, id: PodcastId) -> anyhow::Result<Option<PodcastRow>> {
        self.0.read(move |c| Ok(get_any(c, id)?)).await
    }

    /// Up to `fetch` of the caller's shows older than the cursor (an id), newest first.
    pub async fn page(
        &self,
        user: UserId,
        cursor: Option<String>,
        fetch: usize,
    ) -> anyhow::Result<Vec<PodcastRow>> {
        self.0
            .read(move |c| Ok(list(c, user, cursor.as_deref(), fetch)?))
            .await
    }

    /// Applies the changes and reads the show back; None when it is not the caller's.
    pub async fn update(
        &self,
        user: UserId,
        id: PodcastId,
        c: Changes,
    ) -> anyhow::Result<Option<PodcastRow>> {
        self.0
            .write(move |conn| {
                update(conn, user, id, &c, now_ms())?;
                Ok(get(conn, user, id)?)
            })
            .await
    }

    /// Audio ids of the show's episodes.
    pub async fn episode_audios(&self, id: PodcastId) -> anyhow::Result<Vec<AudioId>> {
        self.0.read(move |c| Ok(episode_audios(c, id)?)).await
    }

    /// Deletes the caller's show (its episodes go with it); false when it is not theirs.
    pub async fn delete(&self, user: UserId, id: PodcastId) -> anyhow::Result<bool> {
        self.0
            .transaction(move |tx| Ok(delete(tx, user, id)?))
            .await
    }

    /// Points the show at a new cover object (or none): the key it replaced, None when the
    /// show is not the caller's.
    pub async fn set_cover(
        &self,
        user: UserId,
        id: PodcastId,
        key: Option<String>,
    ) -> anyhow::Result<Option<Option<String>>> {
        self.0
            .write(move |c| Ok(set_cover(c, user, id, key.as_deref(), now_ms())?))
            .await
    }

    /// Replaces the feed token's digest (see [`set_feed_token`]); false when the show is not
    /// the caller's.
    pub async fn set_feed_token(
        &self,
        user: UserId,
        id: PodcastId,
        digest: [u8; 32],
    ) -> anyhow::Result<bool> {
        self.0
            .write(move |c| Ok(set_feed_token(c, user, id, &digest, now_ms())?))
            .await
    }

    /// The show, its feed token digest and its published episodes among its `newest` in one
    /// read; None when the show is gone.
    pub async fn feed(&self, id: PodcastId, newest: usize) -> anyhow::Result<Option<FeedRows>> {
        self.0
            .read(move |c| {
                let Some(show) = get_any(c, id)? else {
                    return Ok(None);
                };
                Ok(Some(FeedRows {
                    token_digest: feed_token_digest(c, id)?,
                    episodes: super::episodes::published(c, id, newest)?,
                    show,
                }))
            })
            .await
    }
}
