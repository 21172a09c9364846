//! Privacy promises at every door, against a child `vallee up` on the real broker and lake:
//! small counts withheld from the public (GraphQL over HTTP and WebSocket, the dashboard as
//! Chromium draws it, and the open data alike), the differencing of an hour and its 5-minute
//! windows defeated, staff reading exact values; a private
//! parcel's alerts reaching its partner only (query and subscription); reports' positions
//! rounded and contacts masked over GraphQL and Open311; and the broker really deleting
//! what a topic's retention says (the beacons' 24 h included), keeping the citizens' topics.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use vallee::broker::EmbeddedBroker;
use vallee::simulator::Event;
use vallee_kafka::{KafkaOptions, Retention, TopicMap};
use vallee_schemas::contract::Stream;

use crate::helpers::*;
use crate::hub::{CCVH_STAFF, Hub, PARTNER, next_data, subscribe_with};

fn event(stream: Stream, key: &str, at: DateTime<Utc>, payload: Value) -> Event {
    Event {
        stream,
        key: key.to_string(),
        payload: payload.to_string(),
        time: at,
    }
}

fn sighting(zone: &str, device: u32, at: DateTime<Utc>) -> Event {
    event(
        Stream::Beacons,
        zone,
        at,
        json!({"id": format!("s-{zone}-{device}-{}", at.timestamp()), "type": "BeaconSighting",
            "dateObserved": at.to_rfc3339(), "zone": zone, "deviceToken": format!("{device:032x}"),
            "saltEpoch": at.date_naive().to_string(), "rssi": -70}),
    )
}

