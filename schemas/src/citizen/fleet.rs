//! The waste-collection fleet staff keep up to date: depots (where rounds leave from and
//! return to, and the hours and days crews work) and trucks (the kinds of waste each may
//! take, and how much). The round planner reads them; nothing here is personal.

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};

use crate::rejection::Rejection;

/// Most kinds of waste one truck takes.
pub const MAX_TRUCK_KINDS: usize = 8;

/// Largest truck body accepted, in litres of loose waste (a 26 t compactor takes about
/// 80 m³ of loose waste once compacted at 4:1).
pub const MAX_TRUCK_LITRES: u32 = 200_000;

/// A depot, whole: every version replaces the previous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DepotUpdated {
    pub depot_id: String,
    pub name: String,
    /// INSEE code of the commune it stands in (whose staff may change it).
    pub commune_code: String,
    pub lat: f64,
    pub long: f64,
    /// When crews leave and must be back, local time of the valley (`HH:MM`).
    pub shift_start: String,
    pub shift_end: String,
    /// The days rounds run, ISO numbering (1 = Monday … 7 = Sunday).
    pub working_days: Vec<u8>,
}

impl DepotUpdated {
    /// The shift as times of day; `None` when either is not `HH:MM`.
    pub fn shift(&self) -> Option<(NaiveTime, NaiveTime)> {
        let time = |t: &str| NaiveTime::parse_from_str(t, "%H:%M").ok();
        Some((time(&self.shift_start)?, time(&self.shift_end)?))
    }

    /// Refuses a depot the planner could not use.
    pub fn check(&self) -> Result<(), Rejection> {
        if self.name.trim().is_empty() {
            return Err(Rejection::schema("a depot needs a name"));
        }
        if !(-90.0..=90.0).contains(&self.lat) || !(-180.0..=180.0).contains(&self.long) {
            return Err(Rejection::range(format!(
                "lat/long = {}/{} is not a WGS 84 position",
                self.lat, self.long
            )));
        }
        match self.shift() {
            None => {
                return Err(Rejection::schema(
                    "shiftStart and shiftEnd are times of day written HH:MM",
                ));
            }
            Some((start, end)) if start >= end => {
                return Err(Rejection::range("shiftStart is not before shiftEnd"));
            }
            Some(_) => {}
        }
        let mut days = self.working_days.clone();
        days.sort_unstable();
        days.dedup();
        if days.is_empty()
            || days.len() != self.working_days.len()
            || days.iter().any(|d| !(1..=7).contains(d))
        {
            return Err(Rejection::range(
                "workingDays lists distinct days from 1 (Monday) to 7 (Sunday)",
            ));
        }
        Ok(())
    }
}

/// A truck, whole: every version replaces the previous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TruckUpdated {
    /// The id its positions carry on the vehicles' stream (`urn:ngsi-ld:Vehicle:…`), so
    /// planned rounds and driven ones can be compared.
    pub truck_id: String,
    pub name: String,
    /// The depot it leaves from.
    pub depot_id: String,
    /// The kinds of waste it takes (`refuse`, `paper`, …, as bins name them).
    pub waste_kinds: Vec<String>,
    /// How much loose waste it takes before going back to unload, in litres.
    pub capacity_litres: u32,
}

impl TruckUpdated {
    /// Refuses a truck the planner could not use.
    pub fn check(&self) -> Result<(), Rejection> {
        if self.name.trim().is_empty() || self.depot_id.trim().is_empty() {
            return Err(Rejection::schema("a truck needs a name and a depot"));
        }
        if self.waste_kinds.is_empty()
            || self.waste_kinds.len() > MAX_TRUCK_KINDS
            || self
                .waste_kinds
                .iter()
                .any(|k| k.trim().is_empty() || k.len() > 40)
        {
            return Err(Rejection::range(format!(
                "wasteKinds names 1 to {MAX_TRUCK_KINDS} kinds of 1 to 40 bytes"
            )));
        }
        if self.capacity_litres == 0 || self.capacity_litres > MAX_TRUCK_LITRES {
            return Err(Rejection::range(format!(
                "capacityLitres is between 1 and {MAX_TRUCK_LITRES}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depot() -> DepotUpdated {
        DepotUpdated {
            depot_id: "d".into(),
            name: "Déchetterie de Gignac".into(),
            commune_code: "34114".into(),
            lat: 43.65,
            long: 3.55,
            shift_start: "06:00".into(),
            shift_end: "13:00".into(),
            working_days: vec![1, 2, 3, 4, 5],
        }
    }

    #[test]
    fn a_depot_needs_a_shift_that_ends_after_it_starts_on_real_days() {
        assert!(depot().check().is_ok());
        for broken in [
            DepotUpdated {
                shift_start: "6h".into(),
                ..depot()
            },
            DepotUpdated {
                shift_end: "05:00".into(),
                ..depot()
            },
            DepotUpdated {
                working_days: vec![],
                ..depot()
            },
            DepotUpdated {
                working_days: vec![1, 1],
                ..depot()
            },
            DepotUpdated {
                working_days: vec![8],
                ..depot()
            },
            DepotUpdated {
                lat: f64::NAN,
                ..depot()
            },
        ] {
            assert!(broken.check().is_err(), "{broken:?}");
        }
    }

    #[test]
    fn a_truck_takes_some_waste_and_has_room_for_it() {
        let truck = TruckUpdated {
            truck_id: "urn:ngsi-ld:Vehicle:benne-01".into(),
            name: "Benne 1".into(),
            depot_id: "d".into(),
            waste_kinds: vec!["refuse".into()],
            capacity_litres: 60_000,
        };
        assert!(truck.check().is_ok());
        for broken in [
            TruckUpdated {
                waste_kinds: vec![],
                ..truck.clone()
            },
            TruckUpdated {
                capacity_litres: 0,
                ..truck.clone()
            },
            TruckUpdated {
                waste_kinds: vec![" ".into()],
                ..truck.clone()
            },
        ] {
            assert!(broken.check().is_err(), "{broken:?}");
        }
    }
}
