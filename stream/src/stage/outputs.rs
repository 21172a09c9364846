//! The stage's output tables: append-only, a correction is a new row with a higher revision.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use serde::Serialize;
use vallee_lake::LakeTable;
use vallee_schemas::contract::Stream;
use vallee_schemas::time::micros;

use crate::lineage::Lineage;

/// A Delta table the stream stage writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutputTable {
    Footfall,
    FootfallDwell,
    SitePresence,
    FillAlerts,
    VineIndicators,
    VineAlerts,
    BinForecast,
}

/// Every table of the internal lake: ingest's contract tables, then the stage's outputs.
pub fn lake_table_names() -> Vec<&'static str> {
    vallee_schemas::contract::Table::ALL
        .iter()
        .map(|t| t.name())
        .chain(
            OutputTable::ALL
                .iter()
                .map(|t| vallee_lake::LakeTable::name(t)),
        )
        .collect()
}

impl OutputTable {
    pub const ALL: [OutputTable; 7] = [
        OutputTable::Footfall,
        OutputTable::FootfallDwell,
        OutputTable::SitePresence,
        OutputTable::FillAlerts,
        OutputTable::VineIndicators,
        OutputTable::VineAlerts,
        OutputTable::BinForecast,
    ];

    /// The input streams whose progress this table records.
    pub fn sources(self) -> &'static [Stream] {
        match self {
            OutputTable::Footfall | OutputTable::FootfallDwell => &[Stream::Beacons],
            OutputTable::SitePresence => &[Stream::Tourism],
            OutputTable::FillAlerts => &[Stream::WasteContainers, Stream::WasteVehicles],
            OutputTable::BinForecast => &[Stream::WasteContainers],
            OutputTable::VineIndicators | OutputTable::VineAlerts => &[Stream::Vineyards],
        }
    }
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

