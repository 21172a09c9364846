//! Waste collection as a crew planning its rounds sees it: the list of bins to collect, with
//! why each is on it, its filters, and bins leaving it as soon as they are emptied.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use vallee_schemas::contract::Table;

use crate::helpers::*;
use crate::hub::*;

const FULL: &str = "urn:ngsi-ld:WasteContainer:gignac-full";
const SOON: &str = "urn:ngsi-ld:WasteContainer:gignac-soon";
const EMPTIED: &str = "urn:ngsi-ld:WasteContainer:gignac-emptied";
const SLOW: &str = "urn:ngsi-ld:WasteContainer:gignac-slow";
const BURNING: &str = "urn:ngsi-ld:WasteContainer:gignac-burning";

/// The list as (bin, reasons), for a horizon two hours ahead and optional filters.
async fn list(hub: &Hub, filters: &str) -> Vec<(String, Vec<String>)> {
    let before = (Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let data = hub
        .gql(
            None,
            &format!(
                "{{ binsToCollect(before: \"{before}\"{filters}) {{ entityId reasons wasteKinds fullAt }} }}"
            ),
            json!({}),
        )
        .await;
    data["data"]["binsToCollect"]
        .as_array()
        .unwrap_or_else(|| panic!("{data}"))
        .iter()
        .map(|b| {
            let reasons = b["reasons"].as_array().unwrap();
            (
                b["entityId"].as_str().unwrap().to_string(),
                reasons
                    .iter()
                    .map(|r| r.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

fn entry(bin: &str, reasons: &[&str]) -> (String, Vec<String>) {
    (
        bin.to_string(),
        reasons.iter().map(|r| r.to_string()).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bins_to_collect_are_the_full_and_soon_full_ones_with_why_and_never_an_emptied_one() {
    let (world, hub) = world_and_hub().await;
    let refuse = json!({"storedWasteKind": "refuse"});
    let readings = [
        // Full now: its fill alert opens.
        bin_readings(FULL, refuse.clone(), &[(30, 0.6), (20, 0.7), (10, 0.92)]),
        // 0.3 an hour from 0.3: at its 0.8 threshold in 40 minutes.
        bin_readings(
            SOON,
            json!({"storedWasteKind": ["paper", "glass"]}),
            &[(60, 0.3), (0, 0.6)],
        ),
        // Full, then emptied; no truck reports (they stopped after the day's last round).
        bin_readings(EMPTIED, refuse.clone(), &[(30, 0.7), (20, 0.95), (5, 0.05)]),
        // On fire, a third full: first on the list.
        bin_readings(
            BURNING,
            json!({"storedWasteKind": "refuse", "temperature": 75.0}),
            &[(0, 0.3)],
        ),
        // Filling slowly: full in days.
        bin_readings(SLOW, refuse, &[(60, 0.1), (0, 0.12)]),
    ];
    world.produce(&readings.concat()).await;

    let expected = vec![
        entry(BURNING, &["FIRE_ALERT"]),
        entry(FULL, &["FILL_ALERT", "FORECAST"]),
        entry(SOON, &["FORECAST"]),
    ];
    eventually(
        Duration::from_secs(90),
        "the list of bins to collect",
        || async { list(&hub, "").await == expected },
    )
    .await;

    // The emptied bin's alert cleared on the drop itself, without waiting for trucks.
    let alerts = hub
        .gql(
            None,
            "{ fillAlerts(open: false) { entityId state clearReason } }",
            json!({}),
        )
        .await;
    assert_eq!(
        alerts["data"]["fillAlerts"],
        json!([{"entityId": EMPTIED, "state": "CLEARED", "clearReason": "level_drop"}]),
        "{alerts}"
    );

    // A bin of several kinds matches each; the commune filter keeps its own bins only.
    assert_eq!(
        list(&hub, ", wasteKind: \"glass\"").await,
        vec![entry(SOON, &["FORECAST"])]
    );
    assert_eq!(
        list(&hub, ", wasteKind: \"paper\"").await,
        vec![entry(SOON, &["FORECAST"])]
    );
    assert_eq!(
        list(&hub, ", wasteKind: \"refuse\"").await,
        vec![
            entry(BURNING, &["FIRE_ALERT"]),
            entry(FULL, &["FILL_ALERT", "FORECAST"])
        ]
    );
    assert_eq!(
        list(&hub, &format!(", communeCode: \"{GIGNAC}\"")).await,
        expected
    );
    assert_eq!(list(&hub, ", communeCode: \"34999\"").await, vec![]);
    hub.stop().await;
}

/// A citizen reports an overflowing bin: the report is tied to the bin 11 m away, the bin
/// joins the list for it, and when the bin's sensor sees it emptied the hub closes the
/// report, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_of_an_overflowing_bin_is_tied_to_it_and_closed_when_it_is_emptied() {
    const REPORTED: &str = "urn:ngsi-ld:WasteContainer:gignac-reported";
    let (world, hub) = world_and_hub().await;
    let refuse = json!({"storedWasteKind": ["refuse"]});
    world
        .produce(&bin_readings(
            REPORTED,
            refuse.clone(),
            &[(120, 0.5), (60, 0.52)],
        ))
        .await;
    eventually(Duration::from_secs(60), "the bin in the lake", || async {
        hub.gql(None, "{ bins { id } }", json!({})).await["data"]["bins"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["id"] == REPORTED))
    })
    .await;
    assert!(
        list(&hub, "").await.is_empty(),
        "half full, filling slowly: not due"
    );

    // 11 m north of the bin (bin_readings places it at 43.6521, 3.5512).
    let submitted = hub
        .ok(
            None,
            "mutation($input: SubmitReportInput!) { submitReport(input: $input) {
                report { id bin history { statusNotes } } } }",
            json!({"input": {"serviceCode": "bin-overflowing", "description": "Sacs par terre",
                "lat": 43.6522, "long": 3.5512}}),
        )
        .await;
    let report = &submitted["submitReport"]["report"];
    assert_eq!(report["bin"], REPORTED);
    assert_eq!(
        report["history"][1]["statusNotes"],
        format!("Rattaché au conteneur {REPORTED} (à 11 m)")
    );
    let id = report["id"].as_str().unwrap().to_string();
    assert_eq!(list(&hub, "").await, [entry(REPORTED, &["CITIZEN_REPORT"])]);

    // The truck empties it: the sensor reports 5 %.
    world
        .produce(&bin_readings(REPORTED, refuse, &[(0, 0.05)]))
        .await;
    let query = "query($id: ID!) { report(id: $id) { status substatus statusNotes } }";
    eventually(Duration::from_secs(60), "the report closed", || async {
        hub.ok(None, query, json!({"id": id})).await["report"]["status"] == "CLOSED"
    })
    .await;
    let closed = hub.ok(None, query, json!({"id": id})).await["report"].clone();
    assert_eq!(closed["substatus"], "FIXED");
    let notes = closed["statusNotes"].as_str().unwrap();
    assert!(
        notes.starts_with(&format!("Conteneur {REPORTED} vidé le "))
            && notes.ends_with("constaté par son capteur"),
        "{notes}"
    );
    assert!(list(&hub, "").await.is_empty(), "emptied, no open report");

    // The report's whole story reached the lake, the link included: nothing set aside.
    eventually(Duration::from_secs(60), "the link in the lake", || async {
        let types = world
            .lake()
            .await
            .sql("SELECT type FROM citizen_reports ORDER BY \"dateObserved\", _offset")
            .await
            .map(|b| strings(&b, "type"))
            .unwrap_or_default();
        types
            == [
                "ReportSubmitted",
                "ReportLinkedToBin",
                "ReportStatusChanged",
            ]
    })
    .await;
    let lake = world.lake().await;
    assert_eq!(lake.count(Table::DeadLetters).await.unwrap_or(0), 0);
    hub.stop().await;
}
