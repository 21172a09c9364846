//! The API over real HTTP and WebSocket, against a child `vallee up` on the real broker and
//! lake: reports (GraphQL and Open311), the idea box, permissions, limits, GDPR, restart,
//! and a subscription receiving a fill alert raised by sensor events.

use std::time::Duration;

use serde_json::{Value, json};
use vallee_schemas::communes;
use vallee_schemas::contract::{Stream, Table};

use crate::helpers::*;
use crate::hub::*;
use crate::reports::{REPORT, SUBMIT};

/// CORS: the configured dashboard origin may call the API from a browser, others not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_configured_dashboard_origin_may_call_the_api_from_a_browser() {
    let (_world, hub) = world_and_hub().await;
    for (origin, allowed) in [
        ("https://tableau.example.fr", true),
        ("https://evil.example", false),
    ] {
        let preflight = hub
            .client
            .request(reqwest::Method::OPTIONS, hub.url("/graphql"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "content-type,authorization",
            )
            .send()
            .await
            .unwrap();
        let granted = preflight
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        assert_eq!(
            granted.as_deref() == Some(origin),
            allowed,
            "{origin}: {granted:?}"
        );
    }

    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idea_box_with_concurrent_supports_flags_answers_limits_and_restart() {
    let world = World::new(3).await;
    let hub = Hub::start(&world, "hub-1").await;
    let author = hub.token().await;
    const SUBMIT_IDEA: &str = "mutation($input: SubmitIdeaInput!) { submitIdea(input: $input) {
        idea { id title theme state supports eligible supportThreshold mine hidden } } }";
    let answer = hub
        .gql(
            None,
            SUBMIT_IDEA,
            json!({"input": {"title": "x", "body": "y", "theme": "WINE_SECTOR"}}),
        )
        .await;
    assert_eq!(code(&answer), "UNAUTHENTICATED");
    let answer = hub
        .gql(
            Some(&author),
            SUBMIT_IDEA,
            json!({"input": {"title": " ", "body": "y", "theme": "WINE_SECTOR"}}),
        )
        .await;
    assert_eq!(code(&answer), "BAD_USER_INPUT");
    let answer = hub
        .gql(
            Some(&author),
            SUBMIT_IDEA,
            json!({"input": {"title": "x", "body": "y", "theme": "NO_SUCH_THEME"}}),
        )
        .await;
    assert_eq!(code(&answer), "BAD_USER_INPUT");
    let idea = hub
        .ok(
            Some(&author),
            SUBMIT_IDEA,
            json!({"input": {"title": "Un tiers-lieu numérique à la gare", "body": "Avec des ateliers.",
                "theme": "DIGITAL_FOR_ALL", "communeCode": GIGNAC}}),
        )
        .await["submitIdea"]["idea"]
        .clone();
    let id = idea["id"].as_str().unwrap().to_string();
    assert_eq!(idea["state"], "NOT_ANSWERED");
    assert_eq!(idea["mine"], true);
    let gignac = communes::valley().by_code(GIGNAC).unwrap();
    let threshold = ((f64::from(gignac.population_municipale) * 0.005).ceil() as i64).max(10);
    assert_eq!(idea["supportThreshold"], threshold);

    // 40 citizens support at once, each twice: exactly 40 supports.
    let mut tokens = Vec::new();
    for _ in 0..40 {
        tokens.push(hub.token().await);
    }
    const SUPPORT: &str =
        "mutation($id: ID!) { supportIdea(id: $id) { idea { supports supportedByMe } } }";
    let supports = tokens.iter().chain(tokens.iter()).map(|t| {
        let hub = &hub;
        let id = id.clone();
        async move { hub.ok(Some(t), SUPPORT, json!({"id": id})).await }
    });
    for answer in futures::future::join_all(supports).await {
        assert_eq!(answer["supportIdea"]["idea"]["supportedByMe"], true);
    }
    hub.ok(
        Some(&tokens[0]),
        "mutation($id: ID!) { withdrawSupport(id: $id) { idea { supports } } }",
        json!({"id": id}),
    )
    .await;
    const IDEA: &str = "query($id: ID!) { idea(id: $id) { supports eligible state answer hidden flags comments { body } } }";
    let now = hub.ok(None, IDEA, json!({"id": id})).await["idea"].clone();
    assert_eq!(now["supports"], 39);
    assert_eq!(now["eligible"], 39 >= threshold);

    // Comments and flags: three distinct flags hide it until a moderator shows it again.
    hub.ok(
        Some(&tokens[1]),
        "mutation($id: ID!) { commentIdea(id: $id, input: {body: \"Excellente idée\"}) { comment { id body } } }",
        json!({"id": id}),
    )
    .await;
    const FLAG: &str = "mutation($id: ID!) { flagIdea(id: $id, reason: SPAM) { idea { flags } } }";
    for t in [&tokens[2], &tokens[2], &tokens[3]] {
        hub.ok(Some(t), FLAG, json!({"id": id})).await;
    }
    assert_eq!(
        hub.ok(None, IDEA, json!({"id": id})).await["idea"]["hidden"],
        false,
        "two distinct flags do not hide"
    );
    hub.ok(Some(&tokens[4]), FLAG, json!({"id": id})).await;
    let answer = hub.gql(None, IDEA, json!({"id": id})).await;
    assert_eq!(code(&answer), "NOT_FOUND", "a hidden idea is not public");
    let listed = hub
        .ok(None, "{ ideas { edges { node { id } } } }", json!({}))
        .await;
    assert_eq!(listed["ideas"]["edges"], json!([]));
    let staff_view = hub.ok(Some(CCVH_STAFF), IDEA, json!({"id": id})).await;
    assert_eq!(staff_view["idea"]["hidden"], true);
    assert_eq!(staff_view["idea"]["flags"], 3);
    hub.ok(
        Some(GIGNAC_STAFF),
        "mutation($id: ID!) { moderateIdea(id: $id, input: {hidden: false}) { idea { hidden } } }",
        json!({"id": id}),
    )
    .await;

    // Only staff answer.
    const ANSWER: &str = "mutation($id: ID!, $input: AnswerIdeaInput!) { answerIdea(id: $id, input: $input) { idea { state answer } } }";
    let accepted = json!({"state": "ACCEPTED", "answer": "Inscrit au budget 2027"});
    let answer = hub
        .gql(Some(&author), ANSWER, json!({"id": id, "input": accepted}))
        .await;
    assert_eq!(code(&answer), "FORBIDDEN");
    hub.ok(
        Some(GIGNAC_STAFF),
        ANSWER,
        json!({"id": id, "input": accepted}),
    )
    .await;
    let before_restart = hub.ok(None, IDEA, json!({"id": id})).await["idea"].clone();
    assert_eq!(before_restart["state"], "ACCEPTED");
    assert_eq!(before_restart["supports"], 39);
    assert_eq!(before_restart["comments"][0]["body"], "Excellente idée");

    // Limits: page size, depth, body size, per-token mutations, tokens per address.
    let answer = hub
        .gql(
            None,
            "{ ideas(first: 101) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), "BAD_USER_INPUT");
    let deep = "{ reports { edges { node { history { status } } } } }";
    assert!(hub.gql(None, deep, json!({})).await.get("errors").is_none());
    // No ordinary path of the schema is 11 deep; introspection is, and mixed with an
    // ordinary field it is not exempt.
    let too_deep = "{ services { serviceCode } __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } }";
    let answer = hub.gql(None, too_deep, json!({})).await;
    assert_eq!(code(&answer), "BAD_USER_INPUT", "{answer}");
    let too_complex = format!(
        "{{ {} }}",
        (0..700)
            .map(|i| format!("a{i}: services {{ serviceCode serviceName }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let answer = hub.gql(None, &too_complex, json!({})).await;
    assert_eq!(code(&answer), "BAD_USER_INPUT", "complexity 2 100 > 2 000");
    let introspection = hub
        .gql(
            None,
            "query IntrospectionQuery { __schema { types { name fields { name type { name ofType { name ofType { name ofType { name ofType { name ofType { name } } } } } } } } } }",
            json!({}),
        )
        .await;
    assert!(
        introspection.get("errors").is_none(),
        "GraphiQL's introspection must pass"
    );
    let huge = "x".repeat(70 * 1024);
    // Its own connection: the server answers 413 without reading the body and closes it.
    let big = reqwest::Client::new()
        .post(hub.url("/graphql"))
        .json(&json!({"query": format!("{{ services {{ serviceCode }} }} # {huge}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let spender = hub.token().await;
    const FOLLOWISH: &str = "mutation($id: ID!) { supportIdea(id: $id) { idea { supports } } }";
    let mut limited = None;
    for i in 0..=TOKEN_MUTATION_LIMIT {
        let answer = hub.gql(Some(&spender), FOLLOWISH, json!({"id": id})).await;
        if answer.get("errors").is_some() {
            limited = Some((i, code(&answer).to_string()));
            break;
        }
    }
    assert_eq!(
        limited,
        Some((TOKEN_MUTATION_LIMIT, "RATE_LIMITED".to_string()))
    );
    // 60 tokens a minute per address: within two windows' worth of calls, one is refused.
    let mut refused = None;
    for _ in 0..125 {
        let answer = hub
            .gql(None, "mutation { issueCitizenToken { token } }", json!({}))
            .await;
        if answer.get("errors").is_some() {
            refused = Some(code(&answer).to_string());
            break;
        }
    }
    assert_eq!(refused.as_deref(), Some("RATE_LIMITED"));

    // The idea box survives a restart with exact counts.
    hub.stop().await;
    let hub = Hub::start(&world, "hub-2").await;
    let after = hub.ok(None, IDEA, json!({"id": id})).await["idea"].clone();
    assert_eq!(after["supports"], 40, "39 + the spender's support");
    assert_eq!(after["state"], "ACCEPTED");
    let lake = world.lake().await;
    eventually(
        Duration::from_secs(60),
        "idea events in the lake",
        || async { lake.count(Table::CitizenIdeas).await.unwrap_or(0) >= 45 },
    )
    .await;
    assert_eq!(duplicates(&lake, Table::CitizenIdeas).await, 0);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_receives_a_fill_alert_raised_by_sensor_events() {
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let world = World::new(3).await;
    let hub = Hub::start(&world, "hub").await;
    let mut ws = subscribe(
        hub.http,
        "subscription { alerts(kinds: [FILL]) { alertId kind entityId state fillingLevel communeCode } }",
    )
    .await;

    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", world.brokers())
        .create()
        .unwrap();
    let bin = "urn:ngsi-ld:WasteContainer:gignac-test-0001";
    let now = chrono::Utc::now();
    for (minutes, level) in [(20, 0.55), (10, 0.7), (0, 0.92)] {
        let event = json!({"id": bin, "type": "WasteContainer",
            "dateObserved": (now - chrono::Duration::minutes(minutes)).to_rfc3339(),
            "fillingLevel": level, "storedWasteKind": "refuse",
            "location": {"type": "Point", "coordinates": [3.5512, 43.6521]}})
        .to_string();
        producer
            .send(
                FutureRecord::to(&world.topics[&Stream::WasteContainers])
                    .key(bin)
                    .payload(&event),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let next = next_data(&mut ws, Duration::from_secs(60)).await;
    let alert = &next["alerts"];
    assert_eq!(alert["entityId"], bin);
    assert_eq!(alert["kind"], "FILL");
    assert_eq!(alert["state"], "OPEN");
    assert_eq!(alert["fillingLevel"], 0.92);
    assert_eq!(alert["communeCode"], GIGNAC);

    // The same alert and the bin's latest reading are served from the lake.
    eventually(
        Duration::from_secs(60),
        "the alert and the bin in the lake",
        || async {
            let data = hub
                .gql(
                    None,
                    "{ fillAlerts(open: true) { alertId entityId bin { fillingLevel communeCode } }
                   bins(minFillingLevel: 0.9) { id fillingLevel threshold }
                   binsToCollect(before: \"2100-01-01T00:00:00Z\") { entityId bin { id } } }",
                    json!({}),
                )
                .await;
            data["data"]["fillAlerts"][0]["alertId"] == alert["alertId"]
            && data["data"]["bins"][0]["id"] == bin
            && data["data"]["bins"][0]["threshold"] == 0.8
            // Nested bins come through the batching loader.
            && data["data"]["fillAlerts"][0]["bin"]["fillingLevel"] == 0.92
            && data["data"]["fillAlerts"][0]["bin"]["communeCode"] == GIGNAC
            && data["data"]["binsToCollect"][0]["bin"]["id"] == bin
        },
    )
    .await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_replicas_share_only_the_topics_and_push_report_updates() {
    let world = World::new(3).await;
    let a = Hub::spawn(&world, "replica-a", &["serve"], &world.dir.path().join("a")).await;
    let b = Hub::spawn(&world, "replica-b", &["serve"], &world.dir.path().join("b")).await;

    // A write is visible at once on the replica that took it…
    let id = a
        .ok(
            None,
            SUBMIT,
            json!({"input": {"serviceCode": "fallen-tree", "description": "Platane tombé",
                "lat": 43.6521, "long": 3.5512}}),
        )
        .await["submitReport"]["report"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let on_a = a.ok(None, REPORT, json!({"id": id})).await;
    assert_eq!(on_a["report"]["id"], id.as_str());
    // …and soon on the other, which shares no disk with it.
    eventually(
        Duration::from_secs(30),
        "the report on replica B",
        || async {
            b.gql(None, REPORT, json!({"id": id})).await["data"]["report"]["id"] == id.as_str()
        },
    )
    .await;

    // A subscriber on A sees a follow taken by B, with a token A issued (shared secret).
    let mut ws = subscribe(
        a.http,
        &format!("subscription {{ reportUpdated(id: \"{id}\") {{ id followers status }} }}"),
    )
    .await;
    let token = a.token().await;
    b.ok(
        Some(&token),
        "mutation($id: ID!) { followReport(id: $id) { report { followers } } }",
        json!({"id": id}),
    )
    .await;
    let pushed = next_data(&mut ws, Duration::from_secs(30)).await;
    assert_eq!(pushed["reportUpdated"]["id"], id.as_str());
    assert_eq!(pushed["reportUpdated"]["followers"], 1);
    assert_eq!(
        b.gql(None, REPORT, json!({"id": id})).await["data"]["report"]["followers"],
        1
    );
    a.stop().await;
    b.stop().await;
    // No contact was left, so neither replica wrote any under its private store.
    for r in ["a", "b"] {
        let contacts = world.dir.path().join(r).join("private/contacts");
        assert_eq!(std::fs::read_dir(contacts).unwrap().count(), 0);
    }
}

/// A tourist site with a beacon gateway (its sightings under the site's id as zone) gets
/// its visitors' dwell times next to its counts; a site with counters alone gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_with_beacons_gets_dwell_ranges_next_to_its_counts() {
    use vallee::simulator::Event;

    let world = World::new(3).await;
    let hub = Hub::start(&world, "hub").await;
    let at = |hm: &str| -> chrono::DateTime<chrono::Utc> {
        format!("2026-06-14T{hm}:00Z").parse().unwrap()
    };
    let event = |stream: Stream, key: &str, hm: &str, payload: Value| Event {
        stream,
        key: key.to_string(),
        payload: payload.to_string(),
        time: at(hm),
    };
    let sighting = |zone: &str, device: u32, hm: &str| {
        event(
            Stream::Beacons,
            zone,
            hm,
            json!({"id": format!("s-{zone}-{device}-{hm}"), "type": "BeaconSighting",
                "dateObserved": at(hm).to_rfc3339(), "zone": zone,
                "deviceToken": format!("{device:032x}"), "saltEpoch": "2026-06-14", "rssi": -70}),
        )
    };
    let visit = |site: &str, hm: &str, count: i64| {
        event(
            Stream::Tourism,
            site,
            hm,
            json!({"id": format!("v-{site}-{hm}"), "type": "SiteVisit", "dateObserved": at(hm).to_rfc3339(),
                "site": site, "locationCode": "34261", "source": "counter", "count": count}),
        )
    };
    let abbey = "abbaye-de-gellone";
    world
        .produce(&[
            // One device stays 7 minutes, another passes by.
            sighting(abbey, 1, "10:05"),
            sighting(abbey, 1, "10:08"),
            sighting(abbey, 1, "10:12"),
            sighting(abbey, 2, "10:20"),
            visit(abbey, "10:10", 6),
            visit("prieure-saint-michel", "10:30", 2),
            // Later traffic moves both streams' event time past the hour and its gap.
            sighting("za-camalce-nord", 3, "11:30"),
            visit("prieure-saint-michel", "11:20", 1),
        ])
        .await;
    let query = "{ sitePresence(from: \"2026-06-14T10:00:00Z\", to: \"2026-06-14T11:00:00Z\") {
        site visitorCount dwell { zone visits dwellUnder5Min dwell5To15Min sessionGap } } }";
    let expected = json!([
        {"site": abbey, "visitorCount": 6, "dwell": {"zone": abbey, "visits": 2,
            "dwellUnder5Min": 1, "dwell5To15Min": 1, "sessionGap": "PT10M"}},
        {"site": "prieure-saint-michel", "visitorCount": 2, "dwell": null},
    ]);
    let mut last = Value::Null;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while std::time::Instant::now() < deadline {
        last = hub.gql(None, query, json!({})).await;
        if last["data"]["sitePresence"] == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(last["data"]["sitePresence"], expected, "{last}");
    hub.stop().await;
}
