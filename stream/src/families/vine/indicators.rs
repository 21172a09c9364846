//! Vineyard indicators per station and local day (Europe/Paris), and frost alerts.
//!
//! | indicator | rule |
//! |---|---|
//! | growing degree days | `max(0, (Tmax + Tmin) / 2 − 10)` per day |
//! | Winkler index | GDD summed from 1 April (to 31 October) |
//! | Huglin index | `max(0, ((Tmean − 10) + (Tmax − 10)) / 2) · K` summed 1 April – 30 September; `K` grows linearly from 1.02 at 40° N to 1.06 at 50° N (1.034 in the valley) |
//! | downy mildew 3-10 | primary infections possible when shoots are ≥ 10 cm (a configured date), ≥ 10 mm of rain fell over the last 48 h and the day's mean is ≥ 10 °C |
//! | Gubler-Thomas (UC Davis) | starts at 60 after 3 consecutive days with ≥ 6 consecutive hours in 21.1–29.4 °C (70–85 °F); then +20 per such day, −10 per other day, −10 more when ≥ 35 °C for ≥ 15 min; bounded 0–100 |
//! | oospore degree days | `max(0, Tmean − 8)` summed from 1 January |

use std::collections::VecDeque;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use chrono_tz::Europe::Paris;

// The formulas and the risk levels are shared with SQL and the API: the tables' contract.
pub use vallee_schemas::formulas::{degree_days, huglin_day, huglin_k};
pub use vallee_schemas::tables::RiskLevel;

/// One station's weather over one local day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayWeather {
    pub day: NaiveDate,
    pub tmin: f64,
    pub tmax: f64,
    pub tmean: f64,
    pub rain_mm: f64,
    /// Longest run of consecutive local hours whose mean temperature is in 21.1–29.4 °C.
    pub longest_mild_run_h: u32,
    /// Minutes at or above 35 °C (reading intervals).
    pub minutes_hot: u32,
}

