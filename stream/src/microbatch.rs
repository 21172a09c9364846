//! The per-batch computation of the windowed streams, on DataFusion.
//!
//! Sightings and site visits are buffered as Arrow columns as they arrive. Before windows
//! advance, and whenever a buffer is full, one DataFusion plan per stream reduces the buffer
//! to partial aggregates per window bin: each device once per (zone, 5-minute bin), keyed by
//! `vallee_token_key`; visitors summed per (site, hour, kind); with the range of offsets
//! each partial came from (its lineage). The window operators fold the partials in, and keep
//! what DataFusion has no operator for: windows across batches, the watermark, revisions,
//! corrections and early results. Alerts never wait for a batch: they are decided per reading.
//!
//! Each plan is parsed, optimised and planned once, over a table whose scan reads the batch
//! put in its slot when the plan runs: parsing and planning per batch were an eighth of the
//! stage's thread.

use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int32Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{
    DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
    UInt64Type,
};
use chrono::{DateTime, Utc};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use tokio::runtime::Handle;

use crate::lineage::Lineage;
use crate::{Error, Result};

/// Rows buffered before a plan runs even if the windows do not advance.
pub const BATCH_ROWS: usize = 8192;

/// Devices seen in a zone during one 5-minute bin (the footfall windows are made of bins).
#[derive(Debug, Clone, PartialEq)]
pub struct SightingPartial {
    pub zone: String,
    /// The earliest sighting of the device in the bin.
    pub time: DateTime<Utc>,
    /// The latest one: with `time`, all the dwell sessions need (sightings within a bin are
    /// closer than any session gap, so they always fall in one session).
    pub last: DateTime<Utc>,
    /// The token's keyed hash (`vallee_token_key`).
    pub token: u64,
    pub lineage: Lineage,
}

/// Visitors (or AR check-ins) of a site during one hour.
#[derive(Debug, Clone, PartialEq)]
pub struct VisitPartial {
    pub site: String,
    pub location_code: String,
    pub time: DateTime<Utc>,
    pub ar: bool,
    /// The AR-trail point checked in at, for AR check-ins.
    pub ar_point: Option<String>,
    pub count: i64,
    pub lineage: Lineage,
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

/// Buffered rows of one stream, with the topic they came from.
struct Columns {
    schema: SchemaRef,
    topic: Option<Arc<str>>,
    keys: StringBuilder,
    codes: StringBuilder,
    times: TimestampMicrosecondBuilder,
    tokens: StringBuilder,
    flags: BooleanBuilder,
    counts: Int64Builder,
    partitions: Int32Builder,
    offsets: Int64Builder,
    rows: usize,
}

impl Columns {
    fn new() -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("code", DataType::Utf8, false),
            Field::new("t", ts(), false),
            Field::new("token", DataType::Utf8, false),
            Field::new("ar", DataType::Boolean, false),
            Field::new("n", DataType::Int64, false),
            Field::new("p", DataType::Int32, false),
            Field::new("o", DataType::Int64, false),
        ]));
        Columns {
            schema,
            topic: None,
            keys: StringBuilder::new(),
            codes: StringBuilder::new(),
            times: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            tokens: StringBuilder::new(),
            flags: BooleanBuilder::new(),
            counts: Int64Builder::new(),
            partitions: Int32Builder::new(),
            offsets: Int64Builder::new(),
            rows: 0,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        key: &str,
        code: &str,
        t: DateTime<Utc>,
        token: &str,
        flag: bool,
        count: i64,
        partition: i32,
        offset: i64,
    ) {
        self.keys.append_value(key);
        self.codes.append_value(code);
        self.times.append_value(t.timestamp_micros());
        self.tokens.append_value(token);
        self.flags.append_value(flag);
        self.counts.append_value(count);
        self.partitions.append_value(partition);
        self.offsets.append_value(offset);
        self.rows += 1;
    }

    fn take(&mut self) -> Result<Option<(RecordBatch, Arc<str>)>> {
        if self.rows == 0 {
            return Ok(None);
        }
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.keys.finish()),
            Arc::new(self.codes.finish()),
            Arc::new(self.times.finish()),
            Arc::new(self.tokens.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.counts.finish()),
            Arc::new(self.partitions.finish()),
            Arc::new(self.offsets.finish()),
        ];
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        let topic = self.topic.take().unwrap_or_else(|| Arc::from(""));
        Ok(Some((batch, topic)))
    }
}

/// Each device once per (zone, 5-minute bin), with where its sightings were read.
const SIGHTINGS_PLAN: &str = "SELECT k, min(t) AS t, max(t) AS last, vallee_token_key(token) AS token, p, min(o) AS lo, max(o) AS hi \
     FROM batch GROUP BY k, date_bin(INTERVAL '5 minutes', t), vallee_token_key(token), p";

/// Visitors and AR check-ins per (site, hour, AR point); the point rides in `token`.
const VISITS_PLAN: &str = "SELECT k, code, min(t) AS t, ar, sum(n) AS n, p, min(o) AS lo, max(o) AS hi, token AS point \
     FROM batch GROUP BY k, code, date_bin(INTERVAL '1 hour', t), ar, p, token";

