//! HTTPS served by aimake itself: a certificate for `server.domains` obtained and renewed over
//! ACME ([`acme`]), or the operator's own files (`server.tls.cert` / `key`) read again when
//! they change or on SIGHUP. Either way the certificate is swapped under running connections:
//! new handshakes get the new one, open connections keep theirs.
//!
//! The plain listener ([`redirect`]) then answers the ACME HTTP-01 check, the health endpoints
//! for local probes, and a redirect to HTTPS for everything else.

pub mod acme;
pub mod redirect;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// The ALPN protocol of the TLS-ALPN-01 check (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// How often the files of `server.tls` are looked at for a change.
pub const FILES_CHECK_EVERY: Duration = Duration::from_secs(5);

/// What the server presents in TLS handshakes, swapped whole when a certificate is renewed or
/// reloaded, and the answers to ACME's checks while one is being obtained.
#[derive(Debug, Default)]
pub struct Certs {
    current: ArcSwapOption<CertifiedKey>,
    /// TLS-ALPN-01: the self-signed certificate carrying the key authorization, per domain.
    alpn_challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    /// HTTP-01: the key authorization, per token.
    http_challenges: Mutex<HashMap<String, String>>,
}

impl Certs {
    pub fn install(&self, cert: Arc<CertifiedKey>) {
        self.current.store(Some(cert));
    }

    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }

    /// The key authorization to answer `GET /.well-known/acme-challenge/<token>` with.
    pub fn http_challenge(&self, token: &str) -> Option<String> {
        self.http_challenges.lock().get(token).cloned()
    }

    fn set_challenges(
        &self,
        http: HashMap<String, String>,
        alpn: HashMap<String, Arc<CertifiedKey>>,
    ) {
        *self.http_challenges.lock() = http;
        *self.alpn_challenges.lock() = alpn;
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // The authority's check offers `acme-tls/1` alone and must see the challenge
        // certificate; nothing else ever gets it.
        let acme_check = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.all(|p| p == ACME_TLS_ALPN));
        if acme_check {
            let name = hello.server_name()?.to_ascii_lowercase();
            return self.alpn_challenges.lock().get(&name).cloned();
        }
        self.current.load_full()
    }
}

/// Where the certificate comes from.
enum Source {
    Acme(acme::Settings),
    Files { cert: PathBuf, key: PathBuf },
}

/// The certificate's state, for the readiness check, the alerts and the log.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// When the served certificate expires (Unix seconds), if one is served.
    pub not_after: Option<i64>,
    /// Why the last attempt to obtain, renew or reload a certificate failed, until one works.
    pub error: Option<String>,
}

/// The TLS side of the server: the rustls config its listener uses, and the task that keeps
/// its certificate current.
pub struct Tls {
    certs: Arc<Certs>,
    status: Arc<Mutex<Status>>,
    server_config: Arc<rustls::ServerConfig>,
    source: Source,
}

/// A handle on the certificate's [`Status`].
#[derive(Clone)]
pub struct TlsStatus(Arc<Mutex<Status>>);

impl TlsStatus {
    pub fn get(&self) -> Status {
        self.0.lock().clone()
    }
}

impl Tls {
    /// The TLS side `config` asks for, if any. Manual certificates are read now, so a bad
    /// file stops the start with a clear message; an ACME certificate already obtained is
    /// loaded from the data directory.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Self>> {
        let server = &config.server;
        if !server.tls_enabled() {
            return Ok(None);
        }
        let certs = Arc::new(Certs::default());
        let status = Arc::new(Mutex::new(Status::default()));
        let source = if !server.uses_acme() {
            let (cert, key) = (
                PathBuf::from(&server.tls.cert),
                PathBuf::from(&server.tls.key),
            );
            let loaded = load_files(&cert, &key)?;
            status.lock().not_after = Some(not_after(&loaded)?);
            certs.install(Arc::new(loaded));
            Source::Files { cert, key }
        } else {
            let settings = acme::Settings::from_config(config);
            if let Some(cached) = settings.load_cached()? {
                status.lock().not_after = Some(not_after(&cached)?);
                certs.install(Arc::new(cached));
            }
            Source::Acme(settings)
        };
        let mut tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        if matches!(source, Source::Acme(_)) {
            tls.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
        }
        // Returning clients resume with a ticket instead of a full handshake.
        tls.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()
            .context("cannot make the TLS session ticket key")?;
        Ok(Some(Self {
            certs,
            status,
            server_config: Arc::new(tls),
            source,
        }))
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server_config.clone())
    }

    pub fn certs(&self) -> Arc<Certs> {
        self.certs.clone()
    }

    pub fn status(&self) -> TlsStatus {
        TlsStatus(self.status.clone())
    }

    /// Keeps the certificate current until `stop`: obtains and renews it over ACME, or reloads
    /// the files when they change and on SIGHUP.
    pub fn keep_current(self, stop: CancellationToken) {
        let Self {
            certs,
            status,
            source,
            ..
        } = self;
        match source {
            Source::Acme(settings) => {
                absorb_hangups(stop.clone());
                tokio::spawn(acme::Renewer::new(settings, certs, status).run(stop));
            }
            Source::Files { cert, key } => {
                tokio::spawn(reload_files(cert, key, certs, status, stop));
            }
        }
    }
}

