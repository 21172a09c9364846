//! The citizens' pages in a real browser, used as people would: a resident reports a
//! problem with a photo and an e-mail, receives the acknowledgement, and follows it until
//! the town hall, which published the photo, closes it; a form sent incomplete says what is
//! missing where, a parent finds a crèche with a place, and every page passes an automated
//! accessibility check (axe-core) with no serious violation.

use serde_json::{Value, json};

use crate::browser::Browser;
use crate::hub::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_reports_follows_and_sees_the_closure_and_a_parent_finds_a_creche() {
    let Some(mut browser) = Browser::start().await else {
        return;
    };
    let world = crate::helpers::World::new(3).await;
    // The town's mail relay, when aiosmtpd is there (required in CI).
    let smtp = crate::notifications::MailServer::start(world.dir.path()).await;
    let mail = smtp.as_ref().map_or(String::new(), |s| {
        format!(
            "\n[api.mail]\nsmtp_addr = \"{}\"\npublic_url = \"{}\"\n",
            s.addr,
            crate::notifications::PUBLIC_URL
        )
    });
    let hub = Hub::start_with(&world, "hub", &mail).await;
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
    // And a photo taken with a phone (its GPS position inside).
    let photo = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        crate::photos::phone_photo(),
    );
    let attached = browser
        .eval(&format!(
            "(() => {{ const b = Uint8Array.from(atob('{photo}'), (c) => c.charCodeAt(0));
               const dt = new DataTransfer();
               dt.items.add(new File([b], 'lampadaire.jpg', {{ type: 'image/jpeg' }}));
               document.getElementById('photos').files = dt.files;
               return dt.files.length; }})()"
        ))
        .await;
    assert_eq!(attached, 1);
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
            "query($id: ID!) { report(id: $id) { communeCode addressString followers contact { email }
               photos { state } } }",
            json!({"id": id}),
        )
        .await["report"]
        .clone();
    assert_eq!(report["photos"], json!([{"state": "PENDING"}]));
    // The acknowledgement reaches the resident's mailbox.
    if let Some(smtp) = &smtp {
        crate::helpers::eventually(
            std::time::Duration::from_secs(30),
            "the acknowledgement e-mail",
            || async {
                smtp.received().iter().any(|(to, subject, body)| {
                    to == "<habitant@example.fr>"
                        && subject.contains("reçu")
                        && body.contains(&format!("suivre={id}"))
                })
            },
        )
        .await;
    }
    assert_eq!(report["communeCode"], GIGNAC);
    assert_eq!(report["addressString"], "12 rue du Pont, Gignac");
    assert_eq!(report["followers"], 1);
    assert_eq!(report["contact"]["email"], "habitant@example.fr");

    // The town hall looks at the photo in its back office and publishes it.
    browser.open(&page("/gestion")).await;
    browser.fill("jeton-agent", GIGNAC_STAFF).await;
    browser.click("#connexion-form button[type=submit]").await;
    let pending = format!("article[data-report-id=\"{id}\"] figure[data-photo-state=PENDING]");
    browser
        .until(
            &format!("document.querySelector('{pending} img')?.naturalWidth > 0"),
            "the photo shown to the agent",
        )
        .await;
    browser
        .click(&format!("{pending} button[data-action=accept-photo]"))
        .await;
    browser
        .until(
            &format!(
                "document.querySelector('article[data-report-id=\"{id}\"] figure[data-photo-state=ACCEPTED]')"
            ),
            "the photo published",
        )
        .await;

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
    if let Some(smtp) = &smtp {
        crate::helpers::eventually(
            std::time::Duration::from_secs(30),
            "the closure e-mail",
            || async {
                smtp.received()
                    .iter()
                    .any(|(_, _, body)| body.contains("Lampe changée le jour même."))
            },
        )
        .await;
    }
    browser
        .until(
            &format!("document.querySelector('{card} img[data-photo-id]')?.naturalWidth > 0"),
            "the published photo on the resident's page",
        )
        .await;

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

