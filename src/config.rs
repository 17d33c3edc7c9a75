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
    pub jobs: JobsConfig,
    pub backup: BackupConfig,
    pub models: ModelsConfig,
    pub metrics: MetricsConfig,
    pub sentry: SentryConfig,
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
    /// A request body that sends nothing for this long is answered 408 and its slot freed.
    pub body_idle_timeout_s: u64,
    /// How long shutdown waits for in-flight requests before giving up on them.
    pub shutdown_grace_s: u64,
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8000".into(),
            public_url: String::new(),
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
            request_timeout_s: 30,
            // Ample for a phone on a poor link; short enough that stalled uploads cannot
            // pile up.
            body_idle_timeout_s: 10,
            shutdown_grace_s: 30,
            // A 100k-character text is at most ~400 KB of UTF-8: 1 MiB leaves room for the rest
            // of the JSON and sheds abuse. Upload routes raise it for themselves.
            max_body_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    pub dir: PathBuf,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./data"),
        }
    }
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

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub kind: StorageKind,
    pub s3: S3Config,
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

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SentryConfig {
    pub dsn: Option<Secret>,
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
        Ok(Loaded {
            config,
            source: None,
            warnings,
        })
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
        if self.auth.session_idle_days == 0 || self.auth.session_max_days == 0 {
            bail!("auth.session_idle_days and auth.session_max_days: must be at least 1");
        }
        self.trusted_proxies()?;
        if self.limits.max_in_flight == 0 {
            bail!("limits.max_in_flight: must be at least 1");
        }
        if self.limits.max_in_flight_per_client == 0 {
            bail!("limits.max_in_flight_per_client: must be at least 1");
        }
        if self.server.body_idle_timeout_s == 0 {
            bail!("server.body_idle_timeout_s: must be at least 1");
        }
        if self.jobs.workers == 0 {
            bail!("jobs.workers: must be at least 1");
        }
        self.providers.validate()
    }

    pub fn bind_addr(&self) -> anyhow::Result<SocketAddr> {
        self.server.bind.parse().with_context(|| {
            format!(
                "server.bind: `{}` is not an address like 127.0.0.1:8000",
                self.server.bind
            )
        })
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
        ] {
            if concurrency == 0 {
                bail!("providers.{name}.max_concurrency: must be at least 1");
            }
            if timeout_ms == 0 {
                bail!("providers.{name}.timeout_ms: must be at least 1");
            }
        }
        for (key, value) in [
            ("providers.openai.base_url", &self.openai.base_url),
            ("providers.elevenlabs.base_url", &self.elevenlabs.base_url),
            ("providers.tencent.endpoint", &self.tencent.endpoint),
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
        if !matches!(self.tencent.sample_rate, 8000 | 16000) {
            bail!("providers.tencent.sample_rate: must be 16000 or 8000");
        }
        Ok(())
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
    fn invalid_values_are_rejected_with_the_key() {
        for (file, key) in [
            ("[server]\nbind = \"localhost\"\n", "server.bind"),
            ("[server]\npublic_url = \"ftp://x\"\n", "server.public_url"),
            ("[storage]\nkind = \"s3\"\n", "storage.s3.bucket"),
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
        ] {
            let err = Config::from_sources(Some(file), &[]).unwrap_err();
            assert!(format!("{err:#}").contains(key), "{file}: {err:#}");
        }
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
