//! Error reports to Sentry or a self-hosted GlitchTip through the official `sentry` crate:
//! server errors and handler panics seen at the edge, the web app's uncaught errors, and a
//! sampled trace per request. Built only when `sentry.dsn` is set; without it the server holds
//! `None` and does no work per request.
//!
//! Each server has its own client (no process-wide hub), so two servers in one process (the
//! tests) report to their own endpoints. What is sent is named field by field below, and
//! [`strip`] runs on every event before it leaves: no headers, cookies, bodies, query strings
//! or addresses, and every text passes through the [`Scrubber`].

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use sentry::protocol::{self, Event, Exception, Level, SpanStatus, User, Value};
use sentry::transports::ReqwestHttpTransportOptions;
use sentry::{ClientOptions, Hub, Scope, TransactionContext};

use crate::config::Config;
use crate::db::UserId;
pub use crate::error::ServerProblem;
use crate::providers::Scrubber;

/// How long shutdown waits for reports still queued.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// A report that cannot reach the collector in this long is dropped rather than holding the
/// queue (the transport keeps at most 30 waiting and drops the rest).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest stack trace kept from the web app, in characters.
const MAX_STACK_CHARS: usize = 8 * 1024;

/// Longest page path kept from the web app, in characters.
const MAX_PATH_CHARS: usize = 512;

/// Longest short text (user agent, release) kept from the web app, in characters.
const MAX_SHORT_CHARS: usize = 256;

/// The error reporter: a `sentry` client with this server's DSN, environment and release.
pub struct ErrorReports {
    client: Arc<sentry::Client>,
    /// Starts the request traces on this server's client.
    hub: Hub,
}

impl std::fmt::Debug for ErrorReports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ErrorReports")
    }
}

