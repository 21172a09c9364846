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
