//! k = 5 suppression of people counts, and the complementary rule for totals.
//!
//! # Primary suppression
//! A count of 1 to 4 people ([`is_small`]) is withheld from the public: shown as null with
//! a flag (`suppressed` in the API, `secretStatistique` in the open data). Zero is shown:
//! it says nobody was there, which singles no one out.
//!
//! # Totals beside their parts: differencing
//! Some counts are shown beside a total of them: an hour of footfall beside its twelve
//! 5-minute windows (`PT1H` and `PT5M`, both public), the visits of a zone-hour beside its
//! dwell-time buckets, a site's AR check-ins beside the check-ins of each point. Withholding
//! the small parts is not enough: with the total shown, a withheld part could be
//! recomputed (an hour of 9 people whose published windows hold 8: the hidden one held 1).
//!
//! What an onlooker knows, for a total `T` and its parts (`P` the sum of the parts shown,
//! `s` the number withheld, each of those between 1 and `K − 1`):
//! - when `T` is a sum of its parts (buckets, points — or footfall when nobody was seen in
//!   two windows), the withheld parts add up to exactly `D = T − P`;
//! - when `T` counts distinct people over the union of the parts (an hour counts a person
//!   seen in several of its windows once), only `max(parts) ≤ T ≤ Σ parts`: the withheld
//!   parts add up to *at least* `D`. An onlooker cannot tell which case holds.
//!
//! [`total_shown`] shows `T` only when neither reading pins a withheld part:
//! - `D ≤ (K − 1)(s − 1) + 1`: even with every other withheld part at its largest (4), this
//!   one may still be 1, so in the union reading a withheld part stays anywhere in 1..=4;
//! - `D ≠ s`: in the sum reading, `s` withheld parts adding up to `s` are all ones. (With a
//!   single withheld part the first condition already asks `D ≤ 1`, and `D = 1` is
//!   excluded here: a lone withheld part is never beside a shown total it could be
//!   recomputed from, except when the shown parts already account for all of `T`, `D ≤ 0`,
//!   which only the union reading allows and which tells nothing of the hidden part.)
//!
//! Otherwise `T` is withheld too (complementary suppression), and that decision reveals
//! little: a total withheld this way leaves each withheld part at least two possible
//! values (the property test below enumerates every world an onlooker could imagine and
//! checks it, in both readings). The parts themselves follow the primary rule only: a
//! 5-minute window is shown as soon as it closes, and an hour's decision, taken later from
//! the same windows, never changes what was shown of them.
//!
//! Derived figures go with the parts they are computed from: a dwell distribution's mean
//! and median are withheld whenever one of its buckets is (an extreme mean can pin a
//! bucket).
//!
//! What this does not cover: differences between two revisions of the same window (a late
//! sighting correcting a closed window) and between the lake's versions (`asOf`); both
//! need a correction after the fact, rare, and show a change, not a count.

use chrono::{DateTime, Duration, DurationRound, Utc};

use crate::tables::{DwellRow, FootfallRow, PresenceRow};

/// Smallest count of people shown to the public (smaller ones are withheld).
pub const K: i64 = 5;

/// Whether a count is withheld from the public: 1 to `K − 1` people.
pub fn is_small(n: i64) -> bool {
    (1..K).contains(&n)
}

/// A count as the public sees it (`None`: withheld), by the primary rule alone.
pub fn shown(n: i64) -> Option<i64> {
    (!is_small(n)).then_some(n)
}

/// Whether `total` may be shown beside `parts`, each part shown unless small (see the
/// module docs for why this is enough, and what it protects against).
pub fn total_shown(total: i64, parts: impl IntoIterator<Item = i64>) -> bool {
    if is_small(total) {
        return false;
    }
    let (mut hidden, mut published) = (0_i64, 0_i64);
    for p in parts {
        if is_small(p) {
            hidden += 1;
        } else {
            published = published.saturating_add(p);
        }
    }
    if hidden == 0 {
        return true;
    }
    let unexplained = total.saturating_sub(published);
    unexplained <= (K - 1) * (hidden - 1) + 1 && unexplained != hidden
}

fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::hours(1)).unwrap_or(t)
}

