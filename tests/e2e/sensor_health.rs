//! Sensor health as the technician who keeps the valley's sensors sees it: which bins went
//! quiet, which sensor gives the same level for hours, whose battery is low, in GraphQL, the
//! metrics and the back office.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::hub::*;

const WORKING: &str = "urn:ngsi-ld:WasteContainer:gignac-sante-ok";
const QUIET: &str = "urn:ngsi-ld:WasteContainer:gignac-sante-muet";
const STUCK: &str = "urn:ngsi-ld:WasteContainer:gignac-sante-bloque";
const WORN: &str = "urn:ngsi-ld:WasteContainer:gignac-sante-pile";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_stuck_and_worn_sensors_are_named_with_why_and_counted() {
    let (world, hub) = world_and_hub().await;
    let refuse = json!({"storedWasteKind": "refuse"});
    // Every 30 minutes for 13 hours: 0.37 each time.
    let stuck: Vec<(i64, f64)> = (0..27).map(|k| (k * 30, 0.37)).collect();
    let readings = [
        bin_readings(WORKING, refuse.clone(), &[(60, 0.3), (30, 0.32), (0, 0.35)]),
        // Last heard of four hours ago.
        bin_readings(
            QUIET,
            refuse.clone(),
            &[(300, 0.3), (270, 0.31), (240, 0.33)],
        ),
        bin_readings(STUCK, refuse.clone(), &stuck),
        bin_readings(
            WORN,
            json!({"storedWasteKind": "refuse", "batteryLevel": 0.05, "rssi": -126}),
            &[(30, 0.5), (0, 0.52)],
        ),
    ]
    .concat();
    world.produce(&readings).await;
    let query = "query($p: SensorProblem) { sensorHealth(faulty: true, problem: $p) {
        entityId kind problems batteryLevel rssi readingsLast24Hours } }";
    let faulty = |problem: Value| {
        let hub = &hub;
        async move {
            let data = hub.ok(None, query, json!({"p": problem})).await;
            let mut found: Vec<(String, Vec<String>)> = data["sensorHealth"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h["entityId"].as_str().unwrap().to_string(),
                        h["problems"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|p| p.as_str().unwrap().to_string())
                            .collect(),
                    )
                })
                .collect();
            found.sort();
            found
        }
    };
    eventually(
        Duration::from_secs(60),
        "the four bins in the lake",
        || async {
            let all = hub
                .ok(None, "{ sensorHealth { entityId } }", json!({}))
                .await;
            all["sensorHealth"].as_array().map_or(0, Vec::len) == 4
        },
    )
    .await;
    let named = |id: &str, problems: &[&str]| {
        (
            id.to_string(),
            problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        faulty(Value::Null).await,
        [
            named(STUCK, &["STUCK"]),
            named(QUIET, &["SILENT"]),
            named(WORN, &["LOW_BATTERY", "WEAK_SIGNAL"]),
        ],
        "the working bin is not listed"
    );
    assert_eq!(faulty(json!("SILENT")).await, [named(QUIET, &["SILENT"])]);
    let worn = hub.ok(None, query, json!({"p": "LOW_BATTERY"})).await["sensorHealth"][0].clone();
    assert_eq!(
        (
            worn["batteryLevel"].as_f64(),
            worn["rssi"].as_f64(),
            worn["kind"].as_str()
        ),
        (Some(0.05), Some(-126.0), Some("BIN"))
    );
    assert_eq!(worn["readingsLast24Hours"], 2);

    // The metrics count them (checked every publish interval, at least every 10 s).
    eventually(
        Duration::from_secs(30),
        "the sensors in the metrics",
        || async {
            let (_, metrics) = http_get(hub.http, "/metrics").unwrap();
            [
                "silent\"} 1",
                "stuck\"} 1",
                "low_battery\"} 1",
                "working\"} 1",
            ]
            .iter()
            .all(|s| metrics.contains(&format!("vallee_sensors{{state=\"{s}")))
        },
    )
    .await;

    // The town hall's back office lists them, in words.
    if let Some(mut browser) = crate::browser::Browser::start().await {
        browser.open(&hub.url("/gestion")).await;
        browser.fill("jeton-agent", GIGNAC_STAFF).await;
        browser.click("#connexion-form button[type=submit]").await;
        let item = format!("#capteurs li[data-sensor-id=\"{QUIET}\"]");
        browser
            .until(
                &format!("document.querySelector('{item}')"),
                "the silent bin listed",
            )
            .await;
        assert!(browser.text(&item).await.contains("muet"));
        assert_eq!(
            browser
                .eval("document.querySelectorAll('#capteurs li').length")
                .await,
            3
        );
    }

    // The quiet bin's sensor, registered as reporting every 6 hours, is not silent after 4.
    hub.ok(
        Some(GIGNAC_STAFF),
        "mutation($input: RegisterDeviceInput!) { registerDevice(input: $input) { device { devEui } } }",
        json!({"input": {"devEui": "0606060606060606", "entityId": QUIET, "profile": "ULTRASONIC_FILL",
            "latitude": 43.6521, "longitude": 3.5512, "depthMm": 1000.0, "reportIntervalS": 21600}}),
    )
    .await;
    assert_eq!(faulty(json!("SILENT")).await, []);
    hub.stop().await;
}
