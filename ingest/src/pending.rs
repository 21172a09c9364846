//! What ingest holds between two flushes: per assigned partition, how far each table is,
//! the rows read but not committed yet, and where the next message must start.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use vallee_lake::Progress;
use vallee_schemas::batch::TableBuffer;
use vallee_schemas::contract::{Stream, Table};
use vallee_schemas::decode::Reason;

use crate::consumer::Assignment;

/// One assigned partition.
#[derive(Debug)]
pub struct PartitionState {
    pub stream: Stream,
    pub topic: String,
    pub partition: i32,
    /// Offset each table fed by the topic holds (committed by anyone, read at assignment,
    /// then advanced by our own commits).
    pub committed: BTreeMap<Table, Option<i64>>,
    /// The offset the next message must have (`None`: anything, first after `Beginning`).
    pub next_expected: Option<i64>,
    /// A seek in flight after a gap: target, give-up time, attempts so far.
    pub pending_seek: Option<(i64, Instant, u32)>,
    /// Last offset read into the buffers.
    pub last_seen: Option<i64>,
    /// Rows read but not committed, per table.
    pub buffers: BTreeMap<Table, TableBuffer>,
    /// Dead letters buffered, per reason (counted when committed).
    pub dead_letter_reasons: BTreeMap<Reason, u64>,
    /// When each table last recorded this partition's progress.
    pub last_progress: BTreeMap<Table, Instant>,
    /// Kafka timestamps of buffered rows, when freshness is being measured.
    pub produce_times: BTreeMap<Table, Vec<i64>>,
    /// The offset last committed to the consumer group (monitoring only).
    pub group_committed: Option<i64>,
    /// Where consumption started at assignment, and when.
    pub assigned: (Option<i64>, Instant),
}

impl PartitionState {
    pub fn new(a: Assignment, now: Instant) -> Self {
        let last_progress = a.committed.keys().map(|t| (*t, now)).collect();
        PartitionState {
            stream: a.stream,
            topic: a.topic,
            partition: a.partition,
            committed: a.committed,
            next_expected: a.start,
            pending_seek: None,
            last_seen: None,
            buffers: BTreeMap::new(),
            dead_letter_reasons: BTreeMap::new(),
            last_progress,
            produce_times: BTreeMap::new(),
            group_committed: None,
            assigned: (a.start, now),
        }
    }

    /// Whether `table` still needs the message at `offset` (it does not hold it yet).
    pub fn needs(&self, table: Table, offset: i64) -> bool {
        self.committed
            .get(&table)
            .copied()
            .flatten()
            .is_none_or(|c| offset > c)
    }

    /// Forgets everything read but not committed (ownership lost or a reset).
    pub fn drop_uncommitted(&mut self) {
        self.buffers.clear();
        self.dead_letter_reasons.clear();
        self.produce_times.clear();
        self.last_seen = None;
    }

    /// The offset to restart from after dropping uncommitted work.
    pub fn restart_offset(&self) -> Option<i64> {
        if self.committed.values().all(Option::is_none) {
            None
        } else {
            Some(
                self.committed
                    .values()
                    .map(|o| o.map_or(0, |o| o + 1))
                    .min()
                    .unwrap_or(0),
            )
        }
    }
}

/// One table's share of a flush.
#[derive(Debug)]
pub struct TableCommit {
    pub table: Table,
    pub batches: Vec<RecordBatch>,
    pub progress: Vec<Progress>,
    /// Index in the partition list of each `progress` entry.
    pub partitions: Vec<usize>,
}

/// When a table with no new rows from a partition still records its progress.
#[derive(Debug, Clone, Copy)]
pub struct ProgressPolicy {
    pub max_lag: i64,
    pub interval: Duration,
    /// Record every pending progress (shutdown).
    pub force: bool,
}

