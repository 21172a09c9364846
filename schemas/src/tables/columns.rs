//! Typed column readers: the one place where Arrow arrays read back from the lake become
//! Rust values.
//!
//! What a query returns is not always the type the table was written with: DataFusion 55
//! returns strings as `Utf8View`, a `CAST` may widen an integer, a list may come back as a
//! `LargeList`. Each reader accepts the types that carry its values (strings: `Utf8`,
//! `Utf8View`, `LargeUtf8`; timestamps: microseconds of any time zone, the instant being
//! the same) and casts anything else to the type it expects, so a query is free to shape
//! its columns and the rows built from them stay exact.
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{Int32Array, RecordBatch, StringViewArray};
//! use vallee_schemas::tables::columns::Columns;
//!
//! let batch = RecordBatch::try_from_iter([
//!     ("zone", Arc::new(StringViewArray::from(vec!["za", "zb"])) as _),
//!     ("revision", Arc::new(Int32Array::from(vec![0, 2])) as _),
//! ]).unwrap();
//! let columns = Columns::of_batch("footfall", &batch);
//! let (mut zone, mut revision) = (columns.strings("zone")?, columns.ints("revision")?);
//! assert_eq!((zone.need(1)?, revision.need(1)?), ("zb".to_string(), 2));
//! # Ok::<(), vallee_schemas::Error>(())
//! ```

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StructArray};
use arrow::datatypes::{
    DataType, Date32Type, Fields, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType,
};
use chrono::{DateTime, NaiveDate, Utc};

use crate::{Error, Result};

/// The named columns of a batch (or of a struct array: the elements of a list of structs),
/// read as typed values.
#[derive(Debug, Clone)]
pub struct Columns {
    table: &'static str,
    fields: Fields,
    arrays: Vec<ArrayRef>,
    rows: usize,
}

/// One column's values, one per row (`None`: null).
#[derive(Debug, Clone)]
pub struct Column<T> {
    table: &'static str,
    name: String,
    values: Vec<Option<T>>,
}

impl<T> Column<T> {
    /// The value of `row`, taken out of the column (`None`: null).
    pub fn take(&mut self, row: usize) -> Option<T> {
        self.values.get_mut(row).and_then(Option::take)
    }

    /// The value of `row`, taken out of the column; a null is an error (the contract
    /// says the column is never null).
    pub fn need(&mut self, row: usize) -> Result<T> {
        let (table, name) = (self.table, self.name.clone());
        self.take(row).ok_or_else(|| Error::Column {
            table,
            column: name,
            message: format!("null in row {row}"),
        })
    }
}

impl Columns {
    /// The columns of a record batch, `table` naming it in errors.
    pub fn of_batch(table: &'static str, batch: &RecordBatch) -> Self {
        Columns {
            table,
            fields: batch.schema().fields().clone(),
            arrays: batch.columns().to_vec(),
            rows: batch.num_rows(),
        }
    }

    /// The fields of a struct array (one element of a list of structs).
    pub fn of_struct(table: &'static str, array: &StructArray) -> Self {
        Columns {
            table,
            fields: array.fields().clone(),
            arrays: array.columns().to_vec(),
            rows: array.len(),
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Whether the batch has this column (a query may leave optional ones out).
    pub fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.name() == name)
    }

    fn error(&self, name: &str, message: impl Into<String>) -> Error {
        Error::Column {
            table: self.table,
            column: name.to_string(),
            message: message.into(),
        }
    }

    fn array(&self, name: &str) -> Result<&ArrayRef> {
        self.fields
            .iter()
            .position(|f| f.name() == name)
            .map(|i| &self.arrays[i])
            .ok_or_else(|| self.error(name, "missing from the batch"))
    }

    /// The column as `to`, cast when it has another type.
    fn cast(&self, name: &str, to: &DataType) -> Result<ArrayRef> {
        let array = self.array(name)?;
        if array.data_type() == to {
            return Ok(array.clone());
        }
        arrow::compute::cast(array, to)
            .map_err(|e| self.error(name, format!("{} is not {to}: {e}", array.data_type())))
    }

    fn column<T>(&self, name: &str, values: Vec<Option<T>>) -> Column<T> {
        Column {
            table: self.table,
            name: name.to_string(),
            values,
        }
    }

