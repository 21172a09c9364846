//! The exactly-once append: data and source progress in one Delta commit.
//!
//! A commit the lake refuses for another reason than a fence (the disk full, storage
//! unreachable, permissions) is recorded on the [`Lake`] until the same table commits
//! again: `/readyz` and the metrics of every process that writes read it from there
//! ([`Lake::commit_failures`]). The stages commit with [`Lake::append_retrying`], which
//! waits and tries again until the lake accepts, so nothing read is dropped and nothing
//! stops: the rows wait in the stage, their offsets uncommitted, until space returns.

use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};

use crate::LakeTable;
use crate::offsets::{Progress, app_id};
use crate::{CommitFailure, Error, Lake, Result};

/// What one append committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The table version the commit created.
    pub version: i64,
    /// Rows it added.
    pub rows: usize,
}

/// The first wait after a refused commit; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(200);
/// The longest wait between two tries: a lake that comes back is used within this.
const RETRY_MAX: Duration = Duration::from_secs(5);

impl Lake {
    /// Tables whose last commit was refused (not fenced), oldest refusal first.
    pub fn commit_failures(&self) -> Vec<CommitFailure> {
        let mut failures: Vec<CommitFailure> = self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        failures.sort_by_key(|f| f.since);
        failures
    }

    fn record_outcome(&self, table: &'static str, outcome: &Result<Committed>) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Err(e) if !e.is_fenced() => {
                let failure = failures.entry(table).or_insert_with(|| CommitFailure {
                    table,
                    since: Instant::now(),
                    attempts: 0,
                    error: String::new(),
                });
                failure.attempts += 1;
                failure.error = e.to_string();
            }
            _ => {
                failures.remove(table);
            }
        }
    }

    /// [`Lake::append`], tried again with back-off (up to 5 s apart) until the lake accepts
    /// it, the writer is fenced, or `stop` is cancelled (the last error is returned then).
    pub async fn append_retrying(
        &self,
        table: impl LakeTable,
        writer: &str,
        batches: &[RecordBatch],
        progress: &[Progress],
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<Committed> {
        let mut wait = RETRY_FIRST;
        loop {
            match self.append(table, writer, batches.to_vec(), progress).await {
                Err(e) if !e.is_fenced() && !stop.is_cancelled() => {
                    tracing::warn!(table = table.name(), error = %e, retry_in = ?wait, "the lake refused a commit; trying again until it accepts");
                    tokio::select! {
                        () = stop.cancelled() => return Err(e),
                        () = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(RETRY_MAX);
                }
                outcome => return outcome,
            }
        }
    }

    /// Appends `batches` (possibly none: a progress-only commit) to `table`, recording
    /// `progress` for `writer` in the same commit.
    ///
    /// Refuses with [`Error::Fenced`], writing nothing, when any partition's stored offset
    /// differs from its `previous`; a concurrent commit of the same partitions fails the
    /// commit with a conflict ([`Error::is_fenced`] is true for both).
    pub async fn append(
        &self,
        table: impl LakeTable,
        writer: &str,
        batches: Vec<RecordBatch>,
        progress: &[Progress],
    ) -> Result<Committed> {
        let outcome = self.append_once(table, batches, writer, progress).await;
        self.record_outcome(table.name(), &outcome);
        outcome
    }

    async fn append_once(
        &self,
        table: impl LakeTable,
        batches: Vec<RecordBatch>,
        writer: &str,
        progress: &[Progress],
    ) -> Result<Committed> {
        let name = table.name();
        let mut delta = self.refreshed(table).await?;
        let mut txns = Vec::with_capacity(progress.len());
        for p in progress {
            let id = app_id(writer, name, &p.topic, p.partition);
            let found = self.txn_versions.get(&delta, name, &id).await?;
            if found != p.previous {
                return Err(Error::Fenced {
                    table: name,
                    app_id: id,
                    expected: p.previous,
                    found,
                });
            }
            txns.push(Transaction::new(id, p.last));
        }
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        let properties = CommitProperties::default().with_application_transactions(txns);
        let mut batch_writer = RecordBatchWriter::for_table(&delta)
            .map_err(Error::delta(name))?
            .with_target_file_size(self.options.target_file_size)
            .with_commit_properties(properties);
        for batch in batches.into_iter().filter(|b| b.num_rows() > 0) {
            batch_writer
                .write(batch)
                .await
                .map_err(Error::delta(name))?;
        }
        let version = batch_writer
            .flush_and_commit(&mut delta)
            .await
            .map_err(Error::delta(name))?;
        tracing::debug!(table = name, version, rows, "committed");
        Ok(Committed {
            version: version as i64,
            rows,
        })
    }
}
