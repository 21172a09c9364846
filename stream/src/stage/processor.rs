//! The stage's computation, free of I/O: decoded events in, output rows out.
//!
//! Every emitted window row goes through the [`Emitted`] index, loaded from the output
//! tables on start: a window already written with the same value is not written again, a
//! different value is written as the next revision. Replaying Kafka after a restart (to
//! rebuild window state, device tokens never being on disk) therefore adds nothing but real
//! corrections.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use vallee_lake::Lake;
use vallee_schemas::contract::Stream;
use vallee_schemas::decode::Decoded;
use vallee_schemas::tables::{AlertRow, OutputTable, VineRow};
use vallee_schemas::time::utc_day;

use super::StreamOptions;
use crate::Result;
use crate::families::bins::Bins;
use crate::families::footfall::Footfall;
use crate::families::presence::Presence;
use crate::families::{
    EventClock, Family, Read, ReplayFrom, ReplayTracker, Rows, StageWatermarks, drain,
};
use crate::lineage::{Lineage, Source, Topics};
use crate::rules::vine::{
    DOWNY_MILDEW, FrostWatch, POWDERY_MILDEW, RiskLevel, Season, summarize_day,
};
use crate::window::Window;

/// What the output tables already hold (latest revision and value per window; alert states).
#[derive(Debug, Default, Clone)]
pub struct Emitted {
    pub vine_days: HashSet<(String, chrono::NaiveDate)>,
    /// (alert id, state, time in µs): a mildew episode has several `open` rows (levels).
    pub vine_alerts: HashSet<(String, &'static str, i64)>,
}

/// Rows produced since the last commit.
#[derive(Debug, Default)]
pub struct Pending {
    pub vine: Vec<VineRow>,
    pub vine_alerts: Vec<AlertRow>,
}

/// The stage's state.
pub struct Processor {
    options: StreamOptions,
    /// One watermark per input stream, shared by the families.
    watermarks: StageWatermarks,
    pub footfall: Footfall,
    pub presence: Presence,
    pub bins: Bins,
    pub emitted: Emitted,
    pub pending: Pending,
    pub replay: ReplayTracker,
    /// Vineyard alert rows not yet handed to the alerts topic.
    fresh_alerts: Vec<AlertRow>,
    /// Station readings `(time, °C, mm)` per station and local day, until the day closes.
    vine_days: BTreeMap<(String, chrono::NaiveDate), (Vec<StationReading>, Lineage)>,
    stations: BTreeMap<String, StationInfo>,
    /// Mildew risk per (parcel or station, alert kind): level and the open episode's id.
    pub mildew: BTreeMap<(String, &'static str), (RiskLevel, Option<String>)>,
    topics: Topics,
    /// Season accumulators per station (restored from `vine_indicators` on start).
    pub seasons: BTreeMap<String, Season>,
    frost: BTreeMap<String, FrostWatch>,
}

/// A station reading: time, air temperature (°C), precipitation (mm).
type StationReading = (DateTime<Utc>, f64, f64);

/// What a weather station told about itself.
#[derive(Debug, Clone)]
struct StationInfo {
    latitude: f64,
    /// Parcels the station covers (its alerts are theirs).
    parcels: Vec<String>,
    commune_code: Option<String>,
}

impl StationInfo {
    /// The entities a station's alerts are raised for: its parcels, or itself.
    fn alert_entities(&self, station: &str) -> Vec<String> {
        if self.parcels.is_empty() {
            vec![station.to_string()]
        } else {
            self.parcels.clone()
        }
    }
}
/// Latitude used for a station that never sent its location (the valley's).
const VALLEY_LATITUDE: f64 = 43.65;

impl Processor {
    /// A processor whose per-batch plans run on `handle` (from a thread that may block).
    pub fn new(options: StreamOptions, handle: tokio::runtime::Handle) -> Self {
        Processor {
            watermarks: StageWatermarks::new(&options),
            footfall: Footfall::new(&options, handle.clone()),
            presence: Presence::new(&options, handle),
            bins: Bins::new(&options),
            emitted: Emitted::default(),
            pending: Pending::default(),
            replay: ReplayTracker::default(),
            fresh_alerts: Vec::new(),
            vine_days: BTreeMap::new(),
            stations: BTreeMap::new(),
            seasons: BTreeMap::new(),
            frost: BTreeMap::new(),
            mildew: BTreeMap::new(),
            topics: Topics::default(),
            options,
        }
    }

