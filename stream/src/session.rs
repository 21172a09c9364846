//! Session windows: a key's activity separated by gaps longer than `gap` (dwell time of a
//! device in a zone).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

/// One session of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// First event.
    pub start: DateTime<Utc>,
    /// Last event.
    pub end: DateTime<Utc>,
    pub events: u64,
}

impl Session {
    pub fn dwell(&self) -> Duration {
        self.end - self.start
    }

    fn touches(&self, t: DateTime<Utc>, gap: Duration) -> bool {
        t >= self.start - gap && t <= self.end + gap
    }

    fn absorb(&mut self, other: &Session) {
        self.start = self.start.min(other.start);
        self.end = self.end.max(other.end);
        self.events += other.events;
    }
}

/// A closed session, or the correction of one.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEmission<K> {
    pub key: K,
    pub session: Session,
    /// 0 when first closed; higher when a late row extended it.
    pub revision: u32,
    /// Sessions this row replaces (a late row bridged them into this one): their earlier
    /// rows are superseded.
    pub replaces: Vec<Session>,
}

/// Keyed session windows closed by the watermark, with late-row corrections.
#[derive(Debug, Clone)]
pub struct SessionOperator<K> {
    gap: Duration,
    correction_horizon: Duration,
    open: BTreeMap<K, Vec<Session>>,
    closed: BTreeMap<K, Vec<(Session, u32)>>,
    closed_until: Option<DateTime<Utc>>,
}

impl<K: Ord + Clone> SessionOperator<K> {
    pub fn new(gap: Duration, correction_horizon: Duration) -> Self {
        SessionOperator {
            gap,
            correction_horizon,
            open: BTreeMap::new(),
            closed: BTreeMap::new(),
            closed_until: None,
        }
    }

    /// Adds an event of `key` at `t`; returns corrections when it lands in closed territory.
    pub fn insert(&mut self, key: &K, t: DateTime<Utc>) -> Vec<SessionEmission<K>> {
        let point = Session {
            start: t,
            end: t,
            events: 1,
        };
        let late = self.closed_until.is_some_and(|c| t + self.gap <= c);
        if !late {
            let sessions = match self.open.get_mut(key) {
                Some(s) => s,
                None => self.open.entry(key.clone()).or_default(),
            };
            let mut merged = point;
            sessions.retain(|s| {
                if s.touches(t, self.gap) {
                    merged.absorb(s);
                    false
                } else {
                    true
                }
            });
            sessions.push(merged);
            return Vec::new();
        }
        // Late: merge with the closed sessions it touches and emit the corrected session.
        let closed = self.closed.entry(key.clone()).or_default();
        let mut merged = point;
        let mut revision = 0;
        let mut replaces = Vec::new();
        closed.retain(|(s, r)| {
            if s.touches(t, self.gap) {
                merged.absorb(s);
                revision = revision.max(*r + 1);
                replaces.push(*s);
                false
            } else {
                true
            }
        });
        closed.push((merged, revision));
        vec![SessionEmission {
            key: key.clone(),
            session: merged,
            revision,
            replaces,
        }]
    }

    /// Closes sessions whose last event is more than `gap` before `watermark`.
    pub fn advance(&mut self, watermark: DateTime<Utc>) -> Vec<SessionEmission<K>> {
        let closed_until = self.closed_until.map_or(watermark, |c| c.max(watermark));
        self.closed_until = Some(closed_until);
        let mut out = Vec::new();
        for (key, sessions) in self.open.iter_mut() {
            sessions.retain(|s| {
                if s.end + self.gap <= closed_until {
                    out.push(SessionEmission {
                        key: key.clone(),
                        session: *s,
                        revision: 0,
                        replaces: Vec::new(),
                    });
                    self.closed.entry(key.clone()).or_default().push((*s, 0));
                    false
                } else {
                    true
                }
            });
        }
        self.open.retain(|_, s| !s.is_empty());
        let horizon = self.correction_horizon + self.gap;
        for sessions in self.closed.values_mut() {
            sessions.retain(|(s, _)| s.end + horizon > closed_until);
        }
        self.closed.retain(|_, s| !s.is_empty());
        out
    }

    /// Sessions still open (for the live view).
    pub fn open_sessions(&self) -> impl Iterator<Item = (&K, &Session)> {
        self.open
            .iter()
            .flat_map(|(k, s)| s.iter().map(move |s| (k, s)))
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

    fn op() -> SessionOperator<&'static str> {
        SessionOperator::new(Duration::minutes(10), Duration::hours(2))
    }

    #[test]
    fn events_closer_than_the_gap_form_one_session() {
        let mut s = op();
        for time in ["09:00:00", "09:08:00", "09:15:00", "09:40:00"] {
            assert!(s.insert(&"token-a", t(time)).is_empty());
        }
        let closed = s.advance(t("09:30:00"));
        assert_eq!(closed.len(), 1);
        assert_eq!(
            (
                closed[0].session.start,
                closed[0].session.end,
                closed[0].session.events
            ),
            (t("09:00:00"), t("09:15:00"), 3)
        );
        assert_eq!(closed[0].session.dwell(), Duration::minutes(15));
        assert_eq!(s.open_sessions().count(), 1);
        assert_eq!(s.advance(t("09:50:00")).len(), 1);
    }

    #[test]
    fn an_out_of_order_event_bridges_two_open_sessions() {
        let mut s = op();
        s.insert(&"k", t("09:00:00"));
        s.insert(&"k", t("09:18:00"));
        assert_eq!(s.open_sessions().count(), 2);
        s.insert(&"k", t("09:09:00"));
        assert_eq!(s.open_sessions().count(), 1);
        let closed = s.advance(t("10:00:00"));
        assert_eq!(
            (closed[0].session.start, closed[0].session.end),
            (t("09:00:00"), t("09:18:00"))
        );
    }

    #[test]
    fn a_late_event_corrects_the_closed_session_it_extends() {
        let mut s = op();
        s.insert(&"k", t("09:00:00"));
        s.insert(&"k", t("09:05:00"));
        assert_eq!(s.advance(t("09:30:00")).len(), 1);
        let c = s.insert(&"k", t("09:12:00"));
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].session.end, c[0].session.events, c[0].revision),
            (t("09:12:00"), 3, 1)
        );
        assert_eq!(c[0].replaces[0].end, t("09:05:00"));
    }
}
