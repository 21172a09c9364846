//! What a research query may hold in memory, and the sessions that hold it to it.
//!
//! DataFusion counts what its operators buffer (hash tables of joins and aggregates, sorts,
//! repartition queues) against the session's memory pool: one pool of `sql_memory_bytes`
//! for all research queries, with nothing spilled to disk, so a query past it fails with
//! "Resources exhausted" naming its largest consumers. Three things the pool does not see
//! are held to it here:
//! - the result, counted batch by batch as it is collected and encoded (`super::encode`);
//! - functions whose output can be far larger than their input (`repeat('x', 1e9)`):
//!   wrapped so that each call first reserves what it may produce, for every row of the
//!   batch (a constant argument is made per row, so the function is marked volatile: it
//!   is not folded into a constant the projection would then copy into every row);
//!   `range` and `generate_series` as functions building arrays are not offered (the
//!   table function `generate_series` in `FROM` streams, and stays);
//! - constants: the plan's literals, copied into every row of a batch, may take at most
//!   the pool once multiplied by the batch size.
//!
//! Recursive CTEs are off (each iteration can double a value). What remains unaccounted:
//! the growth of a value through plain operators (`a || b`) over columns, bounded by the
//! query's length and the batch size (1 024 rows).

use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryConsumer, MemoryPool, MemoryReservation, TrackConsumersPool,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::{SessionConfig, SessionContext};

/// Rows per batch of a research query: what a constant or a function's output is
/// multiplied by.
pub const BATCH_ROWS: usize = 1024;

/// The pool every research query draws from.
pub fn pool(bytes: usize) -> Arc<dyn MemoryPool> {
    let top = NonZeroUsize::new(3).expect("3 is not 0");
    Arc::new(TrackConsumersPool::new(GreedyMemoryPool::new(bytes), top))
}

/// The session of one query: `public`'s tables and functions, drawing from `pool`, nothing
/// spilled, no recursion, the amplifying functions metered (and their reservation, released
/// when the query ends).
pub fn session(
    public: &SessionContext,
    pool: &Arc<dyn MemoryPool>,
) -> DfResult<(SessionContext, Arc<MemoryReservation>)> {
    let state = public.state();
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(pool.clone())
        .with_object_store_registry(state.runtime_env().object_store_registry.clone())
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()?;
    // A fresh configuration would create the default catalog anew when the state is built,
    // over `public`'s: every public table would be gone from the session.
    let mut config = SessionConfig::new()
        .with_batch_size(BATCH_ROWS)
        .with_create_default_catalog_and_schema(false);
    config.options_mut().execution.enable_recursive_ctes = false;
    let state = SessionStateBuilder::new_from_existing(state)
        .with_config(config)
        .with_runtime_env(runtime)
        .build();
    let ctx = SessionContext::new_with_state(state);
    let reservation = Arc::new(MemoryConsumer::new("research functions").register(pool));
    for name in ["range", "generate_series"] {
        ctx.deregister_udf(name);
    }
    for (name, estimate) in AMPLIFIERS {
        let inner = ctx.udf(name)?;
        ctx.register_udf(ScalarUDF::new_from_impl(Metered::new(
            inner,
            *estimate,
            reservation.clone(),
        )));
    }
    Ok((ctx, reservation))
}

/// Refuses a plan whose constants, copied into every row of a batch, would take more than
/// `bytes`.
pub fn check_constants(plan: &LogicalPlan, bytes: usize) -> DfResult<()> {
    let mut total = 0usize;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::Literal(value, _) = e {
                    total = total.saturating_add(value.size());
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    if total.saturating_mul(BATCH_ROWS) > bytes {
        return Err(datafusion::error::DataFusionError::ResourcesExhausted(
            format!(
                "the query's constants ({total} bytes) copied into {BATCH_ROWS} rows would take more than the {bytes} bytes a research query may use"
            ),
        ));
    }
    Ok(())
}

/// Bytes one row's value may take at most, from the arguments.
type Estimate = fn(&[ColumnarValue]) -> DfResult<usize>;

/// Functions whose output can be far larger than their input, with what a row may take.
const AMPLIFIERS: &[(&str, Estimate)] = &[
    ("repeat", |a| {
        Ok(longest(&a[0])?.saturating_mul(largest(a.get(1))?))
    }),
    ("lpad", |a| Ok(largest(a.get(1))?.saturating_mul(4))),
    ("rpad", |a| Ok(largest(a.get(1))?.saturating_mul(4))),
    ("replace", |a| {
        let s = longest(&a[0])?;
        Ok(s.saturating_add(1).saturating_mul(longest(&a[2])?.max(1)))
    }),
    ("regexp_replace", |a| {
        let s = longest(&a[0])?;
        Ok(s.saturating_add(1).saturating_mul(longest(&a[2])?.max(1)))
    }),
    ("array_repeat", |a| {
        Ok(longest(&a[0])?.max(16).saturating_mul(largest(a.get(1))?))
    }),
    ("array_resize", |a| {
        Ok(16usize.saturating_mul(largest(a.get(1))?))
    }),
];

/// The longest value of an argument, in bytes (strings: their length; others: their size).
fn longest(arg: &ColumnarValue) -> DfResult<usize> {
    Ok(match arg {
        ColumnarValue::Scalar(s) => match s {
            ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                v.as_ref().map_or(0, String::len)
            }
            other => other.size(),
        },
        ColumnarValue::Array(a) => longest_in(a)?,
    })
}

