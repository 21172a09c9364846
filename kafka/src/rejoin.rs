//! When a stage's consumer is replaced by a fresh one: it owns no partition, or partitions
//! stopped flowing.
//!
//! Seen with Tansu 0.6: after a member dies (SIGKILL), the coordinator can keep the dead
//! member's assignment, leaving a live member with part of the partitions or none, for
//! good. A fresh member (leave, then join again) makes it form a new generation. Two
//! triggers:
//! - no partition for a while: the wait doubles after each rejoin (12 s, 24 s, … up to
//!   320 s) so that a group with more members than partitions, where some member rightly
//!   owns nothing, does not churn;
//! - a stall ([`crate::watch`]: lag that nobody moved for `stall_after`): the stall
//!   threshold was the wait, so the first rejoin is at once; later ones are spaced by the
//!   same doubling wait, so a cause a fresh consumer cannot fix (a broken disk) does not
//!   make the stage spin.

use std::time::{Duration, Instant};

/// The first wait without a partition before rejoining.
pub const FIRST_WAIT: Duration = Duration::from_secs(12);
/// The longest wait, reached by doubling.
pub const MAX_WAIT: Duration = Duration::from_secs(320);

/// The back-off state of one stage's group membership. Time is passed in, so it is tested
/// without a clock.
#[derive(Debug, Clone)]
pub struct RejoinPolicy {
    /// Since when the consumer has owned nothing (reset while it owns partitions).
    unassigned_since: Instant,
    wait: Duration,
    max: Duration,
    /// The last rejoin, if any.
    last_rejoin: Option<Instant>,
}

impl RejoinPolicy {
    /// A policy for a consumer that joined its group at `now`.
    pub fn new(now: Instant) -> Self {
        Self::with_waits(FIRST_WAIT, MAX_WAIT, now)
    }

    /// A policy waiting `first`, then doubling up to `max`.
    pub fn with_waits(first: Duration, max: Duration, now: Instant) -> Self {
        RejoinPolicy {
            unassigned_since: now,
            wait: first,
            max,
            last_rejoin: None,
        }
    }

    /// Told regularly whether partitions are stalled. Returns `true` when the caller must
    /// replace its consumer: at the first stall, then no sooner than the current wait
    /// after the previous rejoin.
    pub fn should_rejoin_stalled(&mut self, stalled: bool, now: Instant) -> bool {
        if !stalled {
            return false;
        }
        if self
            .last_rejoin
            .is_some_and(|t| now.saturating_duration_since(t) < self.wait)
        {
            return false;
        }
        tracing::warn!("partitions not flowing; starting a fresh consumer");
        self.rejoined(now);
        true
    }

    fn rejoined(&mut self, now: Instant) {
        self.unassigned_since = now;
        self.last_rejoin = Some(now);
        self.wait = (self.wait * 2).min(self.max);
    }

    /// Told at every turn of the poll loop whether the consumer owns a partition. Returns
    /// `true` when it has owned none for the current wait: the caller then replaces its
    /// consumer with a fresh one, and the next wait, doubled, starts at `now`.
    pub fn should_rejoin(&mut self, owns_partitions: bool, now: Instant) -> bool {
        if owns_partitions {
            self.unassigned_since = now;
            return false;
        }
        if now.saturating_duration_since(self.unassigned_since) < self.wait {
            return false;
        }
        tracing::warn!(waited = ?self.wait, "no partition assigned; leaving and rejoining the consumer group");
        self.rejoined(now);
        true
    }

    /// How long the consumer must own nothing before the next rejoin.
    pub fn wait(&self) -> Duration {
        self.wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_member_without_partitions_rejoins_after_waits_that_double_up_to_the_cap() {
        let t0 = Instant::now();
        let mut policy = RejoinPolicy::new(t0);
        assert!(!policy.should_rejoin(false, t0 + 11 * S));
        assert!(policy.should_rejoin(false, t0 + 12 * S));
        assert_eq!(policy.wait(), 24 * S);
        // The next wait counts from the rejoin.
        assert!(!policy.should_rejoin(false, t0 + 35 * S));
        assert!(policy.should_rejoin(false, t0 + 36 * S));
        let mut now = t0 + 36 * S;
        for expected in [48, 96, 192, 320, 320] {
            assert_eq!(policy.wait(), expected * S);
            now += expected * S;
            assert!(policy.should_rejoin(false, now));
        }
        assert_eq!(policy.wait(), MAX_WAIT);
    }

    #[test]
    fn owning_a_partition_restarts_the_wait_but_keeps_its_length() {
        let t0 = Instant::now();
        let mut policy = RejoinPolicy::new(t0);
        assert!(policy.should_rejoin(false, t0 + 12 * S));
        assert!(!policy.should_rejoin(true, t0 + 30 * S), "assigned");
        assert!(!policy.should_rejoin(false, t0 + 53 * S), "revoked at 30 s");
        assert!(policy.should_rejoin(false, t0 + 54 * S));
        assert_eq!(policy.wait(), 48 * S, "no reset to the first wait");
    }

    #[test]
    fn a_stall_rejoins_at_once_then_no_sooner_than_the_doubling_wait() {
        let t0 = Instant::now();
        let mut policy = RejoinPolicy::new(t0);
        assert!(!policy.should_rejoin_stalled(false, t0));
        assert!(policy.should_rejoin_stalled(true, t0 + S), "first stall");
        assert!(
            !policy.should_rejoin_stalled(true, t0 + 20 * S),
            "24 s not over"
        );
        assert!(policy.should_rejoin_stalled(true, t0 + 25 * S));
        assert_eq!(policy.wait(), 48 * S);
        // A member without partitions right after a stall rejoin waits the full wait.
        assert!(!policy.should_rejoin(false, t0 + 60 * S));
        assert!(policy.should_rejoin(false, t0 + 73 * S));
    }

    #[test]
    fn a_member_that_owns_partitions_never_rejoins() {
        let t0 = Instant::now();
        let mut policy = RejoinPolicy::new(t0);
        for minute in 0..60 {
            assert!(!policy.should_rejoin(true, t0 + minute * 60 * S));
        }
        assert_eq!(policy.wait(), FIRST_WAIT);
    }
}
