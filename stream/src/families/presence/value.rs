//! What a site's hour accumulates: visitors, AR check-ins, and check-ins per AR-trail point.

use std::collections::BTreeMap;

use crate::aggregate::Aggregate;

/// Visitors and AR check-ins (in total and per AR-trail point) of a site over a window.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Presence {
    pub visitors: i64,
    pub ar_checkins: i64,
    pub ar_points: BTreeMap<String, i64>,
}

/// What a site's hour amounts to: visitors, AR check-ins, check-ins per point.
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceValue {
    pub visitors: i64,
    pub ar_checkins: i64,
    pub ar_points: Vec<(String, i64)>,
}

/// Visitors, AR check-ins and a digest of the check-ins per point.
pub type PresenceDigest = (i64, i64, u64);

impl PresenceValue {
    /// What the emitted-rows index compares: the counts and a digest of the points.
    pub fn digest(&self) -> PresenceDigest {
        (
            self.visitors,
            self.ar_checkins,
            points_digest(&self.ar_points),
        )
    }
}

/// FNV-1a of `point=count;…`, the same in every process (unlike the std hasher).
pub fn points_digest(points: &[(String, i64)]) -> u64 {
    let mut h = vallee_schemas::digest::Fnv1a::default();
    for (point, count) in points {
        h.write(format!("{point}={count};").as_bytes());
    }
    h.finish()
}

impl Aggregate for Presence {
    /// (AR-trail point for a check-in, count)
    type Input = (Option<String>, i64);
    type Output = PresenceValue;
    fn add(&mut self, (point, count): &(Option<String>, i64)) {
        match point {
            Some(p) => {
                self.ar_checkins += count;
                *self.ar_points.entry(p.clone()).or_default() += count;
            }
            None => self.visitors += count,
        }
    }
    fn output(&self) -> PresenceValue {
        PresenceValue {
            visitors: self.visitors,
            ar_checkins: self.ar_checkins,
            ar_points: self
                .ar_points
                .iter()
                .map(|(p, n)| (p.clone(), *n))
                .collect(),
        }
    }
}
