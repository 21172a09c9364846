//! Fill alerts of connected bins: full (with hysteresis), fire, status, silence; proof of
//! collection when a garbage truck stood by the bin before its level dropped.
//!
//! Alerts open and clear on the reading itself (no waiting for a window): a bin emptied is
//! off the list at once, its fill alert cleared as a `level_drop`. Only the decisions that
//! depend on *other* data wait for event time: "was a truck there in the 15 minutes before
//! the drop?" waits until the vehicles' watermark has passed the drop (trucks report late
//! and stop after the day's last round), then a correction row of the same alert upgrades
//! its reason to `collection`; "silent" waits for the bins' watermark to pass the last
//! reading + 24 h.
//!
//! Kinds and clear reasons are the tables' contract's ([`AlertKind`], [`ClearReason`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Duration, Utc};
use vallee_schemas::events::vehicle::VehicleRecord;
use vallee_schemas::events::waste_container::WasteContainerRecord;
use vallee_schemas::geo::GeoPoint;

pub use vallee_schemas::tables::{AlertKind, ClearReason};

/// The kinds of a bin's alerts (`fill_alerts`); the others are the vineyards'.
pub const BIN_KINDS: [AlertKind; 4] = [
    AlertKind::Fill,
    AlertKind::Fire,
    AlertKind::Status,
    AlertKind::Silent,
];

/// Whether an alert of this kind is a bin's.
pub fn is_bin_alert(kind: AlertKind) -> bool {
    BIN_KINDS.contains(&kind)
}

/// One row of `fill_alerts`: an alert opening or clearing.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertChange {
    /// Stable per episode (same input, same id: consumers of the alerts topic dedupe on it).
    pub alert_id: String,
    pub kind: AlertKind,
    pub entity_id: String,
    /// `true`: open; `false`: cleared.
    pub open: bool,
    pub date_observed: DateTime<Utc>,
    pub clear_reason: Option<ClearReason>,
    pub filling_level: Option<f64>,
    pub commune_code: Option<String>,
}

/// Rule settings.
#[derive(Debug, Clone)]
pub struct FillRules {
    /// Fill threshold when neither the commune nor the bin says otherwise.
    pub default_threshold: f64,
    /// Per-commune thresholds (INSEE code), which win over the bins' own attribute.
    pub commune_thresholds: BTreeMap<String, f64>,
    /// A fill alert clears below threshold minus this.
    pub hysteresis: f64,
    pub fire_temperature: f64,
    pub collection_radius_m: f64,
    pub collection_lookback: Duration,
    pub silence: Duration,
}

impl Default for FillRules {
    fn default() -> Self {
        FillRules {
            default_threshold: 0.8,
            commune_thresholds: BTreeMap::new(),
            hysteresis: 0.1,
            fire_temperature: 60.0,
            collection_radius_m: 30.0,
            collection_lookback: Duration::minutes(15),
            silence: Duration::hours(24),
        }
    }
}

#[derive(Debug, Clone)]
struct OpenAlert {
    id: String,
}

#[derive(Debug, Clone)]
struct Bin {
    point: GeoPoint,
    commune: Option<String>,
    last_reading: DateTime<Utc>,
    open: BTreeMap<AlertKind, OpenAlert>,
    /// The partition its readings come from (`None`: not known, a restored bin with no
    /// lineage).
    partition: Option<i32>,
}

/// A fill alert cleared by a level drop before the trucks' positions up to the drop were
/// known: a truck by the bin then proves a collection.
#[derive(Debug, Clone)]
struct PendingProof {
    alert_id: String,
    entity_id: String,
    at: DateTime<Utc>,
    level: f64,
}

