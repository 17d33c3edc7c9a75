//! The server's alerts about itself, driven through the real server: each rule fires from a
//! real cause (a failing provider, a slow route, a broken table, an object store gone, a failed
//! backup), is recorded and listed for admins, tells its notifiers, and resolves, telling them
//! again, once the cause is gone.
//!
//! The minute series the traffic rules read belongs to the process, and other tests feed it
//! too: each test's thresholds sit well above what any other test's traffic can reach in a
//! window of a few seconds, and each test keeps its cause going until the alert fires and its
//! cure until the alert resolves, so a neighbour's traffic can delay but not fail it.

use std::time::{Duration, Instant};

use aimake::auth::Role;
use aimake::config::{AlertRuleConfig, AlertRules, Config};
use serde_json::{Value, json};

use crate::fakes::alerts::{FakePagerDuty, FakeSlack, FakeWebhook, verify};
use crate::fakes::{Failure, FakeOpenAi};
use crate::helpers::{Session, TestApp, error_code};

const ROUTING_KEY: &str = "R0UT1NGk3y0123456789abcdefABCDEF";
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Taken by each test that drives a traffic rule, so those tests do not drown each other's
/// causes in their own traffic (a burst of 500s is many quick answers for the p99 rule).
static TRAFFIC: std::sync::LazyLock<tokio::sync::Mutex<()>> =
    std::sync::LazyLock::new(|| tokio::sync::Mutex::new(()));

/// The notifiers an alert under test tells, each a fake that checks its contract: Slack,
/// PagerDuty and a signed webhook, named `slack`, `pagerduty` and `webhook`.
struct Sinks {
    slack: FakeSlack,
    pagerduty: FakePagerDuty,
    webhook: FakeWebhook,
    key: Vec<u8>,
}

impl Sinks {
    async fn start() -> Self {
        let key =
            aimake::config::signing_key(&aimake::config::Secret::new(WEBHOOK_SECRET)).unwrap();
        Self {
            slack: FakeSlack::start("alerts-secret").await,
            pagerduty: FakePagerDuty::start(ROUTING_KEY).await,
            webhook: FakeWebhook::start(&key).await,
            key,
        }
    }

    /// The three `[[alerts.notifiers]]`, with fast retries.
    fn configure(&self, c: &mut Config) {
        let file = format!(
            "[alerts.retry]\nbase_delay_ms = 5\nmax_delay_ms = 20\n\
             [[alerts.notifiers]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"{}\"\n\
             [[alerts.notifiers]]\nname = \"pagerduty\"\nkind = \"pagerduty\"\nurl = \"{}\"\nrouting_key = \"{ROUTING_KEY}\"\n\
             [[alerts.notifiers]]\nname = \"webhook\"\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"{WEBHOOK_SECRET}\"\n",
            self.slack.url(),
            self.pagerduty.url(),
            self.webhook.url()
        );
        let alerts = Config::from_sources(Some(&file), &[])
            .unwrap()
            .config
            .alerts;
        c.alerts.notifiers = alerts.notifiers;
        c.alerts.retry = alerts.retry;
    }

    /// Slack messages about the alert (its dedup key is in each message's context line).
    fn slack_about(&self, alert: &Value) -> Vec<Value> {
        let key = dedup_key(alert);
        self.slack
            .sink
            .requests()
            .iter()
            .map(|r| r.json())
            .filter(|m| {
                m["blocks"][2]["elements"][0]["text"]
                    .as_str()
                    .unwrap()
                    .contains(&key)
            })
            .collect()
    }

    fn pagerduty_about(&self, alert: &Value) -> Vec<Value> {
        let key = dedup_key(alert);
        self.pagerduty
            .sink
            .requests()
            .iter()
            .map(|r| r.json())
            .filter(|e| e["dedup_key"] == key.as_str())
            .collect()
    }

    fn webhook_about(&self, alert: &Value) -> Vec<Value> {
        let key = dedup_key(alert);
        let requests = self.webhook.sink.requests();
        for r in &requests {
            verify(&self.key, &r.headers, &r.body).expect("every delivery is signed");
        }
        requests
            .iter()
            .map(|r| r.json())
            .filter(|e| e["dedup_key"] == key.as_str())
            .collect()
    }
}

