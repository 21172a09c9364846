//! Faults beyond kills: a broker that is not there yet when the hub starts, a broker that
//! goes away while ingest and the API keep running, a disk that fills up under the lake.

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

/// `vallee broker` (the embedded broker as a process of its own) on `addr`, its data
/// under `data`, listening.
async fn spawn_broker(addr: SocketAddr, data: &Path, log: &Path) -> KillOnDrop {
    let log = std::fs::File::create(log).unwrap();
    let broker = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_vallee"))
            .args(["broker", "--data-dir", path_str(data)])
            .args(["--broker-listen", &addr.to_string()])
            .stdout(std::process::Stdio::from(log.try_clone().unwrap()))
            .stderr(std::process::Stdio::from(log))
            .spawn()
            .unwrap(),
    );
    eventually(
        Duration::from_secs(30),
        "vallee broker listening",
        || async {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        },
    )
    .await;
    broker
}

async fn lake_of(data: &Path) -> Lake {
    Lake::open(LakeOptions {
        root: data.join("lake"),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// A hub on `broker` with its data under `dir`, ready, and `n` messages (seeded) landed:
/// the hub, its lake, how many.
async fn hub_with_first_messages(
    dir: &Path,
    broker: SocketAddr,
    http: SocketAddr,
    n: usize,
    seed: u64,
) -> (KillOnDrop, Lake, u64) {
    let data = dir.join("data");
    let hub = spawn_hub(&data, broker, http, &dir.join("up.log"));
    eventually(Duration::from_secs(120), "the hub ready", || async {
        ready(http)
    })
    .await;
    let lake = lake_of(&data).await;
    let first = produce_to(broker, n, seed).await;
    eventually(
        Duration::from_secs(120),
        "the first messages landed",
        || async { total(&lake).await >= first },
    )
    .await;
    (hub, lake, first)
}

/// Stops the hub (it exits cleanly) and checks every one of `produced` landed once.
async fn stop_and_check(hub: &mut KillOnDrop, lake: &Lake, produced: u64) {
    terminate(&hub.0);
    assert!(
        wait_exit(&mut hub.0, Duration::from_secs(60))
            .await
            .success()
    );
    assert_exactly_once(lake, produced).await;
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
    let (broker_addr, http) = (free_addr(), free_addr());
    // The broker is `vallee broker`, a process of its own, as in a multi-process setup.
    let broker_data = dir.path().join("broker-data");
    let mut broker = spawn_broker(broker_addr, &broker_data, &dir.path().join("b1.log")).await;
    let (mut hub, lake, first) =
        hub_with_first_messages(dir.path(), broker_addr, http, 2_000, 43).await;

    // The broker's process is killed: the hub stays up and says it is not ready.
    broker.0.kill().unwrap();
    broker.0.wait().unwrap();
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
    let _broker = spawn_broker(broker_addr, &broker_data, &dir.path().join("b2.log")).await;
    let second = produce_to(broker_addr, 2_000, 47).await;
    eventually(
        Duration::from_secs(120),
        "everything landed and ready again",
        || async { total(&lake).await >= first + second && ready(http) },
    )
    .await;
    stop_and_check(&mut hub, &lake, first + second).await;
}

/// A small tmpfs mounted for the test's life (unmounted on drop).
struct Mounted(std::path::PathBuf);

impl Mounted {
    /// `None` where mounting is not allowed (neither root nor `CAP_SYS_ADMIN`).
    fn tmpfs(at: &Path, size: &str) -> Option<Mounted> {
        std::fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                path_str(at),
            ])
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Mounted(at.to_path_buf()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l", path_str(&self.0)])
            .status();
    }
}

/// Fills the file system under `path` with one file; returns its path.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 256 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    filler
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_lake_holds_the_rows_says_why_and_resumes_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (data, broker_addr, http) = (dir.path().join("data"), free_addr(), free_addr());
    let Some(_mounted) = Mounted::tmpfs(&data.join("lake"), "96m") else {
        eprintln!("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): scenario not run");
        return;
    };
    let broker = EmbeddedBroker::start_with(
        broker_addr,
        &dir.path().join("broker"),
        Duration::from_secs(365 * 24 * 3600),
    )
    .await
    .unwrap();
    let (mut hub, lake, first) =
        hub_with_first_messages(dir.path(), broker_addr, http, 1_000, 53).await;

    // The disk fills up: nothing more lands, the hub keeps running and says why.
    let filler = fill(&data.join("lake"));
    let second = produce_to(broker_addr, 1_000, 59).await;
    let mut refused = String::new();
    eventually(
        Duration::from_secs(90),
        "readiness naming the refused commits",
        || {
            let (status, body) = http_get(http, "/readyz").unwrap_or_default();
            refused = body.clone();
            async move {
                status == 503
                    && body.contains(r#""lakeCommits":false"#)
                    && body.contains("No space left on device")
            }
        },
    )
    .await;
    assert!(hub.0.try_wait().unwrap().is_none(), "the hub kept running");
    assert!(total(&lake).await < first + second, "{refused}");
    let (_, metrics) = http_get(http, "/metrics").unwrap();
    let failing = metrics
        .lines()
        .filter(|l| l.starts_with("vallee_lake_commit_failing_seconds{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, f64::max);
    assert!(failing > 0.0, "the metric shows the refusal: {metrics}");

    // Space returns: every held row lands once, and readiness comes back.
    std::fs::remove_file(filler).unwrap();
    eventually(
        Duration::from_secs(120),
        "everything landed and ready again",
        || async { total(&lake).await >= first + second && ready(http) },
    )
    .await;
    stop_and_check(&mut hub, &lake, first + second).await;
    broker.stop();
}
