//! A research query's result as it leaves, by `Accept`: JSON (`{"columns", "rows",
//! "truncated"}`), CSV or Arrow IPC. Encoding runs within the query's time limit, and the
//! encoded bytes are counted against the query's memory as they grow, like its batches.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::memory_pool::MemoryReservation;

/// The format asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Arrow,
}

impl Format {
    pub fn of(accept: &str) -> Format {
        if accept.contains("text/csv") {
            Format::Csv
        } else if accept.contains("application/vnd.apache.arrow.stream") {
            Format::Arrow
        } else {
            Format::Json
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => "application/vnd.apache.arrow.stream",
        }
    }
}

/// Why encoding stopped.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("{0}")]
    Memory(String),
    #[error("encoding the result failed: {0}")]
    Encoding(String),
}

/// Counts the bytes written against the query's reservation.
struct Metered<'a> {
    out: Vec<u8>,
    reservation: &'a MemoryReservation,
}

impl std::io::Write for Metered<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.reservation.try_grow(buf.len()).map_err(|e| {
            std::io::Error::other(format!("the encoded result would be too large: {e}"))
        })?;
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn failed(e: impl std::fmt::Display) -> EncodeError {
    let message = e.to_string();
    if message.contains("too large") || message.contains("Resources exhausted") {
        EncodeError::Memory(message)
    } else {
        EncodeError::Encoding(message)
    }
}

/// The result (`schema`: its columns, also when there is no row) in `format`; `None`: no
/// content (an Arrow stream of nothing).
pub fn encode(
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    truncated: bool,
    reservation: &MemoryReservation,
) -> Result<Option<Vec<u8>>, EncodeError> {
    let mut out = Metered {
        out: Vec::new(),
        reservation,
    };
    let plain: Vec<RecordBatch> = (batches.iter())
        .map(vallee_opendata::export::plain)
        .collect::<Result<_, _>>()
        .map_err(failed)?;
    match format {
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for b in &plain {
                w.write(b).map_err(failed)?;
            }
        }
        Format::Arrow => {
            let Some(first) = plain.first() else {
                return Ok(None);
            };
            let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut out, &first.schema())
                .map_err(failed)?;
            for b in &plain {
                w.write(b).map_err(failed)?;
            }
            w.finish().map_err(failed)?;
        }
        Format::Json => {
            use std::io::Write;
            let columns: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
            let columns = serde_json::to_vec(&columns).map_err(failed)?;
            out.write_all(b"{\"columns\":").map_err(failed)?;
            out.write_all(&columns).map_err(failed)?;
            out.write_all(b",\"rows\":").map_err(failed)?;
            if plain.iter().all(|b| b.num_rows() == 0) {
                out.write_all(b"[]").map_err(failed)?;
            } else {
                let mut w = arrow::json::ArrayWriter::new(&mut out);
                for b in &plain {
                    w.write(b).map_err(failed)?;
                }
                w.finish().map_err(failed)?;
            }
            write!(out, ",\"truncated\":{truncated}}}").map_err(failed)?;
        }
    }
    Ok(Some(out.out))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryConsumer, MemoryPool};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn json_csv_and_arrow_within_the_reservation() {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 20));
        let r = MemoryConsumer::new("t").register(&pool);
        let b = batch();
        let json = encode(
            Format::Json,
            &b.schema(),
            std::slice::from_ref(&b),
            true,
            &r,
        )
        .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&json.unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"columns": ["n", "s"], "rows": [{"n": 1, "s": "a"}, {"n": 2}], "truncated": true})
        );
        let empty = encode(Format::Json, &b.schema(), &[], false, &r)
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&empty).unwrap()["rows"],
            serde_json::json!([])
        );
        let csv = encode(
            Format::Csv,
            &b.schema(),
            std::slice::from_ref(&b),
            false,
            &r,
        )
        .unwrap();
        assert_eq!(String::from_utf8(csv.unwrap()).unwrap(), "n,s\n1,a\n2,\n");
        assert!(
            encode(Format::Arrow, &b.schema(), &[], false, &r)
                .unwrap()
                .is_none()
        );
        assert!(r.size() > 0, "the encoded bytes are counted");
        let tiny: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(10));
        let r = MemoryConsumer::new("t").register(&tiny);
        let err = encode(Format::Json, &b.schema(), &[b], false, &r).unwrap_err();
        assert!(matches!(err, EncodeError::Memory(_)), "{err}");
    }
}
