//! Planning a day's collection rounds: which truck collects which bins, in which order.
//!
//! A capacitated vehicle-routing problem with several depots, kinds of waste and working
//! hours, solved the way collection planners usually start:
//!
//! 1. **Grouping.** Each bin goes to the nearest depot with a truck that takes one of its
//!    kinds, under that kind (a bin holding several kinds is one stop, for the first kind
//!    a truck takes). A bin no working truck takes is left out, with why.
//! 2. **Savings** (Clarke and Wright, 1964). Per depot and kind, every bin starts as its
//!    own round; pairs are joined by decreasing saving `d(depot, i) + d(depot, j) - d(i, j)`
//!    while the joined round fits the largest truck and the shift.
//! 3. **2-opt.** Each round's order is improved by reversing any stretch that shortens it,
//!    until none does (uncrosses the round).
//! 4. **Trucks.** Rounds are given to trucks most urgent first (a round holding a burning
//!    or full bin before one of forecasts), each to the truck of its depot and kind with
//!    room for its load that is free soonest; a truck does several rounds a day, going
//!    back to the depot to unload between them. A round no truck has time for is left
//!    out, its bins with why.
//!
//! Distances are straight lines times a road factor (rural roads wind: about 1.3 in the
//! valley); no road graph ships with the hub.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use vallee_schemas::geo::GeoPoint;

/// How a bin must be collected: the lower, the sooner.
pub type Urgency = u8;

/// A bin to collect.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    pub point: GeoPoint,
    /// Its kinds of waste (any of them).
    pub kinds: Vec<String>,
    /// What it holds, in litres.
    pub load_litres: f64,
    pub urgency: Urgency,
}

/// A depot working on the planned day, with its shift that day.
#[derive(Debug, Clone, PartialEq)]
pub struct Depot {
    pub id: String,
    pub point: GeoPoint,
    pub starts: DateTime<Utc>,
    pub ends: DateTime<Utc>,
}

/// A truck of a working depot.
#[derive(Debug, Clone, PartialEq)]
pub struct Truck {
    pub id: String,
    pub depot: String,
    pub kinds: Vec<String>,
    pub capacity_litres: f64,
}

/// How the crews work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    pub speed_kmh: f64,
    /// At each bin: stopping, lifting, emptying.
    pub service: Duration,
    /// At the depot between two rounds of one truck.
    pub unload: Duration,
    /// Road distance over straight-line distance.
    pub road_factor: f64,
}

/// One round: a truck leaves its depot, collects `stops` in order, comes back.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    pub truck: String,
    pub depot: String,
    pub kind: String,
    pub departs: DateTime<Utc>,
    pub returns: DateTime<Utc>,
    /// Indices into the planned stops, in visiting order, each with its arrival.
    pub stops: Vec<(usize, DateTime<Utc>)>,
    pub distance_km: f64,
    pub load_litres: f64,
}

/// Why a bin is in no round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// No truck of a depot working that day takes any of its kinds.
    NoTruckForKind,
    /// The trucks that take it have no time left in their shifts.
    NoTimeLeft,
}

/// A day's plan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// By truck, then departure.
    pub rounds: Vec<Round>,
    /// Indices into the planned stops, with why.
    pub left: Vec<(usize, Left)>,
}

impl Plan {
    pub fn distance_km(&self) -> f64 {
        self.rounds.iter().map(|r| r.distance_km).sum()
    }
}

