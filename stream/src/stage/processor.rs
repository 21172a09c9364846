//! The stage's computation, free of I/O: decoded events in, output rows out.
//!
//! Every emitted window row goes through the [`Emitted`] index, loaded from the output
//! tables on start: a window already written with the same value is not written again, a
//! different value is written as the next revision. Replaying Kafka after a restart (to
//! rebuild window state, device tokens never being on disk) therefore adds nothing but real
//! corrections.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use vallee_schemas::contract::Stream;
use vallee_schemas::decode::Decoded;
use vallee_schemas::geo::GeoPoint;
use vallee_schemas::time::utc_day;

use super::StreamOptions;
use super::outputs::{AlertRow, FootfallRow, ForecastRow, PresenceRow, VineRow};
use crate::aggregate::{Aggregate, DistinctCount};
use crate::operator::{Emission, WindowOperator};
use crate::rules::fill::{AlertChange, AlertKind, FillAlerts, FillRules};
use crate::rules::forecast::FillTrend;
use crate::rules::vine::{FrostWatch, Season, summarize_day};
use crate::watermark::{WatermarkOptions, Watermarks};
use crate::window::{Window, WindowKind};

/// Visitors and AR check-ins of a site over a window.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Presence {
    pub visitors: i64,
    pub ar_checkins: i64,
}

impl Aggregate for Presence {
    /// (is an AR-trail check-in, count)
    type Input = (bool, i64);
    type Output = (i64, i64);
    fn add(&mut self, (ar, count): &(bool, i64)) {
        if *ar {
            self.ar_checkins += count;
        } else {
            self.visitors += count;
        }
    }
    fn output(&self) -> (i64, i64) {
        (self.visitors, self.ar_checkins)
    }
}