/// Builds the commits of a flush: for every table, the buffered rows of each partition
/// and the progress of every partition that moved past what the table holds. A table is
/// committed when it has rows, or when some progress is due under `policy`.
pub fn plan(
    partitions: &mut [PartitionState],
    policy: ProgressPolicy,
    now: Instant,
) -> crate::Result<Vec<TableCommit>> {
    let mut commits = Vec::new();
    for table in Table::ALL {
        let mut commit = TableCommit {
            table,
            batches: Vec::new(),
            progress: Vec::new(),
            partitions: Vec::new(),
        };
        let mut due = false;
        for (i, p) in partitions.iter_mut().enumerate() {
            if !p.committed.contains_key(&table) {
                continue;
            }
            let Some(last) = p.last_seen else { continue };
            let previous = p.committed[&table];
            if previous.is_some_and(|c| c >= last) {
                continue;
            }
            if let Some(mut buffer) = p.buffers.remove(&table)
                && let Some(batch) = buffer.finish()?
            {
                commit.batches.push(batch);
                due = true;
            }
            let lag = last - previous.unwrap_or(-1);
            let idle_for =
                now.saturating_duration_since(p.last_progress.get(&table).copied().unwrap_or(now));
            // A table that never recorded this partition does so at once: otherwise a restart
            // would have to re-read the partition from its beginning for it.
            due |= policy.force
                || previous.is_none()
                || lag >= policy.max_lag
                || idle_for >= policy.interval;
            commit.progress.push(Progress {
                topic: p.topic.clone(),
                partition: p.partition,
                previous,
                last,
            });
            commit.partitions.push(i);
        }
        if due {
            commits.push(commit);
        }
    }
    Ok(commits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vallee_schemas::batch::Lineage;
    use vallee_schemas::decode::{DecodeOptions, decode};

    fn partition(committed: &[(Table, Option<i64>)]) -> PartitionState {
        PartitionState::new(
            Assignment {
                stream: Stream::Vineyards,
                topic: "vines".into(),
                partition: 0,
                committed: committed.iter().copied().collect(),
                start: Some(0),
            },
            Instant::now(),
        )
    }

    fn add_weather(p: &mut PartitionState, offset: i64) {
        let payload = br#"{"id":"w","type":"WeatherObserved","dateObserved":"2026-04-01T00:00:00Z","temperature":3.0}"#;
        let d = decode(
            Stream::Vineyards,
            Some(payload),
            None,
            &DecodeOptions::default(),
        )
        .unwrap();
        let buffer = p
            .buffers
            .entry(d.table())
            .or_insert_with(|| TableBuffer::new(d.table()).unwrap());
        let lineage = Lineage {
            topic: "vines",
            partition: 0,
            offset,
            ingested_at_micros: 0,
        };
        d.append_to(buffer, &lineage).unwrap();
        p.last_seen = Some(offset);
    }

    const LAZY: ProgressPolicy = ProgressPolicy {
        max_lag: 1000,
        interval: Duration::from_secs(3600),
        force: false,
    };

    #[test]
    fn only_tables_with_rows_commit_unless_progress_is_due() {
        let t = [
            (Table::ParcelRecords, Some(-1)),
            (Table::WeatherObserved, Some(-1)),
            (Table::DeadLetters, Some(-1)),
        ];
        let mut parts = vec![partition(&t)];
        for o in 0..5 {
            add_weather(&mut parts[0], o);
        }
        let commits = plan(&mut parts, LAZY, Instant::now()).unwrap();
        assert_eq!(commits.len(), 1);
        assert_eq!(commits[0].table, Table::WeatherObserved);
        assert_eq!(commits[0].batches[0].num_rows(), 5);
        assert_eq!(
            commits[0].progress[0],
            Progress {
                topic: "vines".into(),
                partition: 0,
                previous: Some(-1),
                last: 4
            }
        );

        // At shutdown every table records where it is, rows or not.
        let forced = ProgressPolicy {
            force: true,
            ..LAZY
        };
        let commits = plan(&mut parts, forced, Instant::now()).unwrap();
        let tables: Vec<Table> = commits.iter().map(|c| c.table).collect();
        assert_eq!(
            tables,
            vec![
                Table::ParcelRecords,
                Table::WeatherObserved,
                Table::DeadLetters
            ]
        );
        assert!(
            commits.iter().all(|c| c.batches.is_empty()),
            "rows were taken by the first flush"
        );
    }

    #[test]
    fn a_table_that_never_recorded_a_partition_records_it_at_the_first_flush() {
        let t = [
            (Table::ParcelRecords, Some(40)),
            (Table::WeatherObserved, Some(40)),
            (Table::DeadLetters, None),
        ];
        let mut parts = vec![partition(&t)];
        parts[0].last_seen = Some(41);
        let commits = plan(&mut parts, LAZY, Instant::now()).unwrap();
        let tables: Vec<Table> = commits.iter().map(|c| c.table).collect();
        assert_eq!(tables, vec![Table::DeadLetters]);
        assert_eq!(commits[0].progress[0].previous, None);
    }

    #[test]
    fn a_lagging_table_records_progress_and_an_up_to_date_one_does_not() {
        let t = [
            (Table::ParcelRecords, Some(2000)),
            (Table::WeatherObserved, None),
            (Table::DeadLetters, Some(10)),
        ];
        let mut parts = vec![partition(&t)];
        parts[0].last_seen = Some(1500);
        let commits = plan(&mut parts, LAZY, Instant::now()).unwrap();
        // parcel_records is ahead (2000 ≥ 1500); dead_letters lags 1490 ≥ 1000; weather lags 1501.
        let tables: Vec<Table> = commits.iter().map(|c| c.table).collect();
        assert_eq!(tables, vec![Table::WeatherObserved, Table::DeadLetters]);
        assert!(parts[0].needs(Table::WeatherObserved, 0));
        assert!(!parts[0].needs(Table::ParcelRecords, 2000));
        assert!(parts[0].needs(Table::ParcelRecords, 2001));
        assert_eq!(parts[0].restart_offset(), Some(0));
    }
}
