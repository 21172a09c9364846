//! The hub's Delta Lake: table creation, exactly-once appends and SQL reads.
//!
//! Every table lives under one root (`<data-dir>/lake/<table>`). Exactly-once from Kafka is
//! kept *in the tables themselves*, as kafka-delta-ingest does: each commit carries, per
//! source partition, a Delta application transaction (`txn`) whose version is the last
//! Kafka offset the table has accounted for. A writer reads them back on start and on
//! partition assignment, and an append refuses to commit when the stored offsets are not
//! the ones the writer started from (another writer got there first).
//!
//! ```text
//!  append(table, batch, progress)
//!    │  lock table ─► refresh snapshot ─► txn(app id) == expected previous offset?
//!    │                                         │ no ─► Error::Fenced (nothing written)
//!    │                                         ▼ yes
//!    └─► write Parquet files ─► commit { add…, txn(app id, last offset)… }
//!                                 └─ a concurrent commit of the same app id conflicts
//! ```
//!
//! # Layout
//! - [`options`] — [`LakeOptions`], where the lake is (a folder, or `s3://bucket/prefix`)
//!   and how tables are configured.
//! - [`object_storage`] — the S3 handlers, and the check that a bucket refuses a second
//!   writer of one commit.
//! - [`tables`] — [`Lake`], opening and creating the tables.
//! - [`offsets`] — application-transaction ids and the source progress a commit carries.
//! - [`append`] — the exactly-once append.
//! - [`query`] — a DataFusion session over the tables (tests, benchmarks, researchers),
//!   rows of a query read back as the contract's rows ([`Lake::rows`]), and read-only
//!   copies refreshed apart from the writers ([`ReadOnlyTables`], what the API reads).
//! - [`latest`] — [`Latest`], the latest row per key of a table: the one view readers use.
//! - [`replace`] — whole-table rewrites (the published lakes).
//! - [`upkeep`] — compaction, vacuum, checkpoints.
//! - [`blobs`] — objects beside the tables in none of them (report photos), on disk or
//!   in the lake's bucket.
//! - [`check`] — finding damaged data files and setting them aside.
//! - [`udf`] — the domain formulas as DataFusion functions (`vallee_gdd`, …).
//!
//! The tables' contract (names, schemas, keys, [`LakeTable`]) is `vallee_schemas::tables`.

pub mod append;
pub mod blobs;
pub mod check;
mod error;
pub mod latest;
pub mod object_storage;
pub mod offsets;
pub mod options;
pub mod query;
pub mod replace;
pub mod tables;
#[cfg(test)]
mod testing;
pub mod text_keys;
mod txn_versions;
pub mod udf;
pub mod upkeep;

pub use blobs::Blobs;
pub use error::{CommitFailure, Error, Result};
pub use latest::Latest;
pub use offsets::{Progress, app_id};
pub use options::LakeOptions;
pub use query::{AsOf, ReadOnlyTables, TablesAt};
pub use tables::Lake;
pub use text_keys::TextKeys;
pub use vallee_schemas::tables::LakeTable;
