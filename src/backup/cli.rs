//! Bodies of `aimake backup …` and `aimake restore`: call the service, print for people.

use std::io::{BufRead, IsTerminal, Write};

use super::{BackupError, Backups, RestoreOptions, RestorePlan, Status, Trigger, VerifyResult};
use crate::config::Config;
use crate::storage::Storage;

fn service(config: &Config) -> anyhow::Result<Backups> {
    Backups::from_config(config, Storage::from_config(config)?, None)
}

/// `aimake backup`: prints the new backup's name on stdout, details on stderr.
pub async fn run(config: &Config) -> anyhow::Result<()> {
    let backups = service(config)?;
    let report = backups.run_checked(Trigger::Manual).await?;
    eprintln!(
        "backed up {} ({} compressed) and {} media objects ({} new, {}) to {}",
        human_bytes(report.info.db_size_bytes),
        human_bytes(report.info.size_bytes),
        report.info.media_count,
        report.media.copied,
        human_bytes(report.media.bytes_copied),
        backups.target_label()
    );
    if report.info.verification.is_some() {
        eprintln!("read back and verified what was written");
    }
    println!("{}", report.info.name);
    Ok(())
}

pub async fn list(config: &Config) -> anyhow::Result<()> {
    let backups = service(config)?;
    let items = backups.list().await?;
    if items.is_empty() {
        eprintln!("no backups in {}", backups.target_label());
        return Ok(());
    }
    println!(
        "{:<28} {:<20} {:<9} {:>9} {:>6}  {:<20} STATUS",
        "NAME", "CREATED (UTC)", "TRIGGER", "SIZE", "MEDIA", "VERIFIED (UTC)"
    );
    let utc = |rfc3339: &str| rfc3339.trim_end_matches('Z').replace('T', " ");
    for b in items {
        let verified = match (&b.status, &b.verification) {
            (Status::Failed, _) => "-".to_string(),
            (Status::Ok, None) => "never".to_string(),
            (Status::Ok, Some(v)) => utc(&v.verified_at),
        };
        let status = match (b.status, &b.error, &b.verification) {
            (Status::Failed, Some(e), _) => format!("failed: {e}"),
            (Status::Failed, None, _) => "failed".to_string(),
            (Status::Ok, _, Some(v)) if v.result == VerifyResult::Corrupt => format!(
                "corrupt: {}",
                v.reason.as_deref().unwrap_or("unknown reason")
            ),
            (Status::Ok, _, _) => "ok".to_string(),
        };
        println!(
            "{:<28} {:<20} {:<9} {:>9} {:>6}  {verified:<20} {status}",
            b.name,
            utc(&b.created_at),
            b.trigger.to_string(),
            human_bytes(b.size_bytes),
            b.media_count,
        );
    }
    Ok(())
}

pub async fn verify(config: &Config, name: &str) -> anyhow::Result<()> {
    let r = service(config)?.verify(name).await?;
    println!(
        "{}: ok (checksums match, integrity check passed, schema version {}, {} database, {} media blobs read back and hashed)",
        r.name,
        r.schema_version,
        human_bytes(r.db_size_bytes),
        r.media_checked
    );
    Ok(())
}

pub async fn prune(config: &Config) -> anyhow::Result<()> {
    let r = service(config)?.prune(None).await?;
    for name in &r.deleted {
        println!("deleted {name}");
    }
    for name in &r.incomplete {
        println!("removed incomplete {name}");
    }
    println!(
        "pruned {} backups, {} incomplete sets, {} unreferenced media blobs",
        r.deleted.len(),
        r.incomplete.len(),
        r.blobs_removed
    );
    Ok(())
}

pub async fn delete(config: &Config, name: &str) -> anyhow::Result<()> {
    let r = service(config)?.delete(name).await?;
    println!(
        "deleted {name} and {} media blobs no other backup uses",
        r.blobs_removed
    );
    Ok(())
}

pub async fn restore(
    config: &Config,
    which: &str,
    yes: bool,
    dry_run: bool,
    no_media: bool,
) -> anyhow::Result<()> {
    let opts = RestoreOptions {
        dry_run,
        skip_media: no_media,
    };
    let result = super::restore(config, which, opts, |plan| {
        yes || ask(plan).unwrap_or(false)
    })
    .await;
    let report = match result {
        Ok(r) => r,
        Err(BackupError::Cancelled) if !yes && !std::io::stdin().is_terminal() => {
            anyhow::bail!("not confirmed: run again with --yes to restore without a prompt")
        }
        Err(e) => return Err(e.into()),
    };
    let p = &report.plan;
    let verb = if report.restored { "" } else { "would " };
    println!(
        "{} verified: created {}, schema version {}, {} database, {} media objects",
        p.name,
        p.created_at,
        p.schema_version,
        human_bytes(p.db_size_bytes),
        p.media_total
    );
    match &p.keep_as {
        Some(k) => println!("{verb}keep the current database as {}", k.display()),
        None => println!("there was no current database at {}", p.live_db.display()),
    }
    println!("{verb}restore the database to {}", p.live_db.display());
    if no_media {
        println!("media left as it is (--no-media)");
    } else if report.restored {
        println!(
            "restored {} media objects missing from the store",
            report.media_restored
        );
    } else {
        println!(
            "would restore {} media objects missing from the store",
            p.media_missing
        );
    }
    if !report.restored {
        println!("dry run: nothing was changed");
    }
    Ok(())
}

/// Asks on the terminal; never blocks a script (no terminal: not confirmed).
fn ask(plan: &RestorePlan) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    let mut err = std::io::stderr();
    writeln!(
        err,
        "Restore {} (created {}) over {}?",
        plan.name,
        plan.created_at,
        plan.live_db.display()
    )?;
    if let Some(k) = &plan.keep_as {
        writeln!(err, "The current database will be kept as {}.", k.display())?;
    }
    write!(err, "Type yes to continue: ")?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().eq_ignore_ascii_case("yes"))
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_like_a_person_would_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GB");
    }
}
