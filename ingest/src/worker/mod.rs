//! The ingest loop: poll a chunk, decode it beside ([`vallee_kafka::decoding`]), check offsets
//! ([`offsets`]), buffer, flush.

mod offsets;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use vallee_kafka::probe::{ProbeTiming, spawn_probe};
use vallee_kafka::{BacklogWatch, RejoinPolicy};
use vallee_lake::Lake;
use vallee_schemas::batch::{Lineage, TableBuffer};
use vallee_schemas::contract::{Stream, Table};
use vallee_schemas::dead_letter::{DeadLetterRecord, Source};
use vallee_schemas::decode::{Decoded, Rejection, decode_signed};
use vallee_schemas::signing::SIGNATURE_HEADER;

use crate::consumer::{IngestContext, RebalanceEvent, assign_owned, create};
use crate::pending::{PartitionState, ProgressPolicy, plan};
use crate::{Error, IngestOptions, IngestStats, Result};

/// How often the loop looks at its health (stalls) and, when it assigns its partitions
/// itself, for partitions added to its topics.
const HEALTH_CHECK: Duration = Duration::from_secs(1);
const NEW_PARTITIONS_CHECK: Duration = Duration::from_secs(30);
/// While a commit runs, buffers fill up to this many times `flush_max_messages` before the
/// thread waits for it (memory stays bounded; a backlog is committed in larger files).
/// While a backlog is read, the flush size is already that many: the thread then waits
/// for the commit before it once its buffers reach it.
const BUFFERED_WHILE_COMMITTING: usize = 4;
/// Messages taken from the consumer's queue per turn of the loop, at most.
const CHUNK: usize = 8192;

/// What decoding a message needs, borrowed from it.
struct Encoded<'a> {
    stream: Option<Stream>,
    payload: Option<&'a [u8]>,
    signature: Option<&'a [u8]>,
    timestamp_ms: Option<i64>,
}

/// A message decoded (`None`: of a topic the hub does not know).
type Decoding = Option<std::result::Result<Decoded, Rejection>>;

/// The ingest loop: the consumer and the state it feeds (split so a message borrowed
/// from the consumer can be handled while the state changes).
pub struct Worker {
    consumer: BaseConsumer<IngestContext>,
    state: State,
    rejoin: RejoinPolicy,
    last_health_check: Instant,
    last_partitions_check: Instant,
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
    /// The last flush's commit, while it runs.
    in_flight: Option<InFlight>,
    /// Threads decoding beside this one ([`vallee_kafka::decoding::helpers`]).
    decode_helpers: usize,
    /// Whether a backlog is read, and when its end is due.
    backlog: BacklogWatch,
}

/// Dead letters per reason.
type DeadLetterReasons = std::collections::BTreeMap<vallee_schemas::decode::Reason, u64>;

