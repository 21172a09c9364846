//! The footfall family: people per zone (distinct devices over PT5M and PT1H windows) and
//! dwell time per zone-hour, both from beacon sightings (`footfall`, `footfall_dwell`).
//!
//! Sightings are only buffered per event; the per-batch DataFusion plan
//! ([`crate::microbatch`]) reduces them to one partial per device and 5-minute bin, which
//! both the windows and the dwell sessions fold in. A zone configured as large is counted
//! with a sketch and its rows say `approximate`.

mod restore;
#[cfg(test)]
mod tests;
mod windows;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Duration, Utc};
use tokio::runtime::Handle;
use vallee_lake::Lake;
use vallee_schemas::contract::Stream;
use vallee_schemas::decode::Decoded;
use vallee_schemas::tables::{DwellRow, FootfallRow, OutputTable};
use vallee_schemas::time::utc_day;

use self::windows::FootfallWindows;
use super::{
    Arrival, EventClock, Family, Read, ReplayFrom, ReplayTracker, ResumeFloors, Rows, drain,
    revision,
};
use crate::Result;
use crate::aggregate::{DistinctCount, SketchCount};
use crate::dwell::{DwellEmission, DwellOperator, DwellSummary};
use crate::lineage::Topics;
use crate::microbatch::BatchEngine;
use crate::operator::Emission;
use crate::stage::StreamOptions;
use crate::window::{Window, WindowKind};

/// What `footfall` and `footfall_dwell` already hold.
#[derive(Debug, Default, Clone)]
pub struct Emitted {
    /// (zone, window size, start in µs) → latest revision and people.
    pub footfall: HashMap<(String, String, i64), (i32, i64)>,
    /// (zone, hour in µs) → latest revision and distribution.
    pub dwell: HashMap<(String, i64), (i32, DwellSummary)>,
}

/// Rows produced since the last commit.
#[derive(Debug, Default)]
pub struct Pending {
    pub footfall: Vec<FootfallRow>,
    pub dwell: Vec<DwellRow>,
}

/// What the family needs of the stage's options.
#[derive(Debug, Clone)]
struct Settings {
    zone_capacity: BTreeMap<String, i64>,
    default_zone_capacity: i64,
    sketch_zones: BTreeSet<String>,
    /// How far behind the beacons' watermark sightings are still needed.
    retention: Duration,
}

/// People per zone and dwell time, from beacon sightings.
pub struct Footfall {
    settings: Settings,
    /// People per zone, counted exactly, and in sketches for the zones configured as large.
    exact: FootfallWindows<DistinctCount>,
    sketch: FootfallWindows<SketchCount>,
    dwell: DwellOperator,
    /// Sightings waiting for their DataFusion plan.
    batches: BatchEngine,
    pub emitted: Emitted,
    pub pending: Pending,
    replay: ReplayTracker,
    /// Where the windows of the partitions resumed from a recorded offset are whole.
    floors: ResumeFloors,
    topics: Topics,
}

impl Footfall {
    /// A family whose per-batch plans run on `handle` (from a thread that may block).
    pub fn new(options: &StreamOptions, handle: Handle) -> Self {
        let horizon = options.correction_horizon(Stream::Beacons);
        let lateness = options
            .lateness
            .get(&Stream::Beacons)
            .copied()
            .unwrap_or_default();
        Footfall {
            settings: Settings {
                zone_capacity: options.zone_capacity.clone(),
                default_zone_capacity: options.default_zone_capacity,
                sketch_zones: options.sketch_zones.clone(),
                // An hour's windows and visits (cut at the hour, closed a gap after it)
                // within the correction horizon.
                retention: Duration::hours(1) + lateness + horizon + options.dwell_gap,
            },
            exact: FootfallWindows::new(horizon),
            sketch: FootfallWindows::new(horizon),
            dwell: DwellOperator::new(options.dwell_gap, horizon),
            batches: BatchEngine::new(handle),
            emitted: Emitted::default(),
            pending: Pending::default(),
            replay: ReplayTracker::default(),
            floors: ResumeFloors::default(),
            topics: Topics::default(),
        }
    }

    /// Whether a sighting of `zone` at `t` falls in a window already dropped.
    fn refuses(&self, zone: &str, t: chrono::DateTime<Utc>) -> bool {
        if self.settings.sketch_zones.contains(zone) {
            self.sketch.refuses(t)
        } else {
            self.exact.refuses(t)
        }
    }

    /// Current values of open windows (early results for the live view): zone, window
    /// size, window, people.
    pub fn early(&self) -> Vec<(String, String, Window, i64)> {
        let mut out = self.exact.early();
        out.extend(self.sketch.early());
        out
    }

    /// Runs the sightings' plan and folds its partials into the windows and sessions.
    fn fold(&mut self) -> Result<()> {
        let mut corrections = Vec::new();
        for partial in self.batches.take_sightings()? {
            if !self.dwell.insert(
                &partial.zone,
                partial.token,
                partial.time,
                partial.last,
                Some(&partial.lineage),
            ) {
                tracing::warn!(zone = partial.zone, time = %partial.time, "sightings older than the correction horizon: no dwell time");
            }
            let too_late = if self.settings.sketch_zones.contains(&partial.zone) {
                self.sketch.insert(&partial, &mut corrections)
            } else {
                self.exact.insert(&partial, &mut corrections)
            };
            if too_late {
                // Kept in `late_events` when it arrived ([`Family::on_event`]).
                tracing::debug!(zone = partial.zone, time = %partial.time, "sightings older than the correction horizon: not in every window");
            }
        }
        for (kind, e) in corrections {
            self.emit_footfall(kind, e);
        }
        Ok(())
    }

