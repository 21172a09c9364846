//! The stage's poll loop: take what the consumer fetched, decode it beside processing,
//! publish alerts at once, and every flush interval advance event time and commit.
//!
//! ```text
//!  poll ─► chunk (≤ 8 192 messages, cut at a rebalance) ─► decoding pipeline ─► dispatcher
//!   │                                                    fresh alerts ─► live view, vallee.alerts
//!   ├─ every flush_interval: pipeline drained ─► tick (windows, days, pending decisions)
//!   │                        ─► alerts ─► output commit (commit.rs) ─► group offsets ─► live view
//!   └─ every second: partitions flowing? (the probe's health; a member with none)
//!                    no ─► commit, then a fresh consumer and families restored from the lake
//! ```
//!
//! A fresh consumer starts as a restarted stage would: what was read is committed first,
//! then the families are restored from the lake and the partitions replayed from the
//! offsets the outputs recorded (state carried over would count the replayed events twice).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use vallee_kafka::probe::{ProbeTiming, spawn_probe};
use vallee_kafka::{KafkaOptions, RejoinPolicy, SharedHealth};
use vallee_lake::Lake;
use vallee_schemas::contract::Stream;
use vallee_schemas::decode::{Decoded, Rejection};
use vallee_schemas::tables::{AlertKind, AlertState};

use super::StreamOptions;
use super::commit::Committer;
use super::consumer::{INPUTS, StageContext, assign_owned, create};
use super::decoding::{Encoded, Pipeline};
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
    let health = live
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .health
        .clone();
    let now = Instant::now();
    let mut worker = Worker {
        publisher: AlertPublisher::new(&options, handle.clone())?,
        pipeline: Pipeline::new(options.decode.clone(), super::decoding::threads()),
        committer,
        rejoin: RejoinPolicy::new(now),
        consumed: 0,
        last_flush: now,
        last_health_check: now,
        last_partitions_check: now,
        options,
        lake,
        live,
        health,
        handle,
        shutdown,
        consumer,
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
    dispatcher: Dispatcher,
    pipeline: Pipeline<Meta>,
    publisher: AlertPublisher,
    committer: Committer,
    rejoin: RejoinPolicy,
    /// Messages read (refused ones included).
    consumed: u64,
    last_flush: Instant,
    last_health_check: Instant,
    last_partitions_check: Instant,
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
            topics: INPUTS
                .iter()
                .filter_map(|s| Some((*s, topics.get(s)?.clone())))
                .collect(),
            ..self.options.kafka.clone()
        }
    }

    fn consume_until_shutdown(&mut self) -> Result<()> {
        self.take_own_partitions();
        while self.consume()? == Outcome::NotFlowing {
            // A member the group left with nothing, or with partitions that stopped
            // flowing, starts afresh (see `vallee_kafka::rejoin`).
            self.live
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .recoveries += 1;
            self.fresh_consumer()?;
        }
        if !self.options.membership.assigns_itself() {
            self.consumer.unsubscribe();
        }
        tracing::info!("stream stage stopped after a final commit");
        Ok(())
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
                if self.rejoin.should_rejoin(owns, now)
                    || self.rejoin.should_rejoin_stalled(self.stalled(), now)
                {
                    return Ok(Outcome::NotFlowing);
                }
            }
            if !stopping {
                self.poll()?;
            } else {
                self.drain_pipeline()?;
            }
            self.apply_assignments();
            self.publish_alerts();
            if stopping {
                self.flush_and_wait()?;
                return Ok(Outcome::Shutdown);
            }
            if self.last_flush.elapsed() >= self.options.flush_interval {
                self.flush()?;
            } else if self.committer.is_idle_or_done() {
                // The live view learns of a commit's end at once, not at the next flush.
                self.finish_commit()?;
            }
        }
    }

    /// Under a self-assigned membership, assigns the partitions not owned yet (the broker
    /// may be down at start: the loop comes back here every second until it owns some).
    fn take_own_partitions(&mut self) {
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
        if !stuck.is_empty() {
            tracing::warn!(partitions = ?stuck, stall_after = ?self.options.kafka.stall_after, "partitions not flowing");
        }
        !stuck.is_empty()
    }

    /// Commits what was read, then starts over as a restarted stage would: the families
    /// restored from the lake, a new consumer replaying from the recorded offsets.
    fn fresh_consumer(&mut self) -> Result<()> {
        self.flush_and_wait()?;
        self.dispatcher = restored(&self.options, &self.lake, &self.handle)?;
        self.committer = Committer::new(&self.options);
        self.consumer = create(
            &self.options,
            &self.lake,
            &self.handle,
            self.committer.gate(),
        )?;
        self.take_own_partitions();
        Ok(())
    }

    /// Takes what the consumer has already fetched in one chunk (up to a batch, stopping
    /// at a rebalance) and feeds it to the decoding pipeline. While a decoded chunk waits,
    /// polling does not wait: with nothing more fetched, the chunk is processed at once.
    fn poll(&mut self) -> Result<()> {
        let wait = if self.pipeline.is_empty() {
            Duration::from_millis(50)
        } else {
            Duration::ZERO
        };
        let Some(Ok(first)) = self.consumer.poll(wait) else {
            return self.drain_pipeline();
        };
        let mut polled = vec![first];
        while polled.len() < crate::microbatch::BATCH_ROWS
            && !self.consumer.context().has_assignments()
        {
            match self.consumer.poll(Duration::ZERO) {
                Some(Ok(m)) => polled.push(m),
                _ => break,
            }
        }
        if self.consumed == 0 {
            self.live
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .first_read_at = Some(Instant::now());
        }
        self.consumed += polled.len() as u64;
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
        let dispatcher = &mut self.dispatcher;
        self.pipeline
            .feed(metas, &encoded, |m, e| process(dispatcher, topics, m, e))
    }

    /// Processes the decoded messages waiting in the pipeline.
    fn drain_pipeline(&mut self) -> Result<()> {
        let (dispatcher, topics) = (&mut self.dispatcher, &self.options.kafka.topics);
        self.pipeline
            .flush(|m, e| process(dispatcher, topics, m, e))
    }

    /// Advances event time, tells the live view what is open, and starts committing what
    /// every family produced (after the commit before has ended).
    fn flush(&mut self) -> Result<()> {
        self.drain_pipeline()?;
        self.last_flush = Instant::now();
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
        let context = self.consumer.context();
        for a in context.take_assignments() {
            self.dispatcher
                .partition_assigned(a.stream, a.partition, Instant::now());
            self.committer.assigned(&a);
        }
        for (topic, partition) in context.take_empty() {
            if let Some(stream) = context.stream_of(&topic) {
                self.dispatcher.partition_found_empty(stream, partition);
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

/// One decoded message. Refused messages are ingest's business (dead letters): the stage
/// skips them.
fn process(
    dispatcher: &mut Dispatcher,
    topics: &vallee_kafka::TopicMap,
    (stream, partition, offset): Meta,
    event: std::result::Result<Decoded, Rejection>,
) -> Result<()> {
    match event {
        Ok(event) => {
            let topic = topics.get(&stream).map_or("", String::as_str);
            dispatcher.process(stream, topic, partition, offset, &event, Instant::now())
        }
        Err(_) => Ok(()),
    }
}
