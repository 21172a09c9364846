//! A day's collection rounds, planned from the bins to collect and the fleet staff keep.
//!
//! ```text
//!  binsToCollect (before the next working day's shift) ─┐
//!  depots, trucks (reference data, the view) ──────────┼─► plan::plan ─► DayPlan ─► GraphQL `rounds`
//!  [api.rounds] pace, road factor, bin volume ──────────┘     (cached)      └─► /rounds/… CSV, GPX,
//!                                                                               GeoJSON, printable sheet
//! ```
//!
//! A day's plan collects every bin that will be due before the crews' next chance: the
//! first shift start of a later working day. Plans are cached for `cache_s` per date and
//! filter, so the sheet a driver prints and the GPX their phone loads a minute later are
//! the same plan (each says when it was planned).
//!
//! - `plan`: the algorithm (no I/O).
//! - `export`: the CSV, GPX, GeoJSON and HTML of a plan, and their HTTP routes.

pub mod export;
pub mod plan;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Paris;
use vallee_schemas::citizen::{DepotUpdated, TruckUpdated};
use vallee_schemas::geo::GeoPoint;

use crate::options::RoundOptions;
use crate::sensors::collect::{CollectReason, ToCollect};
use crate::{ApiState, Result};
pub use plan::Left;

/// How far ahead rounds may be planned, in days after today.
pub const MAX_DAYS_AHEAD: i64 = 7;

/// Most plans kept at once (dates × filters).
const CACHED_PLANS: usize = 64;

/// A day's rounds as planned at `planned_at`.
#[derive(Debug, Clone)]
pub struct DayPlan {
    pub date: NaiveDate,
    pub planned_at: DateTime<Utc>,
    /// The bins planned are those due before this (the next working day's first shift).
    pub collect_before: DateTime<Utc>,
    pub rounds: Vec<PlannedRound>,
    /// Bins due that no round collects, with why.
    pub left: Vec<(ToCollect, Left)>,
}

impl DayPlan {
    pub fn distance_km(&self) -> f64 {
        self.rounds.iter().map(|r| r.distance_km).sum()
    }

    /// Round `number` (from 1).
    pub fn round(&self, number: usize) -> Option<&PlannedRound> {
        self.rounds.iter().find(|r| r.number == number)
    }
}

/// One round of a day's plan.
#[derive(Debug, Clone)]
pub struct PlannedRound {
    /// 1, 2, … in the day's plan (by truck, then departure).
    pub number: usize,
    pub truck: TruckUpdated,
    pub depot: DepotUpdated,
    pub waste_kind: String,
    pub departs: DateTime<Utc>,
    pub returns: DateTime<Utc>,
    pub distance_km: f64,
    /// What the bins are expected to hold, in litres.
    pub load_litres: f64,
    pub stops: Vec<PlannedStop>,
}

impl PlannedRound {
    /// Mean fill level of its bins when planned (a forecast bin counts at its threshold,
    /// which it reaches before the round).
    pub fn average_fill(&self) -> f64 {
        let n = self.stops.len().max(1) as f64;
        self.stops
            .iter()
            .map(|s| expected_fill(&s.bin))
            .sum::<f64>()
            / n
    }

    pub fn depot_point(&self) -> GeoPoint {
        GeoPoint {
            lat: self.depot.lat,
            lon: self.depot.long,
        }
    }
}

/// A bin of a round, in visiting order.
#[derive(Debug, Clone)]
pub struct PlannedStop {
    /// 1, 2, … in the round.
    pub order: usize,
    pub bin: ToCollect,
    pub arrives: DateTime<Utc>,
}

/// What a bin is expected to hold when collected, as a fraction: its level, or its
/// threshold when only its forecast puts it on the list.
fn expected_fill(bin: &ToCollect) -> f64 {
    let threshold = bin.bin.threshold.unwrap_or(0.8);
    if bin.reasons == [CollectReason::Forecast] {
        bin.bin.filling_level.max(threshold)
    } else {
        bin.bin.filling_level
    }
}

/// Why a date cannot be planned, said to the caller.
pub fn check_date(date: NaiveDate, now: DateTime<Utc>) -> std::result::Result<(), String> {
    let today = now.with_timezone(&Paris).date_naive();
    if date < today || date > today + Duration::days(MAX_DAYS_AHEAD) {
        return Err(format!(
            "rounds are planned from today ({today}) to {MAX_DAYS_AHEAD} days ahead, from the bins' state now"
        ));
    }
    Ok(())
}

