//! The stage's computation, free of I/O: decoded events in, output rows out.
//!
//! Every emitted window row goes through the [`Emitted`] index, loaded from the output
//! tables on start: a window already written with the same value is not written again, a
//! different value is written as the next revision. Replaying Kafka after a restart (to
//! rebuild window state, device tokens never being on disk) therefore adds nothing but real
//! corrections.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use arrow::array::RecordBatch;
use chrono::{DateTime, Duration, Utc};
use vallee_schemas::contract::Stream;
use vallee_schemas::decode::Decoded;
use vallee_schemas::geo::GeoPoint;
use vallee_schemas::tables::{
    AlertRow, DwellRow, FootfallRow, ForecastRow, OutputTable, PointCheckins, PresenceRow,
    TableRow, VineRow,
};
use vallee_schemas::time::utc_day;

use super::StreamOptions;
use crate::Result;
use crate::aggregate::{Aggregate, DistinctCount, SketchCount};
use crate::dwell::{DwellEmission, DwellOperator, DwellSummary};
use crate::lineage::{Lineage, Source, Topics};
use crate::microbatch::{BatchEngine, SightingPartial};
use crate::operator::{Emission, WindowOperator};
use crate::rules::fill::{AlertChange, AlertKind, FillAlerts, FillRules};
use crate::rules::forecast::FillTrend;
use crate::rules::vine::{
    DOWNY_MILDEW, FrostWatch, POWDERY_MILDEW, RiskLevel, Season, summarize_day,
};
use crate::watermark::{WatermarkOptions, Watermarks};
use crate::window::{Window, WindowKind};

/// Visitors and AR check-ins (in total and per AR-trail point) of a site over a window.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Presence {
    pub visitors: i64,
    pub ar_checkins: i64,
    pub ar_points: BTreeMap<String, i64>,
}

/// What a site's hour amounts to: visitors, AR check-ins, check-ins per point.
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceValue {
    pub visitors: i64,
    pub ar_checkins: i64,
    pub ar_points: Vec<(String, i64)>,
}

/// Visitors, AR check-ins and a digest of the check-ins per point.
pub type PresenceDigest = (i64, i64, u64);

impl PresenceValue {
    /// What the emitted-rows index compares: the counts and a digest of the points.
    pub fn digest(&self) -> PresenceDigest {
        (
            self.visitors,
            self.ar_checkins,
            points_digest(&self.ar_points),
        )
    }
}

/// FNV-1a of `point=count;…`, the same in every process (unlike the std hasher).
pub fn points_digest(points: &[(String, i64)]) -> u64 {
    let mut h = vallee_schemas::digest::Fnv1a::default();
    for (point, count) in points {
        h.write(format!("{point}={count};").as_bytes());
    }
    h.finish()
}

impl Aggregate for Presence {
    /// (AR-trail point for a check-in, count)
    type Input = (Option<String>, i64);
    type Output = PresenceValue;
    fn add(&mut self, (point, count): &(Option<String>, i64)) {
        match point {
            Some(p) => {
                self.ar_checkins += count;
                *self.ar_points.entry(p.clone()).or_default() += count;
            }
            None => self.visitors += count,
        }
    }
    fn output(&self) -> PresenceValue {
        PresenceValue {
            visitors: self.visitors,
            ar_checkins: self.ar_checkins,
            ar_points: self
                .ar_points
                .iter()
                .map(|(p, n)| (p.clone(), *n))
                .collect(),
        }
    }
}

