use crate::helpers::TestApp;

/// The hashed JS entry that index.html references.
async fn main_script(app: &TestApp) -> String {
    let html = app.get("/").await.text().await.unwrap();
    html.match_indices("/assets/")
        .map(|(i, _)| {
            let r = &html[i..];
            r[..r.find('"').unwrap()].to_string()
        })
        .find(|p| p.ends_with(".js"))
        .expect("a JS entry")
}

#[tokio::test]
async fn the_root_and_deep_links_serve_index_html_without_caching() {
    let app = TestApp::spawn().await;
    for path in [
        "/",
        "/library",
        "/podcasts/01J00000000000000000000000/episodes",
        "/settings?tab=tokens",
    ] {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(
            resp.headers()["content-type"],
            "text/html; charset=utf-8",
            "{path}"
        );
        assert_eq!(resp.headers()["cache-control"], "no-cache", "{path}");
        assert!(resp.headers().contains_key("content-security-policy"));
        let html = resp.text().await.unwrap();
        assert!(html.contains("<div id=\"root\">"), "{path}: {html}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_revalidated_page_keeps_the_page_policy() {
    // A browser replaces its cached copy's headers with a 304's: a 304 with a stricter policy
    // than the page's would leave the app unable to run its own scripts.
    let app = TestApp::spawn().await;
    let first = app.get("/studio").await;
    let policy = first.headers()["content-security-policy"].clone();
    assert!(policy.to_str().unwrap().contains("script-src 'self'"));
    let etag = first.headers()["etag"].clone();
    let again = app
        .client
        .get(app.url("/studio"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["content-security-policy"], policy);
    assert_eq!(
        again.headers()["referrer-policy"],
        "strict-origin-when-cross-origin"
    );
    app.stop().await;
}

#[tokio::test]
async fn hashed_assets_are_immutable_and_precompressed() {
    let app = TestApp::spawn().await;
    let script = main_script(&app).await;

    let plain = app
        .client
        .get(app.url(&script))
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(
        plain.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(
        plain.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    assert!(plain.headers().get("content-encoding").is_none());
    let etag = plain.headers()["etag"].to_str().unwrap().to_string();
    let raw = plain.bytes().await.unwrap();

    for (accept, expected) in [
        ("br, gzip", "br"),
        ("gzip", "gzip"),
        ("gzip;q=1, br;q=0", "gzip"),
    ] {
        let resp = app
            .client
            .get(app.url(&script))
            .header("accept-encoding", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-encoding"], expected, "{accept}");
        assert_eq!(resp.headers()["vary"], "accept-encoding");
        assert_ne!(
            resp.headers()["etag"].to_str().unwrap(),
            etag,
            "each encoding has its own etag"
        );
        let compressed = resp.bytes().await.unwrap();
        assert!(
            compressed.len() < raw.len(),
            "{expected} variant is smaller"
        );
    }

    let cached = app
        .client
        .get(app.url(&script))
        .header("accept-encoding", "identity")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    assert!(cached.bytes().await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_missing_asset_is_a_404_not_the_spa() {
    let app = TestApp::spawn().await;
    let resp = app.get("/assets/index-doesnotexist.js").await;
    assert_eq!(resp.status(), 404);
    assert!(!resp.text().await.unwrap().contains("<div id=\"root\">"));
    app.stop().await;
}

#[tokio::test]
async fn assets_carry_the_same_headers_with_or_without_an_origin() {
    // Assets are answered before routing unless the request names an origin (then the CORS
    // layer has its say): both ways give the same answer.
    let app = TestApp::spawn_with(|c| {
        c.server.cors_origins = vec!["http://localhost:5173".into()];
    })
    .await;
    let script = main_script(&app).await;
    let get = |origin: Option<&'static str>| {
        let mut req = app
            .client
            .get(app.url(&script))
            .header("accept-encoding", "br, gzip");
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        req.send()
    };
    let direct = get(None).await.unwrap();
    let cross = get(Some("http://localhost:5173")).await.unwrap();
    assert_eq!(
        cross.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert!(!direct.headers().contains_key("access-control-allow-origin"));
    for name in [
        "content-type",
        "content-encoding",
        "cache-control",
        "etag",
        "vary",
        "x-content-type-options",
        "x-frame-options",
        "content-security-policy",
    ] {
        assert_eq!(
            direct.headers().get(name),
            cross.headers().get(name),
            "{name}"
        );
        assert!(direct.headers().contains_key(name), "{name}");
    }
    for resp in [&direct, &cross] {
        let id = resp.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 26, "a fresh request id: {id}");
    }
    assert_eq!(direct.headers()["x-frame-options"], "DENY");
    let (a, b) = (direct.bytes().await.unwrap(), cross.bytes().await.unwrap());
    assert_eq!(a, b);
    app.stop().await;
}
