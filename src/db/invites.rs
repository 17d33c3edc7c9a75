//! Queries on `invites`: single-use registration codes.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::UserId;

/// The `invites` table's operations, for services and jobs: `db.invites().…`. Each method picks
/// the connection it needs (see [`Db`](super::Db)); callers never hold one.
pub struct Invites<'a>(pub(super) &'a super::Db);

#[derive(Debug, Clone)]
pub struct InviteRow {
    pub code: String,
    pub created_by: Option<UserId>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub used_by: Option<UserId>,
    pub used_at: Option<i64>,
}

const COLUMNS: &str = "code, created_by, created_at, expires_at, used_by, used_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<InviteRow> {
    Ok(InviteRow {
        code: r.get(0)?,
        created_by: r.get(1)?,
        created_at: r.get(2)?,
        expires_at: r.get(3)?,
        used_by: r.get(4)?,
        used_at: r.get(5)?,
    })
}

pub fn insert(conn: &Connection, invite: &InviteRow) -> rusqlite::Result<()> {
    conn.execute(
        &format!("INSERT INTO invites ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
        params![
            invite.code,
            invite.created_by,
            invite.created_at,
            invite.expires_at,
            invite.used_by,
            invite.used_at
        ],
    )?;
    Ok(())
}

pub fn get(conn: &Connection, code: &str) -> rusqlite::Result<Option<InviteRow>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM invites WHERE code = ?1"))?
        .query_row([code], from_row)
        .optional()
}

/// Marks an unused, unexpired invite as used; `false` when it cannot be used.
pub fn redeem(conn: &Connection, code: &str, user_id: UserId, now: i64) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE invites SET used_by = ?2, used_at = ?3
         WHERE code = ?1 AND used_at IS NULL AND (expires_at IS NULL OR expires_at > ?3)",
        )?
        .execute(params![code, user_id, now])?
        == 1)
}

/// Newest first; the cursor is the `(created_at, code)` of the last row of the previous page.
pub fn list(
    conn: &Connection,
    after: Option<(i64, &str)>,
    limit: usize,
) -> rusqlite::Result<Vec<InviteRow>> {
    let (at, code) = match after {
        Some((at, code)) => (Some(at), Some(code)),
        None => (None, None),
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM invites
         WHERE ?1 IS NULL OR created_at < ?1 OR (created_at = ?1 AND code < ?2)
         ORDER BY created_at DESC, code DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![at, code, limit as i64], from_row)?;
    rows.collect()
}

pub fn delete(conn: &Connection, code: &str) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM invites WHERE code = ?1")?
        .execute([code])?
        == 1)
}

// Used by accounts.
impl Invites<'_> {
    pub async fn insert(&self, invite: InviteRow) -> anyhow::Result<()> {
        self.0.write(move |c| Ok(insert(c, &invite)?)).await
    }

    /// Newest first, after the `(created_at, code)` of the previous page's last invite.
    pub async fn page(
        &self,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> anyhow::Result<Vec<InviteRow>> {
        self.0
            .read(move |c| {
                Ok(list(
                    c,
                    after.as_ref().map(|(at, code)| (*at, code.as_str())),
                    limit,
                )?)
            })
            .await
    }

    /// `false` when there was no such invite.
    pub async fn delete(&self, code: String) -> anyhow::Result<bool> {
        self.0.write(move |c| Ok(delete(c, &code)?)).await
    }
}
