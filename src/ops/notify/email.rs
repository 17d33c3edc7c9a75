//! Alert e-mail over SMTP (lettre): STARTTLS, implicit TLS or plain for a local relay,
//! optional login, a plain-text body.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, Message, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::sync::Semaphore;

use super::{Notification, Notifier, NotifyError};
use crate::config::{NotifierConfig, NotifierKind, SmtpTls};
use crate::providers::retry::Target;
use crate::providers::{ErrorKind, ProviderError, RetryPolicy, Scrubber};

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// `smtp.example.org:587`, as messages and the admin list name the server.
    server: String,
    display: String,
    retry: RetryPolicy,
    timeout: Duration,
    gate: Semaphore,
    scrub: Scrubber,
}

impl Email {
    pub fn new(
        config: &NotifierConfig,
        retry: RetryPolicy,
        scrub: Scrubber,
    ) -> anyhow::Result<Self> {
        let key = |field: &str| format!("alerts.notifiers[{}].{field}", config.name);
        let host = config
            .smtp_host
            .as_deref()
            .map(str::trim)
            .ok_or_else(|| anyhow::anyhow!("{}: required", key("smtp_host")))?;
        let port = config.smtp_port();
        let timeout = Duration::from_millis(config.timeout_ms.max(1));
        let builder = match config.smtp_tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        let mut builder = builder.port(port).timeout(Some(timeout));
        if let Some(username) = &config.smtp_username {
            let password = config
                .smtp_password
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        let from = config
            .from
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("{}: required", key("from")))?
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: {e}", key("from")))?;
        let to = config
            .to
            .iter()
            .map(|t| {
                t.parse()
                    .map_err(|e| anyhow::anyhow!("{}: `{t}`: {e}", key("to")))
            })
            .collect::<anyhow::Result<Vec<Mailbox>>>()?;
        anyhow::ensure!(
            !to.is_empty(),
            "{}: at least one recipient is required",
            key("to")
        );
        Ok(Self {
            transport: builder.build(),
            from,
            to,
            server: format!("{host}:{port}"),
            display: super::display("Email", &config.name),
            retry,
            timeout,
            gate: Semaphore::new(super::CONCURRENCY),
            scrub,
        })
    }

    fn message(&self, n: &Notification) -> Result<Message, NotifyError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(n.title())
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .body(text(n))
            .map_err(|e| self.error(ErrorKind::Failed, format!("cannot build the message: {e}")))
    }

    fn error(&self, kind: ErrorKind, message: String) -> NotifyError {
        ProviderError::new("email", kind, self.scrub.message(&message))
    }

    /// Reads lettre's error: a refusal by the server is final unless it says "try later"
    /// (4xx), a lost or refused connection and a timeout are worth another try.
    fn smtp_error(&self, e: &lettre::transport::smtp::Error) -> NotifyError {
        let (display, server) = (&self.display, &self.server);
        let cause = std::error::Error::source(e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        if e.is_timeout() {
            return self.error(
                ErrorKind::Timeout,
                format!(
                    "{display}: {server} did not answer within {}",
                    crate::providers::retry::human_duration(self.timeout)
                ),
            );
        }
        if e.is_permanent() {
            let code = e.status().map(|c| c.to_string()).unwrap_or_default();
            let kind = if code == "535" || code == "530" {
                ErrorKind::Auth
            } else {
                ErrorKind::Rejected
            };
            return self.error(kind, format!("{display}: {server} refused ({code}){cause}"));
        }
        if e.is_transient() {
            let code = e.status().map(|c| c.to_string()).unwrap_or_default();
            return self.error(
                ErrorKind::ServerError,
                format!("{display}: {server} asked to try later ({code}){cause}"),
            );
        }
        if e.is_tls() {
            return self.error(
                ErrorKind::Failed,
                format!("{display}: TLS with {server} failed{cause}; check smtp_tls and smtp_port"),
            );
        }
        self.error(
            ErrorKind::Network,
            format!("{display}: cannot reach {server} ({e}{cause})"),
        )
    }
}

/// The plain-text body: the title, the figures, when it started and where to look.
pub(super) fn text(n: &Notification) -> String {
    let mut out = format!("{}\n\n", n.title());
    out.push_str(&format!("Alert:     {}\n", n.alert));
    out.push_str(&format!("State:     {}\n", n.state.as_str()));
    out.push_str(&format!("Severity:  {}\n", n.severity.as_str()));
    out.push_str(&format!("Since:     {}\n", n.started_rfc3339()));
    for (key, value) in &n.details {
        out.push_str(&format!("{key}: {value}\n"));
    }
    out.push_str(&format!(
        "\nAlert key: {}\nOpen aimake: {}\n",
        n.dedup_key, n.link
    ));
    out
}

#[async_trait]
impl Notifier for Email {
    fn kind(&self) -> NotifierKind {
        NotifierKind::Email
    }

    fn target(&self) -> String {
        format!("smtp://{} → {} recipient(s)", self.server, self.to.len())
    }

    async fn deliver(&self, n: &Notification) -> Result<(), NotifyError> {
        let message = self.message(n)?;
        let target = Target {
            provider: "email",
            display: &self.display,
            timeout: self.timeout,
            gate: &self.gate,
        };
        self.retry
            .run(target, || async {
                self.transport
                    .send(message.clone())
                    .await
                    .map(drop)
                    .map_err(|e| self.smtp_error(&e))
            })
            .await
    }
}
