//! The output commit: each output table's new rows in one Delta commit, carrying per source
//! partition the offset a restart must replay from.
//!
//! A table records a partition's replay offset (Delta `txn`, app id
//! `<writer>/<table>/<topic>/<partition>`) only when it moved since the table last recorded
//! it: the offset recorded before is what the lake checks it still holds (fencing a
//! concurrent writer), and what the assignment read back is where that starts.
//!
//! The tables of one flush are committed together, in the background: the stage reads and
//! processes the next second's messages meanwhile, and waits for a commit only when the
//! next one is due (or a partition is taken over: the commit gate). A commit's error
//! stops the stage at the next flush, as it did when commits blocked.
//!
//! A table's rows are fenced by every partition that fed them, moved or not: a member
//! whose partitions another member has taken over (and committed since) writes nothing.
//! When members share the partitions, the streams every member reads whole
//! ([`super::consumer::BROADCAST`]) have their replay offsets recorded by one member only,
//! the owner of partition 0 of the keyed stream beside them: members would otherwise fence
//! each other on every commit; its base is what the lake holds when it commits (it may
//! have just taken that role over). Every member reads the same trucks, so its offsets
//! serve whichever member restarts.
//!
//! `late_events` is the exception: it records the offset after the last message read (how
//! far events were judged late or not) at every commit where it moved ([`crate::late`]).
//!
//! After each successful output commit, the stage also commits to its consumer group, per
//! partition, the next offset after the last message whose results are committed. That
//! is for monitoring only (lag, and the probe that finds partitions nobody moves): the
//! stage is always positioned from the replay offsets the tables recorded.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vallee_kafka::TopicMap;
use vallee_lake::{Lake, Progress};
use vallee_schemas::tables::OutputTable;

use super::StreamOptions;
use super::consumer::{Assignment, BROADCAST, CommitGate};
use super::dispatcher::Dispatcher;
use crate::Result;
use crate::families::{PendingRows, ReplayFrom};

/// An output table's recorded replay offset of one source partition.
type Key = (OutputTable, String, i32);

/// The commits of one consumer's outputs, and what each table recorded last.
#[derive(Debug)]
pub struct Committer {
    writer_id: String,
    topics: TopicMap,
    /// Per output and source partition, the replay offset the table holds.
    recorded: BTreeMap<Key, Option<i64>>,
    /// Per topic and partition, where the messages read end.
    positions: BTreeMap<String, BTreeMap<i32, Position>>,
    /// The commit on its way to the lake.
    in_flight: Option<InFlight>,
    /// Held by the commit in flight (see [`Committer::start`]).
    gate: CommitGate,
    /// Members share the partitions: the [`BROADCAST`] streams are read by every member.
    shared: bool,
    /// Their topics then (none for a lone member).
    broadcast_topics: Vec<String>,
}

