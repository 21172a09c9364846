//! A station's local day closing: its indicators, its season, its mildew risk levels.

use chrono::{DateTime, NaiveDate, Utc};
use vallee_schemas::tables::{AlertKind, AlertRow, AlertState, ClearReason, VineRow};
use vallee_schemas::time::utc_day;

use super::indicators::{RiskLevel, Season, summarize_day};
use super::{VALLEY_LATITUDE, Vine};
use crate::lineage::Lineage;

impl Vine {
    /// Closes the local days the vineyards' watermark has passed, in order per station.
    pub(super) fn close_days(&mut self, watermark: DateTime<Utc>) {
        let closed: Vec<(String, NaiveDate)> = self
            .days
            .keys()
            .filter(|(_, day)| local_day_end(*day) <= watermark)
            .cloned()
            .collect();
        for key in closed {
            let (mut readings, lineage) = self.days.remove(&key).unwrap_or_default();
            readings.sort_by_key(|r| r.0);
            let (station, day) = key;
            let Some(summary) = summarize_day(day, &readings) else {
                continue;
            };
            if !self.emitted.days.insert((station.clone(), day)) {
                continue; // a replayed day already in the table (its season state was restored)
            }
            let latitude = self
                .stations
                .get(&station)
                .map_or(VALLEY_LATITUDE, |s| s.latitude);
            let season = self
                .seasons
                .entry(station.clone())
                .or_insert_with(|| Season::new(latitude, chrono::Datelike::year(&day)));
            let i = season.add_day(&summary);
            let gt_index = season.gt_index;
            let risks = [
                (
                    AlertKind::DownyMildew,
                    RiskLevel::downy(i.downy_mildew_3_10),
                ),
                (AlertKind::PowderyMildew, RiskLevel::powdery(gt_index)),
            ];
            self.mildew_risks(&station, day, &risks, &lineage);
            self.pending.days.push(VineRow {
                station: station.clone(),
                day,
                latitude,
                tmin: summary.tmin,
                tmax: summary.tmax,
                tmean: summary.tmean,
                rain_mm: summary.rain_mm,
                gdd: i.gdd,
                winkler: i.winkler,
                huglin: i.huglin,
                oospore: i.oospore_degree_days,
                downy: i.downy_mildew_3_10,
                gubler_thomas: i.gubler_thomas as i32,
                gt_started: gt_index.is_some(),
                gt_streak: self.seasons[&station].gt_streak as i32,
                revision: 0,
                lineage,
                computed_at: Utc::now(),
            });
        }
    }

    /// A station's day closed with these mildew risk levels: a change of level for a parcel
    /// is a `vine_alerts` row (`open` with the new level, or `cleared` back to low).
    fn mildew_risks(
        &mut self,
        station: &str,
        day: NaiveDate,
        risks: &[(AlertKind, RiskLevel)],
        lineage: &Lineage,
    ) {
        let Some(info) = self.stations.get(station) else {
            return;
        };
        let at = local_day_end(day);
        let commune_code = info.commune_code.clone();
        for entity in info.alert_entities(station) {
            for (kind, level) in risks {
                let key = (entity.clone(), *kind);
                let (before, episode) = self
                    .mildew
                    .get(&key)
                    .cloned()
                    .unwrap_or((RiskLevel::Low, None));
                if before == *level {
                    continue;
                }
                let (alert_id, state) = match (&episode, level) {
                    (Some(id), RiskLevel::Low) => (id.clone(), AlertState::Cleared),
                    (None, RiskLevel::Low) => {
                        self.mildew.insert(key, (*level, None));
                        continue;
                    }
                    (Some(id), _) => (id.clone(), AlertState::Open),
                    (None, _) => (
                        format!("{entity}:{}:{day}", kind.as_str()),
                        AlertState::Open,
                    ),
                };
                let open = state == AlertState::Open;
                self.mildew
                    .insert(key, (*level, open.then(|| alert_id.clone())));
                self.push_alert(AlertRow {
                    alert_id,
                    kind: kind.as_str(),
                    entity_id: entity.clone(),
                    state: state.as_str(),
                    date_observed: at,
                    clear_reason: (!open).then_some(ClearReason::RiskLow.as_str()),
                    filling_level: None,
                    commune_code: commune_code.clone(),
                    risk_level: Some(level.as_str()),
                    day: utc_day(&at),
                    lineage: lineage.clone(),
                    computed_at: Utc::now(),
                });
            }
        }
    }
}

/// The instant a local (Europe/Paris) day ends.
pub(super) fn local_day_end(day: NaiveDate) -> DateTime<Utc> {
    use chrono::TimeZone;
    let next = day
        .succ_opt()
        .unwrap_or(day)
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists");
    chrono_tz::Europe::Paris
        .from_local_datetime(&next)
        .earliest()
        .map_or_else(|| next.and_utc(), |t| t.with_timezone(&Utc))
}