/// Polls a GraphQL query (as `token`) until `done` holds on its data; that data.
async fn poll(hub: &Hub, token: Option<&str>, query: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let data = hub.ok(token, query, json!({})).await;
        if done(&data) {
            return data;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out: {query}: {data}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_gets_no_small_count_and_cannot_difference_an_hour() {
    let world = World::new(3).await;
    let hub = Hub::start(&world, "hub").await;
    let t0: DateTime<Utc> = "2026-06-03T08:00:00Z".parse().unwrap();
    let at = |minutes: i64| t0 + chrono::Duration::minutes(minutes);
    let mut events = Vec::new();
    // Zone a: 8 people in the first window, 1 other in the second: the hour's 9, shown,
    // would give the hidden 1 away (9 − 8).
    events.extend((0..8).map(|d| sighting("za-a", d, at(1))));
    events.push(sighting("za-a", 100, at(6)));
    // Zone b: 2 people, in one window.
    events.extend((0..2).map(|d| sighting("za-b", 200 + d, at(2))));
    // Zone c: 7 people, 3 of them seen again in the next window: the hour (7) is no more
    // than the windows shown, it tells nothing of the hidden 3.
    events.extend((0..7).map(|d| sighting("za-c", 300 + d, at(1))));
    events.extend((0..3).map(|d| sighting("za-c", 300 + d, at(7))));
    // A site with 3 visitors, one with 12; and later traffic that closes every window.
    let visit = |site: &str, n: i64, minutes: i64| {
        event(
            Stream::Tourism,
            site,
            at(minutes),
            json!({"id": format!("v-{site}-{minutes}"), "type": "SiteVisit",
                "dateObserved": at(minutes).to_rfc3339(), "site": site, "locationCode": "34261",
                "source": "counter", "count": n}),
        )
    };
    events.push(visit("argileum", 3, 20));
    events.push(visit("abbaye-de-gellone", 12, 20));
    events.push(sighting("za-fin", 999, at(180)));
    events.push(visit("pont-du-diable", 40, 240));
    world.produce(&events).await;

    let query = |window: &str| {
        format!(
            "{{ footfall(window: \"{window}\", from: \"2026-06-03T08:00:00Z\", to: \"2026-06-03T09:00:00Z\") \
             {{ zone dateObservedFrom peopleCount congested suppressed }} }}"
        )
    };
    let rows = |data: &Value| data["footfall"].as_array().cloned().unwrap_or_default();
    let of = |rows: &[Value], zone: &str| -> Vec<Value> {
        rows.iter()
            .filter(|r| r["zone"] == zone)
            .map(|r| r["peopleCount"].clone())
            .collect()
    };
    // Staff see every count exactly, once the hours closed.
    let staff_hours = poll(&hub, Some(CCVH_STAFF), &query("PT1H"), |d| {
        rows(d).len() == 3
    })
    .await;
    let staff_hours = rows(&staff_hours);
    assert_eq!(of(&staff_hours, "za-a"), [json!(9)]);
    assert_eq!(of(&staff_hours, "za-b"), [json!(2)]);
    assert_eq!(of(&staff_hours, "za-c"), [json!(7)]);
    let staff_windows = rows(&hub.ok(Some(CCVH_STAFF), &query("PT5M"), json!({})).await);
    assert_eq!(of(&staff_windows, "za-a"), [json!(8), json!(1)]);
    assert_eq!(of(&staff_windows, "za-c"), [json!(7), json!(3)]);

    // The public: every count of 1 to 4 withheld, flagged, its saturation too.
    let (hours, windows) = (
        rows(&hub.ok(None, &query("PT1H"), json!({})).await),
        rows(&hub.ok(None, &query("PT5M"), json!({})).await),
    );
    assert_eq!(of(&windows, "za-a"), [json!(8), Value::Null]);
    assert_eq!(of(&windows, "za-b"), [Value::Null]);
    assert_eq!(of(&windows, "za-c"), [json!(7), Value::Null]);
    for r in windows.iter().chain(&hours) {
        assert_eq!(r["suppressed"], r["peopleCount"].is_null(), "{r}");
        if r["suppressed"] == true {
            assert!(r["congested"].is_null(), "{r}");
        }
    }
    // The hours: za-b's 2 is small; za-a's 9 would give its hidden window away; za-c's 7
    // does not (people seen twice).
    assert_eq!(of(&hours, "za-a"), [Value::Null]);
    assert_eq!(of(&hours, "za-b"), [Value::Null]);
    assert_eq!(of(&hours, "za-c"), [json!(7)]);
    // The attack itself, on everything shown: an hour minus its shown windows never gives
    // a withheld window (one withheld: 1 to 4 left over; several: all ones or all fours).
    for hour in &hours {
        let Some(total) = hour["peopleCount"].as_i64() else {
            continue;
        };
        let zone = &hour["zone"];
        let parts: Vec<&Value> = windows.iter().filter(|w| w["zone"] == *zone).collect();
        let hidden = parts.iter().filter(|w| w["peopleCount"].is_null()).count() as i64;
        let shown: i64 = parts.iter().filter_map(|w| w["peopleCount"].as_i64()).sum();
        let left = total - shown;
        if hidden == 1 {
            assert!(
                !(1..=4).contains(&left),
                "{zone}: the hidden window is {left}"
            );
        } else if hidden > 1 {
            assert!(
                left != hidden && left != 4 * hidden,
                "{zone}: {left} over {hidden}"
            );
        }
    }

    // The open data applies the same rule to the same hours.
    let body = hub
        .client
        .get(hub.url("/opendata/frequentation-zone-activites.ndjson"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let published: BTreeMap<String, Value> = body
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| {
            r["dateObservedFrom"]
                .as_str()
                .is_some_and(|t| t.starts_with("2026-06-03T08"))
        })
        .map(|r| (r["zone"].as_str().unwrap().to_string(), r))
        .collect();
    for (zone, count) in [
        ("za-a", Value::Null),
        ("za-b", Value::Null),
        ("za-c", json!(7)),
    ] {
        let row = &published[zone];
        assert_eq!(row["peopleCount"], count, "{zone}: {row}");
        assert_eq!(row["secretStatistique"], count.is_null(), "{zone}: {row}");
    }

    // Site presence: 3 visitors withheld from the public, shown to staff.
    let sites = "{ sitePresence(from: \"2026-06-03T08:00:00Z\", to: \"2026-06-03T09:00:00Z\") \
                 { site visitorCount suppressed } }";
    let staff_sites = poll(&hub, Some(CCVH_STAFF), sites, |d| {
        d["sitePresence"].as_array().is_some_and(|s| s.len() == 2)
    })
    .await;
    let site = |data: &Value, name: &str| {
        data["sitePresence"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["site"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(site(&staff_sites, "argileum")["visitorCount"], 3);
    let public_sites = hub.ok(None, sites, json!({})).await;
    let argileum = site(&public_sites, "argileum");
    assert_eq!(
        (&argileum["visitorCount"], &argileum["suppressed"]),
        (&Value::Null, &json!(true))
    );
    assert_eq!(site(&public_sites, "abbaye-de-gellone")["visitorCount"], 12);

    // Over a WebSocket the same: staff (`Authorization` in `connection_init`, as browsers
    // send it) read exactly, the public reads withheld counts.
    for (payload, za_a, za_b) in [
        (
            json!({"Authorization": format!("Bearer {CCVH_STAFF}")}),
            [json!(8), json!(1)],
            json!(2),
        ),
        (json!({}), [json!(8), Value::Null], Value::Null),
    ] {
        let mut ws = subscribe_with(hub.http, payload, &query("PT5M")).await;
        let data = next_data(&mut ws, Duration::from_secs(30)).await;
        assert_eq!(of(&rows(&data), "za-a"), za_a, "{data}");
        assert_eq!(of(&rows(&data), "za-b"), [za_b], "{data}");
    }

    // The public dashboard, in a real browser, draws a withheld count as withheld.
    dashboard_draws_withheld_counts(&hub).await;
    hub.stop().await;
}

/// The dashboard's footfall table and sites of the scenario above, as Chromium draws
/// them: every count the public may not read is an `abbr` marked secret, never its value.
async fn dashboard_draws_withheld_counts(hub: &Hub) {
    let Some(browser) = crate::dashboard::chromium() else {
        assert!(
            std::env::var("VALLEE_REQUIRE_CHROMIUM").is_err(),
            "VALLEE_REQUIRE_CHROMIUM is set but no chromium was found"
        );
        eprintln!("skipped: no chromium on PATH (apt-get install chromium)");
        return;
    };
    let url = hub.url("/");
    let dom = tokio::task::block_in_place(|| crate::dashboard::dump_dom(&browser, &url));
    assert!(dom.contains("data-loaded=\"true\""), "{dom}");
    // Rows of the footfall table: zone, window, count, saturation.
    let cells = |zone: &str| -> Vec<String> {
        dom.split(&format!("<tr><td>{zone}</td>"))
            .skip(1)
            .map(|row| {
                let count = row.split("<td class=\"num\">").nth(1).unwrap_or_default();
                count.split("</td>").next().unwrap_or_default().to_string()
            })
            .collect()
    };
    let secret = |cell: &String| cell.contains("class=\"secret\"") && cell.contains("&lt; 5");
    let (a, b, c) = (cells("za-a"), cells("za-b"), cells("za-c"));
    assert_eq!(a.len(), 2, "{dom}");
    assert!(
        a.contains(&"8".to_string()) && a.iter().any(secret),
        "{a:?}"
    );
    assert!(b.len() == 1 && secret(&b[0]), "{b:?}");
    assert!(
        c.contains(&"7".to_string()) && c.iter().any(secret),
        "{c:?}"
    );
    assert!(dom.contains("fenêtres de moins de 5 personnes sont masquées"));
    // The site with 3 visitors: its hour counted apart, its 3 nowhere.
    let argileum = dom
        .split("data-site=\"argileum\"")
        .nth(1)
        .and_then(|row| row.split("</tr>").next())
        .unwrap_or_else(|| panic!("no argileum row: {dom}"));
    assert!(argileum.contains("h masquée"), "{argileum}");
    assert!(
        !argileum.contains(">3<") && !argileum.contains(">3 "),
        "{argileum}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_parcels_alerts_reach_its_partner_only() {
    let world = World::new(3).await;
    let hub = Hub::start(&world, "hub").await;
    let (private, shared) = (
        "urn:ngsi-ld:AgriParcel:pins-1",
        "urn:ngsi-ld:AgriParcel:pins-2",
    );
    let lone = "urn:ngsi-ld:WeatherObserved:st-seule";
    let subscription = "subscription { alerts { alertId kind entityId state } }";
    let mut public = subscribe_with(hub.http, json!({}), subscription).await;
    let mut partner = subscribe_with(hub.http, json!({"token": PARTNER}), subscription).await;

    // A frost dip at a station covering the partner's private parcel and its shared one,
    // and at a station covering no parcel (its alert is its own).
    let t0: DateTime<Utc> = "2026-04-20T02:00:00Z".parse().unwrap();
    let station = |id: &str, parcels: &[&str], minutes: i64, temperature: f64| {
        let at = t0 + chrono::Duration::minutes(minutes);
        event(
            Stream::Vineyards,
            id,
            at,
            json!({"id": id, "type": "WeatherObserved", "temperature": temperature,
                "precipitation": 0.0, "refParcels": parcels, "dateObserved": at.to_rfc3339(),
                "location": {"type": "Point", "coordinates": [3.59, 43.68]}}),
        )
    };
    let covering = "urn:ngsi-ld:WeatherObserved:st-pins";
    world
        .produce(&[
            station(covering, &[private, shared], 0, 3.0),
            station(covering, &[private, shared], 10, 0.5),
            station(lone, &[], 0, 3.0),
            station(lone, &[], 10, 0.4),
        ])
        .await;

    // The partner is told of its parcels, the private one included.
    let mut told = Vec::new();
    while ![private, shared, lone]
        .iter()
        .all(|e| told.contains(&e.to_string()))
    {
        let item = next_data(&mut partner, Duration::from_secs(90)).await;
        told.push(item["alerts"]["entityId"].as_str().unwrap().to_string());
    }
    // Then a bin fills: its (public) alert comes after every frost alert, to everyone.
    let bin = "urn:ngsi-ld:WasteContainer:gignac-privacy";
    let now = Utc::now();
    world
        .produce(&[event(
            Stream::WasteContainers,
            bin,
            now,
            json!({"id": bin, "type": "WasteContainer", "dateObserved": now.to_rfc3339(),
                "fillingLevel": 0.95, "location": {"type": "Point", "coordinates": [3.5512, 43.6521]}}),
        )])
        .await;
    let mut heard = Vec::new();
    while !heard.contains(&bin.to_string()) {
        let item = next_data(&mut public, Duration::from_secs(90)).await;
        heard.push(item["alerts"]["entityId"].as_str().unwrap().to_string());
    }
    assert!(heard.contains(&shared.to_string()), "{heard:?}");
    assert!(heard.contains(&lone.to_string()), "{heard:?}");
    assert!(
        !heard.contains(&private.to_string()),
        "the public heard {heard:?}"
    );

    // The same over queries: the partner (by its bearer token) sees its private parcel's
    // alert; the public and staff do not.
    let query = "{ vineAlerts { entityId kind state } }";
    let entities = |data: &Value| -> Vec<String> {
        data["vineAlerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["entityId"].as_str().unwrap().to_string())
            .collect()
    };
    let seen = poll(&hub, Some(PARTNER), query, |d| {
        entities(d).contains(&private.to_string())
    })
    .await;
    assert!(entities(&seen).contains(&shared.to_string()));
    for token in [None, Some(CCVH_STAFF)] {
        let seen = entities(&hub.ok(token, query, json!({})).await);
        assert!(
            seen.contains(&shared.to_string()) && seen.contains(&lone.to_string()),
            "{seen:?}"
        );
        assert!(
            !seen.contains(&private.to_string()),
            "{token:?} saw {seen:?}"
        );
    }
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_rounded_and_masked_for_the_public_over_graphql_and_open311() {
    let world = World::new(3).await;
    let hub = Hub::start(&world, "hub").await;
    let description = "Dépôt sauvage, me joindre au 06 12 34 56 78 ou prenom.nom@example.fr";
    let masked = "Dépôt sauvage, me joindre au [téléphone masqué] ou [courriel masqué]";
    let id = hub
        .ok(
            None,
            "mutation($input: SubmitReportInput!) { submitReport(input: $input) { report { id } } }",
            json!({"input": {"serviceCode": "illegal-dumping", "description": description,
                "lat": 43.652149, "long": 3.551234, "contact": {"email": "prenom.nom@example.fr"}}}),
        )
        .await["submitReport"]["report"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    hub.ok(
        Some(CCVH_STAFF),
        "mutation($id: ID!, $input: UpdateReportStatusInput!) {
            updateReportStatus(id: $id, input: $input) { report { id } } }",
        json!({"id": id, "input": {"status": "OPEN", "substatus": "IN_PROGRESS",
            "statusNotes": "Voir avec M. Durand, 04 67 57 04 50"}}),
    )
    .await;
    let notes_masked = "Voir avec M. Durand, [téléphone masqué]";

    let query = "query($id: ID!) { report(id: $id) { lat long description statusNotes
        history { statusNotes } } }";
    let public = hub.ok(None, query, json!({"id": id})).await["report"].clone();
    assert_eq!(
        (public["lat"].clone(), public["long"].clone()),
        (json!(43.652), json!(3.551))
    );
    assert_eq!(public["description"], masked);
    assert_eq!(public["statusNotes"], notes_masked);
    assert!(!public.to_string().contains("04 67"), "{public}");
    let staff = hub.ok(Some(CCVH_STAFF), query, json!({"id": id})).await["report"].clone();
    assert_eq!(
        (staff["lat"].clone(), staff["long"].clone()),
        (json!(43.652149), json!(3.551234))
    );
    assert_eq!(staff["description"], description);

    let open311 = |path: String, token: Option<&'static str>| {
        let hub = &hub;
        async move {
            let mut request = hub.client.get(hub.url(&path));
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            let answer = request.send().await.unwrap();
            assert_eq!(answer.status(), 200);
            answer.json::<Value>().await.unwrap()[0].clone()
        }
    };
    for path in [
        format!("/open311/v2/requests/{id}.json"),
        format!("/open311/v2/requests.json?service_request_id={id}"),
    ] {
        let public = open311(path.clone(), None).await;
        assert_eq!(
            (public["lat"].clone(), public["long"].clone()),
            (json!(43.652), json!(3.551))
        );
        assert_eq!(public["description"], masked);
        assert_eq!(public["status_notes"], notes_masked);
        assert!(!public.to_string().contains("example.fr"), "{public}");
        let staff = open311(path, Some(CCVH_STAFF)).await;
        assert_eq!(staff["lat"], 43.652149);
        assert_eq!(staff["description"], description);
    }
    hub.stop().await;
}

/// Reads a partition from the beginning until a record with `marker` as payload: what
/// came before it.
fn read_until(brokers: &str, topic: &str, marker: &str) -> Vec<String> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "privacy-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut before = Vec::new();
    while std::time::Instant::now() < deadline {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let payload = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
        if payload == marker {
            return before;
        }
        before.push(payload);
    }
    panic!("{topic}: no {marker} within 30 s, read {before:?}");
}

async fn send(producer: &FutureProducer, topic: &str, payload: &str, at: DateTime<Utc>) {
    producer
        .send(
            FutureRecord::to(topic)
                .key("k")
                .partition(0)
                .payload(payload)
                .timestamp(at.timestamp_millis()),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
}

/// A topic's settings, as the broker describes them.
async fn topic_settings(brokers: &str, topic: &str) -> BTreeMap<String, String> {
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .unwrap();
    let resource = described.into_iter().next().unwrap().unwrap();
    resource
        .entries
        .into_iter()
        .filter_map(|e| Some((e.name, e.value?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_deletes_what_retention_says_and_keeps_the_citizens_topics() {
    let dir = tempfile::tempdir().unwrap();
    // Retention checked every second here (`vallee up`: every minute).
    let broker = EmbeddedBroker::start_with(
        "127.0.0.1:0".parse().unwrap(),
        &dir.path().join("broker"),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    let brokers = broker.bootstrap();
    let topics: TopicMap = Stream::ALL
        .iter()
        .map(|s| (*s, format!("privacy.{}", s.name())))
        .collect();
    let kafka = KafkaOptions {
        brokers: brokers.clone(),
        topics: topics.clone(),
        ..Default::default()
    };
    // The hub's topics; a topic of seconds made by the same code; and one made before the
    // hub set cleanup policies (retention alone), brought in line by the hub's start.
    let mut wanted = vallee_kafka::hub_topics(&topics);
    let (short, older) = ("privacy.short", "privacy.older");
    wanted.push((short.into(), Retention::Delete(Duration::from_secs(3))));
    let admin: AdminClient<DefaultClientContext> = kafka.client_config(&[]).create().unwrap();
    let old_way = NewTopic::new(older, 1, TopicReplication::Fixed(1)).set("retention.ms", "3000");
    for created in admin
        .create_topics(&[old_way], &AdminOptions::new())
        .await
        .unwrap()
    {
        created.unwrap();
    }
    wanted.push((older.into(), Retention::Delete(Duration::from_secs(3))));
    vallee_kafka::ensure_topics(&kafka, &wanted, 1)
        .await
        .unwrap();

    let beacons = topics.topic(Stream::Beacons).to_string();
    let reports = topics.topic(Stream::CitizenReports).to_string();
    let settings = topic_settings(&brokers, &beacons).await;
    assert_eq!(
        settings.get("cleanup.policy").map(String::as_str),
        Some("delete")
    );
    assert_eq!(
        settings.get("retention.ms").map(String::as_str),
        Some("86400000")
    );
    let settings = topic_settings(&brokers, &reports).await;
    assert_eq!(settings.get("retention.ms").map(String::as_str), Some("-1"));
    assert!(
        settings
            .get("cleanup.policy")
            .is_none_or(|p| !p.contains("delete")),
        "{settings:?}"
    );
    let settings = topic_settings(&brokers, older).await;
    assert_eq!(
        settings.get("cleanup.policy").map(String::as_str),
        Some("delete")
    );

    // Records stamped now; beacon sightings stamped 25 h ago and now; citizens' events
    // stamped 25 h ago.
    let producer = vallee::simulator::producer(&brokers).unwrap();
    let (now, day_ago) = (Utc::now(), Utc::now() - chrono::Duration::hours(25));
    for topic in [short, older] {
        for i in 0..5 {
            send(&producer, topic, &format!("record-{i}"), now).await;
        }
    }
    for i in 0..5 {
        send(&producer, &beacons, &format!("old-sighting-{i}"), day_ago).await;
        send(&producer, &beacons, &format!("new-sighting-{i}"), now).await;
        send(&producer, &reports, &format!("report-{i}"), day_ago).await;
    }
    // Gone within a deadline: read from the beginning up to a fresh marker.
    let gone = |topic: &str, marker: &str, kept: &[String]| {
        let (brokers, topic, marker) = (brokers.clone(), topic.to_string(), marker.to_string());
        let kept = kept.to_vec();
        async move {
            let before = tokio::task::spawn_blocking(move || read_until(&brokers, &topic, &marker))
                .await
                .unwrap();
            before
                .iter()
                .all(|r| r.starts_with("marker") || kept.contains(r))
        }
    };
    let mut round = 0;
    let kept: Vec<String> = (0..5).map(|i| format!("new-sighting-{i}")).collect();
    eventually(Duration::from_secs(60), "old records deleted", || {
        round += 1;
        let marker = format!("marker-{round}");
        let (producer, gone) = (&producer, &gone);
        let (beacons, kept) = (beacons.clone(), kept.clone());
        async move {
            let mut all = true;
            for topic in [short, older] {
                send(producer, topic, &marker, Utc::now()).await;
                all &= gone(topic, &marker, &[]).await;
            }
            send(producer, &beacons, &marker, Utc::now()).await;
            all && gone(&beacons, &marker, &kept).await
        }
    })
    .await;
    // The recent sightings are still there, and every citizens' event, however old.
    send(&producer, &beacons, "marker-last", Utc::now()).await;
    let b = brokers.clone();
    let beacon_records = tokio::task::spawn_blocking({
        let beacons = beacons.clone();
        move || read_until(&b, &beacons, "marker-last")
    })
    .await
    .unwrap();
    for k in &kept {
        assert!(
            beacon_records.contains(k),
            "{k} missing from {beacon_records:?}"
        );
    }
    send(&producer, &reports, "marker-last", Utc::now()).await;
    let b = brokers.clone();
    let report_records =
        tokio::task::spawn_blocking(move || read_until(&b, &reports, "marker-last"))
            .await
            .unwrap();
    assert_eq!(
        report_records,
        (0..5).map(|i| format!("report-{i}")).collect::<Vec<_>>(),
        "a topic kept forever lost records"
    );
    broker.stop();
}
