//! The stage's consumer loop: its own group, positioned at the offsets its outputs need to
//! rebuild state; outputs committed to Delta with those offsets; alerts to Kafka at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int32Type, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDate, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use vallee_kafka::{ConsumerSettings, RejoinPolicy};
use vallee_lake::{Lake, LakeTable, Progress};
use vallee_schemas::batch::RowBuffer;
use vallee_schemas::contract::{ALERTS_TOPIC, Stream};
use vallee_schemas::decode::DecodeOptions;

use super::StreamOptions;
use super::decoding::{Encoded, Pipeline};
use super::empty_partitions::{STATISTICS_INTERVAL, empty_partitions};
use super::live::{LiveFootfall, SharedLiveView};
use super::outputs::{AlertRow, OutputTable};
use super::processor::{Emitted, Processor, points_digest};
use crate::Result;
use crate::dwell::DwellSummary;
use crate::rules::fill::AlertKind;
use crate::rules::vine::{DOWNY_MILDEW, POWDERY_MILDEW, RiskLevel, Season};

/// The alert kinds of `vine_alerts` that follow a risk level.
const MILDEW_KINDS: [&str; 2] = [DOWNY_MILDEW, POWDERY_MILDEW];

/// A mildew risk level and its open episode.
type MildewLevel = (RiskLevel, Option<String>);

/// The streams the stage computes from.
pub const INPUTS: [Stream; 5] = [
    Stream::Beacons,
    Stream::Tourism,
    Stream::WasteContainers,
    Stream::WasteVehicles,
    Stream::Vineyards,
];

type Key = (OutputTable, String, i32);

/// Rebalance hook: partitions start at the smallest replay offset their outputs recorded.
struct StageContext {
    lake: Arc<Lake>,
    handle: Handle,
    options: StreamOptions,
    assigned: std::sync::Mutex<Vec<(Key, Option<i64>)>>,
    /// Partitions owned right now (0 between a revocation and the next assignment).
    owned: std::sync::atomic::AtomicUsize,
    /// Partitions the latest client statistics found empty from where they started.
    empty: std::sync::Mutex<Vec<(String, i32)>>,
}

impl StageContext {
    fn stream_of(&self, topic: &str) -> Option<Stream> {
        self.options.kafka.topics.stream_of(topic)
    }

    async fn stored(
        &self,
        topic: &str,
        partition: i32,
    ) -> vallee_lake::Result<Vec<(Key, Option<i64>)>> {
        let Some(stream) = self.stream_of(topic) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for output in OutputTable::ALL
            .into_iter()
            .filter(|o| o.sources().contains(&stream))
        {
            let stored = self
                .lake
                .committed_offsets(output, &self.options.writer_id, topic, &[partition])
                .await?;
            out.push(((output, topic.to_string(), partition), stored[&partition]));
        }
        Ok(out)
    }
}

impl ClientContext for StageContext {
    /// Served on the worker's own poll, every [`STATISTICS_INTERVAL`].
    fn stats_raw(&self, statistics: &[u8]) {
        match empty_partitions(statistics) {
            Ok(empty) => *self.empty.lock().unwrap_or_else(|p| p.into_inner()) = empty,
            Err(e) => tracing::warn!(error = %e, "unreadable Kafka client statistics"),
        }
    }
}

impl ConsumerContext for StageContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            self.owned.store(0, Relaxed);
            let _ = consumer.unassign();
            return;
        }
        self.owned.store(tpl.count(), Relaxed);
        let partitions: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let mut assigned = Vec::new();
        for (topic, partition) in partitions {
            match self.handle.block_on(self.stored(&topic, partition)) {
                Ok(stored) => {
                    let start = stored.iter().filter_map(|(_, o)| *o).min();
                    let offset = start.map_or(Offset::Beginning, Offset::Offset);
                    let _ = tpl.set_partition_offset(&topic, partition, offset);
                    tracing::info!(topic, partition, replay_from = ?start, "stream stage partition assigned");
                    assigned.extend(stored);
                }
                Err(e) => {
                    tracing::error!(topic, partition, error = %e, "cannot read the stage's offsets")
                }
            }
        }
        if let Err(e) = consumer.assign(tpl) {
            tracing::error!(error = %e, "assign failed");
        }
        self.assigned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(assigned);
    }
}

