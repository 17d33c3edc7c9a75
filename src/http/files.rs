//! Serving stored audio bytes: `Range` (one range), `ETag`/`If-None-Match`, `Last-Modified`,
//! and downloads with a safe file name, or, with `storage.presign`, a redirect to the bucket.
//! Used by the library, signed media links, feed enclosures and the recordings of transcripts.

use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::db::AudioStatus;
use crate::db::audios::AudioRow;
use crate::error::{AppError, Result};
use crate::state::AppState;
use crate::storage::Key;

/// A request for a stored file that passed its route's checks (ownership, or a signed link).
pub struct Ask<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// When the signed link the request came with expires (Unix seconds); None for the
    /// owner's own requests. A presigned URL never outlives it.
    pub link_exp: Option<i64>,
}

/// A stored object as [`serve_object`] answers for it: an audio's file or an uploaded
/// recording.
pub struct Stored<'a> {
    /// The object's stored key.
    pub key: &'a str,
    pub size: u64,
    /// The entity tag, quoted; it changes whenever the bytes could.
    pub etag: String,
    /// When the bytes last changed, in milliseconds since the epoch.
    pub modified_ms: i64,
    pub content_type: &'static str,
    /// `Content-Disposition` for a download; None plays inline.
    pub disposition: Option<HeaderValue>,
}

/// Streams a finished audio's object, honouring conditional and range requests.
pub async fn serve(
    state: &AppState,
    audio: &AudioRow,
    ask: &Ask<'_>,
    download: bool,
    cache: &'static str,
) -> Result<Response> {
    let (Some(key), Some(size), AudioStatus::Succeeded) =
        (&audio.object_key, audio.size_bytes, audio.status)
    else {
        return Err(AppError::Conflict(format!(
            "The audio is {}; its file is not ready",
            audio.status
        )));
    };
    let stored = Stored {
        key,
        size: size as u64,
        etag: match audio.sha256.as_deref() {
            Some(s) => format!("\"{}\"", &s[..s.len().min(32)]),
            None => format!("\"{}\"", audio.id),
        },
        modified_ms: audio.updated_at,
        content_type: if audio.format == "wav" {
            "audio/wav"
        } else {
            "audio/mpeg"
        },
        disposition: download.then(|| disposition(&audio.title, &audio.format)),
    };
    serve_object(state, stored, ask, cache).await
}

/// Streams a stored object: `ETag`/`If-None-Match`, `Last-Modified`/`If-Modified-Since`,
/// and one `Range` (206 with `Content-Range`, 416 outside the object, the whole object for
/// several ranges or one that does not parse), honoured only while `If-Range` holds.
pub async fn serve_object(
    state: &AppState,
    stored: Stored<'_>,
    ask: &Ask<'_>,
    cache: &'static str,
) -> Result<Response> {
    if let Some(redirect) = presigned(state, &stored, ask, cache).await? {
        return Ok(redirect);
    }
    let headers = ask.headers;
    let Stored {
        key,
        size,
        etag,
        modified_ms,
        content_type,
        disposition,
    } = stored;
    let modified = httpdate::fmt_http_date(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(modified_ms.max(0) as u64),
    );
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::LAST_MODIFIED, &modified)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, cache);

    let not_modified = match headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        Some(tags) => tags
            .split(',')
            .map(str::trim)
            .any(|t| t == etag || t == "*" || t.strip_prefix("W/") == Some(&etag)),
        None => headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since| {
                let ours = std::time::UNIX_EPOCH
                    + std::time::Duration::from_secs(modified_ms.max(0) as u64 / 1000);
                ours <= since
            }),
    };
    if not_modified {
        return Ok(builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .expect("valid response"));
    }

    builder = builder.header(header::CONTENT_TYPE, content_type);
    if let Some(disposition) = disposition {
        builder = builder.header(header::CONTENT_DISPOSITION, disposition);
    }

    // A range applies only while the client's copy is current (If-Range).
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v == etag || v == modified);
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_ok);
    // A Range that does not parse is ignored (RFC 9110 §14.2): the whole file. One that
    // parses but lies outside the file is answered 416.
    let (status, range) = match range
        .and_then(|r| http_range_header::parse_range_header(r).ok())
        .map(|r| r.validate(size))
    {
        None => (StatusCode::OK, None),
        Some(Ok(ranges)) if ranges.len() == 1 => {
            let r = ranges[0].clone();
            builder = builder.header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{size}", r.start(), r.end()),
            );
            (StatusCode::PARTIAL_CONTENT, Some(*r.start()..*r.end() + 1))
        }
        // Several ranges: the whole file is a valid answer and simpler for everyone.
        Some(Ok(_)) => (StatusCode::OK, None),
        Some(Err(_)) => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{size}"))],
            )
                .into_response());
        }
    };
    let length = range.as_ref().map_or(size, |r| r.end - r.start);
    let stream = state.storage.stream(&Key::from_stored(key), range).await?;
    Ok(builder
        .status(status)
        .header(header::CONTENT_LENGTH, length)
        .body(Body::from_stream(stream))
        .expect("valid response"))
}

