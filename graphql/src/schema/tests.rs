//! The schema executed without HTTP (`schema.execute`): mutations through the command
//! layer over an in-memory sink, queries over the view they changed, and the error codes
//! clients see; and the committed SDL.

use std::net::IpAddr;
use std::sync::Arc;

use async_graphql::{Request, Response, Variables};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use vallee_lake::{Lake, LakeOptions};
use vallee_opendata::OpenData;
use vallee_opendata::publish::PublicLake;

use super::*;
use crate::auth::Authenticator;
use crate::citizen::CitizenHub;
use crate::citizen::contacts::ContactStore;
use crate::citizen::sink::MemorySink;
use crate::commands::Commands;
use crate::options::{ApiOptions, Limits, StaffMember};
use crate::sensors::SensorReader;

const GIGNAC: &str = "34114";

/// The API's state over an in-memory sink, with empty lakes in a temporary folder.
fn api(dir: &std::path::Path, limits: Limits) -> Arc<ApiState> {
    let options = ApiOptions {
        private_dir: dir.join("private"),
        public_dir: dir.join("public"),
        research_dir: dir.join("research"),
        limits,
        ..Default::default()
    };
    let lake = |name: &str| {
        let options = LakeOptions {
            root: dir.join(name),
            ..Default::default()
        };
        Arc::new(Lake::open_bare(options).unwrap())
    };
    let internal = lake("lake");
    let citizens = CitizenHub::with_sink(options.clone(), Arc::new(MemorySink::default()), None);
    let auth = Authenticator::new(b"a secret", Vec::new());
    let contacts = ContactStore::open(&options.private_dir).unwrap();
    Arc::new(ApiState {
        commands: Commands::new(citizens.clone(), contacts.clone(), auth.clone(), &options),
        auth,
        contacts,
        citizens,
        sensors: Arc::new(SensorReader::new(internal.clone(), &options.limits)),
        photos: None,
        photo_limiter: crate::rate_limit::RateLimiter::with_max_keys(1_000),
        field_door: crate::field_ingest::FieldDoor::new(&options).unwrap(),
        rounds: Arc::new(crate::rounds::RoundPlanner::new(options.rounds.clone())),
        unsubscribe: crate::notify::UnsubscribeKey::derive(b"test secret"),
        alerts: broadcast::channel(16).0,
        alerts_ready: Default::default(),
        mqtt_connected: Default::default(),
        open_data: OpenData::new(internal.clone()),
        public: PublicLake::new(OpenData::new(internal.clone()), lake("public")),
        research: PublicLake::new(OpenData::new(internal), lake("research")),
        options,
    })
}

/// Runs `query` as `caller` from `address`.
async fn execute(schema: &ApiSchema, caller: Caller, query: &str, variables: Value) -> Response {
    let address: IpAddr = "192.0.2.7".parse().unwrap();
    let request = Request::new(query)
        .variables(Variables::from_json(variables))
        .data(caller)
        .data(ClientAddr(address));
    schema.execute(request).await
}

/// The answer's data; fails on any error.
async fn ok(schema: &ApiSchema, caller: Caller, query: &str, variables: Value) -> Value {
    let response = execute(schema, caller, query, variables).await;
    assert!(response.errors.is_empty(), "{query}: {:?}", response.errors);
    response.data.into_json().unwrap()
}

/// The first error's `extensions.code` and message.
async fn refused(
    schema: &ApiSchema,
    caller: Caller,
    query: &str,
    variables: Value,
) -> (String, String) {
    let response = execute(schema, caller, query, variables).await;
    let error = response.errors.first().expect("an error").clone();
    let code = error
        .extensions
        .as_ref()
        .and_then(|x| x.get("code"))
        .map(|c| c.clone().into_json().unwrap())
        .and_then(|c| c.as_str().map(str::to_string))
        .unwrap_or_default();
    (code, error.message)
}

fn citizen(pseudonym: &str) -> Caller {
    Caller::Citizen {
        pseudonym: pseudonym.into(),
    }
}

