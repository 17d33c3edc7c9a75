//! The OpenAPI description at `/api/openapi.json` and its reference page at `/api/docs`.

use std::process::Stdio;

use aimake::auth::Role;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::helpers::{TestApp, client_python};

/// Runs `script` on `python` with `input` on its stdin.
async fn run_python(python: &std::path::Path, script: &str, input: &[u8]) -> std::process::Output {
    let mut child = tokio::process::Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    child.wait_with_output().await.unwrap()
}

/// Checks each `(schema pointer, answer)` against the document's schema at that pointer with
/// `jsonschema` (JSON Schema 2020-12, OpenAPI 3.1's dialect): the pointers that did not match,
/// with the complaints.
async fn mismatches(python: &std::path::Path, doc: &Value, cases: &[(String, Value)]) -> Value {
    let out = run_python(
        python,
        "import json, sys\n\
             from jsonschema import Draft202012Validator\n\
             doc, cases = json.load(sys.stdin)\n\
             bad = []\n\
             for pointer, answer in cases:\n\
             \x20   schema = dict(doc, **{'$ref': pointer})\n\
             \x20   errors = [e.message for e in Draft202012Validator(schema).iter_errors(answer)]\n\
             \x20   if errors:\n\
             \x20       bad.append([pointer, errors])\n\
             print(json.dumps(bad))\n",
        &serde_json::to_vec(&json!([doc, cases])).unwrap(),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The pointer to the JSON schema of an operation's answer.
fn answer_schema(method: &str, path: &str, status: u16) -> String {
    format!(
        "#/paths/{}/{method}/responses/{status}/content/application~1json/schema",
        path.replace('~', "~0").replace('/', "~1")
    )
}

#[tokio::test]
async fn real_answers_have_the_shapes_the_document_gives_them() {
    let Some(python) = client_python() else {
        eprintln!(
            "SKIPPED real_answers_have_the_shapes_the_document_gives_them: python3 is not \
             installed, so jsonschema cannot run"
        );
        return;
    };
    let app = TestApp::spawn().await;
    let doc: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    let setup: Value = app.get("/api/setup").await.json().await.unwrap();
    let session = app.signed_in("ada@example.com", Role::User).await;
    let me: Value = session.get("/api/me").await.json().await.unwrap();
    let token = session.post("/api/tokens", &json!({"name": "ci"})).await;
    assert_eq!(token.status(), 201);
    let token: Value = token.json().await.unwrap();
    let tokens: Value = session.get("/api/tokens").await.json().await.unwrap();
    let audio = session
        .post("/api/audios", &json!({"text": "Hello there."}))
        .await;
    assert_eq!(audio.status(), 202);
    let audio: Value = audio.json().await.unwrap();
    let audios: Value = session.get("/api/audios").await.json().await.unwrap();
    let missing = session.get("/api/audios/01J00000000000000000000000").await;
    assert_eq!(missing.status(), 404);
    let missing: Value = missing.json().await.unwrap();
    let openai = app.get("/v1/models").await;
    assert_eq!(openai.status(), 401);
    let openai: Value = openai.json().await.unwrap();
    let podcast = session
        .post("/api/podcasts", &json!({"title": "A show"}))
        .await;
    assert_eq!(podcast.status(), 201);
    let podcast: Value = podcast.json().await.unwrap();
    let podcasts: Value = session.get("/api/podcasts").await.json().await.unwrap();
    let admin = app.signed_in("admin@example.com", Role::Admin).await;
    let users: Value = admin.get("/api/admin/users").await.json().await.unwrap();
    let invite = admin.post("/api/admin/invites", &json!({})).await;
    assert_eq!(invite.status(), 201);
    let invite: Value = invite.json().await.unwrap();
    let invites: Value = admin.get("/api/admin/invites").await.json().await.unwrap();
    let schema = |name: &str| format!("#/components/schemas/{name}");
    let cases = vec![
        (answer_schema("get", "/api/setup", 200), setup),
        (schema("User"), me.clone()),
        (answer_schema("post", "/api/tokens", 201), token),
        (answer_schema("get", "/api/tokens", 200), tokens),
        (schema("Audio"), audio),
        (answer_schema("get", "/api/audios", 200), audios),
        (schema("Error"), missing),
        (schema("OpenAiError"), openai),
        (schema("Podcast"), podcast),
        (answer_schema("get", "/api/podcasts", 200), podcasts),
        (answer_schema("get", "/api/admin/users", 200), users),
        (schema("Invite"), invite),
        (answer_schema("get", "/api/admin/invites", 200), invites),
        // A user without an id: the schemas do refuse what they do not describe.
        (schema("User"), json!({"email": me["email"]})),
    ];
    let bad = mismatches(&python, &doc, &cases).await;
    assert_eq!(
        bad.as_array().unwrap().len(),
        1,
        "answers that differ from the document: {bad:#}"
    );
    assert_eq!(bad[0][0], schema("User"), "{bad:#}");
    app.stop().await;
}

/// Runs `openapi-spec-validator` on `document`: `Ok` when valid, else its complaint.
async fn validate(python: &std::path::Path, document: &[u8]) -> Result<(), String> {
    let out = run_python(
        python,
        "import json, sys\n\
             from openapi_spec_validator import validate\n\
             validate(json.load(sys.stdin))\n",
        document,
    )
    .await;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn the_openapi_document_is_served_to_anyone_and_passes_the_validator() {
    let app = TestApp::spawn().await;
    let resp = app.get("/api/openapi.json").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["cache-control"], "public, max-age=3600");
    let served = resp.bytes().await.unwrap();
    let again = app.get("/api/openapi.json").await.bytes().await.unwrap();
    assert_eq!(served, again, "the document is built once");
    let doc: Value = serde_json::from_slice(&served).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let speech = &doc["paths"]["/v1/audio/speech"]["post"];
    assert_eq!(
        speech["requestBody"]["content"]["application/json"]["schema"]["required"],
        serde_json::json!(["model", "input", "voice"])
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["session"]["name"],
        "aimake_session"
    );
    app.stop().await;

    let Some(python) = client_python() else {
        eprintln!(
            "SKIPPED the_openapi_document_is_served_to_anyone_and_passes_the_validator's \
             validation: python3 is not installed, so openapi-spec-validator cannot run"
        );
        return;
    };
    validate(&python, &served)
        .await
        .unwrap_or_else(|e| panic!("the served document is not valid OpenAPI:\n{e}"));
    // The validator does refuse a broken document, so its pass above means something.
    let mut broken = doc.clone();
    broken["paths"]["/api/me"]["get"]["responses"]["200"] = serde_json::json!({"content": {}});
    let refused = validate(&python, &serde_json::to_vec(&broken).unwrap()).await;
    assert!(refused.is_err(), "a response without a description passed");
}

#[tokio::test]
async fn the_api_reference_is_a_page_of_the_app_under_its_policy_with_only_bundled_scripts() {
    let app = TestApp::spawn().await;
    let app_page = app.get("/").await;
    let policy = app_page.headers()["content-security-policy"].clone();
    let resp = app.get("/api/docs").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(resp.headers()["content-security-policy"], policy);
    assert!(
        policy.to_str().unwrap().contains("script-src 'self';"),
        "{policy:?}"
    );
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("<rapi-doc") && html.contains("spec-url=\"/api/openapi.json\""),
        "{html}"
    );
    // No inline script (the policy forbids them): every script is a file of the build, served.
    let scripts: Vec<&str> = html
        .match_indices("<script")
        .map(|(i, _)| &html[i..])
        .collect();
    assert!(!scripts.is_empty(), "{html}");
    for script in scripts {
        let tag = &script[..script.find('>').unwrap()];
        let src = tag
            .split("src=\"")
            .nth(1)
            .unwrap_or_else(|| panic!("an inline script: {tag}"));
        let src = &src[..src.find('"').unwrap()];
        assert!(src.starts_with("/assets/"), "{tag}");
        let asset = app.get(src).await;
        assert_eq!(asset.status(), 200, "{src}");
        let kind = asset.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(kind.starts_with("text/javascript"), "{src}: {kind}");
    }
    app.stop().await;
}
