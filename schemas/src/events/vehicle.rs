//! `Vehicle` (Smart Data Models, Transportation): positions of waste-collection trucks.

use std::sync::LazyLock;

use arrow::datatypes::{DataType, Field, SchemaRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    Envelope, Observation, OneOrMany, check_opt_range, closing_fields, extra_json, locate,
    observation_fields, schema_of, string_list,
};
use crate::geo::GeoJson;
use crate::rejection::Rejection;

/// A truck position as it arrives on `vallee.waste.vehicles`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(
    title = "Vehicle",
    description = "Position and service of a waste-collection truck (FIWARE Smart Data Models, keyValues)"
)]
pub struct VehicleInput {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// Where the vehicle is (GeoJSON Point).
    pub location: GeoJson,
    /// lorry, van, car…
    #[serde(rename = "vehicleType")]
    pub vehicle_type: String,
    /// Services the vehicle provides, e.g. `["garbageCollection"]`.
    #[serde(rename = "serviceProvided")]
    pub service_provided: OneOrMany,
    /// onRoute, parked, broken, outOfService.
    #[serde(rename = "serviceStatus")]
    pub service_status: String,
    /// municipalServices, public…
    #[serde(default)]
    pub category: Option<OneOrMany>,
    /// km/h; -1 when unknown.
    #[serde(default)]
    #[schemars(range(min = -1.0, max = 300.0))]
    pub speed: Option<f64>,
    /// Degrees from north, [0, 360); -1 when stationary.
    #[serde(default)]
    #[schemars(range(min = -1.0, max = 360.0))]
    pub heading: Option<f64>,
    /// kg carried.
    #[serde(rename = "cargoWeight", default)]
    #[schemars(range(min = 0.0, max = 100_000.0))]
    pub cargo_weight: Option<f64>,
    /// Any other attribute: accepted and kept in the `extra` column.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One row of `waste_vehicles`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VehicleRecord {
    #[serde(flatten)]
    pub observation: Observation,
    #[serde(rename = "vehicleType")]
    pub vehicle_type: String,
    pub category: Option<Vec<String>>,
    #[serde(rename = "serviceProvided")]
    pub service_provided: Vec<String>,
    #[serde(rename = "serviceStatus")]
    pub service_status: String,
    pub speed: Option<f64>,
    pub heading: Option<f64>,
    #[serde(rename = "cargoWeight")]
    pub cargo_weight: Option<f64>,
    pub longitude: f64,
    pub latitude: f64,
    #[serde(rename = "communeCode")]
    pub commune_code: Option<String>,
    pub extra: Option<String>,
}

impl VehicleRecord {
    /// Whether this vehicle collects garbage (proof of collection looks for these).
    pub fn collects_garbage(&self) -> bool {
        self.service_provided
            .iter()
            .any(|s| s == "garbageCollection")
    }
}

impl VehicleInput {
    pub fn validate(self, kafka_timestamp_ms: Option<i64>) -> Result<VehicleRecord, Rejection> {
        let observation = self.envelope.observe(kafka_timestamp_ms)?;
        if self.vehicle_type.trim().is_empty() {
            return Err(Rejection::schema("vehicleType must be a non-empty string"));
        }
        // -1 is the model's "unknown"; no road vehicle of a collection fleet reaches
        // 300 km/h (a lorry is limited to 90): more is a GPS glitch.
        let speed = check_opt_range("speed", self.speed, -1.0, 300.0)?;
        // Degrees from north; -1 when stationary.
        let heading = check_opt_range("heading", self.heading, -1.0, 360.0)?;
        // kg: the heaviest lorry allowed on French roads weighs 44 t loaded; 100 t leaves room
        // for exceptional convoys and nothing for a sensor reading in grams.
        let cargo_weight = check_opt_range("cargoWeight", self.cargo_weight, 0.0, 100_000.0)?;
        let (point, commune_code) = locate(&self.location)?;
        Ok(VehicleRecord {
            observation,
            vehicle_type: self.vehicle_type,
            category: self.category.map(OneOrMany::into_vec),
            service_provided: self.service_provided.into_vec(),
            service_status: self.service_status,
            speed,
            heading,
            cargo_weight,
            longitude: point.lon,
            latitude: point.lat,
            commune_code,
            extra: extra_json(&self.extra),
        })
    }
}

/// Arrow schema of `waste_vehicles`.
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        schema_of([
            observation_fields(),
            vec![
                Field::new("vehicleType", DataType::Utf8, false),
                Field::new("category", string_list(), true),
                Field::new("serviceProvided", string_list(), false),
                Field::new("serviceStatus", DataType::Utf8, false),
                Field::new("speed", DataType::Float64, true),
                Field::new("heading", DataType::Float64, true),
                Field::new("cargoWeight", DataType::Float64, true),
                Field::new("longitude", DataType::Float64, false),
                Field::new("latitude", DataType::Float64, false),
                Field::new("communeCode", DataType::Utf8, true),
            ],
            closing_fields(true),
        ])
    });
    SCHEMA.clone()
}
