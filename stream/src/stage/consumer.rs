//! The stage's Kafka consumer: its settings, and the hook that positions every partition it
//! is given where its outputs need the replay to start.
//!
//! Window state and device tokens are never on disk, so a partition is not resumed where
//! the last process stopped but where the oldest event its outputs still need was read:
//! each output commit records that offset per source partition (Delta `txn`), and on
//! assignment the partition starts at the smallest of them over the outputs it feeds (the
//! beginning when none recorded anything). The worker is told of every assignment (the
//! partition then holds its stream's watermark until it delivers) and of the partitions
//! the client's statistics found empty ([`super::empty_partitions`]).
//!
//! Partitions come from the group coordinator (the rebalance hook), or, under a
//! self-assigned membership (`sole`, `static:i/n`: see `vallee_kafka::membership`), from
//! the topics' metadata ([`assign_owned`]). Both go through [`StageContext::take_over`]:
//! the same positioning, the same notification to the worker.
//!
//! # Several members
//! Keyed state (a zone, a bin, a site, a station) follows the partition its events are
//! keyed to, so members that share the partitions share the state. Two things do not
//! divide that way:
//! - A partition revoked takes its state with it: the revocation waits for the commit
//!   under way (no row of it lands after another member took over) and tells the worker,
//!   which drops everything it computed and restores from the lake before the next
//!   assignment replays from the recorded offsets, as a restarted stage would.
//! - Proof of collection needs every truck, whatever partition its bin is on: the
//!   [`BROADCAST`] streams are read whole by every member, outside the group, by a second
//!   consumer ([`create_broadcast`]). Their replay offsets are recorded by one member only,
//!   the owner of partition 0 of the keyed stream beside them (`super::commit`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use tokio::runtime::Handle;
use vallee_kafka::watch::Observation;
use vallee_kafka::{ConsumerSettings, Membership, TopicMap};
use vallee_lake::{Lake, LakeTable};
use vallee_schemas::contract::Stream;
use vallee_schemas::tables::OutputTable;

use super::StreamOptions;
use super::empty_partitions::{STATISTICS_INTERVAL, empty_partitions, partition_progress};
use crate::Result;

/// The streams the stage computes from.
pub const INPUTS: [Stream; 5] = [
    Stream::Beacons,
    Stream::Tourism,
    Stream::WasteContainers,
    Stream::WasteVehicles,
    Stream::Vineyards,
];

/// The streams every member reads whole when members share the partitions: a bin on any
/// partition may need any truck to prove its collection.
pub const BROADCAST: [Stream; 1] = [Stream::WasteVehicles];

/// The input streams the member's own consumer reads: every one for a lone member; the
/// keyed ones when members share the partitions (the [`BROADCAST`] ones are read apart).
pub fn own_inputs(options: &StreamOptions) -> Vec<Stream> {
    INPUTS
        .into_iter()
        .filter(|s| !options.membership.shares_partitions() || !BROADCAST.contains(s))
        .collect()
}

/// Held by an output commit while it runs (`super::commit`): a partition's assignment reads
/// the replay offsets recorded in the lake once no commit is under way.
pub type CommitGate = Arc<tokio::sync::Mutex<()>>;

/// A partition taken over, with the replay offset each output it feeds recorded.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub stream: Stream,
    pub topic: String,
    pub partition: i32,
    /// Per output table fed by the partition, its recorded replay offset (`None`: none).
    pub stored: BTreeMap<OutputTable, Option<i64>>,
    /// Where reading starts (`None`: the beginning of the partition).
    pub start: Option<i64>,
}

/// rdkafka context of the stage's consumer: the rebalance hook and the statistics.
pub struct StageContext {
    lake: Arc<Lake>,
    handle: Handle,
    writer_id: String,
    topics: TopicMap,
    /// Assignments not yet seen by the worker.
    assigned: Mutex<Vec<Assignment>>,
    /// Partitions owned right now (none between a revocation and the next assignment).
    owned: Mutex<Vec<(String, i32)>>,
    /// Partitions the latest client statistics found empty from where they started.
    empty: Mutex<Vec<(String, i32)>>,
    /// Each assigned partition's progress in the latest client statistics, and when they
    /// came (what the stall watch reads of the broadcast consumer).
    progress: Mutex<Option<(Instant, Vec<Observation>)>>,
    /// Held while an output commit runs (its offsets are not in the lake yet).
    gate: CommitGate,
    /// Partitions were revoked since the worker last looked: its state is another
    /// member's now.
    revoked: AtomicBool,
}

