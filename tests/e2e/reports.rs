//! Citizens' reports over real HTTP, against a child `vallee up` on the real broker and
//! lake: submitting (GraphQL and Open311), duplicates, following, who may change a status,
//! contact details and GDPR requests, the lake's copy of the events, and a restart.
//! Each scenario runs on its own world and hub.

use std::time::Duration;

use serde_json::{Value, json};
use vallee_schemas::communes;
use vallee_schemas::contract::{Stream, Table};

use crate::helpers::*;
use crate::hub::*;

pub const SUBMIT: &str = "mutation($input: SubmitReportInput!) { submitReport(input: $input) {
    report { id status communeCode agencyResponsible expectedDatetime requestedDatetime serviceName }
    possibleDuplicates { id } } }";

pub const REPORT: &str =
    "query($id: ID!) { report(id: $id) { id status substatus statusNotes followers
    history { status substatus statusNotes at } } }";

const FOLLOW: &str = "mutation($id: ID!) { followReport(id: $id) { report { followers } } }";

const UPDATE: &str = "mutation($id: ID!, $input: UpdateReportStatusInput!) {
    updateReportStatus(id: $id, input: $input) { report { status substatus statusNotes } } }";

const CONTACT: &str = "query($id: ID!) { report(id: $id) { contact { email phone } } }";

const EXPORT: &str = "mutation($input: ReporterDataInput!) { exportReporterData(input: $input) {
    records { reportId contact { email phone } report { id } } } }";

const ERASE: &str =
    "mutation($input: ReporterDataInput!) { eraseReporterData(input: $input) { erased } }";

/// The reporter's email: private, never in a public answer, Kafka or the lake.
const EMAIL: &str = "marie.dupont@example.fr";

/// A pothole in front of Gignac's town hall, with contact details that must stay private.
fn pothole() -> Value {
    json!({"serviceCode": "pothole", "description": "Trou profond devant la mairie",
        "lat": 43.6521, "long": 3.5512, "contact": {"email": EMAIL, "phone": "0601020304"}})
}

/// The same pothole, 20 m away.
fn pothole_nearby() -> Value {
    json!({"serviceCode": "pothole", "description": "Grand trou", "lat": 43.65228, "long": 3.5512})
}

/// An overflowing bin (an intercommunal service) at the same place.
fn bin_nearby() -> Value {
    json!({"serviceCode": "bin-overflowing", "description": "Conteneur plein",
        "lat": 43.65228, "long": 3.5512})
}

/// A tag in Aniane, placed by its address alone.
fn graffiti_in_aniane() -> Value {
    json!({"serviceCode": "graffiti", "description": "Tag sur le lavoir",
        "addressString": "Place Etienne Sanier, Aniane"})
}

fn in_progress() -> Value {
    json!({"status": "OPEN", "substatus": "IN_PROGRESS", "statusNotes": "Équipe prévenue"})
}

fn fixed() -> Value {
    json!({"status": "CLOSED", "substatus": "FIXED", "statusNotes": "Rebouché"})
}

/// Submits a report anonymously; the `submitReport` answer.
async fn submit(hub: &Hub, input: Value) -> Value {
    hub.ok(None, SUBMIT, json!({"input": input})).await["submitReport"].clone()
}

