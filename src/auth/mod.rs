//! Accounts and credentials: first-run setup, registration, login, sessions, API tokens,
//! invites and roles. Nothing here knows about HTTP: handlers, the CLI and tests share it.

mod email;
pub mod password;
pub(crate) mod secret;
mod verified;

pub use email::Email;

use std::fmt;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use ulid::Ulid;

use crate::config::{Config, Registration};
use crate::db::{self, Db, api_tokens, invites, now_ms, sessions, sign_in_addresses, users};
use crate::error::{AppError, OrNotFound, Result};
use crate::pagination::{Page, PageRequest};

/// The browser's session cookie (docs/api.md).
pub const SESSION_COOKIE: &str = "aimake_session";

/// `last_seen_at` / `last_used_at` are written at most this often per credential: a busy
/// client must not turn every read into a write.
const TOUCH_EVERY_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
/// Far more than a person or a fleet of scripts needs; stops a runaway loop filling the table.
const MAX_TOKENS_PER_USER: i64 = 100;
const MAX_NAME_CHARS: usize = 100;
const MAX_INVITE_LIFETIME_S: u64 = 365 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    fn from_db(s: &str) -> Self {
        if s == "admin" {
            Self::Admin
        } else {
            Self::User
        }
    }
}

/// Who is calling, as established from a session cookie or an API token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: Ulid,
    pub email: String,
    pub role: Role,
    pub credential: Credential,
}

/// What a request was authenticated with; the id is the session's or the token's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Session(Ulid),
    Token(Ulid),
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The owner check for a row fetched by id alone. Another user's row answers 404, exactly
    /// like a missing one, so ids never reveal what exists. Prefer putting the owner in the
    /// query itself (`WHERE id = ? AND user_id = ?`) and [`crate::error::OrNotFound`].
    pub fn require_owner(&self, owner_id: &str) -> Result<()> {
        if self.id.to_string() == owner_id {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }
}

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

/// The signed-in user as `GET /api/me` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Me {
    pub id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub created_at: String,
    pub quota: Quota,
}

/// Monthly speech allowance: `chars_per_month` is null when unlimited.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Quota {
    pub chars_per_month: Option<u64>,
    pub chars_used_this_month: u64,
}

impl Quota {
    /// Characters still available this month; `None` when unlimited.
    pub fn remaining(&self) -> Option<u64> {
        self.chars_per_month
            .map(|q| q.saturating_sub(self.chars_used_this_month))
    }
}

/// A user's own monthly limit, else the configured default (0: unlimited).
fn monthly_limit(row: &users::UserRow, default_quota: u64) -> Option<u64> {
    match row.quota_chars_per_month {
        Some(q) => Some(q.max(0) as u64),
        None => (default_quota > 0).then_some(default_quota),
    }
}

/// A user as admins (and `aimake user list`) see it.
#[derive(Debug, Clone, Serialize)]
pub struct UserSummary {
    pub id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub disabled: bool,
    /// Null: the configured default applies.
    pub quota_chars_per_month: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<users::UserRow> for UserSummary {
    fn from(u: users::UserRow) -> Self {
        Self {
            role: Role::from_db(&u.role),
            created_at: db::to_rfc3339(u.created_at),
            updated_at: db::to_rfc3339(u.updated_at),
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            disabled: u.disabled,
            quota_chars_per_month: u.quota_chars_per_month,
        }
    }
}

/// An API token as listed: never the secret.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// A token just created: the only time its secret is shown.
#[derive(Clone, Serialize)]
pub struct CreatedToken {
    pub id: String,
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

#[derive(Debug, Clone, Serialize)]
pub struct InviteInfo {
    pub code: String,
    /// `active`, `used` or `expired`.
    pub status: &'static str,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub used_at: Option<String>,
    pub used_by: Option<String>,
}

impl InviteInfo {
    fn new(row: invites::InviteRow, now: i64) -> Self {
        let status = if row.used_at.is_some() {
            "used"
        } else if row.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        };
        Self {
            code: row.code,
            status,
            created_at: db::to_rfc3339(row.created_at),
            expires_at: row.expires_at.map(db::to_rfc3339),
            used_at: row.used_at.map(db::to_rfc3339),
            used_by: row.used_by,
        }
    }
}

/// What a person submits to create an account.
#[derive(Clone, Deserialize)]
pub struct NewAccount {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

impl fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAccount")
            .field("email", &self.email)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// An admin's change to a user; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    /// `null` resets to the configured default.
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub quota_chars_per_month: Option<Option<i64>>,
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

