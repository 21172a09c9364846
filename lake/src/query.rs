//! A DataFusion session with every lake table registered under its name.

use crate::tables::LakeTable;
use arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;

use crate::{Error, Lake, Result};

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

    /// `SELECT count(*)` of a table.
    pub async fn count(&self, table: impl LakeTable) -> Result<u64> {
        self.ensure(table).await?;
        let batches = self
            .sql(&format!("SELECT count(*) AS n FROM {}", table.name()))
            .await?;
        let n = batches
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
            })
            .map_or(0, |a| a.value(0));
        Ok(n as u64)
    }
}
