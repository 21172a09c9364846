/// Errors of the ingest crate. Bad input is never one of them: it becomes a dead letter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kafka client failed (configuration, connection, protocol).
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The Kafka plumbing shared with the stream stage failed (the stage thread).
    #[error("{0}")]
    Host(#[from] vallee_kafka::Error),
    /// The lake failed beyond the retries (boxed: Delta errors are large).
    #[error("lake: {0}")]
    Lake(Box<vallee_lake::Error>),
    /// Building a batch from validated rows failed (a bug, not input).
    #[error("schemas: {0}")]
    Schemas(#[from] vallee_schemas::Error),
    /// The broker kept serving another offset than the one asked for: records would be
    /// skipped, so ingest stops rather than lose them silently.
    #[error(
        "topic {topic} partition {partition}: expected offset {expected} but the broker served {served} (after {attempts} seeks); offsets {expected}..{served} would be lost"
    )]
    OffsetGap {
        topic: String,
        partition: i32,
        expected: i64,
        served: i64,
        attempts: u32,
    },
    /// The partition's log ends before what the lake holds: the broker lost records the
    /// lake had already landed (its storage wiped or rolled back). Ingest stops rather than
    /// ignore the new records as replays until the offsets catch up.
    #[error(
        "topic {topic} partition {partition}: the broker's log ends at offset {log_end} but the lake already holds offsets up to {lake_offset}; the broker lost data. To accept the loss and read this partition's new records from its start: vallee lake accept-loss --topic {topic} --partition {partition}"
    )]
    BrokerLostData {
        topic: String,
        partition: i32,
        log_end: i64,
        lake_offset: i64,
    },
    /// The options contradict themselves (checked before anything starts).
    #[error("{0}")]
    Options(String),
    /// Anything else that must stop ingest.
    #[error("{0}")]
    Fatal(String),
}

impl From<vallee_lake::Error> for Error {
    fn from(e: vallee_lake::Error) -> Self {
        Error::Lake(Box::new(e))
    }
}

/// Result alias of the ingest crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
