//! Accounts: registration, the signed-in user's profile and password, and administration.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::invites::invalid_invite;
use super::sessions::{ClientInfo, IssuedSession};
use super::{Auth, AuthUser, Credential, Email, MAX_NAME_CHARS, Quota, Role, password};
use crate::config::Registration;
use crate::db::users::{self, NewUser, NewUserRefusal, UpdateRefusal, UserChange};
use crate::db::{self, UserId};
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
        let user = self.new_user(email, hash, display_name, Role::User);
        let (new_session, session) = self.new_session(client);
        let user = self
            .db()
            .users()
            .register(user, invite, new_session)
            .await?
            .map_err(refused)?;
        tracing::info!(user_id = %user.id, "account registered");
        Ok((self.me_from_row(user).await?, session))
    }

    pub async fn me(&self, user: &AuthUser) -> Result<Me> {
        let row = self.db().users().get(user.id).await?.or_not_found()?;
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
        self.db().users().set_display_name(user.id, name).await?;
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
        let stored = self
            .db()
            .users()
            .get(id)
            .await?
            .or_not_found()?
            .password_hash;
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
        self.db().users().change_password(id, hash, keep).await?;
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
        let rows = self.db().users().page(before, fetch, q).await?;
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
        let change = UserChange {
            role: patch.role,
            disabled: patch.disabled,
            quota_chars_per_month: patch.quota_chars_per_month,
        };
        let updated = self.db().users().update(user_id, change).await?;
        self.forget_verified();
        match updated {
            Ok(row) => Ok(UserSummary::from(row)),
            Err(UpdateRefusal::NotFound) => Err(AppError::NotFound),
            Err(UpdateRefusal::NoActiveAdminLeft) => Err(AppError::Conflict(
                "At least one active admin must remain".into(),
            )),
        }
    }

    /// Creates an account directly (no policy, no session): `aimake user add`.
    pub async fn add_user(&self, input: NewAccount, role: Role) -> Result<UserSummary> {
        let (email, display_name) = validate_new_account(&input)?;
        let hash = self.hash(input.password).await?;
        let user = self.new_user(email, hash, display_name, role);
        let user = self.db().users().create(user).await?.map_err(refused)?;
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
            .users()
            .reset_password(email.into_string(), hash)
            .await?;
        self.forget_verified();
        Ok(UserSummary::from(reset.or_not_found()?))
    }

    /// Disables or re-enables an account by email: `aimake user disable|enable`.
    pub async fn set_disabled_by_email(&self, email: &str, disabled: bool) -> Result<UserSummary> {
        let email = Email::parse(email)
            .map_err(|m| AppError::field(ErrorCode::InvalidRequest, "email", m))?;
        let id = self
            .db()
            .users()
            .by_email(email.into_string())
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
        let rows = self.db().users().all().await?;
        Ok(rows.into_iter().map(UserSummary::from).collect())
    }

    /// An account to store, with a fresh id.
    pub(super) fn new_user(
        &self,
        email: Email,
        password_hash: String,
        display_name: Option<String>,
        role: Role,
    ) -> NewUser {
        NewUser {
            id: UserId::new(self.db()),
            email: email.into_string(),
            password_hash,
            display_name,
            role,
        }
    }
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

/// Why an account was not created, as the API answers it.
pub(super) fn refused(refusal: NewUserRefusal) -> AppError {
    match refusal {
        NewUserRefusal::EmailTaken => {
            AppError::Conflict("An account with this email already exists".into())
        }
        NewUserRefusal::InviteInvalid => invalid_invite(),
        NewUserRefusal::AdminExists => AppError::Forbidden {
            code: ErrorCode::Forbidden,
            message: "An admin already exists".into(),
        },
    }
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