fn gignac_staff() -> Caller {
    Caller::Staff(StaffMember {
        name: "mairie-gignac".into(),
        token_sha256: String::new(),
        commune: Some(GIGNAC.into()),
    })
}

const SUBMIT: &str = "mutation($input: SubmitReportInput!) { submitReport(input: $input) {
    report { id status communeCode agencyResponsible followers } possibleDuplicates { id } } }";

#[tokio::test]
async fn a_report_submitted_through_the_schema_is_read_back_by_the_queries() {
    let dir = tempfile::tempdir().unwrap();
    let schema = build(api(dir.path(), Limits::default()));
    let submitted = ok(
        &schema,
        Caller::Anonymous,
        SUBMIT,
        json!({"input": {"serviceCode": "pothole", "description": "Trou",
            "lat": 43.6521, "long": 3.5512, "contact": {"email": "marie@example.fr"}}}),
    )
    .await["submitReport"]
        .clone();
    let id = submitted["report"]["id"].as_str().unwrap().to_string();
    assert_eq!(submitted["report"]["communeCode"], GIGNAC);
    assert_eq!(submitted["report"]["agencyResponsible"], "Mairie de Gignac");
    assert_eq!(submitted["possibleDuplicates"], json!([]));

    let follow =
        "mutation($id: ID!) { followReport(id: $id) { report { followers followedByMe } } }";
    let followed = ok(&schema, citizen("a"), follow, json!({"id": id})).await;
    assert_eq!(
        followed["followReport"]["report"],
        json!({"followers": 1, "followedByMe": true})
    );
    let update = "mutation($id: ID!) { updateReportStatus(id: $id,
        input: {status: OPEN, substatus: IN_PROGRESS, statusNotes: \"Équipe prévenue\"}) {
        report { status substatus statusNotes } } }";
    let updated = ok(&schema, gignac_staff(), update, json!({"id": id})).await;
    assert_eq!(
        updated["updateReportStatus"]["report"],
        json!({"status": "OPEN", "substatus": "IN_PROGRESS", "statusNotes": "Équipe prévenue"})
    );

    let one = ok(
        &schema,
        Caller::Anonymous,
        "query($id: ID!) { report(id: $id) { id followers history { status substatus } } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        one["report"]["history"],
        json!([{"status": "OPEN", "substatus": null}, {"status": "OPEN", "substatus": "IN_PROGRESS"}])
    );
    let listed = ok(
        &schema,
        Caller::Anonymous,
        "{ reports(filter: {communeCode: \"34114\", status: OPEN}) { edges { node { id } } } }",
        json!({}),
    )
    .await;
    assert_eq!(listed["reports"]["edges"], json!([{"node": {"id": id}}]));
    let elsewhere = ok(
        &schema,
        Caller::Anonymous,
        "{ reports(filter: {serviceCode: \"graffiti\"}) { edges { node { id } } } }",
        json!({}),
    )
    .await;
    assert_eq!(elsewhere["reports"]["edges"], json!([]));
    let contact = ok(
        &schema,
        gignac_staff(),
        "query($id: ID!) { report(id: $id) { contact { email } } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(contact["report"]["contact"]["email"], "marie@example.fr");
}

#[tokio::test]
async fn refused_mutations_and_queries_carry_the_codes_clients_know() {
    let dir = tempfile::tempdir().unwrap();
    let schema = build(api(dir.path(), Limits::default()));
    let outside = json!({"input": {"serviceCode": "pothole", "description": "Paris",
        "lat": 48.8566, "long": 2.3522}});
    assert_eq!(
        refused(&schema, Caller::Anonymous, SUBMIT, outside).await,
        (
            "BAD_USER_INPUT".into(),
            "this position is outside the valley's communes".into()
        )
    );
    let follow = "mutation { followReport(id: \"r-1\") { report { id } } }";
    assert_eq!(
        refused(&schema, Caller::Anonymous, follow, json!({})).await,
        (
            "UNAUTHENTICATED".into(),
            "this needs a citizen token (issueCitizenToken)".into()
        )
    );
    assert_eq!(
        refused(&schema, citizen("a"), follow, json!({})).await,
        ("NOT_FOUND".into(), "no report r-1".into())
    );
    let answer = "mutation { answerIdea(id: \"i-1\", input: {state: ACCEPTED}) { idea { id } } }";
    assert_eq!(
        refused(&schema, citizen("a"), answer, json!({})).await,
        ("FORBIDDEN".into(), "only staff may do this".into())
    );
    assert_eq!(
        refused(
            &schema,
            Caller::Anonymous,
            "{ idea(id: \"i-1\") { id } }",
            json!({})
        )
        .await,
        ("NOT_FOUND".into(), "no idea i-1".into())
    );
}

