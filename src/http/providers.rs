//! `/api/providers`: the speech and speech recognition providers, their state, and model
//! downloads in progress.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::HttpState;
use crate::auth::AuthUser;
use crate::state::AppState;

pub fn router() -> Router<HttpState> {
    Router::new().route("/api/providers", get(list))
}

#[tracing::instrument(skip_all)]
async fn list(State(state): State<AppState>, _user: AuthUser) -> Json<Value> {
    // Speech first, then recognition: a provider of both (OpenAI) has a row of each kind.
    let (speech, recognition) =
        futures::future::join(state.providers.list(), state.providers.list_asr()).await;
    let mut rows = json!(speech.into_iter().chain(recognition).collect::<Vec<_>>());
    // While the models a neural provider needs are downloading, its row carries the progress.
    for row in rows.as_array_mut().into_iter().flatten() {
        let Some(id) = row["id"].as_str() else {
            continue;
        };
        if row["kind"] != "tts" || !matches!(id, "kokoro" | "piper") {
            continue;
        }
        row["progress"] = match state.models.provider_progress(id) {
            Some((done, total)) => json!({ "done_bytes": done, "total_bytes": total }),
            None => Value::Null,
        };
    }
    Json(rows)
}
