use std::collections::BTreeMap;
use std::time::Instant;

use arrow::array::RecordBatch;

use vallee_schemas::tables::TableRow;

use super::*;
use crate::families::testing::{decoded, plans_runtime};
use crate::stage::StreamOptions;
use crate::stage::dispatcher::Dispatcher;
use vallee_schemas::tables::late::DAY_CLOSED;

fn visit(id: &str, at: &str, count: i64) -> Decoded {
    decoded(
        Stream::Tourism,
        &format!(
            r#"{{"id":"{id}","type":"SiteVisit","dateObserved":"{at}","site":"abbaye","locationCode":"34261","source":"counter","count":{count}}}"#
        ),
    )
}

fn sighting(at: &str) -> Decoded {
    decoded(
        Stream::Beacons,
        &format!(
            r#"{{"id":"s","type":"BeaconSighting","dateObserved":"{at}","zone":"za","deviceToken":"{:032x}","saltEpoch":"2026-11-28","rssi":-60}}"#,
            7
        ),
    )
}

/// The tourism traffic: day 1 at 10:05, day 4 at 10:00 (a tick closes everything up to
/// 09:55), then day 1 at 10:30 (beyond the 48 h horizon) and day 3 at 10:30 (within it).
fn tourism() -> Vec<Decoded> {
    vec![
        visit("first", "2026-11-28T10:05:00Z", 6),
        visit("today", "2026-12-01T10:00:00Z", 8),
        visit("stale", "2026-11-28T10:30:00Z", 50),
        visit("yesterday", "2026-11-30T10:30:00Z", 7),
    ]
}

/// A dispatcher fed `events` on `tourism[0]` from offset 0, a tick after the second;
/// `recorded`: what `late_events` recorded for the partition. Returns the late rows.
fn run(events: &[Decoded], recorded: Option<i64>) -> (Vec<LateEventRow>, u64) {
    let runtime = plans_runtime();
    let options = StreamOptions::default();
    let mut d = Dispatcher::new(&options, runtime.handle().clone());
    let now = Instant::now();
    d.late_recorded(Stream::Tourism, 0, recorded);
    for (offset, event) in events.iter().enumerate() {
        d.process(Stream::Tourism, "t", 0, offset as i64, event, now)
            .unwrap();
        if offset == 1 {
            d.tick(now).unwrap();
        }
    }
    d.tick(now).unwrap();
    let rows = crate::families::batches(d.drain_rows().unwrap()).unwrap();
    let late = rows
        .get(&TABLE)
        .map(|b| LateEventRow::from_batch(b).unwrap())
        .unwrap_or_default();
    (late, d.too_late()[&Stream::Tourism])
}

/// A fresh dispatcher fed `events` on `topic[partition]` from offset 0, a tick after each;
/// returns it and the rows it produced.
fn ticked(
    runtime: &tokio::runtime::Runtime,
    stream: Stream,
    topic: &str,
    partition: i32,
    events: &[Decoded],
) -> (Dispatcher, BTreeMap<OutputTable, RecordBatch>) {
    let mut d = Dispatcher::new(&StreamOptions::default(), runtime.handle().clone());
    let now = Instant::now();
    for (offset, event) in events.iter().enumerate() {
        d.process(stream, topic, partition, offset as i64, event, now)
            .unwrap();
        d.tick(now).unwrap();
    }
    let rows = crate::families::batches(d.drain_rows().unwrap()).unwrap();
    (d, rows)
}

#[test]
fn a_visit_beyond_the_horizon_is_kept_pending_once_and_one_within_it_is_counted() {
    let (late, counted) = run(&tourism(), None);
    let got: Vec<_> = late
        .iter()
        .map(|r| {
            (
                r.id.as_str(),
                r.entity.as_str(),
                r.hour.to_rfc3339(),
                r.count,
                r.state,
                r.revision,
                (r.topic.as_str(), r.partition, r.offset),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(
            "stale",
            "abbaye",
            "2026-11-28T10:00:00+00:00".to_string(),
            50,
            LateState::Pending,
            0,
            ("t", 0, 2)
        )]
    );
    assert_eq!(late[0].reason, BEYOND_CORRECTION_HORIZON);
    assert_eq!(counted, 1, "the metrics' counter");
}

#[test]
fn a_replay_keeps_again_only_what_late_events_had_not_recorded() {
    // The run before committed up to offset 3: the stale visit is in the table.
    let (late, counted) = run(&tourism(), Some(3));
    assert!(late.is_empty(), "{late:?}");
    assert_eq!(counted, 0);
    // It had committed up to offset 2 only: the stale visit was not judged yet.
    let (late, _) = run(&tourism(), Some(2));
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].offset, 2);
}

