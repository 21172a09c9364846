//! The keyed window operator: bins by window, closes on the watermark, corrects late rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use crate::aggregate::Aggregate;
use crate::lineage::Lineage;
use crate::window::{Window, WindowKind};

/// One result row of a window for a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Emission<K, O> {
    pub key: K,
    pub window: Window,
    pub value: O,
    /// 0 for the first emitted row of (key, window), then 1, 2… for corrections.
    pub revision: u32,
    /// True once the watermark passed the window's end (early results are not final).
    pub is_final: bool,
    /// The records that fed the window (empty when rows were inserted without a source).
    pub lineage: Lineage,
}

/// What inserting a row did.
#[derive(Debug, Clone, PartialEq)]
pub struct Inserted<K, O> {
    /// Corrected rows for windows that had already closed.
    pub corrections: Vec<Emission<K, O>>,
    /// The row fell in windows whose state was already dropped (older than the correction
    /// horizon): the caller must keep the row elsewhere, never drop it silently.
    pub too_late: bool,
}

/// A window's state for one key.
#[derive(Debug, Clone, Default)]
struct Slot<A> {
    acc: A,
    lineage: Lineage,
    /// The last revision emitted (closed windows only).
    revision: u32,
}

impl<A: Aggregate> Slot<A> {
    fn add(&mut self, input: &A::Input, lineage: Option<&Lineage>) {
        self.acc.add(input);
        if let Some(lineage) = lineage {
            self.lineage.merge(lineage);
        }
    }

    fn emission<K>(&self, key: K, window: Window, is_final: bool) -> Emission<K, A::Output> {
        Emission {
            key,
            window,
            value: self.acc.output(),
            revision: self.revision,
            is_final,
            lineage: self.lineage.clone(),
        }
    }
}

/// A keyed tumbling or hopping window operator.
#[derive(Debug, Clone)]
pub struct WindowOperator<K, A> {
    kind: WindowKind,
    /// How long (event time, past a window's end) a closed window's state is kept to
    /// correct it when late rows come.
    correction_horizon: Duration,
    open: BTreeMap<Window, BTreeMap<K, Slot<A>>>,
    closed: BTreeMap<Window, BTreeMap<K, Slot<A>>>,
    /// Every window ending at or before this is closed (the highest watermark seen: a
    /// closed window never reopens, even if a stream's watermark moves back).
    closed_until: Option<DateTime<Utc>>,
}

impl<K: Ord + Clone, A: Aggregate> WindowOperator<K, A> {
    pub fn new(kind: WindowKind, correction_horizon: Duration) -> Self {
        WindowOperator {
            kind,
            correction_horizon,
            open: BTreeMap::new(),
            closed: BTreeMap::new(),
            closed_until: None,
        }
    }

    pub fn kind(&self) -> WindowKind {
        self.kind
    }

    fn is_closed(&self, w: &Window) -> bool {
        self.closed_until.is_some_and(|c| w.end <= c)
    }

    /// Whether a row of event time `t` would fall in a window whose state was already
    /// dropped (closed longer than the correction horizon ago): [`Self::insert`] would
    /// report it `too_late`. Nothing allocated for a row on time.
    pub fn refuses(&self, t: DateTime<Utc>) -> bool {
        let Some(closed_until) = self.closed_until else {
            return false;
        };
        // Every window of `t` ends after `t`: kept while `t` is within the horizon.
        if t + self.correction_horizon >= closed_until {
            return false;
        }
        self.kind
            .windows_of(t)
            .iter()
            .any(|w| w.end + self.correction_horizon <= closed_until)
    }

    /// Adds a row (or a partial aggregate) with event time `t` for `key`, computed from
    /// the records of `lineage`.
    pub fn insert(
        &mut self,
        key: &K,
        t: DateTime<Utc>,
        input: &A::Input,
        lineage: Option<&Lineage>,
    ) -> Inserted<K, A::Output> {
        let mut inserted = Inserted {
            corrections: Vec::new(),
            too_late: false,
        };
        for window in self.kind.windows_of(t) {
            if !self.is_closed(&window) {
                let keys = self.open.entry(window).or_default();
                let slot = match keys.get_mut(key) {
                    Some(slot) => slot,
                    None => keys.entry(key.clone()).or_default(),
                };
                slot.add(input, lineage);
                continue;
            }
            let horizon_passed = self
                .closed_until
                .is_some_and(|c| window.end + self.correction_horizon <= c);
            if horizon_passed {
                inserted.too_late = true;
                continue;
            }
            let keys = self.closed.entry(window).or_default();
            let slot = match keys.get_mut(key) {
                Some(slot) => {
                    slot.revision += 1;
                    slot
                }
                // The key had no row in this window: its first row, final at once.
                None => keys.entry(key.clone()).or_default(),
            };
            slot.add(input, lineage);
            inserted
                .corrections
                .push(slot.emission(key.clone(), window, true));
        }
        inserted
    }