/// The fill-alert state machine of every bin.
#[derive(Debug, Clone, Default)]
pub struct FillAlerts {
    rules: FillRules,
    bins: BTreeMap<String, Bin>,
    /// Recent positions of garbage trucks, oldest first.
    trucks: VecDeque<(DateTime<Utc>, GeoPoint)>,
    pending: Vec<PendingProof>,
    vehicles_watermark: Option<DateTime<Utc>>,
    /// The bins' partitions this member reads: only their bins are judged silent (a bin
    /// restored from the lake whose readings go to another member is that member's).
    owned: BTreeSet<i32>,
}

fn alert_id(entity: &str, kind: AlertKind, opened: DateTime<Utc>) -> String {
    format!("{entity}:{}:{}", kind.as_str(), opened.timestamp_micros())
}

impl FillAlerts {
    pub fn new(rules: FillRules) -> Self {
        FillAlerts {
            rules,
            ..Default::default()
        }
    }

    /// The fill threshold of a bin: the commune's, else the bin's own, else the default.
    pub fn threshold(&self, bin: &WasteContainerRecord) -> f64 {
        bin.commune_code
            .as_ref()
            .and_then(|c| self.rules.commune_thresholds.get(c))
            .copied()
            .or(bin.bin_fullness_threshold)
            .unwrap_or(self.rules.default_threshold)
    }

    /// A truck position. Only garbage-collection vehicles matter.
    pub fn on_vehicle(&mut self, v: &VehicleRecord) {
        if v.collects_garbage() {
            let at = v.observation.date_observed;
            let pos = self.trucks.partition_point(|(t, _)| *t <= at);
            self.trucks
                .insert(pos, (at, GeoPoint::new(v.longitude, v.latitude)));
        }
    }

    fn collected(&self, point: &GeoPoint, at: DateTime<Utc>) -> bool {
        let from = at - self.rules.collection_lookback;
        self.trucks
            .iter()
            .filter(|(t, _)| *t >= from && *t <= at)
            .any(|(_, p)| p.distance_m(point) <= self.rules.collection_radius_m)
    }

    /// A bin reading; returns the alert changes it causes at once.
    pub fn on_reading(&mut self, r: &WasteContainerRecord) -> Vec<AlertChange> {
        self.on_reading_from(r, None)
    }

    /// A bin's partition of the bins' topic is read by this member.
    pub fn partition_assigned(&mut self, partition: i32) {
        self.owned.insert(partition);
    }

