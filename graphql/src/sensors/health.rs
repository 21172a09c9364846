//! Sensor health: which bin sensors and weather stations have gone quiet, stuck, flat or
//! out of reach, from what they sent (the lake) and the radio metadata the field doors keep
//! with each reading (`extra`: `batteryLevel`, `rssi`, `snr`, `gatewayCount`).
//!
//! A sensor is, as of now (wall clock):
//! - **silent** when its last reading is older than `silent_intervals` × its expected
//!   interval;
//! - **stuck** (bins) when at least 12 readings over at least half of the last
//!   `stuck_hours` all give the same level (an ultrasonic sensor blinded by a bag);
//! - **low battery** under `low_battery`, **weak signal** under `weak_rssi_dbm`;
//! - **damaged** when the bin itself says so (`status`: vandalized, burning, damaged).
//!
//! A sensor whose device is in the register with an expected interval is judged silent by
//! that interval. Nothing is stored: health is read from the lake when asked (GraphQL
//! `sensorHealth`) and every publish interval for the metrics (`vallee_sensors{state}`).

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use vallee_lake::Latest;
use vallee_schemas::contract::Table;
use vallee_schemas::tables::columns::Columns;

use super::{SensorReader, lake_error, ts};
use crate::Result;
use crate::options::SensorHealthOptions;

/// The expected interval of every registered device's entity, from the register.
pub fn intervals(
    view: &crate::citizen::view::CitizenView,
) -> std::collections::HashMap<String, std::time::Duration> {
    view.devices
        .values()
        .filter_map(|d| {
            let every = d.report_interval_s?;
            Some((
                d.entity_id.clone(),
                std::time::Duration::from_secs(every.into()),
            ))
        })
        .collect()
}

/// What a sensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorKind {
    Bin,
    WeatherStation,
}

/// What is wrong with a sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    Silent,
    Stuck,
    Damaged,
    LowBattery,
    WeakSignal,
}

/// Every problem, in the order the metrics list them.
pub const PROBLEMS: [Problem; 5] = [
    Problem::Silent,
    Problem::Stuck,
    Problem::Damaged,
    Problem::LowBattery,
    Problem::WeakSignal,
];

impl Problem {
    pub fn label(self) -> &'static str {
        match self {
            Problem::Silent => "silent",
            Problem::Stuck => "stuck",
            Problem::Damaged => "damaged",
            Problem::LowBattery => "low_battery",
            Problem::WeakSignal => "weak_signal",
        }
    }
}

/// One sensor's health.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub entity_id: String,
    pub kind: SensorKind,
    pub commune_code: Option<String>,
    pub last_seen: DateTime<Utc>,
    pub readings_24h: i64,
    pub battery: Option<f64>,
    pub rssi: Option<f64>,
    pub snr: Option<f64>,
    pub gateways: Option<i64>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// Empty: working.
    pub problems: Vec<Problem>,
}

/// What one query says of a sensor, before judging it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    pub last_seen: Option<DateTime<Utc>>,
    pub status: Option<String>,
    pub extra: Option<String>,
    /// Readings, lowest and highest level, first reading within the stuck window.
    pub window: (i64, Option<f64>, Option<f64>, Option<DateTime<Utc>>),
    pub readings_24h: i64,
}

/// The problems of a sensor seen as `seen` at `now`, expected to report every `interval`
/// (the register's, else `o`'s).
pub fn judge(
    seen: &Seen,
    now: DateTime<Utc>,
    o: &SensorHealthOptions,
    interval: Option<std::time::Duration>,
) -> (Vec<Problem>, Radio) {
    let radio = Radio::of(seen.extra.as_deref());
    let mut problems = Vec::new();
    let every = interval.unwrap_or(o.expected_interval);
    let silent_after = Duration::seconds((every.as_secs() * o.silent_intervals) as i64);
    if seen.last_seen.is_none_or(|t| now - t > silent_after) {
        problems.push(Problem::Silent);
    }
    let (n, low, high, first) = seen.window;
    let span_needed = Duration::seconds((o.stuck_hours * 3600 / 2) as i64);
    if let (Some(low), Some(high), Some(first), Some(last)) = (low, high, first, seen.last_seen)
        && n >= 12
        && high - low < 1e-9
        && last - first >= span_needed
    {
        problems.push(Problem::Stuck);
    }
    if seen
        .status
        .as_deref()
        .is_some_and(|s| matches!(s, "vandalized" | "burning" | "damaged" | "broken"))
    {
        problems.push(Problem::Damaged);
    }
    if radio.battery.is_some_and(|b| b < o.low_battery) {
        problems.push(Problem::LowBattery);
    }
    if radio.rssi.is_some_and(|r| r < o.weak_rssi_dbm) {
        problems.push(Problem::WeakSignal);
    }
    (problems, radio)
}

