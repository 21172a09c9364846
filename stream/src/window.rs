//! Window shapes.

use chrono::{DateTime, Duration, Utc};

/// A half-open event-time interval `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Tumbling or hopping windows, aligned on the Unix epoch (so `PT1H` windows start on the
/// hour in UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    Tumbling { size: Duration },
    Hopping { size: Duration, slide: Duration },
}

fn floor(t: DateTime<Utc>, step: Duration) -> DateTime<Utc> {
    let step_us = step
        .num_microseconds()
        .expect("window step fits in microseconds");
    let us = t.timestamp_micros();
    DateTime::from_timestamp_micros(us - us.rem_euclid(step_us)).expect("in range")
}

/// ISO 8601 duration of a whole number of seconds (`PT10M`, `PT1H`, `PT90S`).
pub fn iso_duration(d: Duration) -> String {
    match d.num_seconds() {
        s if s > 0 && s % 3600 == 0 => format!("PT{}H", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("PT{}M", s / 60),
        s => format!("PT{s}S"),
    }
}

impl WindowKind {
    pub fn size(&self) -> Duration {
        match *self {
            WindowKind::Tumbling { size } | WindowKind::Hopping { size, .. } => size,
        }
    }

    /// ISO 8601 duration of the window size (`PT5M`, `PT1H`), as the output tables name it.
    pub fn iso_size(&self) -> String {
        iso_duration(self.size())
    }

    /// Every window containing `t`, earliest first.
    pub fn windows_of(&self, t: DateTime<Utc>) -> Vec<Window> {
        match *self {
            WindowKind::Tumbling { size } => {
                let start = floor(t, size);
                vec![Window {
                    start,
                    end: start + size,
                }]
            }
            WindowKind::Hopping { size, slide } => {
                let mut out = Vec::new();
                let mut start = floor(t, slide);
                while start + size > t {
                    out.push(Window {
                        start,
                        end: start + size,
                    });
                    start -= slide;
                }
                out.reverse();
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn tumbling_windows_are_aligned_and_half_open() {
        let w = WindowKind::Tumbling {
            size: Duration::minutes(5),
        };
        assert_eq!(
            w.windows_of(t("2026-11-28T10:07:12Z")),
            vec![Window {
                start: t("2026-11-28T10:05:00Z"),
                end: t("2026-11-28T10:10:00Z")
            }]
        );
        assert_eq!(
            w.windows_of(t("2026-11-28T10:10:00Z"))[0].start,
            t("2026-11-28T10:10:00Z")
        );
        assert_eq!(w.iso_size(), "PT5M");
        assert_eq!(
            WindowKind::Tumbling {
                size: Duration::hours(1)
            }
            .iso_size(),
            "PT1H"
        );
    }

    #[test]
    fn hopping_windows_cover_a_time_size_over_slide_times() {
        let w = WindowKind::Hopping {
            size: Duration::hours(1),
            slide: Duration::minutes(15),
        };
        let ws = w.windows_of(t("2026-11-28T10:20:00Z"));
        let starts: Vec<_> = ws.iter().map(|w| w.start).collect();
        assert_eq!(
            starts,
            vec![
                t("2026-11-28T09:30:00Z"),
                t("2026-11-28T09:45:00Z"),
                t("2026-11-28T10:00:00Z"),
                t("2026-11-28T10:15:00Z")
            ]
        );
        assert!(
            ws.iter()
                .all(|w| w.start <= t("2026-11-28T10:20:00Z") && t("2026-11-28T10:20:00Z") < w.end)
        );
    }
}