impl StageContext {
    pub fn new(lake: Arc<Lake>, handle: Handle, options: &StreamOptions, gate: CommitGate) -> Self {
        StageContext {
            gate,
            lake,
            handle,
            writer_id: options.writer_id.clone(),
            topics: options.kafka.topics.clone(),
            assigned: Mutex::default(),
            owned: Mutex::default(),
            empty: Mutex::default(),
            progress: Mutex::default(),
            revoked: AtomicBool::new(false),
        }
    }

    /// Whether partitions were revoked since the last call (the worker then starts over
    /// from the lake).
    pub fn take_revoked(&self) -> bool {
        self.revoked.swap(false, Ordering::AcqRel)
    }

    /// Whether partitions were revoked and the worker has not started over yet.
    pub fn was_revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }

    pub fn stream_of(&self, topic: &str) -> Option<Stream> {
        self.topics.stream_of(topic)
    }

    /// Whether the consumer owns any partition.
    pub fn owns_partitions(&self) -> bool {
        !self.owned().is_empty()
    }

    /// The partitions the consumer owns.
    pub fn owned(&self) -> Vec<(String, i32)> {
        self.owned.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether assignments wait for the worker (a rebalance happened during a poll).
    pub fn has_assignments(&self) -> bool {
        !self
            .assigned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// The assignments made since the last call.
    pub fn take_assignments(&self) -> Vec<Assignment> {
        std::mem::take(&mut *self.assigned.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Each assigned partition's progress in the latest statistics, and when they came.
    pub fn progress(&self) -> Option<(Instant, Vec<Observation>)> {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The partitions the latest statistics found empty (each told once).
    pub fn take_empty(&self) -> Vec<(String, i32)> {
        std::mem::take(&mut *self.empty.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The replay offset every output fed by `topic[partition]` recorded.
    async fn assignment(
        &self,
        topic: &str,
        partition: i32,
    ) -> vallee_lake::Result<Option<Assignment>> {
        let Some(stream) = self.stream_of(topic) else {
            return Ok(None);
        };
        let mut stored = BTreeMap::new();
        for output in OutputTable::ALL
            .into_iter()
            .filter(|o| o.sources().contains(&stream))
        {
            let offsets = self
                .lake
                .committed_offsets(output, &self.writer_id, topic, &[partition])
                .await?;
            stored.insert(output, offsets[&partition]);
        }
        let start = crate::late::replay_start(&stored);
        Ok(Some(Assignment {
            stream,
            topic: topic.to_string(),
            partition,
            stored,
            start,
        }))
    }
}

impl ClientContext for StageContext {
    /// Served on the worker's own poll, every [`STATISTICS_INTERVAL`].
    fn stats_raw(&self, statistics: &[u8]) {
        match empty_partitions(statistics) {
            Ok(empty) => *self.empty.lock().unwrap_or_else(|p| p.into_inner()) = empty,
            Err(e) => tracing::warn!(error = %e, "unreadable Kafka client statistics"),
        }
        if let Ok(progress) = partition_progress(statistics) {
            *self.progress.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((Instant::now(), progress));
        }
    }
}

impl StageContext {
    /// Positions `tpl`'s partitions where their outputs need the replay to start and
    /// assigns them: all at once (`incremental` false: a rebalance's whole assignment) or
    /// in addition to those owned (a self-assigned membership taking partitions). The
    /// worker is told of each.
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
        let mut assigned = Vec::new();
        // The replay offsets of a commit still running would be missed: wait for it.
        let _no_commit_running = self.handle.block_on(self.gate.lock());
        for (topic, partition) in &partitions {
            let (topic, partition) = (topic.as_str(), *partition);
            match self.handle.block_on(self.assignment(topic, partition)) {
                Ok(Some(a)) => {
                    let offset = a.start.map_or(Offset::Beginning, Offset::Offset);
                    let _ = tpl.set_partition_offset(topic, partition, offset);
                    tracing::info!(topic, partition, replay_from = ?a.start, "stream stage partition assigned");
                    assigned.push(a);
                }
                Ok(None) => {}
                Err(e) => {
                    // From the beginning, as before the stage committed group offsets: those
                    // are for monitoring, never a position (the replay must cover the state).
                    let _ = tpl.set_partition_offset(topic, partition, Offset::Beginning);
                    tracing::error!(topic, partition, error = %e, "cannot read the stage's offsets")
                }
            }
        }
        let result = if incremental {
            consumer.incremental_assign(tpl)
        } else {
            consumer.assign(tpl)
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "assign failed");
        }
        {
            let mut owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
            if !incremental {
                owned.clear();
            }
            owned.extend(partitions);
        }
        self.assigned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(assigned);
    }
}

impl ConsumerContext for StageContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            self.take_over(consumer, tpl, false);
            return;
        }
        // What the commit under way writes was computed from these partitions: it lands
        // before another member can take them over, or is fenced by its commit.
        let _no_commit_running = self.handle.block_on(self.gate.lock());
        let revoked = std::mem::take(&mut *self.owned.lock().unwrap_or_else(|p| p.into_inner()));
        // Assignments the worker has not seen are revoked too.
        self.assigned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let _ = consumer.unassign();
        self.revoked.store(true, Ordering::Release);
        tracing::info!(
            partitions = revoked.len(),
            "stream stage partitions revoked"
        );
    }
}

/// The stage's consumer: the shared base, statistics for [`empty_partitions`], and a short
/// fetch wait (the floor of alert latency when traffic is sparse).
pub fn consumer_config(options: &StreamOptions) -> ClientConfig {
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

/// A consumer of the stage's input topics, positioned by [`StageContext`]: subscribed in
/// its group, or with no subscription when it assigns its partitions itself
/// ([`assign_owned`]).
pub fn create(
    options: &StreamOptions,
    lake: &Arc<Lake>,
    handle: &Handle,
    gate: CommitGate,
) -> Result<BaseConsumer<StageContext>> {
    let context = StageContext::new(lake.clone(), handle.clone(), options, gate);
    let config = consumer_config(options);
    if options.membership.assigns_itself() {
        return Ok(config.create_with_context(context)?);
    }
    let topics = options.kafka.topics.topics_of(&own_inputs(options));
    Ok(vallee_kafka::subscribe(&config, context, &topics)?)
}

/// When members share the partitions, a consumer of every partition of the [`BROADCAST`]
/// streams, outside the group (it joins nothing and commits nothing), positioned like the
/// others by [`StageContext::take_over`] ([`assign_broadcast`]). `None` for a lone member.
pub fn create_broadcast(
    options: &StreamOptions,
    lake: &Arc<Lake>,
    handle: &Handle,
    gate: CommitGate,
) -> Result<Option<BaseConsumer<StageContext>>> {
    if !options.membership.shares_partitions() {
        return Ok(None);
    }
    let context = StageContext::new(lake.clone(), handle.clone(), options, gate);
    let mut config = consumer_config(options);
    config.set("group.id", format!("{}-broadcast", options.group_id));
    Ok(Some(config.create_with_context(context)?))
}

/// Takes every partition of the [`BROADCAST`] streams the broadcast consumer does not read
/// yet. Returns how many.
pub fn assign_broadcast(
    options: &StreamOptions,
    consumer: &BaseConsumer<StageContext>,
) -> Result<usize> {
    let topics = options.kafka.topics.topics_of(&BROADCAST);
    let owned = consumer.context().owned();
    let mut tpl = vallee_kafka::partitions_to_take(consumer, &topics, Membership::Sole, &owned)?;
    let n = tpl.count();
    if n > 0 {
        consumer.context().take_over(consumer, &mut tpl, true);
    }
    Ok(n)
}

/// Under a self-assigned membership, takes over the member's partitions it does not own
/// yet (all of them at start; then partitions added to a topic), read from the topics'
/// metadata. Returns how many.
pub fn assign_owned(
    options: &StreamOptions,
    consumer: &BaseConsumer<StageContext>,
) -> Result<usize> {
    let topics = options.kafka.topics.topics_of(&own_inputs(options));
    let owned = consumer.context().owned();
    let mut tpl = vallee_kafka::partitions_to_take(consumer, &topics, options.membership, &owned)?;
    let n = tpl.count();
    if n > 0 {
        consumer.context().take_over(consumer, &mut tpl, true);
    }
    Ok(n)
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
            // A backlog is read at the broker's speed, with no second-long fetch pause
            // once the local queue has been full.
            ("queued.min.messages", "200000"),
            ("fetch.max.bytes", "52428800"),
            ("max.partition.fetch.bytes", "8388608"),
            ("fetch.queue.backoff.ms", "10"),
        ] {
            assert_eq!(config.get(key), Some(value), "{key}");
        }
        // Ingest's offset storing is ingest's.
        assert_eq!(config.get("enable.auto.offset.store"), None);
    }
}
