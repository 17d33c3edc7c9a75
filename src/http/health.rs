//! Liveness and readiness: `/health` says the process is up, `/health/ready` that it can work.

use std::sync::LazyLock;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::app::{AppState, VERSION};

/// A healthy database answers in microseconds; seconds mean it is stuck behind a lock or disk.
const DB_TIMEOUT: Duration = Duration::from_secs(3);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(live))
        .route("/health/ready", get(ready))
}

/// The liveness answer: the same bytes every time, serialized once. The edge middleware
/// answers `GET /health` with it before any handler runs; the route is here for the rest.
pub fn liveness() -> Response {
    static BODY: LazyLock<Bytes> =
        LazyLock::new(|| Bytes::from(json!({ "status": "ok", "version": VERSION }).to_string()));
    ([(header::CONTENT_TYPE, "application/json")], BODY.clone()).into_response()
}

async fn live() -> Response {
    liveness()
}

/// Checks the database with a query and the object store with a probe object, concurrently.
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let db_check = async {
        tokio::time::timeout(DB_TIMEOUT, state.db.ping())
            .await
            .map_err(|_| anyhow::anyhow!("database check timed out"))?
    };
    let (db, storage) = tokio::join!(db_check, state.storage.probe());
    if let Err(e) = &db {
        tracing::warn!(error = format!("{e:#}"), "readiness: database check failed");
    }
    if let Err(e) = &storage {
        tracing::warn!(error = format!("{e:#}"), "readiness: storage check failed");
    }
    let ok = db.is_ok() && storage.is_ok();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ok { "ok" } else { "degraded" },
        "checks": { "database": db.is_ok(), "storage": storage.is_ok() },
    });
    (status, Json(body))
}
