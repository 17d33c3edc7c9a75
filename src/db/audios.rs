//! Queries on `audios`: the library. Every read is scoped by owner.

use crate::audio::Peaks;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;

use super::{AudioId, AudioKind, AudioStatus, UserId};

/// The `audios` table's operations, for services and jobs: `db.audios().…`. Each method picks
/// the connection it needs (see [`Db`](super::Db)); callers never hold one.
#[allow(dead_code)] // until its methods land
pub struct Audios<'a>(pub(super) &'a super::Db);

/// One library item as the API returns it (minus URLs, which the HTTP layer adds).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AudioRow {
    pub id: AudioId,
    #[serde(skip)]
    pub user_id: UserId,
    pub title: String,
    pub kind: AudioKind,
    pub status: AudioStatus,
    pub progress: f64,
    pub voice: Option<String>,
    pub format: String,
    pub speed: f64,
    pub chars: i64,
    pub duration_ms: Option<i64>,
    pub size_bytes: Option<i64>,
    #[serde(skip)]
    pub object_key: Option<String>,
    #[serde(skip)]
    pub peaks_key: Option<String>,
    #[serde(skip)]
    pub sha256: Option<String>,
    #[serde(skip)]
    pub error_code: Option<String>,
    #[serde(skip)]
    pub error_message: Option<String>,
    #[serde(skip)]
    pub created_at: i64,
    #[serde(skip)]
    pub updated_at: i64,
}

/// Columns of [`AudioRow`], in order; the text itself is loaded only by the job.
pub(super) const COLUMNS: &str = "id, user_id, title, kind, status, progress, voice, format, speed, chars, duration_ms, \
     size_bytes, object_key, peaks_key, sha256, error_code, error_message, created_at, updated_at";

pub(super) fn from_row(r: &Row<'_>) -> rusqlite::Result<AudioRow> {
    Ok(AudioRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        title: r.get(2)?,
        kind: r.get(3)?,
        status: r.get(4)?,
        progress: r.get(5)?,
        voice: r.get(6)?,
        format: r.get(7)?,
        speed: r.get(8)?,
        chars: r.get(9)?,
        duration_ms: r.get(10)?,
        size_bytes: r.get(11)?,
        object_key: r.get(12)?,
        peaks_key: r.get(13)?,
        sha256: r.get(14)?,
        error_code: r.get(15)?,
        error_message: r.get(16)?,
        created_at: r.get(17)?,
        updated_at: r.get(18)?,
    })
}

pub struct NewAudio<'a> {
    pub id: AudioId,
    pub user_id: UserId,
    pub kind: AudioKind,
    pub title: &'a str,
    pub voice: Option<&'a str>,
    pub format: &'a str,
    pub speed: f64,
    pub text: Option<&'a str>,
    pub chars: i64,
}

pub fn insert(tx: &Transaction<'_>, a: &NewAudio<'_>, now: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO audios (id, user_id, kind, title, status, progress, voice, format, speed, chars,
                             created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'queued', 0, ?5, ?6, ?7, ?8, ?9, ?9)")?.execute(params![
            a.id,
            a.user_id,
            a.kind,
            a.title,
            a.voice,
            a.format,
            a.speed,
            a.chars,
            now
        ],
    )?;
    if let Some(text) = a.text {
        tx.prepare_cached("INSERT INTO audio_texts (audio_id, text) VALUES (?1, ?2)")?
            .execute(params![a.id, text])?;
    }
    Ok(())
}

/// The caller's audio, or None (also when it belongs to someone else).
pub fn get(conn: &Connection, user: UserId, id: AudioId) -> rusqlite::Result<Option<AudioRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audios WHERE id = ?1 AND user_id = ?2"
    ))?
    .query_row(params![id, user], from_row)
    .optional()
}

/// Any audio by id: for jobs and signed links, which are authorized another way.
pub fn get_any(conn: &Connection, id: AudioId) -> rusqlite::Result<Option<AudioRow>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM audios WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// The text to synthesize, kept in a table of its own so library rows stay short whatever
/// the text's length.
pub fn text(conn: &Connection, id: AudioId) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT text FROM audio_texts WHERE audio_id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()
}

#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub kind: Option<AudioKind>,
    pub status: Option<AudioStatus>,
    /// Matches title or text, case-insensitively.
    pub q: Option<String>,
}