impl Worker {
    pub fn new(
        options: IngestOptions,
        lake: Arc<Lake>,
        stats: Arc<IngestStats>,
        handle: Handle,
        shutdown: CancellationToken,
    ) -> Result<Self> {
        let context = IngestContext::new(lake.clone(), handle.clone(), &options);
        let consumer = create(&options, context)?;
        let backlog = BacklogWatch::new(CHUNK, options.flush_interval);
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
            in_flight: None,
            decode_helpers: vallee_kafka::decoding::helpers(),
            backlog,
        };
        let now = Instant::now();
        Ok(Worker {
            consumer,
            state,
            rejoin: RejoinPolicy::new(now),
            last_health_check: now,
            last_partitions_check: now,
        })
    }

    /// A fresh consumer (a new group member, or the same partitions assigned anew).
    fn fresh_consumer(&mut self) -> Result<()> {
        let context = IngestContext::new(
            self.state.lake.clone(),
            self.state.handle.clone(),
            &self.state.options,
        );
        // What the old consumer's last flush committed is recorded first (its partition
        // indices are about to go). Uncommitted rows are dropped: the new consumer starts
        // from the lake's offsets.
        self.state.finish_commit(&self.consumer)?;
        self.state.partitions.clear();
        self.state.recount_buffered();
        self.consumer = create(&self.state.options, context)?;
        self.take_own_partitions()
    }

    /// Under a self-assigned membership, assigns the partitions not owned yet.
    fn take_own_partitions(&mut self) -> Result<()> {
        if !self.state.options.membership.assigns_itself() {
            return Ok(());
        }
        self.last_partitions_check = Instant::now();
        let owned: Vec<(String, i32)> = self
            .state
            .partitions
            .iter()
            .map(|p| (p.topic.clone(), p.partition))
            .collect();
        match assign_owned(&self.state.options, &self.consumer, &owned) {
            Ok(n) if n > 0 => {
                tracing::info!(partitions = n, membership = %self.state.options.membership, "partitions taken without a coordinator");
                self.state.apply_rebalance_events(&self.consumer)
            }
            Ok(_) => Ok(()),
            // The broker may be down at start: keep trying, the loop comes back here.
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the topics' partitions yet; retrying");
                Ok(())
            }
        }
    }

    /// Runs until shutdown (flushing what was read) or a fatal error.
    pub fn run(&mut self) -> Result<()> {
        tracing::info!(
            brokers = self.state.options.kafka.brokers,
            group = self.state.options.group_id,
            membership = %self.state.options.membership,
            "ingest started"
        );
        let probe_stop = self.state.shutdown.child_token();
        let probe = spawn_probe(
            &self.state.options.kafka,
            &self.state.options.group_id,
            "vallee-ingest-probe",
            ProbeTiming::default(),
            self.state.stats.health.clone(),
            probe_stop.clone(),
        )?;
        self.take_own_partitions()?;
        let result = self.consume_until_shutdown();
        probe_stop.cancel();
        let _ = probe.join();
        result
    }

    fn consume_until_shutdown(&mut self) -> Result<()> {
        while self.consume()? == Outcome::NotFlowing {
            // A member the group left with nothing, or with partitions that stopped
            // flowing, starts afresh (see `vallee_kafka::rejoin`).
            self.state.stats.recoveries.fetch_add(1, Ordering::Relaxed);
            self.fresh_consumer()?;
        }
        self.state.flush(&self.consumer, true)?;
        self.state.finish_commit(&self.consumer)?;
        if !self.state.options.membership.assigns_itself() {
            self.consumer.unsubscribe();
        }
        tracing::info!(
            messages = self.state.stats.messages.load(Ordering::Relaxed),
            "ingest stopped after a final commit"
        );
        Ok(())
    }

    /// Polls, handles and flushes until shutdown, or until the rejoin policy says that
    /// partitions have not been flowing for too long.
    fn consume(&mut self) -> Result<Outcome> {
        while !self.state.shutdown.is_cancelled() {
            if self.last_partitions_check.elapsed() >= NEW_PARTITIONS_CHECK
                || (self.state.partitions.is_empty()
                    && self.last_partitions_check.elapsed() >= HEALTH_CHECK)
            {
                self.take_own_partitions()?;
            }
            let (consumer, state) = (&self.consumer, &mut self.state);
            // What the consumer has fetched, up to a chunk, cut where a rebalance happened
            // during a poll: the messages before it are handled first, then the rebalance
            // is applied, then the message that poll returned.
            let mut chunk = Vec::new();
            let mut after_rebalance = None;
            let mut next = consumer.poll(Duration::from_millis(50));
            loop {
                if consumer.context().has_events() {
                    after_rebalance = next;
                    break;
                }
                match next {
                    Some(Ok(message)) => chunk.push(message),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "kafka consumer error (librdkafka retries)");
                        break;
                    }
                    None => break,
                }
                if chunk.len() >= CHUNK {
                    break;
                }
                next = consumer.poll(Duration::ZERO);
            }
            // It waited for a message and none came: whatever backlog there was is read.
            let caught_up = chunk.is_empty() && after_rebalance.is_none();
            state.backlog.read(chunk.len());
            state.handle_chunk(consumer, &chunk)?;
            drop(chunk);
            state.apply_rebalance_events(consumer)?;
            match after_rebalance {
                None => {}
                Some(Ok(message)) => {
                    state.handle_chunk(consumer, std::slice::from_ref(&message))?
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "kafka consumer error (librdkafka retries)")
                }
            }
            let age = state.oldest.map_or(Duration::ZERO, |t| t.elapsed());
            let since_flush = state.last_flush.elapsed();
            // The end of a backlog (a restart, a burst) is committed at once, however few
            // rows are left since the flush before, not at the next interval; a trickle
            // waits for the interval.
            if caught_up {
                state.backlog.caught_up(state.buffered);
            }
            let due = state.buffered >= state.flush_size()
                || age >= state.options.flush_interval
                || since_flush >= state.options.flush_interval
                || (state.backlog.end_due(since_flush) && state.buffered > 0);
            if due && state.may_flush() {
                state.flush(consumer, false)?;
            } else if state.in_flight.is_some() && state.commit_done() {
                // Landed: the stats and the group's offsets say so at once.
                state.finish_commit(consumer)?;
            }
            if state.buffered == 0 {
                // The backlog's end is in a commit.
                state.backlog.flushed();
            }
            if self.last_health_check.elapsed() >= HEALTH_CHECK {
                self.last_health_check = Instant::now();
                self.state.check_log_ends()?;
                let now = Instant::now();
                let owns = self.state.options.membership.assigns_itself()
                    || !self.state.partitions.is_empty();
                if self.rejoin.should_rejoin(owns, now)
                    || self.rejoin.should_rejoin_stalled(self.state.stalled(), now)
                {
                    return Ok(Outcome::NotFlowing);
                }
            }
        }
        Ok(Outcome::Shutdown)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Shutdown,
    /// No partition from the group, or stalled partitions: a fresh consumer is due.
    NotFlowing,
}

