//! The published datasets: each is one SQL view over one lake table, with the privacy
//! rules written into the view itself (so no download, catalogue or public table can
//! bypass them):
//!
//! - counts of people (footfall, site presence) from 1 to 4 are suppressed (k = 5), and
//!   flagged in `secretStatistique`;
//! - no device token exists in the lake to begin with; no reporter contact either (they
//!   stay under `private/`); citizens' pseudonyms (`actor`) and free text written by
//!   citizens (a description can name a person) are not published;
//! - report positions are rounded to 3 decimals (about 100 m).

use vallee_lake::LakeTable;
use vallee_schemas::contract::Table;
use vallee_stream::stage::outputs::OutputTable;

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
    /// French description of each column (Table Schema).
    pub columns: &'static [(&'static str, &'static str)],
}

const THEME_ENVI: &str = "http://publications.europa.eu/resource/authority/data-theme/ENVI";
const THEME_REGI: &str = "http://publications.europa.eu/resource/authority/data-theme/REGI";
const THEME_AGRI: &str = "http://publications.europa.eu/resource/authority/data-theme/AGRI";
const THEME_GOVE: &str = "http://publications.europa.eu/resource/authority/data-theme/GOVE";

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
