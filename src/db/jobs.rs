//! The `jobs` table: the durable job queue, claimed under a lease so a job whose process died
//! is picked up again after its lease runs out, and the queries that read a subject's jobs.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::Value;

use super::{AudioId, JobId, JobStatus, UserId};

/// The `jobs` table's operations, for services and jobs: `db.jobs().…`. Each method picks
/// the connection it needs (see [`Db`](super::Db)); callers never hold one.
pub struct Jobs<'a>(pub(super) &'a super::Db);

/// A claimed job, as the worker sees it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: JobId,
    pub kind: String,
    pub user_id: Option<UserId>,
    pub audio_id: Option<AudioId>,
    pub payload: Value,
    /// 1 on the first run; counts runs cut off by a crash too.
    pub attempt: u32,
    pub max_attempts: u32,
}

/// What to enqueue; inserted inside the caller's transaction, next to the row it works on.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// From [`crate::db::Db::new_id`], so jobs sort in the order they were made.
    pub id: JobId,
    pub kind: &'a str,
    pub user_id: Option<UserId>,
    pub audio_id: Option<AudioId>,
    pub payload: Value,
    pub max_attempts: u32,
}

pub fn enqueue(tx: &Transaction<'_>, job: &NewJob<'_>, now: i64) -> rusqlite::Result<JobId> {
    let id = job.id;
    tx.prepare_cached(
        "INSERT INTO jobs (id, kind, user_id, audio_id, payload, status, attempts, max_attempts,
                           run_after, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'queued', 0, ?6, ?7, ?7, ?7)",
    )?
    .execute(params![
        id,
        job.kind,
        job.user_id,
        job.audio_id,
        job.payload.to_string(),
        job.max_attempts,
        now
    ])?;
    Ok(id)
}

/// The claim: each kind of runnable job is looked up on its own, so the queued one is a
/// single seek in `jobs_claim` however many jobs wait, and only the two candidates are
/// compared.
const CLAIM: &str = "UPDATE jobs
        SET status = 'running', attempts = attempts + 1, lease_until = ?1 + ?2,
            worker = ?3, updated_at = ?1
      WHERE id = (SELECT id FROM (
                    SELECT * FROM (SELECT id, run_after FROM jobs
                                    WHERE status = 'queued' AND run_after <= ?1
                                    ORDER BY run_after, id LIMIT 1)
                    UNION ALL
                    SELECT * FROM (SELECT id, run_after FROM jobs
                                    WHERE status = 'running' AND lease_until < ?1
                                    ORDER BY run_after, id LIMIT 1))
                  ORDER BY run_after, id LIMIT 1)
  RETURNING id, kind, user_id, audio_id, payload, attempts, max_attempts";

/// Claims the oldest runnable job: queued and due, or running with an expired lease
/// (its worker died). One statement, so two workers never claim the same job.
pub fn claim(
    conn: &Connection,
    worker: &str,
    now: i64,
    lease_ms: i64,
) -> rusqlite::Result<Option<Job>> {
    conn.prepare_cached(CLAIM)?
        .query_row(params![now, lease_ms, worker], |r| {
            let payload: String = r.get(4)?;
            Ok(Job {
                id: r.get(0)?,
                kind: r.get(1)?,
                user_id: r.get(2)?,
                audio_id: r.get(3)?,
                payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
                attempt: r.get(5)?,
                max_attempts: r.get(6)?,
            })
        })
        .optional()
}

/// Extends the lease of a job this worker still holds. False when the job was canceled or
/// taken over, which tells the worker to stop.
pub fn heartbeat(
    conn: &Connection,
    job: JobId,
    worker: &str,
    now: i64,
    lease_ms: i64,
) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE jobs SET lease_until = ?1 + ?2, updated_at = ?1
          WHERE id = ?3 AND worker = ?4 AND status = 'running'",
        )?
        .execute(params![now, lease_ms, job, worker])?;
    Ok(n == 1)
}

/// Marks a running job done; call it in the same transaction as the job's results and roll
/// back when it returns false (the job was canceled meanwhile).
pub fn succeed(tx: &Transaction<'_>, job: JobId, now: i64) -> rusqlite::Result<bool> {
    let n = tx.prepare_cached("UPDATE jobs SET status = 'succeeded', lease_until = NULL, last_error = NULL, updated_at = ?1
          WHERE id = ?2 AND status = 'running'")?.execute(params![now, job],
    )?;
    Ok(n == 1)
}

/// Puts a job back in the queue to run again at `run_after`.
pub fn requeue(
    tx: &Transaction<'_>,
    job: JobId,
    run_after: i64,
    error: &str,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE jobs SET status = 'queued', lease_until = NULL, worker = NULL, run_after = ?1,
                         last_error = ?2, updated_at = ?3
          WHERE id = ?4 AND status = 'running'",
    )?
    .execute(params![run_after, error, now, job])?;
    Ok(())
}

