//! Event time: which clock a row is placed on, and the serde helpers that store times
//! the way every Delta reader expects (UTC microseconds, dates as days since 1970).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

/// Where a row's event time came from, recorded in the `_time_source` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TimeSource {
    /// The event's own `dateObserved` attribute.
    #[serde(rename = "dateObserved")]
    DateObserved,
    /// `TimeInstant`, which FIWARE IoT agents add when the device sent no time.
    #[serde(rename = "TimeInstant")]
    TimeInstant,
    /// The Kafka message timestamp (the producer's or the broker's clock).
    #[serde(rename = "kafka")]
    Kafka,
}

/// Parses an RFC 3339 time that carries an explicit UTC offset (`Z` or `±hh:mm`).
pub fn parse_rfc3339(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{text:?} is not an RFC 3339 time with a UTC offset ({e})"))
}

/// Resolves the event time: `dateObserved`, else `TimeInstant`, else the Kafka timestamp.
/// A present but unreadable attribute is an error (falling back would hide a broken
/// device clock behind the broker's).
pub fn resolve_event_time(
    date_observed: Option<&str>,
    time_instant: Option<&str>,
    kafka_timestamp_ms: Option<i64>,
) -> Result<(DateTime<Utc>, TimeSource), String> {
    if let Some(text) = date_observed {
        return parse_rfc3339(text)
            .map(|t| (t, TimeSource::DateObserved))
            .map_err(|e| format!("dateObserved: {e}"));
    }
    if let Some(text) = time_instant {
        return parse_rfc3339(text)
            .map(|t| (t, TimeSource::TimeInstant))
            .map_err(|e| format!("TimeInstant: {e}"));
    }
    kafka_timestamp_ms
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map(|t| (t, TimeSource::Kafka))
        .ok_or_else(|| {
            "no event time: neither dateObserved, TimeInstant nor a Kafka timestamp".to_string()
        })
}

/// Days since 1970-01-01 of a UTC instant (the `day` partition column, Arrow `Date32`).
pub fn utc_day(t: &DateTime<Utc>) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    (t.date_naive() - epoch).num_days() as i32
}

/// Days since 1970-01-01 of a calendar date.
pub fn date_to_days(d: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    (d - epoch).num_days() as i32
}

/// Serializes a UTC time as microseconds since the epoch (Arrow `Timestamp(µs, "UTC")`).
pub mod micros {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.timestamp_micros())
    }

    /// The same for an optional time.
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::Serializer;

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_i64(t.timestamp_micros()),
                None => s.serialize_none(),
            }
        }
    }
}

/// Serializes a date as days since the epoch (Arrow `Date32`).
pub mod days {
    use chrono::NaiveDate;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(super::date_to_days(*d))
    }

    /// The same for an optional date.
    pub mod option {
        use chrono::NaiveDate;
        use serde::Serializer;

        pub fn serialize<S: Serializer>(d: &Option<NaiveDate>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_i32(super::super::date_to_days(*d)),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_observed_wins_then_time_instant_then_kafka() {
        let (t, s) = resolve_event_time(
            Some("2026-11-28T10:15:00+01:00"),
            Some("2020-01-01T00:00:00Z"),
            Some(0),
        )
        .unwrap();
        assert_eq!(s, TimeSource::DateObserved);
        assert_eq!(t.to_rfc3339(), "2026-11-28T09:15:00+00:00");

        let (_, s) = resolve_event_time(None, Some("2020-01-01T00:00:00Z"), Some(0)).unwrap();
        assert_eq!(s, TimeSource::TimeInstant);

        let (t, s) = resolve_event_time(None, None, Some(1_764_000_000_000)).unwrap();
        assert_eq!(s, TimeSource::Kafka);
        assert_eq!(t.timestamp_millis(), 1_764_000_000_000);

        assert!(resolve_event_time(None, None, None).is_err());
    }

    #[test]
    fn a_time_without_offset_is_refused() {
        let err = resolve_event_time(Some("2026-11-28T10:15:00"), None, Some(0)).unwrap_err();
        assert!(err.contains("dateObserved"), "{err}");
    }

    #[test]
    fn utc_day_counts_from_the_epoch() {
        let t = parse_rfc3339("1970-01-02T23:59:59+00:00").unwrap();
        assert_eq!(utc_day(&t), 1);
        // 00:30 in Paris on the 28th is still the 27th in UTC.
        let t = parse_rfc3339("2026-11-28T00:30:00+01:00").unwrap();
        assert_eq!(
            utc_day(&t),
            date_to_days(NaiveDate::from_ymd_opt(2026, 11, 27).unwrap())
        );
    }
}
