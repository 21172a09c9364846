//! The published datasets: each is one SQL view over one lake table, with the privacy
//! rules written into the view itself (so no download, catalogue or public table can
//! bypass them):
//!
//! - counts of people (footfall, site presence) from 1 to 4 are suppressed (k = 5), and
//!   flagged in `secretStatistique`;
//! - no device token exists in the lake to begin with; no reporter contact either (they
//!   stay under `private/`); citizens' pseudonyms (`actor`) and free text written by
//!   citizens (a description can name a person) are not published, except the titles of
//!   ideas, which the idea box shows publicly and moderators can hide (hidden ideas are
//!   left out, as in the idea box: by a moderator, or by 3 distinct flags until one decides);
//! - report positions are rounded to 3 decimals (about 100 m).

use vallee_lake::LakeTable;
use vallee_schemas::contract::Table;
use vallee_schemas::tables::OutputTable;

/// Smallest count of people published (smaller ones are suppressed).
pub const K_ANONYMITY: i64 = 5;

/// The lake table a dataset reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Raw(Table),
    Derived(OutputTable),
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Raw(t) => t.name(),
            Source::Derived(t) => LakeTable::name(&t),
        }
    }
}

/// How often a dataset changes (DCAT frequency and its SCDL label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    Continuous,
    Hourly,
    Daily,
}

impl Frequency {
    pub fn dcat(self) -> &'static str {
        match self {
            Frequency::Continuous => {
                "http://publications.europa.eu/resource/authority/frequency/UPDATE_CONT"
            }
            Frequency::Hourly => {
                "http://publications.europa.eu/resource/authority/frequency/HOURLY"
            }
            Frequency::Daily => "http://publications.europa.eu/resource/authority/frequency/DAILY",
        }
    }
    pub fn scdl(self) -> &'static str {
        match self {
            Frequency::Continuous => "Continuelle",
            Frequency::Hourly => "Toutes les heures",
            Frequency::Daily => "Quotidienne ou plusieurs fois par jour",
        }
    }
}

/// One published dataset.
#[derive(Debug, Clone, Copy)]
pub struct Dataset {
    /// Used in every URL.
    pub id: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub keywords: &'static [&'static str],
    /// Free theme (SCDL) and its DCAT-AP data theme.
    pub theme: &'static str,
    pub dcat_theme: &'static str,
    pub frequency: Frequency,
    pub source: Source,
    /// The view (SQL over `source`), privacy rules included.
    pub sql: &'static str,
    /// Column holding the INSEE code (filter `commune`).
    pub commune_column: Option<&'static str>,
    /// Column holding the time (filters `from`, `to`; temporal coverage), and whether it
    /// is a date rather than a timestamp.
    pub time_column: &'static str,
    pub time_is_date: bool,
    /// `(latitude, longitude)` columns: the dataset is also served as GeoJSON.
    pub point: Option<(&'static str, &'static str)>,
    /// Reads the partners' sharing settings (table `shared_parcels`): its content depends
    /// on the audience, and changes when a setting does.
    pub uses_sharing: bool,
    /// French description of each column (Table Schema).
    pub columns: &'static [(&'static str, &'static str)],
}

const THEME_ENVI: &str = "http://publications.europa.eu/resource/authority/data-theme/ENVI";
const THEME_REGI: &str = "http://publications.europa.eu/resource/authority/data-theme/REGI";
const THEME_AGRI: &str = "http://publications.europa.eu/resource/authority/data-theme/AGRI";
const THEME_GOVE: &str = "http://publications.europa.eu/resource/authority/data-theme/GOVE";
const THEME_SOCI: &str = "http://publications.europa.eu/resource/authority/data-theme/SOCI";

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

