//! A backlog (a restart's replay, a burst after an outage) has its rows and results in the
//! lake as soon as it is read, not a flush interval later: both stages run here with an
//! interval far longer than the test's deadline and a flush size no backlog reaches, so
//! only the end of the backlog can make them commit.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vallee_ingest::{IngestOptions, IngestStats};
use vallee_schemas::tables::OutputTable;
use vallee_stream::stage::{SharedLiveView, StreamOptions};

use crate::helpers::*;

/// Longer than any deadline below: a commit before it comes from the backlog's end.
const INTERVAL: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_lands_a_backlog_once_read_not_at_the_next_interval() {
    // A flush size no backlog reaches: only the backlog's end makes ingest commit.
    ingest_lands_the_backlog(20_000, 31, 1_000_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_lands_the_end_of_a_backlog_however_few_rows_the_last_flush_left() {
    // While a backlog is read a flush is due at four times the flush size: 11 600 here,
    // which leaves 400 rows, fewer than a chunk of the consumer, to land when the
    // backlog's end is read, not at the interval.
    ingest_lands_the_backlog(12_000, 33, 2_900).await;
}

/// Produces `events` valley events, runs ingest with `flush_max_messages` and an interval
/// longer than the deadline, and requires every row in the lake, once, before it.
async fn ingest_lands_the_backlog(events: usize, seed: u64, flush_max_messages: usize) {
    let world = World::new(3).await;
    let produced = world.produce(&valley_events(events, seed)).await;
    let lake = Arc::new(world.lake().await);
    let shutdown = CancellationToken::new();
    let options = IngestOptions {
        flush_interval: INTERVAL,
        flush_max_messages,
        ..world.ingest_options()
    };
    let ingest = tokio::spawn(vallee_ingest::run(
        options,
        lake.clone(),
        Arc::new(IngestStats::default()),
        shutdown.clone(),
    ));
    eventually(
        Duration::from_secs(180),
        "the backlog in the lake without waiting for the interval",
        || async { total(&lake).await >= produced },
    )
    .await;
    shutdown.cancel();
    ingest.await.unwrap().unwrap();
    assert_exactly_once(&lake, produced).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stage_commits_a_backlogs_results_once_read_not_at_the_next_interval() {
    let world = World::new(3).await;
    let produced = world.produce(&valley_events(20_000, 32)).await;
    let lake = Arc::new(world.lake().await);
    let shutdown = CancellationToken::new();
    let options = StreamOptions {
        kafka: world.kafka_options(),
        group_id: format!("{}-stream", world.group),
        flush_interval: INTERVAL,
        ..Default::default()
    };
    let live = SharedLiveView::default();
    let stage = tokio::spawn(vallee_stream::stage::run(
        options,
        lake.clone(),
        live.clone(),
        shutdown.clone(),
    ));
    // `consumed` moves when a commit has the results of what was read.
    eventually(
        Duration::from_secs(180),
        "every message's results committed without waiting for the interval",
        || async { live.read().unwrap().consumed >= produced },
    )
    .await;
    // Results the backlog's own traffic closes are in the lake: the bins' forecasts, and
    // the tourism sites' presence (their watermarks passed those windows). Beacon windows
    // may still wait on a partition without beacons (its idle timeout).
    let rows = |table: OutputTable| {
        let lake = lake.clone();
        async move {
            let sql = format!("SELECT count(*) FROM {}", table.name());
            i64s(&lake.sql(&sql).await.unwrap(), 0)[0]
        }
    };
    assert!(
        rows(OutputTable::BinForecast).await > 0,
        "the bins' forecasts"
    );
    assert!(
        rows(OutputTable::SitePresence).await > 0,
        "the sites' presence"
    );
    shutdown.cancel();
    stage.await.unwrap().unwrap();
}