/// The people count of each footfall row as the public sees it (`None`: withheld). An
/// hour (`PT1H`) is a total of its zone's twelve `PT5M` windows, so `rows` must hold every
/// `PT5M` row of each hour whose `PT1H` row it holds (a missing window would count as
/// empty); other windows follow the primary rule alone.
pub fn footfall(rows: &[FootfallRow]) -> Vec<Option<i64>> {
    use std::collections::HashMap;
    let mut windows: HashMap<(&str, DateTime<Utc>), Vec<i64>> = HashMap::new();
    for r in rows.iter().filter(|r| r.window == "PT5M") {
        windows
            .entry((r.zone.as_str(), hour_of(r.from)))
            .or_default()
            .push(r.people_count);
    }
    rows.iter()
        .map(|r| match r.window.as_str() {
            "PT1H" => {
                let parts = windows.get(&(r.zone.as_str(), r.from));
                let parts = parts.map(Vec::as_slice).unwrap_or_default();
                total_shown(r.people_count, parts.iter().copied()).then_some(r.people_count)
            }
            _ => shown(r.people_count),
        })
        .collect()
}

/// A dwell-time distribution as the public sees it (`None`: withheld).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dwell {
    pub visits: Option<i64>,
    /// Under 5 minutes, 5 to 15, 15 to 30, 30 to 60.
    pub buckets: [Option<i64>; 4],
    pub mean_seconds: Option<f64>,
    pub median_minutes: Option<i64>,
}

impl Dwell {
    /// Every figure of `row`, exact (what staff see).
    pub fn exact(row: &DwellRow) -> Dwell {
        Dwell {
            visits: Some(row.visits),
            buckets: [
                row.under_5_min,
                row.from_5_to_15_min,
                row.from_15_to_30_min,
                row.from_30_to_60_min,
            ]
            .map(Some),
            mean_seconds: Some(row.mean_seconds),
            median_minutes: Some(row.median_minutes),
        }
    }

    /// Whether anything is withheld.
    pub fn suppressed(&self) -> bool {
        self.visits.is_none() || self.buckets.iter().any(Option::is_none)
    }
}

/// A zone-hour's dwell times as the public sees them: the buckets by the primary rule, the
/// visits as their total, the mean and median only when every bucket is shown.
pub fn dwell(row: &DwellRow) -> Dwell {
    let counts = [
        row.under_5_min,
        row.from_5_to_15_min,
        row.from_15_to_30_min,
        row.from_30_to_60_min,
    ];
    let buckets = counts.map(shown);
    let visits = total_shown(row.visits, counts).then_some(row.visits);
    let whole = visits.is_some() && buckets.iter().all(Option::is_some);
    Dwell {
        visits,
        buckets,
        mean_seconds: whole.then_some(row.mean_seconds),
        median_minutes: whole.then_some(row.median_minutes),
    }
}

/// A site-hour as the public sees it (`None`: withheld).
#[derive(Debug, Clone, PartialEq)]
pub struct Presence {
    pub visitors: Option<i64>,
    /// The total of the points' check-ins.
    pub ar_checkins: Option<i64>,
    /// In the order of the row's points.
    pub ar_checkins_by_point: Vec<Option<i64>>,
}

impl Presence {
    /// Every count of `row`, exact (what staff see).
    pub fn exact(row: &PresenceRow) -> Presence {
        Presence {
            visitors: Some(row.visitor_count),
            ar_checkins: Some(row.ar_checkins),
            ar_checkins_by_point: row
                .ar_checkins_by_point
                .iter()
                .map(|p| Some(p.checkins))
                .collect(),
        }
    }

    /// Whether anything is withheld.
    pub fn suppressed(&self) -> bool {
        self.visitors.is_none()
            || self.ar_checkins.is_none()
            || self.ar_checkins_by_point.iter().any(Option::is_none)
    }
}

