//! The limits of every operation, through the real schema (`schema.execute`, as both
//! doors run it): GraphiQL's own introspection passes, bombs of every shape do not.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::parser::parse_query;
use async_graphql::{Request, Response};
use tokio::sync::broadcast;
use vallee_lake::{Lake, LakeOptions};
use vallee_opendata::OpenData;
use vallee_opendata::publish::PublicLake;

use super::*;
use crate::ApiState;
use crate::auth::{Authenticator, Caller};
use crate::citizen::CitizenHub;
use crate::citizen::contacts::ContactStore;
use crate::citizen::sink::MemorySink;
use crate::commands::Commands;
use crate::options::ApiOptions;
use crate::schema::ApiSchema;
use crate::sensors::SensorReader;

/// The query GraphiQL sends when it opens.
pub const GRAPHIQL: &str = include_str!("../graphiql-introspection.graphql");

fn schema(dir: &std::path::Path, limits: Limits) -> ApiSchema {
    let options = ApiOptions {
        private_dir: dir.join("private"),
        limits,
        ..Default::default()
    };
    let lake = |name: &str| {
        Arc::new(
            Lake::open_bare(LakeOptions {
                root: dir.join(name),
                ..Default::default()
            })
            .unwrap(),
        )
    };
    let internal = lake("lake");
    let citizens = CitizenHub::with_sink(options.clone(), Arc::new(MemorySink::default()), None);
    let auth = Authenticator::new(b"a secret", Vec::new());
    let contacts = ContactStore::open(&options.private_dir).unwrap();
    let state = Arc::new(ApiState {
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
    });
    crate::schema::build(state)
}

async fn run(schema: &ApiSchema, query: &str) -> Response {
    schema
        .execute(Request::new(query).data(Caller::Anonymous))
        .await
}

fn code(response: &Response) -> String {
    let e = response.errors.first().expect("an error");
    let code = e.extensions.as_ref().and_then(|x| x.get("code")).cloned();
    code.map(|c| c.into_json().unwrap().as_str().unwrap().to_string())
        .unwrap_or_default()
}

fn shape(query: &str) -> ServerResult<()> {
    check_shape(&parse_query(query).unwrap(), &Limits::default())
}

