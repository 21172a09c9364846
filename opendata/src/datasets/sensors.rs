//! The datasets over the sensors' tables: bins, footfall of the activity zone, visitors of
//! the tourist sites, vine indicators, and the parcels partners chose to share.

use vallee_lake::Latest;
use vallee_schemas::contract::Table;
use vallee_schemas::tables::OutputTable;
use vallee_schemas::tables::device_health::STUCK_READINGS;

use super::{Dataset, Frequency, Source, THEME_AGRI, THEME_ENVI, THEME_REGI};

pub(super) const BIN_FILLING: Dataset = Dataset {
    id: "remplissage-conteneurs-quotidien",
    title: "Remplissage quotidien des conteneurs connectés par commune",
    description: "Pour chaque jour (UTC) et chaque commune : nombre de conteneurs connectés ayant émis, nombre de mesures, remplissage moyen et maximal, mesures au-dessus du seuil de remplissage du conteneur (0,8 par défaut).",
    keywords: &["dechets", "conteneurs", "remplissage", "collecte"],
    theme: "Environnement",
    dcat_theme: THEME_ENVI,
    frequency: Frequency::Continuous,
    source: Source::Raw(Table::WasteContainers),
    view: || {
        r#"SELECT day, "communeCode", count(DISTINCT id) AS conteneurs, count(*) AS mesures,
                   round(avg("fillingLevel"), 3) AS "remplissageMoyen", max("fillingLevel") AS "remplissageMax",
                   sum(CASE WHEN "fillingLevel" >= coalesce("binFullnessThreshold", 0.8) THEN 1 ELSE 0 END) AS "mesuresAuDessusDuSeuil"
            FROM waste_containers WHERE "communeCode" IS NOT NULL
            GROUP BY day, "communeCode""#.into()
    },
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
};

/// A gap between two readings counts at most this long above the threshold (a bin that
/// stopped reporting while full is not full for days).
const MAX_GAP_ABOVE_THRESHOLD_S: i64 = 6 * 3600;

pub(super) const BIN_MONTHS: Dataset = Dataset {
    id: "collecte-conteneurs-mensuelle",
    title: "Collecte des conteneurs connectés par commune et par mois",
    description: "Pour chaque mois (UTC) et chaque commune : conteneurs connectés ayant émis, vidages constatés par les capteurs (baisse du remplissage de plus de 0,15 d'une mesure à la suivante), remplissage moyen au moment du vidage, et heures passées au-dessus du seuil de remplissage du conteneur (0,8 par défaut ; un intervalle sans mesure compte 6 h au plus).",
    keywords: &[
        "dechets",
        "conteneurs",
        "collecte",
        "debordement",
        "remplissage",
    ],
    theme: "Environnement",
    dcat_theme: THEME_ENVI,
    frequency: Frequency::Continuous,
    source: Source::Raw(Table::WasteContainers),
    view: || {
        format!(
            r#"WITH r AS (
                 SELECT id, "communeCode", "dateObserved", "fillingLevel",
                        coalesce("binFullnessThreshold", 0.8) AS seuil,
                        lag("fillingLevel") OVER (PARTITION BY id ORDER BY "dateObserved", _offset) AS avant,
                        lead("dateObserved") OVER (PARTITION BY id ORDER BY "dateObserved", _offset) AS suivante
                 FROM waste_containers WHERE "communeCode" IS NOT NULL)
               SELECT CAST(date_trunc('month', "dateObserved") AS DATE) AS mois, "communeCode",
                      count(DISTINCT id) AS conteneurs,
                      sum(CASE WHEN avant - "fillingLevel" > {drop} THEN 1 ELSE 0 END) AS vidages,
                      round(avg(CASE WHEN avant - "fillingLevel" > {drop} THEN avant END), 3) AS "remplissageMoyenAuVidage",
                      round(coalesce(sum(CASE WHEN "fillingLevel" >= seuil AND suivante IS NOT NULL
                          THEN least(date_part('epoch', suivante) - date_part('epoch', "dateObserved"), {gap}) END), 0) / 3600.0, 1)
                        AS "heuresAuDessusDuSeuil"
               FROM r GROUP BY 1, "communeCode""#,
            drop = vallee_schemas::tables::forecast::EMPTYING_DROP,
            gap = MAX_GAP_ABOVE_THRESHOLD_S,
        )
    },
    commune_column: Some("communeCode"),
    time_column: "mois",
    time_is_date: true,
    point: None,
    uses_sharing: false,
    columns: &[
        ("mois", "Premier jour du mois (UTC)"),
        ("communeCode", "Code INSEE de la commune"),
        ("conteneurs", "Conteneurs ayant émis au moins une mesure"),
        (
            "vidages",
            "Vidages constatés par les capteurs (baisse de plus de 0,15 entre deux mesures)",
        ),
        (
            "remplissageMoyenAuVidage",
            "Remplissage moyen mesuré juste avant les vidages (0 à 1)",
        ),
        (
            "heuresAuDessusDuSeuil",
            "Heures passées au-dessus du seuil de remplissage, tous conteneurs (6 h au plus par intervalle sans mesure)",
        ),
    ],
};

