//! Accounts: registration, the signed-in user's profile and password, and administration.

use std::fmt;

use anyhow::Context;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::invites::invalid_invite;
use super::sessions::{ClientInfo, IssuedSession, issue_session};
use super::{Auth, AuthUser, Credential, Email, MAX_NAME_CHARS, Quota, Role, password};
use crate::config::Registration;
use crate::db::{self, SessionId, UserId, invites, now_ms, sessions, users};
use crate::error::ErrorCode;
use crate::error::{AppError, OrNotFound, Result};
use crate::pagination::{Page, PageRequest};

/// The signed-in user as `GET /api/me` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Me {
    pub id: UserId,
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub created_at: String,
    pub quota: Quota,
}

/// A user as admins (and `aimake user list`) see it.
#[derive(Debug, Clone, Serialize)]
pub struct UserSummary {
    pub id: UserId,
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
            role: u.role,
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

impl Auth {
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
                code: ErrorCode::RegistrationClosed,
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
        let (user_id, session_id) = (UserId::new(self.db()), SessionId::new(self.db()));
        let (user, session) = self
            .db()
            .write(move |c| {
                let tx = c.transaction()?;
                if users::email_taken(&tx, email.as_str())? {
                    return Ok(Err(email_taken()));
                }
                let user = insert_user(&tx, user_id, &email, &hash, display_name, Role::User)?;
                if let Some(code) = &invite
                    && !invites::redeem(&tx, code, user.id, user.created_at)?
                {
                    return Ok(Err(invalid_invite()));
                }
                let session = issue_session(&tx, session_id, user.id, &client, max_ms)?;
                tx.commit()?;
                Ok(Ok((user, session)))
            })
            .await??;
        tracing::info!(user_id = %user.id, "account registered");
        Ok((self.me_from_row(user).await?, session))
    }

    pub async fn me(&self, user: &AuthUser) -> Result<Me> {
        let id = user.id;
        let row = self
            .db()
            .read(move |c| Ok(users::by_id(c, id)?))
            .await?
            .or_not_found()?;
        self.me_from_row(row).await
    }

    pub(super) async fn me_from_row(&self, row: users::UserRow) -> Result<Me> {
        let quota = self.quota_of(&row).await?;
        Ok(Me {
            role: row.role,
            created_at: db::to_rfc3339(row.created_at),
            id: row.id,
            email: row.email,
            display_name: row.display_name,
            quota,
        })
    }

