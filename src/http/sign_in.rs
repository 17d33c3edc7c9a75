//! Sign-in throttling per account, on top of the per-IP budget for credential checks.
//!
//! Two limits, designed so that guessing cannot lock the owner out:
//!
//! - **Per account and address**: after `limits.sign_in_failures_before_delay` failures, the
//!   address must wait before its next try at that account: 1 s, then twice as long after each
//!   further failure, up to `limits.sign_in_max_delay_s`. A successful sign-in from the address
//!   starts it afresh. Other addresses are not slowed by it.
//! - **Per account, for strangers**: attempts from every address the account has not signed in
//!   from in the last 90 days share `limits.sign_in_attempts_per_account_per_hour`. Once a
//!   botnet has spent it, further strangers wait, but the owner's known addresses are let
//!   through (still under their own per-address limit).
//!
//! An attempt counts as a failure from the moment it starts until it succeeds, so parallel
//! guesses gain nothing. Accounts are keyed by the normalised email whether or not an account
//! has it, so answers tell nothing about which accounts exist. Addresses are keyed as the
//! per-IP limit keys them (IPv4 address, IPv6 /64). State is in memory, in caches of bounded
//! size that forget idle entries.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::HttpState;
use super::limits::{LimitClock, rate_key};
use crate::auth::{ClientInfo, Email, IssuedSession, Me};
use crate::config::LimitsConfig;
use crate::error::AppError;
use crate::error::ErrorCode;

/// Entries kept per cache: about 100 bytes each, so each cache stays under a few MB however
/// many accounts and addresses are tried; the least used go first.
const MAX_ENTRIES: u64 = 50_000;
/// An address's failures at an account are forgotten after a day without attempts.
const FORGET_FAILURES_AFTER: Duration = Duration::from_secs(86_400);
/// An account's budget has refilled after an hour without attempts: forgetting it loses nothing.
const FORGET_BUDGET_AFTER: Duration = Duration::from_secs(3_600);
/// The first wait, doubled after each further failure.
const FIRST_DELAY: Duration = Duration::from_secs(1);

type Budget = RateLimiter<NotKeyed, InMemoryState, LimitClock, NoOpMiddleware<Nanos>>;

/// One address's record at one account.
#[derive(Debug, Default)]
struct Failures {
    count: u32,
    /// No attempt before this instant of the limit clock.
    wait_until: Duration,
}

pub struct SignInThrottle {
    clock: LimitClock,
    free_failures: u32,
    max_delay: Duration,
    quota: Quota,
    failures: moka::sync::Cache<(String, IpAddr), Arc<Mutex<Failures>>>,
    budgets: moka::sync::Cache<String, Arc<Budget>>,
}

impl SignInThrottle {
    pub(super) fn new(config: &LimitsConfig, clock: &LimitClock) -> Self {
        let per_hour = NonZeroU32::new(config.sign_in_attempts_per_account_per_hour)
            .unwrap_or(NonZeroU32::MIN);
        Self {
            clock: clock.clone(),
            free_failures: config.sign_in_failures_before_delay,
            max_delay: Duration::from_secs(config.sign_in_max_delay_s.max(1)),
            quota: Quota::per_hour(per_hour),
            failures: moka::sync::Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_idle(FORGET_FAILURES_AFTER)
                .build(),
            budgets: moka::sync::Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_idle(FORGET_BUDGET_AFTER)
                .build(),
        }
    }

    /// Starts an attempt at `account` (a normalised email) from `ip`; `known` says whether the
    /// account signed in from this address lately. Refused with 429 `rate_limited` and
    /// `Retry-After` while the address must wait, or while a stranger finds the account's
    /// budget spent. Otherwise the attempt counts as a failure until [`Self::succeeded`].
    pub fn begin(&self, account: &str, ip: IpAddr, known: bool) -> Result<(), AppError> {
        let entry = self
            .failures
            .get_with((account.to_string(), rate_key(ip)), Default::default);
        let mut failures = entry.lock().unwrap_or_else(|e| e.into_inner());
        let now = Duration::from(self.clock.now());
        if failures.wait_until > now {
            return Err(too_many(
                failures.wait_until - now,
                "Too many failed sign-ins to this account from your address",
            ));
        }
        if !known {
            let budget = self.budgets.get_with(account.to_string(), || {
                Arc::new(RateLimiter::direct_with_clock(
                    self.quota,
                    self.clock.clone(),
                ))
            });
            budget.check().map_err(|not_until| {
                too_many(
                    not_until.wait_time_from(self.clock.now()),
                    "Too many sign-in attempts to this account from new addresses; \
                     addresses it has been signed in from are not held back",
                )
            })?;
        }
        failures.count = failures.count.saturating_add(1);
        if let Some(extra) = failures.count.checked_sub(self.free_failures.max(1)) {
            let delay = FIRST_DELAY
                .saturating_mul(1u32.checked_shl(extra).unwrap_or(u32::MAX))
                .min(self.max_delay);
            failures.wait_until = now + delay;
        }
        Ok(())
    }

