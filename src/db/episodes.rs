//! Podcast episodes: the script as submitted and the line timings measured when it was mastered.

use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::audios::{self, AudioRow, NewAudio};
use super::jobs::{self, NewJob};
use super::podcasts::{self, PodcastRow};
use super::{AudioId, AudioKind, AudioStatus, EpisodeId, PodcastId, UserId, now_ms};

/// The `episodes` table's operations, for services and jobs: `db.episodes().…`. Each method picks
/// the connection it needs (see [`Db`](super::Db)); callers never hold one.
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
    from_row_at(r, 0)
}

/// The episode whose [`COLUMNS`] start at column `at`.
fn from_row_at(r: &Row<'_>, at: usize) -> rusqlite::Result<EpisodeRow> {
    Ok(EpisodeRow {
        id: r.get(at)?,
        podcast_id: r.get(at + 1)?,
        user_id: r.get(at + 2)?,
        audio_id: r.get(at + 3)?,
        title: r.get(at + 4)?,
        script_json: r.get(at + 5)?,
        timings_json: r.get(at + 6)?,
        created_at: r.get(at + 7)?,
        updated_at: r.get(at + 8)?,
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

/// Up to `fetch` episodes of a podcast older than the cursor (an id), newest first, each with
/// its audio, which must be the caller's: one page of the episode list.
pub fn page(
    conn: &Connection,
    user: UserId,
    podcast: PodcastId,
    cursor: Option<&str>,
    fetch: usize,
) -> rusqlite::Result<Vec<(EpisodeRow, AudioRow)>> {
    let mut stmt = conn.prepare_cached(&JOINED.page)?;
    let rows = stmt.query_map(
        params![podcast, user, cursor, fetch as i64],
        with_audio_from_row,
    )?;
    rows.collect()
}

/// Of a podcast's `newest` episodes, those whose audio has succeeded, each with its audio,
/// newest first: what its feed lists.
pub fn published(
    conn: &Connection,
    podcast: PodcastId,
    newest: usize,
) -> rusqlite::Result<Vec<(EpisodeRow, AudioRow)>> {
    let mut stmt = conn.prepare_cached(&JOINED.published)?;
    let rows = stmt.query_map(
        params![podcast, newest as i64, AudioStatus::Succeeded],
        with_audio_from_row,
    )?;
    rows.collect()
}

/// The statements that read episodes with their audios, built once from both column lists.
struct Joined {
    /// Where the episode's columns start, after the audio's.
    episode_at: usize,
    page: String,
    published: String,
}

static JOINED: LazyLock<Joined> = LazyLock::new(|| {
    let select = format!(
        "SELECT {}, {}",
        qualified("audios", audios::COLUMNS),
        qualified("episodes", COLUMNS)
    );
    Joined {
        episode_at: audios::COLUMNS.split(',').count(),
        page: format!(
            "{select} FROM episodes
             JOIN audios ON audios.id = episodes.audio_id AND audios.user_id = ?2
             WHERE episodes.podcast_id = ?1 AND (?3 IS NULL OR episodes.id < ?3)
             ORDER BY episodes.id DESC LIMIT ?4"
        ),
        published: format!(
            "{select} FROM (SELECT {COLUMNS} FROM episodes WHERE podcast_id = ?1
                            ORDER BY id DESC LIMIT ?2) AS episodes
             JOIN audios ON audios.id = episodes.audio_id
             WHERE audios.status = ?3
             ORDER BY episodes.id DESC"
        ),
    }
});

/// `table.column` for each of `columns`, so a join names both tables' columns unambiguously.
fn qualified(table: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{table}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A row of [`Joined`]: the audio's columns, then the episode's.
fn with_audio_from_row(r: &Row<'_>) -> rusqlite::Result<(EpisodeRow, AudioRow)> {
    Ok((from_row_at(r, JOINED.episode_at)?, audios::from_row(r)?))
}

/// An episode to render, inserted by [`Episodes::create`] with its audio (kind `podcast`,
/// the dialogue as its text) and its render job.
pub struct QueuedEpisode {
    pub id: EpisodeId,
    pub podcast_id: PodcastId,
    pub user_id: UserId,
    pub audio_id: AudioId,
    pub title: String,
    /// The script as one text: the audio's text, which library search reads.
    pub text: String,
    /// Characters to speak, charged against the quota.
    pub chars: i64,
    pub format: &'static str,
    pub script_json: String,
    pub job: NewJob<'static>,
}

// Used by podcast.
impl Episodes<'_> {
    /// Inserts the audio, the episode and its render job in one transaction and reads the
    /// episode and the audio back.
    pub async fn create(&self, q: QueuedEpisode) -> anyhow::Result<(EpisodeRow, AudioRow)> {
        self.0
            .transaction(move |tx| {
                let now = now_ms();
                audios::insert(
                    tx,
                    &NewAudio {
                        id: q.audio_id,
                        user_id: q.user_id,
                        kind: AudioKind::Podcast,
                        title: &q.title,
                        voice: None,
                        format: q.format,
                        speed: 1.0,
                        text: Some(&q.text),
                        chars: q.chars,
                    },
                    now,
                )?;
                insert(
                    tx,
                    &NewEpisode {
                        id: q.id,
                        podcast_id: q.podcast_id,
                        user_id: q.user_id,
                        audio_id: q.audio_id,
                        title: &q.title,
                        script_json: &q.script_json,
                    },
                    now,
                )?;
                jobs::enqueue(tx, &q.job, now)?;
                let episode = get(tx, q.user_id, q.podcast_id, q.id)?
                    .ok_or_else(|| anyhow::anyhow!("inserted episode vanished"))?;
                let audio = audios::get(tx, q.user_id, q.audio_id)?
                    .ok_or_else(|| anyhow::anyhow!("inserted audio vanished"))?;
                Ok((episode, audio))
            })
            .await
    }

    /// The caller's episode of that podcast, or None.
    pub async fn get(
        &self,
        user: UserId,
        podcast: PodcastId,
        id: EpisodeId,
    ) -> anyhow::Result<Option<EpisodeRow>> {
        self.0.read(move |c| Ok(get(c, user, podcast, id)?)).await
    }

    /// The caller's episode of that podcast with its audio, or None.
    pub async fn with_audio(
        &self,
        user: UserId,
        podcast: PodcastId,
        id: EpisodeId,
    ) -> anyhow::Result<Option<(EpisodeRow, AudioRow)>> {
        self.0
            .read(move |c| {
                let Some(e) = get(c, user, podcast, id)? else {
                    return Ok(None);
                };
                Ok(audios::get(c, user, e.audio_id)?.map(|a| (e, a)))
            })
            .await
    }

    /// One page of a podcast's episodes with their audios (see [`page`]).
    pub async fn page(
        &self,
        user: UserId,
        podcast: PodcastId,
        cursor: Option<String>,
        fetch: usize,
    ) -> anyhow::Result<Vec<(EpisodeRow, AudioRow)>> {
        self.0
            .read(move |c| Ok(page(c, user, podcast, cursor.as_deref(), fetch)?))
            .await
    }

    /// Any episode by id with its show's feed generation and visibility, for checking a
    /// signed feed link; None when either is gone.
    pub async fn with_feed_state(
        &self,
        id: EpisodeId,
    ) -> anyhow::Result<Option<(EpisodeRow, podcasts::FeedState)>> {
        self.0
            .read(move |c| {
                let Some(e) = get_any(c, id)? else {
                    return Ok(None);
                };
                Ok(podcasts::feed_state(c, e.podcast_id)?.map(|s| (e, s)))
            })
            .await
    }

    /// The episode an audio is the rendering of, if it is one.
    pub async fn of_audio(&self, audio: AudioId) -> anyhow::Result<Option<EpisodeRow>> {
        self.0.read(move |c| Ok(by_audio(c, audio)?)).await
    }

    /// The audio an episode renders into, the episode and its show, for the render job; None
    /// when any of them is gone.
    pub async fn for_render(
        &self,
        audio: AudioId,
    ) -> anyhow::Result<Option<(AudioRow, EpisodeRow, PodcastRow)>> {
        self.0
            .read(move |c| {
                let Some(a) = audios::get_any(c, audio)? else {
                    return Ok(None);
                };
                let Some(e) = by_audio(c, audio)? else {
                    return Ok(None);
                };
                Ok(podcasts::get_any(c, e.podcast_id)?.map(|s| (a, e, s)))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, Ids, JobId, podcasts::Changes};

    /// Two users, a show of the first, and ids made in order.
    fn setup(conn: &mut Connection) -> (Ids, UserId, UserId, PodcastId) {
        crate::db::migrations::apply(conn).unwrap();
        let ids = Ids::default();
        let (a, b) = (UserId::from(ids.next()), UserId::from(ids.next()));
        for u in [a, b] {
            conn.execute(
                "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?1, ?1, 'h', 0, 0)",
                [u.to_string()],
            )
            .unwrap();
        }
        let show = PodcastId::from(ids.next());
        podcasts::insert(conn, show, a, &Changes::default(), 0).unwrap();
        (ids, a, b, show)
    }

    /// An episode of `show` by `user` whose audio belongs to `owner` and has `status`.
    fn add(
        conn: &mut Connection,
        ids: &Ids,
        show: PodcastId,
        user: UserId,
        owner: UserId,
        status: &str,
    ) -> EpisodeId {
        let (id, audio) = (EpisodeId::from(ids.next()), AudioId::from(ids.next()));
        let tx = conn.transaction().unwrap();
        audios::insert(
            &tx,
            &NewAudio {
                id: audio,
                user_id: owner,
                kind: AudioKind::Podcast,
                title: "t",
                voice: None,
                format: "mp3",
                speed: 1.0,
                text: Some("A: hi"),
                chars: 2,
            },
            0,
        )
        .unwrap();
        tx.execute(
            "UPDATE audios SET status = ?2 WHERE id = ?1",
            params![audio, status],
        )
        .unwrap();
        insert(
            &tx,
            &NewEpisode {
                id,
                podcast_id: show,
                user_id: user,
                audio_id: audio,
                title: "t",
                script_json: "{}",
            },
            0,
        )
        .unwrap();
        tx.commit().unwrap();
        id
    }

    #[test]
    fn episode_pages_carry_each_audio_and_count_only_the_callers_so_no_page_ends_early() {
        let mut conn = Connection::open_in_memory().unwrap();
        let (ids, a, b, show) = setup(&mut conn);
        let first = add(&mut conn, &ids, show, a, a, "queued");
        let second = add(&mut conn, &ids, show, a, a, "succeeded");
        // An audio that is not the caller's never shows, and takes no place on a page.
        add(&mut conn, &ids, show, a, b, "queued");
        let fourth = add(&mut conn, &ids, show, a, a, "running");

        let rows = page(&conn, a, show, None, 3).unwrap();
        let listed: Vec<EpisodeId> = rows.iter().map(|(e, _)| e.id).collect();
        assert_eq!(listed, [fourth, second, first], "three of the caller's");
        for (e, audio) in &rows {
            assert_eq!(audio.id, e.audio_id, "each episode with its own audio");
            assert_eq!(audio.user_id, a);
        }
        assert_eq!(rows[1].1.status, AudioStatus::Succeeded);

        let after = page(&conn, a, show, Some(&second.to_string()), 3).unwrap();
        assert_eq!(
            after.iter().map(|(e, _)| e.id).collect::<Vec<_>>(),
            [first],
            "the cursor is an episode id"
        );

        // One seek into the show's episodes, one into audios per episode: no table scan.
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", JOINED.page))
            .unwrap()
            .query_map(params![show, a, None::<String>, 3], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!plan.iter().any(|s| s.starts_with("SCAN")), "{plan:#?}");
    }

    #[test]
    fn a_feed_lists_the_succeeded_episodes_among_the_newest_only() {
        let mut conn = Connection::open_in_memory().unwrap();
        let (ids, a, _, show) = setup(&mut conn);
        add(&mut conn, &ids, show, a, a, "succeeded");
        let second = add(&mut conn, &ids, show, a, a, "succeeded");
        add(&mut conn, &ids, show, a, a, "failed");
        let fourth = add(&mut conn, &ids, show, a, a, "succeeded");

        let listed: Vec<EpisodeId> = published(&conn, show, 3)
            .unwrap()
            .iter()
            .map(|(e, _)| e.id)
            .collect();
        assert_eq!(
            listed,
            [fourth, second],
            "the oldest is beyond the newest 3"
        );
        assert_eq!(published(&conn, show, 4).unwrap().len(), 3);
    }

    fn queued(db: &Db, user: UserId, show: PodcastId) -> QueuedEpisode {
        let (id, audio_id) = (EpisodeId::new(db), AudioId::new(db));
        QueuedEpisode {
            id,
            podcast_id: show,
            user_id: user,
            audio_id,
            title: "Episode".into(),
            text: "A: hello".into(),
            chars: 5,
            format: "mp3",
            script_json: "{}".into(),
            job: NewJob {
                id: JobId::new(db),
                kind: "podcast",
                user_id: Some(user),
                audio_id: Some(audio_id),
                payload: serde_json::json!({ "episode": id.to_string() }),
                max_attempts: 3,
            },
        }
    }

    async fn counts(db: &Db) -> [i64; 4] {
        db.read(|c| {
            let n = |t: &str| c.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0));
            Ok([n("audios")?, n("audio_texts")?, n("episodes")?, n("jobs")?])
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn an_episode_is_queued_with_its_audio_and_job_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("e.db")).unwrap();
        let (user, show) = db
            .write(|c| {
                let (_, a, _, show) = setup(c);
                Ok((a, show))
            })
            .await
            .unwrap();

        // The episode fails last (its show does not exist): the audio before it goes too.
        let missing = PodcastId::new(&db);
        assert!(
            db.episodes()
                .create(queued(&db, user, missing))
                .await
                .is_err()
        );
        assert_eq!(counts(&db).await, [0, 0, 0, 0], "nothing written");

        let q = queued(&db, user, show);
        let (id, audio_id) = (q.id, q.audio_id);
        let (episode, audio) = db.episodes().create(q).await.unwrap();
        assert_eq!((episode.id, episode.audio_id), (id, audio_id));
        assert_eq!(
            (audio.id, audio.kind, audio.status),
            (audio_id, AudioKind::Podcast, AudioStatus::Queued)
        );
        assert_eq!(counts(&db).await, [1, 1, 1, 1]);
        assert_eq!(
            db.episodes().page(user, show, None, 21).await.unwrap(),
            vec![(episode, audio)]
        );
    }
}
