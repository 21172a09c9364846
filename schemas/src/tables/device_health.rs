//! `device_health`: what each field device's health was, checked at regular times (hourly by
//! default). The API judges health from the readings, the radio metadata kept with them and
//! the register of devices; this table keeps the judgements, so a technician can see since
//! when a sensor has been failing and researchers can measure how reliable a fleet is (the
//! share of faulty sensors is the first thing a connected-bins project is asked about).
//!
//! One row per device and check; a check is written once whatever the number of API
//! replicas (the commit records the check's number as a Delta application transaction).

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{LakeTable, Order};
use crate::contract::Stream;
use crate::events::{string_list, timestamp};
use crate::time::micros;

/// Readings at one level from which a bin sensor counts as stuck: the API's health check
/// and the open dataset of working sensors judge alike.
pub const STUCK_READINGS: i64 = 12;

/// The table of health checks (a [`LakeTable`] of its own: neither ingest nor the stream
/// stage writes it, the API does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceHealthTable;

impl DeviceHealthTable {
    pub const NAME: &'static str = "device_health";
}

fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("entityId", DataType::Utf8, false),
            Field::new("devEui", DataType::Utf8, true),
            Field::new("kind", DataType::Utf8, false),
            Field::new("communeCode", DataType::Utf8, true),
            Field::new("checkedAt", timestamp(), false),
            Field::new("lastSeen", timestamp(), true),
            Field::new("readingsLast24Hours", DataType::Int64, false),
            Field::new("batteryLevel", DataType::Float64, true),
            Field::new("rssi", DataType::Float64, true),
            Field::new("snr", DataType::Float64, true),
            Field::new("gatewayCount", DataType::Int64, true),
            Field::new("emptiedWithoutTruck", DataType::Int64, false),
            Field::new("refusedReadings", DataType::Int64, false),
            Field::new("working", DataType::Boolean, false),
            Field::new("problems", string_list(), false),
            Field::new("day", DataType::Date32, false),
        ]))
    });
    SCHEMA.clone()
}

impl LakeTable for DeviceHealthTable {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn schema(&self) -> SchemaRef {
        schema()
    }
    fn partition_columns(&self) -> &'static [&'static str] {
        &["day"]
    }
    fn description(&self) -> &'static str {
        "Field devices' health at each check (hourly by default): last seen, battery, radio, problems (silent, stuck, damaged, low_battery, weak_signal, implausible); one row per device and check"
    }
    fn sources(&self) -> &'static [Stream] {
        &[Stream::WasteContainers, Stream::Vineyards]
    }
    fn keys(&self) -> &'static [&'static str] {
        &["entityId"]
    }
    fn latest_order(&self) -> &'static [Order] {
        &[Order::Desc("checkedAt")]
    }
}

/// A row of `device_health`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceHealthRow {
    #[serde(rename = "entityId")]
    pub entity_id: String,
    #[serde(rename = "devEui")]
    pub dev_eui: Option<String>,
    /// `bin` or `weather_station`.
    pub kind: &'static str,
    #[serde(rename = "communeCode")]
    pub commune_code: Option<String>,
    #[serde(rename = "checkedAt", with = "micros")]
    pub checked_at: DateTime<Utc>,
    /// None: registered, never heard from.
    #[serde(rename = "lastSeen", with = "micros::option")]
    pub last_seen: Option<DateTime<Utc>>,
    #[serde(rename = "readingsLast24Hours")]
    pub readings_24h: i64,
    #[serde(rename = "batteryLevel")]
    pub battery: Option<f64>,
    pub rssi: Option<f64>,
    pub snr: Option<f64>,
    #[serde(rename = "gatewayCount")]
    pub gateways: Option<i64>,
    #[serde(rename = "emptiedWithoutTruck")]
    pub emptied_without_truck: i64,
    #[serde(rename = "refusedReadings")]
    pub refused_readings: i64,
    pub working: bool,
    /// Problem labels (`silent`, `stuck`, …); empty when working.
    pub problems: Vec<&'static str>,
    /// Days since 1970 of `checked_at`.
    pub day: i32,
}

/// The rows as one record batch (`None`: no row).
pub fn to_batch(rows: &[DeviceHealthRow]) -> crate::Result<Option<arrow::array::RecordBatch>> {
    let mut buffer = crate::batch::RowBuffer::new(DeviceHealthTable::NAME, schema())?;
    for row in rows {
        buffer.push(row)?;
    }
    buffer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_never_heard_device_and_a_faulty_one_become_rows() {
        let at: DateTime<Utc> = "2026-12-05T10:00:00Z".parse().unwrap();
        let row = DeviceHealthRow {
            entity_id: "urn:ngsi-ld:WasteContainer:b-1".into(),
            dev_eui: Some("0102030405060708".into()),
            kind: "bin",
            commune_code: Some("34114".into()),
            checked_at: at,
            last_seen: None,
            readings_24h: 0,
            battery: None,
            rssi: Some(-121.0),
            snr: None,
            gateways: None,
            emptied_without_truck: 1,
            refused_readings: 0,
            working: false,
            problems: vec!["silent", "implausible"],
            day: crate::time::utc_day(&at),
        };
        let batch = to_batch(&[row.clone(), row]).unwrap().unwrap();
        assert_eq!(batch.num_rows(), 2);
        let c = super::super::columns::Columns::of_batch(DeviceHealthTable::NAME, &batch);
        assert_eq!(c.timestamps("lastSeen").unwrap().take(0), None);
        assert_eq!(c.timestamps("checkedAt").unwrap().take(1), Some(at));
        assert_eq!(
            c.strings("devEui").unwrap().take(0).as_deref(),
            Some("0102030405060708")
        );
        let problems = batch
            .column_by_name("problems")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::ListArray>()
            .unwrap()
            .value(0);
        assert_eq!(problems.len(), 2);
    }
}
