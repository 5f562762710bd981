//! Request rate limits: a token bucket per token (its `rate_limit`, or
//! `[limits] rate_limit_per_minute`) and one per client address that only
//! failed authentications drain (`[limits] auth_failures_per_minute`):
//! failures beyond it are refused as rate limited, valid secrets never.
//!
//! A bucket holds a minute's worth of requests and refills continuously,
//! so a 60/min token may make 60 requests at once and then one a second.
//! Buckets live in this process: each replica limits on its own.
//! Decisions are taken under a lock, so concurrent requests cannot
//! overdraw a bucket.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept before idle (full) ones are forgotten.
const PRUNE_AT: usize = 4096;
/// Most client addresses tracked; beyond it, an old one is forgotten for
/// each new one (a client with this many addresses is beyond a
/// per-address limit anyway).
const MAX_ADDRESSES: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Requests available (fractional while refilling).
    level: f64,
    updated: Instant,
}

impl Bucket {
    fn full(per_minute: u32, now: Instant) -> Self {
        Self {
            level: f64::from(per_minute),
            updated: now,
        }
    }

    /// Refills for the time since the last update.
    fn refill(&mut self, per_minute: u32, now: Instant) {
        let rate = f64::from(per_minute) / 60.0;
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.level = (self.level + elapsed * rate).min(f64::from(per_minute));
        self.updated = now;
    }

    /// How long until one request is available (zero if one is now).
    fn wait(&self, per_minute: u32) -> Duration {
        if self.level >= 1.0 {
            return Duration::ZERO;
        }
        let rate = f64::from(per_minute) / 60.0;
        Duration::from_secs_f64((1.0 - self.level) / rate)
    }

    fn is_full(&self, per_minute: u32, now: Instant) -> bool {
        let mut b = *self;
        b.refill(per_minute, now);
        b.level >= f64::from(per_minute)
    }
}

/// The gateway's rate limiters.
#[derive(Debug)]
pub struct RateLimits {
    default_per_minute: u32,
    failures_per_minute: u32,
    tokens: Mutex<HashMap<String, (u32, Bucket)>>,
    addresses: Mutex<HashMap<IpAddr, Bucket>>,
    pruned: Mutex<Option<Instant>>,
}

impl RateLimits {
    /// Limits with `default_per_minute` for tokens without their own rate
    /// (0: unlimited) and `failures_per_minute` failed authentications per
    /// client address (0: no address limit).
    pub fn new(default_per_minute: u32, failures_per_minute: u32) -> Self {
        Self {
            default_per_minute,
            failures_per_minute,
            tokens: Mutex::new(HashMap::new()),
            addresses: Mutex::new(HashMap::new()),
            pruned: Mutex::new(None),
        }
    }

    /// No limits at all.
    pub fn unlimited() -> Self {
        Self::new(0, 0)
    }

    /// Charges one request to `token_id`, whose own rate is `rate_limit`
    /// (requests per minute; `None`: the configured default). `Err` holds
    /// how long until a request would be admitted.
    pub fn charge(&self, token_id: &str, rate_limit: Option<u32>) -> Result<(), Duration> {
        let per_minute = rate_limit.unwrap_or(self.default_per_minute);
        if per_minute == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if tokens.len() >= PRUNE_AT && !tokens.contains_key(token_id) {
            tokens.retain(|_, (rate, b)| !b.is_full(*rate, now));
        }
        let (rate, bucket) = tokens
            .entry(token_id.to_string())
            .or_insert_with(|| (per_minute, Bucket::full(per_minute, now)));
        // A changed rate applies from now on; the level is capped by it.
        *rate = per_minute;
        bucket.refill(per_minute, now);
        match bucket.wait(per_minute) {
            d if d.is_zero() => {
                bucket.level -= 1.0;
                Ok(())
            }
            d => Err(d),
        }
    }

