//! Planned rounds as a collection service uses them: staff keep the fleet (depots,
//! trucks), the hub plans the day's rounds from the bins due, and crews take them away as
//! a printable sheet, a CSV, GPX and GeoJSON.

use std::time::Duration;

use chrono::Utc;
use chrono_tz::Europe::Paris;
use serde_json::{Value, json};
use vallee::simulator::Event;

use crate::helpers::*;
use crate::hub::*;

const FULL_A: &str = "urn:ngsi-ld:WasteContainer:gignac-r1";
const FULL_B: &str = "urn:ngsi-ld:WasteContainer:gignac-r2";
const FULL_C: &str = "urn:ngsi-ld:WasteContainer:gignac-r3";
const PAPER: &str = "urn:ngsi-ld:WasteContainer:gignac-p1";
const GLASS: &str = "urn:ngsi-ld:WasteContainer:gignac-g1";
const HALF: &str = "urn:ngsi-ld:WasteContainer:gignac-half";
const REFUSE_TRUCK: &str = "urn:ngsi-ld:Vehicle:benne-om";
const PAPER_TRUCK: &str = "urn:ngsi-ld:Vehicle:benne-papier";

/// A bin of `kind` at `(lon, lat)` whose readings rise to `level`.
fn bin(id: &str, kind: &str, lon: f64, lat: f64, level: f64) -> Vec<Event> {
    let at =
        json!({"storedWasteKind": kind, "location": {"type": "Point", "coordinates": [lon, lat]}});
    bin_readings(id, at, &[(30, level - 0.2), (20, level - 0.1), (10, level)])
}