type Key = (NaiveDate, Option<String>, Option<String>);

/// Plans days' rounds and keeps the plans for a while.
#[derive(Debug)]
pub struct RoundPlanner {
    options: RoundOptions,
    cache: Mutex<Vec<(Key, Instant, Arc<DayPlan>)>>,
}

impl RoundPlanner {
    pub fn new(options: RoundOptions) -> Self {
        RoundPlanner {
            options,
            cache: Mutex::new(Vec::new()),
        }
    }

    /// The rounds of `date` (checked with [`check_date`] first), for the bins of a commune
    /// and a kind if asked.
    pub async fn day(
        &self,
        state: &ApiState,
        date: NaiveDate,
        commune: Option<&str>,
        waste_kind: Option<&str>,
    ) -> Result<Arc<DayPlan>> {
        let key: Key = (
            date,
            commune.map(str::to_string),
            waste_kind.map(str::to_string),
        );
        let fresh = |at: &Instant| at.elapsed() < self.options.cache;
        if let Some((_, _, plan)) = self
            .cache
            .lock()
            .expect("plans lock")
            .iter()
            .find(|(k, at, _)| *k == key && fresh(at))
        {
            return Ok(plan.clone());
        }
        let (depots, trucks, reported) = {
            let view = state.citizens.view.read().expect("view lock");
            let depots: Vec<DepotUpdated> = view.depots.values().cloned().collect();
            let trucks: Vec<TruckUpdated> = view.trucks.values().cloned().collect();
            (depots, trucks, view.reported_bins())
        };
        let shifts: Vec<(DepotUpdated, DateTime<Utc>, DateTime<Utc>)> = depots
            .iter()
            .filter_map(|d| shift_on(d, date).map(|(s, e)| (d.clone(), s, e)))
            .collect();
        let collect_before = next_chance(&depots, date);
        let bins = state
            .sensors
            .bins_to_collect(collect_before, commune, waste_kind, &reported)
            .await?;
        // Savings are quadratic in the bins of a depot and kind: off the async workers.
        let options = self.options.clone();
        let plan = tokio::task::spawn_blocking(move || {
            plan_day(&options, date, collect_before, bins, &shifts, &trucks)
        })
        .await
        .map_err(|e| crate::Error::Internal(e.to_string()))?;
        let plan = Arc::new(plan);
        let mut cache = self.cache.lock().expect("plans lock");
        cache.retain(|(k, at, _)| *k != key && fresh(at));
        if cache.len() >= CACHED_PLANS {
            cache.remove(0);
        }
        cache.push((key, Instant::now(), plan.clone()));
        Ok(plan)
    }
}

/// Plans `bins` with the depots working that day (with their shifts) and the trucks.
pub fn plan_day(
    o: &RoundOptions,
    date: NaiveDate,
    collect_before: DateTime<Utc>,
    bins: Vec<ToCollect>,
    shifts: &[(DepotUpdated, DateTime<Utc>, DateTime<Utc>)],
    trucks: &[TruckUpdated],
) -> DayPlan {
    let stops: Vec<plan::Stop> = bins
        .iter()
        .map(|b| plan::Stop {
            point: GeoPoint {
                lat: b.bin.latitude,
                lon: b.bin.longitude,
            },
            kinds: b.waste_kinds(),
            load_litres: expected_fill(b) * o.bin_volume_litres,
            urgency: b.reasons.iter().map(|r| *r as u8).min().unwrap_or(u8::MAX),
        })
        .collect();
    let depots: Vec<plan::Depot> = shifts
        .iter()
        .map(|(d, starts, ends)| plan::Depot {
            id: d.depot_id.clone(),
            point: GeoPoint {
                lat: d.lat,
                lon: d.long,
            },
            starts: *starts,
            ends: *ends,
        })
        .collect();
    let fleet: Vec<plan::Truck> = trucks
        .iter()
        .map(|t| plan::Truck {
            id: t.truck_id.clone(),
            depot: t.depot_id.clone(),
            kinds: t.waste_kinds.clone(),
            capacity_litres: t.capacity_litres as f64,
        })
        .collect();
    let pace = plan::Pace {
        speed_kmh: o.speed_kmh,
        service: Duration::milliseconds(o.service.as_millis() as i64),
        unload: Duration::milliseconds(o.unload.as_millis() as i64),
        road_factor: o.road_factor,
    };
    let planned = plan::plan(&stops, &depots, &fleet, &pace);
    let rounds = planned
        .rounds
        .into_iter()
        .enumerate()
        .map(|(n, r)| PlannedRound {
            number: n + 1,
            truck: trucks
                .iter()
                .find(|t| t.truck_id == r.truck)
                .cloned()
                .expect("planned with this truck"),
            depot: shifts
                .iter()
                .find(|(d, _, _)| d.depot_id == r.depot)
                .map(|(d, _, _)| d.clone())
                .expect("planned from this depot"),
            waste_kind: r.kind,
            departs: r.departs,
            returns: r.returns,
            distance_km: r.distance_km,
            load_litres: r.load_litres,
            stops: r
                .stops
                .iter()
                .enumerate()
                .map(|(k, (i, arrives))| PlannedStop {
                    order: k + 1,
                    bin: bins[*i].clone(),
                    arrives: *arrives,
                })
                .collect(),
        })
        .collect();
    DayPlan {
        date,
        planned_at: Utc::now(),
        collect_before,
        rounds,
        left: planned
            .left
            .into_iter()
            .map(|(i, why)| (bins[i].clone(), why))
            .collect(),
    }
}

