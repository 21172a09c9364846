//! `POST /sql` against a running hub: researchers only (checked first), the public tables
//! only, SELECT only, a row limit, JSON, CSV or Arrow answers, and the stage's domain
//! formulas as functions. Each scenario runs on its own world and hub.

use serde_json::{Value, json};

use crate::hub::*;

const JSON: &str = "application/json";

/// `POST /sql` with `query`, as `token`, asking for `accept`.
async fn sql(hub: &Hub, token: Option<&str>, query: &str, accept: &str) -> reqwest::Response {
    let mut r = hub
        .client
        .post(hub.url("/sql"))
        .header("Accept", accept)
        .json(&json!({"sql": query}));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_researchers_may_query_in_sql() {
    let (_world, hub) = world_and_hub().await;
    assert_eq!(sql(&hub, None, "SELECT 1", JSON).await.status(), 401);
    assert_eq!(
        sql(&hub, Some(CCVH_STAFF), "SELECT 1", JSON).await.status(),
        401,
        "staff are not researchers"
    );
    hub.stop().await;
}

/// Bins of two days in the public daily fill dataset, summed by commune.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn researchers_aggregate_the_public_tables_in_sql() {
    let (world, hub) = world_and_hub().await;
    crate::open_data::bins_over_two_days(&world, &hub).await;
    crate::open_data::wait_for_public_daily_fill(&world, &hub).await;
    let answer: Value = sql(
        &hub,
        Some(RESEARCHER),
        "SELECT \"communeCode\", sum(mesures) AS n FROM remplissage_conteneurs_quotidien GROUP BY \"communeCode\"",
        JSON,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        answer["rows"],
        json!([{"communeCode": "34114", "n": 7}]),
        "{answer}"
    );
    assert_eq!(answer["truncated"], false);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_refuses_private_tables_and_anything_but_a_select() {
    let (_world, hub) = world_and_hub().await;
    for refused in [
        "SELECT * FROM footfall",
        "SELECT * FROM waste_containers",
        "DROP TABLE signalements",
        "INSERT INTO signalements VALUES (1)",
        "CREATE TABLE x AS SELECT 1",
        "COPY signalements TO '/tmp/x.csv'",
        "not sql at all",
    ] {
        let status = sql(&hub, Some(RESEARCHER), refused, JSON).await.status();
        assert_eq!(status, 400, "{refused}");
    }
    hub.stop().await;
}

/// At most sql_max_rows (2 here) rows, said in the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sql_answer_is_cut_at_the_row_limit_and_says_so() {
    let (_world, hub) = world_and_hub().await;
    let many = sql(
        &hub,
        Some(RESEARCHER),
        "SELECT * FROM (VALUES (1), (2), (3)) AS t(x)",
        "text/csv",
    )
    .await;
    assert_eq!(many.headers()["x-truncated"], "true");
    assert_eq!(
        many.text().await.unwrap().lines().count(),
        3,
        "a header and 2 rows"
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sql_answer_comes_as_an_arrow_stream_on_request() {
    let (_world, hub) = world_and_hub().await;
    let arrow = sql(
        &hub,
        Some(RESEARCHER),
        "SELECT 1 AS one",
        "application/vnd.apache.arrow.stream",
    )
    .await;
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
    hub.stop().await;
}

/// The stage's domain formulas are functions researchers can call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn researchers_call_the_stages_domain_formulas_in_sql() {
    let (_world, hub) = world_and_hub().await;
    let formulas = sql(
        &hub,
        Some(RESEARCHER),
        "SELECT vallee_gdd(0.5, 24.0) AS gdd, round(vallee_huglin_day(20.0, 26.0, 45.0), 3) AS h",
        "text/csv",
    )
    .await;
    assert_eq!(formulas.status(), 200);
    assert_eq!(
        formulas.text().await.unwrap().lines().nth(1),
        Some("2.25,13.52"),
        "GDD (24 + 0.5) / 2 - 10; Huglin ((20 - 10) + (26 - 10)) / 2 × 1.04 at 45° N"
    );
    hub.stop().await;
}
