//! Sensor results read from the lake with DataFusion: the latest state of each bin, the
//! alerts, forecasts, footfall, site presence and vine indicators.
//!
//! Every query reads the latest row per key through the lake's one view
//! ([`vallee_lake::Latest`], by the keys and order of each table's contract), so
//! corrections replace what they correct, and rows come back as the tables' contract rows
//! (`vallee_schemas::tables`), read straight from Arrow.
//!
//! Every read that can show people counts or a parcel takes the request's
//! [`Reader`](crate::audience::Reader) and answers what that reader may see: counts
//! exact or as the public sees them (`vallee_schemas::public_view::counts`), vineyard
//! alerts of the parcels it may see. No sensor read bypasses it.
//!
//! Reads go to the API's snapshot of the lake, refreshed apart from the writers, one turn
//! of the lake gate each ([`crate::limits::lake`]); partner feeds read through here too.

pub mod collect;
pub mod health;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use chrono::{DateTime, Duration, DurationRound, NaiveDate, Utc};
use tokio::sync::OnceCell;
use vallee_lake::{Lake, Latest};
use vallee_schemas::contract::Table;
use vallee_schemas::public_view::counts;
use vallee_schemas::tables::columns::Columns;
use vallee_schemas::tables::{
    AlertKind, AlertRow, DwellRow, FootfallRow, OutputTable, PresenceRow, TableRow, VineRow,
};

pub use self::collect::{CollectReason, ToCollect};
use crate::audience::Reader;
use crate::limits::lake::{LakeGate, LakeReads};
use crate::options::Limits;
use crate::{Error, Result};

/// Reads sensor results from the lake.
#[derive(Debug)]
pub struct SensorReader {
    lake: Arc<Lake>,
    ensured: OnceCell<()>,
    reads: LakeReads,
}

/// Latest reading of a bin: the columns of `waste_containers` the API shows.
#[derive(Debug, Clone, PartialEq)]
pub struct BinRow {
    pub id: String,
    pub commune_code: Option<String>,
    pub filling_level: f64,
    /// The bin's own fullness threshold.
    pub threshold: Option<f64>,
    pub temperature: Option<f64>,
    pub status: Option<String>,
    /// The kinds of waste, comma-separated.
    pub waste_kind: Option<String>,
    pub date_observed: DateTime<Utc>,
    pub latitude: f64,
    pub longitude: f64,
}

impl BinRow {
    /// The rows of a batch of [`SensorReader::latest_bins`]'s columns.
    fn from_batch(batch: &RecordBatch) -> vallee_schemas::Result<Vec<BinRow>> {
        let c = Columns::of_batch("waste_containers", batch);
        let (mut id, mut commune) = (c.strings("id")?, c.strings("communeCode")?);
        let (mut level, mut threshold) =
            (c.floats("fillingLevel")?, c.floats("binFullnessThreshold")?);
        let (mut temperature, mut status) = (c.floats("temperature")?, c.strings("status")?);
        let (mut kind, mut at) = (c.strings("wasteKind")?, c.timestamps("dateObserved")?);
        let (mut lat, mut lon) = (c.floats("latitude")?, c.floats("longitude")?);
        (0..c.len())
            .map(|i| {
                Ok(BinRow {
                    id: id.need(i)?,
                    commune_code: commune.take(i),
                    filling_level: level.need(i)?,
                    threshold: threshold.take(i),
                    temperature: temperature.take(i),
                    status: status.take(i),
                    waste_kind: kind.take(i),
                    date_observed: at.need(i)?,
                    latitude: lat.need(i)?,
                    longitude: lon.need(i)?,
                })
            })
            .collect()
    }
}

/// A footfall window, and its people count as the reader sees it (`None`: withheld).
#[derive(Debug, Clone, PartialEq)]
pub struct FootfallSeen {
    pub row: FootfallRow,
    pub people: Option<i64>,
}

/// A zone-hour's dwell times, and what the reader sees of them.
#[derive(Debug, Clone, PartialEq)]
pub struct DwellSeen {
    pub row: DwellRow,
    pub shown: counts::Dwell,
}

