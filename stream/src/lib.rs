//! The stream stage of the Smart Vallée hub: event-time windows for live fill alerts,
//! footfall, site visits and vineyard risk indicators.
//!
//! DataFusion has no event-time window operator; this crate has one, in the spirit of
//! Arroyo's tumbling-window operator: state is binned by window start, a window closes when
//! the stream's watermark passes its end, and a late row for a closed window produces a
//! corrected row (a higher revision), never silence.
//!
//! ```text
//!  events ──► Watermarks (per stream: min over active partitions of max event time,
//!   │                     minus allowed lateness; idle partitions stop holding it back)
//!   └──────► WindowOperator ── insert ──► open windows (early results for the live view)
//!                            └─ advance(watermark) ──► final rows (revision 0)
//!                               late row, closed window ──► corrected row (revision n+1)
//! ```
//!
//! The stage ([`stage`]) runs it on its own Kafka consumer group: decoded events go to the
//! family of their stream ([`families`]); rows land in Delta with the offsets a restart must
//! replay from; alerts reach `vallee.alerts` and the live view on arrival.
//!
//! # Layout
//! - [`watermark`] — per-stream watermarks with idle partitions.
//! - [`window`] — window shapes: tumbling, hopping.
//! - [`operator`] — the keyed window operator with early results and corrections.
//! - [`session`] — session windows; [`dwell`] — dwell-time distributions built on them.
//! - [`aggregate`] — what a window accumulates (counts, exact distinct counts).
//! - [`lineage`] — the Kafka offset ranges that fed each derived row (the column is part of
//!   the tables' contract, `vallee_schemas::tables`).
//! - [`microbatch`] — the per-batch DataFusion plans of the windowed streams;
//!   [`udf`] — the functions they call (the domain formulas, the device-token hash).
//! - [`families`] — the stage's computations, one family of derived tables per folder,
//!   each with its domain rules, its restore and its emitted-rows index: footfall and
//!   dwell; site presence; bins (fill alerts with hysteresis, proof of collection, fire,
//!   status, silence; fill-rate forecasts); vineyards (GDD, Winkler, Huglin, 3-10,
//!   Gubler-Thomas, oospore degree days; frost and mildew alerts).
//! - [`late`] — events later than their stream's correction horizon: kept in
//!   `late_events`, folded into their windows by `vallee lake fold-late`.
//! - [`stage`] — the stage as a service: consumer, dispatcher, commit, alerts, live view.

pub mod aggregate;
pub mod dwell;
mod error;
pub mod families;
pub mod late;
pub mod lineage;
pub mod microbatch;
pub mod operator;
pub mod session;
pub mod stage;
pub mod udf;
pub mod watermark;
pub mod window;

pub use error::{Error, Result};
