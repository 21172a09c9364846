//! Open data against a running hub: the catalogues, Table Schemas, downloads in every
//! format with filters and time travel, the public lake, and the privacy rules proven on
//! crafted data (small counts suppressed, no token, no contact, no citizen text or
//! pseudonym). Each scenario crafts what it needs on its own world and hub.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use vallee_schemas::contract::{Stream, Table};

use crate::helpers::*;
use crate::hub::*;

pub async fn produce(world: &World, stream: Stream, events: &[Value]) {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", world.brokers())
        .create()
        .unwrap();
    for e in events {
        let key = e["id"].as_str().unwrap().to_string();
        producer
            .send(
                FutureRecord::to(&world.topics[&stream])
                    .key(&key)
                    .payload(&e.to_string()),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
}

fn token(i: usize) -> String {
    format!("{:032x}", 0xfeed_0000_u64 + i as u64)
}

fn sighting(zone: &str, who: usize, at: DateTime<Utc>) -> Value {
    json!({"id": format!("urn:ngsi-ld:BeaconSighting:{zone}-{who}-{}", at.timestamp()),
        "type": "BeaconSighting", "dateObserved": at.to_rfc3339(), "zone": zone,
        "deviceToken": token(who), "saltEpoch": at.date_naive().to_string(), "rssi": -70.0})
}

pub async fn get(hub: &Hub, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = hub.client.get(hub.url(path)).send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.bytes().await.unwrap().to_vec())
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The rows of an NDJSON download.
pub async fn ndjson(hub: &Hub, path: &str) -> Vec<Value> {
    text(&get(hub, path).await.2)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The lines of a download.
async fn lines(hub: &Hub, path: &str) -> usize {
    text(&get(hub, path).await.2).lines().count()
}

/// The version a download was served at (`none` when nothing is published yet).
fn version(headers: &reqwest::header::HeaderMap) -> String {
    headers["x-dataset-version"].to_str().unwrap().to_string()
}

const DAILY_FILL: &str = "/opendata/remplissage-conteneurs-quotidien.csv";

/// The first day of the crafted data.
fn t0() -> DateTime<Utc> {
    "2026-06-03T08:00:00Z".parse().unwrap()
}

/// Footfall: 3 people in one sector (to be suppressed), 7 in the other; then a late
/// sighting that moves the watermark past both hours.
async fn craft_footfall(world: &World) {
    let t0 = t0();
    let mut sightings = Vec::new();
    for who in 0..3 {
        sightings.push(sighting(
            "za-camalce-nord",
            who,
            t0 + chrono::Duration::minutes(5 + who as i64),
        ));
    }
    // The 7 in one 5-minute window: split over two (5 and 2), the hour would be
    // withheld too, lest the 2 be recomputed from it (`privacy.rs`).
    for who in 10..17 {
        sightings.push(sighting(
            "za-camalce-sud",
            who,
            t0 + chrono::Duration::minutes(20) + chrono::Duration::seconds(who as i64),
        ));
    }
    sightings.push(sighting(
        "za-camalce-sud",
        99,
        t0 + chrono::Duration::hours(3),
    ));
    produce(world, Stream::Beacons, &sightings).await;
}

/// Site presence: 3 visitors at one site (to be suppressed), 12 at another, and a late
/// visit elsewhere.
async fn craft_site_visits(world: &World) {
    let t0 = t0();
    let visits: Vec<Value> = [("argileum", "34267", 3), ("abbaye-de-gellone", "34261", 12)]
        .iter()
        .map(|(site, code, n)| {
            json!({"id": format!("urn:ngsi-ld:SiteVisit:{site}"), "type": "SiteVisit",
                "dateObserved": (t0 + chrono::Duration::minutes(20)).to_rfc3339(),
                "site": site, "locationCode": code, "source": "counter", "count": n})
        })
        .chain(std::iter::once(
            json!({"id": "urn:ngsi-ld:SiteVisit:late", "type": "SiteVisit",
            "dateObserved": (t0 + chrono::Duration::hours(4)).to_rfc3339(),
            "site": "pont-du-diable", "locationCode": "34010", "source": "counter", "count": 40}),
        ))
        .collect();
    produce(world, Stream::Tourism, &visits).await;
}

/// Waits until the footfall and site downloads have both their crafted rows.
async fn wait_for_footfall_downloads(hub: &Hub) {
    eventually(
        Duration::from_secs(90),
        "the crafted footfall and site visits downloadable",
        || async {
            lines(hub, "/opendata/frequentation-zone-activites.csv").await >= 3
                && lines(hub, "/opendata/frequentation-sites-touristiques.csv").await >= 3
        },
    )
    .await;
}

/// Four bins in Gignac on 3 June, filling 0.2 to 0.8.
async fn craft_bins(world: &World) {
    let t0 = t0();
    let bins: Vec<Value> = (0..4)
        .map(|i| {
            json!({"id": format!("urn:ngsi-ld:WasteContainer:gignac-od-{i}"), "type": "WasteContainer",
                "dateObserved": (t0 + chrono::Duration::minutes(i)).to_rfc3339(),
                "fillingLevel": 0.2 * (i + 1) as f64, "location": {"type": "Point", "coordinates": [3.5512, 43.6521]}})
        })
        .collect();
    produce(world, Stream::WasteContainers, &bins).await;
}

/// Waits until the lake holds `n` rows of `table`.
async fn wait_for_rows(world: &World, table: Table, n: u64) {
    let lake = world.lake().await;
    eventually(
        Duration::from_secs(90),
        &format!("{n} rows of {table} in the lake"),
        || async { lake.count(table).await.unwrap_or(0) == n },
    )
    .await;
}

/// The crafted bins of 3 June, then three more a day later: the daily fill download (and
/// its version) before the second day.
pub async fn bins_over_two_days(world: &World, hub: &Hub) -> (String, Vec<u8>) {
    craft_bins(world).await;
    wait_for_rows(world, Table::WasteContainers, 4).await;
    let (_, headers, before) = get(hub, DAILY_FILL).await;
    let more: Vec<Value> = (10..13)
        .map(|i| {
            json!({"id": format!("urn:ngsi-ld:WasteContainer:gignac-od-{i}"), "type": "WasteContainer",
                "dateObserved": (t0() + chrono::Duration::days(1)).to_rfc3339(),
                "fillingLevel": 0.9, "location": {"type": "Point", "coordinates": [3.5512, 43.6521]}})
        })
        .collect();
    produce(world, Stream::WasteContainers, &more).await;
    wait_for_rows(world, Table::WasteContainers, 7).await;
    (version(&headers), before)
}

/// An email that must stay private.
const EMAIL: &str = "jeanne.martin@example.fr";

/// A report with contact details and a name in its text; its id.
async fn craft_report(hub: &Hub) -> String {
    hub.ok(
        None,
        "mutation($input: SubmitReportInput!) { submitReport(input: $input) { report { id } } }",
        json!({"input": {"serviceCode": "graffiti", "description": "Tag insultant visant Jeanne Martin",
            "lat": 43.652149, "long": 3.551234, "contact": {"email": EMAIL}}}),
    )
    .await["submitReport"]["report"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Ideas: one supported by two citizens, its body naming a person; one hidden by flags
/// (7 events). Their ids.
async fn craft_ideas(hub: &Hub) -> Vec<String> {
    let submit = "mutation($input: SubmitIdeaInput!) { submitIdea(input: $input) { idea { id } } }";
    let author = hub.token().await;
    let mut ideas = Vec::new();
    for title in ["Un \"jardin partagé\" près de l'école", "Idée à masquer"] {
        let data = hub
            .ok(
                Some(&author),
                submit,
                json!({"input": {"title": title, "body": "Proposée avec Jeanne Martin.",
                    "theme": "LOCAL_ECONOMY", "communeCode": "34114"}}),
            )
            .await;
        ideas.push(
            data["submitIdea"]["idea"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for _ in 0..2 {
        let citizen = hub.token().await;
        hub.ok(
            Some(&citizen),
            "mutation($id: ID!) { supportIdea(id: $id) { idea { supports } } }",
            json!({"id": ideas[0]}),
        )
        .await;
    }
    for _ in 0..3 {
        let citizen = hub.token().await;
        hub.ok(
            Some(&citizen),
            "mutation($id: ID!) { flagIdea(id: $id, reason: SPAM) { idea { id } } }",
            json!({"id": ideas[1]}),
        )
        .await;
    }
    ideas
}

/// Every kind of crafted data, in the lake and (footfall) in the downloads: the
/// report's id.
async fn craft_everything(world: &World, hub: &Hub) -> String {
    craft_footfall(world).await;
    craft_site_visits(world).await;
    craft_bins(world).await;
    let report = craft_report(hub).await;
    craft_ideas(hub).await;
    crate::places::craft_places(hub).await;
    let lake = world.lake().await;
    eventually(
        Duration::from_secs(90),
        "crafted data in the lake",
        || async {
            lake.count(Table::ReferencePlaces).await.unwrap_or(0) == 3
                && lake.count(Table::CitizenIdeas).await.unwrap_or(0) >= 7
                && lake.count(Table::CitizenReports).await.unwrap_or(0) == 1
                && lake.count(Table::WasteContainers).await.unwrap_or(0) == 4
        },
    )
    .await;
    wait_for_footfall_downloads(hub).await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_without_data_yet_serves_its_header_only() {
    let (_world, hub) = world_and_hub().await;
    let (status, headers, body) = get(&hub, "/opendata/indicateurs-vigne.csv").await;
    assert_eq!(status, 200);
    // The stage created the table empty (version 0), or nothing exists yet.
    let v = version(&headers);
    assert!(v == "none" || v.parse::<i64>().is_ok(), "{v}");
    assert_eq!(
        text(&body).lines().count(),
        1,
        "just the header: {}",
        text(&body)
    );
    assert!(text(&body).starts_with("station,day,"));
    hub.stop().await;
}

/// The share of bin sensors in service per commune and day: one that went silent stays
/// known (and counts against the share) for a week; one giving the same level all day is
/// stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn working_sensors_are_published_per_commune_and_day() {
    let (world, hub) = world_and_hub().await;
    let reading = |bin: &str, at: DateTime<Utc>, level: f64| {
        json!({"id": format!("urn:ngsi-ld:WasteContainer:{bin}"), "type": "WasteContainer",
            "dateObserved": at.to_rfc3339(), "fillingLevel": level,
            "location": {"type": "Point", "coordinates": [3.5512, 43.6521]}})
    };
    let (day1, day2) = (t0(), t0() + chrono::Duration::days(1));
    let mut readings = vec![
        // A working bin, both days; another silent on the second day.
        reading("sain", day1, 0.3),
        reading("sain", day2, 0.5),
        reading("muet", day1, 0.4),
    ];
    // Blinded by a bag on the second day: 12 readings, one level.
    readings
        .extend((0..12).map(|i| reading("bloque", day2 + chrono::Duration::minutes(30 * i), 0.61)));
    produce(&world, Stream::WasteContainers, &readings).await;
    wait_for_rows(&world, Table::WasteContainers, 15).await;
    let path = "/opendata/capteurs-conteneurs-en-service.ndjson";
    eventually(Duration::from_secs(90), "both days published", || async {
        ndjson(&hub, path).await.len() == 2
    })
    .await;
    let rows = ndjson(&hub, path).await;
    let of = |day: &str| {
        let row = rows
            .iter()
            .find(|r| r["day"] == day)
            .unwrap_or_else(|| panic!("{rows:?}"));
        (
            row["communeCode"].as_str().unwrap().to_string(),
            [
                &row["capteurs"],
                &row["ayantEmis"],
                &row["bloques"],
                &row["enService"],
            ]
            .map(|v| v.as_i64().unwrap()),
            row["partEnService"].as_f64().unwrap(),
        )
    };
    assert_eq!(of("2026-06-03"), (GIGNAC.to_string(), [2, 2, 0, 2], 1.0));
    assert_eq!(of("2026-06-04"), (GIGNAC.to_string(), [3, 2, 1, 1], 0.333));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_dataset_or_format_is_not_found() {
    let (_world, hub) = world_and_hub().await;
    assert_eq!(get(&hub, "/opendata/no-such-dataset.csv").await.0, 404);
    assert_eq!(get(&hub, "/opendata/signalements.xlsx").await.0, 404);
    let missing = hub
        .gql(None, "{ dataset(id: \"nope\") { id } }", json!({}))
        .await;
    assert_eq!(code(&missing), "NOT_FOUND");
    hub.stop().await;
}

/// k = 5: the sector with 3 people and the site with 3 visitors are suppressed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn footfall_and_site_counts_under_five_are_published_as_statistical_secrets() {
    let (world, hub) = world_and_hub().await;
    craft_footfall(&world).await;
    craft_site_visits(&world).await;
    wait_for_footfall_downloads(&hub).await;
    let zone = text(
        &get(&hub, "/opendata/frequentation-zone-activites.ndjson")
            .await
            .2,
    );
    let rows: Vec<Value> = zone
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let nord = rows
        .iter()
        .find(|r| r["zone"] == "za-camalce-nord")
        .unwrap();
    assert!(nord.get("peopleCount").is_none_or(Value::is_null), "{nord}");
    assert_eq!(nord["secretStatistique"], true);
    let sud = rows
        .iter()
        .find(|r| r["zone"] == "za-camalce-sud" && r["peopleCount"] == 7)
        .unwrap_or_else(|| panic!("7 people in the south sector: {zone}"));
    assert_eq!(sud["secretStatistique"], false);
    let sites = text(
        &get(&hub, "/opendata/frequentation-sites-touristiques.ndjson")
            .await
            .2,
    );
    let argileum: Value = sites
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["site"] == "argileum")
        .unwrap();
    assert!(argileum.get("visitorCount").is_none_or(Value::is_null));
    assert!(sites.contains("\"visitorCount\":12"), "{sites}");
    hub.stop().await;
}

/// Reports: no contact, no citizen text, no pseudonym; positions rounded; GeoJSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_report_has_its_service_status_and_a_rounded_position_only() {
    let (world, hub) = world_and_hub().await;
    let report = craft_report(&hub).await;
    wait_for_rows(&world, Table::CitizenReports, 1).await;
    let (status, headers, geo) = get(&hub, "/opendata/signalements.geojson").await;
    assert_eq!(status, 200);
    let geo: Value = serde_json::from_slice(&geo).unwrap();
    assert_eq!(geo["type"], "FeatureCollection");
    assert_eq!(geo["metadata"]["version"], version(&headers));
    let feature = &geo["features"][0];
    assert_eq!(feature["properties"]["identifiant"], report.as_str());
    assert_eq!(feature["geometry"]["coordinates"], json!([3.551, 43.652]));
    assert_eq!(feature["properties"]["codeService"], "graffiti");
    assert_eq!(feature["properties"]["statut"], "open");
    let body = text(&get(&hub, "/opendata/signalements.ndjson").await.2);
    for secret in [EMAIL, "Jeanne Martin", "citizen:"] {
        assert!(!body.contains(secret), "{secret} in {body}");
    }
    hub.stop().await;
}

/// Ideas: the visible one with its supports and title (quotes unescaped), not its body;
/// the one hidden by three flags is not published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_visible_ideas_are_published_with_their_title_and_supports() {
    let (world, hub) = world_and_hub().await;
    let ideas = craft_ideas(&hub).await;
    wait_for_rows(&world, Table::CitizenIdeas, 7).await;
    let published = ndjson(&hub, "/opendata/idees.ndjson").await;
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["identifiant"], ideas[0].as_str());
    assert_eq!(
        published[0]["titre"],
        "Un \"jardin partagé\" près de l'école"
    );
    assert_eq!(published[0]["soutiens"], 2);
    assert_eq!(published[0]["etat"], "not_answered");
    assert_eq!(published[0]["communeCode"], "34114");
    hub.stop().await;
}

/// Every download of every dataset, in every format: none leaks a token, the email, the
/// citizen's words or a pseudonym.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_download_in_any_format_leaks_a_device_token_a_contact_a_citizens_words_or_a_pseudonym()
{
    let (world, hub) = world_and_hub().await;
    craft_everything(&world, &hub).await;
    for ds in vallee_opendata::DATASETS {
        for (ext, _) in vallee_opendata::metadata::formats(ds) {
            let (status, _, body) = get(&hub, &format!("/opendata/{}.{ext}", ds.id)).await;
            assert_eq!(status, 200, "{}.{ext}", ds.id);
            let body = text(&body);
            for secret in [EMAIL, "Jeanne Martin", "citizen:", &token(0), &token(12)] {
                assert!(!body.contains(secret), "{secret} in {}.{ext}", ds.id);
            }
            if ext == "parquet" {
                assert!(
                    body.starts_with("PAR1") && body.ends_with("PAR1"),
                    "{}",
                    ds.id
                );
            }
        }
    }
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_filtered_by_commune_and_date_and_a_bad_filter_is_refused() {
    let (world, hub) = world_and_hub().await;
    craft_bins(&world).await;
    wait_for_rows(&world, Table::WasteContainers, 4).await;
    let gignac = text(&get(&hub, &format!("{DAILY_FILL}?commune=34114")).await.2);
    let lines: Vec<&str> = gignac.lines().collect();
    assert_eq!(lines.len(), 2, "{gignac}");
    assert!(
        lines[1].starts_with("2026-06-03,34114,4,4,0.5,0.8,1"),
        "{gignac}"
    );
    let elsewhere = text(&get(&hub, &format!("{DAILY_FILL}?commune=34010")).await.2);
    assert_eq!(elsewhere.lines().count(), 1);
    let later = text(&get(&hub, &format!("{DAILY_FILL}?from=2026-06-04")).await.2);
    assert_eq!(later.lines().count(), 1);
    assert_eq!(get(&hub, &format!("{DAILY_FILL}?from=soon")).await.0, 400);
    assert_eq!(
        get(
            &hub,
            "/opendata/frequentation-zone-activites.csv?commune=34114"
        )
        .await
        .0,
        400
    );
    hub.stop().await;
}

/// Time travel: the version served is named, and asking for it again later gives the
/// same bytes although the table moved on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_at_a_named_version_gives_the_same_bytes_after_the_table_moved_on() {
    let (world, hub) = world_and_hub().await;
    let (version_before, before) = bins_over_two_days(&world, &hub).await;
    let (_, now_headers, now) = get(&hub, DAILY_FILL).await;
    assert_ne!(version(&now_headers), version_before);
    assert_ne!(now, before);
    let (_, old_headers, old) = get(&hub, &format!("{DAILY_FILL}?asOf={version_before}")).await;
    assert_eq!(version(&old_headers), version_before);
    assert_eq!(old, before);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dcat_catalogue_describes_every_dataset_with_its_licence_and_coverage() {
    let (world, hub) = world_and_hub().await;
    craft_bins(&world).await;
    wait_for_rows(&world, Table::WasteContainers, 4).await;
    let (status, _, dcat) = get(&hub, "/opendata/catalog.jsonld").await;
    assert_eq!(status, 200);
    let dcat: Value = serde_json::from_slice(&dcat).unwrap();
    assert_eq!(dcat["@type"], "dcat:Catalog");
    let entries = dcat["dcat:dataset"].as_array().unwrap();
    assert_eq!(entries.len(), vallee_opendata::DATASETS.len());
    for (entry, ds) in entries.iter().zip(vallee_opendata::DATASETS) {
        assert_eq!(entry["dct:identifier"], ds.id, "a plain string id");
        assert_eq!(
            entry["dct:license"]["@id"],
            "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"
        );
        assert!(!entry["dcat:distribution"].as_array().unwrap().is_empty());
    }
    let fill = entries
        .iter()
        .find(|e| e["dct:identifier"] == "remplissage-conteneurs-quotidien")
        .unwrap();
    assert!(fill["dct:modified"]["@value"].is_string(), "{fill}");
    assert_eq!(
        fill["dct:temporal"]["dcat:startDate"]["@value"],
        "2026-06-03"
    );
    assert!(
        fill["dct:rights"]
            .as_str()
            .unwrap()
            .starts_with("Communauté de communes Vallée de l'Hérault — données mises à jour le ")
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scdl_catalogue_lists_every_dataset_under_the_publishers_siret() {
    let (_world, hub) = world_and_hub().await;
    let (_, _, scdl) = get(&hub, "/opendata/catalog.csv").await;
    let scdl = text(&scdl);
    assert!(scdl.starts_with("COLL_NOM,COLL_SIRET,ID,TITRE,"));
    assert!(
        scdl.lines().nth(1).unwrap().contains(",24340069400010,"),
        "the configured SIRET: {scdl}"
    );
    assert_eq!(scdl.lines().count(), 1 + vallee_opendata::DATASETS.len());
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_dataset_publishes_its_table_schema() {
    let (_world, hub) = world_and_hub().await;
    let (status, _, schema) = get(&hub, "/opendata/frequentation-zone-activites/schema.json").await;
    assert_eq!(status, 200);
    let schema: Value = serde_json::from_slice(&schema).unwrap();
    let people = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "peopleCount")
        .unwrap();
    assert_eq!(people["type"], "integer");
    assert_eq!(schema["licenses"][0]["name"], "etalab-2.0");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_datasets_are_listed_over_graphql_with_their_licence() {
    let (_world, hub) = world_and_hub().await;
    let listed = hub
        .ok(
            None,
            "{ datasets { id license version distributions { format } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["datasets"].as_array().unwrap().len(),
        vallee_opendata::DATASETS.len()
    );
    assert_eq!(listed["datasets"][0]["license"], "etalab-2.0");
    hub.stop().await;
}

/// The same rows as the downloads in GraphQL, paged, filtered and at a version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datasets_rows_are_served_over_graphql_paged_filtered_and_at_a_version() {
    let (world, hub) = world_and_hub().await;
    let (version, _) = bins_over_two_days(&world, &hub).await;
    let page = hub
        .ok(
            None,
            "query($v: String) { dataset(id: \"remplissage-conteneurs-quotidien\") {
                version rows(first: 1, asOf: $v, filter: {communeCode: \"34114\"}) {
                    edges { node { values } cursor } pageInfo { hasNextPage } } } }",
            json!({"v": version}),
        )
        .await;
    let rows = &page["dataset"]["rows"];
    assert_eq!(rows["edges"][0]["node"]["values"]["mesures"], 4, "{page}");
    assert_eq!(
        rows["pageInfo"]["hasNextPage"], false,
        "one day at that version"
    );
    let now_rows = hub
        .ok(
            None,
            "{ dataset(id: \"remplissage-conteneurs-quotidien\") { rows(first: 1) {
                edges { node { values } } pageInfo { hasNextPage } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        now_rows["dataset"]["rows"]["pageInfo"]["hasNextPage"], true,
        "two days now"
    );
    hub.stop().await;
}

/// Waits until the public lake records the daily fill dataset at its current version.
pub async fn wait_for_public_daily_fill(world: &World, hub: &Hub) {
    let public = PublicLake::open(world);
    eventually(
        Duration::from_secs(60),
        "public tables up to date",
        || async {
            let (_, headers, _) = get(hub, DAILY_FILL).await;
            let current: i64 = version(&headers).parse().unwrap();
            public
                .records("remplissage-conteneurs-quotidien", current)
                .await
        },
    )
    .await;
}

/// The public lake: every dataset with data is a Delta table under public/, same rows as
/// the download, recording the source version. The hub's own Delta reader checks it (no
/// Python needed); Python deltalake, what researchers use, then reads it as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_lake_holds_every_published_dataset_with_the_rows_of_its_download() {
    let (world, hub) = world_and_hub().await;
    craft_everything(&world, &hub).await;
    wait_for_public_daily_fill(&world, &hub).await;
    let public = PublicLake::open(&world);
    // Datasets are published one after the other: wait for the pass that follows the data.
    eventually(
        Duration::from_secs(60),
        "every dataset with data published",
        || async {
            for ds in vallee_opendata::DATASETS {
                let (_, headers, csv) = get(&hub, &format!("/opendata/{}.csv", ds.id)).await;
                let rows = text(&csv).lines().count() as u64 - 1;
                let published = match public.rows(ds.id).await {
                    Some(n) => n == rows,
                    None => version(&headers) == "none",
                };
                if !published {
                    return false;
                }
            }
            true
        },
    )
    .await;
    let python = public_tables(&world);
    for ds in vallee_opendata::DATASETS {
        let (_, headers, csv) = get(&hub, &format!("/opendata/{}.csv", ds.id)).await;
        let rows = text(&csv).lines().count() as u64 - 1;
        let Some(n) = public.rows(ds.id).await else {
            assert_eq!(
                headers["x-dataset-version"], "none",
                "{} unpublished",
                ds.id
            );
            continue;
        };
        assert_eq!(n, rows, "{} in public/", ds.id);
        if let Some(tables) = &python {
            assert_eq!(tables[ds.id]["rows"], rows, "{} read by Python", ds.id);
        }
    }
    if let Some(tables) = &python {
        assert!(
            !tables.to_string().contains("actor"),
            "no pseudonym column in public/"
        );
    }
    hub.stop().await;
}

/// The public lake as the hub's own Delta reader sees it.
struct PublicLake(vallee_lake::Lake);

impl PublicLake {
    fn open(world: &World) -> PublicLake {
        let options = vallee_lake::LakeOptions {
            root: world.data_dir().join("public"),
            ..Default::default()
        };
        PublicLake(vallee_lake::Lake::open_bare(options).unwrap())
    }

    /// Whether dataset `id` records source version `version` or a later one.
    async fn records(&self, id: &'static str, version: i64) -> bool {
        let stamp = vallee_lake::replace::Stamp::AtLeast(format!("vallee-publish/{id}"), version);
        self.0.replaced_with(id, &[stamp]).await.unwrap()
    }

    /// Rows of dataset `id` (`None`: not published).
    async fn rows(&self, id: &str) -> Option<u64> {
        let ctx = self
            .0
            .session_of_existing(&[(id, "t".to_string())])
            .await
            .unwrap();
        let df = ctx.sql("SELECT count(*) FROM t").await.ok()?;
        let batches = df.collect().await.unwrap();
        let n = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0);
        Some(n as u64)
    }
}

/// The public lake as Python deltalake reads it (`None`, with the reason printed, when
/// deltalake is not installed and not required).
fn public_tables(world: &World) -> Option<Value> {
    let script = format!("{}/tests/python/read_public.py", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(world.data_dir().join("public"))
        .output();
    let required = std::env::var("VALLEE_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
    match out {
        Ok(o) if o.status.code() == Some(3) && !required => {
            eprintln!("python deltalake not installed: the Python read of public/ is skipped");
            None
        }
        Ok(o) => {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            Some(serde_json::from_slice(&o.stdout).unwrap())
        }
        Err(e) => {
            assert!(!required, "python3: {e}");
            eprintln!("no python3 ({e}): the Python read of public/ is skipped");
            None
        }
    }
}

/// A site counter uploads yesterday's counts in one batch today: within the tourism
/// stream's correction horizon (48 h) they correct yesterday's hour as a new revision, and
/// the public download follows; a batch older than that is counted in the metrics, kept
/// in `late_events`, and folded into its hour by `vallee lake fold-late`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counters_batch_from_yesterday_corrects_yesterdays_hour() {
    let (world, hub) = world_and_hub().await;
    let visit = |id: &str, at: DateTime<Utc>, count: i64| {
        json!({"id": format!("urn:ngsi-ld:SiteVisit:{id}"), "type": "SiteVisit",
            "dateObserved": at.to_rfc3339(), "site": "abbaye-de-gellone",
            "locationCode": "34261", "source": "counter", "count": count})
    };
    let yesterday = t0();
    let today = t0() + chrono::Duration::hours(26);
    // Yesterday's first visitors, then today's traffic moves the watermark past it.
    produce(&world, Stream::Tourism, &[visit("first", yesterday, 6)]).await;
    produce(&world, Stream::Tourism, &[visit("today", today, 8)]).await;
    // A handle that knows the stage's output table (the lake registers what it ensured).
    let lake = world.lake().await;
    lake.ensure(vallee_schemas::tables::OutputTable::SitePresence)
        .await
        .unwrap();
    let hour_of = |start: DateTime<Utc>| {
        format!(
            "SELECT \"visitorCount\", revision FROM site_presence WHERE site = 'abbaye-de-gellone' \
             AND CAST(hour AS BIGINT) = {} ORDER BY revision DESC",
            start.timestamp_micros()
        )
    };
    // The latest revision of the hour: (visitors, revision).
    let latest = |batches: &[arrow::record_batch::RecordBatch]| -> Option<(i64, i64)> {
        Some((*i64s(batches, 0).first()?, *i64s(batches, 1).first()?))
    };
    let yesterday_hour = hour_of(yesterday);
    eventually(
        Duration::from_secs(90),
        "yesterday's hour closed",
        || async {
            lake.sql(&yesterday_hour)
                .await
                .ok()
                .and_then(|b| latest(&b))
                .is_some()
        },
    )
    .await;
    let before = latest(&lake.sql(&yesterday_hour).await.unwrap()).unwrap();
    assert_eq!(before.0, 6);
    // Today, the counter's batch for yesterday (26 h late), and one from four days ago.
    produce(
        &world,
        Stream::Tourism,
        &[
            visit("batch-1", yesterday + chrono::Duration::minutes(30), 7),
            visit("stale", yesterday - chrono::Duration::days(3), 50),
        ],
    )
    .await;
    eventually(
        Duration::from_secs(90),
        "yesterday's hour corrected",
        || async {
            lake.sql(&yesterday_hour)
                .await
                .ok()
                .and_then(|b| latest(&b))
                .is_some_and(|(visitors, revision)| visitors == 13 && revision > before.1)
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the stale batch counted apart",
        || async {
            http_get(hub.http, "/metrics").is_ok_and(|(_, m)| {
                m.contains("vallee_stream_too_late_total{stream=\"tourism\"} 1")
            })
        },
    )
    .await;
    let stale = hour_of(yesterday - chrono::Duration::days(3));
    assert!(
        latest(&lake.sql(&stale).await.unwrap()).is_none(),
        "four days late: no window"
    );

    // The stale batch is kept in `late_events`, pending, with its reason; once ingest has
    // landed it, staff fold it into its hour while the hub runs.
    lake.ensure(vallee_schemas::tables::OutputTable::LateEvents)
        .await
        .unwrap();
    let late_state = "SELECT state, reason, count, revision FROM late_events \
         WHERE id = 'urn:ngsi-ld:SiteVisit:stale' ORDER BY revision DESC";
    eventually(Duration::from_secs(60), "the stale batch kept", || async {
        lake.sql(late_state)
            .await
            .is_ok_and(|b| strings(&b, "state").first().is_some_and(|s| s == "pending"))
    })
    .await;
    let kept = lake.sql(late_state).await.unwrap();
    assert_eq!(strings(&kept, "reason"), ["beyond_correction_horizon"]);
    assert_eq!(i64s(&kept, 2), [50]);
    // Staff see it waiting in the metrics (sampled every 30 s).
    eventually(
        Duration::from_secs(45),
        "the pending one in the metrics",
        || async {
            http_get(hub.http, "/metrics").is_ok_and(|(_, m)| {
                m.contains("vallee_late_events{stream=\"tourism\",state=\"pending\"} 1")
            })
        },
    )
    .await;
    eventually(
        Duration::from_secs(60),
        "the stale batch landed",
        || async {
            lake.sql("SELECT count(*) FROM site_visits WHERE id = 'urn:ngsi-ld:SiteVisit:stale'")
                .await
                .is_ok_and(|b| i64s(&b, 0) == [1])
        },
    )
    .await;
    let fold = || {
        let out = world.lake_command(&["fold-late"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let printed = fold();
    assert!(
        printed.contains("1 late visits pending: 1 folded, 0 waiting"),
        "{printed}"
    );
    assert_eq!(
        latest(&lake.sql(&stale).await.unwrap()),
        Some((50, 0)),
        "the stale hour has its window now"
    );
    let kept = lake.sql(late_state).await.unwrap();
    assert_eq!(strings(&kept, "state"), ["folded", "pending"]);
    // Yesterday's hour, corrected by the stage already, is not touched.
    let yesterday_now = latest(&lake.sql(&yesterday_hour).await.unwrap()).unwrap();
    assert_eq!(yesterday_now.0, 13);
    // A second fold finds nothing to do and writes nothing.
    let printed = fold();
    assert!(printed.contains("0 late visits pending"), "{printed}");
    assert_eq!(i64s(&lake.sql(&stale).await.unwrap(), 0).len(), 1);
    hub.stop().await;
}
