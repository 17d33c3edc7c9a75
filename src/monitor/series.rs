//! The last 24 hours, minute by minute, in memory: what the in-process alert rules read as
//! sliding windows and the admin's charts draw. A ring of 1440 fixed-size buckets, allocated
//! once: recording is a few relaxed atomic additions on the current minute's bucket, and the
//! one mutex is taken only by the first writer of a new minute, to clear the bucket it reuses.

use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::Release};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Minutes kept.
pub const MINUTES: usize = 24 * 60;

/// Latency buckets: four per power of two of microseconds, from 1 µs to about 70 minutes.
const LATENCY_BUCKETS: usize = 128;

/// Provider latency buckets per kind: the same four per power of two, of milliseconds, from
/// 1 ms to about two minutes (slower calls count in the last one). Counting milliseconds with
/// half the buckets keeps the three kinds at 768 bytes a minute and the ring under 2 MB.
const PROVIDER_LATENCY_BUCKETS: usize = 64;

/// What providers are called for, as the series counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Tts,
    Llm,
    Asr,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] = [Self::Tts, Self::Llm, Self::Asr];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tts => "tts",
            Self::Llm => "llm",
            Self::Asr => "asr",
        }
    }
}

const KINDS: usize = ProviderKind::ALL.len();

/// The latest sampled values (gauges) a minute carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Sampled {
    pub jobs_queued: u64,
    pub jobs_running: u64,
    /// Jobs that failed in the last 24 hours.
    pub jobs_failed: u64,
    /// Free space on the data directory's file system, in per mille (1000 = empty disk).
    pub disk_free_permille: u64,
    pub db_bytes: u64,
    pub wal_bytes: u64,
    /// Unix seconds of the last successful backup; 0 when none is known.
    pub last_backup_unix: u64,
}

struct Bucket {
    /// Minutes since the Unix epoch this bucket holds; 0 when it never held any.
    minute: AtomicU64,
    requests: AtomicU64,
    errors_5xx: AtomicU64,
    latency: [AtomicU32; LATENCY_BUCKETS],
    provider_calls: [AtomicU64; KINDS],
    provider_errors: [AtomicU64; KINDS],
    provider_latency: [[AtomicU32; PROVIDER_LATENCY_BUCKETS]; KINDS],
    /// Provider cost in millionths of a US dollar.
    cost_micro_usd: AtomicU64,
    db_errors: AtomicU64,
    storage_errors: AtomicU64,
    backup_failures: AtomicU64,
    jobs_queued: AtomicU64,
    jobs_running: AtomicU64,
    jobs_failed: AtomicU64,
    disk_free_permille: AtomicU64,
    db_bytes: AtomicU64,
    wal_bytes: AtomicU64,
    last_backup_unix: AtomicU64,
    /// Whether the sampler wrote this minute's gauges.
    sampled: AtomicU64,
}

impl Default for Bucket {
    fn default() -> Self {
        let zero = || AtomicU64::new(0);
        Self {
            minute: zero(),
            requests: zero(),
            errors_5xx: zero(),
            latency: std::array::from_fn(|_| AtomicU32::new(0)),
            provider_calls: std::array::from_fn(|_| zero()),
            provider_errors: std::array::from_fn(|_| zero()),
            provider_latency: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU32::new(0))),
            cost_micro_usd: zero(),
            db_errors: zero(),
            storage_errors: zero(),
            backup_failures: zero(),
            jobs_queued: zero(),
            jobs_running: zero(),
            jobs_failed: zero(),
            disk_free_permille: zero(),
            db_bytes: zero(),
            wal_bytes: zero(),
            last_backup_unix: zero(),
            sampled: zero(),
        }
    }
}

