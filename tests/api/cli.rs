//! The binary itself: subcommands, exit codes, and a real SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use std::io::Write;

use serde_json::json;

use crate::helpers::{TestApp, bin};

fn aimake(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir)
        .env_remove("AIMAKE_CONFIG")
        .env_remove("RUST_LOG")
        .env("AIMAKE_DATA__DIR", dir.join("data"))
        .env("AIMAKE_METRICS__BIND", "127.0.0.1:0")
        // `serve` would fetch the neural voice models from the internet otherwise.
        .env("AIMAKE_MODELS__AUTO_PULL", "false");
    cmd
}

#[test]
fn help_lists_the_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let out = aimake(dir.path()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for sub in [
        "serve",
        "migrate",
        "config",
        "healthcheck",
        "user",
        "backup",
        "restore",
        "models",
        "version",
    ] {
        assert!(text.contains(sub), "{sub} missing from --help: {text}");
    }
}

#[test]
fn version_says_the_web_app_is_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let out = aimake(dir.path()).arg("version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("aimake {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("web app embedded"), "{text}");
}

#[test]
fn config_check_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("aimake.toml"),
        "[server]\nbind = \"127.0.0.1:9123\"\n",
    )
    .unwrap();
    let out = aimake(dir.path())
        .args(["config", "check"])
        .env("OPENAI_API_KEY", "sk-must-not-print")
        .env("AIMAKE_LIMITS__REQUESTS_PER_MINUTE", "42")
        .env("AIMAKE_TYPO__KEY", "x")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("bind = \"127.0.0.1:9123\""),
        "./aimake.toml is read: {stdout}"
    );
    assert!(stdout.contains("requests_per_minute = 42"), "{stdout}");
    assert!(
        stdout.contains("[redacted]") && !stdout.contains("sk-must-not-print"),
        "{stdout}"
    );
    assert!(
        stderr.contains("AIMAKE_TYPO__KEY"),
        "unknown variables are warned about: {stderr}"
    );
}

#[test]
fn config_check_fails_on_an_invalid_config_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[storage]\nknid = \"s3\"\n").unwrap();
    let out = aimake(dir.path())
        .args(["config", "check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("knid") && stderr.contains("bad.toml"),
        "{stderr}"
    );

    let out = aimake(dir.path())
        .args(["config", "check"])
        .env("AIMAKE_CONFIG", dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "an explicit config file must exist");
}

#[test]
fn migrate_creates_the_database_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = aimake(dir.path()).arg("migrate").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let expected = format!(
            "schema version {}",
            aimake::db::migrations::latest_version()
        );
        assert!(stdout.contains(&expected), "{stdout}");
    }
    assert!(dir.path().join("data/aimake.db").exists());
}

#[tokio::test]
async fn healthcheck_exits_zero_only_when_the_server_is_ready() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(bin())
        .arg("healthcheck")
        .current_dir(dir.path())
        .env("AIMAKE_SERVER__BIND", app.addr.to_string())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let addr = app.addr;
    app.stop().await;

    let out = tokio::process::Command::new(bin())
        .arg("healthcheck")
        .current_dir(dir.path())
        .env("AIMAKE_SERVER__BIND", addr.to_string())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "no server: unhealthy");
}

#[test]
fn serve_logs_where_to_open_it_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = aimake(dir.path())
        .args(["serve", "--log-format", "json"])
        .env("AIMAKE_SERVER__BIND", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let ready = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains("aimake is ready"))
        .expect("the server logs when it is ready");
    let event: serde_json::Value = serde_json::from_str(&ready).expect("JSON log lines");
    let addr = event["addr"].as_str().unwrap().to_string();
    assert!(
        event["message"]
            .as_str()
            .unwrap()
            .contains(&format!("open http://{addr}")),
        "{ready}"
    );

    let resp = std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2));
    assert!(resp.is_ok(), "the server listens on the logged address");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "clean exit on SIGTERM: {exit:?} {rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("received SIGTERM")),
        "{rest:?}"
    );
    assert!(
        rest.iter().any(|l| l.contains("aimake stopped")),
        "{rest:?}"
    );
}

