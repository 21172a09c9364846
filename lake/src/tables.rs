//! Opening the lake, creating missing tables, reading stored offsets.

use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryFromArrow;
use tokio::sync::Mutex;
use url::Url;
use vallee_schemas::contract::Table;
use vallee_schemas::tables::LakeTable;

use crate::offsets::app_id;
use crate::options::Location;
use crate::{Error, LakeOptions, Result};

type Handle = Arc<Mutex<DeltaTable>>;

/// The lake: its open Delta tables, by name.
pub struct Lake {
    pub(crate) options: LakeOptions,
    root: Url,
    tables: Mutex<BTreeMap<&'static str, Handle>>,
    /// The offsets recorded in the tables, read once (see [`crate::txn_versions`]).
    pub(crate) txn_versions: crate::txn_versions::TxnVersions,
    /// Tables whose last commit was refused ([`crate::CommitFailure`]).
    pub(crate) failures: std::sync::Mutex<BTreeMap<&'static str, crate::CommitFailure>>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake")
            .field("root", &self.root.as_str())
            .finish()
    }
}

impl Lake {
    /// Opens the lake at `options.root`, creating the folder and any missing contract table.
    /// On object storage, first checks that the store refuses a second writer of one
    /// commit (see [`crate::object_storage`]).
    pub async fn open(options: LakeOptions) -> Result<Lake> {
        let lake = Lake::open_bare(options)?;
        if lake.root.to_file_path().is_err() {
            crate::object_storage::check_conditional_writes(&lake.root).await?;
        }
        for table in Table::ALL {
            lake.ensure(table).await?;
        }
        Ok(lake)
    }