impl DwellSeen {
    fn new(reader: &Reader, row: DwellRow) -> Self {
        let shown = match reader.exact_counts() {
            true => counts::Dwell::exact(&row),
            false => counts::dwell(&row),
        };
        DwellSeen { row, shown }
    }
}

/// Visitors of a site in an hour (latest revision), with the dwell times of the zone of
/// the same id in that hour (latest revision), for a site whose beacons publish sightings
/// under its id as zone; and what the reader sees of their counts.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteHour {
    pub presence: PresenceRow,
    pub shown: counts::Presence,
    pub dwell: Option<DwellSeen>,
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

/// The hour `t` is in, and the first hour starting at or after `t`.
fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::hours(1)).unwrap_or(t)
}

fn ceil_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    match floor_hour(t) {
        h if h == t => h,
        h => h + Duration::hours(1),
    }
}

/// The latest rows of a derived table matching `filter`, in `order`; without their lineage
/// (the API never shows it).
fn latest_rows(latest: Latest, filter: &str, order: &str) -> String {
    format!("SELECT * EXCLUDE (lineage) FROM ({latest}) WHERE {filter} ORDER BY {order}")
}

impl SensorReader {
    /// Reads of `lake` under `limits` (concurrent lake queries, snapshot refresh).
    pub fn new(lake: Arc<Lake>, limits: &Limits) -> Self {
        let copies = [
            Table::WasteContainers,
            Table::WasteVehicles,
            Table::ParcelRecords,
            Table::WeatherObserved,
            Table::DeadLetters,
        ]
        .into_iter()
        .fold(lake.read_only(), |c, t| c.with(t));
        let copies = OutputTable::ALL.into_iter().fold(copies, |c, t| c.with(t));
        let gate = LakeGate::new(limits.max_concurrent_lake_queries, limits.lake_queue);
        SensorReader {
            lake,
            ensured: OnceCell::new(),
            reads: LakeReads::new(copies, Arc::new(gate), limits.lake_refresh),
        }
    }

    /// The lake it reads (the API writes one table there: `device_health`).
    pub(crate) fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The gate every lake read of the API takes a turn at.
    pub fn gate(&self) -> &Arc<LakeGate> {
        self.reads.gate()
    }

