//! The one retry policy every HTTP provider uses: bounded attempts, full-jitter backoff, Retry-After.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Semaphore;

use super::{ErrorKind, ProviderError};
use crate::config::RetryConfig;

/// How the policy waits between attempts; tests swap in one that records and returns at once.
pub type Sleeper = Arc<dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync>;

#[derive(Clone)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A longer Retry-After is cut to this, so one answer cannot park a job for an hour.
    pub max_retry_after: Duration,
    /// Whether a Retry-After beyond `max_retry_after` ends the call at once instead of
    /// waiting the cap and trying early (see [`RetryPolicy::giving_up_on_long_waits`]).
    give_up_on_long_waits: bool,
    sleep: Sleeper,
}

impl std::fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("base_delay", &self.base_delay)
            .field("max_delay", &self.max_delay)
            .field("max_retry_after", &self.max_retry_after)
            .field("give_up_on_long_waits", &self.give_up_on_long_waits)
            .finish_non_exhaustive()
    }
}

/// What one attempt is run against: who is called, how long it may take, and the gate
/// that bounds the provider's concurrency.
pub struct Target<'a> {
    pub provider: &'static str,
    /// The name users read in messages ("ElevenLabs").
    pub display: &'a str,
    pub timeout: Duration,
    pub gate: &'a Semaphore,
}

impl RetryPolicy {
    pub fn from_config(config: &RetryConfig) -> Self {
        Self {
            max_attempts: config.max_attempts.max(1),
            base_delay: Duration::from_millis(config.base_delay_ms),
            max_delay: Duration::from_millis(config.max_delay_ms),
            max_retry_after: Duration::from_millis(config.max_retry_after_ms),
            give_up_on_long_waits: false,
            sleep: Arc::new(|d| Box::pin(tokio::time::sleep(d))),
        }
    }

    /// For calls someone is waiting on (a page, not a background job): a server that asks
    /// for a longer pause than `max_retry_after` gets no early retry, and the caller hears
    /// at once that it is busy.
    pub fn giving_up_on_long_waits(mut self) -> Self {
        self.give_up_on_long_waits = true;
        self
    }

    pub fn with_sleeper(mut self, sleep: Sleeper) -> Self {
        self.sleep = sleep;
        self
    }

    /// The wait after the `failed`-th failed attempt (1-based): the provider's Retry-After
    /// (capped) when it gave one, else a uniform draw from `[0, min(max, base · 2^(failed-1))]`.
    pub fn delay(&self, failed: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_retry_after);
        }
        let ceiling = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(failed.saturating_sub(1)))
            .min(self.max_delay);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(0..=ms))
    }

    /// Runs `attempt` until it succeeds, fails for good, or attempts run out. Each attempt
    /// first takes a permit from the gate (waiting for it is not part of the timeout), then
    /// gets `target.timeout` to finish. The last error is returned, noting the attempts made.
    pub async fn run<T, F, Fut>(&self, target: Target<'_>, attempt: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        self.run_with(target, Resend::Retryable, attempt).await
    }

    /// [`run`](Self::run), sending the request again only after failures `resend` allows.
    pub async fn run_with<T, F, Fut>(
        &self,
        target: Target<'_>,
        resend: Resend,
        mut attempt: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let mut failed = 0;
        loop {
            let result = {
                let _permit = target
                    .gate
                    .acquire()
                    .await
                    .expect("provider gates are never closed");
                match tokio::time::timeout(target.timeout, attempt()).await {
                    Ok(result) => result,
                    Err(_) => Err(ProviderError::new(
                        target.provider,
                        ErrorKind::Timeout,
                        format!(
                            "{} did not answer within {}",
                            target.display,
                            human_duration(target.timeout)
                        ),
                    )),
                }
            };
            let error = match result {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            failed += 1;
            if !resend.allows(&error) {
                return Err(error);
            }
            if self.give_up_on_long_waits
                && error.retry_after.is_some_and(|d| d > self.max_retry_after)
            {
                return Err(error);
            }
            if failed >= self.max_attempts {
                let mut error = error;
                if failed > 1 {
                    error.message = format!("{} (gave up after {failed} attempts)", error.message);
                }
                return Err(error);
            }
            let wait = self.delay(failed, error.retry_after);
            tracing::warn!(
                provider = target.provider,
                kind = error.code().as_str(),
                attempt = failed,
                wait_ms = wait.as_millis() as u64,
                error = %error,
                "provider call failed, retrying"
            );
            (self.sleep)(wait).await;
        }
    }
}

/// Which failed attempts a call may send again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Any retryable failure: the call can run twice without harm (reads, speech).
    Retryable,
    /// Only a retryable failure after which the provider certainly did nothing
    /// ([`ProviderError::nothing_done`]: no connection was made, or it refused the request):
    /// the call creates something billed, and after a timeout or a dropped connection it may
    /// exist already.
    NothingDone,
}

impl Resend {
    pub fn allows(self, error: &ProviderError) -> bool {
        error.is_retryable() && (self == Self::Retryable || error.nothing_done)
    }
}

