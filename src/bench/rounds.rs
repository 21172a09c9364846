//! `vallee bench rounds`: what collecting by fill level saves, on the simulated valley.
//!
//! The simulator's bins (positions, kinds, each one's fill rate, the day's rhythm and the
//! Saturday market) fill hour by hour for some weeks, the same way for every strategy (the
//! same random draws). One depot at Gignac, one truck per kind of waste, crews working
//! 06:00–13:00 Monday to Saturday. Every strategy's rounds are made by the hub's own
//! planner, so only the choice of bins differs:
//!
//! - **fixed**: every bin every n-th working day, whatever it holds (n = 1, 2, 3, 6);
//! - **by fill level**: each working day, the bins at their threshold (0.8) and those their
//!   sensor's recent rate puts there before the next working day's shift, as
//!   `rounds(date)` chooses them.
//!
//! A bin is emptied when its round reaches it. Reported per strategy: kilometres a week,
//! collections a week, the mean fill at collection, bin-hours spent overflowing (full to
//! the brim) and bins left out for lack of time.

use anyhow::Result;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vallee_graphql::rounds::{plan, shift_on};
use vallee_schemas::citizen::DepotUpdated;
use vallee_schemas::geo::GeoPoint;

use crate::cli::BenchRoundsArgs;
use crate::simulator::{BinLayout, Valley, ValleyShape, fill_pace};

const THRESHOLD: f64 = 0.8;
const BIN_LITRES: f64 = 660.0;
const TRUCK_LITRES: f64 = 20_000.0;
const KINDS: [&str; 5] = ["household", "plastic", "paper", "glass", "organic"];

/// How bins are chosen each working day.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Strategy {
    EveryNthDay(usize),
    ByFillLevel,
}

impl Strategy {
    fn label(self) -> String {
        match self {
            Strategy::EveryNthDay(1) => "fixed, every working day".into(),
            Strategy::EveryNthDay(n) => format!("fixed, every {n} working days"),
            Strategy::ByFillLevel => "by fill level (rounds)".into(),
        }
    }
}

/// What one strategy did over the simulated weeks.
#[derive(Debug, Default, Clone, PartialEq)]
struct Outcome {
    km: f64,
    collections: usize,
    fill_at_collection: f64,
    overflow_hours: usize,
    left_out: usize,
}

/// Runs the rounds benchmark and prints its report.
pub async fn rounds(args: BenchRoundsArgs) -> Result<()> {
    let start: DateTime<Utc> = "2026-05-04T00:00:00Z".parse()?;
    let layout = Valley::new(
        ValleyShape {
            seed: args.seed,
            bins: args.bins,
            fault_ratio: 0.0,
            ..Default::default()
        },
        start,
    )
    .bin_layout()
    .into_iter()
    .map(|b| BinLayout {
        fill_per_hour: b.fill_per_hour * args.rate_scale,
        ..b
    })
    .collect::<Vec<_>>();
    eprintln!(
        "simulating {} weeks of {} bins, 5 strategies…",
        args.weeks,
        layout.len()
    );
    let (weeks, layout_len) = (args.weeks as i64, layout.len());
    let strategies = [
        Strategy::EveryNthDay(1),
        Strategy::EveryNthDay(2),
        Strategy::EveryNthDay(3),
        Strategy::EveryNthDay(6),
        Strategy::ByFillLevel,
    ];
    let outcomes = tokio::task::spawn_blocking(move || {
        strategies
            .iter()
            .map(|s| (*s, simulate(&layout, *s, start, weeks, args.seed)))
            .collect::<Vec<_>>()
    })
    .await?;
    println!(
        "rounds, {} weeks of {} simulated bins (seed {}, fill rates × {}): one depot, one {TRUCK_LITRES} L truck per kind, 06:00–13:00 Monday to Saturday, the hub's planner for every strategy",
        args.weeks, layout_len, args.seed, args.rate_scale
    );
    println!(
        "  {:<34} {:>8} {:>12} {:>14} {:>16} {:>9}",
        "strategy", "km/week", "emptyings/wk", "fill at empty", "overflow bin-h", "left out"
    );
    let w = args.weeks as f64;
    for (s, o) in &outcomes {
        println!(
            "  {:<34} {:>8.0} {:>12.0} {:>13.0} % {:>16} {:>9}",
            s.label(),
            o.km / w,
            o.collections as f64 / w,
            100.0 * o.fill_at_collection / o.collections.max(1) as f64,
            o.overflow_hours,
            o.left_out
        );
    }
    let by_fill = &outcomes.last().expect("five strategies").1;
    for (s, o) in &outcomes[..outcomes.len() - 1] {
        println!(
            "  by fill level vs {}: {:.2}× the kilometres, {:.2}× the emptyings, {} vs {} overflowing bin-hours",
            s.label(),
            by_fill.km / o.km.max(f64::EPSILON),
            by_fill.collections as f64 / o.collections.max(1) as f64,
            by_fill.overflow_hours,
            o.overflow_hours
        );
    }
    Ok(())
}

