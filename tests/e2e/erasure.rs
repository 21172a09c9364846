//! GDPR erasure end to end, against a child `vallee up` and `vallee serve` replicas on the
//! real broker and lake: what people write is sealed in the topics and the lake, opened
//! on every replica, and an erasure asked on one replica (by a citizen, or by staff by
//! e-mail) makes it unreadable everywhere — on the replica that took the writes, after a
//! restart, on a replica started afterwards, and in the published open data, whose
//! history is vacuumed.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use vallee_schemas::contract::Table;

use crate::helpers::*;
use crate::hub::*;

/// Unique words, so a copy of a text is found wherever it lies.
const DESCRIPTION: &str = "Nid-de-poule devant chez Madame Quintanilla";
const ADDRESS: &str = "7 impasse des Quintanilla, Gignac";
const TITLE: &str = "Jardin partagé Xylophage au lavoir";
const BODY: &str = "Porté par la famille Xylophage";
const COMMENT: &str = "Je m'appelle Zébulon Ormesson et je soutiens";
const OTHER_TITLE: &str = "Une navette vers Montpellier";
const EMAIL: &str = "camille.quintanilla@example.fr";

const REPORT: &str =
    "query($id: ID!) { report(id: $id) { description addressString contact { email } } }";
const IDEA: &str = "query($id: ID!) { idea(id: $id) { title body comments { body } } }";
const PUBLIC_IDEAS: &str = "{ ideas(first: 50) { edges { node { id title } } } }";

/// The public ideas' titles on `hub`.
async fn public_titles(hub: &Hub) -> Vec<String> {
    let ideas = hub.ok(None, PUBLIC_IDEAS, json!({})).await;
    ideas["ideas"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["title"].as_str().unwrap().to_string())
        .collect()
}

/// The open dataset of ideas as CSV, from `hub`.
async fn ideas_csv(hub: &Hub) -> String {
    let answer = hub.client.get(hub.url("/opendata/idees.csv")).send().await;
    answer.unwrap().text().await.unwrap()
}

/// What the raw lake tables hold of the citizens' events, as text.
async fn lake_payloads(world: &World) -> String {
    let lake = world.lake().await;
    let ctx = lake
        .session_of_existing(&[
            (Table::CitizenReports.name(), "r".to_string()),
            (Table::CitizenIdeas.name(), "i".to_string()),
        ])
        .await
        .unwrap();
    let batches = ctx
        .sql("SELECT payload FROM r UNION ALL SELECT payload FROM i")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
}

/// The reports and ideas of the scenario.
struct Ids {
    mine: String,
    anonymous: String,
    idea: String,
    other_idea: String,
}

