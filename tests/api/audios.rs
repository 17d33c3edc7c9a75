//! The speech engine through the API: create, synthesize (local voice and fakes), follow,
//! fetch, share, cache, resume, cancel, and owner scoping.

use std::time::Duration;

use aimake::auth::Role;
use aimake::config::Config;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::fakes::{Failure, FakeOpenAi};
use crate::helpers::{Session, TestApp, error_code, sse_data};

/// Provider retries wait milliseconds, not seconds, in tests.
fn fast(c: &mut Config) {
    c.providers.retry.base_delay_ms = 1;
    c.providers.retry.max_delay_ms = 5;
}

async fn create(s: &Session, body: Value) -> reqwest::Response {
    s.post("/api/audios", &body).await
}

/// Every object under `audio/` in the app's store.
async fn audio_objects(app: &TestApp) -> Vec<aimake::storage::ObjectInfo> {
    app.state
        .storage
        .list(&aimake::storage::Key::from_stored("audio/"))
        .await
        .unwrap()
}

/// Creates an audio and returns it once it reached a final state.
async fn create_finished(s: &Session, body: Value) -> Value {
    let audio: Value = create(s, body).await.json().await.unwrap();
    finished(s, audio["id"].as_str().unwrap()).await
}

/// Waits until the audio reaches a final state and returns it.
async fn finished(s: &Session, id: &str) -> Value {
    s.finished_audio(id).await
}

fn speech_texts(fake: &FakeOpenAi) -> Vec<String> {
    fake.requests()
        .iter()
        .filter(|r| r.path().ends_with("/audio/speech"))
        .map(|r| r.json()["input"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn bad_requests_are_refused_with_field_details() {
    let app = TestApp::spawn_with(|c| c.tts.max_chars = 20).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    for (body, code, field) in [
        (
            json!({"text": "  ", "voice": "local:en-us"}),
            "invalid_request",
            "text",
        ),
        (
            json!({"text": "x".repeat(21), "voice": "local:en-us"}),
            "text_too_long",
            "text",
        ),
        (
            json!({"text": "hi", "voice": "local:en-us", "speed": 2.5}),
            "invalid_request",
            "speed",
        ),
        (
            json!({"text": "hi", "voice": "local:en-us", "format": "ogg"}),
            "invalid_request",
            "format",
        ),
        (
            json!({"text": "hi", "voice": "local:no-such-voice"}),
            "unknown_voice",
            "voice",
        ),
        (
            json!({"text": "hi", "voice": "nonsense"}),
            "unknown_voice",
            "voice",
        ),
    ] {
        let resp = create(&s, body.clone()).await;
        assert_eq!(resp.status(), 400, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], code, "{body}: {err}");
        assert!(err["error"]["details"][field].is_string(), "{body}: {err}");
    }
    // The voice may be left out (the default is used); the text may not.
    let resp = create(&s, json!({"voice": "local:en-us"})).await;
    assert_eq!(
        error_code(resp).await,
        "invalid_request",
        "a missing field is a 400 too"
    );
    let list: Value = s.get("/api/audios").await.json().await.unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "nothing was stored"
    );
    app.stop().await;
}

#[tokio::test]
async fn library_filters_accept_the_stored_kinds_and_statuses_and_refuse_others_by_name() {
    let app = TestApp::spawn().await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let audio = create_finished(&s, json!({"text": "Hello there.", "voice": "local:en-us"})).await;
    assert_eq!(
        (audio["kind"].as_str(), audio["status"].as_str()),
        (Some("tts"), Some("succeeded"))
    );
    for (query, expected) in [
        ("?status=succeeded", 1),
        ("?kind=tts&status=succeeded", 1),
        ("?kind=tts&status=", 1),
        ("?status=failed", 0),
        ("?kind=podcast", 0),
        ("?kind=upload", 0),
    ] {
        let resp = s.get(&format!("/api/audios{query}")).await;
        assert_eq!(resp.status(), 200, "{query}");
        let list: Value = resp.json().await.unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), expected, "{query}");
    }
    for (query, message, details) in [
        (
            "?status=paused",
            "status must be one of queued, running, succeeded, failed, canceled",
            json!({"status": "paused"}),
        ),
        (
            "?kind=video",
            "kind must be one of tts, podcast, upload",
            json!({"kind": "video"}),
        ),
        (
            "?status=SUCCEEDED",
            "status must be one of queued, running, succeeded, failed, canceled",
            json!({"status": "SUCCEEDED"}),
        ),
    ] {
        let resp = s.get(&format!("/api/audios{query}")).await;
        assert_eq!(resp.status(), 400, "{query}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request", "{query}");
        assert_eq!(body["error"]["message"], message, "{query}");
        assert_eq!(body["error"]["details"], details, "{query}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_local_voice_speaks_end_to_end() {
    let app = TestApp::spawn().await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let resp = create(
        &s,
        json!({"text": "Hello from the offline voice. It works.", "voice": "local:en-us"}),
    )
    .await;
    assert_eq!(resp.status(), 202);
    let queued: Value = resp.json().await.unwrap();
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["title"], "Hello from the offline voice. It works.");
    let id = queued["id"].as_str().unwrap();

    let audio = finished(&s, id).await;
    assert_eq!(audio["status"], "succeeded", "{audio}");
    assert!(audio["duration_ms"].as_i64().unwrap() > 500, "{audio}");
    assert_eq!(audio["file_url"], format!("/api/audios/{id}/file"));

    let file = s.get(&format!("/api/audios/{id}/file")).await;
    assert_eq!(file.status(), 200);
    assert_eq!(file.headers()["content-type"], "audio/mpeg");
    let bytes = file.bytes().await.unwrap();
    assert_eq!(bytes.len() as i64, audio["size_bytes"].as_i64().unwrap());
    let pcm = aimake::audio::decode(&bytes, aimake::audio::Format::Mp3).expect("a real MP3");
    assert!(pcm.duration_ms() > 500);

    let peaks: Value = s.get_json(&format!("/api/audios/{id}/peaks")).await;
    assert!(!peaks["peaks"].as_array().unwrap().is_empty());
    assert!(
        peaks["peaks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_f64().unwrap() > 0.05),
        "not silence"
    );

    let list: Value = s.get("/api/audios?q=offline").await.json().await.unwrap();
    assert_eq!(list["items"][0]["id"], id);
    let usage: Value = s.get("/api/usage").await.json().await.unwrap();
    assert_eq!(usage[0]["service"], "tts:local:espeak-ng", "{usage}");
    assert_eq!(usage[0]["cost_micros"], 0);
    app.stop().await;
}

#[tokio::test]
async fn events_report_progress_until_the_audio_is_done() {
    let fake = FakeOpenAi::start().await;
    fake.set_delay(Duration::from_millis(100));
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let audio: Value = create(&s, json!({"text": "Stream me.", "voice": "openai:alloy"}))
        .await
        .json()
        .await
        .unwrap();
    let id = audio["id"].as_str().unwrap();
    let body = tokio::time::timeout(
        Duration::from_secs(20),
        s.get(&format!("/api/audios/{id}/events")),
    )
    .await
    .unwrap();
    assert_eq!(body.headers()["content-type"], "text/event-stream");
    let text = tokio::time::timeout(Duration::from_secs(20), body.text())
        .await
        .unwrap()
        .unwrap();
    let events = sse_data(&text);
    assert!(events.len() >= 2, "{text}");
    assert_eq!(events.last().unwrap()["status"], "succeeded", "{text}");
    let progress: Vec<f64> = events
        .iter()
        .map(|e| e["progress"].as_f64().unwrap())
        .collect();
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress only grows: {progress:?}"
    );
    assert!(text.contains("event: status"));
    app.stop().await;
}

