//! `vallee lake fold-late`: the pending late visits folded into their sites' hours.
//!
//! For each site-hour a pending late visit belongs to, the hour is counted again from
//! `site_visits` (ingest lands every event, late or not, exactly once), as the stage counts
//! it ([`Presence`]: visitors, AR check-ins, check-ins per point), and written to
//! `site_presence` as a new revision when it differs from the latest; then each visit is
//! written to `late_events` again as `folded`. A visit ingest has not landed yet stays
//! pending with its whole hour (a fold then would count the hour without it).
//!
//! Running it twice changes nothing the second time; two folds at once are refused by the
//! lake (each commit records a fold number the other did not read); the stage may run
//! meanwhile (it holds no state for hours beyond its horizon, the only ones folded).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Duration, Utc};
use vallee_lake::{Lake, Latest, Progress};
use vallee_schemas::contract::{Stream, Table};
use vallee_schemas::tables::columns::Columns;
use vallee_schemas::tables::presence::HOURLY_SUM;
use vallee_schemas::tables::{
    LateEventRow, LateState, Lineage, OutputTable, PointCheckins, PresenceRow, TableRow,
};
use vallee_schemas::time::utc_day;

use super::TABLE;
use crate::Result;
use crate::aggregate::Aggregate;
use crate::families::presence::value::{Presence, PresenceValue, points_digest};
use crate::lineage::Topics;

/// The writer id of folds in the tables' transactions (their fold number).
pub const WRITER: &str = "fold-late";
/// The "topic" under which a fold records its number.
const FOLDS: &str = "folds";

/// What a fold did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Folded {
    /// Pending late visits found.
    pub pending: usize,
    /// Of those, folded now.
    pub folded: usize,
    /// Of those, not landed in `site_visits` yet (still pending).
    pub not_landed: usize,
    /// The hours written as a new revision: site, hour, revision, visitors.
    pub corrected: Vec<(String, DateTime<Utc>, i32, i64)>,
}

/// One raw visit of an hour being counted again.
struct Visit {
    site: String,
    location_code: String,
    hour: DateTime<Utc>,
    /// The AR-trail point of a check-in ("" without one); `None`: a counter's visitors.
    ar_point: Option<String>,
    count: i64,
    source: (String, i32, i64),
}

/// Folds every pending late visit into its site's hour.
pub async fn run(lake: &Lake) -> Result<Folded> {
    for table in [TABLE, OutputTable::SitePresence] {
        lake.ensure(table).await?;
    }
    lake.ensure(Table::SiteVisits).await?;
    // The fold numbers before anything is read: a fold that commits meanwhile makes this
    // one's commits refused (it read what that one changed).
    let presence_folds = fold_number(lake, OutputTable::SitePresence).await?;
    let late_folds = fold_number(lake, TABLE).await?;
    let pending: Vec<LateEventRow> = lake
        .rows(&format!(
            "SELECT * FROM ({}) WHERE state = '{}' AND stream = '{}'",
            Latest::of(TABLE),
            LateState::Pending.as_str(),
            Stream::Tourism
        ))
        .await?;
    let mut report = Folded {
        pending: pending.len(),
        ..Folded::default()
    };
    if pending.is_empty() {
        return Ok(report);
    }
    let hours: BTreeSet<(String, DateTime<Utc>)> =
        pending.iter().map(|l| (l.entity.clone(), l.hour)).collect();
    let visits = raw_visits(lake, &hours).await?;
    let landed: HashSet<&(String, i32, i64)> = visits.iter().map(|v| &v.source).collect();
    // An hour with a late visit not landed yet waits for ingest, whole.
    let waiting: BTreeSet<(String, DateTime<Utc>)> = pending
        .iter()
        .filter(|l| !landed.contains(&(l.topic.clone(), l.partition, l.offset)))
        .map(|l| (l.entity.clone(), l.hour))
        .collect();
    let ready: BTreeSet<(String, DateTime<Utc>)> = hours.difference(&waiting).cloned().collect();

    let mut counted: BTreeMap<(String, DateTime<Utc>), (Presence, String, Lineage)> =
        BTreeMap::new();
    let mut topics = Topics::default();
    for v in &visits {
        let key = (v.site.clone(), v.hour);
        if !ready.contains(&key) {
            continue;
        }
        let (value, code, lineage) = counted.entry(key).or_default();
        value.add(&(v.ar_point.clone(), v.count));
        code.clone_from(&v.location_code);
        lineage.add(&topics.source(&v.source.0, v.source.1, v.source.2));
    }
    let latest = latest_hours(lake, &ready).await?;
    let now = Utc::now();
    let mut rows = Vec::new();
    for ((site, hour), (value, location_code, lineage)) in counted {
        let value: PresenceValue = value.output();
        let digest = value.digest();
        let revision = match latest.get(&(site.clone(), hour)) {
            Some((_, d)) if *d == digest => continue,
            Some((r, _)) => r + 1,
            None => 0,
        };
        report
            .corrected
            .push((site.clone(), hour, revision, value.visitors));
        rows.push(PresenceRow {
            site,
            location_code,
            hour,
            to: hour + Duration::hours(1),
            visitor_count: value.visitors,
            ar_checkins: value.ar_checkins,
            ar_checkins_by_point: value
                .ar_points
                .into_iter()
                .map(|(point, checkins)| PointCheckins { point, checkins })
                .collect(),
            aggregation_type: HOURLY_SUM,
            revision,
            is_final: true,
            day: utc_day(&hour),
            lineage,
            computed_at: now,
        });
    }
    if let Some(batch) = PresenceRow::to_batch(OutputTable::SitePresence, &rows)? {
        append_fenced(lake, OutputTable::SitePresence, presence_folds, batch).await?;
    }
    let folded: Vec<LateEventRow> = pending
        .into_iter()
        .filter(|l| ready.contains(&(l.entity.clone(), l.hour)))
        .map(|l| LateEventRow {
            state: LateState::Folded,
            revision: l.revision + 1,
            computed_at: now,
            ..l
        })
        .collect();
    report.folded = folded.len();
    report.not_landed = report.pending - report.folded;
    if let Some(batch) = LateEventRow::to_batch(TABLE, &folded)? {
        append_fenced(lake, TABLE, late_folds, batch).await?;
    }
    Ok(report)
}