/// The radio metadata kept with a reading.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Radio {
    pub battery: Option<f64>,
    pub rssi: Option<f64>,
    pub snr: Option<f64>,
    pub gateways: Option<i64>,
}

impl Radio {
    fn of(extra: Option<&str>) -> Radio {
        let Some(v) = extra.and_then(|e| serde_json::from_str::<serde_json::Value>(e).ok()) else {
            return Radio::default();
        };
        Radio {
            battery: v["batteryLevel"].as_f64(),
            rssi: v["rssi"].as_f64(),
            snr: v["snr"].as_f64(),
            gateways: v["gatewayCount"].as_i64(),
        }
    }
}

/// Sensors with each problem, as of the last pass (the metrics).
pub static COUNTS: [AtomicU64; 6] = [
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
];

/// Records a pass: how many sensors have each problem, and how many work.
pub fn count(all: &[Health]) {
    for (i, p) in PROBLEMS.iter().enumerate() {
        let n = all.iter().filter(|h| h.problems.contains(p)).count();
        COUNTS[i].store(n as u64, Ordering::Relaxed);
    }
    let working = all.iter().filter(|h| h.problems.is_empty()).count();
    COUNTS[5].store(working as u64, Ordering::Relaxed);
}

/// `vallee_sensors{state}` in the metrics' text format.
pub fn render_metrics(out: &mut String) {
    out.push_str("# HELP vallee_sensors Sensors (bins, weather stations) per state as of the last check; one sensor may have several problems.\n# TYPE vallee_sensors gauge\n");
    for (i, p) in PROBLEMS.iter().enumerate() {
        out.push_str(&format!(
            "vallee_sensors{{state=\"{}\"}} {}\n",
            p.label(),
            COUNTS[i].load(Ordering::Relaxed)
        ));
    }
    out.push_str(&format!(
        "vallee_sensors{{state=\"working\"}} {}\n",
        COUNTS[5].load(Ordering::Relaxed)
    ));
}

