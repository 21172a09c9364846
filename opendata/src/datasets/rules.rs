//! The public-view rules of `vallee_schemas::public_view` as SQL functions, registered in
//! every dataset session: the views call the very functions the API calls, so a rule
//! cannot read one way in a download and another in GraphQL.
//!
//! - `vallee_is_small(count)`: a count of people withheld from the public (1 to 4);
//! - `vallee_total_shown(total, parts)`: whether a total may be shown beside its parts
//!   (a list of counts, or of structs whose `checkins` field is the count), the
//!   complementary rule against differencing;
//! - `vallee_round_coordinate(x)`: a report's latitude or longitude for the public;
//! - `vallee_mask_contacts(text)`: e-mail addresses and phone numbers masked;
//! - `vallee_open_text(subject, field, text)`: what a person wrote, opened with the
//!   replica's text keys (see `vallee_schemas::citizen::sealed`); null once erased, or
//!   when the key never reached this replica.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, create_udf,
};
use datafusion::prelude::SessionContext;
use vallee_lake::text_keys::{Opened, TextKeys};
use vallee_schemas::public_view::{self, counts};

/// Registers the rules' functions in `ctx`, texts opened with `texts`.
pub fn register(ctx: &SessionContext, texts: &Arc<TextKeys>) {
    ctx.register_udf(is_small());
    ctx.register_udf(round_coordinate());
    ctx.register_udf(ScalarUDF::new_from_impl(TotalShown::default()));
    ctx.register_udf(ScalarUDF::new_from_impl(MaskContacts::default()));
    ctx.register_udf(ScalarUDF::new_from_impl(OpenText::new(texts.clone())));
}

fn execution(message: &str) -> DataFusionError {
    DataFusionError::Execution(message.into())
}

/// `vallee_is_small(count Int64) -> Boolean` (null for null).
fn is_small() -> ScalarUDF {
    create_udf(
        "vallee_is_small",
        vec![DataType::Int64],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let a = ColumnarValue::values_to_arrays(args)?;
            let counts = a[0]
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| execution("vallee_is_small takes an Int64 count"))?;
            let out: BooleanArray = counts.iter().map(|n| n.map(counts::is_small)).collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// `vallee_round_coordinate(x Float64) -> Float64`.
fn round_coordinate() -> ScalarUDF {
    create_udf(
        "vallee_round_coordinate",
        vec![DataType::Float64],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let a = ColumnarValue::values_to_arrays(args)?;
            let x = a[0]
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| execution("vallee_round_coordinate takes a Float64"))?;
            let out: Float64Array = x
                .iter()
                .map(|v| v.map(public_view::round_coordinate))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// The counts of one list element: a count, or a struct's `checkins`.
fn part_counts(values: &ArrayRef) -> Result<Int64Array> {
    if let Some(counts) = values.as_primitive_opt::<Int64Type>() {
        return Ok(counts.clone());
    }
    let counts = values
        .as_struct_opt()
        .and_then(|s| s.column_by_name("checkins"))
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| execution("vallee_total_shown: parts are Int64 counts or {checkins}"))?;
    Ok(counts.clone())
}

/// `vallee_total_shown(total Int64, parts List<Int64 | Struct{checkins}>) -> Boolean`; a
/// null list is no parts.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TotalShown {
    signature: Signature,
}