    // ---- first run ----

    /// Called at start: while no admin exists, makes the one-time setup token and returns it
    /// so it can be logged. `None` once an admin exists.
    pub async fn prepare_setup(&self) -> Result<Option<String>> {
        let admins = self
            .db()
            .read(|c| Ok(users::count_active_admins(c)?))
            .await?;
        let mut slot = self.setup_slot();
        if admins > 0 {
            *slot = None;
            return Ok(None);
        }
        let token = slot.get_or_insert_with(secret::random_256).clone();
        Ok(Some(token))
    }

    /// The current setup token, if one is still valid.
    pub fn setup_token(&self) -> Option<String> {
        self.setup_slot().clone()
    }

    fn setup_slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.inner
            .setup_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// True while no admin can sign in: the web app then offers the setup page.
    pub async fn setup_needed(&self) -> Result<bool> {
        let admins = self
            .db()
            .read(|c| Ok(users::count_active_admins(c)?))
            .await?;
        Ok(admins == 0)
    }

    /// Creates the first admin with the setup token and signs them in. The token dies on use.
    pub async fn setup(
        &self,
        token: &str,
        input: NewAccount,
        client: ClientInfo,
    ) -> Result<(Me, IssuedSession)> {
        let valid = self
            .setup_token()
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(token.as_bytes())));
        if !valid {
            return Err(AppError::Forbidden {
                code: "forbidden",
                message: "This setup link is not valid: it works once, while no admin exists"
                    .into(),
            });
        }
        let (email, display_name) = validate_new_account(&input)?;
        let hash = self.hash(input.password).await?;
        let max_ms = self.inner.max_ms;
        let (user_id, session_id) = (self.db().new_id(), self.db().new_id());
        let outcome = self
            .db()
            .write(move |c| {
                let tx = c.transaction()?;
                if users::count_active_admins(&tx)? > 0 {
                    return Ok(Err(AppError::Forbidden {
                        code: "forbidden",
                        message: "An admin already exists".into(),
                    }));
                }
                if users::email_taken(&tx, email.as_str())? {
                    return Ok(Err(email_taken()));
                }
                let user = insert_user(&tx, user_id, &email, &hash, display_name, Role::Admin)?;
                let session = issue_session(&tx, session_id, &user.id, &client, max_ms)?;
                tx.commit()?;
                Ok(Ok((user, session)))
            })
            .await?;
        match outcome {
            Ok((user, session)) => {
                *self.setup_slot() = None;
                tracing::info!(user_id = %user.id, "first admin created; setup is closed");
                Ok((self.me_from_row(user).await?, session))
            }
            Err(e) => {
                if matches!(e, AppError::Forbidden { .. }) {
                    *self.setup_slot() = None;
                }
                Err(e)
            }
        }
    }

    // ---- registration and sign-in ----

    /// Creates an account under the configured policy and signs it in.
    pub async fn register(
        &self,
        input: NewAccount,
        invite_code: Option<String>,
        client: ClientInfo,
    ) -> Result<(Me, IssuedSession)> {
        let policy = self.inner.registration;
        if policy == Registration::Closed {
            return Err(AppError::Forbidden {
                code: "registration_closed",
                message: "Registration is closed: ask an admin for an account".into(),
            });
        }
        let invite = match policy {
            Registration::Invite => Some(
                invite_code
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .ok_or_else(invalid_invite)?,
            ),
            _ => None,
        };
        let (email, display_name) = validate_new_account(&input)?;
        let hash = self.hash(input.password).await?;
        let max_ms = self.inner.max_ms;
        let (user_id, session_id) = (self.db().new_id(), self.db().new_id());
        let (user, session) = self
            .db()
            .write(move |c| {
                let tx = c.transaction()?;
                if users::email_taken(&tx, email.as_str())? {
                    return Ok(Err(email_taken()));
                }
                let user = insert_user(&tx, user_id, &email, &hash, display_name, Role::User)?;
                if let Some(code) = &invite
                    && !invites::redeem(&tx, code, &user.id, user.created_at)?
                {
                    return Ok(Err(invalid_invite()));
                }
                let session = issue_session(&tx, session_id, &user.id, &client, max_ms)?;
                tx.commit()?;
                Ok(Ok((user, session)))
            })
            .await??;
        tracing::info!(user_id = %user.id, "account registered");
        Ok((self.me_from_row(user).await?, session))
    }

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
        let user_id = user.id.clone();
        let session_id = self.db().new_id();
        let session = self
            .db()
            .write(move |c| {
                let now = now_ms();
                sessions::delete_dead_for_user(c, &user_id, now, now - idle_ms)?;
                Ok(issue_session(c, session_id, &user_id, &client, max_ms)?)
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
                .write(move |c| Ok(sessions::revoke(c, &id.to_string(), now_ms())?))
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
            let id = s.session_id.to_string();
            self.db()
                .write(move |c| Ok(sessions::touch(c, &id, now)?))
                .await?;
        }
        let user = AuthUser {
            id: s.user_id,
            email: s.email,
            role: Role::from_db(&s.role),
            credential: Credential::Session(s.session_id),
        };
        self.inner
            .verified
            .remember(ticket, hash, &user, Some(s.expires_at));
        Ok(Some(user))
    }

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
        let found = self
            .db()
            .lookup(move |c| Ok(api_tokens::find_live(c, &hash)?))
            .await?;
        let Some(t) = found.filter(|t| !t.disabled) else {
            return Ok(None);
        };
        if t.last_used_at.is_none_or(|at| now - at >= TOUCH_EVERY_MS) {
            let id = t.token_id.to_string();
            self.db()
                .write(move |c| Ok(api_tokens::touch(c, &id, now)?))
                .await?;
        }
        let user = AuthUser {
            id: t.user_id,
            email: t.email,
            role: Role::from_db(&t.role),
            credential: Credential::Token(t.token_id),
        };
        self.inner.verified.remember(ticket, hash, &user, None);
        Ok(Some(user))
    }

    // ---- the signed-in user ----

    pub async fn me(&self, user: &AuthUser) -> Result<Me> {
        let id = user.id.to_string();
        let row = self
            .db()
            .read(move |c| Ok(users::by_id(c, &id)?))
            .await?
            .or_not_found()?;
        self.me_from_row(row).await
    }

    async fn me_from_row(&self, row: users::UserRow) -> Result<Me> {
        let quota = self.quota_of(&row).await?;
        Ok(Me {
            role: Role::from_db(&row.role),
            created_at: db::to_rfc3339(row.created_at),
            id: row.id,
            email: row.email,
            display_name: row.display_name,
            quota,
        })
    }

    /// Characters the user may still synthesize this month, `None` when unlimited: what
    /// synthesis checks first. One trip to a reader, and this month's usage is summed only
    /// when a limit applies.
    pub async fn remaining_quota(&self, user_id: Ulid) -> Result<Option<u64>> {
        let default_quota = self.inner.default_quota;
        self.db()
            .read(move |c| {
                let Some(row) = users::by_id(c, &user_id.to_string())? else {
                    return Ok(None);
                };
                let Some(limit) = monthly_limit(&row, default_quota) else {
                    return Ok(Some(None));
                };
                let used = crate::db::usage::tts_chars_this_month(c, user_id, now_ms())?;
                Ok(Some(Some(limit.saturating_sub(used.max(0) as u64))))
            })
            .await?
            .or_not_found()
    }

    async fn quota_of(&self, row: &users::UserRow) -> Result<Quota> {
        let id = row.id.clone();
        let user: Ulid = id
            .parse()
            .map_err(|_| anyhow::anyhow!("user id {id} is not a ULID"))?;
        let used = self
            .db()
            .read(move |c| Ok(crate::db::usage::tts_chars_this_month(c, user, now_ms())?))
            .await?;
        let chars_per_month = monthly_limit(row, self.inner.default_quota);
        Ok(Quota {
            chars_per_month,
            chars_used_this_month: used.max(0) as u64,
        })
    }

    pub async fn update_profile(
        &self,
        user: &AuthUser,
        display_name: Option<String>,
    ) -> Result<Me> {
        let name = clean_display_name(display_name)
            .map_err(|m| AppError::field("invalid_request", "display_name", m))?;
        let id = user.id.to_string();
        self.db()
            .write(move |c| Ok(users::set_display_name(c, &id, name.as_deref(), now_ms())?))
            .await?;
        self.me(user).await
    }

    /// Changes the password after checking the current one, and signs out every other session.
    pub async fn change_password(
        &self,
        user: &AuthUser,
        current: String,
        new: String,
    ) -> Result<()> {
        password::validate(&new)
            .map_err(|m| AppError::field("invalid_request", "new_password", m))?;
        let id = user.id.to_string();
        let stored = {
            let id = id.clone();
            self.db()
                .read(move |c| Ok(users::by_id(c, &id)?))
                .await?
                .or_not_found()?
                .password_hash
        };
        if !self.verify(current, Some(stored)).await? {
            return Err(AppError::field(
                "invalid_request",
                "current_password",
                "The current password is not correct",
            ));
        }
        let hash = self.hash(new).await?;
        let keep = match user.credential {
            Credential::Session(s) => Some(s.to_string()),
            Credential::Token(_) => None,
        };
        self.db()
            .write(move |c| {
                let tx = c.transaction()?;
                let now = now_ms();
                users::set_password(&tx, &id, &hash, now)?;
                sessions::revoke_all_for_user(&tx, &id, keep.as_deref(), now)?;
                tx.commit()?;
                Ok(())
            })
            .await?;
        self.forget_verified();
        Ok(())
    }

    // ---- API tokens ----

    pub async fn create_token(&self, user: &AuthUser, name: &str) -> Result<CreatedToken> {
        let name = name.trim().to_string();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(AppError::field(
                "invalid_request",
                "name",
                format!("A name of 1 to {MAX_NAME_CHARS} characters is required"),
            ));
        }
        let token = format!("{}{}", secret::TOKEN_PREFIX, secret::random_256());
        let hash = secret::digest(&token);
        let id = self.db().new_id().to_string();
        let user_id = user.id.to_string();
        let now = now_ms();
        let (id2, name2) = (id.clone(), name.clone());
        self.db()
            .write(move |c| {
                if api_tokens::count_live_for_user(c, &user_id)? >= MAX_TOKENS_PER_USER {
                    return Ok(Err(AppError::Conflict(format!(
                        "At most {MAX_TOKENS_PER_USER} API tokens: revoke some first"
                    ))));
                }
                api_tokens::insert(c, &id2, &user_id, &name2, &hash, now)?;
                Ok(Ok(()))
            })
            .await??;
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
        let (user_id, fetch) = (user.id.to_string(), page.fetch());
        let rows = self
            .db()
            .read(move |c| {
                Ok(api_tokens::list_for_user(
                    c,
                    &user_id,
                    before.as_deref(),
                    fetch,
                )?)
            })
            .await?;
        Ok(
            Page::from_rows(rows, page, |t| t.id.clone()).map(|t| TokenInfo {
                id: t.id,
                name: t.name,
                created_at: db::to_rfc3339(t.created_at),
                last_used_at: t.last_used_at.map(db::to_rfc3339),
            }),
        )
    }

    /// Revokes one of the caller's tokens; another user's token is "not found".
    pub async fn revoke_token(&self, user: &AuthUser, token_id: &str) -> Result<()> {
        let (user_id, token_id) = (user.id.to_string(), token_id.to_string());
        let found = self
            .db()
            .write(move |c| Ok(api_tokens::revoke(c, &user_id, &token_id, now_ms())?))
            .await?;
        if found {
            self.forget_verified();
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }

    // ---- administration ----

    pub async fn list_users(
        &self,
        page: &PageRequest,
        email_contains: Option<String>,
    ) -> Result<Page<UserSummary>> {
        let before = page.ulid_cursor()?;
        let fetch = page.fetch();
        let q = email_contains.filter(|q| !q.trim().is_empty());
        let rows = self
            .db()
            .read(move |c| Ok(users::list(c, before.as_deref(), fetch, q.as_deref())?))
            .await?;
        Ok(Page::from_rows(rows, page, |u| u.id.clone()).map(UserSummary::from))
    }

    /// Applies an admin's change. Refuses to leave the server without an active admin.
    /// Disabling a user also ends their sessions; their tokens stop working while disabled.
    pub async fn update_user(&self, user_id: &str, patch: UserPatch) -> Result<UserSummary> {
        if let Some(Some(q)) = patch.quota_chars_per_month
            && q < 0
        {
            return Err(AppError::field(
                "invalid_request",
                "quota_chars_per_month",
                "Must be 0 or more, or null for the default",
            ));
        }
        let id = user_id.to_string();
        let updated = self
            .db()
            .write(move |c| {
                let tx = c.transaction()?;
                let now = now_ms();
                if users::by_id(&tx, &id)?.is_none() {
                    return Ok(Err(AppError::NotFound));
                }
                if let Some(role) = patch.role {
                    users::set_role(&tx, &id, role.as_str(), now)?;
                }
                if let Some(disabled) = patch.disabled {
                    users::set_disabled(&tx, &id, disabled, now)?;
                    if disabled {
                        sessions::revoke_all_for_user(&tx, &id, None, now)?;
                    }
                }
                if let Some(quota) = patch.quota_chars_per_month {
                    users::set_quota(&tx, &id, quota, now)?;
                }
                if users::count_active_admins(&tx)? == 0 {
                    return Ok(Err(AppError::Conflict(
                        "At least one active admin must remain".into(),
                    )));
                }
                let row = users::by_id(&tx, &id)?.context("user vanished")?;
                tx.commit()?;
                Ok(Ok(UserSummary::from(row)))
            })
            .await?;
        self.forget_verified();
        updated
    }

    pub async fn create_invite(
        &self,
        admin: &AuthUser,
        expires_in_s: Option<u64>,
    ) -> Result<InviteInfo> {
        if let Some(s) = expires_in_s
            && !(1..=MAX_INVITE_LIFETIME_S).contains(&s)
        {
            return Err(AppError::field(
                "invalid_request",
                "expires_in_s",
                format!("Must be from 1 to {MAX_INVITE_LIFETIME_S} seconds"),
            ));
        }
        let now = now_ms();
        let row = invites::InviteRow {
            code: secret::random_128(),
            created_by: Some(admin.id.to_string()),
            created_at: now,
            expires_at: expires_in_s.map(|s| now + (s as i64) * 1000),
            used_by: None,
            used_at: None,
        };
        let stored = row.clone();
        self.db()
            .write(move |c| Ok(invites::insert(c, &stored)?))
            .await?;
        Ok(InviteInfo::new(row, now))
    }

    pub async fn list_invites(&self, page: &PageRequest) -> Result<Page<InviteInfo>> {
        let after = match &page.cursor {
            None => None,
            Some(c) => Some(
                parse_invite_cursor(c).ok_or_else(|| AppError::invalid("cursor is not valid"))?,
            ),
        };
        let fetch = page.fetch();
        let rows = self
            .db()
            .read(move |c| {
                Ok(invites::list(
                    c,
                    after.as_ref().map(|(at, code)| (*at, code.as_str())),
                    fetch,
                )?)
            })
            .await?;
        let now = now_ms();
        Ok(
            Page::from_rows(rows, page, |i| format!("{}.{}", i.created_at, i.code))
                .map(|i| InviteInfo::new(i, now)),
        )
    }

    pub async fn delete_invite(&self, code: &str) -> Result<()> {
        let code = code.to_string();
        let found = self
            .db()
            .write(move |c| Ok(invites::delete(c, &code)?))
            .await?;
        if found {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }

    // ---- the command line ----

    /// Creates an account directly (no policy, no session): `aimake user add`.
    pub async fn add_user(&self, input: NewAccount, role: Role) -> Result<UserSummary> {
        let (email, display_name) = validate_new_account(&input)?;
        let hash = self.hash(input.password).await?;
        let user_id = self.db().new_id();
        let user = self
            .db()
            .write(move |c| {
                let tx = c.transaction()?;
                if users::email_taken(&tx, email.as_str())? {
                    return Ok(Err(email_taken()));
                }
                let user = insert_user(&tx, user_id, &email, &hash, display_name, role)?;
                tx.commit()?;
                Ok(Ok(user))
            })
            .await??;
        if role == Role::Admin {
            *self.setup_slot() = None;
        }
        Ok(UserSummary::from(user))
    }

    /// Sets a password without knowing the old one and signs the user out everywhere.
    pub async fn reset_password(&self, email: &str, new: String) -> Result<UserSummary> {
        password::validate(&new).map_err(|m| AppError::field("invalid_request", "password", m))?;
        let hash = self.hash(new).await?;
        let email =
            Email::parse(email).map_err(|m| AppError::field("invalid_request", "email", m))?;
        let reset = self
            .db()
            .write(move |c| {
                let tx = c.transaction()?;
                let Some(user) = users::by_email(&tx, email.as_str())? else {
                    return Ok(Err(AppError::NotFound));
                };
                let now = now_ms();
                users::set_password(&tx, &user.id, &hash, now)?;
                sessions::revoke_all_for_user(&tx, &user.id, None, now)?;
                let user = users::by_id(&tx, &user.id)?.context("user vanished")?;
                tx.commit()?;
                Ok(Ok(UserSummary::from(user)))
            })
            .await?;
        self.forget_verified();
        reset
    }

    /// Disables or re-enables an account by email: `aimake user disable|enable`.
    pub async fn set_disabled_by_email(&self, email: &str, disabled: bool) -> Result<UserSummary> {
        let email =
            Email::parse(email).map_err(|m| AppError::field("invalid_request", "email", m))?;
        let id = self
            .db()
            .read(move |c| Ok(users::by_email(c, email.as_str())?))
            .await?
            .or_not_found()?
            .id;
        self.update_user(
            &id,
            UserPatch {
                disabled: Some(disabled),
                ..UserPatch::default()
            },
        )
        .await
    }

    /// Every account, oldest first.
    pub async fn all_users(&self) -> Result<Vec<UserSummary>> {
        let rows = self.db().read(|c| Ok(users::all(c)?)).await?;
        Ok(rows.into_iter().map(UserSummary::from).collect())
    }
}

fn insert_user(
    conn: &Connection,
    id: Ulid,
    email: &Email,
    hash: &str,
    display_name: Option<String>,
    role: Role,
) -> rusqlite::Result<users::UserRow> {
    let now = now_ms();
    let row = users::UserRow {
        id: id.to_string(),
        email: email.as_str().to_string(),
        password_hash: hash.to_string(),
        display_name,
        role: role.as_str().to_string(),
        disabled: false,
        quota_chars_per_month: None,
        created_at: now,
        updated_at: now,
    };
    users::insert(conn, &row)?;
    Ok(row)
}

fn issue_session(
    conn: &Connection,
    id: Ulid,
    user_id: &str,
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
            id: &id.to_string(),
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

/// Checks every field of a new account and reports all problems at once.
fn validate_new_account(input: &NewAccount) -> Result<(Email, Option<String>)> {
    let mut errors = Map::new();
    let email = Email::parse(&input.email)
        .map_err(|m| errors.insert("email".into(), json!(m)))
        .ok();
    if let Err(m) = password::validate(&input.password) {
        errors.insert("password".into(), json!(m));
    }
    let name = clean_display_name(input.display_name.clone())
        .map_err(|m| errors.insert("display_name".into(), json!(m)))
        .ok();
    match (email, name) {
        (Some(email), Some(name)) if errors.is_empty() => Ok((email, name)),
        _ => Err(AppError::BadRequest {
            code: "invalid_request",
            message: errors
                .values()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; "),
            details: Some(Value::Object(errors)),
        }),
    }
}

fn clean_display_name(name: Option<String>) -> std::result::Result<Option<String>, String> {
    let Some(name) = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(format!(
            "Display name must be at most {MAX_NAME_CHARS} printable characters"
        ));
    }
    Ok(Some(name))
}

fn email_taken() -> AppError {
    AppError::Conflict("An account with this email already exists".into())
}

fn invalid_invite() -> AppError {
    AppError::Forbidden {
        code: "invalid_invite",
        message: "A valid, unused invite code is required".into(),
    }
}

fn account_disabled() -> AppError {
    AppError::Forbidden {
        code: "account_disabled",
        message: "This account is disabled: ask an admin".into(),
    }
}

fn parse_invite_cursor(cursor: &str) -> Option<(i64, String)> {
    let (at, code) = cursor.split_once('.')?;
    Some((at.parse().ok()?, code.to_string()))
}

/// `YYYY-MM-01` of the current UTC month: usage rows carry their UTC day.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_account_reports_every_bad_field() {
        let err = validate_new_account(&NewAccount {
            email: "nope".into(),
            password: "short".into(),
            display_name: Some("x".repeat(101)),
        })
        .unwrap_err();
        let AppError::BadRequest { details, .. } = err else {
            panic!("expected a 400");
        };
        let details = details.unwrap();
        for field in ["email", "password", "display_name"] {
            assert!(details.get(field).is_some(), "{field} missing: {details}");
        }
    }

    #[test]
    fn a_user_patch_tells_null_from_absent() {
        let p: UserPatch = serde_json::from_str(r#"{"quota_chars_per_month": null}"#).unwrap();
        assert_eq!(p.quota_chars_per_month, Some(None));
        let p: UserPatch = serde_json::from_str(r#"{"disabled": true}"#).unwrap();
        assert_eq!(p.quota_chars_per_month, None);
        assert!(serde_json::from_str::<UserPatch>(r#"{"disable": true}"#).is_err());
    }

    #[test]
    fn invite_cursors_round_trip() {
        assert_eq!(
            parse_invite_cursor("1700000000000.abc.def"),
            Some((1_700_000_000_000, "abc.def".into()))
        );
        assert_eq!(parse_invite_cursor("nope"), None);
    }
}
