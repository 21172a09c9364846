//! The ingest loop: poll, check offsets, decode, buffer, flush.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use vallee_kafka::RejoinPolicy;
use vallee_lake::Lake;
use vallee_schemas::batch::{Lineage, TableBuffer};
use vallee_schemas::contract::Table;
use vallee_schemas::dead_letter::{DeadLetterRecord, Source};
use vallee_schemas::decode::decode;

use crate::consumer::{IngestContext, RebalanceEvent, subscribe};
use crate::pending::{PartitionState, ProgressPolicy, TableCommit, plan};
use crate::{Error, IngestOptions, IngestStats, Result};

/// How long to wait for the broker to honour a seek before seeking again.
const SEEK_PATIENCE: Duration = Duration::from_secs(5);
/// Seeks after a gap before ingest gives up and stops.
const MAX_SEEKS: u32 = 3;

/// The ingest loop: the consumer and the state it feeds (split so a message borrowed
/// from the consumer can be handled while the state changes).
pub struct Worker {
    consumer: BaseConsumer<IngestContext>,
    state: State,
    rejoin: RejoinPolicy,
}

struct State {
    options: IngestOptions,
    lake: Arc<Lake>,
    stats: Arc<IngestStats>,
    handle: Handle,
    shutdown: CancellationToken,
    partitions: Vec<PartitionState>,
    buffered: usize,
    oldest: Option<Instant>,
    last_flush: Instant,
}

impl Worker {
    pub fn new(
        options: IngestOptions,
        lake: Arc<Lake>,
        stats: Arc<IngestStats>,
        handle: Handle,
        shutdown: CancellationToken,
    ) -> Result<Self> {
        let context = IngestContext::new(lake.clone(), handle.clone(), &options);
        let consumer = subscribe(&options, context)?;
        let state = State {
            options,
            lake,
            stats,
            handle,
            shutdown,
            partitions: Vec::new(),
            buffered: 0,
            oldest: None,
            last_flush: Instant::now(),
        };
        Ok(Worker {
            consumer,
            state,
            rejoin: RejoinPolicy::new(Instant::now()),
        })
    }

    /// Runs until shutdown (flushing what was read) or a fatal error.
    pub fn run(&mut self) -> Result<()> {
        tracing::info!(
            brokers = self.state.options.kafka.brokers,
            group = self.state.options.group_id,
            "ingest started"
        );
        while self.consume()? == Outcome::NoAssignment {
            // A member the group left with nothing joins again (see `vallee_kafka::rejoin`).
            let context = IngestContext::new(
                self.state.lake.clone(),
                self.state.handle.clone(),
                &self.state.options,
            );
            self.consumer = subscribe(&self.state.options, context)?;
        }
        self.state.flush(&self.consumer, true)?;
        self.consumer.unsubscribe();
        tracing::info!(
            messages = self.state.stats.messages.load(Ordering::Relaxed),
            "ingest stopped after a final commit"
        );
        Ok(())
    }

    /// Polls, handles and flushes until shutdown, or until the rejoin policy says that the
    /// consumer has owned no partition for too long.
    fn consume(&mut self) -> Result<Outcome> {
        let (consumer, state) = (&self.consumer, &mut self.state);
        while !state.shutdown.is_cancelled() {
            let polled = consumer.poll(Duration::from_millis(50));
            // Rebalance events happen inside poll: apply them before the message.
            state.apply_rebalance_events(consumer)?;
            match polled {
                None => {}
                Some(Ok(message)) => state.handle_message(consumer, &message)?,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "kafka consumer error (librdkafka retries)")
                }
            }
            let age = state.oldest.map_or(Duration::ZERO, |t| t.elapsed());
            if state.buffered >= state.options.flush_max_messages
                || age >= state.options.flush_interval
                || state.last_flush.elapsed() >= state.options.flush_interval
            {
                state.flush(consumer, false)?;
            }
            if self
                .rejoin
                .should_rejoin(!state.partitions.is_empty(), Instant::now())
            {
                return Ok(Outcome::NoAssignment);
            }
        }
        Ok(Outcome::Shutdown)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Shutdown,
    NoAssignment,
}

type IngestConsumer = BaseConsumer<IngestContext>;

impl State {
    fn apply_rebalance_events(&mut self, consumer: &IngestConsumer) -> Result<()> {
        for event in consumer.context().take_events() {
            match event {
                RebalanceEvent::Assigned(assignments) => {
                    self.stats.rebalances.fetch_add(1, Ordering::Relaxed);
                    let now = Instant::now();
                    for a in assignments {
                        self.partitions
                            .retain(|p| !(p.topic == a.topic && p.partition == a.partition));
                        self.partitions.push(PartitionState::new(a, now));
                    }
                }
                RebalanceEvent::Revoked(revoked) => {
                    // Uncommitted rows of revoked partitions are dropped: the new owner
                    // reads them again from the offsets stored in the tables.
                    self.partitions.retain(|p| {
                        !revoked
                            .iter()
                            .any(|(t, n)| *t == p.topic && *n == p.partition)
                    });
                    self.recount_buffered();
                }
                RebalanceEvent::Failed(message) => return Err(Error::Fatal(message)),
            }
        }
        Ok(())
    }

