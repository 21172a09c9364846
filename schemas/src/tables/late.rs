//! `late_events`: the events the stream stage received later than their stream's
//! correction horizon, kept with the reason instead of vanishing.
//!
//! One row per event (keyed by where it was read: topic, partition, offset), written by the
//! stage when it judges the event late (revision 0), then a revision per change of state:
//! `vallee lake fold-late` folds a pending tourism event into its site's hour and writes
//! it again as `folded`. A beacon sighting stays `not_foldable`: distinct devices cannot be
//! counted again after the fact, since the devices' tokens never reach the lake. So does a
//! weather reading of a station's closed day (`day_closed`).

use std::sync::{Arc, LazyLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::columns::Columns;
use super::lineage::Lineage;
use super::{OutputTable, TableRow};
use crate::events::timestamp;
use crate::time::micros;
use crate::{Error, Result};

/// Why an event is in `late_events`: its windows were older than its stream's correction
/// horizon when it arrived (their state was already dropped).
pub const BEYOND_CORRECTION_HORIZON: &str = "beyond_correction_horizon";
/// Why a weather reading is in `late_events`: its station's local day was already closed
/// (a season's sums run day after day; a closed day is not computed again).
pub const DAY_CLOSED: &str = "day_closed";
/// Every reason a row of `late_events` may give.
pub const REASONS: [&str; 2] = [BEYOND_CORRECTION_HORIZON, DAY_CLOSED];

/// Where a late event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LateState {
    /// Waiting for `vallee lake fold-late`.
    Pending,
    /// Counted in its window by a fold (a new revision of the window, if it changed it).
    Folded,
    /// Kept and counted, but no fold can put it in its windows (beacon sightings: their
    /// device tokens live only in memory and in the topic, never in the lake; weather
    /// readings of a closed day: the season's sums after it would all change).
    NotFoldable,
}

impl LateState {
    pub const ALL: [LateState; 3] = [
        LateState::Pending,
        LateState::Folded,
        LateState::NotFoldable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LateState::Pending => "pending",
            LateState::Folded => "folded",
            LateState::NotFoldable => "not_foldable",
        }
    }

    pub fn parse(s: &str) -> Option<LateState> {
        LateState::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

pub(super) fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("stream", DataType::Utf8, false),
            Field::new("id", DataType::Utf8, false),
            // The window key: a beacon zone, a tourist site.
            Field::new("entity", DataType::Utf8, false),
            Field::new("dateObserved", timestamp(), false),
            Field::new("hour", timestamp(), false),
            Field::new("count", DataType::Int64, false),
            Field::new("reason", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
            Field::new("revision", DataType::Int32, false),
            Field::new("_topic", DataType::Utf8, false),
            Field::new("_partition", DataType::Int32, false),
            Field::new("_offset", DataType::Int64, false),
            Field::new("day", DataType::Date32, false),
            Lineage::field(),
            Field::new("_computed_at", timestamp(), false),
        ]))
    });
    SCHEMA.clone()
}

/// A row of `late_events`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LateEventRow {
    /// The input stream (`beacons`, `tourism`).
    pub stream: String,
    /// The event's own id.
    pub id: String,
    /// What its windows are about: a zone, a site.
    pub entity: String,
    #[serde(rename = "dateObserved", with = "micros")]
    pub date_observed: DateTime<Utc>,
    /// The start of the hour it belongs to.
    #[serde(with = "micros")]
    pub hour: DateTime<Utc>,
    /// What it adds: visitors of a counter's upload, 1 for a sighting.
    pub count: i64,
    /// One of [`REASONS`].
    pub reason: &'static str,
    #[serde(serialize_with = "state")]
    pub state: LateState,
    pub revision: i32,
    #[serde(rename = "_topic")]
    pub topic: String,
    #[serde(rename = "_partition")]
    pub partition: i32,
    #[serde(rename = "_offset")]
    pub offset: i64,
    /// The UTC day of `dateObserved`.
    pub day: i32,
    pub lineage: Lineage,
    #[serde(rename = "_computed_at", with = "micros")]
    pub computed_at: DateTime<Utc>,
}

fn state<S: serde::Serializer>(state: &LateState, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(state.as_str())
}

impl TableRow for LateEventRow {
    const TABLES: &'static [OutputTable] = &[OutputTable::LateEvents];

    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let c = Columns::of_batch("late_events", batch);
        let (mut stream, mut id, mut entity) =
            (c.strings("stream")?, c.strings("id")?, c.strings("entity")?);
        let (mut observed, mut hour) = (c.timestamps("dateObserved")?, c.timestamps("hour")?);
        let (mut count, mut reason, mut state) =
            (c.ints("count")?, c.strings("reason")?, c.strings("state")?);
        let (mut revision, mut topic) = (c.ints("revision")?, c.strings("_topic")?);
        let (mut partition, mut offset) = (c.ints("_partition")?, c.ints("_offset")?);
        let (mut day, mut computed_at) = (c.days("day")?, c.timestamps("_computed_at")?);
        let lineage = Lineage::read(&c)?;
        let column = |column: &str, message: String| Error::Column {
            table: "late_events",
            column: column.into(),
            message,
        };
        lineage
            .into_iter()
            .enumerate()
            .map(|(i, lineage)| {
                let read_reason = reason.need(i)?;
                let Some(known) = REASONS.into_iter().find(|r| *r == read_reason) else {
                    return Err(column("reason", format!("unknown reason {read_reason:?}")));
                };
                let read_state = state.need(i)?;
                Ok(LateEventRow {
                    stream: stream.need(i)?,
                    id: id.need(i)?,
                    entity: entity.need(i)?,
                    date_observed: observed.need(i)?,
                    hour: hour.need(i)?,
                    count: count.need(i)?,
                    reason: known,
                    state: LateState::parse(&read_state)
                        .ok_or_else(|| column("state", format!("unknown state {read_state:?}")))?,
                    revision: revision.need(i)? as i32,
                    topic: topic.need(i)?,
                    partition: partition.need(i)? as i32,
                    offset: offset.need(i)?,
                    day: day.need(i)?,
                    lineage,
                    computed_at: computed_at.need(i)?,
                })
            })
            .collect()
    }
}
