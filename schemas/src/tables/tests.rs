//! Every derived row written to Arrow reads back equal, from the batch as written and from
//! the batch as DataFusion returns it (strings as `Utf8View`); every table's keys and order
//! are columns of its schema.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::{DateTime, NaiveDate, Utc};

use super::*;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn lineage() -> Lineage {
    let topic: Arc<str> = Arc::from("vallee.beacons");
    let mut l = Lineage::range(&topic, 1, 10, 12);
    l.merge(&Lineage::range(&Arc::from("vallee.a"), 0, 3, 3));
    l
}

/// The batch with its top-level strings as `Utf8View`, as DataFusion 55 returns them.
fn as_views(batch: &RecordBatch) -> RecordBatch {
    let (fields, columns): (Vec<Field>, Vec<ArrayRef>) = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| match f.data_type() {
            DataType::Utf8 => (
                Field::new(f.name(), DataType::Utf8View, f.is_nullable()),
                arrow::compute::cast(c, &DataType::Utf8View).unwrap(),
            ),
            _ => (f.as_ref().clone(), c.clone()),
        })
        .unzip();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// Writes `rows` to `table`, reads them back (as written and as views) and compares.
fn round_trip<R: TableRow + std::fmt::Debug + PartialEq>(table: OutputTable, rows: Vec<R>) {
    let batch = R::to_batch(table, &rows).unwrap().unwrap();
    assert_eq!(batch.schema(), table.schema(), "{table}");
    assert_eq!(R::from_batch(&batch).unwrap(), rows, "{table}");
    assert_eq!(
        R::from_batch(&as_views(&batch)).unwrap(),
        rows,
        "{table} as views"
    );
    // Without the lineage column, rows read with an empty lineage.
    let without = batch.project(&indices_but(&batch, "lineage")).unwrap();
    let read = R::from_batch(&without).unwrap();
    assert_eq!(read.len(), rows.len(), "{table}");
    assert!(R::to_batch(table, &[]).unwrap().is_none());
}

fn indices_but(batch: &RecordBatch, column: &str) -> Vec<usize> {
    let schema = batch.schema();
    (0..schema.fields().len())
        .filter(|i| schema.field(*i).name() != column)
        .collect()
}

#[test]
fn footfall_and_dwell_rows_round_trip() {
    let row = FootfallRow {
        zone: "za".into(),
        window: "PT5M".into(),
        from: at("2026-11-28T10:00:00Z"),
        to: at("2026-11-28T10:05:00Z"),
        people_count: 7,
        approximate: true,
        congested: false,
        revision: 2,
        is_final: true,
        day: 20_785,
        lineage: lineage(),
        computed_at: at("2026-11-28T10:06:00.123456Z"),
    };
    let other = FootfallRow {
        lineage: Lineage::default(),
        ..row.clone()
    };
    round_trip(OutputTable::Footfall, vec![row, other]);
    round_trip(
        OutputTable::FootfallDwell,
        vec![DwellRow {
            zone: "za".into(),
            hour: at("2026-11-28T10:00:00Z"),
            to: at("2026-11-28T11:00:00Z"),
            session_gap: "PT10M".into(),
            visits: 4,
            under_5_min: 1,
            from_5_to_15_min: 1,
            from_15_to_30_min: 1,
            from_30_to_60_min: 1,
            mean_seconds: 812.5,
            median_minutes: 11,
            total_seconds: 3250,
            revision: 0,
            day: 20_785,
            lineage: lineage(),
            computed_at: at("2026-11-28T11:06:00Z"),
        }],
    );
}

#[test]
fn presence_rows_round_trip_with_their_points() {
    let row = PresenceRow {
        site: "gellone".into(),
        location_code: "34274".into(),
        hour: at("2026-11-28T10:00:00Z"),
        to: at("2026-11-28T11:00:00Z"),
        visitor_count: 40,
        ar_checkins: 5,
        ar_checkins_by_point: vec![
            PointCheckins {
                point: "p1".into(),
                checkins: 3,
            },
            PointCheckins {
                point: "p2".into(),
                checkins: 2,
            },
        ],
        aggregation_type: presence::HOURLY_SUM,
        revision: 1,
        is_final: false,
        day: 20_785,
        lineage: lineage(),
        computed_at: at("2026-11-28T11:00:01Z"),
    };
    let empty = PresenceRow {
        ar_checkins_by_point: Vec::new(),
        ..row.clone()
    };
    round_trip(OutputTable::SitePresence, vec![row, empty]);
}

