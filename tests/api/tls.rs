//! HTTPS served by aimake itself: certificates from Debian's `pebble` (Let's Encrypt's ACME
//! test server) on 127.0.0.1, which checks the challenges for real against aimake's listeners
//! (TLS-ALPN-01 on the HTTPS port, HTTP-01 on the plain one), with `pebble-challtestsrv`
//! answering its DNS questions with 127.0.0.1; and certificates of the operator's own,
//! reloaded when their files change and on SIGHUP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aimake::auth::Role;
use aimake::config::AcmeChallenge;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{PASSWORD, TestApp};

const DOMAIN: &str = "audio.aimake.test";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A self-signed certificate and key (PEM) for `names`.
fn self_signed(names: &[&str]) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

/// pebble and its DNS on loopback, validating against aimake's two ports.
struct Pebble {
    pebble: Child,
    dns: Child,
    dir: tempfile::TempDir,
    /// The ACME directory URL.
    directory: String,
    /// The certificate of pebble's own HTTPS listener (`server.acme.ca_root`).
    listener_cert: PathBuf,
    management: u16,
}

impl Pebble {
    /// `validity_s`: how long the certificates it issues last (its default is years).
    async fn start(http_port: u16, tls_port: u16, validity_s: Option<u64>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(&["localhost", "127.0.0.1"]);
        let listener_cert = dir.path().join("pebble.crt");
        std::fs::write(&listener_cert, &cert).unwrap();
        std::fs::write(dir.path().join("pebble.key"), &key).unwrap();
        let (acme, management, dns, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let mut config = serde_json::json!({
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": listener_cert,
            "privateKey": dir.path().join("pebble.key"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        });
        if let Some(s) = validity_s {
            config["certificateValidityPeriod"] = s.into();
        }
        let config_path = dir.path().join("pebble.json");
        std::fs::write(
            &config_path,
            serde_json::to_vec(&serde_json::json!({ "pebble": config })).unwrap(),
        )
        .unwrap();
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        // Every A question is answered 127.0.0.1, AAAA not at all: the checks reach aimake.
        let dns_server = Command::new("pebble-challtestsrv")
            .args([
                "-management",
                &format!("127.0.0.1:{dns_management}"),
                "-dns01",
                &format!("127.0.0.1:{dns}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
            ])
            .stdout(log("dns.log"))
            .stderr(log("dns.err"))
            .spawn()
            .expect("pebble-challtestsrv runs (apt-get install pebble)");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("pebble runs (apt-get install pebble)");
        let me = Self {
            pebble,
            dns: dns_server,
            dir,
            directory: format!("https://127.0.0.1:{acme}/dir"),
            listener_cert,
            management,
        };
        let client = me.client();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client.get(&me.directory).send().await
                && r.status() == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "pebble answers: {}", me.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        me
    }

    /// A client that trusts pebble's own listener.
    fn client(&self) -> reqwest::Client {
        let cert = std::fs::read(&self.listener_cert).unwrap();
        reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([reqwest::Certificate::from_pem(&cert).unwrap()])
            .build()
            .unwrap()
    }

    /// The root pebble issues under (a new one each run), PEM.
    async fn root(&self) -> Vec<u8> {
        let url = format!("https://127.0.0.1:{}/roots/0", self.management);
        let resp = self.client().get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap().to_vec()
    }

    fn configure(&self, config: &mut aimake::config::Config, http: u16, tls: u16) {
        config.server.domains = vec![DOMAIN.into()];
        config.server.bind = format!("127.0.0.1:{http}");
        config.server.tls_bind = format!("127.0.0.1:{tls}");
        config.server.acme.directory = self.directory.clone();
        config.server.acme.ca_root = self.listener_cert.display().to_string();
        config.server.acme.email = "ops@aimake.test".into();
    }

    fn log(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!("{}{}", read("pebble.log"), read("pebble.err"))
    }

    fn stop(&mut self) {
        let _ = self.pebble.kill();
        let _ = self.pebble.wait();
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
        let _ = self.dns.kill();
        let _ = self.dns.wait();
    }
}

fn roots(pem: &[u8]) -> Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(roots)
}

type TlsStream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A TLS connection to `addr` for `name`, offering `alpn`; fails when the handshake does.
async fn connect(
    addr: SocketAddr,
    name: &str,
    roots: &Arc<rustls::RootCertStore>,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream> {
    let mut config = rustls::ClientConfig::builder_with_provider(aimake::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
        .await
}

/// The leaf certificate a handshake with `addr` presents.
async fn served_leaf(addr: SocketAddr, name: &str, roots: &Arc<rustls::RootCertStore>) -> Vec<u8> {
    let stream = connect(addr, name, roots, &[b"http/1.1"]).await.unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// One HTTP/1.1 GET on an open connection, which stays open: the status.
async fn get_on(stream: &mut TlsStream, path: &str) -> u16 {
    let request = format!("GET {path} HTTP/1.1\r\nhost: {DOMAIN}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, length) = loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            break (end + 4, length);
        }
    };
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf[9..12]).parse().unwrap()
}

/// A client that trusts `root` and reaches `DOMAIN` at `tls`.
fn https_client(root: &[u8], tls: SocketAddr, http1_only: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(root).unwrap()])
        .resolve(DOMAIN, tls)
        .redirect(reqwest::redirect::Policy::none());
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

/// Readiness as a local probe reads it on the plain port.
async fn readiness(app: &TestApp) -> (u16, Value) {
    let resp = app.get("/health/ready").await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Waits until readiness says HTTPS has a certificate.
async fn wait_for_certificate(app: &TestApp, pebble: &Pebble, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = readiness(app).await;
        if status == 200 && body["checks"]["tls"] == true {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "no certificate: {body}\npebble: {}",
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// pebble issuing certificates of `validity_s`, and aimake (set up further by `customize`)
/// serving one it obtained from it: the plain and HTTPS ports, and readiness once it is.
async fn certified(
    validity_s: Option<u64>,
    customize: impl FnOnce(&mut aimake::config::Config),
) -> (Pebble, TestApp, u16, u16, Value) {
    let (http, tls) = (free_port(), free_port());
    let pebble = Pebble::start(http, tls, validity_s).await;
    let app = TestApp::spawn_with(|c| {
        pebble.configure(c, http, tls);
        customize(c);
    })
    .await;
    let ready = wait_for_certificate(&app, &pebble, Duration::from_secs(60)).await;
    (pebble, app, http, tls, ready)
}

#[tokio::test]
async fn pebble_issues_a_certificate_over_tls_alpn_01_and_https_serves_h2_h1_hsts_and_redirects() {
    let (pebble, app, http, tls, ready) = certified(None, |c| {
        c.server.acme.challenge = AcmeChallenge::TlsAlpn01;
    })
    .await;
    let tls_addr = app.tls_addr.expect("HTTPS is served");
    assert_eq!(app.origin(), format!("https://{DOMAIN}:{tls}"));
    assert!(
        !pebble.log().contains("validate w/ HTTP"),
        "TLS-ALPN-01 alone was checked: {}",
        pebble.log()
    );
    assert!(ready["tls"]["not_after"].is_string(), "{ready}");
    assert!(ready["tls"]["error"].is_null(), "{ready}");

    // A client that trusts pebble's root accepts the certificate, for the domain.
    let root = pebble.root().await;
    let h2 = https_client(&root, tls_addr, false);
    let resp = h2
        .get(format!("https://{DOMAIN}:{tls}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2, "h2 by ALPN");
    assert!(
        resp.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age="),
        "HSTS over HTTPS"
    );
    let h1 = https_client(&root, tls_addr, true);
    let resp = h1
        .get(format!("https://{DOMAIN}:{tls}/api/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), 401, "the API answers over HTTP/1.1 too");

    // Sign-in over HTTPS sets a Secure cookie (the public URL is https).
    app.create_user("tls@example.com", PASSWORD, Role::User)
        .await;
    let resp = h2
        .post(format!("https://{DOMAIN}:{tls}/api/auth/login"))
        .header("origin", app.origin())
        .json(&serde_json::json!({ "email": "tls@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("Secure"), "{cookie}");

    // Plain HTTP redirects to HTTPS, method, path and query kept.
    let plain = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = plain
        .post(format!("http://127.0.0.1:{http}/api/audios?x=1"))
        .header("host", format!("{DOMAIN}:{http}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(
        resp.headers()["location"],
        format!("https://{DOMAIN}:{tls}/api/audios?x=1").as_str()
    );
    // No challenge is pending now: the challenge path answers nothing, and an `acme-tls/1`
    // handshake (only the authority's check offers it) gets no certificate.
    let resp = plain
        .get(format!(
            "http://127.0.0.1:{http}/.well-known/acme-challenge/x"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let pebble_roots = roots(&root);
    assert!(
        connect(tls_addr, DOMAIN, &pebble_roots, &[b"acme-tls/1"])
            .await
            .is_err()
    );

    // The account and the certificate are kept, owner-only, in the data directory.
    let authority = url::Url::parse(&pebble.directory).unwrap();
    let stored_in = format!("tls/127.0.0.1_{}", authority.port().unwrap());
    let stored = app.dir.path().join(&stored_in);
    for file in ["account.json", "cert.pem", "key.pem"] {
        assert!(stored.join(file).exists(), "{file} in {}", stored.display());
        #[cfg(unix)]
        assert_eq!(mode(&stored.join(file)), 0o600, "{file}");
    }
    let issued = served_leaf(tls_addr, DOMAIN, &pebble_roots).await;
    let kept = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(kept.path().join(&stored_in)).unwrap();
    for file in ["account.json", "cert.pem", "key.pem"] {
        std::fs::copy(stored.join(file), kept.path().join(&stored_in).join(file)).unwrap();
    }
    app.stop().await;

    // A restart serves the stored certificate at once, without asking pebble.
    let mut pebble = pebble;
    pebble.stop();
    let again = TestApp::spawn_with(|c| {
        pebble.configure(c, http, tls);
        c.data.dir = kept.path().to_path_buf();
    })
    .await;
    let (status, body) = readiness(&again).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        served_leaf(again.tls_addr.unwrap(), DOMAIN, &pebble_roots).await,
        issued
    );
    again.stop().await;
}

#[tokio::test]
async fn http_01_on_the_plain_port_gets_a_certificate_too() {
    let (pebble, app, http, tls, _) = certified(None, |c| {
        c.server.acme.challenge = AcmeChallenge::Http01;
    })
    .await;
    let root = pebble.root().await;
    let resp = https_client(&root, app.tls_addr.unwrap(), false)
        .get(format!("https://{DOMAIN}:{tls}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        pebble.log().contains(&format!(
            "validate w/ HTTP: http://{DOMAIN}:{http}/.well-known/acme-challenge/"
        )),
        "pebble checked over HTTP-01 on the plain port: {}",
        pebble.log()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_short_lived_certificate_is_renewed_in_place_and_a_failed_renewal_keeps_it_serving() {
    // 15 s certificates: renewed with a third of their life left, at about 10 s.
    let (mut pebble, app, _, _, _) = certified(Some(15), |c| c.alerts.evaluate_every_s = 1).await;
    let tls_addr = app.tls_addr.unwrap();
    let pebble_roots = roots(&pebble.root().await);
    let first = served_leaf(tls_addr, DOMAIN, &pebble_roots).await;
    // A connection opened on the first certificate, kept open across the renewal.
    let mut open = connect(tls_addr, DOMAIN, &pebble_roots, &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(get_on(&mut open, "/health").await, 200);

    let deadline = Instant::now() + Duration::from_secs(40);
    let second = loop {
        let leaf = served_leaf(tls_addr, DOMAIN, &pebble_roots).await;
        if leaf != first {
            break leaf;
        }
        assert!(Instant::now() < deadline, "no renewal: {}", pebble.log());
        // The open connection keeps being served meanwhile.
        assert_eq!(get_on(&mut open, "/health").await, 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        get_on(&mut open, "/health").await,
        200,
        "the connection made before the renewal still works after it"
    );

    // The authority goes away: the next renewal fails, the certificate in hand keeps serving,
    // and readiness, the log and an alert say why.
    pebble.stop();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (status, body) = readiness(&app).await;
        if !body["tls"]["error"].is_null() {
            assert_eq!(status, 200, "still ready on the old certificate: {body}");
            break body;
        }
        assert!(Instant::now() < deadline, "no failed renewal seen: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(body["message"].as_str().unwrap().contains("ACME"), "{body}");
    assert_eq!(served_leaf(tls_addr, DOMAIN, &pebble_roots).await, second);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let active = app.state.db.alerts().active().await.unwrap();
        if active.iter().any(|a| a.rule == "certificate_failed") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no certificate alert: {active:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
}

type Ca = rcgen::CertifiedIssuer<'static, rcgen::KeyPair>;

fn new_ca() -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
}

/// A new leaf for `DOMAIN` signed by `ca`: its certificate and key, PEM.
fn leaf_of(ca: &Ca) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![DOMAIN.to_string()])
        .unwrap()
        .signed_by(&key, ca)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn certificate_files_of_ones_own_are_served_and_reloaded_when_they_change() {
    let ca = new_ca();
    let ca_roots = roots(ca.pem().as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (
        dir.path().join("fullchain.pem"),
        dir.path().join("privkey.pem"),
    );
    let (cert, key) = leaf_of(&ca);
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let app = TestApp::spawn_with(|c| {
        c.server.tls_bind = "127.0.0.1:0".into();
        c.server.tls.cert = cert_path.display().to_string();
        c.server.tls.key = key_path.display().to_string();
    })
    .await;
    let tls_addr = app.tls_addr.unwrap();
    assert!(
        app.origin().starts_with("https://127.0.0.1:"),
        "{}",
        app.origin()
    );
    let first = served_leaf(tls_addr, DOMAIN, &ca_roots).await;
    assert_eq!(
        first,
        CertificateDer::from_pem_slice(cert.as_bytes())
            .unwrap()
            .to_vec()
    );

    // certbot renews: new files, picked up without a restart.
    let (cert2, key2) = leaf_of(&ca);
    std::fs::write(&key_path, &key2).unwrap();
    std::fs::write(&cert_path, &cert2).unwrap();
    let second = CertificateDer::from_pem_slice(cert2.as_bytes())
        .unwrap()
        .to_vec();
    let deadline = Instant::now() + Duration::from_secs(20);
    while served_leaf(tls_addr, DOMAIN, &ca_roots).await != second {
        assert!(
            Instant::now() < deadline,
            "the new files were not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A key that does not go with the certificate (a half-done copy) keeps the last good
    // pair serving, and readiness says why.
    std::fs::write(&key_path, &key).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (status, body) = readiness(&app).await;
        if !body["tls"]["error"].is_null() {
            assert_eq!(status, 200, "{body}");
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the bad pair was not noticed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        body["tls"]["error"]
            .as_str()
            .unwrap()
            .contains("does not go with"),
        "{body}"
    );
    assert_eq!(served_leaf(tls_addr, DOMAIN, &ca_roots).await, second);
    app.stop().await;

    // Files that cannot be read stop the start with a clear message.
    let missing = aimake::app::App::build({
        let mut c = crate::helpers::test_config(dir.path());
        c.server.tls_bind = "127.0.0.1:0".into();
        c.server.tls.cert = dir.path().join("nope.pem").display().to_string();
        c.server.tls.key = key_path.display().to_string();
        c
    })
    .await;
    let err = format!("{:#}", missing.err().expect("a missing certificate file"));
    assert!(err.contains("server.tls.cert"), "{err}");
}

#[cfg(unix)]
#[test]
fn sighup_reloads_certificate_files_whose_times_did_not_change() {
    let ca = new_ca();
    let ca_roots = roots(ca.pem().as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (cert, key) = leaf_of(&ca);
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let tls = free_port();
    let server = crate::helpers::ServerProcess::start(
        &data,
        &[
            ("AIMAKE_SERVER__TLS_BIND", format!("127.0.0.1:{tls}")),
            ("AIMAKE_SERVER__TLS__CERT", cert_path.display().to_string()),
            ("AIMAKE_SERVER__TLS__KEY", key_path.display().to_string()),
        ],
    );
    let addr: SocketAddr = format!("127.0.0.1:{tls}").parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let leaf = || runtime.block_on(served_leaf(addr, DOMAIN, &ca_roots));
    assert_eq!(
        leaf(),
        CertificateDer::from_pem_slice(cert.as_bytes())
            .unwrap()
            .to_vec()
    );

    // New contents with the old modification times: only the signal tells.
    let times = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let (cert_time, key_time) = (times(&cert_path), times(&key_path));
    let (cert2, key2) = leaf_of(&ca);
    for (path, text, time) in [
        (&cert_path, &cert2, cert_time),
        (&key_path, &key2, key_time),
    ] {
        std::fs::write(path, text).unwrap();
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }
    std::thread::sleep(aimake::tls::FILES_CHECK_EVERY + Duration::from_secs(1));
    assert_eq!(
        leaf(),
        CertificateDer::from_pem_slice(cert.as_bytes())
            .unwrap()
            .to_vec()
    );
    let pid = rustix::process::Pid::from_child(&server.child);
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    let second = CertificateDer::from_pem_slice(cert2.as_bytes())
        .unwrap()
        .to_vec();
    let deadline = Instant::now() + Duration::from_secs(10);
    while leaf() != second {
        assert!(Instant::now() < deadline, "SIGHUP did not reload the files");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(unix)]
#[test]
fn sighup_without_certificate_files_is_logged_and_the_server_keeps_serving() {
    // `systemctl reload aimake` sends it whatever the config; its default would end the process.
    let dir = tempfile::tempdir().unwrap();
    let mut server = crate::helpers::ServerProcess::start(dir.path(), &[]);
    let pid = rustix::process::Pid::from_child(&server.child);
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server is still running"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        server
            .client
            .get(format!("{}/health", server.base))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
}
