//! Durations in the configuration file, in the unit their key names.
//!
//! A key says its unit (`flush_interval_ms`, `progress_interval_s`, `contact_retention_days`)
//! and takes a whole number in that unit, or a humane duration string: `flush_interval_ms =
//! 250` and `flush_interval_ms = "250ms"` mean the same, as do `dwell_gap_s = 600` and
//! `dwell_gap_s = "10min"`. Written back, a duration is the whole number in its unit.
//!
//! ```
//! use std::time::Duration;
//!
//! #[derive(serde::Deserialize)]
//! struct Options {
//!     #[serde(rename = "flush_interval_ms", with = "vallee_schemas::units::millis")]
//!     flush_interval: Duration,
//! }
//! let o: Options = serde_json::from_str(r#"{"flush_interval_ms": "1s 500ms"}"#).unwrap();
//! assert_eq!(o.flush_interval, Duration::from_millis(1500));
//! ```

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};

/// A duration type the unit modules read and write: `std::time::Duration` or
/// `chrono::Duration` (negative ones cannot be written in the file).
pub trait Span: Sized {
    /// From a non-negative duration; `None` when out of range.
    fn from_std(d: Duration) -> Option<Self>;
    /// As a non-negative duration; `None` when negative.
    fn to_std(&self) -> Option<Duration>;
}

impl Span for Duration {
    fn from_std(d: Duration) -> Option<Self> {
        Some(d)
    }

    fn to_std(&self) -> Option<Duration> {
        Some(*self)
    }
}

impl Span for chrono::Duration {
    fn from_std(d: Duration) -> Option<Self> {
        chrono::Duration::from_std(d).ok()
    }

    fn to_std(&self) -> Option<Duration> {
        chrono::Duration::to_std(self).ok()
    }
}

/// Reads a whole number of `unit`, or a humane duration string.
struct InUnit {
    unit: Duration,
    name: &'static str,
}

impl Visitor<'_> for InUnit {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a whole number of {} or a duration such as \"90s\", \"15min\", \"2h\"",
            self.name
        )
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
        u32::try_from(n)
            .ok()
            .and_then(|n| self.unit.checked_mul(n))
            .ok_or_else(|| E::custom(format!("{n} {} is out of range", self.name)))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
        match u64::try_from(n) {
            Ok(n) => self.visit_u64(n),
            Err(_) => Err(E::custom(format!(
                "{n} {}: a duration cannot be negative",
                self.name
            ))),
        }
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        humantime::parse_duration(text.trim())
            .map_err(|e| E::custom(format!("{text:?} is not a duration ({e})")))
    }
}

/// `serialize` and `deserialize` of one unit, for `#[serde(with = "…")]`.
macro_rules! unit {
    ($(#[$doc:meta])* $module:ident, $unit:expr, $name:literal) => {
        $(#[$doc])*
        pub mod $module {
            use serde::{Deserializer, Serializer, de, ser};

            use super::{InUnit, Span};

            const UNIT: std::time::Duration = $unit;

            /// The whole number of this unit (rounded down).
            pub fn serialize<T: Span, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
                let d = value
                    .to_std()
                    .ok_or_else(|| <S::Error as ser::Error>::custom("a negative duration"))?;
                s.serialize_u64((d.as_nanos() / UNIT.as_nanos()) as u64)
            }

            /// A whole number of this unit, or a humane duration string.
            pub fn deserialize<'de, T: Span, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
                let value = d.deserialize_any(InUnit { unit: UNIT, name: $name })?;
                T::from_std(value)
                    .ok_or_else(|| <D::Error as de::Error>::custom("the duration is out of range"))
            }
        }
    };
}

unit!(
    /// Keys ending in `_ms`.
    millis,
    std::time::Duration::from_millis(1),
    "milliseconds"
);
unit!(
    /// Keys ending in `_s`.
    seconds,
    std::time::Duration::from_secs(1),
    "seconds"
);
unit!(
    /// Keys ending in `_days`.
    days,
    std::time::Duration::from_secs(86_400),
    "days"
);

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Options {
        #[serde(with = "millis")]
        flush_ms: Duration,
        #[serde(with = "seconds")]
        gap_s: chrono::Duration,
        #[serde(with = "days")]
        retention_days: Duration,
    }

    fn parse(json: &str) -> Result<Options, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn a_number_is_in_the_key_unit_and_a_string_says_its_own() {
        let o = parse(r#"{"flush_ms": 250, "gap_s": 600, "retention_days": 90}"#).unwrap();
        assert_eq!(o.flush_ms, Duration::from_millis(250));
        assert_eq!(o.gap_s, chrono::Duration::minutes(10));
        assert_eq!(o.retention_days, Duration::from_secs(90 * 86_400));
        let o =
            parse(r#"{"flush_ms": "1s", "gap_s": "10min", "retention_days": "2days"}"#).unwrap();
        assert_eq!(o.flush_ms, Duration::from_secs(1));
        assert_eq!(o.gap_s, chrono::Duration::minutes(10));
        assert_eq!(o.retention_days, Duration::from_secs(2 * 86_400));
    }

    #[test]
    fn written_back_a_duration_is_the_number_in_its_unit() {
        let o = parse(r#"{"flush_ms": "1s 500ms", "gap_s": "1h", "retention_days": 90}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&o).unwrap(),
            r#"{"flush_ms":1500,"gap_s":3600,"retention_days":90}"#
        );
    }

    #[test]
    fn negative_numbers_garbage_and_floats_are_refused_with_the_unit() {
        let err = parse(r#"{"flush_ms": -5, "gap_s": 1, "retention_days": 1}"#).unwrap_err();
        assert!(err.contains("cannot be negative"), "{err}");
        let err =
            parse(r#"{"flush_ms": "5 parsecs", "gap_s": 1, "retention_days": 1}"#).unwrap_err();
        assert!(err.contains("\"5 parsecs\" is not a duration"), "{err}");
        let err = parse(r#"{"flush_ms": 1.5, "gap_s": 1, "retention_days": 1}"#).unwrap_err();
        assert!(err.contains("whole number of milliseconds"), "{err}");
    }
}
