//! Vineyard partners against a running hub: the partner's own feed (HTTP with a cursor,
//! and a GraphQL subscription), and the partner's sharing settings: `pins-2` shared with
//! the public, `pins-3` with researchers only, `pins-1` private (the default). Each
//! scenario runs on its own world and hub.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use vallee_schemas::contract::{Stream, Table};

use crate::helpers::*;
use crate::hub::*;
use crate::open_data::{get, produce, text};

/// My parcel (the partner's, private), and a neighbouring estate's.
const MINE: &str = "urn:ngsi-ld:AgriParcel:pins-1";
const THEIRS: &str = "urn:ngsi-ld:AgriParcel:voisin-1";

fn t0() -> DateTime<Utc> {
    "2026-04-20T02:00:00Z".parse().unwrap()
}

fn parcel(parcel: &str, minutes: i64, moisture: f64) -> Value {
    json!({"id": format!("urn:ngsi-ld:AgriParcelRecord:{}-{minutes}", parcel.rsplit(':').next().unwrap()),
        "type": "AgriParcelRecord", "hasAgriParcel": parcel, "soilMoistureVwc": moisture,
        "dateObserved": (t0() + chrono::Duration::minutes(minutes)).to_rfc3339()})
}

fn station(name: &str, covers: &str, minutes: i64, temperature: f64) -> Value {
    json!({"id": format!("urn:ngsi-ld:WeatherObserved:{name}"), "type": "WeatherObserved",
        "temperature": temperature, "precipitation": 0.0, "refParcels": [covers],
        "dateObserved": (t0() + chrono::Duration::minutes(minutes)).to_rfc3339(),
        "location": {"type": "Point", "coordinates": [3.59, 43.68]}})
}

/// Two readings of my parcel, one of the neighbour's; a frost dip at the station covering
/// my parcel, another station covering the neighbour's. Waits until they are in the lake.
async fn first_readings(world: &World) {
    let first: Vec<Value> = vec![
        parcel(MINE, 0, 0.21),
        parcel(MINE, 10, 0.22),
        parcel(THEIRS, 0, 0.30),
        station("st-pins", MINE, 0, 3.0),
        station("st-pins", MINE, 10, 0.5),
        station("st-voisin", THEIRS, 0, 3.0),
        station("st-voisin", THEIRS, 10, 0.4),
    ];
    produce(world, Stream::Vineyards, &first).await;
    let lake = world.lake().await;
    eventually(
        Duration::from_secs(90),
        "the first readings in the lake",
        || async {
            lake.count(Table::ParcelRecords).await.unwrap_or(0) == 3
                && lake.count(Table::WeatherObserved).await.unwrap_or(0) == 4
        },
    )
    .await;
}

/// A new reading of each parcel and of my station. Waits until they are in the lake.
async fn new_readings(world: &World) {
    produce(
        world,
        Stream::Vineyards,
        &[
            parcel(MINE, 20, 0.23),
            parcel(THEIRS, 20, 0.31),
            station("st-pins", MINE, 20, 2.5),
        ],
    )
    .await;
    let lake = world.lake().await;
    eventually(
        Duration::from_secs(90),
        "the new readings in the lake",
        || async { lake.count(Table::ParcelRecords).await.unwrap_or(0) == 5 },
    )
    .await;
}

/// `GET /feeds/vineyard`, from `since`, as `token`.
async fn feed(hub: &Hub, since: Option<&str>, token: Option<&str>) -> reqwest::Response {
    let mut request = hub
        .client
        .get(format!("http://{}/feeds/vineyard", hub.http));
    if let Some(s) = since {
        request = request.query(&[("since", s)]);
    }
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    request.send().await.unwrap()
}

/// The partner's feed from `since`: its rows and the cursor to resume after them.
async fn read(hub: &Hub, since: Option<&str>) -> (Vec<Value>, String) {
    let response = feed(hub, since, Some(PARTNER)).await;
    assert_eq!(response.status(), 200);
    let lines: Vec<Value> = response
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (rows, cursor) = lines.split_at(lines.len() - 1);
    assert_eq!(cursor[0]["feed"], "cursor");
    (
        rows.to_vec(),
        cursor[0]["cursor"].as_str().unwrap().to_string(),
    )
}

