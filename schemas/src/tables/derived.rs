//! The derived tables: what the stream stage computes and writes, append-only (a correction
//! is a new row with a higher revision).

use std::fmt;

use arrow::datatypes::SchemaRef;

use super::{LakeTable, Order, alerts, footfall, forecast, late, presence, vine};
use crate::contract::Stream;

/// A Delta table the stream stage writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutputTable {
    Footfall,
    FootfallDwell,
    SitePresence,
    FillAlerts,
    VineIndicators,
    VineAlerts,
    BinForecast,
    LateEvents,
}

/// The latest revision of a window or a day: the highest.
const BY_REVISION: &[Order] = &[Order::Desc("revision")];

impl OutputTable {
    pub const ALL: [OutputTable; 8] = [
        OutputTable::Footfall,
        OutputTable::FootfallDwell,
        OutputTable::SitePresence,
        OutputTable::FillAlerts,
        OutputTable::VineIndicators,
        OutputTable::VineAlerts,
        OutputTable::BinForecast,
        OutputTable::LateEvents,
    ];

    /// The table's folder name under `lake/`, and its SQL name.
    pub fn name(self) -> &'static str {
        match self {
            OutputTable::Footfall => "footfall",
            OutputTable::FootfallDwell => "footfall_dwell",
            OutputTable::SitePresence => "site_presence",
            OutputTable::FillAlerts => "fill_alerts",
            OutputTable::VineIndicators => "vine_indicators",
            OutputTable::VineAlerts => "vine_alerts",
            OutputTable::BinForecast => "bin_forecast",
            OutputTable::LateEvents => "late_events",
        }
    }

    /// The table's Arrow schema (the Delta schema is derived from it).
    pub fn schema(self) -> SchemaRef {
        match self {
            OutputTable::Footfall => footfall::footfall_schema(),
            OutputTable::FootfallDwell => footfall::dwell_schema(),
            OutputTable::SitePresence => presence::schema(),
            OutputTable::FillAlerts | OutputTable::VineAlerts => alerts::schema(),
            OutputTable::VineIndicators => vine::schema(),
            OutputTable::BinForecast => forecast::schema(),
            OutputTable::LateEvents => late::schema(),
        }
    }

    /// Partition columns: the UTC day of the row's time (for `vine_indicators`, the local
    /// day it is about; for `late_events`, the day of the event).
    pub fn partition_columns(self) -> &'static [&'static str] {
        &["day"]
    }

    /// A human description, written into the Delta table's metadata.
    pub fn description(self) -> &'static str {
        match self {
            OutputTable::Footfall => {
                "People per zone and window (distinct pseudonymous devices), after CrowdFlowObserved; corrections are rows with a higher revision"
            }
            OutputTable::FootfallDwell => {
                "Dwell time per zone and hour: visits (a device's sightings with no gap longer than sessionGap, cut at hour boundaries) by duration; corrections are rows with a higher revision"
            }
            OutputTable::SitePresence => {
                "Visitors per tourist site and hour, after TourismPresenceObserved (hourly_sum), with AR-trail check-ins"
            }
            OutputTable::FillAlerts => {
                "Bin alerts opening and clearing (fill, fire, status, silent), with proof of collection"
            }
            OutputTable::VineIndicators => {
                "Vineyard indicators per weather station and local day (Europe/Paris): GDD, Winkler, Huglin, downy mildew 3-10, Gubler-Thomas, oospore degree days; also the season state a restart resumes from"
            }
            OutputTable::BinForecast => {
                "Per bin reading: fill rate since the last emptying and when the bin reaches its threshold (the basis of the bins-to-collect list)"
            }
            OutputTable::LateEvents => {
                "Events received too late for their windows or day (reason: beyond_correction_horizon, day_closed; state: pending, folded, not_foldable), one row per event and state change; vallee lake fold-late folds the pending ones into their windows"
            }
            OutputTable::VineAlerts => {
                "Vineyard alerts per parcel: frost (air temperature at the covering station at or below the critical value on a falling trend) and the risk-level changes of downy and powdery mildew (riskLevel)"
            }
        }
    }

    /// The input streams whose records feed this table (and whose progress it records).
    pub fn sources(self) -> &'static [Stream] {
        match self {
            OutputTable::Footfall | OutputTable::FootfallDwell => &[Stream::Beacons],
            OutputTable::SitePresence => &[Stream::Tourism],
            OutputTable::FillAlerts => &[Stream::WasteContainers, Stream::WasteVehicles],
            OutputTable::BinForecast => &[Stream::WasteContainers],
            OutputTable::VineIndicators | OutputTable::VineAlerts => &[Stream::Vineyards],
            OutputTable::LateEvents => &[Stream::Beacons, Stream::Tourism, Stream::Vineyards],
        }
    }

    /// What a row is about: a window, a day, an alert episode, a bin.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            OutputTable::Footfall => &["zone", "window", "dateObservedFrom"],
            OutputTable::FootfallDwell => &["zone", "hour"],
            OutputTable::SitePresence => &["site", "hour"],
            OutputTable::FillAlerts | OutputTable::VineAlerts => &["alertId"],
            OutputTable::VineIndicators => &["station", "day"],
            OutputTable::BinForecast => &["entityId"],
            OutputTable::LateEvents => &["_topic", "_partition", "_offset"],
        }
    }

    /// Which row of a key is its latest: the first in this order. Windows and days: the
    /// highest revision. An episode: its newest row, a clearing before an opening of the
    /// same time, and of two clearings (a level drop later proved a collection) the one
    /// decided last. A bin: its newest forecast.
    pub fn latest_order(self) -> &'static [Order] {
        match self {
            OutputTable::Footfall
            | OutputTable::FootfallDwell
            | OutputTable::SitePresence
            | OutputTable::VineIndicators
            | OutputTable::LateEvents => BY_REVISION,
            OutputTable::FillAlerts | OutputTable::VineAlerts => &[
                Order::Desc("dateObserved"),
                Order::Asc("state"),
                Order::Desc("_computed_at"),
            ],
            OutputTable::BinForecast => &[Order::Desc("dateObserved")],
        }
    }

    /// Looks a table up by its folder name.
    pub fn from_name(name: &str) -> Option<OutputTable> {
        OutputTable::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for OutputTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl LakeTable for OutputTable {
    fn name(&self) -> &'static str {
        OutputTable::name(*self)
    }
    fn schema(&self) -> SchemaRef {
        OutputTable::schema(*self)
    }
    fn partition_columns(&self) -> &'static [&'static str] {
        OutputTable::partition_columns(*self)
    }
    fn description(&self) -> &'static str {
        OutputTable::description(*self)
    }
    fn sources(&self) -> &'static [Stream] {
        OutputTable::sources(*self)
    }
    fn keys(&self) -> &'static [&'static str] {
        OutputTable::keys(*self)
    }
    fn latest_order(&self) -> &'static [Order] {
        OutputTable::latest_order(*self)
    }
}
