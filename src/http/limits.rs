//! Rate limits and load shedding, in memory: governor limiters keyed by client IP or user
//! (stale keys evicted, so memory stays bounded), a cap on requests handled at once, and
//! each client's share of it.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::LimitsConfig;
use crate::db::UserId;
use crate::error::AppError;
use crate::error::ErrorCode;

/// How often keys whose window has passed are dropped from the limiters.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

type Keyed<K> = RateLimiter<K, DashMapStateStore<K>, LimitClock, NoOpMiddleware<Nanos>>;

/// The limiters' time source: monotonic, plus an offset that only [`Limits::advance_clock`]
/// moves, so a test can watch a window pass without waiting for it.
#[derive(Debug, Clone)]
pub struct LimitClock {
    start: Instant,
    skew_ns: Arc<AtomicU64>,
}

impl Clock for LimitClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let skew = Duration::from_nanos(self.skew_ns.load(Ordering::Relaxed));
        Nanos::from(self.start.elapsed() + skew)
    }
}

pub struct Limits {
    clock: LimitClock,
    /// Sign-in throttling per account (`http::sign_in`), on the same clock.
    pub sign_in: super::sign_in::SignInThrottle,
    per_ip: Keyed<IpAddr>,
    auth: Keyed<IpAddr>,
    per_user: Keyed<UserId>,
    client_errors: Keyed<IpAddr>,
    in_flight: Arc<Semaphore>,
    /// Requests in flight per client IP and per signed-in user; a key leaves its map when its
    /// last request ends, so the maps hold only clients with requests in flight.
    ip_shares: parking_lot::Mutex<HashMap<IpAddr, usize>>,
    user_shares: parking_lot::Mutex<HashMap<UserId, usize>>,
    per_client: usize,
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        let clock = LimitClock {
            start: Instant::now(),
            skew_ns: Arc::new(AtomicU64::new(0)),
        };
        Self {
            per_ip: keyed(config.requests_per_minute, &clock),
            auth: keyed(config.auth_requests_per_minute, &clock),
            per_user: keyed(config.creations_per_minute, &clock),
            client_errors: keyed(config.client_errors_per_minute, &clock),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            sign_in: super::sign_in::SignInThrottle::new(config, &clock),
            ip_shares: Default::default(),
            user_shares: Default::default(),
            per_client: config.max_in_flight_per_client,
            clock,
        }
    }

    /// The global per-IP budget: `requests_per_minute` at once, refilled evenly over a minute.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), AppError> {
        self.check(&self.per_ip, &rate_key(ip))
    }

    /// The strict budget for setup, login and registration.
    pub fn check_auth(&self, ip: IpAddr) -> Result<(), AppError> {
        self.check(&self.auth, &rate_key(ip))
    }

    /// The per-IP budget for the web app's error reports.
    pub fn check_client_error(&self, ip: IpAddr) -> Result<(), AppError> {
        self.check(&self.client_errors, &rate_key(ip))
    }

    /// The per-user budget for expensive creations.
    pub fn check_user(&self, user: UserId) -> Result<(), AppError> {
        self.check(&self.per_user, &user)
    }

    fn check<K: std::hash::Hash + Eq + Clone>(
        &self,
        limiter: &Keyed<K>,
        key: &K,
    ) -> Result<(), AppError> {
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            AppError::TooMany {
                code: ErrorCode::RateLimited,
                message: "Too many requests".into(),
                retry_after_s: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }

    /// A slot among `max_in_flight`; `None` means the server is full and should shed the request.
    pub fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        self.in_flight.clone().try_acquire_owned().ok()
    }

    /// A place among the client IP's `max_in_flight_per_client`; `None` when the client has
    /// that many requests in flight already.
    pub fn try_enter_ip(self: &Arc<Self>, ip: IpAddr) -> Option<ClientShare> {
        let ip = rate_key(ip);
        take_share(&self.ip_shares, ip, self.per_client)
            .then(|| ClientShare(self.clone(), ShareKey::Ip(ip)))
    }

    /// The same for a signed-in user, whatever addresses their requests come from. Held in
    /// the request's [`InFlight`], so it lasts until the answer leaves the edge.
    pub fn enter_user(
        self: &Arc<Self>,
        in_flight: &InFlight,
        user: UserId,
    ) -> Result<(), AppError> {
        if in_flight.user.get().is_some() {
            return Ok(());
        }
        if !take_share(&self.user_shares, user, self.per_client) {
            return Err(too_many_in_flight());
        }
        let _ = in_flight
            .user
            .set(ClientShare(self.clone(), ShareKey::User(user)));
        Ok(())
    }

    /// Clients with requests in flight.
    pub fn clients_in_flight(&self) -> usize {
        self.ip_shares.lock().len() + self.user_shares.lock().len()
    }

    /// Drops keys whose limits have fully recovered: they hold nothing a fresh key would not.
    pub fn retain_recent(&self) {
        self.per_ip.retain_recent();
        self.auth.retain_recent();
        self.per_user.retain_recent();
        self.client_errors.retain_recent();
        self.per_ip.shrink_to_fit();
        self.auth.shrink_to_fit();
        self.per_user.shrink_to_fit();
        self.client_errors.shrink_to_fit();
    }

    /// Keys held across all limiters.
    pub fn tracked_keys(&self) -> usize {
        self.per_ip.len() + self.auth.len() + self.per_user.len() + self.client_errors.len()
    }

    /// Moves the limiters' clock forward. For tests: a minute passes without a minute's wait.
    pub fn advance_clock(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.clock.skew_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Evicts stale keys every minute until `stop`.
    pub async fn housekeeping(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.retain_recent(),
                () = stop.cancelled() => return,
            }
        }
    }
}

