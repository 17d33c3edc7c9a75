//! Where backups go, from `backup.target`: the main object store, a directory, or a bucket of
//! its own (`[backup.s3]`), so an off-site copy is one config block away.

use std::path::PathBuf;

use anyhow::bail;

use crate::config::Config;
use crate::storage::Storage;

/// `backup.target`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// `""` or `"main"`: the main object store, under `backups/`.
    Main,
    /// `"dir:/path"`: a local directory (another disk, a mounted NAS).
    Dir(PathBuf),
    /// `"s3"`: the bucket in `[backup.s3]`, with its own endpoint and credentials.
    S3,
}

impl TargetSpec {
    pub fn parse(target: &str) -> anyhow::Result<Self> {
        let target = target.trim();
        if target.is_empty() || target == "main" {
            return Ok(Self::Main);
        }
        if target == "s3" {
            return Ok(Self::S3);
        }
        if let Some(dir) = target.strip_prefix("dir:") {
            if dir.trim().is_empty() {
                bail!("backup.target: `dir:` needs a path, e.g. \"dir:/srv/aimake-backups\"");
            }
            return Ok(Self::Dir(PathBuf::from(dir.trim())));
        }
        bail!(
            "backup.target: `{target}` is not one of \"\" (the main store), \"dir:/path\" or \"s3\" (the [backup.s3] bucket)"
        )
    }
}

/// An opened target.
#[derive(Debug, Clone)]
pub struct Target {
    pub storage: Storage,
    /// For log lines and messages.
    pub label: String,
}

impl Target {
    pub fn from_config(config: &Config, main: &Storage) -> anyhow::Result<Self> {
        Ok(match TargetSpec::parse(&config.backup.target)? {
            TargetSpec::Main => Self {
                storage: main.clone(),
                label: "the main object store (backups/)".into(),
            },
            TargetSpec::Dir(dir) => Self {
                storage: Storage::local(&dir)?,
                label: format!("directory {}", dir.display()),
            },
            TargetSpec::S3 => Self {
                storage: Storage::s3(&config.backup.s3)?,
                label: format!("bucket {} (backup.s3)", config.backup.s3.bucket),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_strings_parse_or_say_what_is_accepted() {
        assert_eq!(TargetSpec::parse("").unwrap(), TargetSpec::Main);
        assert_eq!(TargetSpec::parse("main").unwrap(), TargetSpec::Main);
        assert_eq!(TargetSpec::parse("s3").unwrap(), TargetSpec::S3);
        assert_eq!(
            TargetSpec::parse("dir:/srv/b").unwrap(),
            TargetSpec::Dir("/srv/b".into())
        );
        for bad in ["dir:", "ftp://x", "/srv/b"] {
            let err = TargetSpec::parse(bad).unwrap_err().to_string();
            assert!(err.contains("backup.target"), "{err}");
        }
    }
}
