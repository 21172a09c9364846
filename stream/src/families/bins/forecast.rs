//! Time-to-full of a bin: the fill rate since it was last emptied, and when it will reach
//! its threshold at that rate (the basis of "bins to collect before <time>").

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

/// Readings of one bin since its last emptying.
#[derive(Debug, Clone, Default)]
pub struct FillTrend {
    points: Vec<(DateTime<Utc>, f64)>,
}

impl FillTrend {
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
            }
        }
        self.points.push((at, level));
        let first = self.points.first()?.0;
        if self.points.len() < 2 || (at - first) < Duration::minutes(1) {
            return None;
        }
        let n = self.points.len() as f64;
        let xs: Vec<f64> = self
            .points
            .iter()
            .map(|(t, _)| (*t - first).num_seconds() as f64 / 3600.0)
            .collect();
        let (mx, my) = (
            xs.iter().sum::<f64>() / n,
            self.points.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let sxy: f64 = xs
            .iter()
            .zip(&self.points)
            .map(|(x, (_, y))| (x - mx) * (y - my))
            .sum();
        let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
        let rate = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        let full_at = if level >= threshold {
            Some(at)
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
