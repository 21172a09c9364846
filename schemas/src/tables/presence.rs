//! `site_presence`: visitors per tourist site and hour, with AR-trail check-ins.

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

/// The `aggregationType` of every `site_presence` row (TourismPresenceObserved): counts
/// summed over the hour.
pub const HOURLY_SUM: &str = "hourly_sum";

pub(super) fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("site", DataType::Utf8, false),
            Field::new("locationCode", DataType::Utf8, false),
            Field::new("hour", timestamp(), false),
            Field::new("dateObservedTo", timestamp(), false),
            Field::new("visitorCount", DataType::Int64, false),
            Field::new("arCheckins", DataType::Int64, false),
            Field::new(
                "arCheckinsByPoint",
                DataType::List(Arc::new(Field::new_list_field(
                    DataType::Struct(
                        vec![
                            Field::new("point", DataType::Utf8, false),
                            Field::new("checkins", DataType::Int64, false),
                        ]
                        .into(),
                    ),
                    false,
                ))),
                false,
            ),
            Field::new("aggregationType", DataType::Utf8, false),
            Field::new("revision", DataType::Int32, false),
            Field::new("final", DataType::Boolean, false),
            Field::new("day", DataType::Date32, false),
            Lineage::field(),
            Field::new("_computed_at", timestamp(), false),
        ]))
    });
    SCHEMA.clone()
}

/// A row of `site_presence`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PresenceRow {
    pub site: String,
    /// INSEE code of the site's commune.
    #[serde(rename = "locationCode")]
    pub location_code: String,
    #[serde(with = "micros")]
    pub hour: DateTime<Utc>,
    #[serde(rename = "dateObservedTo", with = "micros")]
    pub to: DateTime<Utc>,
    #[serde(rename = "visitorCount")]
    pub visitor_count: i64,
    #[serde(rename = "arCheckins")]
    pub ar_checkins: i64,
    #[serde(rename = "arCheckinsByPoint")]
    pub ar_checkins_by_point: Vec<PointCheckins>,
    /// Always [`HOURLY_SUM`].
    #[serde(rename = "aggregationType")]
    pub aggregation_type: &'static str,
    pub revision: i32,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub day: i32,
    pub lineage: Lineage,
    #[serde(rename = "_computed_at", with = "micros")]
    pub computed_at: DateTime<Utc>,
}

/// AR-trail check-ins at one point of a site in an hour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointCheckins {
    pub point: String,
    pub checkins: i64,
}

impl TableRow for PresenceRow {
    const TABLES: &'static [OutputTable] = &[OutputTable::SitePresence];

    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let c = Columns::of_batch("site_presence", batch);
        let (mut site, mut code) = (c.strings("site")?, c.strings("locationCode")?);
        let (mut hour, mut to) = (c.timestamps("hour")?, c.timestamps("dateObservedTo")?);
        let (mut visitors, mut checkins) = (c.ints("visitorCount")?, c.ints("arCheckins")?);
        let mut points = c.struct_lists("arCheckinsByPoint")?;
        let (mut aggregation, mut revision) = (c.strings("aggregationType")?, c.ints("revision")?);
        let (mut is_final, mut day) = (c.bools("final")?, c.days("day")?);
        let mut computed_at = c.timestamps("_computed_at")?;
        let lineage = Lineage::read(&c)?;
        lineage
            .into_iter()
            .enumerate()
            .map(|(i, lineage)| {
                let aggregation = aggregation.need(i)?;
                if aggregation != HOURLY_SUM {
                    return Err(Error::Column {
                        table: "site_presence",
                        column: "aggregationType".into(),
                        message: format!("{aggregation:?} is not {HOURLY_SUM:?}"),
                    });
                }
                Ok(PresenceRow {
                    site: site.need(i)?,
                    location_code: code.need(i)?,
                    hour: hour.need(i)?,
                    to: to.need(i)?,
                    visitor_count: visitors.need(i)?,
                    ar_checkins: checkins.need(i)?,
                    ar_checkins_by_point: read_points(points.need(i)?)?,
                    aggregation_type: HOURLY_SUM,
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

fn read_points(points: Columns) -> Result<Vec<PointCheckins>> {
    let (mut point, mut checkins) = (points.strings("point")?, points.ints("checkins")?);
    (0..points.len())
        .map(|j| {
            Ok(PointCheckins {
                point: point.need(j)?,
                checkins: checkins.need(j)?,
            })
        })
        .collect()
}
