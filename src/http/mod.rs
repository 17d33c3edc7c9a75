//! The HTTP surface: one router factory that merges each area's routes and the shared middleware.

mod accounts;
mod admin;
mod audios;
pub mod client_errors;
pub(crate) mod conn;
pub mod extract;
mod files;
mod gateway;
mod health;
pub mod limits;
mod media;
pub mod metrics;
mod middleware;
mod notifiers;
mod openai_transcriptions;
mod openapi;
mod params;
pub mod perimeter;
mod podcasts;
mod providers;
pub mod refusals;
pub mod sign_in;
mod spa;
mod stall;
mod transcriptions;
mod usage;
mod voices;

pub use spa::web_app_embedded;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::{HeaderName, StatusCode};
use axum::routing::any;
use ipnet::IpNet;
use tower::{Layer, ServiceBuilder};

use crate::error::AppError;
use crate::error::ErrorCode;
use crate::monitor::metrics::HttpMetrics;
use crate::ops::error_reports::ErrorReports;
use crate::providers::Scrubber;
use crate::state::AppState;
use limits::Limits;
use refusals::Refusals;

/// What [`router`] builds.
pub type App = middleware::Edge<Router>;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The router's state: the application's, and the HTTP layer's own rate limiters and refusal
/// counts. Handlers take `State<AppState>`; one `Arc`, so the clone axum makes for each
/// request costs one reference count.
#[derive(Clone)]
pub struct HttpState(Arc<HttpParts>);

pub struct HttpParts {
    pub app: AppState,
    /// Rate limiters and the in-flight cap, shared by the middleware and the extractors.
    pub limits: Arc<Limits>,
    /// Refused requests, counted per client for the log.
    pub refusals: Arc<Refusals>,
    /// Error reports and request traces; `None` without `sentry.dsn`.
    pub reports: Option<Arc<ErrorReports>>,
    /// The web app's error reports received (`POST /api/client-errors`), since start.
    pub client_errors: client_errors::Counter,
    /// Masks secrets in what clients send before it is logged.
    pub scrub: Scrubber,
    /// This server's request counters; `None` when `metrics.enabled` is off.
    pub metrics: Option<Arc<HttpMetrics>>,
}

impl HttpState {
    pub fn new(app: AppState, reports: Option<Arc<ErrorReports>>) -> Self {
        let limits = Arc::new(Limits::new(&app.config.limits));
        let scrub = Scrubber::from_config(&app.config);
        let metrics = app.config.metrics.enabled.then(Arc::default);
        Self(Arc::new(HttpParts {
            app,
            limits,
            refusals: Arc::default(),
            reports,
            client_errors: client_errors::Counter::default(),
            scrub,
            metrics,
        }))
    }
}

impl std::ops::Deref for HttpState {
    type Target = HttpParts;

    fn deref(&self) -> &HttpParts {
        &self.0
    }
}

impl FromRef<HttpState> for AppState {
    fn from_ref(state: &HttpState) -> AppState {
        state.app.clone()
    }
}

/// The whole HTTP application, as one service for [`crate::app::serve`].
pub fn router(http: HttpState) -> App {
    router_with(http, Router::new())
}

/// The application with `extra` routes beside its own, under the same layers: how tests
/// reach the edge through a route the product does not have (one that panics).
pub fn router_with(http: HttpState, extra: Router<HttpState>) -> App {
    let state = &http.app;
    let config = &state.config;
    let timeout = Duration::from_secs(config.server.request_timeout_s);
    let transcription_timeout = Duration::from_secs(config.server.transcription_timeout_s);
    let body_idle_timeout = Duration::from_secs(config.server.body_idle_timeout_s);
    let body_limit = config.server.max_body_bytes;
    let https = state.links.is_https();
    let trusted_proxies: Arc<[IpNet]> = config
        .trusted_proxies()
        .expect("validated with the config")
        .into();
    let origins =
        perimeter::TrustedOrigins::new(state.links.public_url(), &config.server.cors_origins);
    // With presigned redirects, the app's players load audio from the bucket.
    let page_policy = config.storage.presign.then(|| {
        let bucket: Vec<String> = state
            .storage
            .bucket_origin()
            .map(str::to_string)
            .into_iter()
            .collect();
        middleware::page_policy_with_media(&bucket)
    });

    // The edge wraps the whole router, so liveness probes are answered before any routing
    // and everything (shed, timed out and panicked requests included) gets its headers and
    // log line. Behind the router, outermost first: the route's label for the log, CORS
    // before the guard so its refusals carry CORS headers a cross-origin page can read, then
    // the guard.
    let routed = ServiceBuilder::new()
        .layer(middleware::RouteLabelLayer {
            traced: http.reports.is_some(),
        })
        .option_layer(perimeter::cors(&config.server.cors_origins))
        .layer(middleware::GuardLayer::new(middleware::GuardConfig {
            limits: http.limits.clone(),
            origins,
        }));
    let limits = http.limits.clone();
    let refusals = http.refusals.clone();
    let reports = http.reports.clone();
    let metrics = http.metrics.clone();

    let router = Router::new()
        .merge(health::router())
        .merge(accounts::router())
        .merge(admin::router())
        .merge(notifiers::router())
        .merge(audios::router())
        .merge(media::router())
        .merge(voices::router())
        .merge(providers::router())
        .merge(usage::router())
        .merge(podcasts::router())
        .merge(transcriptions::router(config))
        .merge(openai_transcriptions::router(config))
        .merge(client_errors::router())
        .merge(metrics::router())
        .merge(gateway::router())
        .merge(openapi::router())
        .merge(extra)
        // Paths the SPA must never answer: unknown ones get the JSON 404.
        .route("/api", any(not_found))
        .route("/api/{*rest}", any(not_found))
        .route("/v1", any(not_found))
        .route("/v1/{*rest}", any(not_found))
        .route("/health/{*rest}", any(not_found))
        .fallback(spa::serve)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(routed)
        .with_state(http);
    middleware::EdgeLayer::new(middleware::EdgeConfig {
        trusted_proxies,
        limits,
        timeout,
        transcription_timeout,
        body_idle_timeout,
        refusals,
        https,
        reports,
        metrics,
        page_policy,
    })
    .layer(router)
}

/// The OpenAI-compatible API's paths, whose errors take OpenAI's envelope.
pub(crate) fn is_openai_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

#[tracing::instrument(level = "debug", skip_all)]
async fn not_found() -> AppError {
    AppError::NotFound
}

#[tracing::instrument(level = "debug", skip_all)]
async fn method_not_allowed() -> (StatusCode, axum::Json<serde_json::Value>) {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(crate::error::error_body(
            ErrorCode::MethodNotAllowed,
            "This method is not allowed here",
        )),
    )
}