impl Bucket {
    fn clear(&self) {
        let zero = |a: &AtomicU64| a.store(0, Relaxed);
        for a in [
            &self.requests,
            &self.errors_5xx,
            &self.cost_micro_usd,
            &self.db_errors,
            &self.storage_errors,
            &self.backup_failures,
            &self.jobs_queued,
            &self.jobs_running,
            &self.jobs_failed,
            &self.disk_free_permille,
            &self.db_bytes,
            &self.wal_bytes,
            &self.last_backup_unix,
            &self.sampled,
        ] {
            zero(a);
        }
        self.provider_calls.iter().for_each(zero);
        self.provider_errors.iter().for_each(zero);
        self.latency
            .iter()
            .chain(self.provider_latency.iter().flatten())
            .for_each(|a| a.store(0, Relaxed));
    }
}

/// Where "now" comes from: the wall clock, or a test's.
pub type Clock = fn() -> u64;

fn wall_clock_minute() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        / 60
}

/// The ring. One per process ([`series`]); tests build their own with a clock they drive.
pub struct Series {
    buckets: Box<[Bucket]>,
    rollover: Mutex<()>,
    now_minute: Box<dyn Fn() -> u64 + Send + Sync>,
}

/// The process's series.
pub fn series() -> &'static Series {
    static SERIES: OnceLock<Series> = OnceLock::new();
    SERIES.get_or_init(|| Series::new(wall_clock_minute))
}

impl Series {
    pub fn new(now_minute: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self {
            buckets: (0..MINUTES).map(|_| Bucket::default()).collect(),
            rollover: Mutex::new(()),
            now_minute: Box::new(now_minute),
        }
    }

    /// Bytes the ring holds: fixed at construction.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Bucket>() * self.buckets.len()
    }

    /// The current minute's bucket, cleared first if it still holds the minute a day ago.
    fn current(&self) -> &Bucket {
        let minute = (self.now_minute)();
        let bucket = &self.buckets[minute as usize % MINUTES];
        if bucket.minute.load(std::sync::atomic::Ordering::Acquire) != minute {
            let _once = self.rollover.lock().unwrap_or_else(|p| p.into_inner());
            if bucket.minute.load(std::sync::atomic::Ordering::Acquire) != minute {
                bucket.clear();
                bucket.minute.store(minute, Release);
            }
        }
        bucket
    }

    /// One answered request: its status and how long it took.
    pub fn record_request(&self, status: u16, elapsed: Duration) {
        let b = self.current();
        b.requests.fetch_add(1, Relaxed);
        if status >= 500 {
            b.errors_5xx.fetch_add(1, Relaxed);
        }
        b.latency[latency_bucket(elapsed)].fetch_add(1, Relaxed);
    }

    /// One logical provider call, whether it failed and how long it took.
    pub fn record_provider_call(&self, kind: ProviderKind, failed: bool, elapsed: Duration) {
        let b = self.current();
        b.provider_calls[kind as usize].fetch_add(1, Relaxed);
        if failed {
            b.provider_errors[kind as usize].fetch_add(1, Relaxed);
        }
        b.provider_latency[kind as usize][provider_latency_bucket(elapsed)].fetch_add(1, Relaxed);
    }

    pub fn record_cost_micro_usd(&self, micro_usd: u64) {
        self.current().cost_micro_usd.fetch_add(micro_usd, Relaxed);
    }

    pub fn record_db_error(&self) {
        self.current().db_errors.fetch_add(1, Relaxed);
    }

    pub fn record_storage_error(&self) {
        self.current().storage_errors.fetch_add(1, Relaxed);
    }

    pub fn record_backup_failure(&self) {
        self.current().backup_failures.fetch_add(1, Relaxed);
    }

    /// The sampler's gauges for the current minute (the latest sample wins).
    pub fn record_sample(&self, s: Sampled) {
        let b = self.current();
        b.jobs_queued.store(s.jobs_queued, Relaxed);
        b.jobs_running.store(s.jobs_running, Relaxed);
        b.jobs_failed.store(s.jobs_failed, Relaxed);
        b.disk_free_permille.store(s.disk_free_permille, Relaxed);
        b.db_bytes.store(s.db_bytes, Relaxed);
        b.wal_bytes.store(s.wal_bytes, Relaxed);
        b.last_backup_unix.store(s.last_backup_unix, Relaxed);
        b.sampled.store(1, Relaxed);
    }

    /// The minutes of the last `last` (the current, partial one included), oldest first;
    /// minutes nothing was recorded in come out empty.
    pub fn minutes(&self, last: Duration) -> Vec<Minute> {
        let now = (self.now_minute)();
        let count = (last.as_secs().div_ceil(60)).clamp(1, MINUTES as u64);
        (now + 1 - count..=now)
            .map(|minute| self.read(minute))
            .collect()
    }

    /// The sums, rates and percentiles over the last `last`.
    pub fn window(&self, last: Duration) -> Aggregate {
        Aggregate::of(&self.minutes(last), None)
    }

    /// This moment: the current minute as it stands, so [`Series::since`] can count what
    /// came after it. Windows between marks are as fine as the marks are frequent.
    pub fn mark(&self) -> Mark {
        let minute = (self.now_minute)();
        Mark(self.read(minute))
    }

    /// What was recorded after `mark`, up to now (at most the ring's day).
    pub fn since(&self, mark: &Mark) -> Aggregate {
        let from = mark.0.start / 60;
        let now = (self.now_minute)();
        let minutes = self.minutes(Duration::from_secs((now.saturating_sub(from) + 1) * 60));
        // The mark's minute counts only from the mark on, while the ring still holds it.
        let before = minutes.first().filter(|m| m.start == mark.0.start);
        Aggregate::of(&minutes, before.map(|_| &mark.0))
    }

    fn read(&self, minute: u64) -> Minute {
        let b = &self.buckets[minute as usize % MINUTES];
        if b.minute.load(std::sync::atomic::Ordering::Acquire) == minute {
            Minute::read(minute, b)
        } else {
            Minute::empty(minute)
        }
    }
}

