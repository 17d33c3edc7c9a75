//! Alerts the server raises about itself. Every `alerts.evaluate_every_s` the engine measures
//! each enabled rule's signal over its window; a rule that breaches its threshold for `for_s`
//! fires, notifies, repeats every `alerts.repeat_interval_s` while it keeps firing, and
//! resolves (notifying again) once its signal has been back past the threshold by the
//! hysteresis margin for `for_s` too, so a value hovering at the threshold does not flap.
//! Every alert is kept in the `alerts` table: `GET /api/admin/alerts` lists them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::config::{AlertRuleConfig, AlertsConfig, Direction};
use crate::db::alerts::AlertRow;
use crate::db::{AlertId, Db, Severity, now_ms, to_rfc3339};
use crate::error::{AppError, Result};
use crate::monitor::series::{Aggregate, Mark, ProviderKind, series};
use crate::ops::notify::{AlertState, Notification, Notifiers};
use crate::pagination::{Page, PageRequest};

/// What a rule watches. Each is measured over the rule's window by a [`Signals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Share of requests answered 5xx.
    ErrorRate,
    /// 99th percentile of request duration, in seconds.
    LatencyP99,
    /// Database errors in the window.
    DbErrors,
    /// Share of speech provider calls that failed.
    TtsErrorRate,
    /// Object store errors in the window.
    StorageErrors,
    /// Provider cost since midnight UTC, in dollars.
    DailyCost,
    /// Hours since the last successful backup.
    BackupAge,
    /// 1 when the latest backup failed, else 0.
    BackupFailed,
    /// Free share of the data directory's file system.
    DiskFree,
    /// 1 while the latest attempt to obtain, renew or reload the TLS certificate failed.
    CertificateFailed,
    /// Days until the served TLS certificate expires.
    CertificateDays,
}

/// One measurement: the value, and how many events it rests on (requests for a rate; 1 for
/// a level). A rate over too few events is not judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measure {
    pub value: f64,
    pub samples: u64,
}

impl Measure {
    pub fn level(value: f64) -> Self {
        Self { value, samples: 1 }
    }
}

/// Where measurements come from.
pub trait Signals: Send + Sync {
    /// An evaluation at `now` (ms) begins: a source of windowed signals marks the moment.
    fn begin(&self, _now: i64) {}

    /// The signal over the last `window`, or None when there is nothing to judge (no
    /// traffic, backups not configured, a source not available).
    fn measure(&self, signal: Signal, window: Duration) -> BoxFuture<'_, Option<Measure>>;
}

/// A rule, resolved from config.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub signal: Signal,
    pub threshold: f64,
    pub direction: Direction,
    pub window: Duration,
    pub for_: Duration,
    pub severity: Severity,
    pub notifiers: Vec<String>,
    pub min_samples: u64,
    pub hysteresis: f64,
}

impl Rule {
    fn breaches(&self, v: f64) -> bool {
        match self.direction {
            Direction::Above => v > self.threshold,
            Direction::Below => v < self.threshold,
        }
    }

    /// Back past the threshold by the hysteresis margin (for a threshold of 0, back at 0).
    fn clear(&self, v: f64) -> bool {
        match self.direction {
            Direction::Above => v <= self.threshold * (1.0 - self.hysteresis),
            Direction::Below => v >= self.threshold * (1.0 + self.hysteresis),
        }
    }

    /// A sentence for people: what is wrong and by how much.
    pub fn summary(&self, value: f64) -> String {
        let side = match self.direction {
            Direction::Above => "above",
            Direction::Below => "below",
        };
        format!(
            "{} {} ({side} {})",
            self.what(),
            self.format(value),
            self.format(self.threshold)
        )
    }

    fn what(&self) -> &'static str {
        match self.signal {
            Signal::ErrorRate => "error rate",
            Signal::LatencyP99 => "p99 latency",
            Signal::DbErrors => "database errors",
            Signal::TtsErrorRate => "TTS provider error rate",
            Signal::StorageErrors => "object store errors",
            Signal::DailyCost => "provider cost today",
            Signal::BackupAge => "hours since the last good backup",
            Signal::BackupFailed => "latest backup failed",
            Signal::DiskFree => "free disk on the data directory",
            Signal::CertificateFailed => "TLS certificate renewal failed",
            Signal::CertificateDays => "days until the TLS certificate expires",
        }
    }

    /// A value in the signal's unit.
    pub fn format(&self, v: f64) -> String {
        match self.signal {
            Signal::ErrorRate | Signal::TtsErrorRate | Signal::DiskFree => pct(v),
            Signal::LatencyP99 => secs(v),
            Signal::DbErrors
            | Signal::StorageErrors
            | Signal::BackupFailed
            | Signal::CertificateFailed => count(v),
            Signal::CertificateDays => format!("{v:.1} days"),
            Signal::DailyCost => usd(v),
            Signal::BackupAge => hours(v),
        }
    }
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}
fn secs(v: f64) -> String {
    format!("{v:.2} s")
}
fn count(v: f64) -> String {
    format!("{v:.0}")
}
/// Dollars: cents, or four places under a dollar so a small budget reads as itself.
fn usd(v: f64) -> String {
    if v < 1.0 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}