#[tokio::test]
async fn a_rate_limited_mutation_says_when_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        tokens_per_minute_per_address: 1,
        ..Default::default()
    };
    let schema = build(api(dir.path(), limits));
    let issue = "mutation { issueCitizenToken { token } }";
    let token = ok(&schema, Caller::Anonymous, issue, json!({})).await;
    assert!(
        token["issueCitizenToken"]["token"]
            .as_str()
            .unwrap()
            .starts_with("vc1.")
    );
    let response = execute(&schema, Caller::Anonymous, issue, json!({})).await;
    let extensions = response.errors[0].extensions.clone().unwrap();
    assert_eq!(
        extensions.get("code").unwrap().clone().into_json().unwrap(),
        "RATE_LIMITED"
    );
    let retry = extensions
        .get("retryAfter")
        .unwrap()
        .clone()
        .into_json()
        .unwrap();
    assert!((1..=60).contains(&retry.as_u64().unwrap()), "{retry}");
}

#[tokio::test]
async fn the_idea_box_through_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let schema = build(api(dir.path(), Limits::default()));
    let submit = "mutation { submitIdea(input: {title: \"Un tiers-lieu\", body: \"À la gare\",
        theme: DIGITAL_FOR_ALL, communeCode: \"34114\"}) { idea { id state mine supports } } }";
    let idea =
        ok(&schema, citizen("author"), submit, json!({})).await["submitIdea"]["idea"].clone();
    assert_eq!(idea["state"], "NOT_ANSWERED");
    assert_eq!(idea["mine"], true);
    let id = idea["id"].as_str().unwrap().to_string();
    let support = "mutation($id: ID!) { supportIdea(id: $id) { idea { supports supportedByMe } } }";
    for _ in 0..2 {
        let supported = ok(&schema, citizen("fan"), support, json!({"id": id})).await;
        assert_eq!(
            supported["supportIdea"]["idea"],
            json!({"supports": 1, "supportedByMe": true})
        );
    }
    let comment = "mutation($id: ID!) { commentIdea(id: $id, input: {body: \"Bravo\"}) {
        comment { body } idea { comments { body } } } }";
    let commented = ok(&schema, citizen("fan"), comment, json!({"id": id})).await;
    assert_eq!(commented["commentIdea"]["comment"]["body"], "Bravo");
    assert_eq!(
        commented["commentIdea"]["idea"]["comments"],
        json!([{"body": "Bravo"}])
    );
    let answer =
        "mutation($id: ID!) { answerIdea(id: $id, input: {state: ACCEPTED, answer: \"Oui\"}) {
        idea { state answer } } }";
    let answered = ok(&schema, gignac_staff(), answer, json!({"id": id})).await;
    assert_eq!(
        answered["answerIdea"]["idea"],
        json!({"state": "ACCEPTED", "answer": "Oui"})
    );
    let read = ok(
        &schema,
        Caller::Anonymous,
        "query($id: ID!) { idea(id: $id) { state supports } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(read["idea"], json!({"state": "ACCEPTED", "supports": 1}));
}

/// The committed SDL is the contract clients code against: any change to the schema
/// must be a deliberate change of `graphql/schema.graphql` (`vallee graphql schema >
/// graphql/schema.graphql`, or run this test with `VALLEE_BLESS=1`).
#[test]
fn the_committed_sdl_matches_the_schema() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let current = sdl();
    if std::env::var_os("VALLEE_BLESS").is_some() {
        std::fs::write(path, &current).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == current,
        "graphql/schema.graphql is out of date: regenerate it with `cargo run -- graphql schema > graphql/schema.graphql` and review the diff"
    );
}

