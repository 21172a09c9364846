//! Rows straight into Arrow column builders.
//!
//! A row (any `Serialize` struct, flattened parts included) is walked by serde once: each
//! field finds its column by name and appends its value to that column's builder, so a
//! number stays a number and a text is copied once. arrow-json's serde path, used before,
//! first wrote every row onto a tape and decoded the tape into columns when the batch was
//! made: twice the work, on ingest's own thread. The columns come from the table's Arrow
//! schema, so the record structs and the schemas stay the only definitions, as before; a
//! field whose value a column cannot take is an error naming both, which each table's
//! tests (and the contract's fuzz test, comparing with arrow-json) would show at once.

use std::collections::HashMap;
use std::fmt;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder,
    Int64Builder, ListBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use serde::Serialize;
use serde::ser::{self, Impossible};

use crate::{Error, Result};

/// One column being built, for the types the contract's tables use.
enum Builder {
    Utf8(StringBuilder),
    Float64(Float64Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Boolean(BooleanBuilder),
    Date32(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    StringList(ListBuilder<StringBuilder>),
}

impl Builder {
    fn for_type(data_type: &DataType) -> Option<Builder> {
        Some(match data_type {
            DataType::Utf8 => Builder::Utf8(StringBuilder::new()),
            DataType::Float64 => Builder::Float64(Float64Builder::new()),
            DataType::Int32 => Builder::Int32(Int32Builder::new()),
            DataType::Int64 => Builder::Int64(Int64Builder::new()),
            DataType::Boolean => Builder::Boolean(BooleanBuilder::new()),
            DataType::Date32 => Builder::Date32(Date32Builder::new()),
            DataType::Timestamp(TimeUnit::Microsecond, zone) => Builder::Timestamp(
                TimestampMicrosecondBuilder::new().with_timezone_opt(zone.clone()),
            ),
            DataType::List(item) if item.data_type() == &DataType::Utf8 => {
                Builder::StringList(ListBuilder::new(StringBuilder::new()).with_field(item.clone()))
            }
            _ => return None,
        })
    }

    fn dyn_builder(&mut self) -> &mut dyn ArrayBuilder {
        match self {
            Builder::Utf8(b) => b,
            Builder::Float64(b) => b,
            Builder::Int32(b) => b,
            Builder::Int64(b) => b,
            Builder::Boolean(b) => b,
            Builder::Date32(b) => b,
            Builder::Timestamp(b) => b,
            Builder::StringList(b) => b,
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Utf8(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Boolean(b) => b.append_null(),
            Builder::Date32(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::StringList(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        self.dyn_builder().finish()
    }
}

/// Rows of one schema being appended to its columns.
pub(crate) struct Columns {
    table: &'static str,
    schema: SchemaRef,
    names: Vec<String>,
    by_name: HashMap<String, usize>,
    /// Per column, where the `&'static str` field name that last found it lies (address,
    /// length): a struct's field gives the same one every row.
    static_names: Vec<(usize, usize)>,
    builders: Vec<Builder>,
    /// The row (counted from 1) each column last received a value for.
    filled: Vec<usize>,
    rows: usize,
    /// Why a row failed half-way: its columns no longer line up, so the buffer is unusable.
    broken: Option<String>,
}

impl Columns {
    /// Columns for `schema`, or `None` when one of its types is not one this encoder
    /// builds (the caller then keeps arrow-json's).
    pub(crate) fn new(table: &'static str, schema: SchemaRef) -> Option<Columns> {
        let builders = schema
            .fields()
            .iter()
            .map(|f| Builder::for_type(f.data_type()))
            .collect::<Option<Vec<_>>>()?;
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let by_name = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        Some(Columns {
            table,
            filled: vec![0; names.len()],
            static_names: vec![(0, 0); names.len()],
            schema,
            names,
            by_name,
            builders,
            rows: 0,
            broken: None,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    fn error(&self, message: String) -> Error {
        Error::Arrow {
            table: self.table,
            source: ArrowError::SchemaError(message),
        }
    }

    /// Appends one row; its serde field names are the schema's column names (a field no
    /// column has is ignored, a column no field names is null).
    pub(crate) fn push<S: Serialize>(&mut self, row: &S) -> Result<()> {
        if let Some(why) = &self.broken {
            return Err(self.error(format!("an earlier row failed: {why}")));
        }
        let mut serializer = RowSerializer {
            columns: self,
            key: String::new(),
            cursor: 0,
        };
        if let Err(Fault(why)) = row.serialize(&mut serializer) {
            self.broken = Some(why.clone());
            return Err(self.error(why));
        }
        let row = self.rows + 1;
        for (builder, filled) in self.builders.iter_mut().zip(&mut self.filled) {
            if *filled != row {
                builder.append_null();
                *filled = row;
            }
        }
        self.rows = row;
        Ok(())
    }

    /// Takes the rows as one record batch (`None` when empty); the columns start empty.
    pub(crate) fn finish(&mut self) -> Result<Option<RecordBatch>> {
        if let Some(why) = &self.broken {
            return Err(self.error(format!("an earlier row failed: {why}")));
        }
        if self.rows == 0 {
            return Ok(None);
        }
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        self.filled.fill(0);
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), arrays)
            .map(Some)
            .map_err(|source| Error::Arrow {
                table: self.table,
                source,
            })
    }

    /// The column named `name`: rows give their fields in one order, mostly the schema's,
    /// so the column after the last one found is tried before the map.
    fn find(&self, name: &str, cursor: &mut usize) -> Option<usize> {
        let i = match self.names.get(*cursor) {
            Some(n) if n == name => *cursor,
            _ => *self.by_name.get(name)?,
        };
        *cursor = i + 1;
        Some(i)
    }

    /// [`Self::find`] for a struct's field: a name seen at the cursor's column before is
    /// found by its address, without comparing its bytes (static text never changes, so
    /// the same address and length are the same name).
    fn find_static(&mut self, name: &'static str, cursor: &mut usize) -> Option<usize> {
        let key = (name.as_ptr() as usize, name.len());
        if self.static_names.get(*cursor) == Some(&key) {
            let i = *cursor;
            *cursor = i + 1;
            return Some(i);
        }
        let i = self.find(name, cursor)?;
        self.static_names[i] = key;
        Some(i)
    }

    /// Appends `value` to column `i` (found by name for this row).
    fn fill<T: Serialize + ?Sized>(&mut self, i: usize, value: &T) -> Result<(), Fault> {
        let row = self.rows + 1;
        if self.filled[i] == row {
            return Err(Fault(format!(
                "column {} is given twice in one row",
                self.names[i]
            )));
        }
        value.serialize(ValueSerializer {
            builder: &mut self.builders[i],
            column: &self.names[i],
        })?;
        self.filled[i] = row;
        Ok(())
    }
}

/// Why a row did not fit (serde's error type here).
#[derive(Debug)]
struct Fault(String);

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fault {}

impl ser::Error for Fault {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Fault(msg.to_string())
    }
}

/// Methods of a serde `Serializer` for values a place does not take: each refuses with
/// what it was given (`@scalars` first: every number, boolean and character).
macro_rules! refuse {
    (@scalars $($rest:tt)*) => {
        refuse! {
            serialize_bool(bool) -> (): "a boolean";
            serialize_i8(i8) -> (): "a number";
            serialize_i16(i16) -> (): "a number";
            serialize_i32(i32) -> (): "a number";
            serialize_i64(i64) -> (): "a number";
            serialize_u8(u8) -> (): "a number";
            serialize_u16(u16) -> (): "a number";
            serialize_u32(u32) -> (): "a number";
            serialize_u64(u64) -> (): "a number";
            serialize_f32(f32) -> (): "a number";
            serialize_f64(f64) -> (): "a number";
            serialize_char(char) -> (): "a character";
            $($rest)*
        }
    };
    ($($method:ident($($arg:ty),*) -> $ok:ty: $what:literal;)*) => {
        $(
            fn $method(self, $(_: $arg),*) -> Result<$ok, Fault> {
                Err(self.refuse($what))
            }
        )*
    };
}

/// The methods of a serde `Serializer` that look through a wrapper (an option's value, a
/// newtype's) and refuse an enum's newtype variant.
macro_rules! see_through {
    () => {
        fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Fault> {
            value.serialize(self)
        }

        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            value: &T,
        ) -> Result<(), Fault> {
            value.serialize(self)
        }

        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<(), Fault> {
            Err(self.refuse("a variant"))
        }
    };
}

/// The whole row: a struct, or a map when a part is flattened into it.
struct RowSerializer<'c> {
    columns: &'c mut Columns,
    /// The key of the map entry whose value comes next.
    key: String,
    cursor: usize,
}

impl RowSerializer<'_> {
    fn refuse(&self, what: &str) -> Fault {
        Fault(format!("a row must be a struct or a map, not {what}"))
    }
}

impl ser::Serializer for &mut RowSerializer<'_> {
    type Ok = ();
    type Error = Fault;
    type SerializeSeq = Impossible<(), Fault>;
    type SerializeTuple = Impossible<(), Fault>;
    type SerializeTupleStruct = Impossible<(), Fault>;
    type SerializeTupleVariant = Impossible<(), Fault>;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), Fault>;

    refuse! {
        @scalars
        serialize_str(&str) -> (): "a string";
        serialize_bytes(&[u8]) -> (): "bytes";
        serialize_none() -> (): "nothing";
        serialize_unit() -> (): "nothing";
        serialize_unit_struct(&'static str) -> (): "nothing";
        serialize_unit_variant(&'static str, u32, &'static str) -> (): "a name";
        serialize_seq(Option<usize>) -> Self::SerializeSeq: "a list";
        serialize_tuple(usize) -> Self::SerializeTuple: "a tuple";
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct: "a tuple";
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant: "a variant";
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant: "a variant";
    }

    see_through!();

    fn serialize_map(self, _: Option<usize>) -> Result<Self, Fault> {
        Ok(self)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Fault> {
        Ok(self)
    }
}

impl ser::SerializeStruct for &mut RowSerializer<'_> {
    type Ok = ();
    type Error = Fault;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Fault> {
        match self.columns.find_static(key, &mut self.cursor) {
            Some(i) => self.columns.fill(i, value),
            None => Ok(()),
        }
    }

    fn end(self) -> Result<(), Fault> {
        Ok(())
    }
}

impl ser::SerializeMap for &mut RowSerializer<'_> {
    type Ok = ();
    type Error = Fault;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Fault> {
        self.key.clear();
        key.serialize(KeySerializer(|k: &str| self.key.push_str(k)))
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Fault> {
        match self.columns.find(&self.key, &mut self.cursor) {
            Some(i) => self.columns.fill(i, value),
            None => Ok(()),
        }
    }

    /// A key and its value together (a flattened part gives its fields so): the column is
    /// found from the key as it is, without copying it.
    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), Fault> {
        let mut found = None;
        let (columns, cursor) = (&*self.columns, &mut self.cursor);
        key.serialize(KeySerializer(|k: &str| found = columns.find(k, cursor)))?;
        match found {
            Some(i) => self.columns.fill(i, value),
            None => Ok(()),
        }
    }

    fn end(self) -> Result<(), Fault> {
        Ok(())
    }
}

/// A map key, which must be a string (a column name), handed to the function it holds.
struct KeySerializer<F>(F);

impl<F> KeySerializer<F> {
    fn refuse(&self, what: &str) -> Fault {
        Fault(format!("a row's keys are column names, not {what}"))
    }
}

impl<F: FnOnce(&str)> ser::Serializer for KeySerializer<F> {
    type Ok = ();
    type Error = Fault;
    type SerializeSeq = Impossible<(), Fault>;
    type SerializeTuple = Impossible<(), Fault>;
    type SerializeTupleStruct = Impossible<(), Fault>;
    type SerializeTupleVariant = Impossible<(), Fault>;
    type SerializeMap = Impossible<(), Fault>;
    type SerializeStruct = Impossible<(), Fault>;
    type SerializeStructVariant = Impossible<(), Fault>;

