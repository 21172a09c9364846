//! `fill_alerts` and `vine_alerts` (one shape): an alert episode opening or clearing, and
//! the vocabularies its columns take (kinds, states, clear reasons, mildew risk levels).
//!
//! Rows hold the vocabularies as the `&'static str` the stage writes; reading a row back
//! maps each stored string onto the same vocabulary, so a row read is equal to the row
//! written.

use std::sync::{Arc, LazyLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::columns::Columns;
use super::lineage::Lineage;
use super::{OutputTable, TableRow};
use crate::Result;
use crate::events::timestamp;
use crate::time::micros;

pub(super) fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("alertId", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("entityId", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
            Field::new("dateObserved", timestamp(), false),
            Field::new("clearReason", DataType::Utf8, true),
            Field::new("fillingLevel", DataType::Float64, true),
            Field::new("communeCode", DataType::Utf8, true),
            Field::new("riskLevel", DataType::Utf8, true),
            Field::new("day", DataType::Date32, false),
            Lineage::field(),
            Field::new("_computed_at", timestamp(), false),
        ]))
    });
    SCHEMA.clone()
}

/// What an alert is about (the `kind` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKind {
    /// A bin at or above its fullness threshold.
    Fill,
    /// A bin at 60 °C or more, or reported burning.
    Fire,
    /// A bin vandalized, dropped or moved.
    Status,
    /// A bin silent for 24 h of event time.
    Silent,
    /// Frost risk on a vineyard parcel.
    Frost,
    /// Downy-mildew risk of a parcel changed (3-10 rule).
    DownyMildew,
    /// Powdery-mildew risk of a parcel changed (Gubler-Thomas index).
    PowderyMildew,
    /// A kind this version does not know (a newer stage wrote it); never written.
    Other,
}

impl AlertKind {
    /// Every kind the stage writes.
    pub const ALL: [AlertKind; 7] = [
        AlertKind::Fill,
        AlertKind::Fire,
        AlertKind::Status,
        AlertKind::Silent,
        AlertKind::Frost,
        AlertKind::DownyMildew,
        AlertKind::PowderyMildew,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            AlertKind::Fill => "fill",
            AlertKind::Fire => "fire",
            AlertKind::Status => "status",
            AlertKind::Silent => "silent",
            AlertKind::Frost => "frost",
            AlertKind::DownyMildew => "downy_mildew",
            AlertKind::PowderyMildew => "powdery_mildew",
            AlertKind::Other => "other",
        }
    }

    /// The kind a stored string names ([`AlertKind::Other`] when none).
    pub fn parse(s: &str) -> AlertKind {
        AlertKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .unwrap_or(AlertKind::Other)
    }
}

/// Whether an alert episode is ongoing (the `state` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertState {
    Open,
    Cleared,
}

impl AlertState {
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Cleared => "cleared",
        }
    }

    /// `open`, and anything else is cleared (as every reader has always taken it).
    pub fn parse(s: &str) -> AlertState {
        if s == "open" {
            AlertState::Open
        } else {
            AlertState::Cleared
        }
    }
}

/// Why an alert cleared (the `clearReason` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClearReason {
    /// The bin's level fell below its threshold, no truck seen.
    LevelDrop,
    /// The level fell with a collection truck by the bin (proof of collection).
    Collection,
    /// The bin reports a normal status again.
    StatusOk,
    /// A silent bin reports again.
    ReportingAgain,
    /// Frost: the temperature rose 1 °C above the critical value.
    TemperatureRise,
    /// Mildew: the risk is back to low.
    RiskLow,
}

impl ClearReason {
    pub const ALL: [ClearReason; 6] = [
        ClearReason::LevelDrop,
        ClearReason::Collection,
        ClearReason::StatusOk,
        ClearReason::ReportingAgain,
        ClearReason::TemperatureRise,
        ClearReason::RiskLow,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ClearReason::LevelDrop => "level_drop",
            ClearReason::Collection => "collection",
            ClearReason::StatusOk => "status_ok",
            ClearReason::ReportingAgain => "reporting_again",
            ClearReason::TemperatureRise => "temperature_rise",
            ClearReason::RiskLow => "risk_low",
        }
    }

    pub fn parse(s: &str) -> Option<ClearReason> {
        ClearReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Risk level of a mildew on a day (the `riskLevel` column of mildew alerts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RiskLevel {
    Low,
    Moderate,
    High,
}

impl RiskLevel {
    pub const fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Moderate => "moderate",
            RiskLevel::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "low" => Some(RiskLevel::Low),
            "moderate" => Some(RiskLevel::Moderate),
            "high" => Some(RiskLevel::High),
            _ => None,
        }
    }

    /// Downy mildew: the 3-10 rule met is a high risk of primary infection, otherwise low.
    pub fn downy(rule_3_10: bool) -> Self {
        if rule_3_10 {
            RiskLevel::High
        } else {
            RiskLevel::Low
        }
    }

    /// Powdery mildew from the Gubler-Thomas index (UC Davis): 0-30 low, 40-50 moderate
    /// (spray intervals may be stretched), 60-100 high (shortest intervals). No index yet
    /// (the season's three qualifying days have not happened) is low.
    pub fn powdery(gubler_thomas: Option<u8>) -> Self {
        match gubler_thomas {
            Some(i) if i >= 60 => RiskLevel::High,
            Some(i) if i >= 40 => RiskLevel::Moderate,
            _ => RiskLevel::Low,
        }
    }
}

