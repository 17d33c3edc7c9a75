//! The database half of a backup: a consistent online snapshot, compressed and checksummed,
//! and the reverse (decompress, check, open) for verify and restore. Everything here blocks.
//! It works on SQLite database files as files (`VACUUM INTO`, `PRAGMA integrity_check`,
//! `PRAGMA user_version`), so it is SQLite-specific by nature and speaks SQL itself instead of
//! going through `db/`; another database backend brings its own snapshot and restore.
//!
//! In the server the snapshot is SQLite's online backup API stepped on the app's own writer
//! connection (`online.rs`): a step holds the writer for about a millisecond, the writer's
//! commits never restart it, and each step's read transaction ends with the step. One long
//! read transaction (`VACUUM INTO`, a backup in one step) keeps checkpoints from resetting
//! the WAL while it runs; the WAL grows with every commit, and the first checkpoint after
//! the snapshot syncs all of it (`benches/backup.rs`, docs/backups.md). Checkpoints run on a
//! thread of their own (`db/checkpoint.rs`), so that sync no longer holds up a write.
//!
//! Without the app's writer (the `aimake backup` command, another process) it is `VACUUM
//! INTO` on a connection of its own: one read transaction in WAL mode, so a server's writes
//! can neither restart nor corrupt it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use super::online::{self, CopyError};
use crate::db::Db;

/// Fast enough to keep up with a disk, still about 4× smaller for a typical database.
const ZSTD_LEVEL: i32 = 3;

/// A writer holding the lock a snapshot waits for never takes longer than this.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A finished snapshot in a local temp file, ready to upload.
#[derive(Debug)]
pub struct Snapshot {
    pub compressed: PathBuf,
    pub size_bytes: u64,
    pub sha256: String,
    pub stored_bytes: u64,
    pub stored_sha256: String,
    pub schema_version: u32,
}

/// Snapshots the database at `db` into `dir` (which must be on a disk with room for it),
/// through `writer` when the caller has the app's database open.
pub fn take(db: &Path, writer: Option<&Db>, dir: &Path) -> anyhow::Result<Snapshot> {
    anyhow::ensure!(db.exists(), "no database at {}", db.display());
    let raw = dir.join("snapshot.db");
    match writer {
        Some(writer) => match online::copy(writer, &raw, online::PAGES_PER_STEP) {
            Ok(stats) => tracing::debug!(
                pages = stats.pages,
                steps = stats.steps,
                longest_step_ms = stats.longest_step.as_secs_f64() * 1e3,
                "database copied"
            ),
            Err(CopyError::Restarted(n)) => {
                tracing::warn!(
                    restarts = n,
                    "another process keeps writing the database: snapshotting with VACUUM INTO"
                );
                std::fs::remove_file(&raw).context("cannot remove the partial copy")?;
                vacuum_into(db, &raw)?;
            }
            Err(CopyError::Failed(e)) => return Err(e.context("database snapshot failed")),
        },
        None => vacuum_into(db, &raw)?,
    }
    let schema_version = read_user_version(&raw)?;
    let compressed = dir.join("snapshot.db.zst");
    let (size_bytes, sha256, stored_bytes, stored_sha256) = compress(&raw, &compressed)?;
    std::fs::remove_file(&raw).ok();
    Ok(Snapshot {
        compressed,
        size_bytes,
        sha256,
        stored_bytes,
        stored_sha256,
        schema_version,
    })
}

/// A snapshot in one read transaction on a connection of its own.
pub fn vacuum_into(db: &Path, out: &Path) -> anyhow::Result<()> {
    // Read-write flags only so the WAL index can be created when no server has the file
    // open; the connection runs nothing but the VACUUM INTO.
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", db.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // VACUUM INTO writes with the source connection's `synchronous`; the output is a
    // scratch file, compressed then deleted, so fsyncing it is wasted work (~15% of the time).
    conn.execute_batch("PRAGMA synchronous = OFF")?;
    let target = out.to_str().context("temp path is not UTF-8")?;
    conn.execute("VACUUM INTO ?1", [target])
        .context("database snapshot (VACUUM INTO) failed")?;
    Ok(())
}

/// `(raw size, raw sha256, compressed size, compressed sha256)`.
fn compress(raw: &Path, out: &Path) -> anyhow::Result<(u64, String, u64, String)> {
    let mut input = HashingReader::new(BufReader::new(File::open(raw)?));
    let file = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let hashing = HashingWriter::new(BufWriter::new(file));
    let mut encoder = zstd::stream::Encoder::new(hashing, ZSTD_LEVEL)?;
    std::io::copy(&mut input, &mut encoder).context("compressing the snapshot failed")?;
    let mut hashing = encoder.finish()?;
    hashing.flush()?;
    let (stored_bytes, stored_sha256, inner) = hashing.finish();
    inner.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let (size_bytes, sha256) = input.finish();
    Ok((size_bytes, sha256, stored_bytes, stored_sha256))
}

/// Why a downloaded snapshot cannot be used; shown to the operator as is.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("{0}")]
    Bad(String),
    #[error(transparent)]
    Io(#[from] anyhow::Error),
}

/// What a downloaded snapshot must match, from its manifest.
pub struct Expected<'a> {
    pub stored_bytes: u64,
    pub stored_sha256: &'a str,
    pub size_bytes: u64,
    pub sha256: &'a str,
    pub schema_version: u32,
}