    /// [`FillAlerts::on_reading`], read from `partition` of the bins' topic.
    pub fn on_reading_from(
        &mut self,
        r: &WasteContainerRecord,
        partition: Option<i32>,
    ) -> Vec<AlertChange> {
        let threshold = self.threshold(r);
        let at = r.observation.date_observed;
        let id = r.observation.id.clone();
        let point = GeoPoint::new(r.longitude, r.latitude);
        let mut out = Vec::new();
        let bin = self.bins.entry(id.clone()).or_insert_with(|| Bin {
            point,
            commune: r.commune_code.clone(),
            last_reading: at,
            open: BTreeMap::new(),
            partition,
        });
        if partition.is_some() {
            bin.partition = partition;
        }
        if at < bin.last_reading {
            // An older reading than one already applied: it cannot change the present state.
            return out;
        }
        bin.last_reading = at;
        bin.point = point;
        let change = |kind, open: bool, opened: DateTime<Utc>, reason| AlertChange {
            alert_id: alert_id(&id, kind, opened),
            kind,
            entity_id: id.clone(),
            open,
            date_observed: at,
            clear_reason: reason,
            filling_level: Some(r.filling_level),
            commune_code: r.commune_code.clone(),
        };
        let mut transitions: Vec<(AlertKind, bool, Option<ClearReason>)> = Vec::new();
        if bin.open.contains_key(&AlertKind::Silent) {
            transitions.push((AlertKind::Silent, false, Some(ClearReason::ReportingAgain)));
        }
        let burning = r
            .temperature
            .is_some_and(|t| t >= self.rules.fire_temperature)
            || r.status.as_deref() == Some("burning");
        match (bin.open.contains_key(&AlertKind::Fire), burning) {
            (false, true) => transitions.push((AlertKind::Fire, true, None)),
            (true, false) => {
                transitions.push((AlertKind::Fire, false, Some(ClearReason::StatusOk)))
            }
            _ => {}
        }
        let damaged = matches!(
            r.status.as_deref(),
            Some("vandalized" | "dropped" | "moved")
        );
        match (
            bin.open.contains_key(&AlertKind::Status),
            damaged,
            r.status.as_deref(),
        ) {
            (false, true, _) => transitions.push((AlertKind::Status, true, None)),
            (true, false, Some("ok")) => {
                transitions.push((AlertKind::Status, false, Some(ClearReason::StatusOk)))
            }
            _ => {}
        }
        let fill_open = bin.open.contains_key(&AlertKind::Fill);
        let mut needs_proof = false;
        if !fill_open && r.filling_level >= threshold {
            transitions.push((AlertKind::Fill, true, None));
        } else if fill_open && r.filling_level < threshold - self.rules.hysteresis {
            // Cleared at once. A collection needs the trucks' positions up to the drop:
            // when they are not all known yet, a truck found later corrects the reason.
            let trucks_known = self.vehicles_watermark.is_some_and(|w| w >= at);
            let reason = if trucks_known && self.collected(&point, at) {
                ClearReason::Collection
            } else {
                ClearReason::LevelDrop
            };
            transitions.push((AlertKind::Fill, false, Some(reason)));
            needs_proof = !trucks_known;
        }
        let bin = self.bins.get_mut(&id).expect("inserted above");
        for (kind, open, reason) in transitions {
            if open {
                bin.open.insert(
                    kind,
                    OpenAlert {
                        id: alert_id(&id, kind, at),
                    },
                );
                out.push(change(kind, true, at, None));
            } else if let Some(a) = bin.open.remove(&kind) {
                if kind == AlertKind::Fill && needs_proof {
                    self.pending.push(PendingProof {
                        alert_id: a.id.clone(),
                        entity_id: id.clone(),
                        at,
                        level: r.filling_level,
                    });
                }
                let mut c = change(kind, false, at, reason);
                c.alert_id = a.id;
                out.push(c);
            }
        }
        out
    }

