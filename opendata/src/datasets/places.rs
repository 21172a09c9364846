//! The datasets of the reference places staff keep up to date: the digital gallery,
//! coworking spaces, digital-training sessions, childcare and its vacancies.

use vallee_lake::Latest;
use vallee_schemas::contract::Table;

use super::{Dataset, Frequency, Source, THEME_GOVE, THEME_REGI, THEME_SOCI};

/// A text field of a reference place's JSON payload (`p.payload`), unescaped.
macro_rules! place_text {
    ($field:literal) => {
        concat!(
            r#"replace(replace(regexp_match(p.payload, '""#,
            $field,
            r#"":"((?:[^"\\]|\\.)*)"')[1], '\"', '"'), '\\', '\')"#
        )
    };
}

/// A number field of a reference place's JSON payload.
macro_rules! place_number {
    ($field:literal) => {
        concat!(
            r#"CAST(regexp_match(p.payload, '""#,
            $field,
            r#"":(-?[0-9.eE+-]+)')[1] AS DOUBLE)"#
        )
    };
}

/// The common columns of every reference-place dataset, read from the latest version of a
/// place (`p`).
const PLACE_COLUMNS_SQL: &str = concat!(
    r#"p."entityId" AS identifiant, "#,
    place_text!("name"),
    r#" AS nom, p."communeCode", "#,
    place_text!("address"),
    r#" AS adresse, "#,
    place_number!("lat"),
    r#" AS latitude, "#,
    place_number!("long"),
    r#" AS longitude, "#,
    place_text!("openingHours"),
    r#" AS horaires, "#,
    place_text!("contact"),
    r#" AS contact, "#,
    place_text!("website"),
    r#" AS "siteWeb", "#,
    place_text!("description"),
    r#" AS description, "#,
);

/// The latest version of every reference place of one kind (removed ones left out), its
/// common columns, then `extra` columns, then the update time; `joins` may add tables.
fn places_sql(kind: &str, extra: &str, joins: &str) -> String {
    let places =
        Latest::of(Table::ReferencePlaces).filter("type IN ('PlaceUpdated', 'PlaceRemoved')");
    format!(
        r#"SELECT {PLACE_COLUMNS_SQL}{extra}p."dateObserved" AS "dateMiseAJour"
           FROM ({places}) p {joins}
           WHERE p.type = 'PlaceUpdated' AND regexp_match(p.payload, '"kind":"([a-z_]*)"')[1] = '{kind}'"#
    )
}

/// The columns every reference-place dataset starts with.
const PLACE_COLUMNS: [(&str, &str); 10] = [
    ("identifiant", "Identifiant du lieu"),
    ("nom", "Nom"),
    ("communeCode", "Code INSEE de la commune"),
    ("adresse", "Adresse postale"),
    ("latitude", "Latitude WGS 84"),
    ("longitude", "Longitude WGS 84"),
    (
        "horaires",
        "Horaires d'ouverture (syntaxe opening_hours d'OpenStreetMap)",
    ),
    ("contact", "Téléphone ou courriel public du lieu"),
    ("siteWeb", "Site web"),
    ("description", "Description"),
];

/// `PLACE_COLUMNS`, then `extra`, then the update time (a const-built list).
macro_rules! place_columns {
    ($($extra:expr),*) => {
        &[
            PLACE_COLUMNS[0], PLACE_COLUMNS[1], PLACE_COLUMNS[2], PLACE_COLUMNS[3], PLACE_COLUMNS[4],
            PLACE_COLUMNS[5], PLACE_COLUMNS[6], PLACE_COLUMNS[7], PLACE_COLUMNS[8], PLACE_COLUMNS[9],
            $($extra,)*
            ("dateMiseAJour", "Date et heure de la dernière mise à jour par la collectivité (UTC)"),
        ]
    };
}

pub(super) const DIGITAL_GALLERY: Dataset = Dataset {
    id: "lieux-galerie-numerique",
    title: "Lieux de la galerie numérique",
    description: "Points d'accès public au numérique de la vallée (galerie numérique) : adresse, position, horaires, contact. Mis à jour par les services de la collectivité.",
    keywords: &["numerique", "inclusion numerique", "acces public", "lieux"],
    theme: "Numérique",
    dcat_theme: THEME_GOVE,
    frequency: Frequency::Continuous,
    source: Source::Raw(Table::ReferencePlaces),
    view: || places_sql("digital_gallery", "", ""),
    commune_column: Some("communeCode"),
    time_column: "dateMiseAJour",
    time_is_date: false,
    point: Some(("latitude", "longitude")),
    uses_sharing: false,
    columns: place_columns!(),
};

