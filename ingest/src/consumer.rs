//! The rdkafka consumer of the ingest stage and its rebalance hook.
//!
//! On assignment, before librdkafka starts fetching, the hook reads from the lake the
//! offset every table fed by each partition has recorded, and assigns the partition at the
//! smallest `stored + 1` (the beginning when no table has anything). Messages below a
//! table's stored offset are then skipped for that table only. Consumer-group offsets are
//! never used to position the consumer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use tokio::runtime::Handle;
use vallee_kafka::{ConsumerSettings, TopicMap};
use vallee_lake::Lake;
use vallee_schemas::contract::{Stream, Table};

use crate::{IngestOptions, Result};

/// A partition taken over, with what each of its tables already holds.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub stream: Stream,
    pub topic: String,
    pub partition: i32,
    /// Stored offset per table fed by the topic (`None`: nothing recorded).
    pub committed: BTreeMap<Table, Option<i64>>,
    /// Where consumption starts (`None`: the beginning of the partition).
    pub start: Option<i64>,
}

/// What the rebalance hook tells the worker loop.
#[derive(Debug)]
pub enum RebalanceEvent {
    Assigned(Vec<Assignment>),
    Revoked(Vec<(String, i32)>),
    /// The stored offsets could not be read: ingest must stop rather than guess.
    Failed(String),
}

/// rdkafka context of the ingest consumer.
pub struct IngestContext {
    lake: Arc<Lake>,
    handle: Handle,
    writer_id: String,
    topics: TopicMap,
    events: Mutex<Vec<RebalanceEvent>>,
    /// Held by a flush's commit while it runs beside reading: a rebalance waits for it,
    /// so partitions move (and their stored offsets are read) only once it landed.
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl IngestContext {
    pub fn new(lake: Arc<Lake>, handle: Handle, options: &IngestOptions) -> Self {
        IngestContext {
            lake,
            handle,
            writer_id: options.writer_id.clone(),
            topics: options.kafka.topics.clone(),
            events: Mutex::new(Vec::new()),
            gate: Arc::default(),
        }
    }

    /// The commit gate (see the field).
    pub fn gate(&self) -> Arc<tokio::sync::Mutex<()>> {
        self.gate.clone()
    }

    /// Takes the events recorded since the last call.
    pub fn take_events(&self) -> Vec<RebalanceEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Whether events wait to be taken (a rebalance happened during the last poll).
    pub fn has_events(&self) -> bool {
        !self
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    fn push(&self, event: RebalanceEvent) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }

    /// Reads the stored offsets of every table fed by these partitions.
    pub async fn assignments(
        &self,
        partitions: &[(String, i32)],
    ) -> vallee_lake::Result<Vec<Assignment>> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, p) in partitions {
            by_topic.entry(topic.as_str()).or_default().push(*p);
        }
        let mut out = Vec::new();
        for (topic, parts) in by_topic {
            let Some(stream) = self.topics.stream_of(topic) else {
                tracing::warn!(
                    topic,
                    "assigned a topic that is not an input stream; ignoring it"
                );
                continue;
            };
            let mut committed: BTreeMap<i32, BTreeMap<Table, Option<i64>>> = BTreeMap::new();
            for table in stream.tables() {
                for (p, offset) in self
                    .lake
                    .committed_offsets(table, &self.writer_id, topic, &parts)
                    .await?
                {
                    committed.entry(p).or_default().insert(table, offset);
                }
            }
            for (partition, committed) in committed {
                // The smallest next offset any table needs; none recorded anywhere: beginning.
                let start = if committed.values().all(Option::is_none) {
                    None
                } else {
                    Some(
                        committed
                            .values()
                            .map(|o| o.map_or(0, |o| o + 1))
                            .min()
                            .unwrap_or(0),
                    )
                };
                out.push(Assignment {
                    stream,
                    topic: topic.to_string(),
                    partition,
                    committed,
                    start,
                });
            }
        }
        Ok(out)
    }
}

