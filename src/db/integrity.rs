//! The start-up integrity check: `PRAGMA quick_check` on a connection of its own, so a server
//! never reports ready on a damaged database.
//!
//! The check reads every page, so on a large database it takes seconds: it runs on a thread
//! of its own while the server starts, and readiness waits for it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, InterruptHandle, OpenFlags};
use tokio::sync::watch;

/// Problems listed in the message; the first few say enough to decide to restore.
const PROBLEMS_SHOWN: u32 = 5;

/// What the check has found so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    Checking,
    Ok,
    /// What is wrong, and the command that restores the newest good backup.
    Damaged(Arc<str>),
}

/// A running (or finished) check; interrupted when dropped.
pub struct IntegrityCheck {
    status: watch::Receiver<Integrity>,
    interrupt: InterruptHandle,
}

impl IntegrityCheck {
    /// Starts checking the database at `path` on a new thread.
    pub fn start(path: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open database {}", path.display()))?;
        let interrupt = conn.get_interrupt_handle();
        let (report, status) = watch::channel(Integrity::Checking);
        let path = path.to_path_buf();
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name("db-integrity".into())
            .spawn(move || {
                let _enter = span.enter();
                let found = match quick_check(&conn) {
                    Ok(problems) if problems.is_empty() => Integrity::Ok,
                    Ok(problems) => Integrity::Damaged(damaged(&path, &problems.join("; "))),
                    // Interrupted: the server is stopping, there is no one left to tell.
                    Err(e)
                        if e.sqlite_error_code()
                            == Some(rusqlite::ErrorCode::OperationInterrupted) =>
                    {
                        return;
                    }
                    // A page so damaged the check itself cannot read it.
                    Err(e) => Integrity::Damaged(damaged(&path, &e.to_string())),
                };
                let _ = report.send(found);
            })?;
        Ok(Self { status, interrupt })
    }

    pub fn status(&self) -> Integrity {
        self.status.borrow().clone()
    }

    /// The result, or `Checking` if it takes longer than `within`.
    pub async fn settled(&self, within: Duration) -> Integrity {
        let mut status = self.status.clone();
        let finished = status.wait_for(|s| *s != Integrity::Checking);
        match tokio::time::timeout(within, finished).await {
            Ok(Ok(found)) => found.clone(),
            _ => Integrity::Checking,
        }
    }

    /// The result, whenever it comes; `Checking` if the check was stopped first.
    pub async fn finished(&self) -> Integrity {
        let mut status = self.status.clone();
        match status.wait_for(|s| *s != Integrity::Checking).await {
            Ok(found) => found.clone(),
            Err(_) => Integrity::Checking,
        }
    }

    /// Stops a check still running, so its read transaction does not hold the WAL.
    pub fn stop(&self) {
        self.interrupt.interrupt();
    }
}

impl Drop for IntegrityCheck {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `PRAGMA quick_check`'s findings; empty when it says `ok`.
fn quick_check(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA quick_check({PROBLEMS_SHOWN})"))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if rows == ["ok"] {
        return Ok(Vec::new());
    }
    // A row can hold several lines, under a `*** in database main ***` heading.
    let lines: Vec<String> = rows
        .iter()
        .flat_map(|row| row.lines())
        .filter(|line| !line.starts_with("***") && !line.trim().is_empty())
        .map(str::to_string)
        .collect();
    Ok(if lines.is_empty() { rows } else { lines })
}

/// `e`, or when SQLite found the file damaged while opening or migrating it, the same advice
/// the check gives.
pub fn explain(path: &Path, e: anyhow::Error) -> anyhow::Error {
    let is_damage = e.chain().any(|cause| {
        matches!(
            cause
                .downcast_ref::<rusqlite::Error>()
                .and_then(rusqlite::Error::sqlite_error_code),
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
        )
    });
    if is_damage {
        anyhow::anyhow!("{}", damaged(path, &format!("{e:#}")))
    } else {
        e
    }
}

/// What the readiness check, which anyone may call, says of a damaged database: the advice
/// without the file's path or the problems found, which only the log carries.
pub const DAMAGED_PUBLIC: &str = "the database is damaged: stop aimake and restore the newest \
     good backup with `aimake restore latest` (the log names the file and the problems)";

fn damaged(path: &Path, problems: &str) -> Arc<str> {
    format!(
        "the database {} is damaged ({problems}): stop aimake and restore the newest good \
         backup with `aimake restore latest` (the damaged file is kept beside it)",
        path.display()
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_healthy_database_passes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        drop(super::super::Db::open(&path).unwrap());
        let check = IntegrityCheck::start(&path).unwrap();
        assert_eq!(check.finished().await, Integrity::Ok);
        assert_eq!(check.status(), Integrity::Ok);
    }

    #[tokio::test]
    async fn a_damaged_page_fails_with_the_restore_command() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let page = fill_and_find_leaf(&path);
        damage_page(&path, page);
        let check = IntegrityCheck::start(&path).unwrap();
        match check.finished().await {
            Integrity::Damaged(message) => {
                assert!(message.contains("aimake restore latest"), "{message}");
                assert!(message.contains("a.db"), "{message}");
            }
            other => panic!("a damaged page passed: {other:?}"),
        }
    }

    #[test]
    fn a_file_that_is_not_a_database_is_explained_with_the_restore_command() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        std::fs::write(&path, [0x42u8; 8192]).unwrap();
        let e = match super::super::Db::open(&path) {
            Ok(_) => panic!("garbage opened as a database"),
            Err(e) => e,
        };
        assert!(format!("{e:#}").contains("aimake restore latest"), "{e:#}");
    }

    /// Creates a database with a table of several full pages; returns one leaf page's number.
    fn fill_and_find_leaf(path: &Path) -> i64 {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL) STRICT;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
             INSERT INTO t (body) SELECT printf('row %d of a table that fills pages', i) FROM n;",
        )
        .unwrap();
        conn.query_row(
            "SELECT pageno FROM dbstat WHERE name = 't' AND pagetype = 'leaf' LIMIT 1 OFFSET 2",
            [],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// Writes garbage over the middle of page `page` (1-based), as a failing disk might.
    fn damage_page(path: &Path, page: i64) {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        let size = 4096;
        file.seek(SeekFrom::Start((page as u64 - 1) * size + size / 2 - 256))
            .unwrap();
        file.write_all(&[0xff; 512]).unwrap();
        file.sync_all().unwrap();
    }
}
