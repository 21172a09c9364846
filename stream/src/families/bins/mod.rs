//! The bins family: fill alerts of connected bins (full, fire, status, silence, proof of
//! collection by the trucks) and fill-rate forecasts (`fill_alerts`, `bin_forecast`), from
//! the bins' readings and the garbage trucks' positions.
//!
//! Alerts are decided per reading, at once; only what depends on other data waits for
//! event time: a clear's reason for the trucks' watermark, silence for the bins'. Each
//! alert row carries, as lineage, the bin's readings since its previous alert change.

pub mod fill;
pub mod forecast;
mod restore;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use vallee_lake::Lake;
use vallee_schemas::contract::Stream;
use vallee_schemas::decode::Decoded;
use vallee_schemas::events::waste_container::WasteContainerRecord;
use vallee_schemas::tables::{AlertRow, AlertState, ForecastRow, OutputTable};
use vallee_schemas::time::utc_day;

use self::fill::{AlertChange, AlertKind, FillAlerts, FillRules};
use self::forecast::FillTrend;
use super::{Arrival, EventClock, Family, Read, ReplayFrom, ReplayTracker, Rows, drain};
use crate::Result;
use crate::lineage::{Lineage, Source, Topics};
use crate::stage::StreamOptions;

/// What `fill_alerts` and `bin_forecast` already hold.
#[derive(Debug, Default, Clone)]
pub struct Emitted {
    /// (alert id, state, clear reason) written: a clear corrected to `collection` is a
    /// second row of its state.
    pub alerts: HashSet<AlertKey>,
    /// Per bin, the time in µs of the latest reading forecast: a bin's readings are
    /// forecast in time order (an older one is refused by its trend), so a replayed
    /// reading is one at or before it. One entry per bin, however long the hub runs.
    pub forecasts: HashMap<String, i64>,
}