#[test]
fn alert_rows_round_trip_with_their_vocabularies() {
    let open = AlertRow {
        alert_id: "bin-1:fill:1".into(),
        kind: AlertKind::Fill.as_str(),
        entity_id: "bin-1".into(),
        state: AlertState::Open.as_str(),
        date_observed: at("2026-11-28T10:00:00Z"),
        clear_reason: None,
        filling_level: Some(0.9),
        commune_code: Some("34114".into()),
        risk_level: None,
        day: 20_785,
        lineage: lineage(),
        computed_at: at("2026-11-28T10:00:01Z"),
    };
    let cleared = AlertRow {
        state: AlertState::Cleared.as_str(),
        clear_reason: Some(ClearReason::Collection.as_str()),
        filling_level: None,
        commune_code: None,
        ..open.clone()
    };
    round_trip(OutputTable::FillAlerts, vec![open, cleared]);
    let mildew = AlertRow {
        alert_id: "p1:downy_mildew:2026-05-10".into(),
        kind: AlertKind::DownyMildew.as_str(),
        entity_id: "p1".into(),
        state: AlertState::Open.as_str(),
        date_observed: at("2026-05-10T22:00:00Z"),
        clear_reason: None,
        filling_level: None,
        commune_code: None,
        risk_level: Some(RiskLevel::High.as_str()),
        day: 20_583,
        lineage: Lineage::default(),
        computed_at: at("2026-05-11T00:00:00Z"),
    };
    round_trip(OutputTable::VineAlerts, vec![mildew]);
}

#[test]
fn forecast_and_vine_rows_round_trip() {
    let forecast = ForecastRow {
        entity_id: "bin-1".into(),
        date_observed: at("2026-11-28T10:00:00Z"),
        filling_level: 0.5,
        threshold: 0.8,
        rate_per_hour: 0.01,
        full_at: Some(at("2026-11-29T16:00:00Z")),
        readings: 6,
        stored_waste_kind: Some("glass,paper".into()),
        commune_code: None,
        day: 20_785,
        lineage: lineage(),
        computed_at: at("2026-11-28T10:00:01Z"),
    };
    let not_filling = ForecastRow {
        full_at: None,
        stored_waste_kind: None,
        ..forecast.clone()
    };
    round_trip(OutputTable::BinForecast, vec![forecast, not_filling]);
    round_trip(
        OutputTable::VineIndicators,
        vec![VineRow {
            station: "st-1".into(),
            day: NaiveDate::from_ymd_opt(2026, 5, 10).unwrap(),
            latitude: 43.6,
            tmin: 8.0,
            tmax: 18.0,
            tmean: 13.0,
            rain_mm: 24.0,
            gdd: 3.0,
            winkler: 120.5,
            huglin: 150.25,
            oospore: 300.0,
            downy: true,
            gubler_thomas: 60,
            gt_started: true,
            gt_streak: 3,
            revision: 0,
            lineage: lineage(),
            computed_at: at("2026-05-11T00:00:00Z"),
        }],
    );
}

#[test]
fn a_row_read_from_a_batch_without_a_required_column_is_an_error() {
    let row = ForecastRow {
        entity_id: "bin-1".into(),
        date_observed: at("2026-11-28T10:00:00Z"),
        filling_level: 0.5,
        threshold: 0.8,
        rate_per_hour: 0.01,
        full_at: None,
        readings: 6,
        stored_waste_kind: None,
        commune_code: None,
        day: 20_785,
        lineage: Lineage::default(),
        computed_at: at("2026-11-28T10:00:01Z"),
    };
    let batch = ForecastRow::to_batch(OutputTable::BinForecast, &[row])
        .unwrap()
        .unwrap();
    let without = batch.project(&indices_but(&batch, "threshold")).unwrap();
    let e = ForecastRow::from_batch(&without).unwrap_err();
    assert!(e.to_string().contains("threshold"), "{e}");
}

#[test]
fn every_table_answers_with_columns_of_its_schema() {
    fn check(t: impl LakeTable) {
        let schema = t.schema();
        let columns = t
            .keys()
            .iter()
            .chain(t.partition_columns())
            .copied()
            .chain(t.latest_order().iter().map(|o| o.column()));
        for column in columns {
            assert!(schema.field_with_name(column).is_ok(), "{t:?}.{column}");
        }
        assert!(!t.description().is_empty(), "{t:?}");
        assert!(!t.sources().is_empty(), "{t:?}");
        assert_eq!(t.keys().is_empty(), t.latest_order().is_empty(), "{t:?}");
    }
    Table::ALL.into_iter().for_each(check);
    OutputTable::ALL.into_iter().for_each(check);
    check(DeviceHealthTable);
    for t in OutputTable::ALL {
        assert_eq!(OutputTable::from_name(t.name()), Some(t));
        assert!(t.schema().field_with_name("lineage").is_ok(), "{t}");
    }
    let names = lake_table_names();
    assert_eq!(names.len(), Table::ALL.len() + OutputTable::ALL.len() + 1);
    let unique: std::collections::BTreeSet<_> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "every table has its own folder");
}
