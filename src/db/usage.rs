//! The usage ledger: one row per billable call, summed per day and service for reports and quotas.

use rusqlite::{Connection, Transaction, params};
use serde::Serialize;
use ulid::Ulid;

use super::{AudioId, UsageSource, UserId};

/// The `usage_logs` table's operations, for services and jobs: `db.usage().…`. Each method picks
/// the connection it needs (see [`Db`](super::Db)); callers never hold one.
pub struct Usage<'a>(pub(super) &'a super::Db);

pub struct NewUsage<'a> {
    /// From [`crate::db::Db::new_id`].
    pub id: Ulid,
    pub user_id: UserId,
    pub audio_id: Option<AudioId>,
    /// e.g. `tts:openai:tts-1`, `llm:gpt-4o-mini`.
    pub service: &'a str,
    /// Characters for speech, tokens for language models.
    pub units: i64,
    pub cost_micros: i64,
    /// Served from the cache: counted, not paid.
    pub cached: bool,
    pub source: UsageSource,
}

pub fn insert(tx: &Transaction<'_>, u: &NewUsage<'_>, now: i64) -> rusqlite::Result<()> {
    let sql = "INSERT INTO usage_logs
                   (id, user_id, audio_id, service, units, cost_micros, day, created_at, cached, source)
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
    tx.prepare_cached(sql)?.execute(params![
        u.id.to_string(),
        u.user_id,
        u.audio_id,
        u.service,
        u.units,
        u.cost_micros,
        day_of(now),
        now,
        u.cached,
        u.source
    ])?;
    Ok(())
}

/// The UTC day (`YYYY-MM-DD`) of a Unix-millisecond time.
pub fn day_of(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let d = t.date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The first day of the UTC month containing `ms`.
pub fn month_start(ms: i64) -> String {
    let day = day_of(ms);
    format!("{}-01", &day[..7])
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayUsage {
    pub day: String,
    pub service: String,
    /// `app`, or `gateway` for the OpenAI-compatible API.
    pub source: UsageSource,
    pub units: i64,
    pub cost_micros: i64,
    pub cached_units: i64,
}

/// One user's usage per day, service and source: a range of that user's entries in `usage_user_day`,
/// which holds every column summed, so other users' rows are never read.
pub(crate) const PER_DAY_USER: &str =
    "SELECT day, service, source, sum(units), sum(cost_micros), sum(CASE WHEN cached = 1 THEN units ELSE 0 END)
       FROM usage_logs
      WHERE user_id = ?1 AND day >= ?2 AND day <= ?3
      GROUP BY day, service, source
      ORDER BY day, service, source";

/// Everyone's usage per day, service and source, for admins: a range of the covering `usage_day`.
pub(crate) const PER_DAY_ALL: &str =
    "SELECT day, service, source, sum(units), sum(cost_micros), sum(CASE WHEN cached = 1 THEN units ELSE 0 END)
       FROM usage_logs
      WHERE day >= ?1 AND day <= ?2
      GROUP BY day, service, source
      ORDER BY day, service, source";

/// Usage per day and service between two days (inclusive), for one user or everyone. Two
/// statements, not one with an optional user: no index serves `?1 IS NULL OR user_id = ?1`,
/// so that form read every user's rows in the window for each user's report.
pub fn per_day(
    conn: &Connection,
    user: Option<UserId>,
    from: &str,
    to: &str,
) -> rusqlite::Result<Vec<DayUsage>> {
    let map = |r: &rusqlite::Row<'_>| {
        Ok(DayUsage {
            day: r.get(0)?,
            service: r.get(1)?,
            source: r.get(2)?,
            units: r.get(3)?,
            cost_micros: r.get(4)?,
            cached_units: r.get(5)?,
        })
    };
    match user {
        Some(user) => conn
            .prepare_cached(PER_DAY_USER)?
            .query_map(params![user, from, to], map)?
            .collect(),
        None => conn
            .prepare_cached(PER_DAY_ALL)?
            .query_map(params![from, to], map)?
            .collect(),
    }
}

pub(crate) const TTS_CHARS_THIS_MONTH: &str = "SELECT coalesce(sum(units), 0) FROM usage_logs
      WHERE user_id = ?1 AND day >= ?2 AND service LIKE 'tts:%'";

/// Speech characters a user has used this month (cached results count: they are still speech
/// the user asked for, and counting them keeps the quota predictable).
pub fn tts_chars_this_month(conn: &Connection, user: UserId, now: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached(TTS_CHARS_THIS_MONTH)?
        .query_row(params![user, month_start(now)], |r| r.get(0))
}

// Used by accounts and usage reports.
impl Usage<'_> {
    /// Usage per day and service between two days (inclusive), for one user or everyone.
    pub async fn per_day(
        &self,
        user: Option<UserId>,
        from: String,
        to: String,
    ) -> anyhow::Result<Vec<DayUsage>> {
        self.0
            .read(move |c| Ok(per_day(c, user, &from, &to)?))
            .await
    }

    /// Speech characters the user has used this month.
    pub async fn tts_chars_this_month(&self, user: UserId) -> anyhow::Result<i64> {
        self.0
            .read(move |c| Ok(tts_chars_this_month(c, user, super::now_ms())?))
            .await
    }
}

