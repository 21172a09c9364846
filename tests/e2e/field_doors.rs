//! The field doors against the real hub: a gateway posts sensor events over HTTP, gets an
//! answer item by item once the broker acknowledged them, and each lands once (a refused
//! one as a dead letter with the reason it was told); retries change nothing. A ChirpStack
//! network server posts a bin sensor's uplink, which lands as the bin's reading.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use vallee_schemas::contract::Table;

use crate::helpers::*;
use crate::hub::*;

/// Posts `body` to the door of `stream`, with `key` and an optional idempotency key: the
/// status, whether the answer was replayed, and the answer.
async fn post(
    hub: &Hub,
    stream: &str,
    key: Option<&str>,
    idempotency: Option<&str>,
    body: String,
) -> (u16, bool, Value) {
    let mut request = hub
        .client
        .post(hub.url(&format!("/ingest/v1/{stream}")))
        .header("content-type", "application/x-ndjson")
        .body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(idempotency) = idempotency {
        request = request.header("idempotency-key", idempotency);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let replayed = response.headers().contains_key("idempotent-replayed");
    (status, replayed, response.json().await.unwrap_or_default())
}

/// A bin reading in Gignac, now.
fn reading(bin: &str, level: f64) -> String {
    json!({"id": format!("urn:ngsi-ld:WasteContainer:{bin}"), "type": "WasteContainer",
        "dateObserved": Utc::now().to_rfc3339(), "fillingLevel": level,
        "location": {"type": "Point", "coordinates": [3.5512, 43.6521]}})
    .to_string()
}

/// Rows of bin readings and dead letters in the lake.
async fn landed(world: &World) -> (u64, u64) {
    let lake = world.lake().await;
    (
        lake.count(Table::WasteContainers).await.unwrap_or(0),
        lake.count(Table::DeadLetters).await.unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_posts_readings_each_answered_and_landed_once_retries_change_nothing() {
    let (world, hub) = world_and_hub().await;
    let batch = [
        reading("porte-1", 0.4),
        reading("porte-2", 0.6),
        // A level of 7 (700 %): a broken sensor.
        reading("porte-3", 7.0),
    ]
    .join("\n");

    // Who may post where.
    let (status, _, _) = post(&hub, "waste_containers", None, None, batch.clone()).await;
    assert_eq!(status, 401);
    let (status, _, _) = post(
        &hub,
        "waste_containers",
        Some("a guess"),
        None,
        batch.clone(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, answer) = post(&hub, "beacons", Some(GATEWAY), None, batch.clone()).await;
    assert_eq!(status, 403, "{answer}");
    let (status, _, answer) = post(&hub, "parking", Some(GATEWAY), None, batch.clone()).await;
    assert_eq!(status, 404, "{answer}");

    // The batch: two accepted, one refused with its reason, answered item by item.
    let (status, _, answer) =
        post(&hub, "waste_containers", Some(GATEWAY), None, batch.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].clone(), answer["refused"].clone()),
        (json!(2), json!(1))
    );
    let refused = &answer["items"][2];
    assert_eq!(refused["status"], "refused", "{answer}");
    let reason = refused["reason"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(60), "the batch in the lake", || async {
        landed(&world).await == (2, 1)
    })
    .await;
    let lake = world.lake().await;
    let batches = lake.sql("SELECT reason FROM dead_letters").await.unwrap();
    let kept = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(
        kept.contains(&reason),
        "the dead letter keeps the reason told: {kept}"
    );

    // The same batch again: answered as before, marked duplicate, nothing sent.
    let (status, _, again) = post(&hub, "waste_containers", Some(GATEWAY), None, batch).await;
    assert_eq!(status, 200);
    assert_eq!(again["duplicates"], 3, "{again}");
    assert_eq!(again["items"][2]["reason"], reason.as_str());
    // An Idempotency-Key answers a repeated request with its first answer; the next
    // reading of a bin already heard is a new item.
    let next = reading("porte-1", 0.45);
    let (_, replayed, first) = post(
        &hub,
        "waste_containers",
        Some(GATEWAY),
        Some("k-1"),
        next.clone(),
    )
    .await;
    assert!(!replayed);
    let (status, replayed, second) =
        post(&hub, "waste_containers", Some(GATEWAY), Some("k-1"), next).await;
    assert_eq!((status, replayed), (200, true));
    assert_eq!(first, second);
    // Only the new reading landed after the retries.
    eventually(
        Duration::from_secs(60),
        "the new reading in the lake",
        || async { landed(&world).await == (3, 1) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(landed(&world).await, (3, 1));
    hub.stop().await;
}

/// A gateway's batches cut by a SIGKILL of the hub: the gateway sends them all again to
/// the restarted hub, which read back from the topic what was sent before it died, so
/// every reading lands once, whether its first answer came, was lost, or never started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_cut_by_a_killed_hub_are_sent_again_without_duplicates() {
    let world = World::new(3).await;
    let hub = Hub::start(&world, "hub-1").await;
    let batches: Vec<String> = (0..24)
        .map(|b| {
            (0..200)
                .map(|i| reading(&format!("cut-{b}-{i}"), 0.5))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    // The first batch answered before the kill: its resend is all duplicates.
    let (status, _, first) = post(
        &hub,
        "waste_containers",
        Some(GATEWAY),
        None,
        batches[0].clone(),
    )
    .await;
    assert_eq!((status, first["accepted"].as_u64()), (200, Some(200)));
    // The others at once; the hub killed as soon as one of them is answered.
    let (answered, mut told) = tokio::sync::mpsc::channel::<()>(32);
    let client = reqwest::Client::new();
    let url = hub.url("/ingest/v1/waste_containers");
    let senders: Vec<_> = batches[1..]
        .iter()
        .cloned()
        .map(|body| {
            let (client, url, answered) = (client.clone(), url.clone(), answered.clone());
            tokio::spawn(async move {
                let sent = client
                    .post(url)
                    .bearer_auth(GATEWAY)
                    .body(body)
                    .send()
                    .await;
                if sent.is_ok_and(|r| r.status() == 200) {
                    let _ = answered.send(()).await;
                }
            })
        })
        .collect();
    drop(answered);
    tokio::time::timeout(Duration::from_secs(60), told.recv())
        .await
        .expect("a batch answered")
        .expect("a batch answered");
    drop(hub); // SIGKILL
    for sender in senders {
        let _ = sender.await;
    }
    let mut answered_before = 1;
    while told.try_recv().is_ok() {
        answered_before += 1;
    }
    eprintln!("{answered_before} of 23 batches answered before the kill");

    let hub = Hub::start(&world, "hub-2").await;
    let (_, _, again) = post(
        &hub,
        "waste_containers",
        Some(GATEWAY),
        None,
        batches[0].clone(),
    )
    .await;
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(200), Some(200)),
        "every item known after the restart"
    );
    let mut duplicates = 0;
    for batch in &batches[1..] {
        let (status, _, answer) =
            post(&hub, "waste_containers", Some(GATEWAY), None, batch.clone()).await;
        assert_eq!(
            (status, answer["accepted"].as_u64()),
            (200, Some(200)),
            "{answer}"
        );
        duplicates += answer["duplicates"].as_u64().unwrap();
    }
    assert!(
        duplicates >= 200 * answered_before,
        "every answered batch was known: {duplicates}"
    );
    eventually(
        Duration::from_secs(90),
        "every reading in the lake",
        || async { landed(&world).await.0 >= 24 * 200 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lake = world.lake().await;
    let counts = lake
        .sql("SELECT count(*) AS n, count(DISTINCT id) AS ids FROM waste_containers")
        .await
        .unwrap();
    let counts = arrow::util::pretty::pretty_format_batches(&counts)
        .unwrap()
        .to_string();
    assert!(
        counts.contains("| 4800 | 4800 |"),
        "each reading once: {counts}"
    );
    hub.stop().await;
}

/// ChirpStack's and The Things Stack's documented uplinks (tests/fixtures), as their
/// webhooks post them, for the configured device 0101010101010101 (a 1.2 m deep bin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_servers_uplinks_land_once_as_the_bins_readings() {
    const BIN: &str = "urn:ngsi-ld:WasteContainer:gignac-lora-1";
    let (world, hub) = world_and_hub().await;
    let documented: Value =
        serde_json::from_str(include_str!("../fixtures/chirpstack/uplink.json")).unwrap();
    let post = |event: &str, body: &Value| {
        hub.client
            .post(hub.url(&format!("/ingest/v1/chirpstack?event={event}")))
            .header("x-api-key", GATEWAY)
            .json(body)
            .send()
    };
    // Now, frame 42: 300 mm to the waste (0x012c), battery 87 %.
    let mut uplink = documented.clone();
    uplink["time"] = json!(Utc::now().to_rfc3339());
    uplink["fCnt"] = json!(42);
    uplink["data"] = json!("ASxX");
    let answer = post("up", &uplink).await.unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["accepted"], 1, "{answer}");
    // Posted again (a network server's retry): the same uplink, not sent again.
    let again: Value = post("up", &uplink).await.unwrap().json().await.unwrap();
    assert_eq!(again["duplicates"], 1, "{again}");
    // The same frame heard through another gateway (other radio): still the same uplink.
    let mut elsewhere = uplink.clone();
    elsewhere["rxInfo"][0]["rssi"] = json!(-104);
    let again: Value = post("up", &elsewhere).await.unwrap().json().await.unwrap();
    assert_eq!(again["duplicates"], 1, "{again}");
    assert_eq!(again["items"][0]["duplicate"], true, "{again}");
    // Other events are acknowledged and not kept; an unknown device's uplink is kept as a
    // dead letter naming it, never read as some bin's.
    assert_eq!(post("status", &documented).await.unwrap().status(), 204);
    let mut stranger = uplink.clone();
    stranger["deviceInfo"]["devEui"] = json!("ffffffffffffffff");
    let answer = post("up", &stranger).await.unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["items"][0]["reason"], "unknown_device", "{answer}");
    // The documented example itself carries one byte: no reading, kept as a dead letter.
    let refused: Value = post("up", &documented).await.unwrap().json().await.unwrap();
    assert_eq!(refused["refused"], 1, "{refused}");
    // The same sensor moved behind The Things Stack: its documented uplink message, for
    // this DevEUI, a minute later, 360 mm (0x0168): 0.7.
    let mut ttn: Value = serde_json::from_str(include_str!("../fixtures/ttn/uplink.json")).unwrap();
    ttn["end_device_ids"]["dev_eui"] = json!("0101010101010101");
    ttn["uplink_message"]["received_at"] =
        json!((Utc::now() + chrono::Duration::minutes(1)).to_rfc3339());
    ttn["uplink_message"]["frm_payload"] = json!("AWg=");
    ttn["uplink_message"]
        .as_object_mut()
        .unwrap()
        .remove("decoded_payload");
    let answer = hub
        .client
        .post(hub.url("/ingest/v1/ttn"))
        .bearer_auth(GATEWAY)
        .json(&ttn)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["accepted"], 1, "{answer}");

    // The abbey's people counter, behind The Things Stack: 42 visitors (0x002a), then a
    // frame that counted nobody (nothing to record).
    let mut counter = ttn.clone();
    counter["end_device_ids"]["dev_eui"] = json!("0202020202020202");
    counter["uplink_message"]["f_cnt"] = json!(9);
    counter["uplink_message"]["frm_payload"] = json!("ACo=");
    let send = |body: Value| {
        hub.client
            .post(hub.url("/ingest/v1/ttn"))
            .bearer_auth(GATEWAY)
            .json(&body)
            .send()
    };
    let answer: Value = send(counter.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(answer["accepted"], 1, "{answer}");
    counter["uplink_message"]["f_cnt"] = json!(10);
    counter["uplink_message"]["frm_payload"] = json!("AAA=");
    assert_eq!(send(counter).await.unwrap().status(), 204);

    eventually(
        Duration::from_secs(60),
        "the uplinks in the lake",
        || async {
            let visits = world
                .lake()
                .await
                .count(Table::SiteVisits)
                .await
                .unwrap_or(0);
            landed(&world).await == (2, 2) && visits == 1
        },
    )
    .await;
    let visits = world
        .lake()
        .await
        .sql("SELECT site, \"locationCode\", source, count FROM site_visits")
        .await
        .unwrap();
    let visit = arrow::util::pretty::pretty_format_batches(&visits)
        .unwrap()
        .to_string();
    assert!(
        visit.contains("abbaye-de-gellone") && visit.contains("34261") && visit.contains("| 42 "),
        "{visit}"
    );
    let lake = world.lake().await;
    let batches = lake
        .sql(&format!(
            "SELECT \"fillingLevel\", extra FROM waste_containers WHERE id = '{BIN}'"
        ))
        .await
        .unwrap();
    let row = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(row.contains("0.75") && row.contains("0.7 "), "{row}");
    assert!(
        row.contains("rssi") && row.contains("frameCounter"),
        "{row}"
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_registered_through_the_api_are_decoded_and_removed_ones_refused() {
    const SENSOR: &str = "0303030303030303";
    let (world, hub) = world_and_hub().await;
    let register = "mutation($input: RegisterDeviceInput!) { registerDevice(input: $input) { device { devEui communeCode } } }";
    let in_aniane = json!({"input": {"devEui": "0404040404040404", "entityId": "urn:ngsi-ld:WasteContainer:aniane-1",
        "profile": "ULTRASONIC_FILL", "latitude": 43.684, "longitude": 3.593, "depthMm": 1000.0}});
    assert_eq!(
        code(&hub.gql(None, register, in_aniane.clone()).await),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        code(&hub.gql(Some(GIGNAC_STAFF), register, in_aniane).await),
        "FORBIDDEN",
        "a device in Aniane is not Gignac's"
    );

    // A CSV with a wrong line registers nothing and says which line; fixed, both land.
    let import = "mutation($csv: String!) { importDevices(csv: $csv) { registered } }";
    let header = "dev_eui;entity_id;profile;latitude;longitude;depth_mm\n";
    let good = format!(
        "{SENSOR};urn:ngsi-ld:WasteContainer:gignac-api-1;ultrasonic_fill;43.6521;3.5512;1000\n"
    );
    let wrong = format!(
        "{header}{good}0505050505050505;urn:ngsi-ld:WasteContainer:g-2;ultrasonic_fill;43.6521;3.5512;\n"
    );
    let refused = hub
        .gql(Some(GIGNAC_STAFF), import, json!({"csv": wrong}))
        .await;
    assert_eq!(code(&refused), "BAD_USER_INPUT");
    assert!(refused.to_string().contains("depthMm"), "{refused}");
    let fixed = format!(
        "{header}{good}0505050505050505;urn:ngsi-ld:WasteContainer:g-2;ultrasonic_fill;43.6521;3.5512;900\n"
    );
    let imported = hub
        .ok(Some(GIGNAC_STAFF), import, json!({"csv": fixed}))
        .await;
    assert_eq!(imported["importDevices"]["registered"], 2);
    let listed = hub
        .ok(
            Some(GIGNAC_STAFF),
            "{ devices(communeCode: \"34114\") { devEui inConfiguration } }",
            json!({}),
        )
        .await;
    let listed = listed["devices"].as_array().unwrap();
    let in_register = listed.iter().filter(|d| d["inConfiguration"] == false);
    assert_eq!(in_register.count(), 2);
    assert!(
        listed
            .iter()
            .any(|d| d["devEui"] == "0101010101010101" && d["inConfiguration"] == true),
        "the sensor of the configuration is listed too: {listed:?}"
    );
    assert_eq!(
        code(&hub.gql(None, "{ devices { devEui } }", json!({})).await),
        "FORBIDDEN"
    );

    // Its uplinks are decoded by its profile: 250 mm in a 1 m bin is three quarters full.
    let documented: Value =
        serde_json::from_str(include_str!("../fixtures/chirpstack/uplink.json")).unwrap();
    let mut uplink = documented.clone();
    uplink["deviceInfo"]["devEui"] = json!(SENSOR);
    uplink["time"] = json!(Utc::now().to_rfc3339());
    uplink["data"] = json!("APo=");
    let post = |body: Value| {
        hub.client
            .post(hub.url("/ingest/v1/chirpstack?event=up"))
            .header("x-api-key", GATEWAY)
            .json(&body)
            .send()
    };
    let answer: Value = post(uplink.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(answer["accepted"], 1, "{answer}");
    eventually(
        Duration::from_secs(60),
        "the reading in the lake",
        || async { landed(&world).await.0 == 1 },
    )
    .await;
    let level = world
        .lake()
        .await
        .sql("SELECT \"fillingLevel\" FROM waste_containers")
        .await
        .unwrap();
    assert!(
        arrow::util::pretty::pretty_format_batches(&level)
            .unwrap()
            .to_string()
            .contains("0.75")
    );

    // Removed from the register: its next uplink is no bin's reading, but a dead letter.
    hub.ok(
        Some(GIGNAC_STAFF),
        "mutation($id: ID!) { removeDevice(devEui: $id) { removedId } }",
        json!({"id": SENSOR}),
    )
    .await;
    uplink["fCnt"] = json!(43);
    let answer: Value = post(uplink).await.unwrap().json().await.unwrap();
    assert_eq!(answer["items"][0]["reason"], "unknown_device", "{answer}");
    eventually(
        Duration::from_secs(60),
        "the unregistered uplink kept",
        || async { landed(&world).await == (1, 1) },
    )
    .await;
    hub.stop().await;
}
