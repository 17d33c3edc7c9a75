//! Queries on `audios`: the library. Every read is scoped by owner.

use crate::audio::Peaks;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;

use super::jobs::{self, NewJob};
use super::transcripts::NewestTranscript;
use super::tts_cache::{self, NewEntry};
use super::usage::{self, Billed};
use super::{AudioId, AudioKind, AudioStatus, JobId, UserId, episodes};

/// The `audios` table's operations, for services and jobs: `db.audios().…`. Each method picks
/// the connection it needs (see [`Db`](super::Db)); callers never hold one.
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
    /// The audio's newest transcript, if it has one.
    pub transcript: Option<NewestTranscript>,
}

/// Columns of [`AudioRow`], in order; the text itself is loaded only by the job. The newest
/// transcript's id and status are kept on the row by triggers (`0015_…`), so the library
/// page reads them without a lookup per row.
pub(super) const COLUMNS: &str = "id, user_id, title, kind, status, progress, voice, format, speed, chars, duration_ms, \
     size_bytes, object_key, peaks_key, sha256, error_code, error_message, created_at, updated_at, \
     transcript_id, transcript_status";

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
        transcript: match (r.get(19)?, r.get(20)?) {
            (Some(id), Some(status)) => Some(NewestTranscript { id, status }),
            _ => None,
        },
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
            // Titles are the even documents, texts the odd ones after them (a text document
            // also holds the text of the audio's finished transcripts, 0014).
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
                   WHERE t.audio_id = audios.id AND t.text LIKE ?{n} ESCAPE '\\') \
                  OR EXISTS (SELECT 1 FROM transcripts s WHERE s.audio_id = audios.id \
                   AND json_extract(s.transcript_json, '$.text') LIKE ?{n} ESCAPE '\\'))"
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

// Used by the speech service and the synthesis jobs.

/// An audio to store `queued`, with the text its job speaks.
pub struct QueuedAudio {
    pub id: AudioId,
    pub user_id: UserId,
    pub kind: AudioKind,
    pub title: String,
    pub voice: Option<String>,
    pub format: String,
    pub speed: f64,
    pub text: Option<String>,
    pub chars: i64,
}

/// Why a retry queued nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequeueRefusal {
    /// No such audio of the caller.
    NotFound,
    /// A podcast episode: it is rendered again from its podcast, not here.
    NotSpeech,
    /// Only failed (or canceled) audios are queued again; this is the status it has.
    NotFailed(AudioStatus),
}

/// What deleting an audio leaves to do outside the database.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Its jobs that were live: canceled here, their workers and kept objects go next.
    pub jobs: Vec<JobId>,
    /// Stored objects no other audio points at any more.
    pub orphans: Vec<String>,
}

/// A stored result: an audio's file, or a cache entry's.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub object_key: String,
    /// Empty for results the player never draws (podcast lines).
    pub peaks_key: String,
    pub duration_ms: i64,
    pub size_bytes: i64,
    pub sha256: String,
}

impl StoredFile {
    fn finished(&self) -> Finished<'_> {
        Finished {
            object_key: &self.object_key,
            peaks_key: &self.peaks_key,
            duration_ms: self.duration_ms,
            size_bytes: self.size_bytes,
            sha256: &self.sha256,
        }
    }

    pub(super) fn entry<'a>(&'a self, key: &'a str) -> NewEntry<'a> {
        NewEntry {
            key,
            object_key: &self.object_key,
            peaks_key: &self.peaks_key,
            duration_ms: self.duration_ms,
            size_bytes: self.size_bytes,
            sha256: &self.sha256,
        }
    }
}