/// Runs `aimake user ARGS` on `data`, feeding `stdin`; returns (success, stdout, stderr).
fn user_cmd(data: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = aimake(dir.path())
        .env("AIMAKE_DATA__DIR", data)
        .arg("user")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn user_commands_manage_accounts_beside_the_running_server() {
    let app = TestApp::spawn().await;
    let data = app.dir.path().to_path_buf();
    let login = |password: &'static str| {
        app.post_json(
            "/api/auth/login",
            json!({ "email": "ops@example.com", "password": password }),
        )
    };

    let (ok, out, err) = user_cmd(
        &data,
        &["add", "Ops@Example.com", "--admin", "--password-stdin"],
        "first password here\n",
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("ops@example.com") && out.contains("admin"),
        "{out}"
    );
    assert!(!out.contains("first password here") && !err.contains("first password here"));

    let (ok, _, err) = user_cmd(
        &data,
        &["add", "ops@example.com", "--password-stdin"],
        "another password\n",
    );
    assert!(!ok, "the email is taken");
    assert!(err.contains("already exists"), "{err}");
    let (ok, _, err) = user_cmd(
        &data,
        &["add", "x@example.com", "--password-stdin"],
        "short\n",
    );
    assert!(!ok && err.contains("at least 8"), "{err}");
    let (ok, _, err) = user_cmd(&data, &["add", "y@example.com"], "");
    assert!(
        !ok && err.contains("--password-stdin"),
        "no terminal to prompt on: {err}"
    );

    let resp = login("first password here").await;
    assert_eq!(resp.status(), 200, "the running server sees the new admin");
    let cookie = crate::helpers::session_cookie(&resp).unwrap();
    let me = || {
        app.client
            .get(app.url("/api/me"))
            .header("cookie", format!("aimake_session={cookie}"))
            .send()
    };

    assert_eq!(me().await.unwrap().status(), 200);

    let (ok, out, _) = user_cmd(&data, &["list"], "");
    assert!(ok);
    let row = out
        .lines()
        .find(|l| l.contains("ops@example.com"))
        .expect(&out);
    assert!(row.contains("admin") && row.contains("active"), "{row}");

    let (ok, _, err) = user_cmd(
        &data,
        &["passwd", "ops@example.com", "--password-stdin"],
        "second password here\n",
    );
    assert!(ok, "{err}");
    // The server remembers the session it verified a moment ago for a few seconds (README);
    // a change from another process reaches it when that memory expires.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while me().await.unwrap().status() != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "passwd signs the user out within seconds"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(login("first password here").await.status(), 401);
    let resp = login("second password here").await;
    assert_eq!(resp.status(), 200);

    let (ok, _, err) = user_cmd(
        &data,
        &["add", "second@example.com", "--admin", "--password-stdin"],
        "a third password\n",
    );
    assert!(ok, "{err}");
    let (ok, _, err) = user_cmd(&data, &["disable", "ops@example.com"], "");
    assert!(ok, "{err}");
    assert_eq!(
        login("second password here").await.status(),
        403,
        "disabled"
    );
    let (ok, out, _) = user_cmd(&data, &["list"], "");
    assert!(
        ok && out
            .lines()
            .any(|l| l.contains("ops@example.com") && l.contains("disabled")),
        "{out}"
    );
    let (ok, _, _) = user_cmd(&data, &["enable", "ops@example.com"], "");
    assert!(ok);
    assert_eq!(login("second password here").await.status(), 200);

    let (ok, _, err) = user_cmd(&data, &["disable", "nobody@example.com"], "");
    assert!(!ok && err.contains("no user"), "{err}");
    app.stop().await;
}
