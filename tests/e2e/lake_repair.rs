//! A damaged data file in a table: queries fail naming it, `vallee lake check` finds it,
//! `vallee lake repair` sets it aside and every reader and writer works again, and
//! `vallee lake refill` brings its rows back from the topic.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::helpers::*;

/// The Parquet files under a table's folder, largest first.
fn parquet_files(table: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![table.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("_delta_log") {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                found.push(path);
            }
        }
    }
    found.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    found
}

/// Runs `vallee ingest` until the lake holds `rows`, then stops it (a clean exit).
async fn ingest_until(world: &World, name: &str, lake: &vallee_lake::Lake, rows: u64) {
    let mut ingest = world.spawn_ingest(name);
    eventually(Duration::from_secs(120), "the messages landed", || async {
        total(lake).await >= rows
    })
    .await;
    terminate(&ingest);
    assert!(
        wait_exit(&mut ingest, Duration::from_secs(30))
            .await
            .success()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_parquet_file_is_named_then_set_aside_and_everything_works_again() {
    let world = World::new(2).await;
    let lake = world.lake().await;
    let produced = world.produce(&valley_events(3_000, 61)).await;
    ingest_until(&world, "ingest-1", &lake, produced).await;
    let out = world.lake_command(&["check"]);
    assert!(out.status.success(), "a sound lake checks clean: {out:?}");

    // A file of the bin readings is cut in half, as a full disk or a bad copy leaves it.
    let table = world.data_dir().join("lake").join("waste_containers");
    let victim = parquet_files(&table).remove(0);
    let relative = victim.strip_prefix(&table).unwrap().display().to_string();
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();

    // (A count could be answered from the log's statistics: this reads the rows.)
    let err = lake
        .sql("SELECT count(DISTINCT _offset) FROM waste_containers")
        .await
        .expect_err("a query over the damaged file fails")
        .to_string();
    let file_name = victim.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(file_name), "the error names the file: {err}");

    // The check names the file and what it held, and fails.
    let out = world.lake_command(&["check"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains(&format!("waste_containers: {relative} is damaged")),
        "{printed}"
    );
    assert!(printed.contains("Kafka partition"), "{printed}");

    // The repair sets it aside, keeps a copy, and says how many rows went with it.
    let out = world.lake_command(&["repair"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed} {out:?}");
    assert!(printed.contains("1 damaged files set aside"), "{printed}");
    let held: u64 = printed
        .split("it held ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the rows the file held");
    assert!(held > 0, "{printed}");
    let kept = world
        .data_dir()
        .join("quarantine")
        .join("waste_containers")
        .join(&relative);
    assert_eq!(
        std::fs::metadata(&kept).unwrap().len() as usize,
        bytes.len() / 2
    );
    assert!(world.lake_command(&["check"]).status.success());

    // Readers work again, every other row intact, nothing twice.
    assert_exactly_once(&lake, produced - held).await;

    // The topic still holds what the file held: a refill brings it back, once.
    let refill = || world.lake_command(&["refill", "--kafka-brokers", &world.brokers()]);
    let out = refill();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed} {out:?}");
    assert!(
        printed.contains(&format!("{held} rows brought back, 0 lost for good")),
        "{printed}"
    );
    assert_exactly_once(&lake, produced).await;
    let out = refill();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("0 rows brought back, 0 lost for good"),
        "{printed}"
    );

    // Ingest goes on writing after them.
    let more = world.produce(&valley_events(1_000, 67)).await;
    ingest_until(&world, "ingest-2", &lake, produced + more).await;
    assert_exactly_once(&lake, produced + more).await;
}
