//! The server's alerts about itself, driven through the real server: a rule fires from a
//! real signal, is recorded, and is listed for admins.

use std::time::{Duration, Instant};

use aimake::auth::Role;
use serde_json::{Value, json};

use crate::fakes::FakeOpenAi;
use crate::fakes::alerts::FakeSlack;
use crate::helpers::{Session, TestApp, error_code};

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
    assert!(alert["notifications"].as_i64().unwrap() >= 1, "{alert}");
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
