//! `vallee up` as a newcomer runs it: embedded broker, topics created at startup, HTTP
//! health, SIGTERM committing what was read, then a restart that finishes the work.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use vallee_schemas::contract::Stream;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_commits_what_was_read_and_a_restart_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (broker, http) = (free_addr(), free_addr());
    let mut hub = spawn_up(
        &data,
        broker,
        http,
        &dir.path().join("up-1.log"),
        &["--no-simulate"],
    );
    eventually(Duration::from_secs(60), "/healthz", || async {
        matches!(http_get(http, "/healthz"), Ok((200, _)))
    })
    .await;

    // Every topic of the contract exists, with the default 3 partitions.
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.to_string())
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    for topic in Stream::ALL
        .map(|s| s.default_topic())
        .into_iter()
        .chain(["vallee.alerts"])
    {
        let t = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .unwrap_or_else(|| panic!("no topic {topic}"));
        assert_eq!(t.partitions().len(), 3, "{topic}");
    }

    let topics = Stream::ALL
        .iter()
        .map(|s| (*s, s.default_topic().to_string()))
        .collect();
    // Recent events: the embedded broker deletes beacon sightings older than 24 h (by
    // their timestamps), at its start too, and the restart below must find them.
    let start = chrono::Utc::now() - chrono::Duration::hours(2);
    let events = valley_events_from(20_000, 17, start);
    let producer = vallee::simulator::producer(&broker.to_string()).unwrap();
    let produced = vallee::simulator::produce(&producer, &topics, &events)
        .await
        .unwrap();
    let lake = vallee_lake::Lake::open(vallee_lake::LakeOptions {
        root: data.join("lake"),
        ..Default::default()
    })
    .await
    .unwrap();
    eventually(Duration::from_secs(60), "ingest under way", || async {
        total(&lake).await > 0
    })
    .await;

    terminate(&hub);
    let status = wait_exit(&mut hub, Duration::from_secs(60)).await;
    assert!(
        status.success(),
        "exit status {status:?}: {}",
        std::fs::read_to_string(dir.path().join("up-1.log")).unwrap()
    );
    // The embedded broker stopped with the hub.
    assert!(http_get(http, "/healthz").is_err());
    assert!(std::net::TcpStream::connect_timeout(&broker, Duration::from_millis(300)).is_err());
    let after_stop = total(&lake).await;
    assert!(after_stop > 0 && after_stop <= produced);
    for t in vallee_schemas::contract::Table::ALL {
        assert_eq!(duplicates(&lake, t).await, 0, "{t}");
    }

    // The broker's data survived (SQLite under data/broker): a restart finishes the work.
    let mut hub = spawn_up(
        &data,
        broker,
        http,
        &dir.path().join("up-2.log"),
        &["--no-simulate"],
    );
    eventually(
        Duration::from_secs(120),
        "the rest of the messages",
        || async { total(&lake).await >= produced },
    )
    .await;
    terminate(&hub);
    assert!(wait_exit(&mut hub, Duration::from_secs(60)).await.success());
    assert_exactly_once(&lake, produced).await;
}