/// The depot at Gignac, working Monday to Saturday.
fn depot() -> DepotUpdated {
    let gignac = vallee_schemas::communes::valley()
        .by_code("34114")
        .expect("Gignac")
        .centre;
    DepotUpdated {
        depot_id: "gignac".into(),
        name: "Centre technique de Gignac".into(),
        commune_code: "34114".into(),
        lat: gignac.lat,
        long: gignac.lon,
        shift_start: "06:00".into(),
        shift_end: "13:00".into(),
        working_days: vec![1, 2, 3, 4, 5, 6],
    }
}

/// The next working day's shift start after `date`.
fn next_shift(depot: &DepotUpdated, date: NaiveDate) -> DateTime<Utc> {
    (1..=7)
        .find_map(|d| shift_on(depot, date + Duration::days(d)).map(|(s, _)| s))
        .expect("a working day every week")
}

fn simulate(
    layout: &[BinLayout],
    strategy: Strategy,
    start: DateTime<Utc>,
    weeks: i64,
    seed: u64,
) -> Outcome {
    let depot = depot();
    let depot_point = GeoPoint {
        lat: depot.lat,
        lon: depot.long,
    };
    let trucks: Vec<plan::Truck> = KINDS
        .iter()
        .map(|k| plan::Truck {
            id: format!("benne-{k}"),
            depot: depot.depot_id.clone(),
            kinds: vec![k.to_string()],
            capacity_litres: TRUCK_LITRES,
        })
        .collect();
    let pace = plan::Pace {
        speed_kmh: 25.0,
        service: Duration::minutes(2),
        unload: Duration::minutes(20),
        road_factor: 1.3,
    };
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut fill: Vec<f64> = layout.iter().map(|b| b.fill).collect();
    // Each bin's readings since its last emptying, hourly: (time, level).
    let mut since_emptied: Vec<Vec<(DateTime<Utc>, f64)>> = vec![Vec::new(); layout.len()];
    // Emptyings planned for the day: (when, bin).
    let mut planned: Vec<(DateTime<Utc>, usize)> = Vec::new();
    let mut out = Outcome::default();
    let mut working_day = 0usize;
    let end = start + Duration::weeks(weeks);
    let mut now = start;
    while now < end {
        let date = now.date_naive();
        if let Some((shift_start, shift_end)) = shift_on(&depot, date)
            && now <= shift_start
            && shift_start < now + Duration::hours(1)
        {
            let chosen: Vec<usize> = match strategy {
                Strategy::EveryNthDay(n) => (0..layout.len())
                    .filter(|i| i % n == working_day % n)
                    .collect(),
                Strategy::ByFillLevel => {
                    let horizon = next_shift(&depot, date);
                    (0..layout.len())
                        .filter(|&i| {
                            let level = fill[i];
                            let rate = recent_rate(&since_emptied[i]);
                            let hours = (horizon - now).num_minutes() as f64 / 60.0;
                            level >= THRESHOLD || level + rate * hours >= THRESHOLD
                        })
                        .collect()
                }
            };
            let stops: Vec<plan::Stop> = chosen
                .iter()
                .map(|&i| plan::Stop {
                    point: layout[i].point,
                    kinds: vec![layout[i].kind.to_string()],
                    load_litres: fill[i] * BIN_LITRES,
                    urgency: if fill[i] >= THRESHOLD { 1 } else { 3 },
                })
                .collect();
            let depots = [plan::Depot {
                id: depot.depot_id.clone(),
                point: depot_point,
                starts: shift_start,
                ends: shift_end,
            }];
            let day = plan::plan(&stops, &depots, &trucks, &pace);
            out.km += day.distance_km();
            out.left_out += day.left.len();
            planned = day
                .rounds
                .iter()
                .flat_map(|r| r.stops.iter().map(|(k, at)| (*at, chosen[*k])))
                .collect();
            planned.sort();
            working_day += 1;
        }
        // An hour of filling, the same draws whatever the strategy; emptyings as rounds
        // reach their bins.
        let next = now + Duration::hours(1);
        let pace_now = fill_pace(now);
        for (i, b) in layout.iter().enumerate() {
            let draw: f64 = rng.random_range(0.5..1.5);
            fill[i] = (fill[i] + b.fill_per_hour * pace_now * draw).min(1.0);
            if fill[i] >= 1.0 {
                out.overflow_hours += 1;
            }
            since_emptied[i].push((next, fill[i]));
        }
        while planned.first().is_some_and(|(at, _)| *at < next) {
            let (_, i) = planned.remove(0);
            out.collections += 1;
            out.fill_at_collection += fill[i];
            fill[i] = 0.02;
            since_emptied[i].clear();
            since_emptied[i].push((next, fill[i]));
        }
        now = next;
    }
    out
}

