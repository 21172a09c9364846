//! The domain formulas as DataFusion scalar functions (Rust UDFs), over the formulas of
//! `vallee_schemas::formulas`: researchers get in `POST /sql` the very figures the stream
//! stage computes, and the stage's plans call the same functions.
//!
//! - `vallee_gdd(tmin, tmax)`: growing degree days base 10 °C of a day;
//! - `vallee_huglin_day(tmean, tmax, latitude)`: a day's term of the Huglin index.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use vallee_schemas::formulas::{degree_days, huglin_day};

fn floats(a: &ArrayRef) -> Result<&arrow::array::PrimitiveArray<Float64Type>> {
    a.as_primitive_opt::<Float64Type>()
        .ok_or_else(|| DataFusionError::Execution("a Float64 argument".into()))
}

/// `vallee_gdd(tmin Float64, tmax Float64) -> Float64`.
pub fn gdd_udf() -> ScalarUDF {
    create_udf(
        "vallee_gdd",
        vec![DataType::Float64, DataType::Float64],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let a = ColumnarValue::values_to_arrays(args)?;
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
            let a = ColumnarValue::values_to_arrays(args)?;
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

/// Registers the domain formulas in `ctx`.
pub fn register_formulas(ctx: &SessionContext) {
    ctx.register_udf(gdd_udf());
    ctx.register_udf(huglin_day_udf());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sql_functions_compute_the_formulas() {
        let ctx = SessionContext::new();
        register_formulas(&ctx);
        let batches = ctx
            .sql("SELECT vallee_gdd(10.0, 24.0) AS g, vallee_huglin_day(17.0, 24.0, 43.6) AS h, vallee_gdd(NULL, 24.0) AS n")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let column = |i: usize| batches[0].column(i).as_primitive::<Float64Type>().clone();
        assert_eq!(column(0).value(0), degree_days(10.0, 24.0, 10.0));
        assert_eq!(column(1).value(0), huglin_day(17.0, 24.0, 43.6));
        assert!(column(2).is_null(0));
    }
}