/// Takes SIGHUP when there are no certificate files to reload (`systemctl reload` sends it,
/// and its default action would end the process): logged, nothing more.
pub fn absorb_hangups(stop: CancellationToken) {
    tokio::spawn(async move {
        let mut hangup = hangup_signal();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = next_hangup(&mut hangup) => tracing::info!(
                    "received SIGHUP: nothing to reload (it reloads server.tls's certificate files when they are set)"
                ),
            }
        }
    });
}

/// aimake's one crypto provider (the one reqwest and the rest of the tree use).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A certificate chain (leaf first) and its private key, from PEM text.
pub fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .context("not a PEM certificate chain")?;
    anyhow::ensure!(!chain.is_empty(), "no certificate in the PEM text");
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("not a PEM private key")?;
    let certified = CertifiedKey::from_der(chain, key, &provider())
        .context("the private key does not go with the certificate")?;
    Ok(certified)
}

/// `server.tls.cert` and `server.tls.key`, read and checked.
fn load_files(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let chain = std::fs::read(cert)
        .with_context(|| format!("server.tls.cert: cannot read {}", cert.display()))?;
    let key_pem = std::fs::read(key)
        .with_context(|| format!("server.tls.key: cannot read {}", key.display()))?;
    certified_key(&chain, &key_pem).with_context(|| {
        format!(
            "server.tls: {} and {} are not a usable certificate and key",
            cert.display(),
            key.display()
        )
    })
}

/// When the leaf certificate expires, in Unix seconds.
pub fn not_after(key: &CertifiedKey) -> anyhow::Result<i64> {
    validity(key).map(|(_, end)| end)
}

/// The leaf certificate's validity, `(not_before, not_after)` in Unix seconds.
pub fn validity(key: &CertifiedKey) -> anyhow::Result<(i64, i64)> {
    read_leaf(key, |cert| {
        let v = cert.validity();
        (v.not_before.timestamp(), v.not_after.timestamp())
    })
}

/// `read` applied to the parsed leaf (first) certificate of `key`'s chain.
pub(crate) fn read_leaf<T>(
    key: &CertifiedKey,
    read: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> T,
) -> anyhow::Result<T> {
    let leaf = key.cert.first().context("an empty certificate chain")?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| anyhow::anyhow!("cannot read the certificate: {e}"))?;
    Ok(read(&cert))
}

/// The files' modification times, to notice a change.
fn stamps(cert: &Path, key: &Path) -> Option<(std::time::SystemTime, std::time::SystemTime)> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((modified(cert)?, modified(key)?))
}

/// Reloads `server.tls`'s files when either changes, and on SIGHUP. A pair that does not load
/// (a half-written renewal, a key that does not match) keeps the old certificate serving and
/// is reported until a good pair arrives.
async fn reload_files(
    cert: PathBuf,
    key: PathBuf,
    certs: Arc<Certs>,
    status: Arc<Mutex<Status>>,
    stop: CancellationToken,
) {
    let mut hangup = hangup_signal();
    let mut seen = stamps(&cert, &key);
    let mut tick = tokio::time::interval(FILES_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let forced = tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => false,
            () = next_hangup(&mut hangup) => {
                tracing::info!("received SIGHUP: reloading the TLS certificate files");
                true
            }
        };
        let now = stamps(&cert, &key);
        if !forced && now == seen {
            continue;
        }
        seen = now;
        let (c, k) = (cert.clone(), key.clone());
        let loaded = tokio::task::spawn_blocking(move || {
            let loaded = load_files(&c, &k)?;
            let end = not_after(&loaded)?;
            Ok::<_, anyhow::Error>((loaded, end))
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the reload stopped: {e}")));
        match loaded {
            Ok((loaded, end)) => {
                certs.install(Arc::new(loaded));
                *status.lock() = Status {
                    not_after: Some(end),
                    error: None,
                };
                tracing::info!(
                    cert = %cert.display(),
                    not_after = end,
                    "TLS certificate reloaded from server.tls"
                );
            }
            Err(e) => {
                let message = format!("{e:#}");
                tracing::error!(
                    error = message,
                    "cannot reload the TLS certificate; still serving the previous one"
                );
                status.lock().error = Some(message);
            }
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot install the SIGHUP handler");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {}

#[cfg(unix)]
async fn next_hangup(hangup: &mut Hangup) {
    match hangup {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangup) {
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_chain_and_its_key_load_and_a_mismatched_key_is_refused() {
        let (cert, key) = self_signed("audio.example.com");
        let loaded = certified_key(cert.as_bytes(), key.as_bytes()).unwrap();
        let (start, end) = validity(&loaded).unwrap();
        assert!(end > start);
        let (_, other_key) = self_signed("audio.example.com");
        let err = certified_key(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(format!("{err:#}").contains("does not go with"), "{err:#}");
        assert!(certified_key(b"not pem", key.as_bytes()).is_err());
        assert!(certified_key(cert.as_bytes(), b"").is_err());
    }

    #[test]
    fn http_challenges_are_answered_while_set_and_replaced_whole() {
        // Which certificate a handshake gets is checked through real handshakes in the API
        // tests; here the bookkeeping: challenges replace each other whole and clear.
        let certs = Certs::default();
        certs.set_challenges(
            [("t".to_string(), "t.k".to_string())].into(),
            HashMap::new(),
        );
        assert_eq!(certs.http_challenge("t").as_deref(), Some("t.k"));
        assert_eq!(certs.http_challenge("u"), None);
        certs.set_challenges(HashMap::new(), HashMap::new());
        assert_eq!(certs.http_challenge("t"), None);
    }
}
