//! Media that bypasses the server: with `storage.presign`, files are answered with a 302 to a
//! presigned URL of the bucket once aimake's own checks pass; with `storage.public_base_url`,
//! public shows' enclosures and transcripts are served from the bucket's public folder.

use std::time::Duration;

use aimake::auth::Role;
use aimake::config::Config;
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use serde_json::{Value, json};

use crate::fakes::FakeOpenAi;
use crate::helpers::{S3Server, Session, TestApp, error_code};
use crate::podcasts::{fast, feed_links, feed_xml, new_feed_url, show_with_episode};

/// A client that never follows redirects, to see them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A plain client: no aimake cookie, no credentials for the bucket.
fn plain() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A server on an in-process S3 server, with the fake OpenAI voices and `storage.presign`
/// on, and the user ada signed in. The S3 server and the fake live as long as the result.
struct Presigning {
    s3: S3Server,
    _fake: FakeOpenAi,
    app: TestApp,
    ada: Session,
}

async fn start(customize: impl FnOnce(&mut Config, &S3Server)) -> Presigning {
    let s3 = S3Server::start().await;
    let fake = FakeOpenAi::start().await;
    let app = TestApp::spawn_with(|c| {
        fast(c);
        fake.configure(c);
        s3.configure(c);
        c.storage.presign = true;
        customize(c, &s3);
    })
    .await;
    let ada = app.signed_in("ada@example.com", Role::User).await;
    Presigning {
        s3,
        _fake: fake,
        app,
        ada,
    }
}

/// A finished audio of the session's user, with this title.
async fn finished_audio(s: &Session, title: &str) -> String {
    let audio = s
        .create_finished(
            &json!({"text": "Hello from the bucket.", "voice": "openai:alloy", "title": title}),
        )
        .await;
    assert_eq!(audio["status"], "succeeded", "{audio}");
    audio["id"].as_str().unwrap().to_string()
}

/// Where a 302 points, after checking how long it may be cached.
fn location(resp: &reqwest::Response, cache: &str) -> String {
    assert_eq!(resp.status(), StatusCode::FOUND, "{resp:?}");
    assert_eq!(resp.headers()[CACHE_CONTROL], cache);
    resp.headers()[LOCATION].to_str().unwrap().to_string()
}

/// Where a 302 to a presigned URL points: such a redirect is never cached, since a cached
/// one could outlive its signature.
fn presigned(resp: &reqwest::Response) -> String {
    let url = location(resp, "no-store");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    url
}

/// Where a 302 to a public show's published file points: as cacheable as the feed.
fn published(resp: &reqwest::Response) -> String {
    location(resp, "public, max-age=300")
}

/// A `/media/{id}` link as `POST /api/audios/{id}/share` makes them, expiring at `exp`.
fn media_link(app: &TestApp, id: &str, exp: i64) -> String {
    let sig = app
        .state
        .links
        .signer()
        .sign(aimake::links::MEDIA_PURPOSE, id, exp);
    app.url(&format!("/media/{id}?exp={exp}&sig={sig}"))
}

/// A presigned URL's `X-Amz-Date` (Unix seconds) and `X-Amz-Expires`.
fn signed_window(url: &str) -> (i64, i64) {
    let url = url::Url::parse(url).unwrap();
    let get = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("no {name} in {url}"))
            .1
            .into_owned()
    };
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let date = time::PrimitiveDateTime::parse(&get("X-Amz-Date"), &format)
        .unwrap()
        .assume_utc()
        .unix_timestamp();
    (date, get("X-Amz-Expires").parse().unwrap())
}

/// Asserts a refusal in the API's shape, with no redirect anywhere.
async fn assert_refused(resp: reqwest::Response, status: u16, code: &str) {
    assert_eq!(resp.status().as_u16(), status, "{resp:?}");
    assert!(resp.headers().get(LOCATION).is_none(), "{resp:?}");
    assert_eq!(error_code(resp).await, code);
}

