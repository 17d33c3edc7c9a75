//! Serves the embedded web app: hashed assets cached forever and precompressed, `index.html`
//! for every other path so client-side routes survive a reload.

use std::borrow::Cow;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
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

pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
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
    let hashed = path.starts_with("assets/");
    let (file, cache) = if !path.is_empty() && !path.ends_with('/') && Assets::get(path).is_some() {
        (path, if hashed { IMMUTABLE } else { SHORT })
    } else if hashed {
        // A stale page asking for an asset of an older build: a 404, not HTML posing as JS.
        return (StatusCode::NOT_FOUND, "asset not found").into_response();
    } else {
        (INDEX, "no-cache")
    };
    respond(file, cache, &headers)
}

fn respond(file: &str, cache: &'static str, headers: &HeaderMap) -> Response {
    let (served, encoding) = pick_variant(file, headers);
    let Some(asset) = Assets::get(&served) else {
        // Only reachable when the binary was built without the web app.
        return (
            StatusCode::NOT_FOUND,
            "the web app is not built into this binary",
        )
            .into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&asset.metadata.sha256_hash()[..16]));
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let not_modified =
        if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));

    let mut builder = Response::builder()
        .header(header::CACHE_CONTROL, cache)
        .header(header::ETAG, &etag)
        .header(header::VARY, "accept-encoding");
    if not_modified {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .expect("valid response");
    }
    builder = builder.header(header::CONTENT_TYPE, content_type(file));
    if let Some(enc) = encoding {
        builder = builder.header(header::CONTENT_ENCODING, enc);
    }
    let body = match asset.data {
        Cow::Borrowed(b) => Body::from(b),
        Cow::Owned(v) => Body::from(v),
    };
    builder
        .status(StatusCode::OK)
        .body(body)
        .expect("valid response")
}

/// The precompressed sibling (`.br`, then `.gz`) the client accepts, if the build made one.
fn pick_variant(file: &str, headers: &HeaderMap) -> (String, Option<&'static str>) {
    let accepted = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for (token, ext) in [("br", "br"), ("gzip", "gz")] {
        if accepts(accepted, token) {
            let candidate = format!("{file}.{ext}");
            if Assets::get(&candidate).is_some() {
                return (candidate, Some(token));
            }
        }
    }
    (file.to_string(), None)
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
