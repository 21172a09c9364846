//! The idea box over real HTTP, against a child `vallee up` on the real broker and lake:
//! submitting, supporting (concurrently), commenting, flagging and moderating, staff
//! answers, and a restart. Each scenario runs on its own world and hub.

use std::time::Duration;

use serde_json::{Value, json};
use vallee_schemas::communes;
use vallee_schemas::contract::Table;

use crate::helpers::*;
use crate::hub::*;

const SUBMIT_IDEA: &str = "mutation($input: SubmitIdeaInput!) { submitIdea(input: $input) {
    idea { id title theme state supports eligible supportThreshold mine hidden } } }";

const IDEA: &str = "query($id: ID!) { idea(id: $id) { supports eligible state answer hidden flags comments { body } } }";

pub const SUPPORT: &str =
    "mutation($id: ID!) { supportIdea(id: $id) { idea { supports supportedByMe } } }";

const WITHDRAW: &str = "mutation($id: ID!) { withdrawSupport(id: $id) { idea { supports } } }";

const COMMENT: &str = "mutation($id: ID!) { commentIdea(id: $id, input: {body: \"Excellente idée\"}) { comment { id body } } }";

const FLAG: &str = "mutation($id: ID!) { flagIdea(id: $id, reason: SPAM) { idea { flags } } }";

const ANSWER: &str = "mutation($id: ID!, $input: AnswerIdeaInput!) { answerIdea(id: $id, input: $input) { idea { state answer } } }";

fn accepted() -> Value {
    json!({"state": "ACCEPTED", "answer": "Inscrit au budget 2027"})
}

/// `author` submits an idea for Gignac; the `submitIdea` idea.
pub async fn submit_idea(hub: &Hub, author: &str) -> Value {
    hub.ok(
        Some(author),
        SUBMIT_IDEA,
        json!({"input": {"title": "Un tiers-lieu numérique à la gare", "body": "Avec des ateliers.",
            "theme": "DIGITAL_FOR_ALL", "communeCode": GIGNAC}}),
    )
    .await["submitIdea"]["idea"]
        .clone()
}

