//! Shared scaffolding: unique topics and groups per test, a broker per test, producing,
//! child `vallee` processes, deadline-bounded polling (never fixed sleeps for correctness).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arrow::array::{Array, Int64Array};
use vallee::broker::EmbeddedBroker;
use vallee::simulator::{self, Event};
use vallee_ingest::IngestOptions;
use vallee_kafka::KafkaOptions;
use vallee_lake::{Lake, LakeOptions};
use vallee_schemas::contract::{Stream, Table};

/// One test's world: a temp dir, a broker, its own topics and consumer group.
pub struct World {
    pub dir: tempfile::TempDir,
    pub broker: EmbeddedBroker,
    pub topics: BTreeMap<Stream, String>,
    pub group: String,
}

impl World {
    pub async fn new(partitions: i32) -> World {
        let mut dir = tempfile::tempdir().unwrap();
        // VALLEE_KEEP_TEST_DIRS=1 keeps logs, broker and lake of every test for a post-mortem.
        if std::env::var("VALLEE_KEEP_TEST_DIRS").is_ok_and(|v| v == "1") {
            dir.disable_cleanup(true);
            eprintln!("test data kept in {}", dir.path().display());
        }
        // Test data carries historical timestamps (June 2026): checking retention every
        // minute, the broker would delete beacon sightings produced a minute ago. Checked
        // once, at start, on an empty broker. (`privacy.rs` tests retention itself.)
        let broker = EmbeddedBroker::start_with(
            "127.0.0.1:0".parse().unwrap(),
            &dir.path().join("broker"),
            Duration::from_secs(365 * 24 * 3600),
        )
        .await
        .unwrap();
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
        let topics: BTreeMap<Stream, String> = Stream::ALL
            .iter()
            .map(|s| (*s, format!("t{id}.{}", s.name())))
            .collect();
        let world = World {
            dir,
            broker,
            topics,
            group: format!("g{id}"),
        };
        let kafka = world.kafka_options();
        vallee_kafka::ensure_topics(&kafka, &vallee_kafka::hub_topics(&kafka.topics), partitions)
            .await
            .unwrap();
        world
    }

