//! `vallee bench ingest` and `vallee bench stream`: rates measured against a reference
//! taken in the same run (the raw consume rate of the same topics, a plain DataFusion batch
//! query over the same file), never against a fixed number. `vallee bench chaos`: the whole
//! hub killed again and again under load, then exact accounting and restart times.
//! `vallee bench gateway`: the field doors against a plain producer of the same events.

mod chaos;
mod cpu;
mod forecast;
mod gateway;
mod ingest;
mod rounds;
mod stream;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use vallee_ingest::IngestOptions;

pub use chaos::chaos;
pub use cpu::{CpuSnapshot, CpuUse};
pub use forecast::forecast;
pub use gateway::gateway;
pub use ingest::ingest;
pub use rounds::rounds;
pub use stream::stream;

use crate::broker::BrokerStorage;
use crate::simulator::{Event, Valley, ValleyShape};

/// The broker a bench runs against: `external` if given (any Kafka-protocol broker: the
/// bench's topics are its own, named per run), else `vallee broker` started as a child
/// process on `storage` with its data under `dir`, killed when dropped. A process
/// of its own, so the bench's CPU figures are the stage's, not the broker's.
pub(crate) struct BenchBroker {
    child: Option<(std::process::Child, BrokerStorage)>,
    pub brokers: String,
}

impl BenchBroker {
    pub(crate) async fn start(
        external: Option<&str>,
        storage: BrokerStorage,
        dir: &std::path::Path,
    ) -> Result<Self> {
        if let Some(brokers) = external {
            return Ok(BenchBroker {
                child: None,
                brokers: brokers.to_string(),
            });
        }
        let port = crate::broker::free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let storage_name = clap::ValueEnum::to_possible_value(&storage)
            .map(|v| v.get_name().to_string())
            .unwrap_or_default();
        let child = std::process::Command::new(std::env::current_exe()?)
            .args([
                "broker",
                "--broker-listen",
                &listen,
                "--storage",
                &storage_name,
            ])
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", "warn,tansu_broker=error,tansu_storage=error")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let broker = BenchBroker {
            child: Some((child, storage)),
            brokers: listen.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect_timeout(&listen.parse()?, Duration::from_millis(200))
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("`vallee broker` did not listen on {listen} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(broker)
    }

    /// The broker's process id, when it is the bench's child.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|(c, _)| c.id())
    }

    /// What the report calls it.
    pub(crate) fn describe(&self) -> String {
        match &self.child {
            Some((_, BrokerStorage::Sqlite)) => {
                "`vallee broker` (Tansu on SQLite, synchronous=FULL, its own process)".into()
            }
            Some((_, BrokerStorage::SqliteNormalSync)) => {
                "`vallee broker --storage sqlite-normal-sync` (Tansu on SQLite, synchronous=NORMAL, its own process)".into()
            }
            Some((_, BrokerStorage::Memory)) => {
                "`vallee broker --storage memory` (Tansu's memory engine, its own process)".into()
            }
            None => format!("the broker at {}", self.brokers),
        }
    }
}

impl Drop for BenchBroker {
    fn drop(&mut self) {
        if let Some((child, _)) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Simulated traffic: `n` events of the valley model (all five streams), a `fault_ratio`
/// of them malformed.
pub fn valley_events(n: usize, start: DateTime<Utc>, fault_ratio: f64) -> Vec<Event> {
    let mut valley = Valley::new(
        ValleyShape {
            fault_ratio,
            ..Default::default()
        },
        start,
    );
    let mut events = Vec::with_capacity(n);
    while events.len() < n {
        let until = valley.now() + chrono::Duration::hours(1);
        valley.advance(until, &mut events);
    }
    events.truncate(n);
    events
}

/// [`valley_events`] all dated before `end`: traffic sent live, stamped with the moment of
/// sending, must not be dated ahead of it (decoding refuses events more than an hour
/// ahead of their record). The valley's rate depends on the hour, so the start moves back
/// until the last event falls before `end`.
pub fn valley_events_before(n: usize, end: DateTime<Utc>, fault_ratio: f64) -> Vec<Event> {
    let mut start = end - chrono::Duration::hours(1);
    loop {
        let events = valley_events(n, start, fault_ratio);
        let last = events.iter().map(|e| e.time).max().unwrap_or(start);
        if last <= end {
            return events;
        }
        start -= last - end + chrono::Duration::minutes(10);
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Seconds to consume `expected` messages from the beginning of every partition, with the
/// same client settings as ingest and nothing else done per message.
async fn raw_consume(options: &IngestOptions, expected: u64) -> Result<f64> {
    let mut cfg = vallee_ingest::consumer::consumer_config(options);
    cfg.set("group.id", format!("{}-raw", options.group_id));
    let consumer: BaseConsumer = cfg.create()?;
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for t in metadata
        .topics()
        .iter()
        .filter(|t| options.kafka.topics.stream_of(t.name()).is_some())
    {
        for p in t.partitions() {
            tpl.add_partition_offset(t.name(), p.id(), Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut n = 0u64;
        let mut bytes = 0usize;
        while n < expected {
            if started.elapsed() > Duration::from_secs(600) {
                bail!("raw consume stalled at {n} of {expected}");
            }
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                bytes += rdkafka::Message::payload(&m).map_or(0, <[u8]>::len);
                n += 1;
            }
        }
        std::hint::black_box(bytes);
        Ok(started.elapsed().as_secs_f64())
    })
    .await?
}

/// Waits until the hub at `http` says it is ready.
pub(crate) async fn wait_ready(http: std::net::SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if matches!(http_get(http, "/readyz"), Ok((200, _))) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the hub was not ready within {timeout:?}")
}

/// `GET path` over a fresh connection: the status and body (the e2e tests use it too).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((
        status,
        text.split("\r\n\r\n").nth(1).unwrap_or_default().into(),
    ))
}
