//! Rows for the lake's own tests.

use arrow::array::RecordBatch;
use vallee_schemas::tables::{FootfallRow, Lineage, OutputTable, TableRow};

/// A final footfall row of zone `zone` (PT5M, 2026-11-28 10:00–10:05 UTC, revision 0).
pub fn footfall_row(zone: &str, people: i64) -> FootfallRow {
    let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    FootfallRow {
        zone: zone.into(),
        window: "PT5M".into(),
        from: at("2026-11-28T10:00:00Z"),
        to: at("2026-11-28T10:05:00Z"),
        people_count: people,
        approximate: false,
        congested: false,
        revision: 0,
        is_final: true,
        day: 20_785,
        lineage: Lineage::default(),
        computed_at: at("2026-11-28T10:06:00Z"),
    }
}

/// [`footfall_row`] as a one-row batch of the `footfall` table.
pub fn footfall_batch(zone: &str, people: i64) -> RecordBatch {
    FootfallRow::to_batch(OutputTable::Footfall, &[footfall_row(zone, people)])
        .unwrap()
        .unwrap()
}
