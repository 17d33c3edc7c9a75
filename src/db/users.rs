//! Queries on `users`.

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Role, SessionId, UserId};

/// The `users` table's operations, for services and jobs: `db.users().…`. Each method picks
/// the connection it needs (see [`Db`](super::Db)); callers never hold one.
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

// Used by accounts.

/// An account to create; its times are taken when it is written.
#[derive(Debug)]
pub struct NewUser {
    pub id: UserId,
    /// Already normalised (trimmed, lower-cased).
    pub email: String,
    pub password_hash: String,
    pub display_name: Option<String>,
    pub role: Role,
}

/// Why an account was not created; nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewUserRefusal {
    EmailTaken,
    /// The invite is unknown, used or expired.
    InviteInvalid,
    /// First-run setup, but an active admin exists already.
    AdminExists,
}

/// Why an admin's change to a user was not made; nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateRefusal {
    NotFound,
    /// The change would leave no admin that can sign in.
    NoActiveAdminLeft,
}

/// An admin's change to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    /// `Some(None)` resets to the configured default.
    pub quota_chars_per_month: Option<Option<i64>>,
}

/// A monthly speech limit and the characters used of it this month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub limit: u64,
    pub used: i64,
}

/// Inserts `user` unless its email is taken.
fn create(
    conn: &Connection,
    user: NewUser,
    now: i64,
) -> rusqlite::Result<Result<UserRow, NewUserRefusal>> {
    if email_taken(conn, &user.email)? {
        return Ok(Err(NewUserRefusal::EmailTaken));
    }
    let row = UserRow {
        id: user.id,
        email: user.email,
        password_hash: user.password_hash,
        display_name: user.display_name,
        role: user.role,
        disabled: false,
        quota_chars_per_month: None,
        created_at: now,
        updated_at: now,
    };
    insert(conn, &row)?;
    Ok(Ok(row))
}

