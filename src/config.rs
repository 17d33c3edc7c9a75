//! The typed configuration tree: built-in defaults, then a TOML file, then environment variables.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Prefix of the environment variables that override config keys (`AIMAKE_SERVER__BIND`).
const ENV_PREFIX: &str = "AIMAKE_";

/// Variables with the `AIMAKE_` prefix that are not config keys, so they are never warned about.
const ENV_NOT_KEYS: &[&str] = &["AIMAKE_CONFIG"];

/// Conventional variable names that operators already use, and the key each one sets.
/// They sit below the `AIMAKE_*` forms, so an explicit `AIMAKE_*` variable wins.
const CONVENTIONAL_ENV: &[(&str, &str)] = &[
    ("OPENAI_API_KEY", "providers.openai.api_key"),
    ("ELEVENLABS_API_KEY", "providers.elevenlabs.api_key"),
    ("TENCENT_SECRET_ID", "providers.tencent.secret_id"),
    ("TENCENT_SECRET_KEY", "providers.tencent.secret_key"),
    ("LLM_API_KEY", "llm.api_key"),
    ("S3_ENDPOINT", "storage.s3.endpoint"),
    ("S3_BUCKET", "storage.s3.bucket"),
    ("S3_ACCESS_KEY", "storage.s3.access_key"),
    ("S3_SECRET_KEY", "storage.s3.secret_key"),
    ("CORS_ORIGINS", "server.cors_origins"),
    ("SENTRY_DSN", "sentry.dsn"),
];

/// A value that must never reach a log line or `Debug` output.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The only way to read the value: greppable, so every use is deliberate.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Serialization is only used to print the effective config, so it redacts too.
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub data: DataConfig,
    pub log: LogConfig,
    pub storage: StorageConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub providers: ProvidersConfig,
    pub llm: LlmConfig,
    pub tts: TtsConfig,
    pub transcription: TranscriptionConfig,
    pub gateway: GatewayConfig,
    pub jobs: JobsConfig,
    pub backup: BackupConfig,
    pub models: ModelsConfig,
    pub metrics: MetricsConfig,
    pub sentry: SentryConfig,
    pub alerts: AlertsConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: String,
    /// Origin used for links, the cookie's Secure flag and CSRF checks; empty means `http://<bind>`.
    pub public_url: String,
    pub trusted_proxies: Vec<String>,
    pub cors_origins: Vec<String>,
    pub request_timeout_s: u64,
    /// What recordings get instead of `request_timeout_s`: the upload of `POST
    /// /api/transcriptions`, and on `/v1/audio/transcriptions` and `/translations` the upload
    /// and, without `stream`, the hearing too; and `POST /api/admin/selftest`.
    pub transcription_timeout_s: u64,
    /// A request body that sends nothing for this long is answered 408 and its slot freed.
    pub body_idle_timeout_s: u64,
    /// How long shutdown waits for in-flight requests before giving up on them.
    pub shutdown_grace_s: u64,
    pub max_body_bytes: usize,
    /// Names served over HTTPS with certificates obtained and renewed over ACME (`--domain`).
    pub domains: Vec<String>,
    /// The HTTPS listener; empty means `0.0.0.0:443` once `domains` or `tls.cert` is set.
    pub tls_bind: String,
    /// Certificates of your own (certbot, a mounted secret), reloaded when they change.
    pub tls: TlsFilesConfig,
    /// Where `domains` get their certificates.
    pub acme: AcmeConfig,
}

/// `server.tls`: a certificate chain and its key, PEM files read again when they change.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsFilesConfig {
    pub cert: String,
    pub key: String,
}

/// `server.acme`: the certificate authority `server.domains` use.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcmeConfig {
    /// The ACME directory (Let's Encrypt's by default).
    pub directory: String,
    /// Told to the authority for expiry notices; optional.
    pub email: String,
    /// A PEM root the directory's own HTTPS certificate is checked against, for a private
    /// authority; empty means the system's roots.
    pub ca_root: String,
    /// How the authority checks that this server answers for the domain: `auto` (TLS-ALPN-01
    /// on the HTTPS port, then HTTP-01 on `server.bind` when that fails), `tls-alpn-01` or
    /// `http-01`.
    pub challenge: AcmeChallenge,
    /// A certificate is renewed this long before it expires (or at two thirds of its life
    /// when that comes later, for short-lived certificates).
    pub renew_before_days: u32,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            directory: LETS_ENCRYPT_DIRECTORY.into(),
            email: String::new(),
            ca_root: String::new(),
            challenge: AcmeChallenge::Auto,
            renew_before_days: 30,
        }
    }
}

/// Let's Encrypt's production ACME directory.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcmeChallenge {
    Auto,
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    #[serde(rename = "http-01")]
    Http01,
}

/// `server.bind`'s default: loopback, for a reverse proxy or a first look.
const DEFAULT_BIND: &str = "127.0.0.1:8000";
/// Where the plain listener goes when HTTPS is on and `server.bind` is left at its default:
/// the redirect and the HTTP-01 challenge are answered on port 80.
const HTTPS_PLAIN_BIND: &str = "0.0.0.0:80";
const DEFAULT_TLS_BIND: &str = "0.0.0.0:443";

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: DEFAULT_BIND.into(),
            public_url: String::new(),
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
            request_timeout_s: 30,
            // OpenAI's clients wait minutes for a long recording; so may ours.
            transcription_timeout_s: 600,
            // Ample for a phone on a poor link; short enough that stalled uploads cannot
            // pile up.
            body_idle_timeout_s: 10,
            shutdown_grace_s: 30,
            // A 100k-character text is at most ~400 KB of UTF-8: 1 MiB leaves room for the rest
            // of the JSON and sheds abuse. Upload routes raise it for themselves.
            max_body_bytes: 1024 * 1024,
            domains: Vec::new(),
            tls_bind: String::new(),
            tls: TlsFilesConfig::default(),
            acme: AcmeConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Whether the server speaks HTTPS itself: domains to certify, or a certificate given.
    pub fn tls_enabled(&self) -> bool {
        !self.domains.is_empty() || !self.tls.cert.is_empty()
    }

    /// Whether certificates come over ACME: domains named, and no certificate of one's own
    /// (which wins; the domains then only name the site).
    pub fn uses_acme(&self) -> bool {
        !self.domains.is_empty() && self.tls.cert.is_empty()
    }

    /// The HTTPS listener's address, when HTTPS is on.
    pub fn tls_bind_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        if !self.tls_enabled() {
            return Ok(None);
        }
        let bind = if self.tls_bind.is_empty() {
            DEFAULT_TLS_BIND
        } else {
            &self.tls_bind
        };
        let addr = bind.parse().with_context(|| {
            format!("server.tls_bind: `{bind}` is not an address like 0.0.0.0:443")
        })?;
        Ok(Some(addr))
    }

    /// The origin users reach HTTPS at when it listens on `tls` and `public_url` is unset:
    /// the first domain (or the address), with the port unless it is 443.
    pub fn https_origin(&self, tls: SocketAddr) -> String {
        let host = match self.domains.first() {
            Some(domain) => domain.clone(),
            None if tls.ip().is_unspecified() => "localhost".into(),
            None => tls.ip().to_string(),
        };
        match tls.port() {
            443 => format!("https://{host}"),
            port => format!("https://{host}:{port}"),
        }
    }

    fn validate_tls(&self) -> anyhow::Result<()> {
        for domain in &self.domains {
            let valid = !domain.is_empty()
                && domain.len() <= 253
                && domain.contains('.')
                && domain.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                });
            if !valid {
                bail!(
                    "server.domains: `{domain}` is not a domain name like audio.example.com \
                     (lower case, no scheme, port or wildcard)"
                );
            }
        }
        if self.tls.cert.is_empty() != self.tls.key.is_empty() {
            bail!("server.tls.cert and server.tls.key: set both (a certificate chain and its key)");
        }
        self.tls_bind_addr()?;
        if self.uses_acme() {
            let url = url::Url::parse(&self.acme.directory).with_context(|| {
                format!(
                    "server.acme.directory: `{}` is not a URL",
                    self.acme.directory
                )
            })?;
            if url.scheme() != "https" {
                bail!("server.acme.directory: must be an https URL");
            }
            if self.acme.renew_before_days == 0 {
                bail!("server.acme.renew_before_days: must be at least 1");
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    pub dir: PathBuf,
    /// Another process replicates the database from its WAL (Litestream): a clean stop leaves
    /// the WAL to it instead of emptying it, which would wait for the replicator's reader.
    pub replicated: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./data"),
            replicated: false,
        }
    }
}

/// Where Litestream keeps its state for the database at `db` (`.<file>-litestream` beside it):
/// where it is in the WAL and what it has shipped.
pub fn litestream_sidecar(db: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(db.file_name().unwrap_or_default());
    name.push("-litestream");
    db.with_file_name(name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `pretty` or `json`; unset picks pretty on a terminal and JSON otherwise.
    pub format: Option<LogFormat>,
    /// A tracing filter such as `info` or `aimake=debug,tower_http=info`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: None,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    #[default]
    Local,
    S3,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub kind: StorageKind,
    /// S3 only: audio files (downloads, streams of finished audio, share links, feed
    /// enclosures, recordings) are answered with a 302 to a presigned GET of the bucket, once
    /// the request passed the same checks, so the bytes bypass the server.
    pub presign: bool,
    /// The longest a presigned URL lives, in seconds; never longer than the signed link that
    /// led to it. A link revoked meanwhile stops redirecting at once, but a URL already handed
    /// out works until it expires, so keep this short.
    pub presign_expiry_s: u64,
    /// S3 only: the absolute http(s) URL where the bucket's `public/` folder is served (a CDN
    /// or the bucket's public domain). Published episodes and transcripts of public shows are
    /// copied there and their feed links redirect to it; nothing else is ever put there.
    pub public_base_url: String,
    pub s3: S3Config,
}

/// The longest expiry S3's SigV4 presigned URLs accept (7 days).
const MAX_PRESIGN_EXPIRY_S: u64 = 7 * 86_400;

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: StorageKind::Local,
            presign: false,
            presign_expiry_s: 300,
            public_base_url: String::new(),
            s3: S3Config::default(),
        }
    }
}

impl StorageConfig {
    /// Presigned URLs and a public base URL only make sense for a bucket.
    fn validate(&self) -> anyhow::Result<()> {
        let s3 = self.kind == StorageKind::S3;
        if self.presign && !s3 {
            bail!(
                "storage.presign: needs storage.kind = \"s3\" (a local store has no URL to \
                 redirect to)"
            );
        }
        if !(1..=MAX_PRESIGN_EXPIRY_S).contains(&self.presign_expiry_s) {
            bail!(
                "storage.presign_expiry_s: must be between 1 and {MAX_PRESIGN_EXPIRY_S} (7 \
                 days, the longest S3 allows)"
            );
        }
        let base = self.public_base_url.trim();
        if base.is_empty() {
            return Ok(());
        }
        if !s3 {
            bail!("storage.public_base_url: needs storage.kind = \"s3\"");
        }
        let url = url::Url::parse(base)
            .with_context(|| format!("storage.public_base_url: `{base}` is not an absolute URL"))?;
        // Redirects carry it as it is written: it must already be a valid `Location`.
        if !matches!(url.scheme(), "http" | "https")
            || url.host().is_none()
            || url.query().is_some()
            || url.fragment().is_some()
            || !base.is_ascii()
        {
            bail!(
                "storage.public_base_url: must be an absolute http(s) URL without a query, in \
                 ASCII (punycode for an international name), got `{base}`"
            );
        }
        Ok(())
    }