#[test]
fn aliases_and_fields_are_counted_with_fragments_expanded() {
    let aliases = |n: usize| {
        (0..n)
            .map(|i| format!("a{i}: services {{ serviceCode }}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(shape(&format!("{{ {} }}", aliases(30))).is_ok());
    assert!(shape(&format!("{{ {} }}", aliases(31))).is_err());
    // Ten aliases in a fragment spread four times are forty.
    let spread = format!(
        "{{ ...F ...F ...F ...F }} fragment F on Query {{ {} }}",
        aliases(10)
    );
    let refused = shape(&spread).unwrap_err();
    assert!(
        refused.message.contains("40 aliased"),
        "{}",
        refused.message
    );
}

#[tokio::test]
async fn fragments_spreading_fragments_are_refused_without_exploding() {
    // F0 spreads F1 twice, F1 spreads F2 twice…: 2^30 fields once expanded.
    let mut query = String::from("{ ...F0 }");
    for i in 0..30 {
        query += &format!(" fragment F{i} on Query {{ ...F{n} ...F{n} }}", n = i + 1);
    }
    query += " fragment F30 on Query { services { serviceCode } }";
    let started = Instant::now();
    let refused = shape(&query).unwrap_err();
    assert!(refused.message.contains("fields"), "{}", refused.message);
    assert!(started.elapsed() < Duration::from_secs(1));
    // Through the schema: refused before async-graphql's own walk of the spreads (its
    // recursion-depth check follows each spread: 2^30 visits).
    let dir = tempfile::tempdir().unwrap();
    let schema = schema(dir.path(), Limits::default());
    let answer = tokio::time::timeout(Duration::from_secs(5), run(&schema, &query))
        .await
        .expect("refused at once");
    assert_eq!(code(&answer), "BAD_USER_INPUT");
    // A cycle counts nothing here and ends (validation refuses it).
    assert!(shape("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }").is_ok());
}

#[tokio::test]
async fn graphiql_introspection_passes_the_limits_every_operation_meets() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema(dir.path(), Limits::default());
    let answer = run(&schema, GRAPHIQL).await;
    assert!(answer.errors.is_empty(), "{:?}", answer.errors);
    let types = answer.data.into_json().unwrap()["__schema"]["types"].clone();
    assert!(types.as_array().unwrap().len() > 50);
}

#[tokio::test]
async fn introspection_bombs_meet_the_same_limits() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema(dir.path(), Limits::default());
    // The bomb found from outside: 2 500 aliases of `__schema`, with a fragment.
    let bomb = format!(
        "{{ {} }} fragment S on __Schema {{ types {{ name fields {{ name }} }} }}",
        (0..2_500)
            .map(|i| format!("s{i}: __schema {{ ...S }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(bomb.len() < 64 * 1024);
    let answer = run(&schema, &bomb).await;
    assert_eq!(code(&answer), "BAD_USER_INPUT", "{:?}", answer.errors);
    assert!(answer.data == async_graphql::Value::Null);
    // Without aliases, the same field over and over: the complexity counts each.
    let repeated = format!(
        "{{ {} }} fragment S on __Schema {{ types {{ name fields {{ name }} }} }}",
        "__schema { ...S } ".repeat(700)
    );
    let answer = run(&schema, &repeated).await;
    assert_eq!(code(&answer), "BAD_USER_INPUT", "{:?}", answer.errors);
    // GraphiQL's own query, under aliases as often as it takes to pass the complexity
    // (fewer times than the alias limit).
    let doc = parse_query(GRAPHIQL).unwrap();
    let (_, operation) = doc.operations.iter().next().unwrap();
    let fields = count(
        &doc,
        &operation.node.selection_set.node,
        &mut HashMap::new(),
    )
    .fields;
    let copies = 2_000 / fields as usize + 1;
    assert!((2..=30).contains(&copies), "{fields} fields");
    let (head, fragments) = GRAPHIQL.split_at(GRAPHIQL.find("fragment FullType").unwrap());
    let head = head.trim_end().strip_suffix('}').unwrap().trim_end();
    let body = head
        .strip_suffix('}')
        .unwrap()
        .split_once("__schema {")
        .unwrap()
        .1;
    let aliased = |n: usize| {
        let aliases: Vec<String> = (0..n)
            .map(|i| format!("c{i}: __schema {{ ...Everything }}"))
            .collect();
        format!(
            "{{ {} }} fragment Everything on __Schema {{ {body} }} {fragments}",
            aliases.join(" ")
        )
    };
    let once = run(&schema, &aliased(1)).await;
    assert!(once.errors.is_empty(), "{:?}", once.errors);
    let answer = run(&schema, &aliased(copies)).await;
    assert_eq!(code(&answer), "BAD_USER_INPUT", "{:?}", answer.errors);
    // Deeper than the limit, introspection or not.
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(10),
        " }".repeat(10)
    );
    let answer = run(&schema, &deep).await;
    assert_eq!(code(&answer), "BAD_USER_INPUT", "{:?}", answer.errors);
    assert!(
        answer.errors[0].message.contains("too deep"),
        "{:?}",
        answer.errors
    );
}

#[tokio::test]
async fn an_answer_larger_than_the_limit_is_replaced_by_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let small = Limits {
        max_response_bytes: 1_000,
        ..Default::default()
    };
    let schema = schema(dir.path(), small);
    let answer = run(&schema, "{ communes { code name latitude longitude } }").await;
    assert_eq!(code(&answer), "BAD_USER_INPUT");
    assert!(answer.errors[0].message.contains("1000 bytes"));
    let answer = run(&schema, "{ __typename }").await;
    assert!(answer.errors.is_empty(), "{:?}", answer.errors);
}

#[test]
fn the_hub_being_busy_is_rate_limited_for_the_client() {
    let busy: async_graphql::Error = crate::Error::Busy("too many lake queries at once").into();
    let mut errors = vec![busy.into_server_error(async_graphql::Pos::default())];
    errors[0].path = vec![async_graphql::PathSegment::Field("bins".into())];
    add_codes(&mut errors);
    let x = errors[0].extensions.clone().unwrap();
    assert_eq!(
        x.get("code").unwrap().clone().into_json().unwrap(),
        "RATE_LIMITED"
    );
    assert_eq!(x.get("retryAfter").unwrap().clone().into_json().unwrap(), 1);
}
