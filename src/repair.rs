//! The operator's repairs of the lake: `vallee lake accept-loss` (the broker lost records
//! the lake had landed) and `vallee lake check | repair` (damaged data files).
//!
//! # Accepting a loss
//! Ingest positions each partition after the offsets the lake's tables recorded. When the
//! broker's log restarts below them (its storage wiped or rolled back), ingest stops with
//! an error naming the partition rather than skip the new records as replays. Accepting
//! the loss is an operator's decision: this command records, in one progress-only commit
//! per table the topic feeds, that nothing of the partition's new log has landed yet
//! (offset −1), so the next start reads it from its beginning. The rows already in the
//! tables stay; only the recorded positions move.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use vallee_kafka::TopicMap;
use vallee_lake::check::Damaged;
use vallee_lake::upkeep::ExistingTable;
use vallee_lake::{Lake, Progress};
use vallee_schemas::tables::lake_table_names;

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

/// The existing tables of `lake`, all or only those named (an unknown name is an error).
fn tables(lake: &Lake, only: &[String]) -> Result<Vec<&'static str>> {
    let all = lake_table_names();
    if let Some(unknown) = only.iter().find(|o| !all.contains(&o.as_str())) {
        bail!("{unknown} is not a table of the lake ({})", all.join(", "));
    }
    Ok(all
        .into_iter()
        .filter(|t| lake.exists(t) && (only.is_empty() || only.iter().any(|o| o == t)))
        .collect())
}

/// # Damaged files
/// Every active data file of the tables (all, or `only`) read whole; the ones that cannot
/// be, with what the log says they held.
pub async fn check(lake: &Lake, only: &[String]) -> Result<Vec<Damaged>> {
    let mut damaged = Vec::new();
    for name in tables(lake, only)? {
        damaged.extend(
            lake.check(ExistingTable(name))
                .await
                .with_context(|| format!("checking {name}"))?,
        );
    }
    Ok(damaged)
}

/// Moves every damaged file of the tables (all, or `only`) to `quarantine` and removes it
/// from its table, so readers work again. Returns what was found and where each went.
pub async fn repair(
    lake: &Lake,
    only: &[String],
    quarantine: &Path,
) -> Result<Vec<(Damaged, PathBuf)>> {
    let damaged = check(lake, only).await?;
    let mut repaired = Vec::new();
    for name in tables(lake, only)? {
        let mine: Vec<Damaged> = damaged
            .iter()
            .filter(|d| d.table == name)
            .cloned()
            .collect();
        if mine.is_empty() {
            continue;
        }
        repaired.extend(
            lake.quarantine(ExistingTable(name), &mine, quarantine)
                .await
                .with_context(|| format!("setting aside the damaged files of {name}"))?,
        );
    }
    Ok(repaired)
}
