//! Record batches → bytes, per format, one batch at a time: a download holds one batch in
//! memory whatever the dataset's size.

use std::io::Write;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use bytes::Bytes;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::{Stream, StreamExt};
use serde_json::Value;

use crate::{Dataset, Error};

/// A download format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
    GeoJson,
    Parquet,
}

impl Format {
    pub fn from_extension(ext: &str) -> Option<Format> {
        match ext {
            "csv" => Some(Format::Csv),
            "ndjson" => Some(Format::Ndjson),
            "geojson" => Some(Format::GeoJson),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
            Format::GeoJson => "application/geo+json",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// Views of strings (DataFusion's default) become plain strings, which every writer and
/// reader knows.
pub fn plain(batch: &RecordBatch) -> Result<RecordBatch, Error> {
    let schema = plain_schema(&batch.schema());
    if schema == batch.schema() {
        return Ok(batch.clone());
    }
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Encode(e.to_string()))?;
    RecordBatch::try_new(schema, columns).map_err(|e| Error::Encode(e.to_string()))
}

/// The schema a stream's batches will have once made [`plain`].
pub fn plain_schema(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8View => f.as_ref().clone().with_data_type(DataType::Utf8),
                _ => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    ))
}

fn csv(batch: &RecordBatch, header: bool) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut w = arrow::csv::WriterBuilder::new()
        .with_header(header)
        .build(&mut out);
    w.write(batch).map_err(|e| Error::Encode(e.to_string()))?;
    drop(w);
    Ok(out)
}

fn ndjson(batch: &RecordBatch) -> Result<Vec<u8>, Error> {
    let mut w = arrow::json::LineDelimitedWriter::new(Vec::new());
    w.write(batch).map_err(|e| Error::Encode(e.to_string()))?;
    w.finish().map_err(|e| Error::Encode(e.to_string()))?;
    Ok(w.into_inner())
}

/// The rows of a batch as JSON objects.
pub fn json_rows(batch: &RecordBatch) -> Result<Vec<serde_json::Map<String, Value>>, Error> {
    let mut w = arrow::json::ArrayWriter::new(Vec::new());
    w.write(batch).map_err(|e| Error::Encode(e.to_string()))?;
    w.finish().map_err(|e| Error::Encode(e.to_string()))?;
    serde_json::from_slice(&w.into_inner()).map_err(|e| Error::Encode(e.to_string()))
}

fn geojson_features(
    batch: &RecordBatch,
    lat: &str,
    lon: &str,
    first: &mut bool,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    for mut row in json_rows(batch)? {
        let (Some(y), Some(x)) = (row.remove(lat), row.remove(lon)) else {
            continue;
        };
        let feature = serde_json::json!({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [x, y]},
            "properties": row,
        });
        if !*first {
            out.push(b',');
        }
        *first = false;
        serde_json::to_writer(&mut out, &feature).map_err(|e| Error::Encode(e.to_string()))?;
    }
    Ok(out)
}

/// A writer whose bytes are taken out after each row group.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("buffer lock"))
    }
}

/// The bytes of a download: `stream`'s batches encoded as `format`, with `version` named
/// in the document where the format has a place for it (GeoJSON, Parquet metadata).
pub fn encode(
    ds: &'static Dataset,
    format: Format,
    version: Option<i64>,
    stream: SendableRecordBatchStream,
) -> Result<impl Stream<Item = Result<Bytes, Error>> + Send, Error> {
    let schema = plain_schema(&stream.schema());
    let version_text = version.map_or("none".to_string(), |v| v.to_string());
    let point = ds.point;
    if format == Format::GeoJson && point.is_none() {
        return Err(Error::BadRequest(format!(
            "{} has no coordinates: no GeoJSON",
            ds.id
        )));
    }
    let parquet = match format {
        Format::Parquet => {
            let buffer = Shared::default();
            let props = parquet::file::properties::WriterProperties::builder()
                .set_key_value_metadata(Some(vec![
                    parquet::file::metadata::KeyValue::new("dataset".into(), ds.id.to_string()),
                    parquet::file::metadata::KeyValue::new(
                        "dataset.version".into(),
                        version_text.clone(),
                    ),
                    parquet::file::metadata::KeyValue::new(
                        "license".into(),
                        crate::metadata::LICENCE_SPDX.to_string(),
                    ),
                ]))
                .build();
            let writer =
                parquet::arrow::ArrowWriter::try_new(buffer.clone(), schema.clone(), Some(props))
                    .map_err(|e| Error::Encode(e.to_string()))?;
            Some((buffer, Arc::new(Mutex::new(Some(writer)))))
        }
        _ => None,
    };
    let head: Vec<u8> = match format {
        Format::Csv => csv(&RecordBatch::new_empty(schema.clone()), true)?,
        Format::GeoJson => format!(
            "{{\"type\":\"FeatureCollection\",\"metadata\":{{\"dataset\":\"{}\",\"version\":\"{version_text}\",\"license\":\"{}\"}},\"features\":[",
            ds.id,
            crate::metadata::LICENCE_SPDX
        )
        .into_bytes(),
        _ => Vec::new(),
    };
    let mut first_feature = true;
    let parquet_body = parquet.clone();
    let body = stream.map(move |batch| -> Result<Bytes, Error> {
        let batch = plain(&batch?)?;
        let bytes = match format {
            Format::Csv => csv(&batch, false)?,
            Format::Ndjson => ndjson(&batch)?,
            Format::GeoJson => {
                let (lat, lon) = point.expect("checked above");
                geojson_features(&batch, lat, lon, &mut first_feature)?
            }
            Format::Parquet => {
                let (buffer, writer) = parquet_body.as_ref().expect("parquet writer");
                let mut guard = writer.lock().expect("writer lock");
                let w = guard.as_mut().expect("open writer");
                w.write(&batch).map_err(|e| Error::Encode(e.to_string()))?;
                w.flush().map_err(|e| Error::Encode(e.to_string()))?;
                buffer.take()
            }
        };
        Ok(Bytes::from(bytes))
    });
    let tail = futures::stream::once(async move {
        match format {
            Format::GeoJson => Ok(Bytes::from_static(b"]}\n")),
            Format::Parquet => {
                let (buffer, writer) = parquet.as_ref().expect("parquet writer");
                let w = writer
                    .lock()
                    .expect("writer lock")
                    .take()
                    .expect("open writer");
                w.close().map_err(|e| Error::Encode(e.to_string()))?;
                Ok(Bytes::from(buffer.take()))
            }
            _ => Ok(Bytes::new()),
        }
    });
    Ok(futures::stream::once(async move { Ok(Bytes::from(head)) })
        .chain(body)
        .chain(tail)
        .filter(|b| futures::future::ready(!matches!(b, Ok(b) if b.is_empty()))))
}
