//! Reporters' data (GDPR articles 15 and 17): staff read, export or erase the contact
//! details a reporter left, by report or by email, within their scope. The reports stay:
//! they hold no personal data. Each is audited before it happens, a single read included;
//! the audit names the reports covered, never the email asked for (the audit is in the
//! lake).

use crate::auth::Caller;
use crate::citizen::contacts::Contact;

use super::access::Staff;
use super::writes::Writes;
use super::{Applied, CommandError, Commands, ReporterOf, ReporterRecord, Result};

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

    /// Staff: erases a reporter's contact details; answers the reports that had some.
    pub(super) async fn erase_reporter_data(
        &self,
        staff: Staff<'_>,
        reporter: ReporterOf,
    ) -> Result<Applied> {
        let ids = self.reports_of(staff, &reporter)?;
        self.write(Writes::audited(
            staff,
            "eraseReporterData",
            &audit_target(&ids),
            None,
        ))
        .await?;
        let mut erased = Vec::new();
        for id in ids {
            if self.contacts.erase(&id)? {
                erased.push(id);
            }
        }
        Ok(Applied::ReporterDataErased(erased))
    }

    /// The reports a GDPR request names, all within the staff member's scope. A report
    /// this replica does not know has no commune to check: only the intercommunality's
    /// staff may act on it.
    fn reports_of(&self, staff: Staff<'_>, reporter: &ReporterOf) -> Result<Vec<String>> {
        let ids = match (&reporter.report_id, &reporter.email) {
            (Some(id), None) => vec![id.clone()],
            (None, Some(email)) => self.contacts.reports_of_email(email)?,
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
