//! Options of the stream stage (the `[stream]` section of the file).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vallee_kafka::{KafkaOptions, Membership};
use vallee_schemas::contract::Stream;
use vallee_schemas::decode::DecodeOptions;
use vallee_schemas::units;

use crate::{Error, Result};

/// Options of one stream-stage process. `Default` runs on a laptop.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamOptions {
    /// Brokers, topic of each stream, settings of every client (shared by the stages; the
    /// file's `[kafka]` and `[topics]` sections).
    #[serde(skip)]
    pub kafka: KafkaOptions,
    /// Its own consumer group: the stage reads the topics independently of ingest.
    /// Default `vallee-stream`.
    pub group_id: String,
    /// Prefix of the application-transaction ids of its output commits, and its Kafka
    /// client id. Default `vallee-stream`.
    pub writer_id: String,
    /// How this process gets its partitions: `"auto"` (default: `sole` under `vallee up`,
    /// `group` for `vallee stream`), `"group"` (the coordinator assigns them), `"sole"`
    /// (the only stream process takes every partition itself) or `"static:<i>/<n>"`
    /// (member i of n, partitions p with p mod n = i). See `vallee_kafka::membership`.
    pub membership: Membership,
    /// Allowed lateness per sensor stream (beacons 30 s, tourism 5 min, vineyards 15 min,
    /// bins 2 h). In the file, `[stream.lateness_s]` names the streams it changes.
    #[serde(rename = "lateness_s", with = "lateness")]
    pub lateness: BTreeMap<Stream, chrono::Duration>,
    /// A partition silent this long (processing time) stops holding its watermark back.
    /// Default 30 s.
    #[serde(rename = "idle_timeout_ms", with = "units::millis")]
    pub idle_timeout: Duration,
    /// Closed windows are kept this long (event time) to correct them with late rows, per
    /// sensor stream: tourism 48 h (site counters upload yesterday's counts in one batch),
    /// the others 1 h. In the file, one duration for every stream, or
    /// `[stream.correction_horizon_s]` naming the streams it changes. A row later than its
    /// stream's horizon changes no window: it is counted in
    /// `vallee_stream_too_late_total{stream}` and logged.
    #[serde(rename = "correction_horizon_s", with = "horizons")]
    pub correction_horizon: BTreeMap<Stream, chrono::Duration>,
    /// People a zone holds before it counts as congested, per zone; others use the default.
    pub zone_capacity: BTreeMap<String, i64>,
    /// Capacity of the zones `zone_capacity` does not name. Default 150.
    pub default_zone_capacity: i64,
    /// Zones counted with a sketch (≈ 1.6 % error, 4 KiB per window) instead of exactly:
    /// for zones too crowded to keep every device's hash. Default: none.
    pub sketch_zones: BTreeSet<String>,
    /// Outputs are committed this often, and as soon as a backlog is read to its end (see
    /// the worker). Default 1 s.
    #[serde(rename = "flush_interval_ms", with = "units::millis")]
    pub flush_interval: Duration,
    /// How long the broker may hold a fetch with no data (`fetch.wait.max.ms`): the floor
    /// of alert latency when traffic is sparse, against fetch requests per second when idle.
    /// Default 20 ms.
    #[serde(rename = "fetch_wait_ms", with = "units::millis")]
    pub fetch_wait: Duration,
    /// Sightings of a device further apart than this are two visits (`footfall_dwell`).
    /// Default 10 min.
    #[serde(rename = "dwell_gap_s", with = "units::seconds")]
    pub dwell_gap: chrono::Duration,
    /// Air temperature (°C) at or below which a falling trend raises a frost alert.
    /// Default 1.
    #[serde(rename = "frost_critical_c")]
    pub frost_critical: f64,
    /// librdkafka settings of the stage's consumer only (`key=value`), applied after
    /// [`KafkaOptions::overrides`]. In the file: `[stream.kafka]`. Default: none.
    #[serde(rename = "kafka")]
    pub consumer_overrides: BTreeMap<String, String>,
    /// Decoding limits: the file's `[decode]` section, the same as ingest's (set by the
    /// binary), so the stage skips exactly what ingest dead-letters.
    #[serde(skip)]
    pub decode: DecodeOptions,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            kafka: KafkaOptions::default(),
            group_id: "vallee-stream".into(),
            writer_id: "vallee-stream".into(),
            membership: Membership::Auto,
            lateness: lateness::defaults(),
            idle_timeout: Duration::from_secs(30),
            correction_horizon: horizons::defaults(),
            zone_capacity: BTreeMap::new(),
            default_zone_capacity: 150,
            sketch_zones: BTreeSet::new(),
            flush_interval: Duration::from_secs(1),
            fetch_wait: Duration::from_millis(20),
            dwell_gap: chrono::Duration::minutes(10),
            frost_critical: 1.0,
            consumer_overrides: BTreeMap::new(),
            decode: DecodeOptions::default(),
        }
    }
}