fn longest_in(array: &ArrayRef) -> DfResult<usize> {
    if array.is_empty() {
        return Ok(0);
    }
    match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let lengths = arrow::compute::kernels::length::length(array)?;
            let lengths = arrow::compute::cast(&lengths, &DataType::Int64)?;
            let lengths = lengths
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .expect("cast to Int64");
            Ok(arrow::compute::max(lengths).unwrap_or(0).max(0) as usize)
        }
        _ => Ok(array.get_array_memory_size() / array.len()),
    }
}

/// The largest count an argument asks for (negative: none); absent: 1.
fn largest(arg: Option<&ColumnarValue>) -> DfResult<usize> {
    let Some(arg) = arg else { return Ok(1) };
    let n = match arg {
        ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64)? {
            ScalarValue::Int64(v) => v.unwrap_or(0),
            _ => 0,
        },
        ColumnarValue::Array(a) => {
            let a = arrow::compute::cast(a, &DataType::Int64)?;
            let a = a
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .expect("cast to Int64");
            arrow::compute::max(a).unwrap_or(0)
        }
    };
    Ok(n.max(0) as usize)
}

/// A function that reserves what it may produce before producing it.
#[derive(Debug)]
struct Metered {
    inner: Arc<ScalarUDF>,
    signature: Signature,
    estimate: Estimate,
    reservation: Arc<MemoryReservation>,
}

impl Metered {
    fn new(inner: Arc<ScalarUDF>, estimate: Estimate, reservation: Arc<MemoryReservation>) -> Self {
        let mut signature = inner.signature().clone();
        signature.volatility = Volatility::Volatile;
        Metered {
            inner,
            signature,
            estimate,
            reservation,
        }
    }
}

impl PartialEq for Metered {
    fn eq(&self, other: &Self) -> bool {
        self.inner.name() == other.inner.name()
    }
}

impl Eq for Metered {}

impl Hash for Metered {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.name().hash(state);
    }
}

impl ScalarUDFImpl for Metered {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let per_row = (self.estimate)(&args.args)?;
        let bytes = per_row.saturating_mul(args.number_rows.max(1));
        self.reservation.try_grow(bytes).map_err(|e| {
            datafusion::error::DataFusionError::ResourcesExhausted(format!(
                "{}() would produce up to {bytes} bytes for {} rows: {e}",
                self.inner.name(),
                args.number_rows
            ))
        })?;
        self.inner.invoke_with_args(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(ctx: &SessionContext, sql: &str) -> DfResult<usize> {
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(batches.iter().map(|b| b.num_rows()).sum())
    }

    #[tokio::test]
    async fn the_session_reads_the_public_tables() {
        let public = SessionContext::new();
        let batch = arrow::array::RecordBatch::try_from_iter([(
            "n",
            Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3])) as ArrayRef,
        )])
        .unwrap();
        let table = datafusion::datasource::MemTable::try_new(batch.schema(), vec![vec![batch]]);
        public
            .register_table("jeu_public", Arc::new(table.unwrap()))
            .unwrap();
        let (ctx, _) = session(&public, &pool(64 * 1024 * 1024)).unwrap();
        assert_eq!(run(&ctx, "SELECT n FROM jeu_public").await.unwrap(), 3);
    }

    #[tokio::test]
    async fn amplifying_functions_draw_from_the_pool_and_ordinary_queries_run() {
        let pool = pool(64 * 1024 * 1024);
        let (ctx, _) = session(&SessionContext::new(), &pool).unwrap();
        assert_eq!(
            run(&ctx, "SELECT repeat('ab', 3), lpad('x', 5, '-'), replace('aXa', 'X', 'yy') FROM generate_series(1, 10)")
                .await
                .unwrap(),
            10
        );
        let bomb = run(
            &ctx,
            "SELECT repeat('x', 1000000) FROM generate_series(1, 100000)",
        )
        .await;
        let err = bomb.unwrap_err().to_string();
        assert!(
            err.contains("Resources exhausted") && err.contains("repeat"),
            "{err}"
        );
        let err = run(&ctx, "SELECT range(1, 1000000000)").await.unwrap_err();
        assert!(err.to_string().contains("range"), "{err}");
        let recursive =
            "WITH RECURSIVE t(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM t) SELECT * FROM t";
        assert!(run(&ctx, recursive).await.is_err());
        // What the functions reserved is the session's, given back with it.
        assert!(pool.reserved() > 0);
        drop(ctx);
        assert_eq!(pool.reserved(), 0, "everything given back");
    }

    #[tokio::test]
    async fn a_join_past_the_pool_fails_with_a_clear_error() {
        let pool = pool(8 * 1024 * 1024);
        let (ctx, _) = session(&SessionContext::new(), &pool).unwrap();
        let join = "SELECT count(*) FROM generate_series(1, 2000000) a JOIN generate_series(1, 2000000) b ON a.value = b.value";
        let err = run(&ctx, join).await.unwrap_err().to_string();
        assert!(err.contains("Resources exhausted"), "{err}");
    }

    #[tokio::test]
    async fn constants_copied_into_every_row_are_bounded() {
        let (ctx, _) = session(&SessionContext::new(), &pool(1024 * 1024)).unwrap();
        let wide = format!(
            "SELECT '{}' AS s FROM generate_series(1, 10)",
            "x".repeat(2_000)
        );
        let plan = ctx.sql(&wide).await.unwrap().into_optimized_plan().unwrap();
        let err = check_constants(&plan, 1024 * 1024).unwrap_err();
        assert!(err.to_string().contains("constants"), "{err}");
        let plan = ctx
            .sql("SELECT 'x' FROM generate_series(1, 10)")
            .await
            .unwrap();
        check_constants(&plan.into_optimized_plan().unwrap(), 1024 * 1024).unwrap();
    }
}
