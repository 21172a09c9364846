//! Waste collection as a crew planning its rounds sees it: the list of bins to collect, with
//! why each is on it, its filters, and bins leaving it as soon as they are emptied.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;

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