impl Users<'_> {
    pub async fn get(&self, id: UserId) -> anyhow::Result<Option<UserRow>> {
        self.0.read(move |c| Ok(by_id(c, id)?)).await
    }

    /// `email` normalised as accounts store it.
    pub async fn by_email(&self, email: String) -> anyhow::Result<Option<UserRow>> {
        self.0.read(move |c| Ok(by_email(c, &email)?)).await
    }

    /// Every account, for the metrics.
    pub async fn count(&self) -> anyhow::Result<i64> {
        self.0
            .read(|c| Ok(c.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?))
            .await
    }

    /// Admins that can still sign in.
    pub async fn count_active_admins(&self) -> anyhow::Result<i64> {
        self.0.read(|c| Ok(count_active_admins(c)?)).await
    }

    /// Newest first, `limit` users with ids below `before`, optionally only those whose email
    /// contains `email_like`.
    pub async fn page(
        &self,
        before: Option<String>,
        limit: usize,
        email_like: Option<String>,
    ) -> anyhow::Result<Vec<UserRow>> {
        self.0
            .read(move |c| Ok(list(c, before.as_deref(), limit, email_like.as_deref())?))
            .await
    }

    /// Every user, oldest first.
    pub async fn all(&self) -> anyhow::Result<Vec<UserRow>> {
        self.0.read(|c| Ok(all(c)?)).await
    }

    pub async fn set_display_name(&self, id: UserId, name: Option<String>) -> anyhow::Result<()> {
        self.0
            .write(move |c| {
                set_display_name(c, id, name.as_deref(), super::now_ms())?;
                Ok(())
            })
            .await
    }

    /// The user's monthly speech limit, as `limit_of` reads it from their row, and what they
    /// used of it this month, in one trip to a reader: the month is summed only when a limit
    /// applies. `None`: no such user; `Some(None)`: no limit.
    pub async fn allowance<F>(
        &self,
        id: UserId,
        limit_of: F,
    ) -> anyhow::Result<Option<Option<Allowance>>>
    where
        F: FnOnce(&UserRow) -> Option<u64> + Send + 'static,
    {
        self.0
            .read(move |c| {
                let Some(row) = by_id(c, id)? else {
                    return Ok(None);
                };
                let Some(limit) = limit_of(&row) else {
                    return Ok(Some(None));
                };
                let used = super::usage::tts_chars_this_month(c, id, super::now_ms())?;
                Ok(Some(Some(Allowance { limit, used })))
            })
            .await
    }

    /// Creates an account with no session (an admin's or the CLI's doing).
    pub async fn create(&self, user: NewUser) -> anyhow::Result<Result<UserRow, NewUserRefusal>> {
        self.0
            .try_transaction(move |tx| Ok(create(tx, user, super::now_ms())?))
            .await
    }

    /// Creates an account and signs it in, redeeming `invite` when one is given; refused
    /// when the email is taken or the invite cannot be used.
    pub async fn register(
        &self,
        user: NewUser,
        invite: Option<String>,
        session: super::sessions::SessionToOpen,
    ) -> anyhow::Result<Result<UserRow, NewUserRefusal>> {
        self.0
            .try_transaction(move |tx| {
                let now = super::now_ms();
                let user = match create(tx, user, now)? {
                    Ok(user) => user,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                if let Some(code) = &invite
                    && !super::invites::redeem(tx, code, user.id, now)?
                {
                    return Ok(Err(NewUserRefusal::InviteInvalid));
                }
                super::sessions::open(tx, user.id, &session, now)?;
                Ok(Ok(user))
            })
            .await
    }

    /// Creates the first admin and signs them in; refused once an active admin exists or
    /// when the email is taken.
    pub async fn create_first_admin(
        &self,
        user: NewUser,
        session: super::sessions::SessionToOpen,
    ) -> anyhow::Result<Result<UserRow, NewUserRefusal>> {
        self.0
            .try_transaction(move |tx| {
                if count_active_admins(tx)? > 0 {
                    return Ok(Err(NewUserRefusal::AdminExists));
                }
                let now = super::now_ms();
                let user = match create(tx, user, now)? {
                    Ok(user) => user,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                super::sessions::open(tx, user.id, &session, now)?;
                Ok(Ok(user))
            })
            .await
    }

    /// Sets a new password and signs the user out of every session but `keep`.
    pub async fn change_password(
        &self,
        id: UserId,
        password_hash: String,
        keep: Option<SessionId>,
    ) -> anyhow::Result<()> {
        self.0
            .transaction(move |tx| {
                let now = super::now_ms();
                set_password(tx, id, &password_hash, now)?;
                super::sessions::revoke_all_for_user(tx, id, keep, now)?;
                Ok(())
            })
            .await
    }

    /// Sets a new password on the account with this (normalised) email and signs it out
    /// everywhere; `None` when no account has the email.
    pub async fn reset_password(
        &self,
        email: String,
        password_hash: String,
    ) -> anyhow::Result<Option<UserRow>> {
        self.0
            .transaction(move |tx| {
                let Some(user) = by_email(tx, &email)? else {
                    return Ok(None);
                };
                let now = super::now_ms();
                set_password(tx, user.id, &password_hash, now)?;
                super::sessions::revoke_all_for_user(tx, user.id, None, now)?;
                Ok(Some(by_id(tx, user.id)?.context("user vanished")?))
            })
            .await
    }

    /// Applies an admin's change and returns the updated user. Disabling ends the user's
    /// sessions. Refused, with nothing written, when it would leave no active admin.
    pub async fn update(
        &self,
        id: UserId,
        change: UserChange,
    ) -> anyhow::Result<Result<UserRow, UpdateRefusal>> {
        self.0
            .try_transaction(move |tx| {
                let now = super::now_ms();
                if by_id(tx, id)?.is_none() {
                    return Ok(Err(UpdateRefusal::NotFound));
                }
                if let Some(role) = change.role {
                    set_role(tx, id, role, now)?;
                }
                if let Some(disabled) = change.disabled {
                    set_disabled(tx, id, disabled, now)?;
                    if disabled {
                        super::sessions::revoke_all_for_user(tx, id, None, now)?;
                    }
                }
                if let Some(quota) = change.quota_chars_per_month {
                    set_quota(tx, id, quota, now)?;
                }
                if count_active_admins(tx)? == 0 {
                    return Ok(Err(UpdateRefusal::NoActiveAdminLeft));
                }
                Ok(Ok(by_id(tx, id)?.context("user vanished")?))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;
    use crate::db::sessions::SessionToOpen;

    fn open() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("a.db")).unwrap();
        (dir, db)
    }

    fn new_user(db: &Db, email: &str, role: Role) -> NewUser {
        NewUser {
            id: UserId::new(db),
            email: email.into(),
            password_hash: "h".into(),
            display_name: None,
            role,
        }
    }

    fn session(db: &Db, n: u8) -> SessionToOpen {
        SessionToOpen {
            id: SessionId::new(db),
            token_hash: [n; 32],
            max_ms: 60_000,
            ip: None,
            user_agent: None,
            address: Some("192.0.2.1".into()),
            address_kept_ms: 60_000,
        }
    }

    /// Rows in users, sessions, sign_in_addresses and used invites.
    async fn rows(db: &Db) -> (i64, i64, i64, i64) {
        db.read(|c| {
            Ok(c.query_row(
                "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM sessions),
                        (SELECT count(*) FROM sign_in_addresses),
                        (SELECT count(*) FROM invites WHERE used_at IS NOT NULL)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?)
        })
        .await
        .unwrap()
    }

    async fn add_invite(db: &Db, code: &str, expires_at: Option<i64>) {
        db.invites()
            .insert(crate::db::invites::InviteRow {
                code: code.into(),
                created_by: None,
                created_at: 0,
                expires_at,
                used_by: None,
                used_at: None,
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn registering_with_an_unusable_invite_writes_nothing() {
        let (_dir, db) = open();
        add_invite(&db, "expired", Some(1)).await;
        let refused = db
            .users()
            .register(
                new_user(&db, "ada@example.com", Role::User),
                Some("expired".into()),
                session(&db, 1),
            )
            .await
            .unwrap();
        assert_eq!(refused.unwrap_err(), NewUserRefusal::InviteInvalid);
        assert_eq!(
            rows(&db).await,
            (0, 0, 0, 0),
            "the user inserted before the invite was checked is rolled back"
        );

        add_invite(&db, "good", None).await;
        let user = db
            .users()
            .register(
                new_user(&db, "ada@example.com", Role::User),
                Some("good".into()),
                session(&db, 2),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.email, "ada@example.com");
        assert_eq!(rows(&db).await, (1, 1, 1, 1));
    }

    #[tokio::test]
    async fn registering_a_taken_email_writes_nothing() {
        let (_dir, db) = open();
        db.users()
            .create(new_user(&db, "ada@example.com", Role::User))
            .await
            .unwrap()
            .unwrap();
        add_invite(&db, "good", None).await;
        let refused = db
            .users()
            .register(
                new_user(&db, "ada@example.com", Role::User),
                Some("good".into()),
                session(&db, 1),
            )
            .await
            .unwrap();
        assert_eq!(refused.unwrap_err(), NewUserRefusal::EmailTaken);
        assert_eq!(rows(&db).await, (1, 0, 0, 0), "the invite is still unused");
        let again = db
            .users()
            .create(new_user(&db, "ada@example.com", Role::Admin))
            .await
            .unwrap();
        assert_eq!(again.unwrap_err(), NewUserRefusal::EmailTaken);
    }

    #[tokio::test]
    async fn a_second_first_admin_is_refused_and_writes_nothing() {
        let (_dir, db) = open();
        let admin = db
            .users()
            .create_first_admin(
                new_user(&db, "root@example.com", Role::Admin),
                session(&db, 1),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(admin.role, Role::Admin);
        assert_eq!(rows(&db).await, (1, 1, 1, 0));
        let refused = db
            .users()
            .create_first_admin(
                new_user(&db, "eve@example.com", Role::Admin),
                session(&db, 2),
            )
            .await
            .unwrap();
        assert_eq!(refused.unwrap_err(), NewUserRefusal::AdminExists);
        assert_eq!(rows(&db).await, (1, 1, 1, 0));
    }

    #[tokio::test]
    async fn a_change_that_leaves_no_active_admin_is_rolled_back_whole() {
        let (_dir, db) = open();
        let admin = db
            .users()
            .create_first_admin(
                new_user(&db, "root@example.com", Role::Admin),
                session(&db, 1),
            )
            .await
            .unwrap()
            .unwrap();
        let change = UserChange {
            role: Some(Role::User),
            disabled: Some(true),
            quota_chars_per_month: Some(Some(5)),
        };
        let refused = db.users().update(admin.id, change.clone()).await.unwrap();
        assert_eq!(refused.unwrap_err(), UpdateRefusal::NoActiveAdminLeft);
        let kept = db.users().get(admin.id).await.unwrap().unwrap();
        assert_eq!(
            (kept.role, kept.disabled, kept.quota_chars_per_month),
            (Role::Admin, false, None)
        );
        assert!(
            db.sessions()
                .find_live([1; 32], crate::db::now_ms(), 0)
                .await
                .unwrap()
                .is_some(),
            "the admin's session was not revoked"
        );

        let missing = db.users().update(UserId::new(&db), change).await.unwrap();
        assert_eq!(missing.unwrap_err(), UpdateRefusal::NotFound);

        let user = db
            .users()
            .create(new_user(&db, "ada@example.com", Role::User))
            .await
            .unwrap()
            .unwrap();
        let promoted = db
            .users()
            .update(
                user.id,
                UserChange {
                    role: Some(Role::Admin),
                    ..UserChange::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(promoted.role, Role::Admin);
        let demoted = db
            .users()
            .update(
                admin.id,
                UserChange {
                    disabled: Some(true),
                    ..UserChange::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert!(demoted.disabled, "another admin remains");
        assert!(
            db.sessions()
                .find_live([1; 32], crate::db::now_ms(), 0)
                .await
                .unwrap()
                .is_none(),
            "disabling ends the user's sessions"
        );
    }
}