/// The number of the last fold committed to `table` (`None`: none yet).
async fn fold_number(lake: &Lake, table: OutputTable) -> Result<Option<i64>> {
    Ok(lake.committed_offsets(table, WRITER, FOLDS, &[0]).await?[&0])
}

/// `batch` appended to `table` with the fold number after `previous`: refused when
/// another fold committed to the table since this one read `previous`.
async fn append_fenced(
    lake: &Lake,
    table: OutputTable,
    previous: Option<i64>,
    batch: arrow::array::RecordBatch,
) -> Result<()> {
    let progress = Progress {
        topic: FOLDS.to_string(),
        partition: 0,
        previous,
        last: previous.map_or(1, |n| n + 1),
    };
    lake.append(table, WRITER, vec![batch], &[progress]).await?;
    Ok(())
}

/// `'text'` as a SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Every visit of the sites of `hours` in the days they span, kept for those hours.
async fn raw_visits(lake: &Lake, hours: &BTreeSet<(String, DateTime<Utc>)>) -> Result<Vec<Visit>> {
    let sites: BTreeSet<String> = hours.iter().map(|(s, _)| literal(s)).collect();
    let days: BTreeSet<String> = hours
        .iter()
        .map(|(_, h)| format!("DATE '{}'", h.format("%Y-%m-%d")))
        .collect();
    let sql = format!(
        "SELECT site, \"locationCode\", source, \"arPoint\", count, \"dateObserved\", \
         _topic, _partition, _offset FROM {} WHERE site IN ({}) AND day IN ({})",
        Table::SiteVisits.name(),
        sites.into_iter().collect::<Vec<_>>().join(", "),
        days.into_iter().collect::<Vec<_>>().join(", "),
    );
    let mut out = Vec::new();
    for batch in lake.sql(&sql).await? {
        let c = Columns::of_batch("site_visits", &batch);
        let (mut site, mut code, mut source) = (
            c.strings("site")?,
            c.strings("locationCode")?,
            c.strings("source")?,
        );
        let (mut point, mut count, mut observed) = (
            c.strings("arPoint")?,
            c.ints("count")?,
            c.timestamps("dateObserved")?,
        );
        let (mut topic, mut partition, mut offset) = (
            c.strings("_topic")?,
            c.ints("_partition")?,
            c.ints("_offset")?,
        );
        for i in 0..batch.num_rows() {
            let (site, hour) = (site.need(i)?, super::hour_of(observed.need(i)?));
            if !hours.contains(&(site.clone(), hour)) {
                continue;
            }
            let point = point.take(i);
            // As the stage counts it: an AR-trail check-in without a point, under "".
            let ar_point = (source.need(i)? == "ar-trail").then(|| point.unwrap_or_default());
            out.push(Visit {
                site,
                location_code: code.need(i)?,
                hour,
                ar_point,
                count: count.need(i)?,
                source: (topic.need(i)?, partition.need(i)? as i32, offset.need(i)?),
            });
        }
    }
    Ok(out)
}

/// The latest revision of each of `hours` in `site_presence`, with its value's digest.
async fn latest_hours(
    lake: &Lake,
    hours: &BTreeSet<(String, DateTime<Utc>)>,
) -> Result<BTreeMap<(String, DateTime<Utc>), (i32, (i64, i64, u64))>> {
    if hours.is_empty() {
        return Ok(BTreeMap::new());
    }
    let sites: BTreeSet<String> = hours.iter().map(|(s, _)| literal(s)).collect();
    let starts: BTreeSet<String> = hours
        .iter()
        .map(|(_, h)| h.timestamp_micros().to_string())
        .collect();
    let sql = format!(
        "SELECT * EXCLUDE (lineage) FROM ({}) WHERE site IN ({}) AND CAST(hour AS BIGINT) IN ({})",
        Latest::of(OutputTable::SitePresence),
        sites.into_iter().collect::<Vec<_>>().join(", "),
        starts.into_iter().collect::<Vec<_>>().join(", "),
    );
    let rows: Vec<PresenceRow> = lake.rows(&sql).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let points: Vec<(String, i64)> = r
                .ar_checkins_by_point
                .into_iter()
                .map(|p| (p.point, p.checkins))
                .collect();
            let digest = (r.visitor_count, r.ar_checkins, points_digest(&points));
            ((r.site, r.hour), (r.revision, digest))
        })
        .collect())
}
