//! The stream stage in several processes of one consumer group: three members over the
//! same input, one SIGKILLed mid-run, one added later, against a single process reading the
//! same topics into a lake of its own. Every window, day, forecast and alert must end with
//! the latest value the single process gives, and no member may write a row twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{DateTime, Utc};
use vallee_lake::{Lake, LakeOptions, Latest};
use vallee_schemas::tables::OutputTable;

use crate::helpers::*;

/// Columns that say how a value was reached, not what it is: a member that closed a window
/// before a late row came writes it as two revisions where one process wrote one.
const HOW: [&str; 4] = ["lineage", "_computed_at", "revision", "final"];

/// The latest row of every key of every output table, as text, for the days before
/// `before` (the later traffic only closes what came before it). Not `late_events`: what
/// comes too late depends on when each partition's events arrive, not on the data (it is
/// checked for rows written twice).
async fn latest_rows(lake: &Lake, before: DateTime<Utc>) -> BTreeMap<OutputTable, Vec<String>> {
    let mut out = BTreeMap::new();
    for table in OutputTable::ALL
        .into_iter()
        .filter(|t| *t != OutputTable::LateEvents)
    {
        let day = format!("day < DATE '{}'", before.format("%Y-%m-%d"));
        let sql = Latest::of(table).filter(day).sql();
        let batches = lake.sql(&sql).await.unwrap();
        let mut rows = as_text(&batches);
        rows.sort();
        out.insert(table, rows);
    }
    out
}

/// Each row as `column=value|…`, without the [`HOW`] columns.
fn as_text(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        let columns: Vec<(String, ArrayFormatter)> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| !HOW.contains(&f.name().as_str()))
            .map(|(i, f)| {
                let formatter = ArrayFormatter::try_new(batch.column(i).as_ref(), &options);
                (f.name().clone(), formatter.unwrap())
            })
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = columns
                .iter()
                .map(|(name, f)| format!("{name}={}", f.value(row)))
                .collect();
            rows.push(cells.join("|"));
        }
    }
    rows
}

/// Rows written more than once for the same key and revision (windows, days), the same
/// alert change, or the same bin reading's forecast.
async fn written_twice(lake: &Lake) -> BTreeMap<OutputTable, i64> {
    let mut out = BTreeMap::new();
    for table in OutputTable::ALL {
        let key = match table {
            OutputTable::FillAlerts | OutputTable::VineAlerts => {
                "\"alertId\", state, \"clearReason\", \"dateObserved\"".to_string()
            }
            OutputTable::BinForecast => "\"entityId\", \"dateObserved\"".to_string(),
            other => {
                let keys: Vec<String> = other.keys().iter().map(|k| format!("\"{k}\"")).collect();
                format!("{}, revision", keys.join(", "))
            }
        };
        let sql = format!(
            "SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT {key} FROM {t})) FROM {t}",
            t = table.name()
        );
        let twice = i64s(&lake.sql(&sql).await.unwrap(), 0)[0];
        out.insert(table, twice);
    }
    out
}

