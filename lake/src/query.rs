//! DataFusion sessions over the lake: every opened table ([`Lake::session`]), one table at
//! a point of its history ([`Lake::session_as_of`]), and read-only copies refreshed apart
//! from the writers ([`ReadOnlyTables`], what the API reads).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::DeltaTable;
use url::Url;
use vallee_schemas::tables::TableRow;
use vallee_schemas::tables::columns::Columns;

use crate::{Error, Lake, LakeTable, Result};

impl Lake {
    /// A session over the latest version of every table opened so far.
    pub async fn session(&self) -> Result<SessionContext> {
        let ctx = SessionContext::new();
        for (name, handle) in self.opened().await {
            let mut delta = handle.lock().await;
            delta.update_state().await.map_err(Error::delta(name))?;
            delta
                .update_datafusion_session(&ctx.state())
                .map_err(Error::delta(name))?;
            let provider = delta.table_provider().await?;
            ctx.register_table(name, provider)?;
        }
        Ok(ctx)
    }

    /// Runs one SQL query over the lake and collects the result.
    pub async fn sql(&self, query: &str) -> Result<Vec<RecordBatch>> {
        let ctx = self.session().await?;
        Ok(ctx.sql(query).await?.collect().await?)
    }

    /// Runs one SQL query over the lake and reads its rows as the contract's rows of a
    /// derived table (typically over a [`crate::Latest`]).
    pub async fn rows<R: TableRow>(&self, query: &str) -> Result<Vec<R>> {
        Ok(R::from_batches(&self.sql(query).await?)?)
    }

    /// `SELECT count(*)` of a table.
    pub async fn count(&self, table: impl LakeTable) -> Result<u64> {
        self.ensure(table).await?;
        let batches = self
            .sql(&format!("SELECT count(*) AS n FROM {}", table.name()))
            .await?;
        let n = match batches.first() {
            Some(b) => Columns::of_batch(table.name(), b).ints("n")?.take(0),
            None => None,
        };
        Ok(n.unwrap_or(0) as u64)
    }
}

/// A point in a table's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    Latest,
    /// A Delta version.
    Version(i64),
    /// The version current at this time.
    Time(chrono::DateTime<chrono::Utc>),
}

impl Lake {
    /// A session with one table registered (under its name) as it was at `as_of`, and the
    /// Delta version read (`None`: the table does not exist yet; it is registered empty,
    /// with its schema, so queries over it answer no rows rather than fail).
    pub async fn session_as_of(
        &self,
        table: impl LakeTable,
        as_of: AsOf,
    ) -> Result<(SessionContext, Option<i64>)> {
        let ctx = SessionContext::new();
        if !self.exists(table.name()).await {
            let empty = datafusion::datasource::MemTable::try_new(table.schema(), vec![vec![]])?;
            ctx.register_table(table.name(), std::sync::Arc::new(empty))?;
            return Ok((ctx, None));
        }
        let url = self.table_url(table);
        let name = table.name();
        let Some(mut delta) = crate::tables::open_existing(url, name).await? else {
            let empty = datafusion::datasource::MemTable::try_new(table.schema(), vec![vec![]])?;
            ctx.register_table(table.name(), std::sync::Arc::new(empty))?;
            return Ok((ctx, None));
        };
        match as_of {
            AsOf::Latest => {}
            AsOf::Version(v) => delta
                .load_version(v as _)
                .await
                .map_err(Error::delta(name))?,
            AsOf::Time(t) => delta
                .load_with_datetime(t)
                .await
                .map_err(Error::delta(name))?,
        }
        let version = delta.version().map(|v| v as i64);
        delta
            .update_datafusion_session(&ctx.state())
            .map_err(Error::delta(name))?;
        ctx.register_table(name, delta.table_provider().await?)?;
        Ok((ctx, version))
    }
}

impl Lake {
    /// A session over the tables of this lake that exist, each registered under the SQL
    /// name given (`(folder, sql name)` pairs); missing ones are left out.
    pub async fn session_of_existing(&self, tables: &[(&str, String)]) -> Result<SessionContext> {
        let ctx = SessionContext::new();
        self.register_existing(&ctx, tables).await?;
        Ok(ctx)
    }

    /// Registers in `ctx` the tables of this lake that exist, as
    /// [`Lake::session_of_existing`] does.
    pub async fn register_existing(
        &self,
        ctx: &SessionContext,
        tables: &[(&str, String)],
    ) -> Result<()> {
        for (folder, sql_name) in tables {
            let url = crate::tables::table_url(self.root(), folder);
            let Ok(delta) = deltalake::open_table(url).await else {
                continue;
            };
            delta
                .update_datafusion_session(&ctx.state())
                .map_err(Error::delta("public table"))?;
            ctx.register_table(sql_name.as_str(), delta.table_provider().await?)?;
        }
        Ok(())
    }
}

/// Read-only copies of some tables of a lake, opened apart from the handles writers commit
/// through ([`Lake::append`] locks those): refreshing or reading the copies never waits
/// for a commit, and never delays one. Each [`ReadOnlyTables::refresh`] brings every copy
/// to its table's latest version (reading only the new log entries) and returns the
/// tables as they then are, which any number of queries can read at once.
pub struct ReadOnlyTables {
    root: Url,
    runtime: Arc<RuntimeEnv>,
    config: SessionConfig,
    tables: Vec<ReadOnlyTable>,
}

