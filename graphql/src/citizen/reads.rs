//! The reads of the view, shared by the command layer's re-reads and the doors' queries:
//! reports, ideas (as staff or the public see them) and reference places.

use super::view::{CitizenView, Idea, Place, Report};

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

    /// One idea, if `seen_by` sees it.
    pub fn idea(&self, id: &str, seen_by: SeenBy) -> Option<Idea> {
        self.ideas.get(id).filter(|i| seen_by.sees(i)).cloned()
    }

    /// One reference place.
    pub fn place(&self, id: &str) -> Option<Place> {
        self.places.get(id).cloned()
    }
}
