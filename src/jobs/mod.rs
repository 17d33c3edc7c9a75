//! Background work (replaces a separate worker service): a durable queue in SQLite worked by
//! tokio tasks in the same process.

pub mod events;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use ulid::Ulid;

pub use crate::db::jobs::{Job, NewJob};

use crate::db::{Db, JobId};
use crate::error::ErrorCode;

/// Long enough that a busy worker renews it comfortably, short enough that a crashed
/// process's jobs resume within a minute of restart.
const LEASE: Duration = Duration::from_secs(60);
/// Queued jobs are woken by `notify`; this catches retries that come due and expired leases.
const POLL: Duration = Duration::from_secs(1);
/// The longest a failed attempt waits before it is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How a job attempt failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    /// Shown to users in the audio's `error.code`, e.g. `provider_unavailable`.
    pub code: ErrorCode,
    pub message: String,
    /// Worth another attempt (timeouts, throttling), as opposed to bad input or bad keys.
    pub retryable: bool,
    pub retry_after: Option<Duration>,
}

impl JobError {
    pub fn fatal(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }

    pub fn retryable(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }
}

impl JobError {
    /// The job was canceled (deleted, or its lease taken over) before it finished.
    pub fn canceled() -> Self {
        Self::fatal(ErrorCode::Canceled, "The job was canceled")
    }
}

impl From<anyhow::Error> for JobError {
    /// Infrastructure failures (database, storage) are worth retrying; details stay in the log.
    fn from(e: anyhow::Error) -> Self {
        tracing::warn!(error = format!("{e:#}"), "job attempt failed");
        Self::retryable(
            ErrorCode::Internal,
            "An internal error interrupted the job; it will be retried",
        )
    }
}

/// What a handler gets for one attempt. `S` is the services the handlers share, handed to
/// the workers when they start, so the queue itself knows nothing of what the jobs do.
#[derive(Clone)]
pub struct JobContext<S> {
    pub state: S,
    pub job: Job,
    /// Cancelled when the job is canceled (e.g. its audio deleted) or the server shuts down.
    pub cancel: CancellationToken,
}

/// One kind of job. `run` must finish by recording the job's success
/// ([`crate::db::jobs::succeed`]) in the same transaction that stores its results, through
/// a table handle's method (the synthesis jobs use `db.audios().finish_synthesis`), and
/// write nothing if that answers false (the job was canceled or taken over meanwhile).
pub trait Handler<S>: Send + Sync + 'static {
    fn run(&self, ctx: JobContext<S>) -> BoxFuture<'static, Result<(), JobError>>;
    /// Records a final failure on the job's subject (e.g. the audio's status and error).
    fn failed(&self, ctx: JobContext<S>, error: JobError)
    -> BoxFuture<'static, anyhow::Result<()>>;
    /// Cleans up after a canceled job (its partial objects); the subject is already gone.
    fn canceled(&self, _ctx: JobContext<S>) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A job was claimed and run (whatever its result).
    Done,
    /// Nothing is due.
    Empty,
}

/// The queue and its workers. Handlers are registered by kind when the server is wired
/// together; each attempt hands its handler the shared services `S`.
pub struct Jobs<S> {
    db: Db,
    /// Progress of running jobs, for live listeners.
    pub events: events::Hub,
    /// Jobs whose intermediate results someone is streaming right now.
    pub streams: Arc<Streams>,
    handlers: RwLock<HashMap<&'static str, Arc<dyn Handler<S>>>>,
    wake: Notify,
    /// Tokens of jobs running in this process, to stop them on cancel.
    running: Mutex<HashMap<JobId, (CancellationToken, CancellationToken)>>,
    /// Identifies this process in the `worker` column.
    worker: String,
}

