//! What every request goes through, as two small services instead of a stack of a dozen
//! layers (each `from_fn` layer clones and boxes everything beneath it on every request; on
//! `/health` that stack cost more than half the server's throughput).
//!
//! [`Edge`], outermost: the request id (the client's if it is sane, else a ULID), the client
//! address, one log line with the route pattern (never the concrete URL, and no header: ids in
//! paths, cookies and tokens stay out of the log; health probes only at debug; refusals
//! summarised per client by [`Refusals`]), load shedding and each client's share of the
//! slots, the request timeout and the body idle timeout, the JSON shape of every error, the
//! headers every answer carries, and a panic catcher. [`Guard`], innermost (behind CORS, so its
//! refusals carry CORS headers a cross-origin page can read): the per-IP rate limit and the
//! CSRF check. Neither allocates when a request passes through untouched, apart from the
//! edge's one boxed future.

use std::any::Any;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use axum::response::IntoResponse;
use futures::FutureExt;
use futures::future::{BoxFuture, Either, Ready, ready};
use http_body::Body as _;
use ipnet::IpNet;
use tower::{Layer, Service, ServiceExt};
use tracing::Instrument;

use super::REQUEST_ID;
use super::limits::{InFlight, Limits, RouteName};
use super::perimeter::{self, ClientIp, TrustedOrigins};
use super::refusals::Refusals;
use super::stall::IdleTimeout;
use crate::error::ErrorCode;
use crate::error::{AppError, Refusal};
use crate::monitor::metrics::HttpMetrics;
use crate::ops::error_reports::{ErrorReports, RequestTrace, ServerProblem};

/// The web app's pages: only same-origin scripts, styles and media; nothing may frame them.
pub const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; \
     base-uri 'self'; frame-ancestors 'none'; form-action 'self'";

pub const PAGE_REFERRER_POLICY: &str = "strict-origin-when-cross-origin";

/// Nothing that is not a page links anywhere a browser would follow.
const NOT_A_PAGE_REFERRER_POLICY: &str = "no-referrer";

/// Anything that is not a page may load nothing and be framed by nobody.
const NOT_A_PAGE_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Browsers that once reached the app over https refuse plain http for a year.
const HSTS: &str = "max-age=31536000";

/// A client's request id is kept (so its traces join ours) when it is short and plain.
const MAX_CLIENT_REQUEST_ID: usize = 64;

/// What the edge needs to know, built once from the config.
pub struct EdgeConfig {
    pub trusted_proxies: Arc<[IpNet]>,
    pub limits: Arc<Limits>,
    pub timeout: Duration,
    /// Instead of `timeout` for requests that carry a recording ([`hears_speech`]).
    pub transcription_timeout: Duration,
    /// A request body idle this long is cut off and answered 408.
    pub body_idle_timeout: Duration,
    pub refusals: Arc<Refusals>,
    /// Over https, answers also carry HSTS.
    pub https: bool,
    /// Error reports and request traces, when `sentry.dsn` is set; `None` costs nothing.
    pub reports: Option<Arc<ErrorReports>>,
    /// Request counters for `/metrics`; `None` when `metrics.enabled` is off.
    pub metrics: Option<Arc<HttpMetrics>>,
    /// The pages' policy when it differs from [`PAGE_POLICY`]: with `storage.presign`, the
    /// app's players follow redirects to the bucket ([`page_policy_with_media`]).
    pub page_policy: Option<HeaderValue>,
}

/// [`PAGE_POLICY`] that also lets media play from these origins.
pub fn page_policy_with_media(origins: &[String]) -> HeaderValue {
    const MEDIA: &str = "media-src 'self' blob:";
    debug_assert!(PAGE_POLICY.contains(MEDIA));
    let sources = origins
        .iter()
        .fold(MEDIA.to_string(), |all, origin| all + " " + origin);
    HeaderValue::from_str(&PAGE_POLICY.replacen(MEDIA, &sources, 1))
        .unwrap_or(HeaderValue::from_static(PAGE_POLICY))
}

/// The config with what is derived from it once.
struct EdgeShared {
    config: EdgeConfig,
    /// Liveness answers' headers: copying a finished map is cheaper than inserting each
    /// header into a new one, and at tens of thousands of probes a second it shows.
    liveness_headers: HeaderMap,
}

#[derive(Clone)]
pub struct EdgeLayer(Arc<EdgeShared>);

