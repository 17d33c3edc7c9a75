//! Slack incoming webhooks: a Block Kit message with a plain-text fallback; `200 ok` is
//! delivered, and Slack's plain-text error words become messages that say what to fix.

use async_trait::async_trait;
use serde_json::json;

use super::{AlertState, Notification, Notifier, NotifyError, Severity};
use crate::config::{NotifierConfig, NotifierKind, Secret};
use crate::providers::http::HttpBase;
use crate::providers::{ErrorKind, RetryPolicy, Scrubber};

pub struct Slack {
    base: HttpBase,
    url: Secret,
}

impl Slack {
    pub fn new(
        config: &NotifierConfig,
        retry: RetryPolicy,
        scrub: Scrubber,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            base: HttpBase::new(
                "slack",
                super::display("Slack", &config.name),
                retry,
                config.timeout_ms,
                super::CONCURRENCY,
                scrub,
            )?,
            url: super::required_url(config)?.clone(),
        })
    }
}

/// The message: the title as the notification text, then the summary, the figures and a link.
pub(super) fn body(n: &Notification) -> serde_json::Value {
    let icon = match (n.state, n.severity) {
        (AlertState::Resolved, _) => ":white_check_mark:",
        (AlertState::Firing, Severity::Critical) => ":red_circle:",
        (AlertState::Firing, Severity::Warning) => ":warning:",
        (AlertState::Firing, Severity::Info) => ":information_source:",
    };
    let mut fields = vec![
        json!({"type": "mrkdwn", "text": format!("*Severity*\n{}", n.severity.as_str())}),
        json!({"type": "mrkdwn", "text": format!("*Since*\n{}", n.started_rfc3339())}),
    ];
    // Block Kit allows ten fields per section.
    for (key, value) in n.details.iter().take(8) {
        fields.push(json!({"type": "mrkdwn", "text": format!("*{key}*\n{value}")}));
    }
    json!({
        "text": n.title(),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("{icon} *{}*", n.title())}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": format!("<{}|Open aimake> · alert `{}`", n.link, n.dedup_key)}
            ]},
        ],
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

#[async_trait]
impl Notifier for Slack {
    fn kind(&self) -> NotifierKind {
        NotifierKind::Slack
    }

    fn target(&self) -> String {
        super::redacted_origin(&self.url)
    }

    async fn deliver(&self, n: &Notification) -> Result<(), NotifyError> {
        let body = body(n);
        let base = &self.base;
        base.call(|| async {
            let reply = base
                .send(base.client.post(self.url.expose()).json(&body))
                .await?;
            let said = String::from_utf8_lossy(&reply.body);
            let said = said.trim();
            if reply.status.is_success() {
                if said == "ok" {
                    return Ok(());
                }
                return Err(base.error(
                    ErrorKind::Failed,
                    format!(
                        "{} answered `{}` instead of `ok`",
                        base.display,
                        base.excerpt(said)
                    ),
                ));
            }
            let hint = match reply.status.as_u16() {
                400 => "Slack refused the message",
                403 | 404 | 410 => "the webhook is revoked, archived or wrong: check its url",
                429 => "Slack is rate limiting this webhook",
                _ => "Slack failed",
            };
            Err(super::http_refusal(base, &reply, hint))
        })
        .await
    }
}
