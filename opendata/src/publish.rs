//! The public lake: every dataset also maintained as a Delta table under
//! `<data-dir>/public/<id>`, privacy rules applied (it is the view, materialised), readable
//! as it is by Python `deltalake`, Polars, DuckDB and Spark, and queried by researchers
//! (`POST /sql`). Each table is replaced in one commit whenever its source table moved;
//! the commit records the source version (application transaction
//! `vallee-publish/<id>`), the same version the downloads name.
//!
//! The same publisher, for researchers, maintains `<data-dir>/research/<id>`: the
//! datasets whose content depends on the audience (the parcels partners shared with
//! researchers), which `POST /sql` serves in place of their public version. A table that
//! depends on the sharing settings also records their fingerprint (application
//! transaction `vallee-sharing`, its version the fingerprint's bits), so a changed setting
//! rewrites it even when its source did not move; and since a withdrawn share must not
//! linger in the table's history either, that rewrite is followed by a vacuum without
//! retention and the log's earlier commits are deleted (their column statistics hold
//! values too; the `asOf` downloads recompute from the lake and are not affected). A table
//! that publishes what people wrote (ideas' titles) records the number of erased texts
//! the same way (`vallee-erasures`): an erasure rewrites it and vacuums its history,
//! while the lake's own copies are sealed and became unreadable with the key.

use std::sync::Arc;

use arrow::array::RecordBatch;
use futures::TryStreamExt;
use vallee_lake::Lake;

use crate::sharing::Audience;
use crate::{AsOf, DATASETS, Dataset, Filter, OpenData, Result};
use vallee_lake::replace::Stamp;
use vallee_lake::upkeep::ExistingTable;

/// App id of the publisher's commits on `public/<id>`.
pub fn app_id(ds: &Dataset) -> String {
    format!("vallee-publish/{}", ds.id)
}

/// SQL name of a public table (dashes are not SQL identifiers).
pub fn sql_name(ds: &Dataset) -> String {
    ds.id.replace('-', "_")
}

/// Publishes datasets into the public lake (or, for researchers, the research lake).
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

    pub fn audience(&self) -> Audience {
        self.open_data.audience()
    }

    /// The datasets this lake holds: all of them for the public; for researchers, those
    /// whose content differs from the public's.
    pub fn datasets(&self) -> impl Iterator<Item = &'static Dataset> + use<> {
        let everything = self.open_data.audience() == Audience::Public;
        DATASETS
            .iter()
            .filter(move |d| everything || d.uses_sharing)
    }

    /// What a table computed from `version` of its source records: that version, and for
    /// a table reading the sharing settings, their fingerprint.
    fn stamps(&self, ds: &Dataset, version: i64) -> Vec<Stamp> {
        let mut stamps = vec![Stamp::AtLeast(app_id(ds), version)];
        if ds.uses_sharing {
            let fingerprint = self
                .open_data
                .sharing()
                .fingerprint(self.open_data.audience());
            stamps.push(Stamp::Exactly(
                "vallee-sharing".into(),
                i64::from_ne_bytes(fingerprint.to_ne_bytes()),
            ));
        }
        if ds.opens_texts() {
            let erased = self.open_data.texts().erased_count();
            stamps.push(Stamp::Exactly("vallee-erasures".into(), erased as i64));
        }
        stamps
    }

    /// Brings every table up to its source's current version (and sharing settings);
    /// returns the datasets rewritten with the source version each now holds.
    pub async fn publish(&self) -> Result<Vec<(&'static str, i64)>> {
        let mut done = Vec::new();
        for ds in self.datasets() {
            let (version, stream) = self
                .open_data
                .stream(ds, &Filter::default(), AsOf::Latest)
                .await?;
            let Some(version) = version else { continue };
            let stamps = self.stamps(ds, version);
            if self.public.replaced_with(ds.id, &stamps).await? {
                continue;
            }
            // Sharing settings or erasures moved: what was published must not linger in
            // the table's history.
            let settings_changed = stamps.len() > 1
                && self.public.exists(ds.id).await
                && !self.public.replaced_with(ds.id, &stamps[1..]).await?;
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
                .replace(ds.id, batches, &stamps)
                .await?
                .is_some()
            {
                done.push((ds.id, version));
                if settings_changed {
                    // A withdrawn share or an erased text leaves no earlier version behind.
                    let deleted = (self.public)
                        .vacuum(ExistingTable(ds.id), chrono::Duration::zero())
                        .await?;
                    // The earlier commits' column statistics hold values too.
                    (self.public).forget_history(ExistingTable(ds.id)).await?;
                    tracing::info!(
                        dataset = ds.id,
                        deleted,
                        "sharing settings or erasures changed: history vacuumed"
                    );
                }
            }
        }
        Ok(done)
    }

    /// A session where only the public tables exist, under their SQL names, with the
    /// hub's domain formulas as functions (`vallee_gdd`, `vallee_huglin_day`, …); with
    /// `research`, its tables stand in for their public versions.
    pub async fn session(
        &self,
        research: Option<&PublicLake>,
    ) -> Result<datafusion::prelude::SessionContext> {
        let overridden =
            |d: &&Dataset| research.is_some_and(|r| r.datasets().any(|o| o.id == d.id));
        let tables: Vec<(&str, String)> = self
            .datasets()
            .filter(|d| !overridden(d))
            .map(|d| (d.id, sql_name(d)))
            .collect();
        let ctx = self.public.session_of_existing(&tables).await?;
        if let Some(research) = research {
            let tables: Vec<(&str, String)> =
                research.datasets().map(|d| (d.id, sql_name(d))).collect();
            research.public.register_existing(&ctx, &tables).await?;
        }
        vallee_lake::udf::register_formulas(&ctx);
        Ok(ctx)
    }
}