impl EdgeLayer {
    pub fn new(config: EdgeConfig) -> Self {
        let liveness_headers = liveness_headers(config.https);
        Self(Arc::new(EdgeShared {
            config,
            liveness_headers,
        }))
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            shared: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    shared: Arc<EdgeShared>,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<
        Ready<Result<Response<Body>, Infallible>>,
        BoxFuture<'static, Result<Response<Body>, Infallible>>,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The inner service is made ready in the future, on the clone that serves the call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let start = Instant::now();
        let request_id = request_id(req.headers());
        // Liveness is answered here, from memory: no routing, slot, timer, handler or log
        // span (probes are logged at debug only).
        if req.method() == Method::GET && req.uri().path() == "/health" {
            if let Some(metrics) = &self.shared.config.metrics {
                metrics.health_probe();
            }
            tracing::debug!(
                method = "GET",
                route = "/health",
                request_id = request_id.to_str().unwrap_or_default(),
                status = 200,
                duration_ms = elapsed_ms(start),
                "request"
            );
            let mut response = Response::new(Body::from(super::health::liveness_body()));
            let headers = response.headers_mut();
            *headers = self.shared.liveness_headers.clone();
            headers.insert(REQUEST_ID, request_id);
            return Either::Left(ready(Ok(response)));
        }
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let ip =
            perimeter::resolve_client_ip(peer, req.headers(), &self.shared.config.trusted_proxies);
        // The route's pattern is known only once the router has matched it: `RouteLabel`
        // fills it in.
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            route = tracing::field::Empty,
            request_id = request_id.to_str().unwrap_or_default(),
            client_ip = %ip,
            // Filled in by the authentication extractors.
            user_id = tracing::field::Empty
        );
        let mut line = LogLine {
            span,
            start,
            ip,
            probe: req.uri().path().starts_with("/health"),
            trace: None,
            method: req.method().clone(),
        };
        // So are the web app's hashed files.
        if let Some(response) = super::spa::asset(req.method(), req.uri().path(), req.headers()) {
            line.span.record("route", "/assets/*");
            let response = finish(response, request_id, &self.shared, &line, "/assets/*");
            return Either::Left(ready(Ok(response)));
        }
        if let Some(reports) = &self.shared.config.reports {
            let trace = reports.begin(req.method());
            req.extensions_mut().insert(trace.clone());
            line.trace = Some(trace);
        }
        req.headers_mut().insert(REQUEST_ID, request_id.clone());
        req.extensions_mut().insert(ClientIp(ip));
        let openai = super::is_openai_path(req.uri().path());
        // The router names the route in it; the user's share of the slots is held in it.
        let in_flight = Arc::new(InFlight::default());
        req.extensions_mut().insert(in_flight.clone());
        let inner = self.inner.clone();
        let shared = self.shared.clone();
        Either::Right(Box::pin(async move {
            let _counted = shared.config.metrics.as_ref().map(|m| m.enter());
            let response = handle(inner, &shared.config, ip, req, &in_flight)
                .instrument(line.span.clone())
                .await;
            let response = json_error(response, openai).await;
            // Refused before routing: no route was matched.
            let route = in_flight.route.get().map_or("unrouted", RouteName::as_str);
            Ok(finish(response, request_id, &shared, &line, route))
        }))
    }
}

/// Puts the matched route's pattern into the request's log span (and its error-report
/// trace, when reports are on). Sits behind the router (as a layer of it), the only place
/// that knows which route matched.
#[derive(Clone, Copy, Default)]
pub struct RouteLabelLayer {
    /// Error reports are on: requests carry a [`RequestTrace`] to fill in.
    pub traced: bool,
}

impl<S> Layer<S> for RouteLabelLayer {
    type Service = RouteLabel<S>;

    fn layer(&self, inner: S) -> RouteLabel<S> {
        RouteLabel(inner, self.traced)
    }
}

#[derive(Clone)]
pub struct RouteLabel<S>(S, bool);

impl<S> Service<Request> for RouteLabel<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = route_label(&req);
        tracing::Span::current().record("route", route);
        if self.1
            && let Some(trace) = req.extensions().get::<Arc<RequestTrace>>()
        {
            trace.set_route(route);
        }
        if let Some(in_flight) = req.extensions().get::<Arc<InFlight>>() {
            let name = match req.extensions().get::<MatchedPath>() {
                Some(p) => RouteName::Matched(p.clone()),
                None => RouteName::Other(unmatched_label(&req)),
            };
            let _ = in_flight.route.set(name);
        }
        self.0.call(req)
    }
}

