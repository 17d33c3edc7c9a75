//! Prometheus metrics: every name in one place, the process's recorder, the request counters
//! the edge keeps, and the text `GET /metrics` answers.
//!
//! Two kinds of recording, one render. What happens at most a few times a second (jobs,
//! provider calls, backups, the sampler's gauges) goes through the `metrics` facade into the
//! process's `metrics-exporter-prometheus` recorder. What happens on every request (HTTP
//! counts and durations, database read and write durations) is kept in fixed tables of
//! atomics here, so recording is a few relaxed additions: no allocation, lock or lookup in a
//! shared map. The HTTP table belongs to one server (tests run several in one process); the
//! rest is the process's.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::series::{self, ProviderKind};
use crate::error_code::ErrorCode;

/// The name of every metric the server exports.
pub mod names {
    pub const HTTP_REQUESTS: &str = "aimake_http_requests_total";
    pub const HTTP_DURATION: &str = "aimake_http_request_duration_seconds";
    pub const HTTP_IN_FLIGHT: &str = "aimake_http_requests_in_flight";
    pub const HTTP_REJECTIONS: &str = "aimake_http_rejections_total";
    pub const HEALTH_PROBES: &str = "aimake_health_probes_total";
    pub const JOBS: &str = "aimake_jobs";
    pub const JOB_DURATION: &str = "aimake_job_duration_seconds";
    pub const JOB_FAILURES: &str = "aimake_job_failures_total";
    pub const PROVIDER_REQUESTS: &str = "aimake_provider_requests_total";
    pub const PROVIDER_ATTEMPTS: &str = "aimake_provider_attempts_total";
    pub const PROVIDER_DURATION: &str = "aimake_provider_request_duration_seconds";
    pub const PROVIDER_CHARACTERS: &str = "aimake_provider_characters_total";
    pub const PROVIDER_COST: &str = "aimake_provider_cost_usd_total";
    pub const DB_ERRORS: &str = "aimake_db_errors_total";
    pub const DB_DURATION: &str = "aimake_db_operation_duration_seconds";
    pub const DB_SIZE: &str = "aimake_db_size_bytes";
    pub const DB_WAL_SIZE: &str = "aimake_db_wal_size_bytes";
    pub const STORAGE_ERRORS: &str = "aimake_storage_errors_total";
    pub const BACKUP_LAST_SUCCESS: &str = "aimake_backup_last_success_timestamp_seconds";
    pub const BACKUP_DURATION: &str = "aimake_backup_duration_seconds";
    pub const BACKUP_FAILURES: &str = "aimake_backup_failures_total";
    pub const USERS: &str = "aimake_users";
    pub const AUDIOS: &str = "aimake_audios";
    pub const DISK_FREE_RATIO: &str = "aimake_data_disk_free_ratio";
    pub const BUILD_INFO: &str = "aimake_build_info";
    /// What the process collector's names start with (`aimake_process_cpu_seconds_total`,
    /// `aimake_process_resident_memory_bytes`, `aimake_process_open_fds`,
    /// `aimake_process_start_time_seconds`, ...).
    pub const PROCESS_PREFIX: &str = "aimake_";
}

/// Request duration buckets, in seconds, up to 10 s.
pub const HTTP_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Database operation buckets, in seconds.
const DB_BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
];

/// Jobs and provider calls take seconds to minutes.
const SLOW_BUCKETS: [f64; 11] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

/// The process's recorder, installed on first use. `None` when another recorder was
/// installed first (an embedding program's): then only the edge's own tables are served.
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(names::JOB_DURATION.into()), &SLOW_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(names::PROVIDER_DURATION.into()),
                        &SLOW_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(names::BACKUP_DURATION.into()),
                        &SLOW_BUCKETS,
                    )
                })
                .and_then(PrometheusBuilder::install_recorder);
            match built {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot install the metrics recorder");
                    None
                }
            }
        })
        .as_ref()
}

fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let c = metrics_process::Collector::new(names::PROCESS_PREFIX);
        c.describe();
        c
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        names::JOBS,
        "Jobs in the queue by kind and state (sampled every 15 s; failed: in the last 24 hours)"
    );
    describe_histogram!(
        names::JOB_DURATION,
        Unit::Seconds,
        "Job attempts by kind and outcome, and how long each ran"
    );
    describe_counter!(
        names::JOB_FAILURES,
        "Jobs that failed for good, by kind and reason (the error code)"
    );
    describe_counter!(
        names::PROVIDER_REQUESTS,
        "Logical provider calls (retries included) by provider, kind and outcome"
    );
    describe_counter!(
        names::PROVIDER_ATTEMPTS,
        "HTTP attempts made to remote providers, retries counted one by one"
    );
    describe_histogram!(
        names::PROVIDER_DURATION,
        Unit::Seconds,
        "How long logical provider calls took, retries included"
    );
    describe_counter!(
        names::PROVIDER_CHARACTERS,
        "Characters sent to text-to-speech providers"
    );
    describe_counter!(
        names::DB_ERRORS,
        "Database operations that failed with a SQLite error, by operation"
    );
    describe_gauge!(names::DB_SIZE, Unit::Bytes, "Size of the database file");
    describe_gauge!(
        names::DB_WAL_SIZE,
        Unit::Bytes,
        "Size of the database's write-ahead log"
    );
    describe_counter!(
        names::STORAGE_ERRORS,
        "Object store operations that failed (a missing object is not a failure)"
    );
    describe_gauge!(
        names::BACKUP_LAST_SUCCESS,
        Unit::Seconds,
        "Unix time of the last successful backup"
    );
    describe_gauge!(
        names::BACKUP_DURATION,
        Unit::Seconds,
        "How long the last successful backup took"
    );
    describe_counter!(names::BACKUP_FAILURES, "Backups that failed");
    describe_gauge!(names::USERS, "User accounts");
    describe_gauge!(names::AUDIOS, "Audios in the library, every user's");
    describe_gauge!(
        names::DISK_FREE_RATIO,
        "Free share of the file system holding the data directory (0 to 1)"
    );
    describe_gauge!(names::BUILD_INFO, "Always 1; the labels name the build");
    metrics::gauge!(names::BUILD_INFO, "version" => crate::VERSION).set(1.0);
}

/// Methods counted by name; anything else is `other`.
const METHODS: [Method; 7] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::HEAD,
    Method::OPTIONS,
];

fn method_index(m: &Method) -> usize {
    METHODS.iter().position(|x| x == m).unwrap_or(METHODS.len())
}

fn method_name(i: usize) -> &'static str {
    METHODS.get(i).map_or("other", Method::as_str)
}

/// Statuses counted one by one: every one the server answers. Any other is counted with the
/// nearest below it in this list (a 418 as a 416), so the table stays fixed.
const STATUSES: [u16; 33] = [
    100, 200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 406, 408,
    409, 410, 411, 412, 413, 414, 415, 416, 422, 429, 431, 500, 502, 503,
];

fn status_index(status: u16) -> usize {
    match STATUSES.binary_search(&status) {
        Ok(i) => i,
        Err(0) => 0,
        Err(i) => i - 1,
    }
}

/// One route's counters.
struct RouteCounters {
    route: Box<str>,
    requests: [[AtomicU64; STATUSES.len()]; METHODS.len() + 1],
    duration: AtomicHistogram<{ HTTP_BUCKETS.len() }>,
}

/// Routes a server counts at most: every route pattern it has, with room to spare. A label
/// past it is counted as `other`.
const ROUTE_SLOTS: usize = 256;

/// A fixed-bucket histogram of atomics.
pub struct AtomicHistogram<const N: usize> {
    bounds: &'static [f64; N],
    /// Per bucket, not cumulative; the last is `+Inf`.
    counts: [AtomicU64; N],
    overflow: AtomicU64,
    sum_ns: AtomicU64,
}

