//! The stage's poll loop: take what the consumer fetched, decode it beside processing,
//! publish alerts at once, and every flush interval advance event time and commit.
//!
//! ```text
//!  poll ─► chunk (≤ 8 192 messages, cut at a rebalance) ─► decoded beside ─► dispatcher
//!   │                                                    fresh alerts ─► live view, vallee.alerts
//!   ├─ every flush_interval: tick (windows, days, pending decisions)
//!   │                        ─► alerts ─► output commit (commit.rs) ─► group offsets ─► live view
//!   └─ every second: partitions flowing? (the probe's health; a member with none)
//!                    no ─► commit, then a fresh consumer and families restored from the lake
//! ```
//!
//! A fresh consumer starts as a restarted stage would: what was read is committed first,
//! then the families are restored from the lake and the partitions replayed from the
//! offsets the outputs recorded (state carried over would count the replayed events twice).
//!
//! When members share the partitions, a revocation (the rebalance hook waited for the
//! commit under way) makes the worker drop what it computed and restore from the lake
//! before the new assignment replays; a commit fenced by another member (this one was
//! presumed dead) does the same with a fresh consumer, committing nothing. The trucks come
//! from a second consumer reading every partition of their topic (`consumer::BROADCAST`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use vallee_kafka::probe::{ProbeTiming, spawn_probe};
use vallee_kafka::watch::PartitionWatch;
use vallee_kafka::{BacklogWatch, KafkaOptions, RejoinPolicy, SharedHealth, StageHealth};
use vallee_lake::Lake;
use vallee_schemas::contract::Stream;
use vallee_schemas::decode::{Decoded, Rejection};
use vallee_schemas::tables::{AlertKind, AlertState};

use super::StreamOptions;
use super::commit::Committer;
use super::consumer::{
    INPUTS, StageContext, assign_broadcast, assign_owned, create, create_broadcast, own_inputs,
};
use super::decoding::{Encoded, decode_and_process};
use super::dispatcher::Dispatcher;
use super::live::{LiveFootfall, SharedLiveView};
use super::publish::AlertPublisher;
use crate::Result;
use crate::families::bins::fill::is_bin_alert;

/// How often the loop looks at its health (stalls, a member with no partition) and, when
/// it assigns its partitions itself and owns none yet, for partitions.
const HEALTH_CHECK: Duration = Duration::from_secs(1);
/// How often a self-assigned stage looks for partitions added to its topics.
const NEW_PARTITIONS_CHECK: Duration = Duration::from_secs(30);
/// How long a seek back to a message may take (after a revocation).
const SEEK_TIMEOUT: Duration = Duration::from_secs(5);
/// A probe sample older than this decides nothing (the broker unreachable).
const MAX_SAMPLE_AGE: Duration = Duration::from_secs(15);

/// Where a message was read: its stream, partition and offset.
type Meta = (Stream, i32, i64);

/// Runs the stage loop on the current thread until `shutdown`.
pub fn run_blocking(
    options: StreamOptions,
    lake: Arc<Lake>,
    live: SharedLiveView,
    handle: Handle,
    shutdown: CancellationToken,
) -> Result<()> {
    let dispatcher = restored(&options, &lake, &handle)?;
    let committer = Committer::new(&options);
    let consumer = create(&options, &lake, &handle, committer.gate())?;
    let broadcast = create_broadcast(&options, &lake, &handle, committer.gate())?;
    let health = live
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .health
        .clone();
    let now = Instant::now();
    let mut worker = Worker {
        publisher: AlertPublisher::new(&options, handle.clone())?,
        decode_helpers: vallee_kafka::decoding::helpers(),
        committer,
        rejoin: RejoinPolicy::new(now),
        consumed: 0,
        consumed_at_flush: 0,
        backlog: BacklogWatch::new(crate::microbatch::BATCH_ROWS, options.flush_interval),
        last_flush: now,
        last_health_check: now,
        last_partitions_check: now,
        broadcast_watch: PartitionWatch::default(),
        options,
        lake,
        live,
        health,
        handle,
        shutdown,
        consumer,
        broadcast,
        dispatcher,
    };
    worker.run()
}

