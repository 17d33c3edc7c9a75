//! Queries on `transcripts` and `transcript_pieces`: what speech recognition heard, kept in
//! the library, and the pieces of the job that makes it. Every read for a user is scoped by owner.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;

use super::jobs::{self, NewJob};
use super::usage::{self, Billed};
use super::{AudioId, JobId, TranscriptId, TranscriptStatus, UsageSource, UserId};

/// The `transcripts` table's operations, for services and jobs: `db.transcripts().…`. Each
/// method picks the connection it needs (see [`Db`](super::Db)); callers never hold one.
pub struct Transcripts<'a>(pub(super) &'a super::Db);

/// A transcript as listed: everything but the transcript itself, which can be large.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptRow {
    pub id: TranscriptId,
    pub user_id: UserId,
    /// The library audio transcribed, or `None` for an upload (`recording_key`).
    pub audio_id: Option<AudioId>,
    pub recording_key: Option<String>,
    /// The upload's container (`m4a`, `mp3`…), for its download.
    pub recording_format: Option<String>,
    pub title: String,
    pub job_id: Option<JobId>,
    pub provider: String,
    pub model: String,
    pub language: Option<String>,
    pub speakers: bool,
    pub status: TranscriptStatus,
    pub progress: f64,
    pub duration_ms: Option<i64>,
    pub size_bytes: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, user_id, audio_id, recording_key, recording_format, title, job_id, \
     provider, model, language, speakers, status, progress, duration_ms, size_bytes, error_code, \
     error_message, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<TranscriptRow> {
    Ok(TranscriptRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        audio_id: r.get(2)?,
        recording_key: r.get(3)?,
        recording_format: r.get(4)?,
        title: r.get(5)?,
        job_id: r.get(6)?,
        provider: r.get(7)?,
        model: r.get(8)?,
        language: r.get(9)?,
        speakers: r.get(10)?,
        status: r.get(11)?,
        progress: r.get(12)?,
        duration_ms: r.get(13)?,
        size_bytes: r.get(14)?,
        error_code: r.get(15)?,
        error_message: r.get(16)?,
        created_at: r.get(17)?,
        updated_at: r.get(18)?,
    })
}

/// An audio's newest transcript, as each library row carries it (`audios.transcript_id` and
/// `transcript_status`, kept by triggers): enough to link to it and say whether it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NewestTranscript {
    pub id: TranscriptId,
    pub status: TranscriptStatus,
}

/// Which of the caller's transcripts a page lists.
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    /// Words of their text (one literal phrase, as in the library).
    pub q: Option<String>,
    /// Only the transcripts of this library audio.
    pub audio: Option<AudioId>,
}

/// A transcript to make, stored `queued` with its job.
#[derive(Debug, Clone)]
pub struct NewTranscript {
    pub id: TranscriptId,
    pub user_id: UserId,
    pub audio_id: Option<AudioId>,
    pub recording_key: Option<String>,
    pub recording_format: Option<String>,
    pub title: String,
    pub provider: String,
    pub model: String,
    pub language: Option<String>,
    pub speakers: bool,
    pub size_bytes: Option<i64>,
}

pub fn insert(
    tx: &Transaction<'_>,
    t: &NewTranscript,
    job: Option<JobId>,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO transcripts (id, user_id, audio_id, recording_key, recording_format, title,
                                  job_id, provider, model, language, speakers, size_bytes,
                                  created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)",
    )?
    .execute(params![
        t.id,
        t.user_id,
        t.audio_id,
        t.recording_key,
        t.recording_format,
        t.title,
        job,
        t.provider,
        t.model,
        t.language,
        t.speakers,
        t.size_bytes,
        now
    ])?;
    Ok(())
}

/// The caller's transcript, or None (also when it belongs to someone else).
pub fn get(
    conn: &Connection,
    user: UserId,
    id: TranscriptId,
) -> rusqlite::Result<Option<TranscriptRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM transcripts WHERE id = ?1 AND user_id = ?2"
    ))?
    .query_row(params![id, user], from_row)
    .optional()
}

