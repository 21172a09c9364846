//! Sensor health as the technician who keeps the valley's sensors sees it: which bins went
//! quiet or were never heard from, which sensor gives the same level for hours, whose
//! battery is low, which bin empties itself with no truck by it, in GraphQL, the metrics,
//! the back office and the `device_health` table.

use std::time::Duration;

use serde_json::{Value, json};
use vallee::simulator::Event;

use crate::helpers::*;
use crate::hub::*;

const WORKING: &str = "urn:ngsi-ld:WasteContainer:gignac-sante-ok";
const QUIET: &str = "urn:ngsi-ld:WasteContainer:gignac-sante-muet";
const STUCK: &str = "urn:ngsi-ld:WasteContainer:gignac-sante-bloque";
const WORN: &str = "urn:ngsi-ld:WasteContainer:gignac-sante-pile";
/// Configured in every test hub (`[[api.devices]]`), never heard from here.
const NEVER_HEARD: &str = "urn:ngsi-ld:WasteContainer:gignac-lora-1";

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
        "the four bins in the lake, and the configured one never heard from",
        || async {
            let all = hub
                .ok(None, "{ sensorHealth { entityId } }", json!({}))
                .await;
            all["sensorHealth"].as_array().map_or(0, Vec::len) == 5
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
            named(NEVER_HEARD, &["SILENT"]),
            named(STUCK, &["STUCK"]),
            named(QUIET, &["SILENT"]),
            named(WORN, &["LOW_BATTERY", "WEAK_SIGNAL"]),
        ],
        "the working bin is not listed"
    );
    assert_eq!(
        faulty(json!("SILENT")).await,
        [named(NEVER_HEARD, &["SILENT"]), named(QUIET, &["SILENT"])]
    );
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
                "silent\"} 2",
                "stuck\"} 1",
                "low_battery\"} 1",
                "implausible\"} 0",
                "working\"} 1",
            ]
            .iter()
            .all(|s| metrics.contains(&format!("vallee_devices{{state=\"{s}")))
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
            4
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
    assert_eq!(
        faulty(json!("SILENT")).await,
        [named(NEVER_HEARD, &["SILENT"])]
    );
    hub.stop().await;
}

const SELF_EMPTIED: &str = "urn:ngsi-ld:WasteContainer:gignac-vide-seul";
const COLLECTED: &str = "urn:ngsi-ld:WasteContainer:gignac-collecte";
const OUT_OF_RANGE: &str = "urn:ngsi-ld:WasteContainer:gignac-hors-plage";

