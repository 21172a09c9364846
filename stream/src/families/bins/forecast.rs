//! Time-to-full of a bin: the fill rate since it was last emptied, and when it will reach
//! its threshold (the basis of "bins to collect before <time>").
//!
//! A bin does not fill at one rate: a market day, a weekend, the hours people take their
//! rubbish out. Each bin learns a [`WeekProfile`], its fill rate per hour of the week (UTC),
//! from every pair of readings without an emptying between them; once every hour of the
//! week was seen, time-to-full follows the profile hour by hour. Until then (a new bin, a
//! stage restarted less than a week ago: the profile lives in memory) it is the straight
//! line through the readings since the last emptying. `vallee bench forecast` measures
//! both on simulated weeks.

use chrono::{DateTime, Datelike, Duration, DurationRound, Timelike, Utc};
use vallee_schemas::tables::forecast::EMPTYING_DROP;

/// A bin's fill forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Fill rate, fraction per hour (least squares over the readings since the last drop).
    pub rate_per_hour: f64,
    /// When the level reaches the threshold at that rate (`None`: not filling).
    pub full_at: Option<DateTime<Utc>>,
    pub readings: usize,
}

/// Hours in a week: the profile's buckets, Monday 00:00 UTC first.
const WEEK_HOURS: usize = 7 * 24;

/// Hours of readings a bucket needs before its rate is trusted (two half-hourly pairs).
const MIN_BUCKET_HOURS: f64 = 0.9;

/// Hours a bucket remembers at most: beyond, old weeks weigh half (seasons change).
const BUCKET_MEMORY_HOURS: f64 = 4.0;

/// A gap between readings longer than this teaches nothing about one hour.
const MAX_LEARNING_GAP_H: f64 = 2.0;

/// How far ahead a profile forecast looks.
const HORIZON_HOURS: usize = 14 * 24;

/// A bin's fill rate for each hour of the week, learnt from its readings.
#[derive(Debug, Clone)]
pub struct WeekProfile {
    gained: Vec<f64>,
    hours: Vec<f64>,
}

impl Default for WeekProfile {
    fn default() -> Self {
        WeekProfile {
            gained: vec![0.0; WEEK_HOURS],
            hours: vec![0.0; WEEK_HOURS],
        }
    }
}

fn hour_of_week(t: DateTime<Utc>) -> usize {
    t.weekday().num_days_from_monday() as usize * 24 + t.hour() as usize
}

impl WeekProfile {
    /// The level went from one reading at `from` to the next at `to` by `gained`.
    pub fn learn(&mut self, from: DateTime<Utc>, to: DateTime<Utc>, gained: f64) {
        let hours = (to - from).num_seconds() as f64 / 3600.0;
        if hours <= 0.0 || hours > MAX_LEARNING_GAP_H {
            return;
        }
        let b = hour_of_week(from);
        self.gained[b] += gained;
        self.hours[b] += hours;
        if self.hours[b] > BUCKET_MEMORY_HOURS {
            self.gained[b] /= 2.0;
            self.hours[b] /= 2.0;
        }
    }

    /// The fill rate (fraction per hour) of an hour of the week, once seen enough.
    fn rate(&self, bucket: usize) -> Option<f64> {
        (self.hours[bucket] >= MIN_BUCKET_HOURS)
            .then(|| (self.gained[bucket] / self.hours[bucket]).max(0.0))
    }

    /// Whether every hour of the week was seen enough.
    pub fn complete(&self) -> bool {
        (0..WEEK_HOURS).all(|b| self.rate(b).is_some())
    }

    /// When a bin at `level` at `at` reaches `threshold`, filling as the profile says
    /// (`None`: not within two weeks, or the profile is not complete).
    pub fn full_at(&self, at: DateTime<Utc>, level: f64, threshold: f64) -> Option<DateTime<Utc>> {
        if level >= threshold {
            return Some(at);
        }
        let (mut t, mut level) = (at, level);
        for _ in 0..=HORIZON_HOURS {
            let rate = self.rate(hour_of_week(t))?;
            let next = t.duration_trunc(Duration::hours(1)).ok()? + Duration::hours(1);
            let hours = (next - t).num_seconds() as f64 / 3600.0;
            if rate > 0.0 && level + rate * hours >= threshold {
                return Some(t + Duration::seconds(((threshold - level) / rate * 3600.0) as i64));
            }
            level += rate * hours;
            t = next;
        }
        None
    }
}

/// Readings of one bin since its last emptying, and its week profile.
#[derive(Debug, Clone)]
pub struct FillTrend {
    points: Vec<(DateTime<Utc>, f64)>,
    profile: WeekProfile,
    /// Whether time-to-full follows the profile once complete (`false`: the straight line
    /// only, the reference `vallee bench forecast` compares with).
    use_profile: bool,
}

impl Default for FillTrend {
    fn default() -> Self {
        FillTrend {
            points: Vec::new(),
            profile: WeekProfile::default(),
            use_profile: true,
        }
    }
}

impl FillTrend {
    /// A trend that forecasts with the straight line only.
    pub fn linear() -> Self {
        FillTrend {
            use_profile: false,
            ..Default::default()
        }
    }

