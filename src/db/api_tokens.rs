//! Queries on `api_tokens`: programs' credentials, found by the SHA-256 of the token.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Role, TokenId, UserId};

/// The `api_tokens` table's operations, for services and jobs: `db.api_tokens().…`. Each method picks
/// the connection it needs (see [`Db`](super::Db)); callers never hold one.
pub struct ApiTokens<'a>(pub(super) &'a super::Db);

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: TokenId,
    pub user_id: UserId,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        name: r.get(2)?,
        created_at: r.get(3)?,
        last_used_at: r.get(4)?,
    })
}

pub fn insert(
    conn: &Connection,
    id: TokenId,
    user_id: UserId,
    name: &str,
    token_hash: &[u8],
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(params![id, user_id, name, token_hash, now],
    )?;
    Ok(())
}

/// An unrevoked token and the essentials of its user, whatever the user's state.
#[derive(Debug, Clone)]
pub struct TokenUser {
    pub token_id: TokenId,
    pub last_used_at: Option<i64>,
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
}

pub fn find_live(conn: &Connection, token_hash: &[u8]) -> rusqlite::Result<Option<TokenUser>> {
    conn.prepare_cached(
        "SELECT t.id, t.last_used_at, u.id, u.email, u.role, u.disabled
         FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = ?1 AND t.revoked_at IS NULL",
    )?
    .query_row([token_hash], |r| {
        Ok(TokenUser {
            token_id: r.get(0)?,
            last_used_at: r.get(1)?,
            user_id: r.get(2)?,
            email: r.get(3)?,
            role: r.get(4)?,
            disabled: r.get(5)?,
        })
    })
    .optional()
}

pub fn touch(conn: &Connection, id: TokenId, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(())
}

/// The owner's unrevoked tokens, newest first, below the `before` id.
pub fn list_for_user(
    conn: &Connection,
    user_id: UserId,
    before: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<TokenRow>> {
    let mut stmt = conn.prepare(
        "SELECT id, user_id, name, created_at, last_used_at FROM api_tokens
         WHERE user_id = ?1 AND revoked_at IS NULL AND (?2 IS NULL OR id < ?2)
         ORDER BY id DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![user_id, before, limit as i64], from_row)?;
    rows.collect()
}

pub fn count_live_for_user(conn: &Connection, user_id: UserId) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM api_tokens WHERE user_id = ?1 AND revoked_at IS NULL",
    )?
    .query_row([user_id], |r| r.get(0))
}

/// Revokes the owner's token; `false` when the owner has no such token (another user's id
/// included). Revoking twice is fine.
pub fn revoke(conn: &Connection, user_id: UserId, id: TokenId, now: i64) -> rusqlite::Result<bool> {
    let found: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM api_tokens WHERE id = ?1 AND user_id = ?2",
            params![id, user_id],
            |r| r.get(0),
        )
        .optional()?;
    if found.is_none() {
        return Ok(false);
    }
    conn.prepare_cached("UPDATE api_tokens SET revoked_at = ?3 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL")?.execute(params![id, user_id, now],
    )?;
    Ok(true)
}

// Used by accounts.
impl ApiTokens<'_> {
    /// The unrevoked token with this hash and its user: an indexed lookup on every request
    /// with a token.
    pub async fn find_live(&self, token_hash: [u8; 32]) -> anyhow::Result<Option<TokenUser>> {
        self.0.lookup(move |c| Ok(find_live(c, &token_hash)?)).await
    }

    pub async fn touch(&self, id: TokenId, now: i64) -> anyhow::Result<()> {
        self.0.write(move |c| Ok(touch(c, id, now)?)).await
    }

    /// Stores a new token unless the user already has `max_live` unrevoked ones; `false` when
    /// it was not stored.
    pub async fn create(
        &self,
        id: TokenId,
        user_id: UserId,
        name: String,
        token_hash: [u8; 32],
        now: i64,
        max_live: i64,
    ) -> anyhow::Result<bool> {
        self.0
            .write(move |c| {
                if count_live_for_user(c, user_id)? >= max_live {
                    return Ok(false);
                }
                insert(c, id, user_id, &name, &token_hash, now)?;
                Ok(true)
            })
            .await
    }

    /// The owner's unrevoked tokens, newest first, below the `before` id.
    pub async fn page(
        &self,
        user_id: UserId,
        before: Option<String>,
        limit: usize,
    ) -> anyhow::Result<Vec<TokenRow>> {
        self.0
            .read(move |c| Ok(list_for_user(c, user_id, before.as_deref(), limit)?))
            .await
    }

    /// See [`revoke`]: `false` when the owner has no such token.
    pub async fn revoke(&self, user_id: UserId, id: TokenId) -> anyhow::Result<bool> {
        self.0
            .write(move |c| Ok(revoke(c, user_id, id, super::now_ms())?))
            .await
    }
}