fn now_s() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn a_download_redirects_to_a_presigned_url_that_serves_ranges_and_the_file_name() {
    let Presigning {
        s3,
        app,
        ada: s,
        _fake,
    } = start(|_, _| {}).await;
    let id = finished_audio(&s, "季度 report").await;
    let cookie = format!("aimake_session={}", s.cookie);

    let resp = no_redirects()
        .get(app.url(&format!("/api/audios/{id}/file?download=1")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let url = presigned(&resp);
    assert!(url.starts_with(&s3.endpoint), "{url}");
    let (_, expires) = signed_window(&url);
    assert_eq!(expires, 300, "storage.presign_expiry_s by default");

    // The bucket answers a client that has neither aimake's cookie nor the bucket's keys.
    let whole = plain().get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()[CONTENT_TYPE], "audio/mpeg");
    assert_eq!(
        whole.headers()[CACHE_CONTROL],
        "private, max-age=0, must-revalidate"
    );
    let disposition = whole.headers()[CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"")
            && disposition.ends_with("filename*=UTF-8''%E5%AD%A3%E5%BA%A6%20report.mp3"),
        "{disposition}"
    );
    let body = whole.bytes().await.unwrap();
    let audio: Value = s.get_json(&format!("/api/audios/{id}")).await;
    assert_eq!(body.len() as u64, audio["size_bytes"].as_u64().unwrap());

    let part = plain()
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()[CONTENT_RANGE],
        format!("bytes 10-19/{}", body.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), body.slice(10..20));

    // A player following the redirect keeps its Range; the bucket never sees the cookie.
    let played = s
        .request(reqwest::Method::GET, &format!("/api/audios/{id}/stream"))
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(played.status(), 206);
    assert!(played.url().as_str().starts_with(&s3.endpoint));
    assert!(
        played.headers().get(CONTENT_DISPOSITION).is_none(),
        "plays inline"
    );
    assert_eq!(played.bytes().await.unwrap(), body.slice(0..100));

    // The web app's pages let its players follow the redirect to the bucket.
    let page = plain().get(app.url("/")).send().await.unwrap();
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        policy.contains(&format!("media-src 'self' blob: {};", s3.endpoint)),
        "{policy}"
    );

    // HEAD is answered by aimake: a presigned URL is good for GET only.
    let head = no_redirects()
        .head(app.url(&format!("/api/audios/{id}/file")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        body.len().to_string().as_str()
    );

    // A presigned URL whose signature was touched is refused by the bucket.
    // The signature is the URL's last parameter: change its last digit.
    let last = if url.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &url[..url.len() - 1]);
    assert_eq!(plain().get(&forged).send().await.unwrap().status(), 403);
    app.stop().await;
}

#[tokio::test]
async fn a_presigned_url_never_outlives_the_link_that_led_to_it_and_then_stops_working() {
    let Presigning {
        s3: _s3,
        app,
        ada: s,
        _fake,
    } = start(|_, _| {}).await;
    let id = finished_audio(&s, "Short lived").await;

    // A share link of a minute gives a presigned URL of a minute at most.
    let resp = no_redirects()
        .get(s.share(&id, 60).await)
        .send()
        .await
        .unwrap();
    let (_, expires) = signed_window(&presigned(&resp));
    assert!((58..=60).contains(&expires), "{expires}");

    // A link in its last seconds: the presigned URL ends with it.
    let (link, url, signed_at) = loop {
        let link = media_link(&app, &id, now_s() + 2);
        let resp = no_redirects().get(&link).send().await.unwrap();
        // A second that ticked over in between leaves one second or none (then the bytes
        // are served here): try again for a clean two.
        if resp.status() != StatusCode::FOUND {
            assert_eq!(resp.status(), 200);
            continue;
        }
        let url = presigned(&resp);
        let (signed_at, expires) = signed_window(&url);
        assert!((1..=2).contains(&expires), "{url}");
        if expires == 2 {
            break (link, url, signed_at);
        }
    };
    let expires = 2;
    assert_eq!(plain().get(&url).send().await.unwrap().status(), 200);

    // The bucket refuses it once `X-Amz-Date + X-Amz-Expires` has passed.
    let expiry = time::OffsetDateTime::from_unix_timestamp(signed_at + expires).unwrap();
    let wait = expiry - time::OffsetDateTime::now_utc() + time::Duration::milliseconds(1200);
    tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
    assert_eq!(plain().get(&url).send().await.unwrap().status(), 403);
    assert_refused(plain().get(&link).send().await.unwrap(), 403, "forbidden").await;
    app.stop().await;
}

