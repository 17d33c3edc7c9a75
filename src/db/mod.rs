//! SQLite access: one writer connection on a thread of its own and a small pool of readers,
//! all used off the executor.

pub mod alerts;
pub mod api_tokens;
pub mod audios;
mod checkpoint;
pub mod episodes;
pub mod integrity;
pub mod invites;
pub mod jobs;
pub mod migrations;
pub mod podcasts;
pub mod sessions;
pub mod sign_in_addresses;
pub mod transcripts;
pub mod tts_cache;
pub mod types;
pub mod usage;
pub mod users;
mod writer;

pub use types::{
    AlertId, AudioId, AudioKind, AudioStatus, EpisodeId, JobId, JobStatus, PodcastId, Role,
    SessionId, Severity, TokenId, TranscriptId, TranscriptStatus, UsageSource, UserId,
};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

/// Readers beyond the core count only queue on the CPU; two spare cover slow disk reads.
const READERS: usize = 4;

/// Statements kept prepared per connection: every query the app runs fits, so none is parsed
/// twice.
const STATEMENT_CACHE: usize = 128;

/// How long a statement waits on another connection's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    /// First, so it stops before the connections close.
    checkpointer: checkpoint::Checkpointer,
    path: PathBuf,
    /// Before `writer`, so the writer's connection closes last: the last connection to close
    /// copies the WAL into the database and removes it, which a read-only one cannot do.
    readers: Mutex<Vec<Connection>>,
    reader_slots: Semaphore,
    writer: writer::Writer,
    ids: Ids,
}

/// A reader taken from the pool; goes back on drop, even if the closure panicked.
struct Pooled<'a> {
    conn: Option<Connection>,
    pool: &'a Mutex<Vec<Connection>>,
}

impl Inner {
    /// A reader off the pool; the caller holds a `reader_slots` permit, so one is there.
    fn take_reader(&self) -> Pooled<'_> {
        let conn = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        Pooled {
            conn,
            pool: &self.readers,
        }
    }
}

impl Pooled<'_> {
    fn conn(&self) -> anyhow::Result<&Connection> {
        self.conn.as_ref().context("reader pool is empty")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
        }
    }
}

