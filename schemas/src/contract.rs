//! The input and lake contract: which streams arrive on which topics, which event types a
//! stream carries, and which Delta table each type lands in.
//!
//! ```text
//!  topic (default name)        event type(s)                      lake table
//!  vallee.waste.containers ──► WasteContainer ─────────────────► waste_containers
//!  vallee.waste.vehicles   ──► Vehicle ────────────────────────► waste_vehicles
//!  vallee.beacons          ──► BeaconSighting ─────────────────► beacon_sightings (no token)
//!  vallee.tourism          ──► SiteVisit ──────────────────────► site_visits
//!  vallee.vineyards        ──► AgriParcelRecord ───────────────► parcel_records
//!                          └─► WeatherObserved ────────────────► weather_observed
//!  vallee.citizen.reports ──► Report*, TextsErased (API) ──────► citizen_reports
//!  vallee.citizen.ideas   ──► Idea* (API writes) ─────────────► citizen_ideas
//!  vallee.staff.audit     ──► StaffAction ─────────────────────► staff_audit
//!  vallee.reference.places ─► Place*, Depot*, Truck*, Device* ─► reference_places
//!  any of them             ──► anything that fails validation ─► dead_letters
//! ```

use std::fmt;

pub use crate::streams::{ALERTS_TOPIC, Stream, TEXT_KEYS_RETENTION_DAYS, TEXT_KEYS_TOPIC};

/// What each stream carries and where it lands (the stream itself is [`crate::streams`]).
impl Stream {
    /// The `type` values this stream accepts, with the table each one lands in.
    pub fn routes(self) -> &'static [(&'static str, Table)] {
        match self {
            Stream::WasteContainers => &[("WasteContainer", Table::WasteContainers)],
            Stream::WasteVehicles => &[("Vehicle", Table::WasteVehicles)],
            Stream::Beacons => &[("BeaconSighting", Table::BeaconSightings)],
            Stream::Tourism => &[("SiteVisit", Table::SiteVisits)],
            Stream::Vineyards => &[
                ("AgriParcelRecord", Table::ParcelRecords),
                ("WeatherObserved", Table::WeatherObserved),
            ],
            Stream::CitizenReports => &[
                ("ReportSubmitted", Table::CitizenReports),
                ("ReportFollowed", Table::CitizenReports),
                ("ReportStatusChanged", Table::CitizenReports),
                ("ReportLinkedToBin", Table::CitizenReports),
                ("ReportUnlinkedFromBin", Table::CitizenReports),
                ("ReportPhotoModerated", Table::CitizenReports),
                ("TextsErased", Table::CitizenReports),
            ],
            Stream::CitizenIdeas => &[
                ("IdeaSubmitted", Table::CitizenIdeas),
                ("IdeaSupported", Table::CitizenIdeas),
                ("IdeaSupportWithdrawn", Table::CitizenIdeas),
                ("IdeaCommented", Table::CitizenIdeas),
                ("IdeaFlagged", Table::CitizenIdeas),
                ("IdeaAnswered", Table::CitizenIdeas),
                ("IdeaModerated", Table::CitizenIdeas),
                ("CommentModerated", Table::CitizenIdeas),
                ("CommentFlagged", Table::CitizenIdeas),
            ],
            Stream::StaffAudit => &[("StaffAction", Table::StaffAudit)],
            Stream::ReferencePlaces => &[
                ("PlaceUpdated", Table::ReferencePlaces),
                ("PlaceRemoved", Table::ReferencePlaces),
                ("ChildcareVacanciesUpdated", Table::ReferencePlaces),
                ("DepotUpdated", Table::ReferencePlaces),
                ("DepotRemoved", Table::ReferencePlaces),
                ("TruckUpdated", Table::ReferencePlaces),
                ("TruckRemoved", Table::ReferencePlaces),
                ("DeviceRegistered", Table::ReferencePlaces),
                ("DeviceRemoved", Table::ReferencePlaces),
            ],
        }
    }

    /// Every table a message of this stream can land in: its data tables and the
    /// dead letters. Exactly-once bookkeeping is kept per (table, topic, partition) for
    /// each of them.
    pub fn tables(self) -> Vec<Table> {
        let mut tables: Vec<Table> = self.routes().iter().map(|(_, t)| *t).collect();
        tables.dedup();
        tables.push(Table::DeadLetters);
        tables
    }
}

/// One column of a table's "latest" order (see [`crate::tables::LakeTable::latest_order`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc(&'static str),
    Desc(&'static str),
}

impl Order {
    pub fn column(self) -> &'static str {
        match self {
            Order::Asc(c) | Order::Desc(c) => c,
        }
    }

    pub fn is_descending(self) -> bool {
        matches!(self, Order::Desc(_))
    }
}

/// A raw Delta table written by ingest under `<data-dir>/lake/<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    WasteContainers,
    WasteVehicles,
    BeaconSightings,
    SiteVisits,
    ParcelRecords,
    WeatherObserved,
    CitizenReports,
    CitizenIdeas,
    StaffAudit,
    ReferencePlaces,
    DeadLetters,
}

impl Table {
    /// Every ingest table, in a stable order.
    pub const ALL: [Table; 11] = [
        Table::WasteContainers,
        Table::WasteVehicles,
        Table::BeaconSightings,
        Table::SiteVisits,
        Table::ParcelRecords,
        Table::WeatherObserved,
        Table::CitizenReports,
        Table::CitizenIdeas,
        Table::StaffAudit,
        Table::ReferencePlaces,
        Table::DeadLetters,
    ];