    /// The attempt that [`Self::begin`] started succeeded: the address starts afresh.
    pub fn succeeded(&self, account: &str, ip: IpAddr) {
        self.failures
            .invalidate(&(account.to_string(), rate_key(ip)));
    }
}

/// Signs in with email and password under both limits. Text that is not an email address
/// can match no account, so it meets only the per-IP budget.
pub async fn login(
    http: &HttpState,
    email: &str,
    password: String,
    ip: IpAddr,
    client: ClientInfo,
) -> Result<(Me, IssuedSession), AppError> {
    let state = &http.app;
    let Ok(account) = Email::parse(email) else {
        return state.auth.login(email, password, client).await;
    };
    let known = state
        .auth
        .signed_in_from(&account, rate_key(ip).to_string())
        .await?;
    let throttle = &http.limits.sign_in;
    throttle.begin(account.as_str(), ip, known)?;
    let signed_in = state.auth.login(account.as_str(), password, client).await?;
    throttle.succeeded(account.as_str(), ip);
    Ok(signed_in)
}

fn too_many(wait: Duration, message: &str) -> AppError {
    AppError::TooMany {
        code: ErrorCode::RateLimited,
        message: message.into(),
        retry_after_s: (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::super::limits::Limits;
    use super::*;

    fn limits(per_hour: u32) -> Limits {
        Limits::new(&LimitsConfig {
            sign_in_failures_before_delay: 2,
            sign_in_max_delay_s: 10,
            sign_in_attempts_per_account_per_hour: per_hour,
            ..LimitsConfig::default()
        })
    }

    fn retry_after(r: Result<(), AppError>) -> Option<u64> {
        match r {
            Err(AppError::TooMany { retry_after_s, .. }) => Some(retry_after_s),
            _ => None,
        }
    }

    const ADA: &str = "ada@example.com";

    #[test]
    fn waits_grow_after_the_free_failures_up_to_the_cap() {
        let l = limits(1_000);
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let (mut attempts, mut waits) = (0, Vec::new());
        // Every attempt that gets through fails; a refused one waits as long as it was told.
        for _ in 0..14 {
            match retry_after(l.sign_in.begin(ADA, ip, false)) {
                None => attempts += 1,
                Some(wait) => {
                    waits.push(wait);
                    l.advance_clock(Duration::from_secs(wait));
                }
            }
        }
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(attempts, 8);
    }

    #[test]
    fn a_success_starts_the_address_afresh_and_other_addresses_are_not_slowed() {
        let l = limits(1_000);
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        for _ in 0..2 {
            l.sign_in.begin(ADA, ip, false).unwrap();
        }
        assert_eq!(retry_after(l.sign_in.begin(ADA, ip, false)), Some(1));
        let other: IpAddr = "198.51.100.8".parse().unwrap();
        assert!(
            l.sign_in.begin(ADA, other, false).is_ok(),
            "another address"
        );
        assert!(
            l.sign_in.begin("bob@example.com", ip, false).is_ok(),
            "another account"
        );
        l.sign_in.succeeded(ADA, ip);
        assert!(l.sign_in.begin(ADA, ip, false).is_ok());
    }

    #[test]
    fn strangers_share_an_account_budget_that_known_addresses_do_not_need() {
        let l = limits(3);
        for i in 0..3u8 {
            l.sign_in
                .begin(ADA, IpAddr::from([203, 0, 113, i]), false)
                .unwrap();
        }
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            retry_after(l.sign_in.begin(ADA, stranger, false)),
            Some(1200),
            "one attempt comes back every 20 minutes"
        );
        let owner: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(l.sign_in.begin(ADA, owner, true).is_ok(), "a known address");
        assert!(l.sign_in.begin("bob@example.com", stranger, false).is_ok());
        l.advance_clock(Duration::from_secs(1200));
        assert!(l.sign_in.begin(ADA, stranger, false).is_ok());
    }

    #[test]
    fn an_ipv6_guesser_gains_nothing_by_changing_addresses_within_a_64() {
        let l = limits(1_000);
        for i in 0..2u16 {
            l.sign_in
                .begin(ADA, IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, i]), false)
                .unwrap();
        }
        let same_64: IpAddr = "2001:db8:0:1::ff".parse().unwrap();
        assert!(l.sign_in.begin(ADA, same_64, false).is_err());
    }
}
