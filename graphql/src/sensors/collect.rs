//! Bins to collect: the list a crew plans its next rounds from.
//!
//! A bin is on it, with every reason that holds, when its fire alert is open, when its fill
//! alert is open (the stage's decision, with the commune's threshold and hysteresis), or
//! when its current forecast reaches its threshold before the horizon. A bin emptied since
//! is not: the stage clears its fill alert on the drop itself, and a forecast made before an
//! emptying is not current (the bin's latest reading fell more than
//! [`EMPTYING_DROP`] below it; the stage writes the next one after two new readings).
//!
//! The bin's kinds come from its latest reading: a bin holding several kinds matches any.
//! A bin a citizen reported overflowing (an open report tied to it) is on the list too,
//! after full bins and before forecasts.
//!
//! The same readings tell where a bin stands (a waste report is tied to the nearest within
//! 30 m) and when it was emptied (its level fell more than [`EMPTYING_DROP`] from one
//! reading to the next), which closes the reports tied to it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use vallee_lake::Latest;
use vallee_schemas::geo::GeoPoint;
use vallee_schemas::tables::forecast::EMPTYING_DROP;
use vallee_schemas::tables::{AlertKind, AlertRow, ForecastRow, OutputTable};

use super::{BinRow, SensorReader, latest_rows, lit};
use crate::Result;

/// Why a bin is on the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CollectReason {
    /// Its fire alert is open: first on the list.
    FireAlert,
    /// Its fill alert is open: full now.
    FillAlert,
    /// A citizen reported it overflowing (an open report tied to it).
    CitizenReport,
    /// Its current forecast reaches its threshold before the horizon.
    Forecast,
}

/// A bin to collect: its latest reading, its current forecast if any, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ToCollect {
    pub bin: BinRow,
    pub forecast: Option<ForecastRow>,
    /// Sorted, never empty.
    pub reasons: Vec<CollectReason>,
}

impl ToCollect {
    /// The kinds of waste of the bin.
    pub fn waste_kinds(&self) -> Vec<String> {
        kinds(&self.bin).map(str::to_string).collect()
    }
}

fn kinds(bin: &BinRow) -> impl Iterator<Item = &str> {
    bin.waste_kind
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .filter(|k| !k.is_empty())
}

impl SensorReader {
    /// Every bin to collect before `before`, in a commune and of a kind if asked: fire
    /// first, then full bins, then the bins `reported` overflowing, then by the time they
    /// will be full.
    pub async fn bins_to_collect(
        &self,
        before: DateTime<Utc>,
        commune: Option<&str>,
        waste_kind: Option<&str>,
        reported: &BTreeSet<String>,
    ) -> Result<Vec<ToCollect>> {
        let latest = match commune {
            Some(c) => format!("\"communeCode\" = {}", lit(c)),
            None => "TRUE".to_string(),
        };
        let bins = self.latest_bins(None, &latest).await?;
        let open = "state = 'open' AND kind IN ('fill', 'fire')";
        let alerts: Vec<AlertRow> = self
            .rows(&latest_rows(
                Latest::of(OutputTable::FillAlerts),
                open,
                "\"entityId\"",
            ))
            .await?;
        let forecasts: Vec<ForecastRow> = self
            .rows(&latest_rows(
                Latest::of(OutputTable::BinForecast),
                "TRUE",
                "\"entityId\"",
            ))
            .await?;
        Ok(to_collect(
            bins, &alerts, forecasts, reported, before, waste_kind,
        ))
    }

    /// The bin nearest to `(lat, long)` within `radius_m`, by its latest reading: its id
    /// and distance in metres.
    pub async fn nearest_bin(
        &self,
        lat: f64,
        long: f64,
        radius_m: f64,
    ) -> Result<Option<(String, f64)>> {
        let here = GeoPoint { lat, lon: long };
        let bins = self.latest_bins(None, "TRUE").await?;
        Ok(bins
            .into_iter()
            .map(|b| {
                let d = here.distance_m(&GeoPoint {
                    lat: b.latitude,
                    lon: b.longitude,
                });
                (b.id, d)
            })
            .filter(|(_, d)| *d <= radius_m)
            .min_by(|a, b| a.1.total_cmp(&b.1)))
    }

