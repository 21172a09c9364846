//! The live view: what the stage knows right now, before anything is committed (open
//! alerts, early results of open windows, watermarks), and how its partitions flow (the
//! probe's health, the fresh consumers it started). The API and the metrics read it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use vallee_kafka::{SharedHealth, StageHealth};
use vallee_schemas::contract::Stream;
use vallee_schemas::tables::AlertRow;

/// A footfall value of a window, final or not yet.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveFootfall {
    pub zone: String,
    pub window: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub people_count: i64,
}

/// The stage's live state.
#[derive(Debug, Default, Clone)]
pub struct LiveView {
    /// Open alerts by id.
    pub open_alerts: BTreeMap<String, AlertRow>,
    /// Early results of the open footfall windows.
    pub footfall: Vec<LiveFootfall>,
    pub watermarks: BTreeMap<Stream, Option<DateTime<Utc>>>,
    /// Rows later than their stream's correction horizon, per stream, since start.
    pub too_late: BTreeMap<Stream, u64>,
    pub updated_at: Option<DateTime<Utc>>,
    /// Messages read (refused ones included) whose results are committed.
    pub consumed: u64,
    /// When the stage read its first message: start-up (joining a group, or not, and
    /// restoring from the lake) ends there.
    pub first_read_at: Option<std::time::Instant>,
    /// Each input partition's lag and stall, sampled every few seconds by the stage's
    /// probe (shared: the probe writes it, readiness and metrics read it).
    pub health: SharedHealth,
    /// The same of the trucks' partitions when members share the others: every member
    /// reads them whole, outside the group, so no group progress of theirs reaches the
    /// probe; the stage watches its broadcast consumer's own statistics instead.
    pub broadcast_health: StageHealth,
    /// Fresh consumers started because partitions stopped flowing (a stall, or no
    /// partition at all from the group), or because another member committed this one's
    /// partitions (it had been presumed dead).
    pub recoveries: u64,
}

/// The live view shared between the stage (writer) and the API (readers).
pub type SharedLiveView = Arc<RwLock<LiveView>>;