    /// Runs one query over the snapshot (the sensor tables, the trucks' positions,
    /// `parcel_records`, `weather_observed` and the dead letters) and collects its batches.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.batches(sql).await
    }

    /// Runs a query (once the tables it may read exist) and collects its batches.
    async fn batches(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.ensured
            .get_or_try_init(|| async {
                for t in [
                    Table::WasteContainers,
                    Table::WasteVehicles,
                    Table::WeatherObserved,
                    Table::DeadLetters,
                ] {
                    self.lake.ensure(t).await?;
                }
                for t in OutputTable::ALL {
                    self.lake.ensure(t).await?;
                }
                Ok::<_, vallee_lake::Error>(())
            })
            .await
            .map_err(lake_error)?;
        self.reads.sql(sql).await
    }

    /// Runs a query and reads its rows as a derived table's contract rows.
    async fn rows<R: TableRow>(&self, sql: &str) -> Result<Vec<R>> {
        let batches = self.batches(sql).await?;
        R::from_batches(&batches).map_err(|e| lake_error(e.into()))
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
        self.latest_bins(None, &filter).await
    }

    /// The latest reading of each of these bins (one query for them all: the DataLoader
    /// behind `Alert.bin` and `BinToCollect.bin` calls this once per batch).
    pub async fn bins_by_id(&self, ids: &[String]) -> Result<Vec<BinRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = ids.iter().map(|i| lit(i)).collect();
        self.latest_bins(Some(format!("id IN ({})", list.join(", "))), "TRUE")
            .await
    }

    /// Latest reading per bin among readings matching `readings`, kept when the latest
    /// matches `latest`.
    async fn latest_bins(&self, readings: Option<String>, latest: &str) -> Result<Vec<BinRow>> {
        let mut bins = Latest::of(Table::WasteContainers);
        if let Some(readings) = readings {
            bins = bins.filter(readings);
        }
        let batches = self
            .batches(&format!(
                "SELECT id, \"communeCode\", \"fillingLevel\", \"binFullnessThreshold\", temperature, status,
                        array_to_string(\"storedWasteKind\", ',') AS \"wasteKind\", \"dateObserved\",
                        latitude, longitude
                 FROM ({bins}) WHERE {latest} ORDER BY id"
            ))
            .await?;
        let mut rows = Vec::new();
        for batch in &batches {
            rows.extend(BinRow::from_batch(batch).map_err(|e| lake_error(e.into()))?);
        }
        Ok(rows)
    }

    /// The newest value a scalar query (`SELECT max(…) AS newest …`) returns.
    async fn newest(&self, sql: &str) -> Result<Option<DateTime<Utc>>> {
        let batches = self.batches(sql).await?;
        let Some(batch) = batches.first() else {
            return Ok(None);
        };
        let newest = Columns::of_batch("newest", batch)
            .timestamps("newest")
            .map_err(|e| lake_error(e.into()))?
            .take(0);
        Ok(newest)
    }

    /// The latest state of every alert episode of `table` (fill_alerts or vine_alerts)
    /// that `reader` may see.
    pub async fn alerts(
        &self,
        reader: &Reader,
        table: OutputTable,
        open: Option<bool>,
        commune: Option<&str>,
    ) -> Result<Vec<AlertRow>> {
        let mut filter = String::from("TRUE");
        match open {
            Some(true) => filter += " AND state = 'open'",
            Some(false) => filter += " AND state = 'cleared'",
            None => {}
        }
        if let Some(c) = commune {
            filter += &format!(" AND \"communeCode\" = {}", lit(c));
        }
        let order = "\"dateObserved\" DESC";
        let mut rows: Vec<AlertRow> = self
            .rows(&latest_rows(Latest::of(table), &filter, order))
            .await?;
        rows.retain(|r| reader.sees_alert(AlertKind::parse(r.kind), &r.entity_id));
        Ok(rows)
    }

    /// Footfall windows (`window`: PT5M or PT1H) of a zone, or of every zone, starting in
    /// `range` (without one, the 6 hours before the newest window), latest revision of
    /// each, with their counts as `reader` sees them.
    pub async fn footfall(
        &self,
        reader: &Reader,
        zone: Option<&str>,
        range: Option<(DateTime<Utc>, DateTime<Utc>)>,
        window: &str,
    ) -> Result<Vec<FootfallSeen>> {
        let (from, to) = match range {
            Some(r) => r,
            None => {
                let newest = "SELECT max(\"dateObservedFrom\") AS newest FROM footfall";
                match self.newest(newest).await? {
                    Some(n) => (n - Duration::hours(6), n + Duration::hours(1)),
                    None => return Ok(Vec::new()),
                }
            }
        };
        // An hour's count is decided beside its twelve 5-minute windows: read whole hours
        // of both windows, decide, then keep what was asked.
        let mut filter = format!(
            "\"dateObservedFrom\" >= {} AND \"dateObservedFrom\" < {}",
            ts(floor_hour(from)),
            ts(ceil_hour(to))
        );
        if let Some(z) = zone {
            filter += &format!(" AND zone = {}", lit(z));
        }
        let latest = Latest::of(OutputTable::Footfall);
        let order = "zone, \"dateObservedFrom\"";
        let rows: Vec<FootfallRow> = self.rows(&latest_rows(latest, &filter, order)).await?;
        let shown = match reader.exact_counts() {
            true => rows.iter().map(|r| Some(r.people_count)).collect(),
            false => counts::footfall(&rows),
        };
        Ok(rows
            .into_iter()
            .zip(shown)
            .filter(|(r, _)| r.window == window && from <= r.from && r.from < to)
            .map(|(row, people)| FootfallSeen { row, people })
            .collect())
    }

    /// Dwell-time distributions per zone and hour (latest revision of each), as `reader`
    /// sees them.
    pub async fn footfall_dwell(
        &self,
        reader: &Reader,
        zone: Option<&str>,
        range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Result<Vec<DwellSeen>> {
        let mut filter = time_range(
            "hour",
            range,
            "SELECT max(hour) FROM footfall_dwell",
            "24 hours",
        );
        if let Some(z) = zone {
            filter += &format!(" AND zone = {}", lit(z));
        }
        let latest = Latest::of(OutputTable::FootfallDwell);
        let rows: Vec<DwellRow> = self
            .rows(&latest_rows(latest, &filter, "zone, hour"))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| DwellSeen::new(reader, r))
            .collect())
    }

    /// Hourly visitors of a site (latest revision of each hour), as `reader` sees them.
    pub async fn site_presence(
        &self,
        reader: &Reader,
        site: Option<&str>,
        range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Result<Vec<SiteHour>> {
        let hours = time_range(
            "hour",
            range,
            "SELECT max(hour) FROM site_presence",
            "24 hours",
        );
        let mut filter = hours.clone();
        if let Some(s) = site {
            filter += &format!(" AND site = {}", lit(s));
        }
        let latest = Latest::of(OutputTable::SitePresence);
        let presence: Vec<PresenceRow> = self
            .rows(&latest_rows(latest, &filter, "site, hour"))
            .await?;
        // Dwell ranges need a per-visitor signal counters do not send: a site's beacon
        // gateway publishes sightings under the site's id as zone, and the site-hour takes
        // that zone-hour's latest row of `footfall_dwell` (same hours: `hour` is a key).
        let latest = Latest::of(OutputTable::FootfallDwell).filter(hours);
        let mut dwell: HashMap<(String, DateTime<Utc>), DwellRow> = self
            .rows::<DwellRow>(&latest_rows(latest, "TRUE", "zone, hour"))
            .await?
            .into_iter()
            .map(|d| ((d.zone.clone(), d.hour), d))
            .collect();
        Ok(presence
            .into_iter()
            .map(|p| SiteHour {
                dwell: (dwell.remove(&(p.site.clone(), p.hour))).map(|d| DwellSeen::new(reader, d)),
                shown: match reader.exact_counts() {
                    true => counts::Presence::exact(&p),
                    false => counts::presence(&p),
                },
                presence: p,
            })
            .collect())
    }

    /// Daily vine indicators (latest revision of each day).
    pub async fn vine_indicators(
        &self,
        station: Option<&str>,
        range: Option<(NaiveDate, NaiveDate)>,
    ) -> Result<Vec<VineRow>> {
        let mut filter = match range {
            Some((from, to)) => format!("day >= DATE '{from}' AND day <= DATE '{to}'"),
            None => "day >= (SELECT max(day) FROM vine_indicators) - INTERVAL '6 days'".into(),
        };
        if let Some(s) = station {
            filter += &format!(" AND station = {}", lit(s));
        }
        let latest = Latest::of(OutputTable::VineIndicators);
        self.rows(&latest_rows(latest, &filter, "station, day"))
            .await
    }
}

