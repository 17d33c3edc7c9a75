//! Queries on `users`.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Role, UserId};

/// The `users` table's operations, for services and jobs: `db.users().…`. Each method picks
/// the connection it needs (see [`Db`](super::Db)); callers never hold one.
#[allow(dead_code)] // until its methods land
pub struct Users<'a>(pub(super) &'a super::Db);

/// A `users` row as stored.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub disabled: bool,
    pub quota_chars_per_month: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, email, password_hash, display_name, role, disabled, \
                       quota_chars_per_month, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        email: r.get(1)?,
        password_hash: r.get(2)?,
        display_name: r.get(3)?,
        role: r.get(4)?,
        disabled: r.get(5)?,
        quota_chars_per_month: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

pub fn insert(conn: &Connection, user: &UserRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO users (id, email, password_hash, display_name, role, disabled,
                            quota_chars_per_month, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        user.id,
        user.email,
        user.password_hash,
        user.display_name,
        user.role,
        user.disabled,
        user.quota_chars_per_month,
        user.created_at,
        user.updated_at
    ])?;
    Ok(())
}

pub fn by_id(conn: &Connection, id: UserId) -> rusqlite::Result<Option<UserRow>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// Case-insensitive (the column is `COLLATE NOCASE`).
pub fn by_email(conn: &Connection, email: &str) -> rusqlite::Result<Option<UserRow>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE email = ?1"))?
        .query_row([email], from_row)
        .optional()
}

pub fn email_taken(conn: &Connection, email: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM users WHERE email = ?1)")?
        .query_row([email], |r| r.get(0))
}

/// Admins that can still sign in.
pub fn count_active_admins(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0")?
        .query_row([], |r| r.get(0))
}

/// Newest first, `limit` rows with ids below `before` (ULIDs sort by creation time).
pub fn list(
    conn: &Connection,
    before: Option<&str>,
    limit: usize,
    email_like: Option<&str>,
) -> rusqlite::Result<Vec<UserRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM users
         WHERE (?1 IS NULL OR id < ?1)
           AND (?2 IS NULL OR email LIKE '%' || ?2 || '%' ESCAPE '\\')
         ORDER BY id DESC LIMIT ?3"
    ))?;
    let pattern = email_like.map(super::escape_like);
    let rows = stmt.query_map(params![before, pattern, limit as i64], from_row)?;
    rows.collect()
}

/// Every user, oldest first: for `aimake user list`.
pub fn all(conn: &Connection) -> rusqlite::Result<Vec<UserRow>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM users ORDER BY id"))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

pub fn set_password(
    conn: &Connection,
    id: UserId,
    password_hash: &str,
    now: i64,
) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![id, password_hash, now])?
        == 1)
}

pub fn set_disabled(
    conn: &Connection,
    id: UserId,
    disabled: bool,
    now: i64,
) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("UPDATE users SET disabled = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![id, disabled, now])?
        == 1)
}

pub fn set_role(conn: &Connection, id: UserId, role: Role, now: i64) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("UPDATE users SET role = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![id, role, now])?
        == 1)
}

pub fn set_quota(
    conn: &Connection,
    id: UserId,
    quota: Option<i64>,
    now: i64,
) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE users SET quota_chars_per_month = ?2, updated_at = ?3 WHERE id = ?1",
        )?
        .execute(params![id, quota, now])?
        == 1)
}

pub fn set_display_name(
    conn: &Connection,
    id: UserId,
    display_name: Option<&str>,
    now: i64,
) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("UPDATE users SET display_name = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![id, display_name, now])?
        == 1)
}