pub(crate) type IngestConsumer = BaseConsumer<IngestContext>;

impl State {
    /// Whether a partition this member should read is stalled. In a group every
    /// partition is one it might have to read: one stalled under another member (a dead
    /// one the coordinator kept) is a reason to join again. A sample older than a few
    /// intervals (the broker unreachable) decides nothing: a fresh consumer would not
    /// reach it either.
    fn stalled(&self) -> bool {
        let membership = self.options.membership;
        let health = vallee_kafka::probe::read(&self.stats.health);
        if health.is_stale(Duration::from_secs(15), Instant::now()) {
            return false;
        }
        let stalled = health.stalled(self.options.kafka.stall_after);
        let stuck: Vec<String> = stalled
            .iter()
            .filter(|h| membership.owns(h.partition))
            .map(|h| format!("{}[{}] (lag {})", h.topic, h.partition, h.lag))
            .collect();
        if !stuck.is_empty() {
            tracing::warn!(partitions = ?stuck, stall_after = ?self.options.kafka.stall_after, "partitions not flowing");
        }
        !stuck.is_empty()
    }

    fn apply_rebalance_events(&mut self, consumer: &IngestConsumer) -> Result<()> {
        let events = consumer.context().take_events();
        if events.is_empty() {
            return Ok(());
        }
        // The commit in flight ended before the rebalance went on (the gate); what it
        // landed is recorded before the partition list changes.
        self.finish_commit(consumer)?;
        for event in events {
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

    /// Handles polled messages in order, decoded beside (a flush when the buffers are
    /// full, between two messages).
    fn handle_chunk(
        &mut self,
        consumer: &IngestConsumer,
        messages: &[BorrowedMessage<'_>],
    ) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let topics = &self.options.kafka.topics;
        let encoded: Vec<Encoded<'_>> = messages
            .iter()
            .map(|m| {
                let stream = topics.stream_of(m.topic());
                Encoded {
                    stream,
                    payload: m.payload(),
                    // Only the API's streams are signed: the headers of a sensor reading
                    // are not parsed at all.
                    signature: stream
                        .filter(|s| Stream::CITIZEN.contains(s))
                        .and_then(|_| signature_of(m)),
                    timestamp_ms: m.timestamp().to_millis(),
                }
            })
            .collect();
        let options = self.options.decode.clone();
        let decode = |e: &Encoded<'_>| -> Decoding {
            let stream = e.stream?;
            Some(decode_signed(
                stream,
                e.payload,
                e.signature,
                e.timestamp_ms,
                &options,
            ))
        };
        // One clock read per chunk: the rows' ingestion time.
        let now = Utc::now();
        vallee_kafka::decoding::decode_beside(
            &encoded,
            self.decode_helpers,
            decode,
            |i, decoded| {
                self.handle_message(consumer, &messages[i], decoded, now)?;
                if self.buffered >= self.flush_size() && self.may_flush() {
                    self.flush(consumer, false)?;
                }
                Ok(())
            },
        )
    }

    fn handle_message(
        &mut self,
        consumer: &IngestConsumer,
        message: &BorrowedMessage<'_>,
        decoded: Decoding,
        now: chrono::DateTime<Utc>,
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
        // The topic map and the partition agree on the stream; decoded inline otherwise.
        let decoded = decoded.unwrap_or_else(|| {
            decode_signed(
                stream,
                message.payload(),
                signature_of(message),
                kafka_ts,
                &self.options.decode,
            )
        });
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

    /// Starts committing what is buffered (and due progress) once the commit before has
    /// landed; `force` records every pending progress. The commit runs on the runtime
    /// while the thread reads on ([`State::finish_commit`] records it).
    fn flush(&mut self, consumer: &IngestConsumer, force: bool) -> Result<()> {
        // What the commit before landed decides this one's progress (its `previous`
        // offsets): it is recorded first.
        self.finish_commit(consumer)?;
        self.last_flush = Instant::now();
        // Every message before the next expected one is in its table once the commits
        // below succeed (skipped ones already were; at assignment, the next expected is
        // where every table's stored offsets put the start).
        let landed: Vec<Option<i64>> = self
            .partitions
            .iter()
            .map(|p| p.next_expected.map(|n| n - 1))
            .collect();
        let policy = ProgressPolicy {
            max_lag: self.options.progress_max_lag,
            interval: self.options.progress_interval,
            force,
        };
        let commits = plan(&mut self.partitions, policy, Instant::now())?;
        self.buffered = 0;
        self.oldest = None;
        if commits.is_empty() {
            self.commit_group_offsets(consumer, &landed);
            return Ok(());
        }
        // Held by the commit's tasks: a rebalance waits for it before partitions move.
        let gate = Arc::new(self.handle.block_on(consumer.context().gate().lock_owned()));
        let mut tasks = Vec::new();
        let mut landings = Vec::new();
        for c in commits {
            let append = Append {
                lake: self.lake.clone(),
                stats: self.stats.clone(),
                writer_id: self.options.writer_id.clone(),
                shutdown: self.shutdown.clone(),
                table: c.table,
                batches: c.batches,
                progress: c.progress,
                _gate: gate.clone(),
            };
            // What the commit's end records, taken now: rows read meanwhile are the next
            // commit's.
            let taken = c
                .partitions
                .iter()
                .map(|&i| {
                    let p = &mut self.partitions[i];
                    let times = p.produce_times.remove(&c.table).unwrap_or_default();
                    let reasons = if c.table == Table::DeadLetters {
                        std::mem::take(&mut p.dead_letter_reasons)
                    } else {
                        Default::default()
                    };
                    (times, reasons)
                })
                .collect();
            landings.push(Landing {
                table: c.table,
                rows: append.batches.iter().map(|b| b.num_rows()).sum(),
                lasts: append.progress.iter().map(|p| p.last).collect(),
                partitions: c.partitions,
                taken,
            });
            // Each table's commit a task: their Parquet files are written side by side
            // on the runtime's threads.
            tasks.push(self.handle.spawn(append.run()));
        }
        self.in_flight = Some(InFlight {
            tasks,
            landings,
            landed,
        });
        Ok(())
    }

    /// How many buffered messages make a flush due: while a backlog is read, as many as
    /// may wait during a commit. Each table's commit has a cost of its own (its Parquet
    /// file, its log entry: about 40 ms); a backlog committed every `flush_max_messages`
    /// spent a third of the process's CPU on commits, beside the thread reading it.
    fn flush_size(&self) -> usize {
        if self.backlog.in_backlog() {
            self.options.flush_max_messages * BUFFERED_WHILE_COMMITTING
        } else {
            self.options.flush_max_messages
        }
    }

    /// Whether a flush that is due may start: once the commit before has landed. While
    /// it runs, messages keep coming into the buffers (the next commit is larger rather
    /// than the thread waiting), up to [`BUFFERED_WHILE_COMMITTING`] times
    /// `flush_max_messages`.
    fn may_flush(&self) -> bool {
        self.commit_done()
            || self.buffered >= self.options.flush_max_messages * BUFFERED_WHILE_COMMITTING
    }

    /// Whether the commit in flight has landed (or none is in flight).
    fn commit_done(&self) -> bool {
        self.in_flight
            .as_ref()
            .is_none_or(|f| f.tasks.iter().all(|t| t.is_finished()))
    }

    /// Waits for the commit in flight, if any, and records what landed: the tables'
    /// offsets, the stats, the group's offsets; a partition whose commit was fenced is
    /// read again from the lake's offsets.
    fn finish_commit(&mut self, consumer: &IngestConsumer) -> Result<()> {
        let Some(in_flight) = self.in_flight.take() else {
            return Ok(());
        };
        let waiting = Instant::now();
        let joined = self
            .handle
            .block_on(futures::future::join_all(in_flight.tasks));
        self.stats
            .commit_wait_micros
            .fetch_add(waiting.elapsed().as_micros() as u64, Ordering::Relaxed);
        let results: Vec<vallee_lake::Result<()>> = joined
            .into_iter()
            .map(|joined| joined.map_err(|e| Error::Fatal(format!("a table's commit task: {e}"))))
            .collect::<Result<_>>()?;
        let now = Instant::now();
        let mut lost: Vec<usize> = Vec::new();
        for (landing, result) in in_flight.landings.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    self.stats.add_rows(landing.table, landing.rows as u64);
                    let now_ms = Utc::now().timestamp_millis();
                    for ((&i, last), (times, reasons)) in landing
                        .partitions
                        .iter()
                        .zip(landing.lasts)
                        .zip(landing.taken)
                    {
                        if !times.is_empty() {
                            let mut samples = self
                                .stats
                                .freshness_ms
                                .lock()
                                .unwrap_or_else(|e| e.into_inner());
                            samples.extend(times.iter().map(|t| (now_ms - t).max(0) as u32));
                        }
                        for (reason, n) in reasons {
                            self.stats.add_dead_letters(reason, n);
                        }
                        let p = &mut self.partitions[i];
                        p.committed.insert(landing.table, Some(last));
                        p.last_progress.insert(landing.table, now);
                    }
                }
                Err(e) if e.is_fenced() => {
                    self.stats.fenced.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(table = landing.table.name(), error = %e, "commit fenced: another writer owns these partitions");
                    lost.extend(&landing.partitions);
                }
                Err(e) => return Err(e.into()),
            }
        }
        lost.sort_unstable();
        lost.dedup();
        let mut landed = in_flight.landed;
        for &i in &lost {
            landed[i] = None;
        }
        self.commit_group_offsets(consumer, &landed);
        for i in lost {
            self.reset_partition(consumer, i)?;
        }
        Ok(())
    }

    /// Consumer-group offsets, for monitoring only (lag dashboards, and the probe that
    /// finds stalled partitions): the next offset after what landed, per partition,
    /// when it moved. Never used to position a consumer: the lake's offsets are.
    fn commit_group_offsets(&mut self, consumer: &IngestConsumer, landed: &[Option<i64>]) {
        let mut tpl = TopicPartitionList::new();
        for (p, landed) in self.partitions.iter_mut().zip(landed) {
            if let Some(done) = *landed
                && p.group_committed != Some(done + 1)
            {
                p.group_committed = Some(done + 1);
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

/// A flush's commits, running on the runtime while the thread reads on, and what their
/// end records.
struct InFlight {
    tasks: Vec<tokio::task::JoinHandle<vallee_lake::Result<()>>>,
    landings: Vec<Landing>,
    /// Per partition, the last offset whose message is in every table once they land.
    landed: Vec<Option<i64>>,
}

/// What one table's commit records when it lands.
struct Landing {
    table: Table,
    rows: usize,
    /// Indices in the partition list, with the last offset committed of each.
    partitions: Vec<usize>,
    lasts: Vec<i64>,
    /// Per partition: the produce times of its rows (freshness) and its dead letters'
    /// reasons, taken when the commit started.
    taken: Vec<(Vec<i64>, DeadLetterReasons)>,
}

/// One table's commit, tried again until the lake accepts it (a full disk, a lake
/// unreachable: the rows wait, uncommitted, and `/readyz` says why), the writer is fenced,
/// or the stage stops. Owned, to run as a task of its own.
struct Append {
    lake: Arc<Lake>,
    stats: Arc<IngestStats>,
    writer_id: String,
    shutdown: CancellationToken,
    table: Table,
    batches: Vec<arrow::array::RecordBatch>,
    progress: Vec<vallee_lake::Progress>,
    /// The consumer's commit gate, released when the flush's last commit ends.
    _gate: Arc<tokio::sync::OwnedMutexGuard<()>>,
}

impl Append {
    async fn run(self) -> vallee_lake::Result<()> {
        let started = Instant::now();
        let c = self
            .lake
            .append_retrying(
                self.table,
                &self.writer_id,
                &self.batches,
                &self.progress,
                &self.shutdown,
            )
            .await?;
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats
            .commit_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        tracing::debug!(
            table = self.table.name(),
            version = c.version,
            rows = c.rows,
            "lake commit"
        );
        Ok(())
    }
}

/// The value of the message's signature header, if it has one (the API's events do).
fn signature_of<'a>(message: &'a BorrowedMessage<'_>) -> Option<&'a [u8]> {
    use rdkafka::message::Headers;
    message
        .headers()?
        .iter()
        .find(|h| h.key == SIGNATURE_HEADER)?
        .value
}
