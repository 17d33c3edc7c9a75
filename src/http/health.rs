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

use super::HttpState;
use crate::VERSION;
use crate::db::integrity::Integrity;
use crate::state::AppState;

/// A healthy database answers in microseconds; seconds mean it is stuck behind a lock or disk.
const DB_TIMEOUT: Duration = Duration::from_secs(3);

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/health", get(live))
        .route("/health/ready", get(ready))
}

/// The liveness body: the same bytes every time, serialized once.
pub fn liveness_body() -> Bytes {
    static BODY: LazyLock<Bytes> =
        LazyLock::new(|| Bytes::from(json!({ "status": "ok", "version": VERSION }).to_string()));
    BODY.clone()
}

/// The edge middleware answers `GET /health` itself, before any handler runs; the route is
/// here for the other methods (405) and for routers used without the edge.
#[tracing::instrument(level = "debug", skip_all)]
async fn live() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        liveness_body(),
    )
        .into_response()
}

/// Checks the database with a query and the object store with a probe object, concurrently;
/// the database is not ready before its start-up integrity check has passed.
#[tracing::instrument(level = "debug", skip_all)]
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
    let integrity = state.integrity.status();
    let database = db.is_ok() && integrity == Integrity::Ok;
    // HTTPS is ready while a certificate is served that has not expired; a failed renewal
    // with the old certificate still good is said in the message, not as unready.
    let tls = state.tls.as_ref().map(|status| {
        let status = status.get();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        (status.not_after.is_some_and(|end| end > now), status)
    });
    let ok = database && storage.is_ok() && tls.as_ref().is_none_or(|(served, _)| *served);
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({
        "status": if ok { "ok" } else { "degraded" },
        "checks": { "database": database, "storage": storage.is_ok() },
    });
    match integrity {
        Integrity::Ok => {}
        Integrity::Checking => {
            body["message"] = "checking the database's integrity (ready when it passes)".into();
        }
        // The details (the file's path) are the operator's: the log has them.
        Integrity::Damaged(_) => body["message"] = crate::db::integrity::DAMAGED_PUBLIC.into(),
    }
    if let Some((served, status)) = tls {
        body["checks"]["tls"] = served.into();
        body["tls"] = json!({
            "not_after": status.not_after.and_then(|s| {
                time::OffsetDateTime::from_unix_timestamp(s)
                    .ok()?
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }),
            "error": status.error,
        });
        if body.get("message").is_none() {
            if let Some(error) = &status.error {
                body["message"] = format!("TLS certificate: {error}").into();
            } else if !served {
                body["message"] =
                    "no TLS certificate yet: HTTPS answers once one is obtained".into();
            }
        }
    }
    (status, Json(body))
}
