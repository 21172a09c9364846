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

use chrono::{DateTime, Duration, Utc};
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
    /// Buckets seen enough. A bucket's hours only grow, or halve from above
    /// [`BUCKET_MEMORY_HOURS`], so a trusted bucket stays trusted: counted once, not
    /// looked over at every reading.
    trusted: usize,
}

impl Default for WeekProfile {
    fn default() -> Self {
        WeekProfile {
            gained: vec![0.0; WEEK_HOURS],
            hours: vec![0.0; WEEK_HOURS],
            trusted: 0,
        }
    }
}

/// The hour of the week (Monday 00:00 UTC is 0) of a time in seconds since the epoch, a
/// Thursday: integer arithmetic, for the forecast's hour-by-hour walk.
fn hour_of_week(unix_seconds: i64) -> usize {
    (unix_seconds.div_euclid(3600) + 3 * 24).rem_euclid(WEEK_HOURS as i64) as usize
}

impl WeekProfile {
    /// The level went from one reading at `from` to the next at `to` by `gained`.
    pub fn learn(&mut self, from: DateTime<Utc>, to: DateTime<Utc>, gained: f64) {
        let hours = (to - from).num_seconds() as f64 / 3600.0;
        if hours <= 0.0 || hours > MAX_LEARNING_GAP_H {
            return;
        }
        let b = hour_of_week(from.timestamp());
        let was_trusted = self.hours[b] >= MIN_BUCKET_HOURS;
        self.gained[b] += gained;
        self.hours[b] += hours;
        if self.hours[b] > BUCKET_MEMORY_HOURS {
            self.gained[b] /= 2.0;
            self.hours[b] /= 2.0;
        }
        if !was_trusted && self.hours[b] >= MIN_BUCKET_HOURS {
            self.trusted += 1;
        }
    }

    /// The fill rate (fraction per hour) of an hour of the week, once seen enough.
    fn rate(&self, bucket: usize) -> Option<f64> {
        (self.hours[bucket] >= MIN_BUCKET_HOURS)
            .then(|| (self.gained[bucket] / self.hours[bucket]).max(0.0))
    }

    /// Whether every hour of the week was seen enough.
    pub fn complete(&self) -> bool {
        self.trusted == WEEK_HOURS
    }

    /// When a bin at `level` at `at` reaches `threshold`, filling as the profile says
    /// (`None`: not within two weeks, or the profile is not complete).
    pub fn full_at(&self, at: DateTime<Utc>, level: f64, threshold: f64) -> Option<DateTime<Utc>> {
        if level >= threshold {
            return Some(at);
        }
        // Walked hour by hour in whole seconds (this runs for every reading of a bin
        // whose profile is complete).
        let (mut t, mut level) = (at.timestamp(), level);
        for _ in 0..=HORIZON_HOURS {
            let rate = self.rate(hour_of_week(t))?;
            let next = (t.div_euclid(3600) + 1) * 3600;
            let hours = (next - t) as f64 / 3600.0;
            if rate > 0.0 && level + rate * hours >= threshold {
                let seconds = ((threshold - level) / rate * 3600.0) as i64;
                return Some(at + Duration::seconds(t - at.timestamp() + seconds));
            }
            level += rate * hours;
            t = next;
        }
        None
    }
}

/// Readings of one bin since its last emptying, as the sums a least-squares line needs
/// (kept up to date per reading: the line is not refitted over every point), and its
/// week profile.
#[derive(Debug, Clone)]
pub struct FillTrend {
    /// The first reading since the last emptying: hours are counted from it.
    first: Option<DateTime<Utc>>,
    last: Option<(DateTime<Utc>, f64)>,
    readings: usize,
    /// Running means of hours and levels, and the co-moment and moment around them
    /// (Welford's updates: no cancellation over long runs).
    mean_hours: f64,
    mean_level: f64,
    co_moment: f64,
    moment: f64,
    profile: WeekProfile,
    /// Whether time-to-full follows the profile once complete (`false`: the straight line
    /// only, the reference `vallee bench forecast` compares with).
    use_profile: bool,
}

