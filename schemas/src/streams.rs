//! The input streams: one Kafka topic each, with its default name and stable short name.
//!
//! A leaf module (it imports nothing of this crate): every other module may name a stream.
//! What a stream carries and which tables it feeds is the contract's
//! ([`crate::contract`]).

use std::fmt;

/// Topic of the alerts the stream stage publishes for partner feeds.
pub const ALERTS_TOPIC: &str = "vallee.alerts";

/// Topic on which an API replica hands the other replicas the keys of the texts it sealed
/// (wrapped under the replicas' secret; see `citizen::sealed`). Its records expire after
/// `TEXT_KEYS_RETENTION_DAYS`, so an erased key is gone from the broker by then; ingest
/// never lands it.
pub const TEXT_KEYS_TOPIC: &str = "vallee.private.text-keys";

/// How long the keys topic keeps a key: within GDPR's one month to answer an erasure.
pub const TEXT_KEYS_RETENTION_DAYS: u64 = 30;

/// A sensor input stream: one Kafka topic carrying one family of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// Fill-level readings of connected waste bins.
    WasteContainers,
    /// Positions and status of collection trucks.
    WasteVehicles,
    /// Pseudonymous sightings from the activity zone's beacons.
    Beacons,
    /// Site presence counts and AR-trail check-ins.
    Tourism,
    /// Parcel sensors and weather stations of the vineyards.
    Vineyards,
    /// Citizens' reports and their status changes (written by the API).
    CitizenReports,
    /// The idea box: ideas, supports, comments, flags, answers (written by the API).
    CitizenIdeas,
    /// Every staff action (written by the API).
    StaffAudit,
    /// Reference data staff keep up to date: digital gallery, coworking, training
    /// sessions, childcare and its vacancies, the collection fleet's depots and trucks
    /// (written by the API).
    ReferencePlaces,
}

impl Stream {
    /// Every input stream, in a stable order.
    pub const ALL: [Stream; 9] = [
        Stream::WasteContainers,
        Stream::WasteVehicles,
        Stream::Beacons,
        Stream::Tourism,
        Stream::Vineyards,
        Stream::CitizenReports,
        Stream::CitizenIdeas,
        Stream::StaffAudit,
        Stream::ReferencePlaces,
    ];

    /// The sensor streams (what devices send; the stream stage's inputs).
    pub const SENSORS: [Stream; 5] = [
        Stream::WasteContainers,
        Stream::WasteVehicles,
        Stream::Beacons,
        Stream::Tourism,
        Stream::Vineyards,
    ];

    /// The streams the API writes; kept forever (the API's view is rebuilt from them).
    pub const CITIZEN: [Stream; 4] = [
        Stream::CitizenReports,
        Stream::CitizenIdeas,
        Stream::StaffAudit,
        Stream::ReferencePlaces,
    ];

    /// The topic name used when the configuration does not override it.
    pub fn default_topic(self) -> &'static str {
        match self {
            Stream::WasteContainers => "vallee.waste.containers",
            Stream::WasteVehicles => "vallee.waste.vehicles",
            Stream::Beacons => "vallee.beacons",
            Stream::Tourism => "vallee.tourism",
            Stream::Vineyards => "vallee.vineyards",
            Stream::CitizenReports => "vallee.citizen.reports",
            Stream::CitizenIdeas => "vallee.citizen.ideas",
            Stream::StaffAudit => "vallee.staff.audit",
            Stream::ReferencePlaces => "vallee.reference.places",
        }
    }

    /// Short stable name (configuration keys, metrics labels).
    pub fn name(self) -> &'static str {
        match self {
            Stream::WasteContainers => "waste_containers",
            Stream::WasteVehicles => "waste_vehicles",
            Stream::Beacons => "beacons",
            Stream::Tourism => "tourism",
            Stream::Vineyards => "vineyards",
            Stream::CitizenReports => "citizen_reports",
            Stream::CitizenIdeas => "citizen_ideas",
            Stream::StaffAudit => "staff_audit",
            Stream::ReferencePlaces => "reference_places",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
