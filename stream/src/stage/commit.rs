//! The output commit: each output table's new rows in one Delta commit, carrying per source
//! partition the offset a restart must replay from.
//!
//! A table records a partition's replay offset (Delta `txn`, app id
//! `<writer>/<table>/<topic>/<partition>`) only when it moved since the table last recorded
//! it: the offset recorded before is what the lake checks it still holds (fencing a
//! concurrent writer), and what the assignment read back is where that starts.

use std::collections::BTreeMap;
use std::time::Instant;

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
}

impl Committer {
    pub fn new(options: &StreamOptions) -> Self {
        Committer {
            writer_id: options.writer_id.clone(),
            topics: options.kafka.topics.clone(),
            recorded: BTreeMap::new(),
        }
    }

    /// A partition was assigned: what its outputs recorded is the base of their next commit.
    pub fn assigned(&mut self, a: &Assignment) {
        for (output, stored) in &a.stored {
            self.recorded
                .insert((*output, a.topic.clone(), a.partition), *stored);
        }
    }

    /// Commits every output's pending rows and moved replay offsets, table by table.
    pub async fn commit(&mut self, lake: &Lake, dispatcher: &mut Dispatcher) -> Result<()> {
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
            lake.append(
                output,
                &self.writer_id,
                batch.into_iter().collect(),
                &progress,
            )
            .await?;
            for p in progress {
                self.recorded
                    .insert((output, p.topic, p.partition), Some(p.last));
            }
        }
        Ok(())
    }
}
