//! Queries on `jobs` that read a subject's jobs (the queue's own claims live in `jobs::queue`).

use rusqlite::{Connection, OptionalExtension};
use ulid::Ulid;

/// The newest queued or running job of an audio, if any.
pub fn live_for_audio(c: &Connection, audio: Ulid) -> rusqlite::Result<Option<Ulid>> {
    let id: Option<String> = c
        .prepare_cached(
            "SELECT id FROM jobs WHERE audio_id = ?1 AND status IN ('queued', 'running')
              ORDER BY created_at DESC LIMIT 1",
        )?
        .query_row([audio.to_string()], |r| r.get(0))
        .optional()?;
    Ok(id.and_then(|j| j.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add_job(c: &Connection, audio: Ulid, status: &str, at: i64) -> Ulid {
        let id = Ulid::generate();
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
        let (audio, other) = (Ulid::generate(), Ulid::generate());
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
    }
}
