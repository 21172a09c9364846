//! The stage's computations, one family of derived tables per folder, each driven through
//! one lifecycle ([`Family`]), in the spirit of Arroyo's operators: the dispatcher
//! ([`crate::stage::dispatcher`]) routes each decoded event by stream to the family reading
//! it, advances event time, and collects what each family hands back.
//!
//! | family | reads | writes |
//! |---|---|---|
//! | [`footfall`] | beacons | `footfall`, `footfall_dwell` |
//! | [`presence`] | tourism | `site_presence` |
//! | [`bins`] | waste containers, waste vehicles | `fill_alerts`, `bin_forecast` |
//! | [`vine`] | vineyards | `vine_indicators`, `vine_alerts` |
//!
//! ```text
//!  restore(lake)           its own query over its tables' contract rows, on start
//!   └─► on_event(event)    per event of its streams: a static call, nothing allocated;
//!                          an event later than the correction horizon is told back
//!       advance(clock)     per tick: close what the watermarks passed
//!       drain_alerts()     after each chunk: alerts to vallee.alerts, at once
//!       drain_rows()       at each commit: the rows per table (to Arrow off the thread) …
//!       replay_from(clock) … with, per source partition, where a restart reads again
//! ```
//!
//! Each family owns its emitted-rows index (what its tables already hold, loaded by its
//! restore: a replayed emission equal to the stored one is not written again), its state
//! and its pending rows. It also tracks the replay position each of its source partitions
//! still needs ([`ReplayTracker`]): a stream feeds exactly one family, and how far back its
//! events are needed (window size, lateness, correction horizon; a day and more for bins
//! and vineyards) is that family's business.
//!
//! # Layout
//! - [`clock`] — one watermark per input stream, shared, and the [`EventClock`] a tick
//!   hands every family.
//! - [`replay`] — the smallest offset per source partition still needed.
//! - [`footfall`] — distinct devices per zone (PT5M, PT1H) and dwell time per zone-hour.
//! - [`presence`] — visitors and AR check-ins per site and hour.
//! - [`bins`] — fill alerts (full, fire, status, silence, proof of collection) and fill
//!   forecasts.
//! - [`vine`] — vineyard indicators per station and day, seasons, frost and mildew alerts.

pub mod bins;
pub mod clock;
pub mod footfall;
pub mod presence;
pub mod replay;
#[cfg(test)]
pub(crate) mod testing;
pub mod vine;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use arrow::array::RecordBatch;
use chrono::{DateTime, Utc};
use vallee_lake::Lake;
use vallee_schemas::contract::Stream;
use vallee_schemas::decode::Decoded;
use vallee_schemas::tables::{AlertRow, OutputTable, TableRow};

pub use clock::{EventClock, StageWatermarks};
pub use replay::{ReplayFrom, ReplayTracker, ResumeFloors};

use crate::Result;

/// Where an event was read, and its event time.
#[derive(Debug, Clone, Copy)]
pub struct Read<'a> {
    pub stream: Stream,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub time: DateTime<Utc>,
}

/// What became of an event a family was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Counted (or buffered to be), or nothing the family keeps.
    Taken,
    /// Later than its stream's correction horizon: a window it belongs to was already
    /// dropped. The dispatcher keeps it in `late_events` (windows that still held state
    /// counted it).
    TooLate,
}

/// Rows ready to commit: one batch per output table, still to be converted to Arrow.
pub type Rows = BTreeMap<OutputTable, PendingRows>;

/// One table's rows of a commit, converted to a record batch by whoever runs the commit:
/// the conversion (serde to Arrow, a fifth of the stage's thread on a backlog) happens
/// beside processing, not on the stage's thread.
pub struct PendingRows(Box<dyn FnOnce() -> Result<Option<RecordBatch>> + Send>);