/// A moment of the series (see [`Series::mark`]).
#[derive(Debug, Clone)]
pub struct Mark(Minute);

/// One minute, read out of the ring.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Minute {
    /// Unix seconds of the minute's start.
    pub start: u64,
    pub requests: u64,
    pub errors_5xx: u64,
    /// Request latency percentiles in seconds (upper bounds of their buckets); null when no
    /// request was answered.
    pub p50_s: Option<f64>,
    pub p99_s: Option<f64>,
    pub provider_calls: KindCounts,
    pub provider_errors: KindCounts,
    /// Provider call latency percentiles per kind in seconds, as the requests'; null for a
    /// kind without calls.
    pub provider_p50_s: KindLatency,
    pub provider_p99_s: KindLatency,
    pub cost_usd: f64,
    pub db_errors: u64,
    pub storage_errors: u64,
    pub backup_failures: u64,
    /// The sampler's gauges; null when it did not run in that minute.
    pub sampled: Option<Sampled>,
    #[serde(skip)]
    latency: Vec<u32>,
    #[serde(skip)]
    provider_latency: [Vec<u32>; KINDS],
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct KindCounts {
    pub tts: u64,
    pub llm: u64,
    pub asr: u64,
}

impl KindCounts {
    fn read(a: &[AtomicU64; KINDS]) -> Self {
        Self {
            tts: a[0].load(Relaxed),
            llm: a[1].load(Relaxed),
            asr: a[2].load(Relaxed),
        }
    }

    pub fn get(&self, kind: ProviderKind) -> u64 {
        match kind {
            ProviderKind::Tts => self.tts,
            ProviderKind::Llm => self.llm,
            ProviderKind::Asr => self.asr,
        }
    }

    fn add(&mut self, other: &Self) {
        self.tts += other.tts;
        self.llm += other.llm;
        self.asr += other.asr;
    }

