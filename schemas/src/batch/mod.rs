//! Rows → Arrow record batches, one buffer per table.
//!
//! Records serialize (serde) straight into column builders made from the table's schema
//! ([`columns`]): no hand-written builders to keep in step with the schemas, and a test per
//! table catches any drift. Rows of schemas with nested columns (the stream stage's
//! lineage) go through an `arrow_json` decoder instead, which takes any schema.

mod columns;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::json::reader::{Decoder, ReaderBuilder};
use serde::Serialize;

use crate::contract::Table;
use crate::dead_letter::DeadLetterRecord;
use crate::{Error, Result};

/// Where a data row came from: its Kafka coordinates and when ingest processed it.
#[derive(Debug, Clone, Copy)]
pub struct Lineage<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Microseconds since the epoch, UTC.
    pub ingested_at_micros: i64,
}

#[derive(Serialize)]
struct Row<'a, R> {
    #[serde(flatten)]
    record: &'a R,
    day: i32,
    _topic: &'a str,
    _partition: i32,
    _offset: i64,
    _ingested_at: i64,
}

/// The day partition and lineage columns closing every data row (defined with the other
/// shared columns in [`crate::events`], which must not import this module).
pub use crate::events::lineage_fields;

/// Rows of any schema waiting to become one record batch (the stream stage's outputs use
/// it directly; ingest through [`TableBuffer`]).
pub struct RowBuffer {
    name: &'static str,
    decoder: Decoder,
}

impl std::fmt::Debug for RowBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowBuffer")
            .field("table", &self.name)
            .field("rows", &self.len())
            .finish()
    }
}

impl RowBuffer {
    /// A buffer for rows of `schema`, named `name` in errors.
    pub fn new(name: &'static str, schema: SchemaRef) -> Result<Self> {
        let decoder = ReaderBuilder::new(schema)
            .build_decoder()
            .map_err(|source| Error::Arrow {
                table: name,
                source,
            })?;
        Ok(RowBuffer { name, decoder })
    }

    /// Rows buffered since the last [`Self::finish`].
    pub fn len(&self) -> usize {
        self.decoder.len()
    }

    pub fn is_empty(&self) -> bool {
        self.decoder.is_empty()
    }

    /// Appends one row; its serde field names are the schema's column names.
    pub fn push<S: Serialize>(&mut self, row: &S) -> Result<()> {
        self.decoder
            .serialize(std::slice::from_ref(row))
            .map_err(|source| Error::Arrow {
                table: self.name,
                source,
            })
    }

    /// Takes the buffered rows as one record batch (`None` when empty).
    pub fn finish(&mut self) -> Result<Option<RecordBatch>> {
        self.decoder.flush().map_err(|source| Error::Arrow {
            table: self.name,
            source,
        })
    }
}

/// Rows waiting to become one record batch of a contract table.
pub struct TableBuffer {
    table: Table,
    rows: Encoder,
}

/// How a buffer turns rows into columns.
enum Encoder {
    /// Straight into builders: every contract table.
    Columns(columns::Columns),
    /// arrow-json's tape: the reference the contract's fuzz test compares with.
    Json(RowBuffer),
}

impl std::fmt::Debug for TableBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableBuffer")
            .field("table", &self.table)
            .field("rows", &self.len())
            .finish()
    }
}

impl TableBuffer {
    pub fn new(table: Table) -> Result<Self> {
        let rows = match columns::Columns::new(table.name(), table.schema()) {
            Some(columns) => Encoder::Columns(columns),
            None => Encoder::Json(RowBuffer::new(table.name(), table.schema())?),
        };
        Ok(TableBuffer { table, rows })
    }

    /// A buffer encoding through arrow-json whatever the table: the reference the
    /// contract's tests compare [`Self::new`]'s batches with, row for row.
    #[doc(hidden)]
    pub fn through_arrow_json(table: Table) -> Result<Self> {
        Ok(TableBuffer {
            table,
            rows: Encoder::Json(RowBuffer::new(table.name(), table.schema())?),
        })
    }

    pub fn table(&self) -> Table {
        self.table
    }

    /// Rows buffered since the last [`Self::finish`].
    pub fn len(&self) -> usize {
        match &self.rows {
            Encoder::Columns(c) => c.len(),
            Encoder::Json(j) => j.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push_row<S: Serialize>(&mut self, row: &S) -> Result<()> {
        match &mut self.rows {
            Encoder::Columns(c) => c.push(row),
            Encoder::Json(j) => j.push(row),
        }
    }

    /// Appends a data record with its day partition and lineage.
    pub fn push<R: Serialize>(
        &mut self,
        record: &R,
        day: i32,
        lineage: &Lineage<'_>,
    ) -> Result<()> {
        self.push_row(&Row {
            record,
            day,
            _topic: lineage.topic,
            _partition: lineage.partition,
            _offset: lineage.offset,
            _ingested_at: lineage.ingested_at_micros,
        })
    }

    /// Appends a dead letter (its own columns carry its coordinates).
    pub fn push_dead_letter(&mut self, record: &DeadLetterRecord) -> Result<()> {
        debug_assert_eq!(self.table, Table::DeadLetters);
        self.push_row(record)
    }

    /// Takes the buffered rows as one record batch (`None` when empty).
    pub fn finish(&mut self) -> Result<Option<RecordBatch>> {
        match &mut self.rows {
            Encoder::Columns(c) => c.finish(),
            Encoder::Json(j) => j.finish(),
        }
    }
}
