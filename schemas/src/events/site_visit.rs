//! `SiteVisit`: presence counts at tourist sites and AR-trail check-ins.

use std::sync::LazyLock;

use arrow::datatypes::{DataType, Field, SchemaRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    Envelope, Observation, closing_fields, extra_json, locate_opt, observation_fields, schema_of,
};
use crate::geo::GeoJson;
use crate::rejection::Rejection;

/// Where a visit count comes from.
pub const SOURCES: [&str; 3] = ["counter", "ar-trail", "beacon"];

/// Most visitors one event may count. The valley's busiest site (the Pont du Diable and
/// its beach) sees some hundreds of thousands of visitors in a whole year, and a counter
/// reports every few minutes: a reading above this is a broken counter. The bound also
/// keeps every sum of counts downstream (presence and visit windows, the stream stage's
/// tallies, SQL `sum`s over `site_visits`) far from `i64` overflow: it would take 92
/// trillion events at the bound.
pub const MAX_COUNT: i64 = 100_000;

/// A visit as it arrives on `vallee.tourism`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(
    title = "SiteVisit",
    description = "Visitors counted at a tourist site, or an AR-trail check-in"
)]
pub struct SiteVisitInput {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// Site id, e.g. `abbaye-de-gellone`.
    #[schemars(length(min = 1))]
    pub site: String,
    /// INSEE code of the site's commune.
    #[serde(rename = "locationCode")]
    #[schemars(regex(pattern = r"^[0-9][0-9AB][0-9]{3}$"))]
    pub location_code: String,
    /// counter, ar-trail or beacon.
    pub source: String,
    /// Number of visitors (at least 1, at most 100 000).
    #[schemars(range(min = 1, max = 100_000))]
    pub count: i64,
    /// Point of the AR trail checked in at.
    #[serde(rename = "arPoint", default)]
    pub ar_point: Option<String>,
    /// Country of the visitor (ISO 3166-1 alpha-2), when known.
    #[serde(default)]
    pub nationality: Option<String>,
    #[serde(default)]
    pub location: Option<GeoJson>,
    /// Any other attribute: accepted and kept in the `extra` column.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One row of `site_visits`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteVisitRecord {
    #[serde(flatten)]
    pub observation: Observation,
    pub site: String,
    #[serde(rename = "locationCode")]
    pub location_code: String,
    pub source: String,
    pub count: i64,
    #[serde(rename = "arPoint")]
    pub ar_point: Option<String>,
    pub nationality: Option<String>,
    pub longitude: Option<f64>,
    pub latitude: Option<f64>,
    pub extra: Option<String>,
}

/// An INSEE commune code: five characters, digits, `2A`/`2B` for Corsica.
pub fn is_insee_code(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 5
        && b[0].is_ascii_digit()
        && (b[1].is_ascii_digit() || (b[0] == b'2' && matches!(b[1], b'A' | b'B')))
        && b[2..].iter().all(u8::is_ascii_digit)
}

impl SiteVisitInput {
    pub fn validate(self, kafka_timestamp_ms: Option<i64>) -> Result<SiteVisitRecord, Rejection> {
        let observation = self.envelope.observe(kafka_timestamp_ms)?;
        if self.site.trim().is_empty() {
            return Err(Rejection::schema("site must be a non-empty string"));
        }
        if !is_insee_code(&self.location_code) {
            return Err(Rejection::schema(format!(
                "locationCode {:?} is not an INSEE commune code",
                self.location_code
            )));
        }
        if !SOURCES.contains(&self.source.as_str()) {
            return Err(Rejection::range(format!(
                "source {:?} is not one of {SOURCES:?}",
                self.source
            )));
        }
        if !(1..=MAX_COUNT).contains(&self.count) {
            return Err(Rejection::range(format!(
                "count = {} is outside [1, {MAX_COUNT}]",
                self.count
            )));
        }
        let (longitude, latitude, _) = locate_opt(self.location.as_ref())?;
        Ok(SiteVisitRecord {
            observation,
            site: self.site,
            location_code: self.location_code,
            source: self.source,
            count: self.count,
            ar_point: self.ar_point,
            nationality: self.nationality,
            longitude,
            latitude,
            extra: extra_json(&self.extra),
        })
    }
}

/// Arrow schema of `site_visits`.
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        schema_of([
            observation_fields(),
            vec![
                Field::new("site", DataType::Utf8, false),
                Field::new("locationCode", DataType::Utf8, false),
                Field::new("source", DataType::Utf8, false),
                Field::new("count", DataType::Int64, false),
                Field::new("arPoint", DataType::Utf8, true),
                Field::new("nationality", DataType::Utf8, true),
                Field::new("longitude", DataType::Float64, true),
                Field::new("latitude", DataType::Float64, true),
            ],
            closing_fields(true),
        ])
    });
    SCHEMA.clone()
}
