//! Reference places kept by staff against a running hub: a childcare facility and its
//! vacancies, a coworking space; who may keep them, how families find them, and their
//! publication as open data. Each scenario runs on its own world and hub.

use serde_json::{Value, json};
use vallee_schemas::contract::Table;

use crate::helpers::*;
use crate::hub::*;
use crate::open_data::{get, ndjson, text};

const UPDATE_PLACE: &str = "mutation($input: UpdatePlaceInput!) { updatePlace(input: $input) { place { id kind vacancies } } }";

const VACANCIES: &str = "mutation($id: ID!, $n: Int!) { updateChildcareVacancies(id: $id, vacancies: $n) { place { vacancies } } }";

/// The town hall of Gignac adds a childcare facility for 12 children; its id.
async fn add_creche(hub: &Hub) -> String {
    hub.ok(
        Some(GIGNAC_STAFF),
        UPDATE_PLACE,
        json!({"input": {"kind": "CHILDCARE", "name": "Crèche « Les Petits Pas »", "communeCode": "34114",
            "address": "2 rue de la Croix, 34150 Gignac", "latitude": 43.6521, "longitude": 3.5512,
            "contact": "creche@example.fr", "capacity": 12, "ageMinMonths": 3, "ageMaxMonths": 36}}),
    )
    .await["updatePlace"]["place"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn add_coworking(hub: &Hub) {
    hub.ok(
        Some(GIGNAC_STAFF),
        UPDATE_PLACE,
        json!({"input": {"kind": "COWORKING", "name": "La Fabrique", "communeCode": "34114"}}),
    )
    .await;
}

/// `n` vacancies at the facility, set by the town hall.
async fn set_vacancies(hub: &Hub, creche: &str, n: i64) -> Value {
    hub.ok(Some(GIGNAC_STAFF), VACANCIES, json!({"id": creche, "n": n}))
        .await
}

/// A childcare facility with 2 vacancies and a coworking space in Gignac (3 events).
pub async fn craft_places(hub: &Hub) {
    let creche = add_creche(hub).await;
    add_coworking(hub).await;
    set_vacancies(hub, &creche, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_town_hall_cannot_publish_a_place_in_another_commune() {
    let (_world, hub) = world_and_hub().await;
    let answer = hub
        .gql(
            Some(GIGNAC_STAFF),
            UPDATE_PLACE,
            json!({"input": {"kind": "COWORKING", "name": "Ailleurs", "communeCode": "34010"}}),
        )
        .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn childcare_vacancies_are_kept_by_staff_within_the_facilitys_capacity() {
    let (_world, hub) = world_and_hub().await;
    let creche = add_creche(&hub).await;
    let answer = hub
        .gql(
            Some(GIGNAC_STAFF),
            VACANCIES,
            json!({"id": creche, "n": 13}),
        )
        .await;
    assert_eq!(code(&answer), "BAD_USER_INPUT", "more than the capacity");
    let answer = hub
        .gql(None, VACANCIES, json!({"id": creche, "n": 2}))
        .await;
    assert_eq!(code(&answer), "UNAUTHENTICATED");
    let data = set_vacancies(&hub, &creche, 2).await;
    assert_eq!(data["updateChildcareVacancies"]["place"]["vacancies"], 2);
    hub.stop().await;
}

/// The early-childhood one-stop shop: by commune, age and vacancies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn families_find_childcare_with_vacancies_by_commune_and_age() {
    let (_world, hub) = world_and_hub().await;
    craft_places(&hub).await;
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
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn places_are_listed_by_kind() {
    let (_world, hub) = world_and_hub().await;
    craft_places(&hub).await;
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
    hub.stop().await;
}

/// Reference places in open data: the facility with its vacancies, as GeoJSON too; the
/// coworking space in its own dataset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_places_are_published_as_open_data_with_their_vacancies() {
    let (world, hub) = world_and_hub().await;
    craft_places(&hub).await;
    let lake = world.lake().await;
    eventually(
        std::time::Duration::from_secs(90),
        "the places in the lake",
        || async { lake.count(Table::ReferencePlaces).await.unwrap_or(0) == 3 },
    )
    .await;
    let creches = ndjson(&hub, "/opendata/etablissements-petite-enfance.ndjson").await;
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
    hub.stop().await;
}
