//! The stage's restore on start: what the output tables already hold (so a replay adds
//! only real corrections) and the state a restart resumes from (open alerts, vineyard
//! seasons, mildew risk levels).

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int32Type, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDate, Utc};
use vallee_lake::Lake;
use vallee_schemas::tables::OutputTable;

use super::processor::{Emitted, points_digest};
use crate::Result;
use crate::dwell::DwellSummary;
use crate::rules::fill::AlertKind;
use crate::rules::vine::{DOWNY_MILDEW, POWDERY_MILDEW, RiskLevel, Season};

/// The alert kinds of `vine_alerts` that follow a risk level.
const MILDEW_KINDS: [&str; 2] = [DOWNY_MILDEW, POWDERY_MILDEW];

/// A mildew risk level and its open episode.
type MildewLevel = (RiskLevel, Option<String>);

fn strings(batch: &RecordBatch, name: &str) -> Vec<String> {
    let col = arrow::compute::cast(batch.column_by_name(name).expect("column"), &DataType::Utf8)
        .expect("cast to Utf8");
    let a = col.as_string::<i32>();
    (0..a.len()).map(|i| a.value(i).to_string()).collect()
}

fn micros(batch: &RecordBatch, name: &str) -> Vec<i64> {
    let a = batch
        .column_by_name(name)
        .expect("column")
        .as_primitive::<TimestampMicrosecondType>();
    (0..a.len()).map(|i| a.value(i)).collect()
}

fn ints(batch: &RecordBatch, name: &str) -> Vec<i64> {
    let col = arrow::compute::cast(
        batch.column_by_name(name).expect("column"),
        &DataType::Int64,
    )
    .expect("cast to Int64");
    let a = col.as_primitive::<arrow::datatypes::Int64Type>();
    (0..a.len()).map(|i| a.value(i)).collect()
}

fn floats(batch: &RecordBatch, name: &str) -> Vec<f64> {
    let a = batch
        .column_by_name(name)
        .expect("column")
        .as_primitive::<Float64Type>();
    (0..a.len()).map(|i| a.value(i)).collect()
}

fn dates(batch: &RecordBatch, name: &str) -> Vec<NaiveDate> {
    let a = batch
        .column_by_name(name)
        .expect("column")
        .as_primitive::<Date32Type>();
    (0..a.len()).filter_map(|i| a.value_as_date(i)).collect()
}

/// A list of `{point, checkins}` structs per row.
fn point_lists(batch: &RecordBatch, name: &str) -> Vec<Vec<(String, i64)>> {
    let column = batch.column_by_name(name).expect("column");
    (0..batch.num_rows())
        .map(|i| {
            let value = match column.as_list_opt::<i32>() {
                Some(list) => list.value(i),
                None => column.as_list::<i64>().value(i),
            };
            let points = value.as_struct();
            let names = arrow::compute::cast(points.column(0), &DataType::Utf8).expect("cast");
            let names = names.as_string::<i32>();
            let counts = arrow::compute::cast(points.column(1), &DataType::Int64).expect("cast");
            let counts = counts.as_primitive::<arrow::datatypes::Int64Type>();
            (0..points.len())
                .map(|j| (names.value(j).to_string(), counts.value(j)))
                .collect()
        })
        .collect()
}

fn revisions(batch: &RecordBatch) -> Vec<i32> {
    let a = batch
        .column_by_name("revision")
        .expect("column")
        .as_primitive::<Int32Type>();
    (0..a.len()).map(|i| a.value(i)).collect()
}

/// A stored vineyard day: day, rain, [latitude, Winkler, Huglin, oospores], GT streak, GT index.
type StoredDay = (NaiveDate, f64, [f64; 4], u32, Option<u8>);

/// An alert still open in `fill_alerts`: entity, kind, id, opening time.
type OpenAlert = (String, AlertKind, String, DateTime<Utc>);

