//! The LLM script writer against the fake OpenAI-compatible chat server.

use std::time::{Duration, Instant};

use aimake::config::{LlmConfig, RetryConfig, Secret};
use aimake::error::AppError;
use aimake::podcast::llm::{LlmError, ScriptRequest, ScriptWriter, Source, SpeakerBrief};
use aimake::podcast::script::ScriptLimits;
use aimake::providers::RetryPolicy;
use axum::response::IntoResponse;
use serde_json::json;

use crate::fakes_llm::{API_KEY, FakeLlm, Reply, script_json};

const SPEAKERS: &[&str] = &["Alice", "Bob"];

fn config(fake: &FakeLlm) -> LlmConfig {
    LlmConfig {
        base_url: fake.base_url.clone(),
        api_key: Some(Secret::new(API_KEY)),
        model: "gpt-test".into(),
        price_input_per_1m_micros: 150_000,
        price_output_per_1m_micros: 600_000,
        ..LlmConfig::default()
    }
}

/// Short waits so retries cost milliseconds.
fn quick(config: &LlmConfig) -> ScriptWriter {
    ScriptWriter::new(config, ScriptLimits::default())
        .unwrap()
        .with_retry_policy(RetryPolicy::from_config(&RetryConfig {
            max_attempts: 3,
            base_delay_ms: 5,
            max_delay_ms: 20,
            max_retry_after_ms: 5000,
        }))
}

fn request(source: Source) -> ScriptRequest {
    ScriptRequest {
        source,
        speakers: vec![
            SpeakerBrief {
                name: "Alice".into(),
                role: Some("host".into()),
            },
            SpeakerBrief {
                name: "Bob".into(),
                role: Some("guest".into()),
            },
        ],
        minutes: 3,
        language: Some("en".into()),
        style: None,
    }
}

fn topic() -> ScriptRequest {
    request(Source::Topic("Why tea & coffee <differ>".into()))
}

#[tokio::test]
async fn a_script_is_written_with_structured_output_and_its_cost_is_counted() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::content(script_json(SPEAKERS)).usage(2000, 1000));
    let draft = quick(&config(&fake)).write_script(&topic()).await.unwrap();

    assert_eq!(draft.script.chapters.len(), 2);
    assert_eq!(draft.script.chapters[0].title, "Opening");
    assert_eq!(draft.script.speakers(), vec!["Alice", "Bob"]);
    assert_eq!(draft.script.chapters[1].lines[1].text, "Line number 3.");
    assert!(draft.notes.is_empty());
    assert_eq!(draft.model, "gpt-test");
    assert_eq!(draft.usage.prompt_tokens, 2000);
    assert_eq!(draft.usage.completion_tokens, 1000);
    // 2000 × $0.15/M + 1000 × $0.60/M = 300 + 600 micro-dollars.
    assert_eq!(draft.usage.cost_micros, 900);

    assert_eq!(fake.requests(), 1);
    let body = fake.last_body();
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    let speaker_enum = &body["response_format"]["json_schema"]["schema"]["properties"]["chapters"]
        ["items"]["properties"]["lines"]["items"]["properties"]["speaker"]["enum"];
    assert_eq!(speaker_enum, &json!(["Alice", "Bob"]));
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains("about 450 words"), "{user}");
    assert!(user.contains("Why tea & coffee <differ>"), "{user}");
}

#[tokio::test]
async fn a_server_without_json_schema_gets_json_object_and_the_client_remembers() {
    let fake = FakeLlm::start().await;
    fake.reject_json_schema();
    fake.push(Reply::content(format!(
        "```json\n{}\n```",
        script_json(SPEAKERS)
    )));
    let client = quick(&config(&fake));
    let draft = client.write_script(&topic()).await.unwrap();
    assert_eq!(draft.script.line_count(), 4);
    assert_eq!(
        fake.requests(),
        2,
        "one rejected json_schema, one json_object"
    );
    let bodies = fake.bodies();
    assert_eq!(bodies[0]["response_format"]["type"], "json_schema");
    assert_eq!(bodies[1]["response_format"]["type"], "json_object");

    fake.push(Reply::content(script_json(SPEAKERS)));
    client.write_script(&topic()).await.unwrap();
    assert_eq!(
        fake.requests(),
        3,
        "the next script goes straight to json_object"
    );
    assert_eq!(fake.last_body()["response_format"]["type"], "json_object");
}

#[tokio::test]
async fn a_malformed_answer_is_retried_once_with_the_problem_in_the_conversation() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::content(
        "Sure! Here is your script: {\"chapters\": [{\"title\": \"Intro\", \"lines\": [",
    ));
    fake.push(Reply::content(script_json(SPEAKERS)));
    let draft = quick(&config(&fake)).write_script(&topic()).await.unwrap();
    assert_eq!(draft.script.line_count(), 4);
    assert_eq!(fake.requests(), 2);
    let messages = fake.last_body()["messages"].as_array().unwrap().clone();
    assert_eq!(
        messages.len(),
        4,
        "system, user, the bad answer, the correction"
    );
    assert_eq!(messages[2]["role"], "assistant");
    assert!(
        messages[2]["content"]
            .as_str()
            .unwrap()
            .starts_with("Sure!")
    );
    let correction = messages[3]["content"].as_str().unwrap();
    assert!(correction.contains("no JSON object"), "{correction}");
    // Both calls are paid for.
    assert_eq!(draft.usage.prompt_tokens, 2000);
    assert_eq!(draft.usage.completion_tokens, 1000);
}

