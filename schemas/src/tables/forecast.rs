//! `bin_forecast`: per bin reading, the fill rate since the last emptying and when the bin
//! reaches its threshold.

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

/// A fall of the fill level larger than this between two readings of a bin is an
/// emptying: its trend, and the forecast made from it, start over.
pub const EMPTYING_DROP: f64 = 0.15;

pub(super) fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("entityId", DataType::Utf8, false),
            Field::new("dateObserved", timestamp(), false),
            Field::new("fillingLevel", DataType::Float64, false),
            Field::new("threshold", DataType::Float64, false),
            Field::new("fillRatePerHour", DataType::Float64, false),
            Field::new("fullAt", timestamp(), true),
            Field::new("readings", DataType::Int32, false),
            Field::new("storedWasteKind", DataType::Utf8, true),
            Field::new("communeCode", DataType::Utf8, true),
            Field::new("day", DataType::Date32, false),
            Lineage::field(),
            Field::new("_computed_at", timestamp(), false),
        ]))
    });
    SCHEMA.clone()
}

/// A row of `bin_forecast`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastRow {
    #[serde(rename = "entityId")]
    pub entity_id: String,
    #[serde(rename = "dateObserved", with = "micros")]
    pub date_observed: DateTime<Utc>,
    #[serde(rename = "fillingLevel")]
    pub filling_level: f64,
    pub threshold: f64,
    #[serde(rename = "fillRatePerHour")]
    pub rate_per_hour: f64,
    /// When the bin reaches its threshold (none: already past it, or not filling).
    #[serde(rename = "fullAt", with = "micros::option")]
    pub full_at: Option<DateTime<Utc>>,
    /// Readings the rate was fitted on.
    pub readings: i32,
    /// The kinds of waste, comma-separated.
    #[serde(rename = "storedWasteKind")]
    pub stored_waste_kind: Option<String>,
    #[serde(rename = "communeCode")]
    pub commune_code: Option<String>,
    pub day: i32,
    pub lineage: Lineage,
    #[serde(rename = "_computed_at", with = "micros")]
    pub computed_at: DateTime<Utc>,
}

impl TableRow for ForecastRow {
    const TABLES: &'static [OutputTable] = &[OutputTable::BinForecast];

    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let c = Columns::of_batch("bin_forecast", batch);
        let (mut entity, mut at) = (c.strings("entityId")?, c.timestamps("dateObserved")?);
        let (mut level, mut threshold) = (c.floats("fillingLevel")?, c.floats("threshold")?);
        let (mut rate, mut full_at) = (c.floats("fillRatePerHour")?, c.timestamps("fullAt")?);
        let (mut readings, mut kind) = (c.ints("readings")?, c.strings("storedWasteKind")?);
        let (mut commune, mut day) = (c.strings("communeCode")?, c.days("day")?);
        let mut computed_at = c.timestamps("_computed_at")?;
        let lineage = Lineage::read(&c)?;
        lineage
            .into_iter()
            .enumerate()
            .map(|(i, lineage)| {
                Ok(ForecastRow {
                    entity_id: entity.need(i)?,
                    date_observed: at.need(i)?,
                    filling_level: level.need(i)?,
                    threshold: threshold.need(i)?,
                    rate_per_hour: rate.need(i)?,
                    full_at: full_at.take(i),
                    readings: readings.need(i)? as i32,
                    stored_waste_kind: kind.take(i),
                    commune_code: commune.take(i),
                    day: day.need(i)?,
                    lineage,
                    computed_at: computed_at.need(i)?,
                })
            })
            .collect()
    }
}