    fn sub(&mut self, other: &Self) {
        self.tts = self.tts.saturating_sub(other.tts);
        self.llm = self.llm.saturating_sub(other.llm);
        self.asr = self.asr.saturating_sub(other.asr);
    }
}

/// A percentile per provider kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct KindLatency {
    pub tts: Option<f64>,
    pub llm: Option<f64>,
    pub asr: Option<f64>,
}

impl KindLatency {
    fn of(histograms: &[Vec<u32>; KINDS], q: f64) -> Self {
        let p = |kind: ProviderKind| provider_percentile(&histograms[kind as usize], q);
        Self {
            tts: p(ProviderKind::Tts),
            llm: p(ProviderKind::Llm),
            asr: p(ProviderKind::Asr),
        }
    }

    pub fn get(&self, kind: ProviderKind) -> Option<f64> {
        match kind {
            ProviderKind::Tts => self.tts,
            ProviderKind::Llm => self.llm,
            ProviderKind::Asr => self.asr,
        }
    }
}

impl Minute {
    fn empty(minute: u64) -> Self {
        Self {
            start: minute * 60,
            requests: 0,
            errors_5xx: 0,
            p50_s: None,
            p99_s: None,
            provider_calls: KindCounts::default(),
            provider_errors: KindCounts::default(),
            provider_p50_s: KindLatency::default(),
            provider_p99_s: KindLatency::default(),
            cost_usd: 0.0,
            db_errors: 0,
            storage_errors: 0,
            backup_failures: 0,
            sampled: None,
            latency: vec![0; LATENCY_BUCKETS],
            provider_latency: std::array::from_fn(|_| vec![0; PROVIDER_LATENCY_BUCKETS]),
        }
    }

    fn read(minute: u64, b: &Bucket) -> Self {
        let latency: Vec<u32> = b.latency.iter().map(|a| a.load(Relaxed)).collect();
        let provider_latency: [Vec<u32>; KINDS] = std::array::from_fn(|k| {
            b.provider_latency[k]
                .iter()
                .map(|a| a.load(Relaxed))
                .collect()
        });
        let sampled = (b.sampled.load(Relaxed) != 0).then(|| Sampled {
            jobs_queued: b.jobs_queued.load(Relaxed),
            jobs_running: b.jobs_running.load(Relaxed),
            jobs_failed: b.jobs_failed.load(Relaxed),
            disk_free_permille: b.disk_free_permille.load(Relaxed),
            db_bytes: b.db_bytes.load(Relaxed),
            wal_bytes: b.wal_bytes.load(Relaxed),
            last_backup_unix: b.last_backup_unix.load(Relaxed),
        });
        Self {
            start: minute * 60,
            requests: b.requests.load(Relaxed),
            errors_5xx: b.errors_5xx.load(Relaxed),
            p50_s: percentile(&latency, 0.50),
            p99_s: percentile(&latency, 0.99),
            provider_calls: KindCounts::read(&b.provider_calls),
            provider_errors: KindCounts::read(&b.provider_errors),
            provider_p50_s: KindLatency::of(&provider_latency, 0.50),
            provider_p99_s: KindLatency::of(&provider_latency, 0.99),
            cost_usd: b.cost_micro_usd.load(Relaxed) as f64 / 1e6,
            db_errors: b.db_errors.load(Relaxed),
            storage_errors: b.storage_errors.load(Relaxed),
            backup_failures: b.backup_failures.load(Relaxed),
            sampled,
            latency,
            provider_latency,
        }
    }
}

/// A window's totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregate {
    pub minutes: usize,
    pub requests: u64,
    pub errors_5xx: u64,
    pub p50_s: Option<f64>,
    pub p99_s: Option<f64>,
    pub provider_calls: KindCounts,
    pub provider_errors: KindCounts,
    pub provider_p50_s: KindLatency,
    pub provider_p99_s: KindLatency,
    pub cost_usd: f64,
    pub db_errors: u64,
    pub storage_errors: u64,
    pub backup_failures: u64,
    /// The newest sample in the window.
    pub latest: Option<Sampled>,
}

