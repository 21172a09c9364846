//! The stream stage as a running service: its own Kafka consumer group, the dispatcher,
//! Delta outputs committed with the offsets a restart must replay from, alerts to
//! `vallee.alerts`, and a live view.
//!
//! # Layout
//! - [`consumer`] — the consumer's settings and the hook positioning each partition at
//!   the offset its outputs need replayed.
//! - `worker` — the poll loop; [`decoding`] — decoding beside processing.
//! - [`dispatcher`] — the computation, free of I/O: the families of [`crate::families`],
//!   an event routed by its stream, one watermark per stream.
//! - `commit` — the output commit with the replay offsets; `publish` — alerts to
//!   `vallee.alerts`.
//! - [`empty_partitions`], [`live`], [`options`].
//!
//! Why its own consumer group rather than sharing ingest's: the stage must *replay* recent
//! history on start (window state and device tokens are never on disk), which would make
//! ingest re-read too; and the two scale and fail independently. The cost is a second read
//! of the topics.

mod commit;
pub mod consumer;
pub mod decoding;
pub mod dispatcher;
pub mod empty_partitions;
pub mod live;
pub mod options;
mod publish;
mod worker;

use std::sync::Arc;

pub use live::{LiveView, SharedLiveView};
pub use options::StreamOptions;
use tokio_util::sync::CancellationToken;
use vallee_lake::Lake;

use crate::Result;

/// Runs the stage on its own thread ([`vallee_kafka::host`]) until `shutdown` (then commits
/// what it computed) or a fatal error (which cancels `shutdown` too).
pub async fn run(
    options: StreamOptions,
    lake: Arc<Lake>,
    live: SharedLiveView,
    shutdown: CancellationToken,
) -> Result<()> {
    vallee_kafka::run_on_thread("vallee-stream", shutdown, move |handle, shutdown| {
        worker::run_blocking(options, lake, live, handle, shutdown)
    })
    .await
}