fn lake_error(e: vallee_lake::Error) -> Error {
    Error::Lake(Box::new(e))
}

#[cfg(test)]
mod tests {
    use vallee_lake::LakeOptions;
    use vallee_schemas::tables::{AlertKind, AlertState, Lineage, PointCheckins, presence};

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    async fn write<R: TableRow>(lake: &Lake, table: OutputTable, rows: &[R]) {
        let batch = R::to_batch(table, rows).unwrap().unwrap();
        lake.append(table, "test", vec![batch], &[]).await.unwrap();
    }

    fn hour(zone: &str, visits: i64, revision: i32) -> DwellRow {
        DwellRow {
            zone: zone.into(),
            hour: at("2026-11-28T10:00:00Z"),
            to: at("2026-11-28T11:00:00Z"),
            session_gap: "PT10M".into(),
            visits,
            under_5_min: visits,
            from_5_to_15_min: 0,
            from_15_to_30_min: 0,
            from_30_to_60_min: 0,
            mean_seconds: 60.0,
            median_minutes: 1,
            total_seconds: 60 * visits,
            revision,
            day: 20_785,
            lineage: Lineage::default(),
            computed_at: at("2026-11-28T11:00:00Z"),
        }
    }

    /// An alert of bin-1 (its fill alert, unless changed).
    pub(super) fn alert(id: &str, state: AlertState, t: &str) -> AlertRow {
        AlertRow {
            alert_id: id.into(),
            kind: AlertKind::Fill.as_str(),
            entity_id: "bin-1".into(),
            state: state.as_str(),
            date_observed: at(t),
            clear_reason: None,
            filling_level: Some(0.9),
            commune_code: Some("34114".into()),
            risk_level: None,
            day: 20_785,
            lineage: Lineage::default(),
            computed_at: at(t),
        }
    }

