//! The monthly waste-collection figures per commune, computed from sensor events in a real
//! lake: emptyings, the fill they were made at and hours above the threshold (bins); the
//! kilometres and tonnes of the trucks; each in the month and commune it happened in.

use std::sync::Arc;

use arrow::util::pretty::pretty_format_batches;
use chrono::Utc;
use futures::TryStreamExt;
use vallee_lake::{AsOf, Lake, LakeOptions};
use vallee_opendata::{Filter, OpenData, dataset};
use vallee_schemas::batch::{Lineage, TableBuffer};
use vallee_schemas::communes;
use vallee_schemas::contract::{Stream, Table};
use vallee_schemas::decode::{DecodeOptions, decode};

/// A lake under `dir` whose `table` holds `payloads` of `stream`, decoded as ingest does.
async fn lake_of(
    dir: &std::path::Path,
    stream: Stream,
    table: Table,
    payloads: &[String],
) -> Arc<Lake> {
    let lake = Lake::open(LakeOptions {
        root: dir.join("lake"),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut buffer = TableBuffer::new(table).unwrap();
    for (offset, payload) in payloads.iter().enumerate() {
        let decoded = decode(
            stream,
            Some(payload.as_bytes()),
            None,
            &DecodeOptions::default(),
        )
        .unwrap();
        let lineage = Lineage {
            topic: stream.name(),
            partition: 0,
            offset: offset as i64,
            ingested_at_micros: Utc::now().timestamp_micros(),
        };
        decoded.append_to(&mut buffer, &lineage).unwrap();
    }
    let batch = buffer.finish().unwrap().unwrap();
    lake.append(table, "test", vec![batch], &[]).await.unwrap();
    Arc::new(lake)
}

/// The rows of dataset `id` as printed, one line each (`| 2026-12-01 | 34114 | … |`,
/// spaces squeezed), sorted; and the whole table for messages.
async fn rows_of(lake: Arc<Lake>, id: &str) -> (Vec<String>, String) {
    let ds = dataset(id).unwrap();
    let (_, stream) = OpenData::new(lake)
        .stream(ds, &Filter::default(), AsOf::Latest)
        .await
        .unwrap();
    let batches: Vec<_> = stream.try_collect().await.unwrap();
    let table = pretty_format_batches(&batches).unwrap().to_string();
    let mut rows: Vec<String> = table
        .lines()
        .filter(|l| l.starts_with("| 2026"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    rows.sort();
    (rows, table)
}

#[tokio::test]
async fn emptyings_fill_at_emptying_and_hours_above_threshold_per_commune_and_month() {
    let dir = tempfile::tempdir().unwrap();
    let centre = |code: &str| communes::valley().by_code(code).unwrap().centre;
    let (gignac, aniane) = (centre("34114"), centre("34010"));
    let readings = [
        // Gignac: above 0.8 from 22:00 on 30 November to 03:00, emptied then at 0.9.
        ("gignac-1", &gignac, "2026-11-30T20:00:00Z", 0.5),
        ("gignac-1", &gignac, "2026-11-30T22:00:00Z", 0.85),
        ("gignac-1", &gignac, "2026-12-01T01:00:00Z", 0.9),
        ("gignac-1", &gignac, "2026-12-01T03:00:00Z", 0.1),
        ("gignac-1", &gignac, "2026-12-01T05:00:00Z", 0.3),
        // Then silent two days while full: 6 h at most count.
        ("gignac-1", &gignac, "2026-12-01T06:00:00Z", 0.95),
        ("gignac-1", &gignac, "2026-12-03T06:00:00Z", 0.96),
        // Aniane: emptied at 0.7; a small dip is no emptying.
        ("aniane-1", &aniane, "2026-12-02T08:00:00Z", 0.7),
        ("aniane-1", &aniane, "2026-12-02T10:00:00Z", 0.2),
        ("aniane-1", &aniane, "2026-12-02T12:00:00Z", 0.35),
        ("aniane-1", &aniane, "2026-12-02T14:00:00Z", 0.25),
    ];
    let payloads: Vec<String> = readings
        .iter()
        .map(|(bin, at, time, level)| {
            format!(
                r#"{{"id":"{bin}","type":"WasteContainer","dateObserved":"{time}","fillingLevel":{level},
                    "location":{{"type":"Point","coordinates":[{},{}]}}}}"#,
                at.lon, at.lat
            )
        })
        .collect();
    let lake = lake_of(
        dir.path(),
        Stream::WasteContainers,
        Table::WasteContainers,
        &payloads,
    )
    .await;
    let (rows, table) = rows_of(lake, "collecte-conteneurs-mensuelle").await;
    assert_eq!(
        rows,
        [
            // month | commune | bins | emptyings | fill at emptying | hours above
            "| 2026-11-01 | 34114 | 1 | 0 | | 3.0 |",
            "| 2026-12-01 | 34010 | 1 | 1 | 0.7 | 0.0 |",
            "| 2026-12-01 | 34114 | 1 | 1 | 0.9 | 8.0 |",
        ],
        "{table}"
    );
}

#[tokio::test]
async fn trucks_kilometres_and_tonnes_per_commune_and_month() {
    let dir = tempfile::tempdir().unwrap();
    let gignac = communes::valley().by_code("34114").unwrap().centre;
    // One truck heading north from Gignac's centre, 0.009° of latitude (1.0 km) a report;
    // then a 20-minute silence and a jump that count for nothing; cargo rising twice.
    let reports = [
        ("2026-12-01T06:00:00Z", 0.0, Some(1_000.0)),
        ("2026-12-01T06:05:00Z", 0.009, Some(1_600.0)),
        ("2026-12-01T06:10:00Z", 0.018, Some(1_500.0)),
        ("2026-12-01T06:30:00Z", 0.027, Some(2_400.0)),
        ("2026-12-01T06:35:00Z", 0.09, None),
    ];
    let payloads: Vec<String> = reports
        .iter()
        .map(|(time, north, kg)| {
            let cargo = kg.map_or(String::new(), |kg| format!(r#","cargoWeight":{kg}"#));
            format!(
                r#"{{"id":"benne-01","type":"Vehicle","dateObserved":"{time}","vehicleType":"lorry",
                    "serviceProvided":["garbageCollection"],"serviceStatus":"onRoute"{cargo},
                    "location":{{"type":"Point","coordinates":[{},{}]}}}}"#,
                gignac.lon,
                gignac.lat + north
            )
        })
        .collect();
    let lake = lake_of(
        dir.path(),
        Stream::WasteVehicles,
        Table::WasteVehicles,
        &payloads,
    )
    .await;
    let (rows, table) = rows_of(lake, "camions-collecte-mensuels").await;
    // Two 1.0 km legs; cargo +0.6 t then +0.9 t (the fall between is a dump, not a load).
    let column = |n: usize| -> Vec<String> {
        rows.iter()
            .map(|r| {
                r.trim_matches(|c| c == '|' || c == ' ')
                    .split(" | ")
                    .nth(n)
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    let sum = |n: usize| -> f64 { column(n).iter().filter_map(|v| v.parse::<f64>().ok()).sum() };
    assert!(!rows.is_empty(), "{table}");
    assert!((sum(3) - 2.0).abs() < 0.05, "kilometres: {table}");
    assert!((sum(4) - 1.5).abs() < 1e-9, "tonnes: {table}");
    assert!(column(2).iter().all(|trucks| trucks == "1"), "{table}");
}
