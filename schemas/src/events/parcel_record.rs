//! `AgriParcelRecord` (Smart Data Models, Agrifood): readings of vineyard parcel sensors.

use std::sync::LazyLock;

use arrow::datatypes::{DataType, Field, SchemaRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    Envelope, Observation, check_opt_fraction, check_opt_range, closing_fields, extra_json,
    locate_opt, observation_fields, schema_of,
};
use crate::geo::GeoJson;
use crate::rejection::Rejection;

/// A parcel reading as it arrives on `vallee.vineyards`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(
    title = "AgriParcelRecord",
    description = "Soil and canopy reading of a vineyard parcel (FIWARE Smart Data Models, keyValues)"
)]
pub struct ParcelRecordInput {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// The parcel (AgriParcel id) the sensor belongs to.
    #[serde(rename = "hasAgriParcel")]
    #[schemars(length(min = 1))]
    pub has_agri_parcel: String,
    /// Volumetric soil moisture, a fraction 0..1.
    #[serde(rename = "soilMoistureVwc", default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub soil_moisture_vwc: Option<f64>,
    /// Soil temperature, °C.
    #[serde(rename = "soilTemperature", default)]
    #[schemars(range(min = -30.0, max = 70.0))]
    pub soil_temperature: Option<f64>,
    /// Leaf wetness, a fraction 0..1.
    #[serde(rename = "leafWetness", default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub leaf_wetness: Option<f64>,
    /// Air relative humidity in the canopy, a fraction 0..1.
    #[serde(rename = "relativeHumidity", default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub relative_humidity: Option<f64>,
    /// The sensor's position or the parcel's outline.
    #[serde(default)]
    pub location: Option<GeoJson>,
    /// Any other attribute: accepted and kept in the `extra` column.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One row of `parcel_records`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParcelRecord {
    #[serde(flatten)]
    pub observation: Observation,
    #[serde(rename = "hasAgriParcel")]
    pub has_agri_parcel: String,
    #[serde(rename = "soilMoistureVwc")]
    pub soil_moisture_vwc: Option<f64>,
    #[serde(rename = "soilTemperature")]
    pub soil_temperature: Option<f64>,
    #[serde(rename = "leafWetness")]
    pub leaf_wetness: Option<f64>,
    #[serde(rename = "relativeHumidity")]
    pub relative_humidity: Option<f64>,
    pub longitude: Option<f64>,
    pub latitude: Option<f64>,
    #[serde(rename = "communeCode")]
    pub commune_code: Option<String>,
    pub extra: Option<String>,
}

impl ParcelRecordInput {
    pub fn validate(self, kafka_timestamp_ms: Option<i64>) -> Result<ParcelRecord, Rejection> {
        let observation = self.envelope.observe(kafka_timestamp_ms)?;
        if self.has_agri_parcel.trim().is_empty() {
            return Err(Rejection::schema(
                "hasAgriParcel must be a non-empty string",
            ));
        }
        let (longitude, latitude, commune_code) = locate_opt(self.location.as_ref())?;
        Ok(ParcelRecord {
            observation,
            has_agri_parcel: self.has_agri_parcel,
            soil_moisture_vwc: check_opt_fraction("soilMoistureVwc", self.soil_moisture_vwc)?,
            // °C: the soil a probe is buried in, in a Mediterranean vineyard, stays far
            // inside these; beyond, the probe is broken or out of the ground.
            soil_temperature: check_opt_range(
                "soilTemperature",
                self.soil_temperature,
                -30.0,
                70.0,
            )?,
            leaf_wetness: check_opt_fraction("leafWetness", self.leaf_wetness)?,
            relative_humidity: check_opt_fraction("relativeHumidity", self.relative_humidity)?,
            longitude,
            latitude,
            commune_code,
            extra: extra_json(&self.extra),
        })
    }
}

/// Arrow schema of `parcel_records`.
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        schema_of([
            observation_fields(),
            vec![
                Field::new("hasAgriParcel", DataType::Utf8, false),
                Field::new("soilMoistureVwc", DataType::Float64, true),
                Field::new("soilTemperature", DataType::Float64, true),
                Field::new("leafWetness", DataType::Float64, true),
                Field::new("relativeHumidity", DataType::Float64, true),
                Field::new("longitude", DataType::Float64, true),
                Field::new("latitude", DataType::Float64, true),
                Field::new("communeCode", DataType::Utf8, true),
            ],
            closing_fields(true),
        ])
    });
    SCHEMA.clone()
}