    /// Strings of any Arrow string type.
    pub fn strings(&self, name: &str) -> Result<Column<String>> {
        let array = self.array(name)?;
        let values: Vec<Option<String>> = match array.data_type() {
            DataType::Utf8View => array.as_string_view().iter().map(own).collect(),
            DataType::Utf8 => array.as_string::<i32>().iter().map(own).collect(),
            DataType::LargeUtf8 => array.as_string::<i64>().iter().map(own).collect(),
            _ => {
                let cast = self.cast(name, &DataType::Utf8)?;
                cast.as_string::<i32>().iter().map(own).collect()
            }
        };
        Ok(self.column(name, values))
    }

    /// UTC instants of a timestamp column (microseconds; other units are cast).
    pub fn timestamps(&self, name: &str) -> Result<Column<DateTime<Utc>>> {
        let array = self.array(name)?;
        let array = match array.data_type() {
            // The instant does not depend on the zone the column is labelled with.
            DataType::Timestamp(TimeUnit::Microsecond, _) => array.clone(),
            DataType::Timestamp(_, zone) => self.cast(
                name,
                &DataType::Timestamp(TimeUnit::Microsecond, zone.clone()),
            )?,
            other => return Err(self.error(name, format!("{other} is not a timestamp"))),
        };
        let micros = array.as_primitive::<TimestampMicrosecondType>();
        let values = micros
            .iter()
            .map(|v| v.and_then(DateTime::from_timestamp_micros))
            .collect();
        Ok(self.column(name, values))
    }

    /// Integers of any width, as `i64`.
    pub fn ints(&self, name: &str) -> Result<Column<i64>> {
        let array = self.cast(name, &DataType::Int64)?;
        let values = array.as_primitive::<Int64Type>().iter().collect();
        Ok(self.column(name, values))
    }

    /// Floating-point numbers, as `f64`.
    pub fn floats(&self, name: &str) -> Result<Column<f64>> {
        let array = self.cast(name, &DataType::Float64)?;
        let values = array.as_primitive::<Float64Type>().iter().collect();
        Ok(self.column(name, values))
    }

    /// Calendar dates (`Date32`).
    pub fn dates(&self, name: &str) -> Result<Column<NaiveDate>> {
        let array = self.cast(name, &DataType::Date32)?;
        let dates = array.as_primitive::<Date32Type>();
        let values = (0..dates.len())
            .map(|i| dates.is_valid(i).then(|| dates.value_as_date(i)).flatten())
            .collect();
        Ok(self.column(name, values))
    }

    /// Dates as days since 1970-01-01 (the `day` partition column as rows carry it).
    pub fn days(&self, name: &str) -> Result<Column<i32>> {
        let array = self.cast(name, &DataType::Date32)?;
        let values = array.as_primitive::<Date32Type>().iter().collect();
        Ok(self.column(name, values))
    }

    /// Booleans.
    pub fn bools(&self, name: &str) -> Result<Column<bool>> {
        let array = self.cast(name, &DataType::Boolean)?;
        let values = array.as_boolean().iter().collect();
        Ok(self.column(name, values))
    }

    /// A list of structs per row, each read with [`Columns::of_struct`].
    pub fn struct_lists(&self, name: &str) -> Result<Column<Columns>> {
        let array = self.array(name)?;
        let element = |i: usize| -> Result<Option<Columns>> {
            if array.is_null(i) {
                return Ok(None);
            }
            let value = match array.data_type() {
                DataType::List(_) => array.as_list::<i32>().value(i),
                DataType::LargeList(_) => array.as_list::<i64>().value(i),
                other => return Err(self.error(name, format!("{other} is not a list"))),
            };
            let structs = value
                .as_struct_opt()
                .ok_or_else(|| self.error(name, "a list of something else than structs"))?;
            Ok(Some(Columns::of_struct(self.table, structs)))
        };
        let values = (0..array.len()).map(element).collect::<Result<_>>()?;
        Ok(self.column(name, values))
    }
}

