//! Open data against a running hub: the catalogues, Table Schemas, downloads in every
//! format with filters and time travel, and the privacy rules proven on crafted data
//! (small counts suppressed, no token, no contact, no citizen text or pseudonym).

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use vallee_schemas::contract::{Stream, Table};

use crate::helpers::*;
use crate::hub::Hub;

async fn produce(world: &World, stream: Stream, events: &[Value]) {
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

async fn get(hub: &Hub, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = hub.client.get(hub.url(path)).send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.bytes().await.unwrap().to_vec())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogues_downloads_time_travel_and_privacy_rules() {
    let world = World::new(3).await;
    let hub = Hub::start(&world, "hub").await;
    let t0: DateTime<Utc> = "2026-06-03T08:00:00Z".parse().unwrap();

    // A dataset with nothing yet answers its header only; an unknown one is 404.
    let (status, headers, body) = get(&hub, "/opendata/indicateurs-vigne.csv").await;
    assert_eq!(status, 200);
    // The stage created the table empty (version 0), or nothing exists yet.
    let v = headers["x-dataset-version"].to_str().unwrap();
    assert!(v == "none" || v.parse::<i64>().is_ok(), "{v}");
    assert_eq!(
        text(&body).lines().count(),
        1,
        "just the header: {}",
        text(&body)
    );
    assert!(text(&body).starts_with("station,day,"));
    assert_eq!(get(&hub, "/opendata/no-such-dataset.csv").await.0, 404);
    assert_eq!(get(&hub, "/opendata/signalements.xlsx").await.0, 404);

    // Crafted footfall: 3 people in one sector (suppressed), 7 in the other; then a late
    // sighting that moves the watermark past both hours.
    let mut sightings = Vec::new();
    for who in 0..3 {
        sightings.push(sighting(
            "za-camalce-nord",
            who,
            t0 + chrono::Duration::minutes(5 + who as i64),
        ));
    }
    for who in 10..17 {
        sightings.push(sighting(
            "za-camalce-sud",
            who,
            t0 + chrono::Duration::minutes(10 + who as i64),
        ));
    }
    sightings.push(sighting(
        "za-camalce-sud",
        99,
        t0 + chrono::Duration::hours(3),
    ));
    produce(&world, Stream::Beacons, &sightings).await;
    // Site presence: 3 visitors at one site (suppressed), 12 at another.
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
    produce(&world, Stream::Tourism, &visits).await;
    // Bins in Gignac.
    let bins: Vec<Value> = (0..4)
        .map(|i| {
            json!({"id": format!("urn:ngsi-ld:WasteContainer:gignac-od-{i}"), "type": "WasteContainer",
                "dateObserved": (t0 + chrono::Duration::minutes(i)).to_rfc3339(),
                "fillingLevel": 0.2 * (i + 1) as f64, "location": {"type": "Point", "coordinates": [3.5512, 43.6521]}})
        })
        .collect();
    produce(&world, Stream::WasteContainers, &bins).await;
    // A report with contact details and a name in its text.
    let email = "jeanne.martin@example.fr";
    let report = hub
        .ok(
            None,
            "mutation($input: SubmitReportInput!) { submitReport(input: $input) { report { id } } }",
            json!({"input": {"serviceCode": "graffiti", "description": "Tag insultant visant Jeanne Martin",
                "lat": 43.652149, "long": 3.551234, "contact": {"email": email}}}),
        )
        .await["submitReport"]["report"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Ideas: one supported by two citizens, its body naming a person; one hidden by flags.
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

    // Reference places, kept by staff: a childcare facility and its vacancies, a coworking
    // space; the town hall of Gignac may not publish for Aniane.
    let gignac_staff = Some("token-of-the-gignac-town-hall");
    const UPDATE_PLACE: &str = "mutation($input: UpdatePlaceInput!) { updatePlace(input: $input) { place { id kind vacancies } } }";
    let creche = hub
        .ok(
            gignac_staff,
            UPDATE_PLACE,
            json!({"input": {"kind": "CHILDCARE", "name": "Crèche « Les Petits Pas »", "communeCode": "34114",
                "address": "2 rue de la Croix, 34150 Gignac", "latitude": 43.6521, "longitude": 3.5512,
                "contact": "creche@example.fr", "capacity": 12, "ageMinMonths": 3, "ageMaxMonths": 36}}),
        )
        .await["updatePlace"]["place"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    hub.ok(
        gignac_staff,
        UPDATE_PLACE,
        json!({"input": {"kind": "COWORKING", "name": "La Fabrique", "communeCode": "34114"}}),
    )
    .await;
    let answer = hub
        .gql(
            gignac_staff,
            UPDATE_PLACE,
            json!({"input": {"kind": "COWORKING", "name": "Ailleurs", "communeCode": "34010"}}),
        )
        .await;
    assert_eq!(crate::hub::code(&answer), "FORBIDDEN", "{answer}");
    const VACANCIES: &str = "mutation($id: ID!, $n: Int!) { updateChildcareVacancies(id: $id, vacancies: $n) { place { vacancies } } }";
    let answer = hub
        .gql(gignac_staff, VACANCIES, json!({"id": creche, "n": 13}))
        .await;
    assert_eq!(
        crate::hub::code(&answer),
        "BAD_USER_INPUT",
        "more than the capacity"
    );
    let answer = hub
        .gql(None, VACANCIES, json!({"id": creche, "n": 2}))
        .await;
    assert_eq!(crate::hub::code(&answer), "UNAUTHENTICATED");
    let data = hub
        .ok(gignac_staff, VACANCIES, json!({"id": creche, "n": 2}))
        .await;
    assert_eq!(data["updateChildcareVacancies"]["place"]["vacancies"], 2);
    // The early-childhood one-stop shop: by commune, age and vacancies.
    let search = |age: i64| {
        let hub = &hub;
        async move {
            hub.ok(
                None,
                "query($age: Int) { childcareFacilities(communeCode: \"34114\", ageMonths: $age, withVacancies: true) { name vacancies } }",
                json!({"age": age}),
            )
            .await["childcareFacilities"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    assert_eq!(search(10).await, 1);
    assert_eq!(search(40).await, 0, "older than the facility takes");
    let places = hub
        .ok(
            None,
            "{ places(kind: COWORKING) { name communeCode } }",
            json!({}),
        )
        .await;
    assert_eq!(
        places["places"],
        json!([{"name": "La Fabrique", "communeCode": "34114"}])
    );

    let lake = world.lake().await;
    eventually(
        Duration::from_secs(90),
        "crafted data in the lake",
        || async {
            lake.count(Table::ReferencePlaces).await.unwrap_or(0) == 3
                && lake.count(Table::CitizenIdeas).await.unwrap_or(0) >= 7
                && lake.count(Table::CitizenReports).await.unwrap_or(0) == 1
                && lake.count(Table::WasteContainers).await.unwrap_or(0) == 4
                && text(
                    &get(&hub, "/opendata/frequentation-zone-activites.csv")
                        .await
                        .2,
                )
                .lines()
                .count()
                    >= 3
                && text(
                    &get(&hub, "/opendata/frequentation-sites-touristiques.csv")
                        .await
                        .2,
                )
                .lines()
                .count()
                    >= 3
        },
    )
    .await;

    // k = 5: the sector with 3 people and the site with 3 visitors are suppressed.
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

    // Reports: no contact, no citizen text, no pseudonym; positions rounded; GeoJSON.
    let (status, headers, geo) = get(&hub, "/opendata/signalements.geojson").await;
    assert_eq!(status, 200);
    let geo: Value = serde_json::from_slice(&geo).unwrap();
    assert_eq!(geo["type"], "FeatureCollection");
    assert_eq!(
        geo["metadata"]["version"],
        headers["x-dataset-version"].to_str().unwrap()
    );
    let feature = &geo["features"][0];
    assert_eq!(feature["properties"]["identifiant"], report.as_str());
    assert_eq!(feature["geometry"]["coordinates"], json!([3.551, 43.652]));
    assert_eq!(feature["properties"]["codeService"], "graffiti");
    assert_eq!(feature["properties"]["statut"], "open");

    // Ideas: the visible one with its supports and title (quotes unescaped), not its body;
    // the one hidden by three flags is not published.
    let published: Vec<Value> = text(&get(&hub, "/opendata/idees.ndjson").await.2)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["identifiant"], ideas[0].as_str());
    assert_eq!(
        published[0]["titre"],
        "Un \"jardin partagé\" près de l'école"
    );
    assert_eq!(published[0]["soutiens"], 2);
    assert_eq!(published[0]["etat"], "not_answered");
    assert_eq!(published[0]["communeCode"], "34114");

    // Reference places in open data: the facility with its vacancies, as GeoJSON too.
    let creches: Vec<Value> = text(
        &get(&hub, "/opendata/etablissements-petite-enfance.ndjson")
            .await
            .2,
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    assert_eq!(creches.len(), 1, "{creches:?}");
    assert_eq!(creches[0]["nom"], "Crèche « Les Petits Pas »");
    assert_eq!(
        (
            creches[0]["capacite"].clone(),
            creches[0]["placesDisponibles"].clone()
        ),
        (json!(12), json!(2))
    );
    let (_, _, geo) = get(&hub, "/opendata/etablissements-petite-enfance.geojson").await;
    let geo: Value = serde_json::from_slice(&geo).unwrap();
    assert_eq!(
        geo["features"][0]["geometry"]["coordinates"],
        json!([3.5512, 43.6521])
    );
    let coworking = text(&get(&hub, "/opendata/espaces-coworking.csv").await.2);
    assert_eq!(coworking.lines().count(), 2, "{coworking}");
    assert!(coworking.contains("La Fabrique"));

    // Every download of every dataset, in every format: none leaks a token, the email,
    // the citizen's words or a pseudonym.
    for ds in vallee_opendata::DATASETS {
        for (ext, _) in vallee_opendata::metadata::formats(ds) {
            let (status, _, body) = get(&hub, &format!("/opendata/{}.{ext}", ds.id)).await;
            assert_eq!(status, 200, "{}.{ext}", ds.id);
            let body = text(&body);
            for secret in [email, "Jeanne Martin", "citizen:", &token(0), &token(12)] {
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

    // Filters: commune and time.
    let gignac = text(
        &get(
            &hub,
            "/opendata/remplissage-conteneurs-quotidien.csv?commune=34114",
        )
        .await
        .2,
    );
    let lines: Vec<&str> = gignac.lines().collect();
    assert_eq!(lines.len(), 2, "{gignac}");
    assert!(
        lines[1].starts_with("2026-06-03,34114,4,4,0.5,0.8,1"),
        "{gignac}"
    );
    let elsewhere = text(
        &get(
            &hub,
            "/opendata/remplissage-conteneurs-quotidien.csv?commune=34010",
        )
        .await
        .2,
    );
    assert_eq!(elsewhere.lines().count(), 1);
    let later = text(
        &get(
            &hub,
            "/opendata/remplissage-conteneurs-quotidien.csv?from=2026-06-04",
        )
        .await
        .2,
    );
    assert_eq!(later.lines().count(), 1);
    assert_eq!(
        get(
            &hub,
            "/opendata/remplissage-conteneurs-quotidien.csv?from=soon"
        )
        .await
        .0,
        400
    );
    assert_eq!(
        get(
            &hub,
            "/opendata/frequentation-zone-activites.csv?commune=34114"
        )
        .await
        .0,
        400
    );

    // Time travel: the version served is named, and asking for it again later gives the
    // same bytes although the table moved on.
    let (_, headers, before) = get(&hub, "/opendata/remplissage-conteneurs-quotidien.csv").await;
    let version = headers["x-dataset-version"].to_str().unwrap().to_string();
    let more: Vec<Value> = (10..13)
        .map(|i| {
            json!({"id": format!("urn:ngsi-ld:WasteContainer:gignac-od-{i}"), "type": "WasteContainer",
                "dateObserved": (t0 + chrono::Duration::days(1)).to_rfc3339(),
                "fillingLevel": 0.9, "location": {"type": "Point", "coordinates": [3.5512, 43.6521]}})
        })
        .collect();
    produce(&world, Stream::WasteContainers, &more).await;
    eventually(Duration::from_secs(60), "the new readings", || async {
        lake.count(Table::WasteContainers).await.unwrap_or(0) == 7
    })
    .await;
    let (_, now_headers, now) = get(&hub, "/opendata/remplissage-conteneurs-quotidien.csv").await;
    assert_ne!(now_headers["x-dataset-version"].to_str().unwrap(), version);
    assert_ne!(now, before);
    let (_, old_headers, old) = get(
        &hub,
        &format!("/opendata/remplissage-conteneurs-quotidien.csv?asOf={version}"),
    )
    .await;
    assert_eq!(old_headers["x-dataset-version"].to_str().unwrap(), version);
    assert_eq!(old, before);

    // Catalogues and schemas.
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
    let (_, _, scdl) = get(&hub, "/opendata/catalog.csv").await;
    let scdl = text(&scdl);
    assert!(scdl.starts_with("COLL_NOM,COLL_SIRET,ID,TITRE,"));
    assert!(
        scdl.lines().nth(1).unwrap().contains(",24340069400010,"),
        "the configured SIRET: {scdl}"
    );
    assert_eq!(scdl.lines().count(), 1 + vallee_opendata::DATASETS.len());
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

    // The same datasets in GraphQL: metadata, and rows paged, filtered and at a version.
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
    let missing = hub
        .gql(None, "{ dataset(id: \"nope\") { id } }", json!({}))
        .await;
    assert_eq!(crate::hub::code(&missing), "NOT_FOUND");

    // The public lake: every dataset with data is a Delta table under public/, same rows
    // as the download, recording the source version. The hub's own Delta reader checks it
    // (no Python needed); Python deltalake, what researchers use, then reads it as it is.
    let public = PublicLake::open(&world);
    eventually(
        Duration::from_secs(60),
        "public tables up to date",
        || async {
            let (_, headers, _) = get(&hub, "/opendata/remplissage-conteneurs-quotidien.csv").await;
            let version: i64 = headers["x-dataset-version"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            public
                .records("remplissage-conteneurs-quotidien", version)
                .await
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

    // POST /sql: researchers only (checked first), public tables only, SELECT only.
    let sql = |token: Option<&'static str>, query: &str, accept: &'static str| {
        let mut r = hub
            .client
            .post(hub.url("/sql"))
            .header("Accept", accept)
            .json(&json!({"sql": query}));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let json_type = "application/json";
    assert_eq!(
        sql(None, "SELECT 1", json_type).await.unwrap().status(),
        401
    );
    assert_eq!(
        sql(Some("token-of-the-intercommunality"), "SELECT 1", json_type)
            .await
            .unwrap()
            .status(),
        401,
        "staff are not researchers"
    );
    let r = crate::hub::RESEARCHER;
    let answer: Value = sql(
        Some(r),
        "SELECT \"communeCode\", sum(mesures) AS n FROM remplissage_conteneurs_quotidien GROUP BY \"communeCode\"",
        json_type,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        answer["rows"],
        json!([{"communeCode": "34114", "n": 7}]),
        "{answer}"
    );
    assert_eq!(answer["truncated"], false);
    for refused in [
        "SELECT * FROM footfall",
        "SELECT * FROM waste_containers",
        "DROP TABLE signalements",
        "INSERT INTO signalements VALUES (1)",
        "CREATE TABLE x AS SELECT 1",
        "COPY signalements TO '/tmp/x.csv'",
        "not sql at all",
    ] {
        let status = sql(Some(r), refused, json_type).await.unwrap().status();
        assert_eq!(status, 400, "{refused}");
    }
    // At most sql_max_rows (2 here) rows, said in the answer.
    let many = sql(
        Some(r),
        "SELECT * FROM (VALUES (1), (2), (3)) AS t(x)",
        "text/csv",
    )
    .await
    .unwrap();
    assert_eq!(many.headers()["x-truncated"], "true");
    assert_eq!(
        many.text().await.unwrap().lines().count(),
        3,
        "a header and 2 rows"
    );
    let arrow = sql(
        Some(r),
        "SELECT 1 AS one",
        "application/vnd.apache.arrow.stream",
    )
    .await
    .unwrap();
    assert_eq!(
        arrow.headers()["content-type"],
        "application/vnd.apache.arrow.stream"
    );
    let bytes = arrow.bytes().await.unwrap();
    let batches: Vec<_> =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    assert_eq!(batches[0].num_rows(), 1);
    // The stage's domain formulas are functions researchers can call.
    let formulas = sql(
        Some(r),
        "SELECT vallee_gdd(0.5, 24.0) AS gdd, round(vallee_huglin_day(20.0, 26.0, 45.0), 3) AS h",
        "text/csv",
    )
    .await
    .unwrap();
    assert_eq!(formulas.status(), 200);
    assert_eq!(
        formulas.text().await.unwrap().lines().nth(1),
        Some("2.25,13.52"),
        "GDD (24 + 0.5) / 2 - 10; Huglin ((20 - 10) + (26 - 10)) / 2 × 1.04 at 45° N"
    );
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

/// A partner's feed: its parcels only, resumed from its cursor without gap or duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vineyard_partner_follows_its_own_parcels_from_a_cursor() {
    let world = World::new(3).await;
    let hub = Hub::start(&world, "hub").await;
    let t0: DateTime<Utc> = "2026-04-20T02:00:00Z".parse().unwrap();
    let (mine, theirs) = (
        "urn:ngsi-ld:AgriParcel:pins-1",
        "urn:ngsi-ld:AgriParcel:voisin-1",
    );
    let parcel = |parcel: &str, minutes: i64, moisture: f64| {
        json!({"id": format!("urn:ngsi-ld:AgriParcelRecord:{}-{minutes}", parcel.rsplit(':').next().unwrap()),
            "type": "AgriParcelRecord", "hasAgriParcel": parcel, "soilMoistureVwc": moisture,
            "dateObserved": (t0 + chrono::Duration::minutes(minutes)).to_rfc3339()})
    };
    // A frost dip at the station covering my parcel; another station covers the neighbour's.
    let station = |name: &str, covers: &str, minutes: i64, temperature: f64| {
        json!({"id": format!("urn:ngsi-ld:WeatherObserved:{name}"), "type": "WeatherObserved",
            "temperature": temperature, "precipitation": 0.0, "refParcels": [covers],
            "dateObserved": (t0 + chrono::Duration::minutes(minutes)).to_rfc3339(),
            "location": {"type": "Point", "coordinates": [3.59, 43.68]}})
    };
    let first: Vec<Value> = vec![
        parcel(mine, 0, 0.21),
        parcel(mine, 10, 0.22),
        parcel(theirs, 0, 0.30),
        station("st-pins", mine, 0, 3.0),
        station("st-pins", mine, 10, 0.5),
        station("st-voisin", theirs, 0, 3.0),
        station("st-voisin", theirs, 10, 0.4),
    ];
    produce(&world, Stream::Vineyards, &first).await;
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

    let feed = |since: Option<String>, token: Option<&'static str>| {
        let hub = &hub;
        async move {
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
    };
    assert_eq!(feed(None, None).await.status(), 401);
    assert_eq!(
        feed(None, Some("token-of-the-intercommunality"))
            .await
            .status(),
        401
    );
    let read = |response: reqwest::Response| async move {
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
    };
    let partner = Some(crate::hub::PARTNER);
    let (rows, cursor) = read(feed(None, partner).await).await;
    let kinds = |rows: &[Value], feed: &str| rows.iter().filter(|r| r["feed"] == feed).count();
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

    // The same feed over GraphQL, from the same cursor; a connection without the partner's
    // token gets no feed.
    let feed_query =
        format!("subscription {{ partnerFeed(since: \"{cursor}\") {{ feed row cursor }} }}");
    let mut anonymous = crate::hub::subscribe_with(hub.http, json!({}), &feed_query).await;
    let refused = tokio::time::timeout(Duration::from_secs(10), anonymous.next())
        .await
        .expect("an answer")
        .unwrap()
        .unwrap();
    assert!(
        refused.to_text().unwrap().contains("UNAUTHENTICATED"),
        "{refused}"
    );
    let mut live =
        crate::hub::subscribe_with(hub.http, json!({"token": crate::hub::PARTNER}), &feed_query)
            .await;

    // New readings: the cursor serves exactly them, then (as the stage catches up) the
    // frost alert on my parcel; never a row twice.
    produce(
        &world,
        Stream::Vineyards,
        &[
            parcel(mine, 20, 0.23),
            parcel(theirs, 20, 0.31),
            station("st-pins", mine, 20, 2.5),
        ],
    )
    .await;
    eventually(
        Duration::from_secs(90),
        "the new readings in the lake",
        || async { lake.count(Table::ParcelRecords).await.unwrap_or(0) == 5 },
    )
    .await;
    // The stage may push the frost alert first: items come until the new reading does,
    // every one of them about my parcel.
    let pushed = loop {
        let item = crate::hub::next_data(&mut live, Duration::from_secs(30)).await;
        assert!(!item.to_string().contains(theirs), "{item}");
        if item["partnerFeed"]["feed"] == "parcelRecord" {
            break item;
        }
    };
    assert_eq!(pushed["partnerFeed"]["row"]["hasAgriParcel"], mine);
    assert_eq!(pushed["partnerFeed"]["row"]["soilMoistureVwc"], 0.23);
    let mut all = rows.clone();
    let (more, mut cursor) = read(feed(Some(cursor), partner).await).await;
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
        let (more, next) = read(feed(Some(cursor), partner).await).await;
        all.extend(more);
        cursor = next;
    }
    let alert = all
        .iter()
        .find(|r| r["feed"] == "alert")
        .expect("the frost alert on my parcel");
    assert_eq!(
        (alert["kind"].as_str(), alert["entityId"].as_str()),
        (Some("frost"), Some(mine))
    );
    // Every row of one download of the whole history was followed, none twice (a last call
    // catches up with what landed meanwhile).
    let (history, _) = read(feed(None, partner).await).await;
    let (more, _) = read(feed(Some(cursor), partner).await).await;
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
    // No partner's parcel data in any public download.
    for ds in vallee_opendata::DATASETS {
        let (status, _, body) = get(&hub, &format!("/opendata/{}.ndjson", ds.id)).await;
        assert_eq!(status, 200);
        let body = text(&body);
        for parcel in [mine, theirs] {
            assert!(!body.contains(parcel), "{parcel} in {}", ds.id);
        }
    }
    hub.stop().await;
}

/// A partner's explicit settings: `pins-2` shared with the public, `pins-3` with
/// researchers only, `pins-1` private (the default). Only daily aggregates leave the hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_shares_a_parcel_with_the_public_or_with_researchers_only() {
    let world = World::new(3).await;
    let hub = Hub::start(&world, "hub").await;
    let t0: DateTime<Utc> = "2026-05-12T06:00:00Z".parse().unwrap();
    let reading = |parcel: &str, minutes: i64, moisture: f64, soil: f64| {
        json!({"id": format!("urn:ngsi-ld:AgriParcelRecord:{parcel}-{minutes}"),
            "type": "AgriParcelRecord", "hasAgriParcel": format!("urn:ngsi-ld:AgriParcel:{parcel}"),
            "soilMoistureVwc": moisture, "soilTemperature": soil,
            "dateObserved": (t0 + chrono::Duration::minutes(minutes)).to_rfc3339(),
            "location": {"type": "Point", "coordinates": [3.5512, 43.6521]}})
    };
    produce(
        &world,
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

    // The public download: pins-2's day, aggregated; nothing of the other two.
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
    for ds in vallee_opendata::DATASETS {
        let (status, _, body) = get(&hub, &format!("/opendata/{}.csv", ds.id)).await;
        assert_eq!(status, 200);
        let body = text(&body);
        for private in ["pins-1", "pins-3"] {
            assert!(!body.contains(private), "{private} in {}", ds.id);
        }
    }
    let (_, _, catalog) = get(&hub, "/opendata/catalog.jsonld").await;
    assert!(text(&catalog).contains("\"parcelles-partagees\""));

    // Researchers see both shared parcels (the public one and their own), never pins-1.
    let researcher_rows = || async {
        let answer: Value = hub
            .client
            .post(hub.url("/sql"))
            .bearer_auth(crate::hub::RESEARCHER)
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

    // On disk: public/ holds pins-2 only; research/ holds both, for researchers' own tools.
    let parcels_in = |folder: &'static str| {
        let root = world.data_dir().join(folder);
        async move {
            let published = vallee_lake::Lake::open_bare(vallee_lake::LakeOptions {
                root,
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
                let a =
                    arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).unwrap();
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
    };
    eventually(Duration::from_secs(30), "pins-2 in public/", || async {
        parcels_in("public").await == ["pins-2"]
    })
    .await;
    assert_eq!(parcels_in("research").await, ["pins-2", "pins-3"]);
    hub.stop().await;
}