    /// `public_base_url` without a trailing slash, or None when unset.
    pub fn public_base(&self) -> Option<&str> {
        Some(self.public_base_url.trim().trim_end_matches('/')).filter(|b| !b.is_empty())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: Option<Secret>,
    pub secret_key: Option<Secret>,
    /// Path-style addressing (`endpoint/bucket/key`), which MinIO, Garage and most self-hosted
    /// servers need; virtual-hosted style (`bucket.endpoint/key`) when false.
    pub path_style: bool,
    pub timeout_s: u64,
    pub max_retries: usize,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            bucket: String::new(),
            region: "us-east-1".into(),
            access_key: None,
            secret_key: None,
            path_style: true,
            timeout_s: 30,
            max_retries: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    Open,
    #[default]
    Invite,
    Closed,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub registration: Registration,
    pub session_idle_days: u32,
    pub session_max_days: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            registration: Registration::Invite,
            session_idle_days: 14,
            session_max_days: 90,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Per client IP, over `/api`, `/media` and `/feeds`.
    pub requests_per_minute: u32,
    /// Per client IP, on top of the global limit, for setup, login and registration.
    pub auth_requests_per_minute: u32,
    /// Per user, for endpoints that start expensive work (synthesis, tokens, invites).
    pub creations_per_minute: u32,
    pub max_in_flight: usize,
    /// Requests one client (one IP, and one signed-in user) may have in flight at once, so
    /// no single client can take every slot.
    pub max_in_flight_per_client: usize,
    /// Characters a user may synthesize per calendar month (UTC); 0 means no limit.
    /// An admin can set a different quota per user.
    pub quota_chars_per_month: u64,
    /// Failed sign-ins to one account from one address before that address has to wait
    /// before its next try, twice as long after each further failure (1 s, 2 s, 4 s …).
    pub sign_in_failures_before_delay: u32,
    /// The longest such wait.
    pub sign_in_max_delay_s: u64,
    /// Sign-in attempts per hour to one account from all the addresses it has not signed in
    /// from in the last 90 days, together; beyond it those addresses wait, while the
    /// account's known addresses are let through.
    pub sign_in_attempts_per_account_per_hour: u32,
    /// Error reports from the web app (`POST /api/client-errors`) per minute per client IP.
    pub client_errors_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            requests_per_minute: 100,
            // Enough for a person mistyping a password; too few for guessing one.
            auth_requests_per_minute: 10,
            creations_per_minute: 20,
            max_in_flight: 250,
            // A browser opens 6 connections per host; a script has no reason for more.
            max_in_flight_per_client: 32,
            quota_chars_per_month: 0,
            // A person mistyping gets five tries at full speed; a guesser from one address
            // gets about a hundred a day.
            sign_in_failures_before_delay: 5,
            sign_in_max_delay_s: 900,
            // Guessers with many addresses share about one try every two minutes.
            sign_in_attempts_per_account_per_hour: 30,
            // A page reports at most a few errors per load; a loop of reloads gets no further.
            client_errors_per_minute: 10,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvidersConfig {
    pub retry: RetryConfig,
    pub local: LocalVoiceConfig,
    pub openai: OpenAiConfig,
    pub elevenlabs: ElevenLabsConfig,
    pub tencent: TencentConfig,
    pub whisper: WhisperConfig,
}

/// Speech recognition on this machine with whisper.cpp (`[providers.whisper]`); threads and
/// idle unloading come from `[models]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WhisperConfig {
    /// On by default: the provider is listed, and used once a model is installed.
    pub enabled: bool,
    /// An official variant installed by `aimake models pull whisper:<variant>` (`base`,
    /// `small.en`, `base-q8_0`), the name of an imported model, or an absolute path to a
    /// whisper.cpp ggml file.
    pub model: String,
    /// Beams searched while decoding; 1 decodes greedily (faster, and it went wrong on a
    /// robotic voice where 5 did not). At most 8.
    pub beam_size: usize,
    /// Pieces heard at once, sharing one loaded model; each uses `models.threads` threads.
    pub max_concurrency: usize,
}

impl Default for WhisperConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            model: "base".into(),
            beam_size: 5,
            max_concurrency: 1,
        }
    }
}

/// One retry policy shared by every HTTP provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Requests per synthesis, the first one included.
    pub max_attempts: u32,
    /// Upper bound of the first backoff; it doubles per attempt (with full jitter).
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    /// A provider's `Retry-After` is honoured up to this long.
    pub max_retry_after_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay_ms: 500,
            max_delay_ms: 20_000,
            max_retry_after_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalVoiceConfig {
    pub command: String,
    pub timeout_ms: u64,
    /// Engine processes at once; each takes a CPU core while it runs.
    pub max_concurrency: usize,
    pub price_micros_per_1k_chars: u64,
}

impl Default for LocalVoiceConfig {
    fn default() -> Self {
        Self {
            command: "espeak-ng".into(),
            timeout_ms: 60_000,
            max_concurrency: 2,
            price_micros_per_1k_chars: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiConfig {
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub model: String,
    /// Voice names offered; empty means OpenAI's built-in voices. Compatible servers such as
    /// Kokoro-FastAPI have their own names (`af_bella`, …).
    pub voices: Vec<String>,
    pub timeout_ms: u64,
    pub max_concurrency: usize,
    pub price_micros_per_1k_chars: u64,
    /// Where transcriptions go, when not to `base_url` (a speaches or faster-whisper server
    /// beside a speech-only one); empty means `base_url`.
    pub asr_base_url: String,
    pub asr_model: String,
    /// One transcription request; long uploads take a while to send and to transcribe.
    pub asr_timeout_ms: u64,
    pub asr_max_concurrency: usize,
    /// The largest upload the server takes (OpenAI: 25 MB).
    pub asr_max_upload_bytes: u64,
    /// Unset means the model's public price on OpenAI, and 0 on any other server.
    #[serde(deserialize_with = "optional_number")]
    pub asr_price_micros_per_minute: Option<u64>,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            api_key: None,
            model: "tts-1".into(),
            voices: Vec::new(),
            timeout_ms: 60_000,
            max_concurrency: 4,
            // $0.015 per 1,000 characters (tts-1).
            price_micros_per_1k_chars: 15_000,
            asr_base_url: String::new(),
            asr_model: "whisper-1".into(),
            // Whisper takes about a tenth of the audio's length; a 25 MB file is ~25 minutes.
            asr_timeout_ms: 300_000,
            asr_max_concurrency: 4,
            asr_max_upload_bytes: 26_214_400,
            asr_price_micros_per_minute: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElevenLabsConfig {
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub model: String,
    /// `mp3_*`, `pcm_*` or `opus_*` as ElevenLabs names them; telephony formats are refused.
    pub output_format: String,
    pub timeout_ms: u64,
    /// The plan's concurrent request limit (Free 2, Starter 3, Creator 5, Pro 10, Scale 15).
    pub max_concurrency: usize,
    /// How long the voice list is reused before it is fetched again.
    pub voices_cache_s: u64,
    pub price_micros_per_1k_chars: u64,
    /// Speech to text (Scribe): `scribe_v1` or `scribe_v2`.
    pub asr_model: String,
    pub asr_timeout_ms: u64,
    pub asr_max_concurrency: usize,
    pub asr_price_micros_per_minute: u64,
}

impl Default for ElevenLabsConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.elevenlabs.io".into(),
            api_key: None,
            model: "eleven_multilingual_v2".into(),
            output_format: "mp3_44100_128".into(),
            timeout_ms: 120_000,
            max_concurrency: 2,
            voices_cache_s: 300,
            // $0.30 per 1,000 characters.
            price_micros_per_1k_chars: 300_000,
            asr_model: "scribe_v1".into(),
            // Scribe transcribes long files in parallel; an hour takes a few minutes.
            asr_timeout_ms: 600_000,
            asr_max_concurrency: 2,
            // $0.40 per hour of audio (the Starter plan's API price).
            asr_price_micros_per_minute: 6_667,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TencentConfig {
    pub endpoint: String,
    pub secret_id: Option<Secret>,
    pub secret_key: Option<Secret>,
    pub region: String,
    /// 16000 or 8000 Hz.
    pub sample_rate: u32,
    pub timeout_ms: u64,
    /// TextToVoice allows 20 requests per second per account.
    pub max_concurrency: usize,
    /// No default price is published in a form we can rely on: set it from your bill.
    pub price_micros_per_1k_chars: u64,
    /// Speech recognition (`SentenceRecognition`, `CreateRecTask`) is another host.
    pub asr_endpoint: String,
    /// The engine (`EngSerViceType`) when a request names no language: `16k_zh`, `16k_en`, ...
    pub asr_engine: String,
    pub asr_timeout_ms: u64,
    pub asr_max_concurrency: usize,
    /// How often a recording task's status is asked for.
    pub asr_poll_interval_ms: u64,
    /// A recording task not done by then is given up.
    pub asr_task_timeout_ms: u64,
    pub asr_price_micros_per_minute: u64,
}

impl Default for TencentConfig {
    fn default() -> Self {
        Self {
            endpoint: "https://tts.tencentcloudapi.com".into(),
            secret_id: None,
            secret_key: None,
            region: "ap-guangzhou".into(),
            sample_rate: 16_000,
            timeout_ms: 60_000,
            max_concurrency: 4,
            price_micros_per_1k_chars: 0,
            asr_endpoint: "https://asr.tencentcloudapi.com".into(),
            asr_engine: "16k_zh".into(),
            asr_timeout_ms: 60_000,
            // SentenceRecognition allows 30 requests a second, CreateRecTask 20.
            asr_max_concurrency: 4,
            // An hour of audio usually takes 1-3 minutes.
            asr_poll_interval_ms: 2_000,
            asr_task_timeout_ms: 1_800_000,
            // $1.00 per hour of audio (recording file recognition, first tier).
            asr_price_micros_per_minute: 16_667,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub model: String,
    /// One chat request, including the time the model spends writing.
    pub timeout_s: u64,
    /// Retries of a rate-limited, failed (5xx) or timed-out request.
    pub max_retries: u32,
    /// Pasted sources longer than this are trimmed before they reach the model.
    pub max_source_chars: usize,
    /// Prices in micro-dollars per million tokens, for the usage ledger; 0 records no cost.
    pub price_input_per_1m_micros: u64,
    pub price_output_per_1m_micros: u64,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            api_key: None,
            model: String::new(),
            // A 30-minute script is several thousand tokens; slow local models need minutes.
            timeout_s: 180,
            max_retries: 2,
            // About 12k tokens: fits every current model's context with room for the answer.
            max_source_chars: 48_000,
            price_input_per_1m_micros: 0,
            price_output_per_1m_micros: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TtsConfig {
    pub max_chars: usize,
}

impl Default for TtsConfig {
    fn default() -> Self {
        Self { max_chars: 100_000 }
    }
}

/// The `[providers]` sections that recognize speech, in the order they are listed to users.
pub const ASR_PROVIDERS: [&str; 4] = ["openai", "elevenlabs", "tencent", "whisper"];

/// Transcripts in the library (`POST /api/transcriptions`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranscriptionConfig {
    /// The largest recording accepted, in bytes. Long recordings are split for the
    /// providers, so this bounds memory and storage, not what a provider takes.
    pub max_upload_bytes: u64,
    /// The speech recognition provider used when a request names none; empty: the first
    /// enabled one (`openai`, `elevenlabs`, `tencent`), else `whisper` when a model is installed.
    pub provider: String,
}

impl Default for TranscriptionConfig {
    fn default() -> Self {
        Self {
            // About 3.5 hours of 128 kbit/s MP3, or 20 minutes of CD-quality WAV.
            max_upload_bytes: 200 * 1024 * 1024,
            provider: String::new(),
        }
    }
}

/// The OpenAI-compatible API under `/v1`: how its speech model and voice names reach
/// aimake's providers, and its transcription.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Longest `input` of one `POST /v1/audio/speech`, in characters (OpenAI's limit).
    pub max_input_chars: usize,
    /// Model name → `provider` or `provider:model`.
    pub models: GatewayModels,
    /// Provider → (OpenAI voice name → that provider's voice).
    pub voices: GatewayVoices,
    /// `POST /v1/audio/transcriptions` and `/v1/audio/translations`.
    pub transcription: GatewayTranscriptionConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_input_chars: 4096,
            models: GatewayModels::default(),
            voices: GatewayVoices::default(),
            transcription: GatewayTranscriptionConfig::default(),
        }
    }
}

/// `POST /v1/audio/transcriptions` and `/v1/audio/translations` (`[gateway.transcription]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayTranscriptionConfig {
    /// The largest upload, in bytes: OpenAI's own limit by default, which clients expect.
    pub max_upload_bytes: u64,
    /// The provider OpenAI's model names (`whisper-1`, `gpt-4o-transcribe`,
    /// `gpt-4o-mini-transcribe`) go to when no OpenAI key is set; empty: the first enabled.
    pub provider: String,
    /// More model names clients may send, each to `provider` or `provider:model`
    /// (`"scribe" = "elevenlabs:scribe_v1"`).
    pub models: BTreeMap<String, String>,
}

impl Default for GatewayTranscriptionConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 26_214_400,
            provider: String::new(),
            models: BTreeMap::new(),
        }
    }
}