    /// How far back (event time, behind the watermark) a stream's rows are still needed.
    fn retention(&self, stream: Stream) -> Duration {
        let lateness = self
            .options
            .lateness
            .get(&stream)
            .copied()
            .unwrap_or_default();
        match stream {
            // An hour's windows and visits (cut at the hour, closed a gap after it) within
            // the correction horizon.
            Stream::Beacons | Stream::Tourism => {
                Duration::hours(1)
                    + lateness
                    + self.options.correction_horizon
                    + self.options.dwell_gap
            }
            Stream::WasteContainers => Duration::hours(26) + lateness,
            Stream::WasteVehicles => Duration::minutes(30) + lateness,
            Stream::Vineyards => Duration::hours(26) + lateness,
            // Not an input of the stage: nothing of it is kept.
            Stream::CitizenReports
            | Stream::CitizenIdeas
            | Stream::StaffAudit
            | Stream::ReferencePlaces => Duration::zero(),
        }
    }

    /// Reads what the output tables hold and the state a restart resumes from.
    pub async fn restore(&mut self, lake: &Lake) -> Result<()> {
        self.footfall.restore(lake).await?;
        self.presence.restore(lake).await?;
        self.bins.restore(lake).await?;
        let restored = super::restore::load_emitted(lake).await?;
        self.emitted = restored.emitted;
        self.seasons = restored.seasons;
        self.mildew = restored.mildew;
        Ok(())
    }

    /// A partition of `stream` was assigned: it holds the watermark until it delivers.
    pub fn partition_assigned(&mut self, stream: Stream, partition: i32, now: Instant) {
        self.watermarks.assigned(stream, partition, now);
    }

    /// A partition of `stream` the consumer found empty from where it started: it stops
    /// holding the watermark until it delivers.
    pub fn partition_found_empty(&mut self, stream: Stream, partition: i32) {
        self.watermarks.found_empty(stream, partition);
    }

    pub fn watermark(&self, stream: Stream, now: Instant) -> Option<DateTime<Utc>> {
        self.watermarks.watermark(stream, now)
    }

    /// Per source partition, where a restart must replay from.
    pub fn replay_positions(&mut self, now: Instant) -> Vec<ReplayFrom> {
        let clock = self.watermarks.clock(now);
        let mut positions = self.footfall.replay_from(&clock);
        positions.extend(self.presence.replay_from(&clock));
        positions.extend(self.bins.replay_from(&clock));
        let mut replay = std::mem::take(&mut self.replay);
        positions.extend(replay.positions(&clock, |s| self.retention(s)));
        self.replay = replay;
        positions
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
    ) -> Result<()> {
        let t = event.event_time();
        self.watermarks.observe(stream, partition, t, now);
        let read = Read {
            stream,
            topic,
            partition,
            offset,
            time: t,
        };
        match stream {
            Stream::Beacons => return self.footfall.on_event(event, read),
            Stream::Tourism => return self.presence.on_event(event, read),
            Stream::WasteContainers | Stream::WasteVehicles => {
                return self.bins.on_event(event, read);
            }
            _ => {}
        }
        self.replay.observe(stream, partition, t, offset);
        let source = self.topics.source(topic, partition, offset);
        if let Decoded::Weather(w) = event {
            self.on_weather(w, t, &source);
        }
        Ok(())
    }

