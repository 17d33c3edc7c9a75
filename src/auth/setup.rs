//! First run: the one-time setup token and the first admin.

use subtle::ConstantTimeEq;

use super::sessions::{ClientInfo, IssuedSession};
use super::users::{Me, NewAccount, refused, validate_new_account};
use super::{Auth, Role, secret};
use crate::db::users::NewUserRefusal;
use crate::error::ErrorCode;
use crate::error::{AppError, Result};

impl Auth {
    /// Called at start: while no admin exists, makes the one-time setup token and returns it
    /// so it can be logged. `None` once an admin exists.
    pub async fn prepare_setup(&self) -> Result<Option<String>> {
        let admins = self.db().users().count_active_admins().await?;
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

    pub(super) fn setup_slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.inner
            .setup_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// True while no admin can sign in: the web app then offers the setup page.
    pub async fn setup_needed(&self) -> Result<bool> {
        let admins = self.db().users().count_active_admins().await?;
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
                code: ErrorCode::Forbidden,
                message: "This setup link is not valid: it works once, while no admin exists"
                    .into(),
            });
        }
        let (email, display_name) = validate_new_account(&input)?;
        let hash = self.hash(input.password).await?;
        let user = self.new_user(email, hash, display_name, Role::Admin);
        let (new_session, session) = self.new_session(client);
        let outcome = self
            .db()
            .users()
            .create_first_admin(user, new_session)
            .await?;
        match outcome {
            Ok(user) => {
                *self.setup_slot() = None;
                tracing::info!(user_id = %user.id, "first admin created; setup is closed");
                Ok((self.me_from_row(user).await?, session))
            }
            Err(refusal) => {
                if refusal == NewUserRefusal::AdminExists {
                    *self.setup_slot() = None;
                }
                Err(refused(refusal))
            }
        }
    }
}
