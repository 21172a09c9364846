//! The reads of the view every door shares: GraphQL's queries, Open311's GETs and the
//! command layer's re-reads find reports, ideas and places through these, so a report
//! listed by one door is listed the same by the other.
//!
//! They also hold the public projection of citizens' reports and ideas, the same at every
//! door (GraphQL's `Report` and `Idea` fields, Open311's GETs): staff whose scope covers
//! the report (or idea) read it as filed; everyone else reads positions rounded as the open
//! data rounds them and e-mail addresses and phone numbers masked in free text
//! (descriptions, status notes, ideas, comments, answers), by the functions of
//! `vallee_schemas::public_view`. The typed address, a position in words, is not shown to
//! them at all.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use vallee_schemas::citizen::{ReportStatus, sealed};
use vallee_schemas::public_view;

use super::view::{CitizenView, Idea, Place, Report};
use crate::auth::Caller;

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
    /// Whose view of positions `bbox` is matched against: the caller's (a rounded position
    /// for a report it does not see as filed, so a tiny box cannot find the exact one);
    /// `None`, positions as filed.
    pub viewer: Option<Caller>,
    pub order: ReportOrder,
}

/// Order of a list of reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReportOrder {
    /// Newest first.
    #[default]
    Newest,
    /// The one whose answer is due first (the most overdue) first: a staff queue.
    DueFirst,
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
            && self.bbox.is_none_or(|b| {
                let (lat, long) = match &self.viewer {
                    Some(viewer) => r.position_for(viewer),
                    None => (s.lat, s.long),
                };
                (b[0]..=b[2]).contains(&long) && (b[1]..=b[3]).contains(&lat)
            })
    }
}

/// Whether `caller` reads what citizens wrote about `commune` as filed: staff whose scope
/// covers it (the intercommunality's staff cover every commune; an idea for the whole
/// valley, `None`, only they).
pub fn sees_as_filed(caller: &Caller, commune: Option<&str>) -> bool {
    caller
        .staff()
        .is_some_and(|s| s.commune.is_none() || s.commune.as_deref() == commune)
}

/// Free text as a reader sees it: as typed, or with contacts masked; a text still sealed
/// (its key never reached this replica) reads as unavailable, to staff too.
pub fn text(as_filed: bool, text: &str) -> Cow<'_, str> {
    if sealed::is_sealed(text) {
        return Cow::Borrowed(sealed::UNAVAILABLE);
    }
    match as_filed {
        true => Cow::Borrowed(text),
        false => public_view::mask_contacts(text),
    }
}

impl Report {
    /// Whether `caller` reads this report as filed.
    pub fn as_filed_for(&self, caller: &Caller) -> bool {
        sees_as_filed(caller, Some(&self.submitted.commune_code))
    }

    /// `(lat, long)` as `caller` sees them: as filed, or rounded as in the open data.
    pub fn position_for(&self, caller: &Caller) -> (f64, f64) {
        let s = &self.submitted;
        match self.as_filed_for(caller) {
            true => (s.lat, s.long),
            false => (
                public_view::round_coordinate(s.lat),
                public_view::round_coordinate(s.long),
            ),
        }
    }

    /// The typed address, for those who read the report as filed only.
    pub fn address_for(&self, caller: &Caller) -> Option<&str> {
        let address = self.submitted.address_string.as_deref();
        address
            .filter(|_| self.as_filed_for(caller))
            .map(|a| match sealed::is_sealed(a) {
                true => sealed::UNAVAILABLE,
                false => a,
            })
    }
}