impl StreamOptions {
    /// The correction horizon of `stream`.
    pub fn correction_horizon(&self, stream: Stream) -> chrono::Duration {
        (self.correction_horizon.get(&stream).copied())
            .unwrap_or_else(|| chrono::Duration::hours(1))
    }

    /// Names are set, capacities positive, the dwell gap and the commit interval non-zero,
    /// a static membership's index below its count.
    pub fn validate(&self) -> Result<()> {
        let invalid = |m: String| Err(Error::Options(m));
        if self.group_id.trim().is_empty() {
            return invalid("group_id is empty".into());
        }
        if self.writer_id.trim().is_empty() {
            return invalid("writer_id is empty".into());
        }
        if let Err(e) = self.membership.validate() {
            return invalid(e.to_string());
        }
        if self.default_zone_capacity < 1 {
            return invalid("default_zone_capacity must be at least 1".into());
        }
        if let Some((zone, _)) = self.zone_capacity.iter().find(|(_, c)| **c < 1) {
            return invalid(format!("zone_capacity {zone:?} must be at least 1"));
        }
        if self.flush_interval.is_zero() {
            return invalid("flush_interval_ms must be more than 0".into());
        }
        if self.dwell_gap <= chrono::Duration::zero() {
            return invalid("dwell_gap_s must be more than 0".into());
        }
        if !self.frost_critical.is_finite() {
            return invalid("frost_critical_c must be a number of °C".into());
        }
        Ok(())
    }
}

/// `[stream.lateness_s]`: sensor stream name → allowed lateness, over the defaults.
/// `correction_horizon_s`: one duration for every sensor stream, or a table naming the
/// streams it changes (the others keep their default).
mod horizons {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};
    use vallee_schemas::contract::Stream;

    pub fn defaults() -> BTreeMap<Stream, chrono::Duration> {
        (Stream::SENSORS.into_iter())
            .map(|s| {
                let horizon = match s {
                    Stream::Tourism => chrono::Duration::hours(48),
                    _ => chrono::Duration::hours(1),
                };
                (s, horizon)
            })
            .collect()
    }

    pub fn serialize<S: Serializer>(
        horizons: &BTreeMap<Stream, chrono::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        super::lateness::serialize(horizons, s)
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Each(BTreeMap<String, super::lateness::Seconds>),
        All(super::lateness::Seconds),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Stream, chrono::Duration>, D::Error> {
        match Given::deserialize(d)? {
            Given::All(super::lateness::Seconds(all)) => {
                Ok((Stream::SENSORS.into_iter()).map(|s| (s, all)).collect())
            }
            Given::Each(each) => super::lateness::named(defaults(), each),
        }
    }
}

mod lateness {
    use std::collections::BTreeMap;

    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
    use vallee_schemas::contract::Stream;
    use vallee_schemas::units;

    pub fn defaults() -> BTreeMap<Stream, chrono::Duration> {
        [
            (Stream::Beacons, chrono::Duration::seconds(30)),
            (Stream::Tourism, chrono::Duration::minutes(5)),
            (Stream::Vineyards, chrono::Duration::minutes(15)),
            (Stream::WasteContainers, chrono::Duration::hours(2)),
            (Stream::WasteVehicles, chrono::Duration::hours(2)),
        ]
        .into()
    }