impl LakeTable for OutputTable {
    fn name(&self) -> &'static str {
        match self {
            OutputTable::Footfall => "footfall",
            OutputTable::FootfallDwell => "footfall_dwell",
            OutputTable::SitePresence => "site_presence",
            OutputTable::FillAlerts => "fill_alerts",
            OutputTable::VineIndicators => "vine_indicators",
            OutputTable::VineAlerts => "vine_alerts",
            OutputTable::BinForecast => "bin_forecast",
        }
    }

    fn schema(&self) -> SchemaRef {
        static FOOTFALL: LazyLock<SchemaRef> = LazyLock::new(|| {
            Arc::new(Schema::new(vec![
                Field::new("zone", DataType::Utf8, false),
                Field::new("window", DataType::Utf8, false),
                Field::new("dateObservedFrom", ts(), false),
                Field::new("dateObservedTo", ts(), false),
                Field::new("peopleCount", DataType::Int64, false),
                Field::new("approximate", DataType::Boolean, false),
                Field::new("congested", DataType::Boolean, false),
                Field::new("revision", DataType::Int32, false),
                Field::new("final", DataType::Boolean, false),
                Field::new("day", DataType::Date32, false),
                Lineage::field(),
                Field::new("_computed_at", ts(), false),
            ]))
        });
        static DWELL: LazyLock<SchemaRef> = LazyLock::new(|| {
            Arc::new(Schema::new(vec![
                Field::new("zone", DataType::Utf8, false),
                Field::new("hour", ts(), false),
                Field::new("dateObservedTo", ts(), false),
                Field::new("sessionGap", DataType::Utf8, false),
                Field::new("visits", DataType::Int64, false),
                Field::new("dwellUnder5Min", DataType::Int64, false),
                Field::new("dwell5To15Min", DataType::Int64, false),
                Field::new("dwell15To30Min", DataType::Int64, false),
                Field::new("dwell30To60Min", DataType::Int64, false),
                Field::new("meanDwellSeconds", DataType::Float64, false),
                Field::new("medianDwellMinutes", DataType::Int64, false),
                Field::new("totalDwellSeconds", DataType::Int64, false),
                Field::new("revision", DataType::Int32, false),
                Field::new("day", DataType::Date32, false),
                Lineage::field(),
                Field::new("_computed_at", ts(), false),
            ]))
        });
        static PRESENCE: LazyLock<SchemaRef> = LazyLock::new(|| {
            Arc::new(Schema::new(vec![
                Field::new("site", DataType::Utf8, false),
                Field::new("locationCode", DataType::Utf8, false),
                Field::new("hour", ts(), false),
                Field::new("dateObservedTo", ts(), false),
                Field::new("visitorCount", DataType::Int64, false),
                Field::new("arCheckins", DataType::Int64, false),
                Field::new(
                    "arCheckinsByPoint",
                    DataType::List(Arc::new(Field::new_list_field(
                        DataType::Struct(
                            vec![
                                Field::new("point", DataType::Utf8, false),
                                Field::new("checkins", DataType::Int64, false),
                            ]
                            .into(),
                        ),
                        false,
                    ))),
                    false,
                ),
                Field::new("aggregationType", DataType::Utf8, false),
                Field::new("revision", DataType::Int32, false),
                Field::new("final", DataType::Boolean, false),
                Field::new("day", DataType::Date32, false),
                Lineage::field(),
                Field::new("_computed_at", ts(), false),
            ]))
        });
        static ALERTS: LazyLock<SchemaRef> = LazyLock::new(|| {
            Arc::new(Schema::new(vec![
                Field::new("alertId", DataType::Utf8, false),
                Field::new("kind", DataType::Utf8, false),
                Field::new("entityId", DataType::Utf8, false),
                Field::new("state", DataType::Utf8, false),
                Field::new("dateObserved", ts(), false),
                Field::new("clearReason", DataType::Utf8, true),
                Field::new("fillingLevel", DataType::Float64, true),
                Field::new("communeCode", DataType::Utf8, true),
                Field::new("riskLevel", DataType::Utf8, true),
                Field::new("day", DataType::Date32, false),
                Lineage::field(),
                Field::new("_computed_at", ts(), false),
            ]))
        });
        static VINE: LazyLock<SchemaRef> = LazyLock::new(|| {
            Arc::new(Schema::new(vec![
                Field::new("station", DataType::Utf8, false),
                Field::new("day", DataType::Date32, false),
                Field::new("latitude", DataType::Float64, false),
                Field::new("tmin", DataType::Float64, false),
                Field::new("tmax", DataType::Float64, false),
                Field::new("tmean", DataType::Float64, false),
                Field::new("rainMm", DataType::Float64, false),
                Field::new("growingDegreeDays", DataType::Float64, false),
                Field::new("winklerIndex", DataType::Float64, false),
                Field::new("huglinIndex", DataType::Float64, false),
                Field::new("oosporeDegreeDays", DataType::Float64, false),
                Field::new("downyMildew310", DataType::Boolean, false),
                Field::new("gublerThomasIndex", DataType::Int32, false),
                Field::new("gublerThomasStarted", DataType::Boolean, false),
                Field::new("gublerThomasStreak", DataType::Int32, false),
                Field::new("revision", DataType::Int32, false),
                Lineage::field(),
                Field::new("_computed_at", ts(), false),
            ]))
        });
        static FORECAST: LazyLock<SchemaRef> = LazyLock::new(|| {
            Arc::new(Schema::new(vec![
                Field::new("entityId", DataType::Utf8, false),
                Field::new("dateObserved", ts(), false),
                Field::new("fillingLevel", DataType::Float64, false),
                Field::new("threshold", DataType::Float64, false),
                Field::new("fillRatePerHour", DataType::Float64, false),
                Field::new("fullAt", ts(), true),
                Field::new("readings", DataType::Int32, false),
                Field::new("storedWasteKind", DataType::Utf8, true),
                Field::new("communeCode", DataType::Utf8, true),
                Field::new("day", DataType::Date32, false),
                Lineage::field(),
                Field::new("_computed_at", ts(), false),
            ]))
        });
        match self {
            OutputTable::BinForecast => FORECAST.clone(),
            OutputTable::Footfall => FOOTFALL.clone(),
            OutputTable::FootfallDwell => DWELL.clone(),
            OutputTable::SitePresence => PRESENCE.clone(),
            OutputTable::FillAlerts | OutputTable::VineAlerts => ALERTS.clone(),
            OutputTable::VineIndicators => VINE.clone(),
        }
    }

    fn partition_columns(&self) -> &'static [&'static str] {
        &["day"]
    }

    fn description(&self) -> &'static str {
        match self {
            OutputTable::Footfall => {
                "People per zone and window (distinct pseudonymous devices), after CrowdFlowObserved; corrections are rows with a higher revision"
            }
            OutputTable::FootfallDwell => {
                "Dwell time per zone and hour: visits (a device's sightings with no gap longer than sessionGap, cut at hour boundaries) by duration; corrections are rows with a higher revision"
            }
            OutputTable::SitePresence => {
                "Visitors per tourist site and hour, after TourismPresenceObserved (hourly_sum), with AR-trail check-ins"
            }
            OutputTable::FillAlerts => {
                "Bin alerts opening and clearing (fill, fire, status, silent), with proof of collection"
            }
            OutputTable::VineIndicators => {
                "Vineyard indicators per weather station and local day (Europe/Paris): GDD, Winkler, Huglin, downy mildew 3-10, Gubler-Thomas, oospore degree days; also the season state a restart resumes from"
            }
            OutputTable::BinForecast => {
                "Per bin reading: fill rate since the last emptying and when the bin reaches its threshold (the basis of the bins-to-collect list)"
            }
            OutputTable::VineAlerts => {
                "Vineyard alerts per parcel: frost (air temperature at the covering station at or below the critical value on a falling trend) and the risk-level changes of downy and powdery mildew (riskLevel)"
            }
        }
    }
}