    /// Closes every window ending at or before `watermark`, returning their final rows,
    /// and drops closed state older than the correction horizon.
    pub fn advance(&mut self, watermark: DateTime<Utc>) -> Vec<Emission<K, A::Output>> {
        let closed_until = self.closed_until.map_or(watermark, |c| c.max(watermark));
        self.closed_until = Some(closed_until);
        let mut out = Vec::new();
        while let Some(entry) = self.open.first_entry() {
            if entry.key().end > closed_until {
                break;
            }
            let (window, keys) = entry.remove_entry();
            for (key, slot) in &keys {
                out.push(slot.emission(key.clone(), window, true));
            }
            self.closed.insert(window, keys);
        }
        let horizon = self.correction_horizon;
        self.closed.retain(|w, _| w.end + horizon > closed_until);
        out
    }

    /// Current values of the open windows (early results for the live view).
    pub fn early_results(&self) -> Vec<Emission<K, A::Output>> {
        self.open
            .iter()
            .flat_map(|(window, keys)| {
                keys.iter()
                    .map(|(key, slot)| slot.emission(key.clone(), *window, false))
            })
            .collect()
    }

    /// Windows held in memory (open and closed), to bound state.
    pub fn windows_held(&self) -> usize {
        self.open.len() + self.closed.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::aggregate::{DistinctCount, Sum, token_key};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn five_minutes() -> WindowOperator<String, DistinctCount> {
        WindowOperator::new(
            WindowKind::Tumbling {
                size: Duration::minutes(5),
            },
            Duration::hours(1),
        )
    }

    #[test]
    fn a_window_closes_when_the_watermark_passes_its_end() {
        let mut op = five_minutes();
        let zone = "za-nord".to_string();
        for (time, token) in [
            ("10:00:10", "a"),
            ("10:01:00", "b"),
            ("10:04:59", "a"),
            ("10:05:00", "c"),
        ] {
            let r = op.insert(
                &zone,
                t(&format!("2026-11-28T{time}Z")),
                &token_key(token),
                None,
            );
            assert!(r.corrections.is_empty() && !r.too_late);
        }
        // Early results: both windows open, visible before they close.
        let early = op.early_results();
        assert_eq!(
            early
                .iter()
                .map(|e| (e.value, e.is_final))
                .collect::<Vec<_>>(),
            vec![(2, false), (1, false)]
        );
        assert!(op.advance(t("2026-11-28T10:04:59Z")).is_empty());
        let done = op.advance(t("2026-11-28T10:05:00Z"));
        assert_eq!(done.len(), 1);
        assert_eq!(
            (done[0].value, done[0].revision, done[0].is_final),
            (2, 0, true)
        );
        assert_eq!(done[0].window.start, t("2026-11-28T10:00:00Z"));
    }

    #[test]
    fn a_late_row_for_a_closed_window_produces_a_correction() {
        let mut op = five_minutes();
        let zone = "za-sud".to_string();
        op.insert(&zone, t("2026-11-28T10:01:00Z"), &token_key("a"), None);
        assert_eq!(op.advance(t("2026-11-28T10:06:00Z"))[0].value, 1);
        let r = op.insert(&zone, t("2026-11-28T10:02:00Z"), &token_key("b"), None);
        assert_eq!(r.corrections.len(), 1);
        assert_eq!((r.corrections[0].value, r.corrections[0].revision), (2, 1));
        // The same token again changes nothing in a distinct count but is still a revision.
        let r = op.insert(&zone, t("2026-11-28T10:03:00Z"), &token_key("b"), None);
        assert_eq!((r.corrections[0].value, r.corrections[0].revision), (2, 2));
        // A key new to a closed window gets its first row, final.
        let r = op.insert(
            &"za-est".to_string(),
            t("2026-11-28T10:03:00Z"),
            &token_key("z"),
            None,
        );
        assert_eq!((r.corrections[0].value, r.corrections[0].revision), (1, 0));
        // A watermark moving back does not reopen the window.
        op.advance(t("2026-11-28T09:00:00Z"));
        assert_eq!(
            op.insert(&zone, t("2026-11-28T10:04:00Z"), &token_key("c"), None)
                .corrections[0]
                .revision,
            3
        );
    }

    #[test]
    fn a_window_row_names_the_offsets_that_fed_it() {
        let mut topics = crate::lineage::Topics::default();
        let mut op = five_minutes();
        let zone = "za".to_string();
        for (p, offset, time) in [(0, 40, "10:01:00"), (1, 7, "10:02:00"), (0, 42, "10:03:00")] {
            let source = topics.source("vallee.beacons", p, offset);
            op.insert(
                &zone,
                t(&format!("2026-11-28T{time}Z")),
                &token_key("a"),
                Some(&crate::lineage::Lineage::of(&source)),
            );
        }
        // A row of the next window is not in this window's lineage.
        let next = topics.source("vallee.beacons", 0, 43);
        op.insert(
            &zone,
            t("2026-11-28T10:06:00Z"),
            &token_key("b"),
            Some(&crate::lineage::Lineage::of(&next)),
        );
        let closed = op.advance(t("2026-11-28T10:05:00Z"));
        let ranges: Vec<_> = closed[0].lineage.ranges().collect();
        assert_eq!(
            ranges,
            vec![("vallee.beacons", 0, 40, 42), ("vallee.beacons", 1, 7, 7)]
        );
        // A correction extends the lineage with the late row.
        let late = topics.source("vallee.beacons", 2, 99);
        let r = op.insert(
            &zone,
            t("2026-11-28T10:04:00Z"),
            &token_key("c"),
            Some(&crate::lineage::Lineage::of(&late)),
        );
        assert_eq!(r.corrections[0].lineage.ranges().count(), 3);
    }

    #[test]
    fn beyond_the_correction_horizon_a_row_is_reported_too_late_not_dropped() {
        let mut op = five_minutes();
        let zone = "za".to_string();
        op.insert(&zone, t("2026-11-28T10:01:00Z"), &token_key("a"), None);
        op.advance(t("2026-11-28T11:05:00Z"));
        assert_eq!(
            op.windows_held(),
            0,
            "state older than the horizon is dropped"
        );
        // Told before the insert, as the stage judges each event on arrival.
        assert!(op.refuses(t("2026-11-28T10:02:00Z")));
        assert!(!op.refuses(t("2026-11-28T10:06:00Z")), "its window is kept");
        let r = op.insert(&zone, t("2026-11-28T10:02:00Z"), &token_key("b"), None);
        assert!(r.too_late && r.corrections.is_empty());
        let r = op.insert(&zone, t("2026-11-28T10:06:00Z"), &token_key("b"), None);
        assert!(!r.too_late && r.corrections.len() == 1);
    }

    #[test]
    fn hopping_windows_count_a_row_in_every_window_covering_it() {
        let mut op: WindowOperator<&str, Sum> = WindowOperator::new(
            WindowKind::Hopping {
                size: Duration::minutes(10),
                slide: Duration::minutes(5),
            },
            Duration::hours(1),
        );
        op.insert(&"abbaye", t("2026-11-28T10:07:00Z"), &3, None);
        op.insert(&"abbaye", t("2026-11-28T10:12:00Z"), &4, None);
        let rows = op.advance(t("2026-11-28T10:20:00Z"));
        let got: Vec<(String, i64)> = rows
            .iter()
            .map(|e| (e.window.start.format("%H:%M").to_string(), e.value))
            .collect();
        assert_eq!(
            got,
            vec![
                ("10:00".into(), 3),
                ("10:05".into(), 7),
                ("10:10".into(), 4)
            ]
        );
    }

    /// Seeded random streams, out of order within the allowed lateness, through the operator
    /// must equal a plain batch GROUP BY over the same rows once every window closed.
    #[test]
    fn streaming_equals_a_batch_group_by() {
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed);
            let base = t("2026-11-28T08:00:00Z");
            let lateness = Duration::minutes(2);
            let mut op: WindowOperator<u8, DistinctCount> = WindowOperator::new(
                WindowKind::Tumbling {
                    size: Duration::minutes(5),
                },
                Duration::hours(6),
            );
            let mut batch: BTreeMap<(u8, DateTime<Utc>), std::collections::BTreeSet<String>> =
                BTreeMap::new();
            let mut streamed: BTreeMap<(u8, DateTime<Utc>), (i64, u32)> = BTreeMap::new();
            let mut max_seen = base;
            for i in 0..3_000 {
                let clock = base + Duration::seconds(i);
                let t_ev = clock - Duration::seconds(rng.random_range(0..lateness.num_seconds()));
                let key = rng.random_range(0..3u8);
                let token = format!("{:x}", rng.random_range(0..200u32));
                max_seen = max_seen.max(t_ev);
                for e in op.insert(&key, t_ev, &token_key(&token), None).corrections {
                    streamed.insert((e.key, e.window.start), (e.value, e.revision));
                }
                batch
                    .entry((
                        key,
                        WindowKind::Tumbling {
                            size: Duration::minutes(5),
                        }
                        .windows_of(t_ev)[0]
                            .start,
                    ))
                    .or_default()
                    .insert(token);
                if i % 37 == 0 {
                    for e in op.advance(max_seen - lateness) {
                        streamed.insert((e.key, e.window.start), (e.value, e.revision));
                    }
                }
            }
            for e in op.advance(max_seen + Duration::hours(1)) {
                streamed.insert((e.key, e.window.start), (e.value, e.revision));
            }
            let expected: BTreeMap<(u8, DateTime<Utc>), i64> = batch
                .into_iter()
                .map(|(k, v)| (k, v.len() as i64))
                .collect();
            let got: BTreeMap<(u8, DateTime<Utc>), i64> =
                streamed.iter().map(|(k, (v, _))| (*k, *v)).collect();
            assert_eq!(got, expected, "seed {seed}");
            // Rows out of order only within the lateness never needed a correction.
            assert!(
                streamed.values().all(|(_, revision)| *revision == 0),
                "seed {seed}"
            );
        }
    }
}
