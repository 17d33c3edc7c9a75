//! A connection's bytes on their way out. A request the HTTP parser cannot take (too many or
//! too large headers, a URI past its limit, a malformed head) is answered by hyper itself,
//! before any service runs, with a status and an empty body; this writer swaps that answer for
//! the API's JSON error and the headers every answer carries. Everything else passes through.

use std::io;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll, ready};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// hyper's answers to unparseable requests: a status line and an empty body, nothing else
/// (the edge gives every answer of ours a content type, so none of them look like this).
const PARSER_ANSWERS: [(&[u8], StatusCode, &str); 3] = [
    (
        b"HTTP/1.1 431 ",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "The request's headers are too many or too large",
    ),
    (
        b"HTTP/1.1 414 ",
        StatusCode::URI_TOO_LONG,
        "The request's URI is too long",
    ),
    (
        b"HTTP/1.1 400 ",
        StatusCode::BAD_REQUEST,
        "The request could not be parsed",
    ),
];

/// The JSON answers that replace them, built once: over plain http, and over https (with HSTS,
/// like every other answer there).
static REPLACEMENTS: LazyLock<[[Vec<u8>; 3]; 2]> = LazyLock::new(|| {
    [false, true]
        .map(|https| PARSER_ANSWERS.map(|(_, status, message)| replacement(status, message, https)))
});

fn replacement(status: StatusCode, message: &str, https: bool) -> Vec<u8> {
    let body = crate::error::error_body(crate::error::code_for_status(status), message).to_string();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    super::middleware::set_default_headers(&mut headers, https);
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nconnection: close\r\ncontent-length: {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or_default(),
        body.len()
    );
    for (name, value) in &headers {
        head.push_str(&format!(
            "{name}: {}\r\n",
            value.to_str().expect("static ASCII values")
        ));
    }
    head.push_str("\r\n");
    head.push_str(&body);
    head.into_bytes()
}

/// Which replacement, if `buf` is one of hyper's bodiless parser answers.
fn parser_answer(buf: &[u8]) -> Option<usize> {
    // Cheap first: every response starts "HTTP/1.1 ", few with a 4xx.
    if buf.len() < 13 || buf[9] != b'4' {
        return None;
    }
    let i = PARSER_ANSWERS
        .iter()
        .position(|(line, _, _)| buf.starts_with(line))?;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = &buf[..head_end];
    let has = |name: &[u8]| {
        head.split(|&b| b == b'\n')
            .any(|l| l.len() > name.len() && l[..name.len()].eq_ignore_ascii_case(name))
    };
    // Exactly the head and nothing after it, an empty body, and no content type.
    let bodiless = head_end + 4 == buf.len()
        && head
            .windows(19)
            .any(|w| w.eq_ignore_ascii_case(b"content-length: 0\r\n"))
        && !has(b"content-type:");
    bodiless.then_some(i)
}

/// The socket, with hyper's parser answers replaced on the way out.
pub struct JsonParserErrors<T> {
    inner: T,
    /// A replacement being written: its bytes, how many are out, and the length of the
    /// original answer to report once all are.
    pending: Option<(&'static [u8], usize, usize)>,
    /// The replacements for this server: with HSTS when it is reached over https.
    replacements: &'static [Vec<u8>; 3],
}

impl<T> JsonParserErrors<T> {
    /// `https`: the server is reached over https (its public URL says so).
    pub fn new(inner: T, https: bool) -> Self {
        Self {
            inner,
            pending: None,
            replacements: &REPLACEMENTS[usize::from(https)],
        }
    }
}

impl<T: AsyncWrite + Unpin> JsonParserErrors<T> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let (bytes, written, report) = self.pending.as_mut().expect("a pending replacement");
        while *written < bytes.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        let report = *report;
        self.pending = None;
        Poll::Ready(Ok(report))
    }

    fn start(&mut self, buf: &[u8]) -> bool {
        if self.pending.is_none()
            && let Some(i) = parser_answer(buf)
        {
            self.pending = Some((&self.replacements[i], 0, buf.len()));
        }
        self.pending.is_some()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonParserErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonParserErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.start(buf) {
            return self.poll_pending(cx);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // A parser answer is a head alone, written as one slice.
        if let [only] = bufs
            && self.start(only)
        {
            return self.poll_pending(cx);
        }
        if self.pending.is_some() {
            return self.poll_pending(cx);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_parser_answers_are_replaced() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Sun, 06 Dec 2026 19:00:00 GMT\r\n\r\n";
        assert_eq!(parser_answer(hyper_431), Some(0));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(parser_answer(ours), None);
        let with_body = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK";
        assert_eq!(parser_answer(with_body), None);
        assert_eq!(
            parser_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
            None
        );

        let json = String::from_utf8(REPLACEMENTS[0][0].clone()).unwrap();
        let (head, body) = json.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(head.contains("referrer-policy: no-referrer"), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "headers_too_large");
        assert!(!head.contains("strict-transport-security"), "{head}");
    }

    #[test]
    fn over_https_the_replacements_carry_hsts_like_every_other_answer() {
        for (i, answer) in REPLACEMENTS[1].iter().enumerate() {
            let text = String::from_utf8(answer.clone()).unwrap();
            let (head, _) = text.split_once("\r\n\r\n").unwrap();
            assert!(answer.starts_with(PARSER_ANSWERS[i].0), "{head}");
            assert!(
                head.contains("strict-transport-security: max-age="),
                "{head}"
            );
        }
        let mut plain = JsonParserErrors::new(Vec::<u8>::new(), false);
        assert!(plain.start(b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 05:00:00 GMT\r\n\r\n"));
        assert!(
            !plain
                .pending
                .unwrap()
                .0
                .windows(9)
                .any(|w| w == b"strict-tr")
        );
        let mut secure = JsonParserErrors::new(Vec::<u8>::new(), true);
        assert!(secure.start(b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 05:00:00 GMT\r\n\r\n"));
        let (bytes, _, _) = secure.pending.unwrap();
        assert!(bytes.starts_with(b"HTTP/1.1 414 "));
        assert!(bytes.windows(9).any(|w| w == b"strict-tr"));
    }
}
