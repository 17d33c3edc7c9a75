//! Alert notifications: what an alert hands over, the notifiers that deliver it (Slack, email,
//! PagerDuty, a signed webhook), and the registry that sends to them and keeps their record.
//!
//! Every notifier retries under the shared [`RetryPolicy`] with its own timeout, and every
//! error passes through the [`Scrubber`], which knows the notifiers' URLs, keys and passwords.

mod email;
mod pagerduty;
mod slack;
mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use crate::config::{Config, NotifierConfig, NotifierKind, Secret};
use crate::providers::http::{HttpBase, Reply, status_kind};
use crate::providers::{ErrorKind, ProviderError, RetryPolicy, Scrubber};

/// Deliveries one notifier makes at once: alerts are rare, and a burst should not open a
/// connection per alert.
const CONCURRENCY: usize = 4;

/// A delivery failure: its message is scrubbed and safe to show and log; `kind` says
/// whether another attempt could help.
pub type NotifyError = ProviderError;

/// How urgent an alert is: the one type the alert history stores.
pub use crate::db::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// One alert's news, as the alert engine hands it to every notifier.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The rule's name (`error_rate`).
    pub alert: String,
    pub severity: Severity,
    pub state: AlertState,
    /// One line a person reads first.
    pub summary: String,
    /// Figures behind it (`value`, `threshold`, `window`), in a stable order.
    pub details: BTreeMap<String, String>,
    pub started_at: OffsetDateTime,
    /// The same for the firing, its repeats and its resolve, and new for the next firing:
    /// PagerDuty resolves the incident it opened by this key.
    pub dedup_key: String,
    /// The server's public URL, for a link back.
    pub link: String,
}

impl Notification {
    /// What `aimake alerts test` and the web app's button send.
    pub fn test(public_url: &str) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            alert: "test".into(),
            severity: Severity::Info,
            state: AlertState::Firing,
            summary: "Test notification from aimake: alerts reach this channel".into(),
            details: BTreeMap::from([("sent_by".to_string(), "aimake alerts test".to_string())]),
            started_at: now,
            dedup_key: format!("aimake-test-{}", ulid::Ulid::generate()),
            link: public_url.to_string(),
        }
    }

    /// `[FIRING] error_rate: …`, the subject line every channel starts with.
    pub fn title(&self) -> String {
        let state = match self.state {
            AlertState::Firing => "FIRING",
            AlertState::Resolved => "RESOLVED",
        };
        format!("[{state}] {}: {}", self.alert, self.summary)
    }

    /// RFC 3339 of `started_at`.
    pub fn started_rfc3339(&self) -> String {
        rfc3339(self.started_at)
    }

    /// The link's host, as PagerDuty's `source`.
    pub fn source(&self) -> String {
        url::Url::parse(&self.link)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "aimake".into())
    }
}

pub(crate) fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// One way of delivering a notification.
#[async_trait]
pub trait Notifier: Send + Sync {
    fn kind(&self) -> NotifierKind;
    /// Where it delivers, without credentials: `https://hooks.slack.com`, `smtp.example:587`.
    fn target(&self) -> String;
    /// Delivers once, retries included; never longer than timeout × attempts plus the waits.
    async fn deliver(&self, notification: &Notification) -> Result<(), NotifyError>;
}

/// The record of one notifier, as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NotifierStatus {
    pub name: String,
    pub kind: NotifierKind,
    pub target: String,
    pub sent: u64,
    pub failed: u64,
    pub last_error: Option<String>,
    /// RFC 3339.
    pub last_error_at: Option<String>,
}

/// One notifier's answer to a test notification.
#[derive(Debug, Clone, Serialize)]
pub struct TestOutcome {
    pub name: String,
    pub kind: NotifierKind,
    pub delivered: bool,
    /// Why it was not delivered: scrubbed, safe to show.
    pub error: Option<String>,
}

