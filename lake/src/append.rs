//! The exactly-once append: data and source progress in one Delta commit.

use arrow::array::RecordBatch;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};

use crate::LakeTable;
use crate::offsets::{Progress, app_id};
use crate::tables::stored_offset;
use crate::{Error, Lake, Result};

/// What one append committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The table version the commit created.
    pub version: i64,
    /// Rows it added.
    pub rows: usize,
}

impl Lake {
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
        let name = table.name();
        let mut delta = self.refreshed(table).await?;
        let mut txns = Vec::with_capacity(progress.len());
        for p in progress {
            let id = app_id(writer, name, &p.topic, p.partition);
            let found = stored_offset(&delta, name, &id).await?;
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
