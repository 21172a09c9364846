//! Event types of the input contract, one module each.
//!
//! Every module has the same three parts:
//! - an `…Input` struct: what arrives, lenient where FIWARE is (unknown attributes are
//!   collected, not refused) and strict where the contract is (required attributes and
//!   their JSON types, checked by serde);
//! - a `validate` step: ranges, enumerations, identifiers, event time, commune placement;
//! - a `…Record` struct: one row of the lake table, serialized straight into the table's
//!   Arrow schema ([`crate::batch`]), and that schema.
//!
//! The parts all types share (envelope, observation columns, lineage, checks) are here.

pub mod beacon;
pub mod parcel_record;
pub mod site_visit;
pub mod vehicle;
pub mod waste_container;
pub mod weather;

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::communes;
use crate::geo::{GeoJson, GeoPoint};
use crate::rejection::Rejection;
use crate::time::{TimeSource, micros, resolve_event_time};

/// The attributes every event carries.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct Envelope {
    /// Entity id; any non-empty string, `urn:ngsi-ld:<Type>:<local id>` recommended.
    #[schemars(length(min = 1))]
    pub id: String,
    /// The Smart Data Models type name.
    #[serde(rename = "type")]
    pub kind: String,
    /// Event time, RFC 3339 with a UTC offset.
    #[serde(rename = "dateObserved", default)]
    pub date_observed: Option<String>,
    /// Event time added by FIWARE IoT agents; used when `dateObserved` is absent.
    #[serde(rename = "TimeInstant", default)]
    pub time_instant: Option<String>,
}

impl Envelope {
    /// Checks the id and resolves the event time.
    pub fn observe(&self, kafka_timestamp_ms: Option<i64>) -> Result<Observation, Rejection> {
        observe(
            &self.id,
            self.date_observed.as_deref(),
            self.time_instant.as_deref(),
            kafka_timestamp_ms,
        )
    }
}

/// [`Envelope::observe`] over borrowed attributes.
pub(crate) fn observe(
    id: &str,
    date_observed: Option<&str>,
    time_instant: Option<&str>,
    kafka_timestamp_ms: Option<i64>,
) -> Result<Observation, Rejection> {
    if id.trim().is_empty() {
        return Err(Rejection::schema("id must be a non-empty string"));
    }
    let (date_observed, time_source) =
        resolve_event_time(date_observed, time_instant, kafka_timestamp_ms)
            .map_err(Rejection::schema)?;
    Ok(Observation {
        id: id.to_string(),
        date_observed,
        time_source,
    })
}

/// The columns every data row starts with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    pub id: String,
    #[serde(rename = "dateObserved", with = "micros")]
    pub date_observed: DateTime<Utc>,
    #[serde(rename = "_time_source")]
    pub time_source: TimeSource,
}

/// A string or a list of strings: Smart Data Models declare some attributes as arrays
/// that devices often send as a single value.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Unknown attributes, kept as JSON text in the `extra` column (`None` when there are none).
pub(crate) fn extra_json(extra: &Map<String, Value>) -> Option<String> {
    (!extra.is_empty()).then(|| Value::Object(extra.clone()).to_string())
}

/// A value within `[min, max]`.
pub(crate) fn check_range(name: &str, value: f64, min: f64, max: f64) -> Result<f64, Rejection> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(Rejection::range(format!(
            "{name} = {value} is outside [{min}, {max}]"
        )))
    }
}

/// An optional value within `[min, max]`.
pub(crate) fn check_opt_range(
    name: &str,
    value: Option<f64>,
    min: f64,
    max: f64,
) -> Result<Option<f64>, Rejection> {
    value.map(|v| check_range(name, v, min, max)).transpose()
}

/// A fraction 0..1 (humidity, moisture, wetness, fill level). Percentages are refused
/// rather than guessed: 0.8 % and 80 % differ by a factor 100.
pub(crate) fn check_fraction(name: &str, value: f64) -> Result<f64, Rejection> {
    check_range(name, value, 0.0, 1.0).map_err(|r| {
        Rejection::range(format!(
            "{} (a fraction 0..1 is expected, not a percentage)",
            r.message
        ))
    })
}

pub(crate) fn check_opt_fraction(name: &str, value: Option<f64>) -> Result<Option<f64>, Rejection> {
    value.map(|v| check_fraction(name, v)).transpose()
}

/// A located event: the point, and the valley commune it falls in (if any).
pub(crate) fn locate(location: &GeoJson) -> Result<(GeoPoint, Option<String>), Rejection> {
    let point = location.to_point().map_err(|(is_range, message)| {
        if is_range {
            Rejection::range(message)
        } else {
            Rejection::schema(message)
        }
    })?;
    let commune = communes::valley()
        .locate(&point)
        .map(|c| c.insee_code.clone());
    Ok((point, commune))
}

/// Longitude, latitude and commune code of an optional location.
pub(crate) type OptionalPlace = (Option<f64>, Option<f64>, Option<String>);

/// Optional location: longitude, latitude, commune code.
pub(crate) fn locate_opt(location: Option<&GeoJson>) -> Result<OptionalPlace, Rejection> {
    match location {
        Some(l) => {
            let (p, commune) = locate(l)?;
            Ok((Some(p.lon), Some(p.lat), commune))
        }
        None => Ok((None, None, None)),
    }
}

/// Arrow fields of [`Observation`].
pub(crate) fn observation_fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("dateObserved", timestamp(), false),
        Field::new("_time_source", DataType::Utf8, false),
    ]
}

/// Arrow fields closing every data row: unknown attributes, the day partition, lineage.
pub(crate) fn closing_fields(with_extra: bool) -> Vec<Field> {
    let mut fields = Vec::new();
    if with_extra {
        fields.push(Field::new("extra", DataType::Utf8, true));
    }
    fields.extend(lineage_fields());
    fields
}

/// The day partition and lineage columns closing every data row.
pub fn lineage_fields() -> Vec<Field> {
    vec![
        Field::new("day", DataType::Date32, false),
        Field::new("_topic", DataType::Utf8, false),
        Field::new("_partition", DataType::Int32, false),
        Field::new("_offset", DataType::Int64, false),
        Field::new("_ingested_at", timestamp(), false),
    ]
}

/// UTC microsecond timestamps, the type every Delta reader maps to `timestamp`.
pub(crate) fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

/// A list of strings (Delta `array<string>`).
pub(crate) fn string_list() -> DataType {
    DataType::List(Arc::new(Field::new("element", DataType::Utf8, true)))
}

/// Builds a schema from groups of fields.
pub(crate) fn schema_of(groups: [Vec<Field>; 3]) -> arrow::datatypes::SchemaRef {
    Arc::new(arrow::datatypes::Schema::new(groups.concat()))
}
