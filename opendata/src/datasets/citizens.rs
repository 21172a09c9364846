//! The datasets over the citizens' tables: reports (Open311) and the idea box.

use vallee_lake::Latest;
use vallee_schemas::contract::Table;

use super::{Dataset, Frequency, Source, THEME_GOVE};

pub(super) const REPORTS: Dataset = Dataset {
    id: "signalements",
    title: "Signalements des habitants",
    description: "Problèmes signalés par les habitants (application citoyenne, Open311) : service concerné, commune, position arrondie à 100 m, service responsable et état de traitement. Sans texte libre ni donnée personnelle.",
    keywords: &["signalements", "open311", "voirie", "proprete", "citoyens"],
    theme: "Administration locale",
    dcat_theme: THEME_GOVE,
    frequency: Frequency::Continuous,
    source: Source::Raw(Table::CitizenReports),
    view: || {
        // The latest status change of each report; of two at the same time, either (no
        // offset tie-break, as the report view has always read them).
        let status = Latest::by(
            Table::CitizenReports,
            &[r#""entityId""#],
            &[r#""dateObserved" DESC"#],
        )
        .filter("type = 'ReportStatusChanged'");
        format!(
            r#"SELECT s."entityId" AS identifiant, s."dateObserved" AS "dateSignalement", s."communeCode",
                   regexp_match(s.payload, '"serviceCode":"([^"]*)"')[1] AS "codeService",
                   vallee_round_coordinate(CAST(regexp_match(s.payload, '"lat":(-?[0-9.eE+-]+)')[1] AS DOUBLE)) AS latitude,
                   vallee_round_coordinate(CAST(regexp_match(s.payload, '"long":(-?[0-9.eE+-]+)')[1] AS DOUBLE)) AS longitude,
                   regexp_match(s.payload, '"agencyResponsible":"([^"]*)"')[1] AS "serviceResponsable",
                   coalesce(st.status, 'open') AS statut, st.substatus AS "sousStatut", st.at AS "dateMiseAJour"
            FROM citizen_reports s
            LEFT JOIN (SELECT "entityId",
                              regexp_match(payload, '"status":"([^"]*)"')[1] AS status,
                              regexp_match(payload, '"substatus":"([^"]*)"')[1] AS substatus,
                              "dateObserved" AS at
                       FROM ({status})) st
                   ON st."entityId" = s."entityId"
            WHERE s.type = 'ReportSubmitted'"#
        )
    },
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
};

pub(super) const IDEAS: Dataset = Dataset {
    id: "idees",
    title: "Boîte à idées citoyenne : idées, soutiens et réponses",
    description: "Idées déposées par les habitants dans la boîte à idées collaborative : titre, thème, commune, nombre de soutiens et de commentaires, état et réponse de la collectivité. Sans le texte détaillé, les commentaires ni l'identité des auteurs ; les idées masquées par la modération, retirées par leur auteur ou effacées à sa demande ne sont pas publiées.",
    keywords: &["idees", "participation", "citoyens", "budget participatif"],
    theme: "Administration locale",
    dcat_theme: THEME_GOVE,
    frequency: Frequency::Continuous,
    source: Source::Raw(Table::CitizenIdeas),
    view: || {
        // A citizen's support counts when their latest support event is a support.
        let supports = Latest::by(
            Table::CitizenIdeas,
            &[
                r#""entityId""#,
                r#"regexp_match(payload, '"supporter":"([^"]*)"')[1]"#,
            ],
            &[r#""dateObserved" DESC"#, "_offset DESC"],
        )
        .filter("type IN ('IdeaSupported', 'IdeaSupportWithdrawn')");
        let latest =
            |kind: &str| Latest::of(Table::CitizenIdeas).filter(format!("type = '{kind}'"));
        let (moderated, answered) = (latest("IdeaModerated"), latest("IdeaAnswered"));
        format!(
            r#"SELECT s."entityId" AS identifiant, s."dateObserved" AS "dateDepot", s."communeCode",
                   regexp_match(s.payload, '"theme":"([^"]*)"')[1] AS theme,
                   vallee_mask_contacts(vallee_open_text(s."entityId", 'title', replace(replace(regexp_match(s.payload, '"title":"((?:[^"\\]|\\.)*)"')[1], '\"', '"'), '\\', '\'))) AS titre,
                   coalesce(sup.n, 0) AS soutiens, coalesce(com.n, 0) AS commentaires,
                   coalesce(ans.state, 'not_answered') AS etat,
                   vallee_mask_contacts(replace(replace(ans.answer, '\"', '"'), '\\', '\')) AS reponse, ans.at AS "dateReponse"
            FROM citizen_ideas s
            LEFT JOIN (SELECT "entityId" AS id, count(*) AS n
                       FROM ({supports}) v
                       WHERE type = 'IdeaSupported' GROUP BY "entityId") sup ON sup.id = s."entityId"
            LEFT JOIN (SELECT "entityId" AS id, count(*) AS n FROM citizen_ideas
                       WHERE type = 'IdeaCommented' GROUP BY "entityId") com ON com.id = s."entityId"
            LEFT JOIN (SELECT "entityId" AS id, count(DISTINCT regexp_match(payload, '"flagger":"([^"]*)"')[1]) AS n
                       FROM citizen_ideas WHERE type = 'IdeaFlagged' GROUP BY "entityId") fl ON fl.id = s."entityId"
            LEFT JOIN (SELECT "entityId" AS id, regexp_match(payload, '"hidden":(true|false)')[1] = 'true' AS hidden
                       FROM ({moderated}) m) md ON md.id = s."entityId"
            LEFT JOIN (SELECT "entityId" AS id, regexp_match(payload, '"state":"([^"]*)"')[1] AS state,
                              regexp_match(payload, '"answer":"((?:[^"\\]|\\.)*)"')[1] AS answer,
                              "dateObserved" AS at
                       FROM ({answered}) a) ans ON ans.id = s."entityId"
            WHERE s.type = 'IdeaSubmitted'
              AND coalesce(NOT md.hidden, regexp_match(s.payload, '"visible":(true|false)')[1] = 'true' AND coalesce(fl.n, 0) < 3)
              AND coalesce(ans.state, '') <> 'withdrawn'
              AND vallee_open_text(s."entityId", 'title', regexp_match(s.payload, '"title":"((?:[^"\\]|\\.)*)"')[1]) IS NOT NULL"#
        )
    },
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
        (
            "titre",
            "Titre de l'idée (adresses électroniques et numéros de téléphone masqués)",
        ),
        (
            "soutiens",
            "Nombre d'habitants qui soutiennent l'idée (un soutien par personne)",
        ),
        ("commentaires", "Nombre de commentaires"),
        ("etat", "not_answered, evaluating, accepted ou rejected"),
        (
            "reponse",
            "Réponse de la collectivité (adresses électroniques et numéros de téléphone masqués)",
        ),
        ("dateReponse", "Date et heure de la dernière réponse (UTC)"),
    ],
};
