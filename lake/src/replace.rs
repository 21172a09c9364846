//! Replacing a table's whole content in one commit: what the open-data publisher does to
//! the tables under `public/` (each a materialised view, small and aggregated).

use arrow::array::RecordBatch;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;

use crate::{Error, Lake, Result};

impl Lake {
    /// Overwrites table `name` (created on first use) with `batches`, in one commit that
    /// records each `(app_id, version)` stamp as a Delta application transaction: the
    /// version of the source the content was computed from, and anything else it depends
    /// on. Does nothing and returns `None` when the table already records every stamp at
    /// its version or a later one.
    pub async fn replace(
        &self,
        name: &'static str,
        batches: Vec<RecordBatch>,
        stamps: &[(String, i64)],
    ) -> Result<Option<i64>> {
        let delta = crate::tables::open_folder(self.root(), name).await?;
        if delta.version().is_some() && up_to_date(&delta, name, stamps).await? {
            return Ok(None);
        }
        let transactions = stamps
            .iter()
            .map(|(app_id, version)| Transaction::new(app_id, *version))
            .collect();
        let properties = CommitProperties::default().with_application_transactions(transactions);
        let written = delta
            .write(batches)
            .with_save_mode(SaveMode::Overwrite)
            .with_table_name(name)
            .with_commit_properties(properties)
            .await
            .map_err(Error::delta(name))?;
        Ok(written.version().map(|v| v as i64))
    }

    /// Whether table `name` records every stamp at its version or a later one (false when
    /// the table does not exist).
    pub async fn replaced_with(
        &self,
        name: &'static str,
        stamps: &[(String, i64)],
    ) -> Result<bool> {
        let url = crate::tables::table_url(self.root(), name);
        let Ok(delta) = deltalake::open_table(url).await else {
            return Ok(false);
        };
        up_to_date(&delta, name, stamps).await
    }
}

async fn up_to_date(
    delta: &deltalake::DeltaTable,
    name: &str,
    stamps: &[(String, i64)],
) -> Result<bool> {
    for (app_id, version) in stamps {
        let stored = crate::tables::stored_offset(delta, name, app_id).await?;
        if stored.is_none_or(|v| v < *version) {
            return Ok(false);
        }
    }
    Ok(true)
}