/// What the output tables already hold (latest revision and value per window; alert states).
#[derive(Debug, Default, Clone)]
pub struct Emitted {
    pub footfall: HashMap<(String, String, i64), (i32, i64)>,
    pub presence: HashMap<(String, i64), (i32, (i64, i64))>,
    pub alerts: HashSet<(String, &'static str)>,
    pub vine_days: HashSet<(String, chrono::NaiveDate)>,
    pub vine_alerts: HashSet<(String, &'static str)>,
    /// (bin, reading time in µs) already forecast.
    pub forecasts: HashSet<(String, i64)>,
}

impl Emitted {
    /// The revision to write for a window value, or `None` when the table has it already.
    fn revision<K: std::hash::Hash + Eq, V: PartialEq + Copy>(
        map: &mut HashMap<K, (i32, V)>,
        key: K,
        value: V,
    ) -> Option<i32> {
        let revision = match map.get(&key) {
            Some((_, v)) if *v == value => return None,
            Some((r, _)) => r + 1,
            None => 0,
        };
        map.insert(key, (revision, value));
        Some(revision)
    }
}

/// Rows produced since the last commit.
#[derive(Debug, Default)]
pub struct Pending {
    pub footfall: Vec<FootfallRow>,
    pub presence: Vec<PresenceRow>,
    pub alerts: Vec<AlertRow>,
    pub vine: Vec<VineRow>,
    pub vine_alerts: Vec<AlertRow>,
    pub forecasts: Vec<ForecastRow>,
}

/// Per source partition, the smallest offset still needed to rebuild state on a restart.
#[derive(Debug, Default, Clone)]
pub struct ReplayTracker {
    /// topic → partition → where replay must start.
    topics: BTreeMap<String, BTreeMap<i32, PartitionReplay>>,
}

#[derive(Debug, Default, Clone)]
struct PartitionReplay {
    /// Minute of event time → smallest offset seen in that minute.
    minutes: BTreeMap<i64, i64>,
    /// The offset after the last one seen.
    next: i64,
}

impl ReplayTracker {
    /// Records a row (the topic is allocated once, not per event: this is the hot path).
    pub fn observe(&mut self, topic: &str, partition: i32, t: DateTime<Utc>, offset: i64) {
        let partitions = match self.topics.get_mut(topic) {
            Some(p) => p,
            None => self.topics.entry(topic.to_string()).or_default(),
        };
        let p = partitions.entry(partition).or_default();
        let slot = p
            .minutes
            .entry(t.timestamp().div_euclid(60))
            .or_insert(offset);
        *slot = (*slot).min(offset);
        p.next = p.next.max(offset + 1);
    }

    /// Where to replay from so that every row with event time ≥ `keep_from` is read again.
    pub fn replay_from(
        &mut self,
        topic: &str,
        partition: i32,
        keep_from: DateTime<Utc>,
    ) -> Option<i64> {
        let p = self.topics.get_mut(topic)?.get_mut(&partition)?;
        let cutoff = keep_from.timestamp().div_euclid(60);
        p.minutes.retain(|m, _| *m >= cutoff);
        Some(p.minutes.values().copied().min().unwrap_or(p.next))
    }

    pub fn partitions(&self) -> Vec<(String, i32)> {
        self.topics
            .iter()
            .flat_map(|(t, ps)| ps.keys().map(move |p| (t.clone(), *p)))
            .collect()
    }
}

/// The stage's state.
pub struct Processor {
    options: StreamOptions,
    watermarks: BTreeMap<Stream, Watermarks>,
    footfall: Vec<WindowOperator<String, DistinctCount>>,
    presence: WindowOperator<String, Presence>,
    site_codes: BTreeMap<String, String>,
    pub alerts: FillAlerts,
    pub emitted: Emitted,
    pub pending: Pending,
    pub replay: ReplayTracker,
    /// Alert changes not yet handed to the alerts topic.
    pub fresh_alerts: Vec<AlertChange>,
    /// Alerts open now, by id (the live view).
    open_rows: BTreeMap<String, AlertRow>,
    /// Station readings `(time, °C, mm)` per station and local day, until the day closes.
    vine_days: BTreeMap<(String, chrono::NaiveDate), Vec<StationReading>>,
    /// Latitude and covered parcels per station.
    stations: BTreeMap<String, (f64, Vec<String>)>,
    /// Season accumulators per station (restored from `vine_indicators` on start).
    pub seasons: BTreeMap<String, Season>,
    frost: BTreeMap<String, FrostWatch>,
    /// Fill trend of each bin since its last emptying.
    trends: BTreeMap<String, FillTrend>,
}

/// A station reading: time, air temperature (°C), precipitation (mm).
type StationReading = (DateTime<Utc>, f64, f64);

/// Critical air temperature of the frost alert (°C).
const FROST_CRITICAL: f64 = 1.0;
/// Latitude used for a station that never sent its location (the valley's).
const VALLEY_LATITUDE: f64 = 43.65;

impl Processor {
    pub fn new(options: StreamOptions, emitted: Emitted) -> Self {
        let watermarks = Stream::SENSORS
            .iter()
            .map(|s| {
                let allowed_lateness = options
                    .lateness
                    .get(s)
                    .copied()
                    .unwrap_or(Duration::minutes(1));
                (
                    *s,
                    Watermarks::new(WatermarkOptions {
                        allowed_lateness,
                        idle_timeout: options.idle_timeout,
                    }),
                )
            })
            .collect();
        let horizon = options.correction_horizon;
        Processor {
            footfall: vec![
                WindowOperator::new(
                    WindowKind::Tumbling {
                        size: Duration::minutes(5),
                    },
                    horizon,
                ),
                WindowOperator::new(
                    WindowKind::Tumbling {
                        size: Duration::hours(1),
                    },
                    horizon,
                ),
            ],
            presence: WindowOperator::new(
                WindowKind::Tumbling {
                    size: Duration::hours(1),
                },
                horizon,
            ),
            site_codes: BTreeMap::new(),
            alerts: FillAlerts::new(FillRules::default()),
            watermarks,
            emitted,
            pending: Pending::default(),
            replay: ReplayTracker::default(),
            fresh_alerts: Vec::new(),
            open_rows: BTreeMap::new(),
            vine_days: BTreeMap::new(),
            stations: BTreeMap::new(),
            seasons: BTreeMap::new(),
            frost: BTreeMap::new(),
            trends: BTreeMap::new(),
            options,
        }
    }

    /// How far back (event time, behind the watermark) a stream's rows are still needed.
    pub fn retention(&self, stream: Stream) -> Duration {
        let lateness = self
            .options
            .lateness
            .get(&stream)
            .copied()
            .unwrap_or_default();
        match stream {
            Stream::Beacons | Stream::Tourism => {
                Duration::hours(1) + lateness + self.options.correction_horizon
            }
            Stream::WasteContainers => Duration::hours(26) + lateness,
            Stream::WasteVehicles => Duration::minutes(30) + lateness,
            Stream::Vineyards => Duration::hours(26) + lateness,
            // Not an input of the stage: nothing of it is kept.
            Stream::CitizenReports | Stream::CitizenIdeas | Stream::StaffAudit => Duration::zero(),
        }
    }

    pub fn watermark(&self, stream: Stream, now: Instant) -> Option<DateTime<Utc>> {
        self.watermarks[&stream].watermark(now)
    }

    /// One decoded event of `stream`, read at `topic[partition]@offset`.
    pub fn process(
        &mut self,
        stream: Stream,
        topic: &str,
        partition: i32,
        offset: i64,
        event: &Decoded,
        now: Instant,
    ) {
        let t = event.event_time();
        if let Some(w) = self.watermarks.get_mut(&stream) {
            w.observe(partition, t, now);
        }
        self.replay.observe(topic, partition, t, offset);
        match event {
            Decoded::Beacon(b) => {
                let zone = &b.record.zone;
                let mut corrections = Vec::new();
                for op in &mut self.footfall {
                    let kind = op.kind();
                    let inserted = op.insert(zone, t, b.device_token.as_str());
                    corrections.extend(inserted.corrections.into_iter().map(|e| (kind, e)));
                    if inserted.too_late {
                        tracing::warn!(zone, time = %t, "sighting older than the correction horizon: counted nowhere");
                    }
                }
                for (kind, e) in corrections {
                    self.emit_footfall(kind, e);
                }
            }
            Decoded::SiteVisit(v) => {
                self.site_codes
                    .insert(v.site.clone(), v.location_code.clone());
                let inserted = self
                    .presence
                    .insert(&v.site, t, &(v.source == "ar-trail", v.count));
                for e in inserted.corrections {
                    self.emit_presence(e);
                }
            }
            Decoded::WasteContainer(r) => {
                let changes = self.alerts.on_reading(r);
                self.emit_alerts(changes);
                self.forecast(r);
            }
            Decoded::Vehicle(v) => self.alerts.on_vehicle(v),
            Decoded::Weather(w) => self.on_weather(w, t),
            Decoded::ParcelRecord(_) | Decoded::Citizen(..) => {}
        }
    }

    fn forecast(&mut self, r: &vallee_schemas::events::waste_container::WasteContainerRecord) {
        let threshold = self.alerts.threshold(r);
        let at = r.observation.date_observed;
        let trend = self.trends.entry(r.observation.id.clone()).or_default();
        let Some(f) = trend.on_reading(at, r.filling_level, threshold) else {
            return;
        };
        if !self
            .emitted
            .forecasts
            .insert((r.observation.id.clone(), at.timestamp_micros()))
        {
            return;
        }
        self.pending.forecasts.push(ForecastRow {
            entity_id: r.observation.id.clone(),
            date_observed: at,
            filling_level: r.filling_level,
            threshold,
            rate_per_hour: f.rate_per_hour,
            full_at: f.full_at,
            readings: f.readings as i32,
            stored_waste_kind: r.stored_waste_kind.as_ref().map(|k| k.join(",")),
            commune_code: r.commune_code.clone(),
            day: utc_day(&at),
            computed_at: Utc::now(),
        });
    }

    fn on_weather(&mut self, w: &vallee_schemas::events::weather::WeatherRecord, t: DateTime<Utc>) {
        let Some(temperature) = w.temperature else {
            return;
        };
        let station = w.observation.id.clone();
        let parcels = w.ref_parcels.clone().unwrap_or_default();
        let entry = self
            .stations
            .entry(station.clone())
            .or_insert((VALLEY_LATITUDE, Vec::new()));
        if let Some(lat) = w.latitude {
            entry.0 = lat;
        }
        if !parcels.is_empty() {
            entry.1 = parcels;
        }
        let day = t.with_timezone(&chrono_tz::Europe::Paris).date_naive();
        self.vine_days
            .entry((station.clone(), day))
            .or_default()
            .push((t, temperature, w.precipitation.unwrap_or(0.0)));
        let watch = self
            .frost
            .entry(station.clone())
            .or_insert_with(|| FrostWatch::new(FROST_CRITICAL));
        let opened_before = watch.open_since();
        if let Some((open, at)) = watch.on_reading(t, temperature) {
            let opened = if open {
                at
            } else {
                opened_before.unwrap_or(at)
            };
            let covered = self.stations[&station].1.clone();
            let entities = if covered.is_empty() {
                vec![station.clone()]
            } else {
                covered
            };
            for entity in entities {
                let alert_id = format!("{entity}:frost:{}", opened.timestamp_micros());
                let state = if open { "open" } else { "cleared" };
                if !self.emitted.vine_alerts.insert((alert_id.clone(), state)) {
                    continue;
                }
                self.pending.vine_alerts.push(AlertRow {
                    alert_id,
                    kind: "frost",
                    entity_id: entity,
                    state,
                    date_observed: at,
                    clear_reason: (!open).then_some("temperature_rise"),
                    filling_level: None,
                    commune_code: w.commune_code.clone(),
                    day: utc_day(&at),
                    computed_at: Utc::now(),
                });
            }
        }
    }

    /// Closes the local days the vineyards' watermark has passed, in order per station.
    fn close_vine_days(&mut self, watermark: DateTime<Utc>) {
        let closed: Vec<(String, chrono::NaiveDate)> = self
            .vine_days
            .keys()
            .filter(|(_, day)| local_day_end(*day) <= watermark)
            .cloned()
            .collect();
        for key in closed {
            let mut readings = self.vine_days.remove(&key).unwrap_or_default();
            readings.sort_by_key(|r| r.0);
            let (station, day) = key;
            let Some(summary) = summarize_day(day, &readings) else {
                continue;
            };
            if !self.emitted.vine_days.insert((station.clone(), day)) {
                continue; // a replayed day already in the table (its season state was restored)
            }
            let latitude = self.stations.get(&station).map_or(VALLEY_LATITUDE, |s| s.0);
            let season = self
                .seasons
                .entry(station.clone())
                .or_insert_with(|| Season::new(latitude, chrono::Datelike::year(&day)));
            let i = season.add_day(&summary);
            self.pending.vine.push(VineRow {
                station,
                day,
                latitude,
                tmin: summary.tmin,
                tmax: summary.tmax,
                tmean: summary.tmean,
                rain_mm: summary.rain_mm,
                gdd: i.gdd,
                winkler: i.winkler,
                huglin: i.huglin,
                oospore: i.oospore_degree_days,
                downy: i.downy_mildew_3_10,
                gubler_thomas: i.gubler_thomas as i32,
                gt_started: season.gt_index.is_some(),
                gt_streak: season.gt_streak as i32,
                revision: 0,
                computed_at: Utc::now(),
            });
        }
    }

    /// Event time moved on: closes windows, resolves pending alert decisions.
    pub fn tick(&mut self, now: Instant) {
        if let Some(w) = self.watermark(Stream::Beacons, now) {
            let mut closed = Vec::new();
            for op in &mut self.footfall {
                let kind = op.kind();
                closed.extend(op.advance(w).into_iter().map(|e| (kind, e)));
            }
            for (kind, e) in closed {
                self.emit_footfall(kind, e);
            }
        }
        if let Some(w) = self.watermark(Stream::Tourism, now) {
            for e in self.presence.advance(w) {
                self.emit_presence(e);
            }
        }
        let changes = self.alerts.advance(
            self.watermark(Stream::WasteContainers, now),
            self.watermark(Stream::WasteVehicles, now),
        );
        self.emit_alerts(changes);
        if let Some(w) = self.watermark(Stream::Vineyards, now) {
            self.close_vine_days(w);
        }
    }

    fn emit_footfall(&mut self, kind: WindowKind, e: Emission<String, i64>) {
        let window = kind.iso_size();
        let key = (
            e.key.clone(),
            window.clone(),
            e.window.start.timestamp_micros(),
        );
        let Some(revision) = Emitted::revision(&mut self.emitted.footfall, key, e.value) else {
            return;
        };
        let capacity = self
            .options
            .zone_capacity
            .get(&e.key)
            .copied()
            .unwrap_or(self.options.default_zone_capacity);
        self.pending.footfall.push(FootfallRow {
            congested: e.value >= capacity,
            zone: e.key,
            window,
            from: e.window.start,
            to: e.window.end,
            people_count: e.value,
            revision,
            is_final: e.is_final,
            day: utc_day(&e.window.start),
            computed_at: Utc::now(),
        });
    }

    fn emit_presence(&mut self, e: Emission<String, (i64, i64)>) {
        let key = (e.key.clone(), e.window.start.timestamp_micros());
        let Some(revision) = Emitted::revision(&mut self.emitted.presence, key, e.value) else {
            return;
        };
        self.pending.presence.push(PresenceRow {
            location_code: self.site_codes.get(&e.key).cloned().unwrap_or_default(),
            site: e.key,
            hour: e.window.start,
            to: e.window.end,
            visitor_count: e.value.0,
            ar_checkins: e.value.1,
            aggregation_type: "hourly_sum",
            revision,
            is_final: e.is_final,
            day: utc_day(&e.window.start),
            computed_at: Utc::now(),
        });
    }

    /// An alert open in the table at start: its episode continues.
    pub fn restore_open_alert(
        &mut self,
        entity: &str,
        kind: AlertKind,
        alert_id: &str,
        at: DateTime<Utc>,
    ) {
        self.alerts
            .restore_open(entity, kind, alert_id, at, GeoPoint::new(0.0, 0.0), None);
        self.open_rows.insert(
            alert_id.to_string(),
            AlertRow {
                alert_id: alert_id.to_string(),
                kind: kind.as_str(),
                entity_id: entity.to_string(),
                state: "open",
                date_observed: at,
                clear_reason: None,
                filling_level: None,
                commune_code: None,
                day: utc_day(&at),
                computed_at: Utc::now(),
            },
        );
    }

    /// Alerts open now.
    pub fn open_alert_rows(&self) -> BTreeMap<String, AlertRow> {
        self.open_rows.clone()
    }

    fn emit_alerts(&mut self, changes: Vec<AlertChange>) {
        for c in changes {
            let state = if c.open { "open" } else { "cleared" };
            let row = AlertRow {
                alert_id: c.alert_id.clone(),
                kind: c.kind.as_str(),
                entity_id: c.entity_id.clone(),
                state,
                date_observed: c.date_observed,
                clear_reason: c.clear_reason.map(|r| r.as_str()),
                filling_level: c.filling_level,
                commune_code: c.commune_code.clone(),
                day: utc_day(&c.date_observed),
                computed_at: Utc::now(),
            };
            if c.open {
                self.open_rows.insert(c.alert_id.clone(), row.clone());
            } else {
                self.open_rows.remove(&c.alert_id);
            }
            if !self.emitted.alerts.insert((c.alert_id.clone(), state)) {
                continue; // already in the table (a replay)
            }
            self.pending.alerts.push(row);
            self.fresh_alerts.push(c);
        }
    }

    /// Current values of open windows (early results for the live view).
    pub fn early_footfall(&self) -> Vec<(String, String, Window, i64)> {
        self.footfall
            .iter()
            .flat_map(|op| {
                let size = op.kind().iso_size();
                op.early_results()
                    .into_iter()
                    .map(move |e| (e.key, size.clone(), e.window, e.value))
            })
            .collect()
    }
}

/// The instant a local (Europe/Paris) day ends.
fn local_day_end(day: chrono::NaiveDate) -> DateTime<Utc> {
    use chrono::TimeZone;
    let next = day
        .succ_opt()
        .unwrap_or(day)
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists");
    chrono_tz::Europe::Paris
        .from_local_datetime(&next)
        .earliest()
        .map_or_else(|| next.and_utc(), |t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vallee_schemas::decode::{DecodeOptions, decode};

    fn sighting(time: &str, zone: &str, token: &str) -> Decoded {
        let p = format!(
            r#"{{"id":"s","type":"BeaconSighting","dateObserved":"2026-11-28T{time}Z","zone":"{zone}","deviceToken":"{token}","saltEpoch":"2026-11-28","rssi":-60}}"#
        );
        decode(
            Stream::Beacons,
            Some(p.as_bytes()),
            None,
            &DecodeOptions::default(),
        )
        .unwrap()
    }

    fn token(i: u32) -> String {
        format!("{i:032x}")
    }

    #[test]
    fn footfall_rows_close_on_the_watermark_and_a_replay_adds_nothing() {
        let now = Instant::now();
        let run = |emitted: Emitted| {
            let mut p = Processor::new(StreamOptions::default(), emitted);
            for (i, time) in ["10:00:05", "10:01:00", "10:03:00", "10:04:30", "10:06:00"]
                .iter()
                .enumerate()
            {
                p.process(
                    Stream::Beacons,
                    "b",
                    0,
                    i as i64,
                    &sighting(time, "za", &token(i as u32 % 3)),
                    now,
                );
            }
            p.tick(now);
            p
        };
        let first = run(Emitted::default());
        // Watermark 10:05:30: the 10:00 five-minute window closed with 3 distinct devices.
        let rows: Vec<(String, i64, i32)> = first
            .pending
            .footfall
            .iter()
            .map(|r| (r.window.clone(), r.people_count, r.revision))
            .collect();
        assert_eq!(rows, vec![("PT5M".to_string(), 3, 0)]);
        assert_eq!(
            first.replay.clone().replay_from(
                "b",
                0,
                DateTime::parse_from_rfc3339("2026-11-28T10:03:00Z")
                    .unwrap()
                    .into()
            ),
            Some(2)
        );
        // A restart replays the same rows with the index loaded from the table: nothing new.
        let again = run(first.emitted.clone());
        assert!(again.pending.footfall.is_empty());
        // A different value for the same window is a correction.
        let mut changed = first.emitted.clone();
        changed.footfall.values_mut().for_each(|v| v.1 = 2);
        let corrected = run(changed);
        assert_eq!(corrected.pending.footfall[0].revision, 1);
    }
}
