//! The reads of the view every door shares: GraphQL's queries, Open311's GETs and the
//! command layer's re-reads find reports, ideas and places through these, so a report
//! listed by one door is listed the same by the other.

use chrono::{DateTime, Utc};
use vallee_schemas::citizen::ReportStatus;

use super::view::{CitizenView, Idea, Place, Report};

/// Which reports a list asks for; `None` matches every report.
#[derive(Debug, Clone, Default)]
pub struct ReportQuery {
    /// Report ids (Open311's `service_request_id`).
    pub ids: Option<Vec<String>>,
    pub service_codes: Option<Vec<String>>,
    /// INSEE code of the report's commune.
    pub commune_code: Option<String>,
    pub status: Option<ReportStatus>,
    /// Requested at or after.
    pub since: Option<DateTime<Utc>>,
    /// Requested at or before.
    pub until: Option<DateTime<Utc>>,
    /// `[minLong, minLat, maxLong, maxLat]`.
    pub bbox: Option<[f64; 4]>,
}

impl ReportQuery {
    fn matches(&self, r: &Report) -> bool {
        let s = &r.submitted;
        let listed = |list: &Option<Vec<String>>, value: &str| {
            list.as_ref().is_none_or(|l| l.iter().any(|v| v == value))
        };
        listed(&self.ids, &s.report_id)
            && listed(&self.service_codes, &s.service_code)
            && self
                .commune_code
                .as_ref()
                .is_none_or(|c| *c == s.commune_code)
            && self.status.is_none_or(|st| r.status == st)
            && self.since.is_none_or(|t| r.requested >= t)
            && self.until.is_none_or(|t| r.requested <= t)
            && self
                .bbox
                .is_none_or(|b| (b[0]..=b[2]).contains(&s.long) && (b[1]..=b[3]).contains(&s.lat))
    }
}

/// Who looks at ideas: staff see the hidden ones too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeenBy {
    Staff,
    /// The public, for whom an idea flagged `flags_to_hide` times is hidden.
    Public {
        flags_to_hide: usize,
    },
}

impl SeenBy {
    /// Whether this onlooker sees `idea`.
    pub fn sees(self, idea: &Idea) -> bool {
        match self {
            SeenBy::Staff => true,
            SeenBy::Public { flags_to_hide } => idea.visible(flags_to_hide),
        }
    }
}

impl CitizenView {
    /// One report.
    pub fn report(&self, id: &str) -> Option<Report> {
        self.reports.get(id).cloned()
    }

    /// The reports `query` asks for, newest first (the same instant: by id).
    pub fn find_reports(&self, query: &ReportQuery) -> Vec<Report> {
        let mut found: Vec<Report> = self
            .reports
            .values()
            .filter(|r| query.matches(r))
            .cloned()
            .collect();
        found.sort_by(|a, b| {
            (b.requested, &b.submitted.report_id).cmp(&(a.requested, &a.submitted.report_id))
        });
        found
    }

    /// One idea, if `seen_by` sees it.
    pub fn idea(&self, id: &str, seen_by: SeenBy) -> Option<Idea> {
        self.ideas.get(id).filter(|i| seen_by.sees(i)).cloned()
    }

    /// One reference place.
    pub fn place(&self, id: &str) -> Option<Place> {
        self.places.get(id).cloned()
    }
}