fn hours(v: f64) -> String {
    format!("{v:.1} h")
}

/// The signal a built-in rule watches (`AlertRules::NAMES`).
pub fn signal_of(rule: &str) -> Option<Signal> {
    Some(match rule {
        "error_rate" => Signal::ErrorRate,
        "latency_p99" => Signal::LatencyP99,
        "db_errors" => Signal::DbErrors,
        "tts_error_rate" => Signal::TtsErrorRate,
        "storage_errors" => Signal::StorageErrors,
        "daily_cost" => Signal::DailyCost,
        "backup_stale" => Signal::BackupAge,
        "backup_failed" => Signal::BackupFailed,
        "disk_free" => Signal::DiskFree,
        "certificate_failed" => Signal::CertificateFailed,
        "certificate_expiry" => Signal::CertificateDays,
        _ => return None,
    })
}

/// The rules config turns on. The backup rules need scheduled backups, the budget rule a
/// budget, the certificate rules HTTPS served by aimake (`serves_tls`).
pub fn rules(config: &AlertsConfig, backups_scheduled: bool, serves_tls: bool) -> Vec<Rule> {
    let mut out = Vec::new();
    for (name, r) in config.rules.named() {
        let Some(signal) = signal_of(name) else {
            continue;
        };
        let needs_backups = matches!(signal, Signal::BackupAge | Signal::BackupFailed);
        let needs_tls = matches!(signal, Signal::CertificateFailed | Signal::CertificateDays);
        if !r.enabled
            || (needs_backups && !backups_scheduled)
            || (needs_tls && !serves_tls)
            || (signal == Signal::DailyCost && config.daily_budget().is_none())
        {
            continue;
        }
        out.push(rule_from(name, signal, r, config));
    }
    out
}

fn rule_from(name: &str, signal: Signal, r: &AlertRuleConfig, config: &AlertsConfig) -> Rule {
    Rule {
        name: name.to_string(),
        signal,
        threshold: r.threshold.unwrap_or(config.daily_budget_usd),
        direction: r.direction,
        window: Duration::from_secs(r.window_s),
        for_: Duration::from_secs(r.for_s),
        severity: r.severity,
        notifiers: r.notifiers.clone(),
        min_samples: r.min_samples,
        hysteresis: config.hysteresis,
    }
}

/// Where a rule stands.
#[derive(Debug, Clone, PartialEq)]
enum State {
    Ok,
    /// Breaching since `since` (ms), not for long enough yet.
    Pending {
        since: i64,
    },
    /// Fired at `fired_at`; `clear_since` once the signal is back past the margin.
    Firing {
        alert: AlertId,
        fired_at: i64,
        last_notified: i64,
        clear_since: Option<i64>,
    },
}

/// What an evaluation decided about one rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Fire { value: f64 },
    Repeat { alert: AlertId, value: f64 },
    Resolve { alert: AlertId, value: f64 },
}

/// The rules and where each stands: a pure state machine, driven by [`Engine::step`].
pub struct Engine {
    rules: Vec<Rule>,
    states: Vec<State>,
    repeat: Duration,
}