impl<S: Clone + Send + Sync + 'static> Jobs<S> {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            events: events::Hub::default(),
            streams: Arc::new(Streams::default()),
            handlers: RwLock::new(HashMap::new()),
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
            worker: format!("{}-{}", std::process::id(), Ulid::generate()),
        }
    }

    pub fn register(&self, kind: &'static str, handler: Arc<dyn Handler<S>>) {
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(kind, handler);
    }

    /// Wakes an idle worker: call after committing a new job.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Stops a job running in this process (its row is already marked canceled).
    pub fn cancel(&self, job: JobId) {
        if let Some((cancel, abort)) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&job)
        {
            abort.cancel();
            cancel.cancel();
        }
    }

    /// Claims and runs one due job. Tests call this to drain the queue without sleeping.
    pub async fn run_next(&self, state: &S, stop: &CancellationToken) -> anyhow::Result<Outcome> {
        let Some(job) = self.claim().await? else {
            return Ok(Outcome::Empty);
        };
        // Attached to the attempt's future, so only its own log lines land in the job's span.
        let span = tracing::info_span!("job", id = %job.id, kind = job.kind, attempt = job.attempt);
        self.run_claimed(state, job, stop).instrument(span).await?;
        Ok(Outcome::Done)
    }

    /// Claims the next due job under a lease. The job's audio shows as running from the
    /// moment it is claimed: one transaction instead of a separate write from the handler.
    async fn claim(&self) -> anyhow::Result<Option<Job>> {
        self.db
            .jobs()
            .claim(&self.worker, LEASE.as_millis() as i64)
            .await
    }

    /// Runs a claimed job's attempt and records how it ended.
    async fn run_claimed(
        &self,
        state: &S,
        job: Job,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let handler = self
            .handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get_key_value(job.kind.as_str())
            .map(|(kind, h)| (*kind, h.clone()));
        let Some((kind, handler)) = handler else {
            tracing::error!("no handler for this job kind; failing it");
            self.db
                .jobs()
                .fail(job.id, format!("unknown job kind {}", job.kind))
                .await?;
            return Ok(());
        };
        // Shutdown asks the handler to stop at its next safe point (it watches `cancel`), so
        // work already paid for is kept; a canceled job is dropped on the spot (`abort`).
        let ctx = JobContext {
            state: state.clone(),
            job,
            cancel: stop.child_token(),
        };
        let abort = CancellationToken::new();
        let started = std::time::Instant::now();
        let result = self
            .run_with_lease(handler.as_ref(), ctx.clone(), &abort)
            .await;
        let elapsed = started.elapsed();
        let outcome = self
            .settle(handler.as_ref(), ctx, result, stop, &abort)
            .await?;
        crate::monitor::metrics::job_finished(kind, outcome.as_str(), elapsed);
        if let Settled::Failed(code) = outcome {
            crate::monitor::metrics::job_failed(kind, code);
        }
        Ok(())
    }

    /// Runs the handler while renewing the job's lease; a cancel (or a lease taken over
    /// elsewhere) stops it at once. The job is listed as running in this process meanwhile.
    async fn run_with_lease(
        &self,
        handler: &dyn Handler<S>,
        ctx: JobContext<S>,
        abort: &CancellationToken,
    ) -> Result<(), JobError> {
        let (id, cancel) = (ctx.job.id, ctx.cancel.clone());
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, (cancel.clone(), abort.clone()));
        let result = tokio::select! {
            r = handler.run(ctx) => r,
            () = self.keep_lease(id, abort.clone()) => {
                cancel.cancel();
                Err(JobError::canceled())
            }
        };
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        result
    }

    /// Records how an attempt ended: done, handed back at shutdown, canceled, retried after
    /// a backoff, or failed for good.
    async fn settle(
        &self,
        handler: &dyn Handler<S>,
        ctx: JobContext<S>,
        result: Result<(), JobError>,
        stop: &CancellationToken,
        abort: &CancellationToken,
    ) -> anyhow::Result<Settled> {
        let job = &ctx.job;
        let settled = match result {
            Ok(()) => {
                tracing::info!("job succeeded");
                Settled::Succeeded
            }
            Err(_) if stop.is_cancelled() && !abort.is_cancelled() => {
                // Shutting down: hand it back so the next start picks it up at once.
                tracing::info!("job interrupted by shutdown; it resumes after restart");
                self.db.jobs().release(job.id).await?;
                Settled::Interrupted
            }
            Err(e) if abort.is_cancelled() => {
                tracing::info!(reason = %e, "job canceled");
                handler.canceled(ctx).await?;
                Settled::Canceled
            }
            Err(e) if e.retryable && job.attempt < job.max_attempts => {
                let delay = e
                    .retry_after
                    .unwrap_or_else(|| backoff(job.attempt))
                    .min(MAX_BACKOFF);
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "job attempt failed; will retry");
                self.db
                    .jobs()
                    .requeue(job.id, delay.as_millis() as i64, e.message.clone())
                    .await?;
                Settled::Retried
            }
            Err(e) => {
                tracing::warn!(error = %e, code = e.code.as_str(), "job failed");
                let code = e.code;
                let marked = self
                    .db
                    .jobs()
                    .fail(job.id, format!("{}: {}", e.code, e.message))
                    .await?;
                if marked {
                    handler.failed(ctx, e).await?;
                }
                Settled::Failed(code)
            }
        };
        Ok(settled)
    }

    /// Renews the lease until the job ends; resolves (and cancels) when the job was canceled
    /// or taken over elsewhere.
    async fn keep_lease(&self, job: JobId, cancel: CancellationToken) {
        let lease = LEASE.as_millis() as i64;
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(LEASE / 3) => {}
            }
            let held = self.db.jobs().heartbeat(job, &self.worker, lease).await;
            if matches!(held, Ok(false)) {
                cancel.cancel();
                return;
            }
        }
    }

    /// Runs `count` workers until `stop` is cancelled.
    pub fn spawn_workers(
        self: &Arc<Self>,
        state: S,
        count: usize,
        stop: CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..count)
            .map(|_| {
                let jobs = self.clone();
                let state = state.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    while !stop.is_cancelled() {
                        match jobs.run_next(&state, &stop).await {
                            Ok(Outcome::Done) => continue,
                            Ok(Outcome::Empty) => {}
                            Err(e) => tracing::error!(error = format!("{e:#}"), "job worker error"),
                        }
                        tokio::select! {
                            () = stop.cancelled() => break,
                            () = jobs.wake.notified() => {}
                            () = tokio::time::sleep(POLL) => {}
                        }
                    }
                })
            })
            .collect()
    }
}