impl PendingRows {
    fn of<R: TableRow + Send + 'static>(table: OutputTable, rows: Vec<R>) -> Self {
        PendingRows(Box::new(move || Ok(R::to_batch(table, &rows)?)))
    }

    /// The record batch (`None`: no row).
    pub fn into_batch(self) -> Result<Option<RecordBatch>> {
        (self.0)()
    }
}

impl std::fmt::Debug for PendingRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingRows")
    }
}

/// Every table's batch, converted here (tests, the engine-only bench).
pub fn batches(rows: Rows) -> Result<BTreeMap<OutputTable, RecordBatch>> {
    let mut out = BTreeMap::new();
    for (table, pending) in rows {
        if let Some(batch) = pending.into_batch()? {
            out.insert(table, batch);
        }
    }
    Ok(out)
}

/// One family of derived tables: how the dispatcher drives it, from the restore on start
/// to the rows of each commit. Every call comes from the stage's thread, in order.
pub trait Family {
    /// The streams whose events it takes (each input stream feeds one family).
    const INPUTS: &'static [Stream];
    /// The tables it writes (each output table is written by one family).
    const OUTPUTS: &'static [OutputTable];

    /// Reads what its tables already hold (its emitted-rows index, so that a replay writes
    /// only real corrections) and the state a restart resumes from.
    fn restore(&mut self, lake: &Lake) -> impl Future<Output = Result<()>>;

    /// A partition of one of its streams is read by this member from now on (until the
    /// next restore), `resumed` from the offset its outputs recorded (else from its
    /// beginning).
    fn partition_assigned(&mut self, _stream: Stream, _partition: i32, _resumed: bool) {}

    /// One decoded event of one of its streams, in the order of its partition.
    fn on_event(&mut self, event: &Decoded, read: Read<'_>) -> Result<Arrival>;

    /// Event time moved on: closes what the watermarks passed and resolves what waited.
    fn advance(&mut self, clock: &EventClock) -> Result<()>;

    /// Alerts decided since the last call (published at once, before any commit).
    fn drain_alerts(&mut self, _alerts: &mut Vec<AlertRow>) {}

    /// Rows produced since the last call, a batch per table.
    fn drain_rows(&mut self, rows: &mut Rows) -> Result<()>;

    /// Per source partition, the offset a restart must replay from to rebuild what the
    /// family still needs, given the watermarks.
    fn replay_from(&mut self, clock: &EventClock) -> Vec<ReplayFrom>;
}

/// `pending`, to become a batch of `table`, into `rows` (nothing when empty); `pending`
/// is emptied.
pub(crate) fn drain<R: TableRow + Send + 'static>(
    rows: &mut Rows,
    table: OutputTable,
    pending: &mut Vec<R>,
) -> Result<()> {
    if !pending.is_empty() {
        rows.insert(table, PendingRows::of(table, std::mem::take(pending)));
    }
    Ok(())
}

/// The revision to write for a window's value, or `None` when its table has that value
/// already (the index then holds it as the latest).
pub(crate) fn revision<K: std::hash::Hash + Eq, V: PartialEq + Copy>(
    index: &mut HashMap<K, (i32, V)>,
    key: K,
    value: V,
) -> Option<i32> {
    let revision = match index.get(&key) {
        Some((_, v)) if *v == value => return None,
        Some((r, _)) => r + 1,
        None => 0,
    };
    index.insert(key, (revision, value));
    Some(revision)
}

/// The rows of `from` (a table or a query) without their lineage: a restore never needs
/// it, and it is the heaviest column.
pub(crate) fn without_lineage(from: impl std::fmt::Display) -> String {
    format!("SELECT * EXCLUDE (lineage) FROM ({from})")
}

/// Makes sure the family's tables exist (a restore reads them).
pub(crate) async fn ensure_outputs<F: Family>(lake: &Lake) -> Result<()> {
    for table in F::OUTPUTS {
        lake.ensure(*table).await?;
    }
    Ok(())
}