    /// Counts a failed authentication from `client`. `Err` (holding how
    /// long until the bucket has room again) when the address already used
    /// up its failures: the caller answers with a rate-limit refusal.
    pub fn fail_from(&self, client: Option<IpAddr>) -> Result<(), Duration> {
        let (Some(ip), per_minute) = (client, self.failures_per_minute) else {
            return Ok(());
        };
        if per_minute == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let key = address_key(ip);
        let mut addresses = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        if !addresses.contains_key(&key) && addresses.len() >= PRUNE_AT {
            let mut pruned = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
            // At most once a second: a full scan under the lock.
            if pruned.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1)) {
                addresses.retain(|_, b| !b.is_full(per_minute, now));
                *pruned = Some(now);
            }
            if addresses.len() >= MAX_ADDRESSES {
                // Forget some address to make room: tracking the newcomer
                // matters more than an old bucket that is refilling anyway.
                if let Some(k) = addresses.keys().next().copied() {
                    addresses.remove(&k);
                }
            }
        }
        let bucket = addresses
            .entry(key)
            .or_insert_with(|| Bucket::full(per_minute, now));
        bucket.refill(per_minute, now);
        match bucket.wait(per_minute) {
            d if d.is_zero() => {
                bucket.level -= 1.0;
                Ok(())
            }
            d => Err(d),
        }
    }
}

/// IPv4 addresses count one by one; IPv6 addresses by their /64 (one
/// client usually holds a whole /64). IPv4-mapped IPv6 addresses count as
/// IPv4.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gets_a_minute_of_requests_then_waits() {
        let limits = RateLimits::new(0, 0);
        for i in 0..60 {
            assert!(limits.charge("t", Some(60)).is_ok(), "request {}", i + 1);
        }
        let wait = limits.charge("t", Some(60)).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another token has its own bucket; no rate and no default: unlimited.
        assert!(limits.charge("u", Some(60)).is_ok());
        for _ in 0..10_000 {
            assert!(limits.charge("free", None).is_ok());
        }
    }

    #[test]
    fn the_default_rate_applies_to_tokens_without_one() {
        let limits = RateLimits::new(2, 0);
        assert!(limits.charge("t", None).is_ok());
        assert!(limits.charge("t", None).is_ok());
        assert!(limits.charge("t", None).is_err());
    }

    #[test]
    fn concurrent_requests_cannot_overdraw() {
        let limits = std::sync::Arc::new(RateLimits::new(0, 0));
        let admitted: usize = (0..8)
            .map(|_| {
                let l = std::sync::Arc::clone(&limits);
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|_| l.charge("t", Some(120)).is_ok())
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        // 120 at once plus whatever refilled (2/s) while the threads ran.
        assert!((120..=124).contains(&admitted), "{admitted}");
    }

    #[test]
    fn failed_attempts_beyond_the_bucket_are_refused() {
        let limits = RateLimits::new(0, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limits.fail_from(Some(a)).is_ok());
        }
        let wait = limits.fail_from(Some(a)).unwrap_err();
        assert!(wait <= Duration::from_secs(20), "{wait:?}");
        assert!(limits.fail_from(Some(b)).is_ok());
        assert!(limits.fail_from(None).is_ok());
        assert!(RateLimits::new(0, 0).fail_from(Some(a)).is_ok());
    }

    #[test]
    fn ipv6_counts_by_slash_64() {
        let limits = RateLimits::new(0, 1);
        assert!(
            limits
                .fail_from(Some("2001:db8:1:2::1".parse().unwrap()))
                .is_ok()
        );
        assert!(
            limits
                .fail_from(Some("2001:db8:1:2:ffff::9".parse().unwrap()))
                .is_err()
        );
        assert!(
            limits
                .fail_from(Some("2001:db8:1:3::1".parse().unwrap()))
                .is_ok()
        );
        let limits = RateLimits::new(0, 1);
        assert!(
            limits
                .fail_from(Some("::ffff:192.0.2.7".parse().unwrap()))
                .is_ok()
        );
        assert!(
            limits
                .fail_from(Some("192.0.2.7".parse().unwrap()))
                .is_err()
        );
    }

    #[test]
    fn the_address_table_stays_bounded() {
        let limits = RateLimits::new(0, 1);
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            let _ = limits.fail_from(Some(IpAddr::V4(std::net::Ipv4Addr::from(i))));
        }
        assert!(limits.addresses.lock().unwrap().len() <= MAX_ADDRESSES);
    }
}