/// The families as the lake has them.
fn restored(options: &StreamOptions, lake: &Lake, handle: &Handle) -> Result<Dispatcher> {
    let mut dispatcher = Dispatcher::new(options, handle.clone());
    handle.block_on(dispatcher.restore(lake))?;
    Ok(dispatcher)
}

/// Why the loop stopped.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Shutdown,
    /// No partition from the group, or stalled partitions: a fresh consumer is due.
    NotFlowing,
    /// Another member committed this member's partitions: what it computed is stale, a
    /// fresh consumer is due and nothing is committed first.
    TakenOver,
}

/// The loop's state: the consumer and what it feeds.
struct Worker {
    options: StreamOptions,
    lake: Arc<Lake>,
    live: SharedLiveView,
    /// What the probe last saw of the input partitions.
    health: SharedHealth,
    handle: Handle,
    shutdown: CancellationToken,
    consumer: BaseConsumer<StageContext>,
    /// Every partition of the streams all members read whole (members sharing the
    /// partitions only).
    broadcast: Option<BaseConsumer<StageContext>>,
    dispatcher: Dispatcher,
    /// Threads decoding beside this one ([`vallee_kafka::decoding::helpers`]).
    decode_helpers: usize,
    publisher: AlertPublisher,
    committer: Committer,
    rejoin: RejoinPolicy,
    /// Messages read (refused ones included).
    consumed: u64,
    /// `consumed` at the last flush.
    consumed_at_flush: u64,
    /// Whether a backlog's end waits for a flush.
    backlog: BacklogWatch,
    last_flush: Instant,
    last_health_check: Instant,
    last_partitions_check: Instant,
    /// Progress of the broadcast consumer's partitions, from its statistics.
    broadcast_watch: PartitionWatch,
}

impl Worker {
    fn run(&mut self) -> Result<()> {
        tracing::info!(
            group = self.options.group_id,
            membership = %self.options.membership,
            "stream stage started"
        );
        let probe_stop = self.shutdown.child_token();
        let probe = spawn_probe(
            &self.input_topics(),
            &self.options.group_id,
            "vallee-stream-probe",
            ProbeTiming::default(),
            self.health.clone(),
            probe_stop.clone(),
        )?;
        let result = self.consume_until_shutdown();
        probe_stop.cancel();
        let _ = probe.join();
        result
    }

    /// The Kafka options with the stage's input topics only: the probe watches what the
    /// stage reads, not the citizens' topics it never reads.
    fn input_topics(&self) -> KafkaOptions {
        let topics = &self.options.kafka.topics;
        KafkaOptions {
            topics: own_inputs(&self.options)
                .iter()
                .filter_map(|s| Some((*s, topics.get(s)?.clone())))
                .collect(),
            ..self.options.kafka.clone()
        }
    }

    fn consume_until_shutdown(&mut self) -> Result<()> {
        self.take_own_partitions();
        loop {
            let commit_first = match self.consume_unless_taken_over()? {
                Outcome::Shutdown => break,
                // A member the group left with nothing, or with partitions that stopped
                // flowing, starts afresh (see `vallee_kafka::rejoin`).
                Outcome::NotFlowing => true,
                Outcome::TakenOver => false,
            };
            self.live
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .recoveries += 1;
            self.fresh_consumer(commit_first)?;
        }
        if !self.options.membership.assigns_itself() {
            self.consumer.unsubscribe();
        }
        tracing::info!("stream stage stopped after a final commit");
        Ok(())
    }