fn strings(batch: &RecordBatch, name: &str) -> Vec<String> {
    let col = arrow::compute::cast(batch.column_by_name(name).expect("column"), &DataType::Utf8)
        .expect("cast to Utf8");
    let a = col.as_string::<i32>();
    (0..a.len()).map(|i| a.value(i).to_string()).collect()
}

fn micros(batch: &RecordBatch, name: &str) -> Vec<i64> {
    let a = batch
        .column_by_name(name)
        .expect("column")
        .as_primitive::<TimestampMicrosecondType>();
    (0..a.len()).map(|i| a.value(i)).collect()
}

fn ints(batch: &RecordBatch, name: &str) -> Vec<i64> {
    let col = arrow::compute::cast(
        batch.column_by_name(name).expect("column"),
        &DataType::Int64,
    )
    .expect("cast to Int64");
    let a = col.as_primitive::<arrow::datatypes::Int64Type>();
    (0..a.len()).map(|i| a.value(i)).collect()
}

fn floats(batch: &RecordBatch, name: &str) -> Vec<f64> {
    let a = batch
        .column_by_name(name)
        .expect("column")
        .as_primitive::<Float64Type>();
    (0..a.len()).map(|i| a.value(i)).collect()
}

fn dates(batch: &RecordBatch, name: &str) -> Vec<NaiveDate> {
    let a = batch
        .column_by_name(name)
        .expect("column")
        .as_primitive::<Date32Type>();
    (0..a.len()).filter_map(|i| a.value_as_date(i)).collect()
}

/// A list of `{point, checkins}` structs per row.
fn point_lists(batch: &RecordBatch, name: &str) -> Vec<Vec<(String, i64)>> {
    let column = batch.column_by_name(name).expect("column");
    (0..batch.num_rows())
        .map(|i| {
            let value = match column.as_list_opt::<i32>() {
                Some(list) => list.value(i),
                None => column.as_list::<i64>().value(i),
            };
            let points = value.as_struct();
            let names = arrow::compute::cast(points.column(0), &DataType::Utf8).expect("cast");
            let names = names.as_string::<i32>();
            let counts = arrow::compute::cast(points.column(1), &DataType::Int64).expect("cast");
            let counts = counts.as_primitive::<arrow::datatypes::Int64Type>();
            (0..points.len())
                .map(|j| (names.value(j).to_string(), counts.value(j)))
                .collect()
        })
        .collect()
}

fn revisions(batch: &RecordBatch) -> Vec<i32> {
    let a = batch
        .column_by_name("revision")
        .expect("column")
        .as_primitive::<Int32Type>();
    (0..a.len()).map(|i| a.value(i)).collect()
}

/// A stored vineyard day: day, rain, [latitude, Winkler, Huglin, oospores], GT streak, GT index.
type StoredDay = (NaiveDate, f64, [f64; 4], u32, Option<u8>);

/// An alert still open in `fill_alerts`: entity, kind, id, opening time.
type OpenAlert = (String, AlertKind, String, DateTime<Utc>);