pub(super) const COWORKING: Dataset = Dataset {
    id: "espaces-coworking",
    title: "Espaces de coworking",
    description: "Espaces de travail partagé de la vallée : adresse, position, horaires, contact. Mis à jour par les services de la collectivité.",
    keywords: &["coworking", "tiers-lieux", "teletravail", "economie"],
    theme: "Économie",
    dcat_theme: THEME_REGI,
    frequency: Frequency::Continuous,
    source: Source::Raw(Table::ReferencePlaces),
    view: || places_sql("coworking", "", ""),
    commune_column: Some("communeCode"),
    time_column: "dateMiseAJour",
    time_is_date: false,
    point: Some(("latitude", "longitude")),
    uses_sharing: false,
    columns: place_columns!(),
};

pub(super) const TRAINING_SESSIONS: Dataset = Dataset {
    id: "sessions-formation-numerique",
    title: "Sessions de formation au numérique",
    description: "Ateliers et formations au numérique proposés dans la vallée : lieu, dates, places offertes. Mis à jour par les services de la collectivité.",
    keywords: &["numerique", "formation", "ateliers", "inclusion numerique"],
    theme: "Numérique",
    dcat_theme: THEME_GOVE,
    frequency: Frequency::Continuous,
    source: Source::Raw(Table::ReferencePlaces),
    view: || {
        places_sql(
            "training_session",
            concat!(
                r#"CAST(regexp_match(p.payload, '"startsAt":"([^"]*)"')[1] AS TIMESTAMP) AS debut, "#,
                r#"CAST(regexp_match(p.payload, '"endsAt":"([^"]*)"')[1] AS TIMESTAMP) AS fin, "#,
                r#"CAST(regexp_match(p.payload, '"seats":([0-9]+)')[1] AS BIGINT) AS places, "#
            ),
            "",
        )
    },
    commune_column: Some("communeCode"),
    time_column: "dateMiseAJour",
    time_is_date: false,
    point: Some(("latitude", "longitude")),
    uses_sharing: false,
    columns: place_columns!(
        ("debut", "Début de la session (UTC)"),
        ("fin", "Fin de la session (UTC)"),
        ("places", "Places offertes")
    ),
};

pub(super) const CHILDCARE: Dataset = Dataset {
    id: "etablissements-petite-enfance",
    title: "Établissements d'accueil du jeune enfant et places disponibles",
    description: "Crèches, micro-crèches et maisons d'assistants maternels de la vallée (guichet unique petite enfance) : capacité, âges accueillis et places disponibles, mises à jour par les services de la collectivité.",
    keywords: &["petite enfance", "creches", "places disponibles", "famille"],
    theme: "Social",
    dcat_theme: THEME_SOCI,
    frequency: Frequency::Continuous,
    source: Source::Raw(Table::ReferencePlaces),
    view: || {
        let vacancies =
            Latest::of(Table::ReferencePlaces).filter("type = 'ChildcareVacanciesUpdated'");
        places_sql(
            "childcare",
            concat!(
                r#"CAST(regexp_match(p.payload, '"capacity":([0-9]+)')[1] AS BIGINT) AS capacite, "#,
                r#"CAST(regexp_match(p.payload, '"ageMinMonths":([0-9]+)')[1] AS BIGINT) AS "ageMinMois", "#,
                r#"CAST(regexp_match(p.payload, '"ageMaxMonths":([0-9]+)')[1] AS BIGINT) AS "ageMaxMois", "#,
                r#"vac.v AS "placesDisponibles", vac.at AS "dateMiseAJourPlaces", "#
            ),
            &format!(
                r#"LEFT JOIN (SELECT "entityId" AS id, CAST(regexp_match(payload, '"vacancies":([0-9]+)')[1] AS BIGINT) AS v,
                                     "dateObserved" AS at
                              FROM ({vacancies})) vac
                         ON vac.id = p."entityId""#
            ),
        )
    },
    commune_column: Some("communeCode"),
    time_column: "dateMiseAJour",
    time_is_date: false,
    point: Some(("latitude", "longitude")),
    uses_sharing: false,
    columns: place_columns!(
        ("capacite", "Nombre de places de l'établissement"),
        ("ageMinMois", "Âge minimal accueilli (mois)"),
        ("ageMaxMois", "Âge maximal accueilli (mois)"),
        (
            "placesDisponibles",
            "Places disponibles à la dernière mise à jour"
        ),
        (
            "dateMiseAJourPlaces",
            "Date et heure de la mise à jour des places disponibles (UTC)"
        )
    ),
};
