//! The domain formulas as DataFusion scalar functions (Rust UDFs): the stage's per-batch
//! plans use them, and researchers get the very same formulas in `POST /sql`.
//!
//! - `vallee_token_key(token)`: the keyed hash under which the stage keeps a device token
//!   (random per process: meaningless outside it, never written anywhere);
//! - `vallee_gdd(tmin, tmax)`: growing degree days base 10 °C of a day;
//! - `vallee_huglin_day(tmean, tmax, latitude)`: a day's term of the Huglin index.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, UInt64Array};
use arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;

use crate::aggregate::token_key;
use crate::rules::vine::{degree_days, huglin_day};

fn arrays(args: &[ColumnarValue]) -> Result<Vec<ArrayRef>> {
    ColumnarValue::values_to_arrays(args)
}

fn floats(a: &ArrayRef) -> Result<&arrow::array::PrimitiveArray<Float64Type>> {
    a.as_primitive_opt::<Float64Type>()
        .ok_or_else(|| DataFusionError::Execution("a Float64 argument".into()))
}

/// `vallee_token_key(Utf8) -> UInt64`.
pub fn token_key_udf() -> ScalarUDF {
    create_udf(
        "vallee_token_key",
        vec![DataType::Utf8],
        DataType::UInt64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let a = &arrays(args)?[0];
            let strings = a
                .as_string_opt::<i32>()
                .ok_or_else(|| DataFusionError::Execution("a Utf8 argument".into()))?;
            let out: UInt64Array = strings.iter().map(|s| s.map(token_key)).collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// `vallee_gdd(tmin Float64, tmax Float64) -> Float64`.
pub fn gdd_udf() -> ScalarUDF {
    create_udf(
        "vallee_gdd",
        vec![DataType::Float64, DataType::Float64],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let a = arrays(args)?;
            let (tmin, tmax) = (floats(&a[0])?, floats(&a[1])?);
            let out: Float64Array = tmin
                .iter()
                .zip(tmax.iter())
                .map(|(lo, hi)| Some(degree_days(lo?, hi?, 10.0)))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// `vallee_huglin_day(tmean Float64, tmax Float64, latitude Float64) -> Float64`.
pub fn huglin_day_udf() -> ScalarUDF {
    create_udf(
        "vallee_huglin_day",
        vec![DataType::Float64, DataType::Float64, DataType::Float64],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let a = arrays(args)?;
            let (mean, max, lat) = (floats(&a[0])?, floats(&a[1])?, floats(&a[2])?);
            let out: Float64Array = (0..mean.len())
                .map(|i| {
                    (mean.is_valid(i) && max.is_valid(i) && lat.is_valid(i))
                        .then(|| huglin_day(mean.value(i), max.value(i), lat.value(i)))
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// Registers the domain formulas in `ctx` (what researchers get in `POST /sql`).
pub fn register_formulas(ctx: &SessionContext) {
    ctx.register_udf(gdd_udf());
    ctx.register_udf(huglin_day_udf());
}

/// Registers every function the stage's plans use: the formulas and the token hash.
pub fn register(ctx: &SessionContext) {
    register_formulas(ctx);
    ctx.register_udf(token_key_udf());
}