/// A row of `fill_alerts` (and of `vine_alerts`, same shape).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRow {
    /// Stable per episode: consumers dedupe on it.
    #[serde(rename = "alertId")]
    pub alert_id: String,
    /// An [`AlertKind`], as a string.
    pub kind: &'static str,
    /// The bin or parcel concerned.
    #[serde(rename = "entityId")]
    pub entity_id: String,
    /// An [`AlertState`], as a string.
    pub state: &'static str,
    #[serde(rename = "dateObserved", with = "micros")]
    pub date_observed: DateTime<Utc>,
    /// A [`ClearReason`], as a string.
    #[serde(rename = "clearReason")]
    pub clear_reason: Option<&'static str>,
    #[serde(rename = "fillingLevel")]
    pub filling_level: Option<f64>,
    #[serde(rename = "communeCode")]
    pub commune_code: Option<String>,
    /// Mildew alerts: the [`RiskLevel`] the row moves to (`moderate`, `high`; `low` clears).
    #[serde(rename = "riskLevel")]
    pub risk_level: Option<&'static str>,
    pub day: i32,
    pub lineage: Lineage,
    #[serde(rename = "_computed_at", with = "micros")]
    pub computed_at: DateTime<Utc>,
}

impl TableRow for AlertRow {
    const TABLES: &'static [OutputTable] = &[OutputTable::FillAlerts, OutputTable::VineAlerts];

    /// A kind this version does not know reads as `other`, a state other than `open` as
    /// `cleared`, an unknown clear reason or risk level as none.
    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let c = Columns::of_batch("fill_alerts/vine_alerts", batch);
        let (mut id, mut kind, mut entity) = (
            c.strings("alertId")?,
            c.strings("kind")?,
            c.strings("entityId")?,
        );
        let (mut state, mut at) = (c.strings("state")?, c.timestamps("dateObserved")?);
        let (mut reason, mut level) = (c.strings("clearReason")?, c.floats("fillingLevel")?);
        let (mut commune, mut risk) = (c.strings("communeCode")?, c.strings("riskLevel")?);
        let (mut day, mut computed_at) = (c.days("day")?, c.timestamps("_computed_at")?);
        let lineage = Lineage::read(&c)?;
        lineage
            .into_iter()
            .enumerate()
            .map(|(i, lineage)| {
                Ok(AlertRow {
                    alert_id: id.need(i)?,
                    kind: AlertKind::parse(&kind.need(i)?).as_str(),
                    entity_id: entity.need(i)?,
                    state: AlertState::parse(&state.need(i)?).as_str(),
                    date_observed: at.need(i)?,
                    clear_reason: reason
                        .take(i)
                        .and_then(|r| ClearReason::parse(&r))
                        .map(ClearReason::as_str),
                    filling_level: level.take(i),
                    commune_code: commune.take(i),
                    risk_level: risk
                        .take(i)
                        .and_then(|r| RiskLevel::parse(&r))
                        .map(RiskLevel::as_str),
                    day: day.need(i)?,
                    lineage,
                    computed_at: computed_at.need(i)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mildew_risk_levels_follow_the_rules_thresholds() {
        assert_eq!(RiskLevel::downy(true), RiskLevel::High);
        assert_eq!(RiskLevel::downy(false), RiskLevel::Low);
        let levels: Vec<&str> = [
            None,
            Some(0),
            Some(30),
            Some(40),
            Some(50),
            Some(60),
            Some(100),
        ]
        .into_iter()
        .map(|i| RiskLevel::powdery(i).as_str())
        .collect();
        assert_eq!(
            levels,
            ["low", "low", "low", "moderate", "moderate", "high", "high"]
        );
    }

    #[test]
    fn vocabularies_read_back_what_they_write() {
        for k in AlertKind::ALL {
            assert_eq!(AlertKind::parse(k.as_str()), k);
        }
        assert_eq!(AlertKind::parse("hail"), AlertKind::Other);
        for r in ClearReason::ALL {
            assert_eq!(ClearReason::parse(r.as_str()), Some(r));
        }
        for s in [AlertState::Open, AlertState::Cleared] {
            assert_eq!(AlertState::parse(s.as_str()), s);
        }
        for l in [RiskLevel::Low, RiskLevel::Moderate, RiskLevel::High] {
            assert_eq!(RiskLevel::parse(l.as_str()), Some(l));
        }
    }
}
