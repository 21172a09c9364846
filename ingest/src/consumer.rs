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
    topics: BTreeMap<String, Stream>,
    events: Mutex<Vec<RebalanceEvent>>,
}

impl IngestContext {
    pub fn new(lake: Arc<Lake>, handle: Handle, options: &IngestOptions) -> Self {
        IngestContext {
            lake,
            handle,
            writer_id: options.writer_id.clone(),
            topics: options
                .topics
                .iter()
                .map(|(s, t)| (t.clone(), *s))
                .collect(),
            events: Mutex::new(Vec::new()),
        }
    }

    /// Takes the events recorded since the last call.
    pub fn take_events(&self) -> Vec<RebalanceEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
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
            let Some(&stream) = self.topics.get(topic) else {
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
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                match self.handle.block_on(self.assignments(&partitions)) {
                    Ok(assignments) => {
                        for a in &assignments {
                            let offset = a.start.map_or(Offset::Beginning, Offset::Offset);
                            if let Err(e) = tpl.set_partition_offset(&a.topic, a.partition, offset)
                            {
                                self.push(RebalanceEvent::Failed(format!(
                                    "{}[{}]: {e}",
                                    a.topic, a.partition
                                )));
                            }
                            tracing::info!(topic = a.topic, partition = a.partition, start = ?a.start, "partition assigned");
                        }
                        if let Err(e) = consumer.assign(tpl) {
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

/// The consumer configuration: manual positioning, no auto-commit, big fetch queues
/// (librdkafka's defaults cut backlog replay 3–6×).
pub fn consumer_config(options: &IngestOptions) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &options.brokers)
        .set("group.id", &options.group_id)
        .set("client.id", &options.writer_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("partition.assignment.strategy", "range")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .set("fetch.wait.max.ms", "100")
        .set("queued.min.messages", "200000")
        .set("queued.max.messages.kbytes", "262144")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "8388608");
    for (k, v) in &options.kafka_overrides {
        cfg.set(k, v);
    }
    cfg
}

/// Creates the consumer and subscribes it to the input topics.
pub fn subscribe(
    options: &IngestOptions,
    context: IngestContext,
) -> Result<BaseConsumer<IngestContext>> {
    let consumer: BaseConsumer<IngestContext> =
        consumer_config(options).create_with_context(context)?;
    let topics: Vec<&str> = options.topics.values().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}
