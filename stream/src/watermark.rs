//! Watermarks: how far event time has certainly progressed on a stream.
//!
//! The watermark of a stream is the minimum, over its *active* partitions, of the highest
//! event time each has delivered, minus the stream's allowed lateness. A partition that has
//! delivered nothing for `idle_timeout` (processing time) stops holding the watermark back,
//! so a quiet partition or stream (bins report a few times a day) never stalls the others.
//! When every partition is idle, the most advanced one decides.
//!
//! A partition assigned but silent so far is active too, with an unknown position: until it
//! delivers (or idles out) the watermark does not move. Without that, after a restart the
//! first partition to replay would close windows the others have not replayed yet, and the
//! stage would write wrong corrections. When the consumer finds such a partition empty
//! from where it started ([`crate::stage::empty_partitions`]), it stops holding the
//! watermark at once instead of after the idle timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use std::time::Instant;

/// Watermark settings of one stream.
#[derive(Debug, Clone, Copy)]
pub struct WatermarkOptions {
    /// How late (event time) a row may be and still fall in an open window.
    pub allowed_lateness: chrono::Duration,
    /// Processing time after which a silent partition no longer holds the watermark.
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone, Copy)]
struct PartitionClock {
    /// `None` for a partition assigned that has delivered nothing yet.
    max_event_time: Option<DateTime<Utc>>,
    /// The last delivery (or the assignment).
    last_delivery: Instant,
    /// Found empty from where it started: holds nothing until it delivers.
    empty: bool,
}

/// The watermark of one stream.
#[derive(Debug, Clone)]
pub struct Watermarks {
    options: WatermarkOptions,
    partitions: BTreeMap<i32, PartitionClock>,
}

impl Watermarks {
    pub fn new(options: WatermarkOptions) -> Self {
        Watermarks {
            options,
            partitions: BTreeMap::new(),
        }
    }

    /// Records a row of `partition` with event time `t`, delivered at `now`.
    pub fn observe(&mut self, partition: i32, t: DateTime<Utc>, now: Instant) {
        let clock = self.partitions.entry(partition).or_insert(PartitionClock {
            max_event_time: Some(t),
            last_delivery: now,
            empty: false,
        });
        clock.max_event_time = Some(clock.max_event_time.map_or(t, |m| m.max(t)));
        clock.last_delivery = now;
        clock.empty = false;
    }

    /// A partition assigned at `now`: it holds the watermark until it delivers or idles.
    pub fn assigned(&mut self, partition: i32, now: Instant) {
        let clock = self.partitions.entry(partition).or_insert(PartitionClock {
            max_event_time: None,
            last_delivery: now,
            empty: false,
        });
        clock.empty = false; // assigned again: it is found empty afresh, or not
    }

    /// The consumer found `partition` empty from where it started reading: until it
    /// delivers, it does not hold the watermark back. A partition that delivered is judged
    /// by its event times, so this changes nothing for it.
    pub fn found_empty(&mut self, partition: i32) {
        if let Some(clock) = self.partitions.get_mut(&partition) {
            clock.empty = clock.max_event_time.is_none();
        }
    }

