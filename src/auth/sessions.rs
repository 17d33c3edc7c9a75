//! Sign-in, sign-out and session cookies.

use std::fmt;

use rusqlite::Connection;

use super::{Auth, AuthUser, Credential, DAY_MS, Email, Me, TOUCH_EVERY_MS, secret};
use crate::db::{SessionId, UserId, now_ms, sessions, sign_in_addresses, users};
use crate::error::ErrorCode;
use crate::error::{AppError, Result};

/// Where a sign-in came from, kept with the session for the user's own review.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The client's address as sign-in throttling counts it (an IPv4 address or an IPv6 /64):
    /// remembered as one of the account's known addresses.
    pub address: Option<String>,
}

/// How long an address the account signed in from stays known to sign-in throttling.
const KNOWN_ADDRESS_MS: i64 = 90 * DAY_MS;

/// A freshly issued session. The cookie value exists only here and in the user's browser.
pub struct IssuedSession {
    pub token: String,
    pub max_age_s: i64,
}

impl fmt::Debug for IssuedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedSession")
            .field("token", &"[redacted]")
            .field("max_age_s", &self.max_age_s)
            .finish()
    }
}

impl Auth {
    /// Signs in with email and password. Unknown email and wrong password get the same error
    /// after the same amount of work.
    pub async fn login(
        &self,
        email: &str,
        password: String,
        client: ClientInfo,
    ) -> Result<(Me, IssuedSession)> {
        let row = match Email::parse(email) {
            Ok(email) => {
                self.db()
                    .read(move |c| Ok(users::by_email(c, email.as_str())?))
                    .await?
            }
            Err(_) => None,
        };
        let stored = row.as_ref().map(|r| r.password_hash.clone());
        let matches = self.verify(password, stored).await?;
        let Some(user) = row.filter(|_| matches) else {
            return Err(AppError::InvalidCredentials);
        };
        if user.disabled {
            return Err(account_disabled());
        }
        let (idle_ms, max_ms) = (self.inner.idle_ms, self.inner.max_ms);
        let user_id = user.id;
        let session_id = SessionId::new(self.db());
        let session = self
            .db()
            .write(move |c| {
                let now = now_ms();
                sessions::delete_dead_for_user(c, user_id, now, now - idle_ms)?;
                Ok(issue_session(c, session_id, user_id, &client, max_ms)?)
            })
            .await?;
        Ok((self.me_from_row(user).await?, session))
    }

    /// Whether the account with this email signed in from `address` (as [`ClientInfo::address`]
    /// counts it) in the last 90 days; false when no account has the email.
    pub async fn signed_in_from(&self, email: &Email, address: String) -> Result<bool> {
        let email = email.clone();
        let since = now_ms() - KNOWN_ADDRESS_MS;
        Ok(self
            .db()
            .lookup(move |c| {
                Ok(sign_in_addresses::is_known(
                    c,
                    email.as_str(),
                    &address,
                    since,
                )?)
            })
            .await?)
    }

    /// Revokes the session the request came with (a no-op for API tokens).
    pub async fn logout(&self, user: &AuthUser) -> Result<()> {
        if let Credential::Session(id) = user.credential {
            self.db()
                .write(move |c| Ok(sessions::revoke(c, id, now_ms())?))
                .await?;
            self.forget_verified();
        }
        Ok(())
    }

    /// The user behind a session cookie value, if the session is live and the user enabled.
    pub async fn authenticate_session(&self, cookie: &str) -> Result<Option<AuthUser>> {
        if !secret::looks_like_256(cookie) {
            return Ok(None);
        }
        let hash = secret::digest(cookie);
        let now = now_ms();
        if let Some(user) = self.inner.verified.get(&hash, now) {
            return Ok(Some(user));
        }
        let ticket = self.inner.verified.ticket();
        let idle_since = now - self.inner.idle_ms;
        let found = self
            .db()
            .lookup(move |c| Ok(sessions::find_live(c, &hash, now, idle_since)?))
            .await?;
        let Some(s) = found.filter(|s| !s.disabled) else {
            return Ok(None);
        };
        if now - s.last_seen_at >= TOUCH_EVERY_MS {
            let id = s.session_id;
            self.db()
                .write(move |c| Ok(sessions::touch(c, id, now)?))
                .await?;
        }
        let user = AuthUser {
            id: s.user_id,
            email: s.email,
            role: s.role,
            credential: Credential::Session(s.session_id),
        };
        self.inner
            .verified
            .remember(ticket, hash, &user, Some(s.expires_at));
        Ok(Some(user))
    }
}

pub(super) fn issue_session(
    conn: &Connection,
    id: SessionId,
    user_id: UserId,
    client: &ClientInfo,
    max_ms: i64,
) -> rusqlite::Result<IssuedSession> {
    let token = secret::random_256();
    let now = now_ms();
    let user_agent: Option<String> = client
        .user_agent
        .as_deref()
        .map(|ua| ua.chars().take(256).collect());
    sessions::insert(
        conn,
        &sessions::NewSession {
            id,
            user_id,
            token_hash: &secret::digest(&token),
            now,
            expires_at: now + max_ms,
            ip: client.ip.as_deref(),
            user_agent: user_agent.as_deref(),
        },
    )?;
    if let Some(address) = client.address.as_deref() {
        sign_in_addresses::record(conn, user_id, address, now, now - KNOWN_ADDRESS_MS)?;
    }
    Ok(IssuedSession {
        token,
        max_age_s: max_ms / 1000,
    })
}

fn account_disabled() -> AppError {
    AppError::Forbidden {
        code: ErrorCode::AccountDisabled,
        message: "This account is disabled: ask an admin".into(),
    }
}
