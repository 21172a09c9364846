//! The events one command writes, in the order they must be acknowledged.
//!
//! A staff action's audit record (`StaffAction` on `vallee.staff.audit`) goes first, before
//! the domain event: an action whose event then fails is still visible in the audit, as
//! attempted. Each event is acknowledged before the next is sent, and applied to this
//! replica's view once acknowledged.

use vallee_schemas::citizen::{CitizenChange, CitizenEvent};

use super::access::Staff;
use super::{Commands, Result};

/// The audit record (staff only) and the domain events of one command.
#[derive(Debug, Default)]
pub struct Writes {
    audit: Option<CitizenEvent>,
    events: Vec<CitizenEvent>,
}

impl Writes {
    /// The writes of a staff action, starting with its audit record: `action` (the
    /// mutation's name) on `target`, with an optional `detail`.
    pub fn audited(staff: Staff<'_>, action: &str, target: &str, detail: Option<String>) -> Self {
        let record = staff.event(CitizenChange::StaffAction {
            action: action.into(),
            target: target.into(),
            scope: staff.scope(),
            detail,
        });
        Writes {
            audit: Some(record),
            events: Vec::new(),
        }
    }

    /// One event to write (on its own stream, [`CitizenChange::stream`]).
    pub fn event(event: CitizenEvent) -> Self {
        Writes::default().then(event)
    }

    /// And then `event`.
    pub fn then(mut self, event: CitizenEvent) -> Self {
        self.events.push(event);
        self
    }
}

impl Commands {
    /// Sends `writes`: the audit record, then each event, each acknowledged before the
    /// next; stops at the first failure.
    pub(super) async fn write(&self, writes: Writes) -> Result<()> {
        if let Some(record) = &writes.audit {
            self.citizens.publish(record).await?;
        }
        for event in &writes.events {
            self.citizens.publish(event).await?;
        }
        Ok(())
    }
}
