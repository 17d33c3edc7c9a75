//! Serves the embedded web app: hashed assets cached forever and precompressed, `index.html`
//! for every other path so client-side routes survive a reload.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

/// The built SPA (`web/dist`), compiled into the binary.
#[derive(RustEmbed)]
#[folder = "web/dist"]
pub struct Assets;

const INDEX: &str = "index.html";

/// Vite puts content-hashed files under `assets/`: their bytes never change under a name.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Unhashed files (favicon, robots.txt) may change with an upgrade.
const SHORT: &str = "public, max-age=3600";

/// One embedded file as served: its headers worked out once, at the first request, and its
/// bytes borrowed from the binary.
struct Entry {
    content_type: HeaderValue,
    /// HTML: answers carry the page policies.
    page: bool,
    cache: HeaderValue,
    /// The compressed siblings the build made (`br` first, then `gzip`), then the file itself.
    variants: Vec<Variant>,
}

struct Variant {
    /// The `Content-Encoding` token, `None` for the file as is.
    encoding: Option<&'static str>,
    etag: HeaderValue,
    bytes: Bytes,
    /// A full answer's headers, the defaults every answer carries included: copying a
    /// finished map costs less than building one per request.
    headers: HeaderMap,
}

/// Every servable file by path (without the leading slash); compressed siblings are variants
/// of their file, not files of their own.
static FILES: LazyLock<HashMap<String, Entry>> = LazyLock::new(|| {
    Assets::iter()
        .filter(|path| !path.ends_with(".br") && !path.ends_with(".gz"))
        .map(|path| {
            let cache = if path.starts_with("assets/") {
                IMMUTABLE
            } else if path.ends_with(".html") {
                // Pages name hashed assets: a stale one would ask for files a newer build lacks.
                "no-cache"
            } else {
                SHORT
            };
            let content_type = content_type(&path);
            let mut entry = Entry {
                page: content_type.as_bytes().starts_with(b"text/html"),
                content_type,
                cache: HeaderValue::from_static(cache),
                variants: Vec::new(),
            };
            entry.variants = [("br", ".br"), ("gzip", ".gz"), ("", "")]
                .into_iter()
                .filter_map(|(token, ext)| {
                    let file = Assets::get(&format!("{path}{ext}"))?;
                    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
                    let encoding = (!token.is_empty()).then_some(token);
                    let etag = HeaderValue::from_str(&etag).expect("hex is a valid header value");
                    Some(Variant {
                        headers: headers(&entry, encoding, &etag),
                        encoding,
                        etag,
                        bytes: match file.data {
                            Cow::Borrowed(b) => Bytes::from_static(b),
                            Cow::Owned(v) => Bytes::from(v),
                        },
                    })
                })
                .collect();
            (path.into_owned(), entry)
        })
        .collect()
});

/// A hashed asset answered straight from memory, before any routing: `None` for anything
/// else, which takes the normal way. Requests from another origin go the normal way too, so
/// they get their CORS headers.
pub fn asset(method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
    if !path.starts_with("/assets/")
        || (method != Method::GET && method != Method::HEAD)
        || headers.contains_key(header::ORIGIN)
    {
        return None;
    }
    Some(match FILES.get(&path[1..]) {
        Some(entry) => respond(entry, headers),
        None => missing_asset(),
    })
}

/// One page of the built web app by its file name (`api-docs.html`), as [`serve`] answers it.
pub fn page(name: &str, headers: &HeaderMap) -> Response {
    match FILES.get(name) {
        Some(entry) => respond(entry, headers),
        None => (
            StatusCode::NOT_FOUND,
            "the web app is not built into this binary",
        )
            .into_response(),
    }
}

/// A stale page asking for an asset of an older build: a 404, not HTML posing as JS.
fn missing_asset() -> Response {
    crate::error::AppError::NotFound.into_response()
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn serve(req: Request) -> Response {
    let (method, uri, headers) = (req.method(), req.uri(), req.headers());
    if method != Method::GET && method != Method::HEAD {
        return super::method_not_allowed().await.into_response();
    }
    // Server-owned prefixes never fall back to the app: unknown paths there are JSON 404s.
    if ["/media/", "/feeds/"]
        .iter()
        .any(|p| uri.path().starts_with(p))
    {
        return crate::error::AppError::NotFound.into_response();
    }
    let path = uri.path().trim_start_matches('/');
    let entry = match FILES.get(path) {
        Some(entry) => entry,
        None if path.starts_with("assets/") => return missing_asset(),
        None => match FILES.get(INDEX) {
            Some(index) => index,
            // Only reachable when the binary was built without the web app.
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    "the web app is not built into this binary",
                )
                    .into_response();
            }
        },
    };
    respond(entry, headers)
}