/// The providers a gateway route may name: `providers::PROVIDER_IDS` (this module sits below
/// `providers`, so the list is repeated here; a test in `gateway` keeps the two equal).
pub const GATEWAY_PROVIDERS: [&str; 6] = [
    "kokoro",
    "piper",
    "local",
    "openai",
    "elevenlabs",
    "tencent",
];

/// The OpenAI voice names every client knows, in OpenAI's order.
pub const OPENAI_VOICE_NAMES: [&str; 13] = [
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
    "marin", "cedar",
];

/// `gateway.models`: the built-in routes with the file's entries laid over them (an entry
/// set to `""` removes a route), so naming one model keeps the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>")]
pub struct GatewayModels(pub BTreeMap<String, String>);

impl Default for GatewayModels {
    fn default() -> Self {
        // OpenAI's own speech models go to OpenAI when it is configured; the gateway speaks
        // them with the best voice on this machine otherwise.
        Self(
            [
                ("tts-1", "openai:tts-1"),
                ("tts-1-hd", "openai:tts-1-hd"),
                ("gpt-4o-mini-tts", "openai:gpt-4o-mini-tts"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        )
    }
}

impl TryFrom<BTreeMap<String, String>> for GatewayModels {
    type Error = String;

    fn try_from(entries: BTreeMap<String, String>) -> Result<Self, String> {
        let mut models = Self::default();
        for (name, target) in entries {
            let target = target.trim();
            if target.is_empty() {
                models.0.remove(&name);
                continue;
            }
            if name.trim().is_empty() || name.chars().any(char::is_control) {
                return Err(format!("gateway.models: `{name}` is not a model name"));
            }
            let provider = target.split_once(':').map_or(target, |(p, _)| p);
            if !GATEWAY_PROVIDERS.contains(&provider) {
                return Err(format!(
                    "gateway.models.{name}: `{target}` names no provider (`provider` or \
                     `provider:model`, the providers being {})",
                    GATEWAY_PROVIDERS.join(", ")
                ));
            }
            if target.ends_with(':') {
                return Err(format!(
                    "gateway.models.{name}: `{target}` has an empty model"
                ));
            }
            models.0.insert(name, target.to_string());
        }
        Ok(models)
    }
}

/// `gateway.voices`: for each provider, what the OpenAI voice names speak with. The built-in
/// tables for the voices on this machine with the file's entries laid over them (`""` removes
/// one); OpenAI-compatible servers take the names as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, BTreeMap<String, String>>")]
pub struct GatewayVoices(pub BTreeMap<String, BTreeMap<String, String>>);

impl Default for GatewayVoices {
    fn default() -> Self {
        // Kokoro has voices named after five of OpenAI's; the rest get one of its voices of
        // the same gender and character. Piper's built-in voice is Joe (US English); espeak-ng
        // voices are accents, so British-sounding fable and ballad speak en-gb.
        let kokoro = [
            ("alloy", "af_alloy"),
            ("ash", "am_adam"),
            ("ballad", "bm_lewis"),
            ("coral", "af_heart"),
            ("echo", "am_echo"),
            ("fable", "bm_fable"),
            ("onyx", "am_onyx"),
            ("nova", "af_nova"),
            ("sage", "af_sarah"),
            ("shimmer", "af_bella"),
            ("verse", "am_michael"),
            ("marin", "af_kore"),
            ("cedar", "am_liam"),
        ];
        let table = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let same = |voice: &str| -> Vec<(&'static str, String)> {
            OPENAI_VOICE_NAMES
                .iter()
                .map(|name| (*name, voice.to_string()))
                .collect()
        };
        let owned = |pairs: Vec<(&'static str, String)>| -> BTreeMap<String, String> {
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
        };
        let mut local = owned(same("en-us"));
        for british in ["fable", "ballad"] {
            local.insert(british.to_string(), "en-gb".to_string());
        }
        Self(BTreeMap::from([
            ("kokoro".to_string(), table(&kokoro[..])),
            ("piper".to_string(), owned(same("en_US-joe-medium"))),
            ("local".to_string(), local),
        ]))
    }
}

impl TryFrom<BTreeMap<String, BTreeMap<String, String>>> for GatewayVoices {
    type Error = String;

    fn try_from(entries: BTreeMap<String, BTreeMap<String, String>>) -> Result<Self, String> {
        let mut voices = Self::default();
        for (provider, names) in entries {
            if !GATEWAY_PROVIDERS.contains(&provider.as_str()) {
                return Err(format!(
                    "gateway.voices: `{provider}` is not a provider (the providers are {})",
                    GATEWAY_PROVIDERS.join(", ")
                ));
            }
            let table = voices.0.entry(provider).or_default();
            for (name, voice) in names {
                let voice = voice.trim();
                if voice.is_empty() {
                    table.remove(&name);
                } else {
                    table.insert(name, voice.to_string());
                }
            }
        }
        Ok(voices)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    pub workers: usize,
}

impl Default for JobsConfig {
    fn default() -> Self {
        // Synthesis happens at the providers; a few concurrent jobs keep a 2-core box responsive.
        Self { workers: 4 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// Cron expression in UTC (5 fields, or 6 with seconds first); empty disables scheduled backups.
    pub schedule: String,
    /// Scheduled backups older than this are pruned; 0 keeps them all.
    pub keep_days: u32,
    pub include_media: bool,
    /// `""` (the main object store under `backups/`), `"dir:/path"` or `"s3"` (`backup.s3`).
    pub target: String,
    /// The bucket used when `target = "s3"`: its own endpoint and credentials.
    pub s3: S3Config,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            schedule: "0 3 * * *".into(),
            keep_days: 30,
            include_media: true,
            target: String::new(),
            s3: S3Config::default(),
        }
    }
}

/// Parses a schedule such as `backup.schedule`: five fields (minute precision) or six (with
/// seconds first), UTC.
pub fn parse_schedule(expr: &str) -> anyhow::Result<croner::Cron> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(expr.trim())
        .map_err(|e| anyhow::anyhow!("`{expr}` is not a cron expression: {e}"))
}

/// `backup.target`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// `""` or `"main"`: the main object store, under `backups/`.
    Main,
    /// `"dir:/path"`: a local directory (another disk, a mounted NAS).
    Dir(PathBuf),
    /// `"s3"`: the bucket in `[backup.s3]`, with its own endpoint and credentials.
    S3,
}

impl TargetSpec {
    pub fn parse(target: &str) -> anyhow::Result<Self> {
        let target = target.trim();
        if target.is_empty() || target == "main" {
            return Ok(Self::Main);
        }
        if target == "s3" {
            return Ok(Self::S3);
        }
        if let Some(dir) = target.strip_prefix("dir:") {
            if dir.trim().is_empty() {
                bail!("backup.target: `dir:` needs a path, e.g. \"dir:/srv/aimake-backups\"");
            }
            return Ok(Self::Dir(PathBuf::from(dir.trim())));
        }
        bail!(
            "backup.target: `{target}` is not one of \"\" (the main store), \"dir:/path\" or \"s3\" (the [backup.s3] bucket)"
        )
    }
}

/// The official Whisper models `models.auto_pull_whisper` may name: whisper.cpp's tiny, base
/// and small, their English-only `.en` models, each also quantized to q5_1 and q8_0. The
/// model manifest pins one file for each (a test there holds the two together).
pub const OFFICIAL_WHISPER_MODELS: [&str; 18] = [
    "tiny",
    "tiny-q5_1",
    "tiny-q8_0",
    "tiny.en",
    "tiny.en-q5_1",
    "tiny.en-q8_0",
    "base",
    "base-q5_1",
    "base-q8_0",
    "base.en",
    "base.en-q5_1",
    "base.en-q8_0",
    "small",
    "small-q5_1",
    "small-q8_0",
    "small.en",
    "small.en-q5_1",
    "small.en-q8_0",
];

/// The neural voice models on this machine (docs/neural.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Where model files and the ONNX Runtime library live; default `<data.dir>/models`.
    pub dir: Option<PathBuf>,
    /// A base URL that replaces every file's official origin: `<mirror>/<official file name>`.
    pub mirror: Option<String>,
    /// At `serve`, fetch ONNX Runtime and the default Kokoro model in the background when missing.
    pub auto_pull: bool,
    /// With `auto_pull`, also fetch this official Whisper model (`whisper:<variant>`) when no
    /// Whisper model is installed; `""` fetches none.
    pub auto_pull_whisper: String,
    /// An ONNX Runtime library to load instead of the one `aimake models pull runtime` installs.
    pub onnxruntime: Option<PathBuf>,
    /// A loaded model is dropped after this many seconds without use; 0 keeps it loaded.
    pub idle_unload_s: u64,
    /// Threads one inference may use; 0 means every core.
    pub threads: usize,
    /// Seconds one download may take before it is abandoned (and retried).
    pub download_timeout_s: u64,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            dir: None,
            mirror: None,
            auto_pull: true,
            auto_pull_whisper: "base".into(),
            onnxruntime: None,
            idle_unload_s: 300,
            threads: 0,
            download_timeout_s: 1800,
        }
    }
}

