//! Dwell time per zone and hour (`footfall_dwell`), from session windows.
//!
//! A device's sightings in a zone form sessions separated by a gap (default 10 min). The
//! sessions are cut at hour boundaries: a visit from 10:50 to 11:20 counts 10 minutes in the
//! 10:00 hour and 20 in the 11:00 hour. That makes the distribution of an hour depend only on
//! that hour's sightings, so a restart that replays the last hours from Kafka (device tokens
//! are never on disk) rebuilds exactly the same rows.
//!
//! An hour's row is emitted once every session of it has closed (the watermark passed the
//! hour's end plus the gap); a late sighting that changes a session emits the hour again.
//!
//! The stage feeds it per device and 5-minute bin (the first and last sighting, from the
//! footfall plan's partials) rather than per sighting: the sightings of a bin are closer
//! than the gap, so they always fall in one session, and a test holds both feeds to the same
//! rows. Only a bin arriving more than the gap behind the watermark may differ: its first
//! sighting joins the closed sessions, where every sighting up to the gap would have.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, Utc};

use crate::lineage::Lineage;
use crate::session::{Session, SessionOperator};

/// The distribution of dwell times of one zone-hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DwellSummary {
    pub sessions: i64,
    pub under_5_min: i64,
    pub from_5_to_15_min: i64,
    pub from_15_to_30_min: i64,
    pub from_30_to_60_min: i64,
    /// Sum of dwell times, seconds (the mean is this over `sessions`).
    pub total_seconds: i64,
    /// Median dwell, whole minutes.
    pub median_minutes: i64,
}

/// Sessions per whole minute of dwell (0 to 60).
#[derive(Debug, Clone)]
struct Histogram {
    minutes: [i64; 61],
    total_seconds: i64,
    lineage: Lineage,
    /// Changed since last emitted.
    dirty: bool,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            minutes: [0; 61],
            total_seconds: 0,
            lineage: Lineage::default(),
            dirty: false,
        }
    }
}

impl Histogram {
    fn apply(&mut self, session: &Session, sign: i64) {
        let seconds = session.dwell().num_seconds();
        self.minutes[(seconds / 60).clamp(0, 60) as usize] += sign;
        self.total_seconds += sign * seconds;
        self.dirty = true;
    }

    fn summary(&self) -> DwellSummary {
        let sessions: i64 = self.minutes.iter().sum();
        let range = |from: usize, to: usize| self.minutes[from..to].iter().sum::<i64>();
        let mut seen = 0;
        let median_minutes = self
            .minutes
            .iter()
            .position(|n| {
                seen += n;
                sessions > 0 && 2 * seen >= sessions
            })
            .unwrap_or(0) as i64;
        DwellSummary {
            sessions,
            under_5_min: range(0, 5),
            from_5_to_15_min: range(5, 15),
            from_15_to_30_min: range(15, 30),
            from_30_to_60_min: range(30, 61),
            total_seconds: self.total_seconds,
            median_minutes,
        }
    }
}

/// One zone-hour's distribution, complete or corrected.
#[derive(Debug, Clone, PartialEq)]
pub struct DwellEmission {
    pub zone: String,
    pub hour: DateTime<Utc>,
    pub summary: DwellSummary,
    pub lineage: Lineage,
}

/// (zone, device token hash, hour): a session never crosses an hour boundary. Zones are
/// shared names (a sighting allocates nothing for its key).
type SessionKey = (Arc<str>, u64, DateTime<Utc>);

/// Sessions of devices in zones, summarised per zone and hour.
#[derive(Debug, Clone)]
pub struct DwellOperator {
    gap: Duration,
    correction_horizon: Duration,
    sessions: SessionOperator<SessionKey>,
    hours: BTreeMap<(Arc<str>, DateTime<Utc>), Histogram>,
    /// Every zone seen (a handful: the activity zone's sectors).
    zones: HashSet<Arc<str>>,
    /// Hours starting at or before this were dropped.
    dropped_until: Option<DateTime<Utc>>,
}

fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::hours(1)).unwrap_or(t)
}

impl DwellOperator {
    pub fn new(gap: Duration, correction_horizon: Duration) -> Self {
        DwellOperator {
            gap,
            correction_horizon,
            // Sessions are kept as long as their hour (which ends up to an hour after them).
            sessions: SessionOperator::new(gap, correction_horizon + Duration::hours(1)),
            hours: BTreeMap::new(),
            zones: HashSet::new(),
            dropped_until: None,
        }
    }