/// The variant the client accepts, or 304 when it already holds that variant's ETag.
fn respond(entry: &Entry, headers: &HeaderMap) -> Response {
    let accepted = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(variant) = entry
        .variants
        .iter()
        .find(|v| v.encoding.is_none_or(|token| accepts(accepted, token)))
    else {
        return missing_asset();
    };
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.as_bytes() == variant.etag.as_bytes())
        });
    if !not_modified {
        let mut response = Body::from(variant.bytes.clone()).into_response();
        *response.headers_mut() = variant.headers.clone();
        return response;
    }
    // A 304 repeats the validators and caching headers of the answer it stands for.
    let mut response = (StatusCode::NOT_MODIFIED, Body::empty()).into_response();
    let h = response.headers_mut();
    for name in [
        header::CACHE_CONTROL,
        header::ETAG,
        header::VARY,
        header::CONTENT_SECURITY_POLICY,
        header::REFERRER_POLICY,
    ] {
        if let Some(value) = variant.headers.get(&name) {
            h.insert(name, value.clone());
        }
    }
    response
}

/// The headers of a full answer with one variant of `entry`.
fn headers(entry: &Entry, encoding: Option<&'static str>, etag: &HeaderValue) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(16);
    h.insert(header::CONTENT_TYPE, entry.content_type.clone());
    if let Some(token) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(token));
    }
    if entry.page {
        // Said on 304s too: a browser refreshes its cached copy's headers from them.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(super::middleware::PAGE_POLICY),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static(super::middleware::PAGE_REFERRER_POLICY),
        );
    }
    h.insert(header::CACHE_CONTROL, entry.cache.clone());
    h.insert(header::ETAG, etag.clone());
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    super::middleware::set_default_headers(&mut h, false);
    h
}

/// Whether an `Accept-Encoding` value allows `coding` (present, or via `*`, and not `q=0`).
fn accepts(header: &str, coding: &str) -> bool {
    let mut wildcard = false;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let q_zero = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                == Some(0.0)
        });
        if name.eq_ignore_ascii_case(coding) {
            return !q_zero;
        }
        if name == "*" {
            wildcard = !q_zero;
        }
    }
    wildcard
}

fn content_type(file: &str) -> HeaderValue {
    let mime = mime_guess::from_path(file).first_or_octet_stream();
    let text = mime.type_() == mime_guess::mime::TEXT
        || mime.subtype() == "javascript"
        || mime.subtype() == "json";
    let value = if text {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

/// True when the web app was built into this binary; `aimake version` and tests report it.
pub fn web_app_embedded() -> bool {
    Assets::get(INDEX).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_is_parsed_with_quality_values() {
        assert!(accepts("gzip, deflate, br", "br"));
        assert!(accepts("br;q=1.0, gzip;q=0.8", "gzip"));
        assert!(!accepts("br;q=0, gzip", "br"));
        assert!(!accepts("gzip", "br"));
        assert!(accepts("*", "br"));
        assert!(!accepts("*, br;q=0", "br"));
        assert!(!accepts("", "gzip"));
    }

    #[test]
    fn the_web_app_is_embedded() {
        assert!(
            web_app_embedded(),
            "web/dist/index.html is not embedded: build the web app (`make web`) before the binary"
        );
        let index = Assets::get(INDEX).unwrap();
        let html = std::str::from_utf8(&index.data).unwrap();
        assert!(
            html.contains("<div id=\"root\">"),
            "index.html is the SPA shell"
        );
        assert!(
            Assets::iter().any(|f| f.starts_with("assets/") && f.ends_with(".js")),
            "JS assets are embedded"
        );
    }

    #[test]
    fn text_types_carry_a_charset() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert!(
            content_type("assets/a.js")
                .to_str()
                .unwrap()
                .ends_with("charset=utf-8")
        );
        assert_eq!(content_type("a.png"), "image/png");
    }
}
