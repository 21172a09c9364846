//! `BeaconSighting`: a pseudonymous device seen by a beacon of the activity zone.
//!
//! The device token lives only in memory and in the 24 h Kafka topic: the lake row keeps the
//! zone, the time, the signal strength and the salt epoch, never the token.

use std::sync::LazyLock;

use arrow::datatypes::{DataType, Field, SchemaRef};
use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Envelope, Observation, check_range, closing_fields, observation_fields, schema_of};
use crate::privacy::{SHORT_TIME_MAX_BYTES, contains_mac, is_device_token};
use crate::rejection::Rejection;
use crate::time::days;
use chrono::format::{Item, Parsed, StrftimeItems};

/// A sighting as it arrives on `vallee.beacons`. A MAC-like string anywhere in it is
/// refused by [`crate::decode`] before this is read, as for every sensor event.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(
    title = "BeaconSighting",
    description = "A pseudonymous device seen by a beacon (never a MAC address)"
)]
pub struct BeaconSightingInput {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// Zone of the activity area the beacon covers.
    #[schemars(length(min = 1))]
    pub zone: String,
    /// Pseudonym of the device: 16–64 hex digits, a keyed hash made by the gateway with a
    /// salt it rotates daily. A MAC address is refused.
    #[serde(rename = "deviceToken")]
    #[schemars(length(min = 16, max = 64), regex(pattern = r"^[0-9a-fA-F]{16,64}$"))]
    pub device_token: String,
    /// Date of the salt the token was made with (YYYY-MM-DD).
    #[serde(rename = "saltEpoch")]
    pub salt_epoch: String,
    /// Received signal strength, dBm.
    #[schemars(range(min = -130.0, max = 20.0))]
    pub rssi: f64,
    /// Other attributes are ignored, never stored: they could carry identifiers.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Map<String, Value>,
}

/// The same sighting borrowed from the payload: decoding's fast path for the busiest
/// stream, in one pass with no intermediate JSON tree. Strict on purpose: an unknown
/// attribute, a repeated one, a string with escapes or a wrong JSON type make it fail, and
/// the message then takes the general path ([`BeaconSightingInput`]), which words every
/// error as usual. Both end in the same checks ([`Sighting::validate`]).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BeaconSightingWire<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    pub(crate) kind: &'a str,
    #[serde(rename = "dateObserved", default, borrow)]
    date_observed: Option<&'a str>,
    #[serde(rename = "TimeInstant", default, borrow)]
    time_instant: Option<&'a str>,
    zone: &'a str,
    #[serde(rename = "deviceToken")]
    device_token: &'a str,
    #[serde(rename = "saltEpoch")]
    salt_epoch: &'a str,
    rssi: f64,
}

/// What both paths check.
struct Sighting<'a> {
    id: &'a str,
    date_observed: Option<&'a str>,
    time_instant: Option<&'a str>,
    zone: &'a str,
    device_token: &'a str,
    salt_epoch: &'a str,
    rssi: f64,
}

/// `%Y-%m-%d`, parsed once (it is what `NaiveDate::parse_from_str` parses each call).
static DAY: LazyLock<Vec<Item<'static>>> = LazyLock::new(|| {
    StrftimeItems::new("%Y-%m-%d")
        .parse_to_owned()
        .expect("a valid format")
});

/// One row of `beacon_sightings` (no device token).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BeaconSightingRecord {
    #[serde(flatten)]
    pub observation: Observation,
    pub zone: String,
    #[serde(rename = "saltEpoch", with = "days")]
    pub salt_epoch: NaiveDate,
    pub rssi: f64,
}

/// A validated sighting: the lake row, and the token for in-memory distinct counts.
#[derive(Debug, Clone, PartialEq)]
pub struct BeaconSighting {
    pub record: BeaconSightingRecord,
    pub device_token: String,
}

