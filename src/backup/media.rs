//! The media half of a backup: audio objects copied into a content-addressed area of the
//! target that every backup set shares, restored when missing, collected when unreferenced.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use super::manifest::MediaEntry;
use super::snapshot::sha256_hex;
use crate::storage::{Key, Storage, StorageError, keys};

/// Objects copied at once: enough to hide S3 latency, few enough for a small VPS.
const CONCURRENCY: usize = 8;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CopyStats {
    /// Blobs written to the target by this backup.
    pub copied: u64,
    pub bytes_copied: u64,
    /// Objects whose bytes the target already held.
    pub reused: u64,
}

/// The sha256 names of the blobs a target holds.
pub async fn blobs_in(target: &Storage) -> Result<HashSet<String>, StorageError> {
    Ok(target
        .list(&keys::backup_media_prefix())
        .await?
        .into_iter()
        .filter_map(|o| o.key.as_str().rsplit('/').next().map(str::to_string))
        .filter(|name| name.len() == 64)
        .collect())
}

/// Copies the main store's media into the target, skipping bytes it already holds.
/// `known` is the previous good manifest's media, whose checksums are trusted for objects
/// that kept their key, size and modification time. Also returns the blobs this copy wrote.
pub async fn copy(
    main: &Storage,
    target: &Storage,
    known: &[MediaEntry],
) -> anyhow::Result<(Vec<MediaEntry>, CopyStats, HashSet<String>)> {
    let objects = list_media(main).await?;
    let known: HashMap<&str, &MediaEntry> = known.iter().map(|m| (m.key.as_str(), m)).collect();
    let held_before = blobs_in(target).await?;
    let held = Arc::new(Mutex::new(held_before.clone()));
    let stats = Arc::new(Mutex::new(CopyStats::default()));

    let entries: Vec<Option<MediaEntry>> = futures::stream::iter(objects)
        .map(|obj| {
            let modified_ms = (obj.last_modified.unix_timestamp_nanos() / 1_000_000) as i64;
            let trusted = known.get(obj.key.as_str()).copied().filter(|k| {
                k.size_bytes == obj.size
                    && k.modified_ms == modified_ms
                    && held
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .contains(&k.sha256)
            });
            let (held, stats) = (held.clone(), stats.clone());
            async move {
                if let Some(entry) = trusted {
                    stats.lock().unwrap_or_else(|e| e.into_inner()).reused += 1;
                    return Ok::<_, anyhow::Error>(Some(entry.clone()));
                }
                let bytes = match main.get(&obj.key).await {
                    Ok(b) => b,
                    // Deleted since the listing: the snapshot may still name it, nothing to copy.
                    Err(StorageError::NotFound(_)) => {
                        tracing::warn!(key = %obj.key, "media object vanished during backup");
                        return Ok(None);
                    }
                    Err(e) => return Err(e.into()),
                };
                let sha256 = sha256_hex(&bytes);
                let size_bytes = bytes.len() as u64;
                let is_new = !held
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(&sha256);
                if is_new {
                    target.put(&keys::backup_media(&sha256), bytes).await?;
                    held.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(sha256.clone());
                }
                let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
                if is_new {
                    s.copied += 1;
                    s.bytes_copied += size_bytes;
                } else {
                    s.reused += 1;
                }
                Ok(Some(MediaEntry {
                    key: obj.key.as_str().to_string(),
                    size_bytes,
                    sha256,
                    modified_ms,
                }))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    let mut entries: Vec<MediaEntry> = entries.into_iter().flatten().collect();
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    let stats = *stats.lock().unwrap_or_else(|e| e.into_inner());
    let held = held.lock().unwrap_or_else(|e| e.into_inner());
    let written = held.difference(&held_before).cloned().collect();
    Ok((entries, stats, written))
}

/// What reading a set's blobs back from the target found.
#[derive(Debug, Default)]
pub struct BlobCheck {
    /// Distinct blobs read back and hashed.
    pub hashed: u64,
    /// Entries whose blob the target does not hold.
    pub absent: Vec<MediaEntry>,
    /// Entries whose blob's bytes do not match its name (the sha256) and size, with what
    /// was found instead.
    pub corrupt: Vec<(MediaEntry, String)>,
}

impl BlobCheck {
    /// What is wrong, naming the first bad blob; None when every blob checked out.
    pub fn problem(&self, total: usize) -> Option<String> {
        if let Some((entry, found)) = self.corrupt.first() {
            return Some(format!(
                "media blob {} (holding {}) is corrupted: {found}{}",
                keys::backup_media(&entry.sha256),
                entry.key,
                others(self.corrupt.len() + self.absent.len(), total)
            ));
        }
        self.absent.first().map(|entry| {
            format!(
                "media blob {} (holding {}) is missing from the target{}",
                keys::backup_media(&entry.sha256),
                entry.key,
                others(self.absent.len(), total)
            )
        })
    }
}

fn others(bad: usize, total: usize) -> String {
    if bad > 1 {
        format!(" ({bad} of {total} media objects are bad)")
    } else {
        String::new()
    }
}

/// Reads back from the target the blob of each entry `wanted` keeps, hashing it as it
/// streams, and compares it with its name and recorded size. Each distinct blob is read once.
pub async fn check_blobs(
    target: &Storage,
    entries: &[MediaEntry],
    wanted: impl Fn(&MediaEntry) -> bool,
) -> Result<BlobCheck, StorageError> {
    let mut distinct: HashMap<&str, &MediaEntry> = HashMap::new();
    for entry in entries.iter().filter(|e| wanted(e)) {
        distinct.entry(entry.sha256.as_str()).or_insert(entry);
    }
    let distinct: Vec<MediaEntry> = distinct.into_values().cloned().collect();
    let found: Vec<(MediaEntry, Option<(u64, String)>)> = futures::stream::iter(distinct)
        .map(|entry| async move {
            let mut stream = match target
                .stream(&keys::backup_media(&entry.sha256), None)
                .await
            {
                Ok(s) => s,
                Err(StorageError::NotFound(_)) => return Ok((entry, None)),
                Err(e) => return Err(e),
            };
            let mut hasher = Sha256::new();
            let mut len = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                len += chunk.len() as u64;
                hasher.update(&chunk);
            }
            Ok((entry, Some((len, hex::encode(hasher.finalize())))))
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    let mut check = BlobCheck::default();
    for (entry, found) in found {
        match found {
            None => check.absent.push(entry),
            Some((len, sha)) => {
                check.hashed += 1;
                if sha != entry.sha256 {
                    check
                        .corrupt
                        .push((entry, format!("its bytes hash to {sha}")));
                } else if len != entry.size_bytes {
                    let size = entry.size_bytes;
                    check.corrupt.push((
                        entry,
                        format!("it holds {len} bytes, the manifest says {size}"),
                    ));
                }
            }
        }
    }
    // Reported in key order, so the blob named first is the same on every run.
    check.absent.sort_by(|a, b| a.key.cmp(&b.key));
    check.corrupt.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    Ok(check)
}

/// Every media object of the main store (see [`keys::media_prefixes`]).
async fn list_media(main: &Storage) -> Result<Vec<crate::storage::ObjectInfo>, StorageError> {
    let mut all = Vec::new();
    for prefix in keys::media_prefixes() {
        all.extend(main.list(&prefix).await?);
    }
    Ok(all)
}

/// The entries whose object the main store no longer has.
pub async fn missing_from_main(
    main: &Storage,
    entries: &[MediaEntry],
) -> Result<Vec<MediaEntry>, StorageError> {
    let present: HashSet<String> = list_media(main)
        .await?
        .into_iter()
        .map(|o| o.key.as_str().to_string())
        .collect();
    Ok(entries
        .iter()
        .filter(|e| !present.contains(&e.key))
        .cloned()
        .collect())
}

/// Puts each entry's blob back under its key in the main store, checking its checksum.
pub async fn restore(
    main: &Storage,
    target: &Storage,
    entries: &[MediaEntry],
) -> anyhow::Result<u64> {
    futures::stream::iter(entries)
        .map(|entry| async move {
            let bytes = target.get(&keys::backup_media(&entry.sha256)).await?;
            anyhow::ensure!(
                sha256_hex(&bytes) == entry.sha256,
                "media blob {} in the backup target is corrupted",
                entry.sha256
            );
            main.put(&Key::from_stored(entry.key.clone()), bytes)
                .await?;
            Ok(1u64)
        })
        .buffer_unordered(CONCURRENCY)
        .try_fold(0, |n, one| async move { Ok(n + one) })
        .await
}

/// Deletes blobs no kept manifest refers to; returns how many went.
pub async fn collect_garbage(
    target: &Storage,
    referenced: &HashSet<String>,
) -> Result<u64, StorageError> {
    let mut removed = 0;
    for sha in blobs_in(target).await? {
        if !referenced.contains(&sha) {
            target.delete(&keys::backup_media(&sha)).await?;
            removed += 1;
        }
    }
    Ok(removed)
}
