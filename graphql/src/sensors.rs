//! Sensor results read from the lake with DataFusion: the latest state of each bin, the
//! alerts, forecasts, footfall, site presence and vine indicators.
//!
//! Every query is SQL over the Delta tables the stage and ingest write (latest revision
//! per key, so corrections replace what they correct). Timestamps travel as microseconds
//! (`CAST(… AS BIGINT)`), which keeps the conversion exact whatever the reader.

use std::sync::Arc;

use arrow::array::RecordBatch;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;
use vallee_lake::Lake;
use vallee_schemas::contract::Table;
use vallee_schemas::tables::OutputTable;

use crate::{Error, Result};

/// Reads sensor results from the lake.
#[derive(Debug)]
pub struct SensorReader {
    lake: Arc<Lake>,
    ensured: OnceCell<()>,
}

/// Deserializes microseconds since the epoch.
mod micros {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer};

    pub fn de<'d, D: Deserializer<'d>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let v = i64::deserialize(d)?;
        DateTime::from_timestamp_micros(v).ok_or_else(|| serde::de::Error::custom("bad time"))
    }

    pub fn de_opt<'d, D: Deserializer<'d>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<i64>::deserialize(d)?
            .map(|v| {
                DateTime::from_timestamp_micros(v)
                    .ok_or_else(|| serde::de::Error::custom("bad time"))
            })
            .transpose()
    }
}

/// Latest reading of a bin.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BinRow {
    pub id: String,
    pub commune_code: Option<String>,
    pub filling_level: f64,
    pub threshold: Option<f64>,
    pub temperature: Option<f64>,
    pub status: Option<String>,
    pub waste_kind: Option<String>,
    #[serde(deserialize_with = "micros::de")]
    pub date_observed: DateTime<Utc>,
    pub latitude: f64,
    pub longitude: f64,
}

/// Latest state of an alert episode (fill or vine).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertRow {
    pub alert_id: String,
    pub kind: String,
    pub entity_id: String,
    pub state: String,
    #[serde(deserialize_with = "micros::de")]
    pub date_observed: DateTime<Utc>,
    pub clear_reason: Option<String>,
    pub filling_level: Option<f64>,
    pub commune_code: Option<String>,
    pub risk_level: Option<String>,
}

/// Dwell-time distribution of a zone-hour (latest revision).
#[derive(Debug, Clone, Deserialize)]
pub struct DwellRow {
    pub zone: String,
    #[serde(deserialize_with = "micros::de")]
    pub hour: DateTime<Utc>,
    #[serde(rename = "sessionGap")]
    pub session_gap: String,
    pub visits: i64,
    #[serde(rename = "dwellUnder5Min")]
    pub dwell_under5_min: i64,
    #[serde(rename = "dwell5To15Min")]
    pub dwell5_to15_min: i64,
    #[serde(rename = "dwell15To30Min")]
    pub dwell15_to30_min: i64,
    #[serde(rename = "dwell30To60Min")]
    pub dwell30_to60_min: i64,
    #[serde(rename = "meanDwellSeconds")]
    pub mean_dwell_seconds: f64,
    #[serde(rename = "medianDwellMinutes")]
    pub median_dwell_minutes: i64,
    pub revision: i32,
}

/// Latest forecast of a bin.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForecastRow {
    pub entity_id: String,
    pub commune_code: Option<String>,
    pub waste_kind: Option<String>,
    pub filling_level: f64,
    pub threshold: f64,
    pub fill_rate_per_hour: f64,
    #[serde(deserialize_with = "micros::de_opt")]
    pub full_at: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "micros::de")]
    pub date_observed: DateTime<Utc>,
}

/// A footfall window (latest revision).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FootfallRow {
    pub zone: String,
    pub window: String,
    #[serde(deserialize_with = "micros::de")]
    pub date_observed_from: DateTime<Utc>,
    #[serde(deserialize_with = "micros::de")]
    pub date_observed_to: DateTime<Utc>,
    pub people_count: i64,
    pub congested: bool,
    pub revision: i32,
    #[serde(rename = "final")]
    pub is_final: bool,
}

