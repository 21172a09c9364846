//! The reads of the view, shared by the command layer's re-reads and the doors' queries.

use super::view::{CitizenView, Report};

impl CitizenView {
    /// One report.
    pub fn report(&self, id: &str) -> Option<Report> {
        self.reports.get(id).cloned()
    }
}
