//! Replacing a table's whole content in one commit: what the open-data publisher does to
//! the tables under `public/` (each a materialised view, small and aggregated).

use arrow::array::RecordBatch;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;

use crate::{Error, Lake, Result};

impl Lake {
    /// Overwrites table `name` (created on first use) with `batches`, in one commit that
    /// records `(app_id, source_version)` as a Delta application transaction — the version
    /// of the source the content was computed from. Does nothing and returns `None` when
    /// the table already records `source_version` or a later one.
    pub async fn replace(
        &self,
        name: &'static str,
        batches: Vec<RecordBatch>,
        app_id: &str,
        source_version: i64,
    ) -> Result<Option<i64>> {
        let delta = crate::tables::open_folder(self.root(), name).await?;
        if delta.version().is_some() {
            let stored = crate::tables::stored_offset(&delta, name, app_id).await?;
            if stored.is_some_and(|v| v >= source_version) {
                return Ok(None);
            }
        }
        let properties = CommitProperties::default()
            .with_application_transactions(vec![Transaction::new(app_id, source_version)]);
        let written = delta
            .write(batches)
            .with_save_mode(SaveMode::Overwrite)
            .with_table_name(name)
            .with_commit_properties(properties)
            .await
            .map_err(Error::delta(name))?;
        Ok(written.version().map(|v| v as i64))
    }

    /// The source version a replaced table was computed from (`None`: never written).
    pub async fn replaced_from(&self, name: &'static str, app_id: &str) -> Result<Option<i64>> {
        let url = crate::tables::table_url(self.root(), name);
        let Ok(delta) = deltalake::open_table(url).await else {
            return Ok(None);
        };
        crate::tables::stored_offset(&delta, name, app_id).await
    }
}
