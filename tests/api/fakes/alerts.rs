//! Fake alert sinks on 127.0.0.1:0, following shared providers.md §5: a Slack incoming
//! webhook, the PagerDuty Events API v2, a Standard Webhooks receiver that checks signatures,
//! and an SMTP server that records what it is given.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{Recorded, Server};

/// What the next request is answered with, instead of the contract's success.
#[derive(Debug, Clone)]
pub enum Answer {
    /// 429, with `Retry-After` in whole seconds when given.
    RateLimited { retry_after_s: Option<u64> },
    /// Any status with a plain-text body (Slack's error words, a receiver's 5xx).
    Status(u16, &'static str),
    /// This status with the request's path, query and body quoted back, as a misconfigured
    /// gateway or proxy does.
    Echo(u16),
}

#[derive(Default)]
struct Sink {
    requests: Mutex<Vec<Recorded>>,
    answers: Mutex<VecDeque<Answer>>,
}

impl Sink {
    fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) {
        self.requests.lock().unwrap().push(Recorded {
            method: method.clone(),
            uri: uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            headers: headers.clone(),
            body: body.clone(),
        });
    }

    /// The scripted answer for this request, if one is queued.
    fn scripted(&self) -> Option<Response> {
        let answer = self.answers.lock().unwrap().pop_front()?;
        if let Answer::Echo(code) = answer {
            let last = self.requests.lock().unwrap().last().cloned().unwrap();
            let said = format!(
                "bad gateway request {} {}",
                last.uri,
                String::from_utf8_lossy(&last.body)
            );
            return Some((StatusCode::from_u16(code).unwrap(), said).into_response());
        }
        Some(match answer {
            Answer::RateLimited { retry_after_s } => {
                let mut r = (StatusCode::TOO_MANY_REQUESTS, "rate_limited").into_response();
                if let Some(s) = retry_after_s {
                    r.headers_mut()
                        .insert("retry-after", s.to_string().parse().unwrap());
                }
                r
            }
            Answer::Status(code, body) => {
                (StatusCode::from_u16(code).unwrap(), body).into_response()
            }
            Answer::Echo(_) => unreachable!("answered above"),
        })
    }
}

/// What every sink offers its tests.
pub struct SinkHandle {
    sink: Arc<Sink>,
    server: Server,
}

impl SinkHandle {
    pub fn requests(&self) -> Vec<Recorded> {
        self.sink.requests.lock().unwrap().clone()
    }

    pub fn answer_next(&self, n: usize, answer: Answer) {
        self.sink
            .answers
            .lock()
            .unwrap()
            .extend(std::iter::repeat_n(answer, n));
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.server.addr)
    }
}

impl SinkHandle {
    /// A fake endpoint answering POSTs at `path` (every path when None): each request is
    /// recorded first, then `answer` decides, given the sink for what the test scripted.
    async fn serve<F>(path: Option<&str>, answer: F) -> Self
    where
        F: Fn(&Sink, &Uri, &HeaderMap, &Bytes) -> Response + Clone + Send + Sync + 'static,
    {
        let sink = Arc::new(Sink::default());
        let handler = post(
            move |State(sink): State<Arc<Sink>>,
                  method: Method,
                  uri: Uri,
                  headers: HeaderMap,
                  body: Bytes| async move {
                sink.record(&method, &uri, &headers, &body);
                answer(&sink, &uri, &headers, &body)
            },
        );
        let router = match path {
            Some(path) => Router::new().route(path, handler),
            None => Router::new().fallback(handler),
        };
        let server = Server::start(router.with_state(sink.clone())).await;
        Self { sink, server }
    }
}

/// A Slack incoming webhook at `/services/T000/B000/<secret>`: 200 `ok` for a message with
/// text, Slack's plain-text error words otherwise, 404 `no_service` for another path.
pub struct FakeSlack {
    pub sink: SinkHandle,
    pub path: String,
}

impl FakeSlack {
    pub async fn start(secret: &str) -> Self {
        let path = format!("/services/T000/B000/{secret}");
        let expected = path.clone();
        let sink = SinkHandle::serve(None, move |sink, uri, _, body| {
            if uri.path() != expected {
                return (StatusCode::NOT_FOUND, "no_service").into_response();
            }
            if let Some(r) = sink.scripted() {
                return r;
            }
            let Ok(message) = serde_json::from_slice::<Value>(body) else {
                return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
            };
            if message["text"].as_str().is_none_or(str::is_empty)
                && message["blocks"].as_array().is_none_or(Vec::is_empty)
            {
                return (StatusCode::BAD_REQUEST, "no_text").into_response();
            }
            if message.get("blocks").is_some_and(|b| !b.is_array()) {
                return (StatusCode::BAD_REQUEST, "invalid_blocks").into_response();
            }
            (StatusCode::OK, "ok").into_response()
        })
        .await;
        Self { sink, path }
    }

