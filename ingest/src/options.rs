//! Options of the ingest stage (the `[ingest]` section of the file).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vallee_kafka::{KafkaOptions, Membership};
use vallee_schemas::decode::DecodeOptions;
use vallee_schemas::units;

use crate::{Error, Result};

/// Options of one ingest process. `Default` runs on a laptop against the embedded broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestOptions {
    /// Brokers, topic of each stream, settings of every client (shared by the stages; the
    /// file's `[kafka]` and `[topics]` sections).
    #[serde(skip)]
    pub kafka: KafkaOptions,
    /// Consumer group shared by every ingest process (offsets committed there are for
    /// monitoring only: the lake holds the real ones). Default `vallee-ingest`.
    pub group_id: String,
    /// Prefix of the Delta application-transaction ids this stage writes, and its Kafka
    /// client id. Default `vallee-ingest`.
    pub writer_id: String,
    /// How this process gets its partitions: `"auto"` (default: `sole` under `vallee up`,
    /// `group` for `vallee ingest`), `"group"` (the coordinator assigns them), `"sole"`
    /// (the only ingest process takes every partition itself) or `"static:<i>/<n>"`
    /// (member i of n, partitions p with p mod n = i). See `vallee_kafka::membership`.
    pub membership: Membership,
    /// Flush when this many messages are buffered (while the previous flush's commit
    /// runs, up to four times as many wait for the next one); while a backlog is read,
    /// at four times as many (fewer, larger files; less of the CPU on commits).
    /// Default 20 000.
    pub flush_max_messages: usize,
    /// Flush when the oldest buffered message waited this long (lake freshness ≈ this
    /// plus a commit). Default 1 s.
    #[serde(rename = "flush_interval_ms", with = "units::millis")]
    pub flush_interval: Duration,
    /// A table that received no rows from a partition still records its progress when it
    /// lags by this many offsets, so a restart does not re-read far. Default 50 000.
    pub progress_max_lag: i64,
    /// …or when its last progress is older than this. Default 60 s.
    #[serde(rename = "progress_interval_s", with = "units::seconds")]
    pub progress_interval: Duration,
    /// Decoding limits and the key of signed events: the file's `[decode]` section and
    /// the replicas' secret, set by the binary (the stream stage gets the same).
    #[serde(skip)]
    pub decode: DecodeOptions,
    /// librdkafka settings of ingest's consumer only (`key=value`), applied after
    /// [`KafkaOptions::overrides`]. In the file: `[ingest.kafka]`. Default: none.
    #[serde(rename = "kafka")]
    pub consumer_overrides: BTreeMap<String, String>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            kafka: KafkaOptions::default(),
            group_id: "vallee-ingest".into(),
            writer_id: "vallee-ingest".into(),
            membership: Membership::Auto,
            flush_max_messages: 20_000,
            flush_interval: Duration::from_secs(1),
            progress_max_lag: 50_000,
            progress_interval: Duration::from_secs(60),
            decode: DecodeOptions::default(),
            consumer_overrides: BTreeMap::new(),
        }
    }
}

impl IngestOptions {
    /// Names are set and every count is at least 1.
    pub fn validate(&self) -> Result<()> {
        let problem = if self.group_id.trim().is_empty() {
            "group_id is empty"
        } else if self.writer_id.trim().is_empty() {
            "writer_id is empty"
        } else if self.flush_max_messages == 0 {
            "flush_max_messages must be at least 1"
        } else if self.progress_max_lag < 1 {
            "progress_max_lag must be at least 1"
        } else if let Err(e) = self.decode.validate() {
            return Err(Error::Options(e));
        } else if let Err(e) = self.membership.validate() {
            return Err(Error::Options(e.to_string()));
        } else {
            return Ok(());
        };
        Err(Error::Options(problem.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_zero_counts_are_not() {
        assert!(IngestOptions::default().validate().is_ok());
        let bad = [
            IngestOptions {
                group_id: " ".into(),
                ..Default::default()
            },
            IngestOptions {
                flush_max_messages: 0,
                ..Default::default()
            },
            IngestOptions {
                decode: DecodeOptions {
                    max_message_bytes: 0,
                    ..DecodeOptions::default()
                },
                ..Default::default()
            },
        ];
        for o in bad {
            assert!(o.validate().is_err(), "{o:?}");
        }
    }

    #[test]
    fn the_section_keeps_its_keys_units_and_the_consumer_overrides() {
        let o: IngestOptions = serde_json::from_value(serde_json::json!({
            "flush_interval_ms": 250,
            "progress_interval_s": "2min",
            "kafka": {"fetch.wait.max.ms": "10"}
        }))
        .unwrap();
        assert_eq!(o.flush_interval, Duration::from_millis(250));
        assert_eq!(o.progress_interval, Duration::from_secs(120));
        assert_eq!(o.consumer_overrides["fetch.wait.max.ms"], "10");
        assert_eq!(o.group_id, "vallee-ingest", "defaults for the rest");
        let typo =
            serde_json::from_value::<IngestOptions>(serde_json::json!({"flush_intervall_ms": 5}));
        assert!(typo.unwrap_err().to_string().contains("flush_intervall_ms"));
    }
}
