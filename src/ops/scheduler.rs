//! Runs jobs on cron schedules (UTC) inside the server, with a clock tests can drive by hand.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use croner::Cron;
use futures::future::BoxFuture;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::parse_schedule;

/// The longest a system-clock sleep lasts before the time is read again, so a wall clock
/// that jumps (NTP step, suspended VM) delays a job by at most this much.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Where "now" comes from: the system clock in production, a hand-driven one in tests.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
    /// Resolves once `now() >= at`.
    fn sleep_until(&self, at: OffsetDateTime) -> BoxFuture<'static, ()>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn sleep_until(&self, at: OffsetDateTime) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            loop {
                let left = at - OffsetDateTime::now_utc();
                if !left.is_positive() {
                    return;
                }
                let left = Duration::try_from(left).unwrap_or(MAX_SLEEP);
                tokio::time::sleep(left.min(MAX_SLEEP)).await;
            }
        })
    }
}

/// A clock that only moves when told to; sleepers wake as soon as it passes their time.
pub struct ManualClock {
    now: watch::Sender<OffsetDateTime>,
}

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Arc<Self> {
        Arc::new(Self {
            now: watch::Sender::new(start),
        })
    }

    pub fn set(&self, to: OffsetDateTime) {
        self.now.send_replace(to);
    }

    pub fn advance(&self, by: time::Duration) {
        self.now.send_modify(|t| *t += by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.borrow()
    }

    fn sleep_until(&self, at: OffsetDateTime) -> BoxFuture<'static, ()> {
        let mut now = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; if it is gone nothing will ever wake us.
            if now.wait_for(|t| *t >= at).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

/// The first slot strictly after `after`.
pub fn next_slot(cron: &Cron, after: OffsetDateTime) -> anyhow::Result<OffsetDateTime> {
    let after = to_chrono(after)?;
    let next = cron
        .find_next_occurrence(&after, false)
        .map_err(|e| anyhow::anyhow!("no next time for `{}`: {e}", cron.pattern))?;
    let nanos = next
        .timestamp_nanos_opt()
        .context("next scheduled time out of range")?;
    Ok(OffsetDateTime::from_unix_timestamp_nanos(nanos.into())?)
}

fn to_chrono(t: OffsetDateTime) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond())
        .context("time out of range")
}

type JobFn = Arc<dyn Fn(OffsetDateTime) -> BoxFuture<'static, ()> + Send + Sync>;

struct Job {
    name: &'static str,
    cron: Cron,
    run: JobFn,
}

/// A set of named jobs, each on its own cron schedule.
pub struct Scheduler {
    clock: Arc<dyn Clock>,
    jobs: Vec<Job>,
}

impl Scheduler {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            jobs: Vec::new(),
        }
    }

    /// Adds a job; `run` gets the slot time it was started for (the clock's "now").
    pub fn add<F, Fut>(&mut self, name: &'static str, schedule: &str, run: F) -> anyhow::Result<()>
    where
        F: Fn(OffsetDateTime) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let cron = parse_schedule(schedule).with_context(|| format!("schedule of {name}"))?;
        self.jobs.push(Job {
            name,
            cron,
            run: Arc::new(move |at| Box::pin(run(at))),
        });
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Runs every job until `stop` is cancelled. A run still going at that point is dropped
    /// at its next await: jobs must leave nothing behind that a later run cannot clean up.
    /// A slot missed because the previous run overran is skipped, not made up.
    pub fn spawn(self, stop: CancellationToken) -> JoinHandle<()> {
        let clock = self.clock;
        let loops: Vec<_> = self
            .jobs
            .into_iter()
            .map(|job| tokio::spawn(job_loop(clock.clone(), job, stop.clone())))
            .collect();
        tokio::spawn(async move {
            for l in loops {
                let _ = l.await;
            }
        })
    }
}

async fn job_loop(clock: Arc<dyn Clock>, job: Job, stop: CancellationToken) {
    loop {
        let slot = match next_slot(&job.cron, clock.now()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(job = job.name, error = format!("{e:#}"), "job stops");
                return;
            }
        };
        tracing::debug!(job = job.name, at = %slot, "next run");
        tokio::select! {
            () = clock.sleep_until(slot) => {}
            () = stop.cancelled() => return,
        }
        tracing::info!(job = job.name, slot = %slot, "running scheduled job");
        tokio::select! {
            () = (job.run)(slot) => {}
            () = stop.cancelled() => {
                tracing::warn!(job = job.name, "shutting down: scheduled job interrupted");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::macros::datetime;
    use tokio::sync::mpsc;

    use super::*;

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_daily_job_fires_at_its_slot_in_utc_and_not_before() {
        let clock = ManualClock::new(datetime!(2026-11-03 02:58:00 UTC));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut scheduler = Scheduler::new(clock.clone());
        scheduler
            .add("test", "0 3 * * *", move |slot| {
                let tx = tx.clone();
                async move {
                    tx.send(slot).unwrap();
                }
            })
            .unwrap();
        let stop = CancellationToken::new();
        let handle = scheduler.spawn(stop.clone());

        clock.set(datetime!(2026-11-03 02:59:59 UTC));
        settle().await;
        assert!(rx.try_recv().is_err(), "nothing runs before 03:00");

        clock.set(datetime!(2026-11-03 03:00:00 UTC));
        let slot = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("fires at 03:00")
            .unwrap();
        assert_eq!(slot, datetime!(2026-11-03 03:00:00 UTC));

        clock.advance(time::Duration::days(1));
        let slot = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("fires again the next day")
            .unwrap();
        assert_eq!(slot, datetime!(2026-11-04 03:00:00 UTC));

        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("stops when cancelled")
            .unwrap();
    }

    #[test]
    fn schedules_take_five_or_six_fields_and_bad_ones_are_named() {
        let daily = parse_schedule("0 3 * * *").unwrap();
        assert_eq!(
            next_slot(&daily, datetime!(2026-11-03 03:00:00 UTC)).unwrap(),
            datetime!(2026-11-04 03:00:00 UTC),
            "strictly after"
        );
        let every_second = parse_schedule("* * * * * *").unwrap();
        assert_eq!(
            next_slot(&every_second, datetime!(2026-11-03 03:00:00.5 UTC)).unwrap(),
            datetime!(2026-11-03 03:00:01 UTC)
        );
        let err = parse_schedule("at three").unwrap_err().to_string();
        assert!(err.contains("at three"), "{err}");
    }

    #[tokio::test]
    async fn the_system_clock_sleeps_until_the_given_time() {
        let clock = SystemClock;
        let at = clock.now() + time::Duration::milliseconds(20);
        clock.sleep_until(at).await;
        assert!(clock.now() >= at);
    }
}