/// `60 s` or `150 ms`, as timeouts appear in messages.
pub(crate) fn human_duration(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn policy(max_attempts: u32) -> (RetryPolicy, Arc<Mutex<Vec<Duration>>>) {
        let waits = Arc::new(Mutex::new(Vec::new()));
        let recorded = waits.clone();
        let policy = RetryPolicy::from_config(&RetryConfig {
            max_attempts,
            base_delay_ms: 100,
            max_delay_ms: 1000,
            max_retry_after_ms: 5000,
        })
        .with_sleeper(Arc::new(move |d| {
            recorded.lock().unwrap().push(d);
            Box::pin(async {})
        }));
        (policy, waits)
    }

    fn target(gate: &Semaphore, timeout: Duration) -> Target<'_> {
        Target {
            provider: "openai",
            display: "OpenAI",
            timeout,
            gate,
        }
    }

    fn err(kind: ErrorKind) -> ProviderError {
        ProviderError::new("openai", kind, "boom")
    }

    #[test]
    fn backoff_grows_exponentially_within_its_cap() {
        let (p, _) = policy(10);
        for _ in 0..200 {
            assert!(p.delay(1, None) <= Duration::from_millis(100));
            assert!(p.delay(3, None) <= Duration::from_millis(400));
            assert!(p.delay(30, None) <= Duration::from_millis(1000));
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| p.delay(4, None)).collect();
        assert!(
            spread.len() > 5,
            "full jitter spreads the waits: {spread:?}"
        );
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let (p, _) = policy(3);
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(600))),
            Duration::from_secs(5)
        );
    }

    #[tokio::test]
    async fn retryable_failures_are_retried_until_success() {
        let (p, waits) = policy(4);
        let gate = Semaphore::new(1);
        let calls = AtomicU32::new(0);
        let out = p
            .run(target(&gate, Duration::from_secs(5)), || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(err(ErrorKind::ServerError)),
                    1 => {
                        Err(err(ErrorKind::RateLimited)
                            .with_retry_after(Some(Duration::from_secs(3))))
                    }
                    _ => Ok("audio"),
                }
            })
            .await
            .unwrap();
        assert_eq!(out, "audio");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let waits = waits.lock().unwrap();
        assert_eq!(waits.len(), 2);
        assert!(waits[0] <= Duration::from_millis(100));
        assert_eq!(waits[1], Duration::from_secs(3));
    }

    #[tokio::test]
    async fn a_long_retry_after_is_waited_capped_or_ends_the_call_when_someone_waits() {
        let calls = AtomicU32::new(0);
        let gate = Semaphore::new(1);
        let long = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(
                err(ErrorKind::RateLimited).with_retry_after(Some(Duration::from_secs(3600))),
            )
        };
        let (background, waits) = policy(2);
        let e = background
            .run(target(&gate, Duration::from_secs(5)), long)
            .await
            .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(*waits.lock().unwrap(), [Duration::from_secs(5)]);
        assert_eq!(e.retry_after, Some(Duration::from_secs(3600)));

        calls.store(0, Ordering::SeqCst);
        let (waited_on, waits) = policy(2);
        let e = waited_on
            .giving_up_on_long_waits()
            .run(target(&gate, Duration::from_secs(5)), long)
            .await
            .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(waits.lock().unwrap().is_empty());
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.message, "boom", "no note of attempts: there was one");
    }

    #[tokio::test]
    async fn fatal_failures_are_returned_after_one_attempt() {
        let (p, waits) = policy(4);
        let gate = Semaphore::new(1);
        let calls = AtomicU32::new(0);
        let e = p
            .run(target(&gate, Duration::from_secs(5)), || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(err(ErrorKind::Auth))
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth);
        assert_eq!(e.message, "boom");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(waits.lock().unwrap().is_empty());
    }

    #[test]
    fn a_call_that_must_not_run_twice_is_resent_only_when_the_provider_did_nothing() {
        let refused = err(ErrorKind::RateLimited).with_nothing_done();
        let unreachable = err(ErrorKind::Network).with_nothing_done();
        let dropped = err(ErrorKind::Network);
        let timed_out = err(ErrorKind::Timeout);
        let server = err(ErrorKind::ServerError);
        let bad_key = err(ErrorKind::Auth).with_nothing_done();
        for e in [&refused, &unreachable] {
            assert!(Resend::NothingDone.allows(e), "{:?}", e.kind);
        }
        for e in [&dropped, &timed_out, &server, &bad_key] {
            assert!(!Resend::NothingDone.allows(e), "{:?}", e.kind);
        }
        for e in [&refused, &unreachable, &dropped, &timed_out, &server] {
            assert!(Resend::Retryable.allows(e), "{:?}", e.kind);
        }
        assert!(!Resend::Retryable.allows(&bad_key));
    }

    #[tokio::test]
    async fn a_timed_out_attempt_that_must_not_run_twice_is_not_sent_again() {
        let (p, waits) = policy(4);
        let gate = Semaphore::new(1);
        let calls = AtomicU32::new(0);
        let e = p
            .run_with(
                target(&gate, Duration::from_millis(20)),
                Resend::NothingDone,
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<Result<(), ProviderError>>().await
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(waits.lock().unwrap().is_empty());

        calls.store(0, Ordering::SeqCst);
        let out = p
            .run_with(
                target(&gate, Duration::from_secs(5)),
                Resend::NothingDone,
                || async {
                    match calls.fetch_add(1, Ordering::SeqCst) {
                        0 => Err(err(ErrorKind::Network).with_nothing_done()),
                        1 => Err(err(ErrorKind::RateLimited).with_nothing_done()),
                        _ => Ok("task"),
                    }
                },
            )
            .await
            .unwrap();
        assert_eq!(out, "task");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn attempts_are_bounded_and_the_last_error_says_how_many() {
        let (p, waits) = policy(3);
        let gate = Semaphore::new(1);
        let calls = AtomicU32::new(0);
        let e = p
            .run(target(&gate, Duration::from_millis(20)), || async {
                calls.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<Result<(), ProviderError>>().await
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert_eq!(
            e.message,
            "OpenAI did not answer within 20 ms (gave up after 3 attempts)"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(waits.lock().unwrap().len(), 2);
    }
}