/// A bin's fill rate per hour as its sensor shows it: over the last 24 hours of readings
/// since its last emptying (at least 3 hours of them), else nothing known.
fn recent_rate(readings: &[(DateTime<Utc>, f64)]) -> f64 {
    let Some(&(last_at, last)) = readings.last() else {
        return 0.0;
    };
    let from = readings
        .iter()
        .find(|(t, _)| last_at - *t <= Duration::hours(24))
        .copied()
        .unwrap_or((last_at, last));
    let hours = (last_at - from.0).num_minutes() as f64 / 60.0;
    if hours < 3.0 {
        return 0.0;
    }
    ((last - from.1) / hours).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bins_rate_is_read_over_its_last_day_since_its_emptying() {
        let t0: DateTime<Utc> = "2026-05-04T00:00:00Z".parse().unwrap();
        let hourly: Vec<(DateTime<Utc>, f64)> = (0..=30)
            .map(|h| (t0 + Duration::hours(h), 0.01 * h as f64))
            .collect();
        assert!((recent_rate(&hourly) - 0.01).abs() < 1e-9);
        assert_eq!(recent_rate(&hourly[..2]), 0.0, "too few hours to tell");
        assert_eq!(recent_rate(&[]), 0.0);
    }

    #[test]
    fn collecting_by_fill_level_empties_fuller_bins_than_a_daily_round() {
        let start: DateTime<Utc> = "2026-05-04T00:00:00Z".parse().unwrap();
        let layout = Valley::new(
            ValleyShape {
                seed: 3,
                bins: 60,
                fault_ratio: 0.0,
                ..Default::default()
            },
            start,
        )
        .bin_layout();
        let daily = simulate(&layout, Strategy::EveryNthDay(1), start, 1, 3);
        let by_fill = simulate(&layout, Strategy::ByFillLevel, start, 1, 3);
        let mean = |o: &Outcome| o.fill_at_collection / o.collections.max(1) as f64;
        assert!(daily.collections > by_fill.collections);
        assert!(mean(&by_fill) > mean(&daily), "{by_fill:?} vs {daily:?}");
        assert!(by_fill.km < daily.km);
    }
}
