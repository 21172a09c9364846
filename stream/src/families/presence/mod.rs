//! The presence family: visitors and AR check-ins per site and hour (`site_presence`), from
//! the tourism stream (site counters and AR-trail check-ins).
//!
//! Visits are buffered per event; the per-batch DataFusion plan ([`crate::microbatch`])
//! sums them per (site, hour, AR point) and the hourly windows fold the sums in.

mod restore;
#[cfg(test)]
mod tests;
pub mod value;

use std::collections::{BTreeMap, HashMap};

use chrono::{Duration, Utc};
use tokio::runtime::Handle;
use vallee_lake::Lake;
use vallee_schemas::contract::Stream;
use vallee_schemas::decode::Decoded;
use vallee_schemas::tables::{OutputTable, PointCheckins, PresenceRow};
use vallee_schemas::time::utc_day;

use self::value::{PresenceDigest, PresenceValue};
use super::{
    Arrival, EventClock, Family, Read, ReplayFrom, ReplayTracker, ResumeFloors, Rows, drain,
    revision,
};
use crate::Result;
use crate::lineage::Topics;
use crate::microbatch::BatchEngine;
use crate::operator::{Emission, WindowOperator};
use crate::stage::StreamOptions;
use crate::window::WindowKind;

/// What `site_presence` already holds: (site, hour in µs) → latest revision and
/// (visitors, AR check-ins, points digest).
pub type Emitted = HashMap<(String, i64), (i32, PresenceDigest)>;

/// Visitors per site and hour.
pub struct Presence {
    windows: WindowOperator<String, value::Presence>,
    /// The commune (INSEE code) of each site, as its visits say.
    site_codes: BTreeMap<String, String>,
    /// Visits waiting for their DataFusion plan.
    batches: BatchEngine,
    pub emitted: Emitted,
    pub pending: Vec<PresenceRow>,
    replay: ReplayTracker,
    /// Where the windows of the partitions resumed from a recorded offset are whole.
    floors: ResumeFloors,
    /// How far behind the tourism watermark visits are still needed.
    retention: Duration,
    topics: Topics,
}

impl Presence {
    /// A family whose per-batch plans run on `handle` (from a thread that may block).
    pub fn new(options: &StreamOptions, handle: Handle) -> Self {
        let horizon = options.correction_horizon(Stream::Tourism);
        let lateness = options
            .lateness
            .get(&Stream::Tourism)
            .copied()
            .unwrap_or_default();
        Presence {
            windows: WindowOperator::new(
                WindowKind::Tumbling {
                    size: Duration::hours(1),
                },
                horizon,
            ),
            site_codes: BTreeMap::new(),
            batches: BatchEngine::new(handle),
            emitted: Emitted::default(),
            pending: Vec::new(),
            replay: ReplayTracker::default(),
            floors: ResumeFloors::default(),
            // An hour's windows within the correction horizon (with the same margin as
            // the beacons', which end a dwell gap after the hour).
            retention: Duration::hours(1) + lateness + horizon + options.dwell_gap,
            topics: Topics::default(),
        }
    }

    /// Runs the visits' plan and folds its partials into the hourly windows.
    fn fold(&mut self) -> Result<()> {
        for partial in self.batches.take_visits()? {
            self.site_codes
                .insert(partial.site.clone(), partial.location_code.clone());
            let inserted = self.windows.insert(
                &partial.site,
                partial.time,
                &(
                    partial
                        .ar
                        .then(|| partial.ar_point.clone().unwrap_or_default()),
                    partial.count,
                ),
                Some(&partial.lineage),
            );
            // Judged on arrival ([`Family::on_event`]): a visit refused here is a bug.
            debug_assert!(
                !inserted.too_late,
                "a visit older than the horizon was buffered"
            );
            for e in inserted.corrections {
                self.emit(e);
            }
        }
        Ok(())
    }

    fn emit(&mut self, e: Emission<String, PresenceValue>) {
        let key = (e.key.clone(), e.window.start.timestamp_micros());
        let Some(revision) = revision(&mut self.emitted, key, e.value.digest()) else {
            return;
        };
        self.pending.push(PresenceRow {
            location_code: self.site_codes.get(&e.key).cloned().unwrap_or_default(),
            site: e.key,
            hour: e.window.start,
            to: e.window.end,
            visitor_count: e.value.visitors,
            ar_checkins: e.value.ar_checkins,
            ar_checkins_by_point: e
                .value
                .ar_points
                .into_iter()
                .map(|(point, checkins)| PointCheckins { point, checkins })
                .collect(),
            aggregation_type: "hourly_sum",
            revision,
            is_final: e.is_final,
            day: utc_day(&e.window.start),
            lineage: e.lineage,
            computed_at: Utc::now(),
        });
    }
}

impl Family for Presence {
    const INPUTS: &'static [Stream] = &[Stream::Tourism];
    const OUTPUTS: &'static [OutputTable] = &[OutputTable::SitePresence];

    async fn restore(&mut self, lake: &Lake) -> Result<()> {
        super::ensure_outputs::<Self>(lake).await?;
        self.emitted = restore::emitted(lake).await?;
        Ok(())
    }

    fn partition_assigned(&mut self, _stream: Stream, partition: i32, resumed: bool) {
        self.floors.assigned(partition, resumed);
    }

    fn on_event(&mut self, event: &Decoded, read: Read<'_>) -> Result<Arrival> {
        self.replay
            .observe(read.stream, read.partition, read.time, read.offset);
        let Decoded::SiteVisit(v) = event else {
            return Ok(Arrival::Taken);
        };
        if self.floors.before_floor(read.partition, read.time) {
            // Older than every window a resumed replay rebuilds (beyond the retention, so
            // beyond the horizon): read before the last commit, it was judged then (the
            // dispatcher leaves it out); read after, it is late now.
            return Ok(Arrival::TooLate);
        }
        if self.windows.refuses(read.time) {
            // Its hour's state is gone: kept in `late_events`, for a fold.
            return Ok(Arrival::TooLate);
        }
        let source = self.topics.source(read.topic, read.partition, read.offset);
        if self.batches.topic_changes(false, read.topic) {
            self.fold()?;
        }
        // An AR-trail check-in without a point still counts, under "".
        let ar_point = (v.source == "ar-trail").then(|| v.ar_point.as_deref().unwrap_or(""));
        if self.batches.visit(
            &source.topic,
            &v.site,
            &v.location_code,
            read.time,
            ar_point,
            v.count,
            read.partition,
            read.offset,
        ) {
            self.fold()?;
        }
        Ok(Arrival::Taken)
    }

    fn advance(&mut self, clock: &EventClock) -> Result<()> {
        self.fold()?;
        if let Some(w) = clock.watermark(Stream::Tourism) {
            for e in self.windows.advance(w) {
                self.emit(e);
            }
        }
        Ok(())
    }

    fn drain_rows(&mut self, rows: &mut Rows) -> Result<()> {
        drain(rows, OutputTable::SitePresence, &mut self.pending)
    }

    fn replay_from(&mut self, clock: &EventClock) -> Vec<ReplayFrom> {
        let retention = self.retention;
        self.replay.positions(clock, |_| retention)
    }
}