struct Entry {
    name: String,
    notifier: Arc<dyn Notifier>,
    sent: AtomicU64,
    failed: AtomicU64,
    last_error: std::sync::Mutex<Option<(String, OffsetDateTime)>>,
}

/// The configured notifiers, by name. Cheap to clone.
#[derive(Clone, Default)]
pub struct Notifiers {
    entries: Arc<[Entry]>,
}

/// The outcome of one notifier's delivery.
pub type Delivery = (String, Result<(), NotifyError>);

#[derive(Debug, thiserror::Error)]
#[error("no notifier named `{0}` (see alerts.notifiers)")]
pub struct UnknownNotifier(pub String);

impl Notifiers {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        Self::from_config_with(
            config,
            RetryPolicy::from_config(&config.alerts.retry.policy()),
        )
    }

    /// As `from_config`, with a retry policy of the caller's (tests make backoff instant).
    pub fn from_config_with(config: &Config, retry: RetryPolicy) -> anyhow::Result<Self> {
        let scrub = Scrubber::from_config(config);
        let entries = config
            .alerts
            .notifiers
            .iter()
            .map(|c| {
                let notifier = build(c, retry.clone(), scrub.clone())?;
                Ok(Entry {
                    name: c.name.clone(),
                    notifier,
                    sent: AtomicU64::new(0),
                    failed: AtomicU64::new(0),
                    last_error: std::sync::Mutex::new(None),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            entries: entries.into(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    /// Sends to every notifier at once; each result in configuration order.
    pub async fn send(&self, notification: &Notification) -> Vec<Delivery> {
        self.send_where(notification, |_| true).await
    }

    /// Sends to the named notifiers (a rule's list); unknown names are reported as errors.
    pub async fn send_to(&self, names: &[String], notification: &Notification) -> Vec<Delivery> {
        self.send_where(notification, |e| names.contains(&e.name))
            .await
    }

    /// A test notification to one notifier, or to all of them when `name` is `None`: what
    /// `aimake alerts test` prints and the admin API answers.
    pub async fn test(
        &self,
        name: Option<&str>,
        public_url: &str,
    ) -> Result<Vec<TestOutcome>, UnknownNotifier> {
        if let Some(name) = name
            && !self.entries.iter().any(|e| e.name == name)
        {
            return Err(UnknownNotifier(name.to_string()));
        }
        let notification = Notification::test(public_url);
        let deliveries = self
            .send_where(&notification, |e| name.is_none_or(|n| e.name == n))
            .await;
        Ok(deliveries
            .into_iter()
            .map(|(name, result)| {
                let kind = self
                    .entries
                    .iter()
                    .find(|e| e.name == name)
                    .map(|e| e.notifier.kind())
                    .expect("a delivery comes from a configured notifier");
                TestOutcome {
                    name,
                    kind,
                    delivered: result.is_ok(),
                    error: result.err().map(|e| e.message),
                }
            })
            .collect())
    }

    async fn send_where(
        &self,
        notification: &Notification,
        pick: impl Fn(&Entry) -> bool,
    ) -> Vec<Delivery> {
        let sends = self.entries.iter().filter(|e| pick(e)).map(|e| async move {
            let result = e.notifier.deliver(notification).await;
            match &result {
                Ok(()) => {
                    e.sent.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        notifier = %e.name,
                        alert = %notification.alert,
                        state = notification.state.as_str(),
                        "notification delivered"
                    );
                }
                Err(error) => {
                    e.failed.fetch_add(1, Ordering::Relaxed);
                    *e.last_error.lock().expect("never poisoned") =
                        Some((error.message.clone(), OffsetDateTime::now_utc()));
                    tracing::warn!(
                        notifier = %e.name,
                        alert = %notification.alert,
                        state = notification.state.as_str(),
                        error = %error,
                        "notification failed"
                    );
                }
            }
            (e.name.clone(), result)
        });
        futures::future::join_all(sends).await
    }

    /// Every notifier's record, in configuration order.
    pub fn status(&self) -> Vec<NotifierStatus> {
        self.entries
            .iter()
            .map(|e| {
                let last = e.last_error.lock().expect("never poisoned").clone();
                NotifierStatus {
                    name: e.name.clone(),
                    kind: e.notifier.kind(),
                    target: e.notifier.target(),
                    sent: e.sent.load(Ordering::Relaxed),
                    failed: e.failed.load(Ordering::Relaxed),
                    last_error_at: last.as_ref().map(|(_, at)| rfc3339(*at)),
                    last_error: last.map(|(message, _)| message),
                }
            })
            .collect()
    }
}

fn build(
    config: &NotifierConfig,
    retry: RetryPolicy,
    scrub: Scrubber,
) -> anyhow::Result<Arc<dyn Notifier>> {
    Ok(match config.kind {
        NotifierKind::Slack => Arc::new(slack::Slack::new(config, retry, scrub)?),
        NotifierKind::Email => Arc::new(email::Email::new(config, retry, scrub)?),
        NotifierKind::Pagerduty => Arc::new(pagerduty::PagerDuty::new(config, retry, scrub)?),
        NotifierKind::Webhook => Arc::new(webhook::Webhook::new(config, retry, scrub)?),
    })
}

/// A URL's scheme and host only: its path and query may be the credential.
fn redacted_origin(url: &Secret) -> String {
    match url::Url::parse(url.expose()) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}/…", u.scheme()),
            (Some(host), None) => format!("{}://{host}/…", u.scheme()),
            _ => "[redacted]".into(),
        },
        Err(_) => "[redacted]".into(),
    }
}

/// The `url` key, which validation made required for this kind.
fn required_url(config: &NotifierConfig) -> anyhow::Result<&Secret> {
    config
        .url
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("alerts.notifiers[{}].url: required", config.name))
}

