//! Refused requests in the log: a client's first refusal for a reason gets its own line,
//! the rest are counted and summarised once per interval, so a flood of refused requests
//! writes a few lines instead of one per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// How often counted refusals are written out.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Clients tracked at once. Refusals from clients past this (an attack from many addresses)
/// are counted together, so memory stays bounded whatever the number of addresses.
const MAX_CLIENTS: usize = 4096;

#[derive(Default)]
pub struct Refusals {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Refusals since the last summary, per client and reason.
    counts: HashMap<(IpAddr, &'static str), u64>,
    /// Refusals from clients that did not fit in `counts`.
    overflow: u64,
}

impl Refusals {
    /// Counts one refusal (`client` is an IPv4 address or an IPv6 /64). True when it is the client's first for this reason since the
    /// last quiet interval: that one is logged in full by the caller.
    pub fn record(&self, client: IpAddr, reason: &'static str) -> bool {
        let mut state = self.state.lock();
        if let Some(count) = state.counts.get_mut(&(client, reason)) {
            *count += 1;
            return false;
        }
        if state.counts.len() < MAX_CLIENTS {
            state.counts.insert((client, reason), 0);
            true
        } else {
            state.overflow += 1;
            false
        }
    }

    /// Writes one line per client and reason refused since the last summary, with the
    /// count; clients that stayed quiet are forgotten (their next refusal is logged in full).
    pub fn summarise(&self) {
        let (refused, overflow) = {
            let mut state = self.state.lock();
            state.counts.retain(|_, count| *count > 0);
            let refused: Vec<_> = state
                .counts
                .iter_mut()
                .map(|(key, count)| (*key, std::mem::take(count)))
                .collect();
            (refused, std::mem::take(&mut state.overflow))
        };
        let interval_s = SUMMARY_EVERY.as_secs();
        for ((client_ip, reason), count) in refused {
            tracing::info!(%client_ip, reason, count, interval_s, "requests refused");
        }
        if overflow > 0 {
            tracing::warn!(
                count = overflow,
                interval_s,
                "requests refused from too many clients to list"
            );
        }
    }

    /// Summarises every [`SUMMARY_EVERY`] until `stop`, then once more.
    pub async fn summarise_until(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(SUMMARY_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.summarise(),
                () = stop.cancelled() => return self.summarise(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn a_client_s_first_refusal_is_logged_and_the_rest_counted() {
        let r = Refusals::default();
        let a = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let b = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        assert!(r.record(a, "rate_limited"));
        assert!(!r.record(a, "rate_limited"));
        assert!(r.record(a, "unauthenticated"), "another reason");
        assert!(r.record(b, "rate_limited"), "another client");
        r.summarise();
        assert!(
            !r.record(a, "rate_limited"),
            "still counted after a summary"
        );
        r.summarise();
        r.summarise();
        assert!(
            r.record(a, "rate_limited"),
            "a quiet interval forgets the client"
        );
    }

    #[test]
    fn many_clients_fill_the_table_only_up_to_its_cap() {
        let r = Refusals::default();
        for i in 0..(MAX_CLIENTS as u32 + 100) {
            r.record(IpAddr::V4(Ipv4Addr::from(i)), "unauthenticated");
        }
        let state = r.state.lock();
        assert_eq!(state.counts.len(), MAX_CLIENTS);
        assert_eq!(state.overflow, 100);
    }
}