    /// When `bin` was first emptied at or after `since`: the first reading from then whose
    /// level fell more than [`EMPTYING_DROP`] below the reading before it.
    pub async fn emptied_since(
        &self,
        bin: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let readings = self
            .batches(&format!(
                "SELECT \"dateObserved\", \"fillingLevel\" FROM waste_containers
                 WHERE id = {} AND \"dateObserved\" >= {} ORDER BY \"dateObserved\", _offset",
                lit(bin),
                super::ts(since - chrono::Duration::days(1)),
            ))
            .await?;
        let mut levels = Vec::new();
        for batch in &readings {
            let c = vallee_schemas::tables::columns::Columns::of_batch("waste_containers", batch);
            let mut times = c
                .timestamps("dateObserved")
                .map_err(|e| super::lake_error(e.into()))?;
            let mut fills = c
                .floats("fillingLevel")
                .map_err(|e| super::lake_error(e.into()))?;
            levels.extend((0..batch.num_rows()).map(|i| (times.take(i), fills.take(i))));
        }
        Ok(emptied(&levels, since))
    }
}

/// The first time at or after `since` a level fell more than [`EMPTYING_DROP`] from the
/// reading before, in `(time, level)` readings sorted by time.
pub(crate) fn emptied(
    readings: &[(Option<DateTime<Utc>>, Option<f64>)],
    since: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let known: Vec<(DateTime<Utc>, f64)> = readings
        .iter()
        .filter_map(|(t, l)| Some(((*t)?, (*l)?)))
        .collect();
    known
        .windows(2)
        .find(|w| w[1].0 >= since && w[0].1 - w[1].1 > EMPTYING_DROP)
        .map(|w| w[1].0)
}

/// The list, from the latest reading of each bin, the open alerts and the latest forecast
/// of each bin.
pub(crate) fn to_collect(
    bins: Vec<BinRow>,
    open_alerts: &[AlertRow],
    forecasts: Vec<ForecastRow>,
    reported: &BTreeSet<String>,
    before: DateTime<Utc>,
    waste_kind: Option<&str>,
) -> Vec<ToCollect> {
    let mut alerts: BTreeMap<&str, BTreeSet<CollectReason>> = BTreeMap::new();
    for a in open_alerts {
        let reason = match AlertKind::parse(a.kind) {
            AlertKind::Fire => CollectReason::FireAlert,
            AlertKind::Fill => CollectReason::FillAlert,
            _ => continue,
        };
        alerts.entry(&a.entity_id).or_default().insert(reason);
    }
    let mut forecasts: BTreeMap<String, ForecastRow> = forecasts
        .into_iter()
        .map(|f| (f.entity_id.clone(), f))
        .collect();
    let mut list: Vec<ToCollect> = bins
        .into_iter()
        .filter(|bin| waste_kind.is_none_or(|k| kinds(bin).any(|b| b == k)))
        .filter_map(|bin| {
            let forecast = forecasts
                .remove(&bin.id)
                .filter(|f| bin.filling_level >= f.filling_level - EMPTYING_DROP);
            let mut reasons = alerts.get(bin.id.as_str()).cloned().unwrap_or_default();
            if reported.contains(&bin.id) {
                reasons.insert(CollectReason::CitizenReport);
            }
            if forecast.as_ref().is_some_and(|f| {
                f.filling_level >= f.threshold || f.full_at.is_some_and(|t| t <= before)
            }) {
                reasons.insert(CollectReason::Forecast);
            }
            (!reasons.is_empty()).then(|| ToCollect {
                bin,
                forecast,
                reasons: reasons.into_iter().collect(),
            })
        })
        .collect();
    let full_at = |c: &ToCollect| c.forecast.as_ref().and_then(|f| f.full_at);
    list.sort_by(|a, b| {
        (a.reasons[0], full_at(a), &a.bin.id).cmp(&(b.reasons[0], full_at(b), &b.bin.id))
    });
    list
}

