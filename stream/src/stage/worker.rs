//! The stage's poll loop: take what the consumer fetched, decode it beside processing,
//! publish alerts at once, and every flush interval advance event time and commit.
//!
//! ```text
//!  poll ─► chunk (≤ 8 192 messages, cut at a rebalance) ─► decoding pipeline ─► dispatcher
//!   │                                                    fresh alerts ─► live view, vallee.alerts
//!   └─ every flush_interval: pipeline drained ─► tick (windows, days, pending decisions)
//!                            ─► alerts ─► output commit (commit.rs) ─► live view
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use vallee_kafka::RejoinPolicy;
use vallee_lake::Lake;
use vallee_schemas::contract::Stream;
use vallee_schemas::decode::{DecodeOptions, Decoded, Rejection};
use vallee_schemas::tables::{AlertKind, AlertState};

use super::StreamOptions;
use super::commit::Committer;
use super::consumer::{INPUTS, StageContext, subscribe};
use super::decoding::{Encoded, Pipeline};
use super::dispatcher::Dispatcher;
use super::live::{LiveFootfall, SharedLiveView};
use super::publish::AlertPublisher;
use crate::Result;
use crate::families::bins::fill::is_bin_alert;

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
    let mut dispatcher = Dispatcher::new(options.clone(), handle.clone());
    handle.block_on(dispatcher.restore(&lake))?;
    let consumer = subscribe(&options, &lake, &handle)?;
    let mut worker = Worker {
        publisher: AlertPublisher::new(&options, handle.clone())?,
        pipeline: Pipeline::new(DecodeOptions::default(), super::decoding::threads()),
        committer: Committer::new(&options),
        rejoin: RejoinPolicy::new(Instant::now()),
        consumed: 0,
        assigned_once: false,
        options,
        lake,
        live,
        handle,
        shutdown,
        consumer,
        dispatcher,
    };
    worker.run()
}

/// The loop's state: the consumer and what it feeds.
struct Worker {
    options: StreamOptions,
    lake: Arc<Lake>,
    live: SharedLiveView,
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
    assigned_once: bool,
}

impl Worker {
    fn run(&mut self) -> Result<()> {
        let mut last_flush = Instant::now();
        tracing::info!(group = self.options.group_id, "stream stage started");
        loop {
            let stopping = self.shutdown.is_cancelled();
            let owned = self.consumer.context().owns_partitions();
            if owned && !self.assigned_once {
                self.assigned_once = true;
                self.live
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .assigned_at = Some(Instant::now());
            }
            if self.rejoin.should_rejoin(owned, Instant::now()) {
                // A member the group left with nothing joins again (see `vallee_kafka::rejoin`).
                self.consumer = subscribe(&self.options, &self.lake, &self.handle)?;
            }
            if !stopping {
                self.poll()?;
            } else {
                self.drain_pipeline()?;
            }
            self.apply_assignments();
            self.publish_alerts();
            if stopping || last_flush.elapsed() >= self.options.flush_interval {
                self.drain_pipeline()?;
                last_flush = Instant::now();
                self.dispatcher.tick(Instant::now())?;
                self.publish_alerts();
                self.handle
                    .block_on(self.committer.commit(&self.lake, &mut self.dispatcher))?;
                self.update_live();
            }
            if stopping {
                break;
            }
        }
        self.consumer.unsubscribe();
        tracing::info!("stream stage stopped after a final commit");
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
        self.consumed += polled.len() as u64;
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
        view.consumed = self.consumed;
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