/// The key every notice about one alert carries.
fn dedup_key(alert: &Value) -> String {
    format!("aimake-{}", alert["id"].as_str().unwrap())
}

/// Only `name` is on, evaluated every second over `window_s` seconds, pending for `for_s`
/// before it fires (and clear as long before it resolves), telling every sink.
fn only(c: &mut Config, name: &str, threshold: Option<f64>, window_s: u64, for_s: u64, min: u64) {
    let r = &mut c.alerts.rules;
    let all: [(&str, &mut AlertRuleConfig); 11] = [
        ("error_rate", &mut r.error_rate),
        ("latency_p99", &mut r.latency_p99),
        ("db_errors", &mut r.db_errors),
        ("tts_error_rate", &mut r.tts_error_rate),
        ("daily_cost", &mut r.daily_cost),
        ("backup_stale", &mut r.backup_stale),
        ("backup_failed", &mut r.backup_failed),
        ("disk_free", &mut r.disk_free),
        ("storage_errors", &mut r.storage_errors),
        ("certificate_failed", &mut r.certificate_failed),
        ("certificate_expiry", &mut r.certificate_expiry),
    ];
    assert_eq!(all.len(), AlertRules::NAMES.len(), "every rule is listed");
    for (rule_name, rule) in all {
        rule.enabled = rule_name == name;
        if rule.enabled {
            rule.threshold = threshold.or(rule.threshold);
            rule.window_s = window_s;
            rule.for_s = for_s;
            rule.min_samples = min;
            rule.notifiers = vec!["slack".into(), "pagerduty".into(), "webhook".into()];
        }
    }
    c.alerts.evaluate_every_s = 1;
    c.alerts.repeat_interval_s = 3600;
    // Tests poke the server hard; the per-user limit on new work has tests of its own.
    c.limits.creations_per_minute = 100_000;
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn ms(rfc3339: &Value) -> i64 {
    let t = time::OffsetDateTime::parse(
        rfc3339.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The first alert in the admin's history that `matches`, once one does; `poke` runs before
/// every look (the cause, or the cure, kept going). The active list agrees with its state.
async fn alert_where(
    admin: &Session,
    matches: impl Fn(&Value) -> bool,
    mut poke: impl AsyncFnMut(),
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        poke().await;
        let resp = admin.get("/api/admin/alerts").await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        if let Some(alert) = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| matches(a))
        {
            let active = body["active"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["id"] == alert["id"]);
            assert_eq!(active, alert["state"] == "firing", "{body}");
            return alert.clone();
        }
        assert!(Instant::now() < deadline, "never happened: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The rule's alert once it fires.
async fn fired(admin: &Session, rule: &str, poke: impl AsyncFnMut()) -> Value {
    let alert = alert_where(admin, |a| a["rule"] == rule && a["state"] == "firing", poke).await;
    assert!(alert["resolved_at"].is_null(), "{alert}");
    alert
}

/// The alert once it resolved.
async fn resolved(admin: &Session, alert: &Value, poke: impl AsyncFnMut()) -> Value {
    let id = alert["id"].clone();
    let done = alert_where(admin, |a| a["id"] == id && a["state"] == "resolved", poke).await;
    assert!(ms(&done["resolved_at"]) > ms(&done["fired_at"]), "{done}");
    assert!(done["resolved_value"].is_number(), "{done}");
    done
}

/// Waits until `ready` holds, or fails saying what was seen.
async fn until<T: std::fmt::Debug>(
    what: &str,
    mut look: impl FnMut() -> T,
    ready: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = look();
        if ready(&seen) {
            return seen;
        }
        assert!(Instant::now() < deadline, "{what}: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every sink heard the firing, the repeats (`repeats` of them when given) and the resolve of
/// `alert` (resolved), each with the alert's own firing time, the resolve with its resolve
/// time, under one dedup key. Returns how many notices each sink heard.
async fn check_sinks(sinks: &Sinks, alert: &Value, repeats: Option<usize>) -> usize {
    let rule = alert["rule"].as_str().unwrap();
    let fired_at = alert["fired_at"].as_str().unwrap();
    let resolved_at = alert["resolved_at"].as_str().unwrap();
    let slack = until(
        "slack messages",
        || sinks.slack_about(alert),
        |m| {
            m.last()
                .is_some_and(|m| m["text"].as_str().unwrap().starts_with("[RESOLVED]"))
        },
    )
    .await;
    let total = slack.len();
    if let Some(repeats) = repeats {
        assert_eq!(total, repeats + 2, "{slack:?}");
    }
    for (i, message) in slack.iter().enumerate() {
        let text = message["text"].as_str().unwrap();
        let state = if i + 1 == total { "RESOLVED" } else { "FIRING" };
        assert!(
            text.starts_with(&format!("[{state}] {rule}: ")),
            "{i}: {message}"
        );
        let fields = &message["blocks"][1]["fields"];
        assert_eq!(
            fields[0]["text"],
            format!("*Severity*\n{}", alert["severity"].as_str().unwrap()),
            "{message}"
        );
        // Repeats and the resolve say when the alert fired, not when they were sent.
        assert_eq!(
            fields[1]["text"],
            format!("*Since*\n{fired_at}"),
            "{i}: {message}"
        );
        let resolved_field = fields
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["text"].as_str().unwrap().starts_with("*resolved_at*"));
        if state == "RESOLVED" {
            assert_eq!(
                resolved_field.unwrap()["text"],
                format!("*resolved_at*\n{resolved_at}"),
                "{message}"
            );
        } else {
            assert!(resolved_field.is_none(), "{message}");
        }
    }

    let events = until(
        "pagerduty events",
        || sinks.pagerduty_about(alert),
        |e| e.len() == total,
    )
    .await;
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["routing_key"], ROUTING_KEY);
        if i + 1 == total {
            assert_eq!(event["event_action"], "resolve", "{event}");
        } else {
            assert_eq!(event["event_action"], "trigger", "{event}");
            assert_eq!(event["payload"]["severity"], alert["severity"], "{event}");
            assert_eq!(event["payload"]["timestamp"], fired_at, "{event}");
            assert!(
                event["payload"]["summary"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{rule}: ")),
                "{event}"
            );
        }
    }

    let hooks = until(
        "webhook deliveries",
        || sinks.webhook_about(alert),
        |e| e.len() == total,
    )
    .await;
    for (i, hook) in hooks.iter().enumerate() {
        let resolve = i + 1 == total;
        assert_eq!(
            hook["event"],
            if resolve {
                "alert.resolved"
            } else {
                "alert.triggered"
            },
            "{hook}"
        );
        assert_eq!(hook["alert"], rule);
        assert_eq!(hook["started_at"], fired_at, "{i}: {hook}");
        assert_eq!(
            hook["details"]["resolved_at"],
            if resolve {
                json!(resolved_at)
            } else {
                Value::Null
            },
            "{hook}"
        );
        assert!(hook["details"]["threshold"].is_string(), "{hook}");
    }

    total
}

/// As [`check_sinks`], and the history counts as many notifications.
async fn check_notified(admin: &Session, sinks: &Sinks, alert: &Value, repeats: Option<usize>) {
    let total = check_sinks(sinks, alert, repeats).await;
    let id = alert["id"].clone();
    let counted = alert_where(
        admin,
        |a| a["id"] == id && a["notifications"] == total,
        async || {},
    )
    .await;
    assert_eq!(counted["state"], "resolved");
}

/// The sum of a counter's series on `/metrics`.
async fn counter(app: &TestApp, name: &str) -> f64 {
    let text = app
        .client
        .get(format!("http://{}/metrics", app.metrics_addr.unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// Polls the admin list until an alert of `rule` is active; returns the whole answer.
async fn active_alert(admin: &Session, rule: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = admin.get("/api/admin/alerts").await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        let active = body["active"].as_array().unwrap();
        if active.iter().any(|a| a["rule"] == rule) {
            return body;
        }
        assert!(Instant::now() < deadline, "{rule} never fired: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_rule_that_fires_is_recorded_listed_for_admins_only_and_sent_to_its_notifier() {
    let slack = FakeSlack::start("alerts-secret").await;
    let notifiers = aimake::config::Config::from_sources(
        Some(&format!(
            "[[alerts.notifiers]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"{}\"\n",
            slack.url()
        )),
        &[],
    )
    .unwrap()
    .config
    .alerts
    .notifiers;
    let app = TestApp::spawn_with(|c| {
        c.alerts.notifiers = notifiers;
        c.alerts.evaluate_every_s = 1;
        // Any file system has less than all of it free.
        c.alerts.rules.disk_free.threshold = Some(1.0);
        c.alerts.rules.disk_free.for_s = 0;
    })
    .await;
    let admin = app.signed_in("admin@example.com", Role::Admin).await;
    let body = active_alert(&admin, "disk_free").await;
    let alert = body["active"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "disk_free")
        .unwrap()
        .clone();
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["state"], "firing");
    assert_eq!(alert["threshold"], 1.0);
    let free = alert["value"].as_f64().unwrap();
    assert!(free > 0.0 && free < 1.0, "{alert}");
    assert!(
        alert["summary"]
            .as_str()
            .unwrap()
            .starts_with("free disk on the data directory"),
        "{alert}"
    );
    assert!(alert["resolved_at"].is_null());
    assert!(
        alert["fired_at"].as_str().unwrap().ends_with('Z'),
        "{alert}"
    );
    assert_eq!(body["items"][0]["id"], alert["id"], "history lists it too");
    assert!(body["next_cursor"].is_null());

    // The rule's notifier (`slack`, by default) heard it, once.
    let deadline = Instant::now() + Duration::from_secs(10);
    while slack.sink.requests().is_empty() {
        assert!(Instant::now() < deadline, "slack never heard of it");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let message = slack.sink.requests()[0].json();
    let text = message["text"].as_str().unwrap();
    assert!(
        text.starts_with("[FIRING] disk_free: free disk on the data directory"),
        "{message}"
    );

    // It fires once: later evaluations keep the same alert.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(slack.sink.requests().len(), 1, "notified once");
    let later: Value = admin.get("/api/admin/alerts").await.json().await.unwrap();
    assert_eq!(later["items"].as_array().unwrap().len(), 1, "{later}");
    assert_eq!(later["active"][0]["id"], alert["id"]);
    // Counted once the notice went out, which the listing above may have come before.
    assert_eq!(later["active"][0]["notifications"], 1, "{later}");

    let user = app.signed_in("ada@example.com", Role::User).await;
    let resp = user.get("/api/admin/alerts").await;
    assert_eq!(resp.status(), 403);
    let resp = admin.get("/api/admin/alerts?cursor=nonsense").await;
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp).await, "invalid_request");
    app.stop().await;
}

#[tokio::test]
async fn the_budget_rule_fires_once_today_s_provider_cost_passes_the_budget() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fake.configure(c);
        c.alerts.evaluate_every_s = 1;
        // OpenAI's default price: 15,000 micro-dollars per 1,000 characters.
        c.alerts.daily_budget_usd = 0.001;
    })
    .await;
    let admin = app.signed_in("admin@example.com", Role::Admin).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let quiet: Value = admin.get("/api/admin/alerts").await.json().await.unwrap();
    assert_eq!(quiet["items"], json!([]), "nothing spent, nothing fired");

    let user = app.signed_in("ada@example.com", Role::User).await;
    let text =
        "A sentence long enough to cost a little more than the tiny budget allows. ".repeat(2);
    let audio = user
        .create_finished(&json!({"text": text, "voice": "openai:nova"}))
        .await;
    assert_eq!(audio["status"], "succeeded", "{audio}");
    let body = active_alert(&admin, "daily_cost").await;
    let alert = &body["active"][0];
    assert_eq!(alert["rule"], "daily_cost");
    assert_eq!(alert["severity"], "warning");
    assert_eq!(alert["threshold"], 0.001);
    let cost = alert["value"].as_f64().unwrap();
    // The text rule trims it; the cost is rounded up to the micro-dollar.
    let expected = (text.trim().chars().count() as f64 * 15.0).ceil() / 1e6;
    assert!(
        (cost - expected).abs() < 1e-6,
        "{cost} vs {expected}: {alert}"
    );
    assert!(
        alert["summary"].as_str().unwrap().ends_with(&format!(
            "provider cost today ${expected:.4} (above $0.0010)"
        )),
        "{alert}"
    );
    app.stop().await;
}

/// Renames a table of the running server's database: a real failure for every statement that
/// reads or writes it, until it is renamed back.
async fn rename_table(app: &TestApp, from: &str, to: &str) {
    let sql = format!("ALTER TABLE {from} RENAME TO {to}");
    app.state
        .db
        .write(move |c| {
            c.execute_batch(&sql)?;
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_speech_provider_answering_500s_trips_the_tts_rule_which_resolves_once_it_recovers() {
    let _turn = TRAFFIC.lock().await;
    let sinks = Sinks::start().await;
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fake.configure(c);
        sinks.configure(c);
        // One attempt per call: each failure is one failed call, at once.
        c.providers.retry.max_attempts = 1;
        only(c, "tts_error_rate", Some(0.5), 3, 2, 8);
    })
    .await;
    let admin = app.signed_in("admin@example.com", Role::Admin).await;
    let user = app.signed_in("ada@example.com", Role::User).await;

    fake.fail_next(1_000_000, Failure::ServerError);
    let began = now_ms();
    let alert = fired(&admin, "tts_error_rate", async || {
        // A preview speaks while the client waits: each answer is one provider call.
        for voice in ["nova", "alloy", "echo", "fable"] {
            let resp = user
                .post(&format!("/api/voices/openai:{voice}/preview"), &json!({}))
                .await;
            assert!(resp.status().is_server_error(), "{}", resp.status());
        }
    })
    .await;
    assert_eq!(alert["severity"], "warning");
    assert_eq!(alert["threshold"], 0.5);
    assert!(alert["value"].as_f64().unwrap() > 0.5, "{alert}");
    assert!(
        alert["summary"]
            .as_str()
            .unwrap()
            .starts_with("TTS provider error rate "),
        "{alert}"
    );
    assert!(
        ms(&alert["fired_at"]) >= began + 2000,
        "pending for 2 s first: {alert}"
    );

    fake.recover();
    let mut n = 0;
    let done = resolved(&admin, &alert, async || {
        // Speech works again: new audios succeed and the failures leave the window.
        let mut ids = Vec::new();
        for _ in 0..4 {
            n += 1;
            let created: Value = user
                .post(
                    "/api/audios",
                    &json!({"text": format!("The provider is back, sentence {n}."), "voice": "openai:nova"}),
                )
                .await
                .json()
                .await
                .unwrap();
            ids.push(created["id"].as_str().unwrap().to_string());
        }
        for id in ids {
            assert_eq!(user.finished_audio(&id).await["status"], "succeeded");
        }
    })
    .await;
    assert!(done["resolved_value"].as_f64().unwrap() <= 0.4, "{done}");
    check_notified(&admin, &sinks, &done, Some(0)).await;
    app.stop().await;
}

#[tokio::test]
async fn a_slow_route_trips_the_p99_rule_which_resolves_once_answers_are_quick_again() {
    let _turn = TRAFFIC.lock().await;
    let sinks = Sinks::start().await;
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fake.configure(c);
        sinks.configure(c);
        // Four seconds: the slow answers are recorded as they end, and stay in for the 2 s
        // the rule is pending and an evaluation more.
        only(c, "latency_p99", Some(2.0), 4, 2, 3);
    })
    .await;
    let admin = app.signed_in("admin@example.com", Role::Admin).await;
    let user = app.signed_in("ada@example.com", Role::User).await;

    fake.set_delay(Duration::from_millis(2500));
    let previews = app.dir.path().join("media").join("previews");
    let began = now_ms();
    let alert = fired(&admin, "latency_p99", async || {
        // Previews not made before wait for the provider: six slow answers at once. Once
        // made, a preview is kept and answered at once, so the kept ones go first.
        let _ = std::fs::remove_dir_all(&previews);
        let answers = futures::future::join_all(
            ["alloy", "echo", "fable", "onyx", "nova", "shimmer"]
                .iter()
                .map(async |v| {
                    user.post(&format!("/api/voices/openai:{v}/preview"), &json!({}))
                        .await
                }),
        )
        .await;
        for a in answers {
            assert_eq!(a.status(), 200);
        }
    })
    .await;
    assert_eq!(alert["severity"], "warning");
    assert!(alert["value"].as_f64().unwrap() > 2.0, "{alert}");
    assert!(
        alert["summary"]
            .as_str()
            .unwrap()
            .starts_with("p99 latency "),
        "{alert}"
    );
    assert!(ms(&alert["fired_at"]) >= began + 2000, "{alert}");

    fake.set_delay(Duration::ZERO);
    let done = resolved(&admin, &alert, async || {
        for _ in 0..5 {
            assert_eq!(user.get("/api/voices").await.status(), 200);
        }
    })
    .await;
    assert!(done["resolved_value"].as_f64().unwrap() < 1.6, "{done}");
    check_notified(&admin, &sinks, &done, Some(0)).await;
    app.stop().await;
}

#[tokio::test]
async fn database_errors_trip_the_database_rule_where_they_happen_and_it_resolves_once_the_table_is_back()
 {
    let _turn = TRAFFIC.lock().await;
    let sinks = Sinks::start().await;
    let app = TestApp::spawn_with(|c| {
        sinks.configure(c);
        only(c, "db_errors", Some(10.0), 3, 2, 1);
    })
    .await;
    let admin = app.signed_in("admin@example.com", Role::Admin).await;
    let user = app.signed_in("ada@example.com", Role::User).await;

    rename_table(&app, "podcasts", "podcasts_away").await;
    let counted_before = counter(&app, "aimake_db_errors_total").await;
    let mut failed = 0;
    let began = now_ms();
    let alert = fired(&admin, "db_errors", async || {
        for _ in 0..15 {
            let resp = user.post("/api/podcasts", &json!({"title": "t"})).await;
            assert_eq!(resp.status(), 500);
            assert_eq!(error_code(resp).await, "internal");
            failed += 1;
        }
    })
    .await;
    // Counted where they failed, by the database layer: the process's counter grew by at
    // least as many (other tests fail statements too).
    let counted = counter(&app, "aimake_db_errors_total").await - counted_before;
    assert!(
        counted >= f64::from(failed),
        "{counted} counted, {failed} failed"
    );
    assert_eq!(alert["severity"], "critical");
    assert!(alert["value"].as_f64().unwrap() > 10.0, "{alert}");
    assert!(
        alert["summary"]
            .as_str()
            .unwrap()
            .starts_with("database errors "),
        "{alert}"
    );
    assert!(ms(&alert["fired_at"]) >= began + 2000, "{alert}");

    rename_table(&app, "podcasts_away", "podcasts").await;
    let resp = user.post("/api/podcasts", &json!({"title": "back"})).await;
    assert!(resp.status().is_success(), "{}", resp.status());
    let done = resolved(&admin, &alert, async || {}).await;
    assert!(done["resolved_value"].as_f64().unwrap() <= 8.0, "{done}");
    check_notified(&admin, &sinks, &done, Some(0)).await;
    app.stop().await;
}

#[tokio::test]
async fn server_errors_trip_the_error_rate_rule_which_resolves_once_answers_are_good_again() {
    let _turn = TRAFFIC.lock().await;
    let sinks = Sinks::start().await;
    let app = TestApp::spawn_with(|c| {
        sinks.configure(c);
        only(c, "error_rate", Some(0.5), 3, 2, 10);
    })
    .await;
    let admin = app.signed_in("admin@example.com", Role::Admin).await;
    let user = app.signed_in("ada@example.com", Role::User).await;

    rename_table(&app, "audios", "audios_away").await;
    let began = now_ms();
    let twenty = async |want: u16| {
        let answers = futures::future::join_all((0..20).map(|_| user.get("/api/audios"))).await;
        for a in answers {
            assert_eq!(a.status(), want);
        }
    };
    let alert = fired(&admin, "error_rate", async || twenty(500).await).await;
    assert_eq!(alert["severity"], "critical");
    assert!(alert["value"].as_f64().unwrap() > 0.5, "{alert}");
    assert!(
        alert["summary"]
            .as_str()
            .unwrap()
            .starts_with("error rate "),
        "{alert}"
    );
    assert!(ms(&alert["fired_at"]) >= began + 2000, "{alert}");

    rename_table(&app, "audios_away", "audios").await;
    let done = resolved(&admin, &alert, async || twenty(200).await).await;
    assert!(done["resolved_value"].as_f64().unwrap() <= 0.4, "{done}");
    check_notified(&admin, &sinks, &done, Some(0)).await;
    app.stop().await;
}

#[tokio::test]
async fn object_store_errors_trip_the_storage_rule_which_resolves_once_the_store_is_back() {
    let _turn = TRAFFIC.lock().await;
    let sinks = Sinks::start().await;
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fake.configure(c);
        sinks.configure(c);
        only(c, "storage_errors", Some(5.0), 3, 2, 1);
    })
    .await;
    let admin = app.signed_in("admin@example.com", Role::Admin).await;
    let user = app.signed_in("ada@example.com", Role::User).await;
    let audio = user
        .create_finished(&json!({"text": "Kept in the object store.", "voice": "openai:nova"}))
        .await;
    assert_eq!(audio["status"], "succeeded", "{audio}");
    let file = format!("/api/audios/{}/file", audio["id"].as_str().unwrap());
    assert_eq!(user.get(&file).await.status(), 200);

    // The local store's directory is gone, a file in its place: every read fails.
    let media = app.dir.path().join("media");
    let away = app.dir.path().join("media.away");
    std::fs::rename(&media, &away).unwrap();
    std::fs::write(&media, "not a directory").unwrap();
    let counted_before = counter(&app, "aimake_storage_errors_total").await;
    let mut failed = 0;
    let began = now_ms();
    let alert = fired(&admin, "storage_errors", async || {
        for _ in 0..8 {
            let resp = user.get(&file).await;
            assert!(resp.status().is_server_error(), "{}", resp.status());
            failed += 1;
        }
    })
    .await;
    let counted = counter(&app, "aimake_storage_errors_total").await - counted_before;
    assert!(
        counted >= f64::from(failed),
        "{counted} counted, {failed} failed"
    );
    assert_eq!(alert["severity"], "warning");
    assert!(
        alert["summary"]
            .as_str()
            .unwrap()
            .starts_with("object store errors "),
        "{alert}"
    );
    assert!(ms(&alert["fired_at"]) >= began + 2000, "{alert}");

    std::fs::remove_file(&media).unwrap();
    std::fs::rename(&away, &media).unwrap();
    assert_eq!(user.get(&file).await.status(), 200);
    let done = resolved(&admin, &alert, async || {}).await;
    check_notified(&admin, &sinks, &done, Some(0)).await;
    app.stop().await;
}