/// Any transcript by id: for its job, which is authorized by having been queued.
pub fn get_any(conn: &Connection, id: TranscriptId) -> rusqlite::Result<Option<TranscriptRow>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM transcripts WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// The finished transcript's JSON (`providers::asr::Transcript`), None before it is done.
pub fn transcript_json(conn: &Connection, id: TranscriptId) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT transcript_json FROM transcripts WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()
        .map(Option::flatten)
}

/// Searches shorter than this (in characters) cannot use the trigram index: they read the
/// user's own transcripts instead.
const MIN_INDEXED_SEARCH: usize = super::audios::MIN_INDEXED_SEARCH;

/// Up to `fetch` of the caller's transcripts with ids before `before`, newest first, as
/// `filter` narrows them (an audio of someone else's has none of the caller's).
pub fn list(
    conn: &Connection,
    user: UserId,
    filter: &ListFilter,
    before: Option<TranscriptId>,
    fetch: usize,
) -> rusqlite::Result<Vec<TranscriptRow>> {
    let mut sql = format!("SELECT {COLUMNS} FROM transcripts WHERE user_id = ?1");
    let mut args: Vec<Box<dyn rusqlite::ToSql>> = vec![Box::new(user)];
    if let Some(audio) = filter.audio {
        args.push(Box::new(audio));
        sql.push_str(&format!(" AND audio_id = ?{}", args.len()));
    }
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        if q.chars().count() >= MIN_INDEXED_SEARCH {
            args.push(Box::new(format!("\"{}\"", q.replace('"', "\"\""))));
            sql.push_str(&format!(
                " AND search_rowid IN ({})",
                search_rowids(args.len())
            ));
        } else {
            args.push(Box::new(format!("%{}%", super::escape_like(q))));
            sql.push_str(&format!(
                " AND json_extract(transcript_json, '$.text') LIKE ?{} ESCAPE '\\'",
                args.len()
            ));
        }
    }
    if let Some(before) = before {
        args.push(Box::new(before));
        sql.push_str(&format!(" AND id < ?{}", args.len()));
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {fetch}"));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), from_row)?;
    rows.collect()
}

/// The row ids of the transcripts of user `?1` whose text holds the phrase `?{phrase}`: the
/// owner's tag AND the phrase, within the owner's slice (see `0011_library_search.sql`).
fn search_rowids(phrase: usize) -> String {
    format!(
        "SELECT rowid FROM transcript_search \
          WHERE transcript_search MATCH \
                ('owner : \"' || (SELECT tag FROM search_owners WHERE user_id = ?1) \
                 || '\" AND body : ' || ?{phrase}) \
            AND rowid >= (SELECT first_rowid FROM search_owners WHERE user_id = ?1) \
            AND rowid < (SELECT first_rowid FROM search_owners WHERE user_id = ?1) + 4294967296"
    )
}

/// One piece of a transcript's job.
#[derive(Debug, Clone, PartialEq)]
pub struct PieceRow {
    pub index: usize,
    /// Frames of the recording at the recognition rate.
    pub start_frame: usize,
    pub end_frame: usize,
    pub start_ms: u64,
    pub end_ms: u64,
    /// The piece's `Transcript` JSON once it was heard, times from the piece's start.
    pub transcript_json: Option<String>,
}

pub fn pieces(conn: &Connection, id: TranscriptId) -> rusqlite::Result<Vec<PieceRow>> {
    conn.prepare_cached(
        "SELECT idx, start_frame, end_frame, start_ms, end_ms, transcript_json
           FROM transcript_pieces WHERE transcript_id = ?1 ORDER BY idx",
    )?
    .query_map([id], |r| {
        Ok(PieceRow {
            index: r.get::<_, i64>(0)? as usize,
            start_frame: r.get::<_, i64>(1)? as usize,
            end_frame: r.get::<_, i64>(2)? as usize,
            start_ms: r.get::<_, i64>(3)? as u64,
            end_ms: r.get::<_, i64>(4)? as u64,
            transcript_json: r.get(5)?,
        })
    })?
    .collect()
}