    /// Adds a reading (in time order) and returns the forecast against `threshold`, once
    /// two readings at least a minute apart are known.
    pub fn on_reading(
        &mut self,
        at: DateTime<Utc>,
        level: f64,
        threshold: f64,
    ) -> Option<Forecast> {
        if let Some(&(last_t, last)) = self.points.last() {
            if at < last_t {
                return None;
            }
            if last - level > EMPTYING_DROP {
                self.points.clear();
            } else {
                self.profile.learn(last_t, at, level - last);
            }
        }
        self.points.push((at, level));
        let first = self.points.first()?.0;
        if self.points.len() < 2 || (at - first) < Duration::minutes(1) {
            return None;
        }
        let n = self.points.len() as f64;
        // Hours since the first point, computed where needed: nothing allocated per reading
        // (this runs for every bin reading, on the stage's thread).
        let hours = |t: &DateTime<Utc>| (*t - first).num_seconds() as f64 / 3600.0;
        let (mx, my) = (
            self.points.iter().map(|(t, _)| hours(t)).sum::<f64>() / n,
            self.points.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let sxy: f64 = self
            .points
            .iter()
            .map(|(t, y)| (hours(t) - mx) * (y - my))
            .sum();
        let sxx: f64 = self
            .points
            .iter()
            .map(|(t, _)| (hours(t) - mx).powi(2))
            .sum();
        let rate = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        let full_at = if level >= threshold {
            Some(at)
        } else if self.use_profile && self.profile.complete() {
            self.profile.full_at(at, level, threshold)
        } else if rate > 1e-6 {
            Some(at + Duration::seconds(((threshold - level) / rate * 3600.0) as i64))
        } else {
            None
        };
        Some(Forecast {
            rate_per_hour: rate,
            full_at,
            readings: self.points.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T06:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + Duration::hours(h)
    }

    #[test]
    fn a_steady_bin_is_full_when_the_line_says() {
        let mut f = FillTrend::default();
        assert_eq!(f.on_reading(t(0), 0.10, 0.8), None);
        let fc = f.on_reading(t(1), 0.15, 0.8).unwrap();
        assert!((fc.rate_per_hour - 0.05).abs() < 1e-9);
        let fc = f.on_reading(t(2), 0.20, 0.8).unwrap();
        // 0.6 to go at 0.05 per hour: 12 hours after 08:00.
        assert_eq!(fc.full_at, Some(t(14)));
        assert_eq!(fc.readings, 3);
    }

    #[test]
    fn a_complete_week_profile_forecasts_the_slow_days_and_the_busy_saturday() {
        // 2026-11-28 is a Saturday. A bin filling 0.02 an hour, 0.10 on Saturdays, read
        // every half hour for two weeks and emptied each time it passes 0.6.
        let monday = t(-12 * 24 - 6);
        let rate = |at: DateTime<Utc>| {
            if at.weekday() == chrono::Weekday::Sat {
                0.10
            } else {
                0.02
            }
        };
        let mut f = FillTrend::default();
        let (mut level, mut at) = (0.0, monday);
        while at < monday + Duration::days(14) {
            f.on_reading(at, level, 0.8);
            level += rate(at) / 2.0;
            if level > 0.6 {
                level = 0.0;
            }
            at += Duration::minutes(30);
        }
        assert!(f.profile.complete());
        let near = |got: Option<DateTime<Utc>>, want: DateTime<Utc>| {
            got.is_some_and(|g| (g - want).num_seconds().abs() <= 60)
        };
        // Monday 00:00 at 0.2: 0.6 to go at 0.02 an hour is 30 h, Tuesday 06:00.
        let monday_again = monday + Duration::days(14);
        let full = f.profile.full_at(monday_again, 0.2, 0.8);
        assert!(near(full, monday_again + Duration::hours(30)), "{full:?}");
        // Friday 20:00 at 0.5: 4 h to midnight (0.08), then 0.22 at 0.10 an hour, 2.2 h.
        let friday = monday_again + Duration::days(4) + Duration::hours(20);
        let full = f.profile.full_at(friday, 0.5, 0.8);
        let want = friday + Duration::hours(4) + Duration::minutes(132);
        assert!(near(full, want), "{full:?}");
        // Its readings that Friday evening say the same through the trend; the straight
        // line sees 0.02 an hour and expects it Saturday 11:00, long after it overflowed.
        let mut line = FillTrend::linear();
        for trend in [&mut f, &mut line] {
            trend.on_reading(friday - Duration::hours(1), 0.48, 0.8);
        }
        let profiled = f.on_reading(friday, 0.5, 0.8).and_then(|x| x.full_at);
        assert!(near(profiled, want), "{profiled:?}");
        let straight = line.on_reading(friday, 0.5, 0.8).and_then(|x| x.full_at);
        assert!(near(straight, friday + Duration::hours(15)), "{straight:?}");
        // No profile yet: nothing from it, the line answers instead.
        assert_eq!(WeekProfile::default().full_at(friday, 0.5, 0.8), None);
    }

    #[test]
    fn an_emptying_starts_the_trend_over_and_a_flat_bin_never_fills() {
        let mut f = FillTrend::default();
        f.on_reading(t(0), 0.5, 0.8);
        f.on_reading(t(1), 0.7, 0.8);
        assert_eq!(
            f.on_reading(t(2), 0.05, 0.8),
            None,
            "emptied: one reading in the new trend"
        );
        let fc = f.on_reading(t(3), 0.05, 0.8).unwrap();
        assert_eq!((fc.rate_per_hour, fc.full_at), (0.0, None));
        let fc = f.on_reading(t(4), 0.9, 0.8).unwrap();
        assert_eq!(
            fc.full_at,
            Some(t(4)),
            "already above the threshold: full now"
        );
    }
}