    /// [`Worker::consume`], a commit fenced by another member turned into
    /// [`Outcome::TakenOver`] (at shutdown: nothing more to do, the other member has it).
    fn consume_unless_taken_over(&mut self) -> Result<Outcome> {
        match self.consume() {
            Err(e) if e.is_fenced() => {
                tracing::warn!(error = %e, "another member committed this member's partitions: starting over from the lake");
                self.committer.abandon();
                Ok(if self.shutdown.is_cancelled() {
                    Outcome::Shutdown
                } else {
                    Outcome::TakenOver
                })
            }
            other => other,
        }
    }

    /// Polls, processes and commits until shutdown (after a final commit), or until
    /// partitions have not been flowing for too long.
    fn consume(&mut self) -> Result<Outcome> {
        loop {
            let stopping = self.shutdown.is_cancelled();
            let owned = self.consumer.context().owns_partitions();
            if !stopping
                && (self.last_partitions_check.elapsed() >= NEW_PARTITIONS_CHECK
                    || (!owned && self.last_partitions_check.elapsed() >= HEALTH_CHECK))
            {
                self.take_own_partitions();
            }
            if !stopping && self.last_health_check.elapsed() >= HEALTH_CHECK {
                self.last_health_check = Instant::now();
                let now = Instant::now();
                let owns = self.options.membership.assigns_itself() || owned;
                self.watch_broadcast(now);
                if self.rejoin.should_rejoin(owns, now)
                    || self.rejoin.should_rejoin_stalled(self.stalled(), now)
                {
                    return Ok(Outcome::NotFlowing);
                }
            }
            let caught_up = !stopping && self.poll()?;
            self.apply_assignments();
            self.publish_alerts();
            if stopping {
                self.flush_and_wait()?;
                return Ok(Outcome::Shutdown);
            }
            // The end of a backlog (a restart's replay, a burst) is committed at once,
            // however few messages came after the flush before; steady traffic, fetched
            // as it comes, waits for the interval, and so does a trickle.
            if caught_up {
                self.backlog
                    .caught_up((self.consumed - self.consumed_at_flush) as usize);
            }
            let since_flush = self.last_flush.elapsed();
            if since_flush >= self.options.flush_interval || self.backlog.end_due(since_flush) {
                self.flush()?;
            } else if self.committer.is_idle_or_done() {
                // The live view learns of a commit's end at once, not at the next flush.
                self.finish_commit()?;
            }
        }
    }