    /// Forgets a partition (revoked from this process).
    pub fn remove(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    /// The watermark at `now`, `None` before any row.
    pub fn watermark(&self, now: Instant) -> Option<DateTime<Utc>> {
        let active: Vec<Option<DateTime<Utc>>> = self
            .partitions
            .values()
            .filter(|c| now.saturating_duration_since(c.last_delivery) < self.options.idle_timeout)
            .filter(|c| !c.empty)
            .map(|c| c.max_event_time)
            .collect();
        if active.iter().any(Option::is_none) {
            return None; // an assigned partition has not said where it is yet
        }
        let horizon = active.into_iter().flatten().min().or_else(|| {
            self.partitions
                .values()
                .filter_map(|c| c.max_event_time)
                .max()
        })?;
        Some(horizon - self.options.allowed_lateness)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const OPTIONS: WatermarkOptions = WatermarkOptions {
        allowed_lateness: chrono::Duration::seconds(30),
        idle_timeout: Duration::from_secs(30),
    };

    // The processing clock is passed in, so tests freeze and move it at will.
    fn clock() -> impl FnMut(u64) -> Instant {
        let start = Instant::now();
        move |secs| start + Duration::from_secs(secs)
    }

    #[test]
    fn the_slowest_active_partition_minus_lateness() {
        let mut at = clock();
        let mut w = Watermarks::new(OPTIONS);
        assert_eq!(w.watermark(at(0)), None);
        w.observe(0, t("2026-11-28T10:05:00Z"), at(0));
        w.observe(1, t("2026-11-28T10:02:00Z"), at(0));
        w.observe(0, t("2026-11-28T10:01:00Z"), at(1)); // out of order: max stays
        assert_eq!(w.watermark(at(1)), Some(t("2026-11-28T10:01:30Z")));
    }

    #[test]
    fn an_idle_partition_stops_holding_the_watermark_back() {
        let mut at = clock();
        let mut w = Watermarks::new(OPTIONS);
        w.observe(0, t("2026-11-28T10:00:00Z"), at(0));
        w.observe(1, t("2026-11-28T08:00:00Z"), at(0));
        assert_eq!(w.watermark(at(0)), Some(t("2026-11-28T07:59:30Z")));
        w.observe(0, t("2026-11-28T10:10:00Z"), at(20));
        // Partition 1 silent for 35 s: only partition 0 counts.
        assert_eq!(w.watermark(at(35)), Some(t("2026-11-28T10:09:30Z")));
        // Everything idle: the most advanced partition decides, the stream does not stall.
        assert_eq!(w.watermark(at(95)), Some(t("2026-11-28T10:09:30Z")));
        // Partition 1 speaks again, far behind: it holds the watermark back again (the
        // watermark of a stream may move back; windows already closed stay closed).
        w.observe(1, t("2026-11-28T09:00:00Z"), at(96));
        assert_eq!(w.watermark(at(96)), Some(t("2026-11-28T08:59:30Z")));
        w.remove(1);
        assert_eq!(w.watermark(at(96)), Some(t("2026-11-28T10:09:30Z")));
    }

    #[test]
    fn an_assigned_partition_holds_the_watermark_until_it_delivers_or_idles() {
        let mut w = Watermarks::new(WatermarkOptions {
            allowed_lateness: chrono::Duration::seconds(30),
            idle_timeout: Duration::from_secs(30),
        });
        let start = Instant::now();
        w.assigned(0, start);
        w.assigned(1, start);
        w.observe(0, t("2026-11-28T11:10:00Z"), start);
        assert_eq!(
            w.watermark(start),
            None,
            "partition 1 may still replay 10:00"
        );
        w.observe(1, t("2026-11-28T10:05:00Z"), start);
        assert_eq!(w.watermark(start), Some(t("2026-11-28T10:04:30Z")));
        // A partition assigned and silent past the idle timeout no longer holds it.
        w.assigned(2, start);
        let later = start + Duration::from_secs(31);
        assert_eq!(w.watermark(later), Some(t("2026-11-28T11:09:30Z")));
    }

    #[test]
    fn a_partition_found_empty_stops_holding_at_once_until_it_delivers() {
        let mut at = clock();
        let mut w = Watermarks::new(OPTIONS);
        for p in 0..3 {
            w.assigned(p, at(0));
        }
        w.observe(0, t("2026-11-28T10:05:00Z"), at(0));
        w.observe(1, t("2026-11-28T10:02:00Z"), at(0));
        assert_eq!(w.watermark(at(1)), None, "partition 2 may still replay");
        w.found_empty(2);
        assert_eq!(
            w.watermark(at(1)),
            Some(t("2026-11-28T10:01:30Z")),
            "long before the idle timeout"
        );
        // Marking a partition that delivered changes nothing: its event time still counts.
        w.found_empty(1);
        assert_eq!(w.watermark(at(1)), Some(t("2026-11-28T10:01:30Z")));
        // The empty partition delivers: it holds again, by its event time.
        w.observe(2, t("2026-11-28T09:50:00Z"), at(2));
        assert_eq!(w.watermark(at(2)), Some(t("2026-11-28T09:49:30Z")));
        // A partition not assigned is not invented.
        w.found_empty(7);
        assert_eq!(w.watermark(at(2)), Some(t("2026-11-28T09:49:30Z")));
    }
}