impl Idea {
    /// Whether `caller` reads this idea's texts as written.
    pub fn as_filed_for(&self, caller: &Caller) -> bool {
        sees_as_filed(caller, self.submitted.commune_code.as_deref())
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

    /// The reports `query` asks for, in its order (newest first by default; the same
    /// instant: by id).
    pub fn find_reports(&self, query: &ReportQuery) -> Vec<Report> {
        let mut found: Vec<Report> = self
            .reports
            .values()
            .filter(|r| query.matches(r))
            .cloned()
            .collect();
        match query.order {
            ReportOrder::Newest => found.sort_by(|a, b| {
                (b.requested, &b.submitted.report_id).cmp(&(a.requested, &a.submitted.report_id))
            }),
            ReportOrder::DueFirst => found.sort_by(|a, b| {
                let due = |r: &Report| {
                    (
                        r.submitted.expected_datetime,
                        r.requested,
                        r.submitted.report_id.clone(),
                    )
                };
                due(a).cmp(&due(b))
            }),
        }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use vallee_schemas::citizen::ReportSubmitted;

    use super::*;
    use crate::options::StaffMember;

    fn report() -> Report {
        let at: DateTime<Utc> = "2026-11-28T10:00:00Z".parse().unwrap();
        Report {
            submitted: ReportSubmitted {
                report_id: "r-1".into(),
                service_code: "street-light".into(),
                description: "Lampadaire éteint, appelez le 06 12 34 56 78".into(),
                lat: 43.652_149,
                long: 3.551_51,
                address_string: Some("12 rue du Pont".into()),
                media_url: None,
                commune_code: "34114".into(),
                agency_responsible: "Mairie de Gignac".into(),
                expected_datetime: at,
                has_contact: false,
                author: None,
                contact_digest: None,
                photos: Vec::new(),
            },
            requested: at,
            updated: at,
            status: ReportStatus::Open,
            substatus: None,
            status_notes: None,
            history: Vec::new(),
            followers: BTreeSet::new(),
            erased: false,
            bin: None,
            photos: Vec::new(),
        }
    }

    fn staff(commune: Option<&str>) -> Caller {
        Caller::Staff(StaffMember {
            name: "agent".into(),
            token_sha256: String::new(),
            commune: commune.map(str::to_string),
        })
    }

    #[test]
    fn staff_of_the_scope_read_a_report_as_filed_the_others_its_public_projection() {
        let r = report();
        for caller in [staff(Some("34114")), staff(None)] {
            assert!(r.as_filed_for(&caller));
            assert_eq!(r.position_for(&caller), (43.652_149, 3.551_51));
            assert_eq!(r.address_for(&caller), Some("12 rue du Pont"));
        }
        let citizen = Caller::Citizen {
            pseudonym: "p".into(),
        };
        for caller in [Caller::Anonymous, citizen, staff(Some("34239"))] {
            assert!(!r.as_filed_for(&caller));
            assert_eq!(r.position_for(&caller), (43.652, 3.552));
            assert_eq!(r.address_for(&caller), None);
            let description = text(r.as_filed_for(&caller), &r.submitted.description);
            assert_eq!(
                description,
                "Lampadaire éteint, appelez le [téléphone masqué]"
            );
        }
        assert!(
            !sees_as_filed(&staff(Some("34114")), None),
            "a valley-wide idea"
        );
        assert!(sees_as_filed(&staff(None), None));
    }

    #[test]
    fn a_public_bounding_box_matches_the_rounded_position() {
        let mut view = CitizenView::default();
        view.reports.insert("r-1".into(), report());
        // A box around the exact position but not the rounded one.
        let tiny = [3.5515, 43.6521, 3.5516, 43.6522];
        let query = |viewer: Option<Caller>| ReportQuery {
            bbox: Some(tiny),
            viewer,
            ..Default::default()
        };
        assert_eq!(view.find_reports(&query(None)).len(), 1);
        assert_eq!(view.find_reports(&query(Some(staff(None)))).len(), 1);
        assert!(
            view.find_reports(&query(Some(Caller::Anonymous)))
                .is_empty()
        );
        let around_rounded = ReportQuery {
            bbox: Some([3.5519, 43.6519, 3.5521, 43.6521]),
            viewer: Some(Caller::Anonymous),
            ..Default::default()
        };
        assert_eq!(view.find_reports(&around_rounded).len(), 1);
    }
}