impl BeaconSightingInput {
    pub fn validate(self, kafka_timestamp_ms: Option<i64>) -> Result<BeaconSighting, Rejection> {
        Sighting {
            id: &self.envelope.id,
            date_observed: self.envelope.date_observed.as_deref(),
            time_instant: self.envelope.time_instant.as_deref(),
            zone: &self.zone,
            device_token: &self.device_token,
            salt_epoch: &self.salt_epoch,
            rssi: self.rssi,
        }
        .validate(kafka_timestamp_ms)
    }
}

impl BeaconSightingWire<'_> {
    /// The sighting, when it is valid and holds no MAC-like string: decoding's fast path
    /// takes only those (`None`: the general path decides, and words the refusal). Its
    /// strings are checked for MACs as everywhere else, except those that cannot hold one
    /// once the sighting is valid: `type` (the fast path takes only `BeaconSighting`),
    /// the `deviceToken` (16 to 64 hex digits: a MAC stands alone, and nothing stands
    /// alone inside one run of hex digits), and the time read as the event time when it
    /// is short enough ([`SHORT_TIME_MAX_BYTES`]). The others have no string.
    pub(crate) fn validate_clean(self, kafka_timestamp_ms: Option<i64>) -> Option<BeaconSighting> {
        let sighting = self.validate(kafka_timestamp_ms).ok()?;
        // `dateObserved` is the event time when present; `TimeInstant` is then not read.
        let (read, unread) = match self.date_observed {
            Some(date) => (Some(date), self.time_instant),
            None => (self.time_instant, None),
        };
        let scanned = [
            Some(self.id),
            Some(self.zone),
            Some(self.salt_epoch),
            unread,
            read.filter(|time| time.len() > SHORT_TIME_MAX_BYTES),
        ];
        (!scanned.into_iter().flatten().any(contains_mac)).then_some(sighting)
    }

    fn validate(self, kafka_timestamp_ms: Option<i64>) -> Result<BeaconSighting, Rejection> {
        Sighting {
            id: self.id,
            date_observed: self.date_observed,
            time_instant: self.time_instant,
            zone: self.zone,
            device_token: self.device_token,
            salt_epoch: self.salt_epoch,
            rssi: self.rssi,
        }
        .validate(kafka_timestamp_ms)
    }
}

impl Sighting<'_> {
    fn validate(self, kafka_timestamp_ms: Option<i64>) -> Result<BeaconSighting, Rejection> {
        if !is_device_token(self.device_token) {
            return Err(Rejection::schema(format!(
                "deviceToken must be 16 to 64 hex digits, got {} characters",
                self.device_token.len()
            )));
        }
        let observation = super::observe(
            self.id,
            self.date_observed,
            self.time_instant,
            kafka_timestamp_ms,
        )?;
        if self.zone.trim().is_empty() {
            return Err(Rejection::schema("zone must be a non-empty string"));
        }
        let mut parsed = Parsed::new();
        let salt_epoch = chrono::format::parse(&mut parsed, self.salt_epoch, DAY.iter())
            .and_then(|()| parsed.to_naive_date())
            .map_err(|e| {
                Rejection::schema(format!(
                    "saltEpoch {:?} is not a YYYY-MM-DD date ({e})",
                    self.salt_epoch
                ))
            })?;
        // dBm: Bluetooth receivers hear nothing below about -105 dBm (their sensitivity;
        // -130 leaves room for any other radio), and no transmitter may radiate more than
        // +20 dBm in Europe's 2.4 GHz band.
        let rssi = check_range("rssi", self.rssi, -130.0, 20.0)?;
        Ok(BeaconSighting {
            record: BeaconSightingRecord {
                observation,
                zone: self.zone.to_string(),
                salt_epoch,
                rssi,
            },
            device_token: self.device_token.to_ascii_lowercase(),
        })
    }
}

/// Arrow schema of `beacon_sightings`.
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        schema_of([
            observation_fields(),
            vec![
                Field::new("zone", DataType::Utf8, false),
                Field::new("saltEpoch", DataType::Date32, false),
                Field::new("rssi", DataType::Float64, false),
            ],
            closing_fields(false),
        ])
    });
    SCHEMA.clone()
}
