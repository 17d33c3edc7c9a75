//! PagerDuty Events API v2: a firing alert triggers, its resolve resolves, both under the
//! alert's stable `dedup_key`; 202 is accepted, 400 is final, 429 and 5xx are retried.

use async_trait::async_trait;
use serde_json::json;

use super::{AlertState, Notification, Notifier, NotifyError};
use crate::config::{NotifierConfig, NotifierKind, PAGERDUTY_EVENTS_URL, Secret};
use crate::providers::http::HttpBase;
use crate::providers::{ErrorKind, RetryPolicy, Scrubber};

/// PagerDuty's limits on a summary and a dedup key, in characters.
const MAX_SUMMARY: usize = 1024;
const MAX_DEDUP_KEY: usize = 255;

pub struct PagerDuty {
    base: HttpBase,
    url: String,
    routing_key: Secret,
}

impl PagerDuty {
    pub fn new(
        config: &NotifierConfig,
        retry: RetryPolicy,
        scrub: Scrubber,
    ) -> anyhow::Result<Self> {
        let routing_key = config.routing_key.clone().ok_or_else(|| {
            anyhow::anyhow!("alerts.notifiers[{}].routing_key: required", config.name)
        })?;
        Ok(Self {
            base: HttpBase::new(
                "pagerduty",
                super::display("PagerDuty", &config.name),
                retry,
                config.timeout_ms,
                super::CONCURRENCY,
                scrub,
            )?,
            url: config
                .url
                .as_ref()
                .map_or(PAGERDUTY_EVENTS_URL, |u| u.expose())
                .to_string(),
            routing_key: Secret::new(routing_key.expose().trim()),
        })
    }
}

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// A trigger carries the whole event; a resolve only names the incident.
pub(super) fn body(n: &Notification, routing_key: &str) -> serde_json::Value {
    let dedup_key = cut(&n.dedup_key, MAX_DEDUP_KEY);
    match n.state {
        AlertState::Resolved => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key,
        }),
        AlertState::Firing => json!({
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "payload": {
                "summary": cut(&format!("{}: {}", n.alert, n.summary), MAX_SUMMARY),
                "source": n.source(),
                "severity": n.severity.as_str(),
                "timestamp": n.started_rfc3339(),
                "component": "aimake",
                "class": n.alert,
                "custom_details": n.details,
            },
            "client": "aimake",
            "client_url": n.link,
            "links": [{"href": n.link, "text": "Open aimake"}],
        }),
    }
}

#[async_trait]
impl Notifier for PagerDuty {
    fn kind(&self) -> NotifierKind {
        NotifierKind::Pagerduty
    }

    fn target(&self) -> String {
        super::redacted_origin(&Secret::new(self.url.as_str()))
    }

    async fn deliver(&self, n: &Notification) -> Result<(), NotifyError> {
        let body = body(n, self.routing_key.expose());
        let base = &self.base;
        base.call(|| async {
            let reply = base.send(base.client.post(&self.url).json(&body)).await?;
            if reply.status.as_u16() == 202 || reply.status.is_success() {
                return Ok(());
            }
            let json = reply.json();
            let said = json.as_ref().map(|j| {
                let message = j["message"].as_str().unwrap_or_default();
                let errors: Vec<&str> = j["errors"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|e| e.as_str()).collect())
                    .unwrap_or_default();
                if errors.is_empty() {
                    message.to_string()
                } else {
                    format!("{message} ({})", errors.join("; "))
                }
            });
            if reply.status.as_u16() == 400 {
                let said = said.unwrap_or_else(|| String::from_utf8_lossy(&reply.body).into());
                return Err(base
                    .error(
                        ErrorKind::Rejected,
                        format!(
                            "{} refused the event (400): {}; check the routing_key",
                            base.display,
                            base.excerpt(&said)
                        ),
                    )
                    .with_status(400));
            }
            Err(base.status_error(&reply, said.as_deref()))
        })
        .await
    }
}
