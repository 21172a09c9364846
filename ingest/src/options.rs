//! Options of the ingest stage.

use std::collections::BTreeMap;
use std::time::Duration;

use vallee_kafka::KafkaOptions;
use vallee_schemas::decode::DecodeOptions;

/// Options of one ingest process. `Default` runs on a laptop against the embedded broker.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Brokers, topic of each stream, settings of every client (shared by the stages).
    pub kafka: KafkaOptions,
    /// Consumer group shared by every ingest process (offsets committed there are for
    /// monitoring only: the lake holds the real ones).
    pub group_id: String,
    /// Prefix of the Delta application-transaction ids this stage writes.
    pub writer_id: String,
    /// Flush when this many messages are buffered. Default 20 000.
    pub flush_max_messages: usize,
    /// Flush when the oldest buffered message waited this long (lake freshness ≈ this
    /// plus a commit). Default 1 s.
    pub flush_interval: Duration,
    /// A table that received no rows from a partition still records its progress when it
    /// lags by this many offsets, so a restart does not re-read far. Default 50 000.
    pub progress_max_lag: i64,
    /// …or when its last progress is older than this. Default 60 s.
    pub progress_interval: Duration,
    /// Attempts of a failing lake commit before ingest stops (with back-off). Default 5.
    pub commit_attempts: u32,
    /// Decoding limits.
    pub decode: DecodeOptions,
    /// librdkafka settings of ingest's consumer only (`key=value`), applied after
    /// [`KafkaOptions::overrides`]. Default: none.
    pub consumer_overrides: BTreeMap<String, String>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            kafka: KafkaOptions::default(),
            group_id: "vallee-ingest".into(),
            writer_id: "vallee-ingest".into(),
            flush_max_messages: 20_000,
            flush_interval: Duration::from_secs(1),
            progress_max_lag: 50_000,
            progress_interval: Duration::from_secs(60),
            commit_attempts: 5,
            decode: DecodeOptions::default(),
            consumer_overrides: BTreeMap::new(),
        }
    }
}
