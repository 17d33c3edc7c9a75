//! The data directory is private to the account aimake runs as: what it creates is owner-only,
//! and an install made before that is tightened at start.
//!
//! The database holds password hashes, invite codes and every user's text; media and backups
//! hold the rest. None of it is for other local accounts to read.

use std::path::{Path, PathBuf};

/// Group and other permission bits, and set-id/sticky bits: everything beyond the owner's.
#[cfg(unix)]
const LOOSE_BITS: u32 = 0o7077;

/// From now on, everything the process creates is owner-only (files 0600, directories 0700),
/// whatever the inherited umask: the database and its `-wal`/`-shm`, media, backups, secrets
/// and locks alike, including files made by libraries (SQLite, object_store, tempfile).
/// Called first thing by every command.
pub fn restrict_umask() {
    #[cfg(unix)]
    {
        use rustix::fs::Mode;
        rustix::process::umask(Mode::RWXG | Mode::RWXO);
    }
}

/// Writes a file only this account can read (0600), whole or not at all: the bytes go to a
/// temporary file beside it, synced, then renamed over it. For secrets and keys.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// What a pass of [`tighten_data_dir`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tightened {
    /// Files and directories whose group/other permissions were removed.
    pub changed: u64,
    /// Entries that could not be changed (owned by another account, say).
    pub failed: u64,
    /// The first failure, for the log line.
    pub first_error: Option<String>,
}

impl Tightened {
    fn add(&mut self, other: Self) {
        self.changed += other.changed;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// One log line, when there is something to say.
    pub fn log(&self, dir: &Path) {
        if self.failed > 0 {
            tracing::warn!(
                changed = self.changed,
                failed = self.failed,
                error = self.first_error.as_deref().unwrap_or_default(),
                "made {} files and directories in {} private to this account (0600/0700); {} could not be changed",
                self.changed,
                dir.display(),
                self.failed,
            );
        } else if self.changed > 0 {
            tracing::info!(
                changed = self.changed,
                "made {} files and directories in {} private to this account (0600/0700)",
                self.changed,
                dir.display(),
            );
        }
    }
}

/// Makes `dir` (created if missing) and its direct entries owner-only now, and returns the
/// sub-directories still to walk: the media tree can hold hundreds of thousands of files,
/// so [`tighten_trees`] walks them off the start-up path.
pub fn tighten_top(dir: &Path) -> anyhow::Result<(Tightened, Vec<PathBuf>)> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut done = Tightened::default();
    let mut subdirs = Vec::new();
    tighten_path(dir, &mut done);
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        // Never through a symlink: its target may be anything, anywhere.
        match entry.file_type() {
            Ok(t) if t.is_symlink() => continue,
            Ok(t) if t.is_dir() => subdirs.push(path.clone()),
            _ => {}
        }
        tighten_path(&path, &mut done);
    }
    Ok((done, subdirs))
}

/// Makes everything below each of `dirs` owner-only (the directories themselves are done by
/// [`tighten_top`]). Blocking; symlinks are not followed.
pub fn tighten_trees(dirs: &[PathBuf]) -> Tightened {
    let mut done = Tightened::default();
    for dir in dirs {
        for entry in walkdir::WalkDir::new(dir).min_depth(1).into_iter() {
            match entry {
                Ok(entry) if entry.path_is_symlink() => {}
                Ok(entry) => tighten_path(entry.path(), &mut done),
                Err(e) => done.add(Tightened {
                    changed: 0,
                    failed: 1,
                    first_error: Some(e.to_string()),
                }),
            }
        }
    }
    done
}

/// Tightens the data dir: its top level before returning, the trees below it on a blocking
/// thread, then logs one line saying how many entries it changed. Resolves to that count.
pub fn tighten_data_dir(dir: &Path) -> anyhow::Result<tokio::task::JoinHandle<Tightened>> {
    let (top, subdirs) = tighten_top(dir)?;
    let dir = dir.to_path_buf();
    Ok(tokio::task::spawn_blocking(move || {
        let mut done = top;
        done.add(tighten_trees(&subdirs));
        done.log(&dir);
        done
    }))
}

#[cfg(unix)]
fn tighten_path(path: &Path, done: &mut Tightened) {
    use std::os::unix::fs::PermissionsExt;
    let result = std::fs::symlink_metadata(path).and_then(|meta| {
        let mode = meta.permissions().mode();
        if meta.file_type().is_symlink() || mode & LOOSE_BITS == 0 {
            return Ok(false);
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
        Ok(true)
    });
    match result {
        Ok(true) => done.changed += 1,
        Ok(false) => {}
        // Gone since it was listed (a finished temp file): nothing to protect.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            done.failed += 1;
            if done.first_error.is_none() {
                done.first_error = Some(format!("{}: {e}", path.display()));
            }
        }
    }
}

#[cfg(not(unix))]
fn tighten_path(_path: &Path, _done: &mut Tightened) {}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_loose_tree_becomes_owner_only_and_a_second_pass_changes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        let deep = dir.join("media/ab/cd");
        std::fs::create_dir_all(&deep).unwrap();
        for (path, m) in [
            (dir.join("aimake.db"), 0o644),
            (dir.join("server.secret"), 0o600),
            (deep.join("blob"), 0o664),
            (dir.join("tool"), 0o755),
        ] {
            std::fs::write(&path, b"x").unwrap();
            set_mode(&path, m);
        }
        for d in [&dir, &dir.join("media"), &dir.join("media/ab"), &deep] {
            set_mode(d, 0o755);
        }
        // A link to a file outside is left alone, and so is its target.
        let outside = root.path().join("outside");
        std::fs::write(&outside, b"x").unwrap();
        set_mode(&outside, 0o644);
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();

        let (top, subdirs) = tighten_top(&dir).unwrap();
        assert_eq!(top.changed, 4, "data dir, db, tool and media: {top:?}");
        assert_eq!(subdirs, vec![dir.join("media")]);
        let below = tighten_trees(&subdirs);
        assert_eq!(below.changed, 3, "ab, cd and the blob: {below:?}");
        assert_eq!(below.failed, 0);

        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("aimake.db")), 0o600);
        assert_eq!(mode(&dir.join("server.secret")), 0o600);
        assert_eq!(mode(&dir.join("tool")), 0o700);
        assert_eq!(mode(&deep), 0o700);
        assert_eq!(mode(&deep.join("blob")), 0o600);
        assert_eq!(mode(&outside), 0o644, "symlinks are not followed");

        let (again, subdirs) = tighten_top(&dir).unwrap();
        assert_eq!(again.changed + tighten_trees(&subdirs).changed, 0);
    }
}
