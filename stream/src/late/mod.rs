//! Events later than their stream's correction horizon: kept in `late_events`, never
//! dropped, and folded into their windows on a staff's command.
//!
//! ```text
//!  family.on_event ── TooLate ──► LateEvents::keep ──► late_events (revision 0, pending
//!                                                      or not_foldable), at the commit
//!  vallee lake fold-late ──► fold::run: each pending visit's site-hour counted again from
//!                            site_visits ──► site_presence (new revision when it differs)
//!                                        └─► late_events (revision 1, folded)
//! ```
//!
//! # Exactly once
//! `late_events` records, per source partition, the offset after the last event the stage
//! had judged when it committed, at every commit (the other outputs record where a replay
//! must start). A replay after a restart or a rebalance reads events again from an
//! earlier offset: those below the recorded one were judged by the run before and their
//! rows are in the table, so they are not written again ([`LateEvents::recorded`]); an
//! event judged since, not committed, is read again by the replay (it starts at or before
//! the other outputs' offsets) and judged again. A resumed partition's replay ignores what
//! is older than the hours it rebuilds (`ResumeFloors`): such an event, read after the
//! last commit, is beyond the horizon and kept as late.
//!
//! # Why beacons are not folded
//! A footfall window counts distinct devices. Their pseudonymous tokens live in memory and
//! in the 24 h topic only, never in the lake (the hub's privacy promise), so a window
//! closed beyond its horizon cannot tell whether a late device was already counted: the
//! sighting is kept as `not_foldable`. The beacons' horizon
//! (`[stream.correction_horizon_s] beacons`) is the setting for gateways known to upload
//! late, up to the topic's retention. A weather reading of a station's local day already
//! closed is kept the same way (`day_closed`): the season's sums (degree days, Huglin,
//! mildew) run day after day, and every day after it would change.

pub mod fold;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use vallee_schemas::contract::Stream;
use vallee_schemas::decode::Decoded;
use vallee_schemas::tables::late::{BEYOND_CORRECTION_HORIZON, DAY_CLOSED};
use vallee_schemas::tables::{LateEventRow, LateState, OutputTable};
use vallee_schemas::time::utc_day;

use crate::Result;
use crate::families::{Read, Rows, drain};
use crate::lineage::{Lineage, Topics};

/// The table. It records the offset read up to, not a replay position: a partition's
/// replay starts from the other outputs' offsets ([`replay_start`]).
pub const TABLE: OutputTable = OutputTable::LateEvents;

/// Where a partition's replay starts, from the offsets its outputs recorded: the
/// smallest replay position among those that recorded one (`late_events` records how far
/// events were judged, not what state needs). `None`: from the beginning.
pub fn replay_start(stored: &BTreeMap<OutputTable, Option<i64>>) -> Option<i64> {
    stored
        .iter()
        .filter(|(t, _)| **t != TABLE)
        .filter_map(|(_, o)| *o)
        .min()
}

/// Late events judged since the last commit, and what earlier runs judged already.
#[derive(Debug, Default)]
pub struct LateEvents {
    /// Per source partition, the offset `late_events` recorded: events below it were
    /// judged by an earlier run.
    recorded: HashMap<(Stream, i32), i64>,
    pending: Vec<LateEventRow>,
    /// Kept since this process started, per stream (the metrics' counter).
    kept: BTreeMap<Stream, u64>,
    topics: Topics,
}

impl LateEvents {
    /// A partition was assigned: `offset` is what `late_events` recorded for it.
    pub fn recorded(&mut self, stream: Stream, partition: i32, offset: Option<i64>) {
        match offset {
            Some(o) => self.recorded.insert((stream, partition), o),
            None => self.recorded.remove(&(stream, partition)),
        };
    }

    /// `event` came later than its stream's correction horizon: kept, unless an earlier
    /// run kept it already.
    pub fn keep(&mut self, event: &Decoded, read: Read<'_>) {
        if self
            .recorded
            .get(&(read.stream, read.partition))
            .is_some_and(|r| read.offset < *r)
        {
            return; // judged before the restart, in the table
        }
        let (count, state) = match event {
            Decoded::SiteVisit(v) => (v.count, LateState::Pending),
            _ => (1, LateState::NotFoldable),
        };
        let reason = match read.stream {
            Stream::Vineyards => DAY_CLOSED,
            _ => BEYOND_CORRECTION_HORIZON,
        };
        *self.kept.entry(read.stream).or_default() += 1;
        tracing::warn!(
            stream = %read.stream,
            entity = event.state_key(),
            time = %read.time,
            partition = read.partition,
            offset = read.offset,
            state = state.as_str(),
            reason,
            "event too late for its windows or day: kept in late_events"
        );
        let source = self.topics.source(read.topic, read.partition, read.offset);
        self.pending.push(LateEventRow {
            stream: read.stream.to_string(),
            id: event.id().to_string(),
            entity: event.state_key().to_string(),
            date_observed: read.time,
            hour: hour_of(read.time),
            count,
            reason,
            state,
            revision: 0,
            topic: read.topic.to_string(),
            partition: read.partition,
            offset: read.offset,
            day: utc_day(&read.time),
            lineage: Lineage::of(&source),
            computed_at: Utc::now(),
        });
    }

    /// Events kept since this process started, per stream.
    pub fn kept(&self) -> &BTreeMap<Stream, u64> {
        &self.kept
    }

    pub fn drain_rows(&mut self, rows: &mut Rows) -> Result<()> {
        drain(rows, TABLE, &mut self.pending)
    }
}

/// The start of the hour of `t`.
pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    let micros = t.timestamp_micros();
    let hour = Duration::hours(1)
        .num_microseconds()
        .unwrap_or(3_600_000_000);
    DateTime::from_timestamp_micros(micros - micros.rem_euclid(hour)).unwrap_or(t)
}

#[cfg(test)]
mod tests;
