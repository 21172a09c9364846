//! `WasteContainer` (Smart Data Models, WasteManagement): fill-level readings of bins.

use std::sync::LazyLock;

use arrow::datatypes::{DataType, Field, SchemaRef};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    Envelope, Observation, OneOrMany, check_fraction, check_opt_range, closing_fields, extra_json,
    locate, observation_fields, schema_of, string_list, timestamp,
};
use crate::geo::GeoJson;
use crate::rejection::Rejection;
use crate::time::{micros, parse_rfc3339};

/// The `status` values of the Smart Data Model.
pub const STATUSES: [&str; 7] = [
    "ok",
    "lidOpen",
    "dropped",
    "moved",
    "vandalized",
    "burning",
    "unknown",
];

/// A bin reading as it arrives on `vallee.waste.containers`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(
    title = "WasteContainer",
    description = "Fill-level reading of a connected waste bin (FIWARE Smart Data Models, keyValues)"
)]
pub struct WasteContainerInput {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// Fill level, a fraction 0..1.
    #[serde(rename = "fillingLevel")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub filling_level: f64,
    /// Where the bin stands (GeoJSON Point).
    pub location: GeoJson,
    /// Fill level from which the bin counts as full, a fraction 0..1 (default 0.8 downstream).
    #[serde(rename = "binFullnessThreshold", default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub bin_fullness_threshold: Option<f64>,
    /// Inside temperature, °C.
    #[serde(default)]
    #[schemars(range(min = -60.0, max = 1500.0))]
    pub temperature: Option<f64>,
    /// Kind of waste (organic, glass, plastic, paper…); one value or a list.
    #[serde(rename = "storedWasteKind", default)]
    pub stored_waste_kind: Option<OneOrMany>,
    /// ok, lidOpen, dropped, moved, vandalized, burning, unknown.
    #[serde(default)]
    pub status: Option<String>,
    /// Last time the bin was emptied, RFC 3339.
    #[serde(rename = "dateLastEmptying", default)]
    pub date_last_emptying: Option<String>,
    /// The isle (group of bins) this bin belongs to.
    #[serde(rename = "refWasteContainerIsle", default)]
    pub ref_waste_container_isle: Option<String>,
    /// Postal address; `addressLocality` is kept.
    #[serde(default)]
    pub address: Option<Address>,
    /// Any other attribute: accepted and kept in the `extra` column.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A schema.org `PostalAddress`; only the locality is used, the rest is kept as is.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct Address {
    #[serde(rename = "addressLocality", default)]
    pub address_locality: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One row of `waste_containers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WasteContainerRecord {
    #[serde(flatten)]
    pub observation: Observation,
    #[serde(rename = "fillingLevel")]
    pub filling_level: f64,
    #[serde(rename = "binFullnessThreshold")]
    pub bin_fullness_threshold: Option<f64>,
    pub temperature: Option<f64>,
    #[serde(rename = "storedWasteKind")]
    pub stored_waste_kind: Option<Vec<String>>,
    pub status: Option<String>,
    #[serde(rename = "dateLastEmptying", with = "micros::option")]
    pub date_last_emptying: Option<DateTime<Utc>>,
    #[serde(rename = "refWasteContainerIsle")]
    pub ref_waste_container_isle: Option<String>,
    #[serde(rename = "addressLocality")]
    pub address_locality: Option<String>,
    pub longitude: f64,
    pub latitude: f64,
    /// INSEE code of the valley commune the bin stands in (`None` outside the valley).
    #[serde(rename = "communeCode")]
    pub commune_code: Option<String>,
    pub extra: Option<String>,
}

impl WasteContainerInput {
    pub fn validate(
        self,
        kafka_timestamp_ms: Option<i64>,
    ) -> Result<WasteContainerRecord, Rejection> {
        let observation = self.envelope.observe(kafka_timestamp_ms)?;
        let filling_level = check_fraction("fillingLevel", self.filling_level)?;
        let bin_fullness_threshold = self
            .bin_fullness_threshold
            .map(|t| check_fraction("binFullnessThreshold", t))
            .transpose()?;
        // A burning bin reads hundreds of degrees; beyond that the sensor is broken.
        let temperature = check_opt_range("temperature", self.temperature, -60.0, 1500.0)?;
        if let Some(status) = &self.status
            && !STATUSES.contains(&status.as_str())
        {
            return Err(Rejection::range(format!(
                "status {status:?} is not one of {STATUSES:?}"
            )));
        }
        let date_last_emptying = self
            .date_last_emptying
            .as_deref()
            .map(parse_rfc3339)
            .transpose()
            .map_err(|e| Rejection::schema(format!("dateLastEmptying: {e}")))?;
        let (point, commune_code) = locate(&self.location)?;
        Ok(WasteContainerRecord {
            observation,
            filling_level,
            bin_fullness_threshold,
            temperature,
            stored_waste_kind: self.stored_waste_kind.map(OneOrMany::into_vec),
            status: self.status,
            date_last_emptying,
            ref_waste_container_isle: self.ref_waste_container_isle,
            address_locality: self.address.and_then(|a| a.address_locality),
            longitude: point.lon,
            latitude: point.lat,
            commune_code,
            extra: extra_json(&self.extra),
        })
    }
}

/// Arrow schema of `waste_containers`.
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        schema_of([
            observation_fields(),
            vec![
                Field::new("fillingLevel", DataType::Float64, false),
                Field::new("binFullnessThreshold", DataType::Float64, true),
                Field::new("temperature", DataType::Float64, true),
                Field::new("storedWasteKind", string_list(), true),
                Field::new("status", DataType::Utf8, true),
                Field::new("dateLastEmptying", timestamp(), true),
                Field::new("refWasteContainerIsle", DataType::Utf8, true),
                Field::new("addressLocality", DataType::Utf8, true),
                Field::new("longitude", DataType::Float64, false),
                Field::new("latitude", DataType::Float64, false),
                Field::new("communeCode", DataType::Utf8, true),
            ],
            closing_fields(true),
        ])
    });
    SCHEMA.clone()
}
