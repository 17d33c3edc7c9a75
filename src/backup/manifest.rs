//! What a backup set records about itself: the manifest (written last), the failure record,
//! and the outcome of its latest verification.

use serde::{Deserialize, Serialize};

/// Bumped when the layout of a set changes in a way an older aimake cannot read.
pub const FORMAT_VERSION: u32 = 1;

/// Written last: a set without it is incomplete and never used.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The zstd-compressed SQLite snapshot.
pub const SNAPSHOT_FILE: &str = "db.sqlite.zst";
/// Left in place of a manifest when a backup failed, so the failure shows in the list.
pub const FAILURE_FILE: &str = "failure.json";
/// The latest verification of a good set, replaced by each one. Kept in the target beside
/// the set, so the CLI and the server see the same result for any kind of target.
pub const VERIFICATION_FILE: &str = "verification.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// From the CLI or the admin API; kept until deleted.
    Manual,
    /// From `backup.schedule`; pruned after `backup.keep_days`.
    Scheduled,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Manual => "manual",
            Self::Scheduled => "scheduled",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub name: String,
    pub app_version: String,
    /// `PRAGMA user_version` of the snapshot: a restore refuses one newer than the binary.
    pub schema_version: u32,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub created_at_ms: i64,
    pub trigger: Trigger,
    pub db: DbEntry,
    pub media: Vec<MediaEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DbEntry {
    pub file: String,
    pub compression: String,
    /// The SQLite file itself.
    pub size_bytes: u64,
    pub sha256: String,
    /// The compressed object in the target, checked before it is even decompressed.
    pub stored_bytes: u64,
    pub stored_sha256: String,
}

/// One media object of the main store and the content-addressed blob that holds its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaEntry {
    pub key: String,
    pub size_bytes: u64,
    pub sha256: String,
    /// Last-modified time in the main store: with the key and size, lets the next backup
    /// trust this checksum instead of downloading the object again.
    pub modified_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailureRecord {
    pub format: u32,
    pub name: String,
    pub app_version: String,
    pub created_at: String,
    pub created_at_ms: i64,
    pub trigger: Trigger,
    pub error: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyResult {
    Ok,
    Corrupt,
}

/// The outcome of the latest verification of a set: by `aimake backup verify`, a restore
/// (dry run or not), or the backup run itself right after writing the set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verification {
    pub format: u32,
    /// RFC 3339, UTC.
    pub verified_at: String,
    pub verified_at_ms: i64,
    pub result: VerifyResult,
    /// Why the set is corrupt, naming the snapshot or the first bad media blob.
    pub reason: Option<String>,
    /// Media blobs read back and hashed. The check after a backup hashes the blobs that run
    /// wrote and lists the rest; `backup verify` and restore hash every blob.
    pub media_hashed: u64,
    pub media_total: u64,
}