/// Mildew risk per (entity, kind): level and open episode.
type MildewState = BTreeMap<(String, &'static str), (RiskLevel, Option<String>)>;

/// What the output tables hold and the state a restart resumes from.
struct Restored {
    emitted: Emitted,
    /// Alerts still open in `fill_alerts`.
    open: Vec<OpenAlert>,
    seasons: BTreeMap<String, Season>,
    mildew: MildewState,
}

async fn load_emitted(lake: &Lake) -> Result<Restored> {
    for t in OutputTable::ALL {
        lake.ensure(t).await?;
    }
    let mut emitted = Emitted::default();
    for b in lake.sql("SELECT zone, \"window\", \"dateObservedFrom\", revision, \"peopleCount\" FROM footfall").await? {
        let (z, w, f, r, n) = (strings(&b, "zone"), strings(&b, "window"), micros(&b, "dateObservedFrom"), revisions(&b), ints(&b, "peopleCount"));
        for i in 0..b.num_rows() {
            let e = emitted.footfall.entry((z[i].clone(), w[i].clone(), f[i])).or_insert((r[i], n[i]));
            if r[i] >= e.0 {
                *e = (r[i], n[i]);
            }
        }
    }
    let sql = "SELECT zone, hour, revision, visits, \"dwellUnder5Min\", \"dwell5To15Min\", \"dwell15To30Min\", \
               \"dwell30To60Min\", \"totalDwellSeconds\", \"medianDwellMinutes\" FROM footfall_dwell";
    for b in lake.sql(sql).await? {
        let (z, h, r) = (strings(&b, "zone"), micros(&b, "hour"), revisions(&b));
        let columns = [
            "visits",
            "dwellUnder5Min",
            "dwell5To15Min",
            "dwell15To30Min",
            "dwell30To60Min",
            "totalDwellSeconds",
            "medianDwellMinutes",
        ]
        .map(|c| ints(&b, c));
        for i in 0..b.num_rows() {
            let [n, a, b5, c15, d30, total, median] = columns.each_ref().map(|c| c[i]);
            let summary = DwellSummary {
                sessions: n,
                under_5_min: a,
                from_5_to_15_min: b5,
                from_15_to_30_min: c15,
                from_30_to_60_min: d30,
                total_seconds: total,
                median_minutes: median,
            };
            let e = emitted
                .dwell
                .entry((z[i].clone(), h[i]))
                .or_insert((r[i], summary));
            if r[i] >= e.0 {
                *e = (r[i], summary);
            }
        }
    }
    for b in lake
        .sql("SELECT site, hour, revision, \"visitorCount\", \"arCheckins\", \"arCheckinsByPoint\" FROM site_presence")
        .await?
    {
        let (s, h, r, v, a) = (
            strings(&b, "site"),
            micros(&b, "hour"),
            revisions(&b),
            ints(&b, "visitorCount"),
            ints(&b, "arCheckins"),
        );
        let points = point_lists(&b, "arCheckinsByPoint");
        for i in 0..b.num_rows() {
            let value = (v[i], a[i], points_digest(&points[i]));
            let e = emitted
                .presence
                .entry((s[i].clone(), h[i]))
                .or_insert((r[i], value));
            if r[i] >= e.0 {
                *e = (r[i], value);
            }
        }
    }
    let mut states: BTreeMap<String, (String, String, String, i64)> = BTreeMap::new();
    for b in lake
        .sql("SELECT \"alertId\", state, kind, \"entityId\", \"dateObserved\" FROM fill_alerts")
        .await?
    {
        let (id, st, k, e, t) = (
            strings(&b, "alertId"),
            strings(&b, "state"),
            strings(&b, "kind"),
            strings(&b, "entityId"),
            micros(&b, "dateObserved"),
        );
        for i in 0..b.num_rows() {
            let state: &'static str = if st[i] == "open" { "open" } else { "cleared" };
            emitted.alerts.insert((id[i].clone(), state));
            let entry = states.entry(id[i].clone()).or_insert((
                st[i].clone(),
                k[i].clone(),
                e[i].clone(),
                t[i],
            ));
            if st[i] == "cleared" {
                entry.0 = "cleared".into();
            }
        }
    }
    let open = states
        .into_iter()
        .filter(|(_, (state, ..))| state == "open")
        .filter_map(|(id, (_, kind, entity, t))| {
            Some((
                entity,
                AlertKind::parse(&kind)?,
                id,
                DateTime::from_timestamp_micros(t)?,
            ))
        })
        .collect();
    for b in lake
        .sql("SELECT \"entityId\", \"dateObserved\" FROM bin_forecast")
        .await?
    {
        let (id, t) = (strings(&b, "entityId"), micros(&b, "dateObserved"));
        for i in 0..b.num_rows() {
            emitted.forecasts.insert((id[i].clone(), t[i]));
        }
    }
    // Mildew episodes: the latest row of each (entity, kind) gives its level.
    let mut latest: BTreeMap<(String, &'static str), (i64, MildewLevel)> = BTreeMap::new();
    let sql = "SELECT \"alertId\", state, CAST(\"dateObserved\" AS BIGINT) AS t, kind, \"entityId\", \"riskLevel\" FROM vine_alerts";
    for b in lake.sql(sql).await? {
        let (id, st, t) = (strings(&b, "alertId"), strings(&b, "state"), ints(&b, "t"));
        let (kind, entity, level) = (
            strings(&b, "kind"),
            strings(&b, "entityId"),
            strings(&b, "riskLevel"),
        );
        for i in 0..b.num_rows() {
            let open = st[i] == "open";
            emitted.vine_alerts.insert((
                id[i].clone(),
                if open { "open" } else { "cleared" },
                t[i],
            ));
            let Some(kind) = MILDEW_KINDS.into_iter().find(|k| *k == kind[i]) else {
                continue;
            };
            let state = match RiskLevel::parse(&level[i]) {
                Some(l) if open => (l, Some(id[i].clone())),
                _ => (RiskLevel::Low, None),
            };
            let e = latest
                .entry((entity[i].clone(), kind))
                .or_insert((t[i], state.clone()));
            if t[i] >= e.0 {
                *e = (t[i], state);
            }
        }
    }
    let mildew = latest.into_iter().map(|(k, (_, v))| (k, v)).collect();
    // The season state: each station's last stored day, and the rain of its last two days.
    let mut days: BTreeMap<String, Vec<StoredDay>> = BTreeMap::new();
    let sql = "SELECT station, day, latitude, \"rainMm\", \"winklerIndex\", \"huglinIndex\", \"oosporeDegreeDays\", \
               \"gublerThomasStreak\", \"gublerThomasIndex\", \"gublerThomasStarted\" FROM vine_indicators";
    for b in lake.sql(sql).await? {
        let station = strings(&b, "station");
        let day = dates(&b, "day");
        let (lat, rain, wi, hu, oo) = (
            floats(&b, "latitude"),
            floats(&b, "rainMm"),
            floats(&b, "winklerIndex"),
            floats(&b, "huglinIndex"),
            floats(&b, "oosporeDegreeDays"),
        );
        let (streak, gt) = (
            ints(&b, "gublerThomasStreak"),
            ints(&b, "gublerThomasIndex"),
        );
        let started = b
            .column_by_name("gublerThomasStarted")
            .expect("column")
            .as_boolean()
            .clone();
        for i in 0..b.num_rows() {
            emitted.vine_days.insert((station[i].clone(), day[i]));
            let index = started.value(i).then_some(gt[i] as u8);
            days.entry(station[i].clone()).or_default().push((
                day[i],
                rain[i],
                [lat[i], wi[i], hu[i], oo[i]],
                streak[i] as u32,
                index,
            ));
        }
    }
    let seasons = days
        .into_iter()
        .filter_map(|(station, mut rows)| {
            rows.sort_by_key(|r| r.0);
            let (day, _, [lat, winkler, huglin, oospore], streak, index) = *rows.last()?;
            let recent: Vec<(NaiveDate, f64)> = rows
                .iter()
                .rev()
                .take(2)
                .map(|r| (r.0, r.1))
                .rev()
                .collect();
            let season = Season::restore(
                lat,
                chrono::Datelike::year(&day),
                winkler,
                huglin,
                oospore,
                streak,
                index,
                &recent,
            );
            Some((station, season))
        })
        .collect();
    Ok(Restored {
        emitted,
        open,
        seasons,
        mildew,
    })
}

/// An alert row as a FIWARE `Alert` message of `vallee.alerts`.
fn alert_json(r: &AlertRow) -> String {
    let category = if AlertKind::parse(r.kind).is_some() {
        "waste"
    } else {
        "agriculture"
    };
    serde_json::json!({
        "id": format!("urn:ngsi-ld:Alert:{}", r.alert_id),
        "type": "Alert",
        "alertId": r.alert_id,
        "category": category,
        "subCategory": r.kind,
        "alertSource": r.entity_id,
        "state": r.state,
        "dateIssued": r.date_observed.to_rfc3339(),
        "clearReason": r.clear_reason,
        "fillingLevel": r.filling_level,
        "riskLevel": r.risk_level,
        "communeCode": r.commune_code,
    })
    .to_string()
}

/// Runs the stage loop on the current thread until `shutdown`.
pub fn run_blocking(
    options: StreamOptions,
    lake: Arc<Lake>,
    live: SharedLiveView,
    handle: Handle,
    shutdown: CancellationToken,
) -> Result<()> {
    let restored = handle.block_on(load_emitted(&lake))?;
    let mut processor = Processor::new(options.clone(), restored.emitted, handle.clone());
    processor.seasons = restored.seasons;
    processor.mildew = restored.mildew;
    for (entity, kind, id, at) in restored.open {
        processor.restore_open_alert(&entity, kind, &id, at);
    }
    let mut consumer = subscribe(&options, &lake, &handle)?;
    let producer: FutureProducer = options
        .kafka
        .client_config(&[
            ("compression.type", "lz4".into()),
            ("linger.ms", "5".into()),
        ])
        .create()?;
    let mut pipeline = Pipeline::new(DecodeOptions::default(), super::decoding::threads());
    // Refused messages are ingest's business (dead letters); the stage skips them.
    let topics = options.kafka.topics.clone();
    let process = |processor: &mut Processor,
                   (stream, partition, offset): (Stream, i32, i64),
                   event: std::result::Result<_, _>|
     -> Result<()> {
        match event {
            Ok(event) => {
                let topic = topics.get(&stream).map_or("", String::as_str);
                processor.process(stream, topic, partition, offset, &event, Instant::now())
            }
            Err(_) => Ok(()),
        }
    };
    let mut previous: BTreeMap<Key, Option<i64>> = BTreeMap::new();
    let mut last_flush = Instant::now();
    let mut rejoin = RejoinPolicy::new(Instant::now());
    let (mut consumed, mut assigned_once) = (0u64, false);
    tracing::info!(group = options.group_id, "stream stage started");
    loop {
        let stopping = shutdown.is_cancelled();
        let owned = (consumer.context().owned).load(std::sync::atomic::Ordering::Relaxed) > 0;
        if owned && !assigned_once {
            assigned_once = true;
            live.write().unwrap_or_else(|p| p.into_inner()).assigned_at = Some(Instant::now());
        }
        if rejoin.should_rejoin(owned, Instant::now()) {
            // A member the group left with nothing joins again (see `vallee_kafka::rejoin`).
            consumer = subscribe(&options, &lake, &handle)?;
        }
        // What is already fetched is taken in one chunk (up to a batch, stopping at a
        // rebalance) and fed to the decoding pipeline. While a decoded chunk waits, polling
        // does not wait: with nothing more fetched, the chunk is processed at once.
        let wait = if pipeline.is_empty() {
            Duration::from_millis(50)
        } else {
            Duration::ZERO
        };
        if !stopping && let Some(Ok(first)) = consumer.poll(wait) {
            let mut polled = vec![first];
            while polled.len() < crate::microbatch::BATCH_ROWS
                && consumer
                    .context()
                    .assigned
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_empty()
            {
                match consumer.poll(Duration::ZERO) {
                    Some(Ok(m)) => polled.push(m),
                    _ => break,
                }
            }
            consumed += polled.len() as u64;
            let (mut metas, mut encoded) = (Vec::new(), Vec::new());
            for m in &polled {
                if let Some(stream) = topics.stream_of(m.topic()) {
                    metas.push((stream, m.partition(), m.offset()));
                    encoded.push(Encoded {
                        stream,
                        payload: m.payload(),
                        timestamp_ms: m.timestamp().to_millis(),
                    });
                }
            }
            pipeline.feed(metas, &encoded, |m, e| process(&mut processor, m, e))?;
        } else {
            pipeline.flush(|m, e| process(&mut processor, m, e))?;
        }
        for (key, stored) in consumer
            .context()
            .assigned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let (_, topic, partition) = &key;
            if let Some(stream) = consumer.context().stream_of(topic) {
                processor.partition_assigned(stream, *partition, Instant::now());
            }
            previous.insert(key, stored);
        }
        for (topic, partition) in consumer
            .context()
            .empty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            if let Some(stream) = consumer.context().stream_of(&topic) {
                processor.partition_found_empty(stream, partition);
            }
        }
        if !processor.fresh_alerts.is_empty() {
            // Threshold alerts reach the live view and the topic on arrival, not at the flush.
            let mut view = live.write().unwrap_or_else(|p| p.into_inner());
            for row in processor
                .fresh_alerts
                .iter()
                .filter(|r| AlertKind::parse(r.kind).is_some())
            {
                if row.state == "open" {
                    view.open_alerts.insert(row.alert_id.clone(), row.clone());
                } else {
                    view.open_alerts.remove(&row.alert_id);
                }
            }
            drop(view);
            publish_alerts(&producer, &handle, &mut processor);
        }
        if stopping || last_flush.elapsed() >= options.flush_interval {
            pipeline.flush(|m, e| process(&mut processor, m, e))?;
            last_flush = Instant::now();
            processor.tick(Instant::now())?;
            publish_alerts(&producer, &handle, &mut processor);
            handle.block_on(commit(&lake, &options, &mut processor, &mut previous))?;
            update_live(&live, &processor, consumed);
        }
        if stopping {
            break;
        }
    }
    consumer.unsubscribe();
    tracing::info!("stream stage stopped after a final commit");
    Ok(())
}

