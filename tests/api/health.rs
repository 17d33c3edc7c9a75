use serde_json::Value;

use crate::helpers::{S3Server, TestApp};

#[tokio::test]
async fn health_answers_ok_with_the_version() {
    let app = TestApp::spawn().await;
    let resp = app.get("/health").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    app.stop().await;
}

#[tokio::test]
async fn ready_checks_the_database_and_the_local_store() {
    let app = TestApp::spawn().await;
    let resp = app.get("/health/ready").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["checks"]["database"], true);
    assert_eq!(body["checks"]["storage"], true);
    assert!(
        app.dir.path().join("aimake.db").exists(),
        "the database lives in data.dir"
    );
    assert!(
        app.dir.path().join("media").is_dir(),
        "local media lives in data.dir/media"
    );
    app.stop().await;
}

#[tokio::test]
async fn ready_reports_degraded_storage_when_the_s3_server_stops() {
    let s3 = S3Server::start().await;
    let app = TestApp::spawn_with(|c| s3.configure(c)).await;

    let resp = app.get("/health/ready").await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);

    s3.stop().await;
    let resp = app.get("/health/ready").await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["database"], true);
    assert_eq!(body["checks"]["storage"], false);

    let live = app.get("/health").await;
    assert_eq!(live.status(), 200, "liveness does not depend on storage");
    app.stop().await;
}

#[tokio::test]
async fn a_request_id_is_echoed_when_the_client_sends_one() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-123");

    let a = app.get("/api/nope").await;
    let b = app.get("/api/nope").await;
    let (a, b) = (
        a.headers()["x-request-id"].clone(),
        b.headers()["x-request-id"].clone(),
    );
    assert_ne!(a, b, "generated ids are unique");
    assert_eq!(a.len(), 26, "generated ids are ULIDs");
    app.stop().await;
}

#[tokio::test]
async fn unknown_api_paths_and_methods_get_the_json_error_shape() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/nope",
        "/api",
        "/api/audios/01J00000000000000000000000/x",
        "/media/x/y",
        "/feeds/x.xml",
    ] {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), 404, "{path}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}");
        assert!(body["error"]["message"].is_string());
    }
    let resp = app.client.post(app.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    app.stop().await;
}

#[tokio::test]
async fn shutdown_lets_the_server_return_and_frees_the_port() {
    let app = TestApp::spawn().await;
    let addr = app.addr;
    assert_eq!(app.get("/health").await.status(), 200);
    app.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens after shutdown"
    );
}
