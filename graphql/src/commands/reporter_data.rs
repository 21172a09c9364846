//! People's data (GDPR articles 15 and 17): staff read, export or erase what a reporter
//! left, by report or by email, within their scope; a citizen erases what they wrote
//! under their token. Staff requests are audited before they happen, a single read
//! included; the audit names the reports covered, never the email asked for (the audit
//! is in the lake).
//!
//! An erasure is one `TextsErased` event on the reports' topic, naming the subjects
//! (reports, ideas, comments): every replica that reads it deletes their text keys and
//! contact details, so what they wrote is unreadable in every copy (see
//! `vallee_schemas::citizen::sealed`). The reports and ideas stay, without their texts:
//! the service's record of a pothole is not personal data; an erased idea leaves the
//! public's view.

use vallee_schemas::citizen::sealed::ERASED;
use vallee_schemas::citizen::{CitizenChange, MAX_ERASED_SUBJECTS, uuid_v4};

use crate::auth::Caller;
use crate::citizen::contacts::Contact;

use super::access::{Citizen, Staff};
use super::writes::Writes;
use super::{Applied, CommandError, Commands, ReporterOf, ReporterRecord, Result};

/// The event erasing `subjects` (a fresh request id names it).
fn erasure(subjects: &[String]) -> CitizenChange {
    CitizenChange::TextsErased {
        request_id: uuid_v4(),
        subjects: subjects.to_vec(),
    }
}

/// The audit target of a GDPR request: the reports it covered.
fn audit_target(ids: &[String]) -> String {
    if ids.is_empty() {
        "no-report".into()
    } else {
        ids.join(",")
    }
}

impl Commands {
    /// Staff: a reporter's data, one record per report with a kept contact.
    pub(super) async fn export_reporter_data(
        &self,
        staff: Staff<'_>,
        reporter: ReporterOf,
    ) -> Result<Applied> {
        let ids = self.reports_of(staff, &reporter)?;
        self.write(Writes::audited(
            staff,
            "exportReporterData",
            &audit_target(&ids),
            None,
        ))
        .await?;
        let mut records = Vec::new();
        for id in ids {
            if let Some(contact) = self.contacts.get(&id)? {
                records.push(ReporterRecord {
                    report: self.report(&id).ok(),
                    report_id: id,
                    contact,
                });
            }
        }
        Ok(Applied::ReporterData(records))
    }

    /// Staff of the report's scope: its contact details, if the reporter left some. The
    /// read is audited first (`readContact`), so who looked at whose contact, and when,
    /// is in the lake whichever door asked.
    pub async fn read_contact(&self, caller: &Caller, report_id: &str) -> Result<Option<Contact>> {
        let staff = super::access::staff(caller)?;
        let ids = self.reports_of(
            staff,
            &ReporterOf {
                report_id: Some(report_id.into()),
                email: None,
            },
        )?;
        self.write(Writes::audited(
            staff,
            "readContact",
            &audit_target(&ids),
            None,
        ))
        .await?;
        Ok(self.contacts.get(report_id)?)
    }

    /// Staff: erases a reporter's texts and contact details on every replica; answers
    /// the reports erased.
    pub(super) async fn erase_reporter_data(
        &self,
        staff: Staff<'_>,
        reporter: ReporterOf,
    ) -> Result<Applied> {
        let ids = self.reports_of(staff, &reporter)?;
        let mut writes = Writes::audited(staff, "eraseReporterData", &audit_target(&ids), None);
        for subjects in ids.chunks(MAX_ERASED_SUBJECTS) {
            writes = writes.then(staff.event(erasure(subjects)));
        }
        self.write(writes).await?;
        Ok(Applied::ReporterDataErased(ids))
    }

    /// A citizen: erases everything they wrote under their token (reports, ideas,
    /// comments), on every replica.
    pub(super) async fn erase_my_contributions(&self, citizen: Citizen<'_>) -> Result<Applied> {
        let me = citizen.pseudonym();
        let (mut reports, mut ideas, mut comments) = (Vec::new(), Vec::new(), Vec::new());
        {
            let view = self.citizens.view.read().expect("view lock");
            for r in view.reports.values() {
                if r.submitted.author.as_deref() == Some(me) && !r.erased {
                    reports.push(r.submitted.report_id.clone());
                }
            }
            for i in view.ideas.values() {
                if i.submitted.author == me && !i.erased {
                    ideas.push(i.submitted.idea_id.clone());
                }
                for c in &i.comments {
                    if c.author == me && c.body != ERASED {
                        comments.push(c.id.clone());
                    }
                }
            }
        }
        for list in [&mut reports, &mut ideas, &mut comments] {
            list.sort();
        }
        let subjects: Vec<String> = [&reports, &ideas, &comments]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        for chunk in subjects.chunks(MAX_ERASED_SUBJECTS) {
            self.write(Writes::event(citizen.event(erasure(chunk))))
                .await?;
        }
        Ok(Applied::ContributionsErased {
            reports,
            ideas,
            comments,
        })
    }

    /// The reports a GDPR request names, all within the staff member's scope. A report
    /// this replica does not know has no commune to check: only the intercommunality's
    /// staff may act on it.
    fn reports_of(&self, staff: Staff<'_>, reporter: &ReporterOf) -> Result<Vec<String>> {
        let ids = match (&reporter.report_id, &reporter.email) {
            (Some(id), None) => vec![id.clone()],
            (None, Some(email)) => {
                // The contacts this replica keeps, and every report whose sealed digest
                // of the e-mail matches (those taken by other replicas).
                let mut ids = self.contacts.reports_of_email(email)?;
                let digest = self.citizens.contact_digest(email);
                let view = self.citizens.view.read().expect("view lock");
                ids.extend(
                    view.reports
                        .values()
                        .filter(|r| r.submitted.contact_digest.as_deref() == Some(&digest))
                        .map(|r| r.submitted.report_id.clone()),
                );
                ids.sort();
                ids.dedup();
                ids
            }
            _ => return Err(CommandError::bad("give reportId or email")),
        };
        for id in &ids {
            if let Ok(r) = self.report(id) {
                staff.check_scope(Some(&r.submitted.commune_code))?;
            } else if staff.is_of_a_commune() {
                return Err(CommandError::Forbidden(
                    "only the intercommunality's staff may act on unknown reports".into(),
                ));
            }
        }
        Ok(ids)
    }
}
