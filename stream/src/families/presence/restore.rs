//! What `site_presence` already holds: the latest revision and value of each site-hour.

use vallee_lake::{Lake, Latest};
use vallee_schemas::tables::{OutputTable, PresenceRow};

use super::Emitted;
use super::value::points_digest;
use crate::Result;
use crate::families::without_lineage;

pub(super) async fn emitted(lake: &Lake) -> Result<Emitted> {
    let mut emitted = Emitted::default();
    let latest = without_lineage(Latest::of(OutputTable::SitePresence));
    for r in lake.rows::<PresenceRow>(&latest).await? {
        let points: Vec<(String, i64)> = r
            .ar_checkins_by_point
            .into_iter()
            .map(|p| (p.point, p.checkins))
            .collect();
        let value = (r.visitor_count, r.ar_checkins, points_digest(&points));
        emitted.insert((r.site, r.hour.timestamp_micros()), (r.revision, value));
    }
    Ok(emitted)
}