    pub fn gap(&self) -> Duration {
        self.gap
    }

    /// Sightings of a device (`token`, its keyed hash) in `zone` from `first` to `last`,
    /// closer to each other than the gap and within one hour (the sightings of a 5-minute
    /// bin: they always fall in one session, so the session windows need only the bin's
    /// first and last). Returns false when the hour is older than the correction horizon
    /// (the caller reports it; it is counted nowhere).
    pub fn insert(
        &mut self,
        zone: &str,
        token: u64,
        first: DateTime<Utc>,
        last: DateTime<Utc>,
        lineage: Option<&Lineage>,
    ) -> bool {
        let hour = hour_of(first);
        if self.dropped_until.is_some_and(|d| hour <= d) {
            return false;
        }
        let zone = match self.zones.get(zone) {
            Some(z) => z.clone(),
            None => {
                let z: Arc<str> = Arc::from(zone);
                self.zones.insert(z.clone());
                z
            }
        };
        let key = (zone, token, hour);
        let mut corrections = self.sessions.insert(&key, first);
        if last != first {
            corrections.extend(self.sessions.insert(&key, last));
        }
        let (zone, ..) = key;
        let histogram = self.hours.entry((zone, hour)).or_default();
        if let Some(lineage) = lineage {
            histogram.lineage.merge(lineage);
        }
        for c in corrections {
            for replaced in &c.replaces {
                histogram.apply(replaced, -1);
            }
            histogram.apply(&c.session, 1);
        }
        true
    }

