//! `vine_indicators`: vineyard indicators per weather station and local day (Europe/Paris),
//! also the season state a restart of the stage resumes from.

use std::sync::{Arc, LazyLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::columns::Columns;
use super::lineage::Lineage;
use super::{OutputTable, TableRow};
use crate::Result;
use crate::events::timestamp;
use crate::time::micros;

pub(super) fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("station", DataType::Utf8, false),
            Field::new("day", DataType::Date32, false),
            Field::new("latitude", DataType::Float64, false),
            Field::new("tmin", DataType::Float64, false),
            Field::new("tmax", DataType::Float64, false),
            Field::new("tmean", DataType::Float64, false),
            Field::new("rainMm", DataType::Float64, false),
            Field::new("growingDegreeDays", DataType::Float64, false),
            Field::new("winklerIndex", DataType::Float64, false),
            Field::new("huglinIndex", DataType::Float64, false),
            Field::new("oosporeDegreeDays", DataType::Float64, false),
            Field::new("downyMildew310", DataType::Boolean, false),
            Field::new("gublerThomasIndex", DataType::Int32, false),
            Field::new("gublerThomasStarted", DataType::Boolean, false),
            Field::new("gublerThomasStreak", DataType::Int32, false),
            Field::new("revision", DataType::Int32, false),
            Lineage::field(),
            Field::new("_computed_at", timestamp(), false),
        ]))
    });
    SCHEMA.clone()
}

/// A row of `vine_indicators` (also the season state a restart resumes from).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VineRow {
    pub station: String,
    /// The local day (Europe/Paris).
    #[serde(with = "crate::time::days")]
    pub day: NaiveDate,
    pub latitude: f64,
    pub tmin: f64,
    pub tmax: f64,
    pub tmean: f64,
    #[serde(rename = "rainMm")]
    pub rain_mm: f64,
    /// Growing degree days, base 10 °C, of the day.
    #[serde(rename = "growingDegreeDays")]
    pub gdd: f64,
    /// Growing degree days summed since 1 April.
    #[serde(rename = "winklerIndex")]
    pub winkler: f64,
    #[serde(rename = "huglinIndex")]
    pub huglin: f64,
    /// Oospore maturation degree days, base 8 °C, since 1 January.
    #[serde(rename = "oosporeDegreeDays")]
    pub oospore: f64,
    /// Downy mildew "3-10" conditions met.
    #[serde(rename = "downyMildew310")]
    pub downy: bool,
    /// Gubler-Thomas powdery mildew index (0–100; 0 until it starts).
    #[serde(rename = "gublerThomasIndex")]
    pub gubler_thomas: i32,
    /// Whether the Gubler-Thomas index has started this season.
    #[serde(rename = "gublerThomasStarted")]
    pub gt_started: bool,
    /// Consecutive qualifying days before the index starts.
    #[serde(rename = "gublerThomasStreak")]
    pub gt_streak: i32,
    pub revision: i32,
    pub lineage: Lineage,
    #[serde(rename = "_computed_at", with = "micros")]
    pub computed_at: DateTime<Utc>,
}

impl TableRow for VineRow {
    const TABLES: &'static [OutputTable] = &[OutputTable::VineIndicators];

    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let c = Columns::of_batch("vine_indicators", batch);
        let (mut station, mut day) = (c.strings("station")?, c.dates("day")?);
        let (mut latitude, mut tmin) = (c.floats("latitude")?, c.floats("tmin")?);
        let (mut tmax, mut tmean) = (c.floats("tmax")?, c.floats("tmean")?);
        let (mut rain, mut gdd) = (c.floats("rainMm")?, c.floats("growingDegreeDays")?);
        let (mut winkler, mut huglin) = (c.floats("winklerIndex")?, c.floats("huglinIndex")?);
        let (mut oospore, mut downy) = (c.floats("oosporeDegreeDays")?, c.bools("downyMildew310")?);
        let (mut gt, mut started) = (
            c.ints("gublerThomasIndex")?,
            c.bools("gublerThomasStarted")?,
        );
        let (mut streak, mut revision) = (c.ints("gublerThomasStreak")?, c.ints("revision")?);
        let mut computed_at = c.timestamps("_computed_at")?;
        let lineage = Lineage::read(&c)?;
        lineage
            .into_iter()
            .enumerate()
            .map(|(i, lineage)| {
                Ok(VineRow {
                    station: station.need(i)?,
                    day: day.need(i)?,
                    latitude: latitude.need(i)?,
                    tmin: tmin.need(i)?,
                    tmax: tmax.need(i)?,
                    tmean: tmean.need(i)?,
                    rain_mm: rain.need(i)?,
                    gdd: gdd.need(i)?,
                    winkler: winkler.need(i)?,
                    huglin: huglin.need(i)?,
                    oospore: oospore.need(i)?,
                    downy: downy.need(i)?,
                    gubler_thomas: gt.need(i)? as i32,
                    gt_started: started.need(i)?,
                    gt_streak: streak.need(i)? as i32,
                    revision: revision.need(i)? as i32,
                    lineage,
                    computed_at: computed_at.need(i)?,
                })
            })
            .collect()
    }
}