async fn get(hub: &Hub, path: &str) -> (u16, String, String) {
    let response = hub.client.get(hub.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

/// The day's plan, as GraphQL answers it.
async fn plan(hub: &Hub, date: &str, kind: Option<&str>) -> Value {
    hub.ok(None, PLAN, json!({"date": date, "kind": kind}))
        .await["rounds"]
        .clone()
}

const PLAN: &str = "query($date: NaiveDate!, $kind: String) {
    rounds(date: $date, wasteKind: $kind) {
        date distanceKm sheetUrl csvUrl geojsonUrl
        rounds { number wasteKind departsAt returnsAt distanceKm loadLitres averageFill
                 truck { id name } depot { id }
                 stops { order arrivesAt bin { entityId reasons } }
                 sheetUrl csvUrl gpxUrl geojsonUrl }
        leftOut { bin { entityId } why } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_keep_the_fleet_and_the_day_is_planned_into_rounds_crews_can_take_away() {
    let (world, hub) = world_and_hub().await;
    let today = Utc::now().with_timezone(&Paris).date_naive().to_string();

    // The fleet: staff keep it (in their commune's scope); citizens may not.
    let depot_input = json!({"input": {"name": "Centre technique de Gignac",
        "communeCode": GIGNAC, "latitude": 43.6500, "longitude": 3.5500,
        "shiftStart": "00:00", "shiftEnd": "23:59", "workingDays": [1, 2, 3, 4, 5, 6, 7]}});
    let depot_mutation =
        "mutation($input: UpdateDepotInput!) { updateDepot(input: $input) { depot { id name } } }";
    let citizen = hub.token().await;
    let refused = hub
        .gql(Some(&citizen), depot_mutation, depot_input.clone())
        .await;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    let broken = hub
        .gql(
            Some(CCVH_STAFF),
            depot_mutation,
            json!({"input": {"name": "Dépôt", "communeCode": GIGNAC, "latitude": 43.65,
                "longitude": 3.55, "shiftStart": "13:00", "shiftEnd": "06:00", "workingDays": [1]}}),
        )
        .await;
    assert_eq!(code(&broken), "BAD_USER_INPUT", "{broken}");
    let depot = hub.ok(Some(CCVH_STAFF), depot_mutation, depot_input).await["updateDepot"]["depot"]
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    let truck_mutation = "mutation($input: UpdateTruckInput!) { updateTruck(input: $input) { truck { id wasteKinds } } }";
    for (id, name, kind) in [
        (REFUSE_TRUCK, "Benne <OM> & \"compacteur\"", "Refuse"),
        (PAPER_TRUCK, "Benne papier", "paper"),
    ] {
        let truck = hub
            .ok(
                Some(CCVH_STAFF),
                truck_mutation,
                json!({"input": {"id": id, "name": name, "depotId": depot,
                    "wasteKinds": [kind], "capacityLitres": 20000}}),
            )
            .await;
        assert_eq!(
            truck["updateTruck"]["truck"]["wasteKinds"],
            json!([kind.to_lowercase()])
        );
    }
    let elsewhere = hub
        .gql(
            Some(GIGNAC_STAFF),
            truck_mutation,
            json!({"input": {"id": "urn:ngsi-ld:Vehicle:x", "name": "X", "depotId": "no-such-depot",
                "wasteKinds": ["refuse"], "capacityLitres": 1000}}),
        )
        .await;
    assert_eq!(code(&elsewhere), "BAD_USER_INPUT", "{elsewhere}");
    let in_use = hub
        .gql(
            Some(CCVH_STAFF),
            "mutation($id: ID!) { removeDepot(id: $id) { removedId } }",
            json!({"id": depot}),
        )
        .await;
    assert_eq!(
        code(&in_use),
        "BAD_USER_INPUT",
        "trucks still leave from it: {in_use}"
    );

    // The bins: three full refuse bins around Gignac, a full paper one, a full glass one
    // (no truck takes glass), and a half-full one that is not due.
    let readings = [
        bin(FULL_A, "refuse", 3.5600, 43.6550, 0.9),
        bin(FULL_B, "refuse", 3.5700, 43.6500, 0.92),
        bin(FULL_C, "refuse", 3.5600, 43.6450, 0.95),
        bin(PAPER, "paper", 3.5450, 43.6520, 0.9),
        bin(GLASS, "glass", 3.5400, 43.6480, 0.95),
        bin_readings(
            HALF,
            json!({"storedWasteKind": "refuse"}),
            &[(60, 0.45), (0, 0.46)],
        ),
    ]
    .concat();
    world.produce(&readings).await;
    eventually(
        Duration::from_secs(90),
        "every bin due, at its last level",
        || async {
            // Plans are kept a few minutes: ask the list itself until every bin is in
            // with its last reading (a plan made on an earlier one would be kept).
            let before = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
            let due = hub
                .ok(
                    None,
                    &format!(
                        "{{ binsToCollect(before: \"{before}\") {{ entityId fillingLevel }} }}"
                    ),
                    json!({}),
                )
                .await;
            let levels: Vec<(String, f64)> = due["binsToCollect"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| {
                    (
                        b["entityId"].as_str().unwrap_or_default().to_string(),
                        b["fillingLevel"].as_f64().unwrap_or_default(),
                    )
                })
                .collect();
            [
                (FULL_A, 0.9),
                (FULL_B, 0.92),
                (FULL_C, 0.95),
                (PAPER, 0.9),
                (GLASS, 0.95),
            ]
            .iter()
            .all(|(id, level)| {
                levels
                    .iter()
                    .any(|(i, l)| i == id && (l - level).abs() < 1e-9)
            })
        },
    )
    .await;

    // A filtered plan first (planned, then kept), then the whole day.
    let paper_only = plan(&hub, &today, Some("paper")).await;
    assert_eq!(paper_only["rounds"].as_array().unwrap().len(), 1);
    assert_eq!(paper_only["rounds"][0]["truck"]["id"], PAPER_TRUCK);
    let day = plan(&hub, &today, None).await;
    let rounds = day["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{day}");
    let stops_of = |truck: &str| -> Vec<String> {
        let round = rounds.iter().find(|r| r["truck"]["id"] == truck).unwrap();
        round["stops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["bin"]["entityId"].as_str().unwrap().to_string())
            .collect()
    };
    let refuse = stops_of(REFUSE_TRUCK);
    // Three bins on a loop east of the depot: the order goes round, not across.
    assert!(
        refuse == [FULL_A, FULL_B, FULL_C] || refuse == [FULL_C, FULL_B, FULL_A],
        "{refuse:?}"
    );
    assert_eq!(stops_of(PAPER_TRUCK), [PAPER]);
    assert_eq!(
        day["leftOut"],
        json!([{"bin": {"entityId": GLASS}, "why": "NO_TRUCK_FOR_KIND"}]),
        "the half-full bin is not due; the glass bin has no truck"
    );
    let refuse_round = rounds
        .iter()
        .find(|r| r["truck"]["id"] == REFUSE_TRUCK)
        .unwrap();
    let arrivals: Vec<&str> = refuse_round["stops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["arrivesAt"].as_str().unwrap())
        .collect();
    assert!(arrivals.windows(2).all(|w| w[0] < w[1]), "{arrivals:?}");
    let km = refuse_round["distanceKm"].as_f64().unwrap();
    // Depot → A → B → C → depot is about 3.9 km in straight lines, times 1.3.
    assert!((3.5..5.5).contains(&km), "{km} km");
    let fill = refuse_round["averageFill"].as_f64().unwrap();
    assert!((fill - 0.923).abs() < 0.01, "{fill}");
    assert_eq!(
        refuse_round["loadLitres"].as_f64().unwrap().round(),
        (2.77 * 660.0_f64).round()
    );

    // What crews take away.
    let number = refuse_round["number"].as_u64().unwrap();
    let (status, kind, gpx) = get(&hub, refuse_round["gpxUrl"].as_str().unwrap()).await;
    assert_eq!((status, kind.as_str()), (200, "application/gpx+xml"));
    assert_eq!(gpx.matches("<wpt ").count(), 3);
    assert_eq!(gpx.matches("<rtept ").count(), 5, "from the depot and back");
    assert!(
        gpx.contains("Benne &lt;OM&gt; &amp; &quot;compacteur&quot;"),
        "{gpx}"
    );
    let (status, _, csv) = get(&hub, day["csvUrl"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 4, "{csv}");
    assert!(lines[0].starts_with("tournee,camion,ordre,arrivee,conteneur"));
    assert!(csv.contains("\"Benne <OM> & \"\"compacteur\"\"\""), "{csv}");
    let (status, kind, geojson) = get(&hub, refuse_round["geojsonUrl"].as_str().unwrap()).await;
    assert_eq!((status, kind.as_str()), (200, "application/geo+json"));
    let geojson: Value = serde_json::from_str(&geojson).unwrap();
    let features = geojson["features"].as_array().unwrap();
    assert_eq!(features.len(), 1 + 3);
    assert_eq!(
        features[0]["geometry"]["coordinates"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let (status, kind, sheet) = get(&hub, day["sheetUrl"].as_str().unwrap()).await;
    assert_eq!((status, kind.as_str()), (200, "text/html; charset=utf-8"));
    assert!(sheet.contains("<html lang=\"fr\">"));
    assert!(sheet.contains(&format!("Tournée {number} du")), "{sheet}");
    assert!(!sheet.contains("<OM>"), "names are escaped");
    for bin in [FULL_A, FULL_B, FULL_C, PAPER] {
        assert!(sheet.contains(bin), "{bin} on the sheet");
    }
    assert!(sheet.contains("Conteneurs à collecter hors tournées") && sheet.contains(GLASS));

    // Hostile or mistaken requests are refused with why, never planned.
    let past = hub
        .gql(None, PLAN, json!({"date": "2020-01-01", "kind": null}))
        .await;
    assert_eq!(code(&past), "BAD_USER_INPUT", "{past}");
    for (path, expected) in [
        ("/rounds/2020-01-01".to_string(), 400),
        ("/rounds/not-a-date/1.csv".to_string(), 400),
        (format!("/rounds/{today}/99.gpx"), 404),
        (format!("/rounds/{today}/all.gpx"), 404),
        (format!("/rounds/{today}/1.exe"), 404),
        (format!("/rounds/{today}?communeCode=99999"), 400),
        (
            format!("/rounds/{today}/all.csv?wasteKind={}", "x".repeat(500)),
            400,
        ),
    ] {
        let (status, _, body) = get(&hub, &path).await;
        assert_eq!(status, expected, "{path}: {body}");
    }
    hub.stop().await;
}