/// Between two positions of a truck, a longer silence or a longer jump is not driving
/// measured (a tracker off, a position fix gone wrong).
const MAX_TRUCK_GAP_S: i64 = 600;
const MAX_TRUCK_JUMP_M: f64 = 3_000.0;

pub(super) const TRUCK_MONTHS: Dataset = Dataset {
    id: "camions-collecte-mensuels",
    title: "Kilomètres et tonnages des camions de collecte par commune et par mois",
    description: "Pour chaque mois (UTC) et chaque commune où roulaient les camions de collecte équipés : camions, kilomètres parcourus (entre deux positions successives d'un camion, à vol d'oiseau ; un silence de plus de 10 minutes ou un saut de plus de 3 km ne comptent pas) et tonnes chargées (hausses du poids transporté quand les camions le mesurent).",
    keywords: &["dechets", "collecte", "camions", "kilometres", "tonnages"],
    theme: "Environnement",
    dcat_theme: THEME_ENVI,
    frequency: Frequency::Continuous,
    source: Source::Raw(Table::WasteVehicles),
    view: || {
        format!(
            r#"WITH p AS (
                 SELECT id, "communeCode", "dateObserved", latitude, longitude, "cargoWeight",
                        lead("dateObserved") OVER w AS t2, lead(latitude) OVER w AS lat2,
                        lead(longitude) OVER w AS lon2, lead("cargoWeight") OVER w AS kg2
                 FROM waste_vehicles WHERE "communeCode" IS NOT NULL
                 WINDOW w AS (PARTITION BY id ORDER BY "dateObserved", _offset)),
               s AS (
                 SELECT *, date_part('epoch', t2) - date_part('epoch', "dateObserved") AS secs,
                        2 * 6371008.8 * asin(sqrt(
                          power(sin(radians(lat2 - latitude) / 2), 2)
                          + cos(radians(latitude)) * cos(radians(lat2)) * power(sin(radians(lon2 - longitude) / 2), 2)))
                          AS metres
                 FROM p)
               SELECT CAST(date_trunc('month', "dateObserved") AS DATE) AS mois, "communeCode",
                      count(DISTINCT id) AS camions,
                      round(coalesce(sum(CASE WHEN secs <= {gap} AND metres <= {jump} THEN metres END), 0) / 1000.0, 1)
                        AS kilometres,
                      round(sum(CASE WHEN kg2 > "cargoWeight" THEN kg2 - "cargoWeight" END) / 1000.0, 2) AS tonnes
               FROM s GROUP BY 1, "communeCode""#,
            gap = MAX_TRUCK_GAP_S,
            jump = MAX_TRUCK_JUMP_M,
        )
    },
    commune_column: Some("communeCode"),
    time_column: "mois",
    time_is_date: true,
    point: None,
    uses_sharing: false,
    columns: &[
        ("mois", "Premier jour du mois (UTC)"),
        (
            "communeCode",
            "Code INSEE de la commune où se trouvait le camion au début du trajet",
        ),
        ("camions", "Camions de collecte ayant émis une position"),
        (
            "kilometres",
            "Kilomètres parcourus, à vol d'oiseau entre positions successives",
        ),
        (
            "tonnes",
            "Tonnes chargées (hausses du poids transporté ; vide quand aucun camion ne le mesure)",
        ),
    ],
};