#[test]
fn the_schema_follows_the_conventions() {
    let sdl = sdl();
    for expected in [
        "submitReport(input: SubmitReportInput!): SubmitReportPayload!",
        "updateReportStatus(id: ID!, input: UpdateReportStatusInput!): UpdateReportStatusPayload!",
        "supportIdea(id: ID!): SupportIdeaPayload!",
        "reports(filter: ReportFilter, orderBy: ReportOrder, first: Int, after: String): ReportConnection!",
        "NOT_RESPONSIBLE",
        "DIGITAL_FOR_ALL",
    ] {
        assert!(sdl.contains(expected), "{expected} missing from the SDL");
    }
}

#[test]
fn pages_are_bounded_and_cursors_resume_where_they_stopped() {
    let items: Vec<i32> = (0..250).collect();
    let page = paginate(items.clone(), Some(100), None).unwrap();
    assert_eq!(page.edges.len(), 100);
    assert!(page.has_next_page);
    let last = page.edges.last().unwrap().cursor.clone();
    let next = paginate(items.clone(), Some(100), Some(last)).unwrap();
    assert_eq!(next.edges[0].node, 100);
    assert!(paginate(items.clone(), Some(101), None).is_err());
    assert!(paginate(items, Some(5), Some("garbage".into())).is_err());
}

/// One report, several readers: staff of its commune read it as filed; everyone else (its
/// own submitter included, in the mutation's answer) the rounded position, contacts
/// masked in the text and no typed address.
#[tokio::test]
async fn the_public_reads_a_report_rounded_and_masked_its_staff_as_filed() {
    let dir = tempfile::tempdir().unwrap();
    let schema = build(api(dir.path(), Limits::default()));
    let description = "Trou : écrire à prenom.nom@example.fr ou au 06 12 34 56 78";
    let fields = "lat long description addressString";
    let submit = format!(
        "mutation($input: SubmitReportInput!) {{ submitReport(input: $input) {{ report {{ id {fields} }} }} }}"
    );
    let submitted = ok(
        &schema,
        Caller::Anonymous,
        &submit,
        json!({"input": {"serviceCode": "pothole", "description": description,
            "lat": 43.652149, "long": 3.551234, "addressString": "2 rue de la Croix, Gignac"}}),
    )
    .await["submitReport"]["report"]
        .clone();
    let id = submitted["id"].as_str().unwrap().to_string();
    let public = json!({"lat": 43.652, "long": 3.551, "addressString": null,
        "description": "Trou : écrire à [courriel masqué] ou au [téléphone masqué]"});
    let mut answered = submitted.clone();
    answered.as_object_mut().unwrap().remove("id");
    assert_eq!(answered, public);
    let read = format!("query($id: ID!) {{ report(id: $id) {{ {fields} }} }}");
    let elsewhere = Caller::Staff(StaffMember {
        name: "mairie-aniane".into(),
        token_sha256: String::new(),
        commune: Some("34010".into()),
    });
    for caller in [Caller::Anonymous, citizen("a"), elsewhere] {
        let seen = ok(&schema, caller, &read, json!({"id": id})).await;
        assert_eq!(seen["report"], public);
    }
    let staff = ok(&schema, gignac_staff(), &read, json!({"id": id})).await;
    assert_eq!(
        staff["report"],
        json!({"lat": 43.652149, "long": 3.551234, "description": description,
            "addressString": "2 rue de la Croix, Gignac"})
    );
    // A box around the exact position finds it for its staff only.
    let boxed = "{ reports(filter: {bbox: [3.55123, 43.65214, 3.55124, 43.65215]}) { edges { node { id } } } }";
    let found = |data: Value| data["reports"]["edges"].as_array().unwrap().len();
    assert_eq!(
        found(ok(&schema, gignac_staff(), boxed, json!({})).await),
        1
    );
    assert_eq!(
        found(ok(&schema, Caller::Anonymous, boxed, json!({})).await),
        0
    );
}