    fn on_weather(
        &mut self,
        w: &vallee_schemas::events::weather::WeatherRecord,
        t: DateTime<Utc>,
        source: &Source,
    ) {
        let Some(temperature) = w.temperature else {
            return;
        };
        let station = w.observation.id.clone();
        let parcels = w.ref_parcels.clone().unwrap_or_default();
        let info = self
            .stations
            .entry(station.clone())
            .or_insert_with(|| StationInfo {
                latitude: VALLEY_LATITUDE,
                parcels: Vec::new(),
                commune_code: None,
            });
        if let Some(lat) = w.latitude {
            info.latitude = lat;
        }
        if !parcels.is_empty() {
            info.parcels = parcels;
        }
        if w.commune_code.is_some() {
            info.commune_code = w.commune_code.clone();
        }
        let day = t.with_timezone(&chrono_tz::Europe::Paris).date_naive();
        let (readings, lineage) = self.vine_days.entry((station.clone(), day)).or_default();
        readings.push((t, temperature, w.precipitation.unwrap_or(0.0)));
        lineage.add(source);
        let critical = self.options.frost_critical;
        let watch = self
            .frost
            .entry(station.clone())
            .or_insert_with(|| FrostWatch::new(critical));
        let opened_before = watch.open_since();
        if let Some((open, at)) = watch.on_reading(t, temperature) {
            let opened = if open {
                at
            } else {
                opened_before.unwrap_or(at)
            };
            for entity in self.stations[&station].alert_entities(&station) {
                let alert_id = format!("{entity}:frost:{}", opened.timestamp_micros());
                let state = if open { "open" } else { "cleared" };
                self.push_vine_alert(AlertRow {
                    alert_id,
                    kind: "frost",
                    entity_id: entity,
                    state,
                    date_observed: at,
                    clear_reason: (!open).then_some("temperature_rise"),
                    filling_level: None,
                    commune_code: w.commune_code.clone(),
                    risk_level: None,
                    day: utc_day(&at),
                    lineage: Lineage::of(source),
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
            let (mut readings, lineage) = self.vine_days.remove(&key).unwrap_or_default();
            readings.sort_by_key(|r| r.0);
            let (station, day) = key;
            let Some(summary) = summarize_day(day, &readings) else {
                continue;
            };
            if !self.emitted.vine_days.insert((station.clone(), day)) {
                continue; // a replayed day already in the table (its season state was restored)
            }
            let latitude = self
                .stations
                .get(&station)
                .map_or(VALLEY_LATITUDE, |s| s.latitude);
            let season = self
                .seasons
                .entry(station.clone())
                .or_insert_with(|| Season::new(latitude, chrono::Datelike::year(&day)));
            let i = season.add_day(&summary);
            let gt_index = season.gt_index;
            let risks = [
                (DOWNY_MILDEW, RiskLevel::downy(i.downy_mildew_3_10)),
                (POWDERY_MILDEW, RiskLevel::powdery(gt_index)),
            ];
            self.mildew_risks(&station, day, &risks, &lineage);
            self.pending.vine.push(VineRow {
                station: station.clone(),
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
                gt_started: gt_index.is_some(),
                gt_streak: self.seasons[&station].gt_streak as i32,
                revision: 0,
                lineage,
                computed_at: Utc::now(),
            });
        }
    }

    /// A station's day closed with these mildew risk levels: a change of level for a parcel
    /// is a `vine_alerts` row (`open` with the new level, or `cleared` back to low).
    fn mildew_risks(
        &mut self,
        station: &str,
        day: chrono::NaiveDate,
        risks: &[(&'static str, RiskLevel)],
        lineage: &Lineage,
    ) {
        let Some(info) = self.stations.get(station) else {
            return;
        };
        let at = local_day_end(day);
        let commune_code = info.commune_code.clone();
        for entity in info.alert_entities(station) {
            for (kind, level) in risks {
                let key = (entity.clone(), *kind);
                let (before, episode) = self
                    .mildew
                    .get(&key)
                    .cloned()
                    .unwrap_or((RiskLevel::Low, None));
                if before == *level {
                    continue;
                }
                let (alert_id, state) = match (&episode, level) {
                    (Some(id), RiskLevel::Low) => (id.clone(), "cleared"),
                    (None, RiskLevel::Low) => {
                        self.mildew.insert(key, (*level, None));
                        continue;
                    }
                    (Some(id), _) => (id.clone(), "open"),
                    (None, _) => (format!("{entity}:{kind}:{day}"), "open"),
                };
                let open = state == "open";
                self.mildew
                    .insert(key, (*level, open.then(|| alert_id.clone())));
                self.push_vine_alert(AlertRow {
                    alert_id,
                    kind,
                    entity_id: entity.clone(),
                    state,
                    date_observed: at,
                    clear_reason: (!open).then_some("risk_low"),
                    filling_level: None,
                    commune_code: commune_code.clone(),
                    risk_level: Some(level.as_str()),
                    day: utc_day(&at),
                    lineage: lineage.clone(),
                    computed_at: Utc::now(),
                });
            }
        }
    }

    /// A vineyard alert row, unless the table has it already (a replay).
    fn push_vine_alert(&mut self, row: AlertRow) {
        let key = (
            row.alert_id.clone(),
            row.state,
            row.date_observed.timestamp_micros(),
        );
        if !self.emitted.vine_alerts.insert(key) {
            return;
        }
        self.fresh_alerts.push(row.clone());
        self.pending.vine_alerts.push(row);
    }

    /// Event time moved on: runs the buffered plans, closes windows, resolves pending
    /// alert decisions.
    pub fn tick(&mut self, now: Instant) -> Result<()> {
        let clock: EventClock = self.watermarks.clock(now);
        self.footfall.advance(&clock)?;
        self.presence.advance(&clock)?;
        self.bins.advance(&clock)?;
        if let Some(w) = self.watermark(Stream::Vineyards, now) {
            self.close_vine_days(w);
        }
        Ok(())
    }

    /// Alerts decided since the last call, for the alerts topic and the live view.
    pub fn drain_alerts(&mut self) -> Vec<AlertRow> {
        let mut alerts = Vec::new();
        self.bins.drain_alerts(&mut alerts);
        alerts.append(&mut self.fresh_alerts);
        alerts
    }

    /// Bin alerts open now.
    pub fn open_alert_rows(&self) -> BTreeMap<String, AlertRow> {
        self.bins.open_alert_rows()
    }

    /// The rows produced since the last call, as one batch per output table that has any.
    pub fn drain_rows(&mut self) -> Result<Rows> {
        let mut out = Rows::new();
        self.footfall.drain_rows(&mut out)?;
        self.presence.drain_rows(&mut out)?;
        self.bins.drain_rows(&mut out)?;
        let p = &mut self.pending;
        drain(&mut out, OutputTable::VineIndicators, &mut p.vine)?;
        drain(&mut out, OutputTable::VineAlerts, &mut p.vine_alerts)?;
        Ok(out)
    }

    /// Current values of open windows (early results for the live view).
    pub fn early_footfall(&self) -> Vec<(String, String, Window, i64)> {
        self.footfall.early()
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

    /// A runtime for the per-batch plans (the test thread blocks on it).
    fn plans_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap()
    }

    fn weather(at: DateTime<Utc>, temperature: f64, rain: f64) -> Decoded {
        let p = format!(
            r#"{{"id":"urn:ngsi-ld:WeatherObserved:st-1","type":"WeatherObserved","dateObserved":"{}","temperature":{temperature},"precipitation":{rain},"refParcels":["p1"],"location":{{"type":"Point","coordinates":[3.59,43.68]}}}}"#,
            at.to_rfc3339()
        );
        decode(
            Stream::Vineyards,
            Some(p.as_bytes()),
            None,
            &DecodeOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn downy_mildew_risk_opens_on_the_3_10_rule_and_clears_when_the_rain_is_48_hours_old() {
        let runtime = plans_runtime();
        let now = Instant::now();
        let mut p = Processor::new(StreamOptions::default(), runtime.handle().clone());
        // 10 May (local day: 22:00 UTC the day before): 24 mm at 15 °C; 11 and 12 May dry.
        let start: DateTime<Utc> = "2026-05-09T22:00:00Z".parse().unwrap();
        for h in 0..74 {
            let rain = if h < 24 { 1.0 } else { 0.0 };
            let event = weather(start + Duration::hours(h), 15.0, rain);
            p.process(Stream::Vineyards, "v", 0, h, &event, now)
                .unwrap();
        }
        p.tick(now).unwrap();
        let rows: Vec<(&str, &str, Option<&str>, String, usize)> = p
            .pending
            .vine_alerts
            .iter()
            .map(|r| {
                (
                    r.kind,
                    r.state,
                    r.risk_level,
                    r.date_observed.to_rfc3339(),
                    r.lineage.ranges().count(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                (
                    "downy_mildew",
                    "open",
                    Some("high"),
                    "2026-05-10T22:00:00+00:00".to_string(),
                    1
                ),
                (
                    "downy_mildew",
                    "cleared",
                    Some("low"),
                    "2026-05-12T22:00:00+00:00".to_string(),
                    1
                ),
            ],
            "open at the end of the rainy day, still high the next (48 h), cleared the day after"
        );
        let ids: Vec<&str> = p
            .pending
            .vine_alerts
            .iter()
            .map(|r| r.alert_id.as_str())
            .collect();
        assert_eq!(
            ids,
            ["p1:downy_mildew:2026-05-10", "p1:downy_mildew:2026-05-10"]
        );
        // The day row names the 24 readings of its day: offsets 24 to 47 for 11 May.
        let day = &p.pending.vine[1];
        assert_eq!(
            day.lineage.ranges().collect::<Vec<_>>(),
            vec![("v", 0, 24, 47)]
        );
        // A restart that restores the state from the tables adds nothing.
        let mut again = Processor::new(StreamOptions::default(), runtime.handle().clone());
        again.emitted = p.emitted.clone();
        again.mildew = p.mildew.clone();
        again.seasons = p.seasons.clone();
        for h in 0..74 {
            let rain = if h < 24 { 1.0 } else { 0.0 };
            let event = weather(start + Duration::hours(h), 15.0, rain);
            again
                .process(Stream::Vineyards, "v", 0, h, &event, now)
                .unwrap();
        }
        again.tick(now).unwrap();
        assert!(again.pending.vine_alerts.is_empty() && again.pending.vine.is_empty());
    }
}
