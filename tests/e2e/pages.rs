//! The citizens' pages in a real browser, used as people would: a resident reports a
//! problem and follows it until the town hall closes it, a form sent incomplete says what is
//! missing where, a parent finds a crèche with a place, and every page passes an automated
//! accessibility check (axe-core) with no serious violation.

use serde_json::json;

use crate::browser::Browser;
use crate::hub::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_reports_follows_and_sees_the_closure_and_a_parent_finds_a_creche() {
    let Some(mut browser) = Browser::start().await else {
        return;
    };
    let (_world, hub) = world_and_hub().await;
    let page = |path: &str| hub.url(path);

    // A resident reports a street light out in Gignac, by commune and address, with an
    // e-mail to be told.
    browser.open(&page("/signaler")).await;
    browser.fill("recherche-service", "éclairage").await;
    browser.fill("service", "street-light").await;
    assert_eq!(
        browser
            .eval("document.getElementById('service').value")
            .await,
        "street-light"
    );
    browser.fill("commune", GIGNAC).await;
    browser.fill("adresse", "12 rue du Pont").await;
    browser
        .fill(
            "description",
            "Le lampadaire devant le 12 est éteint depuis trois jours.",
        )
        .await;
    browser.fill("courriel", "habitant@example.fr").await;
    browser.click("#envoyer").await;
    browser
        .until(
            "!document.getElementById('confirmation').hidden",
            "the confirmation",
        )
        .await;
    let id = browser
        .eval("document.getElementById('confirmation').dataset.reportId")
        .await
        .as_str()
        .unwrap()
        .to_string();
    let confirmation = browser.text("#confirmation-texte").await;
    assert!(confirmation.contains("Mairie de Gignac"), "{confirmation}");
    assert!(
        browser.eval("document.activeElement.id").await == "confirmation",
        "focus moves to the confirmation"
    );

    // The hub has it, in Gignac, followed by this device; the contact stays private.
    let report = hub
        .ok(
            Some(GIGNAC_STAFF),
            "query($id: ID!) { report(id: $id) { communeCode addressString followers contact { email } } }",
            json!({"id": id}),
        )
        .await["report"]
        .clone();
    assert_eq!(report["communeCode"], GIGNAC);
    assert_eq!(report["addressString"], "12 rue du Pont, Gignac");
    assert_eq!(report["followers"], 1);
    assert_eq!(report["contact"]["email"], "habitant@example.fr");

    // The town hall closes it with a note; the resident's page shows it.
    hub.ok(
        Some(GIGNAC_STAFF),
        "mutation($id: ID!, $input: UpdateReportStatusInput!) { updateReportStatus(id: $id, input: $input) { report { status } } }",
        json!({"id": id, "input": {"status": "CLOSED", "substatus": "FIXED", "statusNotes": "Lampe changée le jour même."}}),
    )
    .await;
    browser.open(&page("/mes-signalements")).await;
    let card = format!("article[data-report-id=\"{id}\"]");
    let shown = browser.text(&card).await;
    assert!(shown.contains("Clos (résolu)"), "{shown}");
    assert!(shown.contains("Lampe changée le jour même."), "{shown}");
    assert!(shown.contains("Mairie de Gignac"), "{shown}");

    // Sent incomplete, the form says what is missing next to each field and moves the focus
    // to the first.
    browser.open(&page("/signaler")).await;
    browser.click("#envoyer").await;
    assert_eq!(browser.eval("document.activeElement.id").await, "service");
    assert_eq!(
        browser
            .eval("document.getElementById('service').getAttribute('aria-invalid')")
            .await,
        "true"
    );
    assert!(!browser.text("#erreur-service").await.is_empty());
    assert!(!browser.text("#erreur-description").await.is_empty());
    assert!(browser.text("#annonce").await.contains("erreur"));

    // A parent looks for a crèche in Gignac with a place for a 10-month-old.
    let creche = hub
        .ok(
            Some(GIGNAC_STAFF),
            "mutation($input: UpdatePlaceInput!) { updatePlace(input: $input) { place { id } } }",
            json!({"input": {"kind": "CHILDCARE", "name": "Crèche Les Petits Pas", "communeCode": GIGNAC,
                "address": "2 rue de la Croix", "latitude": 43.6521, "longitude": 3.5512,
                "capacity": 12, "ageMinMonths": 3, "ageMaxMonths": 36}}),
        )
        .await["updatePlace"]["place"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    hub.ok(
        Some(GIGNAC_STAFF),
        "mutation($id: ID!) { updateChildcareVacancies(id: $id, vacancies: 2) { place { id } } }",
        json!({"id": creche}),
    )
    .await;
    browser.open(&page("/petite-enfance")).await;
    browser.fill("creche-commune", GIGNAC).await;
    browser.fill("creche-age", "10").await;
    browser.fill("creche-libres", "true").await;
    browser.click("#recherche-creche button[type=submit]").await;
    let found = format!("article[data-place-id=\"{creche}\"]");
    browser
        .until(&format!("document.querySelector('{found}')"), "the crèche")
        .await;
    let shown = browser.text(&found).await;
    assert!(shown.contains("2 places libres"), "{shown}");
    assert!(shown.contains("de 3 à 36 mois"), "{shown}");
    assert_eq!(
        browser
            .eval("document.querySelectorAll('#creche-carte circle.place').length")
            .await,
        1,
        "on the map too"
    );
    // Too old for it: not listed.
    browser.fill("creche-age", "48").await;
    browser.click("#recherche-creche button[type=submit]").await;
    browser
        .until(
            &format!("!document.querySelector('{found}')"),
            "the crèche gone for a 4-year-old",
        )
        .await;

    // Every page, checked by axe-core: no serious or critical violation.
    for path in [
        "/signaler",
        "/mes-signalements",
        "/idees",
        "/petite-enfance",
        "/lieux",
    ] {
        browser.open(&page(path)).await;
        if let Some(violations) = browser.accessibility_violations().await {
            assert!(violations.is_empty(), "{path}: {violations:?}");
        }
    }
    hub.stop().await;
}