/// Rows of one kind (`parcelRecord`, `weather`, `alert`).
fn kinds(rows: &[Value], feed: &str) -> usize {
    rows.iter().filter(|r| r["feed"] == feed).count()
}

/// The partner feed subscription from `cursor`.
fn feed_subscription(cursor: &str) -> String {
    format!("subscription {{ partnerFeed(since: \"{cursor}\") {{ feed row cursor }} }}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vineyard_feed_needs_a_partners_token() {
    let (_world, hub) = world_and_hub().await;
    assert_eq!(feed(&hub, None, None).await.status(), 401);
    assert_eq!(feed(&hub, None, Some(CCVH_STAFF)).await.status(), 401);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partners_feed_serves_its_parcels_and_their_covering_stations_only() {
    let (world, hub) = world_and_hub().await;
    first_readings(&world).await;
    let (rows, _) = read(&hub, None).await;
    assert_eq!(kinds(&rows, "parcelRecord"), 2, "{rows:?}");
    assert_eq!(
        kinds(&rows, "weather"),
        2,
        "the covering station only: {rows:?}"
    );
    for r in &rows {
        let text = r.to_string();
        assert!(!text.contains("voisin"), "another estate's data: {text}");
    }
    hub.stop().await;
}

/// A connection without the partner's token in its `connection_init` gets no feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_without_the_partners_token_gets_no_feed() {
    let (_world, hub) = world_and_hub().await;
    let (_, cursor) = read(&hub, None).await;
    let mut anonymous = subscribe_with(hub.http, json!({}), &feed_subscription(&cursor)).await;
    let refused = tokio::time::timeout(Duration::from_secs(10), anonymous.next())
        .await
        .expect("an answer")
        .unwrap()
        .unwrap();
    assert!(
        refused.to_text().unwrap().contains("UNAUTHENTICATED"),
        "{refused}"
    );
    hub.stop().await;
}

/// The feed over GraphQL, from the cursor of an HTTP read: the new reading of my parcel
/// is pushed, and nothing of the neighbour's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partners_subscription_pushes_the_new_readings_of_its_parcels_only() {
    let (world, hub) = world_and_hub().await;
    first_readings(&world).await;
    let (_, cursor) = read(&hub, None).await;
    let mut live = subscribe_with(
        hub.http,
        json!({"token": PARTNER}),
        &feed_subscription(&cursor),
    )
    .await;
    new_readings(&world).await;
    // The stage may push the frost alert first: items come until the new reading does,
    // every one of them about my parcel.
    let pushed = loop {
        let item = next_data(&mut live, Duration::from_secs(30)).await;
        assert!(!item.to_string().contains(THEIRS), "{item}");
        if item["partnerFeed"]["feed"] == "parcelRecord" {
            break item;
        }
    };
    assert_eq!(pushed["partnerFeed"]["row"]["hasAgriParcel"], MINE);
    assert_eq!(pushed["partnerFeed"]["row"]["soilMoistureVwc"], 0.23);
    hub.stop().await;
}