/// A row of `footfall`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FootfallRow {
    pub zone: String,
    pub window: String,
    #[serde(rename = "dateObservedFrom", with = "micros")]
    pub from: DateTime<Utc>,
    #[serde(rename = "dateObservedTo", with = "micros")]
    pub to: DateTime<Utc>,
    #[serde(rename = "peopleCount")]
    pub people_count: i64,
    /// Counted with a sketch (a zone configured as large), not exactly.
    pub approximate: bool,
    pub congested: bool,
    pub revision: i32,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub day: i32,
    pub lineage: Lineage,
    #[serde(rename = "_computed_at", with = "micros")]
    pub computed_at: DateTime<Utc>,
}

/// A row of `footfall_dwell`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DwellRow {
    pub zone: String,
    #[serde(with = "micros")]
    pub hour: DateTime<Utc>,
    #[serde(rename = "dateObservedTo", with = "micros")]
    pub to: DateTime<Utc>,
    #[serde(rename = "sessionGap")]
    pub session_gap: String,
    pub visits: i64,
    #[serde(rename = "dwellUnder5Min")]
    pub under_5_min: i64,
    #[serde(rename = "dwell5To15Min")]
    pub from_5_to_15_min: i64,
    #[serde(rename = "dwell15To30Min")]
    pub from_15_to_30_min: i64,
    #[serde(rename = "dwell30To60Min")]
    pub from_30_to_60_min: i64,
    #[serde(rename = "meanDwellSeconds")]
    pub mean_seconds: f64,
    #[serde(rename = "medianDwellMinutes")]
    pub median_minutes: i64,
    #[serde(rename = "totalDwellSeconds")]
    pub total_seconds: i64,
    pub revision: i32,
    pub day: i32,
    pub lineage: Lineage,
    #[serde(rename = "_computed_at", with = "micros")]
    pub computed_at: DateTime<Utc>,
}

