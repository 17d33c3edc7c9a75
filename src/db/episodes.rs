//! Podcast episodes: the script as submitted and the line timings measured when it was mastered.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::{AudioId, EpisodeId, PodcastId, UserId};

/// The `episodes` table's operations, for services and jobs: `db.episodes().…`. Each method picks
/// the connection it needs (see [`Db`](super::Db)); callers never hold one.
#[allow(dead_code)] // until its methods land
pub struct Episodes<'a>(pub(super) &'a super::Db);

#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeRow {
    pub id: EpisodeId,
    pub podcast_id: PodcastId,
    pub user_id: UserId,
    pub audio_id: AudioId,
    pub title: String,
    pub script_json: String,
    pub timings_json: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str =
    "id, podcast_id, user_id, audio_id, title, script_json, timings_json, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<EpisodeRow> {
    Ok(EpisodeRow {
        id: r.get(0)?,
        podcast_id: r.get(1)?,
        user_id: r.get(2)?,
        audio_id: r.get(3)?,
        title: r.get(4)?,
        script_json: r.get(5)?,
        timings_json: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

pub struct NewEpisode<'a> {
    pub id: EpisodeId,
    pub podcast_id: PodcastId,
    pub user_id: UserId,
    pub audio_id: AudioId,
    pub title: &'a str,
    pub script_json: &'a str,
}

pub fn insert(tx: &Transaction<'_>, e: &NewEpisode<'_>, now: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO episodes (id, podcast_id, user_id, audio_id, title, script_json, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)")?.execute(params![
            e.id,
            e.podcast_id,
            e.user_id,
            e.audio_id,
            e.title,
            e.script_json,
            now
        ],
    )?;
    Ok(())
}

/// The caller's episode of that podcast, or None.
pub fn get(
    conn: &Connection,
    user: UserId,
    podcast: PodcastId,
    id: EpisodeId,
) -> rusqlite::Result<Option<EpisodeRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM episodes WHERE id = ?1 AND podcast_id = ?2 AND user_id = ?3"
    ))?
    .query_row(params![id, podcast, user], from_row)
    .optional()
}

/// Any episode by id: for signed links and the render job.
pub fn get_any(conn: &Connection, id: EpisodeId) -> rusqlite::Result<Option<EpisodeRow>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM episodes WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

pub fn by_audio(conn: &Connection, audio: AudioId) -> rusqlite::Result<Option<EpisodeRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM episodes WHERE audio_id = ?1"
    ))?
    .query_row([audio], from_row)
    .optional()
}

/// Up to `fetch` episodes of a podcast older than the cursor (an id), newest first.
pub fn list(
    conn: &Connection,
    podcast: PodcastId,
    cursor: Option<&str>,
    fetch: usize,
) -> rusqlite::Result<Vec<EpisodeRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM episodes WHERE podcast_id = ?1 AND (?2 IS NULL OR id < ?2)
         ORDER BY id DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![podcast, cursor, fetch as i64], from_row)?;
    rows.collect()
}

/// Stores the timings measured by the render job (in its final transaction).
pub fn set_timings(
    tx: &Transaction<'_>,
    audio: AudioId,
    timings_json: &str,
    now: i64,
) -> rusqlite::Result<bool> {
    let n = tx
        .prepare_cached(
            "UPDATE episodes SET timings_json = ?2, updated_at = ?3 WHERE audio_id = ?1",
        )?
        .execute(params![audio, timings_json, now])?;
    Ok(n == 1)
}