/// A consumer of the stage's input topics in its own group, positioned by [`StageContext`].
fn subscribe(
    options: &StreamOptions,
    lake: &Arc<Lake>,
    handle: &Handle,
) -> Result<BaseConsumer<StageContext>> {
    let context = StageContext {
        lake: lake.clone(),
        handle: handle.clone(),
        options: options.clone(),
        assigned: Default::default(),
        owned: Default::default(),
        empty: Default::default(),
    };
    let topics = options.kafka.topics.topics_of(&INPUTS);
    Ok(vallee_kafka::subscribe(
        &consumer_config(options),
        context,
        &topics,
    )?)
}

/// The stage's consumer: the shared base, statistics for [`empty_partitions`], and a short
/// fetch wait (the floor of alert latency when traffic is sparse).
fn consumer_config(options: &StreamOptions) -> ClientConfig {
    let settings = [
        (
            "statistics.interval.ms",
            STATISTICS_INTERVAL.as_millis().to_string(),
        ),
        (
            "fetch.wait.max.ms",
            options.fetch_wait.as_millis().to_string(),
        ),
    ];
    options.kafka.consumer_config(ConsumerSettings {
        group_id: &options.group_id,
        client_id: &options.writer_id,
        settings: &settings,
        overrides: &options.consumer_overrides,
    })
}

