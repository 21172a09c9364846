//! Opening the lake, creating missing tables, reading stored offsets.

use std::collections::BTreeMap;

use deltalake::DeltaTable;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryFromArrow;
use tokio::sync::Mutex;
use url::Url;
use vallee_schemas::contract::Table;

use crate::offsets::app_id;
use crate::{Error, LakeOptions, Result};

/// The lake: one open Delta table per contract table.
pub struct Lake {
    pub(crate) options: LakeOptions,
    root: Url,
    pub(crate) tables: BTreeMap<Table, Mutex<DeltaTable>>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake")
            .field("root", &self.root.as_str())
            .finish()
    }
}

impl Lake {
    /// Opens the lake at `options.root`, creating the folder and any missing table.
    pub async fn open(options: LakeOptions) -> Result<Lake> {
        let location = |message: String| Error::Location {
            location: options.root.display().to_string(),
            message,
        };
        std::fs::create_dir_all(&options.root).map_err(|e| location(e.to_string()))?;
        let absolute = std::fs::canonicalize(&options.root).map_err(|e| location(e.to_string()))?;
        let root = Url::from_directory_path(&absolute)
            .map_err(|()| location("not an absolute path".into()))?;
        let mut tables = BTreeMap::new();
        for table in Table::ALL {
            let delta = open_or_create(&root, table, &options).await?;
            tables.insert(table, Mutex::new(delta));
        }
        Ok(Lake {
            options,
            root,
            tables,
        })
    }

    /// The lake's root URL.
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// URL of one table.
    pub fn table_url(&self, table: Table) -> Url {
        table_url(&self.root, table)
    }

    pub(crate) fn table(&self, table: Table) -> &Mutex<DeltaTable> {
        self.tables
            .get(&table)
            .expect("every contract table is opened")
    }

    /// The offsets `writer` has recorded in `table` for these partitions of `topic`, read
    /// from the table's latest version (`None`: nothing recorded yet).
    pub async fn committed_offsets(
        &self,
        table: Table,
        writer: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, Option<i64>>> {
        let mut delta = self.table(table).lock().await;
        delta.update_state().await.map_err(Error::delta(table))?;
        let mut out = BTreeMap::new();
        for &p in partitions {
            out.insert(
                p,
                stored_offset(&delta, table, &app_id(writer, table.name(), topic, p)).await?,
            );
        }
        Ok(out)
    }

    /// The latest version of a table.
    pub async fn version(&self, table: Table) -> Result<i64> {
        let mut delta = self.table(table).lock().await;
        delta.update_state().await.map_err(Error::delta(table))?;
        Ok(delta.version().map_or(-1, |v| v as i64))
    }

    /// Number of data files in the latest version of a table.
    pub async fn file_count(&self, table: Table) -> Result<usize> {
        let mut delta = self.table(table).lock().await;
        delta.update_state().await.map_err(Error::delta(table))?;
        Ok(delta.get_file_uris().map_err(Error::delta(table))?.count())
    }
}

pub(crate) async fn stored_offset(
    delta: &DeltaTable,
    table: Table,
    app_id: &str,
) -> Result<Option<i64>> {
    let snapshot = delta.snapshot().map_err(Error::delta(table))?;
    snapshot
        .transaction_version(delta.log_store().as_ref(), app_id)
        .await
        .map_err(Error::delta(table))
}

pub(crate) fn table_url(root: &Url, table: Table) -> Url {
    root.join(&format!("{}/", table.name()))
        .expect("table names are valid URL segments")
}

async fn open_or_create(root: &Url, table: Table, options: &LakeOptions) -> Result<DeltaTable> {
    let url = table_url(root, table);
    if let Ok(path) = url.to_file_path() {
        std::fs::create_dir_all(&path).map_err(|e| Error::Location {
            location: path.display().to_string(),
            message: e.to_string(),
        })?;
    }
    let delta = DeltaTable::try_from_url(url)
        .await
        .map_err(Error::delta(table))?;
    if delta.version().is_some() {
        return Ok(delta);
    }
    let schema =
        StructType::try_from_arrow(table.schema().as_ref()).map_err(|e| Error::Schema {
            table,
            message: e.to_string(),
        })?;
    let created = delta
        .create()
        .with_table_name(table.name())
        .with_comment(table.description())
        .with_columns(schema.fields().cloned())
        .with_partition_columns(table.partition_columns().iter().copied())
        .with_configuration_property(
            deltalake::TableProperty::CheckpointInterval,
            Some(options.checkpoint_interval.to_string()),
        )
        .await;
    match created {
        Ok(t) => Ok(t),
        // Two processes starting together may both create it: the loser opens the winner's.
        Err(_) => {
            let mut again = DeltaTable::try_from_url(table_url(root, table))
                .await
                .map_err(Error::delta(table))?;
            again.load().await.map_err(Error::delta(table))?;
            Ok(again)
        }
    }
}
