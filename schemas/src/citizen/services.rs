//! The reports' service catalogue: what a valley's citizens report and which authority
//! acts on it (Open311 `services`), in French for the people who read it.

use serde::{Deserialize, Serialize};

/// Who is competent for a kind of report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Competence {
    /// The commune where the problem is (its town hall's technical services).
    Commune,
    /// The intercommunality (waste collection, economic zones, tourism…).
    Intercommunality,
}

/// One entry of the reports' service catalogue (Open311 `service`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    pub code: &'static str,
    /// Name shown to citizens, in French.
    pub name: &'static str,
    /// Open311 `group`.
    pub group: &'static str,
    pub keywords: &'static [&'static str],
    pub competence: Competence,
    /// Days within which the competent agency commits to act (`expected_datetime`).
    pub delay_days: u32,
}

/// The catalogue: what a French valley's citizens report, and who handles it. Waste,
/// economic zones and tourism are the intercommunality's competences; roads, lighting and
/// public spaces stay with the communes.
pub const SERVICES: &[Service] = &[
    Service {
        code: "bin-overflowing",
        name: "Conteneur plein ou débordant",
        group: "Déchets",
        keywords: &["poubelle", "conteneur", "débordement", "ordures"],
        competence: Competence::Intercommunality,
        delay_days: 2,
    },
    Service {
        code: "bin-damaged",
        name: "Conteneur endommagé ou brûlé",
        group: "Déchets",
        keywords: &["poubelle", "conteneur", "cassé", "incendie"],
        competence: Competence::Intercommunality,
        delay_days: 7,
    },
    Service {
        code: "illegal-dumping",
        name: "Dépôt sauvage",
        group: "Déchets",
        keywords: &["encombrant", "gravats", "dépôt"],
        competence: Competence::Intercommunality,
        delay_days: 5,
    },
    Service {
        code: "pothole",
        name: "Nid-de-poule ou chaussée dégradée",
        group: "Voirie",
        keywords: &["route", "trou", "chaussée", "trottoir"],
        competence: Competence::Commune,
        delay_days: 14,
    },
    Service {
        code: "street-light",
        name: "Éclairage public en panne",
        group: "Voirie",
        keywords: &["lampadaire", "éclairage", "nuit"],
        competence: Competence::Commune,
        delay_days: 10,
    },
    Service {
        code: "graffiti",
        name: "Tag ou graffiti",
        group: "Propreté",
        keywords: &["tag", "graffiti", "mur"],
        competence: Competence::Commune,
        delay_days: 14,
    },
    Service {
        code: "fallen-tree",
        name: "Arbre ou branche tombé",
        group: "Espaces verts",
        keywords: &["arbre", "branche", "tempête"],
        competence: Competence::Commune,
        delay_days: 2,
    },
    Service {
        code: "water-leak",
        name: "Fuite d'eau sur la voie publique",
        group: "Eau",
        keywords: &["fuite", "eau", "canalisation"],
        competence: Competence::Intercommunality,
        delay_days: 1,
    },
    Service {
        code: "signage",
        name: "Panneau de signalisation abîmé",
        group: "Voirie",
        keywords: &["panneau", "signalisation"],
        competence: Competence::Commune,
        delay_days: 14,
    },
    Service {
        code: "activity-zone",
        name: "Problème dans la zone d'activités",
        group: "Économie",
        keywords: &["zone", "entreprise", "parking"],
        competence: Competence::Intercommunality,
        delay_days: 10,
    },
    Service {
        code: "tourism-site",
        name: "Problème sur un site touristique ou un sentier",
        group: "Tourisme",
        keywords: &["sentier", "site", "balisage", "parcours"],
        competence: Competence::Intercommunality,
        delay_days: 10,
    },
    Service {
        code: "noise",
        name: "Nuisance sonore",
        group: "Tranquillité",
        keywords: &["bruit", "nuisance"],
        competence: Competence::Commune,
        delay_days: 7,
    },
];

/// Looks a service up by its code.
pub fn service(code: &str) -> Option<&'static Service> {
    SERVICES.iter().find(|s| s.code == code)
}
