//! Alert notifiers against fakes of Slack, PagerDuty, a signed webhook receiver and an SMTP
//! server: what arrives for a firing and its resolve, retries that honour `Retry-After`,
//! refusals reported and not retried, the admin API and `aimake alerts test`, and secrets
//! that never reach a log line.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aimake::auth::Role;
use aimake::config::Config;
use aimake::ops::notify::{AlertState, Notification, Notifiers, Severity};
use serde_json::{Value, json};

use crate::fakes::alerts::{
    Answer, FakePagerDuty, FakeSlack, FakeSmtp, FakeWebhook, SmtpAnswer, verify,
};
use crate::helpers::{CapturedLogs, TestApp, bin, error_code};

const SLACK_SECRET: &str = "sl4ckS3cretPathXYZ";
const ROUTING_KEY: &str = "R0UT1NGk3y0123456789abcdefABCDEF";
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SMTP_PASSWORD: &str = "smtp-p4ssw0rd-secret";

/// A config with these `[[alerts.notifiers]]` tables and fast backoff.
fn config(notifiers: &str) -> Config {
    let file = format!(
        "[alerts.retry]\nmax_attempts = 3\nbase_delay_ms = 5\nmax_delay_ms = 20\n{notifiers}"
    );
    Config::from_sources(Some(&file), &[])
        .expect("the test config is valid")
        .config
}

fn slack_toml(url: &str) -> String {
    format!("[[alerts.notifiers]]\nname = \"ops\"\nkind = \"slack\"\nurl = \"{url}\"\n")
}

fn pagerduty_toml(url: &str, key: &str) -> String {
    format!(
        "[[alerts.notifiers]]\nname = \"oncall\"\nkind = \"pagerduty\"\nurl = \"{url}\"\nrouting_key = \"{key}\"\n"
    )
}

fn webhook_toml(url: &str, secret: &str) -> String {
    format!(
        "[[alerts.notifiers]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\nsecret = \"{secret}\"\n"
    )
}

fn email_toml(port: u16, login: bool) -> String {
    let login = if login {
        format!("smtp_username = \"alerts\"\nsmtp_password = \"{SMTP_PASSWORD}\"\n")
    } else {
        String::new()
    };
    format!(
        "[[alerts.notifiers]]\nname = \"mail\"\nkind = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\nsmtp_tls = \"none\"\ntimeout_ms = 2000\nfrom = \"aimake <alerts@example.org>\"\nto = [\"ops@example.org\", \"Second <oncall@example.org>\"]\n{login}"
    )
}

/// The alert engine's firing and resolve of one alert.
fn firing() -> Notification {
    Notification {
        alert: "error_rate".into(),
        severity: Severity::Critical,
        state: AlertState::Firing,
        summary: "7.5% of requests failed over 5 min (threshold 5%)".into(),
        details: BTreeMap::from([
            ("value".to_string(), "7.5%".to_string()),
            ("threshold".to_string(), "5%".to_string()),
        ]),
        started_at: time::macros::datetime!(2026-12-07 06:00 UTC),
        dedup_key: "aimake-error_rate-01JEXAMPLE".into(),
        link: "https://audio.example.org".into(),
    }
}

fn resolved() -> Notification {
    Notification {
        state: AlertState::Resolved,
        summary: "0.4% of requests failed over 5 min (threshold 5%)".into(),
        ..firing()
    }
}

async fn send_one(notifiers: &Notifiers, n: &Notification) -> Result<(), String> {
    let mut results = notifiers.send(n).await;
    assert_eq!(results.len(), 1);
    results.pop().unwrap().1.map_err(|e| e.message)
}