impl Default for FillTrend {
    fn default() -> Self {
        FillTrend {
            first: None,
            last: None,
            readings: 0,
            mean_hours: 0.0,
            mean_level: 0.0,
            co_moment: 0.0,
            moment: 0.0,
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

    /// Forgets the readings (an emptying); the profile stays.
    fn start_over(&mut self) {
        self.first = None;
        self.readings = 0;
        self.mean_hours = 0.0;
        self.mean_level = 0.0;
        self.co_moment = 0.0;
        self.moment = 0.0;
    }

    /// Adds a reading (in time order) and returns the forecast against `threshold`, once
    /// two readings at least a minute apart are known.
    pub fn on_reading(
        &mut self,
        at: DateTime<Utc>,
        level: f64,
        threshold: f64,
    ) -> Option<Forecast> {
        if let Some((last_t, last)) = self.last {
            if at < last_t {
                return None;
            }
            if last - level > EMPTYING_DROP {
                self.start_over();
            } else {
                self.profile.learn(last_t, at, level - last);
            }
        }
        self.last = Some((at, level));
        let first = *self.first.get_or_insert(at);
        let hours = (at - first).num_seconds() as f64 / 3600.0;
        self.readings += 1;
        let n = self.readings as f64;
        let dx = hours - self.mean_hours;
        self.mean_hours += dx / n;
        self.mean_level += (level - self.mean_level) / n;
        self.co_moment += dx * (level - self.mean_level);
        self.moment += dx * (hours - self.mean_hours);
        if self.readings < 2 || (at - first) < Duration::minutes(1) {
            return None;
        }
        let rate = if self.moment > 0.0 {
            self.co_moment / self.moment
        } else {
            0.0
        };
        let full_at = if level >= threshold {
            Some(at)
        } else if self.use_profile && self.profile.complete() {
            self.profile.full_at(at, level, threshold)
        } else if rate > 1e-6 {
            Some(at + Duration::seconds(((threshold - level) / rate * 3600.0).round() as i64))
        } else {
            None
        };
        Some(Forecast {
            rate_per_hour: rate,
            full_at,
            readings: self.readings,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, Timelike};

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
    fn the_running_line_is_the_least_squares_line_over_every_reading() {
        // Irregular readings over three days, levels with noise: the rate kept up per
        // reading is the slope a fit over all the points gives.
        let mut f = FillTrend::linear();
        let mut points = Vec::new();
        let mut at = t(0);
        for i in 0..400_i64 {
            let level = 0.05 + 0.001 * i as f64 + 0.01 * ((i * 7919) % 13) as f64 / 13.0;
            points.push(((at - t(0)).num_seconds() as f64 / 3600.0, level));
            let got = f.on_reading(at, level, 2.0);
            if points.len() >= 2 {
                let n = points.len() as f64;
                let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
                let my = points.iter().map(|p| p.1).sum::<f64>() / n;
                let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
                let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
                let fc = got.unwrap();
                assert!((fc.rate_per_hour - sxy / sxx).abs() < 1e-9, "reading {i}");
                assert_eq!(fc.readings, points.len());
            }
            at += Duration::seconds(300 + (i * 37) % 900);
        }
    }

    #[test]
    fn the_hour_of_the_week_is_chronos() {
        let mut at = t(-200);
        for _ in 0..400 {
            let want = at.weekday().num_days_from_monday() as usize * 24 + at.hour() as usize;
            assert_eq!(hour_of_week(at.timestamp()), want, "{at}");
            at += Duration::minutes(61);
        }
        let before_1970 = DateTime::parse_from_rfc3339("1969-12-29T05:30:00Z").unwrap();
        assert_eq!(hour_of_week(before_1970.timestamp()), 5, "a Monday");
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
