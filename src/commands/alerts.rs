//! `aimake alerts test [NAME]`: a test notification through one configured notifier or all,
//! each one's outcome printed.

use crate::config::Config;
use crate::ops::notify::Notifiers;

/// Prints `NAME (kind): delivered` or the error per notifier; fails when any failed.
pub async fn test(config: &Config, name: Option<&str>) -> anyhow::Result<()> {
    let notifiers = Notifiers::from_config(config)?;
    anyhow::ensure!(
        !notifiers.is_empty(),
        "no notifiers configured: add an [[alerts.notifiers]] table to the config"
    );
    let outcomes = notifiers.test(name, &config.public_url()).await?;
    let mut failed = 0;
    for outcome in &outcomes {
        let kind = outcome.kind.as_str();
        match &outcome.error {
            None => println!("{} ({kind}): delivered", outcome.name),
            Some(error) => {
                failed += 1;
                println!("{} ({kind}): FAILED: {error}", outcome.name);
            }
        }
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} notifiers failed",
        outcomes.len()
    );
    Ok(())
}
