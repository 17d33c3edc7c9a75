//! Credentials verified in the last few seconds, kept in memory so that a client making many
//! requests (the web app, a script paging through its library) costs one database read per
//! [`TTL`] instead of one per request.
//!
//! Every change this process makes that can end or alter a credential (sign-out, a revoked
//! token, a new password, an admin disabling a user or changing a role) forgets all entries at
//! once; such changes are rare, so nothing finer is worth its bookkeeping. A change made by
//! another process on the same database (`aimake user disable` from a shell) reaches a running
//! server when the entry expires, within [`TTL`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::AuthUser;

/// How stale a verified credential may be. Short enough that a change from another process
/// applies within moments, long enough that a busy client is looked up only now and then.
pub const TTL: Duration = Duration::from_secs(5);

/// Far above the number of clients active within [`TTL`] on one server; bounds the memory.
const CAPACITY: u64 = 10_000;

pub struct Verified {
    /// By the SHA-256 of the credential: the secret itself is never kept.
    entries: moka::sync::Cache<[u8; 32], Entry>,
    /// Bumped by every [`Verified::forget_all`]. A lookup that started before a change must
    /// not put back what the change removed.
    generation: AtomicU64,
}

#[derive(Clone)]
struct Entry {
    user: AuthUser,
    /// A session's absolute expiry (ms since the epoch), which may come before the TTL ends.
    expires_at: Option<i64>,
}

/// Taken before a database lookup and handed back to [`Verified::remember`] with its result.
pub struct Ticket(u64);

impl Verified {
    pub fn new() -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TTL)
                .build(),
            generation: AtomicU64::new(0),
        }
    }

    /// The user behind a credential verified within the TTL, if any.
    pub fn get(&self, digest: &[u8; 32], now_ms: i64) -> Option<AuthUser> {
        let entry = self.entries.get(digest)?;
        if entry.expires_at.is_some_and(|at| at <= now_ms) {
            self.entries.invalidate(digest);
            return None;
        }
        Some(entry.user)
    }

    pub fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::Acquire))
    }

    /// Keeps what a lookup found, unless credentials changed since its ticket was taken.
    pub fn remember(
        &self,
        ticket: Ticket,
        digest: [u8; 32],
        user: &AuthUser,
        expires_at: Option<i64>,
    ) {
        let entry = Entry {
            user: user.clone(),
            expires_at,
        };
        if self.generation.load(Ordering::Acquire) == ticket.0 {
            self.entries.insert(digest, entry);
            // A change that landed between the check and the insert removes it again.
            if self.generation.load(Ordering::Acquire) != ticket.0 {
                self.entries.invalidate(&digest);
            }
        }
    }

    /// After any change to credentials or accounts: the next request of every client is
    /// checked against the database again.
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Credential, Role};

    fn user() -> AuthUser {
        let id = ulid::Ulid::generate();
        AuthUser {
            id: id.into(),
            email: "a@example.com".into(),
            role: Role::User,
            credential: Credential::Token(id.into()),
        }
    }

    #[test]
    fn a_remembered_credential_is_found_until_everything_is_forgotten() {
        let verified = Verified::new();
        let ticket = verified.ticket();
        verified.remember(ticket, [1; 32], &user(), None);
        assert!(verified.get(&[1; 32], 0).is_some());
        assert!(verified.get(&[2; 32], 0).is_none());
        verified.forget_all();
        assert!(verified.get(&[1; 32], 0).is_none());
    }

    #[test]
    fn a_lookup_that_started_before_a_change_is_not_kept() {
        let verified = Verified::new();
        let ticket = verified.ticket();
        verified.forget_all();
        verified.remember(ticket, [1; 32], &user(), None);
        assert!(verified.get(&[1; 32], 0).is_none());
    }

    #[test]
    fn a_session_is_not_served_past_its_expiry() {
        let verified = Verified::new();
        verified.remember(verified.ticket(), [1; 32], &user(), Some(1_000));
        assert!(verified.get(&[1; 32], 999).is_some());
        assert!(verified.get(&[1; 32], 1_000).is_none());
    }
}