/// Visitors of a site in an hour (latest revision).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceRow {
    pub site: String,
    pub location_code: String,
    #[serde(deserialize_with = "micros::de")]
    pub hour: DateTime<Utc>,
    pub visitor_count: i64,
    pub ar_checkins: i64,
    #[serde(default)]
    pub ar_checkins_by_point: Vec<PointCheckinsRow>,
    pub revision: i32,
    #[serde(rename = "final")]
    pub is_final: bool,
    /// The site-hour's dwell times, for a site whose beacons publish sightings under its
    /// id as zone.
    #[serde(default)]
    pub dwell: Option<DwellRow>,
}

/// AR check-ins at one point of the trail.
#[derive(Debug, Clone, Deserialize)]
pub struct PointCheckinsRow {
    pub point: String,
    pub checkins: i64,
}

/// Vine indicators of a station or parcel for a local day (latest revision).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VineRow {
    pub station: String,
    pub day: NaiveDate,
    pub tmin: f64,
    pub tmax: f64,
    pub tmean: f64,
    pub rain_mm: f64,
    pub growing_degree_days: f64,
    pub winkler_index: f64,
    pub huglin_index: f64,
    pub oospore_degree_days: f64,
    pub downy_mildew310: bool,
    pub gubler_thomas_index: i32,
}

