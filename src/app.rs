//! The server's wiring and life: build (open db, storage, listener; register the job
//! handlers; assemble the state), run, drain on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::VERSION;
use crate::auth::Auth;
use crate::backup::Backups;
use crate::config::Config;
use crate::db::Db;
use crate::db::integrity::{Integrity, IntegrityCheck};
use crate::http::HttpState;
use crate::jobs::Jobs;
use crate::links::Links;
use crate::lockfile::{LockFile, SERVER_LOCK};
use crate::models::{Manager, ModelsService};
use crate::ops::alerts::{self, Alerting, Engine, LiveSignals, NotifierSink};
use crate::ops::scheduler::{Clock, Scheduler, SystemClock};
use crate::podcast::llm::ScriptWriter;
use crate::podcast::script::ScriptLimits;
use crate::providers::Providers;
use crate::services::Services;
use crate::signing::Signer;
use crate::state::{AppParts, AppState};
use crate::storage::Storage;

/// How long start-up waits for the database's integrity check. A database of some tens of MB
/// is checked within it, and a damaged one stops the start; a larger one goes on being checked
/// while the server runs, and `/health/ready` answers 503 until the check passes.
const INTEGRITY_WAIT: Duration = Duration::from_millis(50);

pub struct App {
    /// `server.bind`: the application, or with HTTPS on, the redirect to it.
    listener: TcpListener,
    /// `server.tls_bind`'s listener and what it serves with, when HTTPS is on.
    tls: Option<(TcpListener, crate::tls::Tls)>,
    /// `metrics.bind`'s listener, when metrics are on and the address could be taken.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    http: HttpState,
    /// Held while the server lives, so `aimake restore` (and a second server) can tell the
    /// data dir is in use. Released on drop, or by the OS if the process dies.
    _data_lock: LockFile,
}