/// New readings: the cursor serves exactly them, then (as the stage catches up) the frost
/// alert on my parcel; never a row twice, no row of the whole history missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_follows_its_parcels_from_a_cursor_without_gap_or_duplicate() {
    let (world, hub) = world_and_hub().await;
    first_readings(&world).await;
    let (rows, cursor) = read(&hub, None).await;
    new_readings(&world).await;
    let mut all = rows.clone();
    // The API reads a snapshot of the lake up to `lake_refresh_ms` (1 s) old: the feed
    // serves the new reading once the snapshot holds it. Every row served meanwhile is
    // kept, and each read resumes from the cursor of the one before.
    let progress = std::cell::RefCell::new((Vec::<Value>::new(), cursor));
    let (progress_ref, hub_ref) = (&progress, &hub);
    eventually(
        Duration::from_secs(30),
        "the new reading in the partner's feed",
        move || async move {
            let since = progress_ref.borrow().1.clone();
            let (rows, next) = read(hub_ref, Some(&since)).await;
            let mut p = progress_ref.borrow_mut();
            p.0.extend(rows);
            p.1 = next;
            kinds(&p.0, "parcelRecord") > 0
        },
    )
    .await;
    let (more, mut cursor) = progress.into_inner();
    assert_eq!(
        kinds(&more, "parcelRecord"),
        1,
        "only the new reading: {more:?}"
    );
    assert_eq!(
        more.iter().find(|r| r["feed"] == "parcelRecord").unwrap()["soilMoistureVwc"],
        0.23
    );
    all.extend(more);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while kinds(&all, "alert") == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (more, next) = read(&hub, Some(&cursor)).await;
        all.extend(more);
        cursor = next;
    }
    let alert = all
        .iter()
        .find(|r| r["feed"] == "alert")
        .expect("the frost alert on my parcel");
    assert_eq!(
        (alert["kind"].as_str(), alert["entityId"].as_str()),
        (Some("frost"), Some(MINE))
    );
    // Every row of one download of the whole history was followed, none twice (a last call
    // catches up with what landed meanwhile).
    let (history, _) = read(&hub, None).await;
    let (more, _) = read(&hub, Some(&cursor)).await;
    all.extend(more);
    let key = |r: &Value| {
        let mut r = r.clone();
        if let Some(o) = r.as_object_mut() {
            o.remove("_ingested_at");
        }
        r.to_string()
    };
    let followed: Vec<String> = all.iter().map(key).collect();
    let distinct: std::collections::BTreeSet<&String> = followed.iter().collect();
    assert_eq!(distinct.len(), followed.len(), "a row served twice");
    for row in history.iter().map(key) {
        assert!(distinct.contains(&row), "a gap: {row}");
    }
    hub.stop().await;
}

/// Once the stage raised the frost alert on my parcel (everything processed), no public
/// download names either estate's parcel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_partners_parcel_appears_in_any_public_download() {
    let (world, hub) = world_and_hub().await;
    first_readings(&world).await;
    new_readings(&world).await;
    eventually(
        Duration::from_secs(90),
        "the frost alert in the partner's feed",
        || async { kinds(&read(&hub, None).await.0, "alert") > 0 },
    )
    .await;
    for ds in vallee_opendata::DATASETS {
        let (status, _, body) = get(&hub, &format!("/opendata/{}.ndjson", ds.id)).await;
        assert_eq!(status, 200);
        let body = text(&body);
        for parcel in [MINE, THEIRS] {
            assert!(!body.contains(parcel), "{parcel} in {}", ds.id);
        }
    }
    hub.stop().await;
}

/// Readings of the three parcels of the partner, `pins-2` twice; waits for them in the
/// lake.
async fn shared_readings(world: &World) {
    let t0: DateTime<Utc> = "2026-05-12T06:00:00Z".parse().unwrap();
    let reading = |parcel: &str, minutes: i64, moisture: f64, soil: f64| {
        json!({"id": format!("urn:ngsi-ld:AgriParcelRecord:{parcel}-{minutes}"),
            "type": "AgriParcelRecord", "hasAgriParcel": format!("urn:ngsi-ld:AgriParcel:{parcel}"),
            "soilMoistureVwc": moisture, "soilTemperature": soil,
            "dateObserved": (t0 + chrono::Duration::minutes(minutes)).to_rfc3339(),
            "location": {"type": "Point", "coordinates": [3.5512, 43.6521]}})
    };
    produce(
        world,
        Stream::Vineyards,
        &[
            reading("pins-1", 0, 0.11, 9.0),
            reading("pins-2", 0, 0.20, 8.0),
            reading("pins-2", 30, 0.30, 12.0),
            reading("pins-3", 0, 0.40, 14.0),
        ],
    )
    .await;
    let lake = world.lake().await;
    eventually(
        Duration::from_secs(90),
        "the readings in the lake",
        || async { lake.count(Table::ParcelRecords).await.unwrap_or(0) == 4 },
    )
    .await;
}

