//! The edge of the server: who the client is (IP behind trusted proxies), CSRF and CORS.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use ipnet::IpNet;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::REQUEST_ID;
use crate::error::AppError;
use crate::error::ErrorCode;

/// Cloudflare's header carrying the visitor's address.
const CF_CONNECTING_IP: HeaderName = HeaderName::from_static("cf-connecting-ip");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address: the socket peer, or what a trusted proxy says it forwarded for.
/// Every request has one (`0.0.0.0` only when no socket is known, as in router unit tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .unwrap_or(ClientIp(IpAddr::V4(Ipv4Addr::UNSPECIFIED))))
    }
}

/// Forwarding headers are believed only from a trusted peer, since anyone can send them.
/// `X-Forwarded-For` is read from the right (the hops nearest us), skipping trusted proxies:
/// the first address we do not trust is the client.
pub fn resolve_client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let Some(peer) = peer.map(canonical) else {
        return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    if let Some(ip) = headers
        .get(CF_CONNECTING_IP)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_hop)
    {
        return ip;
    }
    let hops: Vec<IpAddr> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map_while(parse_hop)
        .collect();
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer)
}

/// One forwarded address: `203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1` or `[2001:db8::1]:4711`.
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    raw.parse::<IpAddr>()
        .or_else(|_| raw.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(canonical)
}

/// An IPv4 client seen through an IPv6 socket is still that IPv4 client.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The origins a browser may send cookie-authenticated writes from: our own public origin
/// and the configured CORS origins.
#[derive(Debug, Clone)]
pub struct TrustedOrigins(Vec<String>);

impl TrustedOrigins {
    pub fn new(public_url: &str, cors_origins: &[String]) -> Self {
        let all = std::iter::once(public_url)
            .chain(cors_origins.iter().map(String::as_str))
            .filter_map(origin_of)
            .collect();
        Self(all)
    }

    fn allows(&self, origin: &str) -> bool {
        origin_of(origin).is_some_and(|o| self.0.contains(&o))
    }
}

/// `scheme://host[:port]` of a URL, lower-cased and without a default port; `None` for opaque
/// origins such as `null`.
fn origin_of(url: &str) -> Option<String> {
    let origin = url::Url::parse(url.trim()).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

fn is_bearer(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.get(..7))
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer "))
}

/// A cookie-authenticated write must come from one of our origins.
///
/// A browser attaches the session cookie to cross-site form posts, but always says where the
/// request came from (`Origin`, else `Referer`). Bearer tokens are never sent by a browser on
/// its own, so those requests are exempt; so are writes without any cookie or origin
/// (scripts signing in), which carry no ambient credential to abuse.
pub fn check_csrf(
    origins: &TrustedOrigins,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), AppError> {
    let safe = matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    if safe || is_bearer(headers) {
        return Ok(());
    }
    let claimed = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .map(|v| v.to_str().unwrap_or(""));
    let allowed = match claimed {
        Some(origin) => origins.allows(origin),
        None => super::extract::session_cookie(headers).is_none(),
    };
    if allowed {
        Ok(())
    } else {
        Err(AppError::Forbidden {
            code: ErrorCode::CsrfRejected,
            message: "This request did not come from this site".into(),
        })
    }
}

/// Browsers on the listed origins may call the API with credentials; nobody else gets CORS
/// headers. `None` when no origins are configured.
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| origin_of(o))
        .filter_map(|o| HeaderValue::from_str(&o).ok())
        .collect();
    if list.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(list))
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::RANGE,
                REQUEST_ID,
            ])
            .expose_headers([
                REQUEST_ID,
                header::RETRY_AFTER,
                header::CONTENT_DISPOSITION,
                header::CONTENT_RANGE,
            ])
            .max_age(Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let ip: IpAddr = "198.51.100.9".parse().unwrap();
        let peer = Some(ip);
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("cf-connecting-ip", "5.6.7.8"),
        ]);
        assert_eq!(resolve_client_ip(peer, &h, &nets(&["10.0.0.0/8"])), ip);
        assert_eq!(resolve_client_ip(peer, &h, &[]), ip);
    }

    #[test]
    fn a_trusted_proxy_chain_is_walked_from_the_right() {
        let trusted = nets(&["10.0.0.0/8"]);
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        let peer = Some(ip);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.1")]);
        assert_eq!(
            resolve_client_ip(peer, &h, &trusted),
            "203.0.113.7".parse::<IpAddr>().unwrap(),
            "the left-most entry is whatever the client claimed"
        );
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.7:5555"),
            ("x-forwarded-for", "10.0.0.1"),
        ]);
        assert_eq!(
            resolve_client_ip(peer, &h, &trusted),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        let h = headers(&[("cf-connecting-ip", "2001:db8::7")]);
        assert_eq!(
            resolve_client_ip(peer, &h, &trusted),
            "2001:db8::7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            resolve_client_ip(peer, &HeaderMap::new(), &trusted),
            ip,
            "no header: the proxy itself"
        );
    }

    #[test]
    fn origins_compare_by_scheme_host_and_port() {
        let o = TrustedOrigins::new(
            "https://Audio.Example.com/app/",
            &["http://localhost:5173".into()],
        );
        assert!(o.allows("https://audio.example.com"));
        assert!(o.allows("https://audio.example.com:443"));
        assert!(o.allows("https://audio.example.com/page?x=1"), "a Referer");
        assert!(o.allows("http://localhost:5173"));
        assert!(!o.allows("http://audio.example.com"));
        assert!(!o.allows("https://audio.example.com.evil.test"));
        assert!(!o.allows("null"));
        assert!(!o.allows(""));
    }
}