impl App {
    /// Opens the database (applying migrations), the object store and the listener.
    /// `server.bind` may use port 0; `port()` tells which one was taken.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // Before anything else is opened: the database's -wal and -shm take the file's mode.
        crate::filemodes::tighten_data_dir(&config.data.dir)?;
        let lock_path = config.data.dir.join(SERVER_LOCK);
        let data_lock = tokio::task::spawn_blocking(move || LockFile::try_acquire(&lock_path))
            .await??
            .map_err(|held| {
                anyhow::anyhow!(
                    "data dir {} is in use by another aimake server or a restore ({held})",
                    config.data.dir.display()
                )
            })?;
        let db_path = config.data.dir.join("aimake.db");
        let db = tokio::task::spawn_blocking(move || Db::open(&db_path)).await??;
        let integrity = IntegrityCheck::start(db.path())?;
        match integrity.settled(INTEGRITY_WAIT).await {
            Integrity::Damaged(message) => anyhow::bail!("{message}"),
            Integrity::Checking => tracing::info!(
                "checking the database's integrity in the background; /health/ready answers 503 until it passes"
            ),
            Integrity::Ok => {}
        }
        let storage = Storage::from_config(&config)?;
        let providers = Providers::from_config(&config)?;
        let notifiers = crate::ops::notify::Notifiers::from_config(&config)?;
        let backups = Backups::from_config(&config, storage.clone(), Some(db.clone()))?;
        let models = ModelsService::new(Manager::new(&config)?);
        let addr = config.bind_addr()?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (server.bind)"))?;
        let local = listener.local_addr()?;
        let tls = match crate::tls::Tls::from_config(&config)? {
            Some(tls) => {
                let addr = config
                    .server
                    .tls_bind_addr()?
                    .context("HTTPS is on without an address")?;
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (server.tls_bind)"))?;
                Some((listener, tls))
            }
            None => None,
        };
        let metrics_listener = metrics_listener(&config).await?;
        let public_url: Arc<str> = if !config.server.public_url.is_empty() {
            config.public_url().into()
        } else if let Some((tls_listener, _)) = &tls {
            // As the config derives it, with the port actually taken (it may be 0).
            config
                .server
                .https_origin(tls_listener.local_addr()?)
                .into()
        } else {
            let host = if local.ip().is_unspecified() {
                "localhost".to_string()
            } else {
                local.ip().to_string()
            };
            format!("http://{host}:{}", local.port()).into()
        };
        let auth = Auth::new(db.clone(), &config);
        auth.prepare_setup().await?;
        let signer = Signer::load_or_create(&config.data.dir)?;
        let jobs: Jobs<Services> = Jobs::new(db.clone());
        jobs.register(
            crate::speech::service::TTS_JOB,
            Arc::new(crate::speech::job::TtsJob),
        );
        jobs.register(
            crate::podcast::service::PODCAST_JOB,
            Arc::new(crate::podcast::render::PodcastJob),
        );
        jobs.register(
            crate::transcription::TRANSCRIBE_JOB,
            Arc::new(crate::transcription::job::TranscribeJob),
        );
        let llm = Arc::new(
            ScriptWriter::new(
                &config.llm,
                ScriptLimits {
                    max_chars: config.tts.max_chars,
                },
            )?
            .with_scrubber(crate::providers::Scrubber::from_config(&config)),
        );
        let state = AppState::new(AppParts {
            services: Services {
                config: Arc::new(config),
                db,
                storage,
                jobs: Arc::new(jobs),
                providers,
                auth,
                links: Links::new(public_url, signer),
            },
            backups,
            started: Instant::now(),
            llm,
            integrity,
            models,
            notifiers,
            tls: tls.as_ref().map(|(_, tls)| tls.status()),
        });
        let reports = crate::ops::error_reports::ErrorReports::from_config(&state.config)?;
        let http = HttpState::new(state.clone(), reports);
        Ok(Self {
            listener,
            tls,
            metrics_listener,
            state,
            http,
            _data_lock: data_lock,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where `GET /metrics` is served apart from the app, when it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Where HTTPS is served, when it is.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The HTTP layer's state: the application's, with the rate limiters and refusal counts.
    pub fn http(&self) -> &HttpState {
        &self.http
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish
    /// (up to `server.shutdown_grace_s`) and returns.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let grace = Duration::from_secs(self.state.config.server.shutdown_grace_s);
        let stop = CancellationToken::new();
        let stop_signal = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop_signal.cancel();
        });

        tracing::info!(
            version = VERSION,
            addr = %self.local_addr(),
            tls_addr = self.tls_addr().map(|a| a.to_string()),
            "aimake is ready: open {}",
            self.state.links.public_url()
        );
        let workers = self.state.jobs.spawn_workers(
            self.state.services.clone(),
            self.state.config.jobs.workers,
            stop.child_token(),
        );
        if let Some(token) = self.state.auth.setup_token() {
            // The one secret that is logged on purpose: the operator needs it to create the
            // first admin, and it dies on use.
            tracing::warn!(
                "no admin account yet: open {}/setup?token={token} to create one \
                 (or run `aimake user add EMAIL --admin`)",
                self.state.links.public_url()
            );
        }
        tokio::spawn(self.http.limits.clone().housekeeping(stop.clone()));
        // Build only waited a moment for the check; it may have finished since.
        if self.state.integrity.status() != Integrity::Ok {
            let state = self.state.clone();
            tokio::spawn(async move {
                match state.integrity.finished().await {
                    Integrity::Ok => tracing::info!("the database passed its integrity check"),
                    Integrity::Damaged(message) => tracing::error!("{message}"),
                    Integrity::Checking => {}
                }
            });
        }
        tokio::spawn(self.http.refusals.clone().summarise_until(stop.clone()));
        if let (Some(listener), Some(counters)) = (self.metrics_listener, &self.http.metrics) {
            let app = crate::http::metrics::listener_router(counters.clone());
            let stopped = stop.clone();
            tokio::spawn(async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stopped.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::warn!(error = %e, "the metrics listener stopped");
                }
            });
        }
        if self.http.metrics.is_some() {
            tokio::spawn(sample_until(self.state.clone(), stop.clone()));
        }
        let jobs = scheduled(&self.state, Arc::new(SystemClock))?.spawn(stop.child_token());
        if self.state.config.alerts.enabled {
            tokio::spawn(alerting(&self.state, stop.child_token()).run(
                Duration::from_secs(self.state.config.alerts.evaluate_every_s.max(1)),
                stop.child_token(),
            ));
        }
        let https = self.state.links.is_https();
        let reports = self.http.reports.clone();
        let app = crate::http::router(self.http);
        let server: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = match self.tls {
            None => {
                crate::tls::absorb_hangups(stop.clone());
                Box::pin(serve(self.listener, app, None, https, stop.clone()))
            }
            Some((tls_listener, tls)) => {
                let config = &self.state.config;
                let redirect = crate::tls::redirect::Redirect::new(
                    app.clone(),
                    tls.certs(),
                    self.state.links.public_url(),
                    &config.server.domains,
                    tls_listener.local_addr()?.port(),
                );
                let acceptor = tls.acceptor();
                tls.keep_current(stop.child_token());
                let plain = serve(self.listener, redirect, None, https, stop.clone());
                let secure = serve(tls_listener, app, Some(acceptor), https, stop.clone());
                Box::pin(async move {
                    tokio::join!(plain, secure);
                })
            }
        };
        let drained = async {
            stop.cancelled().await;
            tracing::info!(
                grace_s = grace.as_secs(),
                "shutting down: finishing in-flight requests"
            );
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            () = server => {}
            () = drained => tracing::warn!("in-flight requests did not finish in time; closing them"),
        }
        // Running jobs saw the stop too: wait for them to reach a safe point.
        for worker in workers {
            let _ = tokio::time::timeout(grace, worker).await;
        }
        // The scheduler watches the same token, so it is stopping already.
        stop.cancel();
        let _ = jobs.await;
        // Its read transaction would keep the WAL from being emptied.
        self.state.integrity.stop();
        if self.state.config.data.replicated {
            tracing::info!(
                "the database is replicated (data.replicated): its WAL is left to the replicator"
            );
        } else {
            match self.state.db.checkpoint_truncate().await {
                Ok(true) => tracing::info!("database checkpointed: aimake.db holds every write"),
                Ok(false) => tracing::warn!(
                    "another process kept reading the database: its last writes stay in aimake.db-wal \
                 (keep that file with aimake.db)"
                ),
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "cannot checkpoint the database")
                }
            }
        }
        if let Some(reports) = reports {
            // Reports of the last requests go out before the process ends, within a bound.
            let timeout = crate::ops::error_reports::FLUSH_TIMEOUT;
            let sent = tokio::task::spawn_blocking(move || reports.close(timeout)).await;
            if !matches!(sent, Ok(true)) {
                tracing::warn!(
                    timeout_s = timeout.as_secs(),
                    "error reports still queued at shutdown were dropped"
                );
            }
        }
        tracing::info!("aimake stopped");
        Ok(())
    }
}