impl Engine {
    pub fn new(rules: Vec<Rule>, repeat: Duration) -> Self {
        let states = vec![State::Ok; rules.len()];
        Self {
            rules,
            states,
            repeat,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Picks up an alert still active from before a restart, so it resolves (and notifies)
    /// when its rule clears instead of firing a second time.
    pub fn adopt(&mut self, alert: &AlertRow) {
        if let Some(i) = self.rules.iter().position(|r| r.name == alert.rule) {
            self.states[i] = State::Firing {
                alert: alert.id,
                fired_at: alert.fired_at,
                last_notified: alert.notified_at.unwrap_or(alert.fired_at),
                clear_since: None,
            };
        }
    }

    /// Records the id the fired alert got in the database.
    pub fn fired(&mut self, rule: usize, alert: AlertId, at: i64) {
        self.states[rule] = State::Firing {
            alert,
            fired_at: at,
            last_notified: at,
            clear_since: None,
        };
    }

    /// When rule `i`'s alert fired, while it is firing.
    pub fn fired_at(&self, i: usize) -> Option<i64> {
        match self.states[i] {
            State::Firing { fired_at, .. } => Some(fired_at),
            _ => None,
        }
    }

    /// Advances rule `i` with its latest measure at `now` (ms).
    pub fn step(&mut self, i: usize, measure: Option<Measure>, now: i64) -> Option<Decision> {
        let rule = &self.rules[i];
        let judged = measure.filter(|m| m.samples >= rule.min_samples && m.value.is_finite());
        let for_ms = rule.for_.as_millis() as i64;
        let state = &mut self.states[i];
        match (state.clone(), judged) {
            (State::Ok | State::Pending { .. }, None) => {
                *state = State::Ok;
                None
            }
            (State::Ok, Some(m)) if rule.breaches(m.value) => {
                if for_ms == 0 {
                    Some(Decision::Fire { value: m.value })
                } else {
                    *state = State::Pending { since: now };
                    None
                }
            }
            (State::Pending { since }, Some(m)) if rule.breaches(m.value) => {
                (now - since >= for_ms).then_some(Decision::Fire { value: m.value })
            }
            (State::Ok | State::Pending { .. }, Some(_)) => {
                *state = State::Ok;
                None
            }
            // No data while firing: hold, neither clearing nor repeating on a guess.
            (State::Firing { .. }, None) => None,
            (
                State::Firing {
                    alert,
                    fired_at,
                    last_notified,
                    clear_since,
                },
                Some(m),
            ) => {
                if rule.clear(m.value) {
                    let since = clear_since.unwrap_or(now);
                    if now - since >= for_ms {
                        *state = State::Ok;
                        return Some(Decision::Resolve {
                            alert,
                            value: m.value,
                        });
                    }
                    *state = State::Firing {
                        alert,
                        fired_at,
                        last_notified,
                        clear_since: Some(since),
                    };
                    return None;
                }
                let repeat_due = now - last_notified >= self.repeat.as_millis() as i64;
                *state = State::Firing {
                    alert,
                    fired_at,
                    last_notified: if repeat_due { now } else { last_notified },
                    clear_since: None,
                };
                repeat_due.then_some(Decision::Repeat {
                    alert,
                    value: m.value,
                })
            }
        }
    }
}

/// What goes to the notifiers: one alert firing, still firing, or resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub alert: AlertId,
    pub rule: String,
    pub severity: Severity,
    pub state: NoticeState,
    pub summary: String,
    pub value: f64,
    pub threshold: f64,
    /// `value` and `threshold` in the rule's unit (`12.5%`, `3.00 s`, `$0.0022`).
    pub value_text: String,
    pub threshold_text: String,
    /// When the alert fired: the same in its repeats and its resolve.
    pub fired_at: i64,
    /// When it resolved, in the resolve's notice.
    pub resolved_at: Option<i64>,
    /// The same for every notice about one alert, so a pager can resolve what it opened.
    pub dedup_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeState {
    Firing,
    Repeat,
    Resolved,
}

/// Delivers notices to the named notifiers; failures are the notifier's to count and report.
pub trait Notify: Send + Sync {
    fn notify<'a>(&'a self, notice: &'a Notice, to: &'a [String]) -> BoxFuture<'a, ()>;
}

/// The engine running in the server: measures, decides, records and notifies.
pub struct Alerting {
    engine: Engine,
    db: Db,
    signals: Arc<dyn Signals>,
    notify: Arc<dyn Notify>,
}

impl Alerting {
    pub fn new(engine: Engine, db: Db, signals: Arc<dyn Signals>, notify: Arc<dyn Notify>) -> Self {
        Self {
            engine,
            db,
            signals,
            notify,
        }
    }

    /// Adopts the alerts still active in the database (from before a restart).
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        for alert in self.db.alerts().active().await? {
            self.engine.adopt(&alert);
        }
        Ok(())
    }

    /// One evaluation of every rule at `now` (ms).
    pub async fn evaluate(&mut self, now: i64) -> anyhow::Result<()> {
        self.signals.begin(now);
        for i in 0..self.engine.rules().len() {
            let (signal, window) = {
                let r = &self.engine.rules()[i];
                (r.signal, r.window)
            };
            let measure = self.signals.measure(signal, window).await;
            let fired_at = self.engine.fired_at(i);
            let Some(decision) = self.engine.step(i, measure, now) else {
                continue;
            };
            self.act(i, decision, fired_at.unwrap_or(now), now).await?;
        }
        Ok(())
    }

    /// Records and notifies a decision about the alert that fired at `fired_at` (now, for a
    /// new one).
    async fn act(
        &mut self,
        i: usize,
        decision: Decision,
        fired_at: i64,
        now: i64,
    ) -> anyhow::Result<()> {
        let rule = self.engine.rules()[i].clone();
        let (alert, state, value, fired_at) = match decision {
            Decision::Fire { value } => {
                let row = self
                    .db
                    .alerts()
                    .fire(AlertRow {
                        id: AlertId::new(&self.db),
                        rule: rule.name.clone(),
                        severity: rule.severity,
                        summary: rule.summary(value),
                        value,
                        threshold: rule.threshold,
                        fired_at: now,
                        resolved_at: None,
                        resolved_value: None,
                        notified_at: None,
                        notifications: 0,
                    })
                    .await?;
                // The rule's alert still active, when a restart raced a resolve.
                self.engine.fired(i, row.id, row.fired_at);
                tracing::warn!(rule = rule.name, value, "alert firing");
                (row.id, NoticeState::Firing, value, row.fired_at)
            }
            Decision::Repeat { alert, value } => (alert, NoticeState::Repeat, value, fired_at),
            Decision::Resolve { alert, value } => {
                self.db.alerts().resolve(alert, now, value).await?;
                tracing::info!(rule = rule.name, value, "alert resolved");
                (alert, NoticeState::Resolved, value, fired_at)
            }
        };
        let notice = Notice {
            alert,
            rule: rule.name.clone(),
            severity: rule.severity,
            state,
            summary: rule.summary(value),
            value,
            threshold: rule.threshold,
            value_text: rule.format(value),
            threshold_text: rule.format(rule.threshold),
            fired_at,
            resolved_at: (state == NoticeState::Resolved).then_some(now),
            dedup_key: format!("aimake-{}", alert),
        };
        self.notify.notify(&notice, &rule.notifiers).await;
        self.db.alerts().notified(alert, now).await?;
        Ok(())
    }

