//! Queries on `alerts`: the history of the server's own alerts (see `ops::alerts`).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{AlertId, Severity};

/// The `alerts` table's operations: `db.alerts().…`. Each method picks the connection it
/// needs (see [`Db`](super::Db)); callers never hold one.
pub struct Alerts<'a>(pub(super) &'a super::Db);

/// One alert: a rule that fired, and when it resolved if it has.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertRow {
    pub id: AlertId,
    pub rule: String,
    pub severity: Severity,
    pub summary: String,
    pub value: f64,
    pub threshold: f64,
    pub fired_at: i64,
    pub resolved_at: Option<i64>,
    pub resolved_value: Option<f64>,
    pub notified_at: Option<i64>,
    pub notifications: i64,
}

const COLUMNS: &str = "id, rule, severity, summary, value, threshold, fired_at, resolved_at, \
                       resolved_value, notified_at, notifications";

fn from_row(r: &Row<'_>) -> rusqlite::Result<AlertRow> {
    Ok(AlertRow {
        id: r.get(0)?,
        rule: r.get(1)?,
        severity: r.get(2)?,
        summary: r.get(3)?,
        value: r.get(4)?,
        threshold: r.get(5)?,
        fired_at: r.get(6)?,
        resolved_at: r.get(7)?,
        resolved_value: r.get(8)?,
        notified_at: r.get(9)?,
        notifications: r.get(10)?,
    })
}

pub fn insert(conn: &Connection, a: &AlertRow) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO alerts ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?
    .execute(params![
        a.id,
        a.rule,
        a.severity,
        a.summary,
        a.value,
        a.threshold,
        a.fired_at,
        a.resolved_at,
        a.resolved_value,
        a.notified_at,
        a.notifications
    ])?;
    Ok(())
}

/// The rule's alert that has not resolved, if any.
pub fn active(conn: &Connection, rule: &str) -> rusqlite::Result<Option<AlertRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM alerts WHERE rule = ?1 AND resolved_at IS NULL"
    ))?
    .query_row([rule], from_row)
    .optional()
}

/// Every alert still firing, oldest first.
pub fn all_active(conn: &Connection) -> rusqlite::Result<Vec<AlertRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM alerts WHERE resolved_at IS NULL ORDER BY fired_at, id"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

/// Alerts newest first, after the `(fired_at, id)` of the previous page's last one.
pub fn list(
    conn: &Connection,
    after: Option<(i64, AlertId)>,
    limit: usize,
) -> rusqlite::Result<Vec<AlertRow>> {
    let (at, id) = match after {
        Some((at, id)) => (Some(at), Some(id)),
        None => (None, None),
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM alerts
         WHERE ?1 IS NULL OR fired_at < ?1 OR (fired_at = ?1 AND id < ?2)
         ORDER BY fired_at DESC, id DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![at, id, limit as i64], from_row)?;
    rows.collect()
}

/// Records that a notification about the alert went out at `at`.
pub fn notified(conn: &Connection, id: AlertId, at: i64) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE alerts SET notified_at = ?2, notifications = notifications + 1 WHERE id = ?1",
        )?
        .execute(params![id, at])?
        == 1)
}

/// Resolves the alert; `false` when it was resolved already.
pub fn resolve(conn: &Connection, id: AlertId, at: i64, value: f64) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE alerts SET resolved_at = ?2, resolved_value = ?3
             WHERE id = ?1 AND resolved_at IS NULL",
        )?
        .execute(params![id, at, value])?
        == 1)
}

// Used by the alert engine and the admin API.
impl Alerts<'_> {
    /// Records a rule that fired. A rule has at most one active alert: when it has one
    /// already (a restart raced a resolve), that one is answered instead.
    pub async fn fire(&self, alert: AlertRow) -> anyhow::Result<AlertRow> {
        self.0
            .transaction(move |tx| {
                if let Some(existing) = active(tx, &alert.rule)? {
                    return Ok(existing);
                }
                insert(tx, &alert)?;
                Ok(alert)
            })
            .await
    }

    pub async fn notified(&self, id: AlertId, at: i64) -> anyhow::Result<bool> {
        self.0.write(move |c| Ok(notified(c, id, at)?)).await
    }

    pub async fn resolve(&self, id: AlertId, at: i64, value: f64) -> anyhow::Result<bool> {
        self.0.write(move |c| Ok(resolve(c, id, at, value)?)).await
    }

    pub async fn active(&self) -> anyhow::Result<Vec<AlertRow>> {
        self.0.lookup(|c| Ok(all_active(c)?)).await
    }

    /// The alerts firing now and a page of every alert (as [`Self::page`]), read from one
    /// snapshot so the two agree.
    pub async fn active_and_page(
        &self,
        after: Option<(i64, AlertId)>,
        limit: usize,
    ) -> anyhow::Result<(Vec<AlertRow>, Vec<AlertRow>)> {
        self.0
            .read(move |c| {
                let snapshot = c.unchecked_transaction()?;
                Ok((all_active(&snapshot)?, list(&snapshot, after, limit)?))
            })
            .await
    }

    /// Newest first, after the `(fired_at, id)` of the previous page's last alert.
    pub async fn page(
        &self,
        after: Option<(i64, AlertId)>,
        limit: usize,
    ) -> anyhow::Result<Vec<AlertRow>> {
        self.0.read(move |c| Ok(list(c, after, limit)?)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    fn row(db: &Db, rule: &str, fired_at: i64) -> AlertRow {
        AlertRow {
            id: AlertId::new(db),
            rule: rule.into(),
            severity: Severity::Critical,
            summary: format!("{rule} fired"),
            value: 0.2,
            threshold: 0.05,
            fired_at,
            resolved_at: None,
            resolved_value: None,
            notified_at: None,
            notifications: 0,
        }
    }

    #[tokio::test]
    async fn a_rule_has_one_active_alert_and_a_resolved_one_makes_room_for_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        let first = db.alerts().fire(row(&db, "error_rate", 10)).await.unwrap();
        let again = db.alerts().fire(row(&db, "error_rate", 20)).await.unwrap();
        assert_eq!(again, first, "the active one is kept, not a second");
        assert!(db.alerts().notified(first.id, 11).await.unwrap());
        assert!(db.alerts().resolve(first.id, 30, 0.01).await.unwrap());
        assert!(!db.alerts().resolve(first.id, 31, 0.0).await.unwrap());
        let next = db.alerts().fire(row(&db, "error_rate", 40)).await.unwrap();
        assert_ne!(next.id, first.id);
        let other = db.alerts().fire(row(&db, "db_errors", 50)).await.unwrap();

        let active = db.alerts().active().await.unwrap();
        assert_eq!(
            active.iter().map(|a| a.id).collect::<Vec<_>>(),
            [next.id, other.id]
        );
        let page = db.alerts().page(None, 2).await.unwrap();
        assert_eq!(
            page.iter().map(|a| a.id).collect::<Vec<_>>(),
            [other.id, next.id]
        );
        let rest = db
            .alerts()
            .page(Some((page[1].fired_at, page[1].id)), 10)
            .await
            .unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].id, first.id);
        assert_eq!(rest[0].resolved_at, Some(30));
        assert_eq!(rest[0].resolved_value, Some(0.01));
        assert_eq!(rest[0].notifications, 1);
        assert_eq!(rest[0].notified_at, Some(11));
        let (active_now, newest) = db.alerts().active_and_page(None, 1).await.unwrap();
        assert_eq!(active_now, active);
        assert_eq!(newest, page[..1]);
    }
}
