//! Faults beyond kills: a broker that is not there yet when the hub starts, a broker that
//! goes away while ingest and the API keep running.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use vallee::broker::EmbeddedBroker;
use vallee_lake::{Lake, LakeOptions};
use vallee_schemas::contract::Stream;

use crate::helpers::*;

/// The hub's default topics (a hub started with `--kafka-brokers` creates them).
fn default_topics() -> BTreeMap<Stream, String> {
    Stream::ALL
        .iter()
        .map(|s| (*s, s.default_topic().to_string()))
        .collect()
}

async fn produce_to(broker: SocketAddr, n: usize, seed: u64) -> u64 {
    let producer = vallee::simulator::producer(&broker.to_string()).unwrap();
    vallee::simulator::produce(&producer, &default_topics(), &valley_events(n, seed))
        .await
        .unwrap()
}

/// A hub without simulator nor embedded broker, reading `broker`.
fn spawn_hub(data: &Path, broker: SocketAddr, http: SocketAddr, log: &Path) -> KillOnDrop {
    let log = std::fs::File::create(log).unwrap();
    KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_vallee"))
            .args(["up", "--no-simulate", "--data-dir", path_str(data)])
            .args(["--kafka-brokers", &broker.to_string()])
            .args(["--http-addr", &http.to_string()])
            .stdout(std::process::Stdio::from(log.try_clone().unwrap()))
            .stderr(std::process::Stdio::from(log))
            .spawn()
            .unwrap(),
    )
}

async fn lake_of(data: &Path) -> Lake {
    Lake::open(LakeOptions {
        root: data.join("lake"),
        ..Default::default()
    })
    .await
    .unwrap()
}

fn ready(http: SocketAddr) -> bool {
    http_get(http, "/readyz").is_ok_and(|(status, _)| status == 200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_started_before_its_broker_waits_for_it_then_flows() {
    let dir = tempfile::tempdir().unwrap();
    let (data, broker_addr, http) = (dir.path().join("data"), free_addr(), free_addr());
    let log = dir.path().join("up.log");
    let mut hub = spawn_hub(&data, broker_addr, http, &log);
    eventually(
        Duration::from_secs(60),
        "the hub waiting for its broker",
        || async { std::fs::read_to_string(&log).is_ok_and(|l| l.contains("waiting for it")) },
    )
    .await;
    assert!(hub.0.try_wait().unwrap().is_none(), "still running");

    let broker = EmbeddedBroker::start(broker_addr, &dir.path().join("broker"))
        .await
        .unwrap();
    eventually(Duration::from_secs(120), "the hub ready", || async {
        ready(http)
    })
    .await;
    let produced = produce_to(broker_addr, 2_000, 41).await;
    let lake = lake_of(&data).await;
    eventually(Duration::from_secs(120), "every message landed", || async {
        total(&lake).await >= produced
    })
    .await;
    terminate(&hub.0);
    assert!(
        wait_exit(&mut hub.0, Duration::from_secs(60))
            .await
            .success()
    );
    assert_exactly_once(&lake, produced).await;
    broker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_the_api_ride_out_a_broker_outage() {
    let dir = tempfile::tempdir().unwrap();
    let (data, broker_addr, http) = (dir.path().join("data"), free_addr(), free_addr());
    let broker_dir = dir.path().join("broker");
    let broker = EmbeddedBroker::start(broker_addr, &broker_dir)
        .await
        .unwrap();
    let log = dir.path().join("up.log");
    let mut hub = spawn_hub(&data, broker_addr, http, &log);
    eventually(Duration::from_secs(120), "the hub ready", || async {
        ready(http)
    })
    .await;
    let lake = lake_of(&data).await;
    let first = produce_to(broker_addr, 2_000, 43).await;
    eventually(
        Duration::from_secs(120),
        "the first messages landed",
        || async { total(&lake).await >= first },
    )
    .await;

    // The broker goes away: the hub stays up and says it is not ready.
    broker.stop();
    eventually(
        Duration::from_secs(30),
        "the broker's port closed",
        || async {
            std::net::TcpStream::connect_timeout(&broker_addr, Duration::from_millis(200)).is_err()
        },
    )
    .await;
    eventually(Duration::from_secs(90), "readiness failing", || async {
        http_get(http, "/readyz").is_ok_and(|(status, _)| status == 503)
    })
    .await;
    assert!(hub.0.try_wait().unwrap().is_none(), "the hub kept running");
    let (status, _) = http_get(http, "/healthz").unwrap();
    assert_eq!(status, 200, "alive though not ready");

    // It comes back on the same storage: everything flows again, nothing twice.
    let broker = EmbeddedBroker::start(broker_addr, &broker_dir)
        .await
        .unwrap();
    let second = produce_to(broker_addr, 2_000, 47).await;
    eventually(
        Duration::from_secs(120),
        "everything landed and ready again",
        || async { total(&lake).await >= first + second && ready(http) },
    )
    .await;
    terminate(&hub.0);
    assert!(
        wait_exit(&mut hub.0, Duration::from_secs(60))
            .await
            .success()
    );
    assert_exactly_once(&lake, first + second).await;
    broker.stop();
}