impl<const N: usize> AtomicHistogram<N> {
    pub const fn new(bounds: &'static [f64; N]) -> Self {
        Self {
            bounds,
            counts: [const { AtomicU64::new(0) }; N],
            overflow: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let s = elapsed.as_secs_f64();
        match self.bounds.iter().position(|&b| s <= b) {
            Some(i) => self.counts[i].fetch_add(1, Relaxed),
            None => self.overflow.fetch_add(1, Relaxed),
        };
        self.sum_ns
            .fetch_add(elapsed.as_nanos().min(u128::from(u64::MAX)) as u64, Relaxed);
    }

    fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum::<u64>() + self.overflow.load(Relaxed)
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines; `labels` is `k="v",` or empty.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.overflow.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {cumulative}");
        let labels = labels.trim_end_matches(',');
        let sum = self.sum_ns.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// The database's read and write durations and errors, for the whole process.
pub struct DbMetrics {
    read: AtomicHistogram<{ DB_BUCKETS.len() }>,
    write: AtomicHistogram<{ DB_BUCKETS.len() }>,
    read_errors: AtomicU64,
    write_errors: AtomicU64,
}

pub static DB: DbMetrics = DbMetrics {
    read: AtomicHistogram::new(&DB_BUCKETS),
    write: AtomicHistogram::new(&DB_BUCKETS),
    read_errors: AtomicU64::new(0),
    write_errors: AtomicU64::new(0),
};

impl DbMetrics {
    /// One read (or lookup) and whether it failed with a database error.
    pub fn read(&self, elapsed: Duration, failed: bool) {
        self.read.observe(elapsed);
        if failed {
            self.read_errors.fetch_add(1, Relaxed);
            series::series().record_db_error();
        }
    }

    pub fn write(&self, elapsed: Duration, failed: bool) {
        self.write.observe(elapsed);
        if failed {
            self.write_errors.fetch_add(1, Relaxed);
            series::series().record_db_error();
        }
    }

    /// Read and write errors so far.
    pub fn errors(&self) -> (u64, u64) {
        (
            self.read_errors.load(Relaxed),
            self.write_errors.load(Relaxed),
        )
    }

    fn render(&self, out: &mut String) {
        header(
            out,
            names::DB_DURATION,
            "histogram",
            "Database reads (lookups included) and writes, and how long each took",
        );
        self.read.render(out, names::DB_DURATION, "op=\"read\",");
        self.write.render(out, names::DB_DURATION, "op=\"write\",");
        header(
            out,
            names::DB_ERRORS,
            "counter",
            "Database operations that failed with a SQLite error, by operation",
        );
        let _ = writeln!(
            out,
            "{}{{op=\"read\"}} {}",
            names::DB_ERRORS,
            self.read_errors.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "{}{{op=\"write\"}} {}",
            names::DB_ERRORS,
            self.write_errors.load(Relaxed)
        );
    }
}

/// One server's HTTP counters, kept by the edge.
pub struct HttpMetrics {
    routes: Box<[OnceLock<Box<RouteCounters>>]>,
    other: RouteCounters,
    in_flight: AtomicI64,
    /// By refusal code, found like the routes.
    rejections: [(OnceLock<&'static str>, AtomicU64); 32],
    health_probes: AtomicU64,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            routes: (0..ROUTE_SLOTS).map(|_| OnceLock::new()).collect(),
            other: RouteCounters::new("other"),
            in_flight: AtomicI64::new(0),
            rejections: std::array::from_fn(|_| (OnceLock::new(), AtomicU64::new(0))),
            health_probes: AtomicU64::new(0),
        }
    }
}

impl RouteCounters {
    fn new(route: &str) -> Self {
        Self {
            route: route.into(),
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            duration: AtomicHistogram::new(&HTTP_BUCKETS),
        }
    }
}

/// FNV-1a: a route label is short, and this is a handful of multiplications.
fn hash(s: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h as usize
}

impl HttpMetrics {
    /// The route's counters: found by its label's hash and a string comparison; the first
    /// request of a route allocates them, once.
    fn route(&self, route: &str) -> &RouteCounters {
        let start = hash(route);
        for probe in 0..ROUTE_SLOTS {
            let slot = &self.routes[(start + probe) % ROUTE_SLOTS];
            let counters = slot.get_or_init(|| Box::new(RouteCounters::new(route)));
            if &*counters.route == route {
                return counters;
            }
        }
        &self.other
    }

    /// What the table holds in memory: the fixed slots, and the counters of every route
    /// seen so far (at most `ROUTE_SLOTS` of them, whatever the traffic).
    pub fn memory_bytes(&self) -> usize {
        let route = |r: &RouteCounters| std::mem::size_of::<RouteCounters>() + r.route.len();
        std::mem::size_of::<Self>()
            + std::mem::size_of_val(&*self.routes)
            + self
                .routes
                .iter()
                .filter_map(|s| s.get())
                .map(|r| route(r))
                .sum::<usize>()
            + self.other.route.len()
    }

    /// A request the edge answered.
    pub fn record(&self, method: &Method, route: &str, status: StatusCode, elapsed: Duration) {
        let counters = self.route(route);
        counters.requests[method_index(method)][status_index(status.as_u16())]
            .fetch_add(1, Relaxed);
        counters.duration.observe(elapsed);
        series::series().record_request(status.as_u16(), elapsed);
    }

    /// A request refused at the edge or the guard, by its error code.
    pub fn rejected(&self, code: ErrorCode) {
        let reason = code.as_str();
        for (name, count) in &self.rejections {
            if *name.get_or_init(|| reason) == reason {
                count.fetch_add(1, Relaxed);
                return;
            }
        }
    }

    /// A liveness probe, answered on the edge's fast path: one addition.
    pub fn health_probe(&self) {
        self.health_probes.fetch_add(1, Relaxed);
    }

    /// Counts the request in flight until the guard drops.
    pub fn enter(&self) -> InFlightGuard<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        InFlightGuard(&self.in_flight)
    }

    fn render(&self, out: &mut String) {
        let routes: Vec<&RouteCounters> = self
            .routes
            .iter()
            .filter_map(|s| s.get().map(|b| &**b))
            .chain(std::iter::once(&self.other))
            .collect();
        header(
            out,
            names::HTTP_REQUESTS,
            "counter",
            "HTTP requests answered, by method, route pattern and status",
        );
        for r in &routes {
            let route = escape(&r.route);
            for (m, statuses) in r.requests.iter().enumerate() {
                for (s, n) in statuses.iter().enumerate() {
                    let n = n.load(Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "{}{{method=\"{}\",route=\"{route}\",status=\"{}\"}} {n}",
                            names::HTTP_REQUESTS,
                            method_name(m),
                            STATUSES[s]
                        );
                    }
                }
            }
        }
        header(
            out,
            names::HTTP_DURATION,
            "histogram",
            "Time to answer HTTP requests (to the response head), by route pattern",
        );
        for r in &routes {
            if r.duration.count() > 0 {
                let labels = format!("route=\"{}\",", escape(&r.route));
                r.duration.render(out, names::HTTP_DURATION, &labels);
            }
        }
        header(
            out,
            names::HTTP_IN_FLIGHT,
            "gauge",
            "HTTP requests being answered now",
        );
        let _ = writeln!(
            out,
            "{} {}",
            names::HTTP_IN_FLIGHT,
            self.in_flight.load(Relaxed).max(0)
        );
        header(
            out,
            names::HTTP_REJECTIONS,
            "counter",
            "HTTP requests refused, by reason (rate_limited, overloaded, csrf_rejected, body_timeout, ...)",
        );
        for (name, count) in &self.rejections {
            if let Some(name) = name.get() {
                let _ = writeln!(
                    out,
                    "{}{{reason=\"{name}\"}} {}",
                    names::HTTP_REJECTIONS,
                    count.load(Relaxed)
                );
            }
        }
        header(
            out,
            names::HEALTH_PROBES,
            "counter",
            "Liveness probes (GET /health) answered",
        );
        let _ = writeln!(
            out,
            "{} {}",
            names::HEALTH_PROBES,
            self.health_probes.load(Relaxed)
        );
    }
}