/// A refusal by an HTTP receiver, in its own words: 429 and 5xx keep their kind (retried,
/// with any `Retry-After`); a 401/403 is a refused request, not a provider's API key.
fn http_refusal(base: &HttpBase, reply: &Reply, hint: &str) -> NotifyError {
    let status = reply.status;
    let said = String::from_utf8_lossy(&reply.body);
    let said = match said.trim() {
        "" => String::new(),
        s => format!(" `{}`", base.excerpt(s)),
    };
    let kind = match status_kind(status) {
        ErrorKind::Auth => ErrorKind::Rejected,
        kind => kind,
    };
    let retry_after = matches!(kind, ErrorKind::RateLimited | ErrorKind::ServerError)
        .then(|| reply.retry_after())
        .flatten();
    base.error(
        kind,
        format!("{} answered {status}{said}: {hint}", base.display),
    )
    .with_retry_after(retry_after)
    .with_status(status.as_u16())
}

/// `Slack notifier ops`, as messages name a notifier.
fn display(kind: &str, name: &str) -> String {
    format!("{kind} notifier `{name}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_url_is_shown_as_its_origin_only() {
        let url = Secret::new("https://hooks.slack.com/services/T000/B000/w3bh00kS3cret");
        assert_eq!(redacted_origin(&url), "https://hooks.slack.com/…");
        let url = Secret::new("http://127.0.0.1:9000/hook?token=abc");
        assert_eq!(redacted_origin(&url), "http://127.0.0.1:9000/…");
        assert_eq!(redacted_origin(&Secret::new("not a url")), "[redacted]");
    }

    #[test]
    fn the_title_says_the_state_the_alert_and_the_summary() {
        let mut n = Notification::test("https://audio.example.org");
        assert_eq!(
            n.title(),
            "[FIRING] test: Test notification from aimake: alerts reach this channel"
        );
        n.state = AlertState::Resolved;
        assert!(n.title().starts_with("[RESOLVED] test: "));
        assert_eq!(n.source(), "audio.example.org");
    }
}