/// Liveness answers' headers, with a placeholder request id.
fn liveness_headers(https: bool) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // A placeholder, so setting the real id replaces rather than grows the map.
    headers.insert(REQUEST_ID, HeaderValue::from_static("-"));
    set_default_headers(&mut headers, https);
    headers
}

/// What a request's log line needs.
struct LogLine {
    span: tracing::Span,
    start: Instant,
    ip: IpAddr,
    /// Health and readiness probes: logged at debug only.
    probe: bool,
    /// The request as the error reports see it, when they are on.
    trace: Option<Arc<RequestTrace>>,
    method: Method,
}

/// The headers every answer carries, and its log line: one per served request; a refusal's
/// only when it is the client's first for that reason in a while (the rest are counted and
/// summarised).
fn finish(
    mut response: Response<Body>,
    request_id: HeaderValue,
    shared: &EdgeShared,
    line: &LogLine,
    route: &str,
) -> Response<Body> {
    if let (Some(reports), Some(trace)) = (&shared.config.reports, &line.trace) {
        let extensions = response.extensions();
        reports.finish(
            trace,
            request_id.to_str().unwrap_or_default(),
            response.status(),
            // Refusals (shed load, rate limits) are the server working as meant: traced,
            // never reported as errors.
            extensions.get::<Refusal>().is_some(),
            extensions.get::<ServerProblem>(),
        );
    }
    let headers = response.headers_mut();
    headers.insert(REQUEST_ID, request_id);
    set_default_headers(headers, shared.config.https);
    if let Some(policy) = &shared.config.page_policy
        && headers
            .get(header::CONTENT_SECURITY_POLICY)
            .map(HeaderValue::as_bytes)
            == Some(PAGE_POLICY.as_bytes())
    {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy.clone());
    }
    let status = response.status().as_u16();
    let elapsed = line.start.elapsed();
    let duration_ms = elapsed.as_micros() as f64 / 1000.0;
    let refusal = response.extensions().get::<Refusal>().copied();
    if let Some(metrics) = &shared.config.metrics {
        metrics.record(&line.method, route, response.status(), elapsed);
        if let Some(Refusal(code)) = refusal {
            metrics.rejected(code);
        }
    }
    let _in_span = line.span.enter();
    if let Some(Refusal(code)) = refusal {
        let reason = code.as_str();
        // Per IPv4 address and IPv6 /64, as the rate limits count clients.
        if shared
            .config
            .refusals
            .record(super::limits::rate_key(line.ip), reason)
        {
            tracing::info!(
                status,
                duration_ms,
                reason,
                "request refused (more from this client are counted)"
            );
        }
    } else if status >= 500 {
        tracing::warn!(status, duration_ms, "request");
    } else if line.probe {
        tracing::debug!(status, duration_ms, "request");
    } else {
        tracing::info!(status, duration_ms, "request");
    }
    response
}

fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_micros() as f64 / 1000.0
}

/// Every error answer's shape, in one place. Errors raised below the handlers (extractor
/// rejections, body limits) come as plain text; they get the API's JSON shape like every
/// other error, with the text as the message. On the OpenAI-compatible paths (`openai`),
/// every error, the API-shaped ones included (refusals of the edge and the guard, the
/// extractors' and the handlers'), is rewritten into OpenAI's envelope with the same status
/// and headers (`Retry-After` stays).
async fn json_error(response: Response<Body>, openai: bool) -> Response<Body> {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || (is_json && !openai) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let limit = if is_json {
        MAX_ERROR_JSON
    } else {
        MAX_ERROR_TEXT
    };
    let read = axum::body::to_bytes(body, limit).await.ok();
    let fallback = || status.canonical_reason().unwrap_or("Error");
    let body = if is_json {
        // An API-shaped error, to put in OpenAI's envelope.
        let app: serde_json::Value = read
            .as_deref()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        let error = &app["error"];
        let code = error["code"]
            .as_str()
            .unwrap_or(crate::error::code_for_status(status).as_str());
        let message = error["message"].as_str().unwrap_or_else(fallback);
        crate::error::openai_error_body(status, code, message, error.get("details"))
    } else {
        let message = read
            .as_deref()
            .and_then(|t| std::str::from_utf8(t).ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .unwrap_or_else(fallback);
        let code = crate::error::code_for_status(status);
        if openai {
            crate::error::openai_error_body(status, code.as_str(), message, None)
        } else {
            crate::error::error_body(code, message)
        }
    };
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body.to_string()))
}

