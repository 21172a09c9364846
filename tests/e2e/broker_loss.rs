//! The broker loses records the lake had landed (its storage wiped, the topics created
//! again): ingest stops and says so, and `vallee lake accept-loss` lets it move on, never
//! skipping the new records in silence.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use vallee_schemas::contract::Stream;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_topic_stops_ingest_by_name_until_the_loss_is_accepted() {
    let world = World::new(3).await;
    let lake = world.lake().await;
    let bins_topic = world.topics[&Stream::WasteContainers].clone();
    let bins = |events: Vec<vallee::simulator::Event>| -> Vec<vallee::simulator::Event> {
        events
            .into_iter()
            .filter(|e| e.stream == Stream::WasteContainers)
            .collect()
    };
    let before = world.produce(&bins(valley_events(3_000, 31))).await;
    let mut first = world.spawn_ingest("ingest-0");
    eventually(Duration::from_secs(120), "the readings landed", || async {
        total(&lake).await >= before
    })
    .await;
    terminate(&first);
    assert!(
        wait_exit(&mut first, Duration::from_secs(30))
            .await
            .success()
    );

    // The broker loses the topic: created again, its offsets start from 0, and a few
    // new readings arrive, fewer than the lake already holds.
    let admin: AdminClient<DefaultClientContext> =
        world.kafka_options().client_config(&[]).create().unwrap();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    admin
        .delete_topics(&[bins_topic.as_str()], &options)
        .await
        .unwrap();
    vallee_kafka::ensure_topics(
        &world.kafka_options(),
        &[(bins_topic.clone(), vallee_kafka::Retention::Default)],
        3,
    )
    .await
    .unwrap();
    let after = world.produce(&bins(valley_events(600, 37))).await;
    assert!(after > 0 && after < before);

    let mut stopped = world.spawn_ingest("ingest-1");
    let status = wait_exit(&mut stopped, Duration::from_secs(120)).await;
    assert!(!status.success(), "ingest must stop");
    let log = world.log("ingest-1");
    assert!(log.contains("the broker lost data"), "{log}");
    assert!(log.contains("vallee lake accept-loss --topic"), "{log}");
    assert_eq!(total(&lake).await, before, "nothing written meanwhile");

    // The operator accepts the loss of the topic's partitions (all three were wiped).
    assert!(
        log.contains(&format!("topic {bins_topic} partition ")),
        "{log}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vallee"))
        .args(["--config", world.config_file().to_str().unwrap()])
        .args(["lake", "accept-loss", "--data-dir"])
        .arg(world.data_dir())
        .args(["--topic", &bins_topic])
        .args(["--partition", "0", "--partition", "1", "--partition", "2"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("now read from the start"), "{printed}");
    let mut last = world.spawn_ingest("ingest-2");
    eventually(
        Duration::from_secs(120),
        "the new log's readings landed too",
        || async { total(&lake).await >= before + after },
    )
    .await;
    terminate(&last);
    assert!(
        wait_exit(&mut last, Duration::from_secs(30))
            .await
            .success()
    );
    assert_eq!(total(&lake).await, before + after, "each reading once");
}
