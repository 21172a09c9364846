//! The vineyard family: per station and local day, the indicators (GDD, Winkler, Huglin,
//! oospores, Gubler-Thomas, the 3-10 rule), the season's accumulators, frost alerts and
//! mildew risk levels (`vine_indicators`, `vine_alerts`), from the weather stations.
//!
//! Frost is decided per reading, on arrival. A station's local day (Europe/Paris) closes
//! when the vineyards' watermark passes its end ([`days`]): its indicators are written,
//! its season moves on, and a change of mildew risk level for a parcel is an alert row.

mod days;
pub mod indicators;
mod restore;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use vallee_lake::Lake;
use vallee_schemas::contract::Stream;
use vallee_schemas::decode::Decoded;
use vallee_schemas::events::weather::WeatherRecord;
use vallee_schemas::tables::{AlertKind, AlertRow, AlertState, ClearReason, OutputTable, VineRow};
use vallee_schemas::time::utc_day;

use self::indicators::{FrostWatch, RiskLevel, Season};
use super::{Arrival, EventClock, Family, Read, ReplayFrom, ReplayTracker, Rows, drain};
use crate::Result;
use crate::lineage::{Lineage, Source, Topics};
use crate::stage::StreamOptions;

/// What `vine_indicators` and `vine_alerts` already hold.
#[derive(Debug, Default, Clone)]
pub struct Emitted {
    /// (station, local day) written.
    pub days: HashSet<(String, NaiveDate)>,
    /// (alert id, state, time in µs): a mildew episode has several `open` rows (levels).
    pub alerts: HashSet<(String, AlertState, i64)>,
}

/// Rows produced since the last commit.
#[derive(Debug, Default)]
pub struct Pending {
    pub days: Vec<VineRow>,
    pub alerts: Vec<AlertRow>,
}

/// A mildew risk level and its open episode.
type MildewLevel = (RiskLevel, Option<String>);

/// Mildew risk per (parcel or station, alert kind): level and the open episode's id.
type MildewState = BTreeMap<(String, AlertKind), MildewLevel>;

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

/// Indicators, seasons, frost and mildew of every weather station.
pub struct Vine {
    /// Air temperature (°C) at or below which a falling trend raises a frost alert.
    frost_critical: f64,
    /// How far behind the vineyards' watermark readings are still needed.
    retention: Duration,
    stations: BTreeMap<String, StationInfo>,
    /// Station readings per station and local day, until the day closes.
    days: BTreeMap<(String, NaiveDate), (Vec<StationReading>, Lineage)>,
    /// Season accumulators per station (restored from `vine_indicators` on start).
    pub seasons: BTreeMap<String, Season>,
    frost: BTreeMap<String, FrostWatch>,
    pub mildew: MildewState,
    pub emitted: Emitted,
    pub pending: Pending,
    /// Alert rows not yet handed to the alerts topic.
    fresh: Vec<AlertRow>,
    replay: ReplayTracker,
    topics: Topics,
    /// Every local day ending at or before this was closed (the highest watermark seen).
    closed_until: Option<DateTime<Utc>>,
}

impl Vine {
    pub fn new(options: &StreamOptions) -> Self {
        let lateness = options
            .lateness
            .get(&Stream::Vineyards)
            .copied()
            .unwrap_or_default();
        Vine {
            frost_critical: options.frost_critical,
            // A local day (up to 25 h) and the margin of a day's end.
            retention: Duration::hours(26) + lateness,
            stations: BTreeMap::new(),
            days: BTreeMap::new(),
            seasons: BTreeMap::new(),
            frost: BTreeMap::new(),
            mildew: BTreeMap::new(),
            emitted: Emitted::default(),
            pending: Pending::default(),
            fresh: Vec::new(),
            replay: ReplayTracker::default(),
            topics: Topics::default(),
            closed_until: None,
        }
    }

    /// Whether the station's local day of `t` was already closed.
    fn day_closed(&self, t: DateTime<Utc>) -> bool {
        let day = t.with_timezone(&chrono_tz::Europe::Paris).date_naive();
        self.closed_until
            .is_some_and(|c| days::local_day_end(day) <= c)
    }

    fn on_weather(&mut self, w: &WeatherRecord, t: DateTime<Utc>, source: &Source) {
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
        let (readings, lineage) = self.days.entry((station.clone(), day)).or_default();
        readings.push((t, temperature, w.precipitation.unwrap_or(0.0)));
        lineage.add(source);
        let critical = self.frost_critical;
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
                let state = if open {
                    AlertState::Open
                } else {
                    AlertState::Cleared
                };
                self.push_alert(AlertRow {
                    alert_id,
                    kind: AlertKind::Frost.as_str(),
                    entity_id: entity,
                    state: state.as_str(),
                    date_observed: at,
                    clear_reason: (!open).then_some(ClearReason::TemperatureRise.as_str()),
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

    /// A vineyard alert row, unless the table has it already (a replay).
    fn push_alert(&mut self, row: AlertRow) {
        let key = (
            row.alert_id.clone(),
            AlertState::parse(row.state),
            row.date_observed.timestamp_micros(),
        );
        if !self.emitted.alerts.insert(key) {
            return;
        }
        self.fresh.push(row.clone());
        self.pending.alerts.push(row);
    }
}

impl Family for Vine {
    const INPUTS: &'static [Stream] = &[Stream::Vineyards];
    const OUTPUTS: &'static [OutputTable] = &[OutputTable::VineIndicators, OutputTable::VineAlerts];

    async fn restore(&mut self, lake: &Lake) -> Result<()> {
        super::ensure_outputs::<Self>(lake).await?;
        let restored = restore::restored(lake).await?;
        self.emitted = restored.emitted;
        self.seasons = restored.seasons;
        self.mildew = restored.mildew;
        Ok(())
    }

    fn on_event(&mut self, event: &Decoded, read: Read<'_>) -> Result<Arrival> {
        self.replay
            .observe(read.stream, read.partition, read.time, read.offset);
        if let Decoded::Weather(w) = event {
            if w.temperature.is_some() && self.day_closed(read.time) {
                // Its day's row and the season after it are written: kept in `late_events`.
                return Ok(Arrival::TooLate);
            }
            let source = self.topics.source(read.topic, read.partition, read.offset);
            self.on_weather(w, read.time, &source);
        }
        Ok(Arrival::Taken)
    }

    fn advance(&mut self, clock: &EventClock) -> Result<()> {
        if let Some(w) = clock.watermark(Stream::Vineyards) {
            // A closed day never reopens, even if the watermark moves back.
            let w = self.closed_until.map_or(w, |c| c.max(w));
            self.closed_until = Some(w);
            self.close_days(w);
        }
        Ok(())
    }

    fn drain_alerts(&mut self, alerts: &mut Vec<AlertRow>) {
        alerts.append(&mut self.fresh);
    }

    fn drain_rows(&mut self, rows: &mut Rows) -> Result<()> {
        drain(rows, OutputTable::VineIndicators, &mut self.pending.days)?;
        drain(rows, OutputTable::VineAlerts, &mut self.pending.alerts)
    }

    fn replay_from(&mut self, clock: &EventClock) -> Vec<ReplayFrom> {
        let retention = self.retention;
        self.replay.positions(clock, |_| retention)
    }
}
