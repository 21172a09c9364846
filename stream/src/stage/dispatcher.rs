//! The stage's computation, free of I/O: decoded events in, output rows out.
//!
//! The dispatcher holds one watermark per input stream and the four families
//! ([`crate::families`]). Each event goes to the family of its stream (a `match` on the
//! stream: a static call, nothing allocated), each tick advances every family on the
//! watermarks, and each commit collects their rows and replay positions.
//!
//! ```text
//!  beacons ─────────────────► footfall ─► footfall, footfall_dwell
//!  tourism ─────────────────► presence ─► site_presence
//!  waste containers, vehicles ► bins ────► fill_alerts, bin_forecast   (+ vallee.alerts)
//!  vineyards ───────────────► vine ─────► vine_indicators, vine_alerts (+ vallee.alerts)
//!  every event ─► its stream's watermark ─► EventClock at each tick ─► every family
//!  an event a family finds later than the correction horizon ─► late ─► late_events
//! ```

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use vallee_lake::Lake;
use vallee_schemas::contract::Stream;
use vallee_schemas::decode::Decoded;
use vallee_schemas::tables::AlertRow;

use super::StreamOptions;
use crate::Result;
use crate::families::bins::Bins;
use crate::families::footfall::Footfall;
use crate::families::presence::Presence;
use crate::families::vine::Vine;
use crate::families::{Arrival, Family, Read, ReplayFrom, Rows, StageWatermarks};
use crate::late::LateEvents;
use crate::window::Window;

/// The stage's state: the watermarks and the families.
pub struct Dispatcher {
    /// One watermark per input stream, shared by the families.
    watermarks: StageWatermarks,
    pub footfall: Footfall,
    pub presence: Presence,
    pub bins: Bins,
    pub vine: Vine,
    /// Events later than their stream's correction horizon, for `late_events`.
    pub late: LateEvents,
}

impl Dispatcher {
    /// A dispatcher whose per-batch plans run on `handle` (from a thread that may block).
    pub fn new(options: &StreamOptions, handle: tokio::runtime::Handle) -> Self {
        Dispatcher {
            watermarks: StageWatermarks::new(options),
            footfall: Footfall::new(options, handle.clone()),
            presence: Presence::new(options, handle),
            bins: Bins::new(options),
            vine: Vine::new(options),
            late: LateEvents::default(),
        }
    }

    /// Reads what the output tables hold and the state a restart resumes from.
    pub async fn restore(&mut self, lake: &Lake) -> Result<()> {
        self.footfall.restore(lake).await?;
        self.presence.restore(lake).await?;
        self.bins.restore(lake).await?;
        self.vine.restore(lake).await
    }

    /// A partition of `stream` was assigned: it holds the watermark until it delivers.
    /// The family reading `stream` is told (it judges only what its partitions feed, and
    /// rebuilds only whole windows of a partition `resumed` from a recorded offset).
    pub fn partition_assigned(
        &mut self,
        stream: Stream,
        partition: i32,
        resumed: bool,
        now: Instant,
    ) {
        self.watermarks.assigned(stream, partition, now);
        match stream {
            Stream::Beacons => self.footfall.partition_assigned(stream, partition, resumed),
            Stream::Tourism => self.presence.partition_assigned(stream, partition, resumed),
            Stream::WasteContainers | Stream::WasteVehicles => {
                self.bins.partition_assigned(stream, partition, resumed)
            }
            Stream::Vineyards => self.vine.partition_assigned(stream, partition, resumed),
            _ => {}
        }
    }

    /// A partition of `stream` the consumer found empty from where it started: it stops
    /// holding the watermark until it delivers.
    pub fn partition_found_empty(&mut self, stream: Stream, partition: i32) {
        self.watermarks.found_empty(stream, partition);
    }

    pub fn watermark(&self, stream: Stream, now: Instant) -> Option<DateTime<Utc>> {
        self.watermarks.watermark(stream, now)
    }

    /// One decoded event of `stream`, read at `topic[partition]@offset`.
    pub fn process(
        &mut self,
        stream: Stream,
        topic: &str,
        partition: i32,
        offset: i64,
        event: &Decoded,
        now: Instant,
    ) -> Result<()> {
        let time = event.event_time();
        self.watermarks.observe(stream, partition, time, now);
        let read = Read {
            stream,
            topic,
            partition,
            offset,
            time,
        };
        let arrival = match stream {
            Stream::Beacons => self.footfall.on_event(event, read)?,
            Stream::Tourism => self.presence.on_event(event, read)?,
            Stream::WasteContainers | Stream::WasteVehicles => self.bins.on_event(event, read)?,
            Stream::Vineyards => self.vine.on_event(event, read)?,
            // Not an input of the stage.
            Stream::CitizenReports
            | Stream::CitizenIdeas
            | Stream::StaffAudit
            | Stream::ReferencePlaces => Arrival::Taken,
        };
        if arrival == Arrival::TooLate {
            self.late.keep(event, read);
        }
        Ok(())
    }