impl ErrorReports {
    /// The reporter for `sentry.dsn`, or `None` when no DSN is set.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Arc<Self>>> {
        let Some(dsn) = config.sentry.dsn() else {
            return Ok(None);
        };
        let dsn: sentry::types::Dsn = dsn
            .parse()
            .map_err(|e| anyhow::anyhow!("sentry.dsn: not a DSN ({e})"))?;
        let scrub = Scrubber::from_config(config);
        let http = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the error reports' HTTP client: {e}"))?;
        let mut options = ClientOptions::default()
            .traces_sample_rate(config.sentry.traces_sample_rate.clamp(0.0, 1.0));
        options.dsn = Some(dsn);
        options.release = Some(format!("aimake@{}", crate::VERSION).into());
        options.environment = Some(config.sentry.environment.clone().into());
        options.send_default_pii = false;
        // No integrations: panics are reported at the edge with their request, and nothing
        // else (no host names, no process environment) is collected.
        options.default_integrations = false;
        options.shutdown_timeout = FLUSH_TIMEOUT;
        options.before_send = Some(Arc::new(move |event| Some(strip(event, &scrub))));
        options.transport = Some(Arc::new(Transport(http)));
        let client = Arc::new(sentry::Client::with_options(options));
        let hub = Hub::new(Some(client.clone()), Arc::new(Scope::default()));
        Ok(Some(Arc::new(Self { client, hub })))
    }

    /// What the edge keeps for one request: its method, and the route and user once known.
    /// Starts the request's trace (sent only if sampled).
    pub fn begin(&self, method: &Method) -> Arc<RequestTrace> {
        let transaction = self
            .hub
            .start_transaction(TransactionContext::new("request", "http.server"));
        Arc::new(RequestTrace {
            method: method.clone(),
            route: OnceLock::new(),
            user: OnceLock::new(),
            transaction,
        })
    }

    /// Ends a request: its trace is named by the route and sent if sampled, and a server
    /// error is reported with what the answer says went wrong.
    pub fn finish(
        &self,
        trace: &RequestTrace,
        request_id: &str,
        status: StatusCode,
        refused: bool,
        problem: Option<&ServerProblem>,
    ) {
        let route = trace.route();
        let tx = &trace.transaction;
        tx.set_name(route);
        tx.set_tag("request_id", request_id);
        tx.set_tag("http.method", trace.method.as_str());
        tx.set_data("http.response.status_code", status.as_u16().into());
        tx.set_status(span_status(status));
        tx.set_request(protocol::Request {
            method: Some(trace.method.to_string()),
            ..Default::default()
        });
        tx.clone().finish();
        if refused || !status.is_server_error() {
            return;
        }
        let (ty, detail) = match problem {
            Some(ServerProblem::Panic(message)) => ("panic", message.as_ref()),
            Some(ServerProblem::Error(message)) => ("server_error", message.as_ref()),
            None => ("server_error", status.canonical_reason().unwrap_or("error")),
        };
        let mut event = Event {
            level: Level::Error,
            logger: Some("aimake::http".into()),
            transaction: Some(route.into()),
            message: Some(format!(
                "{} {route} answered {}",
                trace.method,
                status.as_u16()
            )),
            exception: vec![Exception {
                ty: ty.into(),
                value: Some(detail.into()),
                ..Default::default()
            }]
            .into(),
            user: trace.user.get().map(|id| user(&id.to_string())),
            request: Some(protocol::Request {
                method: Some(trace.method.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        event
            .contexts
            .insert("trace".into(), tx.get_trace_context().into());
        event.tags.insert("request_id".into(), request_id.into());
        event.tags.insert("route".into(), route.into());
        event
            .tags
            .insert("http.method".into(), trace.method.to_string());
        event
            .tags
            .insert("http.status_code".into(), status.as_u16().to_string());
        self.client.capture_event(event, None);
    }

    /// Forwards one of the web app's uncaught errors.
    pub fn client_error(
        &self,
        report: &ClientError<'_>,
        request_id: &str,
        user_id: Option<UserId>,
    ) {
        let mut event = Event {
            level: Level::Error,
            logger: Some("web".into()),
            platform: "javascript".into(),
            transaction: Some(page_path(report.path)),
            exception: vec![Exception {
                ty: "Error".into(),
                value: Some(report.message.into()),
                ..Default::default()
            }]
            .into(),
            user: user_id.map(|id| user(&id.to_string())),
            ..Default::default()
        };
        event.tags.insert("source".into(), "web".into());
        event.tags.insert("request_id".into(), request_id.into());
        if let Some(release) = report.release {
            event
                .tags
                .insert("web.release".into(), cut(release, MAX_SHORT_CHARS));
        }
        if let Some(stack) = report.stack {
            event
                .extra
                .insert("stack".into(), cut(stack, MAX_STACK_CHARS).into());
        }
        if let Some(agent) = report.user_agent {
            event
                .extra
                .insert("user_agent".into(), cut(agent, MAX_SHORT_CHARS).into());
        }
        self.client.capture_event(event, None);
    }

    /// Waits up to `timeout` for queued reports to be sent.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.client.flush(Some(timeout))
    }

    /// Sends what is queued (waiting up to `timeout`) and stops the sender.
    pub fn close(&self, timeout: Duration) -> bool {
        self.client.close(Some(timeout))
    }
}

/// One request as the reporter sees it, shared by the edge and (through the request's
/// extensions) the router and the authentication extractors that fill it in.
pub struct RequestTrace {
    method: Method,
    route: OnceLock<Box<str>>,
    user: OnceLock<UserId>,
    transaction: sentry::Transaction,
}

impl RequestTrace {
    pub fn set_route(&self, route: &str) {
        let _ = self.route.set(route.into());
    }

    pub fn set_user(&self, user: UserId) {
        let _ = self.user.set(user);
    }

    /// The matched route's pattern; requests no route matched are the web app's pages.
    fn route(&self) -> &str {
        self.route.get().map_or("spa", |r| r)
    }
}

/// One of the web app's uncaught errors, as it reported it.
#[derive(Debug, Clone, Copy)]
pub struct ClientError<'a> {
    pub message: &'a str,
    pub stack: Option<&'a str>,
    pub path: &'a str,
    pub user_agent: Option<&'a str>,
    pub release: Option<&'a str>,
}

/// The page's path alone: a query string or fragment (tokens, search terms) is dropped.
pub fn page_path(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    cut(&url[..end], MAX_PATH_CHARS)
}

/// `text` cut to `max` characters on a character boundary.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_string(),
        None => text.to_string(),
    }
}

fn user(id: &str) -> User {
    User {
        id: Some(id.into()),
        ..Default::default()
    }
}

fn span_status(status: StatusCode) -> SpanStatus {
    match status.as_u16() {
        ..400 => SpanStatus::Ok,
        401 => SpanStatus::Unauthenticated,
        403 => SpanStatus::PermissionDenied,
        404 => SpanStatus::NotFound,
        408 | 504 => SpanStatus::DeadlineExceeded,
        429 => SpanStatus::ResourceExhausted,
        400..500 => SpanStatus::InvalidArgument,
        503 => SpanStatus::Unavailable,
        _ => SpanStatus::InternalError,
    }
}