    /// Closes sessions up to `watermark`; returns every complete zone-hour that changed.
    pub fn advance(&mut self, watermark: DateTime<Utc>) -> Vec<DwellEmission> {
        for closed in self.sessions.advance(watermark) {
            let (zone, _, hour) = &closed.key;
            self.hours
                .entry((zone.clone(), *hour))
                .or_default()
                .apply(&closed.session, 1);
        }
        let mut out = Vec::new();
        for ((zone, hour), h) in self.hours.iter_mut() {
            let complete = *hour + Duration::hours(1) + self.gap <= watermark;
            if complete && h.dirty {
                h.dirty = false;
                out.push(DwellEmission {
                    zone: zone.to_string(),
                    hour: *hour,
                    summary: h.summary(),
                    lineage: h.lineage.clone(),
                });
            }
        }
        // An hour is kept for corrections for the horizon after it completed.
        let keep_after = watermark - Duration::hours(1) - self.gap - self.correction_horizon;
        self.hours.retain(|(_, hour), _| *hour > keep_after);
        self.dropped_until = Some(self.dropped_until.map_or(keep_after, |d| d.max(keep_after)));
        // A zone no session or hour holds any more is forgotten.
        self.zones.retain(|z| Arc::strong_count(z) > 1);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-11-28T{s}Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    fn op() -> DwellOperator {
        DwellOperator::new(Duration::minutes(10), Duration::hours(1))
    }

    /// One sighting.
    fn sight(d: &mut DwellOperator, zone: &str, token: &str, at: DateTime<Utc>) -> bool {
        d.insert(zone, crate::aggregate::token_key(token), at, at, None)
    }

    #[test]
    fn an_hour_is_summarised_once_its_sessions_closed() {
        let mut d = op();
        // a: 10:00-10:18 (18 min); b: 10:05 alone (0 min), then 10:40-10:47 (7 min);
        // c: 10:50-11:20 (sightings every 7 or 8 min), cut at 11:00 → 10:50-10:58 (8 min) in this hour.
        let sightings = [
            ("a", "10:00:00"),
            ("a", "10:09:00"),
            ("a", "10:18:00"),
            ("b", "10:05:00"),
            ("b", "10:40:00"),
            ("b", "10:47:00"),
            ("c", "10:50:00"),
            ("c", "10:58:00"),
            ("c", "11:05:00"),
            ("c", "11:12:00"),
            ("c", "11:20:00"),
        ];
        for (token, time) in sightings {
            assert!(sight(&mut d, "za-nord", token, t(time)));
        }
        // 11:09: the 10:00 hour is not complete until 11:10 (its last session may go on).
        assert!(d.advance(t("11:09:00")).is_empty());
        let rows = d.advance(t("11:10:00"));
        assert_eq!(rows.len(), 1);
        let s = rows[0].summary;
        assert_eq!(rows[0].hour, t("10:00:00"));
        assert_eq!(
            (
                s.sessions,
                s.under_5_min,
                s.from_5_to_15_min,
                s.from_15_to_30_min,
                s.from_30_to_60_min
            ),
            (4, 1, 2, 1, 0)
        );
        assert_eq!(s.total_seconds, (18 + 7 + 8) * 60);
        assert_eq!(s.median_minutes, 7);
        // Nothing changed: nothing emitted again.
        assert!(d.advance(t("11:15:00")).is_empty());
        // 11:00 hour: c 11:05-11:20 = 15 min.
        let next = d.advance(t("12:30:00"));
        assert_eq!(
            (next[0].hour, next[0].summary.from_15_to_30_min),
            (t("11:00:00"), 1)
        );
    }

    #[test]
    fn a_late_sighting_bridging_two_sessions_corrects_the_hour() {
        let mut d = op();
        for time in ["10:00:00", "10:08:00", "10:25:00", "10:30:00"] {
            sight(&mut d, "za", "a", t(time));
        }
        let first = d.advance(t("11:10:00"));
        assert_eq!(first[0].summary.sessions, 2);
        // 10:16 bridges 10:08 and 10:25: one session of 30 minutes.
        sight(&mut d, "za", "a", t("10:16:00"));
        let corrected = d.advance(t("11:11:00"));
        assert_eq!(corrected.len(), 1);
        assert_eq!(
            (
                corrected[0].summary.sessions,
                corrected[0].summary.from_30_to_60_min
            ),
            (1, 1)
        );
    }

    #[test]
    fn beyond_the_horizon_a_sighting_is_refused_not_miscounted() {
        let mut d = op();
        sight(&mut d, "za", "a", t("08:10:00"));
        d.advance(t("10:30:00"));
        assert!(!sight(&mut d, "za", "a", t("08:20:00")));
        assert!(sight(&mut d, "za", "a", t("10:20:00")));
    }

    /// What the stage feeds: per device and 5-minute bin, the first and last sighting.
    /// Seeded random sightings arriving up to five minutes out of order (the watermark 30 s
    /// behind the latest) give the same rows fed one by one or as bins.
    #[test]
    fn bins_of_first_and_last_sighting_give_the_same_rows_as_every_sighting() {
        use rand::{Rng, SeedableRng};
        for seed in 0..20u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let base = t("10:00:00");
            let mut sightings: Vec<(i64, u64, DateTime<Utc>)> = (0..600)
                .map(|_| {
                    let at = base + Duration::seconds(rng.random_range(0..3 * 3600));
                    let arrival = at.timestamp() + rng.random_range(0..300);
                    (arrival, rng.random_range(0..12u64), at)
                })
                .collect();
            sightings.sort();
            let (mut one_by_one, mut binned) = (op(), op());
            let (mut rows_a, mut rows_b) = (Vec::new(), Vec::new());
            let mut latest = base;
            for chunk in sightings.chunks(50) {
                let mut bins: BTreeMap<(u64, i64), (DateTime<Utc>, DateTime<Utc>)> =
                    BTreeMap::new();
                for &(_, token, at) in chunk {
                    assert!(one_by_one.insert("za", token, at, at, None));
                    let bin = bins
                        .entry((token, at.timestamp().div_euclid(300)))
                        .or_insert((at, at));
                    *bin = (bin.0.min(at), bin.1.max(at));
                    latest = latest.max(at);
                }
                for ((token, _), (first, last)) in bins {
                    assert!(binned.insert("za", token, first, last, None));
                }
                let watermark = latest - Duration::seconds(30);
                rows_a.extend(one_by_one.advance(watermark));
                rows_b.extend(binned.advance(watermark));
            }
            rows_a.extend(one_by_one.advance(base + Duration::hours(6)));
            rows_b.extend(binned.advance(base + Duration::hours(6)));
            assert!(rows_a.len() >= 3, "every hour emitted");
            assert_eq!(rows_a, rows_b, "seed {seed}");
        }
    }
}