/// A site-hour's counts as the public sees them: visitors and each point's check-ins by the
/// primary rule, the check-ins' total beside its points.
pub fn presence(row: &PresenceRow) -> Presence {
    let points = row.ar_checkins_by_point.iter().map(|p| p.checkins);
    Presence {
        visitors: shown(row.visitor_count),
        ar_checkins: total_shown(row.ar_checkins, points.clone()).then_some(row.ar_checkins),
        ar_checkins_by_point: points.map(shown).collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::tables::{Lineage, PointCheckins};

    #[test]
    fn small_counts_are_withheld_zero_and_five_are_shown() {
        assert_eq!(
            (0..7).map(shown).collect::<Vec<_>>(),
            [Some(0), None, None, None, None, Some(5), Some(6)]
        );
        assert!(!total_shown(3, []), "a small total");
        assert!(total_shown(7, [5, 0, 7]), "nothing withheld");
    }

    #[test]
    fn an_hour_beside_one_withheld_window_is_withheld_when_it_could_be_recomputed() {
        // 8 people shown in the windows, 9 in the hour: the hidden window held 1 (if
        // nobody was seen twice). Withheld.
        assert!(!total_shown(9, [8, 1]));
        assert!(!total_shown(12, [8, 4]));
        // The shown windows already account for the hour (people seen in several
        // windows): nothing to recompute.
        assert!(total_shown(8, [8, 5, 2]));
        // Two withheld windows adding up to 2 are two ones: withheld; adding up to 3 or
        // more (up to 4 + 1), shown.
        assert!(!total_shown(10, [8, 1, 1]));
        assert!(total_shown(11, [8, 2, 1]));
        assert!(total_shown(13, [8, 4, 1]));
        assert!(!total_shown(14, [8, 4, 2]));
    }

    /// What an onlooker can deduce: every world (withheld parts in 1..K, a total) that the
    /// rule would publish exactly as it published the real one, under the union reading
    /// (`max ≤ T ≤ Σ`) or, when the real total is a sum, the sum reading (`T = Σ`).
    /// Returns, for each withheld part and for the total if withheld, the values it takes
    /// in those worlds.
    fn deducible(total: i64, parts: &[i64], sum_reading: bool) -> Vec<BTreeSet<i64>> {
        let shown_total = total_shown(total, parts.iter().copied());
        let hidden: Vec<usize> = (0..parts.len()).filter(|i| is_small(parts[*i])).collect();
        let mut seen = vec![BTreeSet::new(); hidden.len() + 1];
        let combinations = (K - 1).pow(hidden.len() as u32);
        for code in 0..combinations {
            let mut world = parts.to_vec();
            let mut c = code;
            for i in &hidden {
                world[*i] = 1 + c % (K - 1);
                c /= K - 1;
            }
            let (max, sum) = (
                world.iter().copied().max().unwrap_or(0),
                world.iter().sum::<i64>(),
            );
            let totals: Vec<i64> = match (shown_total, sum_reading) {
                (true, _) => vec![total],
                (false, true) => vec![sum],
                (false, false) => (max..=sum).collect(),
            };
            for t in totals {
                let fits = if sum_reading {
                    t == sum
                } else {
                    max <= t && t <= sum
                };
                if fits && total_shown(t, world.iter().copied()) == shown_total {
                    for (slot, i) in hidden.iter().enumerate() {
                        seen[slot].insert(world[*i]);
                    }
                    if !shown_total {
                        seen[hidden.len()].insert(t);
                    }
                }
            }
        }
        if shown_total {
            seen.pop();
        }
        seen
    }

    /// Random hours (windows and a total consistent with them) and random sums: no
    /// withheld count is ever pinned to one value by what is shown.
    #[test]
    fn no_withheld_count_can_be_recovered_from_what_is_shown() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut checked = 0;
        for case in 0..8_000 {
            let n = rng.random_range(1..=12);
            let parts: Vec<i64> = (0..n)
                .map(|_| match rng.random_range(0..4) {
                    0 => 0,
                    1 => rng.random_range(1..K),
                    2 => rng.random_range(K..12),
                    _ => rng.random_range(0..25),
                })
                .collect();
            if parts.iter().filter(|p| is_small(**p)).count() > 4 {
                continue; // 4^4 worlds per case at most: keeps the test fast
            }
            let (max, sum) = (*parts.iter().max().unwrap(), parts.iter().sum::<i64>());
            // Half the cases a sum (nobody seen twice), half a union anywhere in range.
            let sum_reading = case % 2 == 0;
            let total = if sum_reading {
                sum
            } else {
                rng.random_range(max..=sum)
            };
            for reading in [false, true] {
                if reading && !sum_reading {
                    continue; // the real total is no sum: the sum reading has no world
                }
                for (i, values) in deducible(total, &parts, reading).iter().enumerate() {
                    checked += 1;
                    assert!(
                        values.len() >= 2,
                        "withheld value {i} of total {total} and parts {parts:?} pinned to \
                         {values:?} (sum reading: {reading})"
                    );
                }
            }
        }
        assert!(checked > 5_000, "only {checked} withheld values checked");
    }

    fn window(zone: &str, window: &str, from: &str, people: i64) -> FootfallRow {
        let from: DateTime<Utc> = from.parse().unwrap();
        FootfallRow {
            zone: zone.into(),
            window: window.into(),
            from,
            to: from
                + if window == "PT1H" {
                    Duration::hours(1)
                } else {
                    Duration::minutes(5)
                },
            people_count: people,
            approximate: false,
            congested: false,
            revision: 0,
            is_final: true,
            day: 0,
            lineage: Lineage::default(),
            computed_at: from,
        }
    }

    #[test]
    fn footfall_hours_are_decided_with_their_own_zones_windows() {
        let rows = [
            window("a", "PT5M", "2026-11-28T10:00:00Z", 8),
            window("a", "PT5M", "2026-11-28T10:55:00Z", 1),
            window("a", "PT1H", "2026-11-28T10:00:00Z", 9),
            // Another zone, another hour: their windows do not count for zone a's 10:00
            // (with b's 7 among a's shown windows, a's hour would be shown).
            window("b", "PT5M", "2026-11-28T10:05:00Z", 7),
            window("b", "PT1H", "2026-11-28T10:00:00Z", 7),
            window("a", "PT5M", "2026-11-28T11:00:00Z", 3),
            window("a", "PT1H", "2026-11-28T11:00:00Z", 3),
        ];
        assert_eq!(
            footfall(&rows),
            [Some(8), None, None, Some(7), Some(7), None, None]
        );
        // Without its windows an hour is decided on its own.
        assert_eq!(footfall(&rows[2..3]), [Some(9)]);
    }

    #[test]
    fn a_dwell_distribution_loses_its_mean_with_a_withheld_bucket() {
        let mut row = DwellRow {
            zone: "za".into(),
            hour: "2026-11-28T10:00:00Z".parse().unwrap(),
            to: "2026-11-28T11:00:00Z".parse().unwrap(),
            session_gap: "PT10M".into(),
            visits: 12,
            under_5_min: 6,
            from_5_to_15_min: 6,
            from_15_to_30_min: 0,
            from_30_to_60_min: 0,
            mean_seconds: 400.0,
            median_minutes: 5,
            total_seconds: 4_800,
            revision: 0,
            day: 0,
            lineage: Lineage::default(),
            computed_at: "2026-11-28T11:10:00Z".parse().unwrap(),
        };
        let whole = dwell(&row);
        assert!(!whole.suppressed());
        assert_eq!(whole.mean_seconds, Some(400.0));
        (row.visits, row.from_5_to_15_min, row.from_15_to_30_min) = (10, 3, 1);
        let split = dwell(&row);
        assert_eq!(split.buckets, [Some(6), None, None, Some(0)]);
        assert_eq!(split.visits, Some(10), "3 + 1 is not pinned");
        assert_eq!((split.mean_seconds, split.median_minutes), (None, None));
        (row.visits, row.from_5_to_15_min, row.from_15_to_30_min) = (12, 5, 1);
        assert_eq!(dwell(&row).visits, None, "12 − 11 = 1 would pin the bucket");
        row.visits = 3;
        assert_eq!(dwell(&row).visits, None);
    }

    #[test]
    fn check_ins_of_one_point_are_not_recomputed_from_the_total() {
        let point = |p: &str, n: i64| PointCheckins {
            point: p.into(),
            checkins: n,
        };
        let mut row = PresenceRow {
            site: "gellone".into(),
            location_code: "34274".into(),
            hour: "2026-11-28T10:00:00Z".parse().unwrap(),
            to: "2026-11-28T11:00:00Z".parse().unwrap(),
            visitor_count: 4,
            ar_checkins: 9,
            ar_checkins_by_point: vec![point("p1", 6), point("p2", 3)],
            aggregation_type: crate::tables::presence::HOURLY_SUM,
            revision: 0,
            is_final: true,
            day: 0,
            lineage: Lineage::default(),
            computed_at: "2026-11-28T11:00:00Z".parse().unwrap(),
        };
        let seen = presence(&row);
        assert_eq!(seen.visitors, None);
        assert_eq!(seen.ar_checkins, None, "9 − 6 would give p2's 3");
        assert_eq!(seen.ar_checkins_by_point, [Some(6), None]);
        assert!(seen.suppressed());
        row.ar_checkins_by_point = vec![point("p1", 6), point("p2", 5)];
        row.ar_checkins = 11;
        row.visitor_count = 40;
        assert!(!presence(&row).suppressed());
    }
}
