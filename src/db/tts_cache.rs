//! The synthesis result cache: one row per synthesized text and voice (the key), naming the
//! stored object that holds its audio, so the same request is never paid twice.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// The `tts_cache` table's operations, for services and jobs: `db.tts_cache().…`. Each method picks
/// the connection it needs (see [`Db`](super::Db)); callers never hold one.
pub struct TtsCache<'a>(pub(super) &'a super::Db);

/// A cached result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub object_key: String,
    /// Empty for a podcast line, whose waveform is drawn for the whole episode.
    pub peaks_key: String,
    pub duration_ms: i64,
    pub size_bytes: i64,
    pub sha256: String,
}

/// A result to remember under `key`; replaces an older one.
pub struct NewEntry<'a> {
    pub key: &'a str,
    pub object_key: &'a str,
    pub peaks_key: &'a str,
    pub duration_ms: i64,
    pub size_bytes: i64,
    pub sha256: &'a str,
}

pub fn get(c: &Connection, key: &str) -> rusqlite::Result<Option<Entry>> {
    c.prepare_cached(
        "SELECT object_key, peaks_key, duration_ms, size_bytes, sha256 FROM tts_cache WHERE key = ?1",
    )?
    .query_row([key], |r| {
        Ok(Entry {
            object_key: r.get(0)?,
            peaks_key: r.get(1)?,
            duration_ms: r.get(2)?,
            size_bytes: r.get(3)?,
            sha256: r.get(4)?,
        })
    })
    .optional()
}

/// Whether some cache row still names this object (it may have been deleted with its audio).
pub fn holds_object(c: &Connection, object_key: &str) -> rusqlite::Result<bool> {
    c.prepare_cached("SELECT EXISTS (SELECT 1 FROM tts_cache WHERE object_key = ?1)")?
        .query_row([object_key], |r| r.get(0))
}

pub fn put(tx: &Transaction<'_>, e: &NewEntry<'_>, now: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO tts_cache (key, object_key, peaks_key, duration_ms, size_bytes, sha256, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        e.key,
        e.object_key,
        e.peaks_key,
        e.duration_ms,
        e.size_bytes,
        e.sha256,
        now
    ])?;
    Ok(())
}

/// Drops every row that names a stored object (as its audio or its waveform) about to be
/// deleted.
pub fn forget_object(tx: &Transaction<'_>, key: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM tts_cache WHERE object_key = ?1 OR peaks_key = ?1")?
        .execute([key])?;
    Ok(())
}

// Used by the synthesis jobs.

impl TtsCache<'_> {
    /// The result cached under `key`, if any.
    pub async fn get(&self, key: String) -> anyhow::Result<Option<Entry>> {
        self.0.lookup(move |c| Ok(get(c, &key)?)).await
    }
}

// Used by the OpenAI-compatible speech API, whose results are not library audios.

impl TtsCache<'_> {
    /// A result made for `user` outside a job: its cache entry under `key` and the usage row
    /// of what it cost, in one transaction.
    pub async fn put_billed(
        &self,
        key: String,
        file: super::audios::StoredFile,
        user: super::UserId,
        billed: super::usage::Billed,
        source: super::UsageSource,
    ) -> anyhow::Result<()> {
        let id = self.0.new_id();
        self.0
            .transaction(move |tx| {
                let now = super::now_ms();
                put(tx, &file.entry(&key), now)?;
                super::usage::insert(tx, &billed.row(id, user, None, source), now)?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(key: &'a str, object_key: &'a str, peaks_key: &'a str) -> NewEntry<'a> {
        NewEntry {
            key,
            object_key,
            peaks_key,
            duration_ms: 1200,
            size_bytes: 4096,
            sha256: "abc",
        }
    }

    #[test]
    fn a_cached_result_is_found_by_its_key_replaced_and_forgotten_with_its_object() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrations::apply(&mut c).unwrap();
        let tx = c.transaction().unwrap();
        assert_eq!(get(&tx, "k").unwrap(), None);
        put(&tx, &entry("k", "a.mp3", "a.peaks"), 1).unwrap();
        put(&tx, &entry("line", "b.mp3", ""), 1).unwrap();
        assert_eq!(
            get(&tx, "k").unwrap(),
            Some(Entry {
                object_key: "a.mp3".into(),
                peaks_key: "a.peaks".into(),
                duration_ms: 1200,
                size_bytes: 4096,
                sha256: "abc".into(),
            })
        );
        assert!(holds_object(&tx, "a.mp3").unwrap());

        put(&tx, &entry("k", "c.mp3", "c.peaks"), 2).unwrap();
        assert_eq!(get(&tx, "k").unwrap().unwrap().object_key, "c.mp3");
        assert!(
            !holds_object(&tx, "a.mp3").unwrap(),
            "the old row was replaced"
        );

        forget_object(&tx, "c.peaks").unwrap();
        assert_eq!(get(&tx, "k").unwrap(), None, "forgotten by its waveform");
        forget_object(&tx, "b.mp3").unwrap();
        assert_eq!(get(&tx, "line").unwrap(), None, "forgotten by its audio");
    }
}
