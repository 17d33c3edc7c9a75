//! The perimeter over HTTP: CSRF, CORS, client IPs, rate limits, load shedding, body limits,
//! security headers, and secrets kept out of the log.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use aimake::auth::Role;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::helpers::{PASSWORD, TestApp, bin, error_code, session_cookie};

#[tokio::test]
async fn a_cross_origin_cookie_post_is_rejected_and_a_same_origin_one_accepted() {
    let app = TestApp::spawn().await;
    let user = app.signed_in("ada@example.com", Role::User).await;
    let post = |origin: Option<&str>, referer: Option<&str>| {
        let mut req = app
            .client
            .post(app.url("/api/tokens"))
            .header("cookie", format!("aimake_session={}", user.cookie))
            .json(&json!({ "name": "t" }));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(r) = referer {
            req = req.header("referer", r);
        }
        req.send()
    };

    let resp = post(Some("https://evil.example"), None).await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(error_code(resp).await, "csrf_rejected");
    let resp = post(None, None).await.unwrap();
    assert_eq!(
        resp.status(),
        403,
        "a cookie without any origin is refused too"
    );
    let resp = post(None, Some("https://evil.example/page")).await.unwrap();
    assert_eq!(resp.status(), 403);
    let resp = post(Some("null"), None).await.unwrap();
    assert_eq!(resp.status(), 403);

    assert_eq!(post(Some(&app.origin()), None).await.unwrap().status(), 201);
    let referer = format!("{}/settings", app.origin());
    assert_eq!(post(None, Some(&referer)).await.unwrap().status(), 201);

    let list: Value = user.get("/api/tokens").await.json().await.unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        2,
        "refused requests changed nothing"
    );
    app.stop().await;
}