#[tokio::test]
async fn failed_backups_and_no_recent_good_one_trip_the_backup_rules_repeating_until_a_good_backup()
{
    let sinks = Sinks::start().await;
    let offsite = tempfile::tempdir().unwrap();
    let target = offsite.path().join("backups");
    std::fs::create_dir(&target).unwrap();
    let app = TestApp::spawn_with(|c| {
        sinks.configure(c);
        // A scheduled backup every second, to a directory of its own.
        c.backup.schedule = "* * * * * *".into();
        c.backup.target = format!("dir:{}", target.display());
        only(c, "backup_failed", None, 0, 1, 1);
        let stale = &mut c.alerts.rules.backup_stale;
        stale.enabled = true;
        // 3.6 s without a good backup.
        stale.threshold = Some(0.001);
        stale.for_s = 1;
        stale.notifiers = vec!["slack".into(), "pagerduty".into(), "webhook".into()];
        c.alerts.repeat_interval_s = 1;
    })
    .await;
    let admin = app.signed_in("admin@example.com", Role::Admin).await;

    // The target is a file now: every backup fails, and the last good one grows old.
    std::fs::remove_dir_all(&target).unwrap();
    std::fs::write(&target, "not a directory").unwrap();
    let failed = fired(&admin, "backup_failed", async || {}).await;
    assert_eq!(failed["severity"], "critical");
    assert_eq!(
        failed["summary"], "latest backup failed 1 (above 0)",
        "{failed}"
    );
    let stale = fired(&admin, "backup_stale", async || {}).await;
    assert!(stale["value"].as_f64().unwrap() > 0.001, "{stale}");
    assert!(
        stale["summary"]
            .as_str()
            .unwrap()
            .starts_with("hours since the last good backup "),
        "{stale}"
    );
    // Still firing, it repeats every second.
    until(
        "two repeats",
        || sinks.slack_about(&failed).len(),
        |n| *n >= 3,
    )
    .await;

    // The target is back: the next backup is good.
    std::fs::remove_file(&target).unwrap();
    std::fs::create_dir(&target).unwrap();
    let failed = resolved(&admin, &failed, async || {}).await;
    let stale = resolved(&admin, &stale, async || {}).await;
    assert_eq!(failed["resolved_value"], 0.0);
    assert!(stale["resolved_value"].as_f64().unwrap() < 0.001, "{stale}");
    for alert in [&failed, &stale] {
        check_notified(&admin, &sinks, alert, None).await;
    }
    assert!(
        sinks.slack_about(&failed).len() >= 4,
        "the firing, two repeats or more, the resolve"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_firing_alert_repeats_once_per_interval_and_a_value_inside_the_margin_does_not_resolve_it()
 {
    use std::sync::Arc;

    use aimake::ops::alerts::{
        AlertView, Alerting, Engine, FixedSignals, Measure, NotifierSink, Signal,
    };

    let sinks = Sinks::start().await;
    let mut config = Config::default();
    sinks.configure(&mut config);
    only(&mut config, "error_rate", Some(0.05), 60, 0, 1);
    let rules = aimake::ops::alerts::rules(&config.alerts, false, false);
    assert_eq!(rules.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let db = aimake::db::Db::open(&dir.path().join("a.db")).unwrap();
    let signals = Arc::new(FixedSignals::default());
    // The server's own engine and notifiers, on a clock the test moves: ten seconds between
    // repeats, the hysteresis margin at 20% (clear at 4% or less).
    let mut alerting = Alerting::new(
        Engine::new(rules, Duration::from_secs(10)),
        db.clone(),
        signals.clone(),
        Arc::new(NotifierSink {
            notifiers: aimake::ops::notify::Notifiers::from_config(&config).unwrap(),
            link: "https://audio.example.org".into(),
        }),
    );
    let rate = |value: f64| {
        Some(Measure {
            value,
            samples: 100,
        })
    };
    let t0 = now_ms();
    signals.set(Signal::ErrorRate, rate(0.2));
    alerting.evaluate(t0).await.unwrap();
    // 35 seconds around the threshold, never back to 4%: three repeats, no resolve.
    for s in 1..=35 {
        let hovering = [0.2, 0.045, 0.05, 0.041][s % 4];
        signals.set(Signal::ErrorRate, rate(hovering));
        alerting.evaluate(t0 + s as i64 * 1000).await.unwrap();
        assert_eq!(db.alerts().active().await.unwrap().len(), 1, "at {s} s");
    }
    signals.set(Signal::ErrorRate, rate(0.01));
    for s in 36..=40 {
        alerting.evaluate(t0 + s * 1000).await.unwrap();
    }
    let history = db.alerts().page(None, 10).await.unwrap();
    assert_eq!(history.len(), 1, "one alert, no flapping");
    assert_eq!(history[0].fired_at, t0);
    assert_eq!(history[0].resolved_at, Some(t0 + 36_000));
    let alert = serde_json::to_value(AlertView::from(history[0].clone())).unwrap();
    check_sinks(&sinks, &alert, Some(3)).await;
    assert_eq!(history[0].notifications, 5);
}
