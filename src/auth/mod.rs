//! Accounts and credentials: first-run setup, registration, login, sessions, API tokens,
//! invites and roles. Nothing here knows about HTTP: handlers, the CLI and tests share it.

mod email;
mod invites;
pub mod password;
mod quota;
pub(crate) mod secret;
mod sessions;
mod setup;
mod tokens;
mod users;
mod verified;

pub use email::Email;
pub use invites::InviteInfo;
pub use quota::Quota;
pub use sessions::{ClientInfo, IssuedSession};
pub use tokens::{CreatedToken, TokenInfo};
pub use users::{Me, NewAccount, UserPatch, UserSummary};

use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::sync::Semaphore;

use crate::config::{Config, Registration};
use crate::db::{Db, SessionId, TokenId, UserId};
use crate::error::{AppError, Result};

/// The browser's session cookie (docs/api.md).
pub const SESSION_COOKIE: &str = "aimake_session";

/// `last_seen_at` / `last_used_at` are written at most this often per credential: a busy
/// client must not turn every read into a write.
const TOUCH_EVERY_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
const MAX_NAME_CHARS: usize = 100;

pub use crate::db::Role;

/// Who is calling, as established from a session cookie or an API token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: UserId,
    pub email: String,
    pub role: Role,
    pub credential: Credential,
}

/// What a request was authenticated with; the id is the session's or the token's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Session(SessionId),
    Token(TokenId),
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The owner check for a row fetched by id alone. Another user's row answers 404, exactly
    /// like a missing one, so ids never reveal what exists. Prefer putting the owner in the
    /// query itself (`WHERE id = ? AND user_id = ?`) and [`crate::error::OrNotFound`].
    pub fn require_owner(&self, owner_id: UserId) -> Result<()> {
        if self.id == owner_id {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }
}

/// The accounts service; cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    registration: Registration,
    idle_ms: i64,
    max_ms: i64,
    default_quota: u64,
    /// The one-time first-run token; `None` once used or while an admin exists.
    setup_token: Mutex<Option<String>>,
    /// argon2 costs ~20 MiB and tens of ms of CPU per call: only this many run at once, so a
    /// burst of logins queues instead of starving everything else.
    hashing: Semaphore,
    verified: verified::Verified,
}

impl Auth {
    pub fn new(db: Db, config: &Config) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            inner: Arc::new(Inner {
                db,
                registration: config.auth.registration,
                idle_ms: i64::from(config.auth.session_idle_days) * DAY_MS,
                max_ms: i64::from(config.auth.session_max_days) * DAY_MS,
                default_quota: config.limits.quota_chars_per_month,
                setup_token: Mutex::new(None),
                hashing: Semaphore::new(cores),
                verified: verified::Verified::new(),
            }),
        }
    }

    fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Forgets every credential verified in the last seconds, so the next request of each
    /// client is checked against the database. `Auth` does this itself after its own changes;
    /// code that edits credential rows directly (tests that age a session) calls it.
    pub fn forget_verified(&self) {
        self.inner.verified.forget_all();
    }

    pub fn registration(&self) -> Registration {
        self.inner.registration
    }

    /// Seconds a session cookie lives at most.
    pub fn session_max_age_s(&self) -> i64 {
        self.inner.max_ms / 1000
    }

    async fn hash(&self, password: String) -> Result<String> {
        let _permit = self.inner.hashing.acquire().await.context("closing")?;
        let hash = tokio::task::spawn_blocking(move || password::hash(&password))
            .await
            .context("password hashing task failed")??;
        Ok(hash)
    }

    /// Verifies against `stored`, or spends the same time on the dummy hash when there is none.
    async fn verify(&self, password: String, stored: Option<String>) -> Result<bool> {
        let _permit = self.inner.hashing.acquire().await.context("closing")?;
        let ok = tokio::task::spawn_blocking(move || match stored {
            Some(hash) => password::verify(&password, &hash),
            None => {
                password::verify_dummy(&password);
                false
            }
        })
        .await
        .context("password check task failed")?;
        Ok(ok)
    }
}