// Used by the speech service and the synthesis jobs.

/// One billable call, to be recorded for a user (and the audio it made, if any).
#[derive(Debug, Clone)]
pub struct Billed {
    /// e.g. `tts:openai:tts-1`.
    pub service: String,
    pub units: i64,
    pub cost_micros: i64,
    /// Served from the cache: counted, not paid.
    pub cached: bool,
}

impl Billed {
    pub(super) fn row(
        &self,
        id: Ulid,
        user: UserId,
        audio: Option<AudioId>,
        source: UsageSource,
    ) -> NewUsage<'_> {
        NewUsage {
            id,
            user_id: user,
            audio_id: audio,
            service: &self.service,
            units: self.units,
            cost_micros: self.cost_micros,
            cached: self.cached,
            source,
        }
    }
}

impl Usage<'_> {
    /// Records one billable call of `user`'s through the app.
    pub async fn insert(
        &self,
        user: UserId,
        audio: Option<AudioId>,
        billed: Billed,
    ) -> anyhow::Result<()> {
        self.record(user, audio, billed, UsageSource::App).await
    }

    /// Records one billable call of `user`'s that came through `source`.
    pub async fn record(
        &self,
        user: UserId,
        audio: Option<AudioId>,
        billed: Billed,
        source: UsageSource,
    ) -> anyhow::Result<()> {
        let id = self.0.new_id();
        self.0
            .transaction(move |tx| {
                Ok(insert(
                    tx,
                    &billed.row(id, user, audio, source),
                    super::now_ms(),
                )?)
            })
            .await
    }
}

/// Everyone's provider cost on the UTC day of `now`, in micro-dollars: one range of the
/// covering `usage_day` index.
pub fn cost_on_day_of(conn: &Connection, now: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT coalesce(sum(cost_micros), 0) FROM usage_logs WHERE day = ?1")?
        .query_row([day_of(now)], |r| r.get(0))
}

// Used by the alert engine.
impl Usage<'_> {
    /// Everyone's provider cost since midnight UTC, in micro-dollars.
    pub async fn cost_today(&self, now: i64) -> anyhow::Result<i64> {
        self.0.read(move |c| Ok(cost_on_day_of(c, now)?)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_months_are_utc() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(1_700_000_000_000), "2023-11-14");
        assert_eq!(month_start(1_700_000_000_000), "2023-11-01");
    }

    #[test]
    fn usage_is_summed_per_day_and_service_and_per_month_for_quotas() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrations::apply(&mut conn).unwrap();
        let (a, b) = (
            UserId::from(Ulid::generate()),
            UserId::from(Ulid::generate()),
        );
        for u in [a, b] {
            conn.execute(
                "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?1, ?1, 'h', 0, 0)",
                [u.to_string()],
            )
            .unwrap();
        }
        let day1 = 1_700_000_000_000;
        let day2 = day1 + 86_400_000;
        let tx = conn.transaction().unwrap();
        for (user, service, units, cost, cached, at) in [
            (a, "tts:openai:tts-1", 1000, 15000, false, day1),
            (a, "tts:openai:tts-1", 500, 0, true, day1),
            (a, "llm:m", 300, 90, false, day1),
            (a, "tts:local:espeak-ng", 200, 0, false, day2),
            (b, "tts:openai:tts-1", 999, 14985, false, day1),
        ] {
            insert(
                &tx,
                &NewUsage {
                    id: Ulid::generate(),
                    user_id: user,
                    audio_id: None,
                    service,
                    units,
                    cost_micros: cost,
                    cached,
                    source: UsageSource::App,
                },
                at,
            )
            .unwrap();
        }
        tx.commit().unwrap();
        let rows = per_day(&conn, Some(a), "2023-11-14", "2023-11-15").unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[1],
            DayUsage {
                day: "2023-11-14".into(),
                service: "tts:openai:tts-1".into(),
                source: UsageSource::App,
                units: 1500,
                cost_micros: 15000,
                cached_units: 500
            }
        );
        assert_eq!(
            per_day(&conn, None, "2023-11-14", "2023-11-14")
                .unwrap()
                .iter()
                .map(|r| r.units)
                .sum::<i64>(),
            2799
        );
        assert_eq!(
            tts_chars_this_month(&conn, a, day2).unwrap(),
            1700,
            "LLM tokens are not speech characters"
        );
    }
}
