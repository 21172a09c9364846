//! The collection fleet and a day's planned rounds, as GraphQL types.

use async_graphql::{ID, InputObject, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use vallee_schemas::citizen::{DepotUpdated, TruckUpdated};

use super::sensors::BinToCollect;
use crate::rounds::{self, DayPlan, PlannedRound};

/// A depot of the collection fleet: rounds leave from it and come back to it.
#[derive(SimpleObject, Debug, Clone)]
pub struct Depot {
    pub id: ID,
    pub name: String,
    pub commune_code: String,
    pub latitude: f64,
    pub longitude: f64,
    /// When crews leave and must be back, local time (`HH:MM`).
    pub shift_start: String,
    pub shift_end: String,
    /// ISO days rounds run on (1 = Monday … 7 = Sunday).
    pub working_days: Vec<u8>,
}

impl From<DepotUpdated> for Depot {
    fn from(d: DepotUpdated) -> Self {
        Depot {
            id: ID(d.depot_id),
            name: d.name,
            commune_code: d.commune_code,
            latitude: d.lat,
            longitude: d.long,
            shift_start: d.shift_start,
            shift_end: d.shift_end,
            working_days: d.working_days,
        }
    }
}

/// A collection truck.
#[derive(SimpleObject, Debug, Clone)]
pub struct Truck {
    /// The id its positions carry (`urn:ngsi-ld:Vehicle:…`).
    pub id: ID,
    pub name: String,
    pub depot_id: ID,
    pub waste_kinds: Vec<String>,
    /// Loose waste it takes before unloading, in litres.
    pub capacity_litres: u32,
}

impl From<TruckUpdated> for Truck {
    fn from(t: TruckUpdated) -> Self {
        Truck {
            id: ID(t.truck_id),
            name: t.name,
            depot_id: ID(t.depot_id),
            waste_kinds: t.waste_kinds,
            capacity_litres: t.capacity_litres,
        }
    }
}

/// A depot to publish (a new one without `id`, or the whole new version of one).
#[derive(InputObject, Debug, Clone)]
pub struct UpdateDepotInput {
    pub id: Option<ID>,
    pub name: String,
    pub commune_code: String,
    pub latitude: f64,
    pub longitude: f64,
    /// `HH:MM`, local time.
    pub shift_start: String,
    pub shift_end: String,
    /// ISO days (1 = Monday … 7 = Sunday).
    pub working_days: Vec<u8>,
}

impl From<UpdateDepotInput> for DepotUpdated {
    fn from(i: UpdateDepotInput) -> Self {
        DepotUpdated {
            depot_id: i.id.map(|id| id.0).unwrap_or_default(),
            name: i.name,
            commune_code: i.commune_code,
            lat: i.latitude,
            long: i.longitude,
            shift_start: i.shift_start,
            shift_end: i.shift_end,
            working_days: i.working_days,
        }
    }
}

/// A truck to publish, whole.
#[derive(InputObject, Debug, Clone)]
pub struct UpdateTruckInput {
    /// The id its positions carry on the vehicles' stream.
    pub id: ID,
    pub name: String,
    pub depot_id: ID,
    /// As bins name them (`refuse`, `paper`, `glass`…).
    pub waste_kinds: Vec<String>,
    pub capacity_litres: u32,
}

impl From<UpdateTruckInput> for TruckUpdated {
    fn from(i: UpdateTruckInput) -> Self {
        TruckUpdated {
            truck_id: i.id.0,
            name: i.name,
            depot_id: i.depot_id.0,
            waste_kinds: i.waste_kinds,
            capacity_litres: i.capacity_litres,
        }
    }
}

/// A day's collection rounds.
#[derive(SimpleObject, Debug, Clone)]
pub struct RoundPlan {
    pub date: NaiveDate,
    /// When it was planned (plans are kept a few minutes, then made again from newer
    /// readings).
    pub planned_at: DateTime<Utc>,
    /// The bins planned are those due before this: the next working day's first shift.
    pub collect_before: DateTime<Utc>,
    pub rounds: Vec<Round>,
    /// Bins due that no round collects, with why.
    pub left_out: Vec<LeftOutBin>,
    /// Every round's length together, in km.
    pub distance_km: f64,
    /// Where to download it: the printable sheets of the day.
    pub sheet_url: String,
    pub csv_url: String,
    pub geojson_url: String,
}

/// One round: a truck leaves its depot, collects its bins in order, comes back.
#[derive(SimpleObject, Debug, Clone)]
pub struct Round {
    /// 1, 2, … in the day's plan.
    pub number: u32,
    pub truck: Truck,
    pub depot: Depot,
    pub waste_kind: String,
    pub departs_at: DateTime<Utc>,
    pub returns_at: DateTime<Utc>,
    /// Road estimate: straight lines times `[api.rounds] road_factor`.
    pub distance_km: f64,
    /// What its bins are expected to hold, in litres.
    pub load_litres: f64,
    /// Mean fill of its bins (a bin due by forecast counts at its threshold).
    pub average_fill: f64,
    pub stops: Vec<RoundStop>,
    pub sheet_url: String,
    pub csv_url: String,
    pub gpx_url: String,
    pub geojson_url: String,
}

/// A bin of a round.
#[derive(SimpleObject, Debug, Clone)]
pub struct RoundStop {
    /// 1, 2, … in the round.
    pub order: u32,
    pub arrives_at: DateTime<Utc>,
    pub bin: BinToCollect,
}

/// Why a due bin is in no round.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftOutReason {
    /// No truck of a depot working that day takes any of its kinds.
    NoTruckForKind,
    /// The trucks that take it have no time left in their shifts.
    NoTimeLeft,
}