/// The batch a prepared plan reads when it runs next (taken by that run).
#[derive(Debug)]
struct BatchSlot {
    schema: SchemaRef,
    next: Mutex<Option<RecordBatch>>,
}

impl PartitionStream for BatchSlot {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batch = self.next.lock().unwrap_or_else(|p| p.into_inner()).take();
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::iter(batch.map(Ok)),
        ))
    }
}

/// A plan planned once, and the slot its scan reads from.
struct PreparedPlan {
    slot: Arc<BatchSlot>,
    plan: Arc<dyn ExecutionPlan>,
}

impl PreparedPlan {
    /// Plans `sql` over a table `batch` of `schema`.
    async fn new(ctx: &SessionContext, sql: &str, schema: SchemaRef) -> Result<Self> {
        let slot = Arc::new(BatchSlot {
            schema: schema.clone(),
            next: Mutex::new(None),
        });
        let table = StreamingTable::try_new(schema, vec![slot.clone()])?;
        ctx.register_table("batch", Arc::new(table))?;
        let planned = async { ctx.sql(sql).await?.create_physical_plan().await }.await;
        ctx.deregister_table("batch")?;
        Ok(PreparedPlan {
            slot,
            plan: planned?,
        })
    }
}

/// Buffers and plans of the windowed streams.
pub struct BatchEngine {
    ctx: SessionContext,
    handle: Handle,
    sightings: Columns,
    visits: Columns,
    sightings_plan: Option<PreparedPlan>,
    visits_plan: Option<PreparedPlan>,
}

impl std::fmt::Debug for BatchEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchEngine")
            .field("sightings", &self.sightings.rows)
            .field("visits", &self.visits.rows)
            .finish()
    }
}

impl BatchEngine {
    /// Plans run on `handle` (the caller's thread blocks on them; it must not be one of
    /// the runtime's worker threads).
    pub fn new(handle: Handle) -> Self {
        // One partition: the batches are small, a repartition would cost more than it gives.
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        crate::udf::register(&ctx);
        BatchEngine {
            ctx,
            handle,
            sightings: Columns::new(),
            visits: Columns::new(),
            sightings_plan: None,
            visits_plan: None,
        }
    }

    /// Buffers a sighting; true when the buffer is full (the caller folds it).
    pub fn sighting(
        &mut self,
        topic: &Arc<str>,
        zone: &str,
        t: DateTime<Utc>,
        token: &str,
        partition: i32,
        offset: i64,
    ) -> bool {
        self.sightings.topic.get_or_insert_with(|| topic.clone());
        self.sightings
            .push(zone, "", t, token, false, 1, partition, offset);
        self.sightings.rows >= BATCH_ROWS
    }

    /// Buffers a site visit (an AR check-in when `ar_point` is given); true when the
    /// buffer is full.
    #[allow(clippy::too_many_arguments)]
    pub fn visit(
        &mut self,
        topic: &Arc<str>,
        site: &str,
        location_code: &str,
        t: DateTime<Utc>,
        ar_point: Option<&str>,
        count: i64,
        partition: i32,
        offset: i64,
    ) -> bool {
        self.visits.topic.get_or_insert_with(|| topic.clone());
        let (ar, point) = (ar_point.is_some(), ar_point.unwrap_or(""));
        self.visits
            .push(site, location_code, t, point, ar, count, partition, offset);
        self.visits.rows >= BATCH_ROWS
    }

    /// Whether rows of another topic than the buffered ones would mix lineages.
    pub fn topic_changes(&self, beacons: bool, topic: &str) -> bool {
        let columns = if beacons {
            &self.sightings
        } else {
            &self.visits
        };
        columns.topic.as_deref().is_some_and(|t| t != topic)
    }

    /// Runs `sql` (planned on its first run) over `batch`.
    fn run(
        ctx: &SessionContext,
        handle: &Handle,
        prepared: &mut Option<PreparedPlan>,
        sql: &str,
        batch: RecordBatch,
    ) -> Result<Vec<RecordBatch>> {
        let prepared = match prepared {
            Some(p) => p,
            None => {
                prepared.insert(handle.block_on(PreparedPlan::new(ctx, sql, batch.schema()))?)
            }
        };
        *prepared.slot.next.lock().unwrap_or_else(|p| p.into_inner()) = Some(batch);
        handle
            .block_on(datafusion::physical_plan::collect(
                prepared.plan.clone(),
                ctx.task_ctx(),
            ))
            .map_err(Error::from)
    }

