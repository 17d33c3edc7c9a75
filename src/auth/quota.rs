//! The monthly speech allowance.

use serde::Serialize;

use super::Auth;
use crate::db::{UserId, users};
use crate::error::ErrorCode;
use crate::error::{AppError, OrNotFound, Result};

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

/// Seconds until the quota month starts again (the first of next month, UTC): the
/// `Retry-After` of a spent quota.
pub fn seconds_until_next_month() -> u64 {
    let now = time::OffsetDateTime::now_utc();
    let (y, m) = if now.month() == time::Month::December {
        (now.year() + 1, time::Month::January)
    } else {
        (now.year(), now.month().next())
    };
    let next = time::Date::from_calendar_date(y, m, 1).map(|d| d.midnight().assume_utc());
    next.map_or(86_400, |n| (n - now).whole_seconds().max(1) as u64)
}

impl Auth {
    /// Refuses `chars` more characters (of a `what`: "text", "script") when the user's
    /// monthly allowance has fewer left: 429 `quota_exceeded` until the month turns.
    pub async fn ensure_quota(&self, user_id: UserId, chars: usize, what: &str) -> Result<()> {
        if let Some(remaining) = self.remaining_quota(user_id).await?
            && chars as u64 > remaining
        {
            return Err(AppError::TooMany {
                code: ErrorCode::QuotaExceeded,
                message: format!(
                    "This {what} has {chars} characters but only {remaining} remain in this month's quota"
                ),
                retry_after_s: seconds_until_next_month(),
            });
        }
        Ok(())
    }

    /// Refuses work that is not counted in characters (a `what`: "transcription") once the
    /// user's monthly allowance is spent: 429 `quota_exceeded` until the month turns.
    pub async fn ensure_quota_left(&self, user_id: UserId, what: &str) -> Result<()> {
        if self.remaining_quota(user_id).await? == Some(0) {
            return Err(AppError::TooMany {
                code: ErrorCode::QuotaExceeded,
                message: format!(
                    "This month's quota is used up; {what} is possible again next month"
                ),
                retry_after_s: seconds_until_next_month(),
            });
        }
        Ok(())
    }

    /// Characters the user may still synthesize this month, `None` when unlimited: what
    /// synthesis checks first. One trip to a reader, and this month's usage is summed only
    /// when a limit applies.
    pub async fn remaining_quota(&self, user_id: UserId) -> Result<Option<u64>> {
        let default_quota = self.inner.default_quota;
        let allowance = self
            .db()
            .users()
            .allowance(user_id, move |row| monthly_limit(row, default_quota))
            .await?
            .or_not_found()?;
        Ok(allowance.map(|a| a.limit.saturating_sub(a.used.max(0) as u64)))
    }

    pub(super) async fn quota_of(&self, row: &users::UserRow) -> Result<Quota> {
        let used = self.db().usage().tts_chars_this_month(row.id).await?;
        let chars_per_month = monthly_limit(row, self.inner.default_quota);
        Ok(Quota {
            chars_per_month,
            chars_used_this_month: used.max(0) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_month_is_in_the_future() {
        let s = seconds_until_next_month();
        assert!((1..=31 * 86_400).contains(&s));
    }
}