/// Checks the compressed file, decompresses it to `out`, checks that, then runs
/// `PRAGMA integrity_check` and compares the schema version. Returns the schema version.
pub fn unpack_and_check(compressed: &Path, out: &Path, want: &Expected) -> Result<u32, Unusable> {
    let (len, sha) = hash_file(compressed)?;
    if len != want.stored_bytes {
        return Err(Unusable::Bad(format!(
            "the stored snapshot is {len} bytes, the manifest says {} (truncated or replaced)",
            want.stored_bytes
        )));
    }
    if sha != want.stored_sha256 {
        return Err(Unusable::Bad(
            "the stored snapshot's checksum does not match the manifest (corrupted)".into(),
        ));
    }
    let mut input =
        zstd::stream::Decoder::new(File::open(compressed).context("cannot open snapshot")?)
            .context("cannot read snapshot")?;
    let file = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut output = HashingWriter::new(BufWriter::new(file));
    std::io::copy(&mut input, &mut output)
        .map_err(|e| Unusable::Bad(format!("the snapshot does not decompress: {e}")))?;
    output.flush().context("cannot write snapshot")?;
    let (len, sha, inner) = output.finish();
    inner
        .into_inner()
        .map_err(|e| anyhow::Error::new(e.into_error()))?
        .sync_all()
        .context("cannot sync snapshot")?;
    if len != want.size_bytes || sha != want.sha256 {
        return Err(Unusable::Bad(
            "the decompressed database does not match the manifest's size and checksum".into(),
        ));
    }
    let version = check_database(out)?;
    if version != want.schema_version {
        return Err(Unusable::Bad(format!(
            "the database is at schema version {version}, the manifest says {}",
            want.schema_version
        )));
    }
    Ok(version)
}

/// `PRAGMA integrity_check` on a database file; returns its schema version.
pub fn check_database(path: &Path) -> Result<u32, Unusable> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Unusable::Bad(format!("the database does not open: {e}")))?;
    let problems: Vec<String> = (|| {
        let mut stmt = conn.prepare("PRAGMA integrity_check(20)")?;
        stmt.query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()
    })()
    .map_err(|e| Unusable::Bad(format!("integrity check failed: {e}")))?;
    if problems != ["ok"] {
        return Err(Unusable::Bad(format!(
            "integrity check failed: {}",
            problems.join("; ")
        )));
    }
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| Unusable::Bad(format!("cannot read the schema version: {e}")))
}

/// The schema version from the file header (bytes 60..64), without opening a connection.
fn read_user_version(path: &Path) -> anyhow::Result<u32> {
    let mut header = [0u8; 64];
    File::open(path)?
        .read_exact(&mut header)
        .context("snapshot is shorter than a SQLite header")?;
    anyhow::ensure!(
        header.starts_with(b"SQLite format 3\0"),
        "snapshot is not a SQLite file"
    );
    Ok(u32::from_be_bytes([
        header[60], header[61], header[62], header[63],
    ]))
}

/// Size and sha256 (hex) of a file.
pub fn hash_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut reader = HashingReader::new(BufReader::new(
        File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    ));
    std::io::copy(&mut reader, &mut std::io::sink())?;
    Ok(reader.finish())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    fn finish(self) -> (u64, String) {
        (self.len, hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    fn finish(self) -> (u64, String, W) {
        (self.len, hex::encode(self.hasher.finalize()), self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_db(path: &Path, rows: usize) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA user_version = 7;
             CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
        )
        .unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        for i in 0..rows {
            tx.execute(
                "INSERT INTO t (body) VALUES (?1)",
                [format!("row {i} ").repeat(20)],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    fn expected(s: &Snapshot) -> Expected<'_> {
        Expected {
            stored_bytes: s.stored_bytes,
            stored_sha256: &s.stored_sha256,
            size_bytes: s.size_bytes,
            sha256: &s.sha256,
            schema_version: s.schema_version,
        }
    }

    #[test]
    fn a_snapshot_round_trips_with_its_rows_and_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("live.db");
        sample_db(&db, 500);
        let snap = take(&db, None, dir.path()).unwrap();
        assert_eq!(snap.schema_version, 7);
        assert!(snap.stored_bytes < snap.size_bytes, "compressed: {snap:?}");
        let out = dir.path().join("restored.db");
        assert_eq!(
            unpack_and_check(&snap.compressed, &out, &expected(&snap)).unwrap(),
            7
        );
        let conn = Connection::open(&out).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 500);
    }

    #[test]
    fn a_flipped_byte_or_a_short_file_is_refused_before_decompressing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("live.db");
        sample_db(&db, 50);
        let snap = take(&db, None, dir.path()).unwrap();
        let mut bytes = std::fs::read(&snap.compressed).unwrap();
        let out = dir.path().join("out.db");

        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&snap.compressed, &bytes).unwrap();
        let err = unpack_and_check(&snap.compressed, &out, &expected(&snap)).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");

        std::fs::write(&snap.compressed, &bytes[..bytes.len() / 2]).unwrap();
        let err = unpack_and_check(&snap.compressed, &out, &expected(&snap)).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn damaged_pages_fail_the_integrity_check() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("live.db");
        sample_db(&db, 2000);
        let copy = dir.path().join("copy.db");
        Connection::open(&db)
            .unwrap()
            .execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
            .unwrap();
        let mut bytes = std::fs::read(&copy).unwrap();
        // Scribble over the middle of the table's b-tree, past the header and schema pages.
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 3000] {
            *b = 0x5a;
        }
        std::fs::write(&copy, &bytes).unwrap();
        let err = check_database(&copy).unwrap_err();
        assert!(err.to_string().contains("integrity"), "{err}");
    }
}
