//! `vallee lake accept-loss`: moving on after the broker lost records the lake had landed.
//!
//! Ingest positions each partition after the offsets the lake's tables recorded. When the
//! broker's log restarts below them (its storage wiped or rolled back), ingest stops with
//! an error naming the partition rather than skip the new records as replays. Accepting
//! the loss is an operator's decision: this command records, in one progress-only commit
//! per table the topic feeds, that nothing of the partition's new log has landed yet
//! (offset −1), so the next start reads it from its beginning. The rows already in the
//! tables stay; only the recorded positions move.

use anyhow::{Context, Result, bail};
use vallee_kafka::TopicMap;
use vallee_lake::{Lake, Progress};

/// What was reset: (table, partition, the offset it recorded before).
pub type Reset = Vec<(&'static str, i32, i64)>;

/// Resets ingest's (`writer`'s) recorded position on `partitions` of `topic` in every
/// table the topic feeds. Run it with ingest stopped (a running ingest would be fenced).
pub async fn accept_loss(
    lake: &Lake,
    writer: &str,
    topics: &TopicMap,
    topic: &str,
    partitions: &[i32],
) -> Result<Reset> {
    let Some(stream) = topics.stream_of(topic) else {
        bail!("{topic} is not one of the hub's input topics (see [topics])");
    };
    let mut reset = Vec::new();
    for table in stream.tables() {
        if !lake.exists(vallee_lake::LakeTable::name(&table)) {
            continue;
        }
        let stored = lake
            .committed_offsets(table, writer, topic, partitions)
            .await?;
        let progress: Vec<Progress> = stored
            .iter()
            .filter_map(|(&partition, &offset)| {
                let previous = offset.filter(|o| *o >= 0)?;
                Some(Progress {
                    topic: topic.to_string(),
                    partition,
                    previous: Some(previous),
                    last: -1,
                })
            })
            .collect();
        if progress.is_empty() {
            continue;
        }
        lake.append(table, writer, Vec::new(), &progress)
            .await
            .with_context(|| format!("resetting {} (is ingest still running?)", table.name()))?;
        reset.extend(
            progress
                .iter()
                .map(|p| (table.name(), p.partition, p.previous.unwrap_or(-1))),
        );
    }
    Ok(reset)
}
