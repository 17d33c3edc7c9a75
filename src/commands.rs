//! The subcommands' bodies, shared by `main` and tests.

pub mod alerts;
pub mod models;
pub mod selftest;
pub mod user;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::VERSION;
use crate::app::App;
use crate::config::Config;
use crate::db::{Db, migrations};

pub async fn serve(config: Config) -> anyhow::Result<()> {
    if config.server.public_url.is_empty() && config.bind_addr()?.ip().is_unspecified() {
        tracing::info!(
            "server.public_url is not set; links will use http://localhost: set it to the address users open"
        );
    }
    let shutdown = crate::app::shutdown_signal()?;
    let auto_pull = config.models.auto_pull.then(|| config.models.clone());
    let app = App::build(config).await?;
    // The listener is bound: the server answers while the models arrive.
    if let Some(models_config) = auto_pull {
        let models = app.state().models.clone();
        tokio::spawn(async move { models.auto_pull(&models_config).await });
    }
    app.run_until_stopped(shutdown).await
}

/// Applies pending migrations and reports the schema version.
pub fn migrate(config: &Config) -> anyhow::Result<()> {
    let path = config.data.dir.join("aimake.db");
    let db = Db::open(&path)?;
    let version = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(db.schema_version())?;
    println!(
        "{}: schema version {version} (this aimake: {})",
        path.display(),
        migrations::latest_version()
    );
    Ok(())
}

/// Exit 0 when the local server's `/health/ready` answers 200 (Docker's HEALTHCHECK).
pub async fn healthcheck(config: &Config, url: Option<String>) -> ExitCode {
    let url = match url {
        Some(u) => u,
        None => match config.bind_addr() {
            Ok(mut addr) => {
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}/health/ready")
            }
            Err(e) => {
                eprintln!("unhealthy: {e:#}");
                return ExitCode::FAILURE;
            }
        },
    };
    match probe(&url).await {
        Ok(()) => {
            println!("healthy: {url}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unhealthy: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn probe(url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()?;
    let resp = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "{url} answered {status}: {body}");
    Ok(())
}

pub fn version() -> String {
    let web = if crate::http::web_app_embedded() {
        "web app embedded"
    } else {
        "web app NOT embedded"
    };
    format!(
        "aimake {VERSION} (schema {}, {web})",
        migrations::latest_version()
    )
}