/// Whether `h` shows the scenario's erasure: both reports without texts nor contact, the
/// citizen's idea gone from the public's view, their comment erased, the other idea
/// intact.
async fn erased_on(h: &Hub, ids: &Ids) -> bool {
    let report = |id: &str| h.gql(Some(CCVH_STAFF), REPORT, json!({"id": id}));
    let (mine, anonymous) = (report(&ids.mine).await, report(&ids.anonymous).await);
    let idea = h.gql(None, IDEA, json!({"id": ids.idea})).await;
    let other = h.gql(None, IDEA, json!({"id": ids.other_idea})).await;
    let erased = |r: &Value| {
        r["data"]["report"]["description"] == "[texte effacé]"
            && r["data"]["report"]["addressString"].is_null()
            && r["data"]["report"]["contact"].is_null()
    };
    erased(&mine)
        && erased(&anonymous)
        && idea["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        && other["data"]["idea"]["title"] == OTHER_TITLE
        && other["data"]["idea"]["comments"][0]["body"] == "[texte effacé]"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_asked_on_one_replica_leaves_no_readable_copy_anywhere() {
    let world = World::new(3).await;
    let hub = Hub::start(&world, "hub").await;
    let replica_dir = world.dir.path().join("replica");
    let replica = Hub::spawn(&world, "replica", &["serve"], &replica_dir).await;

    // A citizen writes a report (with an e-mail), an idea and a comment on the hub; an
    // anonymous reporter leaves a second report with the same e-mail; someone else an idea.
    let me = hub.token().await;
    let submit =
        "mutation($input: SubmitReportInput!) { submitReport(input: $input) { report { id } } }";
    let report = |description: &str| {
        json!({"input": {"serviceCode": "pothole", "description": description,
            "addressString": ADDRESS, "contact": {"email": EMAIL}}})
    };
    let mine = hub.ok(Some(&me), submit, report(DESCRIPTION)).await["submitReport"]["report"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let anonymous = hub
        .ok(None, submit, report("Un autre trou, même rue"))
        .await["submitReport"]["report"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let idea_input = |title: &str, body: &str| {
        json!({"input": {"title": title, "body": body, "theme": "DIGITAL_FOR_ALL",
            "communeCode": GIGNAC}})
    };
    let submit_idea =
        "mutation($input: SubmitIdeaInput!) { submitIdea(input: $input) { idea { id } } }";
    let idea = hub
        .ok(Some(&me), submit_idea, idea_input(TITLE, BODY))
        .await["submitIdea"]["idea"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let someone = hub.token().await;
    let other_idea = hub
        .ok(
            Some(&someone),
            submit_idea,
            idea_input(OTHER_TITLE, "Deux fois par jour"),
        )
        .await["submitIdea"]["idea"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    hub.ok(
        Some(&me),
        "mutation($id: ID!, $body: String!) { commentIdea(id: $id, input: {body: $body}) { comment { id } } }",
        json!({"id": other_idea, "body": COMMENT}),
    )
    .await;

    // The other replica opens every text with the keys handed over on the keys topic.
    eventually(
        Duration::from_secs(30),
        "the texts opened on the replica",
        || async {
            let r = replica
                .gql(Some(CCVH_STAFF), REPORT, json!({"id": mine}))
                .await;
            let i = replica.gql(None, IDEA, json!({"id": other_idea})).await;
            r["data"]["report"]["description"] == DESCRIPTION
                && r["data"]["report"]["addressString"] == ADDRESS
                && i["data"]["idea"]["comments"][0]["body"] == COMMENT
        },
    )
    .await;
    assert!(public_titles(&replica).await.contains(&TITLE.to_string()));
    // Published as open data (the title only) by the hub, whose lake ingest fills (a
    // `serve` replica reads its own, empty, lake).
    eventually(
        Duration::from_secs(60),
        "the idea in the open data",
        || async { ideas_csv(&hub).await.contains(TITLE) },
    )
    .await;
    eventually(Duration::from_secs(60), "the title in public/", || async {
        !files_containing(&world.data_dir().join("public"), TITLE).is_empty()
    })
    .await;
    // The events landed in the lake; no clear copy of any text in the topics nor the lake.
    eventually(
        Duration::from_secs(60),
        "the events in the lake",
        || async {
            let lake = world.lake().await;
            lake.count(Table::CitizenReports).await.unwrap_or(0) >= 2
                && lake.count(Table::CitizenIdeas).await.unwrap_or(0) >= 3
        },
    )
    .await;
    let payloads = lake_payloads(&world).await;
    assert!(payloads.contains("vallee-sealed:v1:"), "{payloads}");
    for text in [
        DESCRIPTION,
        ADDRESS,
        TITLE,
        BODY,
        COMMENT,
        OTHER_TITLE,
        EMAIL,
    ] {
        assert!(!payloads.contains(text), "{text} in the lake's payloads");
        for dir in [
            world.dir.path().join("broker"),
            world.data_dir().join("lake"),
        ] {
            assert_eq!(
                files_containing(&dir, text),
                Vec::<String>::new(),
                "{text} in clear"
            );
        }
    }

    // On the replica that did not take the writes: the citizen erases what they wrote,
    // and staff erase what the e-mail left.
    let erased = replica
        .ok(
            Some(&me),
            "mutation { eraseMyContributions { reports ideas comments } }",
            json!({}),
        )
        .await["eraseMyContributions"]
        .clone();
    assert_eq!(erased["reports"], json!([mine]));
    assert_eq!(erased["ideas"], json!([idea]));
    assert_eq!(erased["comments"].as_array().map(Vec::len), Some(1));
    let by_email = replica
        .ok(
            Some(CCVH_STAFF),
            "mutation($input: ReporterDataInput!) { eraseReporterData(input: $input) { erased } }",
            json!({"input": {"email": EMAIL}}),
        )
        .await;
    // The citizen's own report, already erased, no longer yields the e-mail's digest.
    assert_eq!(
        by_email["eraseReporterData"]["erased"],
        json!([anonymous]),
        "found by the e-mail's sealed digest"
    );

    // The replica that took the writes forgets them: texts, contacts, keys.
    let ids = Ids {
        mine,
        anonymous,
        idea,
        other_idea,
    };
    for h in [&hub, &replica] {
        eventually(Duration::from_secs(30), "the erasure applied", || {
            erased_on(h, &ids)
        })
        .await;
        assert!(!public_titles(h).await.contains(&TITLE.to_string()));
    }
    let contacts = world.data_dir().join("private/contacts");
    assert_eq!(std::fs::read_dir(contacts).unwrap().count(), 0);
    // Four subjects erased (two reports, an idea, a comment); the other idea's key stays.
    let keys = |dir: &Path| -> (usize, usize) {
        let names: Vec<String> = std::fs::read_dir(dir.join("private/text-keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let markers = names.iter().filter(|n| n.ends_with(".erased")).count();
        (names.len() - markers, markers)
    };
    assert_eq!(keys(&world.data_dir()), (1, 4));
    assert_eq!(keys(&replica_dir), (1, 4));

    // The open data drops the idea, and no earlier version of the public table keeps it.
    eventually(
        Duration::from_secs(60),
        "the idea out of the open data",
        || async {
            let csv = ideas_csv(&hub).await;
            !csv.contains(TITLE) && csv.contains(OTHER_TITLE)
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the public history vacuumed",
        || async { files_containing(&world.data_dir().join("public"), TITLE).is_empty() },
    )
    .await;
    assert_eq!(
        files_containing(&world.data_dir().join("research"), TITLE),
        Vec::<String>::new()
    );

    // A restarted replica, and one started afterwards with an empty data dir, rebuild from
    // the topics (the keys' records are still there): erased stays erased, the rest opens.
    replica.stop().await;
    let restarted = Hub::spawn(&world, "replica-2", &["serve"], &replica_dir).await;
    let newcomer = Hub::spawn(
        &world,
        "newcomer",
        &["serve"],
        &world.dir.path().join("new"),
    )
    .await;
    for h in [&restarted, &newcomer] {
        eventually(Duration::from_secs(30), "the erasure rebuilt", || {
            erased_on(h, &ids)
        })
        .await;
    }
    assert_eq!(keys(&world.dir.path().join("new")), (1, 4));
    restarted.stop().await;
    newcomer.stop().await;
    hub.stop().await;
}
