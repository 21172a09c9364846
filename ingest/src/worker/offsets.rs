//! The offset contract of one ingest process: every offset of a partition processed once
//! and in order, whatever the broker serves. A re-delivery is skipped; a gap seeks back
//! (and stops ingest after a few seeks rather than lose records silently); another
//! writer's commit makes the partition re-read from the lake's offsets; a log that ends
//! before what the lake landed stops ingest (the broker lost data).

use std::time::{Duration, Instant};

use rdkafka::Offset;
use rdkafka::consumer::Consumer;

use super::{IngestConsumer, State};
use crate::{Error, Result};

/// How long to wait for the broker to honour a seek before seeking again.
const SEEK_PATIENCE: Duration = Duration::from_secs(5);
/// Seeks after a gap before ingest gives up and stops.
const MAX_SEEKS: u32 = 3;
impl State {
    /// Stops ingest when a partition's log, sampled after the partition was assigned, ends
    /// before the offset consumption started from: the lake holds records the broker no
    /// longer has (its storage wiped or rolled back). Without this check the broker's new
    /// records would look like replays of landed ones and be skipped until their offsets
    /// passed the lake's: a silent loss.
    pub(super) fn check_log_ends(&self) -> Result<()> {
        let health = vallee_kafka::probe::read(&self.stats.health);
        let Some(sampled_at) = health.sampled_at else {
            return Ok(());
        };
        for p in &self.partitions {
            let (Some(start), assigned_at) = p.assigned else {
                continue;
            };
            if sampled_at <= assigned_at || p.next_expected != Some(start) {
                continue; // a sample from before the assignment, or records read since
            }
            let end = health
                .partitions
                .iter()
                .find(|h| h.topic == p.topic && h.partition == p.partition)
                .map(|h| h.end);
            if let Some(end) = end
                && end < start
            {
                return Err(Error::BrokerLostData {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    log_end: end,
                    lake_offset: start - 1,
                });
            }
        }
        Ok(())
    }

    /// Checks that `offset` is the one expected on partition `index`; seeks back on a gap.
    /// Returns whether the message is to be processed.
    pub(super) fn check_offset(
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

    /// Another writer committed this partition: forget our uncommitted work, re-read the
    /// stored offsets and seek there.
    pub(super) fn reset_partition(
        &mut self,
        consumer: &IngestConsumer,
        index: usize,
    ) -> Result<()> {
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
}
