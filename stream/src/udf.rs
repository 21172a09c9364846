//! The DataFusion functions the stage's per-batch plans call: the domain formulas
//! (`vallee_gdd`, `vallee_huglin_day`, registered by `vallee_lake::udf`, the same that
//! researchers get in `POST /sql`) and the stage's own
//! `vallee_token_key(token)`: the keyed hash under which the stage keeps a device token
//! (random per process: meaningless outside it, never written anywhere).

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::array::UInt64Array;
use arrow::datatypes::DataType;
use datafusion::common::DataFusionError;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;

use crate::aggregate::token_key;

/// `vallee_token_key(Utf8) -> UInt64`.
pub fn token_key_udf() -> ScalarUDF {
    create_udf(
        "vallee_token_key",
        vec![DataType::Utf8],
        DataType::UInt64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let a = &ColumnarValue::values_to_arrays(args)?[0];
            let strings = a
                .as_string_opt::<i32>()
                .ok_or_else(|| DataFusionError::Execution("a Utf8 argument".into()))?;
            let out: UInt64Array = strings.iter().map(|s| s.map(token_key)).collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// Registers every function the stage's plans use: the formulas and the token hash.
pub fn register(ctx: &SessionContext) {
    vallee_lake::udf::register_formulas(ctx);
    ctx.register_udf(token_key_udf());
}