impl Aggregate {
    /// The minutes' sums, less what `before` (a mark of the first minute) had counted.
    fn of(minutes: &[Minute], before: Option<&Minute>) -> Self {
        let mut latency = vec![0u32; LATENCY_BUCKETS];
        let mut provider_latency: [Vec<u32>; KINDS] =
            std::array::from_fn(|_| vec![0; PROVIDER_LATENCY_BUCKETS]);
        let mut a = Self {
            minutes: minutes.len(),
            requests: 0,
            errors_5xx: 0,
            p50_s: None,
            p99_s: None,
            provider_calls: KindCounts::default(),
            provider_errors: KindCounts::default(),
            provider_p50_s: KindLatency::default(),
            provider_p99_s: KindLatency::default(),
            cost_usd: 0.0,
            db_errors: 0,
            storage_errors: 0,
            backup_failures: 0,
            latest: None,
        };
        for m in minutes {
            a.requests += m.requests;
            a.errors_5xx += m.errors_5xx;
            a.provider_calls.add(&m.provider_calls);
            a.provider_errors.add(&m.provider_errors);
            a.cost_usd += m.cost_usd;
            a.db_errors += m.db_errors;
            a.storage_errors += m.storage_errors;
            a.backup_failures += m.backup_failures;
            a.latest = m.sampled.or(a.latest);
            add_counts(&mut latency, &m.latency);
            for (sums, counts) in provider_latency.iter_mut().zip(&m.provider_latency) {
                add_counts(sums, counts);
            }
        }
        if let Some(b) = before {
            a.requests = a.requests.saturating_sub(b.requests);
            a.errors_5xx = a.errors_5xx.saturating_sub(b.errors_5xx);
            a.provider_calls.sub(&b.provider_calls);
            a.provider_errors.sub(&b.provider_errors);
            a.cost_usd = (a.cost_usd - b.cost_usd).max(0.0);
            a.db_errors = a.db_errors.saturating_sub(b.db_errors);
            a.storage_errors = a.storage_errors.saturating_sub(b.storage_errors);
            a.backup_failures = a.backup_failures.saturating_sub(b.backup_failures);
            for (sum, n) in latency.iter_mut().zip(&b.latency) {
                *sum = sum.saturating_sub(*n);
            }
            for (sums, counts) in provider_latency.iter_mut().zip(&b.provider_latency) {
                for (sum, n) in sums.iter_mut().zip(counts) {
                    *sum = sum.saturating_sub(*n);
                }
            }
        }
        a.p50_s = percentile(&latency, 0.50);
        a.p99_s = percentile(&latency, 0.99);
        a.provider_p50_s = KindLatency::of(&provider_latency, 0.50);
        a.provider_p99_s = KindLatency::of(&provider_latency, 0.99);
        a
    }

    /// 5xx answers per request; 0 without requests.
    pub fn error_rate(&self) -> f64 {
        ratio(self.errors_5xx, self.requests)
    }

    /// Failed calls per call of that kind; 0 without calls.
    pub fn provider_error_rate(&self, kind: ProviderKind) -> f64 {
        ratio(
            self.provider_errors.get(kind),
            self.provider_calls.get(kind),
        )
    }

    /// Requests per second over the window.
    pub fn request_rate(&self) -> f64 {
        self.requests as f64 / (self.minutes.max(1) * 60) as f64
    }
}

