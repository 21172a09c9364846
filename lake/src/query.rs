//! A DataFusion session with every lake table registered under its name.

use arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
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
        if !self.exists(table.name()) {
            let empty = datafusion::datasource::MemTable::try_new(table.schema(), vec![vec![]])?;
            ctx.register_table(table.name(), std::sync::Arc::new(empty))?;
            return Ok((ctx, None));
        }
        let url = self.table_url(table);
        let name = table.name();
        let mut delta = deltalake::open_table(url)
            .await
            .map_err(Error::delta(name))?;
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
