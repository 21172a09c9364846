//! Lake upkeep: compaction of small files, vacuum of files no version needs any more, and
//! checkpoints. Ingest commits every second or so, which leaves many small files; readers
//! (and the `asOf` downloads) pay for each one.
//!
//! None of these touch the application transactions (the Kafka offsets each table
//! records): compaction rewrites data files without changing a row, in a commit that keeps
//! every `txn`; vacuum removes only files that no version within the retention refers to.

use std::num::NonZeroU64;

use deltalake::operations::optimize::OptimizeType;

use crate::{Error, Lake, LakeTable, Result};

/// What compaction did to one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    pub files_before: usize,
    pub files_after: usize,
}

impl Lake {
    /// Rewrites small files into files of about the lake's target size. A table with one
    /// file or none is left alone (no empty commit).
    pub async fn optimize(&self, table: impl LakeTable) -> Result<Compacted> {
        let name = table.name();
        let files_before = self.file_count(table).await?;
        if files_before > 1 {
            let mut handle = self.refreshed(table).await?;
            let target = NonZeroU64::new(self.options.target_file_size).unwrap_or(NonZeroU64::MIN);
            let (optimized, _) = handle
                .clone()
                .optimize()
                .with_type(OptimizeType::Compact)
                .with_target_size(target)
                .await
                .map_err(Error::delta(name))?;
            *handle = optimized;
        }
        Ok(Compacted {
            files_before,
            files_after: self.file_count(table).await?,
        })
    }

    /// Deletes the files no version younger than `retention` refers to; returns how many.
    /// Time travel (`asOf`) keeps working over the retention.
    pub async fn vacuum(
        &self,
        table: impl LakeTable,
        retention: chrono::Duration,
    ) -> Result<usize> {
        let name = table.name();
        let before = self.data_files_on_disk(name);
        let mut handle = self.refreshed(table).await?;
        let (vacuumed, metrics) = handle
            .clone()
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .await
            .map_err(Error::delta(name))?;
        *handle = vacuumed;
        // delta-rs lists every expired removal it tried, including files an earlier vacuum
        // already deleted: on a local lake, count the files that really went (others may
        // be written meanwhile; only vacuum deletes).
        Ok(match (before, self.data_files_on_disk(name)) {
            (Some(before), Some(after)) => before.difference(&after).count(),
            _ => metrics.files_deleted.len(),
        })
    }

    /// Data files of table `name` on a local lake (its log left out); `None` elsewhere.
    fn data_files_on_disk(
        &self,
        name: &str,
    ) -> Option<std::collections::HashSet<std::path::PathBuf>> {
        fn walk(dir: &std::path::Path, out: &mut std::collections::HashSet<std::path::PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let Ok(kind) = e.file_type() else { continue };
                let path = e.path();
                if kind.is_dir() && e.file_name() != "_delta_log" {
                    walk(&path, out);
                } else if kind.is_file() && path.extension().is_some_and(|x| x == "parquet") {
                    out.insert(path);
                }
            }
        }
        let root = self.root().to_file_path().ok()?;
        let mut files = std::collections::HashSet::new();
        walk(&root.join(name), &mut files);
        Some(files)
    }

    /// Writes a checkpoint of the latest version; returns that version.
    pub async fn checkpoint(&self, table: impl LakeTable) -> Result<i64> {
        let name = table.name();
        let handle = self.refreshed(table).await?;
        deltalake::checkpoints::create_checkpoint(&handle, None)
            .await
            .map_err(Error::delta(name))?;
        Ok(handle.version().map_or(-1, |v| v as i64))
    }

    /// Forgets the table's history: a checkpoint of the latest version, then every commit
    /// before it deleted; returns how many log files went. A vacuum deletes the files of
    /// earlier versions, but their commits keep the column statistics of those files
    /// (each column's least and greatest value): text that must leave the table (an
    /// erased idea's title, a withdrawn share) must leave its log as well. Time travel
    /// before the checkpoint is gone with them.
    pub async fn forget_history(&self, table: impl LakeTable) -> Result<usize> {
        let name = table.name();
        let handle = self.refreshed(table).await?;
        let Some(version) = handle.version() else {
            return Ok(0);
        };
        deltalake::checkpoints::create_checkpoint(&handle, None)
            .await
            .map_err(Error::delta(name))?;
        // Every commit before the checkpoint, however recent.
        let cutoff = chrono::Utc::now().timestamp_millis() + 1_000;
        deltalake::checkpoints::cleanup_expired_logs_for(
            version,
            handle.log_store().as_ref(),
            cutoff,
            None,
        )
        .await
        .map_err(Error::delta(name))
    }
}

/// A table known by its folder name only, for upkeep of tables that exist already (the
/// public lake's). Never use it to create a table: its schema is empty.
#[derive(Debug, Clone, Copy)]
pub struct ExistingTable(pub &'static str);

impl LakeTable for ExistingTable {
    fn name(&self) -> &'static str {
        self.0
    }
    fn schema(&self) -> arrow::datatypes::SchemaRef {
        std::sync::Arc::new(arrow::datatypes::Schema::empty())
    }
    fn partition_columns(&self) -> &'static [&'static str] {
        &[]
    }
    fn description(&self) -> &'static str {
        ""
    }
    fn sources(&self) -> &'static [vallee_schemas::contract::Stream] {
        &[]
    }
    fn keys(&self) -> &'static [&'static str] {
        &[]
    }
    fn latest_order(&self) -> &'static [vallee_schemas::tables::Order] {
        &[]
    }
}