#[cfg(test)]
mod tests {
    use vallee_schemas::tables::{AlertState, Lineage};

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        format!("2026-11-28T{s}:00Z").parse().unwrap()
    }

    fn bin(id: &str, level: f64, kinds: &str) -> BinRow {
        BinRow {
            id: id.into(),
            commune_code: Some("34114".into()),
            filling_level: level,
            threshold: None,
            temperature: None,
            status: None,
            waste_kind: Some(kinds.into()),
            date_observed: at("10:00"),
            latitude: 43.65,
            longitude: 3.55,
        }
    }

    fn forecast(id: &str, level: f64, full_at: Option<&str>) -> ForecastRow {
        ForecastRow {
            entity_id: id.into(),
            date_observed: at("09:00"),
            filling_level: level,
            threshold: 0.8,
            rate_per_hour: 0.05,
            full_at: full_at.map(at),
            readings: 3,
            stored_waste_kind: None,
            commune_code: Some("34114".into()),
            day: 20_785,
            lineage: Lineage::default(),
            computed_at: at("09:00"),
        }
    }

    fn alert(id: &str, kind: AlertKind) -> AlertRow {
        AlertRow {
            alert_id: format!("{id}:{}:1", kind.as_str()),
            kind: kind.as_str(),
            entity_id: id.into(),
            ..super::super::tests::alert("", AlertState::Open, "2026-11-28T09:00:00Z")
        }
    }

    fn ids(list: &[ToCollect]) -> Vec<(&str, Vec<CollectReason>)> {
        list.iter()
            .map(|c| (c.bin.id.as_str(), c.reasons.clone()))
            .collect()
    }

    #[test]
    fn every_bin_to_collect_is_listed_with_its_reasons_and_no_emptied_one() {
        use CollectReason::*;
        let bins = vec![
            bin("full", 0.9, "refuse"),
            bin("burning", 0.3, "refuse"),
            bin("soon", 0.7, "paper,glass"),
            bin("later", 0.5, "refuse"),
            bin("emptied", 0.05, "refuse"),
            bin("one-reading", 0.85, "organic"),
            bin("quiet", 0.2, "refuse"),
        ];
        let alerts = [
            alert("full", AlertKind::Fill),
            alert("burning", AlertKind::Fire),
            alert("one-reading", AlertKind::Fill),
            // Not a reason to collect.
            alert("quiet", AlertKind::Silent),
        ];
        let forecasts = vec![
            forecast("full", 0.88, None),
            forecast("soon", 0.7, Some("14:00")),
            forecast("later", 0.5, Some("23:00")),
            // Made before the bin was emptied: full then, not now.
            forecast("emptied", 0.95, None),
        ];
        // A citizen reported a bin overflowing that its forecast has full later.
        let reported: BTreeSet<String> = ["later".to_string()].into();
        let none = BTreeSet::new();
        let list = to_collect(
            bins.clone(),
            &alerts,
            forecasts.clone(),
            &reported,
            at("18:00"),
            None,
        );
        assert_eq!(
            ids(&list),
            vec![
                ("burning", vec![FireAlert]),
                ("full", vec![FillAlert, Forecast]),
                ("one-reading", vec![FillAlert]),
                ("later", vec![CitizenReport]),
                ("soon", vec![Forecast]),
            ]
        );
        assert_eq!(list[4].waste_kinds(), ["paper", "glass"]);
        assert_eq!(
            list[4].forecast.as_ref().and_then(|f| f.full_at),
            Some(at("14:00"))
        );
        // A later horizon takes the later bin; a bin of several kinds matches each.
        let later = to_collect(
            bins.clone(),
            &alerts,
            forecasts.clone(),
            &none,
            at("23:30"),
            None,
        );
        assert!(ids(&later).contains(&("later", vec![Forecast])));
        for kind in ["paper", "glass"] {
            let list = to_collect(
                bins.clone(),
                &alerts,
                forecasts.clone(),
                &none,
                at("18:00"),
                Some(kind),
            );
            assert_eq!(ids(&list), vec![("soon", vec![Forecast])], "{kind}");
        }
        let organic = to_collect(
            bins,
            &alerts,
            forecasts,
            &none,
            at("18:00"),
            Some("organic"),
        );
        assert_eq!(ids(&organic), vec![("one-reading", vec![FillAlert])]);
    }

    #[test]
    fn a_bin_is_emptied_when_its_level_falls_more_than_a_sixth_from_one_reading_to_the_next() {
        let readings = |levels: &[(&str, f64)]| -> Vec<(Option<DateTime<Utc>>, Option<f64>)> {
            levels
                .iter()
                .map(|(t, l)| (Some(at(t)), Some(*l)))
                .collect()
        };
        let day = readings(&[
            ("08:00", 0.9),
            ("09:00", 0.1),
            ("10:00", 0.5),
            ("11:00", 0.4),
            ("12:00", 0.95),
            ("13:00", 0.05),
        ]);
        // The 09:00 emptying came before the report; 11:00 is noise; 13:00 counts.
        assert_eq!(emptied(&day, at("09:30")), Some(at("13:00")));
        assert_eq!(emptied(&day, at("09:00")), Some(at("09:00")));
        assert_eq!(emptied(&day, at("13:30")), None);
        // A first reading after the report has nothing to fall from.
        assert_eq!(emptied(&readings(&[("14:00", 0.05)]), at("13:30")), None);
    }
}