/// `metrics.bind`, when metrics are on. An address already taken is logged and the server
/// runs without it: metrics never keep the product from starting.
async fn metrics_listener(config: &Config) -> anyhow::Result<Option<TcpListener>> {
    if !config.metrics.enabled {
        return Ok(None);
    }
    // The recorder is installed before anything records.
    crate::monitor::metrics::handle();
    let addr = config.metrics.bind_addr()?;
    match TcpListener::bind(addr).await {
        Ok(listener) => {
            tracing::info!(addr = %listener.local_addr()?, "metrics served at /metrics");
            Ok(Some(listener))
        }
        Err(e) => {
            tracing::warn!(
                error = %e,
                "cannot listen on {addr} (metrics.bind): /metrics is not served there"
            );
            Ok(None)
        }
    }
}

/// Refreshes the metrics' gauges and the minute series' samples every
/// [`SAMPLE_EVERY`](crate::monitor::metrics::SAMPLE_EVERY) until `stop`: the queue by kind and
/// state, users, audios, the database's and WAL's size, free disk. Nothing of this is read
/// per request.
async fn sample_until(state: AppState, stop: CancellationToken) {
    // After a restart the last backup is the newest set in the target, until the next one.
    match state.backups.list().await {
        Ok(sets) => {
            let newest = sets
                .iter()
                .filter(|b| b.status == crate::backup::Status::Ok)
                .map(|b| b.created_at_ms)
                .max();
            if let Some(ms) = newest {
                crate::monitor::metrics::seed_last_backup((ms.max(0) / 1000) as u64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list the backups for the metrics"),
    }
    let mut seen = std::collections::HashSet::new();
    let mut tick = tokio::time::interval(crate::monitor::metrics::SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match sample(&state).await {
            Ok(s) => crate::monitor::metrics::record_sample(s, &mut seen),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot sample the metrics"),
        }
    }
}

async fn sample(state: &AppState) -> anyhow::Result<crate::monitor::metrics::Sample> {
    let jobs = state
        .db
        .jobs()
        .counts_by_kind()
        .await?
        .into_iter()
        .map(|(kind, status, n)| (kind, status, n.max(0) as u64))
        .collect();
    let users = state.db.users().count().await?.max(0) as u64;
    let audios = state.db.audios().count().await?.max(0) as u64;
    let db_path = state.db.path().to_path_buf();
    let data_dir = state.config.data.dir.clone();
    let (db_bytes, wal_bytes, disk_free) = tokio::task::spawn_blocking(move || {
        let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut wal = db_path.clone().into_os_string();
        wal.push("-wal");
        let free = rustix::fs::statvfs(&data_dir)
            .ok()
            .filter(|s| s.f_blocks > 0)
            .map(|s| s.f_bavail as f64 / s.f_blocks as f64);
        (size(&db_path), size(std::path::Path::new(&wal)), free)
    })
    .await?;
    Ok(crate::monitor::metrics::Sample {
        jobs,
        users,
        audios,
        db_bytes,
        wal_bytes,
        disk_free,
    })
}

/// The server's scheduled jobs: backups (with retention) when `backup.schedule` is set.
fn scheduled(state: &AppState, clock: Arc<dyn Clock>) -> anyhow::Result<Scheduler> {
    let mut scheduler = Scheduler::new(clock);
    let schedule = state.config.backup.schedule.trim();
    if !schedule.is_empty() {
        let backups = state.backups.clone();
        scheduler.add("backup", schedule, move |slot| {
            let backups = backups.clone();
            async move { backups.run_scheduled(slot).await }
        })?;
    }
    Ok(scheduler)
}

/// The alert engine over the server's own signals, telling each rule's notifiers.
fn alerting(state: &AppState, stop: CancellationToken) -> Alerting {
    let config = &state.config;
    let rules = alerts::rules(
        &config.alerts,
        !config.backup.schedule.trim().is_empty(),
        state.tls.is_some(),
    );
    let longest = rules.iter().map(|r| r.window).max().unwrap_or_default();
    let signals = LiveSignals::new(
        state.db.clone(),
        config.data.dir.clone(),
        state.backups.last_backup(stop),
        longest,
    )
    .with_tls(state.tls.clone());
    Alerting::new(
        Engine::new(rules, Duration::from_secs(config.alerts.repeat_interval_s)),
        state.db.clone(),
        Arc::new(signals),
        Arc::new(NotifierSink {
            notifiers: state.notifiers.clone(),
            link: state.links.public_url().to_string(),
        }),
    )
}

/// A client that sends its request head slower than this is cut off, so idle sockets cannot
/// pin the server's connections (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A TLS handshake that takes longer than this is dropped, for the same reason.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections and serves them until `stop`, then stops accepting (the port is free at
/// once) and returns when every open connection has finished its response.
///
/// Plain connections speak HTTP/1.1 only: browsers speak HTTP/2 only over TLS, and serving
/// HTTP/1.1 directly (rather than through a server that first sniffs each connection for an
/// HTTP/2 preface) is measurably cheaper per request. With `tls`, each connection speaks what
/// the handshake's ALPN chose: HTTP/2 (`h2`) or HTTP/1.1; the ACME TLS-ALPN-01 check
/// (`acme-tls/1`) ends with its handshake.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    tls: Option<tokio_rustls::TlsAcceptor>,
    https: bool,
    stop: CancellationToken,
) where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    // Pings find peers that went away without closing (a phone that lost its network).
    http2
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    loop {
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Without TCP_NODELAY, small responses (JSON, SSE events) wait on Nagle's algorithm
        // and the client's delayed ACK: about 40 ms each.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            app.clone().oneshot(req)
        });
        let Some(tls) = &tls else {
            let io = TokioIo::new(crate::http::conn::JsonParserErrors::new(tcp, https));
            let connection = graceful.watch(http1.serve_connection(io, service));
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
            continue;
        };
        // The handshake runs in the connection's task, so a slow one holds up no other.
        let (tls, watcher, http1, http2) = (
            tls.clone(),
            graceful.watcher(),
            http1.clone(),
            http2.clone(),
        );
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, %peer, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let served = match stream.get_ref().1.alpn_protocol() {
                Some(b"h2") => {
                    watcher
                        .watch(http2.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                Some(crate::tls::ACME_TLS_ALPN) => return,
                _ => {
                    let io = TokioIo::new(crate::http::conn::JsonParserErrors::new(stream, https));
                    watcher.watch(http1.serve_connection(io, service)).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (docker stop, systemd). The handlers are installed
/// before this returns, so a signal that arrives right after start-up is never missed.
#[cfg(unix)]
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("received SIGINT"),
            _ = term.recv() => tracing::info!("received SIGTERM"),
        }
    })
}

#[cfg(not(unix))]
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("received Ctrl-C");
    })
}
