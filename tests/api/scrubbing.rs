//! Provider errors that quote the request's credentials: the key never reaches a user-facing
//! message or a log line, and the message still says what went wrong.

use aimake::auth::Role;
use aimake::config::{Config, Secret};
use serde_json::{Value, json};

use crate::fakes::{Failure, FakeElevenLabs, FakeOpenAi, FakeTencent};
use crate::fakes_llm::{API_KEY, FakeLlm, Reply};
use crate::helpers::{CapturedLogs, TestApp};

fn fast(c: &mut Config) {
    c.providers.retry.base_delay_ms = 1;
    c.providers.retry.max_delay_ms = 5;
}

/// Synthesizes with `voice` against a provider told to echo its credentials, and checks the
/// failed audio's message and every log line.
async fn an_echoing_provider_leaks_nothing(
    configure: impl FnOnce(&mut Config),
    voice: &str,
    keys: &[&str],
    says: &str,
) {
    let logs = CapturedLogs::start();
    let app = TestApp::spawn_with(|c| {
        fast(c);
        configure(c);
    })
    .await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let audio = s
        .create_finished(&json!({"text": "Hello there.", "voice": voice}))
        .await;
    app.stop().await;

    assert_eq!(audio["status"], "failed", "{audio}");
    let message = audio["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "{message}");
    assert!(message.contains("[redacted]"), "{message}");
    let logged = logs.text();
    assert!(
        logged.contains("[redacted]"),
        "the provider's error was logged: {logged}"
    );
    for key in keys {
        assert!(!message.contains(key), "{key} in {message}");
        assert!(!logged.contains(key), "{key} in the log:\n{logged}");
    }
}

#[tokio::test]
async fn an_openai_error_quoting_the_bearer_key_is_scrubbed_from_the_audio_and_the_log() {
    let fake = FakeOpenAi::start().await;
    fake.fail_next(1, Failure::EchoCredentials);
    an_echoing_provider_leaks_nothing(
        |c| fake.configure(c),
        "openai:alloy",
        &[fake.api_key(), "sk-test"],
        "rejected the request (400",
    )
    .await;
}

#[tokio::test]
async fn an_elevenlabs_error_quoting_the_xi_api_key_is_scrubbed_from_the_audio_and_the_log() {
    let fake = FakeElevenLabs::start().await;
    fake.fail_next(1, Failure::EchoCredentials);
    an_echoing_provider_leaks_nothing(
        |c| fake.configure(c),
        "elevenlabs:21m00Tcm4TlvDq8ikWAM",
        &[fake.api_key()],
        "ElevenLabs rejected the request (400",
    )
    .await;
}

#[tokio::test]
async fn a_tencent_error_quoting_the_signed_header_is_scrubbed_from_the_audio_and_the_log() {
    let fake = FakeTencent::start().await;
    fake.fail_next(1, Failure::EchoCredentials);
    an_echoing_provider_leaks_nothing(
        |c| fake.configure(c),
        "tencent:101001",
        &[
            fake.secret_id(),
            fake.secret_key(),
            "Credential=AKID",
            "Signature=",
        ],
        "Tencent Cloud refused the request (InvalidParameter)",
    )
    .await;
}

#[tokio::test]
async fn a_language_model_error_quoting_the_key_is_scrubbed_from_the_answer_and_the_log() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::echo_credentials());
    let base = llm.base_url.clone();
    let logs = CapturedLogs::start();
    let app = TestApp::spawn_with(move |c| {
        c.llm.base_url = base;
        c.llm.api_key = Some(Secret::new(API_KEY));
        c.llm.model = "gpt-test".into();
    })
    .await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let show: Value = s
        .post("/api/podcasts", &json!({"title": "Leaky"}))
        .await
        .json()
        .await
        .unwrap();
    let resp = s
        .post(
            &format!("/api/podcasts/{}/scripts", show["id"].as_str().unwrap()),
            &json!({
                "source": {"topic": "Keys"},
                "speakers": [{"name": "Alice", "voice": "local:en-us"}, {"name": "Bob", "voice": "local:en-us"}],
                "minutes": 2,
            }),
        )
        .await;
    assert_eq!(resp.status(), 503);
    let body = resp.text().await.unwrap();
    app.stop().await;
    assert_eq!(llm.requests(), 1, "a refused request is not retried");

    let logged = logs.text();
    assert!(
        logged.contains("status 400") || logged.contains("Some(400)"),
        "the failure is logged with its status: {logged}"
    );
    assert!(
        logged.contains("Bad request for key [redacted]"),
        "and with what the server said: {logged}"
    );
    for text in [&body, &logged] {
        assert!(!text.contains(API_KEY), "{text}");
        assert!(!text.contains("sk-fake"), "{text}");
    }
}
