//! The register of field devices staff keep: each LoRaWAN device's DevEUI, what it
//! measures (its profile, which says how its payload decodes), the entity it feeds, where
//! it stands and what the hub should expect of it. Kept on the reference topic forever, so
//! every replica rebuilds it; landed in `reference_places` like other reference data.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::rejection::Rejection;

/// What a LoRaWAN device measures, which says how its payload decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceProfile {
    /// An ultrasonic fill-level sensor on a bin: the distance to the waste, in mm.
    UltrasonicFill,
    /// A weather station: temperature, humidity, rain.
    WeatherStation,
    /// A people counter at a tourist site: the people who came in since its last uplink
    /// (its `entity_id` is the site's id, such as `abbaye-de-gellone`).
    PeopleCounter,
}

impl DeviceProfile {
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim() {
            "ultrasonic_fill" => Some(DeviceProfile::UltrasonicFill),
            "weather_station" => Some(DeviceProfile::WeatherStation),
            "people_counter" => Some(DeviceProfile::PeopleCounter),
            _ => None,
        }
    }
}

/// A device, whole: every version replaces the previous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRegistered {
    /// 16 hex digits, upper case.
    pub dev_eui: String,
    /// The entity its readings are about (a bin, a station, a site's id for a counter).
    pub entity_id: String,
    pub profile: DeviceProfile,
    /// Where it stands (WGS 84) and the commune that is in (whose staff keep it).
    pub lat: f64,
    pub long: f64,
    pub commune_code: String,
    pub installed_on: Option<NaiveDate>,
    /// How often it should report, in seconds.
    pub report_interval_s: Option<u32>,
    /// Ultrasonic sensors: the bin's depth, sensor to bottom, mm.
    pub depth_mm: Option<f64>,
    /// Bins: the level it counts as full at (0 to 1).
    pub fill_threshold: Option<f64>,
}

/// Whether `dev_eui` is 16 hex digits.
pub fn is_dev_eui(dev_eui: &str) -> bool {
    dev_eui.len() == 16 && dev_eui.bytes().all(|b| b.is_ascii_hexdigit())
}

impl DeviceRegistered {
    /// Refuses a device the field doors could not use.
    pub fn check(&self) -> Result<(), Rejection> {
        if !is_dev_eui(&self.dev_eui) {
            return Err(Rejection::schema("devEui is 16 hex digits"));
        }
        if self.entity_id.trim().is_empty() || self.entity_id.len() > 200 {
            return Err(Rejection::schema("entityId is 1 to 200 bytes"));
        }
        if !(-90.0..=90.0).contains(&self.lat) || !(-180.0..=180.0).contains(&self.long) {
            return Err(Rejection::range("lat/long is not a WGS 84 position"));
        }
        if self.profile == DeviceProfile::UltrasonicFill
            && self.depth_mm.is_none_or(|d| !(d > 0.0 && d <= 10_000.0))
        {
            return Err(Rejection::range(
                "an ultrasonic fill sensor needs depthMm, the bin's depth (1 to 10 000 mm)",
            ));
        }
        if self.fill_threshold.is_some_and(|t| !(t > 0.0 && t <= 1.0)) {
            return Err(Rejection::range(
                "fillThreshold is a share, above 0 and at most 1",
            ));
        }
        if self
            .report_interval_s
            .is_some_and(|s| !(60..=7 * 86_400).contains(&s))
        {
            return Err(Rejection::range(
                "reportIntervalS is between 60 s and a week",
            ));
        }
        Ok(())
    }
}