/// Alerts reach the topic at once, before any commit (at least once; ids are stable).
fn publish_alerts(producer: &FutureProducer, handle: &Handle, processor: &mut Processor) {
    for c in processor.fresh_alerts.drain(..) {
        let payload = alert_json(&c);
        let record = FutureRecord::to(ALERTS_TOPIC)
            .key(&c.alert_id)
            .payload(&payload);
        match producer.send_result(record) {
            Ok(delivery) => {
                handle.spawn(async move {
                    if let Ok(Err((e, _))) = delivery.await {
                        tracing::warn!(error = %e, "alert not delivered to the alerts topic");
                    }
                });
            }
            Err((e, _)) => {
                tracing::warn!(error = %e, alert = c.alert_id, "alert not queued for the alerts topic")
            }
        }
    }
}

async fn commit(
    lake: &Lake,
    options: &StreamOptions,
    processor: &mut Processor,
    previous: &mut BTreeMap<Key, Option<i64>>,
) -> Result<()> {
    let now = Instant::now();
    for output in OutputTable::ALL {
        let mut rows = RowBuffer::new(output.name(), output.schema())?;
        let pending = &mut processor.pending;
        match output {
            OutputTable::Footfall => pending.footfall.drain(..).try_for_each(|r| rows.push(&r))?,
            OutputTable::FootfallDwell => {
                pending.dwell.drain(..).try_for_each(|r| rows.push(&r))?
            }
            OutputTable::SitePresence => {
                pending.presence.drain(..).try_for_each(|r| rows.push(&r))?
            }
            OutputTable::FillAlerts => pending.alerts.drain(..).try_for_each(|r| rows.push(&r))?,
            OutputTable::VineIndicators => {
                pending.vine.drain(..).try_for_each(|r| rows.push(&r))?
            }
            OutputTable::VineAlerts => pending
                .vine_alerts
                .drain(..)
                .try_for_each(|r| rows.push(&r))?,
            OutputTable::BinForecast => pending
                .forecasts
                .drain(..)
                .try_for_each(|r| rows.push(&r))?,
        }
        let mut progress = Vec::new();
        for stream in output.sources() {
            let Some(topic) = options.kafka.topics.get(stream) else {
                continue;
            };
            let keep_from = processor
                .watermark(*stream, now)
                .map(|w| w - processor.retention(*stream));
            for (t, partition) in processor
                .replay
                .partitions()
                .into_iter()
                .filter(|(t, _)| t == topic)
            {
                let Some(keep_from) = keep_from else { continue };
                let Some(replay_from) = processor.replay.replay_from(&t, partition, keep_from)
                else {
                    continue;
                };
                let key = (output, t.clone(), partition);
                let before = previous.get(&key).copied().flatten();
                if before != Some(replay_from) {
                    progress.push(Progress {
                        topic: t,
                        partition,
                        previous: before,
                        last: replay_from,
                    });
                }
            }
        }
        let batch = rows.finish()?;
        if batch.is_none() && progress.is_empty() {
            continue;
        }
        lake.append(
            output,
            &options.writer_id,
            batch.into_iter().collect(),
            &progress,
        )
        .await?;
        for p in progress {
            previous.insert((output, p.topic, p.partition), Some(p.last));
        }
    }
    Ok(())
}

