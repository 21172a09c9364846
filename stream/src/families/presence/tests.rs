use chrono::DateTime;
use vallee_lake::LakeOptions;
use vallee_schemas::tables::{Lineage, TableRow};

use super::*;
use crate::families::testing::{Harness, decoded, plans_runtime};

fn visit(time: &str, source: &str, count: i64) -> Decoded {
    decoded(
        Stream::Tourism,
        &format!(
            r#"{{"id":"v","type":"SiteVisit","dateObserved":"2026-11-28T{time}Z","site":"abbaye","locationCode":"34261","source":"{source}","count":{count},"arPoint":"cloitre"}}"#
        ),
    )
}

#[test]
fn an_hour_closes_with_its_visitors_and_check_ins_and_a_replay_adds_nothing() {
    let runtime = plans_runtime();
    let options = StreamOptions::default();
    let run = |emitted: Emitted| {
        let mut family = Presence::new(&options, runtime.handle().clone());
        family.emitted = emitted;
        let mut h = Harness::new(&options, family);
        let visits = [
            ("10:05:00", "counter", 3),
            ("10:20:00", "ar-trail", 1),
            ("10:40:00", "counter", 2),
            ("11:30:00", "counter", 4),
        ];
        for (i, (time, source, count)) in visits.into_iter().enumerate() {
            h.event(
                Stream::Tourism,
                "t",
                0,
                i as i64,
                &visit(time, source, count),
            );
        }
        h.tick();
        h.family
    };
    let first = run(Emitted::default());
    // Watermark 11:25 (5 minutes of lateness): the 10:00 hour closed.
    let rows: Vec<_> = first
        .pending
        .iter()
        .map(|r| {
            (
                r.hour.to_rfc3339(),
                r.visitor_count,
                r.ar_checkins,
                r.ar_checkins_by_point.clone(),
                r.location_code.as_str(),
                r.revision,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![(
            "2026-11-28T10:00:00+00:00".to_string(),
            5,
            1,
            vec![PointCheckins {
                point: "cloitre".into(),
                checkins: 1
            }],
            "34261",
            0
        )]
    );
    assert!(run(first.emitted.clone()).pending.is_empty(), "a replay");
}

#[tokio::test]
async fn a_restart_reads_back_the_latest_revision_of_each_site_hour() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open_bare(LakeOptions {
        root: dir.path().to_path_buf(),
        ..Default::default()
    })
    .unwrap();
    let hour: DateTime<Utc> = "2026-11-28T10:00:00Z".parse().unwrap();
    let row = PresenceRow {
        site: "abbaye".into(),
        location_code: "34261".into(),
        hour,
        to: hour + Duration::hours(1),
        visitor_count: 5,
        ar_checkins: 1,
        ar_checkins_by_point: vec![PointCheckins {
            point: "cloitre".into(),
            checkins: 1,
        }],
        aggregation_type: "hourly_sum",
        revision: 0,
        is_final: true,
        day: 20_785,
        lineage: Lineage::default(),
        computed_at: hour,
    };
    let correction = PresenceRow {
        visitor_count: 6,
        revision: 1,
        ..row.clone()
    };
    let batch = PresenceRow::to_batch(OutputTable::SitePresence, &[row, correction])
        .unwrap()
        .unwrap();
    lake.append(OutputTable::SitePresence, "test", vec![batch], &[])
        .await
        .unwrap();
    let mut family = Presence::new(&StreamOptions::default(), Handle::current());
    family.restore(&lake).await.unwrap();
    let digest = value::points_digest(&[("cloitre".to_string(), 1)]);
    assert_eq!(
        family
            .emitted
            .get(&("abbaye".to_string(), hour.timestamp_micros())),
        Some(&(1, (6, 1, digest)))
    );
}