    refuse! {
        @scalars
        serialize_bytes(&[u8]) -> (): "bytes";
        serialize_none() -> (): "nothing";
        serialize_unit() -> (): "nothing";
        serialize_unit_struct(&'static str) -> (): "nothing";
        serialize_seq(Option<usize>) -> Self::SerializeSeq: "a list";
        serialize_tuple(usize) -> Self::SerializeTuple: "a tuple";
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct: "a tuple";
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant: "a variant";
        serialize_map(Option<usize>) -> Self::SerializeMap: "a map";
        serialize_struct(&'static str, usize) -> Self::SerializeStruct: "a struct";
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant: "a variant";
    }

    fn serialize_str(self, v: &str) -> Result<(), Fault> {
        (self.0)(v);
        Ok(())
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, v: &'static str) -> Result<(), Fault> {
        self.serialize_str(v)
    }

    see_through!();
}

/// Methods of a serde `Serializer` taking a narrow number as the wide one it converts to
/// without loss.
macro_rules! widen {
    ($($method:ident($narrow:ty) => $wide:ident;)*) => {
        $(
            fn $method(self, v: $narrow) -> Result<(), Fault> {
                self.$wide(v.into())
            }
        )*
    };
}

/// One field's value, appended to its column.
struct ValueSerializer<'b> {
    builder: &'b mut Builder,
    column: &'b str,
}

impl ValueSerializer<'_> {
    fn refuse(&self, what: &str) -> Fault {
        let kind = match self.builder {
            Builder::Utf8(_) => "text",
            Builder::Float64(_) => "a float",
            Builder::Int32(_) | Builder::Int64(_) => "an integer",
            Builder::Boolean(_) => "a boolean",
            Builder::Date32(_) => "a day number",
            Builder::Timestamp(_) => "microseconds",
            Builder::StringList(_) => "a list of texts",
        };
        Fault(format!("column {} takes {kind}, not {what}", self.column))
    }
}

impl<'b> ser::Serializer for ValueSerializer<'b> {
    type Ok = ();
    type Error = Fault;
    type SerializeSeq = ListSerializer<'b>;
    type SerializeTuple = Impossible<(), Fault>;
    type SerializeTupleStruct = Impossible<(), Fault>;
    type SerializeTupleVariant = Impossible<(), Fault>;
    type SerializeMap = Impossible<(), Fault>;
    type SerializeStruct = Impossible<(), Fault>;
    type SerializeStructVariant = Impossible<(), Fault>;