/// What tells an alert row from the others of its episode.
pub type AlertKey = (String, AlertState, Option<&'static str>);

/// Rows produced since the last commit.
#[derive(Debug, Default)]
pub struct Pending {
    pub alerts: Vec<AlertRow>,
    pub forecasts: Vec<ForecastRow>,
}

/// Fill alerts and forecasts of every bin.
pub struct Bins {
    alerts: FillAlerts,
    /// Readings of each bin since its last alert change (the lineage of the next one).
    lineage: HashMap<String, Lineage>,
    /// Fill trend of each bin since its last emptying.
    trends: BTreeMap<String, FillTrend>,
    pub emitted: Emitted,
    pub pending: Pending,
    /// Alert rows not yet handed to the alerts topic.
    fresh: Vec<AlertRow>,
    /// Alerts open now, by id (the live view).
    open: BTreeMap<String, AlertRow>,
    replay: ReplayTracker,
    /// How far behind its watermark each stream's events are still needed.
    retention: BTreeMap<Stream, Duration>,
    topics: Topics,
}

impl Bins {
    pub fn new(options: &StreamOptions) -> Self {
        let lateness = |s| options.lateness.get(&s).copied().unwrap_or_default();
        Bins {
            alerts: FillAlerts::new(FillRules::default()),
            lineage: HashMap::new(),
            trends: BTreeMap::new(),
            emitted: Emitted::default(),
            pending: Pending::default(),
            fresh: Vec::new(),
            open: BTreeMap::new(),
            replay: ReplayTracker::default(),
            // A day of silence and the trend before it; the trucks a collection needs.
            retention: [
                (
                    Stream::WasteContainers,
                    Duration::hours(26) + lateness(Stream::WasteContainers),
                ),
                (
                    Stream::WasteVehicles,
                    Duration::minutes(30) + lateness(Stream::WasteVehicles),
                ),
            ]
            .into(),
            topics: Topics::default(),
        }
    }

    /// Alerts open now.
    pub fn open_alert_rows(&self) -> BTreeMap<String, AlertRow> {
        self.open.clone()
    }

    /// An alert open in the table at start: its episode continues.
    fn restore_open_alert(
        &mut self,
        entity: &str,
        kind: AlertKind,
        alert_id: &str,
        at: DateTime<Utc>,
        partition: Option<i32>,
    ) {
        self.alerts
            .restore_open(entity, kind, alert_id, at, partition);
        self.open.insert(
            alert_id.to_string(),
            AlertRow {
                alert_id: alert_id.to_string(),
                kind: kind.as_str(),
                entity_id: entity.to_string(),
                state: AlertState::Open.as_str(),
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

    fn on_reading(&mut self, r: &WasteContainerRecord, source: &Source) {
        // The bin's id is cloned only for its first reading since its last alert change.
        match self.lineage.get_mut(&r.observation.id) {
            Some(lineage) => lineage.add(source),
            None => {
                self.lineage
                    .insert(r.observation.id.clone(), Lineage::of(source));
            }
        }
        let changes = self.alerts.on_reading_from(r, Some(source.partition));
        self.emit_alerts(changes);
        self.forecast(r, source);
    }

    fn forecast(&mut self, r: &WasteContainerRecord, source: &Source) {
        let threshold = self.alerts.threshold(r);
        let at = r.observation.date_observed;
        // The bin's id is cloned for its first reading only (this runs per reading).
        let id = &r.observation.id;
        let trend = match self.trends.get_mut(id) {
            Some(trend) => trend,
            None => self.trends.entry(id.clone()).or_default(),
        };
        let Some(f) = trend.on_reading(at, r.filling_level, threshold) else {
            return;
        };
        let micros = at.timestamp_micros();
        match self.emitted.forecasts.get_mut(id) {
            Some(latest) if *latest >= micros => return,
            Some(latest) => *latest = micros,
            None => {
                self.emitted.forecasts.insert(id.clone(), micros);
            }
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

    fn emit_alerts(&mut self, changes: Vec<AlertChange>) {
        let decided: Vec<String> = changes.iter().map(|c| c.entity_id.clone()).collect();
        for c in changes {
            let state = if c.open {
                AlertState::Open
            } else {
                AlertState::Cleared
            };
            // The bin's readings since its previous change decided this one.
            let lineage = self.lineage.get(&c.entity_id).cloned().unwrap_or_default();
            let row = AlertRow {
                alert_id: c.alert_id.clone(),
                kind: c.kind.as_str(),
                entity_id: c.entity_id.clone(),
                state: state.as_str(),
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
                self.open.insert(c.alert_id.clone(), row.clone());
            } else {
                self.open.remove(&c.alert_id);
            }
            if !self
                .emitted
                .alerts
                .insert((c.alert_id.clone(), state, row.clear_reason))
            {
                continue; // already in the table (a replay)
            }
            self.fresh.push(row.clone());
            self.pending.alerts.push(row);
        }
        for entity in decided {
            self.lineage.remove(&entity);
        }
    }
}

impl Family for Bins {
    const INPUTS: &'static [Stream] = &[Stream::WasteContainers, Stream::WasteVehicles];
    const OUTPUTS: &'static [OutputTable] = &[OutputTable::FillAlerts, OutputTable::BinForecast];

    async fn restore(&mut self, lake: &Lake) -> Result<()> {
        super::ensure_outputs::<Self>(lake).await?;
        let (alerts, open) = restore::fill_alerts(lake).await?;
        self.emitted = Emitted {
            alerts,
            forecasts: restore::forecasts(lake).await?,
        };
        for (entity, kind, id, at, partition) in open {
            self.restore_open_alert(&entity, kind, &id, at, partition);
        }
        Ok(())
    }

    fn partition_assigned(&mut self, stream: Stream, partition: i32, _resumed: bool) {
        if stream == Stream::WasteContainers {
            self.alerts.partition_assigned(partition);
        }
    }

    fn on_event(&mut self, event: &Decoded, read: Read<'_>) -> Result<Arrival> {
        self.replay
            .observe(read.stream, read.partition, read.time, read.offset);
        let source = self.topics.source(read.topic, read.partition, read.offset);
        match event {
            Decoded::WasteContainer(r) => self.on_reading(r, &source),
            Decoded::Vehicle(v) => self.alerts.on_vehicle(v),
            _ => {}
        }
        Ok(Arrival::Taken)
    }

    /// Resolves the clears that waited for the trucks, and opens `silent` alerts.
    fn advance(&mut self, clock: &EventClock) -> Result<()> {
        let changes = self.alerts.advance(
            clock.watermark(Stream::WasteContainers),
            clock.watermark(Stream::WasteVehicles),
        );
        self.emit_alerts(changes);
        Ok(())
    }

    fn drain_alerts(&mut self, alerts: &mut Vec<AlertRow>) {
        alerts.append(&mut self.fresh);
    }

    fn drain_rows(&mut self, rows: &mut Rows) -> Result<()> {
        drain(rows, OutputTable::FillAlerts, &mut self.pending.alerts)?;
        drain(rows, OutputTable::BinForecast, &mut self.pending.forecasts)
    }

    fn replay_from(&mut self, clock: &EventClock) -> Vec<ReplayFrom> {
        let retention = &self.retention;
        self.replay
            .positions(clock, |s| retention.get(&s).copied().unwrap_or_default())
    }
}