/// Submits a report anonymously; its id.
async fn submit_id(hub: &Hub, input: Value) -> String {
    submit(hub, input).await["report"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Posts the street light of Open311 scenarios, with the reporter's email; its id.
async fn post_open311_street_light(hub: &Hub) -> String {
    let created = hub
        .client
        .post(hub.url("/open311/v2/requests.json"))
        .form(&[
            ("service_code", "street-light"),
            ("description", "Lampadaire éteint"),
            ("lat", "43.6521"),
            ("long", "3.5512"),
            ("email", EMAIL),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    created[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `GET path` of the hub as JSON.
async fn get_json(hub: &Hub, path: &str) -> Value {
    hub.client
        .get(hub.url(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_catalogue_names_each_service_and_its_competence() {
    let (_world, hub) = world_and_hub().await;
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
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_opens_at_its_communes_town_hall_due_within_its_services_delay() {
    let (_world, hub) = world_and_hub().await;
    let first = submit(&hub, pothole()).await;
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
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_near_an_open_one_of_the_same_service_is_suggested_as_its_duplicate() {
    let (_world, hub) = world_and_hub().await;
    let id = submit_id(&hub, pothole()).await;
    let second = submit(&hub, pothole_nearby()).await;
    assert_eq!(second["possibleDuplicates"][0]["id"], id.as_str());
    // Another service at the same place is no duplicate.
    let bin = submit(&hub, bin_nearby()).await;
    assert_eq!(bin["possibleDuplicates"], json!([]));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_of_an_intercommunal_service_goes_to_the_intercommunality() {
    let (_world, hub) = world_and_hub().await;
    let bin = submit(&hub, bin_nearby()).await;
    assert_eq!(
        bin["report"]["agencyResponsible"],
        "Communauté de communes Vallée de l'Hérault"
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_placed_in_its_commune_by_its_address() {
    let (_world, hub) = world_and_hub().await;
    let aniane = communes::valley().by_name("Aniane").unwrap();
    let by_address = submit(&hub, graffiti_in_aniane()).await["report"].clone();
    assert_eq!(by_address["communeCode"], aniane.insee_code.as_str());
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_outside_the_valley_without_a_place_or_description_or_of_no_service_is_refused() {
    let (_world, hub) = world_and_hub().await;
    for input in [
        json!({"serviceCode": "pothole", "description": "Paris", "lat": 48.8566, "long": 2.3522}),
        json!({"serviceCode": "pothole", "description": "Nowhere"}),
        json!({"serviceCode": "no-such-service", "description": "x", "lat": 43.6521, "long": 3.5512}),
        json!({"serviceCode": "pothole", "description": "  ", "lat": 43.6521, "long": 3.5512}),
    ] {
        let answer = hub.gql(None, SUBMIT, json!({"input": input})).await;
        assert_eq!(code(&answer), "BAD_USER_INPUT", "{input}: {answer}");
    }
    hub.stop().await;
}

/// "Me too": needs a token, counts once per citizen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_a_report_needs_a_token_and_counts_each_citizen_once() {
    let (_world, hub) = world_and_hub().await;
    let id = submit_id(&hub, pothole()).await;
    let answer = hub.gql(None, FOLLOW, json!({"id": id})).await;
    assert_eq!(code(&answer), "UNAUTHENTICATED");
    let (t1, t2) = (hub.token().await, hub.token().await);
    for t in [&t1, &t1, &t2] {
        hub.ok(Some(t), FOLLOW, json!({"id": id})).await;
    }
    let report = hub.ok(None, REPORT, json!({"id": id})).await["report"].clone();
    assert_eq!(report["followers"], 2);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citizens_and_anonymous_callers_cannot_change_a_reports_status() {
    let (_world, hub) = world_and_hub().await;
    let id = submit_id(&hub, pothole()).await;
    let citizen = hub.token().await;
    let answer = hub
        .gql(
            Some(&citizen),
            UPDATE,
            json!({"id": id, "input": in_progress()}),
        )
        .await;
    assert_eq!(code(&answer), "FORBIDDEN");
    let answer = hub
        .gql(None, UPDATE, json!({"id": id, "input": in_progress()}))
        .await;
    assert_eq!(code(&answer), "UNAUTHENTICATED");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commune_agent_cannot_change_another_communes_report() {
    let (_world, hub) = world_and_hub().await;
    let aniane_report = submit_id(&hub, graffiti_in_aniane()).await;
    let answer = hub
        .gql(
            Some(GIGNAC_STAFF),
            UPDATE,
            json!({"id": aniane_report, "input": in_progress()}),
        )
        .await;
    assert_eq!(code(&answer), "FORBIDDEN", "Gignac's staff act on Aniane");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_token_is_refused_even_on_a_public_query() {
    let (_world, hub) = world_and_hub().await;
    let answer = hub
        .gql(
            Some("not-a-token"),
            "{ services { serviceCode } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), "UNAUTHENTICATED");
    hub.stop().await;
}

/// The commune's staff, then the intercommunality's (every commune), change the status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_status_changes_are_kept_in_the_reports_history() {
    let (_world, hub) = world_and_hub().await;
    let id = submit_id(&hub, pothole()).await;
    hub.ok(
        Some(GIGNAC_STAFF),
        UPDATE,
        json!({"id": id, "input": in_progress()}),
    )
    .await;
    let closed = hub
        .ok(
            Some(CCVH_STAFF),
            UPDATE,
            json!({"id": id, "input": fixed()}),
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
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_report_is_not_found() {
    let (_world, hub) = world_and_hub().await;
    let answer = hub.gql(None, REPORT, json!({"id": "no-such-report"})).await;
    assert_eq!(code(&answer), "NOT_FOUND");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reporters_contact_details_are_shown_to_staff_only() {
    let (_world, hub) = world_and_hub().await;
    let id = submit_id(&hub, pothole()).await;
    submit_id(&hub, pothole_nearby()).await;
    let citizen = hub.token().await;
    let answer = hub.gql(Some(&citizen), CONTACT, json!({"id": id})).await;
    assert_eq!(code(&answer), "FORBIDDEN");
    let contact = hub.ok(Some(GIGNAC_STAFF), CONTACT, json!({"id": id})).await;
    assert_eq!(contact["report"]["contact"]["email"], EMAIL);
    let public = hub
        .ok(
            None,
            "{ reports(first: 100) { edges { node { id description } } pageInfo { hasNextPage } } }",
            json!({}),
        )
        .await;
    assert!(!public.to_string().contains(EMAIL));
    assert_eq!(
        public["reports"]["edges"].as_array().unwrap().len(),
        2,
        "{public}"
    );
    hub.stop().await;
}

/// Gignac has a closed report and two open ones, Aniane an open one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_filtered_by_commune_and_status_and_paged_by_cursor() {
    let (_world, hub) = world_and_hub().await;
    let closed = submit_id(&hub, pothole()).await;
    for input in [pothole_nearby(), bin_nearby(), graffiti_in_aniane()] {
        submit_id(&hub, input).await;
    }
    hub.ok(
        Some(CCVH_STAFF),
        UPDATE,
        json!({"id": closed, "input": fixed()}),
    )
    .await;
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
    hub.stop().await;
}

/// Open311 GeoReport v2 over the same services and reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open311_serves_the_services_and_reports_of_the_graphql_api() {
    let (_world, hub) = world_and_hub().await;
    let services = get_json(&hub, "/open311/v2/services.json").await;
    assert!(
        services
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["service_code"] == "pothole")
    );
    let id = submit_id(&hub, pothole()).await;
    hub.ok(
        Some(CCVH_STAFF),
        UPDATE,
        json!({"id": id, "input": fixed()}),
    )
    .await;
    let one = get_json(&hub, &format!("/open311/v2/requests/{id}.json")).await;
    assert_eq!(one[0]["status"], "closed");
    assert_eq!(one[0]["agency_responsible"], "Mairie de Gignac");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_posted_over_open311_is_listed_by_its_service_and_status() {
    let (_world, hub) = world_and_hub().await;
    let open311_id = post_open311_street_light(&hub).await;
    let listed = get_json(
        &hub,
        "/open311/v2/requests.json?service_code=street-light&status=open",
    )
    .await;
    assert_eq!(listed[0]["service_request_id"], open311_id.as_str());
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open311_refuses_a_request_outside_the_valley_and_knows_no_unknown_request() {
    let (_world, hub) = world_and_hub().await;
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
    hub.stop().await;
}

/// GDPR: export then erase a reporter's data by email (a GraphQL and an Open311 report
/// carry it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_export_then_erase_a_reporters_contact_details_by_email() {
    let (_world, hub) = world_and_hub().await;
    let id = submit_id(&hub, pothole()).await;
    let open311_id = post_open311_street_light(&hub).await;
    let citizen = hub.token().await;
    let answer = hub
        .gql(Some(&citizen), EXPORT, json!({"input": {"email": EMAIL}}))
        .await;
    assert_eq!(code(&answer), "FORBIDDEN");
    let exported = hub
        .ok(Some(CCVH_STAFF), EXPORT, json!({"input": {"email": EMAIL}}))
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
    assert_eq!(records[0]["contact"]["email"], EMAIL);
    let erased = hub
        .ok(Some(CCVH_STAFF), ERASE, json!({"input": {"email": EMAIL}}))
        .await;
    assert_eq!(
        erased["eraseReporterData"]["erased"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let again = hub
        .ok(Some(CCVH_STAFF), EXPORT, json!({"input": {"email": EMAIL}}))
        .await;
    assert_eq!(again["exportReporterData"]["records"], json!([]));
    let contact = hub.ok(Some(GIGNAC_STAFF), CONTACT, json!({"id": id})).await;
    assert_eq!(contact["report"]["contact"], Value::Null);
    hub.stop().await;
}

/// Citizens' events land in the lake through ingest, exactly once; the staff actions in
/// the audit table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citizen_events_land_in_the_lake_once_and_staff_actions_in_the_audit_table() {
    let (world, hub) = world_and_hub().await;
    assert!(
        world.topics.contains_key(&Stream::CitizenReports),
        "the world names the citizens' topics"
    );
    let id = submit_id(&hub, pothole()).await;
    post_open311_street_light(&hub).await;
    let (t1, t2) = (hub.token().await, hub.token().await);
    for t in [&t1, &t1, &t2] {
        hub.ok(Some(t), FOLLOW, json!({"id": id})).await;
    }
    hub.ok(
        Some(GIGNAC_STAFF),
        UPDATE,
        json!({"id": id, "input": in_progress()}),
    )
    .await;
    hub.ok(
        Some(CCVH_STAFF),
        UPDATE,
        json!({"id": id, "input": fixed()}),
    )
    .await;
    hub.ok(Some(CCVH_STAFF), EXPORT, json!({"input": {"email": EMAIL}}))
        .await;
    let lake = world.lake().await;
    // 2 submissions, 2 follows (the repeat was a no-op), 2 status changes; the staff's
    // 2 status changes and their export audited.
    eventually(
        Duration::from_secs(60),
        "citizen events in the lake",
        || async {
            lake.count(Table::CitizenReports).await.unwrap_or(0) == 6
                && lake.count(Table::StaffAudit).await.unwrap_or(0) == 3
        },
    )
    .await;
    assert_eq!(lake.count(Table::DeadLetters).await.unwrap(), 0);
    assert_eq!(duplicates(&lake, Table::CitizenReports).await, 0);
    hub.stop().await;
}

/// The email left with two reports, exported and erased by staff, travels neither through
/// Kafka nor into the lake, although every event of the scenario landed there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reporters_email_never_reaches_kafka_nor_the_lake() {
    let (world, hub) = world_and_hub().await;
    submit_id(&hub, pothole()).await;
    post_open311_street_light(&hub).await;
    hub.ok(Some(CCVH_STAFF), EXPORT, json!({"input": {"email": EMAIL}}))
        .await;
    hub.ok(Some(CCVH_STAFF), ERASE, json!({"input": {"email": EMAIL}}))
        .await;
    let lake = world.lake().await;
    eventually(
        Duration::from_secs(60),
        "the submissions, the erasure and the audited GDPR requests in the lake",
        || async {
            // Two reports and the erasure of the e-mail's one.
            lake.count(Table::CitizenReports).await.unwrap_or(0) == 3
                && lake.count(Table::StaffAudit).await.unwrap_or(0) == 2
        },
    )
    .await;
    assert_eq!(
        files_containing(&world.dir.path().join("broker"), EMAIL),
        Vec::<String>::new(),
        "the email travelled through Kafka"
    );
    assert_eq!(
        files_containing(&world.data_dir().join("lake"), EMAIL),
        Vec::<String>::new(),
        "the email reached the lake"
    );
    hub.stop().await;
}

/// A restart rebuilds the view from the topics: nothing lost, nothing doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_rebuilds_the_reports_from_the_topics_with_nothing_lost_or_doubled() {
    let (world, hub) = world_and_hub().await;
    let id = submit_id(&hub, pothole()).await;
    submit_id(&hub, pothole_nearby()).await;
    post_open311_street_light(&hub).await;
    let (t1, t2) = (hub.token().await, hub.token().await);
    for t in [&t1, &t1, &t2] {
        hub.ok(Some(t), FOLLOW, json!({"id": id})).await;
    }
    hub.ok(
        Some(GIGNAC_STAFF),
        UPDATE,
        json!({"id": id, "input": in_progress()}),
    )
    .await;
    hub.ok(
        Some(CCVH_STAFF),
        UPDATE,
        json!({"id": id, "input": fixed()}),
    )
    .await;
    let report = hub.ok(None, REPORT, json!({"id": id})).await["report"].clone();
    assert_eq!(
        (
            report["followers"].clone(),
            report["history"].as_array().map(Vec::len)
        ),
        (json!(2), Some(3))
    );
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
    assert_eq!(all["reports"]["edges"].as_array().unwrap().len(), 3);
    hub.stop().await;
}

/// Anyone who can reach the broker can produce to `vallee.citizen.reports`. A staff status
/// change closing a report, unsigned or signed under a guessed secret, is a dead letter
/// (`signature`) in the lake and changes nothing on any replica, even one rebuilding its
/// view from the topics; the API's own events land as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_staff_event_on_the_broker_is_a_dead_letter_and_changes_nothing() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::FutureRecord;
    use vallee_schemas::citizen::{CitizenChange, CitizenEvent, ReportStatus, Substatus};
    use vallee_schemas::signing::{EventKey, SIGNATURE_HEADER};

    let (world, hub) = world_and_hub().await;
    let id = submit_id(&hub, pothole()).await;
    let forged = CitizenEvent::new(
        "staff:ccvh",
        CitizenChange::ReportStatusChanged {
            report_id: id.clone(),
            status: ReportStatus::Closed,
            substatus: Some(Substatus::Fixed),
            status_notes: Some("Fermé par un inconnu".into()),
        },
    )
    .to_json();
    let guessed =
        EventKey::derive(b"a guess at the replicas' secret").sign(Stream::CitizenReports, &forged);
    let producer = vallee::simulator::producer(&world.brokers()).unwrap();
    let topic = &world.topics[&Stream::CitizenReports];
    for signature in [None, Some(guessed.as_str())] {
        let mut record = FutureRecord::to(topic).key(&id).payload(&forged);
        if let Some(value) = signature {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: SIGNATURE_HEADER,
                value: Some(value),
            }));
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .unwrap();
    }
    let lake = world.lake().await;
    eventually(
        Duration::from_secs(60),
        "the forged events in dead_letters",
        || async { lake.count(Table::DeadLetters).await.unwrap_or(0) >= 2 },
    )
    .await;
    let reasons = lake
        .sql("SELECT reason, count(*) AS n FROM dead_letters GROUP BY reason")
        .await
        .unwrap();
    let reasons = arrow::util::pretty::pretty_format_batches(&reasons)
        .unwrap()
        .to_string();
    assert!(
        reasons.contains("| signature | 2 "),
        "both forgeries refused as `signature`:\n{reasons}"
    );
    assert_eq!(
        lake.count(Table::CitizenReports).await.unwrap(),
        1,
        "only the genuine submission landed"
    );
    // A replica rebuilding its view from the topics, and the one that took the write.
    let replica = Hub::spawn(&world, "replica", &["serve"], &world.dir.path().join("r")).await;
    for on in [&replica, &hub] {
        let report = on.ok(None, REPORT, json!({"id": id})).await;
        assert_eq!(report["report"]["status"], "OPEN", "{report}");
        assert_eq!(
            report["report"]["history"].as_array().map(Vec::len),
            Some(1),
            "{report}"
        );
    }
    replica.stop().await;
    hub.stop().await;
}
