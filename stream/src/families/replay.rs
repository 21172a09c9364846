//! Per source partition, the smallest offset still needed to rebuild a family's state on a
//! restart.
//!
//! Window state and device tokens are never on disk: a restart rebuilds them by reading
//! Kafka again. Each output commit records, per source partition, the offset of the oldest
//! event still needed (event time ≥ the stream's watermark minus what the family keeps),
//! and the restarted stage starts reading there. Tracking every offset would be costly, so
//! the tracker keeps, per partition, the smallest offset read in each minute of event time.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use vallee_schemas::contract::Stream;

use super::EventClock;

/// A partition's replay position: reading `stream`'s partition from `offset` rebuilds
/// everything the family still needs of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayFrom {
    pub stream: Stream,
    pub partition: i32,
    pub offset: i64,
}

/// Per source partition, the smallest offset per minute of event time.
#[derive(Debug, Default, Clone)]
pub struct ReplayTracker {
    /// stream → partition → where replay must start.
    streams: BTreeMap<Stream, BTreeMap<i32, PartitionReplay>>,
}

#[derive(Debug, Default, Clone)]
struct PartitionReplay {
    /// Minute of event time → smallest offset seen in that minute.
    minutes: BTreeMap<i64, i64>,
    /// The offset after the last one seen.
    next: i64,
    /// The minute of the last row and the smallest offset recorded for it: rows of a
    /// partition come in offset order, mostly within the same minute (the hot path).
    hot: Option<(i64, i64)>,
}

impl ReplayTracker {
    /// Records an event (no allocation once its partition is known: this is the hot path).
    pub fn observe(&mut self, stream: Stream, partition: i32, t: DateTime<Utc>, offset: i64) {
        let p = self
            .streams
            .entry(stream)
            .or_default()
            .entry(partition)
            .or_default();
        let minute = t.timestamp().div_euclid(60);
        p.next = p.next.max(offset + 1);
        if p.hot
            .is_some_and(|(m, smallest)| m == minute && offset >= smallest)
        {
            return;
        }
        let slot = p.minutes.entry(minute).or_insert(offset);
        *slot = (*slot).min(offset);
        p.hot = Some((minute, *slot));
    }

    /// Where to replay from so that every event with event time ≥ `keep_from` is read
    /// again (minutes before it are forgotten).
    pub fn replay_from(
        &mut self,
        stream: Stream,
        partition: i32,
        keep_from: DateTime<Utc>,
    ) -> Option<i64> {
        let p = self.streams.get_mut(&stream)?.get_mut(&partition)?;
        let cutoff = keep_from.timestamp().div_euclid(60);
        p.minutes.retain(|m, _| *m >= cutoff);
        p.hot = None;
        Some(p.minutes.values().copied().min().unwrap_or(p.next))
    }

    /// The replay position of every partition seen, for the streams with a watermark:
    /// events up to `retention(stream)` behind it are still needed, from the start of
    /// that hour (a replay then rebuilds whole hours: see [`ResumeFloors`]).
    pub fn positions(
        &mut self,
        clock: &EventClock,
        retention: impl Fn(Stream) -> Duration,
    ) -> Vec<ReplayFrom> {
        let mut out = Vec::new();
        let seen: Vec<(Stream, i32)> = self
            .streams
            .iter()
            .flat_map(|(s, ps)| ps.keys().map(move |p| (*s, *p)))
            .collect();
        for (stream, partition) in seen {
            let Some(watermark) = clock.watermark(stream) else {
                continue;
            };
            let keep_from = watermark - retention(stream);
            let keep_from = keep_from.duration_trunc(HOUR).unwrap_or(keep_from);
            if let Some(offset) = self.replay_from(stream, partition, keep_from) {
                out.push(ReplayFrom {
                    stream,
                    partition,
                    offset,
                });
            }
        }
        out
    }
}

/// Where the windows of a partition resumed from a recorded offset are whole again.
///
/// A replay starts at the first event of the hour holding the oldest event its family
/// still needs ([`ReplayTracker::positions`]), so the hours it replays are whole. Events
/// of earlier hours may still come later in the partition (late ones): rebuilt from them
/// alone, their windows would be written as (wrong) corrections of the whole ones already
/// in the lake. Per partition resumed, the floor is the hour of its first replayed event:
/// events before it count nowhere (their windows are in the lake, beyond the correction
/// horizon), the windows from it on are rebuilt whole.
#[derive(Debug, Default, Clone)]
pub struct ResumeFloors {
    /// Partition → its floor, `None` until its first replayed event.
    floors: Vec<(i32, Option<DateTime<Utc>>)>,
}