/// Mildew risk per (entity, kind): level and open episode.
type MildewState = BTreeMap<(String, &'static str), (RiskLevel, Option<String>)>;

/// What the output tables hold and the state a restart resumes from.
pub(super) struct Restored {
    pub emitted: Emitted,
    /// Alerts still open in `fill_alerts`.
    pub open: Vec<OpenAlert>,
    pub seasons: BTreeMap<String, Season>,
    pub mildew: MildewState,
}

pub(super) async fn load_emitted(lake: &Lake) -> Result<Restored> {
    for t in OutputTable::ALL {
        lake.ensure(t).await?;
    }
    let mut emitted = Emitted::default();
    for b in lake.sql("SELECT zone, \"window\", \"dateObservedFrom\", revision, \"peopleCount\" FROM footfall").await? {
        let (z, w, f, r, n) = (strings(&b, "zone"), strings(&b, "window"), micros(&b, "dateObservedFrom"), revisions(&b), ints(&b, "peopleCount"));
        for i in 0..b.num_rows() {
            let e = emitted.footfall.entry((z[i].clone(), w[i].clone(), f[i])).or_insert((r[i], n[i]));
            if r[i] >= e.0 {
                *e = (r[i], n[i]);
            }
        }
    }
    let sql = "SELECT zone, hour, revision, visits, \"dwellUnder5Min\", \"dwell5To15Min\", \"dwell15To30Min\", \
               \"dwell30To60Min\", \"totalDwellSeconds\", \"medianDwellMinutes\" FROM footfall_dwell";
    for b in lake.sql(sql).await? {
        let (z, h, r) = (strings(&b, "zone"), micros(&b, "hour"), revisions(&b));
        let columns = [
            "visits",
            "dwellUnder5Min",
            "dwell5To15Min",
            "dwell15To30Min",
            "dwell30To60Min",
            "totalDwellSeconds",
            "medianDwellMinutes",
        ]
        .map(|c| ints(&b, c));
        for i in 0..b.num_rows() {
            let [n, a, b5, c15, d30, total, median] = columns.each_ref().map(|c| c[i]);
            let summary = DwellSummary {
                sessions: n,
                under_5_min: a,
                from_5_to_15_min: b5,
                from_15_to_30_min: c15,
                from_30_to_60_min: d30,
                total_seconds: total,
                median_minutes: median,
            };
            let e = emitted
                .dwell
                .entry((z[i].clone(), h[i]))
                .or_insert((r[i], summary));
            if r[i] >= e.0 {
                *e = (r[i], summary);
            }
        }
    }
    for b in lake
        .sql("SELECT site, hour, revision, \"visitorCount\", \"arCheckins\", \"arCheckinsByPoint\" FROM site_presence")
        .await?
    {
        let (s, h, r, v, a) = (
            strings(&b, "site"),
            micros(&b, "hour"),
            revisions(&b),
            ints(&b, "visitorCount"),
            ints(&b, "arCheckins"),
        );
        let points = point_lists(&b, "arCheckinsByPoint");
        for i in 0..b.num_rows() {
            let value = (v[i], a[i], points_digest(&points[i]));
            let e = emitted
                .presence
                .entry((s[i].clone(), h[i]))
                .or_insert((r[i], value));
            if r[i] >= e.0 {
                *e = (r[i], value);
            }
        }
    }
    let mut states: BTreeMap<String, (String, String, String, i64)> = BTreeMap::new();
    for b in lake
        .sql("SELECT \"alertId\", state, kind, \"entityId\", \"dateObserved\" FROM fill_alerts")
        .await?
    {
        let (id, st, k, e, t) = (
            strings(&b, "alertId"),
            strings(&b, "state"),
            strings(&b, "kind"),
            strings(&b, "entityId"),
            micros(&b, "dateObserved"),
        );
        for i in 0..b.num_rows() {
            let state: &'static str = if st[i] == "open" { "open" } else { "cleared" };
            emitted.alerts.insert((id[i].clone(), state));
            let entry = states.entry(id[i].clone()).or_insert((
                st[i].clone(),
                k[i].clone(),
                e[i].clone(),
                t[i],
            ));
            if st[i] == "cleared" {
                entry.0 = "cleared".into();
            }
        }
    }
    let open = states
        .into_iter()
        .filter(|(_, (state, ..))| state == "open")
        .filter_map(|(id, (_, kind, entity, t))| {
            Some((
                entity,
                AlertKind::parse(&kind)?,
                id,
                DateTime::from_timestamp_micros(t)?,
            ))
        })
        .collect();
    for b in lake
        .sql("SELECT \"entityId\", \"dateObserved\" FROM bin_forecast")
        .await?
    {
        let (id, t) = (strings(&b, "entityId"), micros(&b, "dateObserved"));
        for i in 0..b.num_rows() {
            emitted.forecasts.insert((id[i].clone(), t[i]));
        }
    }
    // Mildew episodes: the latest row of each (entity, kind) gives its level.
    let mut latest: BTreeMap<(String, &'static str), (i64, MildewLevel)> = BTreeMap::new();
    let sql = "SELECT \"alertId\", state, CAST(\"dateObserved\" AS BIGINT) AS t, kind, \"entityId\", \"riskLevel\" FROM vine_alerts";
    for b in lake.sql(sql).await? {
        let (id, st, t) = (strings(&b, "alertId"), strings(&b, "state"), ints(&b, "t"));
        let (kind, entity, level) = (
            strings(&b, "kind"),
            strings(&b, "entityId"),
            strings(&b, "riskLevel"),
        );
        for i in 0..b.num_rows() {
            let open = st[i] == "open";
            emitted.vine_alerts.insert((
                id[i].clone(),
                if open { "open" } else { "cleared" },
                t[i],
            ));
            let Some(kind) = MILDEW_KINDS.into_iter().find(|k| *k == kind[i]) else {
                continue;
            };
            let state = match RiskLevel::parse(&level[i]) {
                Some(l) if open => (l, Some(id[i].clone())),
                _ => (RiskLevel::Low, None),
            };
            let e = latest
                .entry((entity[i].clone(), kind))
                .or_insert((t[i], state.clone()));
            if t[i] >= e.0 {
                *e = (t[i], state);
            }
        }
    }
    let mildew = latest.into_iter().map(|(k, (_, v))| (k, v)).collect();
    // The season state: each station's last stored day, and the rain of its last two days.
    let mut days: BTreeMap<String, Vec<StoredDay>> = BTreeMap::new();
    let sql = "SELECT station, day, latitude, \"rainMm\", \"winklerIndex\", \"huglinIndex\", \"oosporeDegreeDays\", \
               \"gublerThomasStreak\", \"gublerThomasIndex\", \"gublerThomasStarted\" FROM vine_indicators";
    for b in lake.sql(sql).await? {
        let station = strings(&b, "station");
        let day = dates(&b, "day");
        let (lat, rain, wi, hu, oo) = (
            floats(&b, "latitude"),
            floats(&b, "rainMm"),
            floats(&b, "winklerIndex"),
            floats(&b, "huglinIndex"),
            floats(&b, "oosporeDegreeDays"),
        );
        let (streak, gt) = (
            ints(&b, "gublerThomasStreak"),
            ints(&b, "gublerThomasIndex"),
        );
        let started = b
            .column_by_name("gublerThomasStarted")
            .expect("column")
            .as_boolean()
            .clone();
        for i in 0..b.num_rows() {
            emitted.vine_days.insert((station[i].clone(), day[i]));
            let index = started.value(i).then_some(gt[i] as u8);
            days.entry(station[i].clone()).or_default().push((
                day[i],
                rain[i],
                [lat[i], wi[i], hu[i], oo[i]],
                streak[i] as u32,
                index,
            ));
        }
    }
    let seasons = days
        .into_iter()
        .filter_map(|(station, mut rows)| {
            rows.sort_by_key(|r| r.0);
            let (day, _, [lat, winkler, huglin, oospore], streak, index) = *rows.last()?;
            let recent: Vec<(NaiveDate, f64)> = rows
                .iter()
                .rev()
                .take(2)
                .map(|r| (r.0, r.1))
                .rev()
                .collect();
            let season = Season::restore(
                lat,
                chrono::Datelike::year(&day),
                winkler,
                huglin,
                oospore,
                streak,
                index,
                &recent,
            );
            Some((station, season))
        })
        .collect();
    Ok(Restored {
        emitted,
        open,
        seasons,
        mildew,
    })
}