impl SensorReader {
    /// The health of every bin sensor and weather station, in a commune if asked; a
    /// sensor in `intervals` (by entity, from the register of devices) is expected to report
    /// that often.
    pub async fn sensor_health(
        &self,
        now: DateTime<Utc>,
        commune: Option<&str>,
        o: &SensorHealthOptions,
        intervals: &std::collections::HashMap<String, std::time::Duration>,
    ) -> Result<Vec<Health>> {
        let window_start = now - Duration::seconds((o.stuck_hours * 3600) as i64);
        let day_start = now - Duration::hours(24);
        let commune_filter = commune.map_or("TRUE".to_string(), |c| {
            format!("l.\"communeCode\" = {}", super::lit(c))
        });
        let mut out = Vec::new();
        for (table, kind, level) in [
            (Table::WasteContainers, SensorKind::Bin, "\"fillingLevel\""),
            (Table::WeatherObserved, SensorKind::WeatherStation, "NULL"),
        ] {
            let name = table.name();
            let status = if kind == SensorKind::Bin {
                "l.status"
            } else {
                "CAST(NULL AS VARCHAR)"
            };
            let sql = format!(
                "WITH stats AS (
                   SELECT id,
                          sum(CASE WHEN \"dateObserved\" >= {w} THEN 1 ELSE 0 END) AS n_window,
                          min(CASE WHEN \"dateObserved\" >= {w} THEN CAST({level} AS DOUBLE) END) AS low,
                          max(CASE WHEN \"dateObserved\" >= {w} THEN CAST({level} AS DOUBLE) END) AS high,
                          min(CASE WHEN \"dateObserved\" >= {w} THEN \"dateObserved\" END) AS first_in_window,
                          sum(CASE WHEN \"dateObserved\" >= {d} THEN 1 ELSE 0 END) AS n_day
                   FROM {name} WHERE \"dateObserved\" >= {from} GROUP BY id)
                 SELECT l.id, l.\"communeCode\", l.\"dateObserved\", l.extra, l.latitude, l.longitude,
                        {status} AS status, s.n_window, s.low, s.high, s.first_in_window, s.n_day
                 FROM ({latest}) l LEFT JOIN stats s ON s.id = l.id
                 WHERE {commune_filter} ORDER BY l.id",
                w = ts(window_start),
                d = ts(day_start),
                from = ts(window_start.min(day_start)),
                latest = Latest::of(table),
            );
            for batch in self.batches(&sql).await? {
                let c = Columns::of_batch(name, &batch);
                let read = |e: vallee_schemas::Error| lake_error(e.into());
                let (mut id, mut commune) = (
                    c.strings("id").map_err(read)?,
                    c.strings("communeCode").map_err(read)?,
                );
                let mut at = c.timestamps("dateObserved").map_err(read)?;
                let (mut extra, mut status) = (
                    c.strings("extra").map_err(read)?,
                    c.strings("status").map_err(read)?,
                );
                let (mut lat, mut lon) = (
                    c.floats("latitude").map_err(read)?,
                    c.floats("longitude").map_err(read)?,
                );
                let (mut n_window, mut n_day) = (
                    c.ints("n_window").map_err(read)?,
                    c.ints("n_day").map_err(read)?,
                );
                let (mut low, mut high) = (
                    c.floats("low").map_err(read)?,
                    c.floats("high").map_err(read)?,
                );
                let mut first = c.timestamps("first_in_window").map_err(read)?;
                for i in 0..c.len() {
                    let seen = Seen {
                        last_seen: at.take(i),
                        status: status.take(i),
                        extra: extra.take(i),
                        window: (
                            n_window.take(i).unwrap_or(0),
                            low.take(i),
                            high.take(i),
                            first.take(i),
                        ),
                        readings_24h: n_day.take(i).unwrap_or(0),
                    };
                    let entity_id = id.need(i).map_err(read)?;
                    let (problems, radio) =
                        judge(&seen, now, o, intervals.get(&entity_id).copied());
                    out.push(Health {
                        entity_id,
                        kind,
                        commune_code: commune.take(i),
                        last_seen: seen.last_seen.unwrap_or(now),
                        readings_24h: seen.readings_24h,
                        battery: radio.battery,
                        rssi: radio.rssi,
                        snr: radio.snr,
                        gateways: radio.gateways,
                        latitude: lat.take(i),
                        longitude: lon.take(i),
                        problems,
                    });
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_sensor_is_silent_stuck_flat_or_out_of_reach_by_what_it_sent() {
        let o = SensorHealthOptions::default();
        let now = at("2026-12-07T12:00:00Z");
        let healthy = Seen {
            last_seen: Some(at("2026-12-07T11:40:00Z")),
            status: Some("ok".into()),
            extra: Some(r#"{"batteryLevel":0.8,"rssi":-90,"snr":7.5,"gatewayCount":2}"#.into()),
            window: (48, Some(0.2), Some(0.6), Some(at("2026-12-06T12:10:00Z"))),
            readings_24h: 48,
        };
        let (problems, radio) = judge(&healthy, now, &o, None);
        assert_eq!(problems, []);
        assert_eq!(
            (radio.battery, radio.rssi, radio.snr, radio.gateways),
            (Some(0.8), Some(-90.0), Some(7.5), Some(2))
        );
        // Quiet for 2 h, with a 30-minute interval: three missed.
        let silent = Seen {
            last_seen: Some(at("2026-12-07T10:00:00Z")),
            ..healthy.clone()
        };
        assert_eq!(judge(&silent, now, &o, None).0, [Problem::Silent]);
        // A sensor the register says reports every 6 hours is not silent after 2.
        let six_hours = Some(std::time::Duration::from_secs(6 * 3600));
        assert_eq!(judge(&silent, now, &o, six_hours).0, []);
        // 0.37 for a whole day.
        let stuck = Seen {
            window: (48, Some(0.37), Some(0.37), Some(at("2026-12-06T12:10:00Z"))),
            ..healthy.clone()
        };
        assert_eq!(judge(&stuck, now, &o, None).0, [Problem::Stuck]);
        // The same level for an hour is a quiet bin, not a stuck sensor.
        let quiet = Seen {
            window: (3, Some(0.37), Some(0.37), Some(at("2026-12-07T11:00:00Z"))),
            ..healthy.clone()
        };
        assert_eq!(judge(&quiet, now, &o, None).0, []);
        let worn = Seen {
            status: Some("vandalized".into()),
            extra: Some(r#"{"batteryLevel":0.05,"rssi":-125}"#.into()),
            ..healthy.clone()
        };
        assert_eq!(
            judge(&worn, now, &o, None).0,
            [Problem::Damaged, Problem::LowBattery, Problem::WeakSignal]
        );
    }
}