/// Position after the last item of a page: `(created_at, id)` of that item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub id: AudioId,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at, self.id)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (at, id) = s.split_once('.')?;
        Some(Self {
            created_at: at.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

/// Searches shorter than this (in characters) cannot use the trigram index, which knows
/// only runs of three: they fall back to reading the user's own titles and texts.
pub const MIN_INDEXED_SEARCH: usize = 3;

/// Row ids of the search index per user: each user's slice starts at `search_key * SLICE`.
const SLICE: i64 = 1 << 32;

/// Up to `fetch` of the caller's audios after `cursor`, newest first.
pub fn list(
    conn: &Connection,
    user: UserId,
    filter: &ListFilter,
    cursor: Option<&Cursor>,
    fetch: usize,
) -> rusqlite::Result<Vec<AudioRow>> {
    let (sql, args) = list_query(user, filter, cursor, fetch);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), from_row)?;
    rows.collect()
}

/// The statement [`list`] runs and its arguments. A search of three characters or more asks
/// the full-text index, within the caller's slice of it (see `0009_library_search.sql`), so
/// its cost follows the caller's own audios, never everyone's. The search text is always one
/// quoted phrase: FTS query syntax in it matches itself.
pub(crate) fn list_query(
    user: UserId,
    filter: &ListFilter,
    cursor: Option<&Cursor>,
    fetch: usize,
) -> (String, Vec<Box<dyn rusqlite::ToSql>>) {
    let mut sql = format!("SELECT {COLUMNS} FROM audios WHERE user_id = ?1");
    let mut args: Vec<Box<dyn rusqlite::ToSql>> = vec![Box::new(user)];
    if let Some(kind) = &filter.kind {
        args.push(Box::new(*kind));
        sql.push_str(&format!(" AND kind = ?{}", args.len()));
    }
    if let Some(status) = &filter.status {
        args.push(Box::new(*status));
        sql.push_str(&format!(" AND status = ?{}", args.len()));
    }
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        if q.chars().count() >= MIN_INDEXED_SEARCH {
            args.push(Box::new(format!("\"{}\"", q.replace('"', "\"\""))));
            let n = args.len();
            // The owner's tag AND the phrase, within the owner's slice (see the migration).
            // Titles are the even documents, texts the odd ones after them.
            sql.push_str(&format!(
                " AND search_rowid IN (SELECT (rowid / 2) * 2 FROM audio_search \
                   WHERE audio_search MATCH \
                         ('owner : \"' || (SELECT tag FROM search_owners WHERE user_id = ?1) \
                          || '\" AND body : ' || ?{n}) \
                     AND rowid >= (SELECT first_rowid FROM search_owners WHERE user_id = ?1) \
                     AND rowid < (SELECT first_rowid FROM search_owners WHERE user_id = ?1) + {SLICE})"
            ));
        } else {
            args.push(Box::new(format!("%{}%", super::escape_like(q))));
            let n = args.len();
            sql.push_str(&format!(
                " AND (title LIKE ?{n} ESCAPE '\\' OR EXISTS (SELECT 1 FROM audio_texts t \
                   WHERE t.audio_id = audios.id AND t.text LIKE ?{n} ESCAPE '\\'))"
            ));
        }
    }
    if let Some(c) = cursor {
        args.push(Box::new(c.created_at));
        args.push(Box::new(c.id));
        let (a, b) = (args.len() - 1, args.len());
        sql.push_str(&format!(" AND (created_at, id) < (?{a}, ?{b})"));
    }
    sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT {fetch}"));
    (sql, args)
}

pub fn rename(
    conn: &Connection,
    user: UserId,
    id: AudioId,
    title: &str,
    now: i64,
) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE audios SET title = ?1, updated_at = ?2 WHERE id = ?3 AND user_id = ?4",
        )?
        .execute(params![title, now, id, user])?;
    Ok(n == 1)
}

/// Marks a queued audio running when a worker claims its job, in the claim's transaction.
pub fn start(conn: &Connection, id: AudioId, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE audios SET status = 'running', updated_at = ?1 WHERE id = ?2 AND status = 'queued'",
    )?
    .execute(params![now, id])?;
    Ok(())
}

