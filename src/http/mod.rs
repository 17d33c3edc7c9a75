//! The HTTP surface: one router factory that merges each area's routes and the shared middleware.

mod accounts;
mod admin;
mod audios;
pub mod extract;
mod files;
mod health;
pub mod limits;
mod middleware;
pub mod perimeter;
mod podcasts;
mod spa;

pub use audios::{MEDIA_PURPOSE, media_url};
pub use spa::web_app_embedded;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::routing::any;
use ipnet::IpNet;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::AppState;
use crate::error::AppError;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Only same-origin scripts, styles and media; nothing may frame the app.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; \
     base-uri 'self'; frame-ancestors 'none'; form-action 'self'";

/// Browsers that once reached the app over https refuse plain http for a year.
const HSTS: &str = "max-age=31536000";

pub fn router(state: AppState) -> Router {
    let config = &state.config;
    let timeout = Duration::from_secs(config.server.request_timeout_s);
    let body_limit = config.server.max_body_bytes;
    let https = state.public_url.starts_with("https://");
    let trusted_proxies: Arc<[IpNet]> = config
        .trusted_proxies()
        .expect("validated with the config")
        .into();
    let origins = Arc::new(perimeter::TrustedOrigins::new(
        &state.public_url,
        &config.server.cors_origins,
    ));

    // Outermost first: ids and the client address before the log line; headers on every
    // answer, shed and rate-limited ones included; CORS before the checks whose refusals a
    // cross-origin page should be able to read.
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(
            REQUEST_ID,
            middleware::MakeUlidRequestId,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(axum::middleware::from_fn_with_state(
            trusted_proxies,
            perimeter::client_ip,
        ))
        .layer(axum::middleware::from_fn(middleware::log_request))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        // API answers are per user: no shared cache may keep them. Routes that serve
        // cacheable bytes set their own Cache-Control.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .option_layer(https.then(|| {
            SetResponseHeaderLayer::if_not_present(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static(HSTS),
            )
        }))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn_with_state(
            state.limits.clone(),
            limits::shed_load,
        ))
        .layer(axum::middleware::from_fn_with_state(
            timeout,
            perimeter::timeout,
        ))
        .option_layer(perimeter::cors(&config.server.cors_origins))
        .layer(axum::middleware::from_fn_with_state(
            state.limits.clone(),
            limits::rate_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            origins,
            perimeter::csrf,
        ));

    Router::new()
        .merge(health::router())
        .merge(accounts::router())
        .merge(admin::router())
        .merge(audios::router())
        .merge(podcasts::router())
        // Paths the SPA must never answer: unknown ones get the JSON 404.
        .route("/api", any(not_found))
        .route("/api/{*rest}", any(not_found))
        .route("/health/{*rest}", any(not_found))
        .fallback(spa::serve)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware)
        .with_state(state)
}

async fn not_found() -> AppError {
    AppError::NotFound
}

async fn method_not_allowed() -> (StatusCode, axum::Json<serde_json::Value>) {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(crate::error::error_body(
            "method_not_allowed",
            "This method is not allowed here",
        )),
    )
}