    pub fn url(&self) -> String {
        format!("{}{}", self.sink.base(), self.path)
    }
}

/// PagerDuty Events API v2 at `/v2/enqueue`: 202 with the dedup key (generated when absent),
/// 400 `invalid event` for a bad event or a routing key it does not know.
pub struct FakePagerDuty {
    pub sink: SinkHandle,
    pub routing_key: String,
}

impl FakePagerDuty {
    pub async fn start(routing_key: &str) -> Self {
        let key = routing_key.to_string();
        let sink = SinkHandle::serve(Some("/v2/enqueue"), move |sink, _, _, body| {
            if let Some(r) = sink.scripted() {
                return r;
            }
            match check_event(body, &key) {
                Ok(dedup_key) => (
                    StatusCode::ACCEPTED,
                    axum::Json(json!({
                        "status": "success",
                        "message": "Event processed",
                        "dedup_key": dedup_key,
                    })),
                )
                    .into_response(),
                Err(errors) => (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({
                        "status": "invalid event",
                        "message": "Event object is invalid",
                        "errors": errors,
                    })),
                )
                    .into_response(),
            }
        })
        .await;
        Self {
            sink,
            routing_key: routing_key.to_string(),
        }
    }

    pub fn url(&self) -> String {
        format!("{}/v2/enqueue", self.sink.base())
    }
}

/// The Events API's checks: the event's dedup key, or why it is invalid.
fn check_event(body: &[u8], known_key: &str) -> Result<String, Vec<String>> {
    let event: Value =
        serde_json::from_slice(body).map_err(|_| vec!["Invalid JSON".to_string()])?;
    let mut errors = Vec::new();
    match event["routing_key"].as_str() {
        None => errors.push("'routing_key' is missing or blank".to_string()),
        Some(k) if k.chars().count() != 32 || k != known_key => {
            errors.push("Invalid routing key".to_string())
        }
        Some(_) => {}
    }
    let action = event["event_action"].as_str().unwrap_or_default();
    let dedup_key = event["dedup_key"].as_str().map(str::to_string);
    if dedup_key.as_ref().is_some_and(|k| k.chars().count() > 255) {
        errors.push("'dedup_key' is too long".to_string());
    }
    match action {
        "trigger" => {
            let payload = &event["payload"];
            for field in ["summary", "source", "severity"] {
                if payload[field].as_str().is_none_or(str::is_empty) {
                    errors.push(format!("'payload.{field}' is missing or blank"));
                }
            }
            if payload["summary"]
                .as_str()
                .is_some_and(|s| s.chars().count() > 1024)
            {
                errors.push("'payload.summary' is too long".to_string());
            }
            if let Some(s) = payload["severity"].as_str()
                && !["critical", "error", "warning", "info"].contains(&s)
            {
                errors.push("'payload.severity' is invalid".to_string());
            }
        }
        "acknowledge" | "resolve" => {
            if dedup_key.is_none() {
                errors.push("'dedup_key' is required for this event_action".to_string());
            }
        }
        _ => errors.push("'event_action' is invalid".to_string()),
    }
    if errors.is_empty() {
        Ok(dedup_key.unwrap_or_else(|| format!("{:032x}", rand::random::<u128>())))
    } else {
        Err(errors)
    }
}

/// A receiver of Standard Webhooks at `/hook`: 204 for a delivery whose `webhook-signature`
/// matches HMAC-SHA256(key, id.timestamp.body) and whose timestamp is within 5 minutes,
/// 401 otherwise.
pub struct FakeWebhook {
    pub sink: SinkHandle,
}

impl FakeWebhook {
    pub async fn start(key: &[u8]) -> Self {
        let key = key.to_vec();
        let sink = SinkHandle::serve(Some("/hook"), move |sink, _, headers, body| {
            if let Some(r) = sink.scripted() {
                return r;
            }
            match verify(&key, headers, body) {
                Ok(()) => StatusCode::NO_CONTENT.into_response(),
                Err(why) => (StatusCode::UNAUTHORIZED, why).into_response(),
            }
        })
        .await;
        Self { sink }
    }

    pub fn url(&self) -> String {
        format!("{}/hook", self.sink.base())
    }
}

/// The receiver's side of Standard Webhooks, written from the spec.
pub fn verify(key: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let id = header("webhook-id").ok_or("missing webhook-id")?;
    let timestamp = header("webhook-timestamp").ok_or("missing webhook-timestamp")?;
    let signatures = header("webhook-signature").ok_or("missing webhook-signature")?;
    let at: i64 = timestamp.parse().map_err(|_| "bad webhook-timestamp")?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if (now - at).abs() > 300 {
        return Err("timestamp outside the tolerance");
    }
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    // Several space-separated `v1,<sig>` may be sent during a key rotation.
    if signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
    {
        Ok(())
    } else {
        Err("invalid signature")
    }
}

