//! `/metrics`: what the server counts, where it is served, and that Prometheus accepts it.

use std::collections::HashMap;
use std::time::Duration;

use aimake::auth::Role;
use serde_json::{Value, json};

use crate::fakes::FakeOpenAi;
use crate::helpers::{TestApp, error_code};

const TOKEN: &str = "metrics-token-for-tests";

/// One sample of the text format: its name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let mut map = HashMap::new();
            // Label values here hold no `",` sequence, so splitting on it is exact.
            for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once("=\"").expect("k=\"v\"");
                map.insert(k.to_string(), v.trim_end_matches('"').to_string());
            }
            Sample {
                name: name.to_string(),
                labels: map,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

/// The value of the sample with this name and (at least) these labels; 0 when absent.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(app: &TestApp) -> String {
    let addr = app.metrics_addr.expect("metrics are served apart");
    let resp = app
        .client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        resp.headers()
    );
    resp.text().await.unwrap()
}

fn requests(samples: &[Sample], method: &str, route: &str, status: &str) -> f64 {
    value(
        samples,
        "aimake_http_requests_total",
        &[("method", method), ("route", route), ("status", status)],
    )
}

#[tokio::test]
async fn the_scrape_counts_each_request_by_route_pattern_and_status_and_names_no_user_or_path() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fake.configure(c);
        c.metrics.token = Some(aimake::config::Secret::new(TOKEN));
    })
    .await;
    let s = app
        .signed_in("metrics-owner@example.com", Role::Admin)
        .await;
    let audio = s
        .create_finished(&json!({"text": "Count me.", "voice": "openai:alloy"}))
        .await;
    assert_eq!(audio["status"], "succeeded", "{audio}");
    let id = audio["id"].as_str().unwrap();

    let before = parse(&scrape(&app).await);
    for _ in 0..3 {
        assert_eq!(s.get(&format!("/api/audios/{id}")).await.status(), 200);
    }
    let unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    for _ in 0..2 {
        assert_eq!(s.get(&format!("/api/audios/{unknown}")).await.status(), 404);
    }
    // The web app's page (404 in a build without the web app).
    let page = app.get("/library/secret-page-path").await.status();
    let page = page.as_str().to_string();
    let forged = app
        .client
        .post(app.url("/api/audios"))
        .header("origin", "http://evil.example")
        .json(&json!({"text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    for _ in 0..4 {
        assert_eq!(app.get("/health").await.status(), 200);
    }
    let text = scrape(&app).await;
    let after = parse(&text);

    let delta = |method, route, status| {
        requests(&after, method, route, status) - requests(&before, method, route, status)
    };
    assert_eq!(delta("GET", "/api/audios/{id}", "200"), 3.0, "{text}");
    assert_eq!(delta("GET", "/api/audios/{id}", "404"), 2.0, "{text}");
    assert_eq!(delta("GET", "spa", page.as_str()), 1.0, "{text}");
    assert_eq!(delta("POST", "/api/audios", "403"), 1.0, "{text}");
    assert_eq!(
        value(
            &after,
            "aimake_http_rejections_total",
            &[("reason", "csrf_rejected")]
        ) - value(
            &before,
            "aimake_http_rejections_total",
            &[("reason", "csrf_rejected")]
        ),
        1.0
    );
    // Liveness probes are counted apart, on their fast path.
    assert_eq!(
        value(&after, "aimake_health_probes_total", &[])
            - value(&before, "aimake_health_probes_total", &[]),
        4.0
    );
    assert_eq!(requests(&after, "GET", "/health", "200"), 0.0);
    // The histogram counted the same requests.
    let count = |samples: &[Sample]| {
        value(
            samples,
            "aimake_http_request_duration_seconds_count",
            &[("route", "/api/audios/{id}")],
        )
    };
    assert_eq!(count(&after) - count(&before), 5.0, "{text}");
    assert_eq!(value(&after, "aimake_http_requests_in_flight", &[]), 0.0);

    // The job and the provider call it made (the recorder is the process's, shared with
    // the other tests running beside this one: at least ours).
    let synthesized = fake.requests().len() as f64;
    assert!(synthesized >= 1.0);
    assert!(
        value(
            &after,
            "aimake_provider_requests_total",
            &[("provider", "openai"), ("kind", "tts"), ("outcome", "ok")]
        ) >= synthesized,
        "{text}"
    );
    assert!(
        value(
            &after,
            "aimake_provider_attempts_total",
            &[("provider", "openai")]
        ) >= synthesized
    );
    assert!(
        value(
            &after,
            "aimake_provider_characters_total",
            &[("provider", "openai"), ("kind", "tts")]
        ) >= "Count me.".len() as f64
    );
    assert!(
        value(
            &after,
            "aimake_job_duration_seconds_count",
            &[("kind", "tts"), ("outcome", "succeeded")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        value(
            &after,
            "aimake_db_operation_duration_seconds_count",
            &[("op", "read")]
        ) > 0.0
    );
    assert!(
        value(
            &after,
            "aimake_db_operation_duration_seconds_count",
            &[("op", "write")]
        ) > 0.0
    );
    assert_eq!(
        value(&after, "aimake_build_info", &[("version", aimake::VERSION)]),
        1.0,
        "{text}"
    );
    assert!(
        value(&after, "aimake_process_resident_memory_bytes", &[]) > 0.0,
        "{text}"
    );

    // Patterns, never concrete paths, ids or people.
    for secret in [
        id,
        unknown,
        "secret-page-path",
        "metrics-owner",
        s.id.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret} in the scrape");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_main_port_serves_metrics_only_to_the_bearer_of_the_token() {
    let app =
        TestApp::spawn_with(|c| c.metrics.token = Some(aimake::config::Secret::new(TOKEN))).await;
    let get = |auth: Option<String>| {
        let mut req = app.client.get(app.url("/metrics"));
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        req.send()
    };
    let none = get(None).await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(error_code(none).await, "unauthenticated");
    for wrong in [
        format!("Bearer {TOKEN}x"),
        "Bearer ".into(),
        format!("Basic {TOKEN}"),
        TOKEN.into(),
    ] {
        assert_eq!(
            get(Some(wrong.clone())).await.unwrap().status(),
            401,
            "{wrong}"
        );
    }
    let ok = get(Some(format!("Bearer {TOKEN}"))).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        ok.text()
            .await
            .unwrap()
            .contains("# TYPE aimake_http_requests_total counter")
    );
    app.stop().await;

    let untokened = TestApp::spawn().await;
    let resp = untokened.get("/metrics").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(error_code(resp).await, "not_found");
    untokened.stop().await;
}

#[tokio::test]
async fn with_metrics_off_nothing_is_served_or_counted() {
    let app = TestApp::spawn_with(|c| {
        c.metrics.enabled = false;
        c.metrics.token = Some(aimake::config::Secret::new(TOKEN));
    })
    .await;
    assert_eq!(app.metrics_addr, None);
    let resp = app
        .client
        .get(app.url("/metrics"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn the_minute_series_is_for_admins_in_the_last_hour_or_day() {
    let app = TestApp::spawn().await;
    let admin = app.signed_in("series-admin@example.com", Role::Admin).await;
    let user = app.signed_in("series-user@example.com", Role::User).await;
    for _ in 0..3 {
        admin.get("/api/audios").await;
    }
    let hour: Value = admin.get_json("/api/admin/metrics/series?range=1h").await;
    assert_eq!(hour["range"], "1h");
    let minutes = hour["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 60);
    let starts: Vec<u64> = minutes
        .iter()
        .map(|m| m["start"].as_u64().unwrap())
        .collect();
    assert!(
        starts.windows(2).all(|w| w[1] == w[0] + 60),
        "oldest first, a minute apart"
    );
    assert!(
        hour["window"]["requests"].as_u64().unwrap() >= 3,
        "{}",
        hour["window"]
    );
    assert!(minutes.last().unwrap()["p99_s"].as_f64().is_some());
    let default: Value = admin.get_json("/api/admin/metrics/series").await;
    assert_eq!(default["range"], "1h");
    let day: Value = admin.get_json("/api/admin/metrics/series?range=24h").await;
    assert_eq!(day["minutes"].as_array().unwrap().len(), 1440);

    let bad = admin.get("/api/admin/metrics/series?range=7d").await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    assert!(body["error"]["details"]["range"].is_string(), "{body}");
    assert_eq!(user.get("/api/admin/metrics/series").await.status(), 403);
    assert_eq!(app.get("/api/admin/metrics/series").await.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn the_minute_series_shows_provider_latency_and_today_s_cost_against_the_budget() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fake.configure(c);
        c.alerts.daily_budget_usd = 2.5;
    })
    .await;
    fake.set_delay(Duration::from_millis(200));
    let admin = app.signed_in("cost-admin@example.com", Role::Admin).await;
    let series = || async {
        let resp = admin.get("/api/admin/metrics/series").await;
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().await.unwrap()
    };
    let before = series().await;
    assert_eq!(before["cost_today_usd"], 0.0, "nothing spent yet");
    assert_eq!(before["daily_budget_usd"], 2.5);

    let text = "Every character of this sentence is billed.";
    let audio = admin
        .create_finished(&json!({"text": text, "voice": "openai:alloy"}))
        .await;
    assert_eq!(audio["status"], "succeeded", "{audio}");
    let after = series().await;
    // OpenAI's default price, 15,000 micro-dollars per 1,000 characters, rounded up.
    let expected = (text.chars().count() as f64 * 15.0).ceil() / 1e6;
    let cost = after["cost_today_usd"].as_f64().unwrap();
    assert!((cost - expected).abs() < 1e-9, "{cost} vs {expected}");

    // Every minute with speech calls has their latency, in seconds; a minute without has none.
    let minutes = after["minutes"].as_array().unwrap();
    let with_calls: Vec<&Value> = minutes
        .iter()
        .filter(|m| m["provider_calls"]["tts"].as_u64().unwrap() > 0)
        .collect();
    assert!(!with_calls.is_empty(), "the call is counted: {after}");
    for m in &with_calls {
        for p in ["provider_p50_s", "provider_p99_s"] {
            let s = m[p]["tts"].as_f64().unwrap_or_else(|| panic!("{p}: {m}"));
            assert!(s > 0.0 && s < 60.0, "{p} {s}: {m}");
        }
    }
    for m in minutes
        .iter()
        .filter(|m| m["provider_calls"]["tts"].as_u64().unwrap() == 0)
    {
        assert!(m["provider_p50_s"]["tts"].is_null(), "{m}");
    }
    let window = &after["window"];
    assert!(window["provider_p99_s"]["tts"].as_f64().unwrap() > 0.0);
    assert!(window["provider_p50_s"].get("asr").is_some(), "{window}");
    app.stop().await;

    let unbudgeted = TestApp::spawn().await;
    let admin = unbudgeted
        .signed_in("no-budget@example.com", Role::Admin)
        .await;
    let body: Value = admin.get_json("/api/admin/metrics/series?range=24h").await;
    assert!(body["daily_budget_usd"].is_null(), "{body}");
    assert_eq!(body["cost_today_usd"], 0.0);
    unbudgeted.stop().await;
}

/// Runs `promtool` with `args` and `stdin`; `None` (with the reason printed) when it is not
/// installed. `.ci/run` installs it, so CI always runs these checks.
fn promtool(args: &[&str], stdin: &str) -> Option<std::process::Output> {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: promtool is not installed (Debian package `prometheus`)");
            return None;
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    Some(child.wait_with_output().unwrap())
}

#[tokio::test]
async fn promtool_accepts_the_scrape_and_the_rules_file() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let s = app.signed_in("promtool@example.com", Role::User).await;
    s.create_finished(&json!({"text": "Check me.", "voice": "openai:alloy"}))
        .await;
    s.get("/api/audios/01ARZ3NDEKTSV4RRFFQ69G5FAV").await;
    // Let the sampler's first round set its gauges.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = scrape(&app).await;
    app.stop().await;
    let Some(out) = promtool(&["check", "metrics"], &text) else {
        return;
    };
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/aimake.rules.yml"
    );
    let out = promtool(&["check", "rules", rules], "").unwrap();
    assert!(
        out.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_finished_backup_sets_the_last_success_time_and_its_duration() {
    let app = TestApp::spawn().await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    app.state
        .backups
        .run(aimake::backup::Trigger::Manual)
        .await
        .unwrap();
    let samples = parse(&scrape(&app).await);
    // The gauge is the process's: this backup's time or a later one's.
    let last = value(
        &samples,
        "aimake_backup_last_success_timestamp_seconds",
        &[],
    );
    assert!(last >= before.floor(), "{last} < {before}");
    assert!(value(&samples, "aimake_backup_duration_seconds", &[]) > 0.0);
    app.stop().await;
}
