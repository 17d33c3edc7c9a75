//! Command-line entry point: parse, set up logging, dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use aimake::config::{Config, LogFormat};
use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "aimake",
    version,
    about = "Self-hosted AI audio studio in one binary"
)]
struct Cli {
    /// Config file (default: $AIMAKE_CONFIG, else ./aimake.toml when present)
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Log format (default: pretty on a terminal, json otherwise)
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Pretty,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: web app, API, job workers and scheduler
    Serve {
        /// Serve HTTPS for this domain with a certificate obtained and renewed over ACME (Let's
        /// Encrypt unless server.acme.directory says otherwise); repeat for more names. Adds to
        /// server.domains
        #[arg(long = "domain", value_name = "NAME")]
        domains: Vec<String>,
    },
    /// Apply pending database migrations and exit
    Migrate,
    /// Inspect the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Exit 0 when the running server answers /health/ready with 200
    Healthcheck {
        /// Readiness URL (default: derived from server.bind)
        #[arg(long)]
        url: Option<String>,
    },
    /// Manage accounts (works offline, on the same database)
    #[command(subcommand)]
    User(UserCommand),
    /// Back up the database and media now and print the backup's name; or manage backups
    Backup {
        #[command(subcommand)]
        command: Option<BackupCommand>,
    },
    /// Restore a backup into data.dir (the server must be stopped)
    Restore {
        /// A backup name from `aimake backup list`, or `latest`
        name: String,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
        /// Download and verify the backup and say what would change, without changing anything
        #[arg(long)]
        dry_run: bool,
        /// Restore the database only, not the media objects missing from the store
        #[arg(long)]
        no_media: bool,
    },
    /// Neural voice and Whisper models: list, pull, remove, import (docs/neural.md)
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Alert notifiers: send a test notification
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Speak a sentence with each voice engine on this machine, hear it with Whisper and print
    /// the word error rate per voice; exits 1 if any voice fails
    Selftest,
    /// Print the version
    Version,
}