impl Db {
    /// Opens (creating if needed) the database at `path` and applies pending migrations. A
    /// damaged file's error names the restore command.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Self::open_inner(path).map_err(|e| integrity::explain(path, e))
    }

    fn open_inner(path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut writer = open_connection(path, false)?;
        migrations::apply(&mut writer)?;
        let checkpointer = checkpoint::Checkpointer::start(path, &mut writer)?;
        let readers = (0..READERS)
            .map(|_| open_connection(path, true))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                checkpointer,
                path: path.to_path_buf(),
                readers: Mutex::new(readers),
                reader_slots: Semaphore::new(READERS),
                writer: writer::Writer::start(writer)?,
                ids: Ids::default(),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A new row id for this database, after every id it made before (see [`Ids`]).
    pub fn new_id(&self) -> ulid::Ulid {
        self.inner.ids.next()
    }

    /// How many checkpoints the background checkpointer has run.
    pub fn checkpoints(&self) -> u64 {
        self.inner.checkpointer.checkpoints()
    }

    /// Copies every committed write into the database file and empties the WAL, after the
    /// writes queued before it: at a clean stop, so `aimake.db` alone holds everything (the
    /// copy an upgrade or a file-level backup takes). Returns whether the WAL is empty; it is
    /// not when another process kept reading from it for seconds.
    pub async fn checkpoint_truncate(&self) -> anyhow::Result<bool> {
        self.write(|c| checkpoint::truncate(c)).await
    }

    /// Runs `f` on a reader connection in the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let _slot = inner
            .reader_slots
            .acquire()
            .await
            .context("database is closed")?;
        let span = tracing::Span::current();
        let inner2 = inner.clone();
        tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            timed_read(|| f(inner2.take_reader().conn()?))
        })
        .await
        .context("database reader task failed")?
    }

    /// Runs `f` on the calling thread when a reader is free, else like [`Db::read`]. For
    /// indexed lookups that touch a handful of rows (a credential, a row by id, one page of a
    /// list): such a query takes microseconds, less than the two thread switches a trip
    /// through the blocking pool costs. Anything that may scan belongs in [`Db::read`].
    pub async fn lookup<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
    {
        let Ok(_slot) = self.inner.reader_slots.try_acquire() else {
            return self.read(f).await;
        };
        timed_read(|| f(self.inner.take_reader().conn()?))
    }

    /// Runs `f` on the single writer connection, on its own thread; writes run one at a
    /// time, in the order they were asked for.
    pub async fn write<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    {
        self.inner
            .writer
            .run(|c| {
                let start = std::time::Instant::now();
                let out = f(c);
                let failed = out.as_ref().is_err_and(is_sqlite_error);
                crate::monitor::metrics::DB.write(start.elapsed(), failed);
                out
            })
            .await
    }

    /// Runs `f` in one transaction on the single writer connection, in the same trip to the
    /// writer thread as [`Db::write`]: commits when `f` returns `Ok`, rolls everything back
    /// when it returns an error. For writes that span several tables (a row and its job, a
    /// job's results and its success).
    pub async fn transaction<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> anyhow::Result<T> + Send + 'static,
    {
        self.write(|c| {
            let tx = c.transaction()?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// As [`Db::transaction`], for a write that may decide, part-way, that nothing is to be
    /// written (an email already taken, a job canceled meanwhile): `f` answers `Ok(Err(e))`
    /// and everything it did is rolled back; `Ok(Ok(v))` commits.
    pub async fn try_transaction<T, E, F>(&self, f: F) -> anyhow::Result<Result<T, E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> anyhow::Result<Result<T, E>> + Send + 'static,
    {
        self.write(|c| {
            let tx = c.transaction()?;
            let out = f(&tx)?;
            if out.is_ok() {
                tx.commit()?;
            } else {
                tx.rollback()?;
            }
            Ok(out)
        })
        .await
    }

    /// Runs `f` on the single writer connection on the calling thread, in turn with `write`.
    /// For code already on a blocking thread (it blocks; never call it on an async worker).
    pub fn write_blocking<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        self.inner.writer.blocking(f)
    }

    // One handle per table: services, jobs and handlers reach the database only through
    // their typed methods, so a second backend changes `db/` and nothing else.
    pub fn alerts(&self) -> alerts::Alerts<'_> {
        alerts::Alerts(self)
    }

    pub fn users(&self) -> users::Users<'_> {
        users::Users(self)
    }

    pub fn sessions(&self) -> sessions::Sessions<'_> {
        sessions::Sessions(self)
    }

    pub fn api_tokens(&self) -> api_tokens::ApiTokens<'_> {
        api_tokens::ApiTokens(self)
    }

    pub fn invites(&self) -> invites::Invites<'_> {
        invites::Invites(self)
    }

    pub fn sign_in_addresses(&self) -> sign_in_addresses::SignInAddresses<'_> {
        sign_in_addresses::SignInAddresses(self)
    }

    pub fn usage(&self) -> usage::Usage<'_> {
        usage::Usage(self)
    }

    pub fn jobs(&self) -> jobs::Jobs<'_> {
        jobs::Jobs(self)
    }

    pub fn audios(&self) -> audios::Audios<'_> {
        audios::Audios(self)
    }

    pub fn tts_cache(&self) -> tts_cache::TtsCache<'_> {
        tts_cache::TtsCache(self)
    }

    pub fn podcasts(&self) -> podcasts::Podcasts<'_> {
        podcasts::Podcasts(self)
    }

    pub fn transcripts(&self) -> transcripts::Transcripts<'_> {
        transcripts::Transcripts(self)
    }

    pub fn episodes(&self) -> episodes::Episodes<'_> {
        episodes::Episodes(self)
    }

    /// The readiness check: a real query through the reader pool.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.read(|c| {
            c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(())
        })
        .await
    }

    /// The schema version (`PRAGMA user_version`).
    pub async fn schema_version(&self) -> anyhow::Result<u32> {
        self.read(migrations::current_version).await
    }
}