impl Default for TotalShown {
    fn default() -> Self {
        TotalShown {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TotalShown {
    fn name(&self) -> &str {
        "vallee_total_shown"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = ColumnarValue::values_to_arrays(&args.args)?;
        let totals = arrow::compute::cast(&a[0], &DataType::Int64)?;
        let totals = totals.as_primitive::<Int64Type>();
        // A literal NULL is typed Null, not a list: no parts.
        let lists = match a[1].data_type() {
            DataType::Null => None,
            _ => Some(
                a[1].as_list_opt::<i32>()
                    .ok_or_else(|| execution("vallee_total_shown: parts must be a list"))?,
            ),
        };
        let out: BooleanArray = (0..totals.len())
            .map(|i| {
                if totals.is_null(i) {
                    return Ok(None);
                }
                let parts = match lists {
                    Some(l) if !l.is_null(i) => part_counts(&l.value(i))?,
                    _ => Int64Array::from(Vec::<i64>::new()),
                };
                let parts = parts.iter().flatten();
                Ok(Some(counts::total_shown(totals.value(i), parts)))
            })
            .collect::<Result<_>>()?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `vallee_mask_contacts(text) -> Utf8`: any string type in.
#[derive(Debug, PartialEq, Eq, Hash)]
struct MaskContacts {
    signature: Signature,
}

impl Default for MaskContacts {
    fn default() -> Self {
        MaskContacts {
            signature: Signature::uniform(
                1,
                vec![DataType::Utf8, DataType::Utf8View, DataType::LargeUtf8],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for MaskContacts {
    fn name(&self) -> &str {
        "vallee_mask_contacts"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = ColumnarValue::values_to_arrays(&args.args)?;
        let text = arrow::compute::cast(&a[0], &DataType::Utf8)?;
        let out: StringArray = text
            .as_string::<i32>()
            .iter()
            .map(|t| t.map(|t| public_view::mask_contacts(t).into_owned()))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `vallee_open_text(subject, field, text) -> Utf8`: any string types in.
#[derive(Debug)]
struct OpenText {
    signature: Signature,
    texts: Arc<TextKeys>,
}

impl OpenText {
    fn new(texts: Arc<TextKeys>) -> Self {
        OpenText {
            signature: Signature::uniform(
                3,
                vec![DataType::Utf8, DataType::Utf8View, DataType::LargeUtf8],
                Volatility::Volatile,
            ),
            texts,
        }
    }
}

impl PartialEq for OpenText {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.texts, &other.texts)
    }
}

impl Eq for OpenText {}

impl std::hash::Hash for OpenText {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.texts).hash(state);
    }
}

impl ScalarUDFImpl for OpenText {
    fn name(&self) -> &str {
        "vallee_open_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = ColumnarValue::values_to_arrays(&args.args)?;
        let utf8 = |i: usize| arrow::compute::cast(&a[i], &DataType::Utf8);
        let (subjects, fields, texts) = (utf8(0)?, utf8(1)?, utf8(2)?);
        let (subjects, fields, texts) = (
            subjects.as_string::<i32>(),
            fields.as_string::<i32>(),
            texts.as_string::<i32>(),
        );
        let out: StringArray = (0..texts.len())
            .map(|i| {
                if subjects.is_null(i) || fields.is_null(i) || texts.is_null(i) {
                    return None;
                }
                match (self.texts).open_text(subjects.value(i), fields.value(i), texts.value(i)) {
                    Opened::Text(t) => Some(t),
                    Opened::Erased | Opened::Unavailable => None,
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sql_functions_are_the_rules() {
        let ctx = SessionContext::new();
        register(&ctx, &Arc::default());
        let batches = ctx
            .sql(
                "SELECT vallee_is_small(3) AS a, vallee_is_small(0) AS b,
                        vallee_total_shown(9, [8, 1]) AS c, vallee_total_shown(11, [8, 2, 1]) AS d,
                        vallee_total_shown(7, NULL) AS e,
                        vallee_total_shown(9, [named_struct('point', 'p1', 'checkins', 6),
                                               named_struct('point', 'p2', 'checkins', 3)]) AS f,
                        vallee_round_coordinate(43.652149) AS g,
                        vallee_mask_contacts(arrow_cast('écrire à prenom.nom@example.fr', 'Utf8View')) AS h,
                        vallee_mask_contacts('06 12 34 56 78') AS i",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let b = &batches[0];
        let flag = |i: usize| b.column(i).as_boolean().value(0);
        assert_eq!(
            (0..6).map(flag).collect::<Vec<_>>(),
            [true, false, false, true, true, false]
        );
        assert_eq!(b.column(6).as_primitive::<Float64Type>().value(0), 43.652);
        let text = |i: usize| b.column(i).as_string::<i32>().value(0).to_string();
        assert_eq!(text(7), "écrire à [courriel masqué]");
        assert_eq!(text(8), "[téléphone masqué]");
    }

    #[tokio::test]
    async fn texts_open_with_their_key_and_an_erased_one_is_null() {
        let texts = Arc::new(TextKeys::default());
        let key = texts.create("i-1").unwrap();
        let sealed = key.seal("i-1", "title", "Un jardin partagé");
        let gone = texts.create("i-2").unwrap().seal("i-2", "title", "Effacé");
        texts.erase("i-2").unwrap();
        let ctx = SessionContext::new();
        register(&ctx, &texts);
        let sql = format!(
            "SELECT vallee_open_text(arrow_cast('i-1', 'Utf8View'), 'title', '{sealed}') AS a,
                    vallee_open_text('i-1', 'body', '{sealed}') AS b,
                    vallee_open_text('i-2', 'title', '{gone}') AS c,
                    vallee_open_text('i-3', 'title', arrow_cast('écrit en clair', 'Utf8View')) AS d,
                    vallee_open_text('i-3', 'title', NULL) AS e"
        );
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let b = &batches[0];
        let text = |i: usize| {
            let column = b.column(i).as_string::<i32>();
            (!column.is_null(0)).then(|| column.value(0).to_string())
        };
        assert_eq!(text(0).as_deref(), Some("Un jardin partagé"));
        assert_eq!(text(1), None, "sealed for another field");
        assert_eq!(text(2), None, "erased");
        assert_eq!(text(3).as_deref(), Some("écrit en clair"));
        assert_eq!(text(4), None);
    }
}