impl IngestContext {
    /// Positions `tpl`'s partitions at the offsets the lake stored and assigns them, all at
    /// once (`incremental` false: a rebalance's whole assignment) or in addition to those
    /// already owned (self-assigned membership picking up partitions).
    pub fn take_over(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &mut TopicPartitionList,
        incremental: bool,
    ) {
        let partitions: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        match self.handle.block_on(self.assignments(&partitions)) {
            Ok(assignments) => {
                for a in &assignments {
                    let offset = a.start.map_or(Offset::Beginning, Offset::Offset);
                    if let Err(e) = tpl.set_partition_offset(&a.topic, a.partition, offset) {
                        self.push(RebalanceEvent::Failed(format!(
                            "{}[{}]: {e}",
                            a.topic, a.partition
                        )));
                    }
                    tracing::info!(topic = a.topic, partition = a.partition, start = ?a.start, "partition assigned");
                }
                let assigned = if incremental {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = assigned {
                    self.push(RebalanceEvent::Failed(format!("assign: {e}")));
                }
                self.push(RebalanceEvent::Assigned(assignments));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read stored offsets; not consuming");
                self.push(RebalanceEvent::Failed(e.to_string()));
            }
        }
    }
}

impl ClientContext for IngestContext {}

impl ConsumerContext for IngestContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let partitions: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        // The commit under way lands first: a revoked partition's next owner, or this
        // member taking partitions back, reads the offsets it stored.
        let _no_commit_running = self.handle.block_on(self.gate.lock());
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.take_over(consumer, tpl, false)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(partitions = partitions.len(), "partitions revoked");
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(error = %e, "unassign failed");
                }
                self.push(RebalanceEvent::Revoked(partitions));
            }
            other => {
                tracing::warn!(error = ?other, "rebalance error; dropping the assignment");
                let _ = consumer.unassign();
                self.push(RebalanceEvent::Revoked(partitions));
            }
        }
    }
}

/// The consumer configuration: manual positioning, no auto-commit (the shared base), big
/// fetch queues (librdkafka's defaults cut backlog replay 3–6×).
pub fn consumer_config(options: &IngestOptions) -> ClientConfig {
    let settings = [
        ("enable.auto.offset.store", "false"),
        ("enable.partition.eof", "false"),
        ("fetch.wait.max.ms", "100"),
    ]
    .map(|(k, v)| (k, v.to_string()));
    options.kafka.consumer_config(ConsumerSettings {
        group_id: &options.group_id,
        client_id: &options.writer_id,
        settings: &settings,
        overrides: &options.consumer_overrides,
    })
}

/// Creates the consumer: subscribed to the input topics in a group, or with no
/// subscription when it assigns its partitions itself ([`assign_owned`]).
pub fn create(
    options: &IngestOptions,
    context: IngestContext,
) -> Result<BaseConsumer<IngestContext>> {
    let config = consumer_config(options);
    if options.membership.assigns_itself() {
        return Ok(config.create_with_context(context)?);
    }
    let topics: Vec<&str> = options.kafka.topics.values().map(String::as_str).collect();
    Ok(vallee_kafka::subscribe(&config, context, &topics)?)
}

/// Under a self-assigned membership, takes over the member's partitions it does not own
/// yet (all of them at start; then partitions added to a topic). Returns how many.
pub fn assign_owned(
    options: &IngestOptions,
    consumer: &BaseConsumer<IngestContext>,
    owned: &[(String, i32)],
) -> Result<usize> {
    let topics: Vec<&str> = options.kafka.topics.values().map(String::as_str).collect();
    let mut tpl = vallee_kafka::partitions_to_take(consumer, &topics, options.membership, owned)?;
    let n = tpl.count();
    if n > 0 {
        consumer.context().take_over(consumer, &mut tpl, true);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings ingest ran with before they were layered over the shared base.
    #[test]
    fn the_consumer_keeps_its_settings_and_its_overrides_come_last() {
        let options = IngestOptions {
            consumer_overrides: [("fetch.wait.max.ms".to_string(), "10".to_string())].into(),
            ..Default::default()
        };
        let config = consumer_config(&options);
        for (key, value) in [
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("group.id", "vallee-ingest"),
            ("client.id", "vallee-ingest"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
            ("partition.assignment.strategy", "range"),
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "1000"),
            ("fetch.wait.max.ms", "10"),
            ("queued.min.messages", "200000"),
            ("queued.max.messages.kbytes", "262144"),
            ("fetch.max.bytes", "52428800"),
            ("max.partition.fetch.bytes", "8388608"),
        ] {
            assert_eq!(config.get(key), Some(value), "{key}");
        }
        assert_eq!(config.get("statistics.interval.ms"), None);
    }
}