    /// Evaluates every `every` until `stop`.
    pub async fn run(mut self, every: Duration, stop: CancellationToken) {
        if let Err(e) = self.resume().await {
            tracing::warn!(
                error = format!("{e:#}"),
                "alerts: cannot read active alerts"
            );
        }
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.evaluate(now_ms()).await {
                tracing::warn!(error = format!("{e:#}"), "alerts: evaluation failed");
            }
        }
    }
}

/// The latest backup, as the alert engine needs it (fed from `backup::Backups::subscribe`
/// where the server is wired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LastBackup {
    /// When the latest successful backup was made (ms), if any is known.
    pub last_ok_ms: Option<i64>,
    /// The latest backup failed.
    pub failed: bool,
}

/// The server's own measurements: the traffic signals (error rate, latency, database,
/// provider and storage errors) from the metrics' minute series, cost from the usage ledger,
/// backups from their watch, disk from the data directory's file system.
///
/// A traffic window is exact to the evaluation, not rounded to whole minutes: every
/// evaluation marks the series, and a window counts what was recorded since the mark taken
/// when it began (Prometheus' `increase`), or since the signals were made when the server is
/// younger than the window.
pub struct LiveSignals {
    db: Db,
    data_dir: std::path::PathBuf,
    backups: tokio::sync::watch::Receiver<LastBackup>,
    /// When the server started: a backup age is counted from here until one is known.
    started_ms: i64,
    /// `(at ms, mark)`, oldest first: one per evaluation, as far back as the longest window.
    marks: std::sync::Mutex<std::collections::VecDeque<(i64, Mark)>>,
    longest_window_ms: i64,
    /// The HTTPS certificate's state, when aimake serves HTTPS itself.
    tls: Option<crate::tls::TlsStatus>,
}

impl LiveSignals {
    /// Signals for windows up to `longest_window` (the rules' longest).
    pub fn new(
        db: Db,
        data_dir: std::path::PathBuf,
        backups: tokio::sync::watch::Receiver<LastBackup>,
        longest_window: Duration,
    ) -> Self {
        let started_ms = now_ms();
        Self {
            db,
            data_dir,
            backups,
            started_ms,
            marks: std::sync::Mutex::new([(started_ms, series().mark())].into()),
            longest_window_ms: longest_window.as_millis() as i64,
            tls: None,
        }
    }

    /// Signals that include the HTTPS certificate's.
    pub fn with_tls(mut self, tls: Option<crate::tls::TlsStatus>) -> Self {
        self.tls = tls;
        self
    }

    /// What the series counted over the last `window`: since the newest mark taken before
    /// the window began (the one just taken is never it), else since the oldest.
    fn traffic_window(&self, window: Duration) -> Aggregate {
        let marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        let latest = marks.back().map_or(self.started_ms, |(at, _)| *at);
        let start = latest - window.as_millis() as i64;
        let mark = marks
            .iter()
            .rev()
            .skip(1)
            .find(|(at, _)| *at <= start)
            .or(marks.front())
            .map(|(_, m)| m)
            .expect("a mark is taken when the signals are made");
        series().since(mark)
    }

    async fn level(&self, signal: Signal) -> Option<f64> {
        match signal {
            Signal::DailyCost => match cost_today_usd(&self.db).await {
                Ok(usd) => Some(usd),
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "alerts: cannot read today's cost");
                    None
                }
            },
            Signal::BackupAge => {
                let since = self.backups.borrow().last_ok_ms.unwrap_or(self.started_ms);
                Some((now_ms() - since).max(0) as f64 / 3_600_000.0)
            }
            Signal::BackupFailed => Some(f64::from(u8::from(self.backups.borrow().failed))),
            Signal::DiskFree => disk_free(&self.data_dir),
            Signal::CertificateFailed => {
                let status = self.tls.as_ref()?.get();
                Some(f64::from(u8::from(status.error.is_some())))
            }
            Signal::CertificateDays => {
                let end = self.tls.as_ref()?.get().not_after?;
                Some((end * 1000 - now_ms()) as f64 / 86_400_000.0)
            }
            _ => None,
        }
    }
}

impl Signals for LiveSignals {
    fn begin(&self, now: i64) {
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        marks.push_back((now, series().mark()));
        // Keep the newest mark at or before the longest window's start, and those after.
        let start = now - self.longest_window_ms;
        while marks.len() > 1 && marks[1].0 <= start {
            marks.pop_front();
        }
    }

    fn measure(&self, signal: Signal, window: Duration) -> BoxFuture<'_, Option<Measure>> {
        Box::pin(async move {
            match traffic(signal, || self.traffic_window(window)) {
                Some(measure) => measure,
                None => self.level(signal).await.map(Measure::level),
            }
        })
    }
}

/// Everyone's provider cost since midnight UTC, in US dollars, from the usage ledger: what
/// the budget rule measures and the admin's monitoring page shows against the budget.
pub async fn cost_today_usd(db: &Db) -> anyhow::Result<f64> {
    Ok(db.usage().cost_today(now_ms()).await? as f64 / 1e6)
}

