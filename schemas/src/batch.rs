//! Rows → Arrow record batches, one buffer per table.
//!
//! Records serialize (serde) straight into an `arrow_json` decoder built for the table's
//! schema, which is both the row buffer and the columnar encoder: no hand-written column
//! builders to keep in step with the schemas, and a test per table catches any drift.

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
#[derive(Debug)]
pub struct TableBuffer {
    table: Table,
    rows: RowBuffer,
}

impl TableBuffer {
    pub fn new(table: Table) -> Result<Self> {
        Ok(TableBuffer {
            table,
            rows: RowBuffer::new(table.name(), table.schema())?,
        })
    }

    pub fn table(&self) -> Table {
        self.table
    }

    /// Rows buffered since the last [`Self::finish`].
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Appends a data record with its day partition and lineage.
    pub fn push<R: Serialize>(
        &mut self,
        record: &R,
        day: i32,
        lineage: &Lineage<'_>,
    ) -> Result<()> {
        self.rows.push(&Row {
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
        self.rows.push(record)
    }

    /// Takes the buffered rows as one record batch (`None` when empty).
    pub fn finish(&mut self) -> Result<Option<RecordBatch>> {
        self.rows.finish()
    }
}
