//! Accounts over HTTP: setup, registration policies, sessions, API tokens, roles, owners.

use aimake::auth::Role;
use aimake::config::Registration;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, error_code, session_cookie, set_cookie};

#[tokio::test]
async fn the_setup_token_creates_the_first_admin_once() {
    let app = TestApp::spawn().await;
    let status: Value = app.get("/api/setup").await.json().await.unwrap();
    assert_eq!(status["needed"], true);
    let token = app
        .state
        .auth
        .setup_token()
        .expect("a token while no admin exists");

    let account = |t: &str, password: &str| {
        json!({ "setup_token": t, "email": "Root@Example.com", "password": password,
                "display_name": "Root" })
    };
    let resp = app
        .post_json("/api/setup", &account("wrong", PASSWORD))
        .await;
    assert_eq!(resp.status(), 403);

    let resp = app.post_json("/api/setup", &account(&token, "short")).await;
    assert_eq!(resp.status(), 400, "a weak password is refused...");
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["details"]["password"].is_string(), "{body}");

    let resp = app
        .post_json("/api/setup", &account(&token, PASSWORD))
        .await;
    assert_eq!(resp.status(), 201, "...and the token still works after it");
    let cookie = session_cookie(&resp).expect("setup signs the admin in");
    let me: Value = resp.json().await.unwrap();
    assert_eq!(me["role"], "admin");
    assert_eq!(me["email"], "root@example.com");
    assert_eq!(me["display_name"], "Root");

    let me: Value = app
        .client
        .get(app.url("/api/me"))
        .header("cookie", format!("aimake_session={cookie}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "admin");

    let again = app
        .post_json(
            "/api/setup",
            &json!({ "setup_token": token, "email": "second@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(again.status(), 403, "the token dies on use");
    let status: Value = app.get("/api/setup").await.json().await.unwrap();
    assert_eq!(status["needed"], false);
    assert!(app.state.auth.setup_token().is_none());
    app.stop().await;
}

#[tokio::test]
async fn a_server_started_after_an_admin_exists_offers_no_setup() {
    let data = tempfile::tempdir().unwrap();
    let path = data.path().to_path_buf();
    let first = TestApp::spawn_with(|c| c.data.dir = path.clone()).await;
    first
        .create_user("admin@example.com", PASSWORD, Role::Admin)
        .await;
    first.stop().await;
    // One server per data dir: the second starts after the first has stopped.
    let second = TestApp::spawn_with(|c| c.data.dir = path).await;
    assert!(second.state.auth.setup_token().is_none());
    let status: Value = second.get("/api/setup").await.json().await.unwrap();
    assert_eq!(status["needed"], false);
    second.stop().await;
}

#[tokio::test]
async fn open_registration_creates_a_signed_in_user_with_a_unique_email() {
    let app = TestApp::spawn_with(|c| c.auth.registration = Registration::Open).await;
    let resp = app
        .post_json(
            "/api/auth/register",
            &json!({ "email": "ada@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(resp.status(), 201);
    assert!(session_cookie(&resp).is_some_and(|c| !c.is_empty()));
    let me: Value = resp.json().await.unwrap();
    assert_eq!(me["role"], "user");
    assert_eq!(me["quota"]["chars_used_this_month"], 0);
    assert!(me["created_at"].as_str().unwrap().ends_with('Z'));

    let resp = app
        .post_json(
            "/api/auth/register",
            &json!({ "email": "ADA@example.COM", "password": PASSWORD }),
        )
        .await;
    assert_eq!(resp.status(), 409, "emails are unique whatever their case");
    assert_eq!(error_code(resp).await, "conflict");

    let resp = app
        .post_json(
            "/api/auth/register",
            &json!({ "email": "not-an-email", "password": "short" }),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["details"]["email"].is_string());
    assert!(body["error"]["details"]["password"].is_string());
    app.stop().await;
}

#[tokio::test]
async fn invite_registration_needs_an_unused_unexpired_code() {
    let app = TestApp::spawn().await;
    let admin = app.signed_in("admin@example.com", Role::Admin).await;
    let register = |code: Option<&str>, email: &str| json!({ "email": email, "password": PASSWORD, "invite_code": code });

    let resp = app
        .post_json("/api/auth/register", &register(None, "a@example.com"))
        .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(error_code(resp).await, "invalid_invite");

    let invite: Value = {
        let resp = admin.post("/api/admin/invites", &json!({})).await;
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    };
    let code = invite["code"].as_str().unwrap();
    assert_eq!(invite["status"], "active");
    assert!(invite["expires_at"].is_null());

    let resp = app
        .post_json("/api/auth/register", &register(Some(code), "a@example.com"))
        .await;
    assert_eq!(resp.status(), 201);
    let resp = app
        .post_json("/api/auth/register", &register(Some(code), "b@example.com"))
        .await;
    assert_eq!(resp.status(), 403, "an invite is single-use");
    assert_eq!(error_code(resp).await, "invalid_invite");
    assert_eq!(
        app.post_json(
            "/api/auth/login",
            &json!({"email": "b@example.com", "password": PASSWORD})
        )
        .await
        .status(),
        401,
        "the refused registration left no account behind"
    );

    let expiring: Value = admin
        .post("/api/admin/invites", &json!({ "expires_in_s": 3600 }))
        .await
        .json()
        .await
        .unwrap();
    let expiring = expiring["code"].as_str().unwrap().to_string();
    let stored = expiring.clone();
    app.state
        .db
        .write(move |c| {
            c.execute(
                "UPDATE invites SET expires_at = 1 WHERE code = ?1",
                [&stored],
            )?;
            Ok(())
        })
        .await
        .unwrap();
    let resp = app
        .post_json(
            "/api/auth/register",
            &register(Some(&expiring), "c@example.com"),
        )
        .await;
    assert_eq!(resp.status(), 403, "an expired invite is refused");

    let list: Value = admin.get("/api/admin/invites").await.json().await.unwrap();
    let statuses: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["expired", "used"], "newest first");

    assert_eq!(
        admin
            .delete(&format!("/api/admin/invites/{expiring}"))
            .await
            .status(),
        204
    );
    assert_eq!(
        admin
            .delete(&format!("/api/admin/invites/{expiring}"))
            .await
            .status(),
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn closed_registration_is_refused() {
    let app = TestApp::spawn_with(|c| c.auth.registration = Registration::Closed).await;
    let resp = app
        .post_json(
            "/api/auth/register",
            &json!({ "email": "a@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(error_code(resp).await, "registration_closed");
    let status: Value = app.get("/api/setup").await.json().await.unwrap();
    assert_eq!(status["registration"], "closed", "the web app can tell");
    app.stop().await;
}

#[tokio::test]
async fn login_sets_a_safe_cookie_and_logout_revokes_the_session() {
    let app = TestApp::spawn().await;
    app.create_user("ada@example.com", PASSWORD, Role::User)
        .await;
    let resp = app
        .post_json(
            "/api/auth/login",
            &json!({ "email": " Ada@Example.com ", "password": PASSWORD }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let header = set_cookie(&resp).unwrap();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(header.contains(attr), "{attr} missing: {header}");
    }
    assert!(!header.contains("Secure"), "plain http: no Secure flag");
    let cookie = session_cookie(&resp).unwrap();
    assert_eq!(cookie.len(), 43, "256 random bits");

    let me = |cookie: String| {
        app.client
            .get(app.url("/api/me"))
            .header("cookie", format!("aimake_session={cookie}"))
            .send()
    };
    assert_eq!(me(cookie.clone()).await.unwrap().status(), 200);

    let stored: Vec<u8> = app
        .state
        .db
        .read(|c| Ok(c.query_row("SELECT token_hash FROM sessions", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(stored.len(), 32, "only a SHA-256 of the token is stored");
    assert_ne!(stored, cookie.as_bytes());

    let resp = app
        .client
        .post(app.url("/api/auth/logout"))
        .header("cookie", format!("aimake_session={cookie}"))
        .header("origin", app.origin())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(
        set_cookie(&resp).unwrap().contains("Max-Age=0"),
        "the cookie is cleared"
    );
    let resp = me(cookie).await.unwrap();
    assert_eq!(resp.status(), 401, "the session is revoked");
    assert_eq!(error_code(resp).await, "unauthenticated");
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = TestApp::spawn().await;
    app.create_user("ada@example.com", PASSWORD, Role::User)
        .await;
    let mut answers = Vec::new();
    for (email, password) in [
        ("ada@example.com", "not the password"),
        ("nobody@example.com", "not the password"),
        ("not an email", "not the password"),
    ] {
        let resp = app
            .post_json(
                "/api/auth/login",
                &json!({ "email": email, "password": password }),
            )
            .await;
        assert!(session_cookie(&resp).is_none());
        answers.push((resp.status(), resp.text().await.unwrap()));
    }
    assert_eq!(answers[0].0, 401);
    assert!(
        answers[0].1.contains("invalid_credentials"),
        "{}",
        answers[0].1
    );
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);
    app.stop().await;
}

#[tokio::test]
async fn sessions_end_after_the_idle_and_the_absolute_expiry() {
    let app = TestApp::spawn().await;
    let user = app.signed_in("ada@example.com", Role::User).await;
    assert_eq!(user.get("/api/me").await.status(), 200);

    let idle_days = i64::from(app.state.config.auth.session_idle_days);
    // Ages the sessions behind the server's back, so it must forget what it verified.
    let age = |column: &'static str, value: i64| {
        let (db, auth) = (app.state.db.clone(), app.state.auth.clone());
        async move {
            db.write(move |c| {
                c.execute(&format!("UPDATE sessions SET {column} = ?1"), [value])?;
                Ok(())
            })
            .await
            .unwrap();
            auth.forget_verified();
        }
    };
    let now = aimake::db::now_ms();
    age("last_seen_at", now - idle_days * 86_400_000 + 120_000).await;
    assert_eq!(
        user.get("/api/me").await.status(),
        200,
        "used within the idle limit"
    );
    age("last_seen_at", now - idle_days * 86_400_000 - 1_000).await;
    assert_eq!(user.get("/api/me").await.status(), 401, "idle too long");

    let cookie = app.login("ada@example.com", PASSWORD).await;
    let me = || {
        app.client
            .get(app.url("/api/me"))
            .header("cookie", format!("aimake_session={cookie}"))
            .send()
    };
    assert_eq!(me().await.unwrap().status(), 200);
    age("expires_at", now - 1).await;
    assert_eq!(
        me().await.unwrap().status(),
        401,
        "past the absolute expiry"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_token_name_with_control_characters_is_refused_and_nothing_is_created() {
    let app = TestApp::spawn().await;
    let user = app.signed_in("ada@example.com", Role::User).await;
    for name in ["line\nbreak", "bell\u{7}", "esc\u{1b}[31m", "   ", ""] {
        let resp = user.post("/api/tokens", &json!({ "name": name })).await;
        assert_eq!(resp.status(), 400, "{name:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
        assert!(body["error"]["details"]["name"].is_string(), "{body}");
    }
    let list: Value = user.get("/api/tokens").await.json().await.unwrap();
    assert_eq!(list["items"], json!([]), "nothing was created");
    let resp = user
        .post("/api/tokens", &json!({ "name": "tab\tok? no" }))
        .await;
    assert_eq!(resp.status(), 400, "a tab is a control character too");
    let (_, token) = user.create_token("Grüße, 日本 ✓").await;
    assert!(token.starts_with("amk_"));
    app.stop().await;
}

#[tokio::test]
async fn api_tokens_are_shown_once_work_as_bearer_and_stop_when_revoked() {
    let app = TestApp::spawn().await;
    let user = app.signed_in("ada@example.com", Role::User).await;
    let (id, token) = user.create_token("laptop script").await;
    assert!(token.starts_with("amk_"), "{token}");

    let bearer = |path: &str| app.client.get(app.url(path)).bearer_auth(&token).send();
    let resp = bearer("/api/me").await.unwrap();
    assert_eq!(resp.status(), 200);
    let me: Value = resp.json().await.unwrap();
    assert_eq!(me["email"], "ada@example.com");

    let list = user.get("/api/tokens").await.text().await.unwrap();
    assert!(
        !list.contains(&token[4..]),
        "listing never shows the secret"
    );
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["items"][0]["id"], id);
    assert_eq!(list["items"][0]["name"], "laptop script");
    assert!(
        list["items"][0]["last_used_at"].is_string(),
        "use is recorded"
    );
    assert!(list["next_cursor"].is_null());

    let stored: Vec<u8> = app
        .state
        .db
        .read(|c| Ok(c.query_row("SELECT token_hash FROM api_tokens", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(stored.len(), 32, "stored hashed");

    assert_eq!(
        user.delete(&format!("/api/tokens/{id}")).await.status(),
        204
    );
    assert_eq!(bearer("/api/me").await.unwrap().status(), 401);
    let list: Value = user.get("/api/tokens").await.json().await.unwrap();
    assert_eq!(list["items"], json!([]));

    let garbage = app
        .client
        .get(app.url("/api/me"))
        .bearer_auth("amk_not-a-real-token")
        .header("cookie", format!("aimake_session={}", user.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(
        garbage.status(),
        401,
        "a bad bearer token is not rescued by a good cookie"
    );
    app.stop().await;
}

#[tokio::test]
async fn token_lists_are_paginated_newest_first() {
    let app = TestApp::spawn().await;
    let user = app.signed_in("ada@example.com", Role::User).await;
    for n in 0..3 {
        user.create_token(&format!("t{n}")).await;
    }
    let first: Value = user.get("/api/tokens?limit=2").await.json().await.unwrap();
    let names: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["t2", "t1"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second: Value = user
        .get_json(&format!("/api/tokens?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(second["items"][0]["name"], "t0");
    assert!(second["next_cursor"].is_null());
    assert_eq!(user.get("/api/tokens?limit=0").await.status(), 400);
    assert_eq!(user.get("/api/tokens?cursor=nope").await.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn a_disabled_user_is_locked_out_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.signed_in("admin@example.com", Role::Admin).await;
    let user = app.signed_in("ada@example.com", Role::User).await;
    let (_, token) = user.create_token("script").await;
    let with_token = || {
        app.client
            .get(app.url("/api/me"))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(user.get("/api/me").await.status(), 200);
    assert_eq!(with_token().await.unwrap().status(), 200);

    let resp = admin
        .patch(
            &format!("/api/admin/users/{}", user.id),
            &json!({ "disabled": true }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let summary: Value = resp.json().await.unwrap();
    assert_eq!(summary["disabled"], true);

    assert_eq!(
        user.get("/api/me").await.status(),
        401,
        "the session, at once"
    );
    assert_eq!(
        with_token().await.unwrap().status(),
        401,
        "the token, at once"
    );
    let resp = app
        .post_json(
            "/api/auth/login",
            &json!({ "email": "ada@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(error_code(resp).await, "account_disabled");

    admin
        .patch(
            &format!("/api/admin/users/{}", user.id),
            &json!({ "disabled": false }),
        )
        .await;
    assert_eq!(with_token().await.unwrap().status(), 200, "enabled again");
    assert_eq!(
        user.get("/api/me").await.status(),
        401,
        "disabling ended the sessions for good"
    );
    app.stop().await;
}

#[tokio::test]
async fn another_users_token_is_not_found_and_stays_untouched() {
    let app = TestApp::spawn().await;
    let a = app.signed_in("a@example.com", Role::User).await;
    let b = app.signed_in("b@example.com", Role::User).await;
    let (a_id, a_token) = a.create_token("a's").await;

    let resp = b.delete(&format!("/api/tokens/{a_id}")).await;
    assert_eq!(
        resp.status(),
        404,
        "never 403: B must not learn the id exists"
    );
    assert_eq!(error_code(resp).await, "not_found");
    let missing = b.delete("/api/tokens/01J00000000000000000000000").await;
    assert_eq!(
        missing.status(),
        404,
        "the same answer as for an id that never existed"
    );

    let b_list: Value = b.get("/api/tokens").await.json().await.unwrap();
    assert_eq!(b_list["items"], json!([]));
    let still = app.get_with_key("/api/me", &a_token).await;
    assert_eq!(still.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn admin_routes_answer_only_admins() {
    let app = TestApp::spawn().await;
    let admin = app.signed_in("admin@example.com", Role::Admin).await;
    let user = app.signed_in("ada@example.com", Role::User).await;

    assert_eq!(app.get("/api/admin/users").await.status(), 401);
    let resp = user.get("/api/admin/users").await;
    assert_eq!(resp.status(), 403);
    assert_eq!(error_code(resp).await, "forbidden");
    assert_eq!(
        user.post("/api/admin/invites", &json!({})).await.status(),
        403
    );

    let list: Value = admin.get_json("/api/admin/users?q=ada").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["email"], "ada@example.com");
    assert!(list["items"][0].get("password_hash").is_none());

    let resp = admin
        .patch(
            &format!("/api/admin/users/{}", user.id),
            &json!({ "role": "admin", "quota_chars_per_month": 5000 }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        user.get("/api/admin/users").await.status(),
        200,
        "promoted at once"
    );
    let me: Value = user.get("/api/me").await.json().await.unwrap();
    assert_eq!(me["quota"]["chars_per_month"], 5000);

    let resp = admin
        .patch(
            &format!("/api/admin/users/{}", user.id),
            &json!({ "rol": "user" }),
        )
        .await;
    assert_eq!(
        resp.status(),
        400,
        "a misspelt field is an error, not a no-op"
    );
    let resp = admin
        .patch(
            "/api/admin/users/01J00000000000000000000000",
            &json!({ "disabled": true }),
        )
        .await;
    assert_eq!(resp.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_demoted_or_disabled() {
    let app = TestApp::spawn().await;
    let admin = app.signed_in("admin@example.com", Role::Admin).await;
    for change in [json!({ "role": "user" }), json!({ "disabled": true })] {
        let resp = admin
            .patch(&format!("/api/admin/users/{}", admin.id), &change)
            .await;
        assert_eq!(resp.status(), 409, "{change}");
    }
    let me: Value = admin.get("/api/me").await.json().await.unwrap();
    assert_eq!(me["role"], "admin", "nothing changed");
    app.stop().await;
}

#[tokio::test]
async fn changing_the_password_keeps_this_session_and_ends_the_others() {
    let app = TestApp::spawn().await;
    let here = app.signed_in("ada@example.com", Role::User).await;
    let elsewhere = app.login("ada@example.com", PASSWORD).await;
    let other = |cookie: &str| {
        app.client
            .get(app.url("/api/me"))
            .header("cookie", format!("aimake_session={cookie}"))
            .send()
    };
    assert_eq!(other(&elsewhere).await.unwrap().status(), 200);

    let resp = here
        .request(reqwest::Method::PUT, "/api/me/password")
        .json(
            &json!({ "current_password": "wrong password", "new_password": "brand new password" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = here
        .request(reqwest::Method::PUT, "/api/me/password")
        .json(&json!({ "current_password": PASSWORD, "new_password": "brand new password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(here.get("/api/me").await.status(), 200);
    assert_eq!(other(&elsewhere).await.unwrap().status(), 401);
    app.login("ada@example.com", "brand new password").await;

    let resp = here
        .patch("/api/me", &json!({ "display_name": "  Ada L.  " }))
        .await;
    let me: Value = resp.json().await.unwrap();
    assert_eq!(me["display_name"], "Ada L.");
    // A field left out stays as it is; `null` clears it.
    let me: Value = here
        .patch("/api/me", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["display_name"], "Ada L.");
    let me: Value = here
        .patch("/api/me", &json!({ "display_name": null }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["display_name"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn an_invite_request_may_leave_out_its_body_but_not_send_malformed_json() {
    let app = TestApp::spawn().await;
    let admin = app.signed_in("admin@example.com", Role::Admin).await;
    for blank in ["", "  \n"] {
        let resp = admin
            .request(reqwest::Method::POST, "/api/admin/invites")
            .body(blank)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{blank:?}");
        let invite: Value = resp.json().await.unwrap();
        assert!(invite["expires_at"].is_null(), "{invite}");
    }
    let resp = admin
        .request(reqwest::Method::POST, "/api/admin/invites")
        .header("content-type", "application/json")
        .body(r#"{"expires_in_s": "soon"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("Invalid JSON body: "), "{message}");
    app.stop().await;
}
