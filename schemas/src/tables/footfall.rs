//! `footfall` (people per zone and window) and `footfall_dwell` (how long visits lasted per
//! zone and hour): their Arrow schemas and rows.

use std::sync::{Arc, LazyLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::columns::Columns;
use super::lineage::Lineage;
use super::{OutputTable, TableRow};
use crate::Result;
use crate::events::timestamp;
use crate::time::micros;

pub(super) fn footfall_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("zone", DataType::Utf8, false),
            Field::new("window", DataType::Utf8, false),
            Field::new("dateObservedFrom", timestamp(), false),
            Field::new("dateObservedTo", timestamp(), false),
            Field::new("peopleCount", DataType::Int64, false),
            Field::new("approximate", DataType::Boolean, false),
            Field::new("congested", DataType::Boolean, false),
            Field::new("revision", DataType::Int32, false),
            Field::new("final", DataType::Boolean, false),
            Field::new("day", DataType::Date32, false),
            Lineage::field(),
            Field::new("_computed_at", timestamp(), false),
        ]))
    });
    SCHEMA.clone()
}

pub(super) fn dwell_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("zone", DataType::Utf8, false),
            Field::new("hour", timestamp(), false),
            Field::new("dateObservedTo", timestamp(), false),
            Field::new("sessionGap", DataType::Utf8, false),
            Field::new("visits", DataType::Int64, false),
            Field::new("dwellUnder5Min", DataType::Int64, false),
            Field::new("dwell5To15Min", DataType::Int64, false),
            Field::new("dwell15To30Min", DataType::Int64, false),
            Field::new("dwell30To60Min", DataType::Int64, false),
            Field::new("meanDwellSeconds", DataType::Float64, false),
            Field::new("medianDwellMinutes", DataType::Int64, false),
            Field::new("totalDwellSeconds", DataType::Int64, false),
            Field::new("revision", DataType::Int32, false),
            Field::new("day", DataType::Date32, false),
            Lineage::field(),
            Field::new("_computed_at", timestamp(), false),
        ]))
    });
    SCHEMA.clone()
}

/// A row of `footfall`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FootfallRow {
    pub zone: String,
    /// ISO 8601 duration of the window: `PT5M` or `PT1H`.
    pub window: String,
    #[serde(rename = "dateObservedFrom", with = "micros")]
    pub from: DateTime<Utc>,
    #[serde(rename = "dateObservedTo", with = "micros")]
    pub to: DateTime<Utc>,
    #[serde(rename = "peopleCount")]
    pub people_count: i64,
    /// Counted with a sketch (a zone configured as large), not exactly.
    pub approximate: bool,
    pub congested: bool,
    pub revision: i32,
    /// The watermark passed the window's end.
    #[serde(rename = "final")]
    pub is_final: bool,
    pub day: i32,
    pub lineage: Lineage,
    #[serde(rename = "_computed_at", with = "micros")]
    pub computed_at: DateTime<Utc>,
}

impl TableRow for FootfallRow {
    const TABLES: &'static [OutputTable] = &[OutputTable::Footfall];

    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let c = Columns::of_batch("footfall", batch);
        let (mut zone, mut window) = (c.strings("zone")?, c.strings("window")?);
        let (mut from, mut to) = (
            c.timestamps("dateObservedFrom")?,
            c.timestamps("dateObservedTo")?,
        );
        let (mut people, mut revision) = (c.ints("peopleCount")?, c.ints("revision")?);
        let (mut approximate, mut congested, mut is_final) = (
            c.bools("approximate")?,
            c.bools("congested")?,
            c.bools("final")?,
        );
        let (mut day, mut computed_at) = (c.days("day")?, c.timestamps("_computed_at")?);
        let lineage = Lineage::read(&c)?;
        lineage
            .into_iter()
            .enumerate()
            .map(|(i, lineage)| {
                Ok(FootfallRow {
                    zone: zone.need(i)?,
                    window: window.need(i)?,
                    from: from.need(i)?,
                    to: to.need(i)?,
                    people_count: people.need(i)?,
                    approximate: approximate.need(i)?,
                    congested: congested.need(i)?,
                    revision: revision.need(i)? as i32,
                    is_final: is_final.need(i)?,
                    day: day.need(i)?,
                    lineage,
                    computed_at: computed_at.need(i)?,
                })
            })
            .collect()
    }
}

/// A row of `footfall_dwell`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DwellRow {
    pub zone: String,
    #[serde(with = "micros")]
    pub hour: DateTime<Utc>,
    #[serde(rename = "dateObservedTo", with = "micros")]
    pub to: DateTime<Utc>,
    /// ISO 8601 duration: the longest gap between a device's sightings within one visit.
    #[serde(rename = "sessionGap")]
    pub session_gap: String,
    pub visits: i64,
    #[serde(rename = "dwellUnder5Min")]
    pub under_5_min: i64,
    #[serde(rename = "dwell5To15Min")]
    pub from_5_to_15_min: i64,
    #[serde(rename = "dwell15To30Min")]
    pub from_15_to_30_min: i64,
    #[serde(rename = "dwell30To60Min")]
    pub from_30_to_60_min: i64,
    #[serde(rename = "meanDwellSeconds")]
    pub mean_seconds: f64,
    #[serde(rename = "medianDwellMinutes")]
    pub median_minutes: i64,
    #[serde(rename = "totalDwellSeconds")]
    pub total_seconds: i64,
    pub revision: i32,
    pub day: i32,
    pub lineage: Lineage,
    #[serde(rename = "_computed_at", with = "micros")]
    pub computed_at: DateTime<Utc>,
}

impl TableRow for DwellRow {
    const TABLES: &'static [OutputTable] = &[OutputTable::FootfallDwell];

    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let c = Columns::of_batch("footfall_dwell", batch);
        let (mut zone, mut hour, mut to) = (
            c.strings("zone")?,
            c.timestamps("hour")?,
            c.timestamps("dateObservedTo")?,
        );
        let (mut gap, mut visits) = (c.strings("sessionGap")?, c.ints("visits")?);
        let (mut under_5, mut from_5) = (c.ints("dwellUnder5Min")?, c.ints("dwell5To15Min")?);
        let (mut from_15, mut from_30) = (c.ints("dwell15To30Min")?, c.ints("dwell30To60Min")?);
        let (mut mean, mut median) = (c.floats("meanDwellSeconds")?, c.ints("medianDwellMinutes")?);
        let (mut total, mut revision) = (c.ints("totalDwellSeconds")?, c.ints("revision")?);
        let (mut day, mut computed_at) = (c.days("day")?, c.timestamps("_computed_at")?);
        let lineage = Lineage::read(&c)?;
        lineage
            .into_iter()
            .enumerate()
            .map(|(i, lineage)| {
                Ok(DwellRow {
                    zone: zone.need(i)?,
                    hour: hour.need(i)?,
                    to: to.need(i)?,
                    session_gap: gap.need(i)?,
                    visits: visits.need(i)?,
                    under_5_min: under_5.need(i)?,
                    from_5_to_15_min: from_5.need(i)?,
                    from_15_to_30_min: from_15.need(i)?,
                    from_30_to_60_min: from_30.need(i)?,
                    mean_seconds: mean.need(i)?,
                    median_minutes: median.need(i)?,
                    total_seconds: total.need(i)?,
                    revision: revision.need(i)? as i32,
                    day: day.need(i)?,
                    lineage,
                    computed_at: computed_at.need(i)?,
                })
            })
            .collect()
    }
}