#[tokio::test]
async fn a_long_text_is_synthesized_in_parallel_chunks_and_assembled_in_order() {
    let fake = FakeOpenAi::start().await;
    fake.set_delay(Duration::from_millis(30));
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let sentence = "This sentence is one of many in a long text about nothing at all. ";
    let text: String = (0..1200).map(|i| format!("{i}: {sentence}")).collect();
    let audio: Value = create(&s, json!({"text": text, "voice": "openai:nova"}))
        .await
        .json()
        .await
        .unwrap();
    let done = finished(&s, audio["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let inputs = speech_texts(&fake);
    assert!(inputs.len() >= 20, "{} chunks", inputs.len());
    assert!(inputs.iter().all(|t| t.chars().count() <= 4096));
    let mut sorted = inputs.clone();
    sorted.sort_by_key(|t| {
        t.split(':')
            .next()
            .unwrap()
            .trim()
            .parse::<usize>()
            .unwrap()
    });
    assert_eq!(
        sorted.concat().trim(),
        text.trim(),
        "the chunks cover the text exactly"
    );
    assert!(
        fake.max_in_flight() > 1,
        "chunks were synthesized in parallel"
    );
    let usage: Value = s.get("/api/usage").await.json().await.unwrap();
    assert_eq!(
        usage[0]["units"].as_i64().unwrap(),
        text.trim().chars().count() as i64
    );
    assert_eq!(usage[0]["service"], "tts:openai:tts-1");
    app.stop().await;
}

#[tokio::test]
async fn an_identical_request_is_served_from_the_cache_and_billed_nothing() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let a = app.signed_in("ada@example.com", Role::User).await;
    let b = app.signed_in("bob@example.com", Role::User).await;
    let body = json!({"text": "Say it twice.", "voice": "openai:alloy"});
    let first: Value = create(&a, body.clone()).await.json().await.unwrap();
    let first = finished(&a, first["id"].as_str().unwrap()).await;
    assert_eq!(speech_texts(&fake).len(), 1);
    let second: Value = create(&b, body).await.json().await.unwrap();
    let second = finished(&b, second["id"].as_str().unwrap()).await;
    assert_eq!(second["status"], "succeeded");
    assert_eq!(
        speech_texts(&fake).len(),
        1,
        "the provider was not called again"
    );
    let usage: Value = b.get("/api/usage").await.json().await.unwrap();
    assert_eq!(usage[0]["cost_micros"], 0);
    assert_eq!(usage[0]["cached_units"], 13);

    let first_peaks = a
        .get(&format!(
            "/api/audios/{}/peaks",
            first["id"].as_str().unwrap()
        ))
        .await
        .bytes()
        .await
        .unwrap();
    let second_peaks = format!("/api/audios/{}/peaks", second["id"].as_str().unwrap());
    assert_eq!(second["peaks_url"], second_peaks.as_str());
    assert_eq!(
        b.get(&second_peaks).await.bytes().await.unwrap(),
        first_peaks
    );

    // Deleting the first owner's audio leaves the second one playable, waveform included.
    assert_eq!(
        a.delete(&format!("/api/audios/{}", first["id"].as_str().unwrap()))
            .await
            .status(),
        204
    );
    let file = b
        .get(&format!(
            "/api/audios/{}/file",
            second["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(file.status(), 200);
    assert!(!file.bytes().await.unwrap().is_empty());
    let peaks = b.get(&second_peaks).await;
    assert_eq!(peaks.status(), 200);
    assert_eq!(peaks.bytes().await.unwrap(), first_peaks);

    // Deleting the last audio of the result removes its waveform with it.
    assert_eq!(
        b.delete(&format!("/api/audios/{}", second["id"].as_str().unwrap()))
            .await
            .status(),
        204
    );
    let left: i64 = app
        .state
        .db
        .read(|c| Ok(c.query_row("SELECT count(*) FROM peaks", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(left, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_provider_hiccup_is_retried_and_a_bad_key_fails_fast_with_its_message() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fake.configure(c);
        fast(c);
    })
    .await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    fake.fail_next(1, Failure::ServerError);
    let audio: Value = create(&s, json!({"text": "Try again.", "voice": "openai:alloy"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        finished(&s, audio["id"].as_str().unwrap()).await["status"],
        "succeeded"
    );
    assert_eq!(speech_texts(&fake).len(), 2, "one failure, one success");
    app.stop().await;

    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fake.configure(c);
        c.providers.openai.api_key = Some(aimake::config::Secret::new("sk-wrong"));
    })
    .await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let audio: Value = create(&s, json!({"text": "Nope.", "voice": "openai:alloy"}))
        .await
        .json()
        .await
        .unwrap();
    let failed = finished(&s, audio["id"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "provider_auth", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API key"),
        "{failed}"
    );
    assert_eq!(speech_texts(&fake).len(), 1, "no retries on a refused key");
    app.stop().await;
}

#[tokio::test]
async fn a_job_cut_off_by_a_restart_resumes_without_paying_twice() {
    let fake = FakeOpenAi::start().await;
    fake.set_delay(Duration::from_millis(200));
    let data = tempfile::tempdir().unwrap();
    let path = data.path().to_path_buf();
    let setup = |c: &mut Config| {
        fake.configure(c);
        c.providers.openai.max_concurrency = 1;
        c.jobs.workers = 0;
        c.data.dir = path.clone();
    };
    let app = TestApp::spawn_with(setup).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let text: String = (0..3)
        .map(|i| format!("Part {i}. {}", "Words go here. ".repeat(300)))
        .collect();
    let audio: Value = create(&s, json!({"text": text, "voice": "openai:alloy"}))
        .await
        .json()
        .await
        .unwrap();
    let id = audio["id"].as_str().unwrap().to_string();

    let stop = CancellationToken::new();
    let (state, stop2) = (app.state.clone(), stop.clone());
    let run = tokio::spawn(async move { state.jobs.run_next(&state, &stop2).await });
    while speech_texts(&fake).len() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel(); // the server goes down mid-job
    run.await.unwrap().unwrap();
    let paid_before = speech_texts(&fake).len();
    app.stop().await;

    let app = TestApp::spawn_with(setup).await;
    let state = app.state.clone();
    assert_eq!(
        state
            .jobs
            .run_next(&state, &CancellationToken::new())
            .await
            .unwrap(),
        aimake::jobs::Outcome::Done
    );
    let s2 = app.login_session("ada@example.com").await;
    let done = finished(&s2, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let inputs = speech_texts(&fake);
    let mut unique = inputs.clone();
    unique.sort();
    unique.dedup();
    assert!(
        paid_before >= 2 && paid_before < inputs.len(),
        "cut mid-way: {paid_before}"
    );
    assert_eq!(inputs.len(), unique.len(), "no chunk was paid for twice");
    let usage: Value = s2.get("/api/usage").await.json().await.unwrap();
    assert_eq!(usage.as_array().unwrap().len(), 1, "{usage}");
    let rows: i64 = state
        .db
        .read(|c| Ok(c.query_row("SELECT count(*) FROM usage_logs", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(rows, 1, "exactly one usage row");
    app.stop().await;
}

#[tokio::test]
async fn files_support_ranges_etags_and_downloads() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let audio: Value = create(
        &s,
        json!({"text": "Bytes please.", "voice": "openai:alloy", "title": "季度 report"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let audio = finished(&s, audio["id"].as_str().unwrap()).await;
    let url = format!("/api/audios/{}/file", audio["id"].as_str().unwrap());
    let size = audio["size_bytes"].as_u64().unwrap();
    let full = s.get(&url).await;
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    let etag = full.headers()["etag"].to_str().unwrap().to_string();
    assert!(full.headers().contains_key("last-modified"));
    let all = full.bytes().await.unwrap();

    let part = s
        .request(reqwest::Method::GET, &url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 10-19/{size}")
    );
    assert_eq!(part.bytes().await.unwrap(), all.slice(10..20));
    let tail = s
        .request(reqwest::Method::GET, &url)
        .header("range", "bytes=-5")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.bytes().await.unwrap(), all.slice(all.len() - 5..));
    let bad = s
        .request(reqwest::Method::GET, &url)
        .header("range", format!("bytes={}-", size + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 416);
    assert_eq!(bad.headers()["content-range"], format!("bytes */{size}"));
    let cached = s
        .request(reqwest::Method::GET, &url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    let download = s.get(&format!("{url}?download=1")).await;
    let disposition = download.headers()["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment;")
            && disposition.contains("filename*=UTF-8''%E5%AD%A3"),
        "{disposition}"
    );
    app.stop().await;
}

#[tokio::test]
async fn peaks_are_kept_without_an_object_and_older_peaks_objects_are_still_served() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let audio = create_finished(&s, json!({"text": "Draw me.", "voice": "openai:alloy"})).await;
    let id = audio["id"].as_str().unwrap().to_string();
    assert_eq!(audio["peaks_url"], format!("/api/audios/{id}/peaks"));
    let resp = s.get(&format!("/api/audios/{id}/peaks")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = resp.bytes().await.unwrap();
    let peaks: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(peaks["duration_ms"], audio["duration_ms"]);
    assert!(peaks["sample_rate"].as_u64().unwrap() > 0, "{peaks}");
    assert!(!peaks["peaks"].as_array().unwrap().is_empty(), "{peaks}");
    let objects = audio_objects(&app).await;
    assert_eq!(objects.len(), 1, "only the audio file: {objects:?}");

    // An audio finished by an older version has its peaks as an object under the same key.
    let row = app
        .state
        .db
        .write(move |c| {
            let key: String =
                c.query_row("SELECT peaks_key FROM audios WHERE id = ?1", [&id], |r| {
                    r.get(0)
                })?;
            c.execute("DELETE FROM peaks WHERE key = ?1", [&key])?;
            Ok((id, key))
        })
        .await
        .unwrap();
    let (id, key) = row;
    app.state
        .storage
        .put(
            &aimake::storage::Key::from_stored(key.clone()),
            body.clone(),
        )
        .await
        .unwrap();
    let old = s.get(&format!("/api/audios/{id}/peaks")).await;
    assert_eq!(old.status(), 200);
    assert_eq!(old.bytes().await.unwrap(), body);
    assert_eq!(s.delete(&format!("/api/audios/{id}")).await.status(), 204);
    let objects = audio_objects(&app).await;
    assert!(objects.is_empty(), "{objects:?}");
    app.stop().await;
}

#[tokio::test]
async fn share_links_work_until_they_expire_and_refuse_tampering() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let id = create_finished(&s, json!({"text": "Share me.", "voice": "openai:alloy"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = &s.share(&id, 600).await;
    assert!(
        url.starts_with(&format!("http://{}/media/{id}?exp=", app.addr)),
        "{url}"
    );
    let anonymous = reqwest::Client::builder().no_proxy().build().unwrap();
    let ok = anonymous.get(url).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(!ok.bytes().await.unwrap().is_empty());

    let tampered = url.replace("sig=", "sig=00");
    assert_eq!(anonymous.get(&tampered).send().await.unwrap().status(), 403);
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() - 1;
    let sig = app.state.links.signer().sign("media", &id, exp);
    let expired = format!("http://{}/media/{id}?exp={exp}&sig={sig}", app.addr);
    let resp = anonymous.get(&expired).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(error_code(resp).await, "forbidden");
    assert_eq!(
        anonymous
            .get(app.url(&format!("/media/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    app.stop().await;
}

#[tokio::test]
async fn a_share_request_may_leave_out_its_body_but_a_body_sent_must_be_valid_json() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let id = create_finished(&s, json!({"text": "Share me.", "voice": "openai:alloy"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/audios/{id}/share");

    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let resp = s
        .request(reqwest::Method::POST, &path)
        .send()
        .await
        .unwrap();
    let after = time::OffsetDateTime::now_utc().unix_timestamp();
    assert_eq!(resp.status(), 200, "no body means the defaults");
    let link: Value = resp.json().await.unwrap();
    let url = reqwest::Url::parse(link["url"].as_str().unwrap()).unwrap();
    let exp: i64 = url
        .query_pairs()
        .find(|(k, _)| k == "exp")
        .map(|(_, v)| v.parse().unwrap())
        .expect("exp in the link");
    assert!(
        (before + 3600..=after + 3600).contains(&exp),
        "an hour by default: {exp}"
    );

    let malformed = s
        .request(reqwest::Method::POST, &path)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("Invalid JSON body: "), "{message}");

    let unknown = s.post(&path, &json!({"expires": 600})).await;
    assert_eq!(unknown.status(), 400);
    assert_eq!(error_code(unknown).await, "invalid_request");

    let short = s.post(&path, &json!({"expires_in_s": 10})).await;
    assert_eq!(short.status(), 400);
    let body: Value = short.json().await.unwrap();
    assert_eq!(body["error"]["details"]["expires_in_s"], 10);
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_running_audio_cancels_it_and_removes_its_objects() {
    let fake = FakeOpenAi::start().await;
    fake.set_delay(Duration::from_millis(300));
    let app = TestApp::spawn_with(|c| {
        fake.configure(c);
        c.providers.openai.max_concurrency = 1;
    })
    .await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let text: String = (0..4)
        .map(|i| format!("Part {i}. {}", "Words go here. ".repeat(300)))
        .collect();
    let audio: Value = create(&s, json!({"text": text, "voice": "openai:alloy"}))
        .await
        .json()
        .await
        .unwrap();
    let id = audio["id"].as_str().unwrap();
    while speech_texts(&fake).len() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(s.delete(&format!("/api/audios/{id}")).await.status(), 204);
    assert_eq!(s.get(&format!("/api/audios/{id}")).await.status(), 404);
    assert_eq!(
        s.delete(&format!("/api/audios/{id}")).await.status(),
        204,
        "deleting again is fine"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let calls = speech_texts(&fake).len();
    assert!(calls < 4, "the job stopped: {calls} calls");
    let leftovers = app
        .state
        .storage
        .list(&aimake::storage::Key::from_stored("jobs/"))
        .await
        .unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let audio_objects = app
        .state
        .storage
        .list(&aimake::storage::Key::from_stored("audio/"))
        .await
        .unwrap();
    assert!(audio_objects.is_empty(), "{audio_objects:?}");
    app.stop().await;
}

#[tokio::test]
async fn another_user_cannot_see_fetch_or_touch_an_audio() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let a = app.signed_in("ada@example.com", Role::User).await;
    let b = app.signed_in("bob@example.com", Role::User).await;
    let audio: Value = create(&a, json!({"text": "Mine only.", "voice": "openai:alloy"}))
        .await
        .json()
        .await
        .unwrap();
    let id = finished(&a, audio["id"].as_str().unwrap()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for path in ["", "/file", "/peaks", "/events"] {
        let resp = b.get(&format!("/api/audios/{id}{path}")).await;
        assert_eq!(resp.status(), 404, "{path}");
    }
    assert_eq!(
        b.post(&format!("/api/audios/{id}/share"), &json!({}))
            .await
            .status(),
        404
    );
    assert_eq!(
        b.patch(&format!("/api/audios/{id}"), &json!({"title": "x"}))
            .await
            .status(),
        404
    );
    assert_eq!(b.delete(&format!("/api/audios/{id}")).await.status(), 204);
    let list: Value = b.get("/api/audios").await.json().await.unwrap();
    assert!(list["items"].as_array().unwrap().is_empty());
    assert_eq!(
        a.get(&format!("/api/audios/{id}")).await.status(),
        200,
        "still there for its owner"
    );
    app.stop().await;
}

/// A retry speaks the text again, so the month's allowance must still cover it.
#[tokio::test]
async fn a_retry_is_refused_when_the_quota_no_longer_covers_the_text() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fake.configure(c);
        fast(c);
        c.limits.quota_chars_per_month = 30;
    })
    .await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    fake.fail_next(1, Failure::QuotaExceeded);
    let failed: Value = create(
        &s,
        json!({"text": "Twenty characters!!", "voice": "openai:alloy"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = failed["id"].as_str().unwrap();
    assert_eq!(finished(&s, id).await["status"], "failed");
    // Another text spends 20 of the 30 characters meanwhile.
    let other: Value = create(
        &s,
        json!({"text": "Another twenty chars", "voice": "openai:alloy"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        finished(&s, other["id"].as_str().unwrap()).await["status"],
        "succeeded"
    );
    let retried = s.post(&format!("/api/audios/{id}/retry"), &json!({})).await;
    assert_eq!(retried.status(), 429);
    assert!(retried.headers().contains_key("retry-after"));
    assert_eq!(error_code(retried).await, "quota_exceeded");
    // Nothing changed: the audio is still the failed one, ready to retry next month.
    let audio: Value = s.get_json(&format!("/api/audios/{id}")).await;
    assert_eq!(audio["status"], "failed");
    app.stop().await;
}

#[tokio::test]
async fn the_monthly_quota_is_enforced_and_failed_audios_can_be_retried() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fake.configure(c);
        fast(c);
        c.limits.quota_chars_per_month = 30;
    })
    .await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    fake.fail_next(1, Failure::QuotaExceeded);
    let audio: Value = create(
        &s,
        json!({"text": "Twenty characters!!", "voice": "openai:alloy"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = audio["id"].as_str().unwrap();
    let failed = finished(&s, id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let retried = s.post(&format!("/api/audios/{id}/retry"), &json!({})).await;
    assert_eq!(retried.status(), 202);
    assert_eq!(finished(&s, id).await["status"], "succeeded");

    let resp = create(
        &s,
        json!({"text": "Another twenty chars", "voice": "openai:alloy"}),
    )
    .await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(error_code(resp).await, "quota_exceeded");

    // A user's own limit overrides the default, both ways.
    let b = app.signed_in("bob@example.com", Role::User).await;
    let bob = b.id.clone();
    app.state
        .db
        .write(move |c| {
            c.execute(
                "UPDATE users SET quota_chars_per_month = 45 WHERE id = ?1",
                [bob],
            )?;
            Ok(())
        })
        .await
        .unwrap();
    let body = json!({"text": "Another twenty chars", "voice": "openai:alloy"});
    let first: Value = create(&b, body.clone()).await.json().await.unwrap();
    assert_eq!(
        finished(&b, first["id"].as_str().unwrap()).await["status"],
        "succeeded"
    );
    let second: Value = create(&b, body.clone()).await.json().await.unwrap();
    assert_eq!(
        finished(&b, second["id"].as_str().unwrap()).await["status"],
        "succeeded",
        "40 of 45"
    );
    assert_eq!(create(&b, body).await.status(), 429, "60 of 45");
    app.stop().await;
}

#[tokio::test]
async fn voices_and_providers_are_listed() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let providers: Value = s.get("/api/providers").await.json().await.unwrap();
    let ids: Vec<&str> = providers
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"local") && ids.contains(&"openai"),
        "{providers}"
    );
    // The speech recognition providers follow, each with its state.
    let asr: Vec<&Value> = providers
        .as_array()
        .unwrap()
        .iter()
        .skip_while(|p| p["kind"] == "tts")
        .collect();
    let asr_ids: Vec<&str> = asr.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(
        asr_ids,
        ["openai", "elevenlabs", "tencent", "whisper"],
        "{providers}"
    );
    assert!(asr.iter().all(|p| p["kind"] == "asr"), "{providers}");
    assert_eq!(
        asr[0]["available"], true,
        "the fake OpenAI server hears speech"
    );
    assert_eq!(asr[3]["available"], false, "no Whisper model is installed");
    assert!(
        asr[3]["detail"]
            .as_str()
            .unwrap()
            .contains("aimake models pull whisper:base"),
        "{providers}"
    );
    let voices: Value = s.get_json("/api/voices?provider=local&language=zh").await;
    assert!(
        voices
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == "local:cmn"),
        "{voices}"
    );
    let all: Value = s.get("/api/voices").await.json().await.unwrap();
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == "openai:alloy")
    );
    assert_eq!(
        app.get("/api/voices").await.status(),
        401,
        "signed-in users only"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_stream_delivers_the_first_chunk_before_the_job_ends() {
    let fake = FakeOpenAi::start().await;
    fake.set_delay(Duration::from_millis(300));
    let app = TestApp::spawn_with(|c| {
        fake.configure(c);
        c.providers.openai.max_concurrency = 1;
    })
    .await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let text: String = (0..4)
        .map(|i| format!("Part {i}. {}", "Words go here. ".repeat(280)))
        .collect();
    let audio: Value = create(&s, json!({"text": text, "voice": "openai:alloy"}))
        .await
        .json()
        .await
        .unwrap();
    let id = audio["id"].as_str().unwrap();
    let mut resp = s.get(&format!("/api/audios/{id}/stream")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/mpeg");
    let first = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!first.is_empty());
    let status: Value = s.get_json(&format!("/api/audios/{id}")).await;
    assert_ne!(
        status["status"], "succeeded",
        "the first audio arrived while the job was still running"
    );
    let mut all = first.to_vec();
    while let Some(more) = tokio::time::timeout(Duration::from_secs(20), resp.chunk())
        .await
        .unwrap()
        .unwrap()
    {
        all.extend_from_slice(&more);
    }
    let pcm =
        aimake::audio::decode(&all, aimake::audio::Format::Mp3).expect("the stream is valid MP3");
    assert!(
        pcm.duration_ms() > 3_000,
        "all four chunks were streamed: {} ms",
        pcm.duration_ms()
    );
    assert_eq!(finished(&s, id).await["status"], "succeeded");
    // The job removes its chunks right after it commits; give it that moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let leftovers = app
            .state
            .storage
            .list(&aimake::storage::Key::from_stored("jobs/"))
            .await
            .unwrap();
        if leftovers.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chunks left behind: {leftovers:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn the_stream_of_a_finished_mp3_is_its_file_and_a_missing_audio_has_none() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let id = create_finished(&s, json!({"text": "Play me.", "voice": "openai:alloy"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let file = s.get(&format!("/api/audios/{id}/file")).await;
    assert_eq!(file.status(), 200);
    let file = file.bytes().await.unwrap();
    let stream = s.get(&format!("/api/audios/{id}/stream")).await;
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "audio/mpeg");
    assert_eq!(stream.headers()["cache-control"], "private, max-age=0");
    assert_eq!(stream.bytes().await.unwrap(), file);
    let other = app.signed_in("bob@example.com", Role::User).await;
    assert_eq!(
        other
            .get(&format!("/api/audios/{id}/stream"))
            .await
            .status(),
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn a_one_chunk_text_keeps_no_chunks_yet_runs_visibly_and_streams_whole() {
    let fake = FakeOpenAi::start().await;
    fake.set_delay(Duration::from_millis(400));
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let audio: Value = create(
        &s,
        json!({"text": "Just one sentence.", "voice": "openai:alloy"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = audio["id"].as_str().unwrap();
    let resp = s.get(&format!("/api/audios/{id}/stream")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/mpeg");
    while speech_texts(&fake).is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let running: Value = s.get_json(&format!("/api/audios/{id}")).await;
    assert_eq!(
        running["status"], "running",
        "claiming the job marks the audio running"
    );
    let scratch = app
        .state
        .storage
        .list(&aimake::storage::Key::from_stored("jobs/"))
        .await
        .unwrap();
    assert!(scratch.is_empty(), "nothing is kept: {scratch:?}");
    // The job ends before any chunk could be streamed: the finished file is the stream.
    let body = tokio::time::timeout(Duration::from_secs(20), resp.bytes())
        .await
        .unwrap()
        .unwrap();
    let pcm =
        aimake::audio::decode(&body, aimake::audio::Format::Mp3).expect("the stream is valid MP3");
    let done = finished(&s, id).await;
    assert_eq!(done["status"], "succeeded");
    let stored_ms = done["duration_ms"].as_u64().unwrap();
    assert!(
        pcm.duration_ms() + 100 >= stored_ms,
        "the stream carries the whole audio: {} of {stored_ms} ms",
        pcm.duration_ms()
    );
    assert_eq!(speech_texts(&fake).len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_voice_preview_is_synthesized_once_then_served_from_storage() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    for _ in 0..2 {
        let resp = s.post("/api/voices/openai:nova/preview", &json!({})).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "audio/mpeg");
        assert!(!resp.bytes().await.unwrap().is_empty());
    }
    assert_eq!(
        speech_texts(&fake).len(),
        1,
        "the second preview came from storage"
    );
    let local = s.post("/api/voices/local:en-us/preview", &json!({})).await;
    assert_eq!(local.status(), 200);
    assert_eq!(local.headers()["content-type"], "audio/wav");
    let unknown = s
        .post("/api/voices/openai:nobody/preview", &json!({}))
        .await;
    assert_eq!(error_code(unknown).await, "unknown_voice");
    app.stop().await;
}

#[tokio::test]
async fn control_characters_in_text_are_refused_naming_the_field_and_nothing_reaches_the_provider()
{
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    for (text, named) in [
        ("Hello\0 world, this is the rest.", "U+0000"),
        ("Ring the bell\x07 now.", "U+0007"),
        ("Escape \x1b[2J sequences.", "U+001B"),
        ("Delete\x7f this.", "U+007F"),
        ("Next\u{85}line.", "U+0085"),
        ("C1 \u{9b} control.", "U+009B"),
    ] {
        let resp = create(&s, json!({"text": text, "voice": "openai:nova"})).await;
        assert_eq!(resp.status(), 400, "{text:?}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], "invalid_request", "{err}");
        let detail = err["error"]["details"]["text"].as_str().unwrap_or_default();
        assert!(detail.contains(named), "{text:?}: {err}");
    }
    let list: Value = s.get("/api/audios").await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "nothing stored");
    assert!(speech_texts(&fake).is_empty(), "nothing sent");
    app.stop().await;
}

#[tokio::test]
async fn text_of_only_invisible_characters_is_refused_as_empty() {
    let app = TestApp::spawn().await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    for text in [
        "\u{200B}\u{200B}\u{200B}",
        " \u{200C}\u{200D}\u{2060}\u{FEFF} ",
        "\u{200E}\u{200F}\n\u{FE0F}",
        "\t\r\n \u{3000}",
    ] {
        let resp = create(&s, json!({"text": text, "voice": "local:en-us"})).await;
        assert_eq!(resp.status(), 400, "{text:?}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], "invalid_request", "{err}");
        let detail = err["error"]["details"]["text"].as_str().unwrap_or_default();
        assert!(detail.contains("must not be empty"), "{text:?}: {err}");
    }
    let list: Value = s.get("/api/audios").await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    app.stop().await;
}

#[tokio::test]
async fn emoji_and_right_to_left_text_is_spoken_and_billed_for_exactly_the_characters_sent() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let text = "Hello 👋 مرحبا שלום 👨\u{200D}👩\u{200D}👧";
    let done = create_finished(
        &s,
        json!({"text": format!("  {text}\r\n"), "voice": "openai:nova"}),
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(speech_texts(&fake), [text], "sent as written, trimmed");
    let sent: usize = speech_texts(&fake).iter().map(|t| t.chars().count()).sum();
    assert_eq!(done["chars"].as_u64(), Some(sent as u64));
    let usage: Value = s.get("/api/usage").await.json().await.unwrap();
    assert_eq!(usage[0]["units"].as_u64(), Some(sent as u64), "{usage}");
    app.stop().await;
}

#[tokio::test]
async fn decomposed_text_is_sent_and_billed_in_nfc() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let done = create_finished(&s, json!({"text": "Cafe\u{301}", "voice": "openai:nova"})).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(speech_texts(&fake), ["Caf\u{e9}"]);
    assert_eq!(done["chars"], 4);
    let usage: Value = s.get("/api/usage").await.json().await.unwrap();
    assert_eq!(usage[0]["units"], 4, "{usage}");
    app.stop().await;
}

#[tokio::test]
async fn blank_stretches_that_are_never_sent_are_not_billed() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    // A run of spaces twice the provider's 4096-character limit leaves a chunk of nothing but
    // spaces, which is skipped rather than sent.
    let text = format!("Start.{}End.", " ".repeat(9000));
    let done = create_finished(&s, json!({"text": text, "voice": "openai:nova"})).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let sent: usize = speech_texts(&fake).iter().map(|t| t.chars().count()).sum();
    assert!(sent < text.chars().count(), "a blank chunk was skipped");
    let usage: Value = s.get("/api/usage").await.json().await.unwrap();
    assert_eq!(usage[0]["units"].as_u64(), Some(sent as u64), "{usage}");
    app.stop().await;
}

#[tokio::test]
async fn library_search_finds_any_part_of_a_text_in_any_script_and_only_the_callers_audios() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| fake.configure(c)).await;
    let ada = app.signed_in("ada@example.com", Role::User).await;
    let bob = app.signed_in("bob@example.com", Role::User).await;
    let mut ids = Vec::new();
    for (s, text) in [
        (&ada, "今天天气很好，我们去公园散步。"),
        (&ada, "Ten tips for \"quiet\" mornings: tea OR coffee?"),
        (&bob, "今天天气很好，我们在家读书。"),
    ] {
        let audio: Value = create(s, json!({"text": text, "voice": "openai:alloy"}))
            .await
            .json()
            .await
            .unwrap();
        ids.push(audio["id"].as_str().unwrap().to_string());
    }
    assert_eq!(found(&ada, "公园散步").await, [ids[0].clone()]);
    assert_eq!(found(&ada, "天气很好").await, [ids[0].clone()]);
    assert_eq!(found(&bob, "天气很好").await, [ids[2].clone()]);
    assert_eq!(
        found(&ada, "公园").await,
        [ids[0].clone()],
        "two characters"
    );
    assert_eq!(found(&ada, "QUIET").await, [ids[1].clone()]);
    assert_eq!(found(&ada, "\"quiet\" mornings").await, [ids[1].clone()]);
    assert_eq!(found(&ada, "tea OR coffee").await, [ids[1].clone()]);
    assert!(found(&ada, "tea OR juice").await.is_empty());
    assert!(found(&ada, "读书").await.is_empty(), "bob's text");
    assert!(found(&ada, "在家读书").await.is_empty(), "bob's text");
    app.stop().await;
}

/// The ids of the caller's audios that a library search finds.
async fn found(s: &Session, q: &str) -> Vec<String> {
    let resp = s.get(&format!("/api/audios?q={}", urlencode(q))).await;
    assert_eq!(resp.status(), 200, "searching {q}");
    let page: Value = resp.json().await.unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

/// Percent-encodes a query value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
