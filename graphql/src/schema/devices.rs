//! The register of field devices, as GraphQL types.

use async_graphql::{ID, InputObject, SimpleObject};
use chrono::NaiveDate;

/// What a field device measures (how its payload decodes).
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceProfile {
    UltrasonicFill,
    WeatherStation,
    PeopleCounter,
}

impl From<DeviceProfile> for vallee_schemas::citizen::DeviceProfile {
    fn from(p: DeviceProfile) -> Self {
        match p {
            DeviceProfile::UltrasonicFill => Self::UltrasonicFill,
            DeviceProfile::WeatherStation => Self::WeatherStation,
            DeviceProfile::PeopleCounter => Self::PeopleCounter,
        }
    }
}

impl From<vallee_schemas::citizen::DeviceProfile> for DeviceProfile {
    fn from(p: vallee_schemas::citizen::DeviceProfile) -> Self {
        use vallee_schemas::citizen::DeviceProfile as P;
        match p {
            P::UltrasonicFill => DeviceProfile::UltrasonicFill,
            P::WeatherStation => DeviceProfile::WeatherStation,
            P::PeopleCounter => DeviceProfile::PeopleCounter,
        }
    }
}

/// A field device of the register.
#[derive(SimpleObject, Debug, Clone)]
pub struct Device {
    pub dev_eui: ID,
    pub entity_id: String,
    pub profile: DeviceProfile,
    pub latitude: f64,
    pub longitude: f64,
    pub commune_code: String,
    pub installed_on: Option<NaiveDate>,
    pub report_interval_s: Option<u32>,
    pub depth_mm: Option<f64>,
    pub fill_threshold: Option<f64>,
    /// Declared in the configuration (`[[api.devices]]`), not the register: changed by
    /// editing the file (a registered device of the same DevEUI wins).
    pub in_configuration: bool,
    /// Its entity's health as of now (bin sensors and weather stations; null for people
    /// counters and in a mutation's answer).
    pub health: Option<super::sensors::SensorHealth>,
}

/// Which devices `devices(health: …)` keeps.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceHealthFilter {
    /// No problem.
    Working,
    /// Any problem.
    Faulty,
    Silent,
    Stuck,
    Damaged,
    LowBattery,
    WeakSignal,
    Implausible,
}

impl DeviceHealthFilter {
    /// Whether a device with this health is kept (a device whose health is not judged,
    /// a people counter, is never kept).
    pub fn keeps(self, health: Option<&super::sensors::SensorHealth>) -> bool {
        use super::sensors::SensorProblem as P;
        let Some(h) = health else { return false };
        let has = |p: P| h.problems.contains(&p);
        match self {
            DeviceHealthFilter::Working => h.problems.is_empty(),
            DeviceHealthFilter::Faulty => !h.problems.is_empty(),
            DeviceHealthFilter::Silent => has(P::Silent),
            DeviceHealthFilter::Stuck => has(P::Stuck),
            DeviceHealthFilter::Damaged => has(P::Damaged),
            DeviceHealthFilter::LowBattery => has(P::LowBattery),
            DeviceHealthFilter::WeakSignal => has(P::WeakSignal),
            DeviceHealthFilter::Implausible => has(P::Implausible),
        }
    }
}

impl From<vallee_schemas::citizen::DeviceRegistered> for Device {
    fn from(d: vallee_schemas::citizen::DeviceRegistered) -> Self {
        Device {
            dev_eui: ID(d.dev_eui),
            entity_id: d.entity_id,
            profile: d.profile.into(),
            latitude: d.lat,
            longitude: d.long,
            commune_code: d.commune_code,
            installed_on: d.installed_on,
            report_interval_s: d.report_interval_s,
            depth_mm: d.depth_mm,
            fill_threshold: d.fill_threshold,
            in_configuration: false,
            health: None,
        }
    }
}

impl From<&crate::options::Device> for Device {
    fn from(d: &crate::options::Device) -> Self {
        let at = vallee_schemas::geo::GeoPoint::new(d.longitude, d.latitude);
        Device {
            dev_eui: ID(d.dev_eui.to_uppercase()),
            entity_id: d.entity_id.clone(),
            profile: d.profile.into(),
            latitude: d.latitude,
            longitude: d.longitude,
            commune_code: vallee_schemas::communes::valley()
                .locate(&at)
                .map(|c| c.insee_code.clone())
                .unwrap_or_default(),
            installed_on: None,
            report_interval_s: None,
            depth_mm: d.depth_mm,
            fill_threshold: d.fill_threshold,
            in_configuration: true,
            health: None,
        }
    }
}

/// A field device to register, whole (its commune comes from its position).
#[derive(InputObject, Debug, Clone)]
pub struct RegisterDeviceInput {
    /// 16 hex digits.
    pub dev_eui: ID,
    /// The bin, the station, or the site's id for a people counter.
    pub entity_id: String,
    pub profile: DeviceProfile,
    pub latitude: f64,
    pub longitude: f64,
    pub installed_on: Option<NaiveDate>,
    pub report_interval_s: Option<u32>,
    /// Ultrasonic sensors: the bin's depth, sensor to bottom (required for them).
    pub depth_mm: Option<f64>,
    pub fill_threshold: Option<f64>,
}

impl From<RegisterDeviceInput> for crate::commands::devices::Registration {
    fn from(i: RegisterDeviceInput) -> Self {
        crate::commands::devices::Registration {
            dev_eui: i.dev_eui.0,
            entity_id: i.entity_id,
            profile: i.profile.into(),
            lat: i.latitude,
            long: i.longitude,
            installed_on: i.installed_on,
            report_interval_s: i.report_interval_s,
            depth_mm: i.depth_mm,
            fill_threshold: i.fill_threshold,
        }
    }
}
