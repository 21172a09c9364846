//! Options of the ingest stage.

use std::collections::BTreeMap;
use std::time::Duration;

use vallee_schemas::contract::Stream;
use vallee_schemas::decode::DecodeOptions;

/// Options of one ingest process. `Default` runs on a laptop against the embedded broker.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Kafka bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Consumer group shared by every ingest process (offsets committed there are for
    /// monitoring only: the lake holds the real ones).
    pub group_id: String,
    /// Prefix of the Delta application-transaction ids this stage writes.
    pub writer_id: String,
    /// Topic of each input stream.
    pub topics: BTreeMap<Stream, String>,
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
    /// Extra librdkafka settings (`key=value`), applied last.
    pub kafka_overrides: BTreeMap<String, String>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            brokers: "127.0.0.1:9092".into(),
            group_id: "vallee-ingest".into(),
            writer_id: "vallee-ingest".into(),
            topics: Stream::ALL
                .iter()
                .map(|s| (*s, s.default_topic().to_string()))
                .collect(),
            flush_max_messages: 20_000,
            flush_interval: Duration::from_secs(1),
            progress_max_lag: 50_000,
            progress_interval: Duration::from_secs(60),
            commit_attempts: 5,
            decode: DecodeOptions::default(),
            kafka_overrides: BTreeMap::new(),
        }
    }
}

impl IngestOptions {
    /// The stream a topic carries, if it is one of ours.
    pub fn stream_of(&self, topic: &str) -> Option<Stream> {
        self.topics
            .iter()
            .find(|(_, t)| t.as_str() == topic)
            .map(|(s, _)| *s)
    }
}