    fn recount_buffered(&mut self) {
        self.buffered = self
            .partitions
            .iter()
            .flat_map(|p| p.buffers.values())
            .map(TableBuffer::len)
            .sum();
        if self.buffered == 0 {
            self.oldest = None;
        }
    }

    fn handle_message(
        &mut self,
        consumer: &IngestConsumer,
        message: &BorrowedMessage<'_>,
    ) -> Result<()> {
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        let Some(index) = self
            .partitions
            .iter()
            .position(|p| p.topic == topic && p.partition == partition)
        else {
            tracing::debug!(
                topic,
                partition,
                offset,
                "message of an unassigned partition ignored"
            );
            return Ok(());
        };
        if !self.check_offset(consumer, index, offset)? {
            return Ok(());
        }
        let state = &mut self.partitions[index];
        let stream = state.stream;
        let kafka_ts = message.timestamp().to_millis();
        let decoded = decode(stream, message.payload(), kafka_ts, &self.options.decode);
        let table = decoded.as_ref().map_or(Table::DeadLetters, |d| d.table());
        self.stats.messages.fetch_add(1, Ordering::Relaxed);
        state.last_seen = Some(offset);
        if !state.needs(table, offset) {
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let buffer = match state.buffers.entry(table) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(TableBuffer::new(table)?),
        };
        let now = Utc::now();
        match decoded {
            Ok(event) => {
                let lineage = Lineage {
                    topic,
                    partition,
                    offset,
                    ingested_at_micros: now.timestamp_micros(),
                };
                event.append_to(buffer, &lineage)?;
            }
            Err(rejection) => {
                let source = Source {
                    stream,
                    topic,
                    partition,
                    offset,
                };
                let record = DeadLetterRecord::new(
                    &rejection,
                    source,
                    message.key(),
                    message.payload(),
                    now,
                );
                tracing::warn!(topic, partition, offset, reason = %rejection.reason, message = record.message, "dead letter");
                buffer.push_dead_letter(&record)?;
                *state
                    .dead_letter_reasons
                    .entry(rejection.reason)
                    .or_default() += 1;
            }
        }
        if let Some(ts) = kafka_ts
            && self.stats.record_freshness.load(Ordering::Relaxed)
        {
            state.produce_times.entry(table).or_default().push(ts);
        }
        self.buffered += 1;
        self.oldest.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Checks that `offset` is the one expected on partition `index`; seeks back on a gap.
    /// Returns whether the message is to be processed.
    fn check_offset(
        &mut self,
        consumer: &IngestConsumer,
        index: usize,
        offset: i64,
    ) -> Result<bool> {
        let state = &mut self.partitions[index];
        if let Some((target, deadline, attempts)) = state.pending_seek {
            if offset == target {
                state.pending_seek = None;
            } else if Instant::now() < deadline {
                return Ok(false); // still draining what was fetched before the seek
            } else if attempts >= MAX_SEEKS {
                return Err(Error::OffsetGap {
                    topic: state.topic.clone(),
                    partition: state.partition,
                    expected: target,
                    served: offset,
                    attempts,
                });
            } else {
                self.seek(consumer, index, target, attempts + 1)?;
                return Ok(false);
            }
        }
        let state = &mut self.partitions[index];
        match state.next_expected {
            Some(expected) if offset < expected => return Ok(false), // re-delivery of a processed offset
            Some(expected) if offset > expected => {
                tracing::warn!(
                    topic = state.topic,
                    partition = state.partition,
                    expected,
                    served = offset,
                    "offset gap: seeking back"
                );
                self.seek(consumer, index, expected, 1)?;
                return Ok(false);
            }
            _ => {}
        }
        self.partitions[index].next_expected = Some(offset + 1);
        Ok(true)
    }

    fn seek(
        &mut self,
        consumer: &IngestConsumer,
        index: usize,
        target: i64,
        attempts: u32,
    ) -> Result<()> {
        let state = &mut self.partitions[index];
        state.pending_seek = Some((target, Instant::now() + SEEK_PATIENCE, attempts));
        consumer.seek(
            &state.topic,
            state.partition,
            Offset::Offset(target),
            Duration::from_secs(10),
        )?;
        Ok(())
    }

    /// Commits what is buffered (and due progress); `force` records every pending progress.
    fn flush(&mut self, consumer: &IngestConsumer, force: bool) -> Result<()> {
        self.last_flush = Instant::now();
        let policy = ProgressPolicy {
            max_lag: self.options.progress_max_lag,
            interval: self.options.progress_interval,
            force,
        };
        let commits = plan(&mut self.partitions, policy, Instant::now())?;
        self.buffered = 0;
        self.oldest = None;
        if commits.is_empty() {
            return Ok(());
        }
        let results = self.handle.block_on(futures::future::join_all(
            commits.iter().map(|c| self.append(c)),
        ));
        let now = Instant::now();
        let mut lost: Vec<usize> = Vec::new();
        for (commit, result) in commits.iter().zip(results) {
            match result {
                Ok(()) => {
                    let rows: usize = commit.batches.iter().map(|b| b.num_rows()).sum();
                    self.stats.add_rows(commit.table, rows as u64);
                    let now_ms = Utc::now().timestamp_millis();
                    for (&i, progress) in commit.partitions.iter().zip(&commit.progress) {
                        let p = &mut self.partitions[i];
                        if let Some(times) = p.produce_times.remove(&commit.table) {
                            let mut samples = self
                                .stats
                                .freshness_ms
                                .lock()
                                .unwrap_or_else(|e| e.into_inner());
                            samples.extend(times.iter().map(|t| (now_ms - t).max(0) as u32));
                        }
                        p.committed.insert(commit.table, Some(progress.last));
                        p.last_progress.insert(commit.table, now);
                        if commit.table == Table::DeadLetters {
                            for (reason, n) in std::mem::take(&mut p.dead_letter_reasons) {
                                self.stats.add_dead_letters(reason, n);
                            }
                        }
                    }
                }
                Err(e) if e.is_fenced() => {
                    self.stats.fenced.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(table = commit.table.name(), error = %e, "commit fenced: another writer owns these partitions");
                    lost.extend(&commit.partitions);
                }
                Err(e) => return Err(e.into()),
            }
        }
        lost.sort_unstable();
        lost.dedup();
        for i in lost {
            self.reset_partition(consumer, i)?;
        }
        self.commit_group_offsets(consumer);
        Ok(())
    }

    /// One table's commit, retried with back-off on transient lake errors.
    async fn append(&self, commit: &TableCommit) -> vallee_lake::Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            match self
                .lake
                .append(
                    commit.table,
                    &self.options.writer_id,
                    commit.batches.clone(),
                    &commit.progress,
                )
                .await
            {
                Ok(c) => {
                    self.stats.commits.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .commit_micros
                        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    tracing::debug!(
                        table = commit.table.name(),
                        version = c.version,
                        rows = c.rows,
                        "lake commit"
                    );
                    return Ok(());
                }
                Err(e) if e.is_fenced() || attempt >= self.options.commit_attempts => {
                    return Err(e);
                }
                Err(e) => {
                    let backoff = Duration::from_millis(200 * (1 << attempt.min(6)));
                    tracing::warn!(table = commit.table.name(), attempt, error = %e, ?backoff, "lake commit failed; retrying");
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    /// Another writer committed this partition: forget our uncommitted work, re-read the
    /// stored offsets and seek there.
    fn reset_partition(&mut self, consumer: &IngestConsumer, index: usize) -> Result<()> {
        let (topic, partition) = (
            self.partitions[index].topic.clone(),
            self.partitions[index].partition,
        );
        let fresh = self
            .handle
            .block_on(
                consumer
                    .context()
                    .assignments(&[(topic.clone(), partition)]),
            )?
            .pop()
            .ok_or_else(|| {
                Error::Fatal(format!(
                    "{topic}[{partition}] is no longer an input partition"
                ))
            })?;
        let state = &mut self.partitions[index];
        state.drop_uncommitted();
        state.committed = fresh.committed;
        let restart = state.restart_offset();
        state.next_expected = restart;
        let target = restart.map_or(Offset::Beginning, Offset::Offset);
        consumer.seek(&topic, partition, target, Duration::from_secs(10))?;
        self.recount_buffered();
        tracing::info!(topic, partition, restart = ?restart, "partition re-read from the lake's offsets");
        Ok(())
    }

    /// Consumer-group offsets, for monitoring tools only (lag dashboards).
    fn commit_group_offsets(&self, consumer: &IngestConsumer) {
        let mut tpl = TopicPartitionList::new();
        for p in &self.partitions {
            if let Some(done) = p.committed.values().copied().min().flatten() {
                let _ = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(done + 1));
            }
        }
        if tpl.count() > 0
            && let Err(e) = consumer.commit(&tpl, CommitMode::Async)
        {
            tracing::debug!(error = %e, "group offset commit failed (informational only)");
        }
    }
}