#[derive(Subcommand)]
enum AlertsCommand {
    /// Send a test notification to one notifier, or to every notifier; exits 1 if any fails
    Test {
        /// A name from alerts.notifiers (default: all)
        name: Option<String>,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// List the models aimake can install and which are installed
    List,
    /// Download, verify and install a model: runtime, kokoro, piper:<voice> or whisper:<variant>
    Pull { name: String },
    /// Delete a model's installed files (an imported Whisper model's too)
    Remove { name: String },
    /// Install model files copied from elsewhere: a directory of official files (recognised by
    /// their sha256), or one file, official or a Whisper model of your own in ggml format
    Import {
        /// A directory, or one file
        path: PathBuf,
        /// The name of a Whisper model of your own (default: the file's name without
        /// `ggml-` and `.bin`); it is then `whisper:<name>`
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account (the password is asked for, or read with --password-stdin)
    Add {
        email: String,
        /// Make the account an admin
        #[arg(long)]
        admin: bool,
        /// Display name
        #[arg(long)]
        name: Option<String>,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// List every account
    List,
    /// Set a new password; the user is signed out everywhere
    Passwd {
        email: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account: its sessions and API tokens stop working at once
    Disable { email: String },
    /// Enable a disabled account again
    Enable { email: String },
}

fn password_from(stdin: bool) -> aimake::commands::user::PasswordFrom {
    if stdin {
        aimake::commands::user::PasswordFrom::Stdin
    } else {
        aimake::commands::user::PasswordFrom::Prompt
    }
}

#[derive(Subcommand)]
enum BackupCommand {
    /// List backups: name, time, trigger, size, media count, status
    List,
    /// Check a backup's checksums, database integrity and media
    Verify {
        /// A backup name, or `latest`
        name: String,
    },
    /// Apply retention (backup.keep_days) and remove unreferenced media now
    Prune,
    /// Delete one backup
    Delete { name: String },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the config and print the effective values, secrets redacted
    Check,
}

fn main() -> ExitCode {
    // Before any command creates a file: the data dir and all in it are owner-only.
    aimake::filemodes::restrict_umask();
    let cli = Cli::parse();
    if let Command::Version = cli.command {
        println!("{}", aimake::commands::version());
        return ExitCode::SUCCESS;
    }
    let loaded = match Config::load(cli.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let mut config = loaded.config;
    let mut warnings = loaded.warnings;
    if let Command::Serve { domains } = &cli.command
        && !domains.is_empty()
    {
        let before = config.conflicts();
        config.server.domains.extend(domains.iter().cloned());
        config.server.domains.dedup();
        if let Err(e) = config.validate() {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
        warnings.retain(|w| !before.contains(w));
        warnings.extend(config.conflicts());
    }
    if let Command::Config(ConfigCommand::Check) = cli.command {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        match &loaded.source {
            Some(p) => eprintln!("config OK (file {}, then environment)", p.display()),
            None => eprintln!("config OK (defaults, then environment; no config file)"),
        }
        print!("{}", config.to_redacted_toml());
        return ExitCode::SUCCESS;
    }

    let format = cli.log_format.map(|f| match f {
        LogFormatArg::Pretty => LogFormat::Pretty,
        LogFormatArg::Json => LogFormat::Json,
    });
    // Held to the end of main: dropping it writes out the buffered lines.
    let _log = aimake::telemetry::init(format.or(config.log.format), &config.log.level);
    for w in &warnings {
        tracing::warn!("{w}");
    }

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve { .. } => runtime.block_on(aimake::commands::serve(config)),
        Command::Migrate => aimake::commands::migrate(&config),
        Command::User(cmd) => {
            use aimake::commands::user;
            runtime.block_on(async {
                match cmd {
                    UserCommand::Add {
                        email,
                        admin,
                        name,
                        password_stdin,
                    } => {
                        user::add(&config, &email, admin, name, password_from(password_stdin)).await
                    }
                    UserCommand::List => user::list(&config).await,
                    UserCommand::Passwd {
                        email,
                        password_stdin,
                    } => user::passwd(&config, &email, password_from(password_stdin)).await,
                    UserCommand::Disable { email } => {
                        user::set_disabled(&config, &email, true).await
                    }
                    UserCommand::Enable { email } => {
                        user::set_disabled(&config, &email, false).await
                    }
                }
            })
        }
        Command::Backup { command } => runtime.block_on(async {
            use aimake::backup::cli;
            match command {
                None => cli::run(&config).await,
                Some(BackupCommand::List) => cli::list(&config).await,
                Some(BackupCommand::Verify { name }) => cli::verify(&config, &name).await,
                Some(BackupCommand::Prune) => cli::prune(&config).await,
                Some(BackupCommand::Delete { name }) => cli::delete(&config, &name).await,
            }
        }),
        Command::Restore {
            name,
            yes,
            dry_run,
            no_media,
        } => runtime.block_on(aimake::backup::cli::restore(
            &config, &name, yes, dry_run, no_media,
        )),
        Command::Models(cmd) => {
            use aimake::commands::models;
            match cmd {
                ModelsCommand::List => models::list(&config),
                ModelsCommand::Pull { name } => runtime.block_on(models::pull(&config, &name)),
                ModelsCommand::Remove { name } => runtime.block_on(models::remove(&config, &name)),
                ModelsCommand::Import { path, name } => {
                    runtime.block_on(models::import(&config, &path, name.as_deref()))
                }
            }
        }
        Command::Alerts(AlertsCommand::Test { name }) => {
            runtime.block_on(aimake::commands::alerts::test(&config, name.as_deref()))
        }
        Command::Selftest => runtime.block_on(aimake::commands::selftest::run(&config)),
        Command::Healthcheck { url } => {
            return runtime.block_on(aimake::commands::healthcheck(&config, url));
        }
        Command::Version | Command::Config(_) => unreachable!("handled above"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "aimake failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