    refuse! {
        serialize_bytes(&[u8]) -> (): "bytes";
        serialize_tuple(usize) -> Self::SerializeTuple: "a tuple";
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct: "a tuple";
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant: "a variant";
        serialize_map(Option<usize>) -> Self::SerializeMap: "a map";
        serialize_struct(&'static str, usize) -> Self::SerializeStruct: "a struct";
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant: "a variant";
    }

    see_through!();

    widen! {
        serialize_i8(i8) => serialize_i64;
        serialize_i16(i16) => serialize_i64;
        serialize_i32(i32) => serialize_i64;
        serialize_u8(u8) => serialize_i64;
        serialize_u16(u16) => serialize_i64;
        serialize_u32(u32) => serialize_i64;
        serialize_f32(f32) => serialize_f64;
    }

    fn serialize_bool(self, v: bool) -> Result<(), Fault> {
        match self.builder {
            Builder::Boolean(b) => b.append_value(v),
            _ => return Err(self.refuse("a boolean")),
        }
        Ok(())
    }

    fn serialize_i64(self, v: i64) -> Result<(), Fault> {
        let narrow = i32::try_from(v);
        match (&mut *self.builder, narrow) {
            (Builder::Int64(b), _) => b.append_value(v),
            (Builder::Timestamp(b), _) => b.append_value(v),
            (Builder::Float64(b), _) => b.append_value(v as f64),
            (Builder::Int32(b), Ok(v)) => b.append_value(v),
            (Builder::Date32(b), Ok(v)) => b.append_value(v),
            (Builder::Int32(_) | Builder::Date32(_), Err(_)) => {
                return Err(self.refuse(&format!("{v}, beyond 32 bits")));
            }
            _ => return Err(self.refuse("an integer")),
        }
        Ok(())
    }

    fn serialize_u64(self, v: u64) -> Result<(), Fault> {
        match i64::try_from(v) {
            Ok(v) => self.serialize_i64(v),
            Err(_) => Err(self.refuse(&format!("{v}, beyond 63 bits"))),
        }
    }

    fn serialize_f64(self, v: f64) -> Result<(), Fault> {
        match self.builder {
            Builder::Float64(b) => b.append_value(v),
            _ => return Err(self.refuse("a float")),
        }
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), Fault> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, v: &str) -> Result<(), Fault> {
        match self.builder {
            Builder::Utf8(b) => b.append_value(v),
            _ => return Err(self.refuse("text")),
        }
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Fault> {
        self.builder.append_null();
        Ok(())
    }

    fn serialize_unit(self) -> Result<(), Fault> {
        self.serialize_none()
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Fault> {
        self.serialize_none()
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, v: &'static str) -> Result<(), Fault> {
        self.serialize_str(v)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<ListSerializer<'b>, Fault> {
        match self.builder {
            Builder::StringList(list) => Ok(ListSerializer {
                list,
                column: self.column,
            }),
            _ => Err(self.refuse("a list")),
        }
    }
}

/// The items of a list of texts.
struct ListSerializer<'b> {
    list: &'b mut ListBuilder<StringBuilder>,
    column: &'b str,
}

impl ser::SerializeSeq for ListSerializer<'_> {
    type Ok = ();
    type Error = Fault;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Fault> {
        value.serialize(ItemSerializer {
            values: self.list.values(),
            column: self.column,
        })
    }