    /// One lateness, in seconds or as a humane duration.
    #[derive(Serialize, Deserialize)]
    pub(super) struct Seconds(#[serde(with = "units::seconds")] pub chrono::Duration);

    pub fn serialize<S: Serializer>(
        lateness: &BTreeMap<Stream, chrono::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(lateness.len()))?;
        for (stream, d) in lateness {
            map.serialize_entry(stream.name(), &Seconds(*d))?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Stream, chrono::Duration>, D::Error> {
        named(defaults(), BTreeMap::<String, Seconds>::deserialize(d)?)
    }

    /// `defaults`, with the streams `given` names changed.
    pub(super) fn named<E: de::Error>(
        defaults: BTreeMap<Stream, chrono::Duration>,
        given: BTreeMap<String, Seconds>,
    ) -> Result<BTreeMap<Stream, chrono::Duration>, E> {
        let mut lateness = defaults;
        for (name, Seconds(value)) in given {
            let stream = Stream::SENSORS
                .into_iter()
                .find(|s| s.name() == name)
                .ok_or_else(|| {
                    let names: Vec<&str> = Stream::SENSORS.iter().map(|s| s.name()).collect();
                    E::custom(format!(
                        "unknown stream {name:?} (one of {})",
                        names.join(", ")
                    ))
                })?;
            lateness.insert(stream, value);
        }
        Ok(lateness)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correction_horizons_are_one_for_all_or_per_stream_tourism_two_days_by_default() {
        let defaults = StreamOptions::default();
        assert_eq!(
            defaults.correction_horizon(Stream::Tourism),
            chrono::Duration::hours(48),
            "a counter's daily batch still corrects yesterday"
        );
        assert_eq!(
            defaults.correction_horizon(Stream::Beacons),
            chrono::Duration::hours(1)
        );
        let all: StreamOptions =
            serde_json::from_value(serde_json::json!({"correction_horizon_s": 7200})).unwrap();
        assert!(
            Stream::SENSORS
                .iter()
                .all(|s| all.correction_horizon(*s) == chrono::Duration::hours(2))
        );
        let one: StreamOptions = serde_json::from_value(
            serde_json::json!({"correction_horizon_s": {"beacons": "30min"}}),
        )
        .unwrap();
        assert_eq!(
            one.correction_horizon(Stream::Beacons),
            chrono::Duration::minutes(30)
        );
        assert_eq!(
            one.correction_horizon(Stream::Tourism),
            chrono::Duration::hours(48)
        );
        let err = serde_json::from_value::<StreamOptions>(
            serde_json::json!({"correction_horizon_s": {"parking": 60}}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown stream"), "{err}");
    }

    #[test]
    fn lateness_names_the_streams_it_changes_and_keeps_the_others() {
        let o: StreamOptions = serde_json::from_value(serde_json::json!({
            "lateness_s": {"beacons": 60, "tourism": "10min"},
            "sketch_zones": ["za-camalce-nord"],
            "dwell_gap_s": 300,
            "idle_timeout_ms": 2000,
            "membership": "static:1/2"
        }))
        .unwrap();
        assert_eq!(o.membership, Membership::Static { index: 1, count: 2 });
        assert_eq!(StreamOptions::default().membership, Membership::Auto);
        assert_eq!(o.lateness[&Stream::Beacons], chrono::Duration::seconds(60));
        assert_eq!(o.lateness[&Stream::Tourism], chrono::Duration::minutes(10));
        assert_eq!(
            o.lateness[&Stream::Vineyards],
            chrono::Duration::minutes(15)
        );
        assert!(o.sketch_zones.contains("za-camalce-nord"));
        assert_eq!(o.dwell_gap, chrono::Duration::minutes(5));
        assert_eq!(o.idle_timeout, Duration::from_secs(2));
        let err = serde_json::from_value::<StreamOptions>(
            serde_json::json!({"lateness_s": {"citizen_ideas": 5}}),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown stream \"citizen_ideas\""),
            "{err}"
        );
    }

    #[test]
    fn the_defaults_are_valid_and_empty_capacities_are_not() {
        assert!(StreamOptions::default().validate().is_ok());
        let bad = [
            StreamOptions {
                zone_capacity: [("za".to_string(), 0)].into(),
                ..Default::default()
            },
            StreamOptions {
                dwell_gap: chrono::Duration::zero(),
                ..Default::default()
            },
            StreamOptions {
                group_id: String::new(),
                ..Default::default()
            },
        ];
        for o in bad {
            assert!(o.validate().is_err(), "{o:?}");
        }
    }
}
