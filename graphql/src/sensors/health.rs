//! Device health: which bin sensors and weather stations have gone quiet, stuck, flat, out
//! of reach or implausible, from what they sent (the lake), the radio metadata the field
//! doors keep with each reading (`extra`: `batteryLevel`, `rssi`, `snr`, `gatewayCount`)
//! and the register of devices.
//!
//! A sensor is, as of now (wall clock):
//! - **silent** when its last reading is older than `silent_intervals` × its expected
//!   interval, or when it is registered and was never heard from;
//! - **stuck** (bins) when at least 12 readings over at least half of the last
//!   `stuck_hours` all give the same level (an ultrasonic sensor blinded by a bag);
//! - **low battery** under `low_battery`, **weak signal** under `weak_rssi_dbm`;
//! - **damaged** when the bin itself says so (`status`: vandalized, burning, damaged);
//! - **implausible** when, over the last `stuck_hours`, a bin emptied itself (its level fell
//!   by more than [`EMPTYING_DROP`] with no garbage truck within about 30 m between the
//!   reading before and the one that fell — judged only when some truck reported in that
//!   time, so a commune without tracked trucks is not flagged), or readings of it were
//!   refused as out of range (dead letters with reason `range`).
//!
//! A sensor whose device is in the register with an expected interval is judged silent by
//! that interval. Health is read from the lake when asked (GraphQL `sensorHealth`,
//! `devices(health: …)`) and every publish interval for the metrics
//! (`vallee_devices{state}`); every `record_every_s` the judgements are appended to the
//! `device_health` table ([`record`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use vallee_lake::{Lake, Latest, Progress};
use vallee_schemas::citizen::DeviceProfile;
use vallee_schemas::contract::Table;
use vallee_schemas::tables::columns::Columns;
use vallee_schemas::tables::device_health::STUCK_READINGS;
use vallee_schemas::tables::forecast::EMPTYING_DROP;
use vallee_schemas::tables::{DeviceHealthRow, DeviceHealthTable};

use super::{SensorReader, lake_error, ts};
use crate::Result;
use crate::options::SensorHealthOptions;

/// What the register says of a device, for judging its entity's health.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    pub dev_eui: String,
    pub kind: SensorKind,
    pub commune_code: Option<String>,
    pub latitude: f64,
    pub longitude: f64,
    /// How often it should report.
    pub interval: Option<std::time::Duration>,
}

/// The bin sensors and weather stations the hub knows of, by entity: the register's, then
/// those of the configuration (`[[api.devices]]`) the register does not name (people
/// counters feed site visits, which health does not judge).
pub fn registered(
    view: &crate::citizen::view::CitizenView,
    configured: &[crate::options::Device],
) -> HashMap<String, Registered> {
    let kind = |profile| match profile {
        DeviceProfile::UltrasonicFill => Some(SensorKind::Bin),
        DeviceProfile::WeatherStation => Some(SensorKind::WeatherStation),
        DeviceProfile::PeopleCounter => None,
    };
    let mut out = HashMap::new();
    for d in configured {
        let Some(kind) = kind(d.profile) else {
            continue;
        };
        let at = vallee_schemas::geo::GeoPoint::new(d.longitude, d.latitude);
        let commune = vallee_schemas::communes::valley().locate(&at);
        out.insert(
            d.entity_id.clone(),
            Registered {
                dev_eui: d.dev_eui.to_uppercase(),
                kind,
                commune_code: commune.map(|c| c.insee_code.clone()),
                latitude: d.latitude,
                longitude: d.longitude,
                interval: None,
            },
        );
    }
    for d in view.devices.values() {
        let Some(kind) = kind(d.profile) else {
            continue;
        };
        out.insert(
            d.entity_id.clone(),
            Registered {
                dev_eui: d.dev_eui.clone(),
                kind,
                commune_code: Some(d.commune_code.clone()),
                latitude: d.lat,
                longitude: d.long,
                interval: d
                    .report_interval_s
                    .map(|s| std::time::Duration::from_secs(s.into())),
            },
        );
    }
    out
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
    Implausible,
}

/// Every problem, in the order the metrics list them.
pub const PROBLEMS: [Problem; 6] = [
    Problem::Silent,
    Problem::Stuck,
    Problem::Damaged,
    Problem::LowBattery,
    Problem::WeakSignal,
    Problem::Implausible,
];

