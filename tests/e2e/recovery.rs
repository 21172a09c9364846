//! After a crash every partition flows again within seconds, and a partition that does not
//! is found and taken back: the stalls the embedded broker's group coordinator can cause
//! (docs/architecture.md, "Lost assignments after a member dies"). For ingest and for the
//! stream stage alike.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use tokio_util::sync::CancellationToken;
use vallee::simulator::Event;
use vallee_lake::Latest;
use vallee_schemas::tables::OutputTable;
use vallee_stream::stage::consumer::INPUTS;
use vallee_stream::stage::{SharedLiveView, StreamOptions};

use crate::helpers::*;

/// The stall threshold of these tests' processes (the default is 30 s).
const STALL_AFTER: &str = "[kafka]\nstall_after_s = 4\n";

/// Produces `events` in chunks of 500, one chunk every 400 ms, as a steady gateway would.
fn steady_producer(world: &World, events: Vec<Event>) -> tokio::task::JoinHandle<u64> {
    let (brokers, topics) = (world.brokers(), world.topics.clone());
    tokio::spawn(async move {
        let p = vallee::simulator::producer(&brokers).unwrap();
        let mut n = 0;
        for chunk in events.chunks(500) {
            n += vallee::simulator::produce(&p, &topics, chunk)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        n
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sole_member_killed_twice_in_quick_succession_owns_and_drains_every_partition() {
    let world = World::new(3).await;
    let lake = world.lake().await;
    let producer = steady_producer(&world, valley_events(12_000, 21));
    let sole = ["--membership", "sole"];
    killed_twice(&world, "ingest", || async { total(&lake).await > 0 }).await;
    let partitions = world.topics.len() * 3;
    let restarted = Instant::now();
    let mut last = world.spawn_stage_with("ingest", "ingest-2", &sole, STALL_AFTER);
    eventually(Duration::from_secs(30), "reading again", || async {
        world.log("ingest-2").matches("partition assigned").count() >= partitions
    })
    .await;
    let resumed = restarted.elapsed();
    let produced = producer.await.unwrap();
    let done = Instant::now();
    eventually(
        Duration::from_secs(60),
        "every produced message in the lake",
        || async { total(&lake).await >= produced },
    )
    .await;
    eprintln!(
        "resumed {resumed:?} after the restart; caught up {:?} after the producer stopped",
        done.elapsed()
    );
    terminate(&last);
    assert!(
        wait_exit(&mut last, Duration::from_secs(30))
            .await
            .success()
    );
    assert_exactly_once(&lake, produced).await;
    // Every partition of the input topics was owned, with no coordinator to ask.
    let log = world.log("ingest-2");
    assert_eq!(
        log.matches("partition assigned").count(),
        partitions,
        "{log}"
    );
    assert!(!log.contains("partitions not flowing"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_killed_does_not_strand_its_partitions_with_the_survivor() {
    let world = World::new(3).await;
    let lake = world.lake().await;
    let events = valley_events(12_000, 23);
    let (first, rest) = events.split_at(3_000);
    let produced_first = world.produce(first).await;
    let mut a = world.spawn_stage_with("ingest", "ingest-a", &[], STALL_AFTER);
    let mut b = world.spawn_stage_with("ingest", "ingest-b", &[], STALL_AFTER);
    eventually(
        Duration::from_secs(120),
        "both members owning partitions",
        || async {
            world.log("ingest-a").contains("partition assigned")
                && world.log("ingest-b").contains("partition assigned")
        },
    )
    .await;
    // A dies without leaving the group: the coordinator alone decides who takes over.
    a.kill().unwrap();
    a.wait().unwrap();
    let producer = steady_producer(&world, rest.to_vec());
    let produced = produced_first + producer.await.unwrap();
    eventually(
        Duration::from_secs(120),
        "every produced message in the lake",
        || async { total(&lake).await >= produced },
    )
    .await;
    terminate(&b);
    assert!(wait_exit(&mut b, Duration::from_secs(30)).await.success());
    assert_exactly_once(&lake, produced).await;
    let log = world.log("ingest-b");
    eprintln!(
        "the survivor {} a stall",
        if log.contains("partitions not flowing") {
            "found and recovered from"
        } else {
            "saw no"
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_nobody_reads_fails_readiness_by_name_until_its_member_starts() {
    let world = World::new(3).await;
    let lake = world.lake().await;
    let produced = world.produce(&valley_events(3_000, 29)).await;
    // Member 0 of 2 reads partitions 0 and 2; nobody reads partition 1 yet.
    let http = free_addr();
    let addr = http.to_string();
    let mut zero = world.spawn_stage_with(
        "ingest",
        "ingest-0",
        &["--membership", "static:0/2", "--http-addr", &addr],
        STALL_AFTER,
    );
    let bins = world.topics[&vallee_schemas::contract::Stream::WasteContainers].clone();
    eventually(
        Duration::from_secs(90),
        "readiness failing and naming the partition nobody reads",
        || async {
            let Ok((status, body)) = http_get(http, "/readyz") else {
                return false;
            };
            let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            status == 503
                && body["checks"]["ingestPartitionsFlowing"] == false
                && body["stalled"].as_array().is_some_and(|s| {
                    s.iter()
                        .any(|p| p["topic"] == bins.as_str() && p["partition"] == 1)
                        && s.iter().all(|p| p["partition"] == 1)
                })
        },
    )
    .await;
    let (_, metrics) = http_get(http, "/metrics").unwrap();
    let stalled = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "vallee_partition_stalled_seconds{{stage=\"ingest\",topic=\"{bins}\",partition=\"1\"}} "
            ))
        })
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no stall series for {bins}[1] in\n{metrics}"));
    assert!(stalled >= 4.0, "{stalled}");
    // Member 1 starts: partition 1 flows, everything lands once, readiness comes back.
    let mut one = world.spawn_stage_with(
        "ingest",
        "ingest-1",
        &["--membership", "static:1/2"],
        STALL_AFTER,
    );
    eventually(
        Duration::from_secs(90),
        "every message landed and member 0 ready again",
        || async {
            total(&lake).await >= produced
                && http_get(http, "/readyz").is_ok_and(|(status, _)| status == 200)
        },
    )
    .await;
    for child in [&mut zero, &mut one] {
        terminate(child);
        assert!(wait_exit(child, Duration::from_secs(30)).await.success());
    }
    assert_exactly_once(&lake, produced).await;
}

/// Every derived table as comparable text: window tables by their latest revision (a
/// restart may write a correction the other run did not need, never another value), the
/// others whole; without what differs between two runs of the same input (computation
/// times, revisions, lineage).
async fn outputs(lake: &vallee_lake::Lake) -> BTreeMap<&'static str, Vec<String>> {
    let skip = [
        "revision",
        "final",
        "_computed_at",
        "lineage",
        "arCheckinsByPoint",
    ];
    let mut out = BTreeMap::new();
    // Not `late_events`: what comes too late depends on when events arrive, not on the
    // data (it is checked for rows written twice).
    for t in OutputTable::ALL
        .into_iter()
        .filter(|t| *t != OutputTable::LateEvents)
    {
        lake.ensure(t).await.unwrap();
        let schema = t.schema();
        let columns: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| f.name())
            .filter(|n| !skip.contains(&n.as_str()))
            .map(|n| format!("\"{n}\""))
            .collect();
        let from = if schema.field_with_name("revision").is_ok() {
            Latest::of(t).to_string()
        } else {
            t.name().to_string()
        };
        let columns = columns.join(", ");
        let sql = format!("SELECT {columns} FROM ({from}) ORDER BY {columns}");
        let mut rows = Vec::new();
        for b in lake.sql(&sql).await.unwrap() {
            let texts: Vec<_> = b
                .columns()
                .iter()
                .map(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).unwrap())
                .collect();
            for i in 0..b.num_rows() {
                let row: Vec<String> = texts
                    .iter()
                    .map(|c| {
                        let c = c.as_string::<i32>();
                        if c.is_null(i) {
                            "∅".into()
                        } else {
                            c.value(i).to_string()
                        }
                    })
                    .collect();
                rows.push(row.join("|"));
            }
        }
        out.insert(t.name(), rows);
    }
    out
}

/// Rows of the revisioned tables written twice (the same key and revision).
async fn duplicated_revisions(lake: &vallee_lake::Lake) -> i64 {
    let mut total = 0;
    for t in OutputTable::ALL {
        if t.schema().field_with_name("revision").is_err() {
            continue;
        }
        let key: Vec<String> = t
            .keys()
            .iter()
            .map(|k| format!("CAST(\"{k}\" AS VARCHAR)"))
            .chain(["CAST(revision AS VARCHAR)".to_string()])
            .collect();
        let sql = format!(
            "SELECT count(*) - count(DISTINCT concat_ws('|', {})) FROM {}",
            key.join(", "),
            t.name()
        );
        let b = lake.sql(&sql).await.unwrap();
        total += b[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0);
    }
    total
}

/// Rows over every derived table.
async fn derived_rows(lake: &vallee_lake::Lake) -> u64 {
    let mut n = 0;
    for t in OutputTable::ALL {
        n += lake.count(t).await.unwrap();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sole_stream_stage_killed_twice_owns_every_partition_and_writes_what_an_unkilled_one_does()
 {
    let world = World::new(3).await;
    let lake = world.lake().await;
    // The same traffic through a stage never killed, in this process, into its own lake.
    let reference_lake = Arc::new(
        vallee_lake::Lake::open(vallee_lake::LakeOptions {
            root: world.dir.path().join("reference-lake"),
            ..Default::default()
        })
        .await
        .unwrap(),
    );
    let reference_stop = CancellationToken::new();
    let reference = tokio::spawn(vallee_stream::stage::run(
        StreamOptions {
            kafka: world.kafka_options(),
            group_id: format!("{}-reference", world.group),
            membership: vallee_kafka::Membership::Sole,
            ..Default::default()
        },
        reference_lake.clone(),
        SharedLiveView::default(),
        reference_stop.clone(),
    ));
    let producer = steady_producer(&world, valley_events(12_000, 31));
    let sole = ["--membership", "sole"];
    killed_twice(&world, "stream", || async { derived_rows(&lake).await > 0 }).await;
    let partitions = INPUTS.len() * 3;
    let restarted = Instant::now();
    let mut last = world.spawn_stage_with("stream", "stream-2", &sole, STALL_AFTER);
    eventually(Duration::from_secs(30), "reading again", || async {
        world
            .log("stream-2")
            .matches("stream stage partition assigned")
            .count()
            >= partitions
    })
    .await;
    let resumed = restarted.elapsed();
    producer.await.unwrap();
    // Once every partition is idle, both stages close the same windows and days.
    let done = Instant::now();
    eventually(
        Duration::from_secs(180),
        "the same outputs as the stage never killed",
        || async {
            let ours = outputs(&lake).await;
            !ours["footfall"].is_empty() && ours == outputs(&reference_lake).await
        },
    )
    .await;
    eprintln!(
        "resumed {resumed:?} after the restart; same outputs {:?} after the producer stopped",
        done.elapsed()
    );
    terminate(&last);
    assert!(
        wait_exit(&mut last, Duration::from_secs(30))
            .await
            .success()
    );
    reference_stop.cancel();
    reference.await.unwrap().unwrap();
    let (ours, theirs) = (outputs(&lake).await, outputs(&reference_lake).await);
    assert_eq!(ours, theirs);
    for table in ["footfall", "site_presence", "fill_alerts", "bin_forecast"] {
        assert!(!ours[table].is_empty(), "nothing in {table}: {ours:?}");
    }
    assert_eq!(duplicated_revisions(&lake).await, 0);
    // Every partition of the input topics was owned, with no coordinator to ask.
    let log = world.log("stream-2");
    assert_eq!(
        log.matches("stream stage partition assigned").count(),
        partitions,
        "{log}"
    );
    assert!(!log.contains("partitions not flowing"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_partition_nobody_reads_fails_readiness_by_name_until_its_member_starts() {
    let world = World::new(3).await;
    world.produce(&valley_events(3_000, 37)).await;
    // Member 0 of 2 reads partitions 0 and 2; nobody reads partition 1 yet.
    let http = free_addr();
    let addr = http.to_string();
    let mut zero = world.spawn_stage_with(
        "stream",
        "stream-0",
        &["--membership", "static:0/2", "--http-addr", &addr],
        STALL_AFTER,
    );
    let inputs: Vec<String> = INPUTS.iter().map(|s| world.topics[s].clone()).collect();
    let beacons = world.topics[&vallee_schemas::contract::Stream::Beacons].clone();
    eventually(
        Duration::from_secs(90),
        "readiness failing and naming the partitions nobody reads",
        || async {
            let Ok((status, body)) = http_get(http, "/readyz") else {
                return false;
            };
            let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            status == 503
                && body["checks"]["streamPartitionsFlowing"] == false
                && body["stalled"].as_array().is_some_and(|s| {
                    s.iter()
                        .any(|p| p["topic"] == beacons.as_str() && p["partition"] == 1)
                        && s.iter().all(|p| {
                            p["stage"] == "stream"
                                && p["partition"] == 1
                                && inputs.iter().any(|t| p["topic"] == t.as_str())
                        })
                })
        },
    )
    .await;
    let (_, metrics) = http_get(http, "/metrics").unwrap();
    let stalled = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "vallee_partition_stalled_seconds{{stage=\"stream\",topic=\"{beacons}\",partition=\"1\"}} "
            ))
        })
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no stall series for {beacons}[1] in\n{metrics}"));
    assert!(stalled >= 4.0, "{stalled}");
    // Member 1 starts: partition 1 flows, readiness comes back.
    let mut one = world.spawn_stage_with(
        "stream",
        "stream-1",
        &["--membership", "static:1/2"],
        STALL_AFTER,
    );
    eventually(
        Duration::from_secs(90),
        "member 0 ready again once member 1 reads partition 1",
        || async { http_get(http, "/readyz").is_ok_and(|(status, _)| status == 200) },
    )
    .await;
    // The trucks' partitions, which every member reads whole outside the group (no group
    // progress of theirs for the probe), are watched too, from the member's own client.
    let trucks = world.topics[&vallee_schemas::contract::Stream::WasteVehicles].clone();
    eventually(
        Duration::from_secs(60),
        "the trucks' partitions watched and flowing",
        || async {
            http_get(http, "/metrics").is_ok_and(|(_, m)| {
                (0..3).all(|p| {
                    m.contains(&format!(
                        "vallee_partition_lag{{stage=\"stream\",topic=\"{trucks}\",partition=\"{p}\"}} 0"
                    ))
                })
            })
        },
    )
    .await;
    for child in [&mut zero, &mut one] {
        terminate(child);
        assert!(wait_exit(child, Duration::from_secs(30)).await.success());
    }
    // Each member took its share of every keyed input topic, nothing more (0 and 2, then
    // 1), and the three partitions of the trucks' topic, read whole by every member.
    for (name, share) in [("stream-0", 2), ("stream-1", 1)] {
        let log = world.log(name);
        let taken = log.matches("stream stage partition assigned").count();
        assert_eq!(taken, (inputs.len() - 1) * share + 3, "{name}:\n{log}");
    }
}

/// `vallee <stage> --membership sole` SIGKILLed once it is under way (`under_way` holds,
/// logging to `<stage>-0`), then again as soon as it has taken its partitions, before its
/// first commit (`<stage>-1`).
async fn killed_twice<F, Fut>(world: &World, stage: &str, under_way: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let sole = ["--membership", "sole"];
    let mut first = world.spawn_stage_with(stage, &format!("{stage}-0"), &sole, STALL_AFTER);
    eventually(Duration::from_secs(120), "the stage under way", under_way).await;
    first.kill().unwrap();
    first.wait().unwrap();
    let name = format!("{stage}-1");
    let mut second = world.spawn_stage_with(stage, &name, &sole, STALL_AFTER);
    eventually(Duration::from_secs(60), "partitions taken", || async {
        world
            .log(&name)
            .contains("partitions taken without a coordinator")
    })
    .await;
    second.kill().unwrap();
    second.wait().unwrap();
}
