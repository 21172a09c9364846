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
        if !lake.exists(vallee_lake::LakeTable::name(&table)).await {
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
async fn tables(lake: &Lake, only: &[String]) -> Result<Vec<&'static str>> {
    let all = lake_table_names();
    if let Some(unknown) = only.iter().find(|o| !all.contains(&o.as_str())) {
        bail!("{unknown} is not a table of the lake ({})", all.join(", "));
    }
    let mut existing = Vec::new();
    for t in all {
        if (only.is_empty() || only.iter().any(|o| o == t)) && lake.exists(t).await {
            existing.push(t);
        }
    }
    Ok(existing)
}

/// # Damaged files
/// Every active data file of the tables (all, or `only`) read whole; the ones that cannot
/// be, with what the log says they held.
pub async fn check(lake: &Lake, only: &[String]) -> Result<Vec<Damaged>> {
    let mut damaged = Vec::new();
    for name in tables(lake, only).await? {
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
    for name in tables(lake, only).await? {
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

/// # Refilling from the topics
/// Every offset of a topic's partition, up to the one the lake recorded, landed in exactly
/// one table: a data table of its stream or the dead letters. An offset found in none of
/// them was lost to the lake after it landed (a damaged file set aside by [`repair`]); while
/// the topic still holds it, it is read again, decoded as ingest decodes it and appended to
/// the table it belongs to, in commits that move no recorded position (writer
/// [`REFILL_WRITER`]). An offset the topic no longer holds is counted as gone. Running it
/// again finds nothing missing; it may run beside ingest, which never writes below the
/// positions it recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refilled {
    pub topic: String,
    pub partition: i32,
    /// Offsets recorded as landed but in no table.
    pub missing: u64,
    /// Of those, brought back from the topic.
    pub restored: u64,
    /// Of those, older than what the topic still holds: lost for good.
    pub gone: u64,
}

/// Writer of the refill commits (they record no position).
pub const REFILL_WRITER: &str = "vallee-refill";

/// Brings back from their topics the rows the lake recorded but no longer holds, for the
/// streams feeding the tables (all, or `only`).
pub async fn refill(
    lake: &Lake,
    kafka: &vallee_kafka::KafkaOptions,
    decode: &vallee_schemas::decode::DecodeOptions,
    writer: &str,
    only: &[String],
) -> Result<Vec<Refilled>> {
    use vallee_schemas::contract::Stream;
    let only = tables(lake, only).await?;
    let mut done = Vec::new();
    for stream in Stream::ALL {
        let fed: Vec<_> = stream
            .tables()
            .into_iter()
            .filter(|t| only.contains(&vallee_lake::LakeTable::name(t)))
            .collect();
        if fed.is_empty() {
            continue;
        }
        let topic = kafka.topics.topic(stream).to_string();
        let (brokers, t) = (kafka.brokers.clone(), topic.clone());
        let partitions = tokio::task::spawn_blocking(move || partitions_of(&brokers, &t)).await??;
        for (partition, low) in partitions {
            let Some(recorded) =
                recorded_offset(lake, &stream.tables(), writer, &topic, partition).await?
            else {
                continue;
            };
            let missing = missing_offsets(lake, stream, &topic, partition, recorded).await?;
            if missing.is_empty() {
                continue;
            }
            let gone = missing.iter().filter(|o| **o < low).count() as u64;
            let wanted: Vec<i64> = missing.iter().copied().filter(|o| *o >= low).collect();
            let (brokers, t, options) = (kafka.brokers.clone(), topic.clone(), decode.clone());
            let buffers = tokio::task::spawn_blocking(move || {
                read_again(&brokers, stream, &t, partition, &wanted, &options)
            })
            .await??;
            let mut restored = 0;
            for mut buffer in buffers {
                let table = buffer.table();
                if let Some(batch) = buffer.finish()? {
                    restored += batch.num_rows() as u64;
                    lake.append(table, REFILL_WRITER, vec![batch], &[])
                        .await
                        .with_context(|| format!("refilling {}", table.name()))?;
                }
            }
            done.push(Refilled {
                topic: topic.clone(),
                partition,
                missing: missing.len() as u64,
                restored,
                gone,
            });
        }
    }
    Ok(done)
}

/// The partitions of `topic` with the oldest offset each still holds.
fn partitions_of(brokers: &str, topic: &str) -> Result<Vec<(i32, i64)>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", REFILL_WRITER)
        .create()?;
    let timeout = std::time::Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("reaching the broker at {brokers}"))?;
    let mut out = Vec::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, _) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
            out.push((p.id(), low));
        }
    }
    Ok(out)
}