/// One message as the SMTP server received it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The DATA section, headers and body, with dot-stuffing undone.
    pub data: String,
    /// The `AUTH PLAIN` identity it logged in as, if any.
    pub user: Option<String>,
}

/// How the SMTP server answers the next transactions' `MAIL FROM`.
#[derive(Debug, Clone, Copy)]
pub enum SmtpAnswer {
    /// 451: try again later.
    Transient,
    /// 554: refused for good.
    Permanent,
}

#[derive(Default)]
struct Mailbox {
    mails: Mutex<Vec<Mail>>,
    answers: Mutex<VecDeque<SmtpAnswer>>,
    /// Transactions started (`MAIL FROM` received), refused or not.
    attempts: Mutex<usize>,
}

/// An SMTP server in the test process (plain, no TLS) that takes `AUTH PLAIN` with one
/// user and password when they are set, and records every message.
pub struct FakeSmtp {
    pub addr: std::net::SocketAddr,
    mailbox: Arc<Mailbox>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSmtp {
    pub async fn start(login: Option<(&str, &str)>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mailbox = Arc::new(Mailbox::default());
        let login = login.map(|(u, p)| (u.to_string(), p.to_string()));
        let shared = mailbox.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let mailbox = shared.clone();
                let login = login.clone();
                tokio::spawn(async move {
                    let _ = session(socket, &mailbox, login.as_ref()).await;
                });
            }
        });
        Self {
            addr,
            mailbox,
            task,
        }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mailbox.mails.lock().unwrap().clone()
    }

    pub fn attempts(&self) -> usize {
        *self.mailbox.attempts.lock().unwrap()
    }

    pub fn answer_next(&self, n: usize, answer: SmtpAnswer) {
        self.mailbox
            .answers
            .lock()
            .unwrap()
            .extend(std::iter::repeat_n(answer, n));
    }
}

async fn session(
    socket: tokio::net::TcpStream,
    mailbox: &Mailbox,
    login: Option<&(String, String)>,
) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 fake.smtp ESMTP ready\r\n").await?;
    let (mut from, mut to, mut user) = (String::new(), Vec::new(), None);
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let upper = command.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let auth = if login.is_some() {
                "250-AUTH PLAIN\r\n"
            } else {
                ""
            };
            format!("250-fake.smtp\r\n{auth}250 8BITMIME\r\n")
        } else if upper.starts_with("HELO") {
            "250 fake.smtp\r\n".into()
        } else if let Some(encoded) = upper.strip_prefix("AUTH PLAIN ").map(|_| &command[11..]) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .unwrap_or_default();
            let parts: Vec<String> = decoded
                .split(|b| *b == 0)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            match (login, parts.as_slice()) {
                (Some((u, p)), [_, gu, gp]) if gu == u && gp == p => {
                    user = Some(u.clone());
                    "235 2.7.0 Authentication successful\r\n".into()
                }
                _ => "535 5.7.8 Authentication credentials invalid\r\n".into(),
            }
        } else if upper.starts_with("MAIL FROM:") {
            *mailbox.attempts.lock().unwrap() += 1;
            let scripted = mailbox.answers.lock().unwrap().pop_front();
            match scripted {
                Some(SmtpAnswer::Transient) => {
                    "451 4.3.0 Mail server temporarily rejected message\r\n".into()
                }
                Some(SmtpAnswer::Permanent) => "554 5.7.1 Message refused by policy\r\n".into(),
                None if login.is_some() && user.is_none() => {
                    "530 5.7.0 Authentication required\r\n".into()
                }
                None => {
                    from = address(&command[10..]);
                    to.clear();
                    "250 2.1.0 Ok\r\n".into()
                }
            }
        } else if upper.starts_with("RCPT TO:") {
            to.push(address(&command[8..]));
            "250 2.1.5 Ok\r\n".into()
        } else if upper == "DATA" {
            write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            mailbox.mails.lock().unwrap().push(Mail {
                from: std::mem::take(&mut from),
                to: std::mem::take(&mut to),
                data,
                user: user.clone(),
            });
            "250 2.0.0 Ok: queued\r\n".into()
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 Ok\r\n".into()
        } else {
            "502 5.5.2 Command not recognized\r\n".into()
        };
        write.write_all(reply.as_bytes()).await?;
    }
}

/// `<a@b>` (with optional parameters after it) → `a@b`.
fn address(arg: &str) -> String {
    let arg = arg.trim();
    arg.split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or(arg, |(inside, _)| inside)
        .to_string()
}
