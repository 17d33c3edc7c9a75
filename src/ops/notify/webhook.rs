//! A generic JSON webhook, signed the Standard Webhooks way: `webhook-id`,
//! `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256(id.timestamp.body)>`.
//! Any 2xx is delivered; 429 and 5xx are retried, other 4xx are final.

use async_trait::async_trait;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

use super::{AlertState, Notification, Notifier, NotifyError};
use crate::config::{NotifierConfig, NotifierKind, Secret, signing_key};
use crate::providers::http::HttpBase;
use crate::providers::{RetryPolicy, Scrubber};

pub struct Webhook {
    base: HttpBase,
    url: Secret,
    /// The HMAC key, decoded once; `None` sends unsigned. No `Debug`: it never prints.
    key: Option<Vec<u8>>,
}

impl Webhook {
    pub fn new(
        config: &NotifierConfig,
        retry: RetryPolicy,
        scrub: Scrubber,
    ) -> anyhow::Result<Self> {
        let key = config.secret.as_ref().map(signing_key).transpose()?;
        Ok(Self {
            base: HttpBase::new(
                "webhook",
                super::display("Webhook", &config.name),
                retry,
                config.timeout_ms,
                super::CONCURRENCY,
                scrub,
            )?,
            url: super::required_url(config)?.clone(),
            key,
        })
    }
}

/// The body, mirroring PagerDuty's common event format.
pub(super) fn body(n: &Notification, id: &str, at: time::OffsetDateTime) -> serde_json::Value {
    json!({
        "id": id,
        "event": match n.state {
            AlertState::Firing => "alert.triggered",
            AlertState::Resolved => "alert.resolved",
        },
        "alert": n.alert,
        "severity": n.severity.as_str(),
        "summary": n.summary,
        "source": n.source(),
        "dedup_key": n.dedup_key,
        "started_at": n.started_rfc3339(),
        "timestamp": super::rfc3339(at),
        "link": n.link,
        "details": n.details,
    })
}

/// `v1,<base64>`: the Standard Webhooks signature of one delivery.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

type Hmac = hmac::Hmac<Sha256>;

#[async_trait]
impl Notifier for Webhook {
    fn kind(&self) -> NotifierKind {
        NotifierKind::Webhook
    }

    fn target(&self) -> String {
        super::redacted_origin(&self.url)
    }

    async fn deliver(&self, n: &Notification) -> Result<(), NotifyError> {
        // One id for every attempt, so the receiver can drop a retry it already handled.
        let id = format!("msg_{}", ulid::Ulid::generate());
        let base = &self.base;
        base.call(|| async {
            let now = time::OffsetDateTime::now_utc();
            let body = serde_json::to_vec(&body(n, &id, now)).expect("JSON values serialize");
            let timestamp = now.unix_timestamp();
            let mut request = base
                .client
                .post(self.url.expose())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("webhook-id", &id)
                .header("webhook-timestamp", timestamp.to_string());
            if let Some(key) = &self.key {
                request =
                    request.header("webhook-signature", signature(key, &id, timestamp, &body));
            }
            let reply = base.send(request.body(body)).await?;
            if reply.status.is_success() {
                return Ok(());
            }
            let hint = match reply.status.as_u16() {
                401 | 403 => "the receiver refused the request: check the url and the secret",
                429 => "the receiver is rate limiting deliveries",
                500..=599 => "the receiver failed",
                _ => "the receiver refused the delivery",
            };
            Err(super::http_refusal(base, &reply, hint))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_standard_webhooks_example() {
        // The Standard Webhooks reference implementations' test vector.
        let key = signing_key(&Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
