//! How a stage's consumer gets its partitions: from the group coordinator, or by itself.
//!
//! Kafka's consumer groups let members share partitions and take over from a dead one.
//! They also make every member depend on the coordinator getting it right. The embedded
//! broker's coordinator (Tansu 0.6) was seen to leave a partition assigned to a member
//! killed with SIGKILL, for good: the restarted process read two partitions of three and
//! nothing said so (docs/architecture.md, "The embedded broker and its quirks"). A process
//! that knows which partitions are its own does not need a coordinator at all:
//!
//! - [`Membership::Sole`]: the stage's only member (`vallee up`) takes every partition of
//!   its topics. It reads at once, with no join round trip.
//! - [`Membership::Static`]: member *i* of *n* takes the partitions *p* with
//!   `p mod n = i`. Several processes share the work with no coordinator; a dead member's
//!   share waits for it to be restarted (systemd, Kubernetes), and readiness says so.
//! - [`Membership::Group`]: the coordinator assigns (a real Kafka cluster, members that
//!   come and go). The stage watches the partitions nobody moves (see [`crate::watch`]).
//!
//! Both self-assigned modes look for new partitions regularly (a topic given more
//! partitions is picked up without a restart).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

/// How a stage's consumer gets its partitions (in the file: `membership = "auto"`,
/// `"sole"`, `"group"` or `"static:0/3"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Membership {
    /// Decided by the command: `sole` under `vallee up` (the whole hub in one process),
    /// `group` for `vallee ingest` and `vallee stream`. A stage given `auto` unresolved
    /// behaves as in a group.
    #[default]
    Auto,
    /// The consumer group's coordinator assigns partitions among the members.
    Group,
    /// The only member: every partition, assigned by the stage itself.
    Sole,
    /// Member `index` of `count`: partition `p` is its own when `p mod count = index`.
    Static { index: u32, count: u32 },
}

impl Membership {
    /// `auto` resolved to `otherwise`; any other choice kept.
    pub fn or(self, otherwise: Membership) -> Membership {
        match self {
            Membership::Auto => otherwise,
            chosen => chosen,
        }
    }

    /// Whether the stage assigns its partitions itself (no group coordinator).
    pub fn assigns_itself(self) -> bool {
        matches!(self, Membership::Sole | Membership::Static { .. })
    }

    /// Whether other members may own some of the partitions (a group, or static with more
    /// than one member): what needs every partition of a stream must then read it apart.
    pub fn shares_partitions(self) -> bool {
        match self {
            Membership::Auto | Membership::Group => true,
            Membership::Sole => false,
            Membership::Static { count, .. } => count > 1,
        }
    }

    /// Whether partition `partition` is this member's own (always, in a group: the
    /// coordinator decides there).
    pub fn owns(self, partition: i32) -> bool {
        match self {
            Membership::Auto | Membership::Group | Membership::Sole => true,
            Membership::Static { index, count } => {
                partition >= 0 && (partition as u32) % count == index
            }
        }
    }

    /// The index is below the count and the count is at least 1.
    pub fn validate(self) -> Result<()> {
        match self {
            Membership::Static { index, count } if count == 0 || index >= count => {
                Err(Error::Options(format!(
                    "membership static:{index}/{count}: needs index < count"
                )))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Membership::Auto => f.write_str("auto"),
            Membership::Group => f.write_str("group"),
            Membership::Sole => f.write_str("sole"),
            Membership::Static { index, count } => write!(f, "static:{index}/{count}"),
        }
    }
}

impl FromStr for Membership {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Options(format!(
                "membership {s:?}: expected \"auto\", \"group\", \"sole\" or \"static:<index>/<count>\""
            ))
        };
        let membership = match s.trim() {
            "auto" => Membership::Auto,
            "group" => Membership::Group,
            "sole" => Membership::Sole,
            other => {
                let share = other.strip_prefix("static:").ok_or_else(bad)?;
                let (index, count) = share.split_once('/').ok_or_else(bad)?;
                Membership::Static {
                    index: index.trim().parse().map_err(|_| bad())?,
                    count: count.trim().parse().map_err(|_| bad())?,
                }
            }
        };
        membership.validate()?;
        Ok(membership)
    }
}

impl Serialize for Membership {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Membership {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_members_share_every_partition_exactly_once() {
        let members: Vec<Membership> = (0..3)
            .map(|i| format!("static:{i}/3").parse().unwrap())
            .collect();
        for p in 0..12 {
            let owners = members.iter().filter(|m| m.owns(p)).count();
            assert_eq!(owners, 1, "partition {p}");
        }
        assert!(members[1].owns(4) && !members[1].owns(5));
        assert!(Membership::Sole.owns(7) && Membership::Group.owns(7));
        // Only a lone member reads every partition of every topic by itself.
        assert!(members.iter().all(|m| m.shares_partitions()));
        assert!(Membership::Group.shares_partitions());
        let alone: Membership = "static:0/1".parse().unwrap();
        assert!(!alone.shares_partitions() && !Membership::Sole.shares_partitions());
    }

    #[test]
    fn the_three_spellings_read_back_and_nonsense_is_refused() {
        for s in ["auto", "group", "sole", "static:2/5"] {
            let m: Membership = s.parse().unwrap();
            assert_eq!(m.to_string(), s);
        }
        assert!(Membership::Sole.assigns_itself());
        assert!(!Membership::Group.assigns_itself());
        assert!(!Membership::Auto.assigns_itself());
        assert_eq!(Membership::Auto.or(Membership::Sole), Membership::Sole);
        assert_eq!(Membership::Group.or(Membership::Sole), Membership::Group);
        for bad in [
            "alone",
            "static:3/3",
            "static:0/0",
            "static:1",
            "static:a/2",
            "",
        ] {
            assert!(bad.parse::<Membership>().is_err(), "{bad:?}");
        }
    }
}