/// Hands back a job interrupted by shutdown: queued again at once, the attempt not counted.
pub fn release(tx: &Transaction<'_>, job: JobId, now: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE jobs SET status = 'queued', lease_until = NULL, worker = NULL, run_after = ?1,
                         attempts = max(attempts - 1, 0), updated_at = ?1
          WHERE id = ?2 AND status = 'running'",
    )?
    .execute(params![now, job])?;
    Ok(())
}

/// Marks a running job failed for good; false when it was canceled meanwhile.
pub fn fail(tx: &Transaction<'_>, job: JobId, error: &str, now: i64) -> rusqlite::Result<bool> {
    let n = tx.prepare_cached("UPDATE jobs SET status = 'failed', lease_until = NULL, last_error = ?1, updated_at = ?2
          WHERE id = ?3 AND status = 'running'")?.execute(params![error, now, job],
    )?;
    Ok(n == 1)
}

/// Cancels every unfinished job of an audio; returns how many were stopped.
pub fn cancel_for_audio(tx: &Transaction<'_>, audio: AudioId, now: i64) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "UPDATE jobs SET status = 'canceled', lease_until = NULL, updated_at = ?1
          WHERE audio_id = ?2 AND status IN ('queued', 'running')",
    )?
    .execute(params![now, audio])
}

/// Cancels one job if it has not finished; returns whether it was stopped.
pub fn cancel(tx: &Transaction<'_>, job: JobId, now: i64) -> rusqlite::Result<bool> {
    let n = tx
        .prepare_cached(
            "UPDATE jobs SET status = 'canceled', lease_until = NULL, updated_at = ?1
              WHERE id = ?2 AND status IN ('queued', 'running')",
        )?
        .execute(params![now, job])?;
    Ok(n == 1)
}

/// Whether a job is running: what a job checks before it records part of its work, so a
/// canceled one records nothing.
pub fn is_running(conn: &Connection, job: JobId) -> rusqlite::Result<bool> {
    Ok(status_of(conn, job)? == Some(JobStatus::Running))
}

pub fn status_of(conn: &Connection, job: JobId) -> rusqlite::Result<Option<JobStatus>> {
    conn.prepare_cached("SELECT status FROM jobs WHERE id = ?1")?
        .query_row([job], |r| r.get(0))
        .optional()
}

