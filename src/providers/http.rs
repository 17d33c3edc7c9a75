//! What the HTTP providers share: a client with timeouts, a concurrency gate, the retry policy,
//! and the mapping of transport failures and `Retry-After` into `ProviderError`.

use std::error::Error as _;
use std::future::Future;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::sync::Semaphore;

use super::retry::{RetryPolicy, Target};
use super::scrub::Scrubber;
use super::{ErrorKind, ProviderError};

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
        let target = Target {
            provider: self.id,
            display: &self.display,
            timeout: self.timeout,
            gate: &self.gate,
        };
        self.retry.run(target, attempt).await
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
        if e.is_timeout() {
            return self.error(
                ErrorKind::Timeout,
                format!(
                    "{} did not answer within {}",
                    self.display,
                    super::retry::human_duration(self.timeout)
                ),
            );
        }
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
    }

    /// The classification every HTTP API agrees on, for statuses a provider has no
    /// more specific reading of.
    pub fn status_error(&self, reply: &Reply, upstream: Option<&str>) -> ProviderError {
        let said = upstream
            .map(|m| format!(": {}", self.excerpt(m)))
            .unwrap_or_default();
        let status = reply.status;
        match status.as_u16() {
            401 | 403 => self.error(
                ErrorKind::Auth,
                format!("{} rejected the API key", self.display),
            ),
            429 => self
                .error(
                    ErrorKind::RateLimited,
                    format!("{} is rate limiting requests{said}", self.display),
                )
                .with_retry_after(reply.retry_after()),
            408 => self.error(
                ErrorKind::Timeout,
                format!("{} timed out{said}", self.display),
            ),
            500..=599 => self
                .error(
                    ErrorKind::ServerError,
                    format!("{} had a server error ({status}){said}", self.display),
                )
                .with_retry_after(reply.retry_after()),
            400..=499 => self.error(
                ErrorKind::Rejected,
                format!("{} rejected the request ({status}){said}", self.display),
            ),
            _ => self.error(
                ErrorKind::Failed,
                format!("{} answered {status} unexpectedly", self.display),
            ),
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
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
    fn long_upstream_messages_are_cut() {
        assert_eq!(excerpt("  short  "), "short");
        let long = "é".repeat(400);
        assert_eq!(excerpt(&long).chars().count(), 301);
    }
}