/// The traffic signals, from the series' counts over the window; None for the others. A
/// rate rests on as many samples as events.
fn traffic(signal: Signal, a: impl Fn() -> Aggregate) -> Option<Option<Measure>> {
    let measure = |value: f64, samples: u64| Some(Measure { value, samples });
    Some(match signal {
        Signal::ErrorRate => {
            let a = a();
            measure(a.error_rate(), a.requests)
        }
        Signal::LatencyP99 => {
            let a = a();
            a.p99_s.and_then(|p| measure(p, a.requests))
        }
        Signal::DbErrors => Some(Measure::level(a().db_errors as f64)),
        Signal::StorageErrors => Some(Measure::level(a().storage_errors as f64)),
        Signal::TtsErrorRate => {
            let a = a();
            measure(
                a.provider_error_rate(ProviderKind::Tts),
                a.provider_calls.get(ProviderKind::Tts),
            )
        }
        _ => return None,
    })
}

/// The free share of the file system holding `dir` (what an unprivileged writer may use).
pub fn disk_free(dir: &std::path::Path) -> Option<f64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    (st.f_blocks > 0).then(|| st.f_bavail as f64 / st.f_blocks as f64)
}

/// Notices go to the rule's notifiers (`alerts.notifiers`), and always to the log: an alert
/// with no notifier configured is still recorded, listed and logged.
pub struct NotifierSink {
    pub notifiers: Notifiers,
    /// The server's public URL, for the link back in each notification.
    pub link: String,
}

impl Notify for NotifierSink {
    fn notify<'a>(&'a self, notice: &'a Notice, to: &'a [String]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            tracing::warn!(
                rule = notice.rule,
                severity = notice.severity.as_str(),
                state = ?notice.state,
                notifiers = ?to,
                "alert: {}",
                notice.summary
            );
            let notification = Notification {
                alert: notice.rule.clone(),
                severity: notice.severity,
                state: match notice.state {
                    NoticeState::Firing | NoticeState::Repeat => AlertState::Firing,
                    NoticeState::Resolved => AlertState::Resolved,
                },
                summary: notice.summary.clone(),
                details: std::collections::BTreeMap::from_iter(
                    [
                        ("value".to_string(), notice.value_text.clone()),
                        ("threshold".to_string(), notice.threshold_text.clone()),
                    ]
                    .into_iter()
                    .chain(
                        notice
                            .resolved_at
                            .map(|at| ("resolved_at".to_string(), to_rfc3339(at))),
                    ),
                ),
                started_at: time::OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(notice.fired_at) * 1_000_000,
                )
                .unwrap_or_else(|_| time::OffsetDateTime::now_utc()),
                dedup_key: notice.dedup_key.clone(),
                link: self.link.clone(),
            };
            for (name, result) in self.notifiers.send_to(to, &notification).await {
                if let Err(e) = result {
                    tracing::warn!(notifier = name, error = %e, "alert: a notifier failed");
                }
            }
        })
    }
}

/// One alert as the admin API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AlertView {
    pub id: AlertId,
    pub rule: String,
    pub severity: Severity,
    /// `firing` or `resolved`.
    pub state: &'static str,
    pub summary: String,
    pub value: f64,
    pub threshold: f64,
    pub fired_at: String,
    pub resolved_at: Option<String>,
    pub resolved_value: Option<f64>,
    pub notified_at: Option<String>,
    pub notifications: i64,
}

impl From<AlertRow> for AlertView {
    fn from(a: AlertRow) -> Self {
        Self {
            id: a.id,
            rule: a.rule,
            severity: a.severity,
            state: if a.resolved_at.is_some() {
                "resolved"
            } else {
                "firing"
            },
            summary: a.summary,
            value: a.value,
            threshold: a.threshold,
            fired_at: to_rfc3339(a.fired_at),
            resolved_at: a.resolved_at.map(to_rfc3339),
            resolved_value: a.resolved_value,
            notified_at: a.notified_at.map(to_rfc3339),
            notifications: a.notifications,
        }
    }
}

/// `GET /api/admin/alerts`: the alerts firing now, and a page of every alert, newest first.
#[derive(Debug, serde::Serialize)]
pub struct AlertsPage {
    pub active: Vec<AlertView>,
    pub items: Vec<AlertView>,
    pub next_cursor: Option<String>,
}

pub async fn list(db: &Db, req: &PageRequest) -> Result<AlertsPage> {
    let after = match &req.cursor {
        None => None,
        Some(c) => Some(
            c.split_once('.')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.parse::<AlertId>().ok()?)))
                .ok_or_else(|| AppError::invalid("cursor is not valid"))?,
        ),
    };
    let (active, rows) = db.alerts().active_and_page(after, req.fetch()).await?;
    let page =
        Page::from_rows(rows, req, |a| format!("{}.{}", a.fired_at, a.id)).map(AlertView::from);
    Ok(AlertsPage {
        active: active.into_iter().map(AlertView::from).collect(),
        items: page.items,
        next_cursor: page.next_cursor,
    })
}