/// Plans the rounds collecting `stops` with `trucks` from `depots`.
pub fn plan(stops: &[Stop], depots: &[Depot], trucks: &[Truck], pace: &Pace) -> Plan {
    let km = |a: &GeoPoint, b: &GeoPoint| a.distance_m(b) / 1000.0 * pace.road_factor;
    let depot_of = |id: &str| depots.iter().find(|d| d.id == id);
    let working: Vec<&Truck> = trucks
        .iter()
        .filter(|t| depot_of(&t.depot).is_some() && t.capacity_litres > 0.0)
        .collect();

    // 1. Each bin to its nearest depot with a truck for one of its kinds.
    let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    let mut left = Vec::new();
    for (i, stop) in stops.iter().enumerate() {
        let choice = working
            .iter()
            .filter_map(|t| {
                let kind = stop.kinds.iter().find(|k| t.kinds.contains(k))?;
                let depot = depot_of(&t.depot)?;
                Some((
                    km(&depot.point, &stop.point),
                    depot.id.clone(),
                    kind.clone(),
                ))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        match choice {
            Some((_, depot, kind)) => groups.entry((depot, kind)).or_default().push(i),
            None => left.push((i, Left::NoTruckForKind)),
        }
    }

    // 2 and 3. Rounds per depot and kind.
    let mut candidates = Vec::new();
    for ((depot_id, kind), members) in &groups {
        let depot = depot_of(depot_id).expect("grouped under a working depot");
        let fleet: Vec<&&Truck> = working
            .iter()
            .filter(|t| &t.depot == depot_id && t.kinds.contains(kind))
            .collect();
        let capacity = fleet.iter().map(|t| t.capacity_litres).fold(0.0, f64::max);
        let shift = depot.ends - depot.starts;
        for order in savings(stops, members, depot, capacity, shift, pace) {
            let order = two_opt(stops, order, &depot.point);
            candidates.push(Candidate {
                urgency: order.iter().map(|&i| stops[i].urgency).min(),
                distance: tour_km(stops, &order, &depot.point, pace),
                depot: depot_id.clone(),
                kind: kind.clone(),
                capacity,
                order,
            });
        }
    }

    // 4. Rounds to trucks, the most urgent first, then the longest.
    candidates.sort_by(|a, b| {
        (a.urgency.cmp(&b.urgency))
            .then(b.distance.total_cmp(&a.distance))
            .then(a.order.cmp(&b.order))
    });
    let mut free_at: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    let mut rounds = Vec::new();
    for Candidate {
        depot: depot_id,
        kind,
        order,
        capacity,
        distance,
        ..
    } in candidates
    {
        let depot = depot_of(&depot_id).expect("depot");
        let load: f64 = order.iter().map(|&i| stops[i].load_litres).sum();
        let duration = drive(distance, pace) + pace.service * order.len() as i32;
        let truck = working
            .iter()
            .filter(|t| t.depot == depot_id && t.kinds.contains(&kind))
            // A single bin larger than every truck still goes to the largest.
            .filter(|t| t.capacity_litres >= load.min(capacity))
            .map(|t| {
                let free = free_at.get(t.id.as_str()).copied();
                let departs = free.map_or(depot.starts, |f| f + pace.unload);
                (departs, *t)
            })
            .filter(|(departs, _)| *departs + duration <= depot.ends)
            .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        let Some((departs, truck)) = truck else {
            left.extend(order.iter().map(|&i| (i, Left::NoTimeLeft)));
            continue;
        };
        let (mut at, mut here, mut timed) = (departs, depot.point, Vec::new());
        for &i in &order {
            at += drive(km(&here, &stops[i].point), pace);
            timed.push((i, at));
            at += pace.service;
            here = stops[i].point;
        }
        let returns = at + drive(km(&here, &depot.point), pace);
        free_at.insert(truck.id.as_str(), returns);
        rounds.push(Round {
            truck: truck.id.clone(),
            depot: depot_id,
            kind,
            departs,
            returns,
            stops: timed,
            distance_km: distance,
            load_litres: load,
        });
    }
    rounds.sort_by(|a, b| a.truck.cmp(&b.truck).then(a.departs.cmp(&b.departs)));
    left.sort_by_key(|(i, _)| *i);
    Plan { rounds, left }
}

/// A round made for a depot and kind, before a truck takes it.
struct Candidate {
    depot: String,
    kind: String,
    order: Vec<usize>,
    /// The largest truck of the depot for the kind, in litres.
    capacity: f64,
    distance: f64,
    urgency: Option<Urgency>,
}

/// Driving time over `km`.
fn drive(km: f64, pace: &Pace) -> Duration {
    Duration::milliseconds((km / pace.speed_kmh.max(1.0) * 3_600_000.0).round() as i64)
}

/// Length of the round from `depot` through `order` and back.
pub fn tour_km(stops: &[Stop], order: &[usize], depot: &GeoPoint, pace: &Pace) -> f64 {
    let mut here = *depot;
    let mut total = 0.0;
    for &i in order {
        total += here.distance_m(&stops[i].point);
        here = stops[i].point;
    }
    (total + here.distance_m(depot)) / 1000.0 * pace.road_factor
}

/// Clarke and Wright's parallel savings over `members`: rounds as orders of stops.
fn savings(
    stops: &[Stop],
    members: &[usize],
    depot: &Depot,
    capacity: f64,
    shift: Duration,
    pace: &Pace,
) -> Vec<Vec<usize>> {
    let n = members.len();
    let point = |k: usize| stops[members[k]].point;
    let from_depot: Vec<f64> = (0..n).map(|k| depot.point.distance_m(&point(k))).collect();
    let mut pairs = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for a in 0..n {
        for b in a + 1..n {
            let saving = from_depot[a] + from_depot[b] - point(a).distance_m(&point(b));
            if saving > 0.0 {
                pairs.push((saving, a, b));
            }
        }
    }
    pairs.sort_by(|x, y| y.0.total_cmp(&x.0).then((x.1, x.2).cmp(&(y.1, y.2))));

    // Rounds by slot; `round_of[k]` is the slot of member k's round.
    let mut rounds: Vec<Option<Vec<usize>>> = (0..n).map(|k| Some(vec![k])).collect();
    let mut round_of: Vec<usize> = (0..n).collect();
    let load = |r: &[usize]| {
        r.iter()
            .map(|&k| stops[members[k]].load_litres)
            .sum::<f64>()
    };
    let fits = |r: &[usize]| {
        let order: Vec<usize> = r.iter().map(|&k| members[k]).collect();
        let km = tour_km(stops, &order, &depot.point, pace);
        load(r) <= capacity + 1e-9 && drive(km, pace) + pace.service * r.len() as i32 <= shift
    };
    for (_, a, b) in pairs {
        let (ra, rb) = (round_of[a], round_of[b]);
        if ra == rb {
            continue;
        }
        let (Some(x), Some(y)) = (rounds[ra].as_ref(), rounds[rb].as_ref()) else {
            continue;
        };
        // a and b must each end their round; join so they meet.
        let mut x = x.clone();
        let mut y = y.clone();
        if x.last() != Some(&a) {
            if x.first() != Some(&a) {
                continue;
            }
            x.reverse();
        }
        if y.first() != Some(&b) {
            if y.last() != Some(&b) {
                continue;
            }
            y.reverse();
        }
        x.extend(y);
        if !fits(&x) {
            continue;
        }
        for &k in &x {
            round_of[k] = ra;
        }
        rounds[ra] = Some(x);
        rounds[rb] = None;
    }
    rounds
        .into_iter()
        .flatten()
        .map(|r| r.into_iter().map(|k| members[k]).collect())
        .collect()
}

/// Improves a round's order by 2-opt moves until none shortens it.
fn two_opt(stops: &[Stop], order: Vec<usize>, depot: &GeoPoint) -> Vec<usize> {
    if order.len() < 3 {
        return order;
    }
    // Positions 0 and n+1 are the depot.
    let mut tour: Vec<GeoPoint> = std::iter::once(*depot)
        .chain(order.iter().map(|&i| stops[i].point))
        .chain(std::iter::once(*depot))
        .collect();
    let mut ids: Vec<Option<usize>> = std::iter::once(None)
        .chain(order.iter().map(|&i| Some(i)))
        .chain(std::iter::once(None))
        .collect();
    let d = |a: &GeoPoint, b: &GeoPoint| a.distance_m(b);
    let n = tour.len();
    // Bounded: each pass is O(n²), and rounds are short; a pass that improves nothing ends it.
    for _ in 0..100 {
        let mut improved = false;
        for i in 0..n - 3 {
            for j in i + 2..n - 1 {
                let before = d(&tour[i], &tour[i + 1]) + d(&tour[j], &tour[j + 1]);
                let after = d(&tour[i], &tour[j]) + d(&tour[i + 1], &tour[j + 1]);
                if after + 1e-6 < before {
                    tour[i + 1..=j].reverse();
                    ids[i + 1..=j].reverse();
                    improved = true;
                }
            }
        }
        if !improved {
            break;
        }
    }
    ids.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACE: Pace = Pace {
        speed_kmh: 25.0,
        service: Duration::minutes(2),
        unload: Duration::minutes(20),
        road_factor: 1.0,
    };

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// A point `east_m` east and `north_m` north of Gignac's centre.
    fn near(east_m: f64, north_m: f64) -> GeoPoint {
        GeoPoint {
            lat: 43.65 + north_m / 111_195.0,
            lon: 3.55 + east_m / (111_195.0 * 43.65_f64.to_radians().cos()),
        }
    }

    fn stop(east_m: f64, north_m: f64, kind: &str, litres: f64, urgency: Urgency) -> Stop {
        Stop {
            point: near(east_m, north_m),
            kinds: vec![kind.to_string()],
            load_litres: litres,
            urgency,
        }
    }

    fn depot() -> Depot {
        Depot {
            id: "gignac".into(),
            point: near(0.0, 0.0),
            starts: at("2026-12-07T05:00:00Z"),
            ends: at("2026-12-07T12:00:00Z"),
        }
    }

    fn truck(id: &str, kinds: &[&str], litres: f64) -> Truck {
        Truck {
            id: id.into(),
            depot: "gignac".into(),
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            capacity_litres: litres,
        }
    }

    #[test]
    fn a_round_visits_its_bins_in_the_order_that_does_not_cross_itself() {
        // Four corners of a 2 km square east of the depot, given crossed.
        let stops = [
            stop(1000.0, 1000.0, "refuse", 100.0, 3),
            stop(3000.0, -1000.0, "refuse", 100.0, 3),
            stop(3000.0, 1000.0, "refuse", 100.0, 3),
            stop(1000.0, -1000.0, "refuse", 100.0, 3),
        ];
        let plan = plan(
            &stops,
            &[depot()],
            &[truck("b1", &["refuse"], 10_000.0)],
            &PACE,
        );
        assert_eq!(plan.rounds.len(), 1);
        let order: Vec<usize> = plan.rounds[0].stops.iter().map(|s| s.0).collect();
        assert!(
            order == [0, 2, 1, 3] || order == [3, 1, 2, 0],
            "the square's perimeter, not its diagonals: {order:?}"
        );
        // Depot → corner (1.414 km) + 3 sides (6 km) + back (1.414 km).
        assert!(
            (plan.distance_km() - 8.83).abs() < 0.05,
            "{}",
            plan.distance_km()
        );
        let round = &plan.rounds[0];
        assert!(round.stops.windows(2).all(|w| w[0].1 < w[1].1));
        assert!(round.departs == depot().starts && round.returns > round.stops[3].1);
        assert_eq!(round.load_litres, 400.0);
    }

    #[test]
    fn a_full_truck_goes_back_to_unload_and_far_apart_bins_make_separate_rounds() {
        let mut stops = Vec::new();
        for k in 0..6 {
            stops.push(stop(5000.0, k as f64 * 100.0, "refuse", 1000.0, 3));
            stops.push(stop(-5000.0, k as f64 * 100.0, "refuse", 1000.0, 3));
        }
        let plan = plan(
            &stops,
            &[depot()],
            &[truck("b1", &["refuse"], 6000.0)],
            &PACE,
        );
        assert!(plan.left.is_empty(), "{:?}", plan.left);
        assert_eq!(plan.rounds.len(), 2, "one round east, one west");
        for round in &plan.rounds {
            assert_eq!(round.load_litres, 6000.0);
            let east: Vec<bool> = round
                .stops
                .iter()
                .map(|(i, _)| stops[*i].point.lon > 3.55)
                .collect();
            assert!(east.iter().all(|e| *e == east[0]), "one side per round");
        }
        let (first, second) = (&plan.rounds[0], &plan.rounds[1]);
        assert_eq!(first.truck, second.truck);
        assert_eq!(second.departs, first.returns + PACE.unload);
    }

    #[test]
    fn bins_go_to_trucks_of_their_kind_and_one_no_truck_takes_is_left_with_why() {
        let stops = [
            stop(500.0, 0.0, "refuse", 100.0, 3),
            stop(600.0, 0.0, "paper", 100.0, 3),
            Stop {
                kinds: vec!["glass".into(), "paper".into()],
                ..stop(700.0, 0.0, "", 100.0, 3)
            },
            stop(800.0, 0.0, "textile", 100.0, 3),
        ];
        let trucks = [
            truck("b-refuse", &["refuse"], 10_000.0),
            truck("b-paper", &["paper"], 10_000.0),
        ];
        let plan = plan(&stops, &[depot()], &trucks, &PACE);
        let of = |truck: &str| -> Vec<usize> {
            plan.rounds
                .iter()
                .filter(|r| r.truck == truck)
                .flat_map(|r| r.stops.iter().map(|s| s.0))
                .collect()
        };
        assert_eq!(of("b-refuse"), [0]);
        let mut paper = of("b-paper");
        paper.sort();
        assert_eq!(paper, [1, 2], "a glass-and-paper bin matches paper");
        assert_eq!(plan.left, [(3, Left::NoTruckForKind)]);
    }

    #[test]
    fn when_the_shift_is_too_short_the_urgent_bins_are_collected_first() {
        // A short shift: one 40 km return trip fits, two do not.
        let short = Depot {
            ends: at("2026-12-07T07:00:00Z"),
            ..depot()
        };
        let stops = [
            stop(20_000.0, 0.0, "refuse", 100.0, 3),
            stop(-20_000.0, 0.0, "refuse", 100.0, 0),
        ];
        let plan = plan(
            &stops,
            &[short],
            &[truck("b1", &["refuse"], 10_000.0)],
            &PACE,
        );
        assert_eq!(plan.rounds.len(), 1);
        assert_eq!(plan.rounds[0].stops[0].0, 1, "the burning bin first");
        assert_eq!(plan.left, [(0, Left::NoTimeLeft)]);
    }

    #[test]
    fn savings_and_two_opt_beat_visiting_bins_in_the_order_given() {
        // 60 bins scattered by a fixed sequence over 10 km × 10 km.
        let mut x: u64 = 12345;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as f64 / (1u64 << 31) as f64
        };
        let stops: Vec<Stop> = (0..60)
            .map(|_| {
                stop(
                    next() * 10_000.0 - 5000.0,
                    next() * 10_000.0 - 5000.0,
                    "refuse",
                    10.0,
                    3,
                )
            })
            .collect();
        let plan = plan(&stops, &[depot()], &[truck("b1", &["refuse"], 1e6)], &PACE);
        assert_eq!(plan.rounds.len(), 1);
        let given: Vec<usize> = (0..60).collect();
        let naive = tour_km(&stops, &given, &depot().point, &PACE);
        assert!(
            plan.distance_km() < naive * 0.35,
            "{} km planned, {naive} km in the given order",
            plan.distance_km()
        );
        let mut seen: Vec<usize> = plan.rounds[0].stops.iter().map(|s| s.0).collect();
        seen.sort();
        assert_eq!(seen, given, "every bin exactly once");
    }
}
