//! `WeatherObserved` (Smart Data Models, Weather): readings of vineyard weather stations.

use std::sync::LazyLock;

use arrow::datatypes::{DataType, Field, SchemaRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    Envelope, Observation, OneOrMany, check_opt_fraction, check_opt_range, closing_fields,
    extra_json, locate_opt, observation_fields, schema_of, string_list,
};
use crate::geo::GeoJson;
use crate::rejection::Rejection;

/// A station reading as it arrives on `vallee.vineyards`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(
    title = "WeatherObserved",
    description = "Reading of a weather station (FIWARE Smart Data Models, keyValues)"
)]
pub struct WeatherObservedInput {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// Air temperature, °C.
    #[serde(default)]
    #[schemars(range(min = -60.0, max = 60.0))]
    pub temperature: Option<f64>,
    /// Rain since the previous reading, mm (l/m²).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 500.0))]
    pub precipitation: Option<f64>,
    /// Relative humidity, a fraction 0..1.
    #[serde(rename = "relativeHumidity", default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub relative_humidity: Option<f64>,
    /// Wind speed, m/s.
    #[serde(rename = "windSpeed", default)]
    #[schemars(range(min = 0.0, max = 120.0))]
    pub wind_speed: Option<f64>,
    /// Dew point, °C.
    #[serde(rename = "dewPoint", default)]
    #[schemars(range(min = -80.0, max = 60.0))]
    pub dew_point: Option<f64>,
    /// Parcels this station covers (frost alerts go to them).
    #[serde(rename = "refParcels", default)]
    pub ref_parcels: Option<OneOrMany>,
    /// Where the station stands.
    #[serde(default)]
    pub location: Option<GeoJson>,
    /// Any other attribute: accepted and kept in the `extra` column.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One row of `weather_observed`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeatherRecord {
    #[serde(flatten)]
    pub observation: Observation,
    pub temperature: Option<f64>,
    pub precipitation: Option<f64>,
    #[serde(rename = "relativeHumidity")]
    pub relative_humidity: Option<f64>,
    #[serde(rename = "windSpeed")]
    pub wind_speed: Option<f64>,
    #[serde(rename = "dewPoint")]
    pub dew_point: Option<f64>,
    #[serde(rename = "refParcels")]
    pub ref_parcels: Option<Vec<String>>,
    pub longitude: Option<f64>,
    pub latitude: Option<f64>,
    #[serde(rename = "communeCode")]
    pub commune_code: Option<String>,
    pub extra: Option<String>,
}

impl WeatherObservedInput {
    pub fn validate(self, kafka_timestamp_ms: Option<i64>) -> Result<WeatherRecord, Rejection> {
        let observation = self.envelope.observe(kafka_timestamp_ms)?;
        let (longitude, latitude, commune_code) = locate_opt(self.location.as_ref())?;
        Ok(WeatherRecord {
            observation,
            // °C: the Earth's records are about -89 and +57; France's highest, 46.0, was measured
            // in the Hérault (Vérargues, June 2019).
            temperature: check_opt_range("temperature", self.temperature, -60.0, 60.0)?,
            // mm since the previous reading: the Cévennes episodes, the valley's worst, bring
            // a few hundred mm in a day; a station reports far more often than daily.
            precipitation: check_opt_range("precipitation", self.precipitation, 0.0, 500.0)?,
            relative_humidity: check_opt_fraction("relativeHumidity", self.relative_humidity)?,
            // m/s: the strongest gust ever measured is 113 m/s (a tropical cyclone).
            wind_speed: check_opt_range("windSpeed", self.wind_speed, 0.0, 120.0)?,
            // °C: a dew point is never above the air temperature.
            dew_point: check_opt_range("dewPoint", self.dew_point, -80.0, 60.0)?,
            ref_parcels: self.ref_parcels.map(OneOrMany::into_vec),
            longitude,
            latitude,
            commune_code,
            extra: extra_json(&self.extra),
        })
    }
}

/// Arrow schema of `weather_observed`.
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        schema_of([
            observation_fields(),
            vec![
                Field::new("temperature", DataType::Float64, true),
                Field::new("precipitation", DataType::Float64, true),
                Field::new("relativeHumidity", DataType::Float64, true),
                Field::new("windSpeed", DataType::Float64, true),
                Field::new("dewPoint", DataType::Float64, true),
                Field::new("refParcels", string_list(), true),
                Field::new("longitude", DataType::Float64, true),
                Field::new("latitude", DataType::Float64, true),
                Field::new("communeCode", DataType::Utf8, true),
            ],
            closing_fields(true),
        ])
    });
    SCHEMA.clone()
}