#[tokio::test]
async fn an_unknown_speaker_in_the_answer_is_sent_back_for_correction() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::content(script_json(&["Alice", "Carol"])));
    // The correction may spell names in another case; they come back as listed.
    fake.push(Reply::content(script_json(&["alice", "BOB"])));
    let draft = quick(&config(&fake)).write_script(&topic()).await.unwrap();
    assert_eq!(draft.script.speakers(), vec!["Alice", "Bob"]);
    assert_eq!(fake.requests(), 2);
    let correction = fake.last_body()["messages"][3]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        correction.contains("lines[1].speaker: unknown speaker \"Carol\""),
        "{correction}"
    );
}

#[tokio::test]
async fn two_unusable_answers_fail_and_still_report_the_tokens_spent() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::content("I cannot help with that."));
    fake.push(Reply::content(
        json!({"chapters": [{"title": "x", "lines": []}]}).to_string(),
    ));
    let err = quick(&config(&fake))
        .write_script(&topic())
        .await
        .unwrap_err();
    match &err {
        LlmError::BadOutput { problem, usage } => {
            assert!(problem.contains("no lines"), "{problem}");
            assert_eq!(usage.prompt_tokens, 2000);
            assert_eq!(usage.cost_micros, 2 * (150 + 300));
        }
        other => panic!("expected BadOutput, got {other:?}"),
    }
    assert_eq!(fake.requests(), 2, "exactly one retry");
    let response = AppError::from(err).into_response();
    assert_eq!(response.status(), 503);
}

#[tokio::test]
async fn a_rate_limited_call_waits_for_retry_after_then_succeeds() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::rate_limited("retry-after-ms", "60"));
    fake.push(Reply::content(script_json(SPEAKERS)));
    let started = Instant::now();
    let draft = quick(&config(&fake)).write_script(&topic()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(draft.script.line_count(), 4);
    assert_eq!(fake.requests(), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_limit_gives_up_at_once() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::rate_limited("retry-after", "3600"));
    let started = Instant::now();
    let err = quick(&config(&fake))
        .write_script(&topic())
        .await
        .unwrap_err();
    assert!(
        matches!(err, LlmError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(3600)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(fake.requests(), 1);
}

#[tokio::test]
async fn server_errors_and_timeouts_are_retried_a_bounded_number_of_times() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::server_error());
    fake.push(Reply::content(script_json(SPEAKERS)).slow(Duration::from_secs(5)));
    fake.push(Reply::content(script_json(SPEAKERS)));
    let client = quick(&config(&fake)).with_timeout(Duration::from_millis(300));
    let draft = client.write_script(&topic()).await.unwrap();
    assert_eq!(draft.script.line_count(), 4);
    assert_eq!(fake.requests(), 3);

    fake.push(Reply::server_error());
    fake.push(Reply::server_error());
    fake.push(Reply::server_error());
    let err = client.write_script(&topic()).await.unwrap_err();
    assert!(
        matches!(
            err,
            LlmError::Unavailable {
                status: Some(500),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(fake.requests(), 6, "one call and two retries");
}

#[tokio::test]
async fn a_wrong_api_key_fails_without_retrying() {
    let fake = FakeLlm::start().await;
    let mut config = config(&fake);
    config.api_key = Some(Secret::new("sk-wrong"));
    let err = quick(&config).write_script(&topic()).await.unwrap_err();
    match err {
        LlmError::Unavailable { status, message } => {
            assert_eq!(status, Some(401));
            assert!(message.contains("Incorrect API key"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(fake.requests(), 1);
}

#[tokio::test]
async fn without_a_model_or_a_key_the_writer_is_not_configured() {
    let fake = FakeLlm::start().await;
    let mut no_model = config(&fake);
    no_model.model = String::new();
    let no_key_default_server = LlmConfig {
        model: "gpt-test".into(),
        ..LlmConfig::default()
    };
    for config in [no_model, no_key_default_server] {
        let client = quick(&config);
        assert!(!client.is_configured());
        let err = client.write_script(&topic()).await.unwrap_err();
        assert!(matches!(err, LlmError::NotConfigured), "{err:?}");
        let response = AppError::from(err).into_response();
        assert_eq!(response.status(), 503);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "provider_unavailable");
    }
    assert_eq!(fake.requests(), 0);
}

#[tokio::test]
async fn a_long_source_is_trimmed_and_the_draft_says_so() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::content(script_json(SPEAKERS)));
    let mut config = config(&fake);
    config.max_source_chars = 1000;
    let sentence = "Tea is grown on hillsides. ";
    let text = format!("{}THE-END-MARKER", sentence.repeat(200));
    let draft = quick(&config)
        .write_script(&request(Source::Text(text.clone())))
        .await
        .unwrap();
    assert_eq!(draft.notes.len(), 1, "{:?}", draft.notes);
    let note = &draft.notes[0];
    assert!(
        note.contains(&format!("from {}", text.chars().count())),
        "{note}"
    );
    assert!(note.contains("the limit is 1000"), "{note}");
    let user = fake.last_body()["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!user.contains("THE-END-MARKER"));
    assert!(user.contains("Tea is grown on hillsides."));
    assert!(user.len() < 1500, "{} bytes", user.len());
}

#[tokio::test]
async fn a_bad_request_is_refused_before_calling_the_model() {
    let fake = FakeLlm::start().await;
    let mut bad = topic();
    bad.speakers.clear();
    bad.minutes = 500;
    let err = quick(&config(&fake)).write_script(&bad).await.unwrap_err();
    let response = AppError::from(err).into_response();
    assert_eq!(response.status(), 400);
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    assert!(body["error"]["details"]["speakers"].is_string(), "{body}");
    assert!(body["error"]["details"]["minutes"].is_string(), "{body}");
    assert_eq!(fake.requests(), 0);
}