pub fn set_progress(
    conn: &Connection,
    id: AudioId,
    status: AudioStatus,
    progress: f64,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE audios SET status = ?1, progress = ?2, updated_at = ?3
          WHERE id = ?4 AND status IN ('queued', 'running')",
    )?
    .execute(params![status, progress, now, id])?;
    Ok(())
}

/// What a finished synthesis stores on its audio.
pub struct Finished<'a> {
    pub object_key: &'a str,
    pub peaks_key: &'a str,
    pub duration_ms: i64,
    pub size_bytes: i64,
    pub sha256: &'a str,
}

pub fn finish(
    tx: &Transaction<'_>,
    id: AudioId,
    f: &Finished<'_>,
    now: i64,
) -> rusqlite::Result<bool> {
    let n = tx.prepare_cached("UPDATE audios SET status = 'succeeded', progress = 1, object_key = ?1, peaks_key = ?2,
                duration_ms = ?3, size_bytes = ?4, sha256 = ?5, error_code = NULL, error_message = NULL,
                updated_at = ?6
          WHERE id = ?7 AND status IN ('queued', 'running')")?.execute(params![f.object_key, f.peaks_key, f.duration_ms, f.size_bytes, f.sha256, now, id],
    )?;
    Ok(n == 1)
}

pub fn fail(
    tx: &Transaction<'_>,
    id: AudioId,
    code: &str,
    message: &str,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE audios SET status = 'failed', error_code = ?1, error_message = ?2, updated_at = ?3
          WHERE id = ?4 AND status IN ('queued', 'running')",
    )?
    .execute(params![code, message, now, id])?;
    Ok(())
}

/// Back to `queued` for a retry; only failed (or canceled) audios qualify.
pub fn requeue(
    tx: &Transaction<'_>,
    user: UserId,
    id: AudioId,
    now: i64,
) -> rusqlite::Result<bool> {
    let n = tx.prepare_cached("UPDATE audios SET status = 'queued', progress = 0, error_code = NULL, error_message = NULL, updated_at = ?1
          WHERE id = ?2 AND user_id = ?3 AND status IN ('failed', 'canceled')")?.execute(params![now, id, user],
    )?;
    Ok(n == 1)
}

/// Deletes the row; returns it so the caller can remove its objects.
pub fn delete(
    tx: &Transaction<'_>,
    user: UserId,
    id: AudioId,
) -> rusqlite::Result<Option<AudioRow>> {
    let row = get(tx, user, id)?;
    if row.is_some() {
        tx.prepare_cached("DELETE FROM audios WHERE id = ?1 AND user_id = ?2")?
            .execute(params![id, user])?;
    }
    Ok(row)
}

/// Whether another audio still points at an object (results are shared by the cache).
pub fn object_in_use(conn: &Connection, key: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM audios WHERE object_key = ?1 OR peaks_key = ?1)",
    )?
    .query_row([key], |r| r.get(0))
}

/// Stores an audio's waveform under its peaks key, in the transaction that finishes it.
pub fn put_peaks(conn: &Connection, key: &str, peaks: &Peaks) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO peaks (key, sample_rate, duration_ms, levels) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![key, peaks.sample_rate, peaks.duration_ms as i64, peaks.levels()])?;
    Ok(())
}

/// The waveform stored under a peaks key; None for audios finished before peaks moved into
/// the database, whose peaks are an object in the store under that key.
pub fn peaks(conn: &Connection, key: &str) -> rusqlite::Result<Option<Peaks>> {
    conn.prepare_cached("SELECT sample_rate, duration_ms, levels FROM peaks WHERE key = ?1")?
        .query_row([key], |r| {
            let levels: Vec<u8> = r.get(2)?;
            Ok(Peaks::from_levels(
                r.get(0)?,
                r.get::<_, i64>(1)?.max(0) as u64,
                &levels,
            ))
        })
        .optional()
}

/// Removes a waveform no audio points at any more.
pub fn delete_peaks(conn: &Connection, key: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM peaks WHERE key = ?1")?
        .execute([key])?;
    Ok(())
}

