//! The job runner: success, retry with backoff, final failure, cancel, shutdown hand-back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use aimake::db::jobs as queue;
use aimake::db::{JobId, JobStatus, now_ms};
use aimake::error::ErrorCode;
use aimake::jobs::{Handler, JobContext, JobError, NewJob, Outcome};
use aimake::services::Services;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::helpers::{CapturedLogs, TestApp};

/// A handler scripted per attempt: fails `fail_first` times with the given error, then succeeds.
struct Scripted {
    runs: AtomicU32,
    fail_first: u32,
    error: JobError,
    failed_calls: AtomicU32,
    block: bool,
}

impl Scripted {
    fn new(fail_first: u32, error: JobError) -> Arc<Self> {
        Arc::new(Self {
            runs: AtomicU32::new(0),
            fail_first,
            error,
            failed_calls: AtomicU32::new(0),
            block: false,
        })
    }
}

impl Handler<Services> for Scripted {
    fn run(&self, ctx: JobContext<Services>) -> BoxFuture<'static, Result<(), JobError>> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        let (fail, error, block) = (n <= self.fail_first, self.error.clone(), self.block);
        async move {
            if block {
                ctx.cancel.cancelled().await;
                return Err(JobError::retryable(ErrorCode::Internal, "stopped"));
            }
            if fail {
                return Err(error);
            }
            let id = ctx.job.id;
            ctx.state
                .db
                .write(move |c| {
                    let tx = c.transaction()?;
                    if queue::succeed(&tx, id, now_ms())? {
                        tx.commit()?;
                    }
                    Ok(())
                })
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn failed(
        &self,
        _ctx: JobContext<Services>,
        _error: JobError,
    ) -> BoxFuture<'static, anyhow::Result<()>> {
        self.failed_calls.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }.boxed()
    }
}

async fn enqueue(app: &TestApp, kind: &'static str, max_attempts: u32) -> JobId {
    let id = JobId::new(&app.state.db);
    app.state
        .db
        .write(move |c| {
            let tx = c.transaction()?;
            let id = queue::enqueue(
                &tx,
                &NewJob {
                    id,
                    kind,
                    user_id: None,
                    audio_id: None,
                    payload: json!({}),
                    max_attempts,
                },
                now_ms(),
            )?;
            tx.commit()?;
            Ok(id)
        })
        .await
        .unwrap()
}

async fn status(app: &TestApp, id: JobId) -> JobStatus {
    app.state
        .db
        .read(move |c| Ok(queue::status_of(c, id)?.unwrap()))
        .await
        .unwrap()
}

/// Makes a requeued job due now, standing in for the backoff delay passing.
async fn make_due(app: &TestApp, id: JobId) {
    app.state
        .db
        .write(move |c| {
            Ok(c.execute(
                "UPDATE jobs SET run_after = 0 WHERE id = ?1",
                [id.to_string()],
            )?)
        })
        .await
        .unwrap();
}

async fn spawn() -> TestApp {
    // No background workers: each test drives the queue itself.
    TestApp::spawn_with(|c| c.jobs.workers = 0).await
}