#[test]
fn a_sighting_beyond_the_horizon_is_kept_but_not_foldable() {
    let runtime = plans_runtime();
    let events = [
        sighting("2026-11-28T10:01:00Z"),
        sighting("2026-11-28T12:30:00Z"),
        // Two hours late: its five minutes and its hour are both gone (1 h horizon).
        sighting("2026-11-28T10:02:00Z"),
    ];
    let (d, rows) = ticked(&runtime, Stream::Beacons, "b", 1, &events);
    let late = LateEventRow::from_batch(&rows[&TABLE]).unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(
        (late[0].entity.as_str(), late[0].count, late[0].state),
        ("za", 1, LateState::NotFoldable)
    );
    assert_eq!(d.too_late()[&Stream::Beacons], 1);
}

#[test]
fn a_replay_starts_where_the_windows_need_it_not_where_late_events_judged() {
    let stored = BTreeMap::from([(OutputTable::SitePresence, Some(120)), (TABLE, Some(400))]);
    assert_eq!(replay_start(&stored), Some(120));
    let stored = BTreeMap::from([(OutputTable::SitePresence, None), (TABLE, Some(400))]);
    assert_eq!(replay_start(&stored), None, "from the beginning");
}

#[test]
fn a_reading_of_a_stations_closed_day_is_kept_as_day_closed_not_counted_in_it() {
    let runtime = plans_runtime();
    let weather = |at: &str, temperature: f64| {
        decoded(
            Stream::Vineyards,
            &format!(
                r#"{{"id":"urn:ngsi-ld:WeatherObserved:st-1","type":"WeatherObserved","dateObserved":"{at}","temperature":{temperature},"precipitation":0}}"#
            ),
        )
    };
    // 10 May (local), then 12 May: the 10th and the 11th close.
    let events = [
        weather("2026-05-10T10:00:00Z", 18.0),
        weather("2026-05-12T10:00:00Z", 20.0),
        // A reading of the 10th comes back after a network cut.
        weather("2026-05-10T14:00:00Z", 35.0),
    ];
    let (d, rows) = ticked(&runtime, Stream::Vineyards, "v", 0, &events);
    let late = LateEventRow::from_batch(&rows[&TABLE]).unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(
        (late[0].reason, late[0].state, late[0].offset),
        (DAY_CLOSED, LateState::NotFoldable, 2)
    );
    // The 10th's row is its single reading's, not changed by the late one.
    let days =
        vallee_schemas::tables::VineRow::from_batch(&rows[&OutputTable::VineIndicators]).unwrap();
    let tenth = days
        .iter()
        .find(|r| r.day.to_string() == "2026-05-10")
        .unwrap();
    assert_eq!(tenth.tmax, 18.0);
    assert_eq!(d.too_late()[&Stream::Vineyards], 1);
}

#[test]
fn a_resumed_replay_keeps_what_is_older_than_its_first_hour_and_was_read_after_the_last_commit() {
    let runtime = plans_runtime();
    let options = StreamOptions::default();
    let replay = |recorded: Option<i64>| {
        let mut d = Dispatcher::new(&options, runtime.handle().clone());
        let now = Instant::now();
        // Resumed from offset 1 (the first event of the oldest hour it rebuilds); the run
        // before committed what it read up to `recorded`.
        d.partition_assigned(Stream::Tourism, 0, true, now);
        d.late_recorded(Stream::Tourism, 0, recorded);
        for (offset, event) in tourism().iter().enumerate().skip(1) {
            d.process(Stream::Tourism, "t", 0, offset as i64, event, now)
                .unwrap();
        }
        d.tick(now).unwrap();
        let rows = crate::families::batches(d.drain_rows().unwrap()).unwrap();
        rows.get(&TABLE)
            .map(|b| LateEventRow::from_batch(b).unwrap())
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.offset, r.state))
            .collect::<Vec<_>>()
    };
    // Read after the last commit: older than the replay's first hour, kept (a fold
    // recounts their hours from what ingest landed).
    assert_eq!(
        replay(Some(2)),
        vec![(2, LateState::Pending), (3, LateState::Pending)]
    );
    // Committed before: judged then, nothing kept twice.
    assert!(replay(Some(4)).is_empty());
}