/// What the output tables already hold (latest revision and value per window; alert states).
#[derive(Debug, Default, Clone)]
pub struct Emitted {
    pub footfall: HashMap<(String, String, i64), (i32, i64)>,
    /// (zone, hour in µs) → latest revision and distribution.
    pub dwell: HashMap<(String, i64), (i32, DwellSummary)>,
    /// (site, hour in µs) → latest revision and (visitors, AR check-ins, points digest).
    pub presence: HashMap<(String, i64), (i32, PresenceDigest)>,
    pub alerts: HashSet<(String, &'static str)>,
    pub vine_days: HashSet<(String, chrono::NaiveDate)>,
    /// (alert id, state, time in µs): a mildew episode has several `open` rows (levels).
    pub vine_alerts: HashSet<(String, &'static str, i64)>,
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
    pub dwell: Vec<DwellRow>,
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
    /// The minute of the last row and the smallest offset recorded for it: rows of a
    /// partition come in offset order, mostly within the same minute (the hot path).
    hot: Option<(i64, i64)>,
}

impl ReplayTracker {
    /// Records a row (the topic is allocated once, not per event: this is the hot path).
    pub fn observe(&mut self, topic: &str, partition: i32, t: DateTime<Utc>, offset: i64) {
        let partitions = match self.topics.get_mut(topic) {
            Some(p) => p,
            None => self.topics.entry(topic.to_string()).or_default(),
        };
        let p = partitions.entry(partition).or_default();
        let minute = t.timestamp().div_euclid(60);
        p.next = p.next.max(offset + 1);
        if p.hot
            .is_some_and(|(m, smallest)| m == minute && offset >= smallest)
        {
            return;
        }
        let slot = p.minutes.entry(minute).or_insert(offset);
        *slot = (*slot).min(offset);
        p.hot = Some((minute, *slot));
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
        p.hot = None;
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
    /// People per zone, counted exactly, and in sketches for the zones configured as large.
    footfall: FootfallWindows<DistinctCount>,
    footfall_sketch: FootfallWindows<SketchCount>,
    dwell: DwellOperator,
    /// Sightings and visits waiting for their DataFusion plan.
    batches: BatchEngine,
    presence: WindowOperator<String, Presence>,
    site_codes: BTreeMap<String, String>,
    pub alerts: FillAlerts,
    pub emitted: Emitted,
    pub pending: Pending,
    pub replay: ReplayTracker,
    /// Alert rows (bins and vineyards) not yet handed to the alerts topic.
    pub fresh_alerts: Vec<AlertRow>,
    /// Alerts open now, by id (the live view).
    open_rows: BTreeMap<String, AlertRow>,
    /// Station readings `(time, °C, mm)` per station and local day, until the day closes.
    vine_days: BTreeMap<(String, chrono::NaiveDate), (Vec<StationReading>, Lineage)>,
    stations: BTreeMap<String, StationInfo>,
    /// Mildew risk per (parcel or station, alert kind): level and the open episode's id.
    pub mildew: BTreeMap<(String, &'static str), (RiskLevel, Option<String>)>,
    /// Readings of each bin since its last alert change (the lineage of the next one).
    bin_lineage: HashMap<String, Lineage>,
    topics: Topics,
    /// Season accumulators per station (restored from `vine_indicators` on start).
    pub seasons: BTreeMap<String, Season>,
    frost: BTreeMap<String, FrostWatch>,
    /// Fill trend of each bin since its last emptying.
    trends: BTreeMap<String, FillTrend>,
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
    pub fn new(options: StreamOptions, emitted: Emitted, handle: tokio::runtime::Handle) -> Self {
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
            footfall: FootfallWindows::new(horizon),
            footfall_sketch: FootfallWindows::new(horizon),
            dwell: DwellOperator::new(options.dwell_gap, horizon),
            batches: BatchEngine::new(handle),
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
            mildew: BTreeMap::new(),
            bin_lineage: HashMap::new(),
            topics: Topics::default(),
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

    /// A partition of `stream` was assigned: it holds the watermark until it delivers.
    pub fn partition_assigned(&mut self, stream: Stream, partition: i32, now: Instant) {
        if let Some(w) = self.watermarks.get_mut(&stream) {
            w.assigned(partition, now);
        }
    }

    /// A partition of `stream` the consumer found empty from where it started: it stops
    /// holding the watermark until it delivers.
    pub fn partition_found_empty(&mut self, stream: Stream, partition: i32) {
        if let Some(w) = self.watermarks.get_mut(&stream) {
            w.found_empty(partition);
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
    ) -> Result<()> {
        let t = event.event_time();
        if let Some(w) = self.watermarks.get_mut(&stream) {
            w.observe(partition, t, now);
        }
        self.replay.observe(topic, partition, t, offset);
        let source = self.topics.source(topic, partition, offset);
        match event {
            Decoded::Beacon(b) => {
                // Footfall and dwell time both come from the plan's partials (one per device
                // and 5-minute bin): nothing per sighting but buffering it.
                let zone = &b.record.zone;
                let token = b.device_token.as_str();
                if self.batches.topic_changes(true, topic) {
                    self.fold_sightings()?;
                }
                if self
                    .batches
                    .sighting(&source.topic, zone, t, token, partition, offset)
                {
                    self.fold_sightings()?;
                }
            }
            Decoded::SiteVisit(v) => {
                if self.batches.topic_changes(false, topic) {
                    self.fold_visits()?;
                }
                // An AR-trail check-in without a point still counts, under "".
                let ar_point =
                    (v.source == "ar-trail").then(|| v.ar_point.as_deref().unwrap_or(""));
                if self.batches.visit(
                    &source.topic,
                    &v.site,
                    &v.location_code,
                    t,
                    ar_point,
                    v.count,
                    partition,
                    offset,
                ) {
                    self.fold_visits()?;
                }
            }
            Decoded::WasteContainer(r) => {
                self.bin_lineage
                    .entry(r.observation.id.clone())
                    .or_default()
                    .add(&source);
                let changes = self.alerts.on_reading(r);
                self.emit_alerts(changes);
                self.forecast(r, &source);
            }
            Decoded::Vehicle(v) => self.alerts.on_vehicle(v),
            Decoded::Weather(w) => self.on_weather(w, t, &source),
            Decoded::ParcelRecord(_) | Decoded::Citizen(..) => {}
        }
        Ok(())
    }

    /// Runs the sightings' plan and folds its partials into the footfall windows.
    fn fold_sightings(&mut self) -> Result<()> {
        let mut corrections = Vec::new();
        for partial in self.batches.take_sightings()? {
            if !self.dwell.insert(
                &partial.zone,
                partial.token,
                partial.time,
                partial.last,
                Some(&partial.lineage),
            ) {
                tracing::warn!(zone = partial.zone, time = %partial.time, "sightings older than the correction horizon: no dwell time");
            }
            let too_late = if self.options.sketch_zones.contains(&partial.zone) {
                self.footfall_sketch.insert(&partial, &mut corrections)
            } else {
                self.footfall.insert(&partial, &mut corrections)
            };
            if too_late {
                tracing::warn!(zone = partial.zone, time = %partial.time, "sighting older than the correction horizon: counted nowhere");
            }
        }
        for (kind, e) in corrections {
            self.emit_footfall(kind, e);
        }
        Ok(())
    }

    /// Runs the visits' plan and folds its partials into the presence windows.
    fn fold_visits(&mut self) -> Result<()> {
        for partial in self.batches.take_visits()? {
            self.site_codes
                .insert(partial.site.clone(), partial.location_code.clone());
            let inserted = self.presence.insert(
                &partial.site,
                partial.time,
                &(
                    partial
                        .ar
                        .then(|| partial.ar_point.clone().unwrap_or_default()),
                    partial.count,
                ),
                Some(&partial.lineage),
            );
            if inserted.too_late {
                tracing::warn!(site = partial.site, time = %partial.time, "visit older than the correction horizon: counted nowhere");
            }
            for e in inserted.corrections {
                self.emit_presence(e);
            }
        }
        Ok(())
    }

    fn forecast(
        &mut self,
        r: &vallee_schemas::events::waste_container::WasteContainerRecord,
        source: &Source,
    ) {
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
            lineage: Lineage::of(source),
            computed_at: Utc::now(),
        });
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
        self.fold_sightings()?;
        self.fold_visits()?;
        if let Some(w) = self.watermark(Stream::Beacons, now) {
            let mut closed = self.footfall.advance(w);
            closed.extend(self.footfall_sketch.advance(w));
            for (kind, e) in closed {
                self.emit_footfall(kind, e);
            }
            for e in self.dwell.advance(w) {
                self.emit_dwell(e);
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
        Ok(())
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
            approximate: self.options.sketch_zones.contains(&e.key),
            congested: e.value >= capacity,
            zone: e.key,
            window,
            from: e.window.start,
            to: e.window.end,
            people_count: e.value,
            revision,
            is_final: e.is_final,
            day: utc_day(&e.window.start),
            lineage: e.lineage,
            computed_at: Utc::now(),
        });
    }

    fn emit_dwell(&mut self, e: DwellEmission) {
        let key = (e.zone.clone(), e.hour.timestamp_micros());
        let Some(revision) = Emitted::revision(&mut self.emitted.dwell, key, e.summary) else {
            return;
        };
        let s = e.summary;
        self.pending.dwell.push(DwellRow {
            zone: e.zone,
            hour: e.hour,
            to: e.hour + Duration::hours(1),
            session_gap: crate::window::iso_duration(self.dwell.gap()),
            visits: s.sessions,
            under_5_min: s.under_5_min,
            from_5_to_15_min: s.from_5_to_15_min,
            from_15_to_30_min: s.from_15_to_30_min,
            from_30_to_60_min: s.from_30_to_60_min,
            mean_seconds: if s.sessions > 0 {
                s.total_seconds as f64 / s.sessions as f64
            } else {
                0.0
            },
            median_minutes: s.median_minutes,
            total_seconds: s.total_seconds,
            revision,
            day: utc_day(&e.hour),
            lineage: e.lineage,
            computed_at: Utc::now(),
        });
    }

    fn emit_presence(&mut self, e: Emission<String, PresenceValue>) {
        let key = (e.key.clone(), e.window.start.timestamp_micros());
        let Some(revision) = Emitted::revision(&mut self.emitted.presence, key, e.value.digest())
        else {
            return;
        };
        self.pending.presence.push(PresenceRow {
            location_code: self.site_codes.get(&e.key).cloned().unwrap_or_default(),
            site: e.key,
            hour: e.window.start,
            to: e.window.end,
            visitor_count: e.value.visitors,
            ar_checkins: e.value.ar_checkins,
            ar_checkins_by_point: e
                .value
                .ar_points
                .into_iter()
                .map(|(point, checkins)| PointCheckins { point, checkins })
                .collect(),
            aggregation_type: "hourly_sum",
            revision,
            is_final: e.is_final,
            day: utc_day(&e.window.start),
            lineage: e.lineage,
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
                risk_level: None,
                day: utc_day(&at),
                lineage: Lineage::default(),
                computed_at: Utc::now(),
            },
        );
    }

    /// Alerts open now.
    pub fn open_alert_rows(&self) -> BTreeMap<String, AlertRow> {
        self.open_rows.clone()
    }

    fn emit_alerts(&mut self, changes: Vec<AlertChange>) {
        let decided: Vec<String> = changes.iter().map(|c| c.entity_id.clone()).collect();
        for c in changes {
            let state = if c.open { "open" } else { "cleared" };
            // The bin's readings since its previous change decided this one.
            let lineage = self
                .bin_lineage
                .get(&c.entity_id)
                .cloned()
                .unwrap_or_default();
            let row = AlertRow {
                alert_id: c.alert_id.clone(),
                kind: c.kind.as_str(),
                entity_id: c.entity_id.clone(),
                state,
                date_observed: c.date_observed,
                clear_reason: c.clear_reason.map(|r| r.as_str()),
                filling_level: c.filling_level,
                commune_code: c.commune_code.clone(),
                risk_level: None,
                day: utc_day(&c.date_observed),
                lineage,
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
            self.fresh_alerts.push(row.clone());
            self.pending.alerts.push(row);
        }
        for entity in decided {
            self.bin_lineage.remove(&entity);
        }
    }

    /// The rows produced since the last call, as one batch per output table that has any.
    pub fn drain_rows(&mut self) -> Result<BTreeMap<OutputTable, RecordBatch>> {
        let mut out = BTreeMap::new();
        let p = &mut self.pending;
        drain(&mut out, OutputTable::Footfall, &mut p.footfall)?;
        drain(&mut out, OutputTable::FootfallDwell, &mut p.dwell)?;
        drain(&mut out, OutputTable::SitePresence, &mut p.presence)?;
        drain(&mut out, OutputTable::FillAlerts, &mut p.alerts)?;
        drain(&mut out, OutputTable::VineIndicators, &mut p.vine)?;
        drain(&mut out, OutputTable::VineAlerts, &mut p.vine_alerts)?;
        drain(&mut out, OutputTable::BinForecast, &mut p.forecasts)?;
        Ok(out)
    }

    /// Current values of open windows (early results for the live view).
    pub fn early_footfall(&self) -> Vec<(String, String, Window, i64)> {
        let mut out = self.footfall.early();
        out.extend(self.footfall_sketch.early());
        out
    }
}

/// `rows` as a batch of `table` into `out` (none when empty); `rows` is emptied.
fn drain<R: TableRow>(
    out: &mut BTreeMap<OutputTable, RecordBatch>,
    table: OutputTable,
    rows: &mut Vec<R>,
) -> Result<()> {
    if let Some(batch) = R::to_batch(table, rows)? {
        out.insert(table, batch);
    }
    rows.clear();
    Ok(())
}

/// The footfall windows (PT5M and PT1H tumbling) of one way of counting people.
struct FootfallWindows<A>(Vec<WindowOperator<String, A>>);

impl<A: Aggregate<Input = u64, Output = i64>> FootfallWindows<A> {
    fn new(horizon: Duration) -> Self {
        FootfallWindows(
            [Duration::minutes(5), Duration::hours(1)]
                .into_iter()
                .map(|size| WindowOperator::new(WindowKind::Tumbling { size }, horizon))
                .collect(),
        )
    }

    /// Folds a partial in; returns whether it came too late for some window.
    fn insert(
        &mut self,
        partial: &SightingPartial,
        corrections: &mut Vec<(WindowKind, Emission<String, i64>)>,
    ) -> bool {
        let mut too_late = false;
        for op in &mut self.0 {
            let kind = op.kind();
            let inserted = op.insert(
                &partial.zone,
                partial.time,
                &partial.token,
                Some(&partial.lineage),
            );
            corrections.extend(inserted.corrections.into_iter().map(|e| (kind, e)));
            too_late |= inserted.too_late;
        }
        too_late
    }

    fn advance(&mut self, watermark: DateTime<Utc>) -> Vec<(WindowKind, Emission<String, i64>)> {
        let mut closed = Vec::new();
        for op in &mut self.0 {
            let kind = op.kind();
            closed.extend(op.advance(watermark).into_iter().map(|e| (kind, e)));
        }
        closed
    }

    fn early(&self) -> Vec<(String, String, Window, i64)> {
        self.0
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

    /// A runtime for the per-batch plans (the test thread blocks on it).
    fn plans_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap()
    }

    fn token(i: u32) -> String {
        format!("{i:032x}")
    }

    #[test]
    fn replay_starts_at_the_smallest_offset_of_the_minutes_still_needed() {
        let mut r = ReplayTracker::default();
        let at = |m: u32| {
            DateTime::parse_from_rfc3339(&format!("2026-11-28T10:{m:02}:00Z"))
                .unwrap()
                .with_timezone(&Utc)
        };
        // Offsets 10 to 15 of partition 0, in minutes 0, 0, 1, 0 (a late row), 2, 2.
        for (offset, minute) in [(10, 0), (11, 0), (12, 1), (13, 0), (14, 2), (15, 2)] {
            r.observe("beacons", 0, at(minute), offset);
        }
        assert_eq!(r.replay_from("beacons", 0, at(0)), Some(10));
        assert_eq!(r.replay_from("beacons", 0, at(1)), Some(12));
        assert_eq!(r.replay_from("beacons", 0, at(2)), Some(14));
        // Read again from an earlier offset (a rebalance): the minute starts there now.
        r.observe("beacons", 0, at(2), 9);
        assert_eq!(r.replay_from("beacons", 0, at(2)), Some(9));
        // No minute needed any more: after the last offset seen.
        assert_eq!(r.replay_from("beacons", 0, at(3)), Some(16));
        assert_eq!(r.replay_from("beacons", 1, at(0)), None);
    }

    #[test]
    fn footfall_rows_close_on_the_watermark_and_a_replay_adds_nothing() {
        let runtime = plans_runtime();
        let handle = runtime.handle().clone();
        let now = Instant::now();
        let run = |emitted: Emitted| {
            let mut p = Processor::new(StreamOptions::default(), emitted, handle.clone());
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
                )
                .unwrap();
            }
            p.tick(now).unwrap();
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

    #[test]
    fn a_zone_configured_as_large_is_counted_with_a_sketch_and_says_so() {
        let runtime = plans_runtime();
        let now = Instant::now();
        let options = StreamOptions {
            sketch_zones: ["za".to_string()].into(),
            ..StreamOptions::default()
        };
        let mut p = Processor::new(options, Emitted::default(), runtime.handle().clone());
        for (i, time) in ["10:00:05", "10:01:00", "10:03:00", "10:04:30", "10:06:00"]
            .iter()
            .enumerate()
        {
            let zone = if i == 1 { "zb" } else { "za" };
            let event = sighting(time, zone, &token(i as u32));
            p.process(Stream::Beacons, "b", 0, i as i64, &event, now)
                .unwrap();
        }
        p.tick(now).unwrap();
        let mut rows: Vec<(&str, i64, bool)> = p
            .pending
            .footfall
            .iter()
            .map(|r| (r.zone.as_str(), r.people_count, r.approximate))
            .collect();
        rows.sort();
        assert_eq!(rows, vec![("za", 3, true), ("zb", 1, false)]);
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
        let mut p = Processor::new(
            StreamOptions::default(),
            Emitted::default(),
            runtime.handle().clone(),
        );
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
        let mut again = Processor::new(
            StreamOptions::default(),
            p.emitted.clone(),
            runtime.handle().clone(),
        );
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
