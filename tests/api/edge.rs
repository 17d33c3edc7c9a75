//! What every request meets at the edge: one error shape and the security headers on every
//! answer, stalled bodies cut off, and no client holding more than its share of the slots.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use aimake::auth::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::fakes::FakeOpenAi;
use crate::helpers::{TestApp, error_code};

/// A connection from `127.0.0.<last>` (Linux answers on the whole of 127.0.0.0/8), so the
/// server sees another client address.
async fn connect_from(last: u8, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
            0,
        ))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// `PATCH /api/me` whose body announces 100 bytes, sends `{`, and then nothing.
async fn stalled_patch(stream: &mut TcpStream, addr: SocketAddr, token: &str) {
    let head = format!(
        "PATCH /api/me HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
}

/// The status of the answer on `stream` within `wait`, if one comes.
async fn status_within(stream: &mut TcpStream, wait: Duration) -> Option<(u16, String)> {
    let mut buf = vec![0; 4096];
    let mut got = Vec::new();
    let read = async {
        loop {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some((head, body)) = text.split_once("\r\n\r\n")
                && body.ends_with('}')
            {
                let status = head.get(9..12)?.parse().ok()?;
                return Some((status, body.to_string()));
            }
        }
        None
    };
    tokio::time::timeout(wait, read).await.ok().flatten()
}

#[tokio::test]
async fn a_slow_body_attack_from_one_user_on_three_addresses_leaves_other_users_served() {
    // Stalled bodies are held for the whole test: only the per-client share frees the rest.
    let app = TestApp::spawn_with(|c| c.server.body_idle_timeout_s = 300).await;
    let (_, token) = app.user_with_key("mallory@example.com").await;
    let ada = app.signed_in("ada@example.com", Role::User).await;
    let max_in_flight = app.state.config.limits.max_in_flight;
    let share = app.state.config.limits.max_in_flight_per_client;

    let attack = 270;
    assert!(attack > max_in_flight, "enough to take every slot");
    let mut streams = Vec::new();
    for i in 0..attack {
        let mut stream = connect_from(2 + (i % 3) as u8, app.addr).await;
        stalled_patch(&mut stream, app.addr, &token).await;
        streams.push(stream);
    }
    let answers = futures::future::join_all(
        streams
            .iter_mut()
            .map(|s| status_within(s, Duration::from_secs(5))),
    )
    .await;
    let held = answers.iter().filter(|a| a.is_none()).count();
    let refused: Vec<&(u16, String)> = answers.iter().flatten().collect();
    assert_eq!(held, share, "the user holds exactly its share of the slots");
    assert_eq!(refused.len(), attack - share);
    for (status, body) in refused {
        assert_eq!(*status, 503);
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "overloaded");
    }

    // Everyone else is served while the attack holds its slots.
    for _ in 0..20 {
        assert_eq!(ada.get("/api/me").await.status(), 200);
    }
    let resp = ada
        .patch("/api/me", &json!({ "display_name": "Ada" }))
        .await;
    assert_eq!(resp.status(), 200);
    drop(streams);
    app.stop().await;
}

