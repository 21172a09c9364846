use chrono::DateTime;
use vallee_lake::LakeOptions;
use vallee_schemas::tables::{Lineage, TableRow};

use super::*;
use crate::families::testing::{Harness, decoded, plans_runtime};

fn sighting(time: &str, zone: &str, token: &str) -> Decoded {
    decoded(
        Stream::Beacons,
        &format!(
            r#"{{"id":"s","type":"BeaconSighting","dateObserved":"2026-11-28T{time}Z","zone":"{zone}","deviceToken":"{token}","saltEpoch":"2026-11-28","rssi":-60}}"#
        ),
    )
}

fn token(i: u32) -> String {
    format!("{i:032x}")
}

#[test]
fn footfall_rows_close_on_the_watermark_and_a_replay_adds_nothing() {
    let runtime = plans_runtime();
    let options = StreamOptions::default();
    let run = |emitted: Emitted| {
        let mut family = Footfall::new(&options, runtime.handle().clone());
        family.emitted = emitted;
        let mut h = Harness::new(&options, family);
        for (i, time) in ["10:00:05", "10:01:00", "10:03:00", "10:04:30", "10:06:00"]
            .iter()
            .enumerate()
        {
            let event = sighting(time, "za", &token(i as u32 % 3));
            h.event(Stream::Beacons, "b", 0, i as i64, &event);
        }
        h.tick();
        h.family
    };
    let first = run(Emitted::default());
    // Watermark 10:05:30: the 10:00 five-minute window closed with 3 distinct devices.
    let rows: Vec<(String, i64, i32)> = first
        .pending
        .footfall
        .iter()
        .map(|r| (r.window.clone(), r.people_count, r.revision))
        .collect();
    assert_eq!(rows, vec![("PT5M".to_string(), 3, 0)]);
    assert_eq!(
        first.replay.clone().replay_from(
            Stream::Beacons,
            0,
            DateTime::parse_from_rfc3339("2026-11-28T10:03:00Z")
                .unwrap()
                .into()
        ),
        Some(2)
    );
    // A restart replays the same rows with the index loaded from the table: nothing new.
    let again = run(first.emitted.clone());
    assert!(again.pending.footfall.is_empty());
    // A different value for the same window is a correction.
    let mut changed = first.emitted.clone();
    changed.footfall.values_mut().for_each(|v| v.1 = 2);
    let corrected = run(changed);
    assert_eq!(corrected.pending.footfall[0].revision, 1);
}

#[test]
fn a_zone_configured_as_large_is_counted_with_a_sketch_and_says_so() {
    let runtime = plans_runtime();
    let options = StreamOptions {
        sketch_zones: ["za".to_string()].into(),
        ..StreamOptions::default()
    };
    let mut h = Harness::new(&options, Footfall::new(&options, runtime.handle().clone()));
    for (i, time) in ["10:00:05", "10:01:00", "10:03:00", "10:04:30", "10:06:00"]
        .iter()
        .enumerate()
    {
        let zone = if i == 1 { "zb" } else { "za" };
        let event = sighting(time, zone, &token(i as u32));
        h.event(Stream::Beacons, "b", 0, i as i64, &event);
    }
    h.tick();
    let mut rows: Vec<(&str, i64, bool)> = h
        .family
        .pending
        .footfall
        .iter()
        .map(|r| (r.zone.as_str(), r.people_count, r.approximate))
        .collect();
    rows.sort();
    assert_eq!(rows, vec![("za", 3, true), ("zb", 1, false)]);
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_restart_reads_back_the_latest_revision_of_each_window() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open_bare(LakeOptions {
        root: dir.path().to_path_buf(),
        ..Default::default()
    })
    .unwrap();
    let window = FootfallRow {
        zone: "za".into(),
        window: "PT5M".into(),
        from: at("2026-11-28T10:00:00Z"),
        to: at("2026-11-28T10:05:00Z"),
        people_count: 7,
        approximate: false,
        congested: false,
        revision: 0,
        is_final: true,
        day: 20_785,
        lineage: Lineage::default(),
        computed_at: at("2026-11-28T10:06:00Z"),
    };
    let correction = FootfallRow {
        people_count: 9,
        revision: 1,
        ..window.clone()
    };
    let batch = FootfallRow::to_batch(OutputTable::Footfall, &[window, correction])
        .unwrap()
        .unwrap();
    lake.append(OutputTable::Footfall, "test", vec![batch], &[])
        .await
        .unwrap();

    let mut family = Footfall::new(&StreamOptions::default(), Handle::current());
    family.restore(&lake).await.unwrap();
    let emitted = family.emitted;
    let start = at("2026-11-28T10:00:00Z").timestamp_micros();
    let key = ("za".to_string(), "PT5M".to_string(), start);
    assert_eq!(emitted.footfall.get(&key), Some(&(1, 9)));
}