/// A report of `service` at `(lat, long)`, followed by `follower`'s token; its id.
async fn report(hub: &Hub, service: &str, lat: f64, long: f64, follower: &str) -> String {
    let id = hub
        .ok(
            None,
            "mutation($input: SubmitReportInput!) { submitReport(input: $input) { report { id } } }",
            json!({"input": {"serviceCode": service, "description": format!("{service} ici"),
                "lat": lat, "long": long}}),
        )
        .await["submitReport"]["report"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    hub.ok(
        Some(follower),
        "mutation($id: ID!) { followReport(id: $id) { report { id } } }",
        json!({"id": id}),
    )
    .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_town_hall_agent_works_the_late_queue_merges_a_duplicate_and_moderates_the_idea_box() {
    let Some(mut browser) = Browser::start().await else {
        return;
    };
    let (_world, hub) = world_and_hub().await;
    let (t1, t2) = (hub.token().await, hub.token().await);
    // In Gignac: a pothole (answer due in 14 days), then a fallen tree (2 days) and the same
    // tree reported again nearby; in Aniane, a tag (not the Gignac agent's).
    let pothole = report(&hub, "pothole", 43.6521, 3.5512, &t1).await;
    let tree = report(&hub, "fallen-tree", 43.6530, 3.5520, &t1).await;
    let same_tree = report(&hub, "fallen-tree", 43.6531, 3.5521, &t2).await;
    report(&hub, "graffiti", 43.6840, 3.5930, &t1).await;
    let idea = hub
        .ok(
            Some(&t2),
            "mutation($input: SubmitIdeaInput!) { submitIdea(input: $input) { idea { id } } }",
            json!({"input": {"title": "Publicité déguisée", "body": "Achetez chez nous",
                "theme": "LOCAL_ECONOMY", "communeCode": GIGNAC}}),
        )
        .await["submitIdea"]["idea"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    hub.ok(
        Some(&t1),
        "mutation($id: ID!) { flagIdea(id: $id, reason: SPAM) { idea { id } } }",
        json!({"id": idea}),
    )
    .await;
    let comment = hub
        .ok(
            Some(&t1),
            "mutation($id: ID!, $input: CommentIdeaInput!) { commentIdea(id: $id, input: $input) { comment { id } } }",
            json!({"id": idea, "input": {"body": "Visitez mon site de paris en ligne"}}),
        )
        .await["commentIdea"]["comment"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A resident flags the spam comment from the idea box.
    browser.open(&hub.url("/idees")).await;
    let flag = format!("li[data-comment-id=\"{comment}\"] button[data-action=flag-comment]");
    browser
        .until(&format!("document.querySelector('{flag}')"), "the comment")
        .await;
    browser.click(&flag).await;
    crate::helpers::eventually(
        std::time::Duration::from_secs(10),
        "the comment flagged",
        || async {
            hub.ok(
                Some(GIGNAC_STAFF),
                "query($id: ID!) { idea(id: $id) { comments { flags } } }",
                json!({"id": idea}),
            )
            .await["idea"]["comments"]
                == json!([{"flags": 1}])
        },
    )
    .await;

    // A wrong token is refused with why; the agent's opens their space.
    browser.open(&hub.url("/gestion")).await;
    browser.fill("jeton-agent", "not-a-token").await;
    browser.click("#connexion-form button[type=submit]").await;
    browser
        .until(
            "!document.getElementById('erreur-connexion').hidden",
            "the refusal",
        )
        .await;
    browser.fill("jeton-agent", GIGNAC_STAFF).await;
    browser.click("#connexion-form button[type=submit]").await;
    browser
        .until(
            "document.querySelectorAll('#file article').length === 3",
            "the Gignac queue",
        )
        .await;
    assert!(browser.text("#agent").await.contains("Mairie de Gignac"));
    let order = browser
        .eval("[...document.querySelectorAll('#file article')].map(a => a.dataset.reportId)")
        .await;
    assert_eq!(
        order,
        json!([tree, same_tree, pothole]),
        "the answer due first at the top"
    );
    assert_eq!(
        browser
            .eval("document.querySelectorAll('#file-carte circle').length")
            .await,
        3,
        "each on the map too"
    );

    // The second report of the tree is merged into the first, which the agent then closes
    // with a reusable answer.
    browser.fill(&format!("doublon-{same_tree}"), &tree).await;
    browser
        .click(&format!(
            "article[data-report-id=\"{same_tree}\"] button[data-action=merge]"
        ))
        .await;
    browser
        .until(
            "document.querySelectorAll('#file article').length === 2",
            "the duplicate out of the queue",
        )
        .await;
    let resolved = "Le problème est résolu. Merci de nous l'avoir signalé.";
    browser.fill(&format!("modele-{tree}"), resolved).await;
    browser.fill(&format!("sub-{tree}"), "FIXED").await;
    browser
        .click(&format!(
            "article[data-report-id=\"{tree}\"] button[data-action=close]"
        ))
        .await;
    browser
        .until(
            "document.querySelectorAll('#file article').length === 1",
            "the tree closed",
        )
        .await;
    let read = "query($id: ID!) { report(id: $id) { status substatus statusNotes followers } }";
    let closed = hub.ok(None, read, json!({"id": tree})).await["report"].clone();
    assert_eq!(
        closed,
        json!({"status": "CLOSED", "substatus": "FIXED", "statusNotes": resolved, "followers": 2}),
        "the duplicate's follower follows the original"
    );
    let merged = hub.ok(None, read, json!({"id": same_tree})).await["report"].clone();
    assert_eq!(merged["substatus"], "DUPLICATE");
    assert!(merged["statusNotes"].as_str().unwrap().contains(&tree));

    // A new coworking space, published from the back office, then its hours set.
    browser.fill("nouveau-lieu-type", "COWORKING").await;
    browser
        .fill("nouveau-lieu-nom", "Tiers-lieu de la gare")
        .await;
    browser
        .fill("nouveau-lieu-adresse", "Avenue de la Gare")
        .await;
    browser.click("#nouveau-lieu button[type=submit]").await;
    let spaces = "{ places(kind: COWORKING) { id name address openingHours } }";
    crate::helpers::eventually(
        std::time::Duration::from_secs(10),
        "the new place",
        || async {
            hub.ok(None, spaces, json!({})).await["places"][0]["name"] == "Tiers-lieu de la gare"
        },
    )
    .await;
    let place: Value = hub.ok(None, spaces, json!({})).await["places"][0].clone();
    let id = place["id"].as_str().unwrap().to_string();
    browser
        .until(
            &format!("document.getElementById('lieu-horaires-{id}')"),
            "the place in the back office",
        )
        .await;
    browser
        .fill(&format!("lieu-horaires-{id}"), "Mo-Fr 09:00-18:00")
        .await;
    browser
        .click(&format!(
            "details[data-place-id=\"{id}\"] button[data-action=save-place]"
        ))
        .await;
    crate::helpers::eventually(std::time::Duration::from_secs(10), "the hours", || async {
        hub.ok(None, spaces, json!({})).await["places"][0]["openingHours"] == "Mo-Fr 09:00-18:00"
    })
    .await;
    assert_eq!(
        hub.ok(None, spaces, json!({})).await["places"][0]["address"],
        "Avenue de la Gare",
        "what the form did not show is kept"
    );

    // The spam comment, shown flagged, is hidden, then the flagged idea itself, from the
    // public.
    assert!(
        browser
            .text(&format!("li[data-comment-id=\"{comment}\"]"))
            .await
            .contains("signalé 1 fois")
    );
    browser
        .click(&format!(
            "li[data-comment-id=\"{comment}\"] button[data-action=moderate-comment]"
        ))
        .await;
    let comments = "query($id: ID!) { idea(id: $id) { comments { id hidden } } }";
    crate::helpers::eventually(
        std::time::Duration::from_secs(10),
        "the comment hidden",
        || async {
            hub.ok(None, comments, json!({"id": idea})).await["idea"]["comments"] == json!([])
        },
    )
    .await;
    assert_eq!(
        hub.ok(Some(GIGNAC_STAFF), comments, json!({"id": idea}))
            .await["idea"]["comments"],
        json!([{"id": comment, "hidden": true}]),
        "staff still see it, marked"
    );
    browser
        .until(
            &format!("document.querySelector('li[data-comment-id=\"{comment}\"]')?.textContent.includes('masqué')"),
            "the comment marked hidden in the back office",
        )
        .await;
    // The flagged idea is hidden from the public.
    browser
        .click(&format!(
            "article[data-idea-id=\"{idea}\"] button[data-action=moderate]"
        ))
        .await;
    let public = "{ ideas(first: 100) { edges { node { id } } } }";
    crate::helpers::eventually(
        std::time::Duration::from_secs(10),
        "the idea hidden",
        || async {
            !hub.ok(None, public, json!({}))
                .await
                .to_string()
                .contains(&idea)
        },
    )
    .await;
    if let Some(violations) = browser.accessibility_violations().await {
        assert!(violations.is_empty(), "/gestion: {violations:?}");
    }
    hub.stop().await;
}

/// The screenshots of `docs/`: every page with a little content, as a phone shows it.
/// `cargo test --test e2e -- --ignored screenshots_of_every_page` rewrites
/// `docs/pages/*.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/pages/*.png"]
async fn screenshots_of_every_page() {
    let Some(mut browser) = Browser::start().await else {
        return;
    };
    let (_world, hub) = world_and_hub().await;
    let citizen = hub.token().await;
    let id = report(&hub, "street-light", 43.6521, 3.5512, &citizen).await;
    report(&hub, "fallen-tree", 43.6530, 3.5520, &citizen).await;
    hub.ok(
        Some(GIGNAC_STAFF),
        "mutation($id: ID!, $input: UpdateReportStatusInput!) { updateReportStatus(id: $id, input: $input) { report { id } } }",
        json!({"id": id, "input": {"status": "OPEN", "substatus": "SCHEDULED", "statusNotes": "Intervention prévue jeudi matin."}}),
    )
    .await;
    hub.ok(
        Some(&citizen),
        "mutation($input: SubmitIdeaInput!) { submitIdea(input: $input) { idea { id } } }",
        json!({"input": {"title": "Un atelier numérique le samedi", "body": "Pour ceux qui travaillent en semaine.",
            "theme": "DIGITAL_FOR_ALL", "communeCode": GIGNAC}}),
    )
    .await;
    for (kind, name, extra) in [
        (
            "CHILDCARE",
            "Crèche Les Petits Pas",
            json!({"capacity": 12, "ageMinMonths": 3, "ageMaxMonths": 36, "latitude": 43.6521, "longitude": 3.5512}),
        ),
        (
            "TRAINING_SESSION",
            "Atelier : premiers pas sur Internet",
            json!({"startsAt": (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339(), "seats": 8}),
        ),
        (
            "COWORKING",
            "La Fabrique",
            json!({"address": "1 place de la Victoire"}),
        ),
    ] {
        let mut input = json!({"kind": kind, "name": name, "communeCode": GIGNAC});
        input
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        hub.ok(
            Some(GIGNAC_STAFF),
            "mutation($input: UpdatePlaceInput!) { updatePlace(input: $input) { place { id } } }",
            json!({"input": input}),
        )
        .await;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/pages");
    std::fs::create_dir_all(&dir).unwrap();
    browser
        .call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 412, "height": 900, "deviceScaleFactor": 1, "mobile": true}),
        )
        .await;
    browser
        .open(&hub.url(&format!("/mes-signalements?suivre={id}")))
        .await;
    for page in [
        "signaler",
        "mes-signalements",
        "idees",
        "petite-enfance",
        "lieux",
    ] {
        browser.open(&hub.url(&format!("/{page}"))).await;
        browser.screenshot(&dir.join(format!("{page}.png"))).await;
    }
    browser.open(&hub.url("/gestion")).await;
    browser.fill("jeton-agent", GIGNAC_STAFF).await;
    browser.click("#connexion-form button[type=submit]").await;
    browser
        .until(
            "document.querySelectorAll('#file article').length === 2 && document.getElementById('collecte').textContent",
            "the queue and the bins",
        )
        .await;
    browser.screenshot(&dir.join("gestion.png")).await;
    hub.stop().await;
}