#[tokio::test]
async fn a_request_body_that_stops_arriving_gets_408_and_frees_its_slot() {
    let app = TestApp::spawn_with(|c| {
        c.server.body_idle_timeout_s = 1;
        c.limits.max_in_flight_per_client = 1;
    })
    .await;
    let (_, token) = app.user_with_key("ada@example.com").await;

    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stalled_patch(&mut stream, app.addr, &token).await;
    let started = std::time::Instant::now();
    let (status, body) = status_within(&mut stream, Duration::from_secs(10))
        .await
        .expect("an answer after the idle timeout");
    assert_eq!(status, 408);
    assert!(started.elapsed() >= Duration::from_millis(900));
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "body_timeout");

    // The one slot this client may hold is free again.
    let resp = app.get_with_key("/api/me", &token).await;
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn every_error_has_the_json_shape_and_every_answer_the_security_headers() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let (s, token) = app.user_with_key("ada@example.com").await;
    let audio: Value = s
        .post(
            "/api/audios",
            &json!({"text": "Bytes please.", "voice": "openai:alloy"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let audio_id = audio["id"].as_str().unwrap().to_string();
    let file = format!("/api/audios/{audio_id}/file");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while s.get(&file).await.status() != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the audio never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let show: Value = s
        .post("/api/podcasts", &json!({"title": "Show"}))
        .await
        .json()
        .await
        .unwrap();
    let show = show["id"].as_str().unwrap().to_string();

    let c = &app.client;
    let bearer = format!("Bearer {token}");
    let many_headers = {
        let mut h = reqwest::header::HeaderMap::new();
        for i in 0..1000 {
            h.insert(
                reqwest::header::HeaderName::from_bytes(format!("x-h-{i}").as_bytes()).unwrap(),
                reqwest::header::HeaderValue::from_static("1"),
            );
        }
        h
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, Option<&str>)> = vec![
        (
            "a query string that does not parse",
            c.get(app.url(&format!("/media/{audio_id}?exp=abc&sig=x"))),
            400,
            Some("invalid_request"),
        ),
        (
            "a 6 MB cover",
            c.put(app.url(&format!("/api/podcasts/{show}/cover")))
                .header("authorization", &bearer)
                .header("content-type", "image/png")
                .body(vec![0u8; 6 * 1024 * 1024]),
            413,
            Some("payload_too_large"),
        ),
        (
            "1000 request headers",
            c.get(app.url("/api/me")).headers(many_headers),
            431,
            Some("headers_too_large"),
        ),
        (
            "a Range that does not parse is ignored",
            c.get(app.url(&file))
                .header("authorization", &bearer)
                .header("range", "bytes=abc"),
            200,
            None,
        ),
        (
            "a Range past the end",
            c.get(app.url(&file))
                .header("authorization", &bearer)
                .header("range", "bytes=999999999-"),
            416,
            Some("range_not_satisfiable"),
        ),
        (
            "an unknown route under /api",
            c.get(app.url("/api/no-such-thing")),
            404,
            Some("not_found"),
        ),
        (
            "a missing web app asset",
            c.get(app.url("/assets/no-such-file.js")),
            404,
            Some("not_found"),
        ),
        (
            "a wrong method",
            c.delete(app.url("/api/me"))
                .header("authorization", &bearer),
            405,
            Some("method_not_allowed"),
        ),
        (
            "a wrong content type",
            c.patch(app.url("/api/me"))
                .header("authorization", &bearer)
                .header("content-type", "text/plain")
                .body("{}"),
            415,
            Some("unsupported_media_type"),
        ),
        (
            "malformed JSON",
            c.patch(app.url("/api/me"))
                .header("authorization", &bearer)
                .header("content-type", "application/json")
                .body("{\"display_name\": "),
            400,
            Some("invalid_request"),
        ),
        (
            "a path segment that is not UTF-8",
            c.get(app.url(&format!("/api/audios/%FF{audio_id}")))
                .header("authorization", &bearer),
            400,
            Some("invalid_request"),
        ),
    ];
    for (what, request, status, code) in cases {
        let resp = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: {}", e.without_url()));
        assert_eq!(resp.status(), status, "{what}");
        let headers = resp.headers().clone();
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
        ] {
            assert_eq!(
                headers.get(name).map(|v| v.to_str().unwrap()),
                Some(value),
                "{what}: {name}"
            );
        }
        assert!(
            headers.contains_key("content-security-policy"),
            "{what}: content-security-policy"
        );
        let Some(code) = code else {
            let body = resp.bytes().await.unwrap();
            assert!(!body.is_empty(), "{what}: the whole file");
            continue;
        };
        assert_eq!(headers["content-type"], "application/json", "{what}");
        let body: Value = resp.json().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        assert!(body["error"]["message"].is_string(), "{what}: {body}");
    }

    // Past hyper's URI limit (which no HTTP client library will send).
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let long = format!(
        "GET /api/audios?q={} HTTP/1.1\r\nhost: {}\r\n\r\n",
        "a".repeat(70_000),
        app.addr
    );
    stream.write_all(long.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 414 "), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("referrer-policy: no-referrer"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"]["code"], "uri_too_long");

    // Pages keep their own referrer policy.
    let page = app.get("/").await;
    assert_eq!(
        page.headers()["referrer-policy"],
        "strict-origin-when-cross-origin"
    );
    assert_eq!(
        error_code(app.get("/api/me").await).await,
        "unauthenticated"
    );
    app.stop().await;
}
