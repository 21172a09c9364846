//! The stream stage as a running service: its own Kafka consumer group, the processor,
//! Delta outputs committed with the offsets a restart must replay from, alerts to
//! `vallee.alerts`, and a live view.

pub mod options;
pub mod outputs;
pub mod processor;

pub use options::StreamOptions;