/// The offset up to which every table `topic` feeds recorded landing `partition` (the
/// smallest of their records), if they all recorded one.
async fn recorded_offset(
    lake: &Lake,
    fed: &[vallee_schemas::contract::Table],
    writer: &str,
    topic: &str,
    partition: i32,
) -> Result<Option<i64>> {
    let mut recorded: Option<i64> = None;
    for table in fed {
        if !lake.exists(vallee_lake::LakeTable::name(table)).await {
            continue;
        }
        let stored = lake
            .committed_offsets(*table, writer, topic, &[partition])
            .await?;
        match stored.get(&partition).copied().flatten() {
            Some(o) if o >= 0 => recorded = Some(recorded.map_or(o, |r| r.min(o))),
            _ => return Ok(None),
        }
    }
    Ok(recorded)
}

/// Offsets `0..=recorded` of `partition` found in no table of `stream`.
async fn missing_offsets(
    lake: &Lake,
    stream: vallee_schemas::contract::Stream,
    topic: &str,
    partition: i32,
    recorded: i64,
) -> Result<Vec<i64>> {
    use arrow::array::{Array, Int64Array};
    let quoted = topic.replace('\'', "''");
    let mut present = std::collections::HashSet::new();
    for table in stream.tables() {
        let name = vallee_lake::LakeTable::name(&table);
        if !lake.exists(name).await {
            continue;
        }
        let (t, p, o) = match table {
            vallee_schemas::contract::Table::DeadLetters => ("topic", "partition", "\"offset\""),
            _ => ("_topic", "_partition", "_offset"),
        };
        let batches = lake
            .sql(&format!(
                "SELECT CAST({o} AS BIGINT) AS o FROM {name} \
                 WHERE {t} = '{quoted}' AND {p} = {partition} AND {o} <= {recorded}"
            ))
            .await?;
        for b in &batches {
            let column = b
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .context("offsets as integers")?;
            present.extend(
                (0..column.len())
                    .filter(|i| !column.is_null(*i))
                    .map(|i| column.value(i)),
            );
        }
    }
    Ok((0..=recorded).filter(|o| !present.contains(o)).collect())
}

/// Reads `offsets` (sorted) of `partition` again and decodes them as ingest does: one
/// buffer per table they land in.
fn read_again(
    brokers: &str,
    stream: vallee_schemas::contract::Stream,
    topic: &str,
    partition: i32,
    offsets: &[i64],
    options: &vallee_schemas::decode::DecodeOptions,
) -> Result<Vec<vallee_schemas::batch::TableBuffer>> {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use vallee_schemas::batch::{Lineage, TableBuffer};
    use vallee_schemas::contract::Table;
    use vallee_schemas::dead_letter::{DeadLetterRecord, Source};
    let (Some(first), Some(last)) = (offsets.first(), offsets.last()) else {
        return Ok(Vec::new());
    };
    let wanted: std::collections::HashSet<i64> = offsets.iter().copied().collect();
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", REFILL_WRITER)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, rdkafka::Offset::Offset(*first))?;
    consumer.assign(&assignment)?;
    let mut buffers: std::collections::BTreeMap<Table, TableBuffer> = Default::default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut seen = 0;
    while seen < wanted.len() {
        if std::time::Instant::now() > deadline {
            bail!("{topic}[{partition}]: offsets {first}–{last} not read back within 60 s");
        }
        let Some(message) = consumer.poll(std::time::Duration::from_millis(500)) else {
            continue;
        };
        let message = message?;
        let offset = message.offset();
        if offset > *last {
            break;
        }
        if !wanted.contains(&offset) {
            continue;
        }
        seen += 1;
        let signature = message.headers().and_then(|headers| {
            use rdkafka::message::Headers;
            headers
                .iter()
                .find(|h| h.key == vallee_schemas::signing::SIGNATURE_HEADER)
                .and_then(|h| h.value)
        });
        let decoded = vallee_schemas::decode::decode_signed(
            stream,
            message.payload(),
            signature,
            message.timestamp().to_millis(),
            options,
        );
        let table = decoded.as_ref().map_or(Table::DeadLetters, |d| d.table());
        let buffer = match buffers.entry(table) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(TableBuffer::new(table)?),
        };
        let now = chrono::Utc::now();
        match decoded {
            Ok(event) => event.append_to(
                buffer,
                &Lineage {
                    topic,
                    partition,
                    offset,
                    ingested_at_micros: now.timestamp_micros(),
                },
            )?,
            Err(rejection) => buffer.push_dead_letter(&DeadLetterRecord::new(
                &rejection,
                Source {
                    stream,
                    topic,
                    partition,
                    offset,
                },
                message.key(),
                message.payload(),
                now,
            ))?,
        }
    }
    Ok(buffers.into_values().collect())
}