struct ReadOnlyTable {
    name: &'static str,
    schema: SchemaRef,
    /// `None` until the table exists.
    delta: Option<DeltaTable>,
}

impl std::fmt::Debug for ReadOnlyTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tables.iter().map(|t| t.name).collect();
        f.debug_struct("ReadOnlyTables")
            .field("root", &self.root.as_str())
            .field("tables", &names)
            .finish()
    }
}

/// The tables as one refresh saw them: cheap to clone, a fresh session per query.
#[derive(Clone)]
pub struct TablesAt {
    runtime: Arc<RuntimeEnv>,
    config: SessionConfig,
    providers: Arc<Vec<(&'static str, Arc<dyn TableProvider>)>>,
}

impl std::fmt::Debug for TablesAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.providers.iter().map(|(n, _)| *n).collect();
        f.debug_struct("TablesAt").field("tables", &names).finish()
    }
}

impl Lake {
    /// Read-only copies of no table yet: add them with [`ReadOnlyTables::with`].
    pub fn read_only(&self) -> ReadOnlyTables {
        ReadOnlyTables {
            root: self.root().clone(),
            runtime: Arc::new(RuntimeEnv::default()),
            config: SessionConfig::new(),
            tables: Vec::new(),
        }
    }
}

impl ReadOnlyTables {
    /// Adds a table (registered empty, with its schema, until it exists).
    pub fn with(mut self, table: impl LakeTable) -> Self {
        self.tables.push(ReadOnlyTable {
            name: table.name(),
            schema: table.schema(),
            delta: None,
        });
        self
    }

    /// The runtime (memory pool, object stores) and configuration of the sessions.
    pub fn with_runtime(self, runtime: Arc<RuntimeEnv>, config: SessionConfig) -> Self {
        ReadOnlyTables {
            runtime,
            config,
            ..self
        }
    }

    /// Brings every copy to its table's latest version; the tables as they now are.
    pub async fn refresh(&mut self) -> Result<TablesAt> {
        // Object stores are registered in the runtime every session shares.
        let probe = SessionContext::new_with_config_rt(self.config.clone(), self.runtime.clone());
        let mut providers = Vec::with_capacity(self.tables.len());
        for t in &mut self.tables {
            let name = t.name;
            match &mut t.delta {
                Some(delta) => delta.update_state().await.map_err(Error::delta(name))?,
                None if crate::tables::exists_at(&self.root, name) => {
                    let url = crate::tables::table_url(&self.root, name);
                    t.delta = crate::tables::open_existing(url, name).await?;
                }
                None => {}
            }
            let provider: Arc<dyn TableProvider> = match &t.delta {
                Some(delta) => {
                    delta
                        .update_datafusion_session(&probe.state())
                        .map_err(Error::delta(name))?;
                    delta.table_provider().await?
                }
                None => Arc::new(datafusion::datasource::MemTable::try_new(
                    t.schema.clone(),
                    vec![vec![]],
                )?),
            };
            providers.push((name, provider));
        }
        Ok(TablesAt {
            runtime: self.runtime.clone(),
            config: self.config.clone(),
            providers: Arc::new(providers),
        })
    }
}

impl TablesAt {
    /// A session with every table registered under its name.
    pub fn session(&self) -> Result<SessionContext> {
        let ctx = SessionContext::new_with_config_rt(self.config.clone(), self.runtime.clone());
        for (name, provider) in self.providers.iter() {
            ctx.register_table(*name, provider.clone())?;
        }
        Ok(ctx)
    }

    /// Runs one SQL query over the tables and collects the result.
    pub async fn sql(&self, query: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.session()?.sql(query).await?.collect().await?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use arrow::array::{Array, Int64Array};
    use vallee_schemas::tables::OutputTable;

    use super::*;
    use crate::testing::footfall_batch;

    async fn count(tables: &TablesAt) -> i64 {
        let batches = tables.sql("SELECT count(*) FROM footfall").await.unwrap();
        let n = batches[0].column(0).as_any().downcast_ref::<Int64Array>();
        n.unwrap().value(0)
    }

    #[tokio::test]
    async fn read_only_copies_follow_their_tables_without_waiting_for_the_writers() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open_bare(crate::LakeOptions {
            root: dir.path().to_path_buf(),
            ..Default::default()
        })
        .unwrap();
        let mut copies = lake.read_only().with(OutputTable::Footfall);
        let before = copies.refresh().await.unwrap();
        assert_eq!(count(&before).await, 0, "not created yet: empty");
        lake.append(
            OutputTable::Footfall,
            "test",
            vec![footfall_batch("za", 3)],
            &[],
        )
        .await
        .unwrap();
        let first = copies.refresh().await.unwrap();
        assert_eq!(count(&first).await, 1);
        lake.append(
            OutputTable::Footfall,
            "test",
            vec![footfall_batch("za", 4)],
            &[],
        )
        .await
        .unwrap();
        assert_eq!(
            count(&first).await,
            1,
            "a refresh's tables stay as they were"
        );
        // A writer holding the table (a commit under way) holds neither a refresh nor a
        // read back.
        let handle = lake.table(OutputTable::Footfall).await.unwrap();
        let writing = handle.lock().await;
        let second = tokio::time::timeout(Duration::from_secs(10), copies.refresh())
            .await
            .expect("a refresh does not wait for the writer")
            .unwrap();
        assert_eq!(count(&second).await, 2);
        drop(writing);
    }
}
