//! The contract of every lake table, raw and derived: what [`LakeTable`] answers (name,
//! Arrow schema, partitions, description, the streams that feed it, the keys and order
//! that make "the latest row" of an entity or a window), and for the derived tables the row
//! each one holds, written to Arrow and read back from it.
//!
//! ```text
//!  raw (ingest)      contract::Table ──┐
//!                                      ├─► LakeTable: name, schema, partitions, description,
//!  derived (stage)   OutputTable ──────┘              sources, keys, latest_order
//!                        │
//!                        └─► rows: FootfallRow, DwellRow, PresenceRow, AlertRow,
//!                                  ForecastRow, VineRow
//!                              rows ── TableRow::to_batch ──► RecordBatch (the stage writes)
//!                              RecordBatch ── TableRow::from_batch ──► rows (restore, API)
//! ```
//!
//! # Layout
//! - [`derived`] — [`OutputTable`], the tables the stream stage writes.
//! - [`footfall`], [`presence`], [`alerts`], [`forecast`], [`vine`] — one file per family
//!   of derived tables: its schema and row; [`alerts`] also has the vocabularies alert rows
//!   carry ([`AlertKind`], [`AlertState`], [`ClearReason`], [`RiskLevel`]).
//! - [`late`] — `late_events`, the events later than their stream's correction horizon
//!   (written by the stage, folded by `vallee lake fold-late`).
//! - [`device_health`] — [`DeviceHealthTable`], the API's health checks of field devices
//!   (neither raw nor derived by the stage: the one table the API writes in `lake/`).
//! - [`lineage`] — the `lineage` column of every derived row.
//! - [`columns`] — typed column readers (Arrow → Rust values), used by every reader.
//!
//! # Example
//! ```
//! use vallee_schemas::tables::{LakeTable, Order, OutputTable};
//!
//! let t = OutputTable::Footfall;
//! assert_eq!(t.keys(), ["zone", "window", "dateObservedFrom"]);
//! assert_eq!(t.latest_order(), [Order::Desc("revision")]);
//! assert!(t.schema().field_with_name("peopleCount").is_ok());
//! ```

pub mod alerts;
pub mod columns;
pub mod derived;
pub mod device_health;
pub mod footfall;
pub mod forecast;
pub mod late;
pub mod lineage;
pub mod presence;
pub mod vine;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use serde::Serialize;

pub use alerts::{AlertKind, AlertRow, AlertState, ClearReason, RiskLevel};
pub use derived::OutputTable;
pub use device_health::{DeviceHealthRow, DeviceHealthTable};
pub use footfall::{DwellRow, FootfallRow};
pub use forecast::ForecastRow;
pub use late::{LateEventRow, LateState};
pub use lineage::{Lineage, Source};
pub use presence::{PointCheckins, PresenceRow};
pub use vine::VineRow;

use crate::Result;
use crate::batch::RowBuffer;
pub use crate::contract::Order;
use crate::contract::{Stream, Table};

/// A table the lake can hold: the raw tables of the contract ([`Table`]) and the tables
/// the stream stage derives ([`OutputTable`]).
pub trait LakeTable: Copy + Send + Sync + std::fmt::Debug + 'static {
    /// Folder name under the lake root, and SQL name.
    fn name(&self) -> &'static str;
    /// The Arrow schema (the Delta schema is derived from it).
    fn schema(&self) -> SchemaRef;
    fn partition_columns(&self) -> &'static [&'static str];
    /// Written into the Delta table's metadata.
    fn description(&self) -> &'static str;
    /// The input streams whose messages feed the table.
    fn sources(&self) -> &'static [Stream];
    /// The columns naming what a row is about (an entity, a window, a day): "the latest"
    /// is one row per key. Empty: the table has no latest row of anything.
    fn keys(&self) -> &'static [&'static str];
    /// Which row of a key is the latest: the first in this order.
    fn latest_order(&self) -> &'static [Order];
}

impl LakeTable for Table {
    fn name(&self) -> &'static str {
        Table::name(*self)
    }
    fn schema(&self) -> SchemaRef {
        Table::schema(*self)
    }
    fn partition_columns(&self) -> &'static [&'static str] {
        Table::partition_columns(*self)
    }
    fn description(&self) -> &'static str {
        Table::description(*self)
    }
    fn sources(&self) -> &'static [Stream] {
        Table::sources(*self)
    }
    fn keys(&self) -> &'static [&'static str] {
        Table::keys(*self)
    }
    fn latest_order(&self) -> &'static [Order] {
        Table::latest_order(*self)
    }
}

/// A row of a derived table, converted both ways: to Arrow for writing (through serde, the
/// field names being the column names) and from Arrow for reading (column by column with
/// [`columns`], no JSON in between).
pub trait TableRow: Serialize + Sized {
    /// The tables holding rows of this shape.
    const TABLES: &'static [OutputTable];

    /// The rows of a batch with the table's columns, read by name: other columns are
    /// ignored, and `lineage` may be left out (it then reads empty).
    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>>;

    /// The rows of several batches, in order.
    fn from_batches(batches: &[RecordBatch]) -> Result<Vec<Self>> {
        let mut rows = Vec::new();
        for batch in batches {
            rows.extend(Self::from_batch(batch)?);
        }
        Ok(rows)
    }

    /// The rows as one record batch of `table` (`None` when there are none).
    fn to_batch(table: OutputTable, rows: &[Self]) -> Result<Option<RecordBatch>> {
        debug_assert!(Self::TABLES.contains(&table), "{table} holds other rows");
        let mut buffer = RowBuffer::new(table.name(), table.schema())?;
        for row in rows {
            buffer.push(row)?;
        }
        buffer.finish()
    }
}

/// Every table of the internal lake: ingest's contract tables, the stage's outputs, then
/// the API's health checks.
pub fn lake_table_names() -> Vec<&'static str> {
    Table::ALL
        .iter()
        .map(|t| t.name())
        .chain(OutputTable::ALL.iter().map(|t| t.name()))
        .chain([DeviceHealthTable::NAME])
        .collect()
}

#[cfg(test)]
mod tests;