    pub fn brokers(&self) -> String {
        self.broker.bootstrap()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// This world's brokers and topics.
    pub fn kafka_options(&self) -> KafkaOptions {
        KafkaOptions {
            brokers: self.brokers(),
            topics: self.topics.clone().into(),
            ..Default::default()
        }
    }

    pub fn ingest_options(&self) -> IngestOptions {
        IngestOptions {
            kafka: self.kafka_options(),
            group_id: self.group.clone(),
            flush_interval: Duration::from_millis(300),
            ..Default::default()
        }
    }

    pub fn lake_options(&self) -> LakeOptions {
        LakeOptions {
            root: self.data_dir().join("lake"),
            ..Default::default()
        }
    }

    pub async fn lake(&self) -> Lake {
        Lake::open(self.lake_options()).await.unwrap()
    }

    /// `vallee lake <args…>` on the world's data directory, run to its end.
    pub fn lake_command(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_vallee"))
            .args(["--config", self.config_file().to_str().unwrap()])
            .arg("lake")
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .output()
            .unwrap()
    }

    /// A TOML file pointing a child `vallee` at this world's topics and group.
    pub fn config_file(&self) -> PathBuf {
        let path = self.dir.path().join("vallee.toml");
        let mut text = format!(
            "[ingest]\ngroup_id = \"{}\"\nflush_interval_ms = 300\n\n[topics]\n",
            self.group
        );
        for (s, t) in &self.topics {
            text.push_str(&format!("{} = \"{t}\"\n", s.name()));
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Produces `events` in the background, `chunk` at a time with `pause` after each
    /// (traffic that keeps arriving while a test kills processes); the task returns how
    /// many the broker acknowledged.
    pub fn trickle(
        &self,
        events: Vec<Event>,
        chunk: usize,
        pause: Duration,
    ) -> tokio::task::JoinHandle<u64> {
        let (brokers, topics) = (self.brokers(), self.topics.clone());
        tokio::spawn(async move {
            let p = simulator::producer(&brokers).unwrap();
            let mut n = 0;
            for chunk in events.chunks(chunk) {
                n += simulator::produce(&p, &topics, chunk).await.unwrap();
                tokio::time::sleep(pause).await;
            }
            n
        })
    }

    pub async fn produce(&self, events: &[Event]) -> u64 {
        let producer = simulator::producer(&self.brokers()).unwrap();
        simulator::produce(&producer, &self.topics, events)
            .await
            .unwrap()
    }

    /// A child `vallee ingest` on this world (stdout and stderr in `<dir>/<name>.log`).
    pub fn spawn_ingest(&self, name: &str) -> Child {
        self.spawn_stage("ingest", name)
    }

    /// A child `vallee <command>` (`ingest` or `stream`) on this world.
    pub fn spawn_stage(&self, command: &str, name: &str) -> Child {
        self.spawn_stage_with(command, name, &[], "")
    }

    /// A child `vallee <command>` with more arguments, and more TOML appended to the
    /// world's configuration file (its own copy, `<name>.toml`).
    pub fn spawn_stage_with(
        &self,
        command: &str,
        name: &str,
        args: &[&str],
        config: &str,
    ) -> Child {
        let file = self.dir.path().join(format!("{name}.toml"));
        let text = std::fs::read_to_string(self.config_file()).unwrap();
        std::fs::write(&file, format!("{config}\n{text}")).unwrap();
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
        Command::new(env!("CARGO_BIN_EXE_vallee"))
            .args([
                "--config",
                file.to_str().unwrap(),
                command,
                "--kafka-brokers",
                &self.brokers(),
            ])
            .args(args)
            .args(["--data-dir", self.data_dir().to_str().unwrap()])
            .args(if args.contains(&"--http-addr") {
                &[][..]
            } else {
                &["--http-addr", "127.0.0.1:0"][..]
            })
            .env("RUST_LOG", child_log())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap()
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }
}

/// The log filter of child processes: `VALLEE_TEST_LOG` when set (a post-mortem with
/// `VALLEE_KEEP_TEST_DIRS=1`), else info without the Delta kernel's chatter.
pub fn child_log() -> String {
    std::env::var("VALLEE_TEST_LOG")
        .unwrap_or_else(|_| "info,buoyant_kernel=warn,deltalake_core=warn".into())
}

/// A child `vallee up` on the given addresses, logging to `log`.
pub fn spawn_up(
    data: &Path,
    broker: SocketAddr,
    http: SocketAddr,
    log: &Path,
    extra: &[&str],
) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_vallee"))
        .args(["up", "--data-dir", path_str(data)])
        .args([
            "--broker-listen",
            &broker.to_string(),
            "--http-addr",
            &http.to_string(),
        ])
        .args(extra)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap()
}

/// Valley traffic: `n` events of every stream, seeded.
pub fn valley_events(n: usize, seed: u64) -> Vec<Event> {
    let start = chrono::DateTime::parse_from_rfc3339("2026-06-03T08:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    valley_events_from(n, seed, start)
}

/// Readings of a bin in Gignac, `(minutes ago, fill level)` each, with `attributes` (an
/// object: `storedWasteKind`, `temperature`, …) added to every one.
pub fn bin_readings(bin: &str, attributes: serde_json::Value, levels: &[(i64, f64)]) -> Vec<Event> {
    let now = chrono::Utc::now();
    levels
        .iter()
        .map(|&(minutes, level)| {
            let time = now - chrono::Duration::minutes(minutes);
            let mut reading = serde_json::json!({"id": bin, "type": "WasteContainer",
                "dateObserved": time.to_rfc3339(), "fillingLevel": level,
                "location": {"type": "Point", "coordinates": [3.5512, 43.6521]}});
            for (name, value) in attributes.as_object().into_iter().flatten() {
                reading[name] = value.clone();
            }
            Event {
                stream: Stream::WasteContainers,
                key: bin.to_string(),
                payload: reading.to_string(),
                time,
            }
        })
        .collect()
}

/// Valley traffic from `start`: to a broker that applies retention (`vallee up`'s), beacon
/// sightings older than 24 h by their timestamps do not last.
pub fn valley_events_from(n: usize, seed: u64, start: chrono::DateTime<chrono::Utc>) -> Vec<Event> {
    use vallee::simulator::{Valley, ValleyShape};
    let mut valley = Valley::new(
        ValleyShape {
            seed,
            fault_ratio: 0.0,
            ..Default::default()
        },
        start,
    );
    let mut events = Vec::new();
    while events.len() < n {
        let until = valley.now() + chrono::Duration::minutes(30);
        valley.advance(until, &mut events);
    }
    events.truncate(n);
    events
}

/// Polls `condition` until it holds or `timeout` passes (then panics with `what`).
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Rows per table.
pub async fn counts(lake: &Lake) -> BTreeMap<Table, u64> {
    let mut out = BTreeMap::new();
    for t in Table::ALL {
        out.insert(t, lake.count(t).await.unwrap());
    }
    out
}

pub async fn total(lake: &Lake) -> u64 {
    counts(lake).await.values().sum()
}

fn scalar(batches: &[arrow::array::RecordBatch]) -> i64 {
    let col = batches[0].column(0);
    col.as_any()
        .downcast_ref::<Int64Array>()
        .map_or(0, |a| if a.is_null(0) { 0 } else { a.value(0) })
}

/// The values of a text column of a query's batches, in order (null as "").
pub fn strings(batches: &[arrow::array::RecordBatch], column: &str) -> Vec<String> {
    use arrow::array::AsArray;
    let mut out = Vec::new();
    for b in batches {
        if let Some(c) = b.column_by_name(column) {
            let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).expect("as text");
            let c = c.as_string::<i32>();
            out.extend((0..c.len()).map(|i| c.value(i).to_string()));
        }
    }
    out
}

/// Rows of a data table whose (topic, partition, offset) appears more than once.
pub async fn duplicates(lake: &Lake, table: Table) -> i64 {
    let (t, p, o) = if table == Table::DeadLetters {
        ("topic", "partition", "\"offset\"")
    } else {
        ("_topic", "_partition", "_offset")
    };
    let sql = format!(
        "SELECT count(*) - count(DISTINCT concat({t}, '/', CAST({p} AS VARCHAR), '/', CAST({o} AS VARCHAR))) FROM {}",
        table.name()
    );
    scalar(&lake.sql(&sql).await.unwrap())
}

/// Every (topic, partition, offset) of the produced messages is in exactly one table once:
/// checks counts and the absence of duplicates.
pub async fn assert_exactly_once(lake: &Lake, produced: u64) {
    let counts = counts(lake).await;
    let total: u64 = counts.values().sum();
    assert_eq!(
        total, produced,
        "rows over all tables vs produced: {counts:?}"
    );
    for t in Table::ALL {
        assert_eq!(duplicates(lake, t).await, 0, "duplicates in {t}");
    }
}

/// `GET path` on a local HTTP server: status code and body (the benches' own).
pub use vallee::bench::http_get;

/// A child process killed when the test ends, passed or failed.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a program a test needs from outside Cargo is installed (`check` runs
/// successfully). When it is not, the test skips, printing `missing` (what to install);
/// with `VALLEE_REQUIRE_PYTHON=1` (CI installs them all) its absence fails the test.
pub fn installed(check: &mut Command, missing: &str) -> bool {
    let present = check
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        assert!(
            std::env::var("VALLEE_REQUIRE_PYTHON").is_err(),
            "VALLEE_REQUIRE_PYTHON is set but {missing} is not installed"
        );
        eprintln!("skipped: {missing} is not installed");
    }
    present
}

/// Sends SIGTERM to a child.
pub fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for a child to exit, at most `timeout`.
pub async fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("child {} did not exit within {timeout:?}", child.id());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], vallee::broker::free_port().unwrap()))
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file under `dir` that contains `needle` (bytes).
pub fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

/// Column `col` of every batch, as integers (cast from any integer or time type).
pub fn i64s(batches: &[arrow::array::RecordBatch], col: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let c =
                arrow::compute::cast(b.column(col), &arrow::datatypes::DataType::Int64).unwrap();
            let a = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(&c).clone();
            (0..a.len()).map(move |i| a.value(i)).collect::<Vec<_>>()
        })
        .collect()
}

/// Column `col` of every batch, as text.
pub fn strs(batches: &[arrow::array::RecordBatch], col: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let c = arrow::compute::cast(b.column(col), &arrow::datatypes::DataType::Utf8).unwrap();
            let a = arrow::array::AsArray::as_string::<i32>(&c).clone();
            (0..a.len())
                .map(move |i| a.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}