    /// The table's folder name under `lake/`.
    pub fn name(self) -> &'static str {
        match self {
            Table::WasteContainers => "waste_containers",
            Table::WasteVehicles => "waste_vehicles",
            Table::BeaconSightings => "beacon_sightings",
            Table::SiteVisits => "site_visits",
            Table::ParcelRecords => "parcel_records",
            Table::WeatherObserved => "weather_observed",
            Table::CitizenReports => "citizen_reports",
            Table::CitizenIdeas => "citizen_ideas",
            Table::StaffAudit => "staff_audit",
            Table::ReferencePlaces => "reference_places",
            Table::DeadLetters => "dead_letters",
        }
    }

    /// The table's Arrow schema (the Delta schema is derived from it).
    pub fn schema(self) -> arrow::datatypes::SchemaRef {
        use crate::events::*;
        match self {
            Table::WasteContainers => waste_container::schema(),
            Table::WasteVehicles => vehicle::schema(),
            Table::BeaconSightings => beacon::schema(),
            Table::SiteVisits => site_visit::schema(),
            Table::ParcelRecords => parcel_record::schema(),
            Table::WeatherObserved => weather::schema(),
            Table::CitizenReports
            | Table::CitizenIdeas
            | Table::StaffAudit
            | Table::ReferencePlaces => crate::citizen::schema(),
            Table::DeadLetters => crate::dead_letter::schema(),
        }
    }

    /// A human description, written into the Delta table's metadata.
    pub fn description(self) -> &'static str {
        match self {
            Table::WasteContainers => {
                "WasteContainer readings (FIWARE Smart Data Models), one row per Kafka message"
            }
            Table::WasteVehicles => {
                "Vehicle positions of waste-collection trucks, one row per Kafka message"
            }
            Table::BeaconSightings => {
                "Beacon sightings in the activity zone; device tokens are never stored"
            }
            Table::SiteVisits => "Tourism site presence counts and AR-trail check-ins",
            Table::ParcelRecords => "AgriParcelRecord readings of vineyard parcel sensors",
            Table::WeatherObserved => "WeatherObserved readings of vineyard weather stations",
            Table::CitizenReports => {
                "Citizens' reports, their status changes, links to bins and erasures, one row per event (no contact details)"
            }
            Table::CitizenIdeas => {
                "The idea box: ideas, supports, comments, flags, answers, one row per event"
            }
            Table::StaffAudit => "Every staff action taken through the API (audit trail)",
            Table::ReferencePlaces => {
                "Reference data staff keep up to date (digital gallery, coworking, training sessions, childcare and vacancies; the collection fleet's depots and trucks), one row per event"
            }
            Table::DeadLetters => {
                "Messages that failed to decode or validate, with reason, raw bytes (identifiers redacted) and source coordinates"
            }
        }
    }

    /// Partition columns: every table is partitioned by the UTC day of its event time
    /// (for dead letters, of their arrival).
    pub fn partition_columns(self) -> &'static [&'static str] {
        &["day"]
    }

    /// The input streams whose messages land in this table (dead letters: every stream's).
    pub fn sources(self) -> &'static [Stream] {
        match self {
            Table::WasteContainers => &[Stream::WasteContainers],
            Table::WasteVehicles => &[Stream::WasteVehicles],
            Table::BeaconSightings => &[Stream::Beacons],
            Table::SiteVisits => &[Stream::Tourism],
            Table::ParcelRecords | Table::WeatherObserved => &[Stream::Vineyards],
            Table::CitizenReports => &[Stream::CitizenReports],
            Table::CitizenIdeas => &[Stream::CitizenIdeas],
            Table::StaffAudit => &[Stream::StaffAudit],
            Table::ReferencePlaces => &[Stream::ReferencePlaces],
            Table::DeadLetters => &Stream::ALL,
        }
    }

    /// What a row is about: the device or entity (`id` of a reading, `entityId` of a
    /// citizen event); none for dead letters.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Table::WasteContainers
            | Table::WasteVehicles
            | Table::BeaconSightings
            | Table::SiteVisits
            | Table::ParcelRecords
            | Table::WeatherObserved => &["id"],
            Table::CitizenReports
            | Table::CitizenIdeas
            | Table::StaffAudit
            | Table::ReferencePlaces => &["entityId"],
            Table::DeadLetters => &[],
        }
    }

    /// Which row of a key is its latest: the newest event, and of two at the same time the
    /// one read last from its partition.
    pub fn latest_order(self) -> &'static [Order] {
        match self {
            Table::DeadLetters => &[],
            _ => &[Order::Desc("dateObserved"), Order::Desc("_offset")],
        }
    }

    /// Looks a table up by its folder name.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_but_dead_letters_is_fed_by_exactly_one_stream() {
        for table in Table::ALL {
            let feeders = Stream::ALL
                .iter()
                .filter(|s| s.routes().iter().any(|(_, t)| *t == table))
                .count();
            let expected = if table == Table::DeadLetters { 0 } else { 1 };
            assert_eq!(feeders, expected, "{table}");
        }
    }

    #[test]
    fn every_table_is_fed_by_the_streams_that_route_to_it() {
        for table in Table::ALL.into_iter().filter(|t| *t != Table::DeadLetters) {
            let routed: Vec<Stream> = Stream::ALL
                .into_iter()
                .filter(|s| s.routes().iter().any(|(_, t)| *t == table))
                .collect();
            assert_eq!(table.sources(), routed.as_slice(), "{table}");
        }
    }

    #[test]
    fn every_table_is_partitioned_by_a_column_of_its_schema() {
        for table in Table::ALL {
            for col in table.partition_columns() {
                assert!(table.schema().field_with_name(col).is_ok(), "{table}.{col}");
            }
            assert_eq!(Table::from_name(table.name()), Some(table));
        }
    }
}