impl ModelsConfig {
    /// `models.dir`, else `<data.dir>/models`.
    pub fn dir(&self, data: &DataConfig) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data.dir.join("models"))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether the server counts anything and serves `/metrics`.
    pub enabled: bool,
    /// The separate listener that serves `GET /metrics` in the Prometheus text format; keep it
    /// on loopback or a private network.
    pub bind: String,
    /// When set (and not empty), `GET /metrics` is also served on the main port to
    /// `Authorization: Bearer <token>`.
    pub token: Option<Secret>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: "127.0.0.1:9091".into(),
            token: None,
        }
    }
}

impl MetricsConfig {
    /// The main port's token, when one is set.
    pub fn token(&self) -> Option<&Secret> {
        self.token.as_ref().filter(|t| !t.expose().is_empty())
    }

    pub fn bind_addr(&self) -> anyhow::Result<SocketAddr> {
        self.bind.parse().with_context(|| {
            format!(
                "metrics.bind: `{}` is not an address like 127.0.0.1:9091",
                self.bind
            )
        })
    }
}

/// Error reports to Sentry or a self-hosted GlitchTip (`ops::error_reports`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SentryConfig {
    /// Where reports go; none (or empty) sends nothing.
    pub dsn: Option<Secret>,
    /// Reports say which installation they come from.
    pub environment: String,
    /// The share of requests sent as performance traces, 0.0 to 1.0.
    pub traces_sample_rate: f32,
}

impl Default for SentryConfig {
    fn default() -> Self {
        Self {
            dsn: None,
            environment: "production".into(),
            // What the original design sampled.
            traces_sample_rate: 0.1,
        }
    }
}

impl SentryConfig {
    /// The DSN when one is set and not blank.
    pub fn dsn(&self) -> Option<&str> {
        self.dsn
            .as_ref()
            .map(|d| d.expose().trim())
            .filter(|d| !d.is_empty())
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(dsn) = self.dsn() {
            dsn.parse::<sentry::types::Dsn>().map_err(|e| {
                anyhow::anyhow!(
                    "sentry.dsn: not a DSN like https://KEY@sentry.example/PROJECT ({e})"
                )
            })?;
        }
        if !(0.0..=1.0).contains(&self.traces_sample_rate) {
            bail!("sentry.traces_sample_rate: must be between 0.0 and 1.0");
        }
        if self.environment.trim().is_empty() {
            bail!("sentry.environment: must not be empty");
        }
        Ok(())
    }
}

/// The server's alerts about itself (`ops::alerts`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    pub enabled: bool,
    /// How often every rule is measured.
    pub evaluate_every_s: u64,
    /// A firing alert notifies again this often.
    pub repeat_interval_s: u64,
    /// How far past its threshold a firing rule's signal must come back (a share of the
    /// threshold) before the alert may resolve.
    pub hysteresis: f64,
    /// The `daily_cost` rule's threshold: provider cost since midnight UTC; 0 = no budget.
    pub daily_budget_usd: f64,
    pub rules: AlertRules,
    /// Where alerts are sent.
    pub notifiers: Vec<NotifierConfig>,
    /// Retries of one notification, shared by every notifier.
    pub retry: NotifyRetryConfig,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            evaluate_every_s: 15,
            repeat_interval_s: 4 * 3600,
            hysteresis: 0.2,
            daily_budget_usd: 0.0,
            rules: AlertRules::default(),
            notifiers: Vec::new(),
            retry: NotifyRetryConfig::default(),
        }
    }
}

/// Which way a rule's signal breaches its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Above,
    Below,
}

/// One alert rule as configured: the built-in defaults with the file's changes on top.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRuleConfig {
    pub enabled: bool,
    /// In the signal's own unit: a share (0.05 = 5%), seconds, a count or hours. None for
    /// `daily_cost`, whose threshold is `alerts.daily_budget_usd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The signal is measured over this many seconds.
    pub window_s: u64,
    /// The breach must last this long before the alert fires (and the clear as long before it
    /// resolves); 0 = at once.
    pub for_s: u64,
    pub severity: crate::db::Severity,
    /// Names of `[[alerts.notifiers]]` to tell.
    pub notifiers: Vec<String>,
    /// A rate rests on at least this many events before it is judged.
    pub min_samples: u64,
    #[serde(skip)]
    pub direction: Direction,
}

/// What the file may change in a rule.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleOverride {
    enabled: Option<bool>,
    threshold: Option<f64>,
    window_s: Option<u64>,
    for_s: Option<u64>,
    severity: Option<crate::db::Severity>,
    notifiers: Option<Vec<String>>,
    min_samples: Option<u64>,
}

macro_rules! alert_rules {
    ($($name:ident: $threshold:expr, $dir:ident, window $window:expr, for $for_:expr,
       $severity:ident, [$($notifier:literal),*], min $min:expr;)*) => {
        /// The built-in rules: the design's four (error rate, p99 latency, database errors,
        /// TTS provider errors), then budget, backups, disk and object store.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(try_from = "std::collections::BTreeMap<String, AlertRuleOverride>")]
        pub struct AlertRules {
            $(pub $name: AlertRuleConfig,)*
        }

        impl Default for AlertRules {
            fn default() -> Self {
                Self {
                    $($name: AlertRuleConfig {
                        enabled: true,
                        threshold: $threshold,
                        window_s: $window,
                        for_s: $for_,
                        severity: crate::db::Severity::$severity,
                        notifiers: vec![$($notifier.to_string()),*],
                        min_samples: $min,
                        direction: Direction::$dir,
                    },)*
                }
            }
        }

        impl AlertRules {
            /// Every rule's name, in order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),*];

            /// Every rule with its name.
            pub fn named(&self) -> Vec<(&'static str, &AlertRuleConfig)> {
                vec![$((stringify!($name), &self.$name)),*]
            }

            fn get_mut(&mut self, name: &str) -> Option<&mut AlertRuleConfig> {
                match name {
                    $(stringify!($name) => Some(&mut self.$name),)*
                    _ => None,
                }
            }
        }
    };
}

alert_rules! {
    error_rate: Some(0.05), Above, window 300, for 300, Critical, ["slack", "email"], min 20;
    latency_p99: Some(3.0), Above, window 300, for 300, Warning, ["slack"], min 20;
    db_errors: Some(0.0), Above, window 60, for 60, Critical, ["slack", "pagerduty"], min 1;
    tts_error_rate: Some(0.10), Above, window 180, for 180, Warning, ["slack"], min 10;
    daily_cost: None, Above, window 0, for 0, Warning, ["slack"], min 1;
    backup_stale: Some(26.0), Above, window 0, for 0, Critical, ["slack", "email"], min 1;
    backup_failed: Some(0.0), Above, window 0, for 0, Critical, ["slack", "email"], min 1;
    disk_free: Some(0.10), Below, window 0, for 300, Critical, ["slack", "email"], min 1;
    storage_errors: Some(0.0), Above, window 300, for 60, Warning, ["slack"], min 1;
    certificate_failed: Some(0.0), Above, window 0, for 0, Warning, ["slack", "email"], min 1;
    certificate_expiry: Some(14.0), Below, window 0, for 0, Critical, ["slack", "email"], min 1;
}

impl TryFrom<std::collections::BTreeMap<String, AlertRuleOverride>> for AlertRules {
    type Error = String;

    fn try_from(
        overrides: std::collections::BTreeMap<String, AlertRuleOverride>,
    ) -> Result<Self, String> {
        let mut rules = Self::default();
        for (name, o) in overrides {
            let rule = rules.get_mut(&name).ok_or_else(|| {
                format!(
                    "unknown alert rule `{name}` (the rules are {})",
                    Self::NAMES.join(", ")
                )
            })?;
            if rule.threshold.is_none() && o.threshold.is_some() {
                return Err(
                    "alerts.rules.daily_cost takes its threshold from alerts.daily_budget_usd"
                        .into(),
                );
            }
            if let Some(t) = o.threshold {
                if !t.is_finite() || t < 0.0 {
                    return Err(format!("alerts.rules.{name}.threshold must be 0 or more"));
                }
                rule.threshold = Some(t);
            }
            rule.enabled = o.enabled.unwrap_or(rule.enabled);
            rule.window_s = o.window_s.unwrap_or(rule.window_s);
            rule.for_s = o.for_s.unwrap_or(rule.for_s);
            rule.severity = o.severity.unwrap_or(rule.severity);
            rule.min_samples = o.min_samples.unwrap_or(rule.min_samples);
            if let Some(n) = o.notifiers {
                rule.notifiers = n;
            }
        }
        Ok(rules)
    }
}

/// The providers' [`RetryConfig`] keys with the notifiers' own defaults (a key left out of
/// `[alerts.retry]` takes these, not the providers').
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyRetryConfig {
    pub max_attempts: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    pub max_retry_after_ms: u64,
}

impl Default for NotifyRetryConfig {
    fn default() -> Self {
        // An alert can wait a few seconds; it must not wait as long as a synthesis job.
        Self {
            max_attempts: 3,
            base_delay_ms: 1000,
            max_delay_ms: 10_000,
            max_retry_after_ms: 30_000,
        }
    }
}

impl NotifyRetryConfig {
    /// As the shared retry policy reads it.
    pub fn policy(&self) -> RetryConfig {
        RetryConfig {
            max_attempts: self.max_attempts,
            base_delay_ms: self.base_delay_ms,
            max_delay_ms: self.max_delay_ms,
            max_retry_after_ms: self.max_retry_after_ms,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifierKind {
    Slack,
    Email,
    Pagerduty,
    Webhook,
}

impl NotifierKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Email => "email",
            Self::Pagerduty => "pagerduty",
            Self::Webhook => "webhook",
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host.
    None,
}

/// The PagerDuty Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// One `[[alerts.notifiers]]` entry: the keys each kind reads are listed in
/// `aimake.example.toml`; the others must be absent.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierConfig {
    /// How rules and `aimake alerts test NAME` refer to this notifier.
    pub name: String,
    pub kind: NotifierKind,
    /// Slack: the incoming-webhook URL. Webhook: where to POST. PagerDuty: the Events API
    /// endpoint (default the public one). The URL is a credential for Slack and webhooks.
    pub url: Option<Secret>,
    /// PagerDuty: the 32-character integration (routing) key.
    pub routing_key: Option<Secret>,
    /// Webhook: the signing secret (`whsec_<base64>` or any string); unsigned when absent.
    pub secret: Option<Secret>,
    /// Email: the SMTP server.
    pub smtp_host: Option<String>,
    /// Email: default 587 with STARTTLS, 465 with TLS, 25 without.
    pub smtp_port: Option<u16>,
    #[serde(default)]
    pub smtp_tls: SmtpTls,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<Secret>,
    /// Email: the sender, `Name <address>` or an address.
    pub from: Option<String>,
    /// Email: recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// One attempt's limit, connection included.
    #[serde(default = "default_notifier_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_notifier_timeout_ms() -> u64 {
    10_000
}

impl NotifierConfig {
    /// The secrets this notifier holds, for the scrubber. A credential URL counts whole and
    /// by its path and query, which is what a receiver or a proxy echoes back.
    pub fn secrets(&self) -> Vec<Secret> {
        let mut out = Vec::new();
        if let (NotifierKind::Slack | NotifierKind::Webhook, Some(url)) = (self.kind, &self.url) {
            out.push(url.clone());
            if let Ok(parsed) = url::Url::parse(url.expose()) {
                let rest = &parsed[url::Position::BeforePath..];
                if rest != "/" {
                    out.push(Secret::new(rest));
                }
            }
        }
        out.extend(
            [&self.routing_key, &self.secret, &self.smtp_password]
                .into_iter()
                .flatten()
                .cloned(),
        );
        out
    }

