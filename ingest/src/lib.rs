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
//! The consumer runs on its own OS thread: librdkafka's rebalance callback must read the
//! stored offsets *before* the assignment takes effect, which means blocking on the lake from
//! inside `poll`, something a tokio worker thread must never do.
//!
//! # Layout
//! - [`options`] — [`IngestOptions`].
//! - [`topics`] — creating the hub's topics (the broker never auto-creates).
//! - [`consumer`] — the rdkafka consumer and its rebalance hook.
//! - [`pending`] — per-partition progress and per-(table, partition) row buffers.
//! - [`worker`] — the poll / decode / flush loop.
//! - [`stats`] — counters shared with the binary (metrics, benchmarks, tests).

pub mod consumer;
mod error;
pub mod options;
pub mod pending;
pub mod stats;
pub mod topics;
pub mod worker;

use std::sync::Arc;

pub use error::{Error, Result};
pub use options::IngestOptions;
pub use stats::IngestStats;
use tokio_util::sync::CancellationToken;
use vallee_lake::Lake;

/// Runs ingest until `shutdown` is cancelled (then flushes what was read and commits) or a
/// fatal error. Returns the counters at exit.
pub async fn run(
    options: IngestOptions,
    lake: Arc<Lake>,
    stats: Arc<IngestStats>,
    shutdown: CancellationToken,
) -> Result<()> {
    let handle = tokio::runtime::Handle::current();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("vallee-ingest".into())
        .spawn(move || {
            let result = worker::Worker::new(options, lake, stats, handle, shutdown.clone())
                .and_then(|mut w| w.run());
            if result.is_err() {
                // A fatal error stops the whole hub, cleanly.
                shutdown.cancel();
            }
            let _ = done_tx.send(result);
        })
        .map_err(|e| Error::Fatal(format!("cannot start the ingest thread: {e}")))?;
    done_rx
        .await
        .map_err(|_| Error::Fatal("the ingest thread died".into()))?
}
