/// Errors of the Kafka plumbing shared by the stages.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kafka client failed (configuration, connection, protocol).
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Creating a topic failed for another reason than its existence.
    #[error("creating topic {topic}: {message}")]
    CreateTopic { topic: String, message: String },
    /// The operating system refused a stage its thread.
    #[error("cannot start the {thread} thread: {source}")]
    ThreadStart {
        thread: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A stage thread ended without reporting how (it panicked).
    #[error("the {thread} thread died")]
    ThreadDied { thread: &'static str },
    /// The options contradict themselves (checked before anything starts).
    #[error("{0}")]
    Options(String),
}

/// Result alias of the Kafka plumbing.
pub type Result<T, E = Error> = std::result::Result<T, E>;
