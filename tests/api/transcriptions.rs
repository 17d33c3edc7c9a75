//! Transcription end to end through the real server against the fake recognisers (they hear
//! one word per half second of the audio they are sent): transcripts in the library and their
//! job, the OpenAI-compatible endpoints, and the official OpenAI SDK driving them.

use std::collections::HashMap;
use std::time::Duration;

use aimake::audio::testing::talk;
use aimake::audio::{Encoding, Pcm};
use aimake::auth::Role;
use aimake::config::Config;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fakes::{self, FakeElevenLabs, FakeOpenAi, WORD_EVERY_S};
use crate::helpers::{ServerProcess, Session, TestApp, error_code, sdk_transcriptions, sse_data};

fn mp3(pcm: &Pcm) -> Vec<u8> {
    aimake::audio::encode(pcm, Encoding::Mp3 { bitrate_kbps: 32 }).unwrap()
}

pub fn upload(bytes: Vec<u8>, name: &str, fields: &[(&str, &str)]) -> Form {
    let mut form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_string()));
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    form
}

/// A server whose OpenAI provider is the fake, with a signed-in user and an API token.
async fn app(customize: impl FnOnce(&mut Config)) -> (TestApp, FakeOpenAi, Session, String) {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fake.configure(c);
        customize(c);
    })
    .await;
    let (s, token) = app.user_with_key("ada@example.com").await;
    (app, fake, s, token)
}

pub async fn v1(app: &TestApp, token: &str, path: &str, form: Form) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

