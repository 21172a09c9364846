//! What `vine_indicators` and `vine_alerts` already hold, and the state a restart resumes
//! from: each station's season (its accumulators ride on its last stored day: a season
//! outlives the topics' retention, so it is never rebuilt from Kafka) and each parcel's
//! mildew risk levels. Every row counts here (an episode's levels, a season's days), so
//! the tables are read whole, without their lineage.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use vallee_lake::Lake;
use vallee_schemas::tables::{AlertKind, AlertRow, AlertState, VineRow};

use super::indicators::{RiskLevel, Season};
use super::{Emitted, MildewState};
use crate::Result;
use crate::families::without_lineage;

/// The alert kinds of `vine_alerts` that follow a risk level.
const MILDEW_KINDS: [AlertKind; 2] = [AlertKind::DownyMildew, AlertKind::PowderyMildew];

/// What the tables hold and the state a restart resumes from.
pub(super) struct Restored {
    pub emitted: Emitted,
    pub seasons: BTreeMap<String, Season>,
    pub mildew: MildewState,
}

pub(super) async fn restored(lake: &Lake) -> Result<Restored> {
    let mut emitted = Emitted::default();
    let mildew = vine_alerts(lake, &mut emitted).await?;
    let seasons = seasons(lake, &mut emitted).await?;
    Ok(Restored {
        emitted,
        seasons,
        mildew,
    })
}

/// Every `(alert, state, time)` written, and the mildew level of each (parcel, kind): its
/// latest row's.
async fn vine_alerts(lake: &Lake, emitted: &mut Emitted) -> Result<MildewState> {
    let mut latest: BTreeMap<(String, AlertKind), (i64, super::MildewLevel)> = BTreeMap::new();
    for r in lake
        .rows::<AlertRow>(&without_lineage("vine_alerts"))
        .await?
    {
        let t = r.date_observed.timestamp_micros();
        let state = AlertState::parse(r.state);
        let open = state == AlertState::Open;
        emitted.alerts.insert((r.alert_id.clone(), state, t));
        let kind = AlertKind::parse(r.kind);
        if !MILDEW_KINDS.contains(&kind) {
            continue;
        }
        let state = match r.risk_level.and_then(RiskLevel::parse) {
            Some(l) if open => (l, Some(r.alert_id)),
            _ => (RiskLevel::Low, None),
        };
        let e = latest
            .entry((r.entity_id, kind))
            .or_insert((t, state.clone()));
        if t >= e.0 {
            *e = (t, state);
        }
    }
    Ok(latest.into_iter().map(|(k, (_, v))| (k, v)).collect())
}

/// Every (station, day) written, and each station's season resumed from its last stored
/// day, with the rain of its last two days.
async fn seasons(lake: &Lake, emitted: &mut Emitted) -> Result<BTreeMap<String, Season>> {
    let mut days: BTreeMap<String, Vec<VineRow>> = BTreeMap::new();
    for r in lake
        .rows::<VineRow>(&without_lineage("vine_indicators"))
        .await?
    {
        emitted.days.insert((r.station.clone(), r.day));
        days.entry(r.station.clone()).or_default().push(r);
    }
    Ok(days
        .into_iter()
        .filter_map(|(station, mut rows)| {
            rows.sort_by_key(|r| r.day);
            let last = rows.last()?;
            let recent: Vec<(NaiveDate, f64)> = rows
                .iter()
                .rev()
                .take(2)
                .map(|r| (r.day, r.rain_mm))
                .rev()
                .collect();
            let season = Season::restore(
                last.latitude,
                chrono::Datelike::year(&last.day),
                last.winkler,
                last.huglin,
                last.oospore,
                last.gt_streak as u32,
                last.gt_started.then_some(last.gubler_thomas as u8),
                &recent,
            );
            Some((station, season))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, Utc};
    use vallee_lake::LakeOptions;
    use vallee_schemas::tables::{AlertKind as Kind, Lineage, OutputTable, TableRow};

    use super::*;
    use crate::families::Family;
    use crate::families::vine::Vine;
    use crate::stage::StreamOptions;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    async fn write<R: TableRow>(lake: &Lake, table: OutputTable, rows: &[R]) {
        let batch = R::to_batch(table, rows).unwrap().unwrap();
        lake.append(table, "test", vec![batch], &[]).await.unwrap();
    }

    fn alert(id: &str, kind: Kind, state: AlertState, t: &str) -> AlertRow {
        AlertRow {
            alert_id: id.into(),
            kind: kind.as_str(),
            entity_id: id.split(':').next().unwrap().into(),
            state: state.as_str(),
            date_observed: at(t),
            clear_reason: None,
            filling_level: None,
            commune_code: None,
            risk_level: None,
            day: 20_785,
            lineage: Lineage::range(&Arc::from("t"), 0, 1, 2),
            computed_at: at(t),
        }
    }

    fn vine_day(day: u32, rain_mm: f64) -> VineRow {
        VineRow {
            station: "st-1".into(),
            day: NaiveDate::from_ymd_opt(2026, 6, day).unwrap(),
            latitude: 43.7,
            tmin: 12.0,
            tmax: 26.0,
            tmean: 19.0,
            rain_mm,
            gdd: 9.0,
            winkler: 300.0 + f64::from(day),
            huglin: 400.0,
            oospore: 500.0,
            downy: false,
            gubler_thomas: 80,
            gt_started: true,
            gt_streak: 3,
            revision: 0,
            lineage: Lineage::default(),
            computed_at: at("2026-06-30T00:00:00Z"),
        }
    }

    #[tokio::test]
    async fn a_restart_reads_back_what_the_stage_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open_bare(LakeOptions {
            root: dir.path().to_path_buf(),
            ..Default::default()
        })
        .unwrap();
        let open = AlertState::Open;
        let mut high = alert(
            "p1:downy:1",
            Kind::DownyMildew,
            open,
            "2026-06-10T22:00:00Z",
        );
        high.risk_level = Some(RiskLevel::High.as_str());
        write(&lake, OutputTable::VineAlerts, &[high]).await;
        write(
            &lake,
            OutputTable::VineIndicators,
            &[vine_day(12, 1.0), vine_day(10, 5.0), vine_day(11, 2.5)],
        )
        .await;

        let mut restored = Vine::new(&StreamOptions::default());
        restored.restore(&lake).await.unwrap();
        assert_eq!(
            restored
                .mildew
                .get(&("p1".to_string(), AlertKind::DownyMildew)),
            Some(&(RiskLevel::High, Some("p1:downy:1".to_string())))
        );
        assert_eq!(restored.emitted.days.len(), 3);
        let day = |d| NaiveDate::from_ymd_opt(2026, 6, d).unwrap();
        let expected = Season::restore(
            43.7,
            2026,
            312.0,
            400.0,
            500.0,
            3,
            Some(80),
            &[(day(11), 2.5), (day(12), 1.0)],
        );
        assert_eq!(restored.seasons.get("st-1"), Some(&expected));
    }
}