fn update_live(live: &SharedLiveView, processor: &Processor, consumed: u64) {
    let now = Instant::now();
    let mut view = live.write().unwrap_or_else(|p| p.into_inner());
    view.consumed = consumed;
    view.footfall = processor
        .early_footfall()
        .into_iter()
        .map(|(zone, window, w, people_count)| LiveFootfall {
            zone,
            window,
            from: w.start,
            to: w.end,
            people_count,
        })
        .collect();
    view.open_alerts = processor.open_alert_rows();
    view.watermarks = INPUTS
        .iter()
        .map(|s| (*s, processor.watermark(*s, now)))
        .collect();
    view.updated_at = Some(Utc::now());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings the stage ran with before they were layered over the shared base.
    #[test]
    fn the_consumer_keeps_its_settings() {
        let config = consumer_config(&StreamOptions::default());
        for (key, value) in [
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("group.id", "vallee-stream"),
            ("client.id", "vallee-stream"),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
            ("partition.assignment.strategy", "range"),
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "1000"),
            ("statistics.interval.ms", "1000"),
            ("fetch.wait.max.ms", "20"),
        ] {
            assert_eq!(config.get(key), Some(value), "{key}");
        }
        // Ingest's fetch queues are ingest's: the stage keeps librdkafka's defaults.
        for key in [
            "queued.min.messages",
            "fetch.max.bytes",
            "enable.auto.offset.store",
        ] {
            assert_eq!(config.get(key), None, "{key}");
        }
    }
}
