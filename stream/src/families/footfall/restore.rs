//! What `footfall` and `footfall_dwell` already hold: the latest revision and value of each
//! window, read through the lake's latest-revision view.

use vallee_lake::{Lake, Latest};
use vallee_schemas::tables::{DwellRow, FootfallRow, OutputTable};

use super::Emitted;
use crate::Result;
use crate::dwell::DwellSummary;
use crate::families::without_lineage;

pub(super) async fn emitted(lake: &Lake) -> Result<Emitted> {
    let mut emitted = Emitted::default();
    let latest = |t| without_lineage(Latest::of(t));
    for r in lake
        .rows::<FootfallRow>(&latest(OutputTable::Footfall))
        .await?
    {
        let key = (r.zone, r.window, r.from.timestamp_micros());
        emitted.footfall.insert(key, (r.revision, r.people_count));
    }
    for r in lake
        .rows::<DwellRow>(&latest(OutputTable::FootfallDwell))
        .await?
    {
        let summary = DwellSummary {
            sessions: r.visits,
            under_5_min: r.under_5_min,
            from_5_to_15_min: r.from_5_to_15_min,
            from_15_to_30_min: r.from_15_to_30_min,
            from_30_to_60_min: r.from_30_to_60_min,
            total_seconds: r.total_seconds,
            median_minutes: r.median_minutes,
        };
        let key = (r.zone, r.hour.timestamp_micros());
        emitted.dwell.insert(key, (r.revision, summary));
    }
    Ok(emitted)
}
