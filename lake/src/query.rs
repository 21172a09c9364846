//! A DataFusion session with every lake table registered under its name.

use arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use vallee_schemas::contract::Table;

use crate::{Error, Lake, Result};

impl Lake {
    /// A session over the latest version of every table.
    pub async fn session(&self) -> Result<SessionContext> {
        let ctx = SessionContext::new();
        for table in Table::ALL {
            let mut delta = self.table(table).lock().await;
            delta.update_state().await.map_err(Error::delta(table))?;
            delta
                .update_datafusion_session(&ctx.state())
                .map_err(Error::delta(table))?;
            let provider = delta.table_provider().await?;
            ctx.register_table(table.name(), provider)?;
        }
        Ok(ctx)
    }

    /// Runs one SQL query over the lake and collects the result.
    pub async fn sql(&self, query: &str) -> Result<Vec<RecordBatch>> {
        let ctx = self.session().await?;
        Ok(ctx.sql(query).await?.collect().await?)
    }

    /// `SELECT count(*)` of a table.
    pub async fn count(&self, table: Table) -> Result<u64> {
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