impl Problem {
    pub fn label(self) -> &'static str {
        match self {
            Problem::Silent => "silent",
            Problem::Stuck => "stuck",
            Problem::Damaged => "damaged",
            Problem::LowBattery => "low_battery",
            Problem::WeakSignal => "weak_signal",
            Problem::Implausible => "implausible",
        }
    }
}

/// One sensor's health.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub entity_id: String,
    /// Its device in the register, if registered.
    pub dev_eui: Option<String>,
    pub kind: SensorKind,
    pub commune_code: Option<String>,
    /// None: registered, never heard from.
    pub last_seen: Option<DateTime<Utc>>,
    pub readings_24h: i64,
    pub battery: Option<f64>,
    pub rssi: Option<f64>,
    pub snr: Option<f64>,
    pub gateways: Option<i64>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// Level falls with no truck nearby, over the last `stuck_hours`.
    pub emptied_without_truck: i64,
    /// Readings refused as out of range, over the last `stuck_hours`.
    pub refused_readings: i64,
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
    /// Level falls with no truck nearby, and readings refused as out of range.
    pub emptied_without_truck: i64,
    pub refused_readings: i64,
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
        && n >= STUCK_READINGS
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
    if seen.emptied_without_truck > 0 || seen.refused_readings > 0 {
        problems.push(Problem::Implausible);
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
pub static COUNTS: [AtomicU64; 7] = [
    AtomicU64::new(0),
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
    COUNTS[PROBLEMS.len()].store(working as u64, Ordering::Relaxed);
}

/// `vallee_devices{state}` in the metrics' text format.
pub fn render_metrics(out: &mut String) {
    out.push_str("# HELP vallee_devices Field devices (bin sensors, weather stations) per state as of the last check; one device may have several problems.\n# TYPE vallee_devices gauge\n");
    for (i, p) in PROBLEMS.iter().enumerate() {
        out.push_str(&format!(
            "vallee_devices{{state=\"{}\"}} {}\n",
            p.label(),
            COUNTS[i].load(Ordering::Relaxed)
        ));
    }
    out.push_str(&format!(
        "vallee_devices{{state=\"working\"}} {}\n",
        COUNTS[PROBLEMS.len()].load(Ordering::Relaxed)
    ));
}

impl SensorReader {
    /// The health of every bin sensor and weather station, in a commune if asked: those
    /// that sent anything, and the registered ones never heard from. A sensor in `register`
    /// (by entity) is expected to report as often as the register says.
    pub async fn sensor_health(
        &self,
        now: DateTime<Utc>,
        commune: Option<&str>,
        o: &SensorHealthOptions,
        register: &HashMap<String, Registered>,
    ) -> Result<Vec<Health>> {
        let window_start = now - Duration::seconds((o.stuck_hours * 3600) as i64);
        let day_start = now - Duration::hours(24);
        let commune_filter = commune.map_or("TRUE".to_string(), |c| {
            format!("l.\"communeCode\" = {}", super::lit(c))
        });
        let self_emptied = self.emptied_without_truck(window_start).await?;
        let refused = self.refused_out_of_range(window_start).await?;
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
                    let entity_id = id.need(i).map_err(read)?;
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
                        emptied_without_truck: self_emptied.get(&entity_id).copied().unwrap_or(0),
                        refused_readings: refused.get(&entity_id).copied().unwrap_or(0),
                    };
                    let device = register.get(&entity_id);
                    let (problems, radio) = judge(&seen, now, o, device.and_then(|d| d.interval));
                    out.push(Health {
                        dev_eui: device.map(|d| d.dev_eui.clone()),
                        entity_id,
                        kind,
                        commune_code: commune.take(i),
                        last_seen: seen.last_seen,
                        readings_24h: seen.readings_24h,
                        battery: radio.battery,
                        rssi: radio.rssi,
                        snr: radio.snr,
                        gateways: radio.gateways,
                        latitude: lat.take(i),
                        longitude: lon.take(i),
                        emptied_without_truck: seen.emptied_without_truck,
                        refused_readings: seen.refused_readings,
                        problems,
                    });
                }
            }
        }
        let heard: std::collections::HashSet<String> =
            out.iter().map(|h| h.entity_id.clone()).collect();
        let mut never_heard: Vec<(&String, &Registered)> = register
            .iter()
            .filter(|(entity, d)| {
                !heard.contains(*entity)
                    && commune.is_none_or(|c| d.commune_code.as_deref() == Some(c))
            })
            .collect();
        never_heard.sort_by(|a, b| a.0.cmp(b.0));
        for (entity, d) in never_heard {
            let seen = Seen {
                refused_readings: refused.get(entity).copied().unwrap_or(0),
                ..Seen::default()
            };
            let (problems, _) = judge(&seen, now, o, d.interval);
            out.push(Health {
                entity_id: entity.clone(),
                dev_eui: Some(d.dev_eui.clone()),
                kind: d.kind,
                commune_code: d.commune_code.clone(),
                last_seen: None,
                readings_24h: 0,
                battery: None,
                rssi: None,
                snr: None,
                gateways: None,
                latitude: Some(d.latitude),
                longitude: Some(d.longitude),
                emptied_without_truck: 0,
                refused_readings: seen.refused_readings,
                problems,
            });
        }
        Ok(out)
    }

    /// Per bin, the level falls since `since` with no garbage truck within about 30 m
    /// between the reading before and the one that fell (5 minutes either side, for clocks
    /// apart): a sensor reporting every half hour sees an emptying up to half an hour late.
    /// Empty when no truck reported since then: without trucks' positions nothing can be
    /// told.
    async fn emptied_without_truck(&self, since: DateTime<Utc>) -> Result<HashMap<String, i64>> {
        let garbage = "array_has(\"serviceProvided\", 'garbageCollection')";
        let sql = format!(
            "WITH trucks AS (
               SELECT \"dateObserved\" AS t, latitude AS lat, longitude AS lon FROM waste_vehicles
               WHERE \"dateObserved\" >= {from} AND {garbage}),
             readings AS (
               SELECT id, \"dateObserved\" AS t, latitude AS lat, longitude AS lon, \"fillingLevel\" AS level,
                      lag(\"fillingLevel\") OVER (PARTITION BY id ORDER BY \"dateObserved\", _offset) AS before,
                      lag(\"dateObserved\") OVER (PARTITION BY id ORDER BY \"dateObserved\", _offset) AS t_before
               FROM waste_containers WHERE \"dateObserved\" >= {from}),
             drops AS (
               SELECT id, t, t_before, lat, lon FROM readings
               WHERE t >= {since} AND before - level > {EMPTYING_DROP}),
             witnessed AS (
               SELECT DISTINCT d.id, d.t FROM drops d JOIN trucks k
                 ON k.t BETWEEN d.t_before - INTERVAL '5 minutes' AND d.t + INTERVAL '5 minutes'
                AND abs(k.lat - d.lat) <= 0.00027 AND abs(k.lon - d.lon) <= 0.00037)
             SELECT d.id, count(*) AS n
             FROM drops d CROSS JOIN (SELECT count(*) AS positions FROM trucks) k
             LEFT JOIN witnessed w ON w.id = d.id AND w.t = d.t
             WHERE w.id IS NULL AND k.positions > 0
             GROUP BY d.id",
            from = ts(since - Duration::hours(6)),
            since = ts(since),
        );
        self.counts_by_id(&sql, "id").await
    }

    /// Per entity (the record's key), the readings refused as out of range since `since`.
    async fn refused_out_of_range(&self, since: DateTime<Utc>) -> Result<HashMap<String, i64>> {
        let sql = format!(
            "SELECT key AS id, count(*) AS n FROM dead_letters
             WHERE day >= CAST({since} AS DATE) AND received_at >= {since}
               AND reason = '{range}' AND key IS NOT NULL
             GROUP BY key",
            since = ts(since),
            range = vallee_schemas::rejection::Reason::Range.as_str(),
        );
        self.counts_by_id(&sql, "id").await
    }

    async fn counts_by_id(&self, sql: &str, column: &str) -> Result<HashMap<String, i64>> {
        let mut out = HashMap::new();
        for batch in self.batches(sql).await? {
            let c = Columns::of_batch("health", &batch);
            let read = |e: vallee_schemas::Error| lake_error(e.into());
            let (mut id, mut n) = (c.strings(column).map_err(read)?, c.ints("n").map_err(read)?);
            for i in 0..c.len() {
                if let (Some(id), Some(n)) = (id.take(i), n.take(i)) {
                    out.insert(id, n);
                }
            }
        }
        Ok(out)
    }
}

/// The number of the check `now` falls in, one every `every`.
pub fn check_number(now: DateTime<Utc>, every: std::time::Duration) -> i64 {
    now.timestamp() / every.as_secs().max(1) as i64
}

/// Appends `all`, judged at `now`, to `device_health` when check number
/// [`check_number`] is not there yet; several replicas write it once (the check's number is
/// the commit's application transaction, and a concurrent commit of the same number
/// loses). Returns the rows written (0: already recorded).
pub async fn record(
    lake: &Lake,
    all: &[Health],
    now: DateTime<Utc>,
    every: std::time::Duration,
) -> Result<usize> {
    const WRITER: &str = "api";
    const CHECKS: &str = "device-health-checks";
    let check = check_number(now, every);
    let stored = lake
        .committed_offsets(DeviceHealthTable, WRITER, CHECKS, &[0])
        .await
        .map_err(lake_error)?
        .remove(&0)
        .flatten();
    if stored.is_some_and(|s| s >= check) {
        return Ok(0);
    }
    let rows: Vec<DeviceHealthRow> = all
        .iter()
        .map(|h| DeviceHealthRow {
            entity_id: h.entity_id.clone(),
            dev_eui: h.dev_eui.clone(),
            kind: match h.kind {
                SensorKind::Bin => "bin",
                SensorKind::WeatherStation => "weather_station",
            },
            commune_code: h.commune_code.clone(),
            checked_at: now,
            last_seen: h.last_seen,
            readings_24h: h.readings_24h,
            battery: h.battery,
            rssi: h.rssi,
            snr: h.snr,
            gateways: h.gateways,
            emptied_without_truck: h.emptied_without_truck,
            refused_readings: h.refused_readings,
            working: h.problems.is_empty(),
            problems: h.problems.iter().map(|p| p.label()).collect(),
            day: vallee_schemas::time::utc_day(&now),
        })
        .collect();
    let batch =
        vallee_schemas::tables::device_health::to_batch(&rows).map_err(|e| lake_error(e.into()))?;
    let progress = [Progress {
        topic: CHECKS.into(),
        partition: 0,
        previous: stored,
        last: check,
    }];
    match lake
        .append(
            DeviceHealthTable,
            WRITER,
            batch.into_iter().collect(),
            &progress,
        )
        .await
    {
        Ok(_) => Ok(rows.len()),
        // Another replica recorded this check first.
        Err(e) if e.is_fenced() => Ok(0),
        Err(e) => Err(lake_error(e)),
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
            emptied_without_truck: 0,
            refused_readings: 0,
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
        // Emptied with no truck by it, or sending levels no bin can have.
        for odd in [
            Seen {
                emptied_without_truck: 1,
                ..healthy.clone()
            },
            Seen {
                refused_readings: 3,
                ..healthy.clone()
            },
        ] {
            assert_eq!(judge(&odd, now, &o, None).0, [Problem::Implausible]);
        }
        // Registered, never heard from.
        assert_eq!(
            judge(&Seen::default(), now, &o, six_hours).0,
            [Problem::Silent]
        );
    }

    #[tokio::test]
    async fn each_check_is_recorded_once_whatever_the_replicas() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            Lake::open_bare(vallee_lake::LakeOptions {
                root: dir.path().to_path_buf(),
                ..Default::default()
            })
            .unwrap()
        };
        // Two replicas, each with its own handle on the same lake.
        let (one, two) = (open(), open());
        let never_heard = Health {
            entity_id: "urn:ngsi-ld:WasteContainer:b-1".into(),
            dev_eui: Some("0101010101010101".into()),
            kind: SensorKind::Bin,
            commune_code: Some("34114".into()),
            last_seen: None,
            readings_24h: 0,
            battery: None,
            rssi: None,
            snr: None,
            gateways: None,
            latitude: None,
            longitude: None,
            emptied_without_truck: 0,
            refused_readings: 0,
            problems: vec![Problem::Silent],
        };
        let all = [never_heard.clone(), never_heard];
        let hourly = std::time::Duration::from_secs(3600);
        let ten = at("2026-12-05T10:05:00Z");
        assert_eq!(record(&one, &all, ten, hourly).await.unwrap(), 2);
        // The other replica, later in the same hour: already there.
        let later = at("2026-12-05T10:50:00Z");
        assert_eq!(record(&two, &all, later, hourly).await.unwrap(), 0);
        // Both at once for the next hour: one of them writes it.
        let eleven = at("2026-12-05T11:00:01Z");
        let (a, b) = tokio::join!(
            record(&one, &all, eleven, hourly),
            record(&two, &all, eleven, hourly)
        );
        assert_eq!(a.unwrap() + b.unwrap(), 2);
        one.ensure(DeviceHealthTable).await.unwrap();
        let batches = one.sql("SELECT count(*) FROM device_health").await.unwrap();
        let rows = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(rows, 4, "two checks of two devices");
    }
}