fn open_connection(path: &Path, read_only: bool) -> anyhow::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    };
    let mut conn = Connection::open_with_flags(path, flags)
        .with_context(|| format!("cannot open database {}", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Transactions take the write lock when they begin, waiting for it like any write. Begun
    // deferred, one reads, and then cannot write if another process committed meanwhile
    // (SQLITE_BUSY at once, no waiting): Litestream commits every few seconds while it
    // replicates, and `aimake` commands may write beside the server. aimake's own writes
    // never contend for the lock (one writer connection), so this costs them nothing.
    conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // This SQLite is built with STAT4, which recompiles a statement whenever a value bound
    // against an indexed column changes, in case the new value deserves another plan. We
    // never gather those statistics, so every recompile (a parse on every library page and
    // sign-in) would buy nothing: keep each statement's plan.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    if !read_only {
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        anyhow::ensure!(
            mode.eq_ignore_ascii_case("wal"),
            "database refused WAL mode (got {mode})"
        );
        // No `journal_size_limit`: SQLite would cut a grown WAL back inside the writer's next
        // commit, and truncating hundreds of MB there held writes up for 100-500 ms after a
        // backup from a shell (1 GB database). The file is emptied at a clean stop instead.
    }
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA synchronous = NORMAL;
         PRAGMA temp_store = MEMORY;",
    )?;
    Ok(conn)
}

/// A read, timed and its SQLite errors counted for the metrics: two clock reads and a few
/// atomic additions.
fn timed_read<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let start = std::time::Instant::now();
    let out = f();
    let failed = out.as_ref().is_err_and(is_sqlite_error);
    crate::monitor::metrics::DB.read(start.elapsed(), failed);
    out
}

/// Whether an operation's error came from SQLite, not from a refusal raised inside it: what
/// the metrics count as database errors.
fn is_sqlite_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<rusqlite::Error>())
}

