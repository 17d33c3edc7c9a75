//! `aimake user …`: account administration on the database directly, with or without a
//! running server (SQLite in WAL mode lets both work on it at once).

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};

use crate::auth::{Auth, NewAccount, Role, UserSummary};
use crate::config::Config;
use crate::db::Db;
use crate::error::AppError;

/// Where a new password comes from.
#[derive(Debug, Clone, Copy)]
pub enum PasswordFrom {
    /// Asked twice on the terminal, without echo.
    Prompt,
    /// The first line of standard input: for scripts.
    Stdin,
}

fn open(config: &Config) -> anyhow::Result<Auth> {
    let db = Db::open(&config.data.dir.join("aimake.db"))?;
    Ok(Auth::new(db, config))
}

fn read_password(from: PasswordFrom) -> anyhow::Result<String> {
    match from {
        PasswordFrom::Stdin => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            let password = line.trim_end_matches(['\n', '\r']).to_string();
            if password.is_empty() {
                bail!("no password on standard input");
            }
            Ok(password)
        }
        PasswordFrom::Prompt => {
            if !std::io::stdin().is_terminal() {
                bail!("standard input is not a terminal: pass the password with --password-stdin");
            }
            let first = rpassword::prompt_password("Password: ")?;
            let again = rpassword::prompt_password("Password again: ")?;
            if first != again {
                bail!("the passwords do not match");
            }
            Ok(first)
        }
    }
}

/// `AppError`s carry user-facing messages; field details say which input was wrong.
fn explain(e: AppError) -> anyhow::Error {
    match e {
        AppError::Internal(e) => e,
        AppError::NotFound => anyhow::anyhow!("no user with this email"),
        other => anyhow::anyhow!("{other}"),
    }
}

fn describe(u: &UserSummary) -> String {
    format!(
        "{} {} ({}{})",
        u.id,
        u.email,
        u.role.as_str(),
        if u.disabled { ", disabled" } else { "" }
    )
}

pub async fn add(
    config: &Config,
    email: &str,
    admin: bool,
    name: Option<String>,
    from: PasswordFrom,
) -> anyhow::Result<()> {
    let auth = open(config)?;
    let password = read_password(from)?;
    let role = if admin { Role::Admin } else { Role::User };
    let user = auth
        .add_user(
            NewAccount {
                email: email.to_string(),
                password,
                display_name: name,
            },
            role,
        )
        .await
        .map_err(explain)?;
    println!("created {}", describe(&user));
    Ok(())
}

pub async fn list(config: &Config) -> anyhow::Result<()> {
    let auth = open(config)?;
    let users = auth.all_users().await.map_err(explain)?;
    println!(
        "{:<26}  {:<6}  {:<8}  {:<20}  EMAIL",
        "ID", "ROLE", "STATUS", "CREATED"
    );
    for u in &users {
        println!(
            "{:<26}  {:<6}  {:<8}  {:<20}  {}",
            u.id,
            u.role.as_str(),
            if u.disabled { "disabled" } else { "active" },
            u.created_at.get(..19).unwrap_or(&u.created_at),
            u.email
        );
    }
    if users.is_empty() {
        eprintln!("no users yet: `aimake user add EMAIL --admin` creates the first admin");
    }
    Ok(())
}

/// Sets a new password and signs the user out everywhere.
pub async fn passwd(config: &Config, email: &str, from: PasswordFrom) -> anyhow::Result<()> {
    let auth = open(config)?;
    let password = read_password(from)?;
    let user = auth
        .reset_password(email, password)
        .await
        .map_err(explain)?;
    println!(
        "password changed for {}; their sessions were signed out",
        describe(&user)
    );
    Ok(())
}

/// Disabling takes effect on the running server at its next request.
pub async fn set_disabled(config: &Config, email: &str, disabled: bool) -> anyhow::Result<()> {
    let auth = open(config)?;
    let user = auth
        .set_disabled_by_email(email, disabled)
        .await
        .map_err(explain)?;
    println!(
        "{} {}",
        if disabled { "disabled" } else { "enabled" },
        describe(&user)
    );
    Ok(())
}
