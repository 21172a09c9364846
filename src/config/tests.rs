//! The file's sections read by their structs.

use std::time::Duration;

use vallee_schemas::contract::Stream;

use super::*;

#[test]
fn typos_in_the_file_fail_loudly() {
    for (text, typo) in [
        ("[ingest]\nflush_max_mesages = 3\n", "flush_max_mesages"),
        ("[api]\nmax_dept = 3\n", "max_dept"),
        ("[simulator]\nsped = 3.0\n", "sped"),
        ("[lakes]\ncheckpoint_interval = 3\n", "lakes"),
        ("[topics]\nbeacon = \"x\"\n", "beacon: not a stream"),
    ] {
        let err = format!("{:#}", Config::parse(text).unwrap_err());
        assert!(err.contains(typo), "{typo}: {err}");
    }
}

#[test]
fn the_file_overrides_defaults_and_keeps_today_s_keys() {
    let config = Config::parse(
        "[ingest]\nflush_interval_ms = 250\n[ingest.kafka]\n\"fetch.wait.max.ms\" = \"50\"\n\
         [topics]\nbeacons = \"zone.beacons\"\n[lake]\ncheckpoint_interval = 7\n\
         [stream]\nidle_timeout_ms = 2000\n[stream.lateness_s]\nbeacons = 60\n\
         [api]\npublish_interval_s = 1\nmutations_per_minute_per_token = 5\n\
         [simulator]\nspeed = 600.0\nbins = 20\n",
    )
    .unwrap();
    assert_eq!(config.ingest.flush_interval, Duration::from_millis(250));
    assert_eq!(config.ingest.consumer_overrides["fetch.wait.max.ms"], "50");
    assert_eq!(config.ingest.flush_max_messages, 20_000, "default kept");
    assert_eq!(config.lake.checkpoint_interval, 7);
    assert_eq!(config.stream.idle_timeout, Duration::from_secs(2));
    assert_eq!(config.stream.lateness[&Stream::Beacons].num_seconds(), 60);
    assert_eq!(config.api.publish_interval, Duration::from_secs(1));
    assert_eq!(config.api.limits.mutations_per_minute_per_token, 5);
    assert_eq!(
        (config.simulator.speed, config.simulator.shape.bins),
        (600.0, 20)
    );
    let placed = config.placed(Path::new("d"), "b:1");
    for kafka in [
        &placed.kafka,
        &placed.ingest.kafka,
        &placed.stream.kafka,
        &placed.api.kafka,
        &placed.simulator.kafka,
    ] {
        assert_eq!(kafka.brokers, "b:1");
        assert_eq!(kafka.topics[&Stream::Beacons], "zone.beacons");
        assert_eq!(kafka.topics[&Stream::Tourism], "vallee.tourism");
    }
    assert_eq!(placed.lake.root, Path::new("d/lake"));
    assert_eq!(placed.api.private_dir, Path::new("d/private"));
    assert_eq!(placed.api.research_dir, Path::new("d/research"));
}

#[test]
fn each_section_s_own_checks_run_and_name_the_section() {
    for (text, section) in [
        ("[api]\npublisher_siret = \"24340069400011\"\n", "[api]"),
        ("[lake]\ncheckpoint_interval = 0\n", "[lake]"),
        ("[ingest]\ncommit_attempts = 0\n", "[ingest]"),
        ("[stream]\ndefault_zone_capacity = 0\n", "[stream]"),
        ("[simulator]\nfault_ratio = 2.0\n", "[simulator]"),
        (
            "[topics]\ntourism = \"vallee.beacons\"\n",
            "[kafka] and [topics]",
        ),
    ] {
        let err = format!("{:#}", Config::parse(text).unwrap_err());
        assert!(err.starts_with(section), "{section}: {err}");
    }
}
