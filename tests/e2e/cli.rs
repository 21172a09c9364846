//! The command line's offline commands.

use std::process::Command;

#[test]
fn schemas_export_writes_one_json_schema_per_event_type() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vallee"))
        .args(["schemas", "export"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "AgriParcelRecord",
            "BeaconSighting",
            "SiteVisit",
            "Vehicle",
            "WasteContainer",
            "WeatherObserved"
        ]
        .map(|n| format!("{n}.schema.json"))
    );
    let bin: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("WasteContainer.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(bin["properties"]["type"]["const"], "WasteContainer");
    assert_eq!(bin["x-kafka-topic"], "vallee.waste.containers");
    let beacon: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("BeaconSighting.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(beacon["properties"]["deviceToken"]["maxLength"], 64);
}

#[test]
fn a_typo_in_the_configuration_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vallee.toml");
    std::fs::write(&config, "[ingest]\nflush_intervall_ms = 5\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vallee"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "ingest",
            "--kafka-brokers",
            "127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("flush_intervall_ms"), "{err}");
}

/// `vallee lake optimize` compacts what ingest wrote in many small commits: fewer files,
/// the same rows, and ingest resumes after it without a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_optimize_compacts_without_changing_rows_or_offsets() {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::helpers::*;

    let world = World::new(3).await;
    let events = valley_events(3_000, 11);
    // Many small files: the events sent in rounds, each landed before the next is sent
    // (a backlog read at once may land in a few large commits, however small the flush
    // size, as ingest reads on while a commit runs).
    let lake = Arc::new(world.lake().await);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let options = vallee_ingest::IngestOptions {
        flush_max_messages: 200,
        ..world.ingest_options()
    };
    let ingest = tokio::spawn(vallee_ingest::run(
        options,
        lake.clone(),
        Arc::new(vallee_ingest::IngestStats::default()),
        shutdown.clone(),
    ));
    let mut produced = 0;
    for round in events.chunks(500) {
        produced += world.produce(round).await;
        eventually(Duration::from_secs(120), "the round ingested", || async {
            total(&lake).await >= produced
        })
        .await;
    }
    shutdown.cancel();
    ingest.await.unwrap().unwrap();
    let table = vallee_schemas::contract::Table::WasteContainers;
    let files_before = lake.file_count(table).await.unwrap();
    assert!(
        files_before >= 3,
        "six rounds, each landed apart, make several files: {files_before}"
    );
    let rows_before = counts(&lake).await;
    drop(lake);

    let out = Command::new(env!("CARGO_BIN_EXE_vallee"))
        .args(["lake", "optimize", "--data-dir"])
        .arg(world.data_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("waste_containers:"),
        "progress per table: {stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("files before"));

    let lake = world.lake().await;
    let files_after = lake.file_count(table).await.unwrap();
    assert!(
        files_after < files_before,
        "{files_before} → {files_after} files"
    );
    assert_eq!(counts(&lake).await, rows_before);
    // The offsets survived: a second ingest run reads nothing twice.
    let more = valley_events(200, 12);
    let produced_more = world.produce(&more).await;
    let lake = Arc::new(lake);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let ingest = tokio::spawn(vallee_ingest::run(
        world.ingest_options(),
        lake.clone(),
        Arc::new(vallee_ingest::IngestStats::default()),
        shutdown.clone(),
    ));
    eventually(Duration::from_secs(60), "the new events", || async {
        total(&lake).await >= produced + produced_more
    })
    .await;
    shutdown.cancel();
    ingest.await.unwrap().unwrap();
    assert_exactly_once(&lake, produced + produced_more).await;
}