/// A depot's shift on `date`, in UTC; `None` when its crews do not work that day.
pub fn shift_on(depot: &DepotUpdated, date: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let weekday = date.weekday().number_from_monday() as u8;
    if !depot.working_days.contains(&weekday) {
        return None;
    }
    let (start, end) = depot.shift()?;
    let local = |t| {
        Paris
            .from_local_datetime(&date.and_time(t))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    Some((local(start)?, local(end)?))
}

/// When crews next leave after `date`: the first shift start of the next day any depot
/// works (within a week); the end of the next day when no depot is known.
fn next_chance(depots: &[DepotUpdated], date: NaiveDate) -> DateTime<Utc> {
    (1..=7)
        .filter_map(|days| {
            let day = date + Duration::days(days);
            depots
                .iter()
                .filter_map(|d| shift_on(d, day).map(|(s, _)| s))
                .min()
        })
        .next()
        .unwrap_or_else(|| {
            let day_after = date + Duration::days(2);
            Paris
                .from_local_datetime(&day_after.and_hms_opt(0, 0, 0).expect("midnight"))
                .earliest()
                .map_or_else(Utc::now, |t| t.with_timezone(&Utc))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depot(days: Vec<u8>) -> DepotUpdated {
        DepotUpdated {
            depot_id: "d".into(),
            name: "Dépôt".into(),
            commune_code: "34114".into(),
            lat: 43.65,
            long: 3.55,
            shift_start: "06:00".into(),
            shift_end: "13:00".into(),
            working_days: days,
        }
    }

    #[test]
    fn a_shift_is_in_the_valleys_local_time_and_only_on_working_days() {
        let monday = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        let (start, end) = shift_on(&depot(vec![1, 2, 3, 4, 5]), monday).unwrap();
        assert_eq!(start.to_rfc3339(), "2026-12-07T05:00:00+00:00", "CET");
        assert_eq!(end.to_rfc3339(), "2026-12-07T12:00:00+00:00");
        let summer = NaiveDate::from_ymd_opt(2026, 7, 6).unwrap();
        assert_eq!(
            shift_on(&depot(vec![1]), summer).unwrap().0.to_rfc3339(),
            "2026-07-06T04:00:00+00:00",
            "CEST"
        );
        let saturday = NaiveDate::from_ymd_opt(2026, 12, 12).unwrap();
        assert_eq!(shift_on(&depot(vec![1, 2, 3, 4, 5]), saturday), None);
    }

    #[test]
    fn on_a_friday_the_bins_due_before_mondays_rounds_are_collected() {
        let friday = NaiveDate::from_ymd_opt(2026, 12, 11).unwrap();
        assert_eq!(
            next_chance(&[depot(vec![1, 2, 3, 4, 5])], friday).to_rfc3339(),
            "2026-12-14T05:00:00+00:00"
        );
    }

    #[test]
    fn only_today_and_the_next_week_can_be_planned() {
        let now: DateTime<Utc> = "2026-12-05T23:30:00Z".parse().unwrap();
        // Already Sunday 6 December in the valley.
        let day = |d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        assert!(check_date(day(5), now).is_err());
        assert!(check_date(day(6), now).is_ok());
        assert!(check_date(day(13), now).is_ok());
        assert!(check_date(day(14), now).is_err());
    }
}
