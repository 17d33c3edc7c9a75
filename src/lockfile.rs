//! Advisory OS file locks in the data dir, so two processes never do the same exclusive work.
//!
//! The lock belongs to the open file: it goes away when the holder drops it or its process
//! dies, so a crash never leaves a stale lock behind (unlike a "pid file exists" check).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Held by a running server for its whole life: restore refuses to run while it is taken.
pub const SERVER_LOCK: &str = "aimake.lock";

/// Held while a backup, prune, delete or restore runs, by the server or the CLI alike.
pub const BACKUP_LOCK: &str = "backup.lock";

/// An exclusive lock on a file; released on drop.
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    _file: File,
}

/// Who holds a lock that could not be taken, for the error message.
#[derive(Debug, Clone)]
pub struct Held {
    pub path: PathBuf,
    /// What the holder wrote into the file (its process id), when readable.
    pub holder: Option<String>,
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.holder {
            Some(h) => write!(f, "{} is held by {h}", self.path.display()),
            None => write!(f, "{} is held by another process", self.path.display()),
        }
    }
}

impl LockFile {
    /// Takes the lock without waiting: `Err(Held)` inside `Ok` when someone else has it.
    pub fn try_acquire(path: &Path) -> anyhow::Result<Result<Self, Held>> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let holder = file
                    .read_to_string(&mut text)
                    .ok()
                    .map(|_| text.trim().to_string())
                    .filter(|t| !t.is_empty());
                return Ok(Err(Held {
                    path: path.to_path_buf(),
                    holder,
                }));
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        // Only a diagnostic: the lock itself is what counts.
        let _ = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "process {}", std::process::id()));
        Ok(Ok(Self {
            path: path.to_path_buf(),
            _file: file,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let first = LockFile::try_acquire(&path).unwrap().expect("free lock");
        let held = LockFile::try_acquire(&path)
            .unwrap()
            .expect_err("taken lock");
        assert!(
            held.to_string()
                .contains(&format!("process {}", std::process::id())),
            "{held}"
        );
        drop(first);
        LockFile::try_acquire(&path)
            .unwrap()
            .expect("released on drop");
    }
}