pub struct InFlightGuard<'a>(&'a AtomicI64);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value in the text format: backslash, quote and newline escaped.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        value
            .replace('\\', r"\\")
            .replace('"', "\\\"")
            .replace('\n', r"\n")
            .into()
    } else {
        value.into()
    }
}

/// The text `GET /metrics` answers: this server's HTTP counters, then the process's.
pub fn render(http: &HttpMetrics) -> String {
    let mut out = String::with_capacity(16 * 1024);
    http.render(&mut out);
    DB.render(&mut out);
    COST.render(&mut out);
    if let Some(handle) = handle() {
        process_collector().collect();
        out.push_str(&handle.render());
    }
    out
}

/// Job attempts: how each ended and how long it ran; failures for good also by reason.
pub fn job_finished(kind: &'static str, outcome: &'static str, elapsed: Duration) {
    metrics::histogram!(names::JOB_DURATION, "kind" => kind, "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

pub fn job_failed(kind: &'static str, code: ErrorCode) {
    metrics::counter!(names::JOB_FAILURES, "kind" => kind, "reason" => code.as_str()).increment(1);
}

/// One logical provider call (its retries included).
pub fn provider_call(
    provider: &'static str,
    kind: ProviderKind,
    outcome: &'static str,
    elapsed: Duration,
) {
    let failed = outcome != "ok";
    metrics::counter!(names::PROVIDER_REQUESTS, "provider" => provider, "kind" => kind.as_str(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!(names::PROVIDER_DURATION, "provider" => provider, "kind" => kind.as_str())
        .record(elapsed.as_secs_f64());
    series::series().record_provider_call(kind, failed, elapsed);
}

/// One HTTP attempt to a remote provider.
pub fn provider_attempt(provider: &'static str) {
    metrics::counter!(names::PROVIDER_ATTEMPTS, "provider" => provider).increment(1);
}

/// Characters a call spoke and what it cost, in micro-dollars.
pub fn provider_usage(provider: &'static str, kind: ProviderKind, chars: u64, cost_micro_usd: u64) {
    if chars > 0 {
        metrics::counter!(names::PROVIDER_CHARACTERS, "provider" => provider, "kind" => kind.as_str())
            .increment(chars);
    }
    if cost_micro_usd > 0 {
        COST.add(provider, kind, cost_micro_usd);
        series::series().record_cost_micro_usd(cost_micro_usd);
    }
}

/// Provider cost by provider and kind, in micro-dollars, served as a counter in dollars (the
/// `metrics` facade's counters are integers).
struct CostTable([(OnceLock<(&'static str, ProviderKind)>, AtomicU64); 16]);

static COST: CostTable = CostTable([const { (OnceLock::new(), AtomicU64::new(0)) }; 16]);

impl CostTable {
    fn add(&self, provider: &'static str, kind: ProviderKind, micro_usd: u64) {
        for (key, total) in &self.0 {
            if *key.get_or_init(|| (provider, kind)) == (provider, kind) {
                total.fetch_add(micro_usd, Relaxed);
                return;
            }
        }
    }

    fn render(&self, out: &mut String) {
        header(
            out,
            names::PROVIDER_COST,
            "counter",
            "What provider calls cost, in US dollars at the configured prices",
        );
        for (key, total) in &self.0 {
            if let Some((provider, kind)) = key.get() {
                let _ = writeln!(
                    out,
                    "{}{{provider=\"{provider}\",kind=\"{}\"}} {}",
                    names::PROVIDER_COST,
                    kind.as_str(),
                    total.load(Relaxed) as f64 / 1e6
                );
            }
        }
    }
}

/// A failed object store operation (a missing object is not a failure).
pub fn storage_error() {
    metrics::counter!(names::STORAGE_ERRORS).increment(1);
    series::series().record_storage_error();
}

/// A backup that finished: when and how long it took, or that it failed.
pub fn backup_finished(ok: bool, elapsed: Duration) {
    if ok {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        metrics::gauge!(names::BACKUP_LAST_SUCCESS).set(now.as_secs_f64());
        metrics::gauge!(names::BACKUP_DURATION).set(elapsed.as_secs_f64());
        LAST_BACKUP_UNIX.store(now.as_secs(), Relaxed);
    } else {
        metrics::counter!(names::BACKUP_FAILURES).increment(1);
        series::series().record_backup_failure();
    }
}

/// What the sampler read, for the gauges and the minute series.
pub struct Sample {
    /// `(kind, state, count)`: queued and running jobs, and those failed in the last 24 hours.
    pub jobs: Vec<(String, String, u64)>,
    pub users: u64,
    pub audios: u64,
    pub db_bytes: u64,
    pub wal_bytes: u64,
    /// Free share of the data directory's file system, when it could be read.
    pub disk_free: Option<f64>,
}

/// How often the wiring's sampler reads the queue, the files and the disk.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(15);

/// The gauges of one sample. `seen` holds the job gauges set before, so a kind whose jobs
/// are gone drops to 0 instead of keeping its last value.
pub fn record_sample(sample: Sample, seen: &mut std::collections::HashSet<(String, String)>) {
    let mut totals = [0u64; 3];
    let mut now_seen = std::collections::HashSet::new();
    for (kind, state, n) in sample.jobs {
        match state.as_str() {
            "queued" => totals[0] += n,
            "running" => totals[1] += n,
            _ => totals[2] += n,
        }
        metrics::gauge!(names::JOBS, "kind" => kind.clone(), "state" => state.clone())
            .set(n as f64);
        now_seen.insert((kind, state));
    }
    for (kind, state) in seen.difference(&now_seen) {
        metrics::gauge!(names::JOBS, "kind" => kind.clone(), "state" => state.clone()).set(0.0);
    }
    *seen = now_seen;
    metrics::gauge!(names::USERS).set(sample.users as f64);
    metrics::gauge!(names::AUDIOS).set(sample.audios as f64);
    metrics::gauge!(names::DB_SIZE).set(sample.db_bytes as f64);
    metrics::gauge!(names::DB_WAL_SIZE).set(sample.wal_bytes as f64);
    if let Some(free) = sample.disk_free {
        metrics::gauge!(names::DISK_FREE_RATIO).set(free);
    }
    series::series().record_sample(series::Sampled {
        jobs_queued: totals[0],
        jobs_running: totals[1],
        jobs_failed: totals[2],
        disk_free_permille: sample.disk_free.map_or(0, |f| (f * 1000.0).round() as u64),
        db_bytes: sample.db_bytes,
        wal_bytes: sample.wal_bytes,
        last_backup_unix: last_backup_unix(),
    });
    if let Some(handle) = handle() {
        handle.run_upkeep();
    }
}

/// Unix seconds of the last successful backup this process saw; 0 before one.
static LAST_BACKUP_UNIX: AtomicU64 = AtomicU64::new(0);

/// The last successful backup known from the target at start, unless one finished since.
pub fn seed_last_backup(unix: u64) {
    if LAST_BACKUP_UNIX
        .compare_exchange(0, unix, Relaxed, Relaxed)
        .is_ok()
    {
        metrics::gauge!(names::BACKUP_LAST_SUCCESS).set(unix as f64);
    }
}

pub fn last_backup_unix() -> u64 {
    LAST_BACKUP_UNIX.load(Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(http: &HttpMetrics) -> String {
        let mut out = String::new();
        http.render(&mut out);
        out
    }

    #[test]
    fn requests_are_counted_by_method_route_pattern_and_status() {
        let http = HttpMetrics::default();
        let ms = Duration::from_millis(3);
        for _ in 0..3 {
            http.record(&Method::GET, "/api/audios/{id}", StatusCode::OK, ms);
        }
        http.record(&Method::GET, "/api/audios/{id}", StatusCode::NOT_FOUND, ms);
        http.record(
            &Method::DELETE,
            "/api/audios/{id}",
            StatusCode::NO_CONTENT,
            ms,
        );
        http.record(
            &Method::POST,
            "/api/audios",
            StatusCode::CREATED,
            Duration::from_secs(20),
        );
        let text = rendered(&http);
        for line in [
            r#"aimake_http_requests_total{method="GET",route="/api/audios/{id}",status="200"} 3"#,
            r#"aimake_http_requests_total{method="GET",route="/api/audios/{id}",status="404"} 1"#,
            r#"aimake_http_requests_total{method="DELETE",route="/api/audios/{id}",status="204"} 1"#,
            r#"aimake_http_requests_total{method="POST",route="/api/audios",status="201"} 1"#,
            r#"aimake_http_request_duration_seconds_bucket{route="/api/audios/{id}",le="0.005"} 5"#,
            r#"aimake_http_request_duration_seconds_bucket{route="/api/audios/{id}",le="0.001"} 0"#,
            r#"aimake_http_request_duration_seconds_count{route="/api/audios/{id}"} 5"#,
            r#"aimake_http_request_duration_seconds_bucket{route="/api/audios",le="10"} 0"#,
            r#"aimake_http_request_duration_seconds_bucket{route="/api/audios",le="+Inf"} 1"#,
            "aimake_http_requests_in_flight 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn a_status_outside_the_table_counts_with_the_nearest_below_it() {
        assert_eq!(STATUSES[status_index(418)], 416);
        assert_eq!(STATUSES[status_index(504)], 503);
        assert_eq!(STATUSES[status_index(599)], 503);
        assert_eq!(STATUSES[status_index(101)], 100);
        for &s in &STATUSES {
            assert_eq!(STATUSES[status_index(s)], s);
        }
    }

    #[test]
    fn past_the_route_slots_requests_count_as_other_and_nothing_grows() {
        let http = HttpMetrics::default();
        for i in 0..ROUTE_SLOTS + 10 {
            http.record(
                &Method::GET,
                &format!("/r/{i}"),
                StatusCode::OK,
                Duration::ZERO,
            );
        }
        let text = rendered(&http);
        assert!(
            text.contains(
                r#"aimake_http_requests_total{method="GET",route="other",status="200"} 10"#
            ),
            "{text}"
        );
        assert_eq!(
            http.routes.iter().filter(|s| s.get().is_some()).count(),
            ROUTE_SLOTS
        );
        // Full: more routes and statuses change counts, not memory.
        let full = http.memory_bytes();
        assert!(full > ROUTE_SLOTS * std::mem::size_of::<RouteCounters>());
        for i in 0..1000 {
            http.record(
                &Method::POST,
                &format!("/more/{i}"),
                StatusCode::from_u16(200 + (i % 300) as u16).unwrap(),
                Duration::ZERO,
            );
        }
        assert_eq!(http.memory_bytes(), full);
    }

    #[test]
    fn rejections_in_flight_and_probes_are_counted() {
        let http = HttpMetrics::default();
        http.rejected(ErrorCode::RateLimited);
        http.rejected(ErrorCode::RateLimited);
        http.rejected(ErrorCode::CsrfRejected);
        http.health_probe();
        let guard = http.enter();
        let text = rendered(&http);
        assert!(
            text.contains(r#"aimake_http_rejections_total{reason="rate_limited"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"aimake_http_rejections_total{reason="csrf_rejected"} 1"#),
            "{text}"
        );
        assert!(text.contains("aimake_http_requests_in_flight 1"), "{text}");
        assert!(text.contains("aimake_health_probes_total 1"), "{text}");
        drop(guard);
        assert!(rendered(&http).contains("aimake_http_requests_in_flight 0"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("/a\"b\\c\nd"), r#"/a\"b\\c\nd"#);
        assert_eq!(escape("/plain/{id}"), "/plain/{id}");
    }
}
