//! `/media/{id}`: public, signed links to an audio's bytes (share links, feed enclosures).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::HttpState;
use super::audios::MAX_SHARE_S;
use super::files::Ask;
use super::params::parse_id;
use crate::error::ErrorCode;
use crate::error::{AppError, Result};
use crate::speech::service;
use crate::state::AppState;

pub fn router() -> Router<HttpState> {
    Router::new().route("/media/{id}", get(serve))
}

#[derive(Debug, Deserialize)]
struct MediaQuery {
    exp: Option<i64>,
    sig: Option<String>,
}

/// Public, signed access to an audio's bytes; tampered or expired links are refused with 403.
/// Hot (players fetch ranges), so its span is at debug level.
#[tracing::instrument(level = "debug", skip_all, fields(audio = %id))]
async fn serve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<MediaQuery>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (Some(exp), Some(sig)) = (q.exp, q.sig) else {
        return Err(link_refused());
    };
    // No share link lives longer than MAX_SHARE_S; one that does is a feed enclosure from
    // before feed links were bound to the show's feed generation, and is revoked.
    if exp > now + MAX_SHARE_S || !state.links.media_valid(&id, exp, &sig, now) {
        return Err(link_refused());
    }
    let audio = service::find(&state.db, parse_id(&id)?)
        .await?
        .ok_or(AppError::NotFound)?;
    let ask = Ask {
        method: &method,
        headers: &headers,
        link_exp: Some(exp),
    };
    super::files::serve(&state, &audio, &ask, false, "public, max-age=3600").await
}

fn link_refused() -> AppError {
    AppError::Forbidden {
        code: ErrorCode::Forbidden,
        message: "This link is invalid or has expired".into(),
    }
}