/// `%`, `_` and `\` match themselves in a `LIKE … ESCAPE '\'` pattern.
pub fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Row ids for one database, each after the one before. Lists are newest first by id (or by
/// time, then id), so ids made in the same millisecond must still sort in the order they were
/// made: within a millisecond each id is the one before plus one, where `Ulid::generate` would
/// pick its low bits at random. Every clone of a [`Db`] shares its one generator.
#[derive(Debug, Default)]
pub struct Ids(Mutex<ulid::Generator>);

impl Ids {
    pub fn next(&self) -> ulid::Ulid {
        let mut ids = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Overflow takes 2^80 ids in one millisecond; a random one is then the best there is.
        ids.generate().unwrap_or_else(|_| ulid::Ulid::generate())
    }
}

/// Current time as Unix milliseconds, the unit every `*_at` column uses.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Unix milliseconds as the API's RFC 3339 UTC form, e.g. `2026-11-02T09:30:00.125Z`.
pub fn to_rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sqlite_errors_count_as_database_errors() {
        let sqlite = anyhow::Error::from(rusqlite::Error::InvalidQuery).context("reading");
        assert!(is_sqlite_error(&sqlite));
        assert!(!is_sqlite_error(&anyhow::anyhow!(
            "a refusal raised inside a transaction"
        )));
    }

    #[tokio::test]
    async fn a_failed_statement_counts_as_a_database_error_and_a_refusal_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        let errors = || crate::monitor::metrics::DB.errors();
        let before = errors();
        db.read(|c| Ok(c.execute_batch("SELECT * FROM no_such_table")?))
            .await
            .unwrap_err();
        db.write(|c| Ok(c.execute_batch("INSERT INTO no_such_table VALUES (1)")?))
            .await
            .unwrap_err();
        let after = errors();
        // Other tests in this process may fail statements on purpose too: at least ours.
        assert!(
            after.0 > before.0 && after.1 > before.1,
            "{before:?} → {after:?}"
        );
        db.write(|_| -> anyhow::Result<()> { anyhow::bail!("not a database error") })
            .await
            .unwrap_err();
        let minute = crate::monitor::series::series().window(std::time::Duration::from_secs(60));
        assert!(minute.db_errors >= 2, "{minute:?}");
    }

    #[tokio::test]
    async fn a_transaction_commits_every_write_on_success_and_none_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        db.write(
            |c| Ok(c.execute_batch("CREATE TABLE a (n INTEGER); CREATE TABLE b (n INTEGER)")?),
        )
        .await
        .unwrap();
        let count = |db: Db| async move {
            db.read(|c| {
                Ok(c.query_row(
                    "SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b)",
                    [],
                    |r| r.get::<_, i64>(0),
                )?)
            })
            .await
            .unwrap()
        };

        let failed: anyhow::Result<()> = db
            .transaction(|tx| {
                tx.execute("INSERT INTO a (n) VALUES (1)", [])?;
                tx.execute("INSERT INTO b (n) VALUES (1)", [])?;
                anyhow::bail!("the second step failed")
            })
            .await;
        assert_eq!(failed.unwrap_err().to_string(), "the second step failed");
        assert_eq!(count(db.clone()).await, 0, "both writes rolled back");

        let n = db
            .transaction(|tx| {
                tx.execute("INSERT INTO a (n) VALUES (1)", [])?;
                Ok(tx.execute("INSERT INTO b (n) VALUES (1)", [])?)
            })
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(count(db.clone()).await, 2, "both writes committed");
    }

    #[test]
    fn stored_ids_read_as_ulids_and_a_damaged_one_is_an_error() {
        let c = Connection::open_in_memory().unwrap();
        let id = SessionId::from(ulid::Ulid::generate());
        let read = |text: &str| c.query_row("SELECT ?1", [text], |r| r.get::<_, SessionId>(0));
        assert_eq!(read(&id.to_string()).unwrap(), id);
        assert!(matches!(
            read("not-an-id"),
            Err(rusqlite::Error::FromSqlConversionFailure(0, _, _))
        ));
    }

    #[tokio::test]
    async fn prepared_statements_are_not_recompiled_for_new_values() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        let reprepared = db
            .read(|c| {
                let sql = "SELECT id FROM audios WHERE user_id = ?1 \
                           ORDER BY created_at DESC, id DESC LIMIT 21";
                for user in ["a", "b", "c"] {
                    c.prepare_cached(sql)?
                        .query_map([user], |r| r.get::<_, String>(0))?
                        .for_each(drop);
                }
                Ok(c.prepare_cached(sql)?
                    .get_status(rusqlite::StatementStatus::RePrepare))
            })
            .await
            .unwrap();
        assert_eq!(reprepared, 0);
    }

    /// A new database and one commit of `rows` 4 KB rows into a table `big`; returns the
    /// database, its WAL's path and the checkpoint count before the commit.
    async fn one_big_commit(rows: u32) -> (tempfile::TempDir, Db, std::path::PathBuf, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let db = Db::open(&path).unwrap();
        let wal = path.with_extension("db-wal");
        let before = db.checkpoints();
        db.write(move |c| {
            c.execute_batch(&format!(
                "CREATE TABLE big (b BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
                 INSERT INTO big SELECT randomblob(4000) FROM n;"
            ))?;
            Ok(())
        })
        .await
        .unwrap();
        (dir, db, wal, before)
    }

    #[tokio::test]
    async fn a_long_wal_is_checkpointed_off_the_writer_and_starts_over() {
        // Twice the threshold in one commit.
        let (_dir, db, wal, before) = one_big_commit(2000).await;
        let page = 4096 + 24;
        let len = std::fs::metadata(&wal).unwrap().len();
        assert!(
            len > 2 * checkpoint::WAL_PAGES as u64 * page,
            "WAL of {len} bytes"
        );
        let sequence = wal_sequence(&wal);
        let waited = std::time::Instant::now();
        while db.checkpoints() == before {
            assert!(
                waited.elapsed() < Duration::from_secs(10),
                "no checkpoint ran"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Everything is in the database now: the next commit writes the WAL from the start
        // (which bumps the sequence number in its header).
        db.write(|c| {
            c.execute("INSERT INTO big VALUES (x'00')", [])?;
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(
            wal_sequence(&wal),
            sequence + 1,
            "the WAL did not start over"
        );
        let rows = db
            .read(|c| Ok(c.query_row("SELECT count(*) FROM big", [], |r| r.get::<_, i64>(0))?))
            .await
            .unwrap();
        assert_eq!(rows, 2001);
    }

    #[tokio::test]
    async fn another_process_s_commit_cannot_come_between_a_transaction_s_read_and_its_write() {
        let (dir, db) = thousand_rows().await;
        let path = dir.path().join("a.db");
        let (total, other) = db
            .transaction(move |tx| {
                let total: i64 = tx.query_row("SELECT sum(n) FROM t", [], |r| r.get(0))?;
                // Another process (Litestream marking its place) tries to commit now.
                let other = Connection::open(&path)?;
                other.busy_timeout(Duration::ZERO)?;
                let other = other.execute("INSERT INTO t VALUES (-1)", []);
                tx.execute("INSERT INTO t VALUES (?1)", [total])?;
                Ok((total, other))
            })
            .await
            .unwrap();
        assert!(
            matches!(&other, Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)),
            "the other commit waits for the transaction: {other:?}"
        );
        let last: i64 = db
            .read(|c| {
                Ok(
                    c.query_row("SELECT n FROM t ORDER BY rowid DESC LIMIT 1", [], |r| {
                        r.get(0)
                    })?,
                )
            })
            .await
            .unwrap();
        assert_eq!(last, total);
    }

    /// A new database `a.db` with a table `t` of 1,000 committed rows.
    async fn thousand_rows() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        db.write(|c| {
            c.execute_batch(
                "CREATE TABLE t (n INTEGER);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
                 INSERT INTO t SELECT i FROM n;",
            )?;
            Ok(())
        })
        .await
        .unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn after_a_full_checkpoint_the_database_file_alone_holds_every_row() {
        let (dir, db) = thousand_rows().await;
        let path = dir.path().join("a.db");
        // A reader in the middle of a read does not keep the WAL from being emptied for long.
        let reading = db.read(|c| {
            let mut stmt = c.prepare("SELECT n FROM t")?;
            let mut rows = stmt.query([])?;
            rows.next()?;
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        });
        let (emptied, read) = tokio::join!(
            async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                db.checkpoint_truncate().await
            },
            reading
        );
        read.unwrap();
        assert!(emptied.unwrap(), "the WAL was emptied");
        assert_eq!(
            std::fs::metadata(path.with_extension("db-wal"))
                .unwrap()
                .len(),
            0
        );
        assert_eq!(copied_row_count(&path), 1000);
    }

    #[tokio::test]
    async fn closing_the_database_leaves_every_row_in_the_database_file() {
        let (dir, db) = thousand_rows().await;
        let path = dir.path().join("a.db");
        // Every reader has been used, as on a server that ran for a while.
        let reads = (0..READERS).map(|_| {
            db.read(|c| {
                std::thread::sleep(Duration::from_millis(20));
                Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?)
            })
        });
        futures::future::try_join_all(reads).await.unwrap();
        drop(db);
        assert_eq!(copied_row_count(&path), 1000);
    }

    /// Copies only the database file (no `-wal`, no `-shm`) and counts the rows of `t` in it.
    fn copied_row_count(path: &Path) -> i64 {
        let elsewhere = tempfile::tempdir().unwrap();
        let copy = elsewhere.path().join("copy.db");
        std::fs::copy(path, &copy).unwrap();
        let conn = Connection::open(&copy).unwrap();
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap_or(0)
    }

    /// The checkpoint sequence number in a WAL file's header (big-endian, bytes 12..16), which
    /// goes up each time the WAL starts over.
    fn wal_sequence(wal: &Path) -> u32 {
        use std::io::Read;
        let mut header = [0; 16];
        std::fs::File::open(wal)
            .unwrap()
            .read_exact(&mut header)
            .unwrap();
        u32::from_be_bytes(header[12..16].try_into().unwrap())
    }

    #[tokio::test]
    async fn writes_are_visible_to_readers_and_the_file_uses_wal() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        db.write(|c| {
            c.execute(
                "INSERT INTO users (id, email, password_hash, created_at, updated_at)
                 VALUES ('u1', 'A@example.com', 'x', 1, 1)",
                [],
            )?;
            Ok(())
        })
        .await
        .unwrap();
        let email: String = db
            .read(|c| {
                Ok(c.query_row(
                    "SELECT email FROM users WHERE email = 'a@EXAMPLE.com'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(email, "A@example.com", "email lookups ignore case");
        let mode: String = db
            .read(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        db.ping().await.unwrap();
    }

    #[tokio::test]
    async fn readers_cannot_write_and_foreign_keys_are_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        let err = db
            .read(|c| Ok(c.execute("DELETE FROM users", [])?))
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("readonly"), "{err:#}");
        let err = db
            .write(|c| {
                Ok(c.execute(
                    "INSERT INTO sessions (id, user_id, token_hash, created_at, last_seen_at, expires_at)
                     VALUES ('s', 'nobody', x'00', 1, 1, 1)",
                    [],
                )?)
            })
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("FOREIGN KEY"), "{err:#}");
    }

    #[tokio::test]
    async fn a_panicking_reader_returns_its_connection_to_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        for _ in 0..READERS {
            let r: anyhow::Result<()> = db.read(|_| panic!("boom")).await;
            assert!(r.is_err());
        }
        db.ping().await.expect("all readers still usable");
    }

    #[tokio::test]
    async fn a_panicking_write_is_an_error_and_rolls_back_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        db.write(|c| Ok(c.execute_batch("CREATE TABLE t (n INTEGER)")?))
            .await
            .unwrap();
        let r: anyhow::Result<()> = db
            .write(|c| {
                let tx = c.transaction()?;
                tx.execute("INSERT INTO t VALUES (1)", [])?;
                panic!("boom")
            })
            .await;
        assert!(r.unwrap_err().to_string().contains("panicked"));
        let n: i64 = db
            .write(|c| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 0, "the panicked transaction was rolled back");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_run_one_at_a_time_in_the_order_asked() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        db.write(|c| Ok(c.execute_batch("CREATE TABLE t (n INTEGER)")?))
            .await
            .unwrap();
        // Queued back to back without waiting: each starts only when the one before ended.
        let pending: Vec<_> = (0..200)
            .map(|n| {
                db.write(move |c| {
                    let before: i64 = c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?;
                    c.execute("INSERT INTO t VALUES (?1)", [n])?;
                    Ok(before)
                })
            })
            .collect();
        let seen = futures::future::try_join_all(pending).await.unwrap();
        assert_eq!(seen, (0..200).collect::<Vec<i64>>());
        // A blocking caller takes its turn between queued writes.
        let db2 = db.clone();
        let n = tokio::task::spawn_blocking(move || {
            db2.write_blocking(|c| c.query_row("SELECT max(n) FROM t", [], |r| r.get::<_, i64>(0)))
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(n, 199);
    }

    /// `EXPLAIN QUERY PLAN` of a statement, one line per step.
    fn plan(conn: &Connection, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Vec<String> {
        conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(args, |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn the_bundled_sqlite_has_full_text_search_with_trigrams() {
        let conn = Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(options.iter().any(|o| o == "ENABLE_FTS5"), "{options:?}");
        conn.execute_batch(
            "CREATE VIRTUAL TABLE t USING fts5 (b, content = '', contentless_delete = 1, tokenize = 'trigram');
             INSERT INTO t (rowid, b) VALUES (1, '今天天气很好');",
        )
        .unwrap();
        let found: i64 = conn
            .query_row(
                "SELECT rowid FROM t WHERE t MATCH '\"天气很\"'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(found, 1);
    }

    #[test]
    fn per_user_queries_seek_the_users_own_rows_and_never_scan_a_shared_table() {
        use audios::{Cursor, ListFilter};
        let mut conn = Connection::open_in_memory().unwrap();
        migrations::apply(&mut conn).unwrap();
        let user = UserId::from(ulid::Ulid::generate());
        let cursor = Cursor {
            created_at: 1,
            id: ulid::Ulid::generate().into(),
        };
        let search = |q: &str| ListFilter {
            q: Some(q.into()),
            ..Default::default()
        };
        let filtered = ListFilter {
            kind: Some(AudioKind::Tts),
            status: Some(AudioStatus::Succeeded),
            q: None,
        };
        let library = [
            ("first page", ListFilter::default(), None),
            ("cursor page", ListFilter::default(), Some(&cursor)),
            ("filtered page", filtered, Some(&cursor)),
            ("search", search("weather"), None),
            ("search, cursor page", search("weather"), Some(&cursor)),
            ("short search", search("天气"), Some(&cursor)),
        ];
        type Args = Vec<Box<dyn rusqlite::ToSql>>;
        let mut queries: Vec<(&str, String, Args)> = library
            .iter()
            .map(|(name, filter, cursor)| {
                let (sql, args) = audios::list_query(user, filter, *cursor, 21);
                (*name, sql, args)
            })
            .collect();
        queries.push((
            "usage per day",
            usage::PER_DAY_USER.into(),
            vec![
                Box::new(user.to_string()),
                Box::new("2026-11-01"),
                Box::new("2026-11-30"),
            ],
        ));
        queries.push((
            "quota sum",
            usage::TTS_CHARS_THIS_MONTH.into(),
            vec![Box::new(user.to_string()), Box::new("2026-11-01")],
        ));
        for (name, sql, args) in &queries {
            let args: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref()).collect();
            let plan = plan(&conn, sql, &args);
            let seeks_user = |step: &String| {
                step.starts_with("SEARCH")
                    && ["audios_user_created", "usage_user_day"]
                        .iter()
                        .any(|index| step.contains(&format!("INDEX {index} (user_id=?")))
            };
            assert!(plan.iter().any(seeks_user), "{name}: {plan:#?}");
            for step in &plan {
                // A scan is allowed only of the search index, and only within a slice.
                if step.starts_with("SCAN") {
                    let fts = step.strip_prefix("SCAN audio_search VIRTUAL TABLE INDEX ");
                    // FTS5's plan: M for a match, < and > for both row id bounds.
                    assert!(
                        fts.is_some_and(|p| ['M', '<', '>'].iter().all(|c| p.contains(*c))),
                        "{name} scans: {plan:#?}"
                    );
                }
            }
            if name.starts_with("search") {
                assert!(
                    plan.iter().any(|s| s.starts_with("SCAN audio_search")),
                    "{name} uses the full-text index: {plan:#?}"
                );
            }
            if name.starts_with("usage") || name.starts_with("quota") {
                assert!(
                    plan.iter()
                        .any(|s| s.contains("COVERING INDEX usage_user_day")),
                    "{name} reads the index alone: {plan:#?}"
                );
            }
            assert!(
                !plan.iter().any(|s| s.contains("TEMP B-TREE")),
                "{name} needs no sort: {plan:#?}"
            );
        }
        // The admin report reads every user's rows, from an index holding all it sums.
        let all = plan(&conn, usage::PER_DAY_ALL, &[&"2026-11-01", &"2026-11-30"]);
        assert!(
            all.iter()
                .any(|s| s.contains("COVERING INDEX usage_day (day>? AND day<?)")),
            "{all:#?}"
        );
        assert!(!all.iter().any(|s| s.contains("TEMP B-TREE")), "{all:#?}");
    }

    #[tokio::test]
    async fn a_transaction_that_decides_to_write_nothing_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        let count = |db: &Db| {
            let db = db.clone();
            async move {
                db.read(|c| {
                    Ok(c.query_row("SELECT count(*) FROM invites", [], |r| r.get::<_, i64>(0))?)
                })
                .await
                .unwrap()
            }
        };
        let insert = |tx: &rusqlite::Transaction<'_>, code: &str| {
            tx.execute(
                "INSERT INTO invites (code, created_by, created_at, expires_at) VALUES (?1, NULL, 0, 1)",
                [code],
            )
        };
        let refused: Result<(), &str> = db
            .try_transaction(move |tx| {
                insert(tx, "a")?;
                Ok(Err("changed its mind"))
            })
            .await
            .unwrap();
        assert_eq!(refused, Err("changed its mind"));
        assert_eq!(count(&db).await, 0, "rolled back");
        let kept: Result<u8, &str> = db
            .try_transaction(move |tx| {
                insert(tx, "b")?;
                Ok(Ok(7))
            })
            .await
            .unwrap();
        assert_eq!(kept, Ok(7));
        assert_eq!(count(&db).await, 1, "committed");
        // The writer is usable afterwards: nothing was left open.
        db.transaction(move |tx| Ok(insert(tx, "c")?))
            .await
            .unwrap();
        assert_eq!(count(&db).await, 2);
    }

    #[test]
    fn ids_made_in_the_same_millisecond_sort_in_the_order_made() {
        let made = Ids::default();
        let ids: Vec<ulid::Ulid> = (0..10_000).map(|_| made.next()).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "every id sorts after the one before"
        );
        let strings: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert!(strings.windows(2).all(|w| w[0] < w[1]), "as text too");
    }

    #[test]
    fn every_clone_of_a_database_takes_ids_from_one_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        let other = db.clone();
        let ids: Vec<ulid::Ulid> = (0..5_000)
            .flat_map(|_| [db.new_id(), other.new_id()])
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids from two handles interleave in the order they were made"
        );
    }
}
