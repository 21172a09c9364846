//! What `fill_alerts` and `bin_forecast` already hold, and the alerts whose episode a
//! restart continues.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use vallee_lake::Lake;
use vallee_schemas::tables::columns::Columns;
use vallee_schemas::tables::{AlertRow, AlertState};

use super::AlertKey;
use super::fill::{AlertKind, is_bin_alert};
use crate::Result;

/// An alert still open in `fill_alerts`: entity, kind, id, opening time, and the partition
/// of the bins' topic its readings came from (its lineage's; `None` without lineage).
pub(super) type OpenAlert = (String, AlertKind, String, DateTime<Utc>, Option<i32>);

/// Every `(alert, state, clear reason)` written, and the alerts whose episode is still open.
/// Read with their lineage (alerts are few): a member sharing the partitions judges only
/// the bins of its own.
pub(super) async fn fill_alerts(lake: &Lake) -> Result<(HashSet<AlertKey>, Vec<OpenAlert>)> {
    let mut written = HashSet::new();
    // Per alert: its first row read, and its state (cleared once any of its rows is).
    let mut states: BTreeMap<String, (AlertRow, AlertState)> = BTreeMap::new();
    for r in lake.rows::<AlertRow>("SELECT * FROM fill_alerts").await? {
        let state = AlertState::parse(r.state);
        written.insert((r.alert_id.clone(), state, r.clear_reason));
        let entry = states.entry(r.alert_id.clone()).or_insert((r, state));
        if state == AlertState::Cleared {
            entry.1 = AlertState::Cleared;
        }
    }
    let open = states
        .into_values()
        .filter(|(r, state)| *state == AlertState::Open && is_bin_alert(AlertKind::parse(r.kind)))
        .map(|(r, _)| {
            let partition = r.lineage.ranges().next().map(|(_, p, _, _)| p);
            (
                r.entity_id,
                AlertKind::parse(r.kind),
                r.alert_id,
                r.date_observed,
                partition,
            )
        })
        .collect();
    Ok((written, open))
}

/// Per bin, the time in µs of the latest reading already forecast. Forecasts are the
/// largest derived table (a row per bin reading): the lake reduces it to a row per bin.
pub(super) async fn forecasts(lake: &Lake) -> Result<HashMap<String, i64>> {
    let mut forecast = HashMap::new();
    let sql = "SELECT \"entityId\", max(\"dateObserved\") AS \"dateObserved\" FROM bin_forecast GROUP BY \"entityId\"";
    for batch in lake.sql(sql).await? {
        let c = Columns::of_batch("bin_forecast", &batch);
        let (mut id, mut at) = (c.strings("entityId")?, c.timestamps("dateObserved")?);
        for i in 0..c.len() {
            forecast.insert(id.need(i)?, at.need(i)?.timestamp_micros());
        }
    }
    Ok(forecast)
}