    /// Opens a lake of other tables than the contract's (the public lake), creating only
    /// its folder.
    pub fn open_bare(options: LakeOptions) -> Result<Lake> {
        let root = match options.location()? {
            Location::Folder(folder) => {
                let location = |message: String| Error::Location {
                    location: folder.display().to_string(),
                    message,
                };
                std::fs::create_dir_all(&folder).map_err(|e| location(e.to_string()))?;
                let absolute =
                    std::fs::canonicalize(&folder).map_err(|e| location(e.to_string()))?;
                Url::from_directory_path(&absolute)
                    .map_err(|()| location("not an absolute path".into()))?
            }
            Location::ObjectStore(url) => {
                crate::object_storage::register(&options.storage)?;
                url
            }
        };
        Ok(Lake {
            options,
            root,
            tables: Mutex::new(BTreeMap::new()),
            txn_versions: Default::default(),
            failures: std::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// Whether a table exists under this lake's root (on object storage: its log holds a
    /// file; a store that cannot be listed counts as no table).
    pub async fn exists(&self, name: &str) -> bool {
        if self.root.to_file_path().is_ok() {
            return exists_at(&self.root, name);
        }
        crate::object_storage::has_log(&table_url(&self.root, name))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(table = name, error = %e, "cannot list the table's log");
                false
            })
    }

    /// A lake of other tables beside this one (the published copies): the folder `local`
    /// when this lake is on a disk, `<root>/_<name>/` with the same settings when it is in
    /// a bucket.
    pub fn beside(&self, name: &str, local: &std::path::Path) -> Result<Lake> {
        let url = match self.root.to_file_path() {
            Ok(_) => None,
            Err(()) => Some(
                self.root
                    .join(&format!("_{name}/"))
                    .map_err(|e| Error::Location {
                        location: self.root.to_string(),
                        message: e.to_string(),
                    })?
                    .to_string(),
            ),
        };
        Lake::open_bare(LakeOptions {
            root: local.to_path_buf(),
            url,
            storage: self.options.storage.clone(),
            ..Default::default()
        })
    }

    /// The lake's root URL.
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// URL of one table.
    pub fn table_url(&self, table: impl LakeTable) -> Url {
        table_url(&self.root, table.name())
    }

    /// The open table, created on first use when missing.
    pub(crate) async fn table(&self, table: impl LakeTable) -> Result<Handle> {
        let mut tables = self.tables.lock().await;
        if let Some(handle) = tables.get(table.name()) {
            return Ok(handle.clone());
        }
        let handle = Arc::new(Mutex::new(
            open_or_create(&self.root, table, &self.options).await?,
        ));
        tables.insert(table.name(), handle.clone());
        Ok(handle)
    }

    /// Opens a table, creating it when missing (the stream stage's outputs, for example).
    pub async fn ensure(&self, table: impl LakeTable) -> Result<()> {
        self.table(table).await.map(|_| ())
    }

    /// Every table opened so far, by name.
    pub(crate) async fn opened(&self) -> Vec<(&'static str, Handle)> {
        self.tables
            .lock()
            .await
            .iter()
            .map(|(n, h)| (*n, h.clone()))
            .collect()
    }

    /// The table at its latest version, locked.
    pub(crate) async fn refreshed(
        &self,
        table: impl LakeTable,
    ) -> Result<tokio::sync::OwnedMutexGuard<DeltaTable>> {
        let mut delta = self.table(table).await?.lock_owned().await;
        delta
            .update_state()
            .await
            .map_err(Error::delta(table.name()))?;
        Ok(delta)
    }

    /// The offsets `writer` has recorded in `table` for these partitions of `topic`, read
    /// from the table's latest version (`None`: nothing recorded yet).
    pub async fn committed_offsets(
        &self,
        table: impl LakeTable,
        writer: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, Option<i64>>> {
        let delta = self.refreshed(table).await?;
        let mut out = BTreeMap::new();
        for &p in partitions {
            out.insert(
                p,
                self.txn_versions
                    .get(
                        &delta,
                        table.name(),
                        &app_id(writer, table.name(), topic, p),
                    )
                    .await?,
            );
        }
        Ok(out)
    }

    /// The latest version of a table.
    pub async fn version(&self, table: impl LakeTable) -> Result<i64> {
        Ok(self
            .refreshed(table)
            .await?
            .version()
            .map_or(-1, |v| v as i64))
    }

    /// Number of data files in the latest version of a table.
    pub async fn file_count(&self, table: impl LakeTable) -> Result<usize> {
        let delta = self.refreshed(table).await?;
        Ok(delta
            .get_file_uris()
            .map_err(Error::delta(table.name()))?
            .count())
    }
}

/// Whether the table `name` exists under `root` (object stores: assumed).
pub(crate) fn exists_at(root: &Url, name: &str) -> bool {
    root.to_file_path()
        .map_or(true, |root| root.join(name).join("_delta_log").is_dir())
}

/// The table at `url` when it exists (`None`: no table there yet).
pub(crate) async fn open_existing(url: Url, name: &str) -> Result<Option<DeltaTable>> {
    match deltalake::open_table(url).await {
        Ok(delta) => Ok(Some(delta)),
        Err(deltalake::DeltaTableError::NotATable(_)) => Ok(None),
        Err(e) => Err(Error::delta(name)(e)),
    }
}

pub(crate) fn table_url(root: &Url, name: &str) -> Url {
    root.join(&format!("{name}/"))
        .expect("table names are valid URL segments")
}

/// The table `name` under `root`, its folder created, loaded when it exists (version
/// `None` when it does not yet).
pub(crate) async fn open_folder(root: &Url, name: &'static str) -> Result<DeltaTable> {
    let url = table_url(root, name);
    if let Ok(path) = url.to_file_path() {
        std::fs::create_dir_all(&path).map_err(|e| Error::Location {
            location: path.display().to_string(),
            message: e.to_string(),
        })?;
    }
    DeltaTable::try_from_url(url)
        .await
        .map_err(Error::delta(name))
}

async fn open_or_create(
    root: &Url,
    table: impl LakeTable,
    options: &LakeOptions,
) -> Result<DeltaTable> {
    let name = table.name();
    let delta = open_folder(root, name).await?;
    if delta.version().is_some() {
        return Ok(delta);
    }
    let schema =
        StructType::try_from_arrow(table.schema().as_ref()).map_err(|e| Error::Schema {
            table: name,
            message: e.to_string(),
        })?;
    let created = delta
        .create()
        .with_table_name(name)
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
            let mut again = DeltaTable::try_from_url(table_url(root, name))
                .await
                .map_err(Error::delta(name))?;
            again.load().await.map_err(Error::delta(name))?;
            Ok(again)
        }
    }
}