    fn end(self) -> Result<(), Fault> {
        self.list.append(true);
        Ok(())
    }
}

/// One item of a list of texts: a text or nothing.
struct ItemSerializer<'b> {
    values: &'b mut StringBuilder,
    column: &'b str,
}

impl ItemSerializer<'_> {
    fn refuse(&self, what: &str) -> Fault {
        Fault(format!(
            "column {} takes a list of texts, not {what} in it",
            self.column
        ))
    }
}

impl ser::Serializer for ItemSerializer<'_> {
    type Ok = ();
    type Error = Fault;
    type SerializeSeq = Impossible<(), Fault>;
    type SerializeTuple = Impossible<(), Fault>;
    type SerializeTupleStruct = Impossible<(), Fault>;
    type SerializeTupleVariant = Impossible<(), Fault>;
    type SerializeMap = Impossible<(), Fault>;
    type SerializeStruct = Impossible<(), Fault>;
    type SerializeStructVariant = Impossible<(), Fault>;

    refuse! {
        @scalars
        serialize_bytes(&[u8]) -> (): "bytes";
        serialize_seq(Option<usize>) -> Self::SerializeSeq: "a list";
        serialize_tuple(usize) -> Self::SerializeTuple: "a tuple";
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct: "a tuple";
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant: "a variant";
        serialize_map(Option<usize>) -> Self::SerializeMap: "a map";
        serialize_struct(&'static str, usize) -> Self::SerializeStruct: "a struct";
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant: "a variant";
    }

    see_through!();

    fn serialize_str(self, v: &str) -> Result<(), Fault> {
        self.values.append_value(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Fault> {
        self.values.append_null();
        Ok(())
    }

    fn serialize_unit(self) -> Result<(), Fault> {
        self.serialize_none()
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Fault> {
        self.serialize_none()
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, v: &'static str) -> Result<(), Fault> {
        self.serialize_str(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("level", DataType::Float64, true),
            Field::new(
                "kinds",
                DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
                true,
            ),
            Field::new("day", DataType::Date32, false),
        ]))
    }

    #[derive(Serialize)]
    struct Row<'a> {
        id: &'a str,
        level: Option<f64>,
        kinds: Option<Vec<&'a str>>,
        day: i64,
        ignored: u8,
    }

    #[test]
    fn fields_fill_their_columns_missing_ones_are_null_and_the_buffer_is_reused() {
        let mut columns = Columns::new("t", schema()).unwrap();
        for _ in 0..2 {
            columns
                .push(&Row {
                    id: "a",
                    level: Some(0.5),
                    kinds: Some(vec!["glass", "paper"]),
                    day: 3,
                    ignored: 1,
                })
                .unwrap();
            columns
                .push(&Row {
                    id: "b",
                    level: None,
                    kinds: None,
                    day: 4,
                    ignored: 1,
                })
                .unwrap();
            let batch = columns.finish().unwrap().unwrap();
            assert_eq!(batch.schema(), schema());
            assert_eq!(batch.num_rows(), 2);
            let level = batch
                .column(1)
                .as_primitive::<arrow::datatypes::Float64Type>();
            assert_eq!((level.value(0), level.is_null(1)), (0.5, true));
            let kinds = batch.column(2).as_list::<i32>();
            assert_eq!(
                kinds
                    .value(0)
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .collect::<Vec<_>>(),
                ["glass", "paper"]
            );
            assert!(kinds.is_null(1));
            assert!(columns.finish().unwrap().is_none(), "empty after finish");
        }
    }

    #[test]
    fn fields_find_their_columns_whatever_their_order_struct_or_flattened_and_twice_is_refused() {
        // Field names are found by the address of their static text once seen: rows of
        // other types, in other orders or flattened, must still reach the right columns.
        #[derive(Serialize)]
        struct Reversed {
            day: i64,
            level: f64,
            id: &'static str,
        }
        #[derive(Serialize)]
        struct Part {
            level: f64,
        }
        #[derive(Serialize)]
        struct Flattened {
            id: String,
            #[serde(flatten)]
            part: Part,
            day: i64,
        }
        let mut columns = Columns::new("t", schema()).unwrap();
        for round in 0..3 {
            let n = round as f64;
            let row = Row {
                id: "row",
                level: Some(n),
                kinds: None,
                day: 1,
                ignored: 0,
            };
            columns.push(&row).unwrap();
            columns
                .push(&Reversed {
                    day: 2,
                    level: n + 0.25,
                    id: "reversed",
                })
                .unwrap();
            columns
                .push(&Flattened {
                    id: "flattened".into(),
                    part: Part { level: n + 0.5 },
                    day: 3,
                })
                .unwrap();
        }
        let batch = columns.finish().unwrap().unwrap();
        let ids: Vec<&str> = batch
            .column(0)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        let levels = batch
            .column(1)
            .as_primitive::<arrow::datatypes::Float64Type>();
        let days = batch
            .column(3)
            .as_primitive::<arrow::datatypes::Date32Type>();
        for round in 0..3 {
            let n = round as f64;
            for (k, (id, level, day)) in [
                ("row", n, 1),
                ("reversed", n + 0.25, 2),
                ("flattened", n + 0.5, 3),
            ]
            .into_iter()
            .enumerate()
            {
                let i = round * 3 + k;
                assert_eq!(
                    (ids[i], levels.value(i), days.value(i)),
                    (id, level, day),
                    "row {i}"
                );
            }
        }

        #[derive(Serialize)]
        struct Twice {
            level: f64,
            #[serde(flatten)]
            part: Part,
        }
        let twice = columns
            .push(&Twice {
                level: 1.0,
                part: Part { level: 2.0 },
            })
            .unwrap_err()
            .to_string();
        assert!(twice.contains("column level is given twice"), "{twice}");
    }

    #[test]
    fn a_value_its_column_cannot_take_is_an_error_naming_the_column_and_the_buffer_stays_refused() {
        #[derive(Serialize)]
        struct Wrong {
            id: f64,
        }
        let mut columns = Columns::new("t", schema()).unwrap();
        let error = columns.push(&Wrong { id: 1.0 }).unwrap_err().to_string();
        assert!(
            error.contains("column id takes text, not a float"),
            "{error}"
        );
        let good = Row {
            id: "a",
            level: None,
            kinds: None,
            day: 1,
            ignored: 0,
        };
        assert!(
            columns.push(&good).is_err(),
            "its columns no longer line up"
        );
        assert!(columns.finish().is_err());
    }

    #[test]
    fn a_list_item_that_is_not_a_text_is_refused() {
        #[derive(Serialize)]
        struct Numbers<'a> {
            id: &'a str,
            kinds: Vec<f64>,
            day: i32,
        }
        let mut columns = Columns::new("t", schema()).unwrap();
        let row = Numbers {
            id: "a",
            kinds: vec![1.0],
            day: 1,
        };
        let error = columns.push(&row).unwrap_err().to_string();
        assert!(
            error.contains("column kinds takes a list of texts, not a number"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_required_column_fails_the_batch_not_silently() {
        #[derive(Serialize)]
        struct NoDay<'a> {
            id: &'a str,
        }
        let mut columns = Columns::new("t", schema()).unwrap();
        columns.push(&NoDay { id: "a" }).unwrap();
        let error = columns.finish().unwrap_err().to_string();
        assert!(error.contains("day"), "{error}");
    }

    #[test]
    fn a_day_beyond_32_bits_is_refused() {
        let mut columns = Columns::new("t", schema()).unwrap();
        let row = Row {
            id: "a",
            level: None,
            kinds: None,
            day: i64::MAX,
            ignored: 0,
        };
        let error = columns.push(&row).unwrap_err().to_string();
        assert!(error.contains("beyond 32 bits"), "{error}");
    }
}
