//! `/api/providers`: the speech providers, their state, and model downloads in progress.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::AuthUser;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/providers", get(list))
}

#[tracing::instrument(skip_all)]
async fn list(State(state): State<AppState>, _user: AuthUser) -> Json<Value> {
    let mut rows = json!(state.providers.list().await);
    // While the models a neural provider needs are downloading, its row carries the progress.
    for row in rows.as_array_mut().into_iter().flatten() {
        let needs: &[&str] = match row["id"].as_str() {
            Some("kokoro") => &["runtime", "kokoro"],
            Some("piper") => &["runtime", "piper:en_US-joe-medium"],
            _ => continue,
        };
        let running: Vec<_> = needs
            .iter()
            .filter_map(|name| state.models.progress(name))
            .filter(|p| p.state == crate::models::PullPhase::Running)
            .collect();
        row["progress"] = if running.is_empty() {
            Value::Null
        } else {
            json!({
                "done_bytes": running.iter().map(|p| p.done_bytes).sum::<u64>(),
                "total_bytes": running.iter().map(|p| p.total_bytes).sum::<u64>(),
            })
        };
    }
    Json(rows)
}