/// A row of `site_presence`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PresenceRow {
    pub site: String,
    #[serde(rename = "locationCode")]
    pub location_code: String,
    #[serde(with = "micros")]
    pub hour: DateTime<Utc>,
    #[serde(rename = "dateObservedTo", with = "micros")]
    pub to: DateTime<Utc>,
    #[serde(rename = "visitorCount")]
    pub visitor_count: i64,
    #[serde(rename = "arCheckins")]
    pub ar_checkins: i64,
    #[serde(rename = "arCheckinsByPoint")]
    pub ar_checkins_by_point: Vec<PointCheckins>,
    #[serde(rename = "aggregationType")]
    pub aggregation_type: &'static str,
    pub revision: i32,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub day: i32,
    pub lineage: Lineage,
    #[serde(rename = "_computed_at", with = "micros")]
    pub computed_at: DateTime<Utc>,
}

/// AR-trail check-ins at one point of a site in an hour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointCheckins {
    pub point: String,
    pub checkins: i64,
}

/// A row of `bin_forecast`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastRow {
    #[serde(rename = "entityId")]
    pub entity_id: String,
    #[serde(rename = "dateObserved", with = "micros")]
    pub date_observed: DateTime<Utc>,
    #[serde(rename = "fillingLevel")]
    pub filling_level: f64,
    pub threshold: f64,
    #[serde(rename = "fillRatePerHour")]
    pub rate_per_hour: f64,
    #[serde(rename = "fullAt", with = "micros::option")]
    pub full_at: Option<DateTime<Utc>>,
    pub readings: i32,
    #[serde(rename = "storedWasteKind")]
    pub stored_waste_kind: Option<String>,
    #[serde(rename = "communeCode")]
    pub commune_code: Option<String>,
    pub day: i32,
    pub lineage: Lineage,
    #[serde(rename = "_computed_at", with = "micros")]
    pub computed_at: DateTime<Utc>,
}

/// A row of `vine_indicators` (also the season state a restart resumes from).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VineRow {
    pub station: String,
    #[serde(with = "vallee_schemas::time::days")]
    pub day: chrono::NaiveDate,
    pub latitude: f64,
    pub tmin: f64,
    pub tmax: f64,
    pub tmean: f64,
    #[serde(rename = "rainMm")]
    pub rain_mm: f64,
    #[serde(rename = "growingDegreeDays")]
    pub gdd: f64,
    #[serde(rename = "winklerIndex")]
    pub winkler: f64,
    #[serde(rename = "huglinIndex")]
    pub huglin: f64,
    #[serde(rename = "oosporeDegreeDays")]
    pub oospore: f64,
    #[serde(rename = "downyMildew310")]
    pub downy: bool,
    #[serde(rename = "gublerThomasIndex")]
    pub gubler_thomas: i32,
    #[serde(rename = "gublerThomasStarted")]
    pub gt_started: bool,
    #[serde(rename = "gublerThomasStreak")]
    pub gt_streak: i32,
    pub revision: i32,
    pub lineage: Lineage,
    #[serde(rename = "_computed_at", with = "micros")]
    pub computed_at: DateTime<Utc>,
}

/// A row of `fill_alerts` (and of `vine_alerts`, same shape).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRow {
    #[serde(rename = "alertId")]
    pub alert_id: String,
    pub kind: &'static str,
    #[serde(rename = "entityId")]
    pub entity_id: String,
    pub state: &'static str,
    #[serde(rename = "dateObserved", with = "micros")]
    pub date_observed: DateTime<Utc>,
    #[serde(rename = "clearReason")]
    pub clear_reason: Option<&'static str>,
    #[serde(rename = "fillingLevel")]
    pub filling_level: Option<f64>,
    #[serde(rename = "communeCode")]
    pub commune_code: Option<String>,
    /// Mildew alerts: the risk level the row moves to (`moderate`, `high`; `low` clears).
    #[serde(rename = "riskLevel")]
    pub risk_level: Option<&'static str>,
    pub day: i32,
    pub lineage: Lineage,
    #[serde(rename = "_computed_at", with = "micros")]
    pub computed_at: DateTime<Utc>,
}