/// The answer to a client over its share of the in-flight slots.
pub fn too_many_in_flight() -> AppError {
    AppError::Unavailable {
        code: ErrorCode::Overloaded,
        message: "Too many of your requests are in progress: try again in a moment".into(),
    }
}

fn take_share<K: Hash + Eq>(
    shares: &parking_lot::Mutex<HashMap<K, usize>>,
    key: K,
    max: usize,
) -> bool {
    let mut shares = shares.lock();
    let held = shares.entry(key).or_insert(0);
    if *held >= max {
        return false;
    }
    *held += 1;
    true
}

fn give_back<K: Hash + Eq>(shares: &parking_lot::Mutex<HashMap<K, usize>>, key: &K) {
    let mut shares = shares.lock();
    if let Some(held) = shares.get_mut(key) {
        *held -= 1;
        if *held == 0 {
            shares.remove(key);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum ShareKey {
    Ip(IpAddr),
    User(UserId),
}

/// One request's place in its client's share; given back on drop.
pub struct ClientShare(Arc<Limits>, ShareKey);

impl Drop for ClientShare {
    fn drop(&mut self) {
        match &self.1 {
            ShareKey::Ip(ip) => give_back(&self.0.ip_shares, ip),
            ShareKey::User(user) => give_back(&self.0.user_shares, user),
        }
    }
}

/// A request's hold on the server while it is handled, shared by the edge (which keeps it
/// until the answer is ready) and the request's extensions (where authentication adds the
/// user's share once the user is known).
#[derive(Default)]
pub struct InFlight {
    user: OnceLock<ClientShare>,
    /// The matched route, set by the router for the edge's metrics.
    pub route: OnceLock<RouteName>,
}

/// A request's route pattern, as the router matched it: kept as axum's shared string, so
/// telling the edge costs one reference count.
pub enum RouteName {
    Matched(axum::extract::MatchedPath),
    Other(&'static str),
}

impl RouteName {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Matched(p) => p.as_str(),
            Self::Other(s) => s,
        }
    }
}

/// `per_minute` at once, then one more every `60 / per_minute` seconds.
fn keyed<K: std::hash::Hash + Eq + Clone>(per_minute: u32, clock: &LimitClock) -> Keyed<K> {
    let n = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    RateLimiter::dashmap_with_clock(Quota::per_minute(n), clock.clone())
}

/// One budget per IPv4 address and per IPv6 /64 (what one subscriber usually gets), so
/// cycling through a prefix's addresses gains nothing and cannot flood the table.
pub(super) fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Paths under the per-IP budget; health checks, the web app and its assets are not.
pub(super) fn is_limited(path: &str) -> bool {
    path == "/api"
        || path.starts_with("/api/")
        || super::is_openai_path(path)
        || path.starts_with("/media/")
        || path.starts_with("/feeds/")
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn limits(per_minute: u32) -> Limits {
        Limits::new(&LimitsConfig {
            requests_per_minute: per_minute,
            ..LimitsConfig::default()
        })
    }

    #[test]
    fn the_request_after_the_budget_is_refused_until_time_passes() {
        let l = limits(100);
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        for i in 0..100 {
            assert!(l.check_ip(ip).is_ok(), "request {}", i + 1);
        }
        let Err(AppError::TooMany { retry_after_s, .. }) = l.check_ip(ip) else {
            panic!("the 101st request inside a minute is refused");
        };
        assert_eq!(retry_after_s, 1, "one request comes back every 0.6 s");
        assert!(l.check_ip("203.0.113.8".parse().unwrap()).is_ok(), "per IP");
        l.advance_clock(Duration::from_millis(600));
        assert!(l.check_ip(ip).is_ok());
    }

    #[test]
    fn ipv6_clients_share_a_budget_per_slash_64() {
        let l = limits(1);
        assert!(l.check_ip("2001:db8:1:2::1".parse().unwrap()).is_ok());
        assert!(l.check_ip("2001:db8:1:2::ffff".parse().unwrap()).is_err());
        assert!(l.check_ip("2001:db8:1:3::1".parse().unwrap()).is_ok());
        assert!(l.check_ip("::ffff:192.0.2.1".parse().unwrap()).is_ok());
        assert!(
            l.check_ip("192.0.2.1".parse().unwrap()).is_err(),
            "an IPv4-mapped address is the IPv4 client"
        );
    }

    #[test]
    fn recovered_keys_are_evicted() {
        let l = limits(10);
        for i in 0..50u8 {
            l.check_ip(IpAddr::V4(Ipv4Addr::new(198, 51, 100, i)))
                .unwrap();
        }
        assert_eq!(l.tracked_keys(), 50);
        l.retain_recent();
        assert_eq!(l.tracked_keys(), 50, "their windows are still open");
        l.advance_clock(Duration::from_secs(61));
        l.retain_recent();
        assert_eq!(l.tracked_keys(), 0);
    }

    #[test]
    fn a_client_s_share_of_the_slots_is_bounded_and_given_back() {
        let l = Arc::new(Limits::new(&LimitsConfig {
            max_in_flight_per_client: 2,
            ..LimitsConfig::default()
        }));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = l.try_enter_ip(ip).unwrap();
        let b = l.try_enter_ip(ip).unwrap();
        assert!(l.try_enter_ip(ip).is_none());
        assert!(l.try_enter_ip("192.0.2.2".parse().unwrap()).is_some());
        drop(a);
        assert!(l.try_enter_ip(ip).is_some());

        let user = UserId::from(ulid::Ulid::generate());
        let requests: Vec<InFlight> = (0..3).map(|_| InFlight::default()).collect();
        assert!(l.enter_user(&requests[0], user).is_ok());
        assert!(l.enter_user(&requests[0], user).is_ok(), "once per request");
        assert!(l.enter_user(&requests[1], user).is_ok());
        assert!(l.enter_user(&requests[2], user).is_err());
        assert!(
            l.enter_user(&requests[2], UserId::from(ulid::Ulid::generate()))
                .is_ok(),
            "per user"
        );
        drop((b, requests));
        assert_eq!(l.clients_in_flight(), 0, "finished clients leave no keys");
    }

    #[test]
    fn the_in_flight_cap_hands_out_slots_and_takes_them_back() {
        let l = Limits::new(&LimitsConfig {
            max_in_flight: 2,
            ..LimitsConfig::default()
        });
        let a = l.try_enter().unwrap();
        let _b = l.try_enter().unwrap();
        assert!(l.try_enter().is_none());
        drop(a);
        assert!(l.try_enter().is_some());
    }
}
