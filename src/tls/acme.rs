//! Certificates for `server.domains` over ACME (RFC 8555): Let's Encrypt by default, any
//! authority through `server.acme.directory`. The account and the certificate live in the
//! data directory (`tls/<authority>/`, owner-only); a certificate is renewed in the background
//! ahead of its expiry and swapped in without a restart. A failed attempt keeps the old
//! certificate serving, is logged and shown by the readiness check and the alerts, and is
//! tried again with a growing pause.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use parking_lot::Mutex;
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use super::{Certs, Status};
use crate::config::{AcmeChallenge, Config};

/// One attempt to obtain a certificate, from the first request to the chain, at most this.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the authority may take to check the challenges, then to issue.
const POLL_TIMEOUT: Duration = Duration::from_secs(120);
/// The pause after a first failure, doubled after each next one up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_secs(60);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(6 * 3600);
/// A certificate not due yet is looked at again at least this often (a clock that jumped, a
/// certificate replaced on disk by hand).
const RECHECK_EVERY: Duration = Duration::from_secs(12 * 3600);

/// What obtaining a certificate needs, from `server.domains` and `server.acme`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub domains: Vec<String>,
    pub directory: String,
    pub email: String,
    pub ca_root: Option<PathBuf>,
    pub challenge: AcmeChallenge,
    pub renew_before: Duration,
    /// `<data>/tls/<authority host>`: the account and the certificate.
    pub dir: PathBuf,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        let acme = &config.server.acme;
        let authority = url::Url::parse(&acme.directory)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| {
                    format!(
                        "{h}{}",
                        u.port().map(|p| format!("_{p}")).unwrap_or_default()
                    )
                })
            })
            .unwrap_or_else(|| "acme".into());
        Self {
            domains: config.server.domains.clone(),
            directory: acme.directory.clone(),
            email: acme.email.clone(),
            ca_root: (!acme.ca_root.is_empty()).then(|| PathBuf::from(&acme.ca_root)),
            challenge: acme.challenge,
            renew_before: Duration::from_secs(u64::from(acme.renew_before_days) * 86_400),
            dir: config.data.dir.join("tls").join(authority),
        }
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    fn account_path(&self) -> PathBuf {
        self.dir.join("account.json")
    }

    /// The certificate obtained before, when it names exactly these domains.
    pub fn load_cached(&self) -> anyhow::Result<Option<CertifiedKey>> {
        let (Ok(chain), Ok(key)) = (
            std::fs::read(self.cert_path()),
            std::fs::read(self.key_path()),
        ) else {
            return Ok(None);
        };
        let cached = match super::certified_key(&chain, &key) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    path = %self.cert_path().display(),
                    "the stored certificate cannot be used; a new one will be obtained"
                );
                return Ok(None);
            }
        };
        let names = names(&cached)?;
        let mut wanted = self.domains.clone();
        wanted.sort();
        Ok((names == wanted).then_some(cached))
    }

    fn store(&self, chain: &str, key: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        crate::filemodes::write_private(&self.key_path(), key.as_bytes())?;
        crate::filemodes::write_private(&self.cert_path(), chain.as_bytes())?;
        Ok(())
    }
}

/// The DNS names a certificate is for, sorted.
fn names(key: &CertifiedKey) -> anyhow::Result<Vec<String>> {
    super::read_leaf(key, |cert| {
        let mut names: Vec<String> = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    })
}

/// When a certificate valid from `not_before` to `not_after` (Unix seconds) is renewed:
/// `renew_before` ahead of its end, or with a third of its life left when that comes later
/// (a six-day certificate is not renewed the moment it arrives).
pub fn renew_at(not_before: i64, not_after: i64, renew_before: Duration) -> i64 {
    let life = (not_after - not_before).max(0);
    let ahead = (renew_before.as_secs() as i64).min(life / 3);
    not_after - ahead
}

/// The task that obtains and renews the certificate.
pub struct Renewer {
    settings: Settings,
    certs: Arc<Certs>,
    status: Arc<Mutex<Status>>,
}

impl Renewer {
    pub fn new(settings: Settings, certs: Arc<Certs>, status: Arc<Mutex<Status>>) -> Self {
        Self {
            settings,
            certs,
            status,
        }
    }

