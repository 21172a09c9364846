//! `vallee up` with its simulator: realistic traffic reaches the lake within seconds.

use std::time::Duration;

use vallee_schemas::contract::Table;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_simulator_fills_the_lake() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (broker, http) = (free_addr(), free_addr());
    let mut hub = spawn_up(
        &data,
        broker,
        http,
        &dir.path().join("up.log"),
        &["--speed", "1200", "--fault-ratio", "0.02"],
    );
    let lake = vallee_lake::Lake::open(vallee_lake::LakeOptions {
        root: data.join("lake"),
        ..Default::default()
    })
    .await
    .unwrap();
    // Bins and vineyard stations report around the clock; faults feed the dead letters.
    eventually(
        Duration::from_secs(90),
        "bins, vineyards and dead letters in the lake",
        || async {
            let c = counts(&lake).await;
            [
                Table::WasteContainers,
                Table::WeatherObserved,
                Table::ParcelRecords,
                Table::DeadLetters,
            ]
            .iter()
            .all(|t| c[t] > 0)
        },
    )
    .await;
    // Part of the valley comes through the field doors: one bin's LoRaWAN uplinks
    // (ChirpStack's webhook, one in ten posted twice), one zone's beacon gateway in NDJSON
    // batches, and a people counter that uploads the day before once the night came.
    let count = |sql: &'static str| {
        let lake = &lake;
        async move { i64s(&lake.sql(sql).await.unwrap(), 0)[0] }
    };
    // The counter's upload waits for the simulated night: longer when the machine is busy
    // (the rate cap holds the simulated clock back).
    eventually(
        Duration::from_secs(600),
        "the field doors' traffic in the lake",
        || async {
            count("SELECT count(*) FROM waste_containers WHERE extra LIKE '%frameCounter%'").await
                > 0
                && count("SELECT count(*) FROM beacon_sightings WHERE zone = 'za-camalce-nord'")
                    .await
                    > 0
                && count(
                    "SELECT count(*) FROM site_visits \
                     WHERE site = 'abbaye-d-aniane' AND source = 'counter'",
                )
                .await
                    > 0
        },
    )
    .await;
    // One row per frame, whichever way it came (or how often).
    assert_eq!(
        count(
            "SELECT count(*) - count(DISTINCT extra) FROM waste_containers \
             WHERE extra LIKE '%frameCounter%'"
        )
        .await,
        0
    );
    let (_, metrics) = http_get(http, "/metrics").unwrap();
    let series = |stream: &str, outcome: &str| -> u64 {
        let name =
            format!("vallee_field_items_total{{stream=\"{stream}\",outcome=\"{outcome}\"}} ");
        (metrics.lines())
            .find_map(|l| l.strip_prefix(name.as_str()))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    for stream in ["beacons", "tourism", "waste_containers"] {
        assert!(series(stream, "accepted") > 0, "{stream}: {metrics}");
    }
    terminate(&hub);
    assert!(wait_exit(&mut hub, Duration::from_secs(60)).await.success());
    let banner = std::fs::read_to_string(dir.path().join("up.log")).unwrap();
    assert!(
        banner.contains("Smart Vallée hub is up")
            && banner.contains(&format!("http://{http}/healthz")),
        "{banner}"
    );
}