    /// Under a self-assigned membership, assigns the partitions not owned yet (the broker
    /// may be down at start: the loop comes back here every second until it owns some);
    /// and the broadcast consumer's partitions, whatever the membership.
    fn take_own_partitions(&mut self) {
        self.take_broadcast_partitions();
        if !self.options.membership.assigns_itself() {
            return;
        }
        self.last_partitions_check = Instant::now();
        match assign_owned(&self.options, &self.consumer) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(partitions = n, membership = %self.options.membership, "partitions taken without a coordinator");
                self.apply_assignments();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the topics' partitions yet; retrying")
            }
        }
    }

    /// Assigns the broadcast consumer the partitions it does not read yet.
    fn take_broadcast_partitions(&mut self) {
        let Some(broadcast) = &self.broadcast else {
            return;
        };
        self.last_partitions_check = Instant::now();
        match assign_broadcast(&self.options, broadcast) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(
                    partitions = n,
                    "every partition of the trucks' topic taken, outside the group"
                );
                self.apply_assignments();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the trucks' partitions yet; retrying")
            }
        }
    }

    /// Whether a partition this member should read is stalled. In a group every partition
    /// is one it might have to read: one stalled under another member (a dead one the
    /// coordinator kept) is a reason to join again. A sample older than a few intervals
    /// (the broker unreachable) decides nothing: a fresh consumer would not reach it either.
    fn stalled(&self) -> bool {
        let membership = self.options.membership;
        let health = vallee_kafka::probe::read(&self.health);
        if health.is_stale(MAX_SAMPLE_AGE, Instant::now()) {
            return false;
        }
        let stuck: Vec<String> = health
            .stalled(self.options.kafka.stall_after)
            .iter()
            .filter(|h| membership.owns(h.partition))
            .map(|h| format!("{}[{}] (lag {})", h.topic, h.partition, h.lag))
            .collect();
        let broadcast = self
            .live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .broadcast_health
            .clone();
        let stuck_broadcast: Vec<String> = if broadcast.is_stale(MAX_SAMPLE_AGE, Instant::now()) {
            Vec::new()
        } else {
            broadcast
                .stalled(self.options.kafka.stall_after)
                .iter()
                .map(|h| {
                    format!(
                        "{}[{}] (lag {}, read by every member)",
                        h.topic, h.partition, h.lag
                    )
                })
                .collect()
        };
        let stuck: Vec<String> = stuck.into_iter().chain(stuck_broadcast).collect();
        if !stuck.is_empty() {
            tracing::warn!(partitions = ?stuck, stall_after = ?self.options.kafka.stall_after, "partitions not flowing");
        }
        !stuck.is_empty()
    }

    /// The broadcast consumer's partitions (members sharing the others only), judged from
    /// its client statistics as the probe judges the group's: lag nobody moves. A sample
    /// that stopped coming (the consumer no longer polled) leaves the health to go stale.
    fn watch_broadcast(&mut self, now: Instant) {
        let sample = self.broadcast.as_ref().and_then(|b| b.context().progress());
        let mut live = self.live.write().unwrap_or_else(|p| p.into_inner());
        match sample {
            Some((at, observations)) if live.broadcast_health.sampled_at != Some(at) => {
                live.broadcast_health = StageHealth {
                    sampled_at: Some(at),
                    partitions: self.broadcast_watch.observe(&observations, now),
                    error: None,
                };
            }
            Some(_) => {}
            None => live.broadcast_health = StageHealth::default(),
        }
    }

    /// Commits what was read (unless another member has taken it over), then starts over
    /// as a restarted stage would: the families restored from the lake, new consumers
    /// replaying from the recorded offsets.
    fn fresh_consumer(&mut self, commit_first: bool) -> Result<()> {
        if commit_first {
            let committed = self.flush_and_wait();
            self.unless_fenced(committed)?;
        }
        self.dispatcher = restored(&self.options, &self.lake, &self.handle)?;
        self.committer = Committer::new(&self.options);
        self.consumer = create(
            &self.options,
            &self.lake,
            &self.handle,
            self.committer.gate(),
        )?;
        self.fresh_broadcast()?;
        self.take_own_partitions();
        Ok(())
    }

    /// A new broadcast consumer (members sharing the partitions only), to be positioned
    /// from the lake by [`Worker::take_broadcast_partitions`].
    fn fresh_broadcast(&mut self) -> Result<()> {
        let gate = self.committer.gate();
        self.broadcast = create_broadcast(&self.options, &self.lake, &self.handle, gate)?;
        // A new consumer starts its own progress: nothing it inherits is stalled.
        self.broadcast_watch = PartitionWatch::default();
        Ok(())
    }

    /// Partitions were revoked (the rebalance hook waited for the commit under way): what
    /// the worker computed is another member's now and is dropped at once, so no later
    /// commit writes it; the trucks stop until the next assignment
    /// ([`Worker::restore_for_assignment`]).
    fn drop_revoked_state(&mut self) -> Result<()> {
        let committed = self.finish_commit();
        self.unless_fenced(committed)?;
        self.dispatcher = Dispatcher::new(&self.options, self.handle.clone());
        self.committer.reset();
        self.broadcast = None;
        Ok(())
    }

    /// Partitions were assigned to a member sharing them: the families are restored from
    /// the lake now (every member gave its revoked partitions up, after their last
    /// commit, before any assignment), the partitions replay from the offsets the outputs
    /// recorded, and the trucks are read again from where the lake says, by a new
    /// broadcast consumer.
    fn restore_for_assignment(&mut self) -> Result<()> {
        let committed = self.finish_commit();
        self.unless_fenced(committed)?;
        self.dispatcher = restored(&self.options, &self.lake, &self.handle)?;
        self.committer.reset();
        self.fresh_broadcast()?;
        self.take_broadcast_partitions();
        self.apply_assignments();
        tracing::info!("stream stage restored from the lake for its assignment");
        Ok(())
    }

    /// A commit's result, a fence turned into nothing more to commit: another member has
    /// the partitions now (the caller starts over from the lake).
    fn unless_fenced(&mut self, committed: Result<()>) -> Result<()> {
        match committed {
            Err(e) if e.is_fenced() => {
                tracing::warn!(error = %e, "another member committed these partitions first: nothing more committed");
                self.committer.abandon();
                Ok(())
            }
            other => other,
        }
    }

    /// Takes what the consumer has already fetched in one chunk (up to a batch, stopping
    /// at a rebalance), decodes it beside processing it, in order.
    /// Returns whether the stage is caught up: it waited for a message and none came.
    fn poll(&mut self) -> Result<bool> {
        let wait = Duration::from_millis(50);
        let mut polled = Vec::new();
        let mut next = self.consumer.poll(wait);
        loop {
            let context = self.consumer.context();
            let revoked = context.was_revoked();
            let assigned = self.options.membership.shares_partitions()
                && !self.options.membership.assigns_itself()
                && context.has_assignments();
            if revoked || assigned {
                // A rebalance during that poll. The messages read before it were the
                // revoked partitions' (their next owner reads them again: a member owning
                // nothing reads nothing before its first assignment); the one it
                // returned, if any, comes from the new assignment and is read again
                // after the restore.
                let again = match &next {
                    Some(Ok(m)) => Some((m.topic().to_string(), m.partition(), m.offset())),
                    _ => None,
                };
                drop(next);
                drop(polled);
                if self.consumer.context().take_revoked() {
                    self.drop_revoked_state()?;
                }
                if self.consumer.context().has_assignments() {
                    self.restore_for_assignment()?;
                }
                if let Some((topic, partition, offset)) = again
                    && let Err(e) =
                        self.consumer
                            .seek(&topic, partition, Offset::Offset(offset), SEEK_TIMEOUT)
                {
                    tracing::warn!(topic, partition, offset, error = %e, "cannot read a message again after a rebalance");
                }
                return Ok(false);
            }
            match next {
                Some(Ok(m)) => polled.push(m),
                _ => break,
            }
            if polled.len() >= crate::microbatch::BATCH_ROWS
                || self.consumer.context().has_assignments()
            {
                break;
            }
            next = self.consumer.poll(Duration::ZERO);
        }
        if let Some(broadcast) = &self.broadcast {
            // The trucks get an eighth of a chunk at least: a backlog of the keyed streams
            // does not hold their watermark back.
            let batch = crate::microbatch::BATCH_ROWS;
            let limit = polled.len() + batch.saturating_sub(polled.len()).max(batch / 8);
            while polled.len() < limit && !broadcast.context().has_assignments() {
                match broadcast.poll(Duration::ZERO) {
                    Some(Ok(m)) => polled.push(m),
                    _ => break,
                }
            }
        }
        if polled.is_empty() {
            return Ok(true);
        }
        if self.consumed == 0 {
            self.live
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .first_read_at = Some(Instant::now());
        }
        self.consumed += polled.len() as u64;
        self.backlog.read(polled.len());
        self.committer.read(&polled);
        let topics = &self.options.kafka.topics;
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
        let (dispatcher, now) = (&mut self.dispatcher, Instant::now());
        decode_and_process(
            &metas,
            &encoded,
            &self.options.decode,
            self.decode_helpers,
            |m, e| process(dispatcher, topics, m, e, now),
        )?;
        Ok(false)
    }

    /// Advances event time, tells the live view what is open, and starts committing what
    /// every family produced (after the commit before has ended).
    fn flush(&mut self) -> Result<()> {
        self.last_flush = Instant::now();
        self.consumed_at_flush = self.consumed;
        self.backlog.flushed();
        self.dispatcher.tick(Instant::now())?;
        self.publish_alerts();
        self.update_live();
        self.finish_commit()?;
        self.committer.start(
            &self.lake,
            &mut self.dispatcher,
            &self.shutdown,
            &self.handle,
            self.consumed,
        )
    }

    /// Waits for the commit in flight, then tells the live view how many messages have
    /// their results in the lake.
    fn finish_commit(&mut self) -> Result<()> {
        if let Some(consumed) = self.committer.finish(&self.handle, &self.consumer)? {
            self.live
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .consumed = consumed;
        }
        Ok(())
    }

    /// [`Worker::flush`], and the commit's end awaited: before stopping or starting over.
    fn flush_and_wait(&mut self) -> Result<()> {
        self.flush()?;
        self.finish_commit()
    }

    /// Partitions assigned (they hold their stream's watermark until they deliver) and
    /// partitions found empty (they stop holding it at once).
    fn apply_assignments(&mut self) {
        let contexts = std::iter::once(self.consumer.context())
            .chain(self.broadcast.as_ref().map(|b| b.context()));
        for context in contexts {
            for a in context.take_assignments() {
                let resumed = a.start.is_some();
                self.dispatcher
                    .partition_assigned(a.stream, a.partition, resumed, Instant::now());
                if let Some(late) = a.stored.get(&crate::late::TABLE) {
                    self.dispatcher.late_recorded(a.stream, a.partition, *late);
                }
                self.committer.assigned(&a);
            }
            for (topic, partition) in context.take_empty() {
                if let Some(stream) = context.stream_of(&topic) {
                    self.dispatcher.partition_found_empty(stream, partition);
                }
            }
        }
    }

    /// Alerts reach the live view and the topic on arrival, not at the commit.
    fn publish_alerts(&mut self) {
        let alerts = self.dispatcher.drain_alerts();
        if alerts.is_empty() {
            return;
        }
        let mut view = self.live.write().unwrap_or_else(|p| p.into_inner());
        for row in alerts
            .iter()
            .filter(|r| is_bin_alert(AlertKind::parse(r.kind)))
        {
            if AlertState::parse(row.state) == AlertState::Open {
                view.open_alerts.insert(row.alert_id.clone(), row.clone());
            } else {
                view.open_alerts.remove(&row.alert_id);
            }
        }
        drop(view);
        self.publisher.publish(&alerts);
    }

    fn update_live(&self) {
        let now = Instant::now();
        let dispatcher = &self.dispatcher;
        let mut view = self.live.write().unwrap_or_else(|p| p.into_inner());
        view.footfall = dispatcher
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
        view.open_alerts = dispatcher.open_alert_rows();
        view.watermarks = INPUTS
            .iter()
            .map(|s| (*s, dispatcher.watermark(*s, now)))
            .collect();
        view.too_late = dispatcher.too_late();
        view.updated_at = Some(Utc::now());
    }
}

/// One decoded message of a chunk processed at `now` (the clock read once per chunk, not
/// per message). Refused messages are ingest's business (dead letters): the stage skips
/// them.
fn process(
    dispatcher: &mut Dispatcher,
    topics: &vallee_kafka::TopicMap,
    (stream, partition, offset): Meta,
    event: std::result::Result<Decoded, Rejection>,
    now: Instant,
) -> Result<()> {
    match event {
        Ok(event) => {
            let topic = topics.get(&stream).map_or("", String::as_str);
            dispatcher.process(stream, topic, partition, offset, &event, now)
        }
        Err(_) => Ok(()),
    }
}
