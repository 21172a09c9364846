//! A stage's probe: every few seconds, the end of each partition of its topics and the
//! progress its group committed, turned into [`StageHealth`] by a [`PartitionWatch`].
//!
//! The probe has its own client and its own thread, so a slow or unreachable broker never
//! holds the stage's poll loop, and the health it publishes is never older than one
//! interval plus the request timeouts. Its client carries the stage's group id only to
//! read that group's committed offsets (`OffsetFetch`); it never subscribes, so it never
//! joins the group.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::watch::{Observation, PartitionHealth, PartitionWatch, stalled};
use crate::{KafkaOptions, Result};

/// What a stage's probe last saw.
#[derive(Debug, Clone, Default)]
pub struct StageHealth {
    /// When the last complete sample was taken (`None`: none yet).
    pub sampled_at: Option<Instant>,
    /// Every partition of the stage's topics at that sample.
    pub partitions: Vec<PartitionHealth>,
    /// Why the latest attempt failed (the broker unreachable…), cleared by a success.
    pub error: Option<String>,
}

impl StageHealth {
    /// The partitions stalled for at least `threshold`.
    pub fn stalled(&self, threshold: Duration) -> Vec<&PartitionHealth> {
        stalled(&self.partitions, threshold)
    }

    /// Messages not landed yet, over every partition.
    pub fn total_lag(&self) -> i64 {
        self.partitions.iter().map(|p| p.lag).sum()
    }

    /// Whether the last sample is older than `max_age` (or missing) at `now`.
    pub fn is_stale(&self, max_age: Duration, now: Instant) -> bool {
        self.sampled_at
            .is_none_or(|t| now.saturating_duration_since(t) > max_age)
    }
}

/// The health a stage's probe publishes, read by the stage and the operations endpoints.
pub type SharedHealth = Arc<RwLock<StageHealth>>;

/// Reads a shared health (a poisoned lock still holds the last sample).
pub fn read(health: &SharedHealth) -> StageHealth {
    health.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// How often and how patiently the probe samples.
#[derive(Debug, Clone, Copy)]
pub struct ProbeTiming {
    pub interval: Duration,
    /// Per broker request.
    pub timeout: Duration,
}

impl Default for ProbeTiming {
    fn default() -> Self {
        ProbeTiming {
            interval: Duration::from_secs(3),
            timeout: Duration::from_secs(2),
        }
    }
}

/// Starts the probe of the stage whose consumer group is `group_id`, over its topics,
/// on its own thread, until `shutdown`. Its samples go to `health`.
pub fn spawn_probe(
    kafka: &KafkaOptions,
    group_id: &str,
    thread: &'static str,
    timing: ProbeTiming,
    health: SharedHealth,
    shutdown: CancellationToken,
) -> Result<std::thread::JoinHandle<()>> {
    let config = kafka.client_config(&[
        ("group.id", group_id.to_string()),
        ("client.id", format!("{group_id}-probe")),
        ("enable.auto.commit", "false".into()),
    ]);
    let consumer: BaseConsumer = config.create()?;
    let topics: Vec<String> = kafka.topics.values().cloned().collect();
    std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            let mut watch = PartitionWatch::default();
            while !shutdown.is_cancelled() {
                let started = Instant::now();
                match sample(&consumer, &topics, timing.timeout) {
                    Ok(observations) => {
                        let partitions = watch.observe(&observations, Instant::now());
                        let mut h = health.write().unwrap_or_else(|p| p.into_inner());
                        *h = StageHealth {
                            sampled_at: Some(Instant::now()),
                            partitions,
                            error: None,
                        };
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "probe: sample failed");
                        health.write().unwrap_or_else(|p| p.into_inner()).error =
                            Some(e.to_string());
                    }
                }
                let next = started + timing.interval;
                while !shutdown.is_cancelled() && Instant::now() < next {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
        .map_err(|source| crate::Error::ThreadStart { thread, source })
}

/// Ends, first offsets and the group's committed offsets of every partition of `topics`.
fn sample(
    consumer: &BaseConsumer,
    topics: &[String],
    timeout: Duration,
) -> Result<Vec<Observation>> {
    let mut observations = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                let (low, end) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
                observations.push(Observation {
                    topic: topic.clone(),
                    partition: p.id(),
                    low,
                    end,
                    committed: None,
                });
                tpl.add_partition(topic, p.id());
            }
        }
    }
    let committed = consumer.committed_offsets(tpl, timeout)?;
    for o in &mut observations {
        if let Some(e) = committed.find_partition(&o.topic, o.partition)
            && let Offset::Offset(n) = e.offset()
        {
            o.committed = Some(n);
        }
    }
    Ok(observations)
}