/// Summarises a day of readings `(time, temperature °C, precipitation mm)`, sorted by time.
pub fn summarize_day(day: NaiveDate, readings: &[(DateTime<Utc>, f64, f64)]) -> Option<DayWeather> {
    if readings.is_empty() {
        return None;
    }
    let temps: Vec<f64> = readings.iter().map(|r| r.1).collect();
    let mut hourly: [(f64, u32); 24] = [(0.0, 0); 24];
    for (t, temp, _) in readings {
        let h = t.with_timezone(&Paris).hour() as usize;
        hourly[h].0 += temp;
        hourly[h].1 += 1;
    }
    let (mut run, mut longest) = (0, 0);
    for (sum, n) in hourly {
        let mild = n > 0 && (21.1..=29.4).contains(&(sum / n as f64));
        run = if mild { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let minutes_hot = readings
        .windows(2)
        .filter(|w| w[0].1 >= 35.0 && w[1].1 >= 35.0)
        .map(|w| (w[1].0 - w[0].0).num_minutes().max(0) as u32)
        .sum();
    Some(DayWeather {
        day,
        tmin: temps.iter().copied().fold(f64::INFINITY, f64::min),
        tmax: temps.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        tmean: temps.iter().sum::<f64>() / temps.len() as f64,
        rain_mm: readings.iter().map(|r| r.2).sum(),
        longest_mild_run_h: longest,
        minutes_hot,
    })
}

/// Indicators of one station after one day.
#[derive(Debug, Clone, PartialEq)]
pub struct VineIndicators {
    pub day: NaiveDate,
    pub gdd: f64,
    pub winkler: f64,
    pub huglin: f64,
    pub oospore_degree_days: f64,
    pub downy_mildew_3_10: bool,
    pub gubler_thomas: u8,
}

/// Season-long accumulators of one station (kept in a Delta state table, not rebuilt from
/// Kafka, since a season outlives the topics' retention).
#[derive(Debug, Clone, PartialEq)]
pub struct Season {
    pub latitude: f64,
    /// From this date shoots are taken to be ≥ 10 cm (the 3-10 rule's third condition).
    pub shoots_10cm_from: (u32, u32),
    pub year: i32,
    pub winkler: f64,
    pub huglin: f64,
    pub oospore: f64,
    /// Consecutive qualifying days before the Gubler-Thomas index starts.
    pub gt_streak: u32,
    pub gt_index: Option<u8>,
    rain: VecDeque<(NaiveDate, f64)>,
}

impl Season {
    pub fn new(latitude: f64, year: i32) -> Self {
        Season {
            latitude,
            shoots_10cm_from: (4, 15),
            year,
            winkler: 0.0,
            huglin: 0.0,
            oospore: 0.0,
            gt_streak: 0,
            gt_index: None,
            rain: VecDeque::new(),
        }
    }

    /// A season resumed from its last stored day (the state table), with the rain of the
    /// last two days for the 48 h rule.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        latitude: f64,
        year: i32,
        winkler: f64,
        huglin: f64,
        oospore: f64,
        gt_streak: u32,
        gt_index: Option<u8>,
        recent_rain: &[(NaiveDate, f64)],
    ) -> Self {
        Season {
            winkler,
            huglin,
            oospore,
            gt_streak,
            gt_index,
            rain: recent_rain.iter().copied().collect(),
            ..Season::new(latitude, year)
        }
    }

    /// Adds a day (days come in order); returns the indicators of that day.
    pub fn add_day(&mut self, d: &DayWeather) -> VineIndicators {
        if d.day.year() != self.year {
            *self = Season {
                shoots_10cm_from: self.shoots_10cm_from,
                ..Season::new(self.latitude, d.day.year())
            };
        }
        let (m, day) = (d.day.month(), d.day.day());
        let gdd = degree_days(d.tmin, d.tmax, 10.0);
        if (4..=10).contains(&m) {
            self.winkler += gdd;
        }
        if (4..=9).contains(&m) {
            self.huglin += huglin_day(d.tmean, d.tmax, self.latitude);
        }
        self.oospore += (d.tmean - 8.0).max(0.0);

        self.rain.push_back((d.day, d.rain_mm));
        while self
            .rain
            .front()
            .is_some_and(|(r, _)| (d.day - *r).num_days() >= 2)
        {
            self.rain.pop_front();
        }
        let rain_48h: f64 = self.rain.iter().map(|(_, mm)| mm).sum();
        let shoots = (m, day) >= self.shoots_10cm_from;
        let downy = shoots && rain_48h >= 10.0 && d.tmean >= 10.0;

        let qualifying = d.longest_mild_run_h >= 6;
        match self.gt_index {
            None => {
                self.gt_streak = if qualifying { self.gt_streak + 1 } else { 0 };
                if self.gt_streak >= 3 {
                    self.gt_index = Some(60);
                }
            }
            Some(index) => {
                let mut next = index as i32 + if qualifying { 20 } else { -10 };
                if d.minutes_hot >= 15 {
                    next -= 10;
                }
                self.gt_index = Some(next.clamp(0, 100) as u8);
            }
        }
        VineIndicators {
            day: d.day,
            gdd,
            winkler: self.winkler,
            huglin: self.huglin,
            oospore_degree_days: self.oospore,
            downy_mildew_3_10: downy,
            gubler_thomas: self.gt_index.unwrap_or(0),
        }
    }
}

/// Frost risk at a station: the air temperature reached the critical value while falling.
#[derive(Debug, Clone)]
pub struct FrostWatch {
    pub critical: f64,
    last: Option<(DateTime<Utc>, f64)>,
    open_since: Option<DateTime<Utc>>,
}

/// A frost alert opening (`true`) or clearing (`false`) at a time.
pub type FrostChange = (bool, DateTime<Utc>);

impl FrostWatch {
    pub fn new(critical: f64) -> Self {
        FrostWatch {
            critical,
            last: None,
            open_since: None,
        }
    }

    /// When the open alert opened, if one is open.
    pub fn open_since(&self) -> Option<DateTime<Utc>> {
        self.open_since
    }

    /// A reading (in time order). Opens at or below `critical` on a falling trend; clears
    /// once the temperature is 1 °C above `critical`.
    pub fn on_reading(&mut self, at: DateTime<Utc>, temperature: f64) -> Option<FrostChange> {
        let falling = self
            .last
            .is_some_and(|(_, previous)| temperature < previous);
        self.last = Some((at, temperature));
        match self.open_since {
            None if temperature <= self.critical && falling => {
                self.open_since = Some(at);
                Some((true, at))
            }
            Some(_) if temperature >= self.critical + 1.0 => {
                self.open_since = None;
                Some((false, at))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, d).unwrap()
    }

    fn weather(
        date: NaiveDate,
        tmin: f64,
        tmax: f64,
        rain: f64,
        mild_hours: u32,
        hot_minutes: u32,
    ) -> DayWeather {
        DayWeather {
            day: date,
            tmin,
            tmax,
            tmean: (tmin + tmax) / 2.0,
            rain_mm: rain,
            longest_mild_run_h: mild_hours,
            minutes_hot: hot_minutes,
        }
    }

    #[test]
    fn winkler_and_huglin_on_a_known_series() {
        let mut s = Season::new(43.6, 2026);
        // 31 March: counts for oospores only.
        let i = s.add_day(&weather(day(3, 31), 6.0, 20.0, 0.0, 0, 0));
        assert_eq!((i.gdd, i.winkler, i.huglin), (3.0, 0.0, 0.0));
        assert_eq!(i.oospore_degree_days, 5.0); // Tmean 13 - 8
        // 1 and 2 April: GDD (10+24)/2-10 = 7 and (12+30)/2-10 = 11.
        s.add_day(&weather(day(4, 1), 10.0, 24.0, 0.0, 0, 0));
        let i = s.add_day(&weather(day(4, 2), 12.0, 30.0, 0.0, 0, 0));
        assert_eq!(i.winkler, 18.0);
        // Huglin: ((17-10)+(24-10))/2 = 10.5 and ((21-10)+(30-10))/2 = 15.5, times K(43.6) = 1.0344.
        assert!((i.huglin - 26.0 * 1.0344).abs() < 1e-9, "{}", i.huglin);
        assert!((huglin_k(43.6) - 1.0344).abs() < 1e-12);
        assert_eq!(i.oospore_degree_days, 5.0 + 9.0 + 13.0);
        // A cold day adds nothing; a new year starts over.
        assert_eq!(
            s.add_day(&weather(day(4, 3), 0.0, 8.0, 0.0, 0, 0)).winkler,
            18.0
        );
        let mut s2 = s.clone();
        let i = s2.add_day(&weather(
            NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
            0.0,
            10.0,
            0.0,
            0,
            0,
        ));
        assert_eq!((i.winkler, i.oospore_degree_days), (0.0, 0.0));
    }

    #[test]
    fn downy_mildew_3_10_needs_shoots_rain_over_48_h_and_warmth() {
        let mut s = Season::new(43.6, 2026);
        // Before the shoots reach 10 cm: no risk even with rain and warmth.
        assert!(
            !s.add_day(&weather(day(4, 10), 8.0, 18.0, 12.0, 0, 0))
                .downy_mildew_3_10
        );
        // 6 mm + 5 mm over two days, mean 13 °C: risk.
        assert!(
            !s.add_day(&weather(day(5, 1), 8.0, 18.0, 6.0, 0, 0))
                .downy_mildew_3_10
        );
        assert!(
            s.add_day(&weather(day(5, 2), 8.0, 18.0, 5.0, 0, 0))
                .downy_mildew_3_10
        );
        // The 6 mm are now older than 48 h.
        assert!(
            !s.add_day(&weather(day(5, 3), 8.0, 18.0, 0.0, 0, 0))
                .downy_mildew_3_10
        );
        // Rain enough but a cold day (mean 7 °C).
        assert!(
            !s.add_day(&weather(day(5, 4), 2.0, 12.0, 15.0, 0, 0))
                .downy_mildew_3_10
        );
    }

    #[test]
    fn gubler_thomas_day_by_day() {
        let mut s = Season::new(43.6, 2026);
        let mut run = |mild: u32, hot: u32| {
            s.add_day(&weather(day(6, 1), 15.0, 28.0, 0.0, mild, hot))
                .gubler_thomas
        };
        // Two qualifying days, a break, then three in a row start the index at 60.
        assert_eq!(
            [run(6, 0), run(7, 0), run(2, 0), run(6, 0), run(6, 0)],
            [0, 0, 0, 0, 0]
        );
        assert_eq!(run(8, 0), 60);
        assert_eq!(run(6, 0), 80);
        assert_eq!(run(6, 0), 100);
        assert_eq!(run(6, 0), 100, "bounded at 100");
        assert_eq!(run(3, 0), 90, "-10 for a day without 6 mild hours");
        assert_eq!(
            run(6, 20),
            100,
            "+20 -10 when it was also ≥ 35 °C for 15 min"
        );
        assert_eq!(run(0, 30), 80, "-10 -10");
    }

    #[test]
    fn day_summaries_use_local_hours() {
        use chrono::TimeZone;
        // 14:00–20:00 Paris (12:00–18:00 UTC in summer) at 25 °C, the rest at 15 °C.
        let readings: Vec<(DateTime<Utc>, f64, f64)> = (0..24)
            .map(|h| {
                let t = Utc.with_ymd_and_hms(2026, 6, 1, h, 30, 0).unwrap();
                (
                    t,
                    if (12..18).contains(&h) { 25.0 } else { 15.0 },
                    if h == 3 { 2.5 } else { 0.0 },
                )
            })
            .collect();
        let d = summarize_day(day(6, 1), &readings).unwrap();
        assert_eq!(d.longest_mild_run_h, 6);
        assert_eq!((d.tmin, d.tmax, d.rain_mm), (15.0, 25.0, 2.5));
        assert_eq!(d.minutes_hot, 0);
    }

    #[test]
    fn frost_opens_at_the_critical_value_on_a_falling_trend_only() {
        use chrono::TimeZone;
        let at = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 4, 12, h, m, 0).unwrap();
        let mut f = FrostWatch::new(1.0);
        assert_eq!(f.on_reading(at(2, 0), 1.0), None, "no trend yet");
        assert_eq!(f.on_reading(at(2, 10), 1.2), None, "rising");
        assert_eq!(f.on_reading(at(2, 20), 0.8), Some((true, at(2, 20))));
        assert_eq!(f.on_reading(at(2, 30), -1.5), None, "already open");
        assert_eq!(
            f.on_reading(at(7, 0), 1.5),
            None,
            "not yet 1 °C above critical"
        );
        assert_eq!(f.on_reading(at(7, 30), 2.0), Some((false, at(7, 30))));
    }
}
