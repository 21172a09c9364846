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
use super::outputs::{AlertRow, FootfallRow, PresenceRow};
use crate::aggregate::{Aggregate, DistinctCount};
use crate::operator::{Emission, WindowOperator};
use crate::rules::fill::{AlertChange, AlertKind, FillAlerts, FillRules};
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
}

/// Per source partition, the smallest offset still needed to rebuild state on a restart.
#[derive(Debug, Default, Clone)]
pub struct ReplayTracker {
    /// (topic, partition) → minute of event time → smallest offset seen in that minute.
    minutes: BTreeMap<(String, i32), BTreeMap<i64, i64>>,
    next: BTreeMap<(String, i32), i64>,
}

impl ReplayTracker {
    pub fn observe(&mut self, topic: &str, partition: i32, t: DateTime<Utc>, offset: i64) {
        let key = (topic.to_string(), partition);
        let minute = t.timestamp().div_euclid(60);
        let slot = self
            .minutes
            .entry(key.clone())
            .or_default()
            .entry(minute)
            .or_insert(offset);
        *slot = (*slot).min(offset);
        let next = self.next.entry(key).or_insert(offset + 1);
        *next = (*next).max(offset + 1);
    }

    /// Where to replay from so that every row with event time ≥ `keep_from` is read again.
    pub fn replay_from(
        &mut self,
        topic: &str,
        partition: i32,
        keep_from: DateTime<Utc>,
    ) -> Option<i64> {
        let key = (topic.to_string(), partition);
        let cutoff = keep_from.timestamp().div_euclid(60);
        let minutes = self.minutes.get_mut(&key)?;
        minutes.retain(|m, _| *m >= cutoff);
        minutes
            .values()
            .copied()
            .min()
            .or_else(|| self.next.get(&key).copied())
    }

    pub fn partitions(&self) -> Vec<(String, i32)> {
        self.next.keys().cloned().collect()
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
}

impl Processor {
    pub fn new(options: StreamOptions, emitted: Emitted) -> Self {
        let watermarks = Stream::ALL
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
            Stream::Vineyards => lateness,
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
            }
            Decoded::Vehicle(v) => self.alerts.on_vehicle(v),
            Decoded::ParcelRecord(_) | Decoded::Weather(_) => {}
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
