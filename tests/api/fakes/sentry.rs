//! A fake Sentry (or GlitchTip) envelope endpoint on 127.0.0.1:0, following shared
//! providers.md §6.1: `POST /api/<project>/envelope/` with the DSN's public key in the query
//! (`sentry_key=`) or the `X-Sentry-Auth` header, 401 for a wrong key, 404 for another project.
//! It decodes each envelope (a header line, then item header and payload pairs, a payload's
//! size taken from its header's `length` when given) and keeps every item and the raw bodies.
//! It can be told to answer the next envelopes 429 with `Retry-After` and
//! `X-Sentry-Rate-Limits`, as Relay does when a project is over its quota.
//!
//! Self-contained: the library's own tests use it too.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// The public key in the fake's DSN.
pub const KEY: &str = "fakepublickey";
/// The project id in the fake's DSN.
pub const PROJECT: &str = "42";

/// One item of an envelope: its header and its payload.
#[derive(Debug, Clone)]
pub struct Item {
    pub header: Value,
    pub payload: Vec<u8>,
}

impl Item {
    pub fn kind(&self) -> &str {
        self.header["type"].as_str().unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).expect("the item's payload is JSON")
    }
}

#[derive(Default)]
struct Inner {
    items: Mutex<Vec<Item>>,
    raw: Mutex<Vec<u8>>,
    envelopes: AtomicUsize,
    rejected: AtomicUsize,
    /// Envelopes still to be answered 429.
    throttle: AtomicUsize,
}

pub struct FakeSentry {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeSentry {
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let router = Router::new()
            .route("/api/{project}/envelope/", post(envelope))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self { addr, inner, task }
    }

    /// The DSN that points at this fake.
    pub fn dsn(&self) -> String {
        format!("http://{KEY}@{}/{PROJECT}", self.addr)
    }

    /// The same fake under a key it does not accept.
    pub fn dsn_with_wrong_key(&self) -> String {
        format!("http://wrongkey@{}/{PROJECT}", self.addr)
    }

    /// Every item received with the right key, in order.
    pub fn items(&self) -> Vec<Item> {
        self.inner.items.lock().unwrap().clone()
    }

    /// The payloads of the items of one type (`event`, `transaction`, …).
    pub fn of_kind(&self, kind: &str) -> Vec<Value> {
        self.items()
            .iter()
            .filter(|i| i.kind() == kind)
            .map(Item::json)
            .collect()
    }

    pub fn events(&self) -> Vec<Value> {
        self.of_kind("event")
    }

    pub fn transactions(&self) -> Vec<Value> {
        self.of_kind("transaction")
    }

    /// Every body received, accepted or not, as text.
    pub fn raw(&self) -> String {
        String::from_utf8_lossy(&self.inner.raw.lock().unwrap()).into_owned()
    }

    /// Envelopes received, accepted or not.
    pub fn envelopes(&self) -> usize {
        self.inner.envelopes.load(Ordering::SeqCst)
    }

    /// Envelopes refused for a wrong key or project.
    pub fn rejected(&self) -> usize {
        self.inner.rejected.load(Ordering::SeqCst)
    }

    /// Answers the next `n` envelopes 429, as a project over its quota.
    pub fn throttle_next(&self, n: usize) {
        self.inner.throttle.store(n, Ordering::SeqCst);
    }
}

impl Drop for FakeSentry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn envelope(
    State(inner): State<Arc<Inner>>,
    Path(project): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.envelopes.fetch_add(1, Ordering::SeqCst);
    inner.raw.lock().unwrap().extend_from_slice(&body);
    if project != PROJECT {
        inner.rejected.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"detail": "unknown project"})),
        )
            .into_response();
    }
    let header_key = headers
        .get("x-sentry-auth")
        .and_then(|v| v.to_str().ok())
        .and_then(auth_key);
    let key = query
        .get("sentry_key")
        .map(String::as_str)
        .or(header_key.as_deref());
    if key != Some(KEY) {
        inner.rejected.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"detail": "invalid public key"})),
        )
            .into_response();
    }
    if headers.contains_key("content-encoding") {
        // Relay accepts gzip; this client has never compressed. Should it start, the tests
        // must learn to decode it rather than pass on bytes they cannot read.
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            axum::Json(json!({"detail": "the fake does not decode compressed envelopes"})),
        )
            .into_response();
    }
    if inner
        .throttle
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [
                ("retry-after", "60"),
                ("x-sentry-rate-limits", "60::organization"),
            ],
            axum::Json(json!({"detail": "rate limited"})),
        )
            .into_response();
    }
    let Some((header, items)) = decode(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"detail": "invalid envelope"})),
        )
            .into_response();
    };
    inner.items.lock().unwrap().extend(items);
    let id = header["event_id"].clone();
    axum::Json(json!({ "id": id })).into_response()
}

/// `sentry_key` from `Sentry sentry_version=7, sentry_key=…, sentry_client=…`.
fn auth_key(header: &str) -> Option<String> {
    let rest = header.strip_prefix("Sentry ")?;
    rest.split(',')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == "sentry_key")
        .map(|(_, value)| value.to_string())
}

/// The envelope's header and its items; `None` when it is not a valid envelope.
pub fn decode(body: &[u8]) -> Option<(Value, Vec<Item>)> {
    let (header, mut rest) = split_line(body);
    let header: Value = serde_json::from_slice(header).ok()?;
    let mut items = Vec::new();
    while !rest.is_empty() {
        let (item_header, after) = split_line(rest);
        if item_header.is_empty() {
            rest = after;
            continue;
        }
        let item_header: Value = serde_json::from_slice(item_header).ok()?;
        let (payload, after) = match item_header["length"].as_u64() {
            Some(len) => {
                let len = usize::try_from(len).ok()?;
                if after.len() < len {
                    return None;
                }
                let (payload, after) = after.split_at(len);
                (payload, after.strip_prefix(b"\n").unwrap_or(after))
            }
            None => split_line(after),
        };
        items.push(Item {
            header: item_header,
            payload: payload.to_vec(),
        });
        rest = after;
    }
    Some((header, items))
}

/// The bytes up to the next newline, and those after it.
fn split_line(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[]),
    }
}
