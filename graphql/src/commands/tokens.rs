//! Citizen tokens: anyone may get one (limited per address by the entry), needed to follow
//! reports and to take part in the idea box.

use super::{Applied, Commands};

impl Commands {
    /// A fresh anonymous token; nothing is written (tokens verify themselves).
    pub(super) fn issue_citizen_token(&self) -> Applied {
        Applied::CitizenToken(self.auth.issue_citizen_token())
    }
}
