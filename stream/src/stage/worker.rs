//! The stage's consumer loop: its own group, positioned at the offsets its outputs need to
//! rebuild state; outputs committed to Delta with those offsets; alerts to Kafka at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
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
use vallee_schemas::tables::{AlertRow, OutputTable};

use super::StreamOptions;
use super::decoding::{Encoded, Pipeline};
use super::empty_partitions::{STATISTICS_INTERVAL, empty_partitions};
use super::live::{LiveFootfall, SharedLiveView};
use super::processor::Processor;
use super::restore::load_emitted;
use crate::Result;
use crate::rules::fill::AlertKind;

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
