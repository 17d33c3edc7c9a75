//! The plain HTTP listener once aimake serves HTTPS itself: it answers the authority's HTTP-01
//! check, lets local probes (`aimake healthcheck`, Docker's HEALTHCHECK, a monitoring agent on
//! the machine) read `/health` and `/health/ready`, and sends everything else to HTTPS with a
//! permanent redirect that keeps the method, path and query.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use tower::ServiceExt;

use super::Certs;

const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The plain listener's service, in front of `app` (which only local health probes reach).
#[derive(Clone)]
pub struct Redirect<S> {
    app: S,
    certs: Arc<Certs>,
    /// The HTTPS origin redirects go to when the request's host is not one of `names`.
    origin: Arc<str>,
    /// The names served over HTTPS (`server.domains`): a request for one keeps its host.
    names: Arc<[String]>,
    /// The HTTPS port, when not 443.
    port: Option<u16>,
}

impl<S> Redirect<S> {
    pub fn new(app: S, certs: Arc<Certs>, origin: &str, names: &[String], port: u16) -> Self {
        Self {
            app,
            certs,
            origin: origin.trim_end_matches('/').into(),
            names: names.into(),
            port: (port != 443).then_some(port),
        }
    }

    /// Where `req` goes over HTTPS.
    fn location(&self, req: &Request) -> String {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name))
            .map(str::to_ascii_lowercase);
        let origin = match host {
            Some(host) if self.names.contains(&host) => match self.port {
                Some(port) => format!("https://{host}:{port}"),
                None => format!("https://{host}"),
            },
            _ => self.origin.to_string(),
        };
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        format!("{origin}{path}")
    }
}

impl<S> tower::Service<Request> for Redirect<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let path = req.uri().path();
        if let Some(token) = path.strip_prefix(CHALLENGE_PREFIX) {
            let answer = (req.method() == Method::GET)
                .then(|| self.certs.http_challenge(token))
                .flatten();
            return Box::pin(async move {
                Ok(match answer {
                    Some(key_authorization) => (
                        [(header::CONTENT_TYPE, "application/octet-stream")],
                        key_authorization,
                    )
                        .into_response(),
                    None => StatusCode::NOT_FOUND.into_response(),
                })
            });
        }
        let local = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_some_and(|ConnectInfo(peer)| peer.ip().is_loopback());
        if local && matches!(path, "/health" | "/health/ready") {
            return Box::pin(self.app.clone().oneshot(req));
        }
        let location = self.location(&req);
        Box::pin(async move {
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
            if let Ok(value) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, value);
            }
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(port: u16) -> Redirect<()> {
        Redirect::new(
            (),
            Arc::default(),
            "https://audio.example.com/",
            &["audio.example.com".into(), "www.audio.example.com".into()],
            port,
        )
    }

    fn request(host: &str, uri: &str) -> Request {
        Request::builder()
            .uri(uri)
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn a_redirect_keeps_a_known_host_and_the_path_and_query_and_adds_a_port_only_when_not_443() {
        let r = redirect(443);
        assert_eq!(
            r.location(&request("www.audio.example.com", "/library?page=2")),
            "https://www.audio.example.com/library?page=2"
        );
        assert_eq!(
            r.location(&request("AUDIO.example.com:80", "/")),
            "https://audio.example.com/"
        );
        // A host aimake has no certificate for goes to the public origin.
        assert_eq!(
            r.location(&request("evil.example.net", "/x")),
            "https://audio.example.com/x"
        );
        let r = redirect(8443);
        assert_eq!(
            r.location(&request("audio.example.com:8080", "/a")),
            "https://audio.example.com:8443/a"
        );
    }
}
