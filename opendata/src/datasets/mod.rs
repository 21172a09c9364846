//! The published datasets: each is one SQL view over one lake table, with the privacy
//! rules written into the view itself (so no download, catalogue or public table can
//! bypass them):
//!
//! - counts of people (footfall, site presence) from 1 to 4 are suppressed (k = 5), and
//!   flagged in `secretStatistique`; a total shown beside its parts elsewhere (an hour
//!   beside its 5-minute windows in the API, the check-ins beside each point's) is
//!   suppressed too when a suppressed part could be recomputed from it;
//! - no device token exists in the lake to begin with; no reporter contact either (they
//!   stay under `private/`); citizens' pseudonyms (`actor`) and free text written by
//!   citizens (a description can name a person) are not published, except the titles of
//!   ideas, which the idea box shows publicly and moderators can hide (hidden ideas are
//!   left out, as in the idea box: by a moderator, or by 3 distinct flags until one decides),
//!   with e-mail addresses and phone numbers masked;
//! - report positions are rounded to 3 decimals (about 100 m).
//!
//! Each rule is a function of `vallee_schemas::public_view`, the one the API applies too,
//! called from the SQL through the functions of [`rules`] (`vallee_is_small`,
//! `vallee_total_shown`, `vallee_round_coordinate`, `vallee_mask_contacts`).
//!
//! A view that wants the current state of something (the latest revision of a window, the
//! latest version of a place, a report's latest status) reads it through the lake's one
//! latest view ([`vallee_lake::Latest`]), which is why views are built at run time.
//!
//! # Layout
//! - `sensors.rs` — bins, footfall, tourist sites, vine indicators, shared parcels.
//! - `citizens.rs` — reports and the idea box.
//! - `places.rs` — the reference places staff keep up to date.
//! - `rules.rs` — the public-view rules as SQL functions, in every dataset session.

mod citizens;
mod places;
pub mod rules;
mod sensors;

use vallee_lake::LakeTable;
use vallee_schemas::contract::Table;
use vallee_schemas::tables::OutputTable;

/// Smallest count of people published (smaller ones are suppressed).
pub const K_ANONYMITY: i64 = vallee_schemas::public_view::K;

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
    /// Builds the view (SQL over `source`), privacy rules included; see [`Dataset::sql`].
    pub view: fn() -> String,
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

impl Dataset {
    /// The view: SQL over `source`, privacy rules included.
    /// Whether the dataset publishes what people wrote (opened with the text keys): its
    /// table is rewritten, and its history vacuumed, when a text is erased.
    pub fn opens_texts(&self) -> bool {
        self.sql().contains("vallee_open_text(")
    }

    pub fn sql(&self) -> String {
        (self.view)()
    }
}

const THEME_ENVI: &str = "http://publications.europa.eu/resource/authority/data-theme/ENVI";
const THEME_REGI: &str = "http://publications.europa.eu/resource/authority/data-theme/REGI";
const THEME_AGRI: &str = "http://publications.europa.eu/resource/authority/data-theme/AGRI";
const THEME_GOVE: &str = "http://publications.europa.eu/resource/authority/data-theme/GOVE";
const THEME_SOCI: &str = "http://publications.europa.eu/resource/authority/data-theme/SOCI";

/// Every dataset, in catalogue order.
pub const DATASETS: &[Dataset] = &[
    sensors::BIN_FILLING,
    sensors::BIN_MONTHS,
    sensors::BIN_SENSORS_WORKING,
    sensors::TRUCK_MONTHS,
    sensors::BIN_ALERTS,
    sensors::FOOTFALL,
    sensors::SITE_VISITORS,
    sensors::VINE_INDICATORS,
    citizens::REPORTS,
    citizens::IDEAS,
    places::DIGITAL_GALLERY,
    places::COWORKING,
    places::TRAINING_SESSIONS,
    places::CHILDCARE,
    sensors::SHARED_PARCELS,
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

    #[tokio::test]
    async fn every_view_runs_over_its_table_and_has_the_columns_it_documents() {
        let dir = tempfile::tempdir().unwrap();
        let lake = vallee_lake::Lake::open_bare(vallee_lake::LakeOptions {
            root: dir.path().to_path_buf(),
            ..Default::default()
        })
        .unwrap();
        let open_data = crate::OpenData::new(std::sync::Arc::new(lake));
        for ds in DATASETS {
            let state = open_data
                .state(ds)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", ds.id));
            let names: Vec<&str> = state
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            let documented: Vec<&str> = ds.columns.iter().map(|(c, _)| *c).collect();
            assert_eq!(names, documented, "{}", ds.id);
        }
    }
}