/// A member of the stage's group that gives up on a stalled partition after 4 s (the dead
/// member's, when the coordinator keeps it).
fn member(world: &World, name: &str) -> std::process::Child {
    world.spawn_stage_with("stream", name, &[], "[kafka]\nstall_after_s = 4\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_one_killed_one_added_give_the_results_of_one_process() {
    let world = World::new(3).await;
    let main = valley_events(15_000, 41);
    let last = main.iter().map(|e| e.time).max().unwrap();
    // The next day, more traffic: every window and vineyard day of the first part closes
    // (its watermarks pass them), in both runs alike. Less than a day, so that no bin
    // falls silent: a silence in a gap is decided at the tick that finds the watermark past
    // it, which depends on how the returning readings are cut into chunks, not on the data.
    let before = (last + chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let later = valley_events_from(4_000, 42, before + chrono::Duration::hours(1));
    assert!(before + chrono::Duration::hours(1) - last < chrono::Duration::hours(24));
    let lake = world.lake().await;
    for t in OutputTable::ALL {
        lake.ensure(t).await.unwrap();
    }

    let (first, rest) = main.split_at(7_000);
    let (second, third) = rest.split_at(4_000);
    world.produce(first).await;
    let mut members: BTreeMap<&str, std::process::Child> = ["stream-a", "stream-b", "stream-c"]
        .into_iter()
        .map(|name| (name, member(&world, name)))
        .collect();
    eventually(
        Duration::from_secs(120),
        "three members owning partitions, results in the lake",
        || async {
            members
                .keys()
                .all(|m| world.log(m).contains("stream stage partition assigned"))
                && !latest_rows(&lake, before).await[&OutputTable::BinForecast].is_empty()
        },
    )
    .await;

    // One member dies mid-run: the others take its partitions over from the lake (after a
    // rebalance, or a fresh consumer when the coordinator keeps the dead member's share).
    let survivors = ["stream-a", "stream-c"];
    let assignments = || {
        survivors
            .iter()
            .map(|m| {
                world
                    .log(m)
                    .matches("stream stage partition assigned")
                    .count()
            })
            .sum::<usize>()
    };
    let before_kill = assignments();
    let mut killed = members.remove("stream-b").unwrap();
    killed.kill().unwrap(); // SIGKILL, whatever it was doing
    killed.wait().unwrap();
    world.produce(second).await;
    eventually(
        Duration::from_secs(120),
        "the survivors taking partitions over",
        || async { assignments() > before_kill },
    )
    .await;

    // One member joins later; traffic keeps coming.
    members.insert("stream-d", member(&world, "stream-d"));
    let traffic = world.trickle(
        third.iter().chain(&later).cloned().collect(),
        500,
        Duration::from_millis(200),
    );
    eventually(
        Duration::from_secs(120),
        "the new member owning partitions",
        || async {
            world
                .log("stream-d")
                .contains("stream stage partition assigned")
        },
    )
    .await;
    traffic.await.unwrap();

    // One process over the same topics, into a lake of its own.
    let alone = world.data_dir().join("alone-lake");
    std::fs::create_dir_all(&alone).unwrap();
    let alone_lake = Lake::open(LakeOptions {
        root: alone.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    for t in OutputTable::ALL {
        alone_lake.ensure(t).await.unwrap();
    }
    let lake_url = format!("file://{}", alone.display());
    let mut single = world.spawn_stage_with(
        "stream",
        "stream-alone",
        &["--membership", "sole", "--lake", &lake_url],
        "[stream]\ngroup_id = \"vallee-stream-alone\"\n",
    );

    let equal_looks = AtomicUsize::new(0);
    eventually(
        Duration::from_secs(300),
        "the members' latest results equal the single process's",
        || async {
            let expected = latest_rows(&alone_lake, before).await;
            let got = latest_rows(&lake, before).await;
            let complete = expected
                .iter()
                .all(|(t, rows)| !rows.is_empty() || *t == OutputTable::VineAlerts);
            // Equal on two looks in a row: both runs have settled.
            if complete && expected == got {
                if equal_looks.fetch_add(1, Ordering::Relaxed) >= 1 {
                    return true;
                }
                tokio::time::sleep(Duration::from_secs(3)).await;
                false
            } else {
                equal_looks.store(0, Ordering::Relaxed);
                false
            }
        },
    )
    .await;

    let expected = latest_rows(&alone_lake, before).await;
    let got = latest_rows(&lake, before).await;
    for (table, e) in &expected {
        let g = &got[table];
        let missing: Vec<_> = e.iter().filter(|r| !g.contains(r)).take(3).collect();
        let extra: Vec<_> = g.iter().filter(|r| !e.contains(r)).take(3).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{table}: {} rows alone, {} with members; missing {missing:?}, extra {extra:?}",
            e.len(),
            g.len()
        );
    }
    // Fill alerts opened and cleared on bins of every partition, as one process decides.
    let alerts = expected[&OutputTable::FillAlerts].join("\n");
    assert!(
        alerts.contains("kind=fill|") && alerts.contains("state=cleared"),
        "{alerts}"
    );
    for (table, twice) in written_twice(&lake).await {
        assert_eq!(twice, 0, "{table}: rows written twice by the members");
    }

    for (_, mut member) in members {
        terminate(&member);
        assert!(
            wait_exit(&mut member, Duration::from_secs(30))
                .await
                .success()
        );
    }
    terminate(&single);
    assert!(
        wait_exit(&mut single, Duration::from_secs(30))
            .await
            .success()
    );
}
