//! Error reports against a fake Sentry: server errors with their request, the web app's
//! errors through `POST /api/client-errors`, and nothing at all without a DSN.

use std::time::Duration;

use aimake::auth::Role;
use aimake::config::{Config, Secret};
use serde_json::{Value, json};

use crate::fakes::FakeSentry;
use crate::helpers::{TestApp, error_code, test_config};

fn reporting_to(fake: &FakeSentry) -> impl FnOnce(&mut Config) + use<> {
    let dsn = fake.dsn();
    move |c: &mut Config| {
        c.sentry.dsn = Some(Secret::new(dsn));
        c.sentry.traces_sample_rate = 0.0;
    }
}

/// Waits until everything the server queued has been sent.
async fn flush(app: &TestApp) {
    flush_reports(&app.http).await;
}

async fn flush_reports(http: &aimake::http::HttpState) {
    let reports = http.reports.clone().expect("reports are on");
    let sent = tokio::task::spawn_blocking(move || reports.flush(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(sent, "the reports were sent");
}

fn report(message: &str) -> Value {
    json!({
        "message": message,
        "stack": "TypeError: x is undefined\n    at render (app.js:1:2)",
        "path": "/library/01J?token=query-secret#frag",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "release": "web-1.2.3",
    })
}

async fn post_report(app: &TestApp, body: &Value) -> reqwest::Response {
    app.post_json("/api/client-errors", body).await
}

/// A failing table under a route that needs a signed-in user.
async fn break_podcasts(app: &TestApp) {
    app.state
        .db
        .write(|c| {
            c.execute_batch("DROP TABLE podcasts")?;
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_server_error_reaches_the_tracker_with_request_id_route_and_user_id_and_no_secrets() {
    let fake = FakeSentry::start().await;
    let app = TestApp::spawn_with(reporting_to(&fake)).await;
    let (session, token) = app.user_with_key("owner@example.com").await;
    break_podcasts(&app).await;

    let resp = app
        .client
        .post(app.url("/api/podcasts?secret=query-secret-1"))
        .header("authorization", format!("Bearer {token}"))
        .header("cookie", format!("aimake_session={}", session.cookie))
        .header("origin", app.origin())
        .json(&json!({ "title": "body-secret-2" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(error_code(resp).await, "internal");
    flush(&app).await;

    let events = fake.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["tags"]["request_id"], request_id.as_str());
    assert_eq!(event["tags"]["route"], "/api/podcasts");
    assert_eq!(event["tags"]["http.method"], "POST");
    assert_eq!(event["transaction"], "/api/podcasts");
    assert_eq!(event["user"], json!({ "id": session.id }));
    assert_eq!(event["environment"], "production");
    assert!(
        event["exception"]["values"][0]["value"]
            .as_str()
            .unwrap()
            .contains("podcasts"),
        "the error's description: {event}"
    );
    let raw = fake.raw();
    for secret in [
        token.as_str(),
        session.cookie.as_str(),
        "query-secret-1",
        "body-secret-2",
    ] {
        assert!(!raw.contains(secret), "{secret} was sent: {raw}");
    }
}

#[tokio::test]
async fn client_errors_are_counted_and_forwarded_and_one_past_the_budget_is_refused_and_not_sent() {
    let fake = FakeSentry::start().await;
    let configure = reporting_to(&fake);
    let app = TestApp::spawn_with(|c| {
        configure(c);
        c.limits.client_errors_per_minute = 3;
    })
    .await;
    let session = app.signed_in("web@example.com", Role::User).await;

    let resp = session
        .post("/api/client-errors", &report("x is undefined"))
        .await;
    assert_eq!(resp.status(), 204);
    for n in 0..2 {
        let resp = post_report(&app, &report(&format!("anonymous {n}"))).await;
        assert_eq!(resp.status(), 204);
    }
    let refused = post_report(&app, &report("one too many")).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(error_code(refused).await, "rate_limited");
    assert_eq!(app.http.client_errors.total(), 3);
    flush(&app).await;

    let events = fake.events();
    assert_eq!(events.len(), 3, "{events:?}");
    let signed_in = &events[0];
    assert_eq!(
        signed_in["exception"]["values"][0]["value"],
        "x is undefined"
    );
    assert_eq!(signed_in["platform"], "javascript");
    assert_eq!(signed_in["transaction"], "/library/01J");
    assert_eq!(signed_in["tags"]["source"], "web");
    assert_eq!(signed_in["tags"]["web.release"], "web-1.2.3");
    assert_eq!(signed_in["user"], json!({ "id": session.id }));
    assert!(
        signed_in["extra"]["stack"]
            .as_str()
            .unwrap()
            .contains("at render")
    );
    assert!(
        signed_in["tags"]["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert!(events[1].get("user").is_none(), "anonymous: {}", events[1]);
    let raw = fake.raw();
    assert!(!raw.contains("one too many"), "the refused report was sent");
    assert!(!raw.contains("query-secret"), "{raw}");
}

#[tokio::test]
async fn a_client_error_report_is_small_and_strict() {
    let app = TestApp::spawn().await;
    let big = json!({ "message": "m", "path": "/", "stack": "x".repeat(17 * 1024) });
    let resp = post_report(&app, &big).await;
    assert_eq!(resp.status(), 413);
    assert_eq!(error_code(resp).await, "payload_too_large");

    let unknown = json!({ "message": "m", "path": "/", "cookies": "a=b" });
    let resp = post_report(&app, &unknown).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp).await, "invalid_request");

    for bad in [
        json!({ "path": "/" }),
        json!({ "message": "  ", "path": "/" }),
        json!({ "message": "m", "path": "https://elsewhere.example/" }),
    ] {
        let resp = post_report(&app, &bad).await;
        assert_eq!(resp.status(), 400, "{bad}");
        assert_eq!(error_code(resp).await, "invalid_request");
    }
    assert_eq!(app.http.client_errors.total(), 0);
}

#[tokio::test]
async fn without_a_dsn_nothing_is_sent_and_answers_are_unchanged() {
    let fake = FakeSentry::start().await;
    let app = TestApp::spawn().await;
    assert!(app.http.reports.is_none());
    let session = app.signed_in("quiet@example.com", Role::User).await;
    break_podcasts(&app).await;

    let resp = session
        .post("/api/podcasts", &json!({ "title": "t" }))
        .await;
    assert_eq!(resp.status(), 500);
    assert_eq!(error_code(resp).await, "internal");
    let resp = post_report(&app, &report("not forwarded")).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(app.http.client_errors.total(), 1);
    app.stop().await;
    assert_eq!(fake.envelopes(), 0);
}

#[tokio::test]
async fn requests_are_traced_under_their_route_pattern_at_the_sample_rate() {
    let fake = FakeSentry::start().await;
    let configure = reporting_to(&fake);
    let app = TestApp::spawn_with(|c| {
        configure(c);
        c.sentry.traces_sample_rate = 1.0;
    })
    .await;
    let session = app.signed_in("traced@example.com", Role::User).await;
    let resp = session
        .get("/api/podcasts/01JAAAAAAAAAAAAAAAAAAAAAAA")
        .await;
    assert_eq!(resp.status(), 404);
    flush(&app).await;

    let traced: Vec<Value> = fake
        .transactions()
        .into_iter()
        .filter(|t| t["transaction"] == "/api/podcasts/{id}")
        .collect();
    assert_eq!(traced.len(), 1, "{:?}", fake.transactions());
    assert_eq!(traced[0]["contexts"]["trace"]["status"], "not_found");
    assert!(fake.events().is_empty(), "a 404 is no error report");
    assert!(!fake.raw().contains("01JAAAAAAA"));
}

#[tokio::test]
async fn reports_sent_while_the_tracker_is_throttling_are_dropped_and_the_server_carries_on() {
    let fake = FakeSentry::start().await;
    let app = TestApp::spawn_with(reporting_to(&fake)).await;
    fake.throttle_next(1);
    assert_eq!(post_report(&app, &report("first")).await.status(), 204);
    flush(&app).await;
    // The tracker asked for a minute's pause: the client holds back rather than retrying.
    assert_eq!(post_report(&app, &report("second")).await.status(), 204);
    flush(&app).await;
    assert_eq!(fake.envelopes(), 1, "{}", fake.raw());
    assert!(fake.events().is_empty());
}

#[tokio::test]
async fn a_panicking_handler_reaches_the_tracker_with_its_request_id_and_the_server_keeps_serving()
{
    async fn boom(_body: String) -> &'static str {
        panic!("the handler broke at step 3")
    }

    let fake = FakeSentry::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    reporting_to(&fake)(&mut config);
    let app = aimake::app::App::build(config).await.unwrap();
    // The server's own router and layers, with one route the product does not have.
    let extra = axum::Router::new().route("/api/panics", axum::routing::post(boom));
    let router = aimake::http::router_with(app.http().clone(), extra);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(aimake::app::serve(
        listener,
        router,
        None,
        false,
        stop.clone(),
    ));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let origin = app.state().links.public_url().to_string();

    let panicked = client
        .post(format!("{base}/api/panics?secret=query-secret-1"))
        .header("authorization", "Bearer header-secret-2")
        .header("cookie", "aimake_session=cookie-secret-3")
        .header("origin", &origin)
        .header("x-request-id", "trace-panic-42")
        .body("body-secret-4")
        .send()
        .await
        .unwrap();
    assert_eq!(panicked.status(), 500);
    // The caller's request id is kept, on the answer and in the report.
    let request_id = panicked.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(request_id, "trace-panic-42");
    let body: Value = panicked.json().await.unwrap();
    assert_eq!(body["error"]["code"], "internal", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(
        !body.to_string().contains("step 3"),
        "the panic stays on the server: {body}"
    );

    // The connection and the server live on.
    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let again = client
        .post(format!("{base}/api/panics"))
        .header("origin", &origin)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 500);
    flush_reports(app.http()).await;

    let events = fake.events();
    assert_eq!(events.len(), 2, "{events:?}");
    let event = events
        .iter()
        .find(|e| e["tags"]["request_id"] == request_id.as_str())
        .expect("the panic is reported with its request id");
    assert_eq!(event["exception"]["values"][0]["type"], "panic");
    assert_eq!(
        event["exception"]["values"][0]["value"],
        "the handler broke at step 3"
    );
    assert_eq!(event["tags"]["route"], "/api/panics");
    assert_eq!(event["tags"]["http.method"], "POST");
    let raw = fake.raw();
    for secret in [
        "query-secret-1",
        "header-secret-2",
        "cookie-secret-3",
        "body-secret-4",
    ] {
        assert!(!raw.contains(secret), "{secret} was sent: {raw}");
    }
    stop.cancel();
    server.await.unwrap();
}