    #[tokio::test]
    async fn readers_see_the_latest_row_of_each_key() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Arc::new(
            Lake::open_bare(LakeOptions {
                root: dir.path().to_path_buf(),
                ..Default::default()
            })
            .unwrap(),
        );
        // A site's hour and, under the site's id as zone, its dwell times: corrected once.
        let presence = PresenceRow {
            site: "gellone".into(),
            location_code: "34274".into(),
            hour: at("2026-11-28T10:00:00Z"),
            to: at("2026-11-28T11:00:00Z"),
            visitor_count: 40,
            ar_checkins: 2,
            ar_checkins_by_point: vec![PointCheckins {
                point: "p1".into(),
                checkins: 2,
            }],
            aggregation_type: presence::HOURLY_SUM,
            revision: 0,
            is_final: true,
            day: 20_785,
            lineage: Lineage::default(),
            computed_at: at("2026-11-28T11:00:00Z"),
        };
        write(
            &lake,
            OutputTable::SitePresence,
            std::slice::from_ref(&presence),
        )
        .await;
        let dwell = [
            hour("gellone", 3, 0),
            hour("gellone", 4, 1),
            hour("za", 9, 0),
        ];
        write(&lake, OutputTable::FootfallDwell, &dwell).await;
        // An episode opened then cleared, with the clearing at the same time first.
        let alerts = [
            alert("a", AlertState::Open, "2026-11-28T10:00:00Z"),
            alert("a", AlertState::Cleared, "2026-11-28T12:00:00Z"),
            alert("b", AlertState::Open, "2026-11-28T13:00:00Z"),
            alert("b", AlertState::Cleared, "2026-11-28T13:00:00Z"),
        ];
        write(&lake, OutputTable::FillAlerts, &alerts).await;

        let reader = SensorReader::new(lake, &Limits::default());
        let staff = Reader::exact();
        let hours = (reader.site_presence(&staff, Some("gellone"), None))
            .await
            .unwrap();
        let gellone = hour("gellone", 4, 1);
        assert_eq!(
            hours,
            vec![SiteHour {
                shown: counts::Presence::exact(&presence),
                presence: presence.clone(),
                dwell: Some(DwellSeen {
                    shown: counts::Dwell::exact(&gellone),
                    row: gellone,
                }),
            }]
        );
        let dwell = reader.footfall_dwell(&staff, None, None).await.unwrap();
        let seen: Vec<(&str, Option<i64>)> = (dwell.iter())
            .map(|d| (d.row.zone.as_str(), d.shown.visits))
            .collect();
        assert_eq!(seen, [("gellone", Some(4)), ("za", Some(9))]);
        // The public: 40 visitors shown, 2 check-ins and 4 visits withheld.
        let public = Reader::default();
        let hours = (reader.site_presence(&public, Some("gellone"), None))
            .await
            .unwrap();
        let shown = &hours[0].shown;
        assert_eq!((shown.visitors, shown.ar_checkins), (Some(40), None));
        assert_eq!(shown.ar_checkins_by_point, [None]);
        assert_eq!(hours[0].dwell.as_ref().unwrap().shown.visits, None);
        let dwell = reader.footfall_dwell(&public, None, None).await.unwrap();
        let seen: Vec<Option<i64>> = dwell.iter().map(|d| d.shown.visits).collect();
        assert_eq!(seen, [None, Some(9)]);
        let reader = &reader;
        let staff = &staff;
        let latest = reader
            .alerts(staff, OutputTable::FillAlerts, None, Some("34114"))
            .await
            .unwrap();
        let states: Vec<(&str, &str)> = latest
            .iter()
            .map(|a| (a.alert_id.as_str(), a.state))
            .collect();
        assert_eq!(states, [("b", "cleared"), ("a", "cleared")]);
        let open = reader.alerts(staff, OutputTable::FillAlerts, Some(true), None);
        assert!(open.await.unwrap().is_empty());
    }
}
