//! The output commit: each output table's new rows in one Delta commit, carrying per source
//! partition the offset a restart must replay from.
//!
//! A table records a partition's replay offset (Delta `txn`, app id
//! `<writer>/<table>/<topic>/<partition>`) only when it moved since the table last recorded
//! it: the offset recorded before is what the lake checks it still holds (fencing a
//! concurrent writer), and what the assignment read back is where that starts.
//!
//! After each successful output commit, the stage also commits to its consumer group, per
//! partition, the next offset after the last message whose results are committed. That
//! is for monitoring only (lag, and the probe that finds partitions nobody moves): the
//! stage is always positioned from the replay offsets the tables recorded.

use std::collections::BTreeMap;
use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use vallee_kafka::TopicMap;
use vallee_lake::{Lake, Progress};
use vallee_schemas::tables::OutputTable;

use super::StreamOptions;
use super::consumer::Assignment;
use super::dispatcher::Dispatcher;
use crate::Result;

/// An output table's recorded replay offset of one source partition.
type Key = (OutputTable, String, i32);

/// The commits of one consumer's outputs, and what each table recorded last.
#[derive(Debug)]
pub struct Committer {
    writer_id: String,
    topics: TopicMap,
    /// Per output and source partition, the replay offset the table holds.
    recorded: BTreeMap<Key, Option<i64>>,
    /// Per topic and partition, where the results committed end, for the group.
    positions: BTreeMap<String, BTreeMap<i32, Position>>,
}

/// A partition's progress, as the group is told of it.
#[derive(Debug, Clone, Copy, Default)]
struct Position {
    /// The offset after the last message read (its results are in the next commit).
    next: i64,
    /// What the group was last told.
    told: Option<i64>,
}

impl Committer {
    pub fn new(options: &StreamOptions) -> Self {
        Committer {
            writer_id: options.writer_id.clone(),
            topics: options.kafka.topics.clone(),
            recorded: BTreeMap::new(),
            positions: BTreeMap::new(),
        }
    }

    /// A partition was assigned: what its outputs recorded is the base of their next
    /// commit, and everything before where reading starts has its results committed.
    pub fn assigned(&mut self, a: &Assignment) {
        for (output, stored) in &a.stored {
            self.recorded
                .insert((*output, a.topic.clone(), a.partition), *stored);
        }
        if let Some(start) = a.start {
            self.advance(&a.topic, a.partition, start);
        }
    }

    /// Messages polled (all processed before the next commit): per partition, the last
    /// one's offset. Once per run of one partition, not per message.
    pub fn read(&mut self, polled: &[BorrowedMessage<'_>]) {
        let mut run: Option<(&str, i32, i64)> = None;
        for m in polled {
            match &mut run {
                Some((topic, partition, offset))
                    if *partition == m.partition() && *topic == m.topic() =>
                {
                    *offset = m.offset();
                }
                _ => {
                    if let Some((topic, partition, offset)) = run {
                        self.advance(topic, partition, offset + 1);
                    }
                    run = Some((m.topic(), m.partition(), m.offset()));
                }
            }
        }
        if let Some((topic, partition, offset)) = run {
            self.advance(topic, partition, offset + 1);
        }
    }

    fn advance(&mut self, topic: &str, partition: i32, next: i64) {
        let partitions = match self.positions.get_mut(topic) {
            Some(p) => p,
            None => self.positions.entry(topic.to_string()).or_default(),
        };
        let p = partitions.entry(partition).or_default();
        p.next = p.next.max(next);
    }

    /// Tells the group, for monitoring only, where each partition's committed results end
    /// (the partitions that moved since it was last told). Call after a successful commit.
    pub fn commit_group_offsets<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let mut tpl = TopicPartitionList::new();
        for (topic, partitions) in &mut self.positions {
            for (partition, p) in partitions.iter_mut() {
                if p.told != Some(p.next) {
                    p.told = Some(p.next);
                    let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(p.next));
                }
            }
        }
        if tpl.count() > 0
            && let Err(e) = consumer.commit(&tpl, CommitMode::Async)
        {
            tracing::debug!(error = %e, "group offset commit failed (informational only)");
        }
    }

    /// Commits every output's pending rows and moved replay offsets, table by table; a
    /// commit the lake refuses is tried again until it accepts or `stop` is cancelled.
    pub async fn commit(
        &mut self,
        lake: &Lake,
        dispatcher: &mut Dispatcher,
        stop: &CancellationToken,
    ) -> Result<()> {
        let mut batches = dispatcher.drain_rows()?;
        let positions = dispatcher.replay_positions(Instant::now());
        for output in OutputTable::ALL {
            let mut progress = Vec::new();
            for p in positions
                .iter()
                .filter(|p| output.sources().contains(&p.stream))
            {
                let Some(topic) = self.topics.get(&p.stream) else {
                    continue;
                };
                let key = (output, topic.clone(), p.partition);
                let before = self.recorded.get(&key).copied().flatten();
                if before != Some(p.offset) {
                    progress.push(Progress {
                        topic: topic.clone(),
                        partition: p.partition,
                        previous: before,
                        last: p.offset,
                    });
                }
            }
            let batch = batches.remove(&output);
            if batch.is_none() && progress.is_empty() {
                continue;
            }
            let batches: Vec<_> = batch.into_iter().collect();
            lake.append_retrying(output, &self.writer_id, &batches, &progress, stop)
                .await?;
            for p in progress {
                self.recorded
                    .insert((output, p.topic, p.partition), Some(p.last));
            }
        }
        Ok(())
    }
}