#[tokio::test]
async fn slack_gets_the_firing_and_the_resolve_as_block_kit_with_the_same_alert_key() {
    let fake = FakeSlack::start(SLACK_SECRET).await;
    let notifiers = Notifiers::from_config(&config(&slack_toml(&fake.url()))).unwrap();
    send_one(&notifiers, &firing()).await.unwrap();
    send_one(&notifiers, &resolved()).await.unwrap();

    let requests = fake.sink.requests();
    assert_eq!(requests.len(), 2);
    let (fire, resolve) = (requests[0].json(), requests[1].json());
    assert_eq!(
        fire["text"],
        "[FIRING] error_rate: 7.5% of requests failed over 5 min (threshold 5%)"
    );
    assert!(
        resolve["text"]
            .as_str()
            .unwrap()
            .starts_with("[RESOLVED] error_rate: 0.4%")
    );
    let blocks = fire["blocks"].to_string();
    assert!(blocks.contains(":red_circle:"), "{blocks}");
    assert!(blocks.contains("*value*\\n7.5%"), "{blocks}");
    assert!(
        blocks.contains("<https://audio.example.org|Open aimake>"),
        "{blocks}"
    );
    for body in [&fire, &resolve] {
        assert!(
            body["blocks"]
                .to_string()
                .contains("aimake-error_rate-01JEXAMPLE")
        );
    }
    assert!(resolve["blocks"].to_string().contains(":white_check_mark:"));
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    let status = &notifiers.status()[0];
    assert_eq!((status.sent, status.failed), (2, 0));
    assert_eq!(status.target, format!("{}/…", fake.sink.base()));
}

#[tokio::test]
async fn a_slack_429_is_retried_after_its_retry_after_then_delivered() {
    let fake = FakeSlack::start(SLACK_SECRET).await;
    fake.sink.answer_next(
        1,
        Answer::RateLimited {
            retry_after_s: Some(1),
        },
    );
    let notifiers = Notifiers::from_config(&config(&slack_toml(&fake.url()))).unwrap();
    let started = Instant::now();
    send_one(&notifiers, &firing()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(fake.sink.requests().len(), 2);
    assert_eq!(notifiers.status()[0].sent, 1);
}

#[tokio::test]
async fn a_slack_refusal_is_reported_in_its_own_words_and_not_retried() {
    let fake = FakeSlack::start(SLACK_SECRET).await;
    fake.sink
        .answer_next(1, Answer::Status(400, "invalid_payload"));
    let notifiers = Notifiers::from_config(&config(&slack_toml(&fake.url()))).unwrap();
    let error = send_one(&notifiers, &firing()).await.unwrap_err();
    assert_eq!(
        error,
        "Slack notifier `ops` answered 400 Bad Request `invalid_payload`: Slack refused the message"
    );
    assert_eq!(fake.sink.requests().len(), 1, "a 400 is not retried");
    let status = &notifiers.status()[0];
    assert_eq!((status.sent, status.failed), (0, 1));
    assert_eq!(status.last_error.as_deref(), Some(error.as_str()));
    assert!(status.last_error_at.is_some());

    // A revoked webhook (another path) is Slack's 404 `no_service`, named as such.
    let wrong = fake.url().replace(SLACK_SECRET, "revokedPathXYZ123");
    let notifiers = Notifiers::from_config(&config(&slack_toml(&wrong))).unwrap();
    let error = send_one(&notifiers, &firing()).await.unwrap_err();
    assert!(error.contains("404 Not Found `no_service`"), "{error}");
    assert!(error.contains("check its url"), "{error}");
    assert!(!error.contains("revokedPathXYZ123"), "{error}");
}

#[tokio::test]
async fn pagerduty_triggers_on_firing_and_resolves_the_same_dedup_key() {
    let fake = FakePagerDuty::start(ROUTING_KEY).await;
    let notifiers =
        Notifiers::from_config(&config(&pagerduty_toml(&fake.url(), ROUTING_KEY))).unwrap();
    send_one(&notifiers, &firing()).await.unwrap();
    send_one(&notifiers, &resolved()).await.unwrap();

    let requests = fake.sink.requests();
    assert_eq!(requests.len(), 2, "202 is success, nothing retried");
    let trigger = requests[0].json();
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["routing_key"], ROUTING_KEY);
    assert_eq!(trigger["dedup_key"], "aimake-error_rate-01JEXAMPLE");
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["source"], "audio.example.org");
    assert_eq!(trigger["payload"]["timestamp"], "2026-12-07T06:00:00Z");
    assert_eq!(trigger["payload"]["custom_details"]["threshold"], "5%");
    assert!(
        trigger["payload"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("error_rate: 7.5% of requests failed")
    );
    assert_eq!(
        requests[1].json(),
        json!({
            "routing_key": ROUTING_KEY,
            "event_action": "resolve",
            "dedup_key": "aimake-error_rate-01JEXAMPLE",
        })
    );

    let warning = Notification {
        severity: Severity::Warning,
        ..firing()
    };
    send_one(&notifiers, &warning).await.unwrap();
    assert_eq!(
        fake.sink.requests()[2].json()["payload"]["severity"],
        "warning"
    );
}

