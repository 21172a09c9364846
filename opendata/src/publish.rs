//! The public lake: every dataset also maintained as a Delta table under
//! `<data-dir>/public/<id>`, privacy rules applied (it is the view, materialised), readable
//! as it is by Python `deltalake`, Polars, DuckDB and Spark, and queried by researchers
//! (`POST /sql`). Each table is replaced in one commit whenever its source table moved;
//! the commit records the source version (application transaction
//! `vallee-publish/<id>`), the same version the downloads name.

use std::sync::Arc;

use arrow::array::RecordBatch;
use futures::TryStreamExt;
use vallee_lake::Lake;

use crate::{AsOf, DATASETS, Dataset, Filter, OpenData, Result};

/// App id of the publisher's commits on `public/<id>`.
pub fn app_id(ds: &Dataset) -> String {
    format!("vallee-publish/{}", ds.id)
}

/// SQL name of a public table (dashes are not SQL identifiers).
pub fn sql_name(ds: &Dataset) -> String {
    ds.id.replace('-', "_")
}

/// Publishes datasets into the public lake.
#[derive(Debug, Clone)]
pub struct PublicLake {
    open_data: OpenData,
    public: Arc<Lake>,
}

impl PublicLake {
    pub fn new(open_data: OpenData, public: Arc<Lake>) -> Self {
        PublicLake { open_data, public }
    }

    pub fn lake(&self) -> &Arc<Lake> {
        &self.public
    }

    /// Brings every public table up to its source's current version; returns the
    /// datasets rewritten with the source version each now holds.
    pub async fn publish(&self) -> Result<Vec<(&'static str, i64)>> {
        let mut done = Vec::new();
        for ds in DATASETS {
            let (version, stream) = self
                .open_data
                .stream(ds, &Filter::default(), AsOf::Latest)
                .await?;
            let Some(version) = version else { continue };
            if self
                .public
                .replaced_from(ds.id, &app_id(ds))
                .await?
                .is_some_and(|v| v >= version)
            {
                continue;
            }
            let schema = crate::export::plain_schema(&stream.schema());
            let mut batches: Vec<RecordBatch> = stream
                .map_err(crate::Error::from)
                .and_then(|b| async move { crate::export::plain(&b) })
                .try_collect()
                .await?;
            batches.retain(|b| b.num_rows() > 0);
            if batches.is_empty() {
                batches.push(RecordBatch::new_empty(schema));
            }
            if self
                .public
                .replace(ds.id, batches, &app_id(ds), version)
                .await?
                .is_some()
            {
                done.push((ds.id, version));
            }
        }
        Ok(done)
    }

    /// A session where only the public tables exist, under their SQL names, with the
    /// hub's domain formulas as functions (`vallee_gdd`, `vallee_huglin_day`, …).
    pub async fn session(&self) -> Result<datafusion::prelude::SessionContext> {
        let tables: Vec<(&str, String)> = DATASETS.iter().map(|d| (d.id, sql_name(d))).collect();
        let ctx = self.public.session_of_existing(&tables).await?;
        vallee_stream::udf::register_formulas(&ctx);
        Ok(ctx)
    }
}
