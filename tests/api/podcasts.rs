//! Podcasts through the API: scripts (LLM and pasted), multi-voice episodes rendered and
//! mastered, subtitles, re-renders that reuse unchanged lines, feeds, and owner scoping.

use std::time::Duration;

use aimake::auth::Role;
use aimake::config::{Config, Secret};
use serde_json::{Value, json};

use crate::fakes::FakeOpenAi;
use crate::fakes_llm::{API_KEY, FakeLlm, Reply, script_json};
use crate::helpers::{Session, TestApp, error_code};

pub(crate) fn fast(c: &mut Config) {
    c.providers.retry.base_delay_ms = 1;
    c.providers.retry.max_delay_ms = 5;
}

async fn new_show(s: &Session, body: Value) -> String {
    let resp = s.post("/api/podcasts", &body).await;
    assert_eq!(resp.status(), 201);
    let show: Value = resp.json().await.unwrap();
    show["id"].as_str().unwrap().to_string()
}

/// Waits until the episode's audio reaches a final state and returns the episode.
async fn rendered(s: &Session, show: &str, episode: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let e: Value = s
            .get_json(&format!("/api/podcasts/{show}/episodes/{episode}"))
            .await;
        if matches!(
            e["audio"]["status"].as_str(),
            Some("succeeded" | "failed" | "canceled")
        ) {
            return e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never finished: {e}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn render(s: &Session, show: &str, body: Value) -> Value {
    let resp = s
        .post(&format!("/api/podcasts/{show}/episodes"), &body)
        .await;
    assert_eq!(resp.status(), 202);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["audio"]["kind"], "podcast", "{e}");
    let done = rendered(s, show, e["id"].as_str().unwrap()).await;
    assert_eq!(done["audio"]["status"], "succeeded", "{done}");
    done
}

async fn bytes(s: &Session, path: &str) -> Vec<u8> {
    let resp = s.get(path).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn a_script_is_written_by_the_configured_model_and_its_tokens_are_billed() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::content(script_json(&["Alice", "Bob"])).usage(120, 80));
    let base = llm.base_url.clone();
    let app = TestApp::spawn_with(move |c| {
        c.llm.base_url = base;
        c.llm.api_key = Some(Secret::new(API_KEY));
        c.llm.model = "gpt-test".into();
        c.llm.price_input_per_1m_micros = 1_000_000;
        c.llm.price_output_per_1m_micros = 2_000_000;
    })
    .await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let show = new_show(&s, json!({"title": "Tea & Coffee"})).await;
    let resp = s
        .post(
            &format!("/api/podcasts/{show}/scripts"),
            &json!({
                "source": {"topic": "Why tea and coffee differ"},
                "speakers": [{"name": "Alice", "voice": "local:en-us"}, {"name": "Bob", "voice": "local:en-us"}],
                "minutes": 2,
            }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let script: Value = resp.json().await.unwrap();
    let lines = script["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 4, "{script}");
    assert_eq!(lines[0]["speaker"], "Alice");
    assert_eq!(lines[0]["chapter"], "Opening");
    assert_eq!(lines[2]["chapter"], "Closing");
    assert_eq!(llm.requests(), 1);

    let usage: Value = s.get("/api/usage").await.json().await.unwrap();
    let row = usage
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "llm:gpt-test")
        .unwrap_or_else(|| panic!("no llm usage: {usage}"));
    assert_eq!(row["units"], 200, "{usage}");
    assert_eq!(row["cost_micros"], 120 + 160, "{usage}");
    app.stop().await;
}

#[tokio::test]
async fn without_a_model_scripts_are_unavailable_but_a_pasted_dialogue_is_parsed() {
    let app = TestApp::spawn().await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let show = new_show(&s, json!({"title": "Show"})).await;
    let speakers = json!([{"name": "Alice"}, {"name": "Bob"}]);
    let resp = s
        .post(
            &format!("/api/podcasts/{show}/scripts"),
            &json!({"source": {"topic": "anything"}, "speakers": speakers}),
        )
        .await;
    assert_eq!(resp.status(), 503);
    assert_eq!(error_code(resp).await, "provider_unavailable");

    let resp = s
        .post(
            &format!("/api/podcasts/{show}/scripts"),
            &json!({
                "source": {"dialogue": "## Intro\nalice: Hello there.\nBob: Hi!\n  and welcome.\n\n## End\nAlice: Bye."},
                "speakers": speakers,
            }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let script: Value = resp.json().await.unwrap();
    assert_eq!(
        script["lines"],
        json!([
            {"speaker": "Alice", "text": "Hello there.", "chapter": "Intro"},
            {"speaker": "Bob", "text": "Hi! and welcome."},
            {"speaker": "Alice", "text": "Bye.", "chapter": "End"},
        ])
    );
    let resp = s
        .post(
            &format!("/api/podcasts/{show}/scripts"),
            &json!({"source": {"dialogue": "Carol: who am I?"}, "speakers": speakers}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn a_three_voice_episode_is_mastered_with_chapters_subtitles_and_a_feed() {
    let app = TestApp::spawn_with(fast).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let voices: Value = s.get_json("/api/voices?provider=local").await;
    let ids: Vec<String> = voices
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .take(3)
        .collect();
    assert_eq!(ids.len(), 3, "three local voices: {voices}");
    let show = new_show(
        &s,
        json!({"title": "Ünïcode & <Friends> 🎙️ 中文", "author": "Ada", "public": true, "language": "en"}),
    )
    .await;
    let lines = json!([
        {"speaker": "Ann", "text": "Welcome to the show.", "chapter": "Hello"},
        {"speaker": "Ben", "text": "Thanks for having me."},
        {"speaker": "Cid", "text": "Glad to be here too."},
        {"speaker": "Ann", "text": "Let us begin with the news.", "chapter": "News"},
        {"speaker": "Ben", "text": "There is not much of it today."},
    ]);
    let e = render(
        &s,
        &show,
        json!({
            "title": "Episode & one <1>",
            "lines": lines,
            "speakers": [{"name": "Ann", "voice": ids[0]}, {"name": "Ben", "voice": ids[1]}, {"name": "Cid", "voice": ids[2]}],
            "pause_ms": 300,
        }),
    )
    .await;
    let eid = e["id"].as_str().unwrap();
    let mp3 = bytes(&s, e["audio"]["file_url"].as_str().unwrap()).await;
    let pcm = aimake::audio::decode(&mp3, aimake::audio::Format::Mp3).unwrap();
    let loud = aimake::audio::measure(&pcm).unwrap();
    let lufs = loud.integrated_lufs.unwrap();
    assert!((lufs + 16.0).abs() <= 1.0, "integrated {lufs} LUFS");
    assert!(
        loud.true_peak_dbtp <= -1.0,
        "true peak {}",
        loud.true_peak_dbtp
    );

    // Duration: the spoken lines plus one pause between each, longer before a chapter.
    let vtt = String::from_utf8(
        bytes(
            &s,
            &format!("/api/podcasts/{show}/episodes/{eid}/subtitles.vtt"),
        )
        .await,
    )
    .unwrap();
    assert!(vtt.starts_with("WEBVTT"), "{vtt}");
    let order: Vec<usize> = [
        "<v Ann>Welcome",
        "<v Ben>Thanks",
        "<v Cid>Glad",
        "<v Ann>Let us",
        "<v Ben>There",
    ]
    .iter()
    .map(|cue| {
        vtt.find(cue)
            .unwrap_or_else(|| panic!("{cue} missing: {vtt}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{vtt}");
    let tag = id3::Tag::read_from2(std::io::Cursor::new(&mp3)).unwrap();
    let chapters: Vec<_> = tag.chapters().collect();
    assert_eq!(chapters.len(), 2, "two chapter frames");
    use id3::TagLike;
    assert_eq!(tag.title(), Some("Episode & one <1>"));
    assert_eq!(tag.album(), Some("Ünïcode & <Friends> 🎙️ 中文"));
    assert_eq!(tag.artist(), Some("Ada"));
    let chapters_json: Value = serde_json::from_slice(
        &bytes(
            &s,
            &format!("/api/podcasts/{show}/episodes/{eid}/chapters.json"),
        )
        .await,
    )
    .unwrap();
    let titles: Vec<&str> = chapters_json["chapters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["title"].as_str())
        .collect();
    assert_eq!(titles, ["Hello", "News"]);
    let srt = String::from_utf8(
        bytes(
            &s,
            &format!("/api/podcasts/{show}/episodes/{eid}/subtitles.srt"),
        )
        .await,
    )
    .unwrap();
    assert!(srt.starts_with("1\n"), "{srt}");

    // Each line alone, as the library would speak it, to compare durations.
    let mut spoken = 0u64;
    for (i, line) in lines.as_array().unwrap().iter().enumerate() {
        let voice = &ids[[0, 1, 2, 0, 1][i]];
        let (provider, _) = app.state.providers.resolve(voice).unwrap();
        let out = provider
            .synthesize(&aimake::providers::SynthesisRequest {
                text: line["text"].as_str().unwrap().into(),
                voice: voice.split_once(':').unwrap().1.into(),
                speed: 1.0,
                format_hint: aimake::audio::Format::Mp3,
                model: None,
                instructions: None,
            })
            .await
            .unwrap();
        spoken += aimake::audio::decode(&out.bytes, out.format)
            .unwrap()
            .duration_ms();
    }
    let expected = spoken + 3 * 300 + 1000;
    let actual = pcm.duration_ms();
    assert!(
        actual.abs_diff(expected) * 10 <= expected,
        "duration {actual} ms, expected about {expected} ms"
    );

    // The public feed lists the episode with a working enclosure.
    let resp = app.get(&format!("/feeds/{show}.xml")).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public")
    );
    let channel = rss::Channel::read_from(&resp.bytes().await.unwrap()[..]).unwrap();
    assert_eq!(channel.title(), "Ünïcode & <Friends> 🎙️ 中文");
    assert_eq!(channel.items().len(), 1);
    let item = &channel.items()[0];
    assert_eq!(item.title(), Some("Episode & one <1>"));
    let enclosure = item.enclosure().unwrap();
    assert_eq!(enclosure.mime_type(), "audio/mpeg");
    let got = app.client.get(enclosure.url()).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), mp3);
    app.stop().await;
}

fn speech_texts(fake: &FakeOpenAi) -> Vec<String> {
    fake.requests()
        .iter()
        .filter(|r| r.path().ends_with("/audio/speech"))
        .map(|r| r.json()["input"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn re_rendering_after_editing_one_line_pays_only_for_that_line() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fast(c);
        fake.configure(c);
    })
    .await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let show = new_show(&s, json!({"title": "Show"})).await;
    let speakers =
        json!([{"name": "Ann", "voice": "openai:alloy"}, {"name": "Ben", "voice": "openai:echo"}]);
    let mut lines = json!([
        {"speaker": "Ann", "text": "First line."},
        {"speaker": "Ben", "text": "Second line."},
        {"speaker": "Ann", "text": "Third line."},
    ]);
    render(
        &s,
        &show,
        json!({"title": "Take one", "lines": lines, "speakers": speakers}),
    )
    .await;
    let mut first = speech_texts(&fake);
    first.sort();
    assert_eq!(first, ["First line.", "Second line.", "Third line."]);

    lines[1]["text"] = json!("Second line, edited.");
    let e = render(
        &s,
        &show,
        json!({"title": "Take two", "lines": lines, "speakers": speakers}),
    )
    .await;
    assert_eq!(
        speech_texts(&fake)[3..],
        ["Second line, edited."],
        "only the edited line reached the provider"
    );
    let usage: Value = s.get("/api/usage").await.json().await.unwrap();
    let cached: i64 = usage
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cached_units"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(
        cached,
        ("First line.".len() + "Third line.".len()) as i64,
        "{usage}"
    );
    assert_eq!(e["lines"][1]["text"], "Second line, edited.");
    app.stop().await;
}

#[tokio::test]
async fn a_private_feed_needs_its_current_token_and_other_users_see_nothing() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fast(c);
        fake.configure(c);
    })
    .await;
    let a = app.signed_in("ada@example.com", Role::User).await;
    let b = app.signed_in("bob@example.com", Role::User).await;
    let show = new_show(&a, json!({"title": "Private"})).await;
    let e = render(
        &a,
        &show,
        json!({
            "title": "Secret episode",
            "lines": [{"speaker": "Ann", "text": "Only for subscribers."}],
            "speakers": [{"name": "Ann", "voice": "openai:nova"}],
        }),
    )
    .await;
    let eid = e["id"].as_str().unwrap();

    assert_eq!(app.get(&format!("/feeds/{show}.xml")).await.status(), 404);
    let old = new_feed_url(&a, &show).await;
    let resp = app.client.get(&old).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let channel = rss::Channel::read_from(&resp.bytes().await.unwrap()[..]).unwrap();
    assert_eq!(channel.items()[0].title(), Some("Secret episode"));
    let transcript = channel.items()[0]
        .extensions()
        .get("podcast")
        .and_then(|p| p.get("transcript"))
        .and_then(|t| t[0].attrs().get("url").cloned())
        .expect("a podcast:transcript link");
    let vtt = app.client.get(&transcript).send().await.unwrap();
    assert_eq!(vtt.status(), 200);
    assert!(
        vtt.text()
            .await
            .unwrap()
            .contains("<v Ann>Only for subscribers.")
    );

    let new = new_feed_url(&a, &show).await;
    assert_ne!(old, new);
    assert_eq!(app.client.get(&old).send().await.unwrap().status(), 404);
    assert_eq!(app.client.get(&new).send().await.unwrap().status(), 200);

    // Another user cannot see, change or delete any of it.
    for path in [
        format!("/api/podcasts/{show}"),
        format!("/api/podcasts/{show}/episodes"),
        format!("/api/podcasts/{show}/episodes/{eid}"),
        format!("/api/podcasts/{show}/episodes/{eid}/subtitles.vtt"),
        format!("/api/podcasts/{show}/episodes/{eid}/chapters.json"),
    ] {
        assert_eq!(b.get(&path).await.status(), 404, "{path}");
    }
    assert_eq!(
        b.patch(&format!("/api/podcasts/{show}"), &json!({"public": true}))
            .await
            .status(),
        404
    );
    assert_eq!(
        b.post(&format!("/api/podcasts/{show}/feed-token"), &json!({}))
            .await
            .status(),
        404
    );
    assert_eq!(
        b.delete(&format!("/api/podcasts/{show}/episodes/{eid}"))
            .await
            .status(),
        204
    );
    assert_eq!(
        a.get(&format!("/api/podcasts/{show}/episodes/{eid}"))
            .await
            .status(),
        200
    );
    let listed: Value = b.get("/api/podcasts").await.json().await.unwrap();
    assert_eq!(listed["items"], json!([]));

    // The owner makes it public, then deletes the episode: the feed stays open and empty.
    let show_view: Value = a
        .patch(
            &format!("/api/podcasts/{show}"),
            &json!({"public": true, "author": "Ada"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(show_view["public"], true);
    assert_eq!(show_view["author"], "Ada");
    assert_eq!(
        a.delete(&format!("/api/podcasts/{show}/episodes/{eid}"))
            .await
            .status(),
        204
    );
    assert_eq!(
        a.get(&format!("/api/podcasts/{show}/episodes/{eid}"))
            .await
            .status(),
        404
    );
    assert_eq!(
        a.get(&format!(
            "/api/audios/{}",
            e["audio"]["id"].as_str().unwrap()
        ))
        .await
        .status(),
        404
    );
    let resp = app.get(&format!("/feeds/{show}.xml")).await;
    assert_eq!(resp.status(), 200);
    let channel = rss::Channel::read_from(&resp.bytes().await.unwrap()[..]).unwrap();
    assert!(channel.items().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn episodes_with_unknown_voices_or_speakers_are_refused() {
    let app = TestApp::spawn().await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let show = new_show(&s, json!({"title": "Show"})).await;
    let lines = json!([{"speaker": "Ann", "text": "Hello."}]);
    let resp = s
        .post(
            &format!("/api/podcasts/{show}/episodes"),
            &json!({"title": "T", "lines": lines, "speakers": [{"name": "Ann", "voice": "local:no-such-voice"}]}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp).await, "unknown_voice");
    let resp = s
        .post(
            &format!("/api/podcasts/{show}/episodes"),
            &json!({"title": "T", "lines": [{"speaker": "Zed", "text": "Hi."}], "speakers": [{"name": "Ann", "voice": "local:en-us"}]}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert!(
        err["error"]["details"]["lines[0].speaker"].is_string(),
        "{err}"
    );
    app.stop().await;
}

/// A valid 1×1 RGBA PNG.
const PNG: [u8; 70] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

async fn put_cover(
    s: &Session,
    show: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    s.request(reqwest::Method::PUT, &format!("/api/podcasts/{show}/cover"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_cover_is_checked_served_to_its_owner_only_and_shown_in_the_feed_with_the_category() {
    let app = TestApp::spawn().await;
    let a = app.signed_in("ada@example.com", Role::User).await;
    let b = app.signed_in("bob@example.com", Role::User).await;
    let resp = a
        .post(
            "/api/podcasts",
            &json!({"title": "Covered", "public": true, "category": "Technology"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["category"], "Technology");
    assert_eq!(created["cover_url"], Value::Null);
    let show = created["id"].as_str().unwrap().to_string();

    // Categories are validated on update; null clears one.
    for bad in [json!(""), json!("x".repeat(101))] {
        let resp = a
            .patch(
                &format!("/api/podcasts/{show}"),
                &json!({ "category": bad }),
            )
            .await;
        assert_eq!(resp.status(), 400);
    }
    let cleared: Value = a
        .patch(&format!("/api/podcasts/{show}"), &json!({"category": null}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["category"], Value::Null);
    let updated: Value = a
        .patch(
            &format!("/api/podcasts/{show}"),
            &json!({"category": "Society & Culture"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(updated["category"], "Society & Culture");

    // Only JPEG and PNG, really of that type, and at most 1 MiB.
    let resp = put_cover(&a, &show, "image/gif", b"GIF89a".to_vec()).await;
    assert_eq!(resp.status(), 415);
    assert_eq!(error_code(resp).await, "unsupported_media_type");
    let resp = put_cover(&a, &show, "image/jpeg", PNG.to_vec()).await;
    assert_eq!(resp.status(), 415);
    let mut huge = PNG.to_vec();
    huge.resize(1024 * 1024 + 1, 0);
    let resp = put_cover(&a, &show, "image/png", huge).await;
    assert_eq!(resp.status(), 413);
    assert_eq!(error_code(resp).await, "payload_too_large");
    assert_eq!(
        a.get(&format!("/api/podcasts/{show}/cover")).await.status(),
        404
    );

    let resp = put_cover(&a, &show, "image/png", PNG.to_vec()).await;
    assert_eq!(resp.status(), 200);
    let with_cover: Value = resp.json().await.unwrap();
    let cover_url = with_cover["cover_url"].as_str().unwrap().to_string();
    let resp = a.get(&cover_url).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.bytes().await.unwrap().to_vec(), PNG);
    assert_eq!(b.get(&cover_url).await.status(), 404);
    assert_eq!(
        put_cover(&b, &show, "image/png", PNG.to_vec())
            .await
            .status(),
        404
    );

    // The feed shows the image through a signed link, and the category.
    let xml = app
        .get(&format!("/feeds/{show}.xml"))
        .await
        .text()
        .await
        .unwrap();
    assert!(xml.contains("<itunes:image href="), "{xml}");
    assert!(
        xml.contains(r#"<itunes:category text="Society &amp; Culture""#),
        "{xml}"
    );
    let channel = rss::Channel::read_from(xml.as_bytes()).unwrap();
    let image = channel.image().unwrap().url().to_string();
    assert_eq!(channel.itunes_ext().unwrap().image(), Some(image.as_str()));
    let got = app.client.get(&image).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "image/png");
    assert_eq!(got.bytes().await.unwrap().to_vec(), PNG);
    let forged = image.replace("sig=", "sig=0");
    assert_eq!(app.client.get(&forged).send().await.unwrap().status(), 403);

    // Removing the cover takes it out of the feed.
    assert_eq!(a.delete(&cover_url).await.status(), 204);
    assert_eq!(a.get(&cover_url).await.status(), 404);
    let xml = app
        .get(&format!("/feeds/{show}.xml"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!xml.contains("itunes:image"), "{xml}");

    // Deleting the show deletes its cover object.
    assert_eq!(
        put_cover(&a, &show, "image/png", PNG.to_vec())
            .await
            .status(),
        200
    );
    let key = aimake::storage::keys::cover(show.parse().unwrap(), "png");
    assert!(app.state.storage.head(&key).await.is_ok());
    assert_eq!(
        a.delete(&format!("/api/podcasts/{show}")).await.status(),
        204
    );
    assert!(app.state.storage.head(&key).await.is_err());
    app.stop().await;
}

#[tokio::test]
async fn an_episode_rendered_after_setting_a_cover_carries_it_in_its_id3_tag() {
    let app = TestApp::spawn_with(fast).await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let voices: Value = s.get_json("/api/voices?provider=local").await;
    let voice = voices[0]["id"].as_str().unwrap().to_string();
    let show = new_show(&s, json!({"title": "Pictured"})).await;
    assert_eq!(
        put_cover(&s, &show, "image/png", PNG.to_vec())
            .await
            .status(),
        200
    );
    let e = render(
        &s,
        &show,
        json!({
            "title": "With art",
            "lines": [{"speaker": "Ann", "text": "Look at the cover."}],
            "speakers": [{"name": "Ann", "voice": voice}],
        }),
    )
    .await;
    let mp3 = bytes(&s, e["audio"]["file_url"].as_str().unwrap()).await;
    let tag = id3::Tag::read_from2(std::io::Cursor::new(&mp3)).unwrap();
    let pictures: Vec<_> = tag.pictures().collect();
    assert_eq!(pictures.len(), 1, "one APIC frame");
    assert_eq!(pictures[0].mime_type, "image/png");
    assert_eq!(pictures[0].data, PNG);
    app.stop().await;
}

#[tokio::test]
async fn podcast_lines_follow_the_same_text_rule_as_the_speech_api() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fast(c);
        fake.configure(c);
    })
    .await;
    let s = app.signed_in("ada@example.com", Role::User).await;
    let show = new_show(&s, json!({"title": "Show"})).await;
    let speakers =
        json!([{"name": "Ann", "voice": "openai:alloy"}, {"name": "Ben", "voice": "openai:echo"}]);
    let episode = |second: &str| {
        json!({"title": "T", "speakers": speakers, "lines": [
            {"speaker": "Ann", "text": "Hello."},
            {"speaker": "Ben", "text": second},
        ]})
    };
    for (text, expected) in [
        ("Cut\0 short", "U+0000"),
        ("Bell\x07", "U+0007"),
        ("Next\u{85}line", "U+0085"),
        ("Delete\x7f", "U+007F"),
        ("\u{200B}\u{200D}\u{FEFF}", "must not be empty"),
    ] {
        let resp = s
            .post(&format!("/api/podcasts/{show}/episodes"), &episode(text))
            .await;
        assert_eq!(resp.status(), 400, "{text:?}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], "invalid_request", "{err}");
        let detail = err["error"]["details"]["lines[1].text"]
            .as_str()
            .unwrap_or_default();
        assert!(detail.contains(expected), "{text:?}: {err}");
    }
    // A pasted dialogue is checked as a whole, before it is read.
    let resp = s
        .post(
            &format!("/api/podcasts/{show}/scripts"),
            &json!({"source": {"dialogue": "Ann: Hi\0 there.\nBen: Hello."}, "speakers": speakers}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid_request", "{err}");
    assert!(
        err["error"]["details"]["source.dialogue"]
            .as_str()
            .is_some_and(|d| d.contains("U+0000")),
        "{err}"
    );
    let list: Value = s.get_json(&format!("/api/podcasts/{show}/episodes")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    assert!(speech_texts(&fake).is_empty(), "nothing was sent");

    // Emoji and right-to-left lines pass; lines are sent in NFC and billed as sent.
    let e = render(&s, &show, episode("Hello 👋 مرحبا שלום, cafe\u{301}")).await;
    assert_eq!(e["lines"][1]["text"], "Hello 👋 مرحبا שלום, caf\u{e9}");
    let mut sent = speech_texts(&fake);
    sent.sort();
    assert_eq!(sent, ["Hello 👋 مرحبا שלום, caf\u{e9}", "Hello."]);
    let sent_chars: i64 = sent.iter().map(|t| t.chars().count() as i64).sum();
    let usage: Value = s.get("/api/usage").await.json().await.unwrap();
    let billed: i64 = usage
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["units"].as_i64().unwrap())
        .sum();
    assert_eq!(billed, sent_chars, "{usage}");
    assert_eq!(e["audio"]["chars"], sent_chars, "{e}");
    app.stop().await;
}

/// Every signed link of a feed: each episode's enclosure, transcript and chapters, and the
/// cover. Links are decoded from the XML as a podcast app reads them.
pub(crate) fn feed_links(xml: &[u8]) -> Vec<String> {
    let channel = rss::Channel::read_from(xml).unwrap();
    let mut links: Vec<String> = channel
        .image()
        .map(|i| i.url().to_string())
        .into_iter()
        .collect();
    for item in channel.items() {
        links.push(item.enclosure().expect("an enclosure").url().to_string());
        for ext in ["transcript", "chapters"] {
            let url = item
                .extensions()
                .get("podcast")
                .and_then(|p| p.get(ext))
                .and_then(|t| t[0].attrs().get("url").cloned())
                .unwrap_or_else(|| panic!("a podcast:{ext} link"));
            links.push(url);
        }
    }
    links
}

/// A new feed token for the show (`POST …/feed-token`): the feed's URL that carries it.
pub(crate) async fn new_feed_url(s: &Session, show: &str) -> String {
    let resp: Value = s
        .post(&format!("/api/podcasts/{show}/feed-token"), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    resp["feed_url"].as_str().unwrap().to_string()
}

pub(crate) async fn feed_xml(app: &TestApp, url: &str) -> Vec<u8> {
    let resp = app.client.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    resp.bytes().await.unwrap().to_vec()
}

/// Each link answers 200, or each is refused in the API's JSON error shape.
async fn assert_links(app: &TestApp, links: &[String], work: bool) {
    for link in links {
        let resp = app.client.get(link).send().await.unwrap();
        let status = resp.status().as_u16();
        if work {
            assert_eq!(status, 200, "{link}");
            continue;
        }
        assert!(matches!(status, 401 | 403 | 404), "{status} for {link}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{link}"
        );
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
}

/// A show with a cover and one rendered episode (enclosure, transcript and chapters).
pub(crate) async fn show_with_episode(s: &Session, public: bool) -> String {
    let show = new_show(s, json!({"title": "Linked", "public": public})).await;
    assert_eq!(
        put_cover(s, &show, "image/png", PNG.to_vec())
            .await
            .status(),
        200
    );
    render(
        s,
        &show,
        json!({
            "title": "Linked episode",
            "lines": [{"speaker": "Ann", "text": "Hello, listeners."}],
            "speakers": [{"name": "Ann", "voice": "openai:nova"}],
        }),
    )
    .await;
    show
}

#[tokio::test]
async fn rotating_the_feed_token_revokes_every_link_of_the_old_feed_at_once() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fast(c);
        fake.configure(c);
    })
    .await;
    let a = app.signed_in("ada@example.com", Role::User).await;
    let show = show_with_episode(&a, false).await;
    let rotate = || new_feed_url(&a, &show);

    let first = rotate().await;
    let xml = feed_xml(&app, &first).await;
    assert_eq!(
        feed_xml(&app, &first).await,
        xml,
        "the same feed, byte for byte, on every fetch of one generation"
    );
    let old_links = feed_links(&xml);
    assert_eq!(old_links.len(), 4, "{old_links:?}");
    assert_links(&app, &old_links, true).await;
    let enclosure = app.client.get(&old_links[1]).send().await.unwrap();
    assert_eq!(enclosure.headers()["content-type"], "audio/mpeg");
    assert!(enclosure.bytes().await.unwrap().len() > 1000);

    let second = rotate().await;
    assert_links(&app, &old_links, false).await;
    let new_links = feed_links(&feed_xml(&app, &second).await);
    for (old, new) in old_links.iter().zip(&new_links) {
        assert_ne!(old, new, "a new generation, new links");
    }
    assert_links(&app, &new_links, true).await;

    // A long-lived media link as feeds carried before links were bound to their feed.
    let episodes: Value = a.get_json(&format!("/api/podcasts/{show}/episodes")).await;
    let audio = episodes["items"][0]["audio"]["id"].as_str().unwrap();
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 9 * 365 * 86_400;
    let sig = app
        .state
        .links
        .signer()
        .sign(aimake::links::MEDIA_PURPOSE, audio, exp);
    let legacy = app.url(&format!("/media/{audio}?exp={exp}&sig={sig}"));
    assert_links(&app, &[legacy], false).await;
    app.stop().await;
}

#[tokio::test]
async fn a_signed_feed_link_answers_the_same_for_an_unknown_id_as_for_a_forged_signature() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fast(c);
        fake.configure(c);
    })
    .await;
    let a = app.signed_in("ada@example.com", Role::User).await;
    let show = show_with_episode(&a, true).await;
    let links = feed_links(&feed_xml(&app, &app.url(&format!("/feeds/{show}.xml"))).await);
    assert_eq!(links.len(), 4, "{links:?}");
    let unknown = ulid::Ulid::generate().to_string();
    for link in &links {
        let forged = link.replace("sig=", "sig=0");
        let forged_resp = app.client.get(&forged).send().await.unwrap();
        let forged_status = forged_resp.status().as_u16();
        let forged_body: Value = forged_resp.json().await.unwrap();
        // The cover's link carries the show's id, the others the episode's.
        let id = link
            .split('/')
            .rev()
            .find(|part| part.len() == 26 && part.parse::<ulid::Ulid>().is_ok())
            .unwrap_or_else(|| panic!("no id in {link}"));
        let elsewhere = link.replace(id, &unknown);
        let resp = app.client.get(&elsewhere).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), forged_status, "{elsewhere}");
        assert_eq!(forged_status, 403, "{forged}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body, forged_body, "{elsewhere}");
    }
    app.stop().await;
}

#[tokio::test]
async fn making_a_public_show_private_revokes_its_feed_links_and_other_edits_keep_them() {
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fast(c);
        fake.configure(c);
    })
    .await;
    let a = app.signed_in("ada@example.com", Role::User).await;
    let show = show_with_episode(&a, true).await;
    let public_feed = app.url(&format!("/feeds/{show}.xml"));
    let links = feed_links(&feed_xml(&app, &public_feed).await);
    assert_links(&app, &links, true).await;

    // Editing the show (not its visibility) keeps the episodes' links as they were.
    let patch = |body: Value| {
        let a = &a;
        let show = &show;
        async move {
            let resp = a.patch(&format!("/api/podcasts/{show}"), &body).await;
            assert_eq!(resp.status(), 200);
        }
    };
    patch(json!({"description": "Now with notes", "public": true})).await;
    let after_edit = feed_links(&feed_xml(&app, &public_feed).await);
    assert_eq!(after_edit[1..], links[1..], "episode links are stable");
    assert_links(&app, &after_edit, true).await;

    patch(json!({"public": false})).await;
    assert_eq!(
        app.client.get(&public_feed).send().await.unwrap().status(),
        404
    );
    assert_links(&app, &after_edit, false).await;

    // The private feed's own links work; making the show public again keeps them.
    let private_links = feed_links(&feed_xml(&app, &new_feed_url(&a, &show).await).await);
    assert_links(&app, &private_links, true).await;
    patch(json!({"public": true})).await;
    assert_links(&app, &private_links[1..], true).await;
    app.stop().await;
}