/// Days a bin sensor stays known to its commune after its last reading (silent, not gone).
const KNOWN_DAYS: u32 = 7;

pub(super) const BIN_SENSORS_WORKING: Dataset = Dataset {
    id: "capteurs-conteneurs-en-service",
    title: "Capteurs de remplissage en service par commune et par jour",
    description: "Pour chaque jour (UTC) et chaque commune : capteurs de remplissage connus (ayant émis au cours des 7 derniers jours), capteurs ayant émis ce jour-là, capteurs bloqués (12 mesures ou plus, toutes au même niveau), capteurs en service (ayant émis sans être bloqués) et leur part parmi les capteurs connus.",
    keywords: &[
        "dechets",
        "conteneurs",
        "capteurs",
        "qualite",
        "maintenance",
    ],
    theme: "Environnement",
    dcat_theme: THEME_ENVI,
    frequency: Frequency::Continuous,
    source: Source::Raw(Table::WasteContainers),
    view: || {
        format!(
            r#"WITH daily AS (
                 SELECT id, day, "communeCode", count(*) AS n,
                        min("fillingLevel") AS lo, max("fillingLevel") AS hi
                 FROM waste_containers WHERE "communeCode" IS NOT NULL
                 GROUP BY id, day, "communeCode"),
               days AS (SELECT DISTINCT day FROM daily),
               known AS (
                 SELECT d.day, k.id, max(k."communeCode") AS "communeCode"
                 FROM days d JOIN daily k
                   ON k.day <= d.day AND k.day > d.day - INTERVAL '{known} days'
                 GROUP BY d.day, k.id),
               judged AS (
                 SELECT known.day, known."communeCode", t.id IS NOT NULL AS emis,
                        coalesce(t.n >= {stuck} AND t.lo = t.hi, false) AS bloque
                 FROM known LEFT JOIN daily t ON t.id = known.id AND t.day = known.day)
               SELECT day, "communeCode", count(*) AS capteurs,
                      sum(CASE WHEN emis THEN 1 ELSE 0 END) AS "ayantEmis",
                      sum(CASE WHEN bloque THEN 1 ELSE 0 END) AS bloques,
                      sum(CASE WHEN emis AND NOT bloque THEN 1 ELSE 0 END) AS "enService",
                      round(CAST(sum(CASE WHEN emis AND NOT bloque THEN 1 ELSE 0 END) AS DOUBLE)
                            / count(*), 3) AS "partEnService"
               FROM judged GROUP BY day, "communeCode""#,
            known = KNOWN_DAYS,
            stuck = STUCK_READINGS,
        )
    },
    commune_column: Some("communeCode"),
    time_column: "day",
    time_is_date: true,
    point: None,
    uses_sharing: false,
    columns: &[
        ("day", "Jour (UTC)"),
        ("communeCode", "Code INSEE de la commune"),
        (
            "capteurs",
            "Capteurs de remplissage connus : ayant émis au cours des 7 derniers jours",
        ),
        (
            "ayantEmis",
            "Capteurs ayant émis au moins une mesure ce jour-là",
        ),
        (
            "bloques",
            "Capteurs bloqués : 12 mesures ou plus ce jour-là, toutes au même niveau",
        ),
        (
            "enService",
            "Capteurs ayant émis ce jour-là sans être bloqués",
        ),
        (
            "partEnService",
            "Part des capteurs connus en service (0 à 1)",
        ),
    ],
};

