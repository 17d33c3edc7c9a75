//! What the HTTP providers share: a client with timeouts, a concurrency gate, the retry policy,
//! and the mapping of transport failures and `Retry-After` into `ProviderError`.

use std::error::Error as _;
use std::future::Future;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::sync::Semaphore;

use super::retry::{Resend, RetryPolicy, Target};
use super::scrub::Scrubber;
use super::{ErrorKind, ProviderError};

/// OpenAI's millisecond form of `Retry-After`.
const RETRY_AFTER_MS: &str = "retry-after-ms";

/// Connecting should never take long; a slow answer is the attempt timeout's business.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct HttpBase {
    pub id: &'static str,
    /// The provider as users read it in messages.
    pub display: String,
    pub client: reqwest::Client,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    pub gate: Semaphore,
    pub max_concurrency: usize,
    /// Every message of this provider's errors passes through it.
    pub scrub: Scrubber,
}

/// A finished HTTP exchange: status, headers and the whole body.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers, SystemTime::now())
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

impl HttpBase {
    pub fn new(
        id: &'static str,
        display: impl Into<String>,
        retry: RetryPolicy,
        timeout_ms: u64,
        max_concurrency: usize,
        scrub: Scrubber,
    ) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(timeout_ms.max(1));
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .user_agent(concat!("aimake/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            id,
            display: display.into(),
            client,
            retry,
            timeout,
            gate: Semaphore::new(max_concurrency.max(1)),
            max_concurrency: max_concurrency.max(1),
            scrub,
        })
    }

    /// The one way this provider's errors are made: the message is scrubbed of secrets and
    /// credential-shaped text and cut to length, so it is safe for users and logs.
    pub fn error(&self, kind: ErrorKind, message: impl Into<String>) -> ProviderError {
        ProviderError::new(self.id, kind, self.scrub.message(&message.into()))
    }

    /// A provider's own words inside a message: scrubbed first, then cut, so a cut never
    /// leaves part of a key behind.
    pub fn excerpt(&self, upstream: &str) -> String {
        excerpt(&self.scrub.clean(upstream))
    }

    /// Runs `attempt` under the shared retry policy, the timeout and the concurrency gate.
    pub async fn call<T, F, Fut>(&self, attempt: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        self.call_with(Resend::Retryable, attempt).await
    }

    /// [`call`](Self::call), sending the request again only after failures `resend` allows.
    pub async fn call_with<T, F, Fut>(&self, resend: Resend, attempt: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let target = Target {
            provider: self.id,
            display: &self.display,
            timeout: self.timeout,
            gate: &self.gate,
        };
        let mut attempt = attempt;
        let counted = || {
            crate::monitor::metrics::provider_attempt(self.id);
            attempt()
        };
        self.retry.run_with(target, resend, counted).await
    }

    /// Sends the request and reads the whole body; only transport failures are errors here.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Reply, ProviderError> {
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| self.transport(e))?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    fn transport(&self, e: reqwest::Error) -> ProviderError {
        tracing::debug!(
            provider = self.id,
            error = %self.scrub.message(&format!("{:?}", e.source())),
            "transport error"
        );
        let error = if e.is_timeout() {
            self.error(
                ErrorKind::Timeout,
                format!(
                    "{} did not answer within {}",
                    self.display,
                    super::retry::human_duration(self.timeout)
                ),
            )
        } else {
            let host = e
                .url()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_else(|| "its server".into());
            let what = if e.is_connect() {
                "cannot connect to"
            } else {
                "lost the connection to"
            };
            self.error(
                ErrorKind::Network,
                format!("{}: {what} {host}", self.display),
            )
        };
        // No connection was made (refused, DNS, TLS, a connect timeout): nothing was sent.
        if e.is_connect() {
            error.with_nothing_done()
        } else {
            error
        }
    }

    /// The classification every HTTP API agrees on, for statuses a provider has no
    /// more specific reading of.
    pub fn status_error(&self, reply: &Reply, upstream: Option<&str>) -> ProviderError {
        let said = upstream
            .map(|m| format!(": {}", self.excerpt(m)))
            .unwrap_or_default();
        let (status, display) = (reply.status, &self.display);
        let kind = status_kind(status);
        let message = match kind {
            ErrorKind::Auth => format!("{display} rejected the API key"),
            ErrorKind::RateLimited => format!("{display} is rate limiting requests{said}"),
            ErrorKind::Timeout => format!("{display} timed out{said}"),
            ErrorKind::ServerError => format!("{display} had a server error ({status}){said}"),
            ErrorKind::Rejected => format!("{display} rejected the request ({status}){said}"),
            ErrorKind::TooLarge => format!("{display} refused the upload as too large{said}"),
            ErrorKind::UnsupportedFormat => {
                format!("{display} cannot read this audio format{said}")
            }
            _ => format!("{display} answered {status} unexpectedly"),
        };
        let retry_after = matches!(kind, ErrorKind::RateLimited | ErrorKind::ServerError)
            .then(|| reply.retry_after())
            .flatten();
        self.error(kind, message)
            .with_retry_after(retry_after)
            .with_status(status.as_u16())
    }
}

