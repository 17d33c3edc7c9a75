//! Where backups go, from `backup.target`: the main object store, a directory, or a bucket of
//! its own (`[backup.s3]`), so an off-site copy is one config block away.

use crate::config::{Config, TargetSpec};
use crate::storage::Storage;

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