fn add_counts(sums: &mut [u32], counts: &[u32]) {
    for (sum, n) in sums.iter_mut().zip(counts) {
        *sum = sum.saturating_add(*n);
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Four buckets per power of two of a count of time units.
fn log_bucket(units: u128) -> usize {
    let n = units.min(u64::MAX as u128) as u64;
    if n < 4 {
        n as usize
    } else {
        let e = 63 - n.leading_zeros() as usize;
        e * 4 + ((n >> (e - 2)) & 3) as usize - 4
    }
}

/// The bound, in time units, every count in a bucket is below.
fn log_upper(i: usize) -> u64 {
    if i < 4 {
        i as u64 + 1
    } else {
        let e = (i + 4) / 4;
        let sub = ((i + 4) % 4) as u64;
        (4 + sub + 1) << (e - 2)
    }
}

fn latency_bucket(elapsed: Duration) -> usize {
    log_bucket(elapsed.as_micros()).min(LATENCY_BUCKETS - 1)
}

fn provider_latency_bucket(elapsed: Duration) -> usize {
    log_bucket(elapsed.as_millis()).min(PROVIDER_LATENCY_BUCKETS - 1)
}

/// A request latency percentile in seconds.
fn percentile(counts: &[u32], q: f64) -> Option<f64> {
    percentile_bucket(counts, q).map(|i| log_upper(i) as f64 / 1e6)
}

/// A provider latency percentile in seconds.
fn provider_percentile(counts: &[u32], q: f64) -> Option<f64> {
    percentile_bucket(counts, q).map(|i| log_upper(i) as f64 / 1e3)
}

/// The bucket the `q` quantile of a histogram falls in.
fn percentile_bucket(counts: &[u32], q: f64) -> Option<usize> {
    let total: u64 = counts.iter().map(|&n| u64::from(n)).sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, &n) in counts.iter().enumerate() {
        seen += u64::from(n);
        if seen >= rank {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A series whose clock the test moves, starting at a day's worth of minutes.
    fn at(start: u64) -> (Series, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(start));
        let clock = now.clone();
        (Series::new(move || clock.load(Relaxed)), now)
    }

    #[test]
    fn every_latency_lands_in_the_one_bucket_whose_bounds_hold_it_within_a_quarter() {
        for us in [
            1u64, 3, 4, 5, 7, 8, 100, 999, 1000, 12_345, 3_000_000, 10_000_000,
        ] {
            let i = latency_bucket(Duration::from_micros(us));
            let upper = log_upper(i);
            assert!(upper > us, "{us} µs in bucket {i} below {upper}");
            assert!(
                upper <= us + us / 4 + 1,
                "{us} µs in bucket {i} below {upper}"
            );
            if i > 0 {
                assert!(log_upper(i - 1) <= us, "{us}: bucket {i}");
            }
        }
        assert_eq!(
            latency_bucket(Duration::from_secs(1 << 40)),
            LATENCY_BUCKETS - 1
        );
    }

    #[test]
    fn p99_and_p50_come_from_the_requests_of_the_window() {
        let (s, _) = at(1_000_000);
        for _ in 0..98 {
            s.record_request(200, Duration::from_millis(10));
        }
        s.record_request(200, Duration::from_secs(4));
        s.record_request(503, Duration::from_secs(4));
        let w = s.window(Duration::from_secs(60));
        assert_eq!(w.requests, 100);
        assert_eq!(w.errors_5xx, 1);
        assert!((w.error_rate() - 0.01).abs() < 1e-9);
        let p50 = w.p50_s.unwrap();
        assert!((0.010..0.0125).contains(&p50), "{p50}");
        let p99 = w.p99_s.unwrap();
        assert!((4.0..5.0).contains(&p99), "{p99}");
        assert_eq!(s.window(Duration::from_secs(60)).minutes, 1);
    }

    #[test]
    fn provider_latency_percentiles_are_kept_per_kind_in_milliseconds_within_a_quarter() {
        let (s, now) = at(1_500_000);
        for _ in 0..9 {
            s.record_provider_call(ProviderKind::Tts, false, Duration::from_millis(300));
        }
        s.record_provider_call(ProviderKind::Tts, true, Duration::from_secs(20));
        s.record_provider_call(ProviderKind::Llm, false, Duration::from_secs(3));
        now.store(1_500_001, Relaxed);
        // Slower than the histogram reaches: counted in its last bucket, about two minutes.
        s.record_provider_call(ProviderKind::Llm, false, Duration::from_secs(600));

        let first = &s.minutes(Duration::from_secs(120))[0];
        let tts50 = first.provider_p50_s.tts.unwrap();
        assert!((0.300..0.375).contains(&tts50), "{tts50}");
        let tts99 = first.provider_p99_s.tts.unwrap();
        assert!((20.0..25.0).contains(&tts99), "{tts99}");
        assert_eq!(first.provider_p50_s.asr, None, "no call, no percentile");
        // The request histogram saw none of it.
        assert_eq!((first.requests, first.p99_s), (0, None));

        let w = s.window(Duration::from_secs(120));
        assert_eq!(w.provider_calls.llm, 2);
        let llm50 = w.provider_p50_s.get(ProviderKind::Llm).unwrap();
        assert!((3.0..3.75).contains(&llm50), "{llm50}");
        let llm99 = w.provider_p99_s.llm.unwrap();
        assert!((100.0..200.0).contains(&llm99), "{llm99}");
        assert_eq!(w.provider_p99_s.tts, first.provider_p99_s.tts);
    }

    #[test]
    fn a_window_sums_the_minutes_inside_it_and_nothing_older() {
        let (s, now) = at(1_000_000);
        s.record_request(500, Duration::from_millis(1));
        s.record_provider_call(ProviderKind::Tts, true, Duration::from_millis(200));
        s.record_db_error();
        now.store(1_000_003, Relaxed);
        for _ in 0..3 {
            s.record_request(200, Duration::from_millis(1));
        }
        s.record_provider_call(ProviderKind::Tts, false, Duration::from_millis(200));
        s.record_provider_call(ProviderKind::Llm, false, Duration::from_secs(2));
        s.record_cost_micro_usd(1_500_000);
        now.store(1_000_004, Relaxed);
        s.record_storage_error();

        let two = s.window(Duration::from_secs(120));
        assert_eq!(two.minutes, 2);
        assert_eq!((two.requests, two.errors_5xx, two.db_errors), (3, 0, 0));
        assert_eq!(two.storage_errors, 1);
        assert_eq!(two.provider_calls.tts, 1);
        assert_eq!(two.provider_error_rate(ProviderKind::Tts), 0.0);
        assert!((two.cost_usd - 1.5).abs() < 1e-9);

        let five = s.window(Duration::from_secs(300));
        assert_eq!(five.minutes, 5);
        assert_eq!((five.requests, five.errors_5xx, five.db_errors), (4, 1, 1));
        assert_eq!(five.provider_error_rate(ProviderKind::Tts), 0.5);
        assert_eq!(five.provider_calls.llm, 1);
        assert!((five.error_rate() - 0.25).abs() < 1e-9);
        let minutes = s.minutes(Duration::from_secs(300));
        assert_eq!(minutes.len(), 5);
        assert_eq!(minutes[0].start, 1_000_000 * 60);
        assert_eq!(minutes[1].requests, 0);
        assert_eq!(minutes[3].requests, 3);
    }

    #[test]
    fn a_minute_a_day_later_reuses_the_bucket_cleared_and_the_ring_stays_one_day() {
        let (s, now) = at(2_000_000);
        s.record_request(500, Duration::from_millis(1));
        s.record_sample(Sampled {
            jobs_queued: 7,
            ..Sampled::default()
        });
        let size = s.memory_bytes();
        now.store(2_000_000 + MINUTES as u64, Relaxed);
        assert_eq!(
            s.window(Duration::from_secs(60)).requests,
            0,
            "not yet written"
        );
        s.record_request(200, Duration::from_millis(1));
        let w = s.window(Duration::from_secs(24 * 3600));
        assert_eq!(w.minutes, MINUTES);
        assert_eq!((w.requests, w.errors_5xx), (1, 0));
        assert_eq!(w.latest, None, "the old sample went with its minute");
        // Longer windows are cut to the ring, and nothing grew.
        assert_eq!(s.minutes(Duration::from_secs(48 * 3600)).len(), MINUTES);
        assert_eq!(s.memory_bytes(), size);
        assert!(size < 2 * 1024 * 1024, "{size} bytes");
    }

    #[test]
    fn provider_latency_from_a_day_ago_goes_when_its_bucket_is_reused() {
        let (s, now) = at(2_500_000);
        s.record_provider_call(ProviderKind::Tts, false, Duration::from_secs(9));
        now.store(2_500_000 + MINUTES as u64, Relaxed);
        s.record_provider_call(ProviderKind::Tts, false, Duration::from_millis(20));
        let m = &s.minutes(Duration::from_secs(60))[0];
        assert_eq!(m.provider_calls.tts, 1);
        let p99 = m.provider_p99_s.tts.unwrap();
        assert!((0.020..0.025).contains(&p99), "{p99}");
    }

    #[test]
    fn the_latest_sample_in_a_window_is_reported() {
        let (s, now) = at(3_000_000);
        s.record_sample(Sampled {
            jobs_queued: 1,
            db_bytes: 10,
            ..Sampled::default()
        });
        now.store(3_000_001, Relaxed);
        s.record_sample(Sampled {
            jobs_queued: 2,
            db_bytes: 20,
            ..Sampled::default()
        });
        now.store(3_000_002, Relaxed);
        let latest = s.window(Duration::from_secs(180)).latest.unwrap();
        assert_eq!((latest.jobs_queued, latest.db_bytes), (2, 20));
    }

    #[test]
    fn what_came_after_a_mark_is_counted_to_the_event_across_minutes() {
        let (s, now) = at(5_000_000);
        s.record_request(500, Duration::from_secs(4));
        s.record_db_error();
        s.record_provider_call(ProviderKind::Tts, false, Duration::from_secs(5));
        let mark = s.mark();
        assert_eq!(s.since(&mark).requests, 0, "nothing after it yet");
        s.record_request(200, Duration::from_millis(2));
        s.record_request(503, Duration::from_millis(2));
        s.record_provider_call(ProviderKind::Tts, true, Duration::from_millis(40));
        let same_minute = s.since(&mark);
        assert_eq!((same_minute.requests, same_minute.errors_5xx), (2, 1));
        assert_eq!(same_minute.db_errors, 0, "recorded before the mark");
        assert_eq!(same_minute.provider_error_rate(ProviderKind::Tts), 1.0);
        let p99 = same_minute.p99_s.unwrap();
        assert!(p99 < 0.01, "the slow request came before the mark: {p99}");
        let provider_p99 = same_minute.provider_p99_s.tts.unwrap();
        assert!(
            provider_p99 < 1.0,
            "the slow call came before the mark: {provider_p99}"
        );
        now.store(5_000_002, Relaxed);
        s.record_storage_error();
        s.record_request(200, Duration::from_millis(2));
        let later = s.since(&mark);
        assert_eq!((later.requests, later.errors_5xx), (3, 1));
        assert_eq!((later.storage_errors, later.db_errors), (1, 0));
        assert_eq!(later.minutes, 3);
        // A mark older than the ring counts the whole ring.
        now.store(5_000_002 + MINUTES as u64, Relaxed);
        assert_eq!(s.since(&mark).requests, 0);
    }

    #[test]
    fn writers_on_many_threads_lose_no_count_across_a_rollover() {
        let (s, now) = at(4_000_000);
        let s = Arc::new(s);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                let now = now.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        if t == 0 && i == 5_000 {
                            now.store(4_000_001, Relaxed);
                        }
                        s.record_request(200, Duration::from_micros(50));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.window(Duration::from_secs(120)).requests, 40_000);
    }
}