    fn emit_footfall(&mut self, kind: WindowKind, e: Emission<String, i64>) {
        let window = kind.iso_size();
        let key = (
            e.key.clone(),
            window.clone(),
            e.window.start.timestamp_micros(),
        );
        let Some(revision) = revision(&mut self.emitted.footfall, key, e.value) else {
            return;
        };
        let capacity = self
            .settings
            .zone_capacity
            .get(&e.key)
            .copied()
            .unwrap_or(self.settings.default_zone_capacity);
        self.pending.footfall.push(FootfallRow {
            approximate: self.settings.sketch_zones.contains(&e.key),
            congested: e.value >= capacity,
            zone: e.key,
            window,
            from: e.window.start,
            to: e.window.end,
            people_count: e.value,
            revision,
            is_final: e.is_final,
            day: utc_day(&e.window.start),
            lineage: e.lineage,
            computed_at: Utc::now(),
        });
    }

    fn emit_dwell(&mut self, e: DwellEmission) {
        let key = (e.zone.clone(), e.hour.timestamp_micros());
        let Some(revision) = revision(&mut self.emitted.dwell, key, e.summary) else {
            return;
        };
        let s = e.summary;
        self.pending.dwell.push(DwellRow {
            zone: e.zone,
            hour: e.hour,
            to: e.hour + Duration::hours(1),
            session_gap: crate::window::iso_duration(self.dwell.gap()),
            visits: s.sessions,
            under_5_min: s.under_5_min,
            from_5_to_15_min: s.from_5_to_15_min,
            from_15_to_30_min: s.from_15_to_30_min,
            from_30_to_60_min: s.from_30_to_60_min,
            mean_seconds: if s.sessions > 0 {
                s.total_seconds as f64 / s.sessions as f64
            } else {
                0.0
            },
            median_minutes: s.median_minutes,
            total_seconds: s.total_seconds,
            revision,
            day: utc_day(&e.hour),
            lineage: e.lineage,
            computed_at: Utc::now(),
        });
    }
}

impl Family for Footfall {
    const INPUTS: &'static [Stream] = &[Stream::Beacons];
    const OUTPUTS: &'static [OutputTable] = &[OutputTable::Footfall, OutputTable::FootfallDwell];

    async fn restore(&mut self, lake: &Lake) -> Result<()> {
        super::ensure_outputs::<Self>(lake).await?;
        self.emitted = restore::emitted(lake).await?;
        Ok(())
    }

    fn partition_assigned(&mut self, _stream: Stream, partition: i32, resumed: bool) {
        self.floors.assigned(partition, resumed);
    }

    /// The hot path: nothing per sighting but buffering it for the plan.
    fn on_event(&mut self, event: &Decoded, read: Read<'_>) -> Result<Arrival> {
        self.replay
            .observe(read.stream, read.partition, read.time, read.offset);
        let Decoded::Beacon(b) = event else {
            return Ok(Arrival::Taken);
        };
        if self.floors.before_floor(read.partition, read.time) {
            // Older than every window a resumed replay rebuilds (beyond the retention, so
            // beyond the horizon): read before the last commit, it was judged then (the
            // dispatcher leaves it out); read after, it is late now.
            return Ok(Arrival::TooLate);
        }
        // Judged before buffering, on the windows as the plan's partial will find them
        // (they only move at a tick). A sighting too late for its five minutes may still
        // count in its hour: it is buffered all the same.
        let arrival = if self.refuses(&b.record.zone, read.time) {
            Arrival::TooLate
        } else {
            Arrival::Taken
        };
        let source = self.topics.source(read.topic, read.partition, read.offset);
        if self.batches.topic_changes(true, read.topic) {
            self.fold()?;
        }
        if self.batches.sighting(
            &source.topic,
            &b.record.zone,
            read.time,
            b.device_token.as_str(),
            read.partition,
            read.offset,
        ) {
            self.fold()?;
        }
        Ok(arrival)
    }

    fn advance(&mut self, clock: &EventClock) -> Result<()> {
        self.fold()?;
        if let Some(w) = clock.watermark(Stream::Beacons) {
            let mut closed = self.exact.advance(w);
            closed.extend(self.sketch.advance(w));
            for (kind, e) in closed {
                self.emit_footfall(kind, e);
            }
            for e in self.dwell.advance(w) {
                self.emit_dwell(e);
            }
        }
        Ok(())
    }

    fn drain_rows(&mut self, rows: &mut Rows) -> Result<()> {
        drain(rows, OutputTable::Footfall, &mut self.pending.footfall)?;
        drain(rows, OutputTable::FootfallDwell, &mut self.pending.dwell)
    }

    fn replay_from(&mut self, clock: &EventClock) -> Vec<ReplayFrom> {
        let retention = self.settings.retention;
        self.replay.positions(clock, |_| retention)
    }
}