    pub async fn run(self, stop: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let due = match self.certs.current().map(|c| super::validity(&c)) {
                Some(Ok((start, end))) => renew_at(start, end, self.settings.renew_before) - now,
                _ => 0,
            };
            if due > 0 {
                let pause = Duration::from_secs(due as u64).min(RECHECK_EVERY);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => continue,
                }
            }
            let challenge = challenge_for(self.settings.challenge, failures);
            tracing::info!(
                domains = self.settings.domains.join(","),
                directory = self.settings.directory,
                challenge = challenge.as_str(),
                "obtaining a TLS certificate over ACME"
            );
            let attempt = tokio::select! {
                () = stop.cancelled() => return,
                r = tokio::time::timeout(ATTEMPT_TIMEOUT, self.obtain(challenge)) => r,
            };
            // Whatever happened, no challenge is left to answer.
            self.certs.set_challenges(HashMap::new(), HashMap::new());
            let outcome = attempt
                .unwrap_or_else(|_| {
                    Err(anyhow::anyhow!(
                        "no certificate within {} s",
                        ATTEMPT_TIMEOUT.as_secs()
                    ))
                })
                .and_then(|(chain, key)| {
                    let certified = super::certified_key(chain.as_bytes(), key.as_bytes())?;
                    let end = super::not_after(&certified)?;
                    self.settings.store(&chain, &key)?;
                    Ok((certified, end))
                });
            match outcome {
                Ok((certified, end)) => {
                    failures = 0;
                    self.certs.install(Arc::new(certified));
                    *self.status.lock() = Status {
                        not_after: Some(end),
                        error: None,
                    };
                    tracing::info!(
                        domains = self.settings.domains.join(","),
                        not_after = end,
                        "TLS certificate obtained and in use"
                    );
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let pause = retry_pause(failures);
                    let message = format!("{e:#}");
                    let serving = self.certs.current().is_some();
                    tracing::error!(
                        error = message,
                        retry_in_s = pause.as_secs(),
                        serving_previous = serving,
                        "cannot obtain a TLS certificate over ACME; {}",
                        if serving {
                            "still serving the previous certificate"
                        } else {
                            "HTTPS has no certificate until one is obtained"
                        }
                    );
                    self.status.lock().error = Some(format!("ACME: {message}"));
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }

    /// One attempt: the account, an order for the domains, the challenges answered, the
    /// certificate chain and its new key (PEM).
    async fn obtain(&self, challenge: ChallengeType) -> anyhow::Result<(String, String)> {
        let account = self.account().await?;
        let identifiers: Vec<Identifier> = self
            .settings
            .domains
            .iter()
            .map(|d| Identifier::Dns(d.clone()))
            .collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .context("the authority refused a new order")?;
        {
            let mut authorizations = order.authorizations();
            while let Some(authz) = authorizations.next().await {
                let mut authz = authz.context("cannot read an authorization")?;
                match authz.status {
                    AuthorizationStatus::Valid => continue,
                    AuthorizationStatus::Pending => {}
                    other => anyhow::bail!("an authorization is {other:?}"),
                }
                let domain = authz.identifier().to_string();
                let offered: Vec<ChallengeType> =
                    authz.challenges.iter().map(|c| c.r#type.clone()).collect();
                let kind = if offered.contains(&challenge) {
                    challenge.clone()
                } else {
                    [ChallengeType::TlsAlpn01, ChallengeType::Http01]
                        .into_iter()
                        .find(|k| offered.contains(k))
                        .with_context(|| {
                            format!("the authority offers {domain} neither TLS-ALPN-01 nor HTTP-01")
                        })?
                };
                let mut handle = authz
                    .challenge(kind.clone())
                    .context("the offered challenge went missing")?;
                let key_auth = handle.key_authorization();
                // The answer is in place before the authority is told to look.
                if kind == ChallengeType::Http01 {
                    self.certs
                        .http_challenges
                        .lock()
                        .insert(handle.token.clone(), key_auth.as_str().to_string());
                } else {
                    let cert = alpn_certificate(&domain, key_auth.digest().as_ref())?;
                    self.certs
                        .alpn_challenges
                        .lock()
                        .insert(domain.to_ascii_lowercase(), Arc::new(cert));
                }
                handle
                    .set_ready()
                    .await
                    .context("cannot tell the authority a challenge is ready")?;
            }
        }
        let policy = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .timeout(POLL_TIMEOUT);
        let status = order
            .poll_ready(&policy)
            .await
            .context("the authority did not validate the domains")?;
        if status != OrderStatus::Ready {
            let mut reasons = Vec::new();
            let mut authorizations = order.authorizations();
            while let Some(Ok(mut authz)) = authorizations.next().await {
                if let Ok(state) = authz.refresh().await {
                    reasons.extend(
                        state
                            .challenges
                            .iter()
                            .filter_map(|c| c.error.as_ref().map(|e| e.to_string())),
                    );
                }
            }
            anyhow::bail!(
                "the authority could not validate the domains ({status:?}): {}",
                if reasons.is_empty() {
                    "no reason given".to_string()
                } else {
                    reasons.join("; ")
                }
            );
        }
        let key = order
            .finalize()
            .await
            .context("cannot finalize the order")?;
        let chain = order
            .poll_certificate(&policy)
            .await
            .context("the authority did not issue the certificate")?;
        Ok((chain, key))
    }

    /// The account stored for this authority, or a new one (stored owner-only).
    async fn account(&self) -> anyhow::Result<Account> {
        let builder = || match &self.settings.ca_root {
            Some(root) => Account::builder_with_root(root)
                .with_context(|| format!("server.acme.ca_root: cannot use {}", root.display())),
            None => Account::builder().context("cannot load the system's root certificates"),
        };
        let path = self.settings.account_path();
        if let Ok(text) = std::fs::read(&path)
            && let Ok(credentials) = serde_json::from_slice::<AccountCredentials>(&text)
        {
            return builder()?
                .from_credentials(credentials)
                .await
                .context("cannot use the stored ACME account");
        }
        let contact =
            (!self.settings.email.is_empty()).then(|| format!("mailto:{}", self.settings.email));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder()?
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.settings.directory.clone(),
                None,
            )
            .await
            .with_context(|| {
                format!(
                    "cannot create an account at {} (server.acme.directory)",
                    self.settings.directory
                )
            })?;
        std::fs::create_dir_all(&self.settings.dir)?;
        crate::filemodes::write_private(&path, &serde_json::to_vec(&credentials)?)?;
        tracing::info!(directory = self.settings.directory, "ACME account created");
        Ok(account)
    }
}

/// Which challenge an attempt uses: `auto` starts with TLS-ALPN-01 and alternates after each
/// failure, so a server whose port 443 is not reached directly still gets one over HTTP-01.
fn challenge_for(setting: AcmeChallenge, failures: u32) -> ChallengeType {
    match setting {
        AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        AcmeChallenge::Http01 => ChallengeType::Http01,
        AcmeChallenge::Auto if failures.is_multiple_of(2) => ChallengeType::TlsAlpn01,
        AcmeChallenge::Auto => ChallengeType::Http01,
    }
}

fn retry_pause(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST_RETRY_PAUSE * 2u32.pow(doublings)).min(MAX_RETRY_PAUSE)
}