pub(super) const BIN_ALERTS: Dataset = Dataset {
    id: "alertes-conteneurs",
    title: "Alertes des conteneurs et collectes constatées par commune",
    description: "Pour chaque jour (UTC), commune et type d'alerte (plein, feu, état, silencieux) : alertes ouvertes, alertes levées, et levées prouvées par le passage d'un camion de collecte.",
    keywords: &["dechets", "alertes", "collecte", "conteneurs"],
    theme: "Environnement",
    dcat_theme: THEME_ENVI,
    frequency: Frequency::Continuous,
    source: Source::Derived(OutputTable::FillAlerts),
    view: || {
        r#"SELECT day, "communeCode", kind AS "typeAlerte",
                   count(DISTINCT CASE WHEN state = 'open' THEN "alertId" END) AS ouvertures,
                   count(DISTINCT CASE WHEN state = 'cleared' THEN "alertId" END) AS levees,
                   count(DISTINCT CASE WHEN "clearReason" = 'collection' THEN "alertId" END) AS "leveesParCollecte"
            FROM fill_alerts a
            WHERE "communeCode" IS NOT NULL
            GROUP BY day, "communeCode", kind"#.into()
    },
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
};

pub(super) const FOOTFALL: Dataset = Dataset {
    id: "frequentation-zone-activites",
    title: "Fréquentation horaire de la zone d'activités de Camalcé",
    description: "Personnes distinctes détectées par heure et par secteur de la zone d'activités (balises, identifiants pseudonymes renouvelés chaque jour, jamais conservés). Les effectifs de 1 à 4 personnes sont masqués (secret statistique).",
    keywords: &["frequentation", "zone-d-activites", "economie"],
    theme: "Économie",
    dcat_theme: THEME_REGI,
    frequency: Frequency::Hourly,
    source: Source::Derived(OutputTable::Footfall),
    view: || {
        format!(
            // An hour is shown beside its twelve 5-minute windows (the API shows both):
            // the windows' counts go to `vallee_total_shown`, so none that is withheld can
            // be recomputed from the hour. Saturation says "at least the capacity": it is
            // withheld with the count.
            r#"SELECT zone, "dateObservedFrom", "dateObservedTo",
                   CASE WHEN shown THEN "peopleCount" END AS "peopleCount",
                   NOT shown AS "secretStatistique", CASE WHEN shown THEN congested END AS "saturee",
                   "final" AS definitif
            FROM (SELECT h.zone, h."dateObservedFrom", h."dateObservedTo", h."peopleCount", h.congested, h."final",
                         vallee_total_shown(h."peopleCount", w.parts) AS shown
                  FROM ({hours}) h
                  LEFT JOIN (SELECT zone AS w_zone, date_trunc('hour', "dateObservedFrom") AS w_hour,
                                    array_agg("peopleCount") AS parts
                             FROM ({windows}) w0
                             GROUP BY zone, date_trunc('hour', "dateObservedFrom")) w
                         ON w.w_zone = h.zone AND w.w_hour = h."dateObservedFrom") f"#,
            hours = Latest::of(OutputTable::Footfall).filter(r#""window" = 'PT1H'"#),
            windows = Latest::of(OutputTable::Footfall).filter(r#""window" = 'PT5M'"#),
        )
    },
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
            "Personnes distinctes (vide si 1 à 4, ou si l'heure permettrait de retrouver une fenêtre de 5 minutes masquée : secret statistique)",
        ),
        ("secretStatistique", "Vrai quand l'effectif est masqué"),
        (
            "saturee",
            "Capacité du secteur atteinte (vide quand l'effectif est masqué)",
        ),
        (
            "definitif",
            "Vrai quand plus aucune donnée tardive ne peut modifier la valeur",
        ),
    ],
};

