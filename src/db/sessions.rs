//! Queries on `sessions`: browser sign-ins, found by the SHA-256 of their cookie value.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Role, SessionId, UserId};

/// The `sessions` table's operations, for services and jobs: `db.sessions().…`. Each method picks
/// the connection it needs (see [`Db`](super::Db)); callers never hold one.
pub struct Sessions<'a>(pub(super) &'a super::Db);

pub struct NewSession<'a> {
    pub id: SessionId,
    pub user_id: UserId,
    pub token_hash: &'a [u8],
    pub now: i64,
    pub expires_at: i64,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub fn insert(conn: &Connection, s: &NewSession<'_>) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO sessions (id, user_id, token_hash, created_at, last_seen_at, expires_at, ip, user_agent)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7)")?.execute(params![s.id, s.user_id, s.token_hash, s.now, s.expires_at, s.ip, s.user_agent],
    )?;
    Ok(())
}

/// A live session and the essentials of its user, whatever the user's state.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub session_id: SessionId,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
}

/// The unrevoked session with this token hash that has not passed its absolute expiry
/// and was used after `idle_since`.
pub fn find_live(
    conn: &Connection,
    token_hash: &[u8],
    now: i64,
    idle_since: i64,
) -> rusqlite::Result<Option<SessionUser>> {
    conn.prepare_cached(
        "SELECT s.id, s.last_seen_at, s.expires_at, u.id, u.email, u.role, u.disabled
         FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = ?1 AND s.revoked_at IS NULL
           AND s.expires_at > ?2 AND s.last_seen_at > ?3",
    )?
    .query_row(params![token_hash, now, idle_since], |r| {
        Ok(SessionUser {
            session_id: r.get(0)?,
            last_seen_at: r.get(1)?,
            expires_at: r.get(2)?,
            user_id: r.get(3)?,
            email: r.get(4)?,
            role: r.get(5)?,
            disabled: r.get(6)?,
        })
    })
    .optional()
}

pub fn touch(conn: &Connection, id: SessionId, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(())
}

pub fn revoke(conn: &Connection, id: SessionId, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
    )?
    .execute(params![id, now])?;
    Ok(())
}

/// Signs a user out everywhere, except (optionally) the session making the change.
pub fn revoke_all_for_user(
    conn: &Connection,
    user_id: UserId,
    except: Option<SessionId>,
    now: i64,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE sessions SET revoked_at = ?3
         WHERE user_id = ?1 AND revoked_at IS NULL AND (?2 IS NULL OR id <> ?2)",
    )?
    .execute(params![user_id, except, now])
}

/// Drops a user's sessions that can never be used again, so the table does not grow forever.
pub fn delete_dead_for_user(
    conn: &Connection,
    user_id: UserId,
    now: i64,
    idle_since: i64,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "DELETE FROM sessions
         WHERE user_id = ?1 AND (revoked_at IS NOT NULL OR expires_at <= ?2 OR last_seen_at <= ?3)",
    )?
    .execute(params![user_id, now, idle_since])
}

// Used by accounts.

/// A session to open, as it travels to the writer: its times are taken when it is written.
pub struct SessionToOpen {
    pub id: SessionId,
    pub token_hash: [u8; 32],
    /// How long it lives at most: it expires this long after it opens.
    pub max_ms: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The client's address as sign-in throttling counts it, kept as one of the account's
    /// known addresses for `address_kept_ms`.
    pub address: Option<String>,
    pub address_kept_ms: i64,
}

/// Opens `s` for the user and notes the address it came from.
pub fn open(
    conn: &Connection,
    user_id: UserId,
    s: &SessionToOpen,
    now: i64,
) -> rusqlite::Result<()> {
    insert(
        conn,
        &NewSession {
            id: s.id,
            user_id,
            token_hash: &s.token_hash,
            now,
            expires_at: now + s.max_ms,
            ip: s.ip.as_deref(),
            user_agent: s.user_agent.as_deref(),
        },
    )?;
    if let Some(address) = s.address.as_deref() {
        super::sign_in_addresses::record(conn, user_id, address, now, now - s.address_kept_ms)?;
    }
    Ok(())
}

impl Sessions<'_> {
    /// Signs the user in: drops their sessions that can never be used again (idle for
    /// `idle_ms` or more, expired, revoked) and opens `session`.
    pub async fn sign_in(
        &self,
        user_id: UserId,
        session: SessionToOpen,
        idle_ms: i64,
    ) -> anyhow::Result<()> {
        self.0
            .transaction(move |tx| {
                let now = super::now_ms();
                delete_dead_for_user(tx, user_id, now, now - idle_ms)?;
                open(tx, user_id, &session, now)?;
                Ok(())
            })
            .await
    }

    /// The live session with this token hash and its user (see [`find_live`]): an indexed
    /// lookup on every request with a cookie.
    pub async fn find_live(
        &self,
        token_hash: [u8; 32],
        now: i64,
        idle_since: i64,
    ) -> anyhow::Result<Option<SessionUser>> {
        self.0
            .lookup(move |c| Ok(find_live(c, &token_hash, now, idle_since)?))
            .await
    }

    pub async fn touch(&self, id: SessionId, now: i64) -> anyhow::Result<()> {
        self.0.write(move |c| Ok(touch(c, id, now)?)).await
    }

    pub async fn revoke(&self, id: SessionId) -> anyhow::Result<()> {
        self.0
            .write(move |c| Ok(revoke(c, id, super::now_ms())?))
            .await
    }
}