/// The TLS-ALPN-01 answer (RFC 8737): a self-signed certificate for `domain` carrying the
/// SHA-256 of the key authorization in the critical acmeIdentifier extension.
fn alpn_certificate(domain: &str, digest: &[u8]) -> anyhow::Result<CertifiedKey> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key)?;
    // Not through `certified_key`: its check of the pair parses the certificate, which refuses
    // the critical extension only the authority understands.
    let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| anyhow::anyhow!("the challenge key: {e}"))?;
    let signing = super::provider().key_provider.load_private_key(der)?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing))
}

trait ChallengeName {
    fn as_str(&self) -> &'static str;
}

impl ChallengeName for ChallengeType {
    fn as_str(&self) -> &'static str {
        match self {
            ChallengeType::Http01 => "http-01",
            ChallengeType::TlsAlpn01 => "tls-alpn-01",
            ChallengeType::Dns01 => "dns-01",
            _ => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn a_ninety_day_certificate_renews_thirty_days_ahead_a_short_one_at_two_thirds() {
        let month = Duration::from_secs(30 * 86_400);
        assert_eq!(renew_at(0, 90 * DAY, month), 60 * DAY);
        // Six days: renewed with two left, not at once.
        assert_eq!(renew_at(0, 6 * DAY, month), 4 * DAY);
        assert_eq!(renew_at(100, 112, month), 108);
        assert_eq!(renew_at(0, 365 * DAY, month), 335 * DAY);
    }

    #[test]
    fn failures_back_off_doubling_to_six_hours_and_auto_alternates_the_challenge() {
        assert_eq!(retry_pause(1), Duration::from_secs(60));
        assert_eq!(retry_pause(2), Duration::from_secs(120));
        assert_eq!(retry_pause(5), Duration::from_secs(960));
        assert_eq!(retry_pause(30), MAX_RETRY_PAUSE);
        assert_eq!(
            challenge_for(AcmeChallenge::Auto, 0),
            ChallengeType::TlsAlpn01
        );
        assert_eq!(challenge_for(AcmeChallenge::Auto, 1), ChallengeType::Http01);
        assert_eq!(
            challenge_for(AcmeChallenge::Auto, 2),
            ChallengeType::TlsAlpn01
        );
        assert_eq!(
            challenge_for(AcmeChallenge::Http01, 0),
            ChallengeType::Http01
        );
        assert_eq!(
            challenge_for(AcmeChallenge::TlsAlpn01, 3),
            ChallengeType::TlsAlpn01
        );
    }

    #[test]
    fn the_alpn_answer_names_the_domain_and_carries_the_digest_as_a_critical_extension() {
        let digest = [7u8; 32];
        let cert = alpn_certificate("audio.example.com", &digest).unwrap();
        assert_eq!(names(&cert).unwrap(), ["audio.example.com"]);
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.cert[0].as_ref()).unwrap();
        // id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31
        let ext = parsed
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("the acmeIdentifier extension");
        assert!(ext.critical);
        // An OCTET STRING of the 32-byte digest.
        assert_eq!(&ext.value[..2], &[0x04, 0x20]);
        assert_eq!(&ext.value[2..], &digest);
    }
}