/// Longest plain-text error kept as a JSON error's message; longer ones get the status's name.
const MAX_ERROR_TEXT: usize = 1024;

/// Longest API-shaped error read to put in OpenAI's envelope (details of every field of a
/// bad request fit many times over).
const MAX_ERROR_JSON: usize = 64 * 1024;

/// Load shedding, the timeouts and a panic catcher around the rest of the stack (a panicking
/// handler becomes a JSON 500 and the connection lives on). Past `max_in_flight` requests at
/// once the server answers 503 at once instead of queueing everyone into timeouts, and so it
/// does to a client (an IP, or a signed-in user once authenticated) past its
/// `max_in_flight_per_client`, so one client cannot take every slot; health checks always get
/// through. The timeout covers the time to the response head: streaming bodies (downloads,
/// events) are not cut. A request body that stalls is cut off, and the request answered 408.
async fn handle<S>(
    inner: S,
    config: &EdgeConfig,
    ip: IpAddr,
    mut req: Request,
    in_flight: &Arc<InFlight>,
) -> Response<Body>
where
    S: Service<Request, Response = Response<Body>, Error = Infallible>,
{
    let path = req.uri().path();
    // The web app's files come from memory at once: no slot, no timer.
    if path.starts_with("/assets/") {
        return run(inner, req).await;
    }
    // Health checks always get through, even when the server is full.
    let _permits = if path.starts_with("/health") {
        None
    } else {
        let Some(share) = config.limits.try_enter_ip(ip) else {
            return super::limits::too_many_in_flight().into_response();
        };
        let Some(permit) = config.limits.try_enter() else {
            return AppError::Unavailable {
                code: ErrorCode::Overloaded,
                message: "The server is busy: try again in a moment".into(),
            }
            .into_response();
        };
        Some((share, permit, in_flight.clone()))
    };
    let stalled = if req.body().is_end_stream() {
        None
    } else {
        let (parts, body) = req.into_parts();
        let (body, stalled) = IdleTimeout::wrap(body, config.body_idle_timeout);
        req = Request::from_parts(parts, body);
        Some(stalled)
    };
    let timeout = if hears_speech(req.method(), req.uri().path()) {
        config.transcription_timeout
    } else {
        config.timeout
    };
    let response = match tokio::time::timeout(timeout, run(inner, req)).await {
        Ok(response) => response,
        Err(_) => AppError::Unavailable {
            code: ErrorCode::Timeout,
            message: "The server took too long to answer".into(),
        }
        .into_response(),
    };
    // Whatever the reader made of the cut-off body, the client hears why.
    if stalled.is_some_and(|s| s.happened()) {
        return AppError::BodyTimeout.into_response();
    }
    response
}

/// Requests whose body is a recording, which may take minutes to arrive, and on `/v1`, where
/// OpenAI's clients wait for the transcript in the answer, to be heard; and the selftest, which
/// speaks and hears a sentence with every voice engine on the machine while the admin waits.
fn hears_speech(method: &Method, path: &str) -> bool {
    method == Method::POST
        && matches!(
            path,
            "/api/transcriptions"
                | "/v1/audio/transcriptions"
                | "/v1/audio/translations"
                | "/api/admin/selftest"
        )
}

/// The rest of the stack, with a panic turned into a JSON 500.
async fn run<S>(inner: S, req: Request) -> Response<Body>
where
    S: Service<Request, Response = Response<Body>, Error = Infallible>,
{
    match AssertUnwindSafe(inner.oneshot(req)).catch_unwind().await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(panic) => panic_response(panic),
    }
}

/// The client's `X-Request-Id` when it is short and plain (so it cannot forge log lines),
/// else a new ULID: ids sort by time in the logs like every other id.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID)
        .filter(|v| {
            let b = v.as_bytes();
            !b.is_empty()
                && b.len() <= MAX_CLIENT_REQUEST_ID
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
        })
        .cloned()
        .unwrap_or_else(|| {
            let mut buf = [0; ulid::ULID_LEN];
            let id = ulid::Ulid::generate().array_to_str(&mut buf);
            HeaderValue::from_str(id).expect("a ULID is a valid header value")
        })
}

