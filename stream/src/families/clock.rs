//! Event time as the families see it: one watermark per input stream, shared by every
//! family (the bins read the trucks' too), and the snapshot of them a tick hands out.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use vallee_schemas::contract::Stream;

use crate::stage::StreamOptions;
use crate::watermark::{WatermarkOptions, Watermarks};

/// The watermarks of the sensor streams, each with its allowed lateness.
#[derive(Debug, Clone)]
pub struct StageWatermarks(BTreeMap<Stream, Watermarks>);

impl StageWatermarks {
    pub fn new(options: &StreamOptions) -> Self {
        StageWatermarks(
            Stream::SENSORS
                .iter()
                .map(|s| {
                    let allowed_lateness = options
                        .lateness
                        .get(s)
                        .copied()
                        .unwrap_or(Duration::minutes(1));
                    let options = WatermarkOptions {
                        allowed_lateness,
                        idle_timeout: options.idle_timeout,
                    };
                    (*s, Watermarks::new(options))
                })
                .collect(),
        )
    }

    /// An event of `stream` with event time `t` read from `partition` at `now`.
    pub fn observe(&mut self, stream: Stream, partition: i32, t: DateTime<Utc>, now: Instant) {
        if let Some(w) = self.0.get_mut(&stream) {
            w.observe(partition, t, now);
        }
    }

    /// A partition of `stream` was assigned: it holds the watermark until it delivers.
    pub fn assigned(&mut self, stream: Stream, partition: i32, now: Instant) {
        if let Some(w) = self.0.get_mut(&stream) {
            w.assigned(partition, now);
        }
    }

    /// A partition of `stream` the consumer found empty from where it started: it stops
    /// holding the watermark until it delivers.
    pub fn found_empty(&mut self, stream: Stream, partition: i32) {
        if let Some(w) = self.0.get_mut(&stream) {
            w.found_empty(partition);
        }
    }

    pub fn watermark(&self, stream: Stream, now: Instant) -> Option<DateTime<Utc>> {
        self.0.get(&stream).and_then(|w| w.watermark(now))
    }

    /// Every stream's watermark at `now`.
    pub fn clock(&self, now: Instant) -> EventClock {
        EventClock(
            self.0
                .iter()
                .filter_map(|(s, w)| Some((*s, w.watermark(now)?)))
                .collect(),
        )
    }
}

/// The watermark of each stream at one instant (`None`: no event of it yet).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventClock(BTreeMap<Stream, DateTime<Utc>>);

impl EventClock {
    pub fn watermark(&self, stream: Stream) -> Option<DateTime<Utc>> {
        self.0.get(&stream).copied()
    }
}

impl FromIterator<(Stream, DateTime<Utc>)> for EventClock {
    fn from_iter<I: IntoIterator<Item = (Stream, DateTime<Utc>)>>(iter: I) -> Self {
        EventClock(iter.into_iter().collect())
    }
}