/// A garbage truck's position `minutes` ago at (`lon`, `lat`).
fn truck_at(minutes: i64, lon: f64, lat: f64) -> Event {
    let time = chrono::Utc::now() - chrono::Duration::minutes(minutes);
    Event {
        stream: vallee_schemas::contract::Stream::WasteVehicles,
        key: "urn:ngsi-ld:Vehicle:benne-01".into(),
        payload: json!({"id": "urn:ngsi-ld:Vehicle:benne-01", "type": "Vehicle",
            "vehicleType": "lorry", "serviceProvided": ["garbageCollection"],
            "serviceStatus": "onRoute", "dateObserved": time.to_rfc3339(),
            "location": {"type": "Point", "coordinates": [lon, lat]}})
        .to_string(),
        time,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bin_emptying_itself_is_implausible_and_every_check_is_recorded() {
    let world = World::new(1).await;
    let hub = Hub::start_with(&world, "hub", "\n[api.sensor_health]\nrecord_every_s = 1\n").await;
    let refuse = json!({"storedWasteKind": "refuse"});
    // Another street of Gignac, 800 m away from the truck.
    let elsewhere = json!({"storedWasteKind": "refuse",
        "location": {"type": "Point", "coordinates": [3.5600, 43.6580]}});
    let levels = [(90, 0.7), (60, 0.75), (30, 0.1), (0, 0.12)];
    let mut events = [
        bin_readings(SELF_EMPTIED, elsewhere, &levels),
        // The same fall, with the truck by the bin two minutes before it.
        bin_readings(COLLECTED, refuse.clone(), &levels),
        bin_readings(OUT_OF_RANGE, refuse.clone(), &[(30, 0.4), (0, 0.41)]),
        // A level no bin can have: refused, kept as a dead letter under the bin's key.
        bin_readings(OUT_OF_RANGE, refuse, &[(15, 1.7)]),
    ]
    .concat();
    events.push(truck_at(32, 3.5512, 43.6521));
    world.produce(&events).await;

    let query = "query($h: DeviceHealthFilter) { sensorHealth(faulty: true) { entityId problems
        emptiedWithoutTruck refusedReadings devEui }
        devices(health: $h) { devEui entityId health { lastSeen problems } } }";
    let implausible = || async {
        let data = hub
            .ok(Some(CCVH_STAFF), query, json!({"h": "IMPLAUSIBLE"}))
            .await;
        let mut ids: Vec<(String, i64, i64)> = data["sensorHealth"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| {
                h["problems"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("IMPLAUSIBLE"))
            })
            .map(|h| {
                (
                    h["entityId"].as_str().unwrap().to_string(),
                    h["emptiedWithoutTruck"].as_i64().unwrap(),
                    h["refusedReadings"].as_i64().unwrap(),
                )
            })
            .collect();
        ids.sort();
        ids
    };
    eventually(
        Duration::from_secs(60),
        "the self-emptied bin and the refused readings judged",
        || async { implausible().await.len() == 2 },
    )
    .await;
    assert_eq!(
        implausible().await,
        [
            (OUT_OF_RANGE.to_string(), 0, 1),
            (SELF_EMPTIED.to_string(), 1, 0),
        ],
        "the bin the truck emptied is not implausible"
    );

    // The register's view: the configured sensor never heard from is silent, with its
    // DevEUI and no time seen; none of the registered devices is implausible.
    let silent = hub
        .ok(Some(CCVH_STAFF), query, json!({"h": "SILENT"}))
        .await;
    assert_eq!(
        silent["devices"],
        json!([{"devEui": "0101010101010101", "entityId": NEVER_HEARD,
            "health": {"lastSeen": null, "problems": ["SILENT"]}}])
    );
    let flagged = hub
        .ok(Some(CCVH_STAFF), query, json!({"h": "IMPLAUSIBLE"}))
        .await;
    assert_eq!(flagged["devices"], json!([]));
    // DevEUIs are for staff; the register is too.
    let public = hub
        .gql(None, "{ sensorHealth { entityId devEui } }", json!({}))
        .await;
    assert!(
        public["data"]["sensorHealth"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["devEui"].is_null()),
        "{public}"
    );
    let register = hub.gql(None, "{ devices { devEui } }", json!({})).await;
    assert_eq!(code(&register), "FORBIDDEN");

    // The checks land in `device_health`, each device once per check, whichever replica.
    let lake = world.lake().await;
    lake.ensure(vallee_schemas::tables::DeviceHealthTable)
        .await
        .unwrap();
    let sql = "SELECT count(DISTINCT \"checkedAt\") AS checks, count(*) AS rows,
                      count(DISTINCT concat(\"entityId\", CAST(\"checkedAt\" AS VARCHAR))) AS distinct_rows
               FROM device_health";
    eventually(Duration::from_secs(60), "two checks recorded", || async {
        let batches = lake.sql(sql).await.unwrap();
        i64s(&batches, 0).first().copied().unwrap_or(0) >= 2
    })
    .await;
    let batches = lake.sql(sql).await.unwrap();
    assert_eq!(
        i64s(&batches, 1),
        i64s(&batches, 2),
        "one row per device and check"
    );
    let latest = lake
        .sql(&format!(
            "SELECT \"entityId\", coalesce(array_to_string(problems, ','), '') FROM device_health
             WHERE \"checkedAt\" = (SELECT max(\"checkedAt\") FROM device_health)
               AND \"entityId\" IN ('{SELF_EMPTIED}', '{NEVER_HEARD}', '{COLLECTED}')
             ORDER BY \"entityId\""
        ))
        .await
        .unwrap();
    assert_eq!(
        (strs(&latest, 0), strs(&latest, 1)),
        (
            vec![
                COLLECTED.to_string(),
                NEVER_HEARD.to_string(),
                SELF_EMPTIED.to_string()
            ],
            vec![String::new(), "silent".into(), "implausible".into()]
        )
    );
    hub.stop().await;
}