/// A due bin no round collects.
#[derive(SimpleObject, Debug, Clone)]
pub struct LeftOutBin {
    pub bin: BinToCollect,
    pub why: LeftOutReason,
}

/// The query string of an export with the plan's filters.
fn query(commune: Option<&str>, kind: Option<&str>) -> String {
    let pairs: Vec<String> = [("communeCode", commune), ("wasteKind", kind)]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", percent(v))))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl RoundPlan {
    pub fn of(plan: &DayPlan, commune: Option<&str>, kind: Option<&str>) -> Self {
        let q = query(commune, kind);
        let base = format!("/rounds/{}", plan.date);
        RoundPlan {
            date: plan.date,
            planned_at: plan.planned_at,
            collect_before: plan.collect_before,
            rounds: plan
                .rounds
                .iter()
                .map(|r| Round::of(r, &base, &q))
                .collect(),
            left_out: plan
                .left
                .iter()
                .map(|(bin, why)| LeftOutBin {
                    bin: bin.clone().into(),
                    why: match why {
                        rounds::Left::NoTruckForKind => LeftOutReason::NoTruckForKind,
                        rounds::Left::NoTimeLeft => LeftOutReason::NoTimeLeft,
                    },
                })
                .collect(),
            distance_km: plan.distance_km(),
            sheet_url: format!("{base}{q}"),
            csv_url: format!("{base}/all.csv{q}"),
            geojson_url: format!("{base}/all.geojson{q}"),
        }
    }
}

impl Round {
    fn of(r: &PlannedRound, base: &str, q: &str) -> Self {
        let n = r.number;
        Round {
            number: n as u32,
            truck: r.truck.clone().into(),
            depot: r.depot.clone().into(),
            waste_kind: r.waste_kind.clone(),
            departs_at: r.departs,
            returns_at: r.returns,
            distance_km: r.distance_km,
            load_litres: r.load_litres,
            average_fill: r.average_fill(),
            stops: r
                .stops
                .iter()
                .map(|s| RoundStop {
                    order: s.order as u32,
                    arrives_at: s.arrives,
                    bin: s.bin.clone().into(),
                })
                .collect(),
            sheet_url: format!("{base}/{n}{q}"),
            csv_url: format!("{base}/{n}.csv{q}"),
            gpx_url: format!("{base}/{n}.gpx{q}"),
            geojson_url: format!("{base}/{n}.geojson{q}"),
        }
    }
}
