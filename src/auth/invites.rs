//! Invites: codes an admin hands out while registration is by invite.

use serde::Serialize;

use super::{Auth, AuthUser, secret};
use crate::db::{self, UserId, invites, now_ms};
use crate::error::ErrorCode;
use crate::error::{AppError, Result};
use crate::pagination::{Page, PageRequest};

const MAX_INVITE_LIFETIME_S: u64 = 365 * 86_400;

#[derive(Debug, Clone, Serialize)]
pub struct InviteInfo {
    pub code: String,
    /// `active`, `used` or `expired`.
    pub status: &'static str,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub used_at: Option<String>,
    pub used_by: Option<UserId>,
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

impl Auth {
    pub async fn create_invite(
        &self,
        admin: &AuthUser,
        expires_in_s: Option<u64>,
    ) -> Result<InviteInfo> {
        if let Some(s) = expires_in_s
            && !(1..=MAX_INVITE_LIFETIME_S).contains(&s)
        {
            return Err(AppError::field(
                ErrorCode::InvalidRequest,
                "expires_in_s",
                format!("Must be from 1 to {MAX_INVITE_LIFETIME_S} seconds"),
            ));
        }
        let now = now_ms();
        let row = invites::InviteRow {
            code: secret::random_128(),
            created_by: Some(admin.id),
            created_at: now,
            expires_at: expires_in_s.map(|s| now + (s as i64) * 1000),
            used_by: None,
            used_at: None,
        };
        let stored = row.clone();
        self.db().invites().insert(stored).await?;
        Ok(InviteInfo::new(row, now))
    }

    pub async fn list_invites(&self, page: &PageRequest) -> Result<Page<InviteInfo>> {
        let after = match &page.cursor {
            None => None,
            Some(c) => Some(
                parse_invite_cursor(c).ok_or_else(|| AppError::invalid("cursor is not valid"))?,
            ),
        };
        let rows = self.db().invites().page(after, page.fetch()).await?;
        let now = now_ms();
        Ok(
            Page::from_rows(rows, page, |i| format!("{}.{}", i.created_at, i.code))
                .map(|i| InviteInfo::new(i, now)),
        )
    }

    pub async fn delete_invite(&self, code: &str) -> Result<()> {
        let found = self.db().invites().delete(code.to_string()).await?;
        if found {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }
}

pub(super) fn invalid_invite() -> AppError {
    AppError::Forbidden {
        code: ErrorCode::InvalidInvite,
        message: "A valid, unused invite code is required".into(),
    }
}

fn parse_invite_cursor(cursor: &str) -> Option<(i64, String)> {
    let (at, code) = cursor.split_once('.')?;
    Some((at.parse().ok()?, code.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_cursors_round_trip() {
        assert_eq!(
            parse_invite_cursor("1700000000000.abc.def"),
            Some((1_700_000_000_000, "abc.def".into()))
        );
        assert_eq!(parse_invite_cursor("nope"), None);
    }
}