/// With `storage.presign`, a GET is answered with a 302 to the object in the bucket, signed
/// for at most `storage.presign_expiry_s` and never past the link the request came with; the
/// bucket answers with the type, caching and download name this server would have sent.
/// HEAD stays here: a presigned URL is good for the one method it was signed for.
async fn presigned(
    state: &AppState,
    stored: &Stored<'_>,
    ask: &Ask<'_>,
    cache: &'static str,
) -> Result<Option<Response>> {
    let config = &state.config.storage;
    if !config.presign || *ask.method != Method::GET {
        return Ok(None);
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut secs = i64::try_from(config.presign_expiry_s).unwrap_or(i64::MAX);
    if let Some(exp) = ask.link_exp {
        secs = secs.min(exp - now);
    }
    // A link in its very last second is still good, but too short-lived to sign for.
    let Ok(secs @ 1..) = u64::try_from(secs) else {
        return Ok(None);
    };
    let url = state
        .storage
        .presigned_get(
            &Key::from_stored(stored.key),
            Duration::from_secs(secs),
            stored.content_type,
            cache,
            stored.disposition.as_ref().and_then(|d| d.to_str().ok()),
        )
        .await?;
    // Every answer carries a fresh signature: a cached redirect could outlive it.
    redirect(&url, "no-store").map(Some)
}

/// A 302 to where a file is served from instead (the bucket, a public URL).
pub fn redirect(location: &str, cache: &'static str) -> Result<Response> {
    let location = HeaderValue::from_str(location).context("a redirect to an unusable URL")?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
    )
        .into_response())
}

/// `attachment` with an ASCII fallback name and the exact UTF-8 name (RFC 6266 / 5987).
pub(super) fn disposition(title: &str, ext: &str) -> HeaderValue {
    let ascii: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " -_()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim()
        .chars()
        .take(100)
        .collect();
    let ascii = if ascii.trim_matches('_').is_empty() {
        "audio".to_string()
    } else {
        ascii
    };
    let utf8: String = format!("{}.{ext}", title.trim())
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}.{ext}\"; filename*=UTF-8''{utf8}"
    ))
    .unwrap_or(HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_are_safe_and_keep_the_real_title() {
        let v = disposition("My \"talk\"/../季度 报告", "mp3");
        let s = v.to_str().unwrap();
        let ascii = s.split('"').nth(1).unwrap();
        assert!(
            ascii.starts_with("My _talk") && ascii.ends_with(".mp3"),
            "{s}"
        );
        assert!(
            !ascii.contains('/') && !ascii.contains("..") && !ascii.contains('\\'),
            "{s}"
        );
        assert!(
            s.contains("filename*=UTF-8''My%20%22talk%22%2F..%2F%E5%AD%A3"),
            "{s}"
        );
        assert!(!s.contains('\n'));
        assert_eq!(
            disposition("你好", "wav").to_str().unwrap(),
            "attachment; filename=\"audio.wav\"; filename*=UTF-8''%E4%BD%A0%E5%A5%BD.wav"
        );
    }
}
