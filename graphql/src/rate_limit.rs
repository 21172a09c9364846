//! Fixed-window rate limits per key (a client address, a token), in memory: each replica
//! limits what it serves, which is what protects it.
//!
//! The state is bounded and the hot path never scans it. Windows are aligned minutes
//! (`now / 60 s`) shared by every key, so a whole window's counts expire at once: a shard
//! whose counts belong to a past minute drops them all (the map is swapped out under the
//! lock and freed after it), with no per-key sweep. Keys are spread over [`SHARDS`]
//! mutex-guarded maps, so concurrent checks rarely wait on one another. Each shard holds
//! at most `max_keys / SHARDS` keys in a window: a key that would grow a full shard is
//! refused until the minute ends (those already counted carry on), so a flood of fresh
//! addresses costs a bounded amount of memory and never evicts the clients already seen.
//!
//! Addresses are grouped before they become keys ([`address_key`]): an IPv6 client is its
//! /64 (one subscriber's whole prefix, which it can rotate through freely), an IPv4 client
//! its address.

use std::collections::HashMap;
use std::collections::hash_map::{DefaultHasher, Entry};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

/// How many independently locked maps the keys are spread over.
pub const SHARDS: usize = 64;

/// Keys counted at once by default (all shards together).
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// One shard: the counts of the keys seen in one window.
#[derive(Debug, Default)]
struct Shard {
    window: u64,
    counts: HashMap<String, u32>,
}

/// Counts per key and minute, with a bound on the keys kept.
#[derive(Debug)]
pub struct RateLimiter {
    started: Instant,
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::with_max_keys(DEFAULT_MAX_KEYS)
    }
}

impl RateLimiter {
    /// A limiter keeping at most about `max_keys` keys per minute.
    pub fn with_max_keys(max_keys: usize) -> Self {
        RateLimiter {
            started: Instant::now(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    /// Counts one call of `key`; `Err(seconds to wait)` past `limit` per minute, or when
    /// the key is new and its shard is full.
    pub fn check(&self, key: &str, limit: u32) -> Result<(), u64> {
        self.check_at(key, limit, Instant::now())
    }

    fn check_at(&self, key: &str, limit: u32, now: Instant) -> Result<(), u64> {
        let elapsed = now.duration_since(self.started);
        let window = elapsed.as_secs() / WINDOW.as_secs();
        let wait = (window + 1) * WINDOW.as_secs() - elapsed.as_secs();
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let shard = &self.shards[hasher.finish() as usize % SHARDS];
        let mut expired = None;
        let result = {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            if shard.window != window {
                shard.window = window;
                expired = Some(std::mem::take(&mut shard.counts));
            }
            let full = shard.counts.len() >= self.per_shard;
            match shard.counts.entry(key.to_string()) {
                Entry::Occupied(mut count) if *count.get() < limit => {
                    *count.get_mut() += 1;
                    Ok(())
                }
                Entry::Occupied(_) => Err(wait.max(1)),
                Entry::Vacant(_) if full => {
                    tracing::warn!(
                        key,
                        "rate limiter full for this minute: a new client is refused"
                    );
                    Err(wait.max(1))
                }
                Entry::Vacant(_) if limit == 0 => Err(wait.max(1)),
                Entry::Vacant(v) => {
                    v.insert(1);
                    Ok(())
                }
            }
        };
        // The last window's map is freed outside the lock.
        drop(expired);
        result
    }

    /// `Some(seconds to wait)` when `key` has already been counted `limit` times this
    /// minute; counts nothing (a limit on failures asks before, and counts after).
    pub fn exhausted(&self, key: &str, limit: u32) -> Option<u64> {
        let elapsed = self.started.elapsed();
        let window = elapsed.as_secs() / WINDOW.as_secs();
        let wait = (window + 1) * WINDOW.as_secs() - elapsed.as_secs();
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let shard = self.shards[hasher.finish() as usize % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let count = if shard.window == window {
            shard.counts.get(key).copied().unwrap_or(0)
        } else {
            0
        };
        (count >= limit).then_some(wait.max(1))
    }

    /// Keys counted in the current windows (tests, metrics).
    pub fn keys(&self) -> usize {
        (self.shards.iter())
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).counts.len())
            .sum()
    }
}

/// The address a limit counts: an IPv6 address's /64 (an IPv4-mapped one is its IPv4
/// address), an IPv4 address itself.
pub fn group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// The key of a per-address limit: `<scope>/<address's group>`.
pub fn address_key(scope: &str, ip: IpAddr) -> String {
    format!("{scope}/{}", group(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhausted_reads_a_count_without_adding_to_it() {
        let l = RateLimiter::default();
        assert_eq!(l.exhausted("a", 2), None);
        for _ in 0..2 {
            l.check("a", u32::MAX).unwrap();
        }
        assert!(
            l.exhausted("a", 2)
                .is_some_and(|wait| (1..=60).contains(&wait))
        );
        assert!(l.exhausted("a", 2).is_some(), "asking counts nothing");
        assert_eq!(l.exhausted("a", 3), None);
        assert_eq!(l.exhausted("b", 1), None);
    }

    #[test]
    fn a_key_is_refused_past_its_limit_and_others_are_not() {
        let l = RateLimiter::default();
        for _ in 0..3 {
            l.check("a", 3).unwrap();
        }
        let wait = l.check("a", 3).unwrap_err();
        assert!((1..=60).contains(&wait));
        l.check("b", 3).unwrap();
    }

    #[test]
    fn a_new_minute_starts_every_count_again_and_frees_the_old_keys() {
        let l = RateLimiter::default();
        let t0 = l.started;
        for i in 0..1_000 {
            l.check_at(&format!("k{i}"), 1, t0).unwrap();
        }
        assert!(l.check_at("k1", 1, t0 + Duration::from_secs(59)).is_err());
        assert_eq!(l.keys(), 1_000);
        let later = t0 + Duration::from_secs(61);
        l.check_at("k1", 1, later).unwrap();
        // Each shard drops its old window when it is next used; k1's shard has.
        assert!(l.keys() < 1_000);
        for i in 0..1_000 {
            let _ = l.check_at(&format!("z{i}"), 1, later);
        }
        assert!(l.keys() <= 1_001, "{}", l.keys());
    }

    #[test]
    fn the_keys_kept_are_bounded_and_known_clients_keep_their_share() {
        let l = RateLimiter::with_max_keys(SHARDS * 4);
        l.check("known", 1_000).unwrap();
        let mut refused = 0;
        for i in 0..10_000 {
            if l.check(&format!("flood-{i}"), 1_000).is_err() {
                refused += 1;
            }
        }
        assert!(l.keys() <= SHARDS * 4, "{} keys", l.keys());
        assert!(refused >= 10_000 - SHARDS * 4);
        for _ in 0..10 {
            l.check("known", 1_000)
                .expect("a client counted before the flood");
        }
    }

    #[test]
    fn ipv6_clients_are_grouped_by_64_and_ipv4_by_address() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(group(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_eq!(address_key("r", a), address_key("r", b));
        assert_ne!(address_key("r", a), address_key("r", other));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(group(v4), v4);
        assert_ne!(
            address_key("r", v4),
            address_key("r", "192.0.2.8".parse().unwrap())
        );
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(group(mapped), v4);
    }
}
