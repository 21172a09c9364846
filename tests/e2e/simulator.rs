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
    terminate(&hub);
    assert!(wait_exit(&mut hub, Duration::from_secs(60)).await.success());
    let banner = std::fs::read_to_string(dir.path().join("up.log")).unwrap();
    assert!(
        banner.contains("Smart Vallée hub is up")
            && banner.contains(&format!("http://{http}/healthz")),
        "{banner}"
    );
}