/// A commit on its way to the lake.
#[derive(Debug)]
struct InFlight {
    /// Per output and source partition, the replay offset the commit records.
    task: JoinHandle<Result<Vec<(Key, i64)>>>,
    /// Where each partition's read messages ended when the commit started.
    group: Vec<(String, i32, i64)>,
    /// Messages read when it started.
    consumed: u64,
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
            in_flight: None,
            gate: CommitGate::default(),
            shared: options.membership.shares_partitions(),
            broadcast_topics: if options.membership.shares_partitions() {
                options
                    .kafka
                    .topics
                    .topics_of(&BROADCAST)
                    .into_iter()
                    .map(String::from)
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Forgets what the tables recorded and where reading ended, once the commit in
    /// flight has been waited for: the worker starts over from the lake (its partitions
    /// were revoked) and the next assignments tell it again.
    pub fn reset(&mut self) {
        debug_assert!(self.in_flight.is_none(), "a commit is still in flight");
        self.recorded.clear();
        self.positions.clear();
    }

    /// Drops the commit in flight, if any, without waiting for it: another member has
    /// taken its partitions over (the worker starts over from the lake).
    pub fn abandon(&mut self) {
        self.in_flight = None;
    }

    /// Whether `stream` is read by every member (its offsets recorded by one of them).
    fn is_broadcast(&self, stream: vallee_schemas::contract::Stream) -> bool {
        self.shared && BROADCAST.contains(&stream)
    }

    /// Whether `topic` is one of the streams read by every member.
    fn is_broadcast_topic(&self, topic: &str) -> bool {
        self.broadcast_topics.iter().any(|t| t == topic)
    }

    /// Whether this member records `output`'s replay offsets of the broadcast streams: it
    /// owns partition 0 of a keyed stream feeding `output`.
    fn records_broadcast(&self, output: OutputTable) -> bool {
        output
            .sources()
            .iter()
            .filter(|s| !self.is_broadcast(**s))
            .filter_map(|s| self.topics.get(s))
            .any(|topic| self.recorded.contains_key(&(output, topic.clone(), 0)))
    }

    /// The replay positions `output` records: those of its sources that moved since it
    /// last recorded them (the broadcast streams' by their recorder only).
    fn replay_progress(
        &self,
        output: OutputTable,
        positions: &[ReplayFrom],
        records_broadcast: bool,
        progress: &mut Vec<Progress>,
    ) {
        for p in positions
            .iter()
            .filter(|p| output.sources().contains(&p.stream))
        {
            let Some(topic) = self.topics.get(&p.stream) else {
                continue;
            };
            if self.is_broadcast(p.stream) && !records_broadcast {
                continue;
            }
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
    }

    /// Where reading ended in each partition of `output`'s sources, where it moved past
    /// what the table recorded (a replay reads below it again: never recorded backwards).
    fn read_positions(&self, output: OutputTable) -> Vec<Progress> {
        let mut progress = Vec::new();
        for stream in output.sources() {
            let Some(topic) = self.topics.get(stream) else {
                continue;
            };
            let Some(partitions) = self.positions.get(topic) else {
                continue;
            };
            for (partition, position) in partitions {
                let key = (output, topic.clone(), *partition);
                let before = self.recorded.get(&key).copied().flatten();
                if before.is_none_or(|b| position.next > b) {
                    progress.push(Progress {
                        topic: topic.clone(),
                        partition: *partition,
                        previous: before,
                        last: position.next,
                    });
                }
            }
        }
        progress
    }

    /// The gate its commits hold, for the consumer's assignments to wait on.
    pub fn gate(&self) -> CommitGate {
        self.gate.clone()
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
    /// (`committed`, the partitions that moved since it was last told).
    fn commit_group_offsets<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        committed: &[(String, i32, i64)],
    ) {
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, next) in committed {
            let Some(p) = self
                .positions
                .get_mut(topic)
                .and_then(|ps| ps.get_mut(partition))
            else {
                continue;
            };
            if p.told != Some(*next) {
                p.told = Some(*next);
                let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
            }
        }
        if tpl.count() > 0
            && let Err(e) = consumer.commit(&tpl, CommitMode::Async)
        {
            tracing::debug!(error = %e, "group offset commit failed (informational only)");
        }
    }

    /// Starts committing every output's pending rows and moved replay offsets, all tables
    /// at once, in the background: the stage reads and processes on while the lake writes
    /// (the commit took a third of the stage's time on a fast broker). One commit at a
    /// time: call [`Committer::finish`] first. Until the commit ends it holds the gate,
    /// so a partition taken over meanwhile reads the offsets it records, not older ones.
    /// `consumed`: the messages read so far, whose results this commit holds.
    pub fn start(
        &mut self,
        lake: &Arc<Lake>,
        dispatcher: &mut Dispatcher,
        stop: &CancellationToken,
        handle: &Handle,
        consumed: u64,
    ) -> Result<()> {
        debug_assert!(self.in_flight.is_none(), "one commit at a time");
        let mut batches = dispatcher.drain_rows()?;
        let positions = dispatcher.replay_positions(Instant::now());
        let mut appends = Vec::new();
        for output in OutputTable::ALL {
            let batch = batches.remove(&output);
            let records_broadcast = self.records_broadcast(output);
            let mut progress = Vec::new();
            if output == crate::late::TABLE {
                progress = self.read_positions(output);
            } else {
                self.replay_progress(output, &positions, records_broadcast, &mut progress);
            }
            if batch.is_some() {
                // Rows are fenced by every keyed partition its outputs recorded, moved or
                // not (an unchanged one with its offset as it is).
                for ((o, topic, partition), stored) in &self.recorded {
                    let Some(stored) = stored else { continue };
                    if *o != output
                        || self.is_broadcast_topic(topic)
                        || progress
                            .iter()
                            .any(|p| p.partition == *partition && p.topic == *topic)
                    {
                        continue;
                    }
                    progress.push(Progress {
                        topic: topic.clone(),
                        partition: *partition,
                        previous: Some(*stored),
                        last: *stored,
                    });
                }
            }
            if batch.is_none() && progress.is_empty() {
                continue;
            }
            let broadcast: Vec<usize> = progress
                .iter()
                .enumerate()
                .filter(|(_, p)| self.is_broadcast_topic(&p.topic))
                .map(|(i, _)| i)
                .collect();
            appends.push((
                output,
                batch.into_iter().collect::<Vec<_>>(),
                progress,
                broadcast,
            ));
        }
        let group = self
            .positions
            .iter()
            .filter(|(topic, _)| !self.is_broadcast_topic(topic))
            .flat_map(|(topic, partitions)| {
                partitions
                    .iter()
                    .map(|(p, pos)| (topic.clone(), *p, pos.next))
            })
            .collect();
        let gate = self
            .gate
            .clone()
            .try_lock_owned()
            .map_err(|_| crate::Error::Fatal("an output commit is already running".into()))?;
        let (lake, writer, stop) = (lake.clone(), self.writer_id.clone(), stop.clone());
        let task = handle.spawn(async move {
            let _gate = gate;
            let commits = appends
                .into_iter()
                .map(|(output, batches, mut progress, broadcast)| {
                    let (lake, writer, stop) = (&lake, &writer, &stop);
                    async move {
                        // The rows to Arrow here, beside the stage's processing.
                        let batches = tokio::task::spawn_blocking(move || {
                            batches
                                .into_iter()
                                .map(PendingRows::into_batch)
                                .collect::<Result<Vec<_>>>()
                        })
                        .await
                        .map_err(|e| {
                            crate::Error::Fatal(format!("converting rows to Arrow: {e}"))
                        })??;
                        let batches: Vec<_> = batches.into_iter().flatten().collect();
                        // A broadcast stream's offsets: whatever the lake holds is the base (this
                        // member may have just become their recorder; a stale recorder is fenced
                        // by its keyed partitions, or rewinds the trucks a restart reads again).
                        for i in broadcast {
                            let p = &mut progress[i];
                            let stored = lake
                                .committed_offsets(output, writer, &p.topic, &[p.partition])
                                .await?;
                            p.previous = stored.get(&p.partition).copied().flatten();
                        }
                        lake.append_retrying(output, writer, &batches, &progress, stop)
                            .await?;
                        Ok::<_, crate::Error>(
                            progress
                                .into_iter()
                                .map(move |p| ((output, p.topic, p.partition), p.last))
                                .collect::<Vec<_>>(),
                        )
                    }
                });
            let recorded = futures::future::try_join_all(commits).await?;
            Ok(recorded.into_iter().flatten().collect())
        });
        self.in_flight = Some(InFlight {
            task,
            group,
            consumed,
        });
        Ok(())
    }

    /// Whether the commit in flight has ended (or none is in flight).
    pub fn is_idle_or_done(&self) -> bool {
        self.in_flight.as_ref().is_none_or(|f| f.task.is_finished())
    }

    /// Waits for the commit in flight, if any, and records what it committed; then tells
    /// the group, for monitoring only, where its results end. Returns the messages whose
    /// results are now committed (`None`: no commit was in flight).
    pub fn finish<C: ConsumerContext>(
        &mut self,
        handle: &Handle,
        consumer: &BaseConsumer<C>,
    ) -> Result<Option<u64>> {
        let Some(in_flight) = self.in_flight.take() else {
            return Ok(None);
        };
        let recorded = handle
            .block_on(in_flight.task)
            .map_err(|e| crate::Error::Fatal(format!("the output commit's task: {e}")))??;
        for (key, last) in recorded {
            self.recorded.insert(key, Some(last));
        }
        self.commit_group_offsets(consumer, &in_flight.group);
        Ok(Some(in_flight.consumed))
    }
}