/// The short names of the parcels in the shared parcels' Delta table under `folder`.
async fn parcels_in(world: &World, folder: &str) -> Vec<String> {
    let published = vallee_lake::Lake::open_bare(vallee_lake::LakeOptions {
        root: world.data_dir().join(folder),
        ..Default::default()
    })
    .unwrap();
    let ctx = published
        .session_of_existing(&[("parcelles-partagees", "p".to_string())])
        .await
        .unwrap();
    let batches = ctx
        .sql("SELECT parcelle FROM p ORDER BY parcelle")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut parcels = Vec::new();
    for b in &batches {
        let a = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).unwrap();
        let a = a
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        parcels.extend(
            a.iter()
                .flatten()
                .map(|p| p.rsplit(':').next().unwrap().to_string()),
        );
    }
    parcels
}

/// Only daily aggregates leave the hub: pins-2's day, in the catalogue too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parcel_shared_with_the_public_is_published_as_daily_aggregates() {
    let (world, hub) = world_and_hub().await;
    shared_readings(&world).await;
    let (status, _, body) = get(&hub, "/opendata/parcelles-partagees.ndjson").await;
    assert_eq!(status, 200);
    let rows: Vec<Value> = text(&body)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let day = &rows[0];
    assert_eq!(day["parcelle"], "urn:ngsi-ld:AgriParcel:pins-2");
    assert_eq!(
        (&day["partage"], &day["day"], &day["communeCode"]),
        (&json!("public"), &json!("2026-05-12"), &json!("34114"))
    );
    assert_eq!(day["mesures"], 2);
    assert_eq!(day["humiditeSolMoyenne"], 0.25);
    assert_eq!(
        (
            &day["temperatureSolMin"],
            &day["temperatureSolMoyenne"],
            &day["temperatureSolMax"]
        ),
        (&json!(8.0), &json!(10.0), &json!(12.0))
    );
    let (_, _, catalog) = get(&hub, "/opendata/catalog.jsonld").await;
    assert!(text(&catalog).contains("\"parcelles-partagees\""));
    hub.stop().await;
}

/// Neither the private parcel nor the one shared with researchers is in a public download
/// or in the public lake on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_research_only_parcels_appear_in_nothing_public() {
    let (world, hub) = world_and_hub().await;
    shared_readings(&world).await;
    for ds in vallee_opendata::DATASETS {
        let (status, _, body) = get(&hub, &format!("/opendata/{}.csv", ds.id)).await;
        assert_eq!(status, 200);
        let body = text(&body);
        for private in ["pins-1", "pins-3"] {
            assert!(!body.contains(private), "{private} in {}", ds.id);
        }
    }
    eventually(Duration::from_secs(30), "pins-2 in public/", || async {
        parcels_in(&world, "public").await == ["pins-2"]
    })
    .await;
    hub.stop().await;
}

/// Researchers see both shared parcels (the public one and their own), never pins-1, in
/// SQL and in research/ on disk for their own tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn researchers_see_the_public_and_research_parcels_but_never_a_private_one() {
    let (world, hub) = world_and_hub().await;
    shared_readings(&world).await;
    let researcher_rows = || async {
        let answer: Value = hub
            .client
            .post(hub.url("/sql"))
            .bearer_auth(RESEARCHER)
            .json(&json!({"sql": "SELECT parcelle, partage, mesures FROM parcelles_partagees ORDER BY parcelle"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["rows"].clone()
    };
    let expected = json!([
        {"parcelle": "urn:ngsi-ld:AgriParcel:pins-2", "partage": "public", "mesures": 2},
        {"parcelle": "urn:ngsi-ld:AgriParcel:pins-3", "partage": "recherche", "mesures": 1},
    ]);
    eventually(
        Duration::from_secs(60),
        "both shared parcels published for researchers",
        || async { researcher_rows().await == expected },
    )
    .await;
    assert_eq!(parcels_in(&world, "research").await, ["pins-2", "pins-3"]);
    hub.stop().await;
}