/// What a finished piece records: its transcript and what it cost.
#[derive(Debug, Clone)]
pub struct HeardPiece {
    pub index: usize,
    pub transcript_json: String,
    pub usage: Billed,
}

/// What a finished job records on its transcript.
#[derive(Debug, Clone)]
pub struct Finished {
    pub transcript_json: String,
    pub language: Option<String>,
    pub duration_ms: i64,
}

/// Why a job's step recorded nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRecorded {
    /// The job is no longer running: canceled (the transcript deleted) meanwhile.
    JobNotRunning,
    /// The transcript is gone or no longer waiting for this job.
    TranscriptNotWaiting,
}

/// What deleting a transcript leaves to remove: its job to stop, its upload to delete.
#[derive(Debug, Clone, Default)]
pub struct Deleted {
    pub job: Option<JobId>,
    pub recording_key: Option<String>,
}

impl Transcripts<'_> {
    /// Stores a queued transcript with its job in one transaction; the stored row comes back.
    pub async fn create(
        &self,
        transcript: NewTranscript,
        job: NewJob<'static>,
    ) -> anyhow::Result<TranscriptRow> {
        self.0
            .transaction(move |tx| {
                let now = super::now_ms();
                insert(tx, &transcript, Some(job.id), now)?;
                jobs::enqueue(tx, &job, now)?;
                get(tx, transcript.user_id, transcript.id)?
                    .ok_or_else(|| anyhow::anyhow!("inserted transcript vanished"))
            })
            .await
    }

    /// The caller's transcript (None when it belongs to someone else).
    pub async fn get(
        &self,
        user: UserId,
        id: TranscriptId,
    ) -> anyhow::Result<Option<TranscriptRow>> {
        self.0.lookup(move |c| Ok(get(c, user, id)?)).await
    }

    /// The caller's transcript with its JSON (None before it is done).
    pub async fn get_with_json(
        &self,
        user: UserId,
        id: TranscriptId,
    ) -> anyhow::Result<Option<(TranscriptRow, Option<String>)>> {
        self.0
            .read(move |c| {
                Ok(match get(c, user, id)? {
                    Some(row) => Some((row, transcript_json(c, id)?)),
                    None => None,
                })
            })
            .await
    }

    /// Any transcript by id, for its job.
    pub async fn get_any(&self, id: TranscriptId) -> anyhow::Result<Option<TranscriptRow>> {
        self.0.lookup(move |c| Ok(get_any(c, id)?)).await
    }

    /// One page of the caller's transcripts, newest first (see [`list`]).
    pub async fn page(
        &self,
        user: UserId,
        filter: ListFilter,
        before: Option<TranscriptId>,
        fetch: usize,
    ) -> anyhow::Result<Vec<TranscriptRow>> {
        self.0
            .read(move |c| Ok(list(c, user, &filter, before, fetch)?))
            .await
    }

    /// The pieces planned for a transcript, in order (empty before its job planned them).
    pub async fn pieces(&self, id: TranscriptId) -> anyhow::Result<Vec<PieceRow>> {
        self.0.read(move |c| Ok(pieces(c, id)?)).await
    }

    /// Records the job's plan, in one transaction: the pieces to hear, the recording's length,
    /// and the transcript running. Nothing is written when the job no longer runs.
    pub async fn plan(
        &self,
        job: JobId,
        id: TranscriptId,
        planned: Vec<PieceRow>,
        duration_ms: i64,
    ) -> anyhow::Result<Result<(), NotRecorded>> {
        self.0
            .try_transaction(move |tx| {
                if !jobs::is_running(tx, job)? {
                    return Ok(Err(NotRecorded::JobNotRunning));
                }
                let now = super::now_ms();
                let n = tx
                    .prepare_cached(
                        "UPDATE transcripts SET status = 'running', duration_ms = ?1, updated_at = ?2
                          WHERE id = ?3 AND status IN ('queued', 'running')",
                    )?
                    .execute(params![duration_ms, now, id])?;
                if n == 0 {
                    return Ok(Err(NotRecorded::TranscriptNotWaiting));
                }
                let mut stmt = tx.prepare_cached(
                    "INSERT OR IGNORE INTO transcript_pieces
                         (transcript_id, idx, start_frame, end_frame, start_ms, end_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for p in &planned {
                    stmt.execute(params![
                        id,
                        p.index as i64,
                        p.start_frame as i64,
                        p.end_frame as i64,
                        p.start_ms as i64,
                        p.end_ms as i64
                    ])?;
                }
                Ok(Ok(()))
            })
            .await
    }

    /// A piece heard, in one transaction: its transcript and its usage row. Nothing is
    /// written when the job no longer runs or the piece was recorded already, so a piece is
    /// billed once.
    pub async fn finish_piece(
        &self,
        job: JobId,
        id: TranscriptId,
        user: UserId,
        audio: Option<AudioId>,
        piece: HeardPiece,
    ) -> anyhow::Result<Result<(), NotRecorded>> {
        let usage_id = self.0.new_id();
        self.0
            .try_transaction(move |tx| {
                if !jobs::is_running(tx, job)? {
                    return Ok(Err(NotRecorded::JobNotRunning));
                }
                let now = super::now_ms();
                let n = tx
                    .prepare_cached(
                        "UPDATE transcript_pieces SET status = 'done', transcript_json = ?1
                          WHERE transcript_id = ?2 AND idx = ?3 AND status = 'pending'",
                    )?
                    .execute(params![piece.transcript_json, id, piece.index as i64])?;
                if n == 0 {
                    return Ok(Err(NotRecorded::TranscriptNotWaiting));
                }
                usage::insert(
                    tx,
                    &piece.usage.row(usage_id, user, audio, UsageSource::App),
                    now,
                )?;
                Ok(Ok(()))
            })
            .await
    }

    /// Saves a live transcript's progress (0..1).
    pub async fn set_progress(&self, id: TranscriptId, progress: f64) -> anyhow::Result<()> {
        self.0
            .write(move |c| {
                c.prepare_cached(
                    "UPDATE transcripts SET status = 'running', progress = ?1, updated_at = ?2
                      WHERE id = ?3 AND status IN ('queued', 'running')",
                )?
                .execute(params![progress, super::now_ms(), id])?;
                Ok(())
            })
            .await
    }

    /// The job's end, in one transaction: the whole transcript (indexed for search by the
    /// database) and the job's success. Nothing is written when the job was canceled
    /// meanwhile or the transcript no longer waits for it.
    pub async fn finish_job(
        &self,
        job: JobId,
        id: TranscriptId,
        finished: Finished,
    ) -> anyhow::Result<Result<(), NotRecorded>> {
        self.0
            .try_transaction(move |tx| {
                let now = super::now_ms();
                if !jobs::succeed(tx, job, now)? {
                    return Ok(Err(NotRecorded::JobNotRunning));
                }
                if !finish(tx, id, &finished, now)? {
                    return Ok(Err(NotRecorded::TranscriptNotWaiting));
                }
                Ok(Ok(()))
            })
            .await
    }

    /// Ends a job whose transcript is gone (deleted with its audio): there is nothing to
    /// record but the job's end, so it is never claimed again.
    pub async fn abandon_job(&self, job: JobId) -> anyhow::Result<()> {
        self.0
            .transaction(move |tx| {
                jobs::succeed(tx, job, super::now_ms())?;
                Ok(())
            })
            .await
    }

    /// Marks a live transcript failed with its job's error.
    pub async fn mark_failed(
        &self,
        id: TranscriptId,
        code: &'static str,
        message: String,
    ) -> anyhow::Result<()> {
        self.0
            .write(move |c| {
                c.prepare_cached(
                    "UPDATE transcripts SET status = 'failed', error_code = ?1, error_message = ?2,
                            updated_at = ?3
                      WHERE id = ?4 AND status IN ('queued', 'running')",
                )?
                .execute(params![code, message, super::now_ms(), id])?;
                Ok(())
            })
            .await
    }

    /// Deletes the caller's transcript in one transaction and cancels its job if it has not
    /// finished. None (and nothing written) when the caller has no such transcript.
    pub async fn delete(&self, user: UserId, id: TranscriptId) -> anyhow::Result<Option<Deleted>> {
        self.0
            .try_transaction(move |tx| {
                let Some(row) = get(tx, user, id)? else {
                    return Ok(Err(()));
                };
                let now = super::now_ms();
                let job = match row.job_id {
                    Some(job) if jobs::cancel(tx, job, now)? => Some(job),
                    _ => None,
                };
                tx.prepare_cached("DELETE FROM transcripts WHERE id = ?1 AND user_id = ?2")?
                    .execute(params![id, user])?;
                Ok(Ok(Deleted {
                    job,
                    recording_key: row.recording_key,
                }))
            })
            .await
            .map(Result::ok)
    }
}

fn finish(
    tx: &Transaction<'_>,
    id: TranscriptId,
    f: &Finished,
    now: i64,
) -> rusqlite::Result<bool> {
    let n = tx
        .prepare_cached(
            "UPDATE transcripts SET status = 'succeeded', progress = 1, transcript_json = ?1,
                    language = coalesce(?2, language), duration_ms = ?3, error_code = NULL,
                    error_message = NULL, updated_at = ?4
              WHERE id = ?5 AND status IN ('queued', 'running')",
        )?
        .execute(params![
            f.transcript_json,
            f.language,
            f.duration_ms,
            now,
            id
        ])?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ulid::Ulid;

    fn setup() -> (Connection, UserId, UserId) {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrations::apply(&mut conn).unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        let (a, b) = (
            UserId::from(Ulid::generate()),
            UserId::from(Ulid::generate()),
        );
        for (id, email) in [(a, "a@x"), (b, "b@x")] {
            conn.execute(
                "INSERT INTO users (id, email, password_hash, created_at, updated_at)
                 VALUES (?1, ?2, 'h', 0, 0)",
                params![id, email],
            )
            .unwrap();
        }
        (conn, a, b)
    }

    fn add(conn: &mut Connection, user: UserId, text: &str) -> TranscriptId {
        let id = TranscriptId::from(Ulid::generate());
        let tx = conn.transaction().unwrap();
        let t = NewTranscript {
            id,
            user_id: user,
            audio_id: None,
            recording_key: Some(format!("recordings/{user}/{id}.mp3")),
            recording_format: Some("mp3".into()),
            title: "talk.mp3".into(),
            provider: "openai".into(),
            model: "whisper-1".into(),
            language: None,
            speakers: false,
            size_bytes: Some(10),
        };
        insert(&tx, &t, None, 1).unwrap();
        let json = serde_json::json!({"text": text}).to_string();
        finish(
            &tx,
            id,
            &Finished {
                transcript_json: json,
                language: Some("en".into()),
                duration_ms: 1000,
            },
            2,
        )
        .unwrap();
        tx.commit().unwrap();
        id
    }

    fn found(conn: &Connection, user: UserId, q: &str) -> Vec<TranscriptId> {
        let filter = ListFilter {
            q: Some(q.into()),
            audio: None,
        };
        list(conn, user, &filter, None, 21)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    }

    #[test]
    fn transcript_search_finds_words_of_the_caller_s_transcripts_only() {
        let (mut conn, a, b) = setup();
        let mine = add(&mut conn, a, "alpha bravo charlie. 你好世界");
        let theirs = add(&mut conn, b, "alpha bravo delta");
        assert_eq!(found(&conn, a, "bravo char"), [mine]);
        assert_eq!(
            found(&conn, a, "你好"),
            [mine],
            "short searches read the text"
        );
        assert_eq!(found(&conn, b, "bravo"), [theirs]);
        assert!(found(&conn, a, "delta").is_empty());
        assert!(
            found(&conn, a, "\" OR owner : x").is_empty(),
            "literal phrases"
        );
        conn.execute("DELETE FROM transcripts WHERE id = ?1", [mine])
            .unwrap();
        assert!(
            found(&conn, a, "bravo").is_empty(),
            "deleted ones leave the index"
        );
    }

    #[test]
    fn an_audio_is_found_by_its_transcripts_until_they_or_it_are_deleted() {
        use crate::db::audios::{self, ListFilter, NewAudio};
        let (mut conn, a, _) = setup();
        let audio = AudioId::from(Ulid::generate());
        let transcript = |id: TranscriptId| NewTranscript {
            id,
            user_id: a,
            audio_id: Some(audio),
            recording_key: None,
            recording_format: None,
            title: "Note".into(),
            provider: "openai".into(),
            model: "whisper-1".into(),
            language: None,
            speakers: false,
            size_bytes: None,
        };
        let heard = |text: &str| Finished {
            transcript_json: serde_json::json!({ "text": text }).to_string(),
            language: None,
            duration_ms: 1000,
        };
        let (first, second) = (
            TranscriptId::from(Ulid::generate()),
            TranscriptId::from(Ulid::generate()),
        );
        let tx = conn.transaction().unwrap();
        audios::insert(
            &tx,
            &NewAudio {
                id: audio,
                user_id: a,
                kind: crate::db::AudioKind::Tts,
                title: "Note",
                voice: None,
                format: "mp3",
                speed: 1.0,
                text: Some("spoken words"),
                chars: 12,
            },
            1,
        )
        .unwrap();
        insert(&tx, &transcript(first), None, 2).unwrap();
        insert(&tx, &transcript(second), None, 2).unwrap();
        finish(&tx, first, &heard("heard a zebra crossing"), 3).unwrap();
        finish(&tx, second, &heard("and a yellow taxi"), 3).unwrap();
        tx.commit().unwrap();
        let found = |conn: &Connection, q: &str| {
            let filter = ListFilter {
                q: Some(q.into()),
                ..Default::default()
            };
            audios::list(conn, a, &filter, None, 21).unwrap().len()
        };
        for q in ["zebra cross", "yellow taxi", "spoken words", "ze"] {
            assert_eq!(found(&conn, q), 1, "searching {q}");
        }
        conn.execute("DELETE FROM transcripts WHERE id = ?1", [first])
            .unwrap();
        assert_eq!(found(&conn, "zebra"), 0);
        assert_eq!(found(&conn, "yellow taxi"), 1);
        assert_eq!(found(&conn, "spoken words"), 1);
        conn.execute("DELETE FROM audios WHERE id = ?1", [audio])
            .unwrap();
        let documents: i64 = conn
            .query_row(
                "SELECT count(*) FROM audio_search WHERE audio_search MATCH '\"yellow\"'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(documents, 0, "nothing of the audio is left in the index");
        assert_eq!(found(&conn, "yellow"), 0);
    }

    #[test]
    fn a_transcript_belongs_to_an_audio_or_an_upload_never_both_or_neither() {
        let (mut conn, a, _) = setup();
        let tx = conn.transaction().unwrap();
        let t = NewTranscript {
            id: TranscriptId::from(Ulid::generate()),
            user_id: a,
            audio_id: None,
            recording_key: None,
            recording_format: None,
            title: "x".into(),
            provider: "openai".into(),
            model: "whisper-1".into(),
            language: None,
            speakers: false,
            size_bytes: None,
        };
        assert!(insert(&tx, &t, None, 1).is_err());
    }
}

#[cfg(test)]
mod handle_tests {
    use super::*;
    use crate::db::{Db, JobStatus};

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

    /// A queued upload's transcript with its job, the job claimed as a worker would.
    async fn running(db: &Db, user: UserId) -> (TranscriptId, JobId) {
        let id = TranscriptId::new(db);
        let job = NewJob {
            id: JobId::new(db),
            kind: "transcribe",
            user_id: Some(user),
            audio_id: None,
            payload: serde_json::json!({ "transcript": id }),
            max_attempts: 3,
        };
        let job_id = job.id;
        let row = db
            .transcripts()
            .create(
                NewTranscript {
                    id,
                    user_id: user,
                    audio_id: None,
                    recording_key: Some("recordings/x.wav".into()),
                    recording_format: Some("wav".into()),
                    title: "Talk".into(),
                    provider: "openai".into(),
                    model: "whisper-1".into(),
                    language: None,
                    speakers: false,
                    size_bytes: Some(1),
                },
                job,
            )
            .await
            .unwrap();
        assert_eq!(
            (row.status, row.job_id),
            (TranscriptStatus::Queued, Some(job_id))
        );
        let claimed = db.jobs().claim("w", 60_000).await.unwrap().unwrap();
        assert_eq!(claimed.id, job_id);
        (id, job_id)
    }

    fn piece(index: usize) -> PieceRow {
        PieceRow {
            index,
            start_frame: index * 16_000,
            end_frame: (index + 1) * 16_000,
            start_ms: index as u64 * 1000,
            end_ms: (index as u64 + 1) * 1000,
            transcript_json: None,
        }
    }

    fn heard(index: usize) -> HeardPiece {
        HeardPiece {
            index,
            transcript_json: format!("{{\"piece\": {index}}}"),
            usage: Billed {
                service: "asr:openai:whisper-1".into(),
                units: 1,
                cost_micros: 100,
                cached: false,
            },
        }
    }

    async fn count(db: &Db, sql: &'static str) -> i64 {
        db.read(move |c| Ok(c.query_row(sql, [], |r| r.get(0))?))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_heard_piece_is_recorded_and_billed_once_and_a_resumed_job_sees_it() {
        let (_dir, db, user) = setup().await;
        let (id, job) = running(&db, user).await;
        let t = db.transcripts();
        t.plan(job, id, vec![piece(0), piece(1)], 2000)
            .await
            .unwrap()
            .unwrap();
        // A second plan (a resumed attempt that planned again) changes nothing.
        t.plan(job, id, vec![piece(0)], 2000)
            .await
            .unwrap()
            .unwrap();
        t.finish_piece(job, id, user, None, heard(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            t.finish_piece(job, id, user, None, heard(1)).await.unwrap(),
            Err(NotRecorded::TranscriptNotWaiting),
            "a piece is billed once"
        );
        let kept = t.pieces(id).await.unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].transcript_json, None);
        assert_eq!(kept[1].transcript_json.as_deref(), Some("{\"piece\": 1}"));
        assert_eq!(count(&db, "SELECT count(*) FROM usage_logs").await, 1);
        let row = t.get(user, id).await.unwrap().unwrap();
        assert_eq!(
            (row.status, row.duration_ms),
            (TranscriptStatus::Running, Some(2000))
        );

        t.finish_job(
            job,
            id,
            Finished {
                transcript_json: "{\"text\": \"hello world\"}".into(),
                language: Some("en".into()),
                duration_ms: 2000,
            },
        )
        .await
        .unwrap()
        .unwrap();
        let row = t.get(user, id).await.unwrap().unwrap();
        assert_eq!(row.status, TranscriptStatus::Succeeded);
        assert_eq!(row.language.as_deref(), Some("en"));
        let status: Option<JobStatus> = db
            .read(move |c| Ok(jobs::status_of(c, job)?))
            .await
            .unwrap();
        assert_eq!(status, Some(JobStatus::Succeeded));
        let filter = ListFilter {
            q: Some("world".into()),
            audio: None,
        };
        let found = t.page(user, filter, None, 10).await.unwrap();
        assert_eq!(found.len(), 1);
    }

    #[tokio::test]
    async fn deleting_a_transcript_cancels_its_job_and_a_canceled_job_records_nothing() {
        let (_dir, db, user) = setup().await;
        let (id, job) = running(&db, user).await;
        let t = db.transcripts();
        t.plan(job, id, vec![piece(0)], 1000)
            .await
            .unwrap()
            .unwrap();
        let deleted = t.delete(user, id).await.unwrap().unwrap();
        assert_eq!(deleted.job, Some(job));
        assert_eq!(deleted.recording_key.as_deref(), Some("recordings/x.wav"));
        assert_eq!(
            t.finish_piece(job, id, user, None, heard(0)).await.unwrap(),
            Err(NotRecorded::JobNotRunning)
        );
        assert_eq!(count(&db, "SELECT count(*) FROM usage_logs").await, 0);
        assert_eq!(
            count(&db, "SELECT count(*) FROM transcript_pieces").await,
            0
        );
        assert!(t.delete(user, id).await.unwrap().is_none(), "already gone");
    }
}