/// Measures by signal from a fixed table: for tests, and for the signals whose source is not
/// wired yet (they answer None).
#[derive(Default)]
pub struct FixedSignals(pub std::sync::Mutex<HashMap<Signal, Measure>>);

impl FixedSignals {
    pub fn set(&self, signal: Signal, measure: Option<Measure>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match measure {
            Some(m) => map.insert(signal, m),
            None => map.remove(&signal),
        };
    }
}

impl Signals for FixedSignals {
    fn measure(&self, signal: Signal, _window: Duration) -> BoxFuture<'_, Option<Measure>> {
        let m = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&signal)
            .copied();
        Box::pin(async move { m })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(signal: Signal, threshold: f64, direction: Direction, for_s: u64) -> Rule {
        Rule {
            name: "r".into(),
            signal,
            threshold,
            direction,
            window: Duration::from_secs(60),
            for_: Duration::from_secs(for_s),
            severity: Severity::Critical,
            notifiers: vec!["slack".into()],
            min_samples: 10,
            hysteresis: 0.2,
        }
    }

    fn m(value: f64) -> Option<Measure> {
        Some(Measure {
            value,
            samples: 100,
        })
    }

    const S: i64 = 1000;

    #[test]
    fn a_breach_fires_only_once_it_has_lasted_for_the_rule_s_duration() {
        let mut e = Engine::new(
            vec![rule(Signal::ErrorRate, 0.05, Direction::Above, 300)],
            Duration::from_secs(4 * 3600),
        );
        assert_eq!(e.step(0, m(0.2), 0), None, "pending");
        assert_eq!(e.step(0, m(0.2), 299 * S), None, "not yet");
        assert_eq!(
            e.step(0, m(0.2), 300 * S),
            Some(Decision::Fire { value: 0.2 })
        );
    }

    #[test]
    fn a_breach_that_stops_before_its_duration_starts_over() {
        let mut e = Engine::new(
            vec![rule(Signal::ErrorRate, 0.05, Direction::Above, 300)],
            Duration::from_secs(4 * 3600),
        );
        assert_eq!(e.step(0, m(0.2), 0), None);
        assert_eq!(e.step(0, m(0.01), 200 * S), None, "back to ok");
        assert_eq!(e.step(0, m(0.2), 250 * S), None, "pending again from here");
        assert_eq!(
            e.step(0, m(0.2), 500 * S),
            None,
            "only 250 s of this breach"
        );
        assert!(e.step(0, m(0.2), 550 * S).is_some());
    }

    #[test]
    fn a_firing_alert_repeats_at_the_interval_and_resolves_only_past_the_margin_for_its_duration() {
        let mut e = Engine::new(
            vec![rule(Signal::ErrorRate, 0.05, Direction::Above, 60)],
            Duration::from_secs(3600),
        );
        let id = AlertId::from(ulid::Ulid::generate());
        e.step(0, m(0.2), 0);
        assert!(matches!(
            e.step(0, m(0.2), 60 * S),
            Some(Decision::Fire { .. })
        ));
        e.fired(0, id, 60 * S);
        assert_eq!(e.step(0, m(0.2), 120 * S), None);
        // Below the threshold but inside the margin (0.05 × 0.8 = 0.04): no resolve, ever.
        for t in [200, 400, 800] {
            assert_eq!(e.step(0, m(0.045), t * S), None, "at {t}: flapping");
        }
        assert_eq!(
            e.step(0, m(0.2), 3660 * S),
            Some(Decision::Repeat {
                alert: id,
                value: 0.2
            })
        );
        assert_eq!(
            e.step(0, m(0.2), 3700 * S),
            None,
            "repeats once per interval"
        );
        assert_eq!(
            e.step(0, m(0.01), 3800 * S),
            None,
            "clear, not for long enough"
        );
        assert_eq!(
            e.step(0, m(0.2), 3830 * S),
            None,
            "breached again: the clock restarts"
        );
        assert_eq!(e.step(0, m(0.01), 3840 * S), None);
        assert_eq!(
            e.step(0, m(0.01), 3900 * S),
            Some(Decision::Resolve {
                alert: id,
                value: 0.01
            })
        );
        assert_eq!(e.step(0, m(0.01), 3960 * S), None, "resolved once");
    }

    #[test]
    fn too_few_samples_or_no_data_judge_nothing_and_a_firing_alert_holds() {
        let mut e = Engine::new(
            vec![rule(Signal::ErrorRate, 0.05, Direction::Above, 0)],
            Duration::from_secs(3600),
        );
        let one_failure = Some(Measure {
            value: 1.0,
            samples: 1,
        });
        assert_eq!(
            e.step(0, one_failure, 0),
            None,
            "one failed request is not 100%"
        );
        assert!(e.step(0, m(0.5), S).is_some(), "for 0 fires at once");
        let id = AlertId::from(ulid::Ulid::generate());
        e.fired(0, id, S);
        assert_eq!(e.step(0, None, 2 * S), None, "no traffic: still firing");
        assert!(matches!(
            e.step(0, m(0.0), 3 * S),
            Some(Decision::Resolve { .. })
        ));
    }

    #[test]
    fn a_below_rule_fires_under_its_threshold_and_a_zero_threshold_resolves_at_zero() {
        let mut disk = Engine::new(
            vec![rule(Signal::DiskFree, 0.10, Direction::Below, 0)],
            Duration::from_secs(3600),
        );
        assert_eq!(disk.step(0, m(0.5), 0), None);
        assert!(disk.step(0, m(0.05), S).is_some());
        disk.fired(0, AlertId::from(ulid::Ulid::generate()), S);
        assert_eq!(
            disk.step(0, m(0.11), 2 * S),
            None,
            "inside the margin (0.12)"
        );
        assert!(matches!(
            disk.step(0, m(0.2), 3 * S),
            Some(Decision::Resolve { .. })
        ));

        let mut db = Engine::new(
            vec![rule(Signal::DbErrors, 0.0, Direction::Above, 0)],
            Duration::from_secs(3600),
        );
        assert!(db.step(0, m(1.0), 0).is_some());
        db.fired(0, AlertId::from(ulid::Ulid::generate()), 0);
        assert_eq!(db.step(0, m(1.0), S), None);
        assert!(matches!(
            db.step(0, m(0.0), 2 * S),
            Some(Decision::Resolve { .. })
        ));
    }

    #[test]
    fn every_configured_rule_has_a_signal_and_the_defaults_follow_the_design() {
        for name in crate::config::AlertRules::NAMES {
            assert!(signal_of(name).is_some(), "{name} watches nothing");
        }
        let mut config = AlertsConfig::default();
        let on = rules(&config, false, false);
        let names: Vec<&str> = on.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "error_rate",
                "latency_p99",
                "db_errors",
                "tts_error_rate",
                "disk_free",
                "storage_errors"
            ],
            "no budget, no backups scheduled: those rules are off"
        );
        let error_rate = &on[0];
        assert_eq!(error_rate.threshold, 0.05);
        assert_eq!(error_rate.for_, Duration::from_secs(300));
        assert_eq!(error_rate.severity, Severity::Critical);
        assert_eq!(error_rate.notifiers, ["slack", "email"]);
        assert_eq!(on[2].notifiers, ["slack", "pagerduty"]);
        assert_eq!(on[1].threshold, 3.0);
        assert_eq!(on[3].threshold, 0.10);
        config.daily_budget_usd = 5.0;
        let with_budget = rules(&config, true, false);
        let cost = with_budget
            .iter()
            .find(|r| r.signal == Signal::DailyCost)
            .unwrap();
        assert_eq!(cost.threshold, 5.0);
        assert!(with_budget.iter().any(|r| r.signal == Signal::BackupAge));
    }

    #[tokio::test]
    async fn live_signals_read_cost_backups_and_disk() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        let (tx, rx) = tokio::sync::watch::channel(LastBackup::default());
        let live = LiveSignals::new(
            db.clone(),
            dir.path().to_path_buf(),
            rx,
            Duration::from_secs(600),
        );
        let w = Duration::from_secs(60);
        assert_eq!(
            live.measure(Signal::DailyCost, w).await,
            Some(Measure::level(0.0))
        );
        let user = crate::db::UserId::new(&db);
        let user = db
            .users()
            .create(crate::db::users::NewUser {
                id: user,
                email: "a@example.com".into(),
                password_hash: "x".into(),
                display_name: None,
                role: crate::db::Role::User,
            })
            .await
            .unwrap()
            .unwrap()
            .id;
        for cost_micros in [1_250_000, 2_000_000] {
            let billed = crate::db::usage::Billed {
                service: "tts:openai:tts-1".into(),
                units: 10,
                cost_micros,
                cached: false,
            };
            db.usage().insert(user, None, billed).await.unwrap();
        }
        assert_eq!(
            live.measure(Signal::DailyCost, w).await,
            Some(Measure::level(3.25))
        );
        let age = live.measure(Signal::BackupAge, w).await.unwrap().value;
        assert!((0.0..0.01).contains(&age), "counted from the start: {age}");
        tx.send_replace(LastBackup {
            last_ok_ms: Some(now_ms() - 30 * 3_600_000),
            failed: true,
        });
        let age = live.measure(Signal::BackupAge, w).await.unwrap().value;
        assert!((29.9..30.1).contains(&age), "{age}");
        assert_eq!(
            live.measure(Signal::BackupFailed, w).await,
            Some(Measure::level(1.0))
        );
        let free = live.measure(Signal::DiskFree, w).await.unwrap().value;
        assert!(free > 0.0 && free <= 1.0, "{free}");
        // Traffic comes from the process's minute series, which other tests feed too: a
        // storage error recorded now is in the window.
        let ten = Duration::from_secs(600);
        let before = live
            .measure(Signal::StorageErrors, ten)
            .await
            .unwrap()
            .value;
        series().record_storage_error();
        let after = live
            .measure(Signal::StorageErrors, ten)
            .await
            .unwrap()
            .value;
        assert!(after >= before + 1.0, "{before} → {after}");
    }

    #[tokio::test]
    async fn a_traffic_window_counts_from_the_evaluation_that_began_it_not_from_whole_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        let (_tx, rx) = tokio::sync::watch::channel(LastBackup::default());
        let two = Duration::from_secs(2);
        let live = LiveSignals::new(db, dir.path().to_path_buf(), rx, two);
        let errors = |window| {
            let live = &live;
            async move {
                live.measure(Signal::StorageErrors, window)
                    .await
                    .unwrap()
                    .value
            }
        };
        // Other tests record into the process's series too, a few at a time: ours are many.
        let t = now_ms();
        live.begin(t);
        for _ in 0..1000 {
            series().record_storage_error();
        }
        let one = Duration::from_secs(1);
        live.begin(t + 1000);
        assert!(errors(one).await >= 1000.0);
        live.begin(t + 2000);
        let later = errors(one).await;
        assert!(later < 1000.0, "they were a second before: {later}");
        assert!(errors(two).await >= 1000.0, "inside two seconds");
        live.begin(t + 5000);
        assert_eq!(
            live.marks.lock().unwrap().len(),
            2,
            "marks go back as far as the longest window, no further"
        );
    }

    #[test]
    fn summaries_say_what_and_by_how_much() {
        let r = rule(Signal::ErrorRate, 0.05, Direction::Above, 300);
        assert_eq!(r.summary(0.123), "error rate 12.3% (above 5.0%)");
        let c = rule(Signal::DailyCost, 0.001, Direction::Above, 0);
        assert_eq!(
            c.summary(0.0022),
            "provider cost today $0.0022 (above $0.0010)"
        );
        assert_eq!(
            c.summary(12.5),
            "provider cost today $12.50 (above $0.0010)"
        );
        let d = rule(Signal::DiskFree, 0.10, Direction::Below, 300);
        assert_eq!(
            d.summary(0.04),
            "free disk on the data directory 4.0% (below 10.0%)"
        );
    }

    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<(Notice, Vec<String>)>>);

    impl Notify for Recorder {
        fn notify<'a>(&'a self, notice: &'a Notice, to: &'a [String]) -> BoxFuture<'a, ()> {
            self.0.lock().unwrap().push((notice.clone(), to.to_vec()));
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn alerts_are_recorded_notified_on_firing_and_resolve_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        let signals = Arc::new(FixedSignals::default());
        let sent = Arc::new(Recorder::default());
        let mut rule = rule(Signal::DbErrors, 0.0, Direction::Above, 0);
        rule.name = "db_errors".into();
        rule.min_samples = 1;
        let make = |db: &Db| {
            Alerting::new(
                Engine::new(vec![rule.clone()], Duration::from_secs(3600)),
                db.clone(),
                signals.clone(),
                sent.clone(),
            )
        };
        let mut a = make(&db);
        signals.set(Signal::DbErrors, Some(Measure::level(3.0)));
        a.evaluate(1_000).await.unwrap();
        let active = db.alerts().active().await.unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].rule, "db_errors");
        assert_eq!(active[0].summary, "database errors 3 (above 0)");
        assert_eq!(active[0].notifications, 1);

        // A restart: the new engine adopts the active alert and does not fire it again.
        drop(a);
        let mut b = make(&db);
        b.resume().await.unwrap();
        b.evaluate(2_000).await.unwrap();
        assert_eq!(sent.0.lock().unwrap().len(), 1, "no second firing");
        signals.set(Signal::DbErrors, Some(Measure::level(0.0)));
        b.evaluate(3_000).await.unwrap();
        assert!(db.alerts().active().await.unwrap().is_empty());
        let sent = sent.0.lock().unwrap().clone();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].0.state, NoticeState::Firing);
        assert_eq!(sent[1].0.state, NoticeState::Resolved);
        assert_eq!(
            sent[0].0.dedup_key, sent[1].0.dedup_key,
            "one key per alert"
        );
        assert_eq!(sent[0].1, ["slack"]);
        let history = db.alerts().page(None, 10).await.unwrap();
        assert_eq!(history[0].resolved_at, Some(3_000));
        assert_eq!(history[0].notifications, 2);
    }

    #[tokio::test]
    async fn repeats_and_the_resolve_say_when_the_alert_fired_and_the_resolve_when_it_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        let signals = Arc::new(FixedSignals::default());
        let sent = Arc::new(Recorder::default());
        let mut rule = rule(Signal::DbErrors, 0.0, Direction::Above, 0);
        rule.min_samples = 1;
        let mut a = Alerting::new(
            Engine::new(vec![rule], Duration::from_secs(10)),
            db.clone(),
            signals.clone(),
            sent.clone(),
        );
        signals.set(Signal::DbErrors, Some(Measure::level(2.0)));
        a.evaluate(1_000).await.unwrap();
        a.evaluate(11_000).await.unwrap();
        signals.set(Signal::DbErrors, Some(Measure::level(0.0)));
        a.evaluate(12_500).await.unwrap();
        let sent = sent.0.lock().unwrap().clone();
        let seen: Vec<_> = sent
            .iter()
            .map(|(n, _)| (n.state, n.fired_at, n.resolved_at))
            .collect();
        assert_eq!(
            seen,
            [
                (NoticeState::Firing, 1_000, None),
                (NoticeState::Repeat, 1_000, None),
                (NoticeState::Resolved, 1_000, Some(12_500)),
            ]
        );
    }
}