/// Counts for `GET /api/admin/system`: queued, running, failed in the last 24 hours.
pub fn counts(conn: &Connection, now: i64) -> rusqlite::Result<(i64, i64, i64)> {
    conn.prepare_cached(
        "SELECT
            (SELECT count(*) FROM jobs WHERE status = 'queued'),
            (SELECT count(*) FROM jobs WHERE status = 'running'),
            (SELECT count(*) FROM jobs WHERE status = 'failed' AND updated_at >= ?1)",
    )?
    .query_row([now - 24 * 3600 * 1000], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}

/// Queued and running jobs, and those failed in the last 24 hours, by kind and status.
pub fn counts_by_kind(conn: &Connection, now: i64) -> rusqlite::Result<Vec<(String, String, i64)>> {
    conn.prepare_cached(
        "SELECT kind, status, count(*) FROM jobs
         WHERE status IN ('queued', 'running') OR (status = 'failed' AND updated_at >= ?1)
         GROUP BY kind, status",
    )?
    .query_map([now - 24 * 3600 * 1000], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?
    .collect()
}

/// The newest queued or running job of an audio, if any.
pub fn live_for_audio(c: &Connection, audio: AudioId) -> rusqlite::Result<Option<JobId>> {
    c.prepare_cached(
        "SELECT id FROM jobs WHERE audio_id = ?1 AND status IN ('queued', 'running')
          ORDER BY created_at DESC LIMIT 1",
    )?
    .query_row([audio], |r| r.get(0))
    .optional()
}

/// Every queued or running job of an audio (to stop before the audio is deleted).
pub fn live_ids_for_audio(c: &Connection, audio: AudioId) -> rusqlite::Result<Vec<JobId>> {
    let mut stmt = c.prepare_cached(
        "SELECT id FROM jobs WHERE audio_id = ?1 AND status IN ('queued', 'running')",
    )?;
    stmt.query_map([audio], |r| r.get(0))?.collect()
}

// Used by the job queue.
impl Jobs<'_> {
    /// Claims the next due job under a lease of `lease_ms` (see [`claim`]); its audio, if it
    /// has one, shows as running from that moment, in the same transaction.
    pub async fn claim(&self, worker: &str, lease_ms: i64) -> anyhow::Result<Option<Job>> {
        let worker = worker.to_string();
        self.0
            .transaction(move |tx| {
                let now = super::now_ms();
                let job = claim(tx, &worker, now, lease_ms)?;
                if let Some(audio) = job.as_ref().and_then(|j| j.audio_id) {
                    super::audios::start(tx, audio, now)?;
                }
                Ok(job)
            })
            .await
    }

    /// Extends the lease of a job this worker still holds; `false` when the job was canceled
    /// or taken over.
    pub async fn heartbeat(&self, id: JobId, worker: &str, lease_ms: i64) -> anyhow::Result<bool> {
        let worker = worker.to_string();
        self.0
            .write(move |c| Ok(heartbeat(c, id, &worker, super::now_ms(), lease_ms)?))
            .await
    }

    /// Marks a running job failed for good; `false` when it was canceled meanwhile.
    pub async fn fail(&self, id: JobId, error: String) -> anyhow::Result<bool> {
        self.0
            .transaction(move |tx| Ok(fail(tx, id, &error, super::now_ms())?))
            .await
    }

    /// Queues a failed attempt's job again, to run `delay_ms` from now.
    pub async fn requeue(&self, id: JobId, delay_ms: i64, error: String) -> anyhow::Result<()> {
        self.0
            .transaction(move |tx| {
                let now = super::now_ms();
                Ok(requeue(tx, id, now + delay_ms, &error, now)?)
            })
            .await
    }

    /// Hands back a job interrupted by shutdown (see [`release`]).
    pub async fn release(&self, id: JobId) -> anyhow::Result<()> {
        self.0
            .transaction(move |tx| Ok(release(tx, id, super::now_ms())?))
            .await
    }

    /// Queued, running, and failed in the last 24 hours.
    pub async fn counts(&self) -> anyhow::Result<(i64, i64, i64)> {
        self.0.read(|c| Ok(counts(c, super::now_ms())?)).await
    }

    /// The same by kind: `(kind, status, count)` rows.
    pub async fn counts_by_kind(&self) -> anyhow::Result<Vec<(String, String, i64)>> {
        self.0
            .read(|c| Ok(counts_by_kind(c, super::now_ms())?))
            .await
    }
}

// Used by the speech stream.

impl Jobs<'_> {
    /// The newest queued or running job of an audio, if any.
    pub async fn live_for_audio(&self, audio: AudioId) -> anyhow::Result<Option<JobId>> {
        self.0.read(move |c| Ok(live_for_audio(c, audio)?)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use ulid::Ulid;

    fn add_job(c: &Connection, audio: AudioId, status: &str, at: i64) -> JobId {
        let id = JobId::from(Ulid::generate());
        c.execute(
            "INSERT INTO jobs (id, kind, audio_id, status, run_after, created_at, updated_at)
             VALUES (?1, 'tts', ?2, ?3, 0, ?4, ?4)",
            rusqlite::params![id.to_string(), audio.to_string(), status, at],
        )
        .unwrap();
        id
    }

    #[test]
    fn an_audio_s_live_job_is_its_newest_queued_or_running_one() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrations::apply(&mut c).unwrap();
        c.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        let (audio, other) = (
            AudioId::from(Ulid::generate()),
            AudioId::from(Ulid::generate()),
        );
        assert_eq!(live_for_audio(&c, audio).unwrap(), None);

        add_job(&c, audio, "failed", 1);
        add_job(&c, other, "running", 2);
        assert_eq!(
            live_for_audio(&c, audio).unwrap(),
            None,
            "only finished jobs"
        );

        let older = add_job(&c, audio, "running", 3);
        assert_eq!(live_for_audio(&c, audio).unwrap(), Some(older));
        let newer = add_job(&c, audio, "queued", 4);
        add_job(&c, audio, "succeeded", 5);
        assert_eq!(live_for_audio(&c, audio).unwrap(), Some(newer));
        let mut live = live_ids_for_audio(&c, audio).unwrap();
        live.sort();
        let mut want = vec![older, newer];
        want.sort();
        assert_eq!(live, want, "every live job of the audio, and only those");
    }

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrations::apply(&mut conn).unwrap();
        conn
    }

    fn add(conn: &mut Connection, kind: &str, now: i64) -> JobId {
        let tx = conn.transaction().unwrap();
        let id = enqueue(
            &tx,
            &NewJob {
                id: Ulid::generate().into(),
                kind,
                user_id: None,
                audio_id: None,
                payload: json!({"n": 1}),
                max_attempts: 3,
            },
            now,
        )
        .unwrap();
        tx.commit().unwrap();
        id
    }

    #[test]
    fn jobs_are_claimed_oldest_first_and_only_once() {
        let mut conn = db();
        let a = add(&mut conn, "a", 100);
        let b = add(&mut conn, "b", 101);
        let first = claim(&conn, "w1", 200, 1000).unwrap().unwrap();
        assert_eq!(
            (first.id, first.attempt, first.payload.clone()),
            (a, 1, json!({"n": 1}))
        );
        let second = claim(&conn, "w2", 200, 1000).unwrap().unwrap();
        assert_eq!(second.id, b);
        assert!(
            claim(&conn, "w3", 200, 1000).unwrap().is_none(),
            "both are leased"
        );
    }

    #[test]
    fn claiming_seeks_the_index_instead_of_sorting_the_queue() {
        let conn = db();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {CLAIM}"))
            .unwrap()
            .query_map(params![0, 0, "w"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|p| p.contains("COVERING INDEX jobs_claim (status=? AND run_after<?)")),
            "{plan:#?}"
        );
        // Only the outer pick between the two candidates may sort.
        assert_eq!(
            plan.iter().filter(|p| p.contains("TEMP B-TREE")).count(),
            1,
            "{plan:#?}"
        );
    }

    #[test]
    fn an_expired_lease_older_than_the_queue_is_claimed_first() {
        let mut conn = db();
        let stale = add(&mut conn, "a", 0);
        claim(&conn, "dead", 1, 1000).unwrap().unwrap();
        let fresh = add(&mut conn, "b", 50);
        let next = claim(&conn, "w", 2000, 1000).unwrap().unwrap();
        assert_eq!((next.id, next.attempt), (stale, 2));
        assert_eq!(claim(&conn, "w", 2000, 1000).unwrap().unwrap().id, fresh);
    }

    #[test]
    fn a_job_whose_worker_died_is_reclaimed_after_its_lease() {
        let mut conn = db();
        let id = add(&mut conn, "a", 0);
        claim(&conn, "dead", 10, 1000).unwrap().unwrap();
        assert!(
            claim(&conn, "w2", 500, 1000).unwrap().is_none(),
            "lease still valid"
        );
        let again = claim(&conn, "w2", 1011, 1000).unwrap().unwrap();
        assert_eq!((again.id, again.attempt), (id, 2));
        assert!(
            !heartbeat(&conn, id, "dead", 1012, 1000).unwrap(),
            "the dead worker lost it"
        );
        assert!(heartbeat(&conn, id, "w2", 1012, 1000).unwrap());
    }

    #[test]
    fn requeued_jobs_wait_for_run_after_and_finished_jobs_are_never_claimed() {
        let mut conn = db();
        let id = add(&mut conn, "a", 0);
        claim(&conn, "w", 1, 1000).unwrap().unwrap();
        let tx = conn.transaction().unwrap();
        requeue(&tx, id, 5000, "provider busy", 2).unwrap();
        tx.commit().unwrap();
        assert!(claim(&conn, "w", 4999, 1000).unwrap().is_none());
        claim(&conn, "w", 5000, 1000).unwrap().unwrap();
        let tx = conn.transaction().unwrap();
        succeed(&tx, id, 5001).unwrap();
        tx.commit().unwrap();
        assert_eq!(status_of(&conn, id).unwrap(), Some(JobStatus::Succeeded));
        assert!(claim(&conn, "w", i64::MAX / 2, 1000).unwrap().is_none());
    }

    #[test]
    fn canceling_stops_queued_and_running_jobs_of_an_audio() {
        let mut conn = db();
        conn.execute_batch(
            "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES ('u', 'u@x', 'h', 0, 0);
             INSERT INTO audios (id, user_id, kind, title, created_at, updated_at)
             VALUES ('01JAAAAAAAAAAAAAAAAAAAAAAA', 'u', 'tts', 't', 0, 0);",
        )
        .unwrap();
        let audio: AudioId = "01JAAAAAAAAAAAAAAAAAAAAAAA".parse().unwrap();
        let tx = conn.transaction().unwrap();
        let id = enqueue(
            &tx,
            &NewJob {
                id: Ulid::generate().into(),
                kind: "tts",
                user_id: None,
                audio_id: Some(audio),
                payload: json!({}),
                max_attempts: 3,
            },
            0,
        )
        .unwrap();
        tx.commit().unwrap();
        claim(&conn, "w", 1, 1000).unwrap().unwrap();
        let tx = conn.transaction().unwrap();
        assert_eq!(cancel_for_audio(&tx, audio, 2).unwrap(), 1);
        tx.commit().unwrap();
        assert_eq!(status_of(&conn, id).unwrap(), Some(JobStatus::Canceled));
        assert!(
            !heartbeat(&conn, id, "w", 3, 1000).unwrap(),
            "the worker learns it was canceled"
        );
        assert_eq!(counts(&conn, 10).unwrap(), (0, 0, 0));
    }
}