/// The kind of failure an HTTP status means, as every HTTP API agrees: 429, 408 and 5xx are
/// worth another try, a refused key or request is not.
pub(crate) fn status_kind(status: StatusCode) -> ErrorKind {
    match status.as_u16() {
        401 | 403 => ErrorKind::Auth,
        429 => ErrorKind::RateLimited,
        408 => ErrorKind::Timeout,
        413 => ErrorKind::TooLarge,
        415 => ErrorKind::UnsupportedFormat,
        500..=599 => ErrorKind::ServerError,
        400..=499 => ErrorKind::Rejected,
        _ => ErrorKind::Failed,
    }
}

/// The server's wait hint: OpenAI's `retry-after-ms` when present (OpenAI-compatible servers
/// send it beside a whole-second `Retry-After`), else `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header(RETRY_AFTER_MS).and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = header(RETRY_AFTER.as_str())?;
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A provider's own message, short enough for a user-facing error.
pub(crate) fn excerpt(message: &str) -> String {
    const MAX: usize = 300;
    let message = message.trim();
    match message.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, "0.5".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(500)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        h.insert(RETRY_AFTER, later.parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn retry_after_ms_wins_over_whole_seconds() {
        let now = SystemTime::now();
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "3".parse().unwrap());
        h.insert(RETRY_AFTER_MS, "250".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(250)));
        h.insert(RETRY_AFTER_MS, "-1".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(3)));
    }

    #[test]
    fn statuses_map_to_the_kinds_retries_decide_on() {
        let kind = |s: u16| status_kind(StatusCode::from_u16(s).unwrap());
        assert_eq!(kind(401), ErrorKind::Auth);
        assert_eq!(kind(403), ErrorKind::Auth);
        assert_eq!(kind(429), ErrorKind::RateLimited);
        assert_eq!(kind(408), ErrorKind::Timeout);
        assert_eq!(kind(503), ErrorKind::ServerError);
        assert_eq!(kind(422), ErrorKind::Rejected);
        assert_eq!(kind(413), ErrorKind::TooLarge);
        assert_eq!(kind(415), ErrorKind::UnsupportedFormat);
        assert_eq!(kind(302), ErrorKind::Failed);
        for s in [429, 408, 500, 503] {
            assert!(kind(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 404, 413, 415, 422] {
            assert!(!kind(s).is_retryable(), "{s}");
        }
    }

    #[test]
    fn long_upstream_messages_are_cut() {
        assert_eq!(excerpt("  short  "), "short");
        let long = "é".repeat(400);
        assert_eq!(excerpt(&long).chars().count(), 301);
    }
}