#[tokio::test]
async fn bearer_requests_are_exempt_from_the_origin_check() {
    let app = TestApp::spawn().await;
    let (_, token) = app.user_with_key("ada@example.com").await;
    let resp = app
        .client
        .post(app.url("/api/tokens"))
        .bearer_auth(&token)
        .header("origin", "https://elsewhere.example")
        .json(&json!({ "name": "made by a script" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    app.stop().await;
}

#[tokio::test]
async fn a_configured_cors_origin_may_call_with_credentials_and_others_may_not() {
    let app =
        TestApp::spawn_with(|c| c.server.cors_origins = vec!["http://localhost:5173".into()]).await;
    let preflight = |origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/tokens"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let resp = preflight("http://localhost:5173").await.unwrap();
    assert!(resp.status().is_success());
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert_eq!(resp.headers()["access-control-allow-credentials"], "true");
    let resp = preflight("https://evil.example").await.unwrap();
    assert!(
        !resp.headers().contains_key("access-control-allow-origin"),
        "unlisted origins get no CORS grant"
    );

    app.create_user("ada@example.com", PASSWORD, Role::User)
        .await;
    let resp = app
        .client
        .post(app.url("/api/auth/login"))
        .header("origin", "http://localhost:5173")
        .json(&json!({ "email": "ada@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "a listed origin passes the CSRF check");
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let cookie = session_cookie(&resp).unwrap();
    let resp = app
        .client
        .post(app.url("/api/tokens"))
        .header("origin", "http://localhost:5173")
        .header("cookie", format!("aimake_session={cookie}"))
        .json(&json!({ "name": "from the dev server" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    app.stop().await;
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after_and_recovers() {
    let app = TestApp::spawn_with(|c| c.limits.requests_per_minute = 5).await;
    for n in 1..=5 {
        assert_eq!(app.get("/api/setup").await.status(), 200, "request {n}");
    }
    let resp = app.get("/api/setup").await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=12).contains(&retry),
        "one request returns every 12 s: {retry}"
    );
    assert_eq!(error_code(resp).await, "rate_limited");
    assert_eq!(
        app.get("/api/nope").await.status(),
        429,
        "every /api path counts"
    );

    assert_eq!(app.get("/health").await.status(), 200, "health is exempt");
    assert_eq!(app.get("/").await.status(), 200, "the web app is exempt");

    app.limits.advance_clock(Duration::from_secs(retry));
    assert_eq!(
        app.get("/api/setup").await.status(),
        200,
        "recovered after Retry-After"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_default_limit_refuses_the_101st_request_in_a_minute() {
    // The shipped default, not the roomy one other tests get.
    let default = aimake::config::Config::default().limits.requests_per_minute;
    assert_eq!(default, 100);
    let app = TestApp::spawn_with(|c| c.limits.requests_per_minute = default).await;
    let start = std::time::Instant::now();
    let mut served = 0;
    while app.get("/api/nope").await.status() != 429 {
        served += 1;
        assert!(served <= 200, "the limit never answered");
    }
    // The budget refills one request every 0.6 s, so a slow machine may squeeze in a few more
    // than 100 before the first refusal; never fewer.
    let refilled = (start.elapsed().as_millis() / 600) as usize;
    assert!(
        (100..=100 + refilled).contains(&served),
        "{served} requests served before the first 429 ({refilled} refilled meanwhile)"
    );
    app.stop().await;
}

#[tokio::test]
async fn login_attempts_have_a_stricter_limit_per_ip() {
    let app = TestApp::spawn_with(|c| c.limits.auth_requests_per_minute = 3).await;
    let attempt = || {
        app.post_json(
            "/api/auth/login",
            json!({ "email": "ada@example.com", "password": "guess guess" }),
        )
    };
    for _ in 0..3 {
        assert_eq!(attempt().await.status(), 401);
    }
    let resp = attempt().await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let resp = app
        .post_json(
            "/api/auth/register",
            &json!({ "email": "b@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(resp.status(), 429, "registration shares the budget");
    assert_eq!(
        app.get("/api/setup").await.status(),
        200,
        "other routes do not"
    );
    app.stop().await;
}

#[tokio::test]
async fn expensive_creations_are_limited_per_user() {
    let app = TestApp::spawn_with(|c| c.limits.creations_per_minute = 2).await;
    let a = app.signed_in("a@example.com", Role::User).await;
    let b = app.signed_in("b@example.com", Role::User).await;
    a.create_token("1").await;
    a.create_token("2").await;
    let resp = a.post("/api/tokens", &json!({ "name": "3" })).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    b.create_token("b's own budget").await;
    app.limits.advance_clock(Duration::from_secs(30));
    a.create_token("3").await;
    app.stop().await;
}

#[tokio::test]
async fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
    async fn hit(app: &TestApp, forwarded_for: &str) -> u16 {
        app.client
            .get(app.url("/api/setup"))
            .header("x-forwarded-for", forwarded_for)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    let behind_proxy = TestApp::spawn_with(|c| {
        c.limits.requests_per_minute = 1;
        c.server.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    assert_eq!(hit(&behind_proxy, "203.0.113.1").await, 200);
    assert_eq!(
        hit(&behind_proxy, "203.0.113.2").await,
        200,
        "another client"
    );
    assert_eq!(hit(&behind_proxy, "203.0.113.1").await, 429);
    behind_proxy.stop().await;

    let direct = TestApp::spawn_with(|c| c.limits.requests_per_minute = 1).await;
    assert_eq!(hit(&direct, "203.0.113.1").await, 200);
    assert_eq!(
        hit(&direct, "203.0.113.2").await,
        429,
        "without a trusted proxy the header is ignored: same socket, same client"
    );
    direct.stop().await;
}

#[tokio::test]
async fn over_the_in_flight_limit_requests_get_503_at_once() {
    let app = TestApp::spawn_with(|c| c.limits.max_in_flight = 1).await;

    // A request that stays in flight: its body never arrives.
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/auth/login HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         content-length: 100\r\n\r\n{{",
        app.addr
    );
    slow.write_all(head.as_bytes()).await.unwrap();

    let mut shed = None;
    for _ in 0..500 {
        let resp = app.get("/api/setup").await;
        if resp.status() == 503 {
            shed = Some(resp);
            break;
        }
        tokio::task::yield_now().await;
    }
    let resp = shed.expect("a second request is shed while the first is in flight");
    assert_eq!(error_code(resp).await, "overloaded");
    assert_eq!(
        app.get("/health").await.status(),
        200,
        "health checks get through"
    );

    drop(slow);
    let mut recovered = false;
    for _ in 0..500 {
        if app.get("/api/setup").await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(recovered, "the slot comes back when the request ends");
    app.stop().await;
}

#[tokio::test]
async fn an_oversize_json_body_gets_413() {
    let app = TestApp::spawn().await;
    let big = "x".repeat(1024 * 1024 + 1);
    let resp = app
        .post_json(
            "/api/auth/login",
            &json!({ "email": "a@example.com", "password": big }),
        )
        .await;
    assert_eq!(resp.status(), 413);
    assert_eq!(error_code(resp).await, "payload_too_large");

    let near = "x".repeat(900 * 1024);
    let resp = app
        .post_json(
            "/api/auth/login",
            &json!({ "email": "a@example.com", "password": near }),
        )
        .await;
    assert_eq!(resp.status(), 401, "under 1 MiB is read and judged");
    app.stop().await;
}

#[tokio::test]
async fn security_headers_are_on_every_response_and_hsts_only_over_https() {
    let app = TestApp::spawn_with(|c| c.limits.requests_per_minute = 1).await;
    app.get("/api/setup").await;
    for path in [
        "/",
        "/library",
        "/health",
        "/api/nope",
        "/api/setup",
        "/assets/gone-0000.js",
    ] {
        let resp = app.get(path).await;
        let h = resp.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        let page = h["content-type"].to_str().unwrap().starts_with("text/html");
        assert_eq!(
            page,
            !path.starts_with("/api") && !path.starts_with("/assets") && path != "/health"
        );
        if page {
            assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
            assert_eq!(
                h["referrer-policy"], "strict-origin-when-cross-origin",
                "{path}"
            );
        } else {
            assert!(csp.starts_with("default-src 'none'"), "{path}: {csp}");
        }
        assert!(
            !h.contains_key("strict-transport-security"),
            "{path}: plain http"
        );
    }
    let limited = app.get("/api/setup").await;
    assert_eq!(limited.status(), 429);
    assert_eq!(
        limited.headers()["x-frame-options"],
        "DENY",
        "refusals carry them too"
    );
    assert_eq!(limited.headers()["cache-control"], "no-store");
    app.stop().await;

    let app =
        TestApp::spawn_with(|c| c.server.public_url = "https://audio.example.test".into()).await;
    for path in ["/health", "/assets/gone-0000.js", "/"] {
        let resp = app.get(path).await;
        assert!(
            resp.headers()["strict-transport-security"]
                .to_str()
                .unwrap()
                .starts_with("max-age="),
            "{path}"
        );
    }
    app.create_user("ada@example.com", PASSWORD, Role::User)
        .await;
    let resp = app
        .client
        .post(app.url("/api/auth/login"))
        .header("origin", "https://audio.example.test")
        .json(&json!({ "email": "ada@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    app.stop().await;
}

/// The server binary with JSON logs at debug level; its stderr lines arrive on the channel.
fn spawn_logging_server(dir: &std::path::Path) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = Command::new(bin())
        .args(["serve", "--log-format", "json"])
        .current_dir(dir)
        .env_remove("AIMAKE_CONFIG")
        .env_remove("RUST_LOG")
        .env("AIMAKE_DATA__DIR", dir.join("data"))
        .env("AIMAKE_SERVER__BIND", "127.0.0.1:0")
        .env("AIMAKE_LOG__LEVEL", "debug")
        .env("AIMAKE_MODELS__AUTO_PULL", "false")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Reads log lines until one contains `needle`, keeping every line read in `seen`.
fn wait_for(rx: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) -> Value {
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no log line with {needle:?}; got {seen:#?}"));
        seen.push(line.clone());
        if line.contains(needle) {
            return serde_json::from_str(&line).expect("JSON log lines");
        }
    }
}

#[tokio::test]
async fn a_log_capture_contains_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, rx) = spawn_logging_server(dir.path());
    let mut log = Vec::new();
    let ready = wait_for(&rx, "aimake is ready", &mut log);
    let base = format!("http://{}", ready["addr"].as_str().unwrap());
    let setup = wait_for(&rx, "/setup?token=", &mut log);
    let message = setup["message"].as_str().unwrap();
    let setup_token = message
        .split("token=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(
        message.contains(&format!("{base}/setup?token=")),
        "the setup link names the public URL: {message}"
    );

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let password = "correct horse battery staple";
    let resp = client
        .post(format!("{base}/api/setup"))
        .header("origin", &base)
        .json(&json!({ "setup_token": setup_token, "email": "root@example.com", "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let setup_cookie = session_cookie(&resp).unwrap();

    let resp = client
        .post(format!("{base}/api/auth/login"))
        .header("origin", &base)
        .json(&json!({ "email": "root@example.com", "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = session_cookie(&resp).unwrap();
    let resp = client
        .post(format!("{base}/api/auth/login"))
        .header("origin", &base)
        .json(&json!({ "email": "root@example.com", "password": "wrong-password-xyz" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let resp = client
        .post(format!("{base}/api/tokens"))
        .header("origin", &base)
        .header("cookie", format!("aimake_session={cookie}"))
        .json(&json!({ "name": "ci" }))
        .send()
        .await
        .unwrap();
    let token = resp.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    for path in ["/api/me", "/api/tokens", "/api/admin/users"] {
        let resp = client
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let resp = client
        .get(format!("{base}/api/me?token={token}"))
        .header("cookie", format!("aimake_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    wait_for(&rx, "aimake stopped", &mut log);
    child.wait().unwrap();
    log.extend(rx.try_iter());

    let text = log.join("\n");
    assert!(
        log.iter()
            .any(|l| l.contains("/api/admin/users") && l.contains("\"user_id\":\"")),
        "requests name the signed-in user, not their credential: {text}"
    );
    assert!(
        text.contains("\"route\":\"/api/auth/login\""),
        "requests are logged: {text}"
    );
    for (what, secret) in [
        ("password", password),
        ("wrong password", "wrong-password-xyz"),
        ("setup session cookie", setup_cookie.as_str()),
        ("session cookie", cookie.as_str()),
        ("API token", token.as_str()),
        ("API token body", &token[4..]),
    ] {
        assert!(
            !text.contains(secret),
            "the {what} appears in the log:\n{text}"
        );
    }
}

/// Signs in to `email` from the loopback address `127.0.0.<host>` and returns the status and,
/// for a 429, the `Retry-After` seconds and the error code.
async fn sign_in_from(app: &TestApp, host: u8, email: &str, password: &str) -> (u16, Option<u64>) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::from([127, 0, 0, host]))
        .build()
        .unwrap();
    let resp = client
        .post(app.url("/api/auth/login"))
        .header("origin", app.origin())
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    if status == 429 {
        assert!(retry.is_some(), "a 429 carries Retry-After");
        assert_eq!(error_code(resp).await, "rate_limited");
    }
    (status, retry)
}

#[tokio::test]
async fn guessing_a_password_from_many_addresses_is_throttled_while_the_owner_still_signs_in() {
    let app = TestApp::spawn_with(|c| c.limits.sign_in_attempts_per_account_per_hour = 6).await;
    app.create_user("ada@example.com", PASSWORD, Role::User)
        .await;
    // The owner signed in from home before the attack; the address was new then, so that
    // took one of the six attempts strangers get per hour.
    assert_eq!(
        sign_in_from(&app, 2, "ada@example.com", PASSWORD).await.0,
        200
    );

    // Four attacking addresses, three guesses each: five get an answer.
    let mut answers = Vec::new();
    for host in 10..14 {
        for guess in 0..3 {
            let (status, retry) =
                sign_in_from(&app, host, "ada@example.com", &format!("guess {guess}")).await;
            answers.push(status);
            if status == 429 {
                assert!(retry.unwrap() > 60, "strangers wait minutes, not seconds");
            }
        }
    }
    assert_eq!(answers[..5], [401; 5], "{answers:?}");
    assert_eq!(answers[5..], [429; 7], "{answers:?}");
    assert_eq!(
        sign_in_from(&app, 14, "ada@example.com", PASSWORD).await.0,
        429,
        "even the right password from a new address waits, so the limit is no oracle"
    );

    // From the owner's known address, the right password still gets in.
    assert_eq!(
        sign_in_from(&app, 2, "ada@example.com", PASSWORD).await.0,
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn an_address_that_keeps_guessing_waits_longer_after_each_failure() {
    // Room in the per-IP budget, so only the per-account limit answers here.
    let app = TestApp::spawn_with(|c| c.limits.auth_requests_per_minute = 100).await;
    app.create_user("ada@example.com", PASSWORD, Role::User)
        .await;
    let ada = "ada@example.com";
    let free = app.state.config.limits.sign_in_failures_before_delay;
    for _ in 0..free {
        assert_eq!(sign_in_from(&app, 20, ada, "guess").await.0, 401);
    }
    let mut waits = Vec::new();
    for _ in 0..4 {
        let (status, retry) = sign_in_from(&app, 20, ada, PASSWORD).await;
        assert_eq!(
            status, 429,
            "not even the right password gets in while waiting"
        );
        waits.push(retry.unwrap());
        app.limits
            .advance_clock(Duration::from_secs(retry.unwrap()));
        assert_eq!(sign_in_from(&app, 20, ada, "guess").await.0, 401);
    }
    assert_eq!(waits, [1, 2, 4, 8], "the wait doubles after each failure");
    assert_eq!(
        sign_in_from(&app, 21, ada, PASSWORD).await.0,
        200,
        "another address is not slowed"
    );

    // Once the wait has passed, the right password gets in and the address starts afresh.
    let (status, retry) = sign_in_from(&app, 20, ada, PASSWORD).await;
    assert_eq!((status, retry), (429, Some(16)));
    app.limits.advance_clock(Duration::from_secs(16));
    assert_eq!(sign_in_from(&app, 20, ada, PASSWORD).await.0, 200);
    for _ in 0..free {
        assert_eq!(sign_in_from(&app, 20, ada, "guess").await.0, 401);
    }
    app.stop().await;
}
