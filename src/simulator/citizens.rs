//! A trickle of citizens through the API (inside `vallee up`): reports of the catalogue's
//! services around the valley, ideas of the six themes, supports and comments — sent as a
//! citizen's app would, over HTTP to the hub's GraphQL endpoint, so they take the same path
//! (validation, Kafka, the view, the lake) as real ones.
//!
//! Rates follow the simulated clock: about one report per simulated 20 minutes and one idea
//! per simulated 3 hours, with supports and comments in between.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use vallee_schemas::citizen::SERVICES;
use vallee_schemas::communes;

/// What a citizen writes, per service code.
const REPORT_TEXTS: &[(&str, &str)] = &[
    (
        "bin-overflowing",
        "Le conteneur déborde depuis ce matin, des sacs sont posés à côté.",
    ),
    ("bin-damaged", "Le couvercle du conteneur est cassé."),
    (
        "illegal-dumping",
        "Dépôt de gravats et d'un vieux matelas au bord du chemin.",
    ),
    ("pothole", "Nid-de-poule profond, dangereux pour les vélos."),
    ("street-light", "Le lampadaire ne s'allume plus le soir."),
    ("graffiti", "Tags sur le mur du lavoir."),
    (
        "fallen-tree",
        "Une grosse branche est tombée sur la route après le vent.",
    ),
    (
        "water-leak",
        "L'eau coule sur la chaussée depuis une bouche à clé.",
    ),
    ("signage", "Panneau stop plié au carrefour."),
    (
        "tourism-site",
        "Balisage effacé sur le sentier, des randonneurs se perdent.",
    ),
    ("noise", "Musique très forte tard le soir."),
    (
        "activity-zone",
        "Le parking de la zone est saturé, voitures sur les trottoirs.",
    ),
];

/// Ideas a valley's citizens propose, with their theme.
const IDEAS: &[(&str, &str, &str)] = &[
    (
        "Un tiers-lieu numérique dans l'ancienne gare",
        "Des postes en accès libre et des ateliers pour les démarches en ligne.",
        "DIGITAL_FOR_ALL",
    ),
    (
        "Prise de rendez-vous en ligne à la mairie",
        "Pour l'état civil et l'urbanisme, sans attendre au guichet.",
        "DIGITAL_SERVICES",
    ),
    (
        "Une appli des marchés de producteurs",
        "Les horaires, les producteurs présents et la vente directe.",
        "LOCAL_ECONOMY",
    ),
    (
        "Capteurs de maladies de la vigne partagés",
        "Que les petits domaines profitent aussi des alertes mildiou.",
        "WINE_SECTOR",
    ),
    (
        "Parcours en réalité augmentée au Pont du Diable",
        "Raconter la légende et l'histoire du pont aux visiteurs.",
        "TOURISM_CULTURE",
    ),
    (
        "Une lettre d'information par SMS",
        "Pour les habitants sans internet : travaux, collectes, événements.",
        "DIGITAL_COMMUNICATION",
    ),
    (
        "Coworking dans les villages",
        "Des bureaux partagés pour éviter les trajets vers Montpellier.",
        "LOCAL_ECONOMY",
    ),
    (
        "Ateliers numériques pour les aînés",
        "Apprendre à faire une visio avec les petits-enfants.",
        "DIGITAL_FOR_ALL",
    ),
];

const COMMENTS: &[&str] = &[
    "Très bonne idée, je soutiens !",
    "Et pourquoi pas aussi dans les petites communes ?",
    "Il faudrait prévoir un accompagnement.",
];

async fn graphql(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Result<Value> {
    let mut request = client
        .post(url)
        .json(&json!({"query": query, "variables": variables}));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let answer: Value = request.send().await?.json().await?;
    if let Some(e) = answer.get("errors") {
        anyhow::bail!("{e}");
    }
    Ok(answer["data"].clone())
}

/// Sends citizens' writes to the API at `http` until `shutdown`.
pub async fn run(
    http: SocketAddr,
    speed: f64,
    seed: u64,
    shutdown: CancellationToken,
) -> Result<()> {
    let client = reqwest::Client::new();
    let url = format!("http://{http}/graphql");
    // Wait for the API to be ready (its view rebuilt).
    loop {
        if let Ok(r) = client.get(format!("http://{http}/readyz")).send().await
            && r.status().is_success()
        {
            break;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    let mut tokens = Vec::new();
    for _ in 0..12 {
        let d = graphql(
            &client,
            &url,
            None,
            "mutation { issueCitizenToken { token } }",
            json!({}),
        )
        .await?;
        tokens.push(
            d["issueCitizenToken"]["token"]
                .as_str()
                .context("a token")?
                .to_string(),
        );
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0xC17_12E4);
    let mut ideas: Vec<String> = Vec::new();
    // One step per simulated 10 minutes.
    let step = Duration::from_secs_f64((600.0 / speed.max(1.0)).max(0.2));
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(step) => {}
        }
        n += 1;
        let token = tokens[rng.random_range(0..tokens.len())].clone();
        let result = if rng.random_bool(0.5) {
            report(&client, &url, &mut rng).await
        } else if n % 18 == 1 && ideas.len() < IDEAS.len() {
            let (title, body, theme) = IDEAS[ideas.len()];
            let commune = communes::valley().all()
                [rng.random_range(0..communes::valley().all().len())]
            .insee_code
            .clone();
            graphql(&client, &url, Some(&token),
                "mutation($input: SubmitIdeaInput!) { submitIdea(input: $input) { idea { id } } }",
                json!({"input": {"title": title, "body": body, "theme": theme, "communeCode": commune}}))
            .await
            .map(|d| {
                if let Some(id) = d["submitIdea"]["idea"]["id"].as_str() {
                    ideas.push(id.to_string());
                }
            })
        } else if !ideas.is_empty() {
            let idea = ideas[rng.random_range(0..ideas.len())].clone();
            if rng.random_bool(0.85) {
                graphql(
                    &client,
                    &url,
                    Some(&token),
                    "mutation($id: ID!) { supportIdea(id: $id) { idea { supports } } }",
                    json!({"id": idea}),
                )
                .await
                .map(|_| ())
            } else {
                let body = COMMENTS[rng.random_range(0..COMMENTS.len())];
                graphql(&client, &url, Some(&token),
                    "mutation($id: ID!, $body: String!) { commentIdea(id: $id, input: {body: $body}) { comment { id } } }",
                    json!({"id": idea, "body": body}))
                .await
                .map(|_| ())
            }
        } else {
            Ok(())
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "simulated citizen write refused");
        }
    }
}

/// A report of a random service, somewhere in a random commune.
async fn report(client: &reqwest::Client, url: &str, rng: &mut StdRng) -> Result<()> {
    let (code, text) = REPORT_TEXTS[rng.random_range(0..REPORT_TEXTS.len())];
    debug_assert!(SERVICES.iter().any(|s| s.code == code));
    let valley = communes::valley();
    let commune = &valley.all()[rng.random_range(0..valley.all().len())];
    let point = super::valley::point_in(rng, commune, commune.radius_m() / 3.0);
    let (lat, long) = (point.lat, point.lon);
    graphql(
        client,
        url,
        None,
        "mutation($input: SubmitReportInput!) { submitReport(input: $input) { report { id } } }",
        json!({"input": {"serviceCode": code, "description": text, "lat": lat, "long": long}}),
    )
    .await
    .map(|_| ())
}
