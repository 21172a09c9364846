//! Who may send a command: the caller kinds a handler takes, and the staff's scope.
//!
//! A handler that needs a citizen takes a [`Citizen`], one that needs staff a [`Staff`];
//! the dispatch gets them from the [`Caller`] with [`citizen`] and [`staff`], which refuse
//! every other caller with the code clients know.

use vallee_schemas::citizen::{CitizenChange, CitizenEvent};

use super::{CommandError, Result};
use crate::auth::Caller;
use crate::options::StaffMember;

/// A caller known by a citizen token.
#[derive(Debug, Clone, Copy)]
pub struct Citizen<'a> {
    pseudonym: &'a str,
}

impl Citizen<'_> {
    /// The citizen's only identity in events.
    pub fn pseudonym(&self) -> &str {
        self.pseudonym
    }

    /// An event this citizen writes.
    pub fn event(&self, change: CitizenChange) -> CitizenEvent {
        CitizenEvent::new(format!("citizen:{}", self.pseudonym), change)
    }
}

/// A caller known by a staff token.
#[derive(Debug, Clone, Copy)]
pub struct Staff<'a> {
    member: &'a StaffMember,
}

impl Staff<'_> {
    /// An event this staff member writes.
    pub fn event(&self, change: CitizenChange) -> CitizenEvent {
        CitizenEvent::new(format!("staff:{}", self.member.name), change)
    }

    /// Whether they act for one commune only (not for the whole intercommunality).
    pub fn is_of_a_commune(&self) -> bool {
        self.member.commune.is_some()
    }

    /// The scope written in the audit: a commune's INSEE code, or `intercommunality`.
    pub fn scope(&self) -> String {
        self.member
            .commune
            .clone()
            .unwrap_or_else(|| "intercommunality".into())
    }

    /// Staff of a commune act on that commune only; the intercommunality's on everything
    /// (`commune`: where the entity is; `None` for the whole valley).
    pub fn check_scope(&self, commune: Option<&str>) -> Result<()> {
        match (&self.member.commune, commune) {
            (None, _) => Ok(()),
            (Some(mine), Some(c)) if mine == c => Ok(()),
            (Some(_), _) => Err(CommandError::Forbidden(
                "this belongs to another commune than yours".into(),
            )),
        }
    }
}

/// The caller as a citizen, or `UNAUTHENTICATED`.
pub fn citizen(caller: &Caller) -> Result<Citizen<'_>> {
    match caller {
        Caller::Citizen { pseudonym } => Ok(Citizen { pseudonym }),
        _ => Err(CommandError::Unauthenticated(
            "this needs a citizen token (issueCitizenToken)".into(),
        )),
    }
}

/// The caller as staff: `UNAUTHENTICATED` without a token, `FORBIDDEN` for a citizen's.
pub fn staff(caller: &Caller) -> Result<Staff<'_>> {
    match caller {
        Caller::Staff(member) => Ok(Staff { member }),
        Caller::Anonymous => Err(CommandError::Unauthenticated(
            "this needs a staff token".into(),
        )),
        Caller::Citizen { .. } => Err(CommandError::Forbidden("only staff may do this".into())),
    }
}