#[tokio::test]
async fn a_pagerduty_429_and_500_are_retried_and_a_retry_after_honoured() {
    let fake = FakePagerDuty::start(ROUTING_KEY).await;
    fake.sink.answer_next(
        1,
        Answer::RateLimited {
            retry_after_s: Some(1),
        },
    );
    fake.sink.answer_next(1, Answer::Status(500, "oops"));
    let notifiers =
        Notifiers::from_config(&config(&pagerduty_toml(&fake.url(), ROUTING_KEY))).unwrap();
    let started = Instant::now();
    send_one(&notifiers, &firing()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(fake.sink.requests().len(), 3);
}

#[tokio::test]
async fn a_wrong_pagerduty_key_is_a_clear_error_in_the_status_and_not_retried() {
    let fake = FakePagerDuty::start(ROUTING_KEY).await;
    let wrong = "W0NGk3y0123456789abcdefABCDEF999";
    let notifiers = Notifiers::from_config(&config(&pagerduty_toml(&fake.url(), wrong))).unwrap();
    let error = send_one(&notifiers, &firing()).await.unwrap_err();
    assert_eq!(
        error,
        "PagerDuty notifier `oncall` refused the event (400): Event object is invalid \
         (Invalid routing key); check the routing_key"
    );
    assert_eq!(fake.sink.requests().len(), 1);
    let status = &notifiers.status()[0];
    assert_eq!(status.failed, 1);
    assert_eq!(status.last_error.as_deref(), Some(error.as_str()));
}

#[tokio::test]
async fn the_webhook_is_signed_so_its_receiver_accepts_it_and_rejects_a_tampered_copy() {
    let key = aimake::config::signing_key(&aimake::config::Secret::new(WEBHOOK_SECRET)).unwrap();
    let fake = FakeWebhook::start(&key).await;
    let notifiers =
        Notifiers::from_config(&config(&webhook_toml(&fake.url(), WEBHOOK_SECRET))).unwrap();
    send_one(&notifiers, &firing()).await.unwrap();
    send_one(&notifiers, &resolved()).await.unwrap();

    let requests = fake.sink.requests();
    assert_eq!(requests.len(), 2);
    let (fire, resolve) = (requests[0].json(), requests[1].json());
    assert_eq!(fire["event"], "alert.triggered");
    assert_eq!(resolve["event"], "alert.resolved");
    for body in [&fire, &resolve] {
        assert_eq!(body["dedup_key"], "aimake-error_rate-01JEXAMPLE");
        assert_eq!(body["severity"], "critical");
        assert_eq!(body["source"], "audio.example.org");
    }
    assert_eq!(fire["details"]["value"], "7.5%");
    assert_eq!(fire["id"], requests[0].header("webhook-id").unwrap());
    assert_ne!(fire["id"], resolve["id"], "each delivery has its own id");
    assert!(
        requests[0]
            .header("user-agent")
            .unwrap()
            .starts_with("aimake/")
    );

    // The receiver's check is real: the same headers over a changed body fail it.
    verify(&key, &requests[0].headers, &requests[0].body).unwrap();
    let tampered = String::from_utf8(requests[0].body.to_vec())
        .unwrap()
        .replace("critical", "info");
    assert_eq!(
        verify(&key, &requests[0].headers, tampered.as_bytes()),
        Err("invalid signature")
    );
    let mut resend = reqwest::Client::new().post(fake.url()).body(tampered);
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        resend = resend.header(name, requests[0].header(name).unwrap());
    }
    assert_eq!(resend.send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn a_webhook_signed_with_the_wrong_secret_is_refused_once_and_a_503_is_retried() {
    let fake = FakeWebhook::start(b"the receiver's own key").await;
    let notifiers =
        Notifiers::from_config(&config(&webhook_toml(&fake.url(), "a-different-secret"))).unwrap();
    let error = send_one(&notifiers, &firing()).await.unwrap_err();
    assert!(error.starts_with("Webhook notifier `hook`"), "{error}");
    assert!(error.contains("invalid signature"), "{error}");
    assert!(error.contains("check the url and the secret"), "{error}");
    assert_eq!(fake.sink.requests().len(), 1, "a 401 is not retried");

    let key = aimake::config::signing_key(&aimake::config::Secret::new(WEBHOOK_SECRET)).unwrap();
    let fake = FakeWebhook::start(&key).await;
    fake.sink.answer_next(1, Answer::Status(503, "busy"));
    fake.sink.answer_next(
        1,
        Answer::RateLimited {
            retry_after_s: Some(1),
        },
    );
    let notifiers =
        Notifiers::from_config(&config(&webhook_toml(&fake.url(), WEBHOOK_SECRET))).unwrap();
    let started = Instant::now();
    send_one(&notifiers, &firing()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    let requests = fake.sink.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(
        requests[0].header("webhook-id"),
        requests[2].header("webhook-id"),
        "a retry keeps the delivery's id, so the receiver can drop a duplicate"
    );
}

#[tokio::test]
async fn email_delivers_the_firing_and_the_resolve_to_every_recipient_after_logging_in() {
    let smtp = FakeSmtp::start(Some(("alerts", SMTP_PASSWORD))).await;
    let notifiers = Notifiers::from_config(&config(&email_toml(smtp.addr.port(), true))).unwrap();
    send_one(&notifiers, &firing()).await.unwrap();
    send_one(&notifiers, &resolved()).await.unwrap();

    let mails = smtp.mails();
    assert_eq!(mails.len(), 2);
    for mail in &mails {
        assert_eq!(mail.from, "alerts@example.org");
        assert_eq!(mail.to, ["ops@example.org", "oncall@example.org"]);
        assert_eq!(mail.user.as_deref(), Some("alerts"));
        assert!(
            mail.data
                .contains("Alert key: aimake-error_rate-01JEXAMPLE"),
            "{}",
            mail.data
        );
        assert!(mail.data.contains("Open aimake: https://audio.example.org"));
    }
    assert!(
        mails[0]
            .data
            .contains("Subject: [FIRING] error_rate: 7.5% of requests failed"),
        "{}",
        mails[0].data
    );
    assert!(mails[0].data.contains("value: 7.5%"));
    assert!(mails[1].data.contains("Subject: [RESOLVED] error_rate"));
    assert!(mails[1].data.contains("State:     resolved"));
    assert_eq!(
        notifiers.status()[0].target,
        format!("smtp://127.0.0.1:{} → 2 recipient(s)", smtp.addr.port())
    );
}

#[tokio::test]
async fn email_retries_a_try_later_answer_and_reports_a_refusal_without_retrying() {
    let smtp = FakeSmtp::start(None).await;
    let notifiers = Notifiers::from_config(&config(&email_toml(smtp.addr.port(), false))).unwrap();
    smtp.answer_next(1, SmtpAnswer::Transient);
    send_one(&notifiers, &firing()).await.unwrap();
    assert_eq!((smtp.attempts(), smtp.mails().len()), (2, 1));

    smtp.answer_next(1, SmtpAnswer::Permanent);
    let error = send_one(&notifiers, &firing()).await.unwrap_err();
    assert_eq!(smtp.attempts(), 3, "a 554 is not retried");
    assert!(
        error.starts_with(&format!(
            "Email notifier `mail`: 127.0.0.1:{} refused (554)",
            smtp.addr.port()
        )),
        "{error}"
    );
    assert!(error.contains("refused by policy"), "{error}");
}

/// A loopback port with nothing listening.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_smtp_server_is_a_clear_error_after_bounded_attempts() {
    let port = closed_port();
    let notifiers = Notifiers::from_config(&config(&email_toml(port, false))).unwrap();
    let started = Instant::now();
    let error = send_one(&notifiers, &firing()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        error.starts_with(&format!(
            "Email notifier `mail`: cannot reach 127.0.0.1:{port}"
        )),
        "{error}"
    );
    assert!(error.ends_with("(gave up after 3 attempts)"), "{error}");
    let status = &notifiers.status()[0];
    assert_eq!(status.failed, 1);
    assert_eq!(status.last_error.as_deref(), Some(error.as_str()));
}

#[tokio::test]
async fn the_admin_api_lists_the_notifiers_and_sends_a_test_through_one_or_all() {
    let slack = FakeSlack::start(SLACK_SECRET).await;
    let pd = FakePagerDuty::start(ROUTING_KEY).await;
    let wrong_key = "W0NGk3y0123456789abcdefABCDEF999";
    let alerts = config(&format!(
        "{}{}",
        slack_toml(&slack.url()),
        pagerduty_toml(&pd.url(), wrong_key)
    ))
    .alerts;
    let app = TestApp::spawn_with(|c| c.alerts = alerts).await;
    let admin = app.signed_in("root@example.com", Role::Admin).await;
    let user = app.signed_in("ada@example.com", Role::User).await;

    assert_eq!(user.get("/api/admin/notifiers").await.status(), 403);
    assert_eq!(
        user.post("/api/admin/alerts/test", &json!({}))
            .await
            .status(),
        403
    );

    let resp = admin
        .post("/api/admin/alerts/test", &json!({"notifier": "ops"}))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"results": [{"name": "ops", "kind": "slack", "delivered": true, "error": null}]})
    );
    let sent = slack.sink.requests()[0].json();
    assert!(
        sent["text"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING] test: Test notification")
    );
    assert!(
        sent["blocks"].to_string().contains(&app.origin()),
        "links to this server"
    );

    let resp = admin
        .request(reqwest::Method::POST, "/api/admin/alerts/test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "no body tests every notifier");
    let body: Value = resp.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["delivered"], true);
    assert_eq!(results[1]["name"], "oncall");
    assert_eq!(results[1]["delivered"], false);
    assert!(
        results[1]["error"]
            .as_str()
            .unwrap()
            .contains("Invalid routing key"),
        "{body}"
    );

    let resp = admin
        .post("/api/admin/alerts/test", &json!({"notifier": "nope"}))
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp).await, "unknown_notifier");

    let list: Value = admin.get_json("/api/admin/notifiers").await;
    let list = list["notifiers"].as_array().unwrap();
    assert_eq!(list[0]["name"], "ops");
    assert_eq!(list[0]["kind"], "slack");
    assert_eq!(list[0]["target"], format!("{}/…", slack.sink.base()));
    assert_eq!(
        (list[0]["sent"].as_u64(), list[0]["failed"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(list[0]["last_error"], Value::Null);
    assert_eq!(list[1]["kind"], "pagerduty");
    assert_eq!(list[1]["failed"], 1);
    assert!(
        list[1]["last_error"]
            .as_str()
            .unwrap()
            .contains("Invalid routing key")
    );
    assert!(list[1]["last_error_at"].is_string());
    let text = serde_json::to_string(&list).unwrap();
    assert!(
        !text.contains(SLACK_SECRET) && !text.contains(wrong_key),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_test_that_outlasts_the_request_timeout_answers_202_and_finishes_in_the_background() {
    let slack = FakeSlack::start(SLACK_SECRET).await;
    slack.sink.answer_next(
        1,
        Answer::RateLimited {
            retry_after_s: Some(2),
        },
    );
    let alerts = config(&slack_toml(&slack.url())).alerts;
    let app = TestApp::spawn_with(|c| {
        c.alerts = alerts;
        c.server.request_timeout_s = 3;
    })
    .await;
    let admin = app.signed_in("root@example.com", Role::Admin).await;
    let resp = admin
        .post("/api/admin/alerts/test", &json!({"notifier": "ops"}))
        .await;
    assert_eq!(resp.status(), 202);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"results": null, "pending": true})
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list: Value = admin.get_json("/api/admin/notifiers").await;
        if list["notifiers"][0]["sent"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the delivery never finished: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(slack.sink.requests().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn no_secret_reaches_a_log_line_an_error_or_the_status_when_every_notifier_fails() {
    let logs = CapturedLogs::start();
    let slack = FakeSlack::start(SLACK_SECRET).await;
    slack.sink.answer_next(3, Answer::Echo(500));
    let pd = FakePagerDuty::start(ROUTING_KEY).await;
    pd.sink.answer_next(1, Answer::Echo(400));
    let hook = FakeWebhook::start(b"another key").await;
    hook.sink.answer_next(1, Answer::Echo(403));
    let smtp = FakeSmtp::start(Some(("alerts", "the-server-wants-this"))).await;
    let config = config(&format!(
        "{}{}{}{}",
        slack_toml(&slack.url()),
        pagerduty_toml(&pd.url(), ROUTING_KEY),
        webhook_toml(
            &format!("{}?token=w3bh00kT0ken", hook.url()),
            WEBHOOK_SECRET
        ),
        email_toml(smtp.addr.port(), true),
    ));
    let notifiers = Notifiers::from_config(&config).unwrap();
    let results = notifiers.send(&firing()).await;
    assert!(results.iter().all(|(_, r)| r.is_err()), "{results:?}");
    assert!(
        results[3]
            .1
            .as_ref()
            .unwrap_err()
            .message
            .contains("refused (535)"),
        "{results:?}"
    );
    let errors = format!("{results:?}");
    assert!(
        errors.contains("bad gateway request [redacted]"),
        "{errors}"
    );
    let status = serde_json::to_string(&notifiers.status()).unwrap();
    let logged = logs.text();
    assert!(logged.contains("notification failed"), "{logged}");
    assert!(logged.contains("retrying"), "{logged}");
    for secret in [
        SLACK_SECRET,
        ROUTING_KEY,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "w3bh00kT0ken",
        SMTP_PASSWORD,
    ] {
        assert!(!logged.contains(secret), "{secret} in the log:\n{logged}");
        assert!(!errors.contains(secret), "{secret} in {errors}");
        assert!(!status.contains(secret), "{secret} in {status}");
    }
}

fn aimake_with(dir: &std::path::Path, notifiers: &str) -> std::process::Command {
    std::fs::write(
        dir.join("aimake.toml"),
        format!("[alerts.retry]\nbase_delay_ms = 5\nmax_delay_ms = 10\n{notifiers}"),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(bin());
    cmd.current_dir(dir)
        .env_remove("AIMAKE_CONFIG")
        .env_remove("RUST_LOG")
        .env("AIMAKE_DATA__DIR", dir.join("data"));
    cmd
}

// The fake must answer while the test thread waits for the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aimake_alerts_test_prints_each_outcome_and_fails_when_one_fails() {
    let slack = FakeSlack::start(SLACK_SECRET).await;
    let port = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let both = format!("{}{}", slack_toml(&slack.url()), email_toml(port, false));

    let out = aimake_with(dir.path(), &both)
        .args(["alerts", "test", "ops"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "ops (slack): delivered\n");
    assert_eq!(slack.sink.requests().len(), 1);

    let out = aimake_with(dir.path(), &both)
        .args(["alerts", "test"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("ops (slack): delivered\n"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "mail (email): FAILED: Email notifier `mail`: cannot reach 127.0.0.1:{port}"
        )),
        "{stdout}"
    );
    assert!(stderr.contains("1 of 2 notifiers failed"), "{stderr}");
    assert!(!stdout.contains(SLACK_SECRET) && !stderr.contains(SLACK_SECRET));

    let out = aimake_with(dir.path(), &both)
        .args(["alerts", "test", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no notifier named `nope`"));
}

#[test]
fn config_check_refuses_a_bad_notifier_naming_the_key_not_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = aimake_with(
        dir.path(),
        "[[alerts.notifiers]]\nname = \"ops\"\nkind = \"slack\"\nurl = \"hooks.slack.com/services/T0/B0/s3cr3tPath\"\n",
    )
    .args(["config", "check"])
    .output()
    .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("alerts.notifiers[ops].url: not a URL"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cr3tPath"), "{stderr}");

    let out = aimake_with(
        dir.path(),
        "[[alerts.notifiers]]\nname = \"oncall\"\nkind = \"pagerduty\"\nrouting_key = \"short\"\n",
    )
    .args(["config", "check"])
    .output()
    .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "alerts.notifiers[oncall].routing_key: a PagerDuty integration key has 32 characters"
        ),
        "{stderr}"
    );
}