/// The route pattern, not the concrete path: ids and tokens stay out of the log. Unmatched
/// paths are the web app's: logged as such rather than echoing arbitrary URLs.
fn route_label(req: &Request) -> &str {
    match req.extensions().get::<MatchedPath>() {
        Some(p) => p.as_str(),
        None => unmatched_label(req),
    }
}

fn unmatched_label(req: &Request) -> &'static str {
    if req.uri().path().starts_with("/assets/") {
        "/assets/*"
    } else {
        "spa"
    }
}

/// Security headers on every answer, unless a route chose its own. Pages get the app's content
/// and referrer policies; everything else (JSON, audio, scripts) is never a page, so a policy
/// that forbids everything, framing included, is both stricter and shorter, and it sends no
/// referrer. API answers
/// are per user, so no shared cache may keep them; routes that serve cacheable bytes set
/// `Cache-Control`.
pub(super) fn set_default_headers(headers: &mut HeaderMap, https: bool) {
    const ALWAYS: [(HeaderName, &str); 3] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    let page = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    headers.reserve(ALWAYS.len() + 3);
    for (name, value) in ALWAYS {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    }
    let (policy, referrer) = if page {
        (PAGE_POLICY, PAGE_REFERRER_POLICY)
    } else {
        (NOT_A_PAGE_POLICY, NOT_A_PAGE_REFERRER_POLICY)
    };
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert_with(|| HeaderValue::from_static(policy));
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert_with(|| HeaderValue::from_static(referrer));
    if https {
        headers
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert_with(|| HeaderValue::from_static(HSTS));
    }
}

/// What the guard checks, built once from the config.
pub struct GuardConfig {
    pub limits: Arc<Limits>,
    pub origins: TrustedOrigins,
}

#[derive(Clone)]
pub struct GuardLayer(Arc<GuardConfig>);

impl GuardLayer {
    pub fn new(config: GuardConfig) -> Self {
        Self(Arc::new(config))
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            config: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    config: Arc<GuardConfig>,
}

impl<S> Service<Request> for Guard<S>
where
    S: Service<Request, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<Body>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match self.check(&req) {
            Ok(()) => Either::Right(self.inner.call(req)),
            Err(refusal) => Either::Left(ready(Ok(refusal.into_response()))),
        }
    }
}

impl<S> Guard<S> {
    /// The per-IP budget first (it also counts refused forgeries), then CSRF.
    fn check(&self, req: &Request) -> Result<(), AppError> {
        if super::limits::is_limited(req.uri().path()) {
            let ip = req
                .extensions()
                .get::<ClientIp>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0);
            self.config.limits.check_ip(ip)?;
        }
        perimeter::check_csrf(&self.config.origins, req.method(), req.headers())
    }
}

fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "handler panicked");
    let mut response = (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(crate::error::error_body(
            ErrorCode::Internal,
            "Something went wrong on the server",
        )),
    )
        .into_response();
    response
        .extensions_mut()
        .insert(ServerProblem::Panic(detail.into()));
    response
}