    /// Event time moved on: `bins` is the bins' watermark, `vehicles` the trucks'. Corrects
    /// to `collection` the level drops a truck turns out to have made, and opens `silent`
    /// alerts.
    pub fn advance(
        &mut self,
        bins: Option<DateTime<Utc>>,
        vehicles: Option<DateTime<Utc>>,
    ) -> Vec<AlertChange> {
        if let Some(v) = vehicles {
            self.vehicles_watermark = Some(self.vehicles_watermark.map_or(v, |w| w.max(v)));
        }
        let mut out = Vec::new();
        let ready: Vec<PendingProof>;
        (ready, self.pending) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| self.vehicles_watermark.is_some_and(|w| w >= p.at));
        for p in ready {
            let Some(bin) = self.bins.get(&p.entity_id) else {
                continue;
            };
            if self.collected(&bin.point, p.at) {
                // The same alert, cleared at the same time: its reason, corrected.
                out.push(AlertChange {
                    alert_id: p.alert_id,
                    kind: AlertKind::Fill,
                    entity_id: p.entity_id,
                    open: false,
                    date_observed: p.at,
                    clear_reason: Some(ClearReason::Collection),
                    filling_level: Some(p.level),
                    commune_code: bin.commune.clone(),
                });
            }
        }
        if let Some(w) = bins {
            for (id, bin) in self.bins.iter_mut() {
                if bin.partition.is_some_and(|p| !self.owned.contains(&p)) {
                    continue; // another member's
                }
                let silent_at = bin.last_reading + self.rules.silence;
                if w >= silent_at && !bin.open.contains_key(&AlertKind::Silent) {
                    let alert = alert_id(id, AlertKind::Silent, silent_at);
                    bin.open
                        .insert(AlertKind::Silent, OpenAlert { id: alert.clone() });
                    out.push(AlertChange {
                        alert_id: alert,
                        kind: AlertKind::Silent,
                        entity_id: id.clone(),
                        open: true,
                        date_observed: silent_at,
                        clear_reason: None,
                        filling_level: None,
                        commune_code: bin.commune.clone(),
                    });
                }
            }
        }
        // Truck positions older than any pending or future decision can need.
        if let Some(w) = self.vehicles_watermark {
            let keep_from = self
                .pending
                .iter()
                .map(|p| p.at)
                .chain([w])
                .min()
                .unwrap_or(w)
                - self.rules.collection_lookback;
            while self.trucks.front().is_some_and(|(t, _)| *t < keep_from) {
                self.trucks.pop_front();
            }
        }
        out
    }

    /// Restores an alert that is open in the table (on restart, before replaying the
    /// readings), so a replayed reading continues its episode instead of opening another.
    pub fn restore_open(
        &mut self,
        entity: &str,
        kind: AlertKind,
        alert_id: &str,
        at: DateTime<Utc>,
        partition: Option<i32>,
    ) {
        // Its position and commune come with its next reading.
        let bin = self.bins.entry(entity.to_string()).or_insert_with(|| Bin {
            point: GeoPoint::new(0.0, 0.0),
            commune: None,
            last_reading: at,
            open: BTreeMap::new(),
            partition,
        });
        bin.open.insert(
            kind,
            OpenAlert {
                id: alert_id.to_string(),
            },
        );
    }

    /// Alerts currently open: (entity, kind, alert id).
    pub fn open_alerts(&self) -> Vec<(&str, AlertKind, &str)> {
        self.bins
            .iter()
            .flat_map(|(id, b)| {
                b.open
                    .iter()
                    .map(move |(k, a)| (id.as_str(), *k, a.id.as_str()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vallee_schemas::contract::Stream;
    use vallee_schemas::decode::{DecodeOptions, Decoded, decode};

    const BIN_AT: [f64; 2] = [3.5512, 43.6521];

    fn t(hm: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-11-28T{hm}:00Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    fn reading(at: &str, level: f64, extra: &str) -> WasteContainerRecord {
        let p = format!(
            r#"{{"id":"bin-1","type":"WasteContainer","dateObserved":"{}","fillingLevel":{level},"location":{{"type":"Point","coordinates":[{},{}]}}{extra}}}"#,
            t(at).to_rfc3339(),
            BIN_AT[0],
            BIN_AT[1]
        );
        match decode(
            Stream::WasteContainers,
            Some(p.as_bytes()),
            None,
            &DecodeOptions::default(),
        )
        .unwrap()
        {
            Decoded::WasteContainer(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn truck(at: &str, lon: f64, lat: f64) -> VehicleRecord {
        let p = format!(
            r#"{{"id":"benne-1","type":"Vehicle","dateObserved":"{}","vehicleType":"lorry","serviceProvided":["garbageCollection"],"serviceStatus":"onRoute","location":{{"type":"Point","coordinates":[{lon},{lat}]}}}}"#,
            t(at).to_rfc3339()
        );
        match decode(
            Stream::WasteVehicles,
            Some(p.as_bytes()),
            None,
            &DecodeOptions::default(),
        )
        .unwrap()
        {
            Decoded::Vehicle(v) => v,
            other => panic!("{other:?}"),
        }
    }

    fn kinds(changes: &[AlertChange]) -> Vec<(&'static str, bool, Option<&'static str>)> {
        changes
            .iter()
            .map(|c| {
                (
                    c.kind.as_str(),
                    c.open,
                    c.clear_reason.map(ClearReason::as_str),
                )
            })
            .collect()
    }

    #[test]
    fn fill_opens_once_per_episode_and_clears_below_threshold_minus_hysteresis() {
        let mut a = FillAlerts::new(FillRules::default());
        a.advance(None, Some(t("23:00")));
        assert!(a.on_reading(&reading("08:00", 0.5, "")).is_empty());
        let opened = a.on_reading(&reading("09:00", 0.8, ""));
        assert_eq!(kinds(&opened), vec![("fill", true, None)]);
        assert_eq!(opened[0].commune_code.as_deref(), Some("34114"));
        assert!(
            a.on_reading(&reading("10:00", 0.95, "")).is_empty(),
            "one alert per episode"
        );
        assert!(
            a.on_reading(&reading("11:00", 0.75, "")).is_empty(),
            "0.75 is not below 0.8 - 0.1"
        );
        let cleared = a.on_reading(&reading("12:00", 0.69, ""));
        assert_eq!(kinds(&cleared), vec![("fill", false, Some("level_drop"))]);
        assert_eq!(
            cleared[0].alert_id, opened[0].alert_id,
            "the id is the episode's"
        );
        // A new episode has a new id, and the same input gives the same id (replays dedupe).
        let again = a.on_reading(&reading("13:00", 0.9, ""));
        assert_ne!(again[0].alert_id, opened[0].alert_id);
        assert_eq!(
            again[0].alert_id,
            alert_id("bin-1", AlertKind::Fill, t("13:00"))
        );
    }

    #[test]
    fn thresholds_come_from_the_commune_then_the_bin_then_the_default() {
        let mut a = FillAlerts::new(FillRules::default());
        assert!(
            a.on_reading(&reading("08:00", 0.65, r#","binFullnessThreshold":0.7"#))
                .is_empty()
        );
        assert_eq!(
            kinds(&a.on_reading(&reading("08:10", 0.7, r#","binFullnessThreshold":0.7"#))),
            vec![("fill", true, None)]
        );
        let rules = FillRules {
            commune_thresholds: [("34114".to_string(), 0.9)].into(),
            ..Default::default()
        };
        let mut a = FillAlerts::new(rules);
        assert!(
            a.on_reading(&reading("08:00", 0.85, r#","binFullnessThreshold":0.7"#))
                .is_empty()
        );
    }

    #[test]
    fn a_drop_after_a_truck_stood_within_30_m_is_a_collection() {
        let mut a = FillAlerts::new(FillRules::default());
        a.on_reading(&reading("06:00", 0.9, ""));
        // The truck stops 10 m from the bin at 06:50; the bin reports empty at 07:00.
        a.on_vehicle(&truck("06:50", BIN_AT[0] + 0.0001, BIN_AT[1]));
        // The trucks' stream is behind the drop: cleared at once as a level drop…
        a.advance(None, Some(t("06:55")));
        let dropped = a.on_reading(&reading("07:00", 0.05, ""));
        assert_eq!(kinds(&dropped), vec![("fill", false, Some("level_drop"))]);
        // … corrected once the trucks' positions up to the drop are known.
        assert!(a.advance(None, Some(t("06:59"))).is_empty());
        let corrected = a.advance(None, Some(t("07:01")));
        assert_eq!(kinds(&corrected), vec![("fill", false, Some("collection"))]);
        assert_eq!(corrected[0].alert_id, dropped[0].alert_id);
        assert_eq!(corrected[0].date_observed, t("07:00"));
        assert!(
            a.advance(None, Some(t("09:00"))).is_empty(),
            "corrected once"
        );
        // Trucks already known at the drop: the reason is right the first time.
        a.on_reading(&reading("08:00", 0.9, ""));
        a.on_vehicle(&truck("08:50", BIN_AT[0], BIN_AT[1]));
        a.advance(None, Some(t("09:05")));
        let cleared = a.on_reading(&reading("09:00", 0.05, ""));
        assert_eq!(kinds(&cleared), vec![("fill", false, Some("collection"))]);
    }

    #[test]
    fn a_truck_too_far_or_too_early_is_no_proof_of_collection() {
        let mut a = FillAlerts::new(FillRules::default());
        a.on_reading(&reading("06:00", 0.9, ""));
        a.on_vehicle(&truck("06:50", BIN_AT[0] + 0.001, BIN_AT[1])); // ~80 m away
        a.on_vehicle(&truck("06:30", BIN_AT[0], BIN_AT[1])); // at the bin, 30 min before
        a.advance(None, Some(t("08:00")));
        assert_eq!(
            kinds(&a.on_reading(&reading("07:00", 0.05, ""))),
            vec![("fill", false, Some("level_drop"))]
        );
    }

    #[test]
    fn fire_and_status_alerts() {
        let mut a = FillAlerts::new(FillRules::default());
        let c = a.on_reading(&reading("08:00", 0.3, r#","temperature":75"#));
        assert_eq!(kinds(&c), vec![("fire", true, None)]);
        let c = a.on_reading(&reading(
            "08:10",
            0.3,
            r#","temperature":20,"status":"vandalized""#,
        ));
        assert_eq!(
            kinds(&c),
            vec![("fire", false, Some("status_ok")), ("status", true, None)]
        );
        let c = a.on_reading(&reading("08:20", 0.3, r#","status":"burning""#));
        assert_eq!(kinds(&c), vec![("fire", true, None)]);
        let c = a.on_reading(&reading("08:30", 0.3, r#","status":"ok""#));
        assert_eq!(
            kinds(&c),
            vec![
                ("fire", false, Some("status_ok")),
                ("status", false, Some("status_ok"))
            ]
        );
    }

    #[test]
    fn a_bin_silent_for_24_hours_of_event_time_raises_an_alert_until_it_reports() {
        let mut a = FillAlerts::new(FillRules::default());
        a.on_reading(&reading("08:00", 0.3, ""));
        assert!(
            a.advance(Some(t("08:00") + Duration::hours(23)), None)
                .is_empty()
        );
        let c = a.advance(Some(t("08:00") + Duration::hours(24)), None);
        assert_eq!(kinds(&c), vec![("silent", true, None)]);
        assert_eq!(c[0].date_observed, t("08:00") + Duration::hours(24));
        assert!(
            a.advance(Some(t("08:00") + Duration::hours(30)), None)
                .is_empty(),
            "once per episode"
        );
        let mut back = reading("08:00", 0.4, "");
        back.observation.date_observed = t("08:00") + Duration::hours(31);
        assert_eq!(
            kinds(&a.on_reading(&back)),
            vec![("silent", false, Some("reporting_again"))]
        );
        assert!(a.open_alerts().is_empty());
    }

    #[test]
    fn only_the_member_reading_a_bins_partition_judges_it_silent() {
        // A bin restored from the lake (an alert open), its readings on partition 1.
        let restored = |a: &mut FillAlerts| {
            a.restore_open("bin-b", AlertKind::Fill, "fill-b", t("08:00"), Some(1));
        };
        let later = Some(t("08:00") + Duration::hours(25));
        // A member reading partitions 0 and 2 only: another member's bin.
        let mut other = FillAlerts::new(FillRules::default());
        restored(&mut other);
        other.partition_assigned(0);
        other.partition_assigned(2);
        assert!(other.advance(later, None).is_empty());
        // The member reading partition 1 judges it, as does one process reading them all.
        let mut owner = FillAlerts::new(FillRules::default());
        restored(&mut owner);
        owner.partition_assigned(1);
        assert_eq!(
            kinds(&owner.advance(later, None)),
            vec![("silent", true, None)]
        );
        // A bin read in this run is judged by the member that read it.
        let mut reader = FillAlerts::new(FillRules::default());
        reader.partition_assigned(2);
        reader.on_reading_from(&reading("08:00", 0.3, ""), Some(2));
        assert_eq!(
            kinds(&reader.advance(later, None)),
            vec![("silent", true, None)]
        );
    }
}
