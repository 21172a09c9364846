//! Ingest: Kafka sensor topics → validated Arrow rows → Delta tables, exactly once.
//!
//! One ingest process is one member of a Kafka consumer group. It decodes every message
//! with [`vallee_schemas::decode`], buffers rows per (table, partition), and flushes by
//! size or time: one Delta commit per table, carrying the rows *and* the last offset it
//! accounts for on each source partition (see [`vallee_lake`]). Refused messages go to
//! `dead_letters` through the same commits, so nothing is lost and nothing is doubled.
//!
//! ```text
//!             ┌ rebalance: assign at min(stored offset + 1) over the tables a topic feeds
//!  Kafka ─────┤
//!             └ poll ─► gap check ─► decode ─┬─► rows[(table, partition)]  (skip offsets a
//!                                            └─► dead letters                table already has)
//!                      flush (rows ≥ max or age ≥ interval or shutdown)
//!                        └─► per table, concurrently: Lake::append(rows, progress) ─► commit
//! ```
//!
//! The consumer runs on its own OS thread ([`vallee_kafka::host`]): librdkafka's rebalance
//! callback must read the stored offsets *before* the assignment takes effect, which means
//! blocking on the lake from inside `poll`, something a tokio worker thread must never do.
//!
//! # Layout
//! - [`options`] — [`IngestOptions`].
//! - [`consumer`] — the rdkafka consumer's settings and its rebalance hook (the topic map,
//!   the thread and the rejoin policy are [`vallee_kafka`]'s).
//! - [`pending`] — per-partition progress and per-(table, partition) row buffers.
//! - [`worker`] — the poll / decode / flush loop.
//! - [`stats`] — counters shared with the binary (metrics, benchmarks, tests).

pub mod consumer;
mod error;
pub mod options;
pub mod pending;
pub mod stats;
pub mod worker;

use std::sync::Arc;

pub use error::{Error, Result};
pub use options::IngestOptions;
pub use stats::IngestStats;
use tokio_util::sync::CancellationToken;
use vallee_lake::Lake;

/// Runs ingest until `shutdown` is cancelled (then flushes what was read and commits) or a
/// fatal error (which cancels `shutdown` too).
pub async fn run(
    options: IngestOptions,
    lake: Arc<Lake>,
    stats: Arc<IngestStats>,
    shutdown: CancellationToken,
) -> Result<()> {
    vallee_kafka::run_on_thread("vallee-ingest", shutdown, move |handle, shutdown| {
        worker::Worker::new(options, lake, stats, handle, shutdown).and_then(|mut w| w.run())
    })
    .await
}