/// Replays start at the start of an hour, the longest window.
const HOUR: Duration = Duration::hours(1);

impl ResumeFloors {
    /// `partition` was assigned: `resumed` from an offset its outputs recorded (else from
    /// its beginning: whole from the start).
    pub fn assigned(&mut self, partition: i32, resumed: bool) {
        self.floors.retain(|(p, _)| *p != partition);
        if resumed {
            self.floors.push((partition, None));
        }
    }

    /// Whether an event of `partition` at `t` comes before its floor (it must count in no
    /// window). Cheap when no partition was resumed.
    pub fn before_floor(&mut self, partition: i32, t: DateTime<Utc>) -> bool {
        let Some((_, floor)) = self.floors.iter_mut().find(|(p, _)| *p == partition) else {
            return false;
        };
        let floor = *floor.get_or_insert_with(|| t.duration_trunc(HOUR).unwrap_or(t));
        t < floor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(m: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-11-28T10:{m:02}:00Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn replay_starts_at_the_smallest_offset_of_the_minutes_still_needed() {
        let mut r = ReplayTracker::default();
        let beacons = Stream::Beacons;
        // Offsets 10 to 15 of partition 0, in minutes 0, 0, 1, 0 (a late row), 2, 2.
        for (offset, minute) in [(10, 0), (11, 0), (12, 1), (13, 0), (14, 2), (15, 2)] {
            r.observe(beacons, 0, at(minute), offset);
        }
        assert_eq!(r.replay_from(beacons, 0, at(0)), Some(10));
        assert_eq!(r.replay_from(beacons, 0, at(1)), Some(12));
        assert_eq!(r.replay_from(beacons, 0, at(2)), Some(14));
        // Read again from an earlier offset (a rebalance): the minute starts there now.
        r.observe(beacons, 0, at(2), 9);
        assert_eq!(r.replay_from(beacons, 0, at(2)), Some(9));
        // No minute needed any more: after the last offset seen.
        assert_eq!(r.replay_from(beacons, 0, at(3)), Some(16));
        assert_eq!(r.replay_from(beacons, 1, at(0)), None);
    }

    #[test]
    fn a_resumed_partition_counts_from_the_hour_of_its_first_replayed_event() {
        let mut floors = ResumeFloors::default();
        floors.assigned(0, true);
        floors.assigned(1, false);
        // Partition 0 replays from 10:07: the hour 10:00 on counts, a late event of 9:00
        // (its window whole in the lake) counts nowhere.
        assert!(!floors.before_floor(0, at(7)));
        assert!(!floors.before_floor(0, at(0)));
        assert!(floors.before_floor(0, at(0) - Duration::minutes(1)));
        // Partition 1 started from its beginning: everything counts.
        assert!(!floors.before_floor(1, at(0) - Duration::hours(3)));
        // Assigned again from its beginning: no floor any more.
        floors.assigned(0, false);
        assert!(!floors.before_floor(0, at(0) - Duration::minutes(1)));
    }

    #[test]
    fn positions_keep_the_hours_of_the_retention_behind_the_watermark() {
        let mut r = ReplayTracker::default();
        r.observe(Stream::Beacons, 0, at(0), 10);
        r.observe(Stream::Beacons, 0, at(5), 11);
        r.observe(Stream::Beacons, 2, at(1), 7);
        r.observe(Stream::Tourism, 1, at(0), 3);
        // Beacons at 10:06 keeping 2 minutes: the hour of 10:04 onwards; tourism has no
        // watermark.
        let clock: EventClock = [(Stream::Beacons, at(6))].into_iter().collect();
        let positions = r.positions(&clock, |_| Duration::minutes(2));
        assert_eq!(
            positions,
            vec![
                ReplayFrom {
                    stream: Stream::Beacons,
                    partition: 0,
                    offset: 10
                },
                ReplayFrom {
                    stream: Stream::Beacons,
                    partition: 2,
                    offset: 7
                },
            ]
        );
    }
}
