//! The retention of reporters' contact details: the privacy rule for `private/`.
//!
//! A contact is kept while its report is open and for `contact_retention` (90 days by
//! default) after it closed, long enough to answer a reporter about the outcome; then it is
//! erased. A contact whose report never reached the topics (its write failed after the
//! contact was kept) is erased once the file is that old.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use vallee_schemas::citizen::ReportStatus;

use super::contacts::ContactStore;
use super::view::CitizenView;

/// The reports whose contact is past its retention at `now`.
pub fn expired(
    view: &CitizenView,
    kept: &[(String, SystemTime)],
    now: DateTime<Utc>,
    retention: Duration,
) -> Vec<String> {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    kept.iter()
        .filter(|(id, written)| match view.reports.get(id) {
            Some(r) => r.status == ReportStatus::Closed && r.updated + retention < now,
            None => DateTime::<Utc>::from(*written) + retention < now,
        })
        .map(|(id, _)| id.clone())
        .collect()
}

/// Erases the expired contacts; returns how many. The view is read-locked only to decide,
/// not while files are listed or erased (mutations wait on that lock).
pub fn enforce(
    store: &ContactStore,
    view: &std::sync::RwLock<CitizenView>,
    now: DateTime<Utc>,
    retention: Duration,
) -> std::io::Result<usize> {
    let kept = store.list()?;
    let gone = expired(&view.read().expect("view lock"), &kept, now, retention);
    let mut erased = 0;
    for id in gone {
        if store.erase(&id)? {
            erased += 1;
        }
    }
    Ok(erased)
}

#[cfg(test)]
mod tests {
    use vallee_schemas::citizen::{CitizenChange, CitizenEvent, ReportSubmitted};

    use super::*;

    fn submitted(id: &str) -> CitizenChange {
        CitizenChange::ReportSubmitted(ReportSubmitted {
            report_id: id.into(),
            service_code: "graffiti".into(),
            description: "tag".into(),
            lat: 43.65,
            long: 3.55,
            address_string: None,
            media_url: None,
            commune_code: "34114".into(),
            agency_responsible: "Mairie de Gignac".into(),
            expected_datetime: Utc::now(),
            has_contact: true,
            author: None,
            contact_digest: None,
            photos: Vec::new(),
        })
    }

    #[test]
    fn a_contact_goes_90_days_after_its_report_closed_not_before() {
        let day = chrono::Duration::days(1);
        let t0: DateTime<Utc> = "2026-01-10T09:00:00Z".parse().unwrap();
        let mut view = CitizenView::default();
        for (id, closed) in [("open-1", false), ("closed-1", true)] {
            let mut e = CitizenEvent::new("anonymous", submitted(id));
            e.date_observed = t0;
            view.apply(&e);
            if closed {
                let mut c = CitizenEvent::new(
                    "staff:mairie-gignac",
                    CitizenChange::ReportStatusChanged {
                        report_id: id.into(),
                        status: ReportStatus::Closed,
                        substatus: None,
                        status_notes: None,
                    },
                );
                c.date_observed = t0 + day;
                view.apply(&c);
            }
        }
        let written = SystemTime::from(t0);
        let kept: Vec<(String, SystemTime)> = ["open-1", "closed-1", "orphan-1"]
            .iter()
            .map(|id| (id.to_string(), written))
            .collect();
        let retention = Duration::from_secs(90 * 86_400);
        assert!(expired(&view, &kept, t0 + day * 90, retention).is_empty());
        assert_eq!(
            expired(&view, &kept, t0 + day * 92, retention),
            vec!["closed-1".to_string(), "orphan-1".to_string()]
        );
        assert_eq!(
            expired(&view, &kept, t0 + day * 1000, retention),
            vec!["closed-1".to_string(), "orphan-1".to_string()],
            "an open report keeps its contact"
        );
    }
}