/// Runs on every event before it is sent: whatever put them there, requests lose their
/// headers, cookies, bodies, query strings, URLs and environment, users keep only their id,
/// and every text is scrubbed of secrets.
pub fn strip(mut event: Event<'static>, scrub: &Scrubber) -> Event<'static> {
    if let Some(request) = event.request.as_mut() {
        *request = protocol::Request {
            method: request.method.take(),
            ..Default::default()
        };
    }
    if let Some(user) = event.user.as_mut() {
        *user = User {
            id: user.id.take(),
            ..Default::default()
        };
    }
    event.server_name = None;
    event.breadcrumbs = Default::default();
    event.message = event.message.map(|m| scrub.message(&m));
    event.transaction = event.transaction.map(|t| scrub.clean(&t));
    for exception in &mut event.exception.values {
        exception.value = exception.value.as_deref().map(|v| scrub.message(v));
    }
    for value in event.tags.values_mut() {
        *value = scrub.clean(value);
    }
    for value in event.extra.values_mut() {
        if let Value::String(text) = value {
            *text = scrub.clean(text);
        }
    }
    event
}

/// The crate's reqwest transport (its own thread, queue, rate limits and `Retry-After`
/// handling) with a client that gives up on a stuck collector.
struct Transport(reqwest::Client);

impl sentry::TransportFactory for Transport {
    fn create_transport_with_options(
        &self,
        options: sentry::TransportOptions,
    ) -> Arc<dyn sentry::Transport> {
        Arc::new(
            ReqwestHttpTransportOptions::from(options)
                .with_client(self.0.clone())
                .build(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn a_page_path_loses_its_query_and_fragment() {
        assert_eq!(page_path("/library?token=abc#x"), "/library");
        assert_eq!(page_path("/a#frag?x"), "/a");
        assert_eq!(page_path("/plain"), "/plain");
        assert_eq!(page_path(&"é".repeat(600)).chars().count(), MAX_PATH_CHARS);
    }

    #[test]
    fn stripping_keeps_the_user_id_and_method_and_drops_headers_cookies_bodies_and_secrets() {
        let scrub = Scrubber::new([&Secret::new("sk-configured-secret")]);
        let mut event = Event {
            message: Some("failed with key sk-configured-secret".into()),
            request: Some(protocol::Request {
                method: Some("POST".into()),
                url: "http://h/x?token=t".parse().ok(),
                data: Some("body-secret".into()),
                query_string: Some("token=t".into()),
                cookies: Some("aimake_session=cookie-secret".into()),
                headers: [(
                    "Authorization".to_string(),
                    "Bearer header-secret".to_string(),
                )]
                .into_iter()
                .collect(),
                ..Default::default()
            }),
            user: Some(User {
                id: Some("u1".into()),
                email: Some("a@b.example".into()),
                ..Default::default()
            }),
            server_name: Some("host".into()),
            ..Default::default()
        };
        event
            .extra
            .insert("stack".into(), "at f (Bearer abc.def)".into());
        let event = strip(event, &scrub);
        let text = serde_json::to_string(&event).unwrap();
        for secret in [
            "sk-configured-secret",
            "body-secret",
            "cookie-secret",
            "header-secret",
            "token=t",
            "a@b.example",
            "abc.def",
            "host",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let request = event.request.unwrap();
        assert_eq!(request.method.as_deref(), Some("POST"));
        assert_eq!(event.user.unwrap().id.as_deref(), Some("u1"));
    }

    #[test]
    fn without_a_dsn_there_is_no_reporter() {
        let mut config = Config::default();
        assert!(ErrorReports::from_config(&config).unwrap().is_none());
        config.sentry.dsn = Some(Secret::new("  "));
        assert!(ErrorReports::from_config(&config).unwrap().is_none());
    }

    #[test]
    fn a_malformed_dsn_is_refused_with_the_key_named() {
        let mut config = Config::default();
        config.sentry.dsn = Some(Secret::new("not a dsn"));
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("sentry.dsn"), "{err}");
        config.sentry.dsn = Some(Secret::new("http://public@127.0.0.1:9/1"));
        config.sentry.traces_sample_rate = 1.5;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("sentry.traces_sample_rate"), "{err}");
    }
}