    /// The SMTP port, from the key or the TLS mode's convention.
    pub fn smtp_port(&self) -> u16 {
        self.smtp_port.unwrap_or(match self.smtp_tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }

    fn validate(&self) -> anyhow::Result<()> {
        let name = &self.name;
        let key = |field: &str| format!("alerts.notifiers[{name}].{field}");
        let check_url = |url: &Secret| -> anyhow::Result<()> {
            // The value is a credential: the message names the key, never the URL.
            let parsed = url::Url::parse(url.expose())
                .map_err(|e| anyhow::anyhow!("{}: not a URL ({e})", key("url")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                bail!("{}: must be an http(s) URL", key("url"));
            }
            Ok(())
        };
        let forbid = |present: bool, field: &str| -> anyhow::Result<()> {
            if present {
                bail!(
                    "{}: not a key of kind = \"{}\"",
                    key(field),
                    self.kind.as_str()
                );
            }
            Ok(())
        };
        if self.timeout_ms == 0 {
            bail!("{}: must be at least 1", key("timeout_ms"));
        }
        let email_keys = self.smtp_host.is_some()
            || self.smtp_port.is_some()
            || self.smtp_username.is_some()
            || self.smtp_password.is_some()
            || self.from.is_some()
            || !self.to.is_empty();
        match self.kind {
            NotifierKind::Slack | NotifierKind::Webhook => {
                let url = self
                    .url
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("{}: required", key("url")))?;
                check_url(url)?;
                forbid(self.routing_key.is_some(), "routing_key")?;
                forbid(email_keys, "smtp_*/from/to")?;
                if self.kind == NotifierKind::Slack {
                    forbid(self.secret.is_some(), "secret")?;
                }
                if let Some(secret) = &self.secret {
                    signing_key(secret).with_context(|| key("secret"))?;
                }
            }
            NotifierKind::Pagerduty => {
                if let Some(url) = &self.url {
                    check_url(url)?;
                }
                let routing_key = self
                    .routing_key
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("{}: required", key("routing_key")))?;
                let chars = routing_key.expose().trim().chars().count();
                if chars != 32 {
                    bail!(
                        "{}: a PagerDuty integration key has 32 characters, this one has {chars}",
                        key("routing_key")
                    );
                }
                forbid(self.secret.is_some(), "secret")?;
                forbid(email_keys, "smtp_*/from/to")?;
            }
            NotifierKind::Email => {
                forbid(self.url.is_some(), "url")?;
                forbid(self.routing_key.is_some(), "routing_key")?;
                forbid(self.secret.is_some(), "secret")?;
                if self
                    .smtp_host
                    .as_deref()
                    .is_none_or(|h| h.trim().is_empty())
                {
                    bail!("{}: required", key("smtp_host"));
                }
                if self.smtp_password.is_some() && self.smtp_username.is_none() {
                    bail!("{}: required with smtp_password", key("smtp_username"));
                }
                let from = self
                    .from
                    .as_deref()
                    .ok_or_else(|| anyhow::anyhow!("{}: required", key("from")))?;
                from.parse::<lettre::message::Mailbox>().map_err(|e| {
                    anyhow::anyhow!("{}: `{from}` is not an address ({e})", key("from"))
                })?;
                if self.to.is_empty() {
                    bail!("{}: at least one recipient is required", key("to"));
                }
                for to in &self.to {
                    to.parse::<lettre::message::Mailbox>().map_err(|e| {
                        anyhow::anyhow!("{}: `{to}` is not an address ({e})", key("to"))
                    })?;
                }
            }
        }
        Ok(())
    }
}

/// The HMAC key of a webhook signing secret: `whsec_<base64>` is decoded (the Standard
/// Webhooks convention); any other string is used as it is.
pub fn signing_key(secret: &Secret) -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    let value = secret.expose().trim();
    match value.strip_prefix("whsec_") {
        Some(encoded) => {
            let key = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| anyhow::anyhow!("a whsec_ secret must be base64 after the prefix"))?;
            anyhow::ensure!(!key.is_empty(), "the whsec_ secret is empty");
            Ok(key)
        }
        None => {
            anyhow::ensure!(!value.is_empty(), "the secret is empty");
            Ok(value.as_bytes().to_vec())
        }
    }
}

impl AlertsConfig {
    /// The daily provider budget in US dollars; None when none is set.
    pub fn daily_budget(&self) -> Option<f64> {
        (self.daily_budget_usd > 0.0).then_some(self.daily_budget_usd)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.retry.max_attempts == 0 {
            bail!("alerts.retry.max_attempts: must be at least 1");
        }
        let mut names = std::collections::HashSet::new();
        for (i, n) in self.notifiers.iter().enumerate() {
            if n.name.trim().is_empty() {
                bail!("alerts.notifiers[{i}].name: required");
            }
            if !names.insert(n.name.as_str()) {
                bail!("alerts.notifiers[{}].name: used twice", n.name);
            }
            n.validate()?;
        }
        Ok(())
    }
}

/// Where the config file comes from, in order of preference.
pub fn config_path(cli: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = cli {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("AIMAKE_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let default = PathBuf::from("aimake.toml");
    default.exists().then_some(default)
}

/// A loaded config plus what the operator should hear about it (unknown env variables).
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub source: Option<PathBuf>,
    pub warnings: Vec<String>,
}

impl Config {
    /// Loads defaults, then the file (an explicit path must exist), then the process environment.
    pub fn load(cli_path: Option<&Path>) -> anyhow::Result<Loaded> {
        let path = config_path(cli_path);
        let text = match &path {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read config file {}", p.display()))?,
            ),
            None => None,
        };
        let env: Vec<(String, String)> = std::env::vars().collect();
        let mut loaded =
            Self::from_sources(text.as_deref(), &env).with_context(|| match &path {
                Some(p) => format!("invalid config (file {})", p.display()),
                None => "invalid config".to_string(),
            })?;
        loaded.source = path;
        Ok(loaded)
    }

    /// The layering itself, from a file's text and a list of environment variables.
    pub fn from_sources(file: Option<&str>, env: &[(String, String)]) -> anyhow::Result<Loaded> {
        let mut tree = match file {
            Some(text) => {
                let table: toml::Table =
                    toml::from_str(text).context("the file is not valid TOML")?;
                serde_json::to_value(table)?
            }
            None => Value::Object(Default::default()),
        };
        let known = serde_json::to_value(Config::default())?;
        let mut warnings = Vec::new();

        for (name, key) in CONVENTIONAL_ENV {
            if let Some((_, value)) = env.iter().find(|(n, _)| n == name) {
                set_path(&mut tree, &known, key, value).with_context(|| format!("in {name}"))?;
            }
        }

        let mut overrides: BTreeMap<String, (String, String)> = BTreeMap::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if ENV_NOT_KEYS.contains(&name.as_str()) {
                continue;
            }
            let (rest, from_file) = match rest.strip_suffix("_FILE") {
                Some(base) if lookup(&known, &env_key(base)).is_some() => (base, true),
                _ => (rest, false),
            };
            let key = env_key(rest);
            if lookup(&known, &key).is_none_or(Value::is_object) {
                warnings.push(format!("ignoring {name}: no config key `{key}`"));
                continue;
            }
            let value = if from_file {
                std::fs::read_to_string(value)
                    .with_context(|| format!("{name}: cannot read {value}"))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string()
            } else {
                value.clone()
            };
            overrides.insert(key, (name.clone(), value));
        }
        for (key, (name, value)) in &overrides {
            set_path(&mut tree, &known, key, value).with_context(|| format!("in {name}"))?;
        }

        let config: Config = serde_path_to_error::deserialize(tree).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                anyhow::anyhow!("{inner}")
            } else {
                anyhow::anyhow!("{path}: {inner}")
            }
        })?;
        config.validate()?;
        warnings.extend(config.conflicts());
        Ok(Loaded {
            config,
            source: None,
            warnings,
        })
    }

    /// Settings that contradict what is on the machine: warned about at start and by
    /// `aimake config check`, never refused.
    pub fn conflicts(&self) -> Vec<String> {
        let mut found = Vec::new();
        let sidecar = litestream_sidecar(&self.data.dir.join("aimake.db"));
        if !self.data.replicated && sidecar.is_dir() {
            found.push(format!(
                "{} is beside the database: Litestream replicates it, so set data.replicated = \
                 true (AIMAKE_DATA__REPLICATED=true), or every clean stop waits for its reader \
                 and leaves the WAL behind",
                sidecar.display()
            ));
        }
        if self.server.tls_enabled() && self.public_url().starts_with("http://") {
            found.push(
                "server.public_url is http:// while aimake serves HTTPS: links and cookies \
                 would point at the plain port, which only redirects"
                    .into(),
            );
        }
        if self.server.uses_acme() {
            let tls_port = self.server.tls_bind_addr().ok().flatten().map(|a| a.port());
            let plain_port = self.bind_addr().ok().map(|a| a.port());
            let reachable = match self.server.acme.challenge {
                AcmeChallenge::Auto => tls_port == Some(443) || plain_port == Some(80),
                AcmeChallenge::TlsAlpn01 => tls_port == Some(443),
                AcmeChallenge::Http01 => plain_port == Some(80),
            };
            if !reachable {
                found.push(
                    "server.domains: the certificate authority checks TLS-ALPN-01 on port 443 \
                     and HTTP-01 on port 80, and neither server.tls_bind nor server.bind is \
                     there (fine only if something forwards those ports here)"
                        .into(),
                );
            }
        }
        found
    }

    /// Checks what types alone cannot say.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.bind_addr()?;
        if self.metrics.enabled {
            self.metrics.bind_addr()?;
        }

        if !self.server.public_url.is_empty() {
            let url = url::Url::parse(&self.server.public_url).with_context(|| {
                format!(
                    "server.public_url: `{}` is not a URL",
                    self.server.public_url
                )
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                bail!(
                    "server.public_url: must be an http(s) origin, got `{}`",
                    self.server.public_url
                );
            }
        }
        for origin in &self.server.cors_origins {
            url::Url::parse(origin)
                .with_context(|| format!("server.cors_origins: `{origin}` is not an origin"))?;
        }
        if self.storage.kind == StorageKind::S3 {
            let s3 = &self.storage.s3;
            if s3.bucket.is_empty() {
                bail!("storage.s3.bucket: required when storage.kind = \"s3\"");
            }
            if !s3.endpoint.is_empty() {
                url::Url::parse(&s3.endpoint).with_context(|| {
                    format!("storage.s3.endpoint: `{}` is not a URL", s3.endpoint)
                })?;
            }
            if s3.access_key.is_some() != s3.secret_key.is_some() {
                bail!("storage.s3: access_key and secret_key must be set together");
            }
        }
        self.storage.validate()?;
        if !self.backup.schedule.trim().is_empty() {
            parse_schedule(&self.backup.schedule).context("backup.schedule")?;
        }
        if TargetSpec::parse(&self.backup.target)? == TargetSpec::S3 {
            let s3 = &self.backup.s3;
            if s3.bucket.is_empty() {
                bail!("backup.s3.bucket: required when backup.target = \"s3\"");
            }
            if !s3.endpoint.is_empty() {
                url::Url::parse(&s3.endpoint).with_context(|| {
                    format!("backup.s3.endpoint: `{}` is not a URL", s3.endpoint)
                })?;
            }
            if s3.access_key.is_some() != s3.secret_key.is_some() {
                bail!("backup.s3: access_key and secret_key must be set together");
            }
        }
        let whisper = self.models.auto_pull_whisper.trim();
        if !whisper.is_empty() && !OFFICIAL_WHISPER_MODELS.contains(&whisper) {
            bail!(
                "models.auto_pull_whisper: `{whisper}` is not an official Whisper model (tiny, base, small, their .en models, each also -q5_1 or -q8_0), nor \"\" for none"
            );
        }
        let whisper = &self.providers.whisper;
        let model = whisper.model.trim();
        if model.is_empty()
            || (model.contains(['/', '\\']) && !std::path::Path::new(model).is_absolute())
        {
            bail!(
                "providers.whisper.model: `{model}` must be a model name (base, small.en, an \
                 imported name) or an absolute path to a ggml file"
            );
        }
        if !(1..=8).contains(&whisper.beam_size) {
            bail!("providers.whisper.beam_size: must be between 1 and 8");
        }
        if whisper.max_concurrency == 0 {
            bail!("providers.whisper.max_concurrency: must be at least 1");
        }
        let asr_ids = ASR_PROVIDERS;
        for (key, provider) in [
            ("transcription.provider", &self.transcription.provider),
            (
                "gateway.transcription.provider",
                &self.gateway.transcription.provider,
            ),
        ] {
            if !provider.is_empty() && !asr_ids.contains(&provider.as_str()) {
                bail!("{key}: `{provider}` is not one of {}", asr_ids.join(", "));
            }
        }
        for (name, route) in &self.gateway.transcription.models {
            let provider = route.split_once(':').map_or(route.as_str(), |(p, _)| p);
            if !asr_ids.contains(&provider) {
                bail!(
                    "gateway.transcription.models.{name}: `{route}` must be provider or \
                     provider:model, the provider one of {}",
                    asr_ids.join(", ")
                );
            }
        }
        if self.transcription.max_upload_bytes == 0
            || self.gateway.transcription.max_upload_bytes == 0
        {
            bail!(
                "transcription.max_upload_bytes and gateway.transcription.max_upload_bytes: must be at least 1"
            );
        }
        if self.limits.requests_per_minute == 0 {
            bail!("limits.requests_per_minute: must be at least 1");
        }
        if self.limits.auth_requests_per_minute == 0 {
            bail!("limits.auth_requests_per_minute: must be at least 1");
        }
        if self.limits.creations_per_minute == 0 {
            bail!("limits.creations_per_minute: must be at least 1");
        }
        if self.limits.sign_in_failures_before_delay == 0 {
            bail!("limits.sign_in_failures_before_delay: must be at least 1");
        }
        if self.limits.sign_in_attempts_per_account_per_hour == 0 {
            bail!("limits.sign_in_attempts_per_account_per_hour: must be at least 1");
        }
        if self.limits.sign_in_max_delay_s == 0 {
            bail!("limits.sign_in_max_delay_s: must be at least 1");
        }
        if self.limits.client_errors_per_minute == 0 {
            bail!("limits.client_errors_per_minute: must be at least 1");
        }
        self.sentry.validate()?;
        if self.auth.session_idle_days == 0 || self.auth.session_max_days == 0 {
            bail!("auth.session_idle_days and auth.session_max_days: must be at least 1");
        }
        self.trusted_proxies()?;
        self.server.validate_tls()?;
        if self.limits.max_in_flight == 0 {
            bail!("limits.max_in_flight: must be at least 1");
        }
        if self.limits.max_in_flight_per_client == 0 {
            bail!("limits.max_in_flight_per_client: must be at least 1");
        }
        if self.server.transcription_timeout_s < self.server.request_timeout_s {
            bail!("server.transcription_timeout_s: must be at least server.request_timeout_s");
        }
        if self.server.body_idle_timeout_s == 0 {
            bail!("server.body_idle_timeout_s: must be at least 1");
        }
        if self.jobs.workers == 0 {
            bail!("jobs.workers: must be at least 1");
        }
        if self.gateway.max_input_chars == 0 {
            bail!("gateway.max_input_chars: must be at least 1");
        }
        self.alerts.validate()?;
        self.providers.validate()
    }

    /// The plain HTTP listener's address. With HTTPS on and `server.bind` at its default, it
    /// is port 80 on every interface, where browsers and the ACME HTTP-01 check arrive.
    pub fn bind_addr(&self) -> anyhow::Result<SocketAddr> {
        let bind = if self.server.tls_enabled() && self.server.bind == DEFAULT_BIND {
            HTTPS_PLAIN_BIND
        } else {
            &self.server.bind
        };
        bind.parse()
            .with_context(|| format!("server.bind: `{bind}` is not an address like 127.0.0.1:8000"))
    }

    /// `server.trusted_proxies` parsed; a bare address means that one host.
    pub fn trusted_proxies(&self) -> anyhow::Result<Vec<ipnet::IpNet>> {
        self.server
            .trusted_proxies
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "server.trusted_proxies: `{entry}` is not a CIDR like 10.0.0.0/8 or an address"
                        )
                    })
            })
            .collect()
    }

    /// The public origin without a trailing slash; derived from the bind address when unset.
    pub fn public_url(&self) -> String {
        if !self.server.public_url.is_empty() {
            return self.server.public_url.trim_end_matches('/').to_string();
        }
        if let Ok(Some(tls)) = self.server.tls_bind_addr() {
            return self.server.https_origin(tls);
        }
        match self.bind_addr() {
            Ok(addr) if addr.ip().is_unspecified() => format!("http://localhost:{}", addr.port()),
            Ok(addr) => format!("http://{addr}"),
            Err(_) => format!("http://{}", self.server.bind),
        }
    }

    /// The effective config as TOML, secrets redacted: what `aimake config check` prints.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