fn own(s: Option<&str>) -> Option<String> {
    s.map(str::to_string)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        BooleanArray, Date32Array, Float64Array, Int32Array, LargeStringArray, ListArray,
        StringArray, StringViewArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    };
    use arrow::datatypes::Field;

    use super::*;

    #[test]
    fn every_string_type_reads_the_same() {
        let batch = RecordBatch::try_from_iter([
            (
                "view",
                Arc::new(StringViewArray::from(vec![Some("a"), None])) as ArrayRef,
            ),
            ("utf8", Arc::new(StringArray::from(vec![Some("a"), None]))),
            (
                "large",
                Arc::new(LargeStringArray::from(vec![Some("a"), None])),
            ),
        ])
        .unwrap();
        let columns = Columns::of_batch("t", &batch);
        for name in ["view", "utf8", "large"] {
            let mut c = columns.strings(name).unwrap();
            assert_eq!(c.take(0).as_deref(), Some("a"), "{name}");
            assert_eq!(c.take(1), None, "{name}");
        }
    }

    #[test]
    fn timestamps_read_as_the_same_instant_whatever_the_unit_or_zone() {
        let t: DateTime<Utc> = "2026-11-28T10:15:00.123456Z".parse().unwrap();
        let batch = RecordBatch::try_from_iter([
            (
                "utc",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![t.timestamp_micros()])
                        .with_timezone("UTC"),
                ) as ArrayRef,
            ),
            (
                "naive",
                Arc::new(TimestampMicrosecondArray::from(vec![t.timestamp_micros()])),
            ),
            (
                "millis",
                Arc::new(
                    TimestampMillisecondArray::from(vec![t.timestamp_millis()])
                        .with_timezone("UTC"),
                ),
            ),
        ])
        .unwrap();
        let columns = Columns::of_batch("t", &batch);
        assert_eq!(columns.timestamps("utc").unwrap().need(0).unwrap(), t);
        assert_eq!(columns.timestamps("naive").unwrap().need(0).unwrap(), t);
        assert_eq!(
            columns.timestamps("millis").unwrap().need(0).unwrap(),
            DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap()
        );
    }

    #[test]
    fn numbers_dates_and_booleans_read_with_their_nulls() {
        let batch = RecordBatch::try_from_iter([
            (
                "int",
                Arc::new(Int32Array::from(vec![Some(7), None])) as ArrayRef,
            ),
            ("float", Arc::new(Float64Array::from(vec![Some(0.5), None]))),
            ("day", Arc::new(Date32Array::from(vec![Some(20_000), None]))),
            ("flag", Arc::new(BooleanArray::from(vec![Some(true), None]))),
        ])
        .unwrap();
        let columns = Columns::of_batch("t", &batch);
        let mut int = columns.ints("int").unwrap();
        assert_eq!((int.take(0), int.take(1)), (Some(7), None));
        assert_eq!(columns.floats("float").unwrap().take(0), Some(0.5));
        let day = NaiveDate::from_ymd_opt(2024, 10, 4).unwrap();
        assert_eq!(columns.dates("day").unwrap().take(0), Some(day));
        assert_eq!(columns.days("day").unwrap().take(0), Some(20_000));
        assert_eq!(columns.bools("flag").unwrap().take(1), None);
        let null = columns.floats("float").unwrap().need(1).unwrap_err();
        assert!(null.to_string().contains("column float"), "{null}");
        let missing = columns.ints("nope").unwrap_err();
        assert!(missing.to_string().contains("missing"), "{missing}");
    }

    #[test]
    fn a_list_of_structs_reads_element_by_element() {
        let fields = Fields::from(vec![Field::new("n", DataType::Int64, false)]);
        let values = StructArray::new(
            fields.clone(),
            vec![Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3]))],
            None,
        );
        let list = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Struct(fields), false)),
            arrow::buffer::OffsetBuffer::from_lengths([2, 0, 1]),
            Arc::new(values),
            None,
        );
        let batch = RecordBatch::try_from_iter([("l", Arc::new(list) as ArrayRef)]).unwrap();
        let mut lists = Columns::of_batch("t", &batch).struct_lists("l").unwrap();
        let read = |c: Columns| -> Vec<i64> {
            let mut n = c.ints("n").unwrap();
            (0..c.len()).map(|i| n.need(i).unwrap()).collect()
        };
        assert_eq!(read(lists.need(0).unwrap()), [1, 2]);
        assert_eq!(read(lists.need(1).unwrap()), Vec::<i64>::new());
        assert_eq!(read(lists.need(2).unwrap()), [3]);
    }
}
