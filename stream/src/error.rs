/// Errors of the stream stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kafka client failed (configuration, connection, protocol).
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The lake failed (boxed: Delta errors are large).
    #[error("lake: {0}")]
    Lake(Box<vallee_lake::Error>),
    /// Building an output batch, or reading one back, failed: a table out of its contract.
    #[error("schemas: {0}")]
    Schemas(#[from] vallee_schemas::Error),
    /// A per-batch DataFusion plan failed (boxed: a bug, not input).
    #[error("datafusion: {0}")]
    DataFusion(Box<datafusion::error::DataFusionError>),
    /// Building a batch for a plan failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The Kafka plumbing shared with ingest failed (the stage thread).
    #[error("{0}")]
    Host(#[from] vallee_kafka::Error),
    /// The options contradict themselves (checked before anything starts).
    #[error("{0}")]
    Options(String),
    /// Anything else that must stop the stage.
    #[error("{0}")]
    Fatal(String),
}

impl Error {
    /// Whether the lake refused a commit because another member committed the same
    /// partitions since (this member's state is stale: it starts over from the lake).
    pub fn is_fenced(&self) -> bool {
        matches!(self, Error::Lake(e) if e.is_fenced())
    }
}

impl From<vallee_lake::Error> for Error {
    fn from(e: vallee_lake::Error) -> Self {
        Error::Lake(Box::new(e))
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Error::DataFusion(Box::new(e))
    }
}

/// Result alias of the stream crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
