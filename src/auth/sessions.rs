//! Sign-in, sign-out and session cookies.

use std::fmt;

use super::{Auth, AuthUser, Credential, DAY_MS, Email, Me, TOUCH_EVERY_MS, secret};
use crate::db::sessions::SessionToOpen;
use crate::db::{SessionId, now_ms};
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
            Ok(email) => self.db().users().by_email(email.into_string()).await?,
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
        let (session, issued) = self.new_session(client);
        self.db()
            .sessions()
            .sign_in(user.id, session, self.inner.idle_ms)
            .await?;
        Ok((self.me_from_row(user).await?, issued))
    }

    /// Whether the account with this email signed in from `address` (as [`ClientInfo::address`]
    /// counts it) in the last 90 days; false when no account has the email.
    pub async fn signed_in_from(&self, email: &Email, address: String) -> Result<bool> {
        let since = now_ms() - KNOWN_ADDRESS_MS;
        Ok(self
            .db()
            .sign_in_addresses()
            .is_known(email.as_str().to_string(), address, since)
            .await?)
    }

    /// Revokes the session the request came with (a no-op for API tokens).
    pub async fn logout(&self, user: &AuthUser) -> Result<()> {
        if let Credential::Session(id) = user.credential {
            self.db().sessions().revoke(id).await?;
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
            .sessions()
            .find_live(hash, now, idle_since)
            .await?;
        let Some(s) = found.filter(|s| !s.disabled) else {
            return Ok(None);
        };
        if now - s.last_seen_at >= TOUCH_EVERY_MS {
            self.db().sessions().touch(s.session_id, now).await?;
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

    /// A new session for `client`, ready to store, and the cookie value only the client will
    /// hold.
    pub(super) fn new_session(&self, client: ClientInfo) -> (SessionToOpen, IssuedSession) {
        let token = secret::random_256();
        let max_ms = self.inner.max_ms;
        let session = SessionToOpen {
            id: SessionId::new(self.db()),
            token_hash: secret::digest(&token),
            max_ms,
            ip: client.ip,
            user_agent: client.user_agent.map(|ua| ua.chars().take(256).collect()),
            address: client.address,
            address_kept_ms: KNOWN_ADDRESS_MS,
        };
        let issued = IssuedSession {
            token,
            max_age_s: max_ms / 1000,
        };
        (session, issued)
    }
}

fn account_disabled() -> AppError {
    AppError::Forbidden {
        code: ErrorCode::AccountDisabled,
        message: "This account is disabled: ask an admin".into(),
    }
}
