//! Replacing a table's whole content in one commit: what the open-data publisher does to
//! the tables under `public/` (each a materialised view, small and aggregated).

use arrow::array::RecordBatch;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;

use crate::{Error, Lake, Result};

/// What a replaced table records of what it was computed from, as a Delta application
/// transaction `(app id, version)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp {
    /// A source version: the table is up to date when it records this one or a later one.
    AtLeast(String, i64),
    /// The fingerprint of a setting: up to date only when it records exactly this value
    /// (a setting can come back to an earlier value; versions only grow).
    Exactly(String, i64),
}

impl Stamp {
    fn transaction(&self) -> Transaction {
        match self {
            Stamp::AtLeast(app_id, version) | Stamp::Exactly(app_id, version) => {
                Transaction::new(app_id, *version)
            }
        }
    }
}

impl Lake {
    /// Overwrites table `name` (created on first use) with `batches`, in one commit that
    /// records every stamp. Does nothing and returns `None` when the table already holds
    /// every stamp.
    pub async fn replace(
        &self,
        name: &'static str,
        batches: Vec<RecordBatch>,
        stamps: &[Stamp],
    ) -> Result<Option<i64>> {
        let delta = crate::tables::open_folder(self.root(), name).await?;
        if delta.version().is_some() && self.up_to_date(&delta, name, stamps).await? {
            return Ok(None);
        }
        let transactions = stamps.iter().map(Stamp::transaction).collect();
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

    /// Whether table `name` holds every stamp (false when the table does not exist).
    pub async fn replaced_with(&self, name: &'static str, stamps: &[Stamp]) -> Result<bool> {
        let url = crate::tables::table_url(self.root(), name);
        let Ok(delta) = deltalake::open_table(url).await else {
            return Ok(false);
        };
        self.up_to_date(&delta, name, stamps).await
    }

    async fn up_to_date(
        &self,
        delta: &deltalake::DeltaTable,
        name: &str,
        stamps: &[Stamp],
    ) -> Result<bool> {
        for stamp in stamps {
            let (Stamp::AtLeast(app_id, _) | Stamp::Exactly(app_id, _)) = stamp;
            let stored = self.txn_versions.get(delta, name, app_id).await?;
            let holds = match (stamp, stored) {
                (Stamp::AtLeast(_, wanted), Some(v)) => v >= *wanted,
                (Stamp::Exactly(_, wanted), Some(v)) => v == *wanted,
                (_, None) => false,
            };
            if !holds {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