/// What a synthesis job records at its end, together with the job's success.
pub struct Synthesized {
    pub job: JobId,
    pub audio: AudioId,
    pub user: UserId,
    /// The audio's file: one the job stored, or the cached result it reuses.
    pub file: StoredFile,
    /// The file's waveform, when the job made the file (a reused result's is stored already).
    pub peaks: Option<Peaks>,
    /// The file is a cached result's object: nothing is recorded once the cache lets it go.
    pub reused: bool,
    pub usage: Vec<Billed>,
    /// New cache entries by key.
    pub cache: Vec<(String, StoredFile)>,
    /// An episode's measured line and chapter timings (JSON), for a render.
    pub timings_json: Option<String>,
}

/// Why a synthesis's end was not recorded (nothing was written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRecorded {
    /// The reused cached result was deleted in between.
    ResultGone,
    /// The job is no longer running: canceled meanwhile.
    JobNotRunning,
    /// The audio is no longer waiting for a result: deleted, failed or canceled meanwhile.
    AudioNotWaiting,
}

impl Audios<'_> {
    /// Every user's audios, for the metrics.
    pub async fn count(&self) -> anyhow::Result<i64> {
        self.0
            .read(|c| Ok(c.query_row("SELECT count(*) FROM audios", [], |r| r.get(0))?))
            .await
    }

    /// Stores a queued audio with its job, in one transaction; the stored row comes back.
    pub async fn create(
        &self,
        audio: QueuedAudio,
        job: NewJob<'static>,
    ) -> anyhow::Result<AudioRow> {
        self.0
            .transaction(move |tx| {
                let now = super::now_ms();
                insert(
                    tx,
                    &NewAudio {
                        id: audio.id,
                        user_id: audio.user_id,
                        kind: audio.kind,
                        title: &audio.title,
                        voice: audio.voice.as_deref(),
                        format: &audio.format,
                        speed: audio.speed,
                        text: audio.text.as_deref(),
                        chars: audio.chars,
                    },
                    now,
                )?;
                jobs::enqueue(tx, &job, now)?;
                get(tx, audio.user_id, audio.id)?
                    .ok_or_else(|| anyhow::anyhow!("inserted audio vanished"))
            })
            .await
    }

    /// The caller's audio (None when it belongs to someone else).
    pub async fn get(&self, user: UserId, id: AudioId) -> anyhow::Result<Option<AudioRow>> {
        self.0.lookup(move |c| Ok(get(c, user, id)?)).await
    }

    /// Any audio by id: for jobs, signed links and streams, which are authorized another way.
    pub async fn get_any(&self, id: AudioId) -> anyhow::Result<Option<AudioRow>> {
        self.0.lookup(move |c| Ok(get_any(c, id)?)).await
    }

    /// An audio with the text its job speaks; None when either is gone. Two rows by id:
    /// cheaper on the calling thread than a trip through the blocking pool.
    pub async fn get_with_text(&self, id: AudioId) -> anyhow::Result<Option<(AudioRow, String)>> {
        self.0
            .lookup(move |c| {
                Ok(match get_any(c, id)? {
                    Some(audio) => text(c, id)?.map(|text| (audio, text)),
                    None => None,
                })
            })
            .await
    }

    /// How many characters the caller's audio's text has; None when there is no such audio
    /// (or it has no text).
    pub async fn text_chars(&self, user: UserId, id: AudioId) -> anyhow::Result<Option<usize>> {
        self.0
            .read(move |c| {
                Ok(match get(c, user, id)? {
                    Some(_) => text(c, id)?.map(|t| t.chars().count()),
                    None => None,
                })
            })
            .await
    }

    /// One page of the caller's library (`fetch` rows at most, after `cursor`). An unfiltered
    /// page walks the index and stops after `fetch` rows, so it is a lookup; filters and
    /// search may scan all of the user's audios, so they go through the blocking pool.
    pub async fn page(
        &self,
        user: UserId,
        filter: ListFilter,
        cursor: Option<Cursor>,
        fetch: usize,
    ) -> anyhow::Result<Vec<AudioRow>> {
        let unfiltered = filter.kind.is_none() && filter.status.is_none() && filter.q.is_none();
        let query = move |c: &Connection| Ok(list(c, user, &filter, cursor.as_ref(), fetch)?);
        if unfiltered {
            self.0.lookup(query).await
        } else {
            self.0.read(query).await
        }
    }

    /// The waveform stored under a peaks key (see [`peaks`]).
    pub async fn peaks(&self, key: String) -> anyhow::Result<Option<Peaks>> {
        self.0.lookup(move |c| Ok(peaks(c, &key)?)).await
    }

    /// Renames the caller's audio; the row as it is now, None when there is no such audio.
    pub async fn rename(
        &self,
        user: UserId,
        id: AudioId,
        title: String,
    ) -> anyhow::Result<Option<AudioRow>> {
        self.0
            .write(move |c| {
                rename(c, user, id, &title, super::now_ms())?;
                Ok(get(c, user, id)?)
            })
            .await
    }

    /// Queues the caller's failed (or canceled) speech audio again with `job`, in one
    /// transaction; the row as it is now, or why nothing was queued.
    pub async fn requeue(
        &self,
        user: UserId,
        id: AudioId,
        job: NewJob<'static>,
    ) -> anyhow::Result<Result<AudioRow, RequeueRefusal>> {
        self.0
            .try_transaction(move |tx| {
                let Some(row) = get(tx, user, id)? else {
                    return Ok(Err(RequeueRefusal::NotFound));
                };
                if row.kind != AudioKind::Tts {
                    return Ok(Err(RequeueRefusal::NotSpeech));
                }
                let now = super::now_ms();
                if !requeue(tx, user, id, now)? {
                    return Ok(Err(RequeueRefusal::NotFailed(row.status)));
                }
                jobs::enqueue(tx, &job, now)?;
                let row = get(tx, user, id)?.ok_or_else(|| anyhow::anyhow!("audio vanished"))?;
                Ok(Ok(row))
            })
            .await
    }

    /// Deletes the caller's audio in one transaction: cancels its live jobs, and forgets the
    /// cache entries and waveforms of objects no other audio points at. None (and nothing
    /// written, not even a cancel) when the caller has no such audio.
    pub async fn delete(&self, user: UserId, id: AudioId) -> anyhow::Result<Option<Deleted>> {
        self.0
            .try_transaction(move |tx| {
                let live = jobs::live_ids_for_audio(tx, id)?;
                jobs::cancel_for_audio(tx, id, super::now_ms())?;
                let Some(row) = delete(tx, user, id)? else {
                    return Ok(Err(()));
                };
                let mut orphans = Vec::new();
                for key in [row.object_key, row.peaks_key].into_iter().flatten() {
                    if !object_in_use(tx, &key)? {
                        tts_cache::forget_object(tx, &key)?;
                        delete_peaks(tx, &key)?;
                        // Peaks kept in the store by older versions go with the audio too.
                        orphans.push(key);
                    }
                }
                Ok(Ok(Deleted {
                    jobs: live,
                    orphans,
                }))
            })
            .await
            .map(Result::ok)
    }

    /// Saves a live audio's progress (0..1).
    pub async fn set_progress(
        &self,
        id: AudioId,
        status: AudioStatus,
        progress: f64,
    ) -> anyhow::Result<()> {
        self.0
            .write(move |c| Ok(set_progress(c, id, status, progress, super::now_ms())?))
            .await
    }

    /// Marks a live audio failed with its job's error.
    pub async fn mark_failed(
        &self,
        id: AudioId,
        code: &'static str,
        message: String,
    ) -> anyhow::Result<()> {
        self.0
            .transaction(move |tx| Ok(fail(tx, id, code, &message, super::now_ms())?))
            .await
    }

    /// A synthesis job's end, in one transaction: the audio's final state, its peaks and
    /// timings, the usage rows, the cache entries and the job's success. Nothing is written
    /// when the job was canceled meanwhile, when the audio no longer waits for it, or when a
    /// reused result was deleted in between.
    pub async fn finish_synthesis(
        &self,
        s: Synthesized,
    ) -> anyhow::Result<Result<(), NotRecorded>> {
        let ids: Vec<ulid::Ulid> = s.usage.iter().map(|_| self.0.new_id()).collect();
        self.0
            .try_transaction(move |tx| {
                let now = super::now_ms();
                if s.reused && !tts_cache::holds_object(tx, &s.file.object_key)? {
                    return Ok(Err(NotRecorded::ResultGone));
                }
                if !jobs::succeed(tx, s.job, now)? {
                    return Ok(Err(NotRecorded::JobNotRunning));
                }
                if !finish(tx, s.audio, &s.file.finished(), now)? {
                    return Ok(Err(NotRecorded::AudioNotWaiting));
                }
                if let Some(levels) = &s.peaks {
                    put_peaks(tx, &s.file.peaks_key, levels)?;
                }
                if let Some(timings) = &s.timings_json {
                    episodes::set_timings(tx, s.audio, timings, now)?;
                }
                for (id, b) in ids.into_iter().zip(&s.usage) {
                    usage::insert(
                        tx,
                        &b.row(id, s.user, Some(s.audio), super::UsageSource::App),
                        now,
                    )?;
                }
                for (key, file) in &s.cache {
                    tts_cache::put(tx, &file.entry(key), now)?;
                }
                Ok(Ok(()))
            })
            .await
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
    fn each_audio_carries_its_newest_transcript_as_it_changes_without_a_lookup_per_row() {
        use crate::db::transcripts::{self, NewTranscript};
        use crate::db::{TranscriptId, TranscriptStatus};
        let (mut conn, a, _) = setup();
        let heard = add(&mut conn, a, "talk", "words", 1);
        let quiet = add(&mut conn, a, "quiet", "none", 2);
        let (older, newer) = (
            TranscriptId::from(Ulid::from_parts(1, 1)),
            TranscriptId::from(Ulid::from_parts(2, 1)),
        );
        let insert = |conn: &mut Connection, id: TranscriptId| {
            let tx = conn.transaction().unwrap();
            let t = NewTranscript {
                id,
                user_id: a,
                audio_id: Some(heard),
                recording_key: None,
                recording_format: None,
                title: "talk".into(),
                provider: "openai".into(),
                model: "whisper-1".into(),
                language: None,
                speakers: false,
                size_bytes: None,
            };
            transcripts::insert(&tx, &t, None, 3).unwrap();
            tx.commit().unwrap();
        };
        let newest = |conn: &Connection| {
            let page = list(conn, a, &ListFilter::default(), None, 10).unwrap();
            let quiet_row = page.iter().find(|r| r.id == quiet).unwrap();
            assert_eq!(
                quiet_row.transcript, None,
                "an audio without transcripts has none"
            );
            let row = get(conn, a, heard).unwrap().unwrap();
            assert_eq!(
                page.iter().find(|r| r.id == heard).unwrap().transcript,
                row.transcript
            );
            row.transcript.map(|t| (t.id, t.status))
        };
        let status = |conn: &Connection, id: TranscriptId, status: &str| {
            conn.execute(
                "UPDATE transcripts SET status = ?1 WHERE id = ?2",
                rusqlite::params![status, id],
            )
            .unwrap();
        };
        assert_eq!(newest(&conn), None);

        // The newer one first: newest is by id, not by the order rows were written.
        insert(&mut conn, newer);
        insert(&mut conn, older);
        assert_eq!(newest(&conn), Some((newer, TranscriptStatus::Queued)));
        status(&conn, newer, "running");
        status(&conn, older, "succeeded");
        assert_eq!(newest(&conn), Some((newer, TranscriptStatus::Running)));
        status(&conn, newer, "succeeded");
        assert_eq!(newest(&conn), Some((newer, TranscriptStatus::Succeeded)));

        conn.execute("DELETE FROM transcripts WHERE id = ?1", [newer])
            .unwrap();
        assert_eq!(newest(&conn), Some((older, TranscriptStatus::Succeeded)));
        conn.execute("DELETE FROM transcripts WHERE id = ?1", [older])
            .unwrap();
        assert_eq!(newest(&conn), None);

        // The page reads the audios alone.
        let (sql, args) = list_query(a, &ListFilter::default(), None, 21);
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(rusqlite::params_from_iter(args.iter()), |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            plan,
            ["SEARCH audios USING INDEX audios_user_created (user_id=?)"],
            "{plan:#?}"
        );
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

#[cfg(test)]
mod handle_tests {
    use super::*;
    use crate::db::{Db, JobStatus, now_ms};

    /// A database with one user.
    async fn setup() -> (tempfile::TempDir, Db, UserId) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        let user = UserId::new(&db);
        db.write(move |c| {
            c.execute(
                "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?1, ?1, 'h', 0, 0)",
                [user],
            )?;
            Ok(())
        })
        .await
        .unwrap();
        (dir, db, user)
    }

    fn tts_job(db: &Db, user: UserId, audio: AudioId) -> NewJob<'static> {
        NewJob {
            id: JobId::new(db),
            kind: "tts",
            user_id: Some(user),
            audio_id: Some(audio),
            payload: serde_json::json!({}),
            max_attempts: 3,
        }
    }

    /// A queued speech audio of `user` with its queued job.
    async fn queued(db: &Db, user: UserId) -> (AudioId, JobId) {
        let id = AudioId::new(db);
        let job = tts_job(db, user, id);
        let job_id = job.id;
        let audio = QueuedAudio {
            id,
            user_id: user,
            kind: AudioKind::Tts,
            title: "Hello".into(),
            voice: Some("local:en-us".into()),
            format: "mp3".into(),
            speed: 1.0,
            text: Some("Hello there".into()),
            chars: 11,
        };
        let row = db.audios().create(audio, job).await.unwrap();
        assert_eq!(row.status, AudioStatus::Queued);
        (id, job_id)
    }

    async fn job_status(db: &Db, job: JobId) -> Option<JobStatus> {
        db.read(move |c| Ok(jobs::status_of(c, job)?))
            .await
            .unwrap()
    }

    async fn count(db: &Db, table: &'static str) -> i64 {
        db.read(move |c| {
            Ok(c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
        })
        .await
        .unwrap()
    }

    fn synthesized(job: JobId, audio: AudioId, user: UserId) -> Synthesized {
        let file = StoredFile {
            object_key: format!("audio/{user}/{audio}.mp3"),
            peaks_key: format!("audio/{user}/{audio}.peaks.json"),
            duration_ms: 1200,
            size_bytes: 4096,
            sha256: "abc".into(),
        };
        Synthesized {
            job,
            audio,
            user,
            cache: vec![("key".into(), file.clone())],
            file,
            peaks: Some(Peaks {
                sample_rate: 24_000,
                duration_ms: 1200,
                peaks: vec![0.5, 1.0],
            }),
            reused: false,
            usage: vec![Billed {
                service: "tts:local:espeak-ng".into(),
                units: 11,
                cost_micros: 0,
                cached: false,
            }],
            timings_json: None,
        }
    }

    #[tokio::test]
    async fn a_synthesis_whose_audio_stopped_waiting_records_nothing_not_even_the_jobs_success() {
        let (_dir, db, user) = setup().await;
        let (audio, job) = queued(&db, user).await;
        let claimed = db
            .write(|c| Ok(jobs::claim(c, "w", now_ms(), 60_000)?))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.id, job);
        db.audios()
            .mark_failed(audio, "internal", "stopped".into())
            .await
            .unwrap();

        // The job's success is written before the audio refuses its result: it must go too.
        let refused = db
            .audios()
            .finish_synthesis(synthesized(job, audio, user))
            .await
            .unwrap();
        assert_eq!(refused, Err(NotRecorded::AudioNotWaiting));
        assert_eq!(job_status(&db, job).await, Some(JobStatus::Running));
        for table in ["usage_logs", "tts_cache", "peaks"] {
            assert_eq!(count(&db, table).await, 0, "nothing written to {table}");
        }
        let row = db.audios().get(user, audio).await.unwrap().unwrap();
        assert_eq!(row.status, AudioStatus::Failed);
        assert_eq!(row.object_key, None);

        // The same result for a job that is not running records nothing either.
        let (other, other_job) = queued(&db, user).await;
        let refused = db
            .audios()
            .finish_synthesis(synthesized(other_job, other, user))
            .await
            .unwrap();
        assert_eq!(refused, Err(NotRecorded::JobNotRunning));
        assert_eq!(job_status(&db, other_job).await, Some(JobStatus::Queued));

        // A reused result the cache no longer holds: nothing, though job and audio wait.
        db.write(|c| Ok(jobs::claim(c, "w", now_ms(), 60_000)?))
            .await
            .unwrap()
            .unwrap();
        let mut reuse = synthesized(other_job, other, user);
        reuse.reused = true;
        assert_eq!(
            db.audios().finish_synthesis(reuse).await.unwrap(),
            Err(NotRecorded::ResultGone)
        );
        assert_eq!(job_status(&db, other_job).await, Some(JobStatus::Running));

        // And a result that may be recorded is, all of it.
        assert_eq!(
            db.audios()
                .finish_synthesis(synthesized(other_job, other, user))
                .await
                .unwrap(),
            Ok(())
        );
        assert_eq!(job_status(&db, other_job).await, Some(JobStatus::Succeeded));
        let row = db.audios().get(user, other).await.unwrap().unwrap();
        assert_eq!(row.status, AudioStatus::Succeeded);
        for table in ["usage_logs", "tts_cache", "peaks"] {
            assert_eq!(count(&db, table).await, 1, "one row in {table}");
        }
    }

    #[tokio::test]
    async fn deleting_someone_elses_audio_cancels_none_of_its_jobs() {
        let (_dir, db, owner) = setup().await;
        let stranger = UserId::new(&db);
        db.write(move |c| {
            c.execute(
                "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?1, ?1, 'h', 0, 0)",
                [stranger],
            )?;
            Ok(())
        })
        .await
        .unwrap();
        let (audio, job) = queued(&db, owner).await;

        // The cancel comes before the ownership check in the transaction: it must roll back.
        assert_eq!(db.audios().delete(stranger, audio).await.unwrap(), None);
        assert_eq!(job_status(&db, job).await, Some(JobStatus::Queued));
        assert!(db.audios().get(owner, audio).await.unwrap().is_some());

        let deleted = db.audios().delete(owner, audio).await.unwrap().unwrap();
        assert_eq!(deleted.jobs, vec![job]);
        assert_eq!(
            job_status(&db, job).await,
            None,
            "the job goes with its audio"
        );
        assert!(db.audios().get(owner, audio).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_refused_retry_queues_no_job() {
        let (_dir, db, user) = setup().await;
        let (audio, _) = queued(&db, user).await;
        let jobs_before = count(&db, "jobs").await;

        let job = tts_job(&db, user, audio);
        assert_eq!(
            db.audios().requeue(user, audio, job).await.unwrap(),
            Err(RequeueRefusal::NotFailed(AudioStatus::Queued))
        );
        let job = tts_job(&db, user, AudioId::new(&db));
        assert_eq!(
            db.audios()
                .requeue(user, job.audio_id.unwrap(), job)
                .await
                .unwrap(),
            Err(RequeueRefusal::NotFound)
        );
        assert_eq!(count(&db, "jobs").await, jobs_before);

        db.audios()
            .mark_failed(audio, "internal", "broke".into())
            .await
            .unwrap();
        let row = db
            .audios()
            .requeue(user, audio, tts_job(&db, user, audio))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status, AudioStatus::Queued);
        assert_eq!(count(&db, "jobs").await, jobs_before + 1);
    }
}
