//! The file's sections read by their structs, and `docs/configuration.md` kept in step.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use clap::CommandFactory;
use serde_json::Value;
use vallee_schemas::contract::Stream;

use super::*;

const DOC: &str = include_str!("../../docs/configuration.md");
const README: &str = include_str!("../../README.md");

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
         [simulator]\nspeed = 600.0\nbins = 20\n[decode]\nmax_future_s = \"10min\"\n",
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
    // Ingest dead-letters exactly what the stream stage skips.
    for decode in [&placed.ingest.decode, &placed.stream.decode] {
        assert_eq!(decode.max_future, Duration::from_secs(600));
        assert_eq!(decode.max_message_bytes, 256 * 1024, "default kept");
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
        ("[ingest]\nflush_max_messages = 0\n", "[ingest]"),
        ("[decode]\nmax_message_bytes = 0\n", "[decode]"),
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

/// The README's example file holds keys that exist.
#[test]
fn the_readme_example_is_a_file_the_hub_reads() {
    let example = README
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a toml block in the README");
    toml::from_str::<Config>(example).unwrap();
}

/// `(section, key) → default cell` of every table of the file's reference.
fn documented_keys() -> BTreeMap<(String, String), String> {
    let mut keys = BTreeMap::new();
    let mut section: Option<String> = None;
    for line in DOC.lines() {
        if line.starts_with("## ") {
            section = None;
        } else if line.starts_with("### ") || line.starts_with("#### ") {
            section = line
                .split('`')
                .nth(1)
                .map(|s| s.trim_matches(['[', ']']).to_string());
        } else if let (Some(section), Some(row)) = (&section, line.strip_prefix("| `")) {
            let cells: Vec<&str> = row.split(" | ").collect();
            let key = cells[0].trim_end_matches('`').to_string();
            let default = cells.get(2).copied().unwrap_or_default().to_string();
            keys.insert((section.clone(), key), default);
        }
    }
    keys
}

/// `(section, key) → default` as the structs write them.
fn struct_keys() -> BTreeMap<(String, String), Option<Value>> {
    let mut keys = BTreeMap::new();
    let mut add = |section: &str, value: Value| {
        for (key, v) in value.as_object().expect("a table") {
            keys.insert((section.to_string(), key.clone()), Some(v.clone()));
        }
    };
    let defaults = serde_json::to_value(Config::default()).unwrap();
    for (section, value) in defaults.as_object().unwrap() {
        add(section, value.clone());
    }
    // Tables inside `[api]` (`[api.rounds]`) are sections of their own too.
    for (key, value) in defaults["api"].as_object().unwrap() {
        if value.is_object() {
            add(&format!("api.{key}"), value.clone());
        }
    }
    // The entries of the `[[api.…]]` lists have no default: one of each, keys only.
    let sample = Config::parse(&format!(
        "[[api.staff]]\nname = \"s\"\ntoken_sha256 = \"{h}\"\ncommune = \"34114\"\n\
         [[api.researchers]]\nname = \"r\"\ntoken_sha256 = \"{h}\"\n\
         [[api.partners]]\nname = \"p\"\ntoken_sha256 = \"{h}\"\nparcels = [\"a\"]\n\
         webhook_url = \"https://p.example.fr/alertes\"\nwebhook_secret = \"0123456789abcdef\"\nemail = \"p@example.fr\"\n\
         [[api.gateways]]\nname = \"g\"\nkey_sha256 = \"{h}\"\nstreams = [\"beacons\"]\n\
         [[api.devices]]\ndev_eui = \"0101010101010101\"\nentity_id = \"b\"\nprofile = \"ultrasonic_fill\"\n\
         depth_mm = 1200.0\nlatitude = 43.65\nlongitude = 3.55\n",
        h = "ab".repeat(32)
    ))
    .unwrap();
    let sample = serde_json::to_value(sample.api).unwrap();
    for list in ["staff", "researchers", "partners", "gateways", "devices"] {
        for key in sample[list][0].as_object().unwrap().keys() {
            keys.insert((format!("api.{list}"), key.clone()), None);
        }
    }
    keys
}

#[test]
fn the_configuration_reference_lists_every_key_and_only_those() {
    let documented = documented_keys();
    let actual = struct_keys();
    let doc: BTreeSet<_> = documented.keys().collect();
    let code: BTreeSet<_> = actual.keys().collect();
    let missing: Vec<_> = code.difference(&doc).collect();
    let unknown: Vec<_> = doc.difference(&code).collect();
    assert!(
        missing.is_empty(),
        "keys missing from docs/configuration.md: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "docs/configuration.md lists keys that do not exist: {unknown:?}"
    );
}

/// A default written as one TOML value in backquotes is the struct's default.
#[test]
fn the_configuration_reference_gives_the_true_defaults() {
    let actual = struct_keys();
    let mut checked = 0;
    for ((section, key), cell) in documented_keys() {
        let Some(literal) = cell
            .strip_prefix('`')
            .and_then(|c| c.strip_suffix('`'))
            .filter(|c| !c.contains('`'))
        else {
            continue;
        };
        let parsed: toml::Table = toml::from_str(&format!("v = {literal}"))
            .unwrap_or_else(|e| panic!("[{section}] {key}: {literal} is not TOML ({e})"));
        let documented = serde_json::to_value(&parsed["v"]).unwrap();
        // List entries (`[[api.staff]]`) have no default to compare with.
        if let Some(real) = &actual[&(section.clone(), key.clone())] {
            assert_eq!(&documented, real, "[{section}] {key}");
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} defaults checked");
}

/// Every flag and environment variable of every command is in the reference.
#[test]
fn the_configuration_reference_lists_every_flag_and_variable() {
    fn walk(command: &clap::Command, missing: &mut Vec<String>) {
        for arg in command.get_arguments() {
            if let Some(long) = arg.get_long()
                && !["help", "version"].contains(&long)
                && !DOC.contains(&format!("`--{long}`"))
            {
                missing.push(format!("{} --{long}", command.get_name()));
            }
            if let Some(env) = arg.get_env()
                && !DOC.contains(&format!("`{}`", env.to_string_lossy()))
            {
                missing.push(env.to_string_lossy().into_owned());
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, missing);
        }
    }
    let mut missing = Vec::new();
    walk(&crate::cli::Cli::command(), &mut missing);
    assert!(
        missing.is_empty(),
        "not in docs/configuration.md: {missing:?}"
    );
}