/// Counts listeners of each job's intermediate results, so the job does not delete them
/// under a reader; the last listener of a finished job deletes them instead.
#[derive(Default)]
pub struct Streams {
    readers: Mutex<HashMap<JobId, usize>>,
}

impl Streams {
    /// Registers a reader until the returned guard is dropped.
    pub fn open(self: &Arc<Self>, job: JobId) -> StreamGuard {
        *self
            .readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(job)
            .or_default() += 1;
        StreamGuard {
            streams: self.clone(),
            job,
        }
    }

    pub fn is_streamed(&self, job: JobId) -> bool {
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&job)
    }

    /// Drops one reader; true when it was the last.
    fn close(&self, job: JobId) -> bool {
        let mut map = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(&job) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                map.remove(&job);
                true
            }
        }
    }
}

pub struct StreamGuard {
    streams: Arc<Streams>,
    job: JobId,
}

impl StreamGuard {
    /// Ends this reader; true when no other reader remains.
    pub fn release(self) -> bool {
        let last = self.streams.close(self.job);
        std::mem::forget(self);
        last
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.streams.close(self.job);
    }
}

/// 2 s, 4 s, 8 s … after the 1st, 2nd, 3rd failed attempt.
/// How an attempt ended, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Succeeded,
    Interrupted,
    Canceled,
    Retried,
    Failed(ErrorCode),
}

impl Settled {
    fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Interrupted => "interrupted",
            Self::Canceled => "canceled",
            Self::Retried => "retried",
            Self::Failed(_) => "failed",
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempt.min(16)))
}