pub(super) const SITE_VISITORS: Dataset = Dataset {
    id: "frequentation-sites-touristiques",
    title: "Visiteurs par heure des sites touristiques de la vallée",
    description: "Visiteurs comptés par heure et par site (abbaye de Gellone, pont du Diable, grotte de Clamouse…) et validations du parcours en réalité augmentée. Les effectifs de 1 à 4 sont masqués (secret statistique).",
    keywords: &["tourisme", "frequentation", "sites", "realite-augmentee"],
    theme: "Tourisme",
    dcat_theme: THEME_REGI,
    frequency: Frequency::Hourly,
    source: Source::Derived(OutputTable::SitePresence),
    view: || {
        format!(
            // The check-ins' total is shown beside each point's (the API shows them).
            r#"SELECT site, "locationCode" AS "communeCode", hour,
                   CASE WHEN vallee_is_small("visitorCount") THEN NULL ELSE "visitorCount" END AS "visitorCount",
                   CASE WHEN ar_shown THEN "arCheckins" END AS "arCheckins",
                   vallee_is_small("visitorCount") OR NOT ar_shown AS "secretStatistique",
                   "final" AS definitif
            FROM (SELECT site, "locationCode", hour, "visitorCount", "arCheckins", "final",
                         vallee_total_shown("arCheckins", "arCheckinsByPoint") AS ar_shown
                  FROM ({}) p0) p"#,
            Latest::of(OutputTable::SitePresence)
        )
    },
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
        (
            "arCheckins",
            "Validations du parcours AR (vide si 1 à 4, ou si le total permettrait de retrouver celles d'un point)",
        ),
        ("secretStatistique", "Vrai quand une valeur est masquée"),
        (
            "definitif",
            "Vrai quand plus aucune donnée tardive ne peut modifier la valeur",
        ),
    ],
};

pub(super) const VINE_INDICATORS: Dataset = Dataset {
    id: "indicateurs-vigne",
    title: "Indicateurs agro-climatiques de la vigne par station météo",
    description: "Par station météo du réseau de la vallée et jour (heure de Paris) : températures, pluie, degrés-jours base 10 °C et indice de Winkler depuis le 1er avril, indice de Huglin, degrés-jours de maturation des oospores (base 8 °C depuis le 1er janvier), conditions 3-10 du mildiou, indice Gubler-Thomas de l'oïdium. Les données des parcelles privées des domaines ne sont pas publiées.",
    keywords: &["vigne", "viticulture", "mildiou", "oidium", "meteo"],
    theme: "Agriculture",
    dcat_theme: THEME_AGRI,
    frequency: Frequency::Daily,
    source: Source::Derived(OutputTable::VineIndicators),
    view: || {
        format!(
            r#"SELECT station, day, tmin, tmax, tmean, "rainMm", "growingDegreeDays", "winklerIndex", "huglinIndex",
                   "oosporeDegreeDays", "downyMildew310", "gublerThomasIndex"
            FROM ({}) v"#,
            Latest::of(OutputTable::VineIndicators)
        )
    },
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
};

pub(super) const SHARED_PARCELS: Dataset = Dataset {
    id: "parcelles-partagees",
    title: "Mesures quotidiennes des parcelles de vigne partagées par les domaines",
    description: "Pour chaque parcelle qu'un domaine viticole partenaire a choisi de partager, et chaque jour (UTC) : nombre de mesures, humidité et température du sol, humectation du feuillage et humidité de l'air (moyennes, minimum et maximum). Seuls des agrégats quotidiens sont publiés, jamais les mesures elles-mêmes ni la position des capteurs ; les parcelles non partagées restent privées.",
    keywords: &["vigne", "viticulture", "parcelles", "sol", "capteurs"],
    theme: "Agriculture",
    dcat_theme: THEME_AGRI,
    frequency: Frequency::Continuous,
    source: Source::Raw(Table::ParcelRecords),
    view: || {
        r#"SELECT r.day, r."hasAgriParcel" AS parcelle, s.partage, r."communeCode", count(*) AS mesures,
                   round(avg(r."soilMoistureVwc"), 3) AS "humiditeSolMoyenne",
                   round(min(r."soilTemperature"), 2) AS "temperatureSolMin",
                   round(avg(r."soilTemperature"), 2) AS "temperatureSolMoyenne",
                   round(max(r."soilTemperature"), 2) AS "temperatureSolMax",
                   round(avg(r."leafWetness"), 3) AS "humectationMoyenne",
                   round(avg(r."relativeHumidity"), 3) AS "humiditeAirMoyenne"
            FROM parcel_records r JOIN shared_parcels s ON r."hasAgriParcel" = s.parcel
            GROUP BY r.day, r."hasAgriParcel", s.partage, r."communeCode""#.into()
    },
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
};
