//! Which partitions are not flowing: lag that nobody moves.
//!
//! "Nothing lost" is not "arrived": after a crash, a partition can stay unconsumed while
//! every process looks healthy (a coordinator that left it to a dead member, a fetch that
//! never resumes). The only symptom visible from outside is a partition whose end moves
//! on while the stage's progress on it does not. A stage commits its progress to its
//! consumer group after each flush (for monitoring: the lake holds the real offsets), so
//! the group's committed offsets and the partitions' ends, sampled every few seconds by a
//! probe ([`crate::probe`]), tell it all:
//!
//! ```text
//!  lag = end − max(committed, low)        (committed: next offset the stage needs)
//!  stalled for t = lag > 0 and committed unchanged for t
//! ```
//!
//! [`PartitionWatch`] is that bookkeeping, with time passed in so it is tested without a
//! clock. What to do about a stall (rejoin, reassign, fail readiness) is the caller's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One partition as the probe saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub topic: String,
    pub partition: i32,
    /// First offset still in the log (retention moves it).
    pub low: i64,
    /// Offset the next produced message will get (the high watermark).
    pub end: i64,
    /// Next offset the stage needs, as its group last committed it (`None`: never).
    pub committed: Option<i64>,
}

/// A partition's health at the last sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionHealth {
    pub topic: String,
    pub partition: i32,
    /// The partition's end (next offset a produced message gets) at the sample.
    pub end: i64,
    /// Messages the stage has not landed yet.
    pub lag: i64,
    /// How long its lag has gone without progress (`None`: no lag, or moving).
    pub stalled_for: Option<Duration>,
}

#[derive(Debug, Clone)]
struct Track {
    committed: Option<i64>,
    /// Since when `committed` has not moved while there was lag.
    still_since: Instant,
}

/// Bookkeeping of progress per partition.
#[derive(Debug, Default, Clone)]
pub struct PartitionWatch {
    tracks: BTreeMap<(String, i32), Track>,
}

impl PartitionWatch {
    /// Takes one sample of every partition and returns their health. A partition seen for
    /// the first time counts as moving from `now` (a stage just started is given the stall
    /// threshold to show progress).
    pub fn observe(&mut self, sample: &[Observation], now: Instant) -> Vec<PartitionHealth> {
        let mut health = Vec::with_capacity(sample.len());
        let mut seen = BTreeMap::new();
        for o in sample {
            let key = (o.topic.clone(), o.partition);
            let progress = o.committed.unwrap_or(o.low).max(o.low);
            let lag = (o.end - progress).max(0);
            let track = self.tracks.entry(key.clone()).or_insert(Track {
                committed: o.committed,
                still_since: now,
            });
            if track.committed != o.committed || lag == 0 {
                track.committed = o.committed;
                track.still_since = now;
            }
            let stalled_for = (lag > 0 && now > track.still_since)
                .then(|| now.saturating_duration_since(track.still_since));
            health.push(PartitionHealth {
                topic: o.topic.clone(),
                partition: o.partition,
                end: o.end,
                lag,
                stalled_for,
            });
            seen.insert(key, ());
        }
        // A partition that disappeared (topic deleted) is forgotten.
        self.tracks.retain(|k, _| seen.contains_key(k));
        health
    }
}

/// The partitions of `health` stalled for at least `threshold`.
pub fn stalled(health: &[PartitionHealth], threshold: Duration) -> Vec<&PartitionHealth> {
    health
        .iter()
        .filter(|h| h.stalled_for.is_some_and(|d| d >= threshold))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn obs(partition: i32, end: i64, committed: Option<i64>) -> Observation {
        Observation {
            topic: "t".into(),
            partition,
            low: 0,
            end,
            committed,
        }
    }

    #[test]
    fn a_partition_whose_lag_does_not_move_is_stalled_and_one_that_moves_is_not() {
        let t0 = Instant::now();
        let mut watch = PartitionWatch::default();
        watch.observe(&[obs(0, 100, Some(10)), obs(1, 100, Some(10))], t0);
        let h = watch.observe(&[obs(0, 150, Some(60)), obs(1, 150, Some(10))], t0 + 20 * S);
        assert_eq!(h[0].stalled_for, None, "partition 0 moved");
        assert_eq!(h[1].stalled_for, Some(20 * S));
        assert_eq!(h[1].lag, 140);
        let h = watch.observe(&[obs(0, 150, Some(70)), obs(1, 200, Some(10))], t0 + 35 * S);
        let late = stalled(&h, 30 * S);
        assert_eq!(late.len(), 1);
        assert_eq!((late[0].partition, late[0].lag), (1, 190));
    }

    #[test]
    fn no_lag_is_never_a_stall_however_long_nothing_arrives() {
        let t0 = Instant::now();
        let mut watch = PartitionWatch::default();
        // Half an hour of silence, sampled every 5 s.
        for tick in 0..360 {
            let h = watch.observe(&[obs(0, 500, Some(500))], t0 + tick * 5 * S);
            assert!(stalled(&h, 30 * S).is_empty());
        }
        // Traffic resumes: its lag counts from the last sample without lag, not from the
        // last commit half an hour ago, and it is consumed within the threshold.
        let h = watch.observe(&[obs(0, 900, Some(500))], t0 + 1800 * S);
        assert_eq!(h[0].stalled_for, Some(5 * S));
        let h = watch.observe(&[obs(0, 900, Some(900))], t0 + 1805 * S);
        assert_eq!((h[0].lag, h[0].stalled_for), (0, None));
    }

    #[test]
    fn a_partition_never_committed_counts_from_its_first_offset_and_stalls_if_unread() {
        let t0 = Instant::now();
        let mut watch = PartitionWatch::default();
        let unread = Observation {
            low: 40,
            ..obs(2, 100, None)
        };
        watch.observe(std::slice::from_ref(&unread), t0);
        let h = watch.observe(&[unread], t0 + 31 * S);
        assert_eq!(h[0].lag, 60, "from the low watermark");
        assert_eq!(stalled(&h, 30 * S).len(), 1);
    }
}