    pub async fn update_profile(
        &self,
        user: &AuthUser,
        display_name: Option<String>,
    ) -> Result<Me> {
        let name = clean_display_name(display_name)
            .map_err(|m| AppError::field(ErrorCode::InvalidRequest, "display_name", m))?;
        let id = user.id;
        self.db()
            .write(move |c| Ok(users::set_display_name(c, id, name.as_deref(), now_ms())?))
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
            .map_err(|m| AppError::field(ErrorCode::InvalidRequest, "new_password", m))?;
        let id = user.id;
        let stored = {
            self.db()
                .read(move |c| Ok(users::by_id(c, id)?))
                .await?
                .or_not_found()?
                .password_hash
        };
        if !self.verify(current, Some(stored)).await? {
            return Err(AppError::field(
                ErrorCode::InvalidRequest,
                "current_password",
                "The current password is not correct",
            ));
        }
        let hash = self.hash(new).await?;
        let keep = match user.credential {
            Credential::Session(s) => Some(s),
            Credential::Token(_) => None,
        };
        self.db()
            .write(move |c| {
                let tx = c.transaction()?;
                let now = now_ms();
                users::set_password(&tx, id, &hash, now)?;
                sessions::revoke_all_for_user(&tx, id, keep, now)?;
                tx.commit()?;
                Ok(())
            })
            .await?;
        self.forget_verified();
        Ok(())
    }

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
        Ok(Page::from_rows(rows, page, |u| u.id.to_string()).map(UserSummary::from))
    }

    /// Applies an admin's change. Refuses to leave the server without an active admin.
    /// Disabling a user also ends their sessions; their tokens stop working while disabled.
    pub async fn update_user(&self, user_id: UserId, patch: UserPatch) -> Result<UserSummary> {
        if let Some(Some(q)) = patch.quota_chars_per_month
            && q < 0
        {
            return Err(AppError::field(
                ErrorCode::InvalidRequest,
                "quota_chars_per_month",
                "Must be 0 or more, or null for the default",
            ));
        }
        let id = user_id;
        let updated = self
            .db()
            .write(move |c| {
                let tx = c.transaction()?;
                let now = now_ms();
                if users::by_id(&tx, id)?.is_none() {
                    return Ok(Err(AppError::NotFound));
                }
                if let Some(role) = patch.role {
                    users::set_role(&tx, id, role, now)?;
                }
                if let Some(disabled) = patch.disabled {
                    users::set_disabled(&tx, id, disabled, now)?;
                    if disabled {
                        sessions::revoke_all_for_user(&tx, id, None, now)?;
                    }
                }
                if let Some(quota) = patch.quota_chars_per_month {
                    users::set_quota(&tx, id, quota, now)?;
                }
                if users::count_active_admins(&tx)? == 0 {
                    return Ok(Err(AppError::Conflict(
                        "At least one active admin must remain".into(),
                    )));
                }
                let row = users::by_id(&tx, id)?.context("user vanished")?;
                tx.commit()?;
                Ok(Ok(UserSummary::from(row)))
            })
            .await?;
        self.forget_verified();
        updated
    }

    /// Creates an account directly (no policy, no session): `aimake user add`.
    pub async fn add_user(&self, input: NewAccount, role: Role) -> Result<UserSummary> {
        let (email, display_name) = validate_new_account(&input)?;
        let hash = self.hash(input.password).await?;
        let user_id = UserId::new(self.db());
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
        password::validate(&new)
            .map_err(|m| AppError::field(ErrorCode::InvalidRequest, "password", m))?;
        let hash = self.hash(new).await?;
        let email = Email::parse(email)
            .map_err(|m| AppError::field(ErrorCode::InvalidRequest, "email", m))?;
        let reset = self
            .db()
            .write(move |c| {
                let tx = c.transaction()?;
                let Some(user) = users::by_email(&tx, email.as_str())? else {
                    return Ok(Err(AppError::NotFound));
                };
                let now = now_ms();
                users::set_password(&tx, user.id, &hash, now)?;
                sessions::revoke_all_for_user(&tx, user.id, None, now)?;
                let user = users::by_id(&tx, user.id)?.context("user vanished")?;
                tx.commit()?;
                Ok(Ok(UserSummary::from(user)))
            })
            .await?;
        self.forget_verified();
        reset
    }

    /// Disables or re-enables an account by email: `aimake user disable|enable`.
    pub async fn set_disabled_by_email(&self, email: &str, disabled: bool) -> Result<UserSummary> {
        let email = Email::parse(email)
            .map_err(|m| AppError::field(ErrorCode::InvalidRequest, "email", m))?;
        let id = self
            .db()
            .read(move |c| Ok(users::by_email(c, email.as_str())?))
            .await?
            .or_not_found()?
            .id;
        self.update_user(
            id,
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

pub(super) fn insert_user(
    conn: &Connection,
    id: UserId,
    email: &Email,
    hash: &str,
    display_name: Option<String>,
    role: Role,
) -> rusqlite::Result<users::UserRow> {
    let now = now_ms();
    let row = users::UserRow {
        id,
        email: email.as_str().to_string(),
        password_hash: hash.to_string(),
        display_name,
        role,
        disabled: false,
        quota_chars_per_month: None,
        created_at: now,
        updated_at: now,
    };
    users::insert(conn, &row)?;
    Ok(row)
}

/// Checks every field of a new account and reports all problems at once.
pub(super) fn validate_new_account(input: &NewAccount) -> Result<(Email, Option<String>)> {
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
            code: ErrorCode::InvalidRequest,
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

pub(super) fn email_taken() -> AppError {
    AppError::Conflict("An account with this email already exists".into())
}

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
}