#[tokio::test]
async fn a_private_audio_is_never_redirected_without_access_nor_public_in_the_bucket() {
    let Presigning {
        s3,
        app,
        ada: a,
        _fake,
    } = start(|_, _| {}).await;
    let b = app.signed_in("bob@example.com", Role::User).await;
    let id = finished_audio(&a, "Private").await;

    for path in [
        format!("/api/audios/{id}/file"),
        format!("/api/audios/{id}/file?download=1"),
        format!("/api/audios/{id}/stream"),
    ] {
        let anonymous = no_redirects().get(app.url(&path)).send().await.unwrap();
        assert_refused(anonymous, 401, "unauthenticated").await;
        let other = no_redirects()
            .get(app.url(&path))
            .header("cookie", format!("aimake_session={}", b.cookie))
            .send()
            .await
            .unwrap();
        assert_refused(other, 404, "not_found").await;
    }
    let forged = media_link(&app, &id, now_s() + 600).replace("sig=", "sig=0");
    assert_refused(
        no_redirects().get(&forged).send().await.unwrap(),
        403,
        "forbidden",
    )
    .await;
    let expired = media_link(&app, &id, now_s() - 1);
    assert_refused(
        no_redirects().get(&expired).send().await.unwrap(),
        403,
        "forbidden",
    )
    .await;

    // The object itself is not readable without a signature.
    let audio_id: aimake::db::AudioId = id.parse().unwrap();
    let row = app
        .state
        .db
        .audios()
        .get_any(audio_id)
        .await
        .unwrap()
        .unwrap();
    let key = row.object_key.unwrap();
    assert!(key.starts_with("audio/"), "{key}");
    assert_eq!(
        plain()
            .get(s3.object_url(&key))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    app.stop().await;
}

/// The enclosure, transcript and chapters links of the first episode of a feed.
async fn episode_links(app: &TestApp, feed: &str) -> (String, String, String) {
    let links = feed_links(&feed_xml(app, feed).await);
    assert_eq!(links.len(), 4, "{links:?}");
    (links[1].clone(), links[2].clone(), links[3].clone())
}

#[tokio::test]
async fn a_rotated_feed_token_stops_the_old_enclosure_redirects() {
    let Presigning {
        s3,
        app,
        ada: a,
        _fake,
    } = start(|_, _| {}).await;
    let show = show_with_episode(&a, false).await;

    let (enclosure, transcript, _) = episode_links(&app, &new_feed_url(&a, &show).await).await;
    let resp = no_redirects().get(&enclosure).send().await.unwrap();
    let url = presigned(&resp);
    assert!(url.starts_with(&s3.endpoint), "{url}");
    assert!(signed_window(&url).1 <= 300, "{url}");
    let got = plain().get(&url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()[CONTENT_TYPE], "audio/mpeg");
    assert_eq!(got.headers()[CACHE_CONTROL], "public, max-age=300");
    assert!(got.bytes().await.unwrap().len() > 1000);
    // A private show's transcript is answered here.
    let vtt = no_redirects().get(&transcript).send().await.unwrap();
    assert_eq!(vtt.status(), 200);
    assert!(vtt.text().await.unwrap().starts_with("WEBVTT"));

    let (new_enclosure, _, _) = episode_links(&app, &new_feed_url(&a, &show).await).await;
    let old = no_redirects().get(&enclosure).send().await.unwrap();
    assert_refused(old, 403, "forbidden").await;
    let new = no_redirects().get(&new_enclosure).send().await.unwrap();
    assert!(presigned(&new).starts_with(&s3.endpoint));
    app.stop().await;
}

#[tokio::test]
async fn a_public_base_url_serves_public_shows_enclosures_and_transcripts_and_nothing_else() {
    let Presigning {
        s3,
        app,
        ada: a,
        _fake,
    } = start(|c, s3| c.storage.public_base_url = s3.public_base_url()).await;
    let public_base = s3.public_base_url();
    let show = show_with_episode(&a, true).await;
    let feed = app.url(&format!("/feeds/{show}.xml"));
    let (enclosure, transcript, chapters) = episode_links(&app, &feed).await;

    let audio_url = published(&no_redirects().get(&enclosure).send().await.unwrap());
    assert!(
        audio_url.starts_with(&format!("{public_base}/{show}/")),
        "{audio_url}"
    );
    assert!(audio_url.ends_with(".mp3"), "{audio_url}");
    let got = plain().get(&audio_url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()[CONTENT_TYPE], "audio/mpeg");
    assert!(got.bytes().await.unwrap().len() > 1000);
    let vtt_url = published(&no_redirects().get(&transcript).send().await.unwrap());
    assert!(
        vtt_url.starts_with(&format!("{public_base}/{show}/")),
        "{vtt_url}"
    );
    let vtt = plain().get(&vtt_url).send().await.unwrap();
    assert_eq!(vtt.status(), 200);
    assert_eq!(vtt.headers()[CONTENT_TYPE], "text/vtt; charset=utf-8");
    assert!(vtt.text().await.unwrap().starts_with("WEBVTT"));
    // Asked again, the same published files, without asking the bucket again.
    let heads = s3.public_heads();
    for _ in 0..3 {
        assert_eq!(
            published(&no_redirects().get(&enclosure).send().await.unwrap()),
            audio_url
        );
    }
    assert_eq!(
        s3.public_heads(),
        heads,
        "a published file is known once put"
    );
    assert_eq!(
        no_redirects().get(&chapters).send().await.unwrap().status(),
        200
    );

    // A private show's files are not published: presigned, and its transcript served here.
    let private = show_with_episode(&a, false).await;
    let (p_enclosure, p_transcript, _) =
        episode_links(&app, &new_feed_url(&a, &private).await).await;
    let p_url = presigned(&no_redirects().get(&p_enclosure).send().await.unwrap());
    assert!(!p_url.starts_with(&public_base), "{p_url}");
    assert_eq!(
        no_redirects()
            .get(&p_transcript)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let in_public = app
        .state
        .storage
        .list(&aimake::storage::Key::from_stored("public/"))
        .await
        .unwrap();
    assert_eq!(in_public.len(), 2, "{in_public:?}");
    assert!(
        in_public
            .iter()
            .all(|o| o.key.as_str().starts_with(&format!("public/{show}/"))),
        "{in_public:?}"
    );

    // Going private removes what was published, and the old feed's links stop working.
    let resp = a
        .patch(&format!("/api/podcasts/{show}"), &json!({"public": false}))
        .await;
    assert_eq!(resp.status(), 200);
    for url in [&audio_url, &vtt_url] {
        assert_eq!(
            plain().get(url).send().await.unwrap().status(),
            404,
            "{url}"
        );
    }
    assert_refused(
        no_redirects().get(&enclosure).send().await.unwrap(),
        403,
        "forbidden",
    )
    .await;

    // Public again: published again on request; deleting the episode removes its files.
    let resp = a
        .patch(&format!("/api/podcasts/{show}"), &json!({"public": true}))
        .await;
    assert_eq!(resp.status(), 200);
    let (enclosure, _, _) = episode_links(&app, &feed).await;
    let again = published(&no_redirects().get(&enclosure).send().await.unwrap());
    assert_eq!(again, audio_url, "the same content, the same address");
    assert_eq!(plain().get(&again).send().await.unwrap().status(), 200);
    let episodes: Value = a.get_json(&format!("/api/podcasts/{show}/episodes")).await;
    let episode = episodes["items"][0]["id"].as_str().unwrap();
    let resp = a
        .delete(&format!("/api/podcasts/{show}/episodes/{episode}"))
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(plain().get(&again).send().await.unwrap().status(), 404);
    app.stop().await;
}