impl ProvidersConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if self.retry.max_attempts == 0 {
            bail!("providers.retry.max_attempts: must be at least 1");
        }
        for (name, concurrency, timeout_ms) in [
            ("local", self.local.max_concurrency, self.local.timeout_ms),
            (
                "openai",
                self.openai.max_concurrency,
                self.openai.timeout_ms,
            ),
            (
                "elevenlabs",
                self.elevenlabs.max_concurrency,
                self.elevenlabs.timeout_ms,
            ),
            (
                "tencent",
                self.tencent.max_concurrency,
                self.tencent.timeout_ms,
            ),
            (
                "openai.asr",
                self.openai.asr_max_concurrency,
                self.openai.asr_timeout_ms,
            ),
            (
                "elevenlabs.asr",
                self.elevenlabs.asr_max_concurrency,
                self.elevenlabs.asr_timeout_ms,
            ),
            (
                "tencent.asr",
                self.tencent.asr_max_concurrency,
                self.tencent.asr_timeout_ms,
            ),
        ] {
            // `openai.asr` names `providers.openai.asr_max_concurrency`.
            let (section, prefix) = match name.split_once('.') {
                Some((section, _)) => (section, "asr_"),
                None => (name, ""),
            };
            if concurrency == 0 {
                bail!("providers.{section}.{prefix}max_concurrency: must be at least 1");
            }
            if timeout_ms == 0 {
                bail!("providers.{section}.{prefix}timeout_ms: must be at least 1");
            }
        }
        if self.tencent.asr_poll_interval_ms == 0 {
            bail!("providers.tencent.asr_poll_interval_ms: must be at least 1");
        }
        if self.openai.asr_max_upload_bytes == 0 {
            bail!("providers.openai.asr_max_upload_bytes: must be at least 1");
        }
        for (key, value) in [
            ("providers.openai.base_url", &self.openai.base_url),
            ("providers.elevenlabs.base_url", &self.elevenlabs.base_url),
            ("providers.tencent.endpoint", &self.tencent.endpoint),
            ("providers.tencent.asr_endpoint", &self.tencent.asr_endpoint),
        ] {
            let url =
                url::Url::parse(value).with_context(|| format!("{key}: `{value}` is not a URL"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                bail!("{key}: must be an http(s) URL, got `{value}`");
            }
        }
        let format = &self.elevenlabs.output_format;
        if !["mp3_", "pcm_", "opus_"]
            .iter()
            .any(|p| format.starts_with(p))
        {
            bail!(
                "providers.elevenlabs.output_format: `{format}` is not supported; use an mp3_*, pcm_* or opus_* format"
            );
        }
        let asr_base_url = &self.openai.asr_base_url;
        if !asr_base_url.is_empty() {
            let url = url::Url::parse(asr_base_url).with_context(|| {
                format!("providers.openai.asr_base_url: `{asr_base_url}` is not a URL")
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                bail!(
                    "providers.openai.asr_base_url: must be an http(s) URL, got `{asr_base_url}`"
                );
            }
        }
        if !matches!(self.tencent.sample_rate, 8000 | 16000) {
            bail!("providers.tencent.sample_rate: must be 16000 or 8000");
        }
        Ok(())
    }
}

/// An optional number from the file (`6000`) or the environment, where every value arrives
/// as text (`"6000"`; empty means unset).
fn optional_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Number(n)) => Ok(Some(n)),
        Some(Raw::Text(t)) if t.trim().is_empty() => Ok(None),
        Some(Raw::Text(t)) => t
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("expected a number, got `{t}`"))),
    }
}

/// `SERVER__PUBLIC_URL` → `server.public_url`.
fn env_key(rest: &str) -> String {
    rest.split("__")
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join(".")
}

fn lookup<'a>(tree: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(tree, |node, part| node.get(part))
}