pub async fn create(s: &Session, form: Form) -> reqwest::Response {
    s.request(reqwest::Method::POST, "/api/transcriptions")
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Waits until the transcript reaches a final state and returns it.
pub async fn finished(s: &Session, id: &str, wait: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let t: Value = s.get_json(&format!("/api/transcriptions/{id}")).await;
        if matches!(t["status"].as_str(), Some("succeeded" | "failed")) {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "transcript {id} never finished: {t}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Words and segments never go back, and end within the recording.
pub fn assert_monotonic(t: &Value) {
    let duration = t["duration"].as_f64().unwrap();
    for list in ["words", "segments"] {
        let items = t[list].as_array().unwrap();
        for pair in items.windows(2) {
            assert!(
                pair[0]["start"].as_f64() <= pair[1]["start"].as_f64(),
                "{list} go back: {} then {}",
                pair[0],
                pair[1]
            );
        }
        for item in items {
            let (start, end) = (
                item["start"].as_f64().unwrap(),
                item["end"].as_f64().unwrap(),
            );
            assert!(
                start <= end && end <= duration + 1e-6,
                "{item} in {duration}"
            );
        }
    }
}

/// The words the fakes hear in each piece they were sent, in the order of the pieces.
fn words_heard(fake: &FakeOpenAi) -> usize {
    fake.uploads()
        .iter()
        .map(|u| {
            let (_, _, bytes) = u.file.as_ref().unwrap();
            let seconds = fakes::audio_seconds(bytes).unwrap();
            (seconds / WORD_EVERY_S).floor() as usize
        })
        .sum()
}

/// The field an error is about: `details` names it in the app's shape, `param` in OpenAI's
/// (the envelope `/v1` answers in).
fn error_field(body: &Value) -> Option<String> {
    let e = &body["error"];
    e["param"].as_str().map(str::to_string).or_else(|| {
        e["details"]
            .as_object()
            .and_then(|d| d.keys().next().cloned())
    })
}

/// Everything an error says, in either shape.
fn error_text(body: &Value) -> String {
    body["error"].to_string()
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    app.state
        .db
        .read(move |c| Ok(c.query_row(sql, [], |r| r.get(0))?))
        .await
        .unwrap()
}

#[tokio::test]
async fn an_uploaded_recording_is_transcribed_into_the_library_and_downloads_in_every_format() {
    let (app, fake, s, _) = app(|_| {}).await;
    let wav = fakes::wav(6000, 16_000);
    let resp = create(
        &s,
        upload(wav.clone(), "Team call.wav", &[("language", "en")]),
    )
    .await;
    assert_eq!(resp.status(), 202);
    let queued: Value = resp.json().await.unwrap();
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["title"], "Team call");
    assert_eq!(queued["source"], "upload");
    assert_eq!(queued["provider"], "openai");
    assert_eq!(queued["model"], "whisper-1");
    let id = queued["id"].as_str().unwrap().to_string();

    let t = finished(&s, &id, Duration::from_secs(30)).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["language"], "en");
    assert_eq!(t["duration_ms"], 6000);
    let transcript = &t["transcript"];
    let words: Vec<&str> = transcript["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["word"].as_str().unwrap())
        .collect();
    assert_eq!(words.len(), 12, "{transcript}");
    assert_eq!(words[..3], ["alpha", "bravo", "charlie"]);
    assert!(
        transcript["text"]
            .as_str()
            .unwrap()
            .starts_with("alpha bravo charlie")
    );
    assert_monotonic(transcript);
    // The provider got the language asked for, and a piece of the recording it reads.
    let sent = &fake.uploads()[0];
    assert_eq!(sent.field("language"), Some("en"));
    assert_eq!(sent.file.as_ref().unwrap().0, "audio.flac");

    // Downloads: by extension and by ?format=.
    let json_file = s.get(&format!("/api/transcriptions/{id}.json")).await;
    assert_eq!(json_file.status(), 200);
    assert_eq!(json_file.headers()["content-type"], "application/json");
    let downloaded: Value = json_file.json().await.unwrap();
    assert_eq!(&downloaded, transcript);
    let srt = s.get(&format!("/api/transcriptions/{id}.srt")).await;
    assert!(
        srt.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("Team call.srt")
    );
    let srt = srt.text().await.unwrap();
    assert!(
        srt.starts_with("1\n00:00:00,000 --> 00:00:04,900\nalpha bravo"),
        "{srt}"
    );
    let vtt = s
        .get(&format!("/api/transcriptions/{id}?format=vtt"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        vtt.starts_with("WEBVTT\n\n1\n00:00:00.000 --> 00:00:04.900\nalpha bravo"),
        "{vtt}"
    );
    let txt = s.get(&format!("/api/transcriptions/{id}.txt")).await;
    assert_eq!(txt.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        txt.text().await.unwrap(),
        format!("{}\n", transcript["text"].as_str().unwrap())
    );
    let bad = s.get(&format!("/api/transcriptions/{id}.pdf")).await;
    assert_eq!(bad.status(), 400);

    // The recording plays back as it was sent.
    let recording = s.get(&format!("/api/transcriptions/{id}/recording")).await;
    assert_eq!(recording.headers()["content-type"], "audio/wav");
    assert_eq!(recording.bytes().await.unwrap(), wav);

    // Listed, found by a word of it, billed by the second.
    let list: Value = s.get("/api/transcriptions").await.json().await.unwrap();
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert!(list["items"][0].get("transcript").is_none());
    let found: Value = s.get_json("/api/transcriptions?q=charlie").await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let none: Value = s.get_json("/api/transcriptions?q=zulu").await;
    assert!(none["items"].as_array().unwrap().is_empty());
    let (service, units, _) = app.asr_usage().await;
    assert_eq!((service.as_str(), units), ("asr:openai:whisper-1", 6));

    // Deleting it removes the recording; another user never sees it.
    let other = app.signed_in("bob@example.com", Role::User).await;
    assert_eq!(
        other
            .get(&format!("/api/transcriptions/{id}"))
            .await
            .status(),
        404
    );
    assert_eq!(
        s.delete(&format!("/api/transcriptions/{id}"))
            .await
            .status(),
        204
    );
    assert_eq!(
        s.get(&format!("/api/transcriptions/{id}")).await.status(),
        404
    );
    let left = app
        .state
        .storage
        .list(&aimake::storage::Key::from_stored(
            "recordings/".to_string(),
        ))
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    app.stop().await;
}

#[tokio::test]
async fn an_uploaded_recording_answers_byte_ranges_as_players_seek() {
    let (app, _fake, s, _) = app(|_| {}).await;
    let wav = fakes::wav(4000, 16_000);
    let size = wav.len();
    let queued: Value = create(&s, upload(wav.clone(), "Seek me.wav", &[]))
        .await
        .json()
        .await
        .unwrap();
    let url = format!(
        "/api/transcriptions/{}/recording",
        queued["id"].as_str().unwrap()
    );
    let ranged = |range: String| {
        s.request(reqwest::Method::GET, &url)
            .header("range", range)
            .send()
    };

    let whole = s.get(&url).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.headers()["content-length"], size.to_string().as_str());
    assert!(whole.headers().contains_key("last-modified"));
    let etag = whole.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(whole.bytes().await.unwrap(), wav);

    for (range, span) in [
        ("bytes=0-99".to_string(), 0..100),
        ("bytes=1000-1999".to_string(), 1000..2000),
        ("bytes=-500".to_string(), size - 500..size),
        (format!("bytes={}-", size - 10), size - 10..size),
    ] {
        let part = ranged(range.clone()).await.unwrap();
        assert_eq!(part.status(), 206, "{range}");
        assert_eq!(part.headers()["content-type"], "audio/wav");
        assert_eq!(
            part.headers()["content-range"],
            format!("bytes {}-{}/{size}", span.start, span.end - 1).as_str(),
            "{range}"
        );
        assert_eq!(
            part.headers()["content-length"],
            span.len().to_string().as_str()
        );
        assert_eq!(part.bytes().await.unwrap(), wav[span], "{range}");
    }

    let beyond = ranged(format!("bytes={}-", size + 10)).await.unwrap();
    assert_eq!(beyond.status(), 416);
    assert_eq!(
        beyond.headers()["content-range"],
        format!("bytes */{size}").as_str()
    );

    // A client whose copy is current hears so; one whose copy is another gets it all.
    let cached = s
        .request(reqwest::Method::GET, &url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    let stale = s
        .request(reqwest::Method::GET, &url)
        .header("range", "bytes=0-9")
        .header("if-range", "\"another\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.bytes().await.unwrap().len(), size);

    // Someone else's recording is not found, ranges or not.
    let other = app.signed_in("bob@example.com", Role::User).await;
    let theirs = other
        .request(reqwest::Method::GET, &url)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn library_search_finds_an_audio_by_a_word_of_its_transcript() {
    let (app, _fake, s, _) = app(|_| {}).await;
    let audio = s
        .create_finished(&json!({
            "text": "A text long enough to last a few seconds when spoken.",
            "voice": "openai:alloy",
            "title": "Spoken note",
        }))
        .await;
    assert_eq!(audio["status"], "succeeded", "{audio}");
    let audio_id = audio["id"].as_str().unwrap();
    let resp = s
        .post("/api/transcriptions", &json!({"audio_id": audio_id}))
        .await;
    assert_eq!(resp.status(), 202);
    let queued: Value = resp.json().await.unwrap();
    assert_eq!(queued["source"], "audio");
    assert_eq!(queued["title"], "Spoken note");
    assert_eq!(
        queued["recording_url"],
        format!("/api/audios/{audio_id}/file")
    );
    let t = finished(&s, queued["id"].as_str().unwrap(), Duration::from_secs(30)).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert!(
        t["transcript"]["text"]
            .as_str()
            .unwrap()
            .contains("charlie"),
        "{t}"
    );

    // Neither the title nor the text holds these words; the transcript does.
    for q in ["charlie", "bravo charlie", "cha"] {
        let found: Value = s
            .get_json(&format!("/api/audios?q={}", q.replace(' ', "%20")))
            .await;
        let ids: Vec<&str> = found["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [audio_id], "searching {q}");
    }
    let found: Value = s.get("/api/audios?q=zulu").await.json().await.unwrap();
    assert!(found["items"].as_array().unwrap().is_empty());
    // Deleting the audio deletes its transcript.
    assert_eq!(
        s.delete(&format!("/api/audios/{audio_id}")).await.status(),
        204
    );
    assert_eq!(count(&app, "SELECT count(*) FROM transcripts").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_library_audio_leads_to_its_transcripts_and_carries_its_newest_one() {
    let (app, _fake, s, _) = app(|_| {}).await;
    let spoken = |title: &str| {
        json!({
            "text": "A text long enough to last a few seconds when spoken.",
            "voice": "openai:alloy",
            "title": title,
        })
    };
    let audio = s.create_finished(&spoken("Spoken note")).await;
    let other = s.create_finished(&spoken("Other note")).await;
    let (audio_id, other_id) = (audio["id"].as_str().unwrap(), other["id"].as_str().unwrap());
    assert_eq!(audio["transcript"], Value::Null);
    let transcripts_of = |query: String| {
        let s = &s;
        async move {
            let resp = s.get(&format!("/api/transcriptions?{query}")).await;
            assert_eq!(resp.status(), 200, "{query}");
            let page: Value = resp.json().await.unwrap();
            let ids: Vec<String> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string())
                .collect();
            (ids, page["next_cursor"].clone())
        }
    };
    let library_transcript = |id: String| {
        let s = &s;
        async move {
            let page: Value = s.get("/api/audios").await.json().await.unwrap();
            let item = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["id"] == id.as_str())
                .cloned()
                .unwrap();
            item["transcript"].clone()
        }
    };
    assert!(
        transcripts_of(format!("audio_id={audio_id}"))
            .await
            .0
            .is_empty()
    );

    let transcribe = || async {
        let resp = s
            .post("/api/transcriptions", &json!({"audio_id": audio_id}))
            .await;
        assert_eq!(resp.status(), 202);
        let queued: Value = resp.json().await.unwrap();
        queued["id"].as_str().unwrap().to_string()
    };
    let first = transcribe().await;
    assert_eq!(
        finished(&s, &first, Duration::from_secs(30)).await["status"],
        "succeeded"
    );
    // An upload is nobody's audio's transcript.
    let upload_id = create(&s, upload(fakes::wav(2000, 16_000), "memo.wav", &[]))
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let second = transcribe().await;
    let linked: Value = s.get_json(&format!("/api/audios/{audio_id}")).await;
    assert_eq!(linked["transcript"]["id"], second.as_str(), "{linked}");
    assert_eq!(
        finished(&s, &second, Duration::from_secs(30)).await["status"],
        "succeeded"
    );
    assert_eq!(
        library_transcript(audio_id.to_string()).await,
        json!({"id": second, "status": "succeeded"})
    );
    assert_eq!(library_transcript(other_id.to_string()).await, Value::Null);

    // The audio's transcripts, newest first, a page at a time, searchable.
    let (ids, _) = transcripts_of(format!("audio_id={audio_id}")).await;
    assert_eq!(ids, [second.clone(), first.clone()]);
    assert!(!ids.contains(&upload_id));
    let (page, cursor) = transcripts_of(format!("audio_id={audio_id}&limit=1")).await;
    assert_eq!(page, [second.as_str()]);
    let cursor = cursor.as_str().unwrap();
    let (rest, _) = transcripts_of(format!("audio_id={audio_id}&limit=1&cursor={cursor}")).await;
    assert_eq!(rest, [first.as_str()]);
    let (found, _) = transcripts_of(format!("audio_id={audio_id}&q=charlie")).await;
    assert_eq!(found.len(), 2);
    assert!(
        transcripts_of(format!("audio_id={audio_id}&q=zulu"))
            .await
            .0
            .is_empty()
    );
    assert!(
        transcripts_of(format!("audio_id={other_id}"))
            .await
            .0
            .is_empty()
    );
    // An empty filter is no filter.
    assert_eq!(transcripts_of("audio_id=".into()).await.0.len(), 3);

    // Someone else's audio, or one that does not exist, has none of the caller's; an id
    // that is no id is refused naming the filter.
    let bob = app.signed_in("bob@example.com", Role::User).await;
    let theirs: Value = bob
        .get_json(&format!("/api/transcriptions?audio_id={audio_id}"))
        .await;
    assert_eq!(theirs["items"], json!([]));
    let unknown = ulid::Ulid::generate().to_string();
    assert!(
        transcripts_of(format!("audio_id={unknown}"))
            .await
            .0
            .is_empty()
    );
    let bad = s.get("/api/transcriptions?audio_id=nope").await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    assert_eq!(body["error"]["details"]["audio_id"], "nope");

    // Deleting the newest leaves the audio with the one before it.
    assert_eq!(
        s.delete(&format!("/api/transcriptions/{second}"))
            .await
            .status(),
        204
    );
    assert_eq!(
        library_transcript(audio_id.to_string()).await,
        json!({"id": first, "status": "succeeded"})
    );
    app.stop().await;
}

#[tokio::test]
async fn openai_clients_get_every_response_format_and_both_granularity_forms() {
    let (app, fake, _s, token) = app(|_| {}).await;
    let wav = fakes::wav(3000, 16_000);
    let path = "/v1/audio/transcriptions";

    let json_answer: Value = v1(
        &app,
        &token,
        path,
        upload(wav.clone(), "a.wav", &[("model", "whisper-1")]),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        json_answer["text"],
        "alpha bravo charlie delta echo foxtrot."
    );
    assert_eq!(
        json_answer["usage"],
        json!({"type": "duration", "seconds": 3})
    );

    let text = v1(
        &app,
        &token,
        path,
        upload(
            wav.clone(),
            "a.wav",
            &[("model", "whisper-1"), ("response_format", "text")],
        ),
    )
    .await;
    assert!(
        text.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(
        text.text().await.unwrap(),
        "alpha bravo charlie delta echo foxtrot.\n"
    );

    let srt = v1(
        &app,
        &token,
        path,
        upload(
            wav.clone(),
            "a.wav",
            &[("model", "whisper-1"), ("response_format", "srt")],
        ),
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(
        srt,
        "1\n00:00:00,000 --> 00:00:02,900\nalpha bravo charlie delta echo foxtrot.\n\n"
    );
    let vtt = v1(
        &app,
        &token,
        path,
        upload(
            wav.clone(),
            "a.wav",
            &[("model", "whisper-1"), ("response_format", "vtt")],
        ),
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(
        vtt,
        "WEBVTT\n\n1\n00:00:00.000 --> 00:00:02.900\nalpha bravo charlie delta echo foxtrot.\n"
    );

    // `timestamp_granularities[]` as OpenAI's SDKs send it, and the field repeated bare.
    for fields in [
        vec![("timestamp_granularities[]", "word")],
        vec![
            ("timestamp_granularities", "word"),
            ("timestamp_granularities", "segment"),
        ],
    ] {
        let mut all = vec![("model", "whisper-1"), ("response_format", "verbose_json")];
        all.extend(fields.iter().copied());
        let verbose: Value = v1(&app, &token, path, upload(wav.clone(), "a.wav", &all))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(verbose["task"], "transcribe");
        assert_eq!(verbose["language"], "english");
        assert_eq!(verbose["duration"], 3.0);
        let words = verbose["words"].as_array().unwrap();
        assert_eq!(words.len(), 6, "{verbose}");
        assert_eq!(
            (&words[1]["word"], &words[1]["start"]),
            (&json!("bravo"), &json!(0.5))
        );
        assert!((words[1]["end"].as_f64().unwrap() - 0.9).abs() < 1e-9);
        let with_segments = fields.iter().any(|(_, v)| *v == "segment");
        assert_eq!(
            verbose.get("segments").is_some(),
            with_segments,
            "{verbose}"
        );
    }
    let plain: Value = v1(
        &app,
        &token,
        path,
        upload(
            wav.clone(),
            "a.wav",
            &[("model", "whisper-1"), ("response_format", "verbose_json")],
        ),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(plain.get("words").is_none(), "words only when asked for");
    assert_eq!(
        plain["segments"][0]["text"],
        " alpha bravo charlie delta echo foxtrot."
    );

    // Every call reached the provider once, with the model asked for.
    assert_eq!(fake.uploads().len(), 7);
    assert!(
        fake.uploads()
            .iter()
            .all(|u| u.field("model") == Some("whisper-1"))
    );
    let usage = count(
        &app,
        "SELECT count(*) FROM usage_logs WHERE service = 'asr:openai:whisper-1'",
    )
    .await;
    assert_eq!(usage, 7);
    app.stop().await;
}

#[tokio::test]
async fn translations_go_to_the_translation_endpoint_and_answer_in_english() {
    let (app, fake, _s, token) = app(|_| {}).await;
    let wav = fakes::wav(2000, 16_000);
    let resp = v1(
        &app,
        &token,
        "/v1/audio/translations",
        upload(
            wav.clone(),
            "talk.wav",
            &[("model", "whisper-1"), ("response_format", "verbose_json")],
        ),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["task"], "translate");
    assert_eq!(answer["language"], "english");
    assert_eq!(answer["text"], "alpha bravo charlie delta.");
    assert_eq!(fake.requests()[0].path(), "/v1/audio/translations");
    // A model that cannot translate is refused before anything is sent.
    let resp = v1(
        &app,
        &token,
        "/v1/audio/translations",
        upload(wav, "talk.wav", &[("model", "gpt-4o-mini-transcribe")]),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body.to_string().contains("cannot translate"), "{body}");
    assert_eq!(fake.requests().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_streamed_transcription_sends_text_deltas_then_the_whole_text() {
    let (app, _fake, _s, token) = app(|c| {
        // Pieces of about 30 s, so the recording is heard in several.
        c.providers.openai.asr_max_upload_bytes = 960_000;
    })
    .await;
    let recording = mp3(&talk(100));
    let whole: Value = v1(
        &app,
        &token,
        "/v1/audio/transcriptions",
        upload(recording.clone(), "talk.mp3", &[("model", "whisper-1")]),
    )
    .await
    .json()
    .await
    .unwrap();
    let resp = v1(
        &app,
        &token,
        "/v1/audio/transcriptions",
        upload(
            recording,
            "talk.mp3",
            &[("model", "whisper-1"), ("stream", "true")],
        ),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (deltas, text) = streamed(&resp.text().await.unwrap());
    assert!(deltas.len() >= 3, "one delta per piece: {deltas:?}");
    assert_eq!(text, whole["text"].as_str().unwrap());
    app.stop().await;
}

/// A streamed transcription's `transcript.text.delta` texts and the text of the
/// `transcript.text.done` event that ends it, which is the deltas joined.
fn streamed(body: &str) -> (Vec<String>, String) {
    let events = sse_data(body);
    let (done, deltas) = events.split_last().unwrap();
    let deltas: Vec<String> = deltas
        .iter()
        .map(|e| {
            assert_eq!(e["type"], "transcript.text.delta", "{e}");
            e["delta"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(done["type"], "transcript.text.done", "{done}");
    let text = done["text"].as_str().unwrap().to_string();
    assert_eq!(text, deltas.concat());
    (deltas, text)
}

#[tokio::test]
async fn a_streamed_transcription_hears_a_short_first_piece_so_its_first_text_comes_soon() {
    let (app, fake, _s, token) = app(|_| {}).await;
    let recording = mp3(&talk(180));
    let form = |stream: &str| {
        upload(
            recording.clone(),
            "talk.mp3",
            &[("model", "whisper-1"), ("stream", stream)],
        )
    };
    // Three minutes are one piece for OpenAI when the answer waits for the whole text.
    let resp = v1(&app, &token, "/v1/audio/transcriptions", form("false")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(fake.uploads().len(), 1);

    // Streamed, the first piece is at most half a minute, cut in a pause, and the rest is
    // heard in one more.
    let body = v1(&app, &token, "/v1/audio/transcriptions", form("true"))
        .await
        .text()
        .await
        .unwrap();
    let pieces: Vec<f64> = fake.uploads()[1..]
        .iter()
        .map(|u| fakes::audio_seconds(&u.file.as_ref().unwrap().2).unwrap())
        .collect();
    assert_eq!(pieces.len(), 2, "{pieces:?}");
    assert!((20.0..=30.0).contains(&pieces[0]), "{pieces:?}");
    assert!(
        (pieces.iter().sum::<f64>() - 180.0).abs() < 1.0,
        "{pieces:?}"
    );
    let (deltas, _) = streamed(&body);
    assert_eq!(deltas.len(), 2, "one delta per piece: {deltas:?}");
    // The first text is the first piece's alone.
    assert_eq!(
        deltas[0].split_whitespace().count(),
        (pieces[0] / WORD_EVERY_S).floor() as usize,
        "{}",
        deltas[0]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_forty_minute_recording_is_split_heard_in_parallel_and_stitched_in_order() {
    let (app, fake, s, token) = app(|_| {}).await;
    // Each piece takes a while, so pieces overlap when they run in parallel.
    fake.set_delay(Duration::from_secs(1));
    let recording = mp3(&talk(40 * 60));
    let resp = create(&s, upload(recording.clone(), "lecture.mp3", &[])).await;
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let t = finished(&s, &id, Duration::from_secs(300)).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let transcript = &t["transcript"];

    let pieces = fake.uploads();
    assert!(pieces.len() >= 4, "{} pieces", pieces.len());
    let max = fake.max_in_flight();
    assert!(
        max > 1 && max <= 4,
        "pieces heard {max} at a time; the provider takes 4"
    );
    let mut total = 0.0;
    for piece in &pieces {
        let seconds = fakes::audio_seconds(&piece.file.as_ref().unwrap().2).unwrap();
        assert!(seconds <= 600.0, "a piece of {seconds} s");
        total += seconds;
    }
    assert!((total - 2400.0).abs() < 1.0, "the pieces cover {total} s");
    let duration = transcript["duration"].as_f64().unwrap();
    assert!((duration - 2400.0).abs() < 1.0, "{duration}");
    assert_monotonic(transcript);
    let words = transcript["words"].as_array().unwrap();
    assert_eq!(words.len(), words_heard(&fake));
    let last = words.last().unwrap()["end"].as_f64().unwrap();
    assert!(last > 2390.0, "the words reach the end: {last}");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM usage_logs WHERE service LIKE 'asr:%'"
        )
        .await,
        pieces.len() as i64
    );

    // The same recording within one OpenAI-compatible request.
    let before = fake.uploads().len();
    let resp = v1(
        &app,
        &token,
        "/v1/audio/transcriptions",
        upload(
            recording,
            "lecture.mp3",
            &[
                ("model", "whisper-1"),
                ("response_format", "verbose_json"),
                ("timestamp_granularities[]", "word"),
                ("timestamp_granularities[]", "segment"),
            ],
        ),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let verbose: Value = resp.json().await.unwrap();
    assert!((verbose["duration"].as_f64().unwrap() - 2400.0).abs() < 1.0);
    assert_monotonic(&verbose);
    assert_eq!(fake.uploads().len() - before, pieces.len());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcription_cut_by_kill_9_resumes_without_paying_twice_for_a_piece() {
    let fake = FakeOpenAi::start().await;
    // One piece at a time, each taking a second: the kill lands while one is being heard.
    fake.set_delay(Duration::from_secs(1));
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AIMAKE_PROVIDERS__OPENAI__BASE_URL", fake.base_url()),
        (
            "AIMAKE_PROVIDERS__OPENAI__API_KEY",
            fake.api_key().to_string(),
        ),
        ("AIMAKE_PROVIDERS__OPENAI__ASR_MAX_CONCURRENCY", "1".into()),
        // Pieces of about 30 s.
        (
            "AIMAKE_PROVIDERS__OPENAI__ASR_MAX_UPLOAD_BYTES",
            "960000".into(),
        ),
    ];
    ServerProcess::add_user(dir.path(), "ada@example.com");
    let mut server = ServerProcess::start(dir.path(), &env);
    let s = server.session("ada@example.com").await;
    let resp = s
        .request(reqwest::Method::POST, "/api/transcriptions")
        .multipart(upload(mp3(&talk(180)), "talk.mp3", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Two pieces heard and recorded, the third on its way: the server dies.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while fake.requests().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill9();

    let server = ServerProcess::start(dir.path(), &env);
    let s = server.session("ada@example.com").await;
    // The dead worker's lease runs out (a minute at most) and the job is claimed again.
    let t = finished(&s, &id, Duration::from_secs(240)).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_monotonic(&t["transcript"]);
    assert!((t["transcript"]["duration"].as_f64().unwrap() - 180.0).abs() < 1.0);

    let db = rusqlite::Connection::open(dir.path().join("aimake.db")).unwrap();
    let pieces: i64 = db
        .query_row(
            "SELECT count(*) FROM transcript_pieces WHERE status = 'done'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(pieces >= 5, "{pieces} pieces");
    // Every piece was sent once, but the one the kill cut off before it was answered.
    let requests = fake.requests().len() as i64;
    assert_eq!(
        requests,
        pieces + 1,
        "{requests} requests for {pieces} pieces"
    );
    let mut sent: HashMap<Vec<u8>, usize> = HashMap::new();
    for u in fake.uploads() {
        *sent.entry(u.file.unwrap().2.to_vec()).or_default() += 1;
    }
    assert_eq!(sent.len() as i64, pieces);
    assert_eq!(sent.values().filter(|&&n| n == 2).count(), 1);
    // Billed once per piece.
    let billed: i64 = db
        .query_row(
            "SELECT count(*) FROM usage_logs WHERE service LIKE 'asr:%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(billed, pieces);
    let words = t["transcript"]["words"].as_array().unwrap().len();
    assert_eq!(words, words_heard_once(&fake));
}

/// The words heard in each distinct piece (a piece sent twice counted once).
fn words_heard_once(fake: &FakeOpenAi) -> usize {
    let mut seen = std::collections::HashSet::new();
    fake.uploads()
        .iter()
        .filter_map(|u| {
            let bytes = &u.file.as_ref().unwrap().2;
            seen.insert(bytes.to_vec())
                .then(|| (fakes::audio_seconds(bytes).unwrap() / WORD_EVERY_S).floor() as usize)
        })
        .sum()
}

/// Sends only the head of a request declaring `length` bytes of body and reads the answer.
async fn declare_upload(app: &TestApp, token: &str, path: &str, length: u64) -> String {
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {length}\r\n\r\n",
        app.addr
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut answer))
        .await
        .expect("answered without the body")
        .unwrap();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

#[tokio::test]
async fn bad_uploads_get_clear_errors_store_nothing_and_the_server_keeps_serving() {
    let (app, fake, s, token) = app(|c| c.transcription.max_upload_bytes = 1024 * 1024).await;
    let path = "/v1/audio/transcriptions";
    let wav = fakes::wav(1000, 16_000);

    // No file.
    for resp in [
        v1(&app, &token, path, Form::new().text("model", "whisper-1")).await,
        create(&s, Form::new().text("language", "en")).await,
    ] {
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(error_field(&body).as_deref(), Some("file"), "{body}");
        assert!(error_text(&body).contains("'file'"), "{body}");
    }
    // No model.
    let resp = v1(&app, &token, path, upload(wav.clone(), "a.wav", &[])).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_field(&body).as_deref(), Some("model"), "{body}");

    // Thirty megabytes: refused from the declared length, before the body is read.
    let answer = declare_upload(&app, &token, path, 30 * 1024 * 1024).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let mut big = wav.clone();
    big.resize(1024 * 1024 + 10, 0);
    let resp = create(&s, upload(big, "big.wav", &[])).await;
    assert_eq!(resp.status(), 413);
    assert_eq!(error_code(resp).await, "payload_too_large");

    // Not audio, and audio that is corrupt: 400 naming the formats read.
    let mut corrupt = b"fLaC".to_vec();
    corrupt.extend(std::iter::repeat_n(0x5A, 4000));
    for bytes in [b"just some notes, not a recording".to_vec(), corrupt] {
        for resp in [
            v1(
                &app,
                &token,
                path,
                upload(bytes.clone(), "a.mp3", &[("model", "whisper-1")]),
            )
            .await,
            create(&s, upload(bytes.clone(), "a.mp3", &[])).await,
        ] {
            assert_eq!(resp.status(), 400);
            let body: Value = resp.json().await.unwrap();
            assert_eq!(error_field(&body).as_deref(), Some("file"), "{body}");
            assert!(
                error_text(&body).contains("flac, m4a, mp3, mp4, mpeg, mpga, ogg, wav, webm"),
                "{body}"
            );
        }
    }

    // A wrong key.
    let resp = v1(
        &app,
        "amk_not_a_real_key",
        path,
        upload(wav.clone(), "a.wav", &[("model", "whisper-1")]),
    )
    .await;
    assert_eq!(resp.status(), 401);

    // An exhausted quota.
    let admin = app.signed_in("admin@example.com", Role::Admin).await;
    let resp = admin
        .patch(
            &format!("/api/admin/users/{}", s.id),
            &json!({"quota_chars_per_month": 0}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    for resp in [
        v1(
            &app,
            &token,
            path,
            upload(wav.clone(), "a.wav", &[("model", "whisper-1")]),
        )
        .await,
        create(&s, upload(wav.clone(), "a.wav", &[])).await,
    ] {
        assert_eq!(resp.status(), 429);
        assert!(resp.headers().contains_key("retry-after"));
        let body: Value = resp.json().await.unwrap();
        // The app's code, or OpenAI's for the same refusal on `/v1`.
        let code = body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            ["quota_exceeded", "insufficient_quota"].contains(&code.as_str()),
            "{body}"
        );
    }

    // Nothing was stored, nothing sent, nothing billed.
    assert_eq!(count(&app, "SELECT count(*) FROM transcripts").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM jobs").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM usage_logs").await, 0);
    let stored = app
        .state
        .storage
        .list(&aimake::storage::Key::from_stored(
            "recordings/".to_string(),
        ))
        .await
        .unwrap();
    assert!(stored.is_empty(), "{stored:?}");
    assert!(fake.requests().is_empty());

    // The server keeps serving: with the allowance back, the same upload works.
    admin
        .patch(
            &format!("/api/admin/users/{}", s.id),
            &json!({"quota_chars_per_month": null}),
        )
        .await;
    let resp = v1(
        &app,
        &token,
        path,
        upload(wav, "a.wav", &[("model", "whisper-1")]),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["text"], "alpha bravo.");
    app.stop().await;
}

#[tokio::test]
async fn openai_s_model_names_reach_another_provider_when_openai_has_no_key() {
    let eleven = FakeElevenLabs::start().await;
    let app = TestApp::spawn_with(|c| eleven.configure(c)).await;
    let (_, token) = app.user_with_key("ada@example.com").await;
    let path = "/v1/audio/transcriptions";
    let resp = v1(
        &app,
        &token,
        path,
        upload(fakes::wav(2000, 16_000), "a.wav", &[("model", "whisper-1")]),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["text"],
        "alpha bravo charlie delta."
    );
    assert_eq!(eleven.uploads()[0].field("model_id"), Some("scribe_v1"));
    // `provider:model` names a provider's own model.
    let resp = v1(
        &app,
        &token,
        path,
        upload(
            fakes::wav(1000, 16_000),
            "a.wav",
            &[("model", "elevenlabs:scribe_v2")],
        ),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(eleven.uploads()[1].field("model_id"), Some("scribe_v2"));
    // A provider that is switched off says what would switch it on; a name nobody knows is
    // the client's mistake.
    let resp = v1(
        &app,
        &token,
        path,
        upload(
            fakes::wav(1000, 16_000),
            "a.wav",
            &[("model", "openai:whisper-1")],
        ),
    )
    .await;
    assert_eq!(resp.status(), 503);
    assert!(error_text(&resp.json().await.unwrap()).contains("api_key"));
    let resp = v1(
        &app,
        &token,
        path,
        upload(
            fakes::wav(1000, 16_000),
            "a.wav",
            &[("model", "no-such-model")],
        ),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        error_field(&resp.json().await.unwrap()).as_deref(),
        Some("model")
    );
    assert_eq!(eleven.uploads().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn the_official_openai_sdk_transcribes_and_translates() {
    let (app, _fake, _s, token) = app(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("talk.wav");
    std::fs::write(&recording, fakes::wav(3000, 16_000)).unwrap();
    let got = sdk_transcriptions(app.addr, &token, &recording).await;
    let text = "alpha bravo charlie delta echo foxtrot.";
    assert_eq!(got["json"], text);
    assert_eq!(got["verbose_json"]["language"], "english");
    assert_eq!(got["verbose_json"]["duration"], 3.0);
    assert_eq!(got["verbose_json"]["words"].as_array().unwrap().len(), 6);
    let charlie = &got["verbose_json"]["words"][2];
    assert_eq!((&charlie[0], &charlie[1]), (&json!("charlie"), &json!(1.0)));
    assert!((charlie[2].as_f64().unwrap() - 1.4).abs() < 1e-9);
    assert_eq!(
        got["srt"],
        format!("1\n00:00:00,000 --> 00:00:02,900\n{text}\n\n")
    );
    assert!(
        got["vtt"]
            .as_str()
            .unwrap()
            .starts_with("WEBVTT\n\n1\n00:00:00.000")
    );
    assert_eq!(got["translation"], text);
    app.stop().await;
}

#[tokio::test]
async fn a_recording_heard_longer_than_the_request_timeout_is_answered_within_the_transcription_timeout()
 {
    let (server, fake, _s, token) = app(|c| {
        c.server.request_timeout_s = 1;
        c.server.transcription_timeout_s = 30;
    })
    .await;
    // The recogniser takes longer than any other request may.
    fake.set_delay(Duration::from_millis(1_500));
    let recording = mp3(&talk(5));
    let resp = v1(
        &server,
        &token,
        "/v1/audio/transcriptions",
        upload(recording.clone(), "talk.mp3", &[("model", "whisper-1")]),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let heard: Value = resp.json().await.unwrap();
    assert!(!heard["text"].as_str().unwrap().is_empty(), "{heard}");
    let resp = v1(
        &server,
        &token,
        "/v1/audio/translations",
        upload(recording.clone(), "talk.mp3", &[("model", "whisper-1")]),
    )
    .await;
    assert_eq!(resp.status(), 200);
    server.stop().await;

    // Past the transcription timeout the client hears why, in OpenAI's envelope.
    let (server, fake, _s, token) = app(|c| {
        c.server.request_timeout_s = 1;
        c.server.transcription_timeout_s = 1;
    })
    .await;
    fake.set_delay(Duration::from_millis(3_000));
    let resp = v1(
        &server,
        &token,
        "/v1/audio/transcriptions",
        upload(recording, "talk.mp3", &[("model", "whisper-1")]),
    )
    .await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "timeout", "{body}");
    // Other requests keep the request timeout, and the server keeps serving.
    let models = server.get_with_key("/v1/models", &token).await;
    assert_eq!(models.status(), 200);
    server.stop().await;
}
