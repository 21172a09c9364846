//! The API over real HTTP and WebSocket, against a child `vallee up` on the real broker and
//! lake: reports (GraphQL and Open311), the idea box, permissions, limits, GDPR, restart,
//! and a subscription receiving a fill alert raised by sensor events.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use vallee_schemas::communes;
use vallee_schemas::contract::{Stream, Table};

use crate::helpers::*;
use crate::hub::*;

const SUBMIT: &str = "mutation($input: SubmitReportInput!) { submitReport(input: $input) {
    report { id status communeCode agencyResponsible expectedDatetime requestedDatetime serviceName }
    possibleDuplicates { id } } }";

const REPORT: &str = "query($id: ID!) { report(id: $id) { id status substatus statusNotes followers
    history { status substatus statusNotes at } } }";

/// Every file under `dir` that contains `needle` (bytes).
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_lifecycle_over_graphql_and_open311_with_permissions_gdpr_and_restart() {
    let world = World::new(3).await;
    let hub = Hub::start(&world, "hub-1").await;

    let services = hub
        .ok(
            None,
            "{ services { serviceCode serviceName competence } }",
            json!({}),
        )
        .await;
    let pothole = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["serviceCode"] == "pothole")
        .expect("the catalogue has potholes");
    assert_eq!(pothole["serviceName"], "Nid-de-poule ou chaussée dégradée");
    assert_eq!(pothole["competence"], "COMMUNE");

    // Submit, anonymously, with contact details that must stay private.
    let email = "marie.dupont@example.fr";
    let first = hub
        .ok(
            None,
            SUBMIT,
            json!({"input": {"serviceCode": "pothole", "description": "Trou profond devant la mairie",
                "lat": 43.6521, "long": 3.5512, "contact": {"email": email, "phone": "0601020304"}}}),
        )
        .await["submitReport"]
        .clone();
    let id = first["report"]["id"].as_str().unwrap().to_string();
    assert_eq!(first["report"]["status"], "OPEN");
    assert_eq!(first["report"]["communeCode"], GIGNAC);
    assert_eq!(first["report"]["agencyResponsible"], "Mairie de Gignac");
    assert_eq!(first["possibleDuplicates"], json!([]));
    let requested = chrono::DateTime::parse_from_rfc3339(
        first["report"]["requestedDatetime"].as_str().unwrap(),
    )
    .unwrap();
    let expected =
        chrono::DateTime::parse_from_rfc3339(first["report"]["expectedDatetime"].as_str().unwrap())
            .unwrap();
    assert_eq!((expected - requested).num_days(), 14, "pothole delay");

    // The same pothole 20 m away is suggested as a duplicate; a bin report there is not.
    let second = hub
        .ok(
            None,
            SUBMIT,
            json!({"input": {"serviceCode": "pothole", "description": "Grand trou",
                "lat": 43.65228, "long": 3.5512}}),
        )
        .await["submitReport"]
        .clone();
    assert_eq!(second["possibleDuplicates"][0]["id"], id.as_str());
    let bin = hub
        .ok(
            None,
            SUBMIT,
            json!({"input": {"serviceCode": "bin-overflowing", "description": "Conteneur plein",
                "lat": 43.65228, "long": 3.5512}}),
        )
        .await["submitReport"]
        .clone();
    assert_eq!(bin["possibleDuplicates"], json!([]));
    assert_eq!(
        bin["report"]["agencyResponsible"],
        "Communauté de communes Vallée de l'Hérault"
    );

    // Placed by address; refused outside the valley or without a place.
    let aniane = communes::valley().by_name("Aniane").unwrap();
    let by_address = hub
        .ok(
            None,
            SUBMIT,
            json!({"input": {"serviceCode": "graffiti", "description": "Tag sur le lavoir",
                "addressString": "Place Etienne Sanier, Aniane"}}),
        )
        .await["submitReport"]["report"]
        .clone();
    assert_eq!(by_address["communeCode"], aniane.insee_code.as_str());
    let aniane_report = by_address["id"].as_str().unwrap().to_string();
    for input in [
        json!({"serviceCode": "pothole", "description": "Paris", "lat": 48.8566, "long": 2.3522}),
        json!({"serviceCode": "pothole", "description": "Nowhere"}),
        json!({"serviceCode": "no-such-service", "description": "x", "lat": 43.6521, "long": 3.5512}),
        json!({"serviceCode": "pothole", "description": "  ", "lat": 43.6521, "long": 3.5512}),
    ] {
        let answer = hub.gql(None, SUBMIT, json!({"input": input})).await;
        assert_eq!(code(&answer), "BAD_USER_INPUT", "{input}: {answer}");
    }

    // "Me too": needs a token, counts once per citizen.
    const FOLLOW: &str = "mutation($id: ID!) { followReport(id: $id) { report { followers } } }";
    let answer = hub.gql(None, FOLLOW, json!({"id": id})).await;
    assert_eq!(code(&answer), "UNAUTHENTICATED");
    let (t1, t2) = (hub.token().await, hub.token().await);
    for t in [&t1, &t1, &t2] {
        hub.ok(Some(t), FOLLOW, json!({"id": id})).await;
    }
    let report = hub.ok(None, REPORT, json!({"id": id})).await["report"].clone();
    assert_eq!(report["followers"], 2);

    // Only staff change statuses, and only in their commune.
    const UPDATE: &str = "mutation($id: ID!, $input: UpdateReportStatusInput!) {
        updateReportStatus(id: $id, input: $input) { report { status substatus statusNotes } } }";
    let in_progress =
        json!({"status": "OPEN", "substatus": "IN_PROGRESS", "statusNotes": "Équipe prévenue"});
    let answer = hub
        .gql(Some(&t1), UPDATE, json!({"id": id, "input": in_progress}))
        .await;
    assert_eq!(code(&answer), "FORBIDDEN");
    let answer = hub
        .gql(None, UPDATE, json!({"id": id, "input": in_progress}))
        .await;
    assert_eq!(code(&answer), "UNAUTHENTICATED");
    let answer = hub
        .gql(
            Some(GIGNAC_STAFF),
            UPDATE,
            json!({"id": aniane_report, "input": in_progress}),
        )
        .await;
    assert_eq!(code(&answer), "FORBIDDEN", "Gignac's staff act on Aniane");
    let answer = hub
        .gql(
            Some("not-a-token"),
            "{ services { serviceCode } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), "UNAUTHENTICATED");
    hub.ok(
        Some(GIGNAC_STAFF),
        UPDATE,
        json!({"id": id, "input": in_progress}),
    )
    .await;
    let closed = hub
        .ok(
            Some(CCVH_STAFF),
            UPDATE,
            json!({"id": id, "input": {"status": "CLOSED", "substatus": "FIXED", "statusNotes": "Rebouché"}}),
        )
        .await;
    assert_eq!(closed["updateReportStatus"]["report"]["status"], "CLOSED");
    let report = hub.ok(None, REPORT, json!({"id": id})).await["report"].clone();
    let history: Vec<(&str, &str)> = report["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["status"].as_str().unwrap(),
                h["substatus"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        history,
        [("OPEN", "-"), ("OPEN", "IN_PROGRESS"), ("CLOSED", "FIXED")]
    );
    let answer = hub.gql(None, REPORT, json!({"id": "no-such-report"})).await;
    assert_eq!(code(&answer), "NOT_FOUND");

    // Contact details: staff only, never in a public answer.
    const CONTACT: &str = "query($id: ID!) { report(id: $id) { contact { email phone } } }";
    let answer = hub.gql(Some(&t1), CONTACT, json!({"id": id})).await;
    assert_eq!(code(&answer), "FORBIDDEN");
    let contact = hub.ok(Some(GIGNAC_STAFF), CONTACT, json!({"id": id})).await;
    assert_eq!(contact["report"]["contact"]["email"], email);
    let public = hub
        .ok(
            None,
            "{ reports(first: 100) { edges { node { id description } } pageInfo { hasNextPage } } }",
            json!({}),
        )
        .await;
    assert!(!public.to_string().contains(email));
    assert_eq!(
        public["reports"]["edges"].as_array().unwrap().len(),
        4,
        "{public}"
    );

    // CORS: the configured dashboard origin may call the API from a browser, others not.
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

    // Filters and pages.
    let page = hub
        .ok(
            None,
            "{ reports(filter: {communeCode: \"34114\", status: OPEN}, first: 1) {
                edges { node { id } cursor } pageInfo { hasNextPage endCursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(page["reports"]["pageInfo"]["hasNextPage"], true);
    let after = page["reports"]["pageInfo"]["endCursor"].as_str().unwrap();
    let rest = hub
        .ok(
            None,
            "query($after: String) { reports(filter: {communeCode: \"34114\", status: OPEN}, first: 10, after: $after) {
                edges { node { id } } pageInfo { hasNextPage } } }",
            json!({"after": after}),
        )
        .await;
    assert_eq!(rest["reports"]["edges"].as_array().unwrap().len(), 1);

    // Open311 GeoReport v2 over the same reports.
    let services: Value = hub
        .client
        .get(hub.url("/open311/v2/services.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        services
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["service_code"] == "pothole")
    );
    let one: Value = hub
        .client
        .get(hub.url(&format!("/open311/v2/requests/{id}.json")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one[0]["status"], "closed");
    assert_eq!(one[0]["agency_responsible"], "Mairie de Gignac");
    let created = hub
        .client
        .post(hub.url("/open311/v2/requests.json"))
        .form(&[
            ("service_code", "street-light"),
            ("description", "Lampadaire éteint"),
            ("lat", "43.6521"),
            ("long", "3.5512"),
            ("email", email),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let open311_id = created[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let listed: Value = hub
        .client
        .get(hub.url("/open311/v2/requests.json?service_code=street-light&status=open"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["service_request_id"], open311_id.as_str());
    let refused = hub
        .client
        .post(hub.url("/open311/v2/requests.json"))
        .form(&[
            ("service_code", "pothole"),
            ("description", "x"),
            ("lat", "48.85"),
            ("long", "2.35"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let missing = hub
        .client
        .get(hub.url("/open311/v2/requests/nope.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // GDPR: export then erase a reporter's data by email (two reports carry it).
    const EXPORT: &str =
        "mutation($input: ReporterDataInput!) { exportReporterData(input: $input) {
        records { reportId contact { email phone } report { id } } } }";
    const ERASE: &str =
        "mutation($input: ReporterDataInput!) { eraseReporterData(input: $input) { erased } }";
    let answer = hub
        .gql(Some(&t1), EXPORT, json!({"input": {"email": email}}))
        .await;
    assert_eq!(code(&answer), "FORBIDDEN");
    let exported = hub
        .ok(Some(CCVH_STAFF), EXPORT, json!({"input": {"email": email}}))
        .await;
    let records = exported["exportReporterData"]["records"]
        .as_array()
        .unwrap();
    let mut ids: Vec<&str> = records
        .iter()
        .map(|r| r["reportId"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected_ids = vec![id.as_str(), open311_id.as_str()];
    expected_ids.sort();
    assert_eq!(ids, expected_ids);
    assert_eq!(records[0]["contact"]["email"], email);
    let erased = hub
        .ok(Some(CCVH_STAFF), ERASE, json!({"input": {"email": email}}))
        .await;
    assert_eq!(
        erased["eraseReporterData"]["erased"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let again = hub
        .ok(Some(CCVH_STAFF), EXPORT, json!({"input": {"email": email}}))
        .await;
    assert_eq!(again["exportReporterData"]["records"], json!([]));
    let contact = hub.ok(Some(GIGNAC_STAFF), CONTACT, json!({"id": id})).await;
    assert_eq!(contact["report"]["contact"], Value::Null);

    // Citizens' events land in the lake through ingest, exactly once; the staff actions
    // in the audit table; the email never reached Kafka nor the lake.
    let lake = world.lake().await;
    // 5 submissions, 2 follows (the repeat was a no-op), 2 status changes.
    eventually(
        Duration::from_secs(60),
        "citizen events in the lake",
        || async {
            lake.count(Table::CitizenReports).await.unwrap_or(0) == 9
                && lake.count(Table::StaffAudit).await.unwrap_or(0) == 5
        },
    )
    .await;
    assert_eq!(lake.count(Table::DeadLetters).await.unwrap(), 0);
    assert_eq!(duplicates(&lake, Table::CitizenReports).await, 0);
    assert_eq!(
        files_containing(&world.dir.path().join("broker"), email),
        Vec::<String>::new(),
        "the email travelled through Kafka"
    );
    assert_eq!(
        files_containing(&world.data_dir().join("lake"), email),
        Vec::<String>::new(),
        "the email reached the lake"
    );

    // A restart rebuilds the view from the topics: nothing lost, nothing doubled.
    hub.stop().await;
    let hub = Hub::start(&world, "hub-2").await;
    let after = hub.ok(None, REPORT, json!({"id": id})).await["report"].clone();
    assert_eq!(after, report);
    let all = hub
        .ok(
            None,
            "{ reports(first: 100) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(all["reports"]["edges"].as_array().unwrap().len(), 5);
    hub.stop().await;
    assert!(
        world.topics.contains_key(&Stream::CitizenReports),
        "the world names the citizens' topics"
    );
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