/// Sets `key` in `tree` from an environment string, typed by the default value at that key.
fn set_path(tree: &mut Value, known: &Value, key: &str, raw: &str) -> anyhow::Result<()> {
    let default = lookup(known, key).with_context(|| format!("no config key `{key}`"))?;
    let value = match default {
        Value::Bool(_) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Value::Bool(true),
            "false" | "0" | "no" | "off" => Value::Bool(false),
            _ => bail!("{key}: expected true or false, got `{raw}`"),
        },
        Value::Number(_) => {
            let n: serde_json::Number = raw
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("{key}: expected a number, got `{raw}`"))?;
            Value::Number(n)
        }
        Value::Array(_) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        _ => Value::String(raw.to_string()),
    };
    let mut node = tree;
    let parts: Vec<&str> = key.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        let map = node
            .as_object_mut()
            .with_context(|| format!("{key}: parent is not a table"))?;
        node = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    let map = node
        .as_object_mut()
        .with_context(|| format!("{key}: parent is not a table"))?;
    map.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_no_file_and_no_env() {
        let loaded = Config::from_sources(None, &[]).unwrap();
        let c = loaded.config;
        assert_eq!(c.server.bind, "127.0.0.1:8000");
        assert_eq!(c.data.dir, PathBuf::from("./data"));
        assert_eq!(c.storage.kind, StorageKind::Local);
        assert_eq!(c.auth.registration, Registration::Invite);
        assert_eq!(c.limits.requests_per_minute, 100);
        assert_eq!(c.backup.schedule, "0 3 * * *");
        assert_eq!(c.public_url(), "http://127.0.0.1:8000");
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn the_file_overrides_defaults_and_env_overrides_the_file() {
        let file = "[server]\nbind = \"127.0.0.1:9000\"\n[data]\ndir = \"/srv/a\"\n";
        let c = Config::from_sources(Some(file), &env(&[("AIMAKE_DATA__DIR", "/srv/b")]))
            .unwrap()
            .config;
        assert_eq!(c.server.bind, "127.0.0.1:9000");
        assert_eq!(c.data.dir, PathBuf::from("/srv/b"));
        assert_eq!(
            c.server.request_timeout_s, 30,
            "untouched keys keep their defaults"
        );
    }

    #[test]
    fn env_values_are_typed_by_the_key() {
        let c = Config::from_sources(
            None,
            &env(&[
                ("AIMAKE_LIMITS__REQUESTS_PER_MINUTE", "7"),
                ("AIMAKE_STORAGE__S3__PATH_STYLE", "false"),
                ("AIMAKE_STORAGE__KIND", "s3"),
                ("AIMAKE_STORAGE__S3__BUCKET", "media"),
                (
                    "AIMAKE_SERVER__TRUSTED_PROXIES",
                    "10.0.0.0/8, 192.168.0.0/16",
                ),
            ]),
        )
        .unwrap()
        .config;
        assert_eq!(c.limits.requests_per_minute, 7);
        assert!(!c.storage.s3.path_style);
        assert_eq!(c.storage.kind, StorageKind::S3);
        assert_eq!(
            c.server.trusted_proxies,
            vec!["10.0.0.0/8", "192.168.0.0/16"]
        );

        let err = Config::from_sources(None, &env(&[("AIMAKE_LIMITS__MAX_IN_FLIGHT", "lots")]))
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("limits.max_in_flight: expected a number"),
            "{err:#}"
        );
    }

    #[test]
    fn an_unknown_key_in_the_file_is_an_error_that_names_it() {
        let err = Config::from_sources(Some("[storage.s3]\nbukcet = \"x\"\n"), &[]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("storage.s3") && msg.contains("bukcet"),
            "{msg}"
        );

        let err = Config::from_sources(Some("[sever]\nbind = \"x\"\n"), &[]).unwrap_err();
        assert!(format!("{err:#}").contains("sever"), "{err:#}");
    }

    #[test]
    fn the_first_run_whisper_model_must_be_an_official_one_or_none() {
        let mut c = Config::default();
        assert_eq!(c.models.auto_pull_whisper, "base");
        c.validate().unwrap();
        for ok in ["", "tiny.en", "small-q8_0"] {
            c.models.auto_pull_whisper = ok.into();
            c.validate().unwrap();
        }
        c.models.auto_pull_whisper = "large-v3".into();
        let err = format!("{:#}", c.validate().unwrap_err());
        assert!(
            err.contains("models.auto_pull_whisper") && err.contains("large-v3"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_enum_value_is_an_error_that_names_the_key() {
        let err =
            Config::from_sources(Some("[auth]\nregistration = \"sometimes\"\n"), &[]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("auth.registration") && msg.contains("sometimes"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_aimake_variables_are_warned_about_not_fatal() {
        let loaded = Config::from_sources(
            None,
            &env(&[
                ("AIMAKE_SERVER__BIDN", "x"),
                ("AIMAKE_CONFIG", "/etc/aimake.toml"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains("AIMAKE_SERVER__BIDN"));
    }

    #[test]
    fn conventional_names_set_keys_and_aimake_names_win() {
        let c = Config::from_sources(
            None,
            &env(&[
                ("OPENAI_API_KEY", "sk-conventional"),
                ("S3_BUCKET", "from-s3-bucket"),
                ("AIMAKE_STORAGE__S3__BUCKET", "from-aimake"),
                ("CORS_ORIGINS", "https://a.example,https://b.example"),
                ("SENTRY_DSN", "https://key@sentry.example/1"),
            ]),
        )
        .unwrap()
        .config;
        assert_eq!(
            c.providers.openai.api_key.as_ref().unwrap().expose(),
            "sk-conventional"
        );
        assert_eq!(c.storage.s3.bucket, "from-aimake");
        assert_eq!(c.server.cors_origins.len(), 2);
        assert!(c.sentry.dsn.is_some());
    }

    #[test]
    fn a_secret_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "el-secret\n").unwrap();
        let c = Config::from_sources(
            None,
            &env(&[(
                "AIMAKE_PROVIDERS__ELEVENLABS__API_KEY_FILE",
                path.to_str().unwrap(),
            )]),
        )
        .unwrap()
        .config;
        assert_eq!(
            c.providers.elevenlabs.api_key.unwrap().expose(),
            "el-secret"
        );
    }

    #[test]
    fn secrets_never_show_in_debug_or_printed_config() {
        let c = Config::from_sources(
            None,
            &env(&[
                ("OPENAI_API_KEY", "sk-very-secret"),
                ("S3_SECRET_KEY", "s3-very-secret"),
                ("S3_ACCESS_KEY", "ak"),
            ]),
        )
        .unwrap()
        .config;
        let debug = format!("{c:?}");
        let printed = c.to_redacted_toml();
        for text in [&debug, &printed] {
            assert!(
                !text.contains("sk-very-secret") && !text.contains("s3-very-secret"),
                "{text}"
            );
            assert!(text.contains("[redacted]"));
        }
    }

    #[test]
    fn presigning_and_a_public_base_url_load_for_a_bucket() {
        let c = Config::from_sources(
            Some(
                "[storage]\nkind = \"s3\"\npresign = true\n\
                 public_base_url = \"https://cdn.example/shows/\"\n[storage.s3]\nbucket = \"b\"\n",
            ),
            &[],
        )
        .unwrap()
        .config;
        assert!(c.storage.presign);
        assert_eq!(c.storage.presign_expiry_s, 300);
        assert_eq!(c.storage.public_base(), Some("https://cdn.example/shows"));
        assert_eq!(Config::default().storage.public_base(), None);
    }

    #[test]
    fn invalid_values_are_rejected_with_the_key() {
        for (file, key) in [
            ("[server]\nbind = \"localhost\"\n", "server.bind"),
            ("[server]\npublic_url = \"ftp://x\"\n", "server.public_url"),
            ("[storage]\nkind = \"s3\"\n", "storage.s3.bucket"),
            ("[storage]\npresign = true\n", "storage.presign"),
            (
                "[storage]\npublic_base_url = \"https://cdn.example\"\n",
                "storage.public_base_url",
            ),
            (
                "[storage]\nkind = \"s3\"\npublic_base_url = \"cdn.example/audio\"\n[storage.s3]\nbucket = \"b\"\n",
                "storage.public_base_url",
            ),
            (
                "[storage]\nkind = \"s3\"\npublic_base_url = \"ftp://cdn.example\"\n[storage.s3]\nbucket = \"b\"\n",
                "storage.public_base_url",
            ),
            (
                "[storage]\nkind = \"s3\"\npresign = true\npresign_expiry_s = 0\n[storage.s3]\nbucket = \"b\"\n",
                "storage.presign_expiry_s",
            ),
            ("[backup]\ntarget = \"s3\"\n", "backup.s3.bucket"),
            ("[backup]\ntarget = \"nas\"\n", "backup.target"),
            ("[backup]\nschedule = \"at three\"\n", "backup.schedule"),
            (
                "[limits]\nrequests_per_minute = 0\n",
                "limits.requests_per_minute",
            ),
            (
                "[limits]\nsign_in_failures_before_delay = 0\n",
                "limits.sign_in_failures_before_delay",
            ),
            (
                "[limits]\nsign_in_attempts_per_account_per_hour = 0\n",
                "limits.sign_in_attempts_per_account_per_hour",
            ),
            (
                "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n",
                "server.trusted_proxies",
            ),
            ("[metrics]\nbind = \"port 9091\"\n", "metrics.bind"),
            (
                "[server]\ntranscription_timeout_s = 10\n",
                "server.transcription_timeout_s",
            ),
        ] {
            let err = Config::from_sources(Some(file), &[]).unwrap_err();
            assert!(format!("{err:#}").contains(key), "{file}: {err:#}");
        }
    }

    #[test]
    fn an_alert_rule_changes_only_what_the_file_sets_and_unknown_rules_are_named() {
        let c = Config::from_sources(
            Some(
                "[alerts.rules]\n\
                 error_rate = { threshold = 0.1, notifiers = [\"pager\"] }\n\
                 disk_free = { enabled = false }\n",
            ),
            &[],
        )
        .unwrap();
        let r = &c.config.alerts.rules;
        assert_eq!(r.error_rate.threshold, Some(0.1));
        assert_eq!(r.error_rate.notifiers, ["pager"]);
        assert_eq!(r.error_rate.for_s, 300, "the rule's own default stays");
        assert_eq!(r.error_rate.severity, crate::db::Severity::Critical);
        assert!(!r.disk_free.enabled);
        assert_eq!(r.disk_free.threshold, Some(0.1));
        assert_eq!(r.disk_free.direction, Direction::Below);
        assert_eq!(r.latency_p99, AlertRules::default().latency_p99);

        for (file, says) in [
            (
                "[alerts.rules]\nerror_rat = { threshold = 0.1 }\n",
                "unknown alert rule `error_rat`",
            ),
            (
                "[alerts.rules]\ndaily_cost = { threshold = 5.0 }\n",
                "alerts.daily_budget_usd",
            ),
            (
                "[alerts.rules]\nerror_rate = { threshold = -1.0 }\n",
                "must be 0 or more",
            ),
            (
                "[alerts.rules]\nerror_rate = { treshold = 0.1 }\n",
                "treshold",
            ),
            (
                "[alerts.rules]\nerror_rate = { severity = \"loud\" }\n",
                "loud",
            ),
        ] {
            let err = format!("{:#}", Config::from_sources(Some(file), &[]).unwrap_err());
            assert!(err.contains(says), "{file}: {err}");
        }
    }

    #[test]
    fn speech_recognition_keys_load_from_the_file_and_the_environment() {
        let c = Config::default().providers;
        assert_eq!(c.openai.asr_model, "whisper-1");
        assert_eq!(c.openai.asr_max_upload_bytes, 26_214_400);
        assert_eq!(c.openai.asr_price_micros_per_minute, None);
        assert_eq!(c.elevenlabs.asr_model, "scribe_v1");
        assert_eq!(c.elevenlabs.asr_price_micros_per_minute, 6_667);
        assert_eq!(c.tencent.asr_endpoint, "https://asr.tencentcloudapi.com");
        assert_eq!(c.tencent.asr_price_micros_per_minute, 16_667);

        let file = "[providers.openai]\nasr_base_url = \"http://127.0.0.1:8000/v1\"\n\
                    asr_model = \"gpt-4o-mini-transcribe\"\nasr_price_micros_per_minute = 3000\n\
                    [providers.tencent]\nasr_engine = \"16k_en\"\n";
        let c = Config::from_sources(Some(file), &[])
            .unwrap()
            .config
            .providers;
        assert_eq!(c.openai.asr_base_url, "http://127.0.0.1:8000/v1");
        assert_eq!(c.openai.asr_model, "gpt-4o-mini-transcribe");
        assert_eq!(c.openai.asr_price_micros_per_minute, Some(3_000));
        assert_eq!(c.tencent.asr_engine, "16k_en");

        let c = Config::from_sources(
            Some(file),
            &env(&[
                (
                    "AIMAKE_PROVIDERS__OPENAI__ASR_PRICE_MICROS_PER_MINUTE",
                    "6000",
                ),
                ("AIMAKE_PROVIDERS__TENCENT__ASR_POLL_INTERVAL_MS", "500"),
            ]),
        )
        .unwrap()
        .config
        .providers;
        assert_eq!(c.openai.asr_price_micros_per_minute, Some(6_000));
        assert_eq!(c.tencent.asr_poll_interval_ms, 500);
        let c = Config::from_sources(
            Some(file),
            &env(&[("AIMAKE_PROVIDERS__OPENAI__ASR_PRICE_MICROS_PER_MINUTE", "")]),
        )
        .unwrap()
        .config
        .providers;
        assert_eq!(
            c.openai.asr_price_micros_per_minute, None,
            "empty unsets it"
        );

        for (file, says) in [
            (
                "[providers.openai]\nasr_max_concurrency = 0\n",
                "providers.openai.asr_max_concurrency",
            ),
            (
                "[providers.tencent]\nasr_timeout_ms = 0\n",
                "providers.tencent.asr_timeout_ms",
            ),
            (
                "[providers.openai]\nasr_base_url = \"whisper.local\"\n",
                "providers.openai.asr_base_url",
            ),
            (
                "[providers.tencent]\nasr_endpoint = \"ftp://asr\"\n",
                "providers.tencent.asr_endpoint",
            ),
            (
                "[providers.tencent]\nasr_poll_interval_ms = 0\n",
                "providers.tencent.asr_poll_interval_ms",
            ),
            (
                "[providers.openai]\nasr_price_micros_per_minute = \"cheap\"\n",
                "expected a number",
            ),
        ] {
            let err = format!("{:#}", Config::from_sources(Some(file), &[]).unwrap_err());
            assert!(err.contains(says), "{file}: {err}");
        }
    }

    #[test]
    fn a_domain_turns_on_https_on_443_with_the_plain_port_on_80_and_an_https_public_url() {
        let loaded = Config::from_sources(
            None,
            &env(&[(
                "AIMAKE_SERVER__DOMAINS",
                "audio.example.com,www.audio.example.com",
            )]),
        )
        .unwrap();
        let c = loaded.config;
        assert!(c.server.tls_enabled() && c.server.uses_acme());
        assert_eq!(c.bind_addr().unwrap().to_string(), "0.0.0.0:80");
        assert_eq!(
            c.server.tls_bind_addr().unwrap().unwrap().to_string(),
            "0.0.0.0:443"
        );
        assert_eq!(c.public_url(), "https://audio.example.com");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

        // Ports elsewhere: the URL says so, and the check warns that ACME cannot reach them.
        let loaded = Config::from_sources(
            Some("[server]\ndomains = [\"audio.example.com\"]\nbind = \"127.0.0.1:8080\"\ntls_bind = \"127.0.0.1:8443\"\n"),
            &[],
        )
        .unwrap();
        assert_eq!(loaded.config.public_url(), "https://audio.example.com:8443");
        assert!(
            loaded.warnings.iter().any(|w| w.contains("port 443")),
            "{:?}",
            loaded.warnings
        );
        // Without HTTPS nothing changes.
        let plain = Config::default();
        assert!(!plain.server.tls_enabled());
        assert_eq!(plain.bind_addr().unwrap().to_string(), "127.0.0.1:8000");
        assert_eq!(plain.server.tls_bind_addr().unwrap(), None);
    }

    #[test]
    fn bad_https_settings_are_refused_with_the_key_named() {
        for (file, says) in [
            (
                "[server]\ndomains = [\"https://audio.example.com\"]\n",
                "server.domains",
            ),
            (
                "[server]\ndomains = [\"*.example.com\"]\n",
                "server.domains",
            ),
            (
                "[server]\ndomains = [\"Audio.Example.com\"]\n",
                "server.domains",
            ),
            ("[server]\ndomains = [\"localhost\"]\n", "server.domains"),
            ("[server.tls]\ncert = \"/etc/c.pem\"\n", "server.tls.key"),
            (
                "[server]\ndomains = [\"a.example.com\"]\ntls_bind = \"443\"\n",
                "server.tls_bind",
            ),
            (
                "[server]\ndomains = [\"a.example.com\"]\n[server.acme]\ndirectory = \"http://acme.example/dir\"\n",
                "server.acme.directory",
            ),
            (
                "[server]\ndomains = [\"a.example.com\"]\n[server.acme]\nchallenge = \"dns-01\"\n",
                "challenge",
            ),
        ] {
            let err = format!("{:#}", Config::from_sources(Some(file), &[]).unwrap_err());
            assert!(err.contains(says), "{file}: {err}");
        }
        // A certificate of one's own wins over ACME; the domains then name the site.
        let c = Config::from_sources(
            Some("[server]\ndomains = [\"a.example.com\"]\n[server.tls]\ncert = \"c\"\nkey = \"k\"\n"),
            &[],
        )
        .unwrap()
        .config;
        assert!(c.server.tls_enabled() && !c.server.uses_acme());
        assert_eq!(c.public_url(), "https://a.example.com");
    }

    #[test]
    fn the_example_file_parses_and_documents_every_key() {
        let text = include_str!("../aimake.example.toml");
        // Uncommenting every `# key = value` line must still give a valid config.
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") && !rest.starts_with(' ') => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        Config::from_sources(Some(text), &[]).expect("example parses as is");
        Config::from_sources(Some(&uncommented), &[]).expect("example parses with every key set");
        let full: toml::Table = toml::from_str(&uncommented).expect("uncommented example is TOML");
        let full = serde_json::to_value(full).unwrap();
        let known = serde_json::to_value(Config::default()).unwrap();
        let mut missing = Vec::new();
        collect_leaves(&known, String::new(), &mut |key| {
            if lookup(&full, key).is_none() {
                missing.push(key.to_string());
            }
        });
        assert!(
            missing.is_empty(),
            "keys missing from aimake.example.toml: {missing:?}"
        );
        let mut unknown = Vec::new();
        collect_leaves(&full, String::new(), &mut |key| {
            if lookup(&known, key).is_none() {
                unknown.push(key.to_string());
            }
        });
        assert!(
            unknown.is_empty(),
            "aimake.example.toml documents keys that do not exist: {unknown:?}"
        );
    }

    const SLACK_URL: &str = "https://hooks.slack.com/services/T000/B000/sl4ck-s3cret-path";

    #[test]
    fn notifiers_of_every_kind_load_from_the_file() {
        let file = format!(
            r#"
[[alerts.notifiers]]
name = "ops"
kind = "slack"
url = "{SLACK_URL}"

[[alerts.notifiers]]
name = "oncall"
kind = "pagerduty"
routing_key = "0123456789abcdef0123456789abcdef"

[[alerts.notifiers]]
name = "mail"
kind = "email"
smtp_host = "smtp.example.org"
smtp_tls = "tls"
from = "aimake <alerts@example.org>"
to = ["ops@example.org"]

[[alerts.notifiers]]
name = "hook"
kind = "webhook"
url = "https://ops.example.org/in"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"#
        );
        let c = Config::from_sources(Some(&file), &[]).unwrap().config;
        let kinds: Vec<_> = c.alerts.notifiers.iter().map(|n| n.kind).collect();
        assert_eq!(
            kinds,
            [
                NotifierKind::Slack,
                NotifierKind::Pagerduty,
                NotifierKind::Email,
                NotifierKind::Webhook
            ]
        );
        assert_eq!(c.alerts.notifiers[2].smtp_port(), 465);
        assert_eq!(c.alerts.notifiers[0].timeout_ms, 10_000);
        assert_eq!(c.alerts.retry.max_attempts, 3);

        let partial = "[alerts.retry]\nbase_delay_ms = 5\n";
        let c = Config::from_sources(Some(partial), &[]).unwrap().config;
        assert_eq!(
            (
                c.alerts.retry.max_attempts,
                c.alerts.retry.max_retry_after_ms
            ),
            (3, 30_000),
            "a key left out takes the notifiers' default, not the providers'"
        );
        let printed = c.to_redacted_toml();
        assert!(!printed.contains("sl4ck-s3cret"), "{printed}");
        assert!(!printed.contains("0123456789abcdef"), "{printed}");
        assert!(!format!("{c:?}").contains("sl4ck-s3cret"));
    }

    #[test]
    fn a_bad_notifier_is_refused_naming_its_key_and_never_its_secret() {
        let cases = [
            (
                "name = \"ops\"\nkind = \"slack\"\nurl = \"hooks.slack.com/s3cr3t-token\"",
                "alerts.notifiers[ops].url: not a URL",
            ),
            (
                "name = \"ops\"\nkind = \"slack\"\nurl = \"ftp://host/s3cr3t-token\"",
                "alerts.notifiers[ops].url: must be an http(s) URL",
            ),
            (
                "name = \"ops\"\nkind = \"slack\"",
                "alerts.notifiers[ops].url: required",
            ),
            (
                "name = \"pd\"\nkind = \"pagerduty\"\nrouting_key = \"s3cr3t-token-short\"",
                "alerts.notifiers[pd].routing_key: a PagerDuty integration key has 32 characters, this one has 18",
            ),
            (
                "name = \"m\"\nkind = \"email\"\nsmtp_host = \"smtp.example.org\"\nfrom = \"a@example.org\"",
                "alerts.notifiers[m].to: at least one recipient is required",
            ),
            (
                "name = \"m\"\nkind = \"email\"\nsmtp_host = \"smtp.example.org\"\nfrom = \"a@example.org\"\nto = [\"not an address\"]",
                "alerts.notifiers[m].to: `not an address` is not an address",
            ),
            (
                "name = \"m\"\nkind = \"email\"\nfrom = \"a@example.org\"\nto = [\"b@example.org\"]",
                "alerts.notifiers[m].smtp_host: required",
            ),
            (
                "name = \"h\"\nkind = \"webhook\"\nurl = \"https://example.org/\"\nsecret = \"whsec_%%%s3cr3t-token\"",
                "alerts.notifiers[h].secret",
            ),
            (
                "name = \"h\"\nkind = \"webhook\"\nurl = \"https://example.org/\"\nrouting_key = \"s3cr3t-token\"",
                "alerts.notifiers[h].routing_key: not a key of kind = \"webhook\"",
            ),
            ("name = \"x\"\nkind = \"sms\"", "alerts.notifiers[0].kind"),
        ];
        for (entry, expected) in cases {
            let file = format!("[[alerts.notifiers]]\n{entry}\n");
            let err = format!("{:#}", Config::from_sources(Some(&file), &[]).unwrap_err());
            assert!(err.contains(expected), "{entry}: {err}");
            assert!(!err.contains("s3cr3t-token"), "{entry}: {err}");
        }
        let twice = format!(
            "[[alerts.notifiers]]\nname = \"a\"\nkind = \"slack\"\nurl = \"{SLACK_URL}\"\n\
             [[alerts.notifiers]]\nname = \"a\"\nkind = \"slack\"\nurl = \"{SLACK_URL}\"\n"
        );
        let err = format!("{:#}", Config::from_sources(Some(&twice), &[]).unwrap_err());
        assert!(
            err.contains("alerts.notifiers[a].name: used twice"),
            "{err}"
        );
    }

    fn collect_leaves(node: &Value, prefix: String, f: &mut dyn FnMut(&str)) {
        match node {
            Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    collect_leaves(v, key, f);
                }
            }
            _ => f(&prefix),
        }
    }
}