/// The latest version of every reference place of one kind (removed ones left out), its
/// common columns, then `extra` columns, then the update time; `joins` may add tables.
macro_rules! places_sql {
    ($kind:literal, $extra:expr, $joins:expr) => {
        concat!(
            r#"SELECT p."entityId" AS identifiant, "#,
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
            $extra,
            r#"p."dateObserved" AS "dateMiseAJour"
               FROM (SELECT *, row_number() OVER (PARTITION BY "entityId" ORDER BY "dateObserved" DESC, _offset DESC) AS rn
                     FROM reference_places WHERE type IN ('PlaceUpdated', 'PlaceRemoved')) p "#,
            $joins,
            r#" WHERE p.rn = 1 AND p.type = 'PlaceUpdated' AND regexp_match(p.payload, '"kind":"([a-z_]*)"')[1] = '"#,
            $kind,
            "'"
        )
    };
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

/// Every dataset, in catalogue order.
pub const DATASETS: &[Dataset] = &[
    Dataset {
        id: "remplissage-conteneurs-quotidien",
        title: "Remplissage quotidien des conteneurs connectés par commune",
        description: "Pour chaque jour (UTC) et chaque commune : nombre de conteneurs connectés ayant émis, nombre de mesures, remplissage moyen et maximal, mesures au-dessus du seuil de remplissage du conteneur (0,8 par défaut).",
        keywords: &["dechets", "conteneurs", "remplissage", "collecte"],
        theme: "Environnement",
        dcat_theme: THEME_ENVI,
        frequency: Frequency::Continuous,
        source: Source::Raw(Table::WasteContainers),
        sql: r#"SELECT day, "communeCode", count(DISTINCT id) AS conteneurs, count(*) AS mesures,
                       round(avg("fillingLevel"), 3) AS "remplissageMoyen", max("fillingLevel") AS "remplissageMax",
                       sum(CASE WHEN "fillingLevel" >= coalesce("binFullnessThreshold", 0.8) THEN 1 ELSE 0 END) AS "mesuresAuDessusDuSeuil"
                FROM waste_containers WHERE "communeCode" IS NOT NULL
                GROUP BY day, "communeCode""#,
        commune_column: Some("communeCode"),
        time_column: "day",
        time_is_date: true,
        point: None,
        uses_sharing: false,
        columns: &[
            ("day", "Jour (UTC) des mesures"),
            ("communeCode", "Code INSEE de la commune"),
            ("conteneurs", "Conteneurs ayant émis au moins une mesure"),
            ("mesures", "Nombre de mesures reçues"),
            ("remplissageMoyen", "Taux de remplissage moyen (0 à 1)"),
            ("remplissageMax", "Taux de remplissage maximal (0 à 1)"),
            (
                "mesuresAuDessusDuSeuil",
                "Mesures au-dessus du seuil de remplissage du conteneur",
            ),
        ],
    },
    Dataset {
        id: "alertes-conteneurs",
        title: "Alertes des conteneurs et collectes constatées par commune",
        description: "Pour chaque jour (UTC), commune et type d'alerte (plein, feu, état, silencieux) : alertes ouvertes, alertes levées, et levées prouvées par le passage d'un camion de collecte.",
        keywords: &["dechets", "alertes", "collecte", "conteneurs"],
        theme: "Environnement",
        dcat_theme: THEME_ENVI,
        frequency: Frequency::Continuous,
        source: Source::Derived(OutputTable::FillAlerts),
        sql: r#"SELECT day, "communeCode", kind AS "typeAlerte",
                       sum(CASE WHEN state = 'open' THEN 1 ELSE 0 END) AS ouvertures,
                       sum(CASE WHEN state = 'cleared' THEN 1 ELSE 0 END) AS levees,
                       sum(CASE WHEN "clearReason" = 'collection' THEN 1 ELSE 0 END) AS "leveesParCollecte"
                FROM (SELECT DISTINCT "alertId", state, kind, "clearReason", "communeCode", day FROM fill_alerts) a
                WHERE "communeCode" IS NOT NULL
                GROUP BY day, "communeCode", kind"#,
        commune_column: Some("communeCode"),
        time_column: "day",
        time_is_date: true,
        point: None,
        uses_sharing: false,
        columns: &[
            ("day", "Jour (UTC)"),
            ("communeCode", "Code INSEE de la commune"),
            (
                "typeAlerte",
                "fill (plein), fire (feu), status (état), silent (silencieux)",
            ),
            ("ouvertures", "Alertes ouvertes ce jour"),
            ("levees", "Alertes levées ce jour"),
            (
                "leveesParCollecte",
                "Levées prouvées par le passage d'un camion de collecte",
            ),
        ],
    },
    Dataset {
        id: "frequentation-zone-activites",
        title: "Fréquentation horaire de la zone d'activités de Camalcé",
        description: "Personnes distinctes détectées par heure et par secteur de la zone d'activités (balises, identifiants pseudonymes renouvelés chaque jour, jamais conservés). Les effectifs de 1 à 4 personnes sont masqués (secret statistique).",
        keywords: &["frequentation", "zone-d-activites", "economie"],
        theme: "Économie",
        dcat_theme: THEME_REGI,
        frequency: Frequency::Hourly,
        source: Source::Derived(OutputTable::Footfall),
        sql: r#"SELECT zone, "dateObservedFrom", "dateObservedTo",
                       CASE WHEN "peopleCount" BETWEEN 1 AND 4 THEN NULL ELSE "peopleCount" END AS "peopleCount",
                       "peopleCount" BETWEEN 1 AND 4 AS "secretStatistique", congested AS "saturee", "final" AS definitif
                FROM (SELECT *, row_number() OVER (PARTITION BY zone, "window", "dateObservedFrom" ORDER BY revision DESC) AS rn
                      FROM footfall WHERE "window" = 'PT1H') f
                WHERE rn = 1"#,
        commune_column: None,
        time_column: "dateObservedFrom",
        time_is_date: false,
        point: None,
        uses_sharing: false,
        columns: &[
            ("zone", "Secteur de la zone d'activités"),
            ("dateObservedFrom", "Début de l'heure (UTC)"),
            ("dateObservedTo", "Fin de l'heure (UTC)"),
            (
                "peopleCount",
                "Personnes distinctes (vide si 1 à 4 : secret statistique)",
            ),
            ("secretStatistique", "Vrai quand l'effectif est masqué"),
            ("saturee", "Capacité du secteur atteinte"),
            (
                "definitif",
                "Vrai quand plus aucune donnée tardive ne peut modifier la valeur",
            ),
        ],
    },
    Dataset {
        id: "frequentation-sites-touristiques",
        title: "Visiteurs par heure des sites touristiques de la vallée",
        description: "Visiteurs comptés par heure et par site (abbaye de Gellone, pont du Diable, grotte de Clamouse…) et validations du parcours en réalité augmentée. Les effectifs de 1 à 4 sont masqués (secret statistique).",
        keywords: &["tourisme", "frequentation", "sites", "realite-augmentee"],
        theme: "Tourisme",
        dcat_theme: THEME_REGI,
        frequency: Frequency::Hourly,
        source: Source::Derived(OutputTable::SitePresence),
        sql: r#"SELECT site, "locationCode" AS "communeCode", hour,
                       CASE WHEN "visitorCount" BETWEEN 1 AND 4 THEN NULL ELSE "visitorCount" END AS "visitorCount",
                       CASE WHEN "arCheckins" BETWEEN 1 AND 4 THEN NULL ELSE "arCheckins" END AS "arCheckins",
                       ("visitorCount" BETWEEN 1 AND 4) OR ("arCheckins" BETWEEN 1 AND 4) AS "secretStatistique",
                       "final" AS definitif
                FROM (SELECT *, row_number() OVER (PARTITION BY site, hour ORDER BY revision DESC) AS rn
                      FROM site_presence) p
                WHERE rn = 1"#,
        commune_column: Some("communeCode"),
        time_column: "hour",
        time_is_date: false,
        point: None,
        uses_sharing: false,
        columns: &[
            ("site", "Identifiant du site"),
            ("communeCode", "Code INSEE de la commune du site"),
            ("hour", "Heure (UTC)"),
            (
                "visitorCount",
                "Visiteurs (vide si 1 à 4 : secret statistique)",
            ),
            ("arCheckins", "Validations du parcours AR (vide si 1 à 4)"),
            ("secretStatistique", "Vrai quand une valeur est masquée"),
            (
                "definitif",
                "Vrai quand plus aucune donnée tardive ne peut modifier la valeur",
            ),
        ],
    },
    Dataset {
        id: "indicateurs-vigne",
        title: "Indicateurs agro-climatiques de la vigne par station météo",
        description: "Par station météo du réseau de la vallée et jour (heure de Paris) : températures, pluie, degrés-jours base 10 °C et indice de Winkler depuis le 1er avril, indice de Huglin, degrés-jours de maturation des oospores (base 8 °C depuis le 1er janvier), conditions 3-10 du mildiou, indice Gubler-Thomas de l'oïdium. Les données des parcelles privées des domaines ne sont pas publiées.",
        keywords: &["vigne", "viticulture", "mildiou", "oidium", "meteo"],
        theme: "Agriculture",
        dcat_theme: THEME_AGRI,
        frequency: Frequency::Daily,
        source: Source::Derived(OutputTable::VineIndicators),
        sql: r#"SELECT station, day, tmin, tmax, tmean, "rainMm", "growingDegreeDays", "winklerIndex", "huglinIndex",
                       "oosporeDegreeDays", "downyMildew310", "gublerThomasIndex"
                FROM (SELECT *, row_number() OVER (PARTITION BY station, day ORDER BY revision DESC) AS rn
                      FROM vine_indicators) v
                WHERE rn = 1"#,
        commune_column: None,
        time_column: "day",
        time_is_date: true,
        point: None,
        uses_sharing: false,
        columns: &[
            ("station", "Station météo"),
            ("day", "Jour (heure de Paris)"),
            ("tmin", "Température minimale (°C)"),
            ("tmax", "Température maximale (°C)"),
            ("tmean", "Température moyenne (°C)"),
            ("rainMm", "Pluie (mm)"),
            (
                "growingDegreeDays",
                "Degrés-jours base 10 °C depuis le 1er avril",
            ),
            ("winklerIndex", "Indice de Winkler depuis le 1er avril"),
            ("huglinIndex", "Indice de Huglin depuis le 1er avril"),
            (
                "oosporeDegreeDays",
                "Degrés-jours base 8 °C depuis le 1er janvier (oospores)",
            ),
            ("downyMildew310", "Conditions 3-10 du mildiou réunies"),
            (
                "gublerThomasIndex",
                "Indice Gubler-Thomas de l'oïdium (0 à 100)",
            ),
        ],
    },
    Dataset {
        id: "signalements",
        title: "Signalements des habitants",
        description: "Problèmes signalés par les habitants (application citoyenne, Open311) : service concerné, commune, position arrondie à 100 m, service responsable et état de traitement. Sans texte libre ni donnée personnelle.",
        keywords: &["signalements", "open311", "voirie", "proprete", "citoyens"],
        theme: "Administration locale",
        dcat_theme: THEME_GOVE,
        frequency: Frequency::Continuous,
        source: Source::Raw(Table::CitizenReports),
        sql: r#"SELECT s."entityId" AS identifiant, s."dateObserved" AS "dateSignalement", s."communeCode",
                       regexp_match(s.payload, '"serviceCode":"([^"]*)"')[1] AS "codeService",
                       round(CAST(regexp_match(s.payload, '"lat":(-?[0-9.eE+-]+)')[1] AS DOUBLE), 3) AS latitude,
                       round(CAST(regexp_match(s.payload, '"long":(-?[0-9.eE+-]+)')[1] AS DOUBLE), 3) AS longitude,
                       regexp_match(s.payload, '"agencyResponsible":"([^"]*)"')[1] AS "serviceResponsable",
                       coalesce(st.status, 'open') AS statut, st.substatus AS "sousStatut", st.at AS "dateMiseAJour"
                FROM citizen_reports s
                LEFT JOIN (SELECT "entityId",
                                  regexp_match(payload, '"status":"([^"]*)"')[1] AS status,
                                  regexp_match(payload, '"substatus":"([^"]*)"')[1] AS substatus,
                                  "dateObserved" AS at,
                                  row_number() OVER (PARTITION BY "entityId" ORDER BY "dateObserved" DESC) AS rn
                           FROM citizen_reports WHERE type = 'ReportStatusChanged') st
                       ON st."entityId" = s."entityId" AND st.rn = 1
                WHERE s.type = 'ReportSubmitted'"#,
        commune_column: Some("communeCode"),
        time_column: "dateSignalement",
        time_is_date: false,
        point: Some(("latitude", "longitude")),
        uses_sharing: false,
        columns: &[
            (
                "identifiant",
                "Identifiant du signalement (service_request_id Open311)",
            ),
            ("dateSignalement", "Date et heure du signalement (UTC)"),
            ("communeCode", "Code INSEE de la commune"),
            ("codeService", "Code du service (catalogue Open311 du hub)"),
            ("latitude", "Latitude WGS 84, arrondie à 3 décimales"),
            ("longitude", "Longitude WGS 84, arrondie à 3 décimales"),
            (
                "serviceResponsable",
                "Mairie ou communauté de communes chargée du traitement",
            ),
            ("statut", "open ou closed"),
            (
                "sousStatut",
                "acknowledged, in_progress, scheduled, fixed, duplicate, not_responsible",
            ),
            ("dateMiseAJour", "Date du dernier changement d'état (UTC)"),
        ],
    },
    Dataset {
        id: "idees",
        title: "Boîte à idées citoyenne : idées, soutiens et réponses",
        description: "Idées déposées par les habitants dans la boîte à idées collaborative : titre, thème, commune, nombre de soutiens et de commentaires, état et réponse de la collectivité. Sans le texte détaillé, les commentaires ni l'identité des auteurs ; les idées masquées par la modération ou retirées par leur auteur ne sont pas publiées.",
        keywords: &["idees", "participation", "citoyens", "budget participatif"],
        theme: "Administration locale",
        dcat_theme: THEME_GOVE,
        frequency: Frequency::Continuous,
        source: Source::Raw(Table::CitizenIdeas),
        sql: r#"SELECT s."entityId" AS identifiant, s."dateObserved" AS "dateDepot", s."communeCode",
                       regexp_match(s.payload, '"theme":"([^"]*)"')[1] AS theme,
                       replace(replace(regexp_match(s.payload, '"title":"((?:[^"\\]|\\.)*)"')[1], '\"', '"'), '\\', '\') AS titre,
                       coalesce(sup.n, 0) AS soutiens, coalesce(com.n, 0) AS commentaires,
                       coalesce(ans.state, 'not_answered') AS etat,
                       replace(replace(ans.answer, '\"', '"'), '\\', '\') AS reponse, ans.at AS "dateReponse"
                FROM citizen_ideas s
                LEFT JOIN (SELECT id, count(*) AS n
                           FROM (SELECT "entityId" AS id, type,
                                        row_number() OVER (PARTITION BY "entityId", regexp_match(payload, '"supporter":"([^"]*)"')[1]
                                                           ORDER BY "dateObserved" DESC, _offset DESC) AS rn
                                 FROM citizen_ideas WHERE type IN ('IdeaSupported', 'IdeaSupportWithdrawn')) v
                           WHERE rn = 1 AND type = 'IdeaSupported' GROUP BY id) sup ON sup.id = s."entityId"
                LEFT JOIN (SELECT "entityId" AS id, count(*) AS n FROM citizen_ideas
                           WHERE type = 'IdeaCommented' GROUP BY "entityId") com ON com.id = s."entityId"
                LEFT JOIN (SELECT "entityId" AS id, count(DISTINCT regexp_match(payload, '"flagger":"([^"]*)"')[1]) AS n
                           FROM citizen_ideas WHERE type = 'IdeaFlagged' GROUP BY "entityId") fl ON fl.id = s."entityId"
                LEFT JOIN (SELECT id, hidden
                           FROM (SELECT "entityId" AS id, regexp_match(payload, '"hidden":(true|false)')[1] = 'true' AS hidden,
                                        row_number() OVER (PARTITION BY "entityId" ORDER BY "dateObserved" DESC, _offset DESC) AS rn
                                 FROM citizen_ideas WHERE type = 'IdeaModerated') m WHERE rn = 1) md ON md.id = s."entityId"
                LEFT JOIN (SELECT id, state, answer, at
                           FROM (SELECT "entityId" AS id, regexp_match(payload, '"state":"([^"]*)"')[1] AS state,
                                        regexp_match(payload, '"answer":"((?:[^"\\]|\\.)*)"')[1] AS answer,
                                        "dateObserved" AS at,
                                        row_number() OVER (PARTITION BY "entityId" ORDER BY "dateObserved" DESC, _offset DESC) AS rn
                                 FROM citizen_ideas WHERE type = 'IdeaAnswered') a WHERE rn = 1) ans ON ans.id = s."entityId"
                WHERE s.type = 'IdeaSubmitted'
                  AND coalesce(NOT md.hidden, regexp_match(s.payload, '"visible":(true|false)')[1] = 'true' AND coalesce(fl.n, 0) < 3)
                  AND coalesce(ans.state, '') <> 'withdrawn'"#,
        commune_column: Some("communeCode"),
        time_column: "dateDepot",
        time_is_date: false,
        point: None,
        uses_sharing: false,
        columns: &[
            ("identifiant", "Identifiant de l'idée"),
            ("dateDepot", "Date et heure du dépôt (UTC)"),
            (
                "communeCode",
                "Code INSEE de la commune concernée (vide : toute l'intercommunalité)",
            ),
            ("theme", "Thème choisi par l'auteur"),
            ("titre", "Titre de l'idée"),
            (
                "soutiens",
                "Nombre d'habitants qui soutiennent l'idée (un soutien par personne)",
            ),
            ("commentaires", "Nombre de commentaires"),
            ("etat", "not_answered, evaluating, accepted ou rejected"),
            ("reponse", "Réponse de la collectivité"),
            ("dateReponse", "Date et heure de la dernière réponse (UTC)"),
        ],
    },
    Dataset {
        id: "lieux-galerie-numerique",
        title: "Lieux de la galerie numérique",
        description: "Points d'accès public au numérique de la vallée (galerie numérique) : adresse, position, horaires, contact. Mis à jour par les services de la collectivité.",
        keywords: &["numerique", "inclusion numerique", "acces public", "lieux"],
        theme: "Numérique",
        dcat_theme: THEME_GOVE,
        frequency: Frequency::Continuous,
        source: Source::Raw(Table::ReferencePlaces),
        sql: places_sql!("digital_gallery", "", ""),
        commune_column: Some("communeCode"),
        time_column: "dateMiseAJour",
        time_is_date: false,
        point: Some(("latitude", "longitude")),
        uses_sharing: false,
        columns: place_columns!(),
    },
    Dataset {
        id: "espaces-coworking",
        title: "Espaces de coworking",
        description: "Espaces de travail partagé de la vallée : adresse, position, horaires, contact. Mis à jour par les services de la collectivité.",
        keywords: &["coworking", "tiers-lieux", "teletravail", "economie"],
        theme: "Économie",
        dcat_theme: THEME_REGI,
        frequency: Frequency::Continuous,
        source: Source::Raw(Table::ReferencePlaces),
        sql: places_sql!("coworking", "", ""),
        commune_column: Some("communeCode"),
        time_column: "dateMiseAJour",
        time_is_date: false,
        point: Some(("latitude", "longitude")),
        uses_sharing: false,
        columns: place_columns!(),
    },
    Dataset {
        id: "sessions-formation-numerique",
        title: "Sessions de formation au numérique",
        description: "Ateliers et formations au numérique proposés dans la vallée : lieu, dates, places offertes. Mis à jour par les services de la collectivité.",
        keywords: &["numerique", "formation", "ateliers", "inclusion numerique"],
        theme: "Numérique",
        dcat_theme: THEME_GOVE,
        frequency: Frequency::Continuous,
        source: Source::Raw(Table::ReferencePlaces),
        sql: places_sql!(
            "training_session",
            concat!(
                r#"CAST(regexp_match(p.payload, '"startsAt":"([^"]*)"')[1] AS TIMESTAMP) AS debut, "#,
                r#"CAST(regexp_match(p.payload, '"endsAt":"([^"]*)"')[1] AS TIMESTAMP) AS fin, "#,
                r#"CAST(regexp_match(p.payload, '"seats":([0-9]+)')[1] AS BIGINT) AS places, "#
            ),
            ""
        ),
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
    },
    Dataset {
        id: "etablissements-petite-enfance",
        title: "Établissements d'accueil du jeune enfant et places disponibles",
        description: "Crèches, micro-crèches et maisons d'assistants maternels de la vallée (guichet unique petite enfance) : capacité, âges accueillis et places disponibles, mises à jour par les services de la collectivité.",
        keywords: &["petite enfance", "creches", "places disponibles", "famille"],
        theme: "Social",
        dcat_theme: THEME_SOCI,
        frequency: Frequency::Continuous,
        source: Source::Raw(Table::ReferencePlaces),
        sql: places_sql!(
            "childcare",
            concat!(
                r#"CAST(regexp_match(p.payload, '"capacity":([0-9]+)')[1] AS BIGINT) AS capacite, "#,
                r#"CAST(regexp_match(p.payload, '"ageMinMonths":([0-9]+)')[1] AS BIGINT) AS "ageMinMois", "#,
                r#"CAST(regexp_match(p.payload, '"ageMaxMonths":([0-9]+)')[1] AS BIGINT) AS "ageMaxMois", "#,
                r#"vac.v AS "placesDisponibles", vac.at AS "dateMiseAJourPlaces", "#
            ),
            r#"LEFT JOIN (SELECT "entityId" AS id, CAST(regexp_match(payload, '"vacancies":([0-9]+)')[1] AS BIGINT) AS v,
                                 "dateObserved" AS at,
                                 row_number() OVER (PARTITION BY "entityId" ORDER BY "dateObserved" DESC, _offset DESC) AS rn
                          FROM reference_places WHERE type = 'ChildcareVacanciesUpdated') vac
                     ON vac.id = p."entityId" AND vac.rn = 1"#
        ),
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
    },
    Dataset {
        id: "parcelles-partagees",
        title: "Mesures quotidiennes des parcelles de vigne partagées par les domaines",
        description: "Pour chaque parcelle qu'un domaine viticole partenaire a choisi de partager, et chaque jour (UTC) : nombre de mesures, humidité et température du sol, humectation du feuillage et humidité de l'air (moyennes, minimum et maximum). Seuls des agrégats quotidiens sont publiés, jamais les mesures elles-mêmes ni la position des capteurs ; les parcelles non partagées restent privées.",
        keywords: &["vigne", "viticulture", "parcelles", "sol", "capteurs"],
        theme: "Agriculture",
        dcat_theme: THEME_AGRI,
        frequency: Frequency::Continuous,
        source: Source::Raw(Table::ParcelRecords),
        sql: r#"SELECT r.day, r."hasAgriParcel" AS parcelle, s.partage, r."communeCode", count(*) AS mesures,
                       round(avg(r."soilMoistureVwc"), 3) AS "humiditeSolMoyenne",
                       round(min(r."soilTemperature"), 2) AS "temperatureSolMin",
                       round(avg(r."soilTemperature"), 2) AS "temperatureSolMoyenne",
                       round(max(r."soilTemperature"), 2) AS "temperatureSolMax",
                       round(avg(r."leafWetness"), 3) AS "humectationMoyenne",
                       round(avg(r."relativeHumidity"), 3) AS "humiditeAirMoyenne"
                FROM parcel_records r JOIN shared_parcels s ON r."hasAgriParcel" = s.parcel
                GROUP BY r.day, r."hasAgriParcel", s.partage, r."communeCode""#,
        commune_column: Some("communeCode"),
        time_column: "day",
        time_is_date: true,
        point: None,
        uses_sharing: true,
        columns: &[
            ("day", "Jour (UTC) des mesures"),
            ("parcelle", "Identifiant de la parcelle (AgriParcel)"),
            (
                "partage",
                "Partage choisi par le domaine : public, ou recherche (chercheurs seulement)",
            ),
            ("communeCode", "Code INSEE de la commune de la parcelle"),
            ("mesures", "Nombre de mesures reçues"),
            (
                "humiditeSolMoyenne",
                "Humidité volumique du sol moyenne (0 à 1)",
            ),
            ("temperatureSolMin", "Température minimale du sol (°C)"),
            ("temperatureSolMoyenne", "Température moyenne du sol (°C)"),
            ("temperatureSolMax", "Température maximale du sol (°C)"),
            (
                "humectationMoyenne",
                "Humectation moyenne du feuillage (0 à 1)",
            ),
            (
                "humiditeAirMoyenne",
                "Humidité relative moyenne de l'air (0 à 1)",
            ),
        ],
    },
];

/// Looks a dataset up by id.
pub fn dataset(id: &str) -> Option<&'static Dataset> {
    DATASETS.iter().find(|d| d.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_url_safe_slugs() {
        let mut ids: Vec<_> = DATASETS.iter().map(|d| d.id).collect();
        assert!(ids.iter().all(|id| {
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }));
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), DATASETS.len());
    }
}
