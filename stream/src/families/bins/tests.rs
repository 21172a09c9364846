use std::sync::Arc;

use vallee_lake::LakeOptions;
use vallee_schemas::tables::{AlertKind as Kind, AlertState, Lineage, TableRow};

use super::*;
use crate::families::testing::{Harness, decoded};

fn reading(id: &str, time: &str, level: f64) -> Decoded {
    decoded(
        Stream::WasteContainers,
        &format!(
            r#"{{"id":"{id}","type":"WasteContainer","dateObserved":"2026-11-28T{time}Z","fillingLevel":{level},"location":{{"type":"Point","coordinates":[3.5512,43.6521]}}}}"#
        ),
    )
}

fn truck(time: &str, lon: f64, lat: f64) -> Decoded {
    decoded(
        Stream::WasteVehicles,
        &format!(
            r#"{{"id":"benne","type":"Vehicle","dateObserved":"2026-11-28T{time}Z","vehicleType":"lorry","serviceProvided":["garbageCollection"],"serviceStatus":"onRoute","location":{{"type":"Point","coordinates":[{lon},{lat}]}}}}"#
        ),
    )
}

/// Where `reading`'s bins stand.
const BIN: (f64, f64) = (3.5512, 43.6521);

#[test]
fn an_emptied_bin_clears_at_once_a_truck_later_proves_the_collection_and_a_replay_adds_nothing() {
    let options = StreamOptions::default();
    let run = |emitted: Emitted| {
        let mut family = Bins::new(&options);
        family.emitted = emitted;
        let mut h = Harness::new(&options, family);
        h.event(
            Stream::WasteContainers,
            "b",
            0,
            0,
            &reading("bin-x", "10:00:00", 0.85),
        );
        let mut fresh = Vec::new();
        h.family.drain_alerts(&mut fresh);
        let opened: Vec<_> = fresh.iter().map(|r| (r.kind, r.state)).collect();
        // A truck stops by the bin, which reports empty: the trucks' stream is far behind.
        h.event(
            Stream::WasteVehicles,
            "v",
            0,
            0,
            &truck("10:25:00", BIN.0, BIN.1),
        );
        h.event(
            Stream::WasteContainers,
            "b",
            0,
            1,
            &reading("bin-x", "10:30:00", 0.1),
        );
        h.tick();
        let mut fresh = Vec::new();
        h.family.drain_alerts(&mut fresh);
        let at_once: Vec<_> = fresh.iter().map(|r| (r.state, r.clear_reason)).collect();
        let open_after_drop = h.family.open_alert_rows().len();
        // The trucks' stream passes the drop (minus its two hours of lateness).
        h.event(
            Stream::WasteVehicles,
            "v",
            0,
            1,
            &truck("12:45:00", 3.6, 43.7),
        );
        h.tick();
        (h.family, opened, at_once, open_after_drop)
    };
    let (first, opened, at_once, open_after_drop) = run(Emitted::default());
    assert_eq!(opened, vec![("fill", "open")], "on arrival");
    assert_eq!(
        at_once,
        vec![("cleared", Some("level_drop"))],
        "cleared on the drop, before the trucks are known"
    );
    assert_eq!(open_after_drop, 0, "off the live view at once");
    let rows: Vec<_> = first
        .pending
        .alerts
        .iter()
        .map(|r| {
            (
                r.alert_id.as_str(),
                r.state,
                r.clear_reason,
                r.date_observed,
            )
        })
        .collect();
    let (id, drop) = (rows[0].0, at("2026-11-28T10:30:00Z"));
    assert_eq!(
        rows,
        vec![
            (id, "open", None, at("2026-11-28T10:00:00Z")),
            (id, "cleared", Some("level_drop"), drop),
            (id, "cleared", Some("collection"), drop),
        ],
        "the same episode, its clear corrected once the truck is known"
    );
    assert_eq!(
        first.pending.forecasts.len(),
        0,
        "an emptying: no trend yet"
    );
    let (again, opened, at_once, _) = run(first.emitted.clone());
    assert!(
        opened.is_empty() && at_once.is_empty() && again.pending.alerts.is_empty(),
        "a replay"
    );
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn alert(id: &str, kind: Kind, state: AlertState, t: &str) -> AlertRow {
    AlertRow {
        alert_id: id.into(),
        kind: kind.as_str(),
        entity_id: id.split(':').next().unwrap().into(),
        state: state.as_str(),
        date_observed: at(t),
        clear_reason: None,
        filling_level: None,
        commune_code: None,
        risk_level: None,
        day: 20_785,
        lineage: Lineage::range(&Arc::from("t"), 0, 1, 2),
        computed_at: at(t),
    }
}

#[tokio::test]
async fn a_restart_reads_back_the_alerts_written_and_continues_the_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open_bare(LakeOptions {
        root: dir.path().to_path_buf(),
        ..Default::default()
    })
    .unwrap();
    let (open, cleared) = (AlertState::Open, AlertState::Cleared);
    let fill = [
        alert("bin-1:fill:1", Kind::Fill, open, "2026-11-28T10:00:00Z"),
        alert("bin-2:fire:1", Kind::Fire, open, "2026-11-28T09:00:00Z"),
        alert("bin-2:fire:1", Kind::Fire, cleared, "2026-11-28T09:30:00Z"),
    ];
    let batch = AlertRow::to_batch(OutputTable::FillAlerts, &fill)
        .unwrap()
        .unwrap();
    lake.append(OutputTable::FillAlerts, "test", vec![batch], &[])
        .await
        .unwrap();

    let mut family = Bins::new(&StreamOptions::default());
    family.restore(&lake).await.unwrap();
    assert_eq!(family.emitted.alerts.len(), 3);
    let (_, open) = restore::fill_alerts(&lake).await.unwrap();
    assert_eq!(
        open,
        vec![(
            "bin-1".to_string(),
            AlertKind::Fill,
            "bin-1:fill:1".to_string(),
            at("2026-11-28T10:00:00Z"),
            Some(0), // the partition its lineage names
        )]
    );
    let rows = family.open_alert_rows();
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["bin-1:fill:1"]);
    assert_eq!(
        family.alerts.open_alerts(),
        vec![("bin-1", AlertKind::Fill, "bin-1:fill:1")]
    );
}