// Used by podcast.
impl Audios<'_> {
    /// Any audio by id, on the fast read path: an episode's file behind a checked feed link.
    pub async fn get_any(&self, id: AudioId) -> anyhow::Result<Option<AudioRow>> {
        self.0.lookup(move |c| Ok(get_any(c, id)?)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ulid::Ulid;

    fn setup() -> (Connection, UserId, UserId) {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrations::apply(&mut conn).unwrap();
        let (a, b) = (
            UserId::from(Ulid::generate()),
            UserId::from(Ulid::generate()),
        );
        for u in [a, b] {
            conn.execute(
                "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?1, ?1, 'h', 0, 0)",
                [u.to_string()],
            )
            .unwrap();
        }
        (conn, a, b)
    }

    fn add(conn: &mut Connection, user: UserId, title: &str, text: &str, at: i64) -> AudioId {
        let id = AudioId::from(Ulid::generate());
        let tx = conn.transaction().unwrap();
        insert(
            &tx,
            &NewAudio {
                id,
                user_id: user,
                kind: AudioKind::Tts,
                title,
                voice: Some("local:en-us"),
                format: "mp3",
                speed: 1.0,
                text: Some(text),
                chars: text.chars().count() as i64,
            },
            at,
        )
        .unwrap();
        tx.commit().unwrap();
        id
    }

    #[test]
    fn pages_are_newest_first_and_cursors_walk_without_gaps_or_repeats() {
        let (mut conn, a, _) = setup();
        // Pairs share a timestamp, so the id breaks ties.
        let mut expected: Vec<(i64, String)> = (0..25)
            .map(|i| {
                let at = 1000 + i / 2;
                (at, add(&mut conn, a, &format!("t{i}"), "x", at).to_string())
            })
            .collect();
        expected.sort_by(|x, y| y.cmp(x));
        let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let mut page = list(&conn, a, &ListFilter::default(), cursor.as_ref(), 11).unwrap();
            let more = page.len() > 10;
            page.truncate(10);
            seen.extend(page.iter().map(|r| r.id.to_string()));
            if !more {
                break;
            }
            let last = page.last().unwrap();
            let c = Cursor {
                created_at: last.created_at,
                id: last.id,
            };
            cursor = Some(Cursor::decode(&c.encode()).unwrap());
        }
        assert_eq!(seen, expected);
    }

    #[test]
    fn peaks_are_kept_by_key_until_deleted() {
        let (conn, _, _) = setup();
        let stored = Peaks {
            sample_rate: 24_000,
            duration_ms: 1500,
            peaks: vec![0.0, 0.125, 1.0, 0.333],
        };
        assert_eq!(peaks(&conn, "audio/u/a.peaks.json").unwrap(), None);
        put_peaks(&conn, "audio/u/a.peaks.json", &stored).unwrap();
        assert_eq!(peaks(&conn, "audio/u/a.peaks.json").unwrap(), Some(stored));
        assert_eq!(peaks(&conn, "audio/u/b.peaks.json").unwrap(), None);
        delete_peaks(&conn, "audio/u/a.peaks.json").unwrap();
        assert_eq!(peaks(&conn, "audio/u/a.peaks.json").unwrap(), None);
    }

    #[test]
    fn owners_only_see_their_own_audios() {
        let (mut conn, a, b) = setup();
        let id = add(&mut conn, a, "mine", "hello", 1);
        assert!(get(&conn, a, id).unwrap().is_some());
        assert!(get(&conn, b, id).unwrap().is_none());
        assert!(
            list(&conn, b, &ListFilter::default(), None, 10)
                .unwrap()
                .is_empty()
        );
        assert!(!rename(&conn, b, id, "stolen", 2).unwrap());
        let tx = conn.transaction().unwrap();
        assert!(delete(&tx, b, id).unwrap().is_none());
        tx.commit().unwrap();
        assert_eq!(get(&conn, a, id).unwrap().unwrap().title, "mine");
    }

    #[test]
    fn search_matches_title_or_text_and_treats_wildcards_literally() {
        let (mut conn, a, _) = setup();
        add(&mut conn, a, "Morning news", "weather today", 1);
        add(&mut conn, a, "Story", "Once upon a time", 2);
        add(&mut conn, a, "100% done", "x", 3);
        let find = |q: &str| {
            let f = ListFilter {
                q: Some(q.into()),
                ..Default::default()
            };
            list(&conn, a, &f, None, 10)
                .unwrap()
                .into_iter()
                .map(|r| r.title)
                .collect::<Vec<_>>()
        };
        assert_eq!(find("news"), vec!["Morning news"]);
        assert_eq!(find("UPON"), vec!["Story"]);
        assert_eq!(find("%"), vec!["100% done"]);
        assert_eq!(find("_"), Vec::<String>::new());
    }

    fn titles(conn: &Connection, user: UserId, q: &str) -> Vec<String> {
        let f = ListFilter {
            q: Some(q.into()),
            ..Default::default()
        };
        list(conn, user, &f, None, 10)
            .unwrap()
            .into_iter()
            .map(|r| r.title)
            .collect()
    }

    #[test]
    fn chinese_text_is_found_by_any_part_of_it_short_or_long() {
        let (mut conn, a, _) = setup();
        add(&mut conn, a, "早间新闻", "今天天气很好，适合出门散步。", 1);
        add(&mut conn, a, "故事", "从前有一座山，山上有一座庙。", 2);
        assert_eq!(titles(&conn, a, "天气很好"), vec!["早间新闻"]);
        assert_eq!(titles(&conn, a, "一座山"), vec!["故事"]);
        // Shorter than a trigram: read from the user's own rows instead.
        assert_eq!(titles(&conn, a, "天气"), vec!["早间新闻"]);
        assert_eq!(titles(&conn, a, "庙"), vec!["故事"]);
        assert_eq!(titles(&conn, a, "新闻"), vec!["早间新闻"]);
        assert!(titles(&conn, a, "晚间新闻").is_empty());
    }

    #[test]
    fn search_text_is_matched_literally_never_as_query_syntax() {
        let (mut conn, a, _) = setup();
        add(&mut conn, a, "She said \"hi\" twice", "x", 1);
        add(&mut conn, a, "cats OR dogs", "x", 2);
        add(&mut conn, a, "cats", "and dogs", 3);
        add(&mut conn, a, "title:none", "NEAR(a b) -c *", 4);
        for (q, expected) in [
            ("\"hi\"", vec!["She said \"hi\" twice"]),
            ("\"hi", vec!["She said \"hi\" twice"]),
            ("cats OR dogs", vec!["cats OR dogs"]),
            ("title:none", vec!["title:none"]),
            ("NEAR(a b)", vec!["title:none"]),
            ("-c *", vec!["title:none"]),
            ("dogs AND", vec![]),
            ("\"\"\"", vec![]),
            ("^ca", vec![]),
        ] {
            assert_eq!(titles(&conn, a, q), expected, "searching {q}");
        }
    }

    #[test]
    fn the_search_index_follows_every_change_to_titles_texts_and_audios() {
        let (mut conn, a, b) = setup();
        let id = add(&mut conn, a, "Morning news", "weather today", 1);
        assert!(rename(&conn, a, id, "Evening report", 2).unwrap());
        assert!(titles(&conn, a, "Morning").is_empty());
        assert_eq!(titles(&conn, a, "evening"), vec!["Evening report"]);
        assert_eq!(titles(&conn, a, "weather"), vec!["Evening report"]);
        conn.execute(
            "UPDATE audio_texts SET text = 'rain tomorrow' WHERE audio_id = ?1",
            [id.to_string()],
        )
        .unwrap();
        assert!(titles(&conn, a, "weather").is_empty());
        assert_eq!(titles(&conn, a, "tomorrow"), vec!["Evening report"]);
        conn.execute(
            "DELETE FROM audio_texts WHERE audio_id = ?1",
            [id.to_string()],
        )
        .unwrap();
        assert!(titles(&conn, a, "tomorrow").is_empty());
        assert_eq!(titles(&conn, a, "report"), vec!["Evening report"]);
        let other = add(&mut conn, b, "Evening report", "rain tomorrow", 3);
        let tx = conn.transaction().unwrap();
        delete(&tx, a, id).unwrap().unwrap();
        tx.commit().unwrap();
        assert!(titles(&conn, a, "report").is_empty());
        let indexed = |conn: &Connection| -> Vec<i64> {
            conn.prepare("SELECT rowid FROM audio_search WHERE audio_search MATCH '\"evening\"'")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let kept: i64 = conn
            .query_row(
                "SELECT search_rowid FROM audios WHERE id = ?1",
                [other.to_string()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            indexed(&conn),
            vec![kept],
            "only the other user's title is left"
        );
        // Deleting the user takes every audio, and its index entries, with it.
        conn.execute("DELETE FROM users WHERE id = ?1", [b.to_string()])
            .unwrap();
        assert!(indexed(&conn).is_empty());
    }

    #[test]
    fn a_search_finds_only_the_callers_audios() {
        let (mut conn, a, b) = setup();
        for i in 0..5 {
            add(
                &mut conn,
                b,
                &format!("Shared words {i}"),
                "shared words",
                i,
            );
        }
        add(&mut conn, a, "Mine", "only mine", 10);
        assert!(titles(&conn, a, "shared").is_empty());
        assert!(titles(&conn, a, "sh").is_empty());
        assert_eq!(titles(&conn, b, "shared").len(), 5);
        assert_eq!(titles(&conn, a, "mine"), vec!["Mine"]);
    }

    #[test]
    fn a_search_does_not_test_the_documents_other_users_add_after_the_callers() {
        let (mut conn, a, b) = setup();
        for i in 0..5 {
            add(
                &mut conn,
                a,
                &format!("Mine {i}"),
                "the kind people turn into speech",
                i,
            );
        }
        // Every trigram of the search in every document, the search itself in none.
        let q = ListFilter {
            q: Some("kind people kind people".into()),
            ..Default::default()
        };
        // Pages the search asks SQLite's page cache for (hits and misses): a count that does
        // not depend on how fast or busy the machine is.
        let pages = |conn: &Connection| {
            let mut total = 0;
            for op in [
                rusqlite::ffi::SQLITE_DBSTATUS_CACHE_HIT,
                rusqlite::ffi::SQLITE_DBSTATUS_CACHE_MISS,
            ] {
                let (mut current, mut highest) = (0, 0);
                // SAFETY: the handle is this open connection's, used on this thread only.
                let rc = unsafe {
                    rusqlite::ffi::sqlite3_db_status(
                        conn.handle(),
                        op,
                        &mut current,
                        &mut highest,
                        1,
                    )
                };
                assert_eq!(rc, rusqlite::ffi::SQLITE_OK);
                total += current;
            }
            total
        };
        let cost = |conn: &Connection| {
            pages(conn);
            assert!(list(conn, a, &q, None, 21).unwrap().is_empty());
            pages(conn)
        };
        let alone = cost(&conn);
        let ids = crate::db::Ids::default();
        let tx = conn.transaction().unwrap();
        for i in 0..20_000 {
            insert(
                &tx,
                &NewAudio {
                    id: ids.next().into(),
                    user_id: b,
                    kind: AudioKind::Tts,
                    title: "people",
                    voice: None,
                    format: "mp3",
                    speed: 1.0,
                    text: Some("the kind people turn into speech"),
                    chars: 32,
                },
                i,
            )
            .unwrap();
        }
        tx.commit().unwrap();
        let among_others = cost(&conn);
        assert!(alone > 0);
        // Reading the trigrams' longer lists costs some pages (about 5 times as many here);
        // testing each of the others' documents against the phrase, as a search without the
        // owner's tag does, reads about 9 times as many.
        assert!(
            among_others < alone * 7,
            "pages read alone {alone}, among 20,000 others {among_others}"
        );
    }

    #[test]
    fn search_results_are_paged_newest_first_like_the_library() {
        let (mut conn, a, _) = setup();
        for i in 0..7 {
            add(
                &mut conn,
                a,
                &format!("Episode {i}"),
                "a chapter of the story",
                i,
            );
        }
        let f = ListFilter {
            q: Some("chapter".into()),
            ..Default::default()
        };
        let first = list(&conn, a, &f, None, 4).unwrap();
        let last = first.last().unwrap();
        let cursor = Cursor {
            created_at: last.created_at,
            id: last.id,
        };
        let rest = list(&conn, a, &f, Some(&cursor), 4).unwrap();
        let seen: Vec<String> = first.iter().chain(&rest).map(|r| r.title.clone()).collect();
        let expected: Vec<String> = (0..7).rev().map(|i| format!("Episode {i}")).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn bad_cursors_are_rejected() {
        assert!(Cursor::decode("nope").is_none());
        assert!(Cursor::decode("12.not-a-ulid").is_none());
    }
}