    /// The buffered sightings as partials (the buffer is emptied).
    pub fn take_sightings(&mut self) -> Result<Vec<SightingPartial>> {
        let Some((batch, topic)) = self.sightings.take()? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let batches = Self::run(
            &self.ctx,
            &self.handle,
            &mut self.sightings_plan,
            SIGHTINGS_PLAN,
            batch,
        )?;
        for b in batches {
            let zones = strings(b.column(0))?;
            let times = b.column(1).as_primitive::<TimestampMicrosecondType>();
            let lasts = b.column(2).as_primitive::<TimestampMicrosecondType>();
            let tokens = b.column(3).as_primitive::<UInt64Type>();
            let (p, lo, hi) = (
                b.column(4).as_primitive::<Int32Type>(),
                b.column(5).as_primitive::<Int64Type>(),
                b.column(6).as_primitive::<Int64Type>(),
            );
            for (i, zone) in zones.into_iter().enumerate() {
                out.push(SightingPartial {
                    zone,
                    time: micros(times.value(i)),
                    last: micros(lasts.value(i)),
                    token: tokens.value(i),
                    lineage: Lineage::range(&topic, p.value(i), lo.value(i), hi.value(i)),
                });
            }
        }
        Ok(out)
    }

    /// The buffered visits as partials (the buffer is emptied).
    pub fn take_visits(&mut self) -> Result<Vec<VisitPartial>> {
        let Some((batch, topic)) = self.visits.take()? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let batches = Self::run(
            &self.ctx,
            &self.handle,
            &mut self.visits_plan,
            VISITS_PLAN,
            batch,
        )?;
        for b in batches {
            let (sites, codes) = (strings(b.column(0))?, strings(b.column(1))?);
            let points = strings(b.column(8))?;
            let times = b.column(2).as_primitive::<TimestampMicrosecondType>();
            let ar = b.column(3).as_boolean();
            let n = b.column(4).as_primitive::<Int64Type>();
            let (p, lo, hi) = (
                b.column(5).as_primitive::<Int32Type>(),
                b.column(6).as_primitive::<Int64Type>(),
                b.column(7).as_primitive::<Int64Type>(),
            );
            for i in 0..b.num_rows() {
                out.push(VisitPartial {
                    site: sites[i].clone(),
                    location_code: codes[i].clone(),
                    time: micros(times.value(i)),
                    ar: ar.value(i),
                    ar_point: ar
                        .value(i)
                        .then(|| points[i].clone())
                        .filter(|p| !p.is_empty()),
                    count: n.value(i),
                    lineage: Lineage::range(&topic, p.value(i), lo.value(i), hi.value(i)),
                });
            }
        }
        Ok(out)
    }
}

fn micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// A string column of any string type, as owned strings.
fn strings(a: &ArrayRef) -> Result<Vec<String>> {
    let a = arrow::compute::cast(a, &DataType::Utf8)?;
    let a = a.as_string::<i32>();
    Ok((0..a.len()).map(|i| a.value(i).to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-11-28T{s}Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    /// The plans are planned once and run again on each batch: every run sees its own batch.
    #[test]
    fn a_plan_planned_once_reduces_each_batch_it_is_given() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut engine = BatchEngine::new(runtime.handle().clone());
        let topic: Arc<str> = Arc::from("beacons");
        // Batch 1: device a twice and b once in one bin, so two partials.
        engine.sighting(&topic, "za", at("10:01:00"), "a", 0, 1);
        engine.sighting(&topic, "za", at("10:03:00"), "a", 0, 2);
        engine.sighting(&topic, "za", at("10:02:00"), "b", 0, 3);
        let mut first = engine.take_sightings().unwrap();
        first.sort_by_key(|p| p.time);
        assert_eq!(first.len(), 2);
        assert_eq!(
            (first[0].time, first[0].last),
            (at("10:01:00"), at("10:03:00"))
        );
        assert_eq!(
            (first[1].time, first[1].last),
            (at("10:02:00"), at("10:02:00"))
        );
        assert_eq!(first[0].token, crate::aggregate::token_key("a"));
        // Batch 2: one sighting of c in another zone; nothing of batch 1 comes back.
        engine.sighting(&topic, "zb", at("10:07:00"), "c", 1, 9);
        let second = engine.take_sightings().unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(
            (second[0].zone.as_str(), second[0].token),
            ("zb", crate::aggregate::token_key("c"))
        );
        assert_eq!(second[0].lineage, Lineage::range(&topic, 1, 9, 9));
        // Nothing buffered: no plan runs, nothing comes out.
        assert!(engine.take_sightings().unwrap().is_empty());
        // Visits have their own plan: counts summed per site and hour.
        engine.visit(&topic, "abbaye", "34261", at("10:05:00"), None, 3, 0, 1);
        engine.visit(&topic, "abbaye", "34261", at("10:40:00"), None, 2, 0, 2);
        let visits = engine.take_visits().unwrap();
        assert_eq!(visits.len(), 1);
        assert_eq!((visits[0].count, visits[0].ar), (5, false));
        engine.visit(
            &topic,
            "abbaye",
            "34261",
            at("11:05:00"),
            Some("cloitre"),
            1,
            0,
            3,
        );
        let visits = engine.take_visits().unwrap();
        assert_eq!(
            (visits.len(), visits[0].ar_point.as_deref()),
            (1, Some("cloitre"))
        );
    }
}
