//! API tokens: creating, listing, revoking and authenticating with them.

use std::fmt;

use serde::Serialize;

use super::{Auth, AuthUser, Credential, MAX_NAME_CHARS, TOUCH_EVERY_MS, secret};
use crate::db::{self, TokenId, now_ms};
use crate::error::{AppError, ErrorCode, Result};
use crate::pagination::{Page, PageRequest};

/// Far more than a person or a fleet of scripts needs; stops a runaway loop filling the table.
const MAX_TOKENS_PER_USER: i64 = 100;

/// An API token as listed: never the secret.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: TokenId,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// A token just created: the only time its secret is shown.
#[derive(Clone, Serialize)]
pub struct CreatedToken {
    pub id: TokenId,
    pub name: String,
    pub token: String,
    pub created_at: String,
}

impl fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedToken")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("token", &"[redacted]")
            .finish()
    }
}

impl Auth {
    /// The user behind an `amk_…` API token, if it is unrevoked and the user enabled.
    pub async fn authenticate_token(&self, token: &str) -> Result<Option<AuthUser>> {
        let Some(body) = token.strip_prefix(secret::TOKEN_PREFIX) else {
            return Ok(None);
        };
        if !secret::looks_like_256(body) {
            return Ok(None);
        }
        let hash = secret::digest(token);
        let now = now_ms();
        if let Some(user) = self.inner.verified.get(&hash, now) {
            return Ok(Some(user));
        }
        let ticket = self.inner.verified.ticket();
        let found = self.db().api_tokens().find_live(hash).await?;
        let Some(t) = found.filter(|t| !t.disabled) else {
            return Ok(None);
        };
        if t.last_used_at.is_none_or(|at| now - at >= TOUCH_EVERY_MS) {
            self.db().api_tokens().touch(t.token_id, now).await?;
        }
        let user = AuthUser {
            id: t.user_id,
            email: t.email,
            role: t.role,
            credential: Credential::Token(t.token_id),
        };
        self.inner.verified.remember(ticket, hash, &user, None);
        Ok(Some(user))
    }

    pub async fn create_token(&self, user: &AuthUser, name: &str) -> Result<CreatedToken> {
        let name = name.trim().to_string();
        if name.is_empty()
            || name.chars().count() > MAX_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(AppError::field(
                ErrorCode::InvalidRequest,
                "name",
                format!("A name of 1 to {MAX_NAME_CHARS} printable characters is required"),
            ));
        }
        let token = format!("{}{}", secret::TOKEN_PREFIX, secret::random_256());
        let hash = secret::digest(&token);
        let id = TokenId::new(self.db());
        let now = now_ms();
        let created = self
            .db()
            .api_tokens()
            .create(id, user.id, name.clone(), hash, now, MAX_TOKENS_PER_USER)
            .await?;
        if !created {
            return Err(AppError::Conflict(format!(
                "At most {MAX_TOKENS_PER_USER} API tokens: revoke some first"
            )));
        }
        Ok(CreatedToken {
            id,
            name,
            token,
            created_at: db::to_rfc3339(now),
        })
    }

    pub async fn list_tokens(
        &self,
        user: &AuthUser,
        page: &PageRequest,
    ) -> Result<Page<TokenInfo>> {
        let before = page.ulid_cursor()?;
        let rows = self
            .db()
            .api_tokens()
            .page(user.id, before, page.fetch())
            .await?;
        Ok(
            Page::from_rows(rows, page, |t| t.id.to_string()).map(|t| TokenInfo {
                id: t.id,
                name: t.name,
                created_at: db::to_rfc3339(t.created_at),
                last_used_at: t.last_used_at.map(db::to_rfc3339),
            }),
        )
    }

    /// Revokes one of the caller's tokens; another user's token is "not found".
    pub async fn revoke_token(&self, user: &AuthUser, token_id: TokenId) -> Result<()> {
        let found = self.db().api_tokens().revoke(user.id, token_id).await?;
        if found {
            self.forget_verified();
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }
}