#[tokio::test]
async fn a_job_runs_once_and_succeeds() {
    let app = spawn().await;
    let handler = Scripted::new(0, JobError::fatal(ErrorCode::Internal, "x"));
    app.state.jobs.register("test", handler.clone());
    let id = enqueue(&app, "test", 3).await;
    let stop = CancellationToken::new();
    assert_eq!(
        app.state.jobs.run_next(&app.state, &stop).await.unwrap(),
        Outcome::Done
    );
    assert_eq!(
        app.state.jobs.run_next(&app.state, &stop).await.unwrap(),
        Outcome::Empty
    );
    assert_eq!(status(&app, id).await, JobStatus::Succeeded);
    assert_eq!(handler.runs.load(Ordering::SeqCst), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_retryable_failure_is_retried_after_a_delay_then_succeeds() {
    let app = spawn().await;
    let handler = Scripted::new(
        1,
        JobError::retryable(ErrorCode::ProviderUnavailable, "busy"),
    );
    app.state.jobs.register("test", handler.clone());
    let id = enqueue(&app, "test", 3).await;
    let stop = CancellationToken::new();
    app.state.jobs.run_next(&app.state, &stop).await.unwrap();
    assert_eq!(status(&app, id).await, JobStatus::Queued);
    assert_eq!(
        app.state.jobs.run_next(&app.state, &stop).await.unwrap(),
        Outcome::Empty,
        "not due before the backoff"
    );
    make_due(&app, id).await;
    app.state.jobs.run_next(&app.state, &stop).await.unwrap();
    assert_eq!(status(&app, id).await, JobStatus::Succeeded);
    assert_eq!(handler.runs.load(Ordering::SeqCst), 2);
    assert_eq!(handler.failed_calls.load(Ordering::SeqCst), 0);
    app.stop().await;
}

#[tokio::test]
async fn attempts_are_bounded_and_the_final_failure_is_recorded() {
    let app = spawn().await;
    let handler = Scripted::new(
        u32::MAX,
        JobError::retryable(ErrorCode::ProviderUnavailable, "down"),
    );
    app.state.jobs.register("test", handler.clone());
    let id = enqueue(&app, "test", 2).await;
    let stop = CancellationToken::new();
    app.state.jobs.run_next(&app.state, &stop).await.unwrap();
    make_due(&app, id).await;
    app.state.jobs.run_next(&app.state, &stop).await.unwrap();
    assert_eq!(status(&app, id).await, JobStatus::Failed);
    assert_eq!(handler.runs.load(Ordering::SeqCst), 2);
    assert_eq!(handler.failed_calls.load(Ordering::SeqCst), 1);
    let error: String = app
        .state
        .db
        .read(move |c| {
            Ok(c.query_row(
                "SELECT last_error FROM jobs WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(error, "provider_unavailable: down");
    app.stop().await;
}

#[tokio::test]
async fn a_fatal_failure_is_not_retried() {
    let app = spawn().await;
    let handler = Scripted::new(
        u32::MAX,
        JobError::fatal(ErrorCode::ProviderAuth, "bad key"),
    );
    app.state.jobs.register("test", handler.clone());
    let id = enqueue(&app, "test", 5).await;
    app.state
        .jobs
        .run_next(&app.state, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(status(&app, id).await, JobStatus::Failed);
    assert_eq!(handler.runs.load(Ordering::SeqCst), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_job_of_an_unknown_kind_fails_instead_of_looping() {
    let app = spawn().await;
    let id = enqueue(&app, "nobody-handles-this", 5).await;
    assert_eq!(
        app.state
            .jobs
            .run_next(&app.state, &CancellationToken::new())
            .await
            .unwrap(),
        Outcome::Done
    );
    assert_eq!(status(&app, id).await, JobStatus::Failed);
    app.stop().await;
}

#[tokio::test]
async fn shutdown_hands_a_running_job_back_without_counting_the_attempt() {
    let app = spawn().await;
    let handler = Arc::new(Scripted {
        runs: AtomicU32::new(0),
        fail_first: 0,
        error: JobError::fatal(ErrorCode::Internal, "x"),
        failed_calls: AtomicU32::new(0),
        block: true,
    });
    app.state.jobs.register("test", handler.clone());
    let id = enqueue(&app, "test", 1).await;
    let stop = CancellationToken::new();
    let state = app.state.clone();
    let stop2 = stop.clone();
    let run = tokio::spawn(async move { state.jobs.run_next(&state, &stop2).await });
    while handler.runs.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    stop.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(
        status(&app, id).await,
        JobStatus::Queued,
        "picked up again at the next start"
    );
    let attempts: u32 = app
        .state
        .db
        .read(move |c| {
            Ok(c.query_row(
                "SELECT attempts FROM jobs WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(attempts, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_waiting_job_keeps_its_span_to_itself() {
    let logs = CapturedLogs::start();
    let app = spawn().await;
    let handler = Arc::new(Scripted {
        runs: AtomicU32::new(0),
        fail_first: 0,
        error: JobError::fatal(ErrorCode::Internal, "x"),
        failed_calls: AtomicU32::new(0),
        block: true,
    });
    app.state.jobs.register("test", handler.clone());
    enqueue(&app, "test", 1).await;
    let stop = CancellationToken::new();
    let state = app.state.clone();
    let stop2 = stop.clone();
    let run = tokio::spawn(async move { state.jobs.run_next(&state, &stop2).await });
    while handler.runs.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // The job waits on this same thread; what another task logs meanwhile is not the job's.
    tracing::info!("a line from outside the job");
    stop.cancel();
    run.await.unwrap().unwrap();
    let text = logs.text();
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with `{needle}` in:\n{text}"))
            .to_string()
    };
    assert!(
        !line("a line from outside the job").contains("job{"),
        "{text}"
    );
    assert!(
        line("job interrupted by shutdown").contains("job{"),
        "the job's own lines carry its span: {text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn background_workers_pick_up_a_new_job_when_notified() {
    let app = TestApp::spawn_with(|c| c.jobs.workers = 2).await;
    let handler = Scripted::new(0, JobError::fatal(ErrorCode::Internal, "x"));
    app.state.jobs.register("test", handler.clone());
    let id = enqueue(&app, "test", 1).await;
    app.state.jobs.notify();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while status(&app, id).await != JobStatus::Succeeded {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job was not picked up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    app.stop().await;
}