/// Submits an idea for Gignac with a new citizen token; its id.
pub async fn new_idea(hub: &Hub) -> String {
    let author = hub.token().await;
    submit_idea(hub, &author).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Half a percent of Gignac's population, at least 10.
fn gignac_threshold() -> i64 {
    let gignac = communes::valley().by_code(GIGNAC).unwrap();
    ((f64::from(gignac.population_municipale) * 0.005).ceil() as i64).max(10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitting_an_idea_needs_a_token_a_title_and_a_known_theme() {
    let (_world, hub) = world_and_hub().await;
    let author = hub.token().await;
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
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_idea_is_unanswered_its_authors_and_needs_its_communes_support_threshold() {
    let (_world, hub) = world_and_hub().await;
    let author = hub.token().await;
    let idea = submit_idea(&hub, &author).await;
    assert_eq!(idea["state"], "NOT_ANSWERED");
    assert_eq!(idea["mine"], true);
    assert_eq!(idea["supportThreshold"], gignac_threshold());
    hub.stop().await;
}

/// 40 citizens support at once, each twice: exactly 40 supports; one withdraws.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_supports_count_each_citizen_once_and_a_withdrawal_takes_one_back() {
    let (_world, hub) = world_and_hub().await;
    let id = new_idea(&hub).await;
    let mut tokens = Vec::new();
    for _ in 0..40 {
        tokens.push(hub.token().await);
    }
    let supports = tokens.iter().chain(tokens.iter()).map(|t| {
        let hub = &hub;
        let id = id.clone();
        async move { hub.ok(Some(t), SUPPORT, json!({"id": id})).await }
    });
    for answer in futures::future::join_all(supports).await {
        assert_eq!(answer["supportIdea"]["idea"]["supportedByMe"], true);
    }
    hub.ok(Some(&tokens[0]), WITHDRAW, json!({"id": id})).await;
    let now = hub.ok(None, IDEA, json!({"id": id})).await["idea"].clone();
    assert_eq!(now["supports"], 39);
    assert_eq!(now["eligible"], 39 >= gignac_threshold());
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizens_comment_is_shown_with_the_idea() {
    let (_world, hub) = world_and_hub().await;
    let id = new_idea(&hub).await;
    let citizen = hub.token().await;
    hub.ok(Some(&citizen), COMMENT, json!({"id": id})).await;
    let idea = hub.ok(None, IDEA, json!({"id": id})).await["idea"].clone();
    assert_eq!(idea["comments"][0]["body"], "Excellente idée");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_distinct_flags_hide_an_idea_until_a_moderator_shows_it_again() {
    let (_world, hub) = world_and_hub().await;
    let id = new_idea(&hub).await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(hub.token().await);
    }
    for t in [&tokens[0], &tokens[0], &tokens[1]] {
        hub.ok(Some(t), FLAG, json!({"id": id})).await;
    }
    assert_eq!(
        hub.ok(None, IDEA, json!({"id": id})).await["idea"]["hidden"],
        false,
        "two distinct flags do not hide"
    );
    hub.ok(Some(&tokens[2]), FLAG, json!({"id": id})).await;
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
    assert_eq!(
        hub.ok(None, IDEA, json!({"id": id})).await["idea"]["hidden"],
        false,
        "public again"
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_staff_answer_an_idea() {
    let (_world, hub) = world_and_hub().await;
    let author = hub.token().await;
    let id = submit_idea(&hub, &author).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = hub
        .gql(
            Some(&author),
            ANSWER,
            json!({"id": id, "input": accepted()}),
        )
        .await;
    assert_eq!(code(&answer), "FORBIDDEN");
    hub.ok(
        Some(GIGNAC_STAFF),
        ANSWER,
        json!({"id": id, "input": accepted()}),
    )
    .await;
    let idea = hub.ok(None, IDEA, json!({"id": id})).await["idea"].clone();
    assert_eq!(idea["state"], "ACCEPTED");
    hub.stop().await;
}

/// Supports, a withdrawal, a comment and an answer survive a restart exactly, and their
/// events are in the lake once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idea_box_survives_a_restart_with_exact_counts() {
    let (world, hub) = world_and_hub().await;
    let id = new_idea(&hub).await;
    let mut tokens = Vec::new();
    for _ in 0..4 {
        tokens.push(hub.token().await);
    }
    for t in &tokens {
        hub.ok(Some(t), SUPPORT, json!({"id": id})).await;
    }
    hub.ok(Some(&tokens[0]), WITHDRAW, json!({"id": id})).await;
    hub.ok(Some(&tokens[1]), COMMENT, json!({"id": id})).await;
    hub.ok(
        Some(GIGNAC_STAFF),
        ANSWER,
        json!({"id": id, "input": accepted()}),
    )
    .await;
    let before_restart = hub.ok(None, IDEA, json!({"id": id})).await["idea"].clone();
    assert_eq!(before_restart["state"], "ACCEPTED");
    assert_eq!(before_restart["supports"], 3);
    assert_eq!(before_restart["comments"][0]["body"], "Excellente idée");

    hub.stop().await;
    let hub = Hub::start(&world, "hub-2").await;
    let after = hub.ok(None, IDEA, json!({"id": id})).await["idea"].clone();
    assert_eq!(after, before_restart);
    let lake = world.lake().await;
    // The submission, 4 supports, the withdrawal, the comment and the answer.
    eventually(
        Duration::from_secs(60),
        "idea events in the lake",
        || async { lake.count(Table::CitizenIdeas).await.unwrap_or(0) >= 8 },
    )
    .await;
    assert_eq!(duplicates(&lake, Table::CitizenIdeas).await, 0);
    hub.stop().await;
}
