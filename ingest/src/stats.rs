//! Counters of the ingest stage, shared with whoever reports them (metrics endpoint,
//! benchmarks, tests). Plain atomics: the hot path only increments.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use vallee_kafka::SharedHealth;
use vallee_schemas::contract::Table;
use vallee_schemas::decode::Reason;

/// What ingest has done since it started.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Messages polled and processed (data or dead letter), skipped ones included.
    pub messages: AtomicU64,
    /// Messages skipped because the target table already held them (replay after a restart).
    pub skipped: AtomicU64,
    /// Rows committed, per table (index of [`Table::ALL`]).
    pub rows_committed: [AtomicU64; Table::ALL.len()],
    /// Dead letters committed, per reason (index of [`Reason::ALL`]).
    pub dead_letters: [AtomicU64; Reason::ALL.len()],
    /// Delta commits made.
    pub commits: AtomicU64,
    /// Total commit time, microseconds (with `commits`: the mean commit latency).
    pub commit_micros: AtomicU64,
    /// Time ingest's thread spent waiting for a commit to land before reading on,
    /// microseconds (its buffers were full, or a rebalance or shutdown was due).
    pub commit_wait_micros: AtomicU64,
    /// Commits refused because another writer owned the partition.
    pub fenced: AtomicU64,
    /// Rebalances seen (assignments).
    pub rebalances: AtomicU64,
    /// Fresh consumers started because partitions stopped flowing (a stall, or no
    /// partition at all from the group).
    pub recoveries: AtomicU64,
    /// Each partition's lag and stall, sampled every few seconds by ingest's probe.
    pub health: SharedHealth,
    /// When set, every committed row adds a freshness sample (benchmarks only).
    pub record_freshness: AtomicBool,
    /// Produce → visible-in-the-lake delay of committed rows, milliseconds: Kafka timestamp
    /// (set by the producer at send) to the end of the commit that holds the row.
    pub freshness_ms: Mutex<Vec<u32>>,
}

impl IngestStats {
    pub fn rows(&self, table: Table) -> u64 {
        let i = Table::ALL
            .iter()
            .position(|t| *t == table)
            .expect("contract table");
        self.rows_committed[i].load(Ordering::Relaxed)
    }

    pub(crate) fn add_rows(&self, table: Table, n: u64) {
        let i = Table::ALL
            .iter()
            .position(|t| *t == table)
            .expect("contract table");
        self.rows_committed[i].fetch_add(n, Ordering::Relaxed);
    }

    pub fn dead_letters(&self, reason: Reason) -> u64 {
        let i = Reason::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("reason");
        self.dead_letters[i].load(Ordering::Relaxed)
    }

    pub(crate) fn add_dead_letters(&self, reason: Reason, n: u64) {
        let i = Reason::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("reason");
        self.dead_letters[i].fetch_add(n, Ordering::Relaxed);
    }

    /// Rows committed over every table (dead letters included).
    pub fn total_rows(&self) -> u64 {
        self.rows_committed
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum()
    }
}