/// A SQL string literal.
pub(crate) fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn ts(t: DateTime<Utc>) -> String {
    format!("TIMESTAMP '{}'", t.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
}

/// `column` within `[from, to)`, or, without a range, within `span` before the newest
/// value (`newest`: a scalar subquery) — what a dashboard wants when the data's clock is
/// not the wall clock (replays, the simulator running ahead).
fn time_range(
    column: &str,
    range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    newest: &str,
    span: &str,
) -> String {
    match range {
        Some((from, to)) => format!("{column} >= {} AND {column} < {}", ts(from), ts(to)),
        None => format!("{column} >= ({newest}) - INTERVAL '{span}'"),
    }
}

impl SensorReader {
    pub fn new(lake: Arc<Lake>) -> Self {
        SensorReader {
            lake,
            ensured: OnceCell::new(),
        }
    }

    /// Runs a query and deserializes its rows.
    async fn rows<T: DeserializeOwned>(&self, sql: &str) -> Result<Vec<T>> {
        self.ensured
            .get_or_try_init(|| async {
                self.lake.ensure(Table::WasteContainers).await?;
                for t in OutputTable::ALL {
                    self.lake.ensure(t).await?;
                }
                Ok::<_, vallee_lake::Error>(())
            })
            .await
            .map_err(|e| Error::Lake(Box::new(e)))?;
        let batches = self
            .lake
            .sql(sql)
            .await
            .map_err(|e| Error::Lake(Box::new(e)))?;
        json_rows(&batches)
    }

    /// The latest reading of every bin.
    pub async fn bins(
        &self,
        commune: Option<&str>,
        min_filling_level: Option<f64>,
    ) -> Result<Vec<BinRow>> {
        let mut filter = String::from("TRUE");
        if let Some(c) = commune {
            filter += &format!(" AND \"communeCode\" = {}", lit(c));
        }
        if let Some(l) = min_filling_level {
            filter += &format!(" AND \"fillingLevel\" >= {l}");
        }
        self.latest_bins("TRUE", &filter).await
    }

    /// The latest reading of each of these bins (one query for them all: the DataLoader
    /// behind `Alert.bin` and `BinToCollect.bin` calls this once per batch).
    pub async fn bins_by_id(&self, ids: &[String]) -> Result<Vec<BinRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = ids.iter().map(|i| lit(i)).collect();
        self.latest_bins(&format!("id IN ({})", list.join(", ")), "TRUE")
            .await
    }

    /// Latest reading per bin among readings matching `readings`, kept when the latest
    /// matches `latest`.
    async fn latest_bins(&self, readings: &str, latest: &str) -> Result<Vec<BinRow>> {
        self.rows(&format!(
            "SELECT id, \"communeCode\", \"fillingLevel\", \"binFullnessThreshold\" AS threshold,
                    temperature, status, array_to_string(\"storedWasteKind\", ',') AS \"wasteKind\",
                    CAST(\"dateObserved\" AS BIGINT) AS \"dateObserved\", latitude, longitude
             FROM (SELECT *, row_number() OVER (PARTITION BY id ORDER BY \"dateObserved\" DESC, _offset DESC) AS rn
                   FROM waste_containers WHERE {readings}) WHERE rn = 1 AND {latest} ORDER BY id"
        ))
        .await
    }

    /// The latest state of every alert episode of `table` (fill_alerts or vine_alerts).
    pub async fn alerts(
        &self,
        table: OutputTable,
        open: Option<bool>,
        commune: Option<&str>,
    ) -> Result<Vec<AlertRow>> {
        let mut filter = String::from("rn = 1");
        match open {
            Some(true) => filter += " AND state = 'open'",
            Some(false) => filter += " AND state = 'cleared'",
            None => {}
        }
        if let Some(c) = commune {
            filter += &format!(" AND \"communeCode\" = {}", lit(c));
        }
        self.rows(&format!(
            "SELECT \"alertId\", kind, \"entityId\", state, CAST(\"dateObserved\" AS BIGINT) AS \"dateObserved\",
                    \"clearReason\", \"fillingLevel\", \"communeCode\", \"riskLevel\"
             FROM (SELECT *, row_number() OVER (PARTITION BY \"alertId\" ORDER BY \"dateObserved\" DESC, state ASC) AS rn
                   FROM {table}) WHERE {filter} ORDER BY \"dateObserved\" DESC",
            table = table.name()
        ))
        .await
    }

    /// Bins predicted to reach their threshold before `before` (or already full).
    pub async fn bins_to_collect(
        &self,
        before: DateTime<Utc>,
        commune: Option<&str>,
        waste_kind: Option<&str>,
    ) -> Result<Vec<ForecastRow>> {
        let mut filter = format!(
            "rn = 1 AND (\"fillingLevel\" >= threshold OR (\"fullAt\" IS NOT NULL AND \"fullAt\" <= {}))",
            ts(before)
        );
        if let Some(c) = commune {
            filter += &format!(" AND \"communeCode\" = {}", lit(c));
        }
        if let Some(k) = waste_kind {
            filter += &format!(" AND \"storedWasteKind\" = {}", lit(k));
        }
        self.rows(&format!(
            "SELECT \"entityId\", \"communeCode\", \"storedWasteKind\" AS \"wasteKind\", \"fillingLevel\", threshold,
                    \"fillRatePerHour\", CAST(\"fullAt\" AS BIGINT) AS \"fullAt\",
                    CAST(\"dateObserved\" AS BIGINT) AS \"dateObserved\"
             FROM (SELECT *, row_number() OVER (PARTITION BY \"entityId\" ORDER BY \"dateObserved\" DESC) AS rn
                   FROM bin_forecast) WHERE {filter} ORDER BY \"fullAt\" ASC NULLS FIRST, \"entityId\""
        ))
        .await
    }

    /// Footfall windows of a zone (latest revision of each).
    pub async fn footfall(
        &self,
        zone: Option<&str>,
        range: Option<(DateTime<Utc>, DateTime<Utc>)>,
        window: &str,
    ) -> Result<Vec<FootfallRow>> {
        let mut filter = format!(
            "rn = 1 AND \"window\" = {} AND {}",
            lit(window),
            time_range(
                "\"dateObservedFrom\"",
                range,
                "SELECT max(\"dateObservedFrom\") FROM footfall",
                "6 hours"
            )
        );
        if let Some(z) = zone {
            filter += &format!(" AND zone = {}", lit(z));
        }
        self.rows(&format!(
            "SELECT zone, \"window\", CAST(\"dateObservedFrom\" AS BIGINT) AS \"dateObservedFrom\",
                    CAST(\"dateObservedTo\" AS BIGINT) AS \"dateObservedTo\", \"peopleCount\", congested,
                    revision, \"final\"
             FROM (SELECT *, row_number() OVER (PARTITION BY zone, \"window\", \"dateObservedFrom\" ORDER BY revision DESC) AS rn
                   FROM footfall) WHERE {filter} ORDER BY zone, \"dateObservedFrom\""
        ))
        .await
    }

    /// Dwell-time distributions per zone and hour (latest revision of each).
    pub async fn footfall_dwell(
        &self,
        zone: Option<&str>,
        range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Result<Vec<DwellRow>> {
        let mut filter = format!(
            "rn = 1 AND {}",
            time_range(
                "hour",
                range,
                "SELECT max(hour) FROM footfall_dwell",
                "24 hours"
            )
        );
        if let Some(z) = zone {
            filter += &format!(" AND zone = {}", lit(z));
        }
        self.rows(&format!(
            "SELECT zone, CAST(hour AS BIGINT) AS hour, \"sessionGap\", visits, \"dwellUnder5Min\",
                    \"dwell5To15Min\", \"dwell15To30Min\", \"dwell30To60Min\", \"meanDwellSeconds\",
                    \"medianDwellMinutes\", revision
             FROM (SELECT *, row_number() OVER (PARTITION BY zone, hour ORDER BY revision DESC) AS rn
                   FROM footfall_dwell) WHERE {filter} ORDER BY zone, hour"
        ))
        .await
    }

    /// Hourly visitors of a site (latest revision of each hour).
    pub async fn site_presence(
        &self,
        site: Option<&str>,
        range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Result<Vec<PresenceRow>> {
        let hours = time_range(
            "hour",
            range,
            "SELECT max(hour) FROM site_presence",
            "24 hours",
        );
        let mut filter = format!("rn = 1 AND {hours}");
        if let Some(s) = site {
            filter += &format!(" AND site = {}", lit(s));
        }
        // Dwell ranges need a per-visitor signal counters do not send: a site's beacon
        // gateway publishes sightings under the site's id as zone, and the site-hour takes
        // that zone-hour's row of `footfall_dwell`.
        self.rows(&format!(
            "SELECT p.site, p.\"locationCode\", CAST(p.hour AS BIGINT) AS hour, p.\"visitorCount\", p.\"arCheckins\",
                    p.\"arCheckinsByPoint\", p.revision, p.\"final\",
                    CASE WHEN d.zone IS NULL THEN NULL ELSE named_struct(
                        'zone', d.zone, 'hour', CAST(d.hour AS BIGINT), 'sessionGap', d.\"sessionGap\",
                        'visits', d.visits, 'dwellUnder5Min', d.\"dwellUnder5Min\", 'dwell5To15Min', d.\"dwell5To15Min\",
                        'dwell15To30Min', d.\"dwell15To30Min\", 'dwell30To60Min', d.\"dwell30To60Min\",
                        'meanDwellSeconds', d.\"meanDwellSeconds\", 'medianDwellMinutes', d.\"medianDwellMinutes\",
                        'revision', d.revision) END AS dwell
             FROM (SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY site, hour ORDER BY revision DESC) AS rn
                                  FROM site_presence) WHERE {filter}) p
             LEFT JOIN (SELECT *, row_number() OVER (PARTITION BY zone, hour ORDER BY revision DESC) AS rn
                        FROM footfall_dwell WHERE {hours}) d
               ON d.zone = p.site AND d.hour = p.hour AND d.rn = 1
             ORDER BY 1, 3"
        ))
        .await
    }

    /// Daily vine indicators (latest revision of each day).
    pub async fn vine_indicators(
        &self,
        station: Option<&str>,
        range: Option<(NaiveDate, NaiveDate)>,
    ) -> Result<Vec<VineRow>> {
        let mut filter = match range {
            Some((from, to)) => format!("rn = 1 AND day >= DATE '{from}' AND day <= DATE '{to}'"),
            None => "rn = 1 AND day >= (SELECT max(day) FROM vine_indicators) - INTERVAL '6 days'"
                .to_string(),
        };
        if let Some(s) = station {
            filter += &format!(" AND station = {}", lit(s));
        }
        self.rows(&format!(
            "SELECT station, CAST(day AS VARCHAR) AS day, tmin, tmax, tmean, \"rainMm\", \"growingDegreeDays\",
                    \"winklerIndex\", \"huglinIndex\", \"oosporeDegreeDays\", \"downyMildew310\",
                    \"gublerThomasIndex\"
             FROM (SELECT *, row_number() OVER (PARTITION BY station, day ORDER BY revision DESC) AS rn
                   FROM vine_indicators) WHERE {filter} ORDER BY station, day"
        ))
        .await
    }
}

/// Record batches → rows, through arrow's JSON writer (strings of every kind, lists,
/// numbers and booleans come out as JSON values).
fn json_rows<T: DeserializeOwned>(batches: &[RecordBatch]) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for batch in batches {
        if batch.num_rows() == 0 {
            continue;
        }
        let mut writer = arrow::json::ArrayWriter::new(Vec::new());
        writer
            .write(batch)
            .map_err(|e| Error::Internal(e.to_string()))?;
        writer
            .finish()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let rows: Vec<T> = serde_json::from_slice(&writer.into_inner())
            .map_err(|e| Error::Internal(format!("lake row: {e}")))?;
        out.extend(rows);
    }
    Ok(out)
}