    /// What `late_events` recorded for a partition just assigned (events below it were
    /// judged by an earlier run).
    pub fn late_recorded(&mut self, stream: Stream, partition: i32, offset: Option<i64>) {
        self.late.recorded(stream, partition, offset);
    }

    /// Event time moved on: every family runs what it buffered, closes what the
    /// watermarks passed and resolves what waited.
    pub fn tick(&mut self, now: Instant) -> Result<()> {
        let clock = self.watermarks.clock(now);
        self.footfall.advance(&clock)?;
        self.presence.advance(&clock)?;
        self.bins.advance(&clock)?;
        self.vine.advance(&clock)
    }

    /// Alerts decided since the last call, for the alerts topic and the live view.
    pub fn drain_alerts(&mut self) -> Vec<AlertRow> {
        let mut alerts = Vec::new();
        self.bins.drain_alerts(&mut alerts);
        self.vine.drain_alerts(&mut alerts);
        alerts
    }

    /// The rows produced since the last call, as one batch per output table that has any.
    pub fn drain_rows(&mut self) -> Result<Rows> {
        let mut rows = Rows::new();
        self.footfall.drain_rows(&mut rows)?;
        self.presence.drain_rows(&mut rows)?;
        self.bins.drain_rows(&mut rows)?;
        self.vine.drain_rows(&mut rows)?;
        self.late.drain_rows(&mut rows)?;
        Ok(rows)
    }

    /// Per source partition, where a restart must replay from.
    pub fn replay_positions(&mut self, now: Instant) -> Vec<ReplayFrom> {
        let clock = self.watermarks.clock(now);
        let mut positions = self.footfall.replay_from(&clock);
        positions.extend(self.presence.replay_from(&clock));
        positions.extend(self.bins.replay_from(&clock));
        positions.extend(self.vine.replay_from(&clock));
        positions
    }

    /// Bin alerts open now.
    pub fn open_alert_rows(&self) -> BTreeMap<String, AlertRow> {
        self.bins.open_alert_rows()
    }

    /// Rows too late for their windows or day, kept in `late_events`, per stream (since
    /// this process started).
    pub fn too_late(&self) -> BTreeMap<Stream, u64> {
        let kept = self.late.kept();
        [Stream::Beacons, Stream::Tourism, Stream::Vineyards]
            .into_iter()
            .map(|s| (s, kept.get(&s).copied().unwrap_or(0)))
            .collect()
    }

    /// Current values of open windows (early results for the live view).
    pub fn early_footfall(&self) -> Vec<(String, String, Window, i64)> {
        self.footfall.early()
    }
}

#[cfg(test)]
mod tests {
    use vallee_schemas::tables::OutputTable;

    use super::*;
    use crate::stage::consumer::INPUTS;

    /// The streams and tables of every family, in dispatch order.
    fn families() -> [(&'static [Stream], &'static [OutputTable]); 4] {
        [
            (Footfall::INPUTS, Footfall::OUTPUTS),
            (Presence::INPUTS, Presence::OUTPUTS),
            (Bins::INPUTS, Bins::OUTPUTS),
            (Vine::INPUTS, Vine::OUTPUTS),
        ]
    }

    #[test]
    fn every_input_feeds_one_family_and_every_output_has_one_writer_fed_by_its_sources() {
        for stream in INPUTS {
            let readers = families()
                .iter()
                .filter(|(inputs, _)| inputs.contains(&stream))
                .count();
            assert_eq!(readers, 1, "{stream}");
        }
        // `late_events` is the dispatcher's own, fed by what the windowed families refuse.
        for table in OutputTable::ALL
            .into_iter()
            .filter(|t| *t != crate::late::TABLE)
        {
            let writers: Vec<_> = families()
                .into_iter()
                .filter(|(_, outputs)| outputs.contains(&table))
                .collect();
            assert_eq!(writers.len(), 1, "{table}");
            let (inputs, _) = writers[0];
            assert!(
                table.sources().iter().all(|s| inputs.contains(s)),
                "{table} is fed by streams its family does not read"
            );
        }
    }
}