/// The fake error tracker the API tests use, shared so both test the same contract.
#[cfg(test)]
#[path = "../../tests/api/fakes/sentry.rs"]
mod fake_sentry;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_recordings_and_the_selftest_get_the_transcription_timeout() {
        for path in [
            "/api/transcriptions",
            "/v1/audio/transcriptions",
            "/v1/audio/translations",
            "/api/admin/selftest",
        ] {
            assert!(hears_speech(&Method::POST, path), "{path}");
            assert!(!hears_speech(&Method::GET, path), "{path}");
        }
        for path in [
            "/api/transcriptions/01J0000000000000000000000",
            "/v1/audio/speech",
            "/api/audios",
            "/v1/audio/transcriptions/",
        ] {
            assert!(!hears_speech(&Method::POST, path), "{path}");
        }
    }

    #[test]
    fn a_plain_client_request_id_is_kept_and_anything_else_replaced() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(REQUEST_ID, HeaderValue::from_str(v).unwrap());
            request_id(&h)
        };
        assert_eq!(with("trace-123.a_b:c"), "trace-123.a_b:c");
        let long = "a".repeat(MAX_CLIENT_REQUEST_ID + 1);
        for bad in ["", "two words", "x\"y", long.as_str()] {
            let id = with(bad);
            assert_ne!(id, bad);
            assert!(ulid::Ulid::from_string(id.to_str().unwrap()).is_ok());
        }
        let fresh = request_id(&HeaderMap::new());
        assert!(ulid::Ulid::from_string(fresh.to_str().unwrap()).is_ok());
    }

    /// Log lines collected in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn edge(router: axum::Router, refusals: Arc<Refusals>) -> Edge<axum::Router> {
        EdgeLayer::new(EdgeConfig {
            trusted_proxies: Arc::from([]),
            limits: Arc::new(Limits::new(&crate::config::LimitsConfig::default())),
            timeout: Duration::from_secs(5),
            transcription_timeout: Duration::from_secs(5),
            body_idle_timeout: Duration::from_secs(5),
            refusals,
            https: false,
            reports: None,
            metrics: None,
            page_policy: None,
        })
        .layer(router.layer(RouteLabelLayer::default()))
    }

    /// Collects what is logged at `level` and above while the returned guard lives.
    fn capture(level: tracing::Level) -> (Captured, tracing::subscriber::DefaultGuard) {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(level)
            .with_ansi(false)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    async fn get(app: &Edge<axum::Router>, path: &str) -> Response<Body> {
        app.clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn each_served_request_is_logged_once_with_its_route_pattern_and_never_its_path() {
        use axum::routing::get as route_get;

        let (logs, _guard) = capture(tracing::Level::INFO);
        let router = axum::Router::new()
            .route("/api/things/{id}", route_get(|| async { "thing" }))
            .route("/health/ready", route_get(|| async { "ready" }))
            .fallback(|| async { "page" });
        let app = edge(router, Arc::default());
        for path in [
            "/api/things/secret-123",
            "/health",
            "/health/ready",
            "/library/secret-456",
        ] {
            let response = get(&app, path).await;
            assert_eq!(response.status(), 200, "{path}");
            assert!(response.headers().contains_key(REQUEST_ID));
        }

        let logs = logs.text();
        let lines: Vec<&str> = logs.lines().collect();
        assert_eq!(
            lines.len(),
            2,
            "health probes are not logged at info: {logs}"
        );
        assert!(lines[0].contains(r#"route="/api/things/{id}""#), "{logs}");
        assert!(lines[0].contains("status=200"), "{logs}");
        assert!(lines[0].contains("duration_ms="), "{logs}");
        assert!(lines[0].contains("request_id="), "{logs}");
        assert!(lines[1].contains(r#"route="spa""#), "{logs}");
        assert!(!logs.contains("secret"), "{logs}");
    }

    #[tokio::test]
    async fn health_probes_are_logged_at_debug() {
        use axum::routing::get as route_get;

        let (logs, _guard) = capture(tracing::Level::DEBUG);
        let router = axum::Router::new().route("/health/ready", route_get(|| async { "ready" }));
        let app = edge(router, Arc::default());
        get(&app, "/health").await;
        get(&app, "/health/ready").await;
        let logs = logs.text();
        assert!(logs.contains(r#"route="/health""#), "{logs}");
        assert!(logs.contains(r#"route="/health/ready""#), "{logs}");
    }

    #[tokio::test]
    async fn a_thousand_refused_requests_from_one_client_log_two_lines_with_the_count() {
        use axum::routing::get as route_get;

        let (logs, _guard) = capture(tracing::Level::INFO);
        let router = axum::Router::new().route(
            "/api/audios",
            route_get(|| async { AppError::Unauthenticated("Sign in to continue".into()) }),
        );
        let refusals = Arc::new(Refusals::default());
        let app = edge(router, refusals.clone());
        for _ in 0..1000 {
            assert_eq!(get(&app, "/api/audios").await.status(), 401);
        }
        refusals.summarise();
        let logs = logs.text();
        let lines: Vec<&str> = logs.lines().collect();
        assert_eq!(lines.len(), 2, "{logs}");
        assert!(lines[0].contains("reason=\"unauthenticated\""), "{logs}");
        assert!(
            lines[0].contains("request_id="),
            "the first in full: {logs}"
        );
        assert!(lines[1].contains("count=999"), "{logs}");
        assert!(logs.len() < 1024, "{} bytes", logs.len());
    }

    #[test]
    fn the_page_policy_can_let_media_play_from_a_bucket() {
        let policy = page_policy_with_media(&["https://b.s3.example".into()]);
        let policy = policy.to_str().unwrap();
        assert!(
            policy.contains("media-src 'self' blob: https://b.s3.example;"),
            "{policy}"
        );
        assert_eq!(policy.replace(" https://b.s3.example", ""), PAGE_POLICY);
    }

    #[test]
    fn default_headers_do_not_override_a_route_s_own() {
        let mut h = HeaderMap::new();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public"));
        set_default_headers(&mut h, false);
        assert_eq!(h[header::CACHE_CONTROL], "public");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], NOT_A_PAGE_POLICY);
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert!(!h.contains_key(header::STRICT_TRANSPORT_SECURITY));
        set_default_headers(&mut h, true);
        assert_eq!(h[header::STRICT_TRANSPORT_SECURITY], HSTS);

        let mut page = HeaderMap::new();
        page.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        set_default_headers(&mut page, false);
        assert_eq!(page[header::CONTENT_SECURITY_POLICY], PAGE_POLICY);
        assert_eq!(
            page[header::REFERRER_POLICY],
            "strict-origin-when-cross-origin"
        );
        assert_eq!(page[header::CACHE_CONTROL], "no-store");
    }

    /// An edge that reports to `dsn`, around routes that panic and fail.
    fn reporting_edge(dsn: &str) -> (Edge<axum::Router>, Arc<ErrorReports>) {
        use axum::routing::post;

        async fn boom(_: String) -> &'static str {
            panic!("the thing broke at step 3")
        }

        let mut config = crate::config::Config::default();
        config.sentry.dsn = Some(crate::config::Secret::new(dsn));
        config.sentry.environment = "staging".into();
        config.sentry.traces_sample_rate = 1.0;
        let reports = ErrorReports::from_config(&config).unwrap().unwrap();
        let router = axum::Router::new()
            .route("/api/things/{id}", post(boom))
            .route(
                "/api/fail",
                post(|_: String| async {
                    AppError::Internal(anyhow::anyhow!("disk full while writing"))
                }),
            )
            .route("/api/fine", axum::routing::get(|| async { "fine" }));
        let edge = EdgeLayer::new(EdgeConfig {
            trusted_proxies: Arc::from([]),
            limits: Arc::new(Limits::new(&crate::config::LimitsConfig::default())),
            timeout: Duration::from_secs(5),
            transcription_timeout: Duration::from_secs(5),
            body_idle_timeout: Duration::from_secs(5),
            refusals: Arc::default(),
            https: false,
            reports: Some(reports.clone()),
            metrics: None,
            page_policy: None,
        })
        .layer(router.layer(RouteLabelLayer { traced: true }));
        (edge, reports)
    }

    /// A request carrying a secret in its URL, headers, cookie and body.
    fn secret_request(path: &str) -> Request {
        Request::post(format!("{path}?token=query-secret-1"))
            .header(header::AUTHORIZATION, "Bearer header-secret-2")
            .header(header::COOKIE, "aimake_session=cookie-secret-3")
            .header("x-api-key", "key-secret-4")
            .body(Body::from("body-secret-5"))
            .unwrap()
    }

    async fn flush(reports: &Arc<ErrorReports>) {
        let reports = reports.clone();
        let sent = tokio::task::spawn_blocking(move || reports.flush(Duration::from_secs(10)))
            .await
            .unwrap();
        assert!(sent, "the reports were sent");
    }

    #[tokio::test]
    async fn a_panic_and_a_server_error_reach_the_tracker_with_request_id_and_route_and_no_secrets()
    {
        let fake = fake_sentry::FakeSentry::start().await;
        let (app, reports) = reporting_edge(&fake.dsn());

        let panicked = app
            .clone()
            .oneshot(secret_request("/api/things/path-secret-6"))
            .await
            .unwrap();
        assert_eq!(panicked.status(), 500);
        let panic_id = panicked.headers()[REQUEST_ID].to_str().unwrap().to_string();
        let failed = app
            .clone()
            .oneshot(secret_request("/api/fail"))
            .await
            .unwrap();
        assert_eq!(failed.status(), 500);
        let fail_id = failed.headers()[REQUEST_ID].to_str().unwrap().to_string();
        flush(&reports).await;

        let events = fake.events();
        assert_eq!(events.len(), 2, "{events:?}");
        let panic = events
            .iter()
            .find(|e| e["tags"]["request_id"] == panic_id.as_str())
            .expect("the panic is reported with its request id");
        assert_eq!(panic["exception"]["values"][0]["type"], "panic");
        assert_eq!(
            panic["exception"]["values"][0]["value"],
            "the thing broke at step 3"
        );
        assert_eq!(panic["transaction"], "/api/things/{id}");
        assert_eq!(panic["tags"]["route"], "/api/things/{id}");
        assert_eq!(panic["tags"]["http.method"], "POST");
        assert_eq!(panic["environment"], "staging");
        assert_eq!(panic["release"], format!("aimake@{}", crate::VERSION));
        let failure = events
            .iter()
            .find(|e| e["tags"]["request_id"] == fail_id.as_str())
            .expect("the 500 is reported with its request id");
        assert_eq!(failure["exception"]["values"][0]["type"], "server_error");
        assert_eq!(
            failure["exception"]["values"][0]["value"],
            "disk full while writing"
        );
        assert_eq!(failure["tags"]["route"], "/api/fail");
        assert_eq!(failure["tags"]["http.status_code"], "500");

        let raw = fake.raw();
        for secret in [
            "query-secret-1",
            "header-secret-2",
            "cookie-secret-3",
            "key-secret-4",
            "body-secret-5",
            "path-secret-6",
        ] {
            assert!(!raw.contains(secret), "{secret} was sent: {raw}");
        }
        assert_eq!(fake.rejected(), 0);
    }

    #[tokio::test]
    async fn each_request_is_traced_under_its_route_pattern_and_only_errors_are_reported() {
        let fake = fake_sentry::FakeSentry::start().await;
        let (app, reports) = reporting_edge(&fake.dsn());
        assert_eq!(get(&app, "/api/fine").await.status(), 200);
        assert_eq!(get(&app, "/library/secret-page").await.status(), 404);
        flush(&reports).await;

        assert!(fake.events().is_empty(), "{:?}", fake.events());
        let names: Vec<String> = fake
            .transactions()
            .iter()
            .map(|t| t["transaction"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["/api/fine", "spa"], "{names:?}");
        assert!(!fake.raw().contains("secret-page"));
    }

    #[tokio::test]
    async fn a_wrong_key_is_refused_by_the_tracker_and_the_server_answers_as_before() {
        let fake = fake_sentry::FakeSentry::start().await;
        let (app, reports) = reporting_edge(&fake.dsn_with_wrong_key());
        let failed = app
            .clone()
            .oneshot(secret_request("/api/fail"))
            .await
            .unwrap();
        assert_eq!(failed.status(), 500);
        flush(&reports).await;
        assert!(fake.rejected() >= 1);
        assert!(fake.items().is_empty());
    }

    #[tokio::test]
    async fn without_reports_a_request_carries_no_trace_and_a_panic_is_still_a_json_500() {
        use axum::routing::get as route_get;

        async fn boom() -> &'static str {
            panic!("no tracker here")
        }
        let router = axum::Router::new()
            .route(
                "/api/traced",
                route_get(|req: Request| async move {
                    req.extensions()
                        .get::<Arc<RequestTrace>>()
                        .is_some()
                        .to_string()
                }),
            )
            .route("/api/boom", route_get(boom));
        let app = edge(router, Arc::default());
        let response = get(&app, "/api/traced").await;
        let body = axum::body::to_bytes(response.into_body(), 64)
            .await
            .unwrap();
        assert_eq!(&body[..], b"false");
        let response = get(&app, "/api/boom").await;
        assert_eq!(response.status(), 500);
        assert!(response.extensions().get::<ServerProblem>().is_some());
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal");
    }

    #[test]
    fn the_fake_tracker_decodes_items_with_and_without_a_length() {
        let body = b"{\"event_id\":\"e1\"}\n{\"type\":\"event\",\"length\":8}\n{\"a\":\n1}\n{\"type\":\"transaction\"}\n{\"b\":2}\n";
        let (header, items) = fake_sentry::decode(body).unwrap();
        assert_eq!(header["event_id"], "e1");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].json()["a"], 1);
        assert_eq!(items[1].kind(), "transaction");
        assert_eq!(items[1].json()["b"], 2);
    }
}
