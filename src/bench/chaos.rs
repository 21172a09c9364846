//! `vallee bench chaos`: the whole hub killed again and again under a steady producer, then
//! exact accounting.
//!
//! A child `vallee up --no-simulate` (embedded broker, ingest, stream stage, API) runs on a
//! fresh data dir while this process produces bin readings at a steady rate to its broker.
//! The hub is SIGKILLed at random moments (some during its start-up, before it flows again)
//! and SIGTERMed a few times, and a burst of malformed payloads arrives in the middle. Each
//! restart's time to flow again (spawn → new rows in the lake) is recorded. At the end,
//! every message the broker acknowledged must be in `waste_containers` or `dead_letters`
//! exactly once (by its partition and offset), and every partition must have landed up to
//! its last acknowledged offset: any miss, duplicate or stall is printed and fails the run.
//!
//! The producer waits out the hub's absences (its messages are retried for 10 minutes), as
//! a field gateway would; a message it gave up on is not counted as acknowledged. Messages
//! the broker stored but never acknowledged (it died first) may land: they are counted apart.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use arrow::array::AsArray;
use arrow::datatypes::{Int32Type, Int64Type};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;
use vallee_lake::{Lake, LakeOptions};
use vallee_schemas::contract::{Stream, Table};

use super::{http_get, wait_ready};
use crate::cli::BenchChaosArgs;

/// One acknowledged message: its partition and offset.
type Landing = (i32, i64);

/// Runs the chaos benchmark and prints its report; fails when anything was lost,
/// duplicated or stuck.
pub async fn chaos(args: BenchChaosArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let broker: SocketAddr = ([127, 0, 0, 1], crate::broker::free_port()?).into();
    let http: SocketAddr = ([127, 0, 0, 1], crate::broker::free_port()?).into();
    let topic = Stream::WasteContainers.default_topic();
    let mut rng = StdRng::seed_from_u64(args.seed);
    let hub = HubProcess {
        data: &data,
        broker,
        http,
        partitions: args.partitions,
    };
    eprintln!(
        "[1/3] hub on {}, {} kills and {} graceful stops under {} readings/s…",
        dir.path().display(),
        args.kills,
        args.terms,
        args.rate
    );
    let mut child = hub.spawn(0)?;
    wait_ready(http, Duration::from_secs(180)).await?;
    let lake = Lake::open(LakeOptions {
        root: data.join("lake"),
        ..Default::default()
    })
    .await?;

    let (stop, stopped) = watch::channel(Phase::Steady);
    let producer = tokio::spawn(produce(broker, topic, args.rate, args.bins, stopped));

    let cycles = args.kills + args.terms;
    // Graceful stops spread over the run; every fourth kill hits the start-up.
    let terms: BTreeSet<usize> = (1..=args.terms)
        .map(|i| i * cycles / (args.terms + 1))
        .collect();
    let mut resumes = Vec::new();
    let (mut early, mut clean_stops, mut stalls) = (0, 0, Vec::new());
    let mut landed_before = landed_count(&lake).await;
    let mut spawned = Instant::now();
    for cycle in 0..cycles {
        if cycle == cycles / 2 {
            let _ = stop.send(Phase::MalformedBurst);
        }
        let killed_early = !terms.contains(&cycle) && cycle % 4 == 3;
        if killed_early {
            tokio::time::sleep(Duration::from_millis(rng.random_range(200..3000))).await;
            early += 1;
        } else {
            match flowing_again(&lake, landed_before, Duration::from_secs(120)).await {
                Some(()) => resumes.push(spawned.elapsed().as_secs_f64()),
                None => stalls.push(cycle),
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(500..5000))).await;
        }
        if terms.contains(&cycle) {
            signal(&child, "TERM")?;
            let status = wait_exit(&mut child, Duration::from_secs(60)).await?;
            clean_stops += usize::from(status.success());
        } else {
            child.kill()?;
            wait_exit(&mut child, Duration::from_secs(10)).await?;
        }
        landed_before = landed_count(&lake).await;
        child = hub.spawn(cycle + 1)?;
        spawned = Instant::now();
    }
    match flowing_again(&lake, landed_before, Duration::from_secs(120)).await {
        Some(()) => resumes.push(spawned.elapsed().as_secs_f64()),
        None => stalls.push(cycles),
    }

    eprintln!("[2/3] producer stopped; waiting for every acknowledged message to land…");
    let _ = stop.send(Phase::Stop);
    let produced = producer.await??;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(300);
    let accounting = loop {
        let accounting = Accounting::of(&lake, topic, &produced).await?;
        if accounting.complete() || Instant::now() > deadline {
            break accounting;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let catch_up = started.elapsed().as_secs_f64();
    let ready = matches!(http_get(http, "/readyz"), Ok((200, _)));

    eprintln!("[3/3] stopping the hub…");
    signal(&child, "TERM")?;
    let last_stop = wait_exit(&mut child, Duration::from_secs(60)).await?;

    resumes.sort_by(f64::total_cmp);
    let median = resumes.get(resumes.len() / 2).copied().unwrap_or(f64::NAN);
    let max = resumes.last().copied().unwrap_or(f64::NAN);
    println!(
        "\nvallee bench chaos (seed {}, {} partitions, {} readings/s)\n",
        args.seed, args.partitions, args.rate
    );
    println!("| measure | value |\n|---|---|");
    println!(
        "| SIGKILLs of the whole hub | {} ({early} during start-up) |",
        args.kills
    );
    println!("| SIGTERMs | {} ({clean_stops} clean exits) |", args.terms);
    println!(
        "| acknowledged messages | {} ({} malformed) |",
        produced.acked.len(),
        produced.malformed
    );
    println!("| producer gave up on | {} |", produced.failed);
    println!(
        "| landed exactly once | {} ({} in dead_letters) |",
        accounting.once, accounting.dead_letters
    );
    println!("| missing | {} |", accounting.missing.len());
    println!("| duplicated | {} |", accounting.duplicated.len());
    println!(
        "| landed without an acknowledgement (the broker died before acking) | {} |",
        accounting.unacked
    );
    println!(
        "| time to flow again after a restart | p50 {median:.1} s, max {max:.1} s ({} restarts measured) |",
        resumes.len()
    );
    println!("| restarts that never flowed again within 120 s | {stalls:?} |");
    println!("| every partition caught up after the producer stopped | {catch_up:.1} s |");
    println!("| /readyz at the end | {} |", if ready { 200 } else { 503 });
    println!(
        "| last graceful stop | {} |",
        if last_stop.success() {
            "clean"
        } else {
            "failed"
        }
    );
    if args.keep {
        let kept = dir.keep();
        println!("\nkept: {} (hub-N.log per start)", kept.display());
    }
    if !accounting.missing.is_empty() || !accounting.duplicated.is_empty() || !stalls.is_empty() {
        bail!(
            "chaos: {} missing (first {:?}), {} duplicated (first {:?}), stalled restarts {stalls:?}",
            accounting.missing.len(),
            accounting.missing.iter().take(5).collect::<Vec<_>>(),
            accounting.duplicated.len(),
            accounting.duplicated.iter().take(5).collect::<Vec<_>>(),
        );
    }
    Ok(())
}

/// How to start the hub under test.
struct HubProcess<'a> {
    data: &'a Path,
    broker: SocketAddr,
    http: SocketAddr,
    partitions: i32,
}

impl HubProcess<'_> {
    fn spawn(&self, start: usize) -> Result<Child> {
        std::fs::create_dir_all(self.data)?;
        let log = std::fs::File::create(self.data.join(format!("hub-{start}.log")))?;
        Command::new(std::env::current_exe()?)
            .args(["up", "--no-simulate", "--data-dir"])
            .arg(self.data)
            .args(["--broker-listen", &self.broker.to_string()])
            .args(["--http-addr", &self.http.to_string()])
            .args(["--partitions", &self.partitions.to_string()])
            .env(
                "RUST_LOG",
                "info,buoyant_kernel=warn,deltalake_core=warn,tansu_storage=warn",
            )
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting vallee up")
    }
}

/// What the producer is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Steady,
    /// Send a burst of malformed payloads once, then go on.
    MalformedBurst,
    Stop,
}

/// What the producer sent and the broker acknowledged.
#[derive(Debug, Default)]
struct Produced {
    acked: Vec<Landing>,
    malformed: usize,
    failed: usize,
}

/// Bin readings at `rate` per second (keyed by bin, so each partition gets its share)
/// until told to stop; then every delivery report awaited.
async fn produce(
    broker: SocketAddr,
    topic: &'static str,
    rate: u32,
    bins: u32,
    mut phase: watch::Receiver<Phase>,
) -> Result<Produced> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.to_string())
        .set("acks", "all")
        .set("linger.ms", "5")
        // Waits out the hub's absences, as a gateway buffering readings would.
        .set("message.timeout.ms", "600000")
        .set("reconnect.backoff.max.ms", "1000")
        .create()?;
    let produced = Arc::new(Mutex::new(Produced::default()));
    let mut inflight = FuturesUnordered::new();
    let tick = Duration::from_millis(20);
    let per_tick = (rate as f64 * tick.as_secs_f64()).max(1.0) as u32;
    let mut interval = tokio::time::interval(tick);
    let mut n: u64 = 0;
    let mut burst_sent = false;
    loop {
        let now = *phase.borrow_and_update();
        if now == Phase::Stop {
            break;
        }
        let mut payloads = Vec::new();
        if now == Phase::MalformedBurst && !burst_sent {
            burst_sent = true;
            for i in 0..300 {
                payloads.push((format!("bad-{i}"), malformed(i)));
            }
            produced.lock().expect("produced").malformed += 300;
        }
        for _ in 0..per_tick {
            let bin = format!("urn:ngsi-ld:WasteContainer:chaos-{:04}", n % bins as u64);
            payloads.push((bin.clone(), reading(&bin, n)));
            n += 1;
        }
        for (key, payload) in payloads {
            let record = FutureRecord::to(topic).key(&key).payload(&payload);
            match producer.send_result(record) {
                Ok(delivery) => inflight.push(delivery),
                Err((e, _)) => {
                    tracing::warn!(error = %e, "chaos producer: local queue refused a message");
                    produced.lock().expect("produced").failed += 1;
                }
            }
        }
        // Collect what was delivered so far without waiting.
        while let Some(Some(result)) = futures::FutureExt::now_or_never(inflight.next()) {
            record(&produced, result);
        }
        interval.tick().await;
    }
    while let Some(result) = inflight.next().await {
        record(&produced, result);
    }
    let produced = std::mem::take(&mut *produced.lock().expect("produced"));
    Ok(produced)
}

fn record(
    produced: &Mutex<Produced>,
    result: Result<
        rdkafka::producer::future_producer::OwnedDeliveryResult,
        futures::channel::oneshot::Canceled,
    >,
) {
    let mut produced = produced.lock().expect("produced");
    match result {
        Ok(Ok(delivery)) => produced.acked.push((delivery.partition, delivery.offset)),
        _ => produced.failed += 1,
    }
}

/// A valid bin reading (in Gignac, now).
fn reading(bin: &str, n: u64) -> String {
    serde_json::json!({
        "id": bin,
        "type": "WasteContainer",
        "dateObserved": chrono::Utc::now().to_rfc3339(),
        "fillingLevel": (n % 97) as f64 / 100.0,
        "storedWasteKind": "refuse",
        "location": {"type": "Point", "coordinates": [3.5512, 43.6521]},
    })
    .to_string()
}

/// Malformed payloads of the kinds broken gateways send.
fn malformed(i: usize) -> String {
    match i % 3 {
        0 => format!("{{\"id\": \"urn:ngsi-ld:WasteContainer:broken-{i}\", \"type\": "),
        1 => serde_json::json!({"id": format!("urn:ngsi-ld:WasteContainer:broken-{i}"),
            "type": "WasteContainer", "fillingLevel": "full"})
        .to_string(),
        _ => serde_json::json!({"id": format!("urn:ngsi-ld:WasteContainer:broken-{i}"),
            "type": "WasteContainer", "fillingLevel": 7.5,
            "location": {"type": "Point", "coordinates": [3.5512, 43.6521]}})
        .to_string(),
    }
}

/// Rows of the bins' table and dead letters (what the hub landed so far).
async fn landed_count(lake: &Lake) -> u64 {
    let bins = lake.count(Table::WasteContainers).await.unwrap_or(0);
    bins + lake.count(Table::DeadLetters).await.unwrap_or(0)
}

/// Waits until the lake holds more than `before` rows (the restarted hub flows again).
async fn flowing_again(lake: &Lake, before: u64, timeout: Duration) -> Option<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if landed_count(lake).await > before {
            return Some(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Every acknowledged message against what landed.
#[derive(Debug)]
struct Accounting {
    once: usize,
    dead_letters: usize,
    missing: Vec<Landing>,
    duplicated: Vec<Landing>,
    unacked: usize,
}

impl Accounting {
    async fn of(lake: &Lake, topic: &str, produced: &Produced) -> Result<Self> {
        let mut landed: BTreeMap<Landing, usize> = BTreeMap::new();
        let mut dead_letters = 0;
        for query in [
            format!("SELECT _partition, _offset FROM waste_containers WHERE _topic = '{topic}'"),
            format!("SELECT \"partition\", \"offset\" FROM dead_letters WHERE topic = '{topic}'"),
        ] {
            let dead = query.contains("dead_letters");
            for batch in lake.sql(&query).await? {
                let partitions = batch.column(0).as_primitive::<Int32Type>();
                let offsets = batch.column(1).as_primitive::<Int64Type>();
                for row in 0..batch.num_rows() {
                    *landed
                        .entry((partitions.value(row), offsets.value(row)))
                        .or_default() += 1;
                    dead_letters += usize::from(dead);
                }
            }
        }
        let acked: BTreeSet<Landing> = produced.acked.iter().copied().collect();
        Ok(Accounting {
            once: acked.iter().filter(|l| landed.get(l) == Some(&1)).count(),
            dead_letters,
            missing: acked
                .iter()
                .filter(|l| !landed.contains_key(l))
                .copied()
                .collect(),
            duplicated: landed
                .iter()
                .filter(|(_, n)| **n > 1)
                .map(|(l, _)| *l)
                .collect(),
            unacked: landed.keys().filter(|l| !acked.contains(l)).count(),
        })
    }

    fn complete(&self) -> bool {
        self.missing.is_empty()
    }
}

fn signal(child: &Child, name: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -{name} failed");
    Ok(())
}

async fn wait_exit(child: &mut Child, timeout: Duration) -> Result<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            child.kill()?;
            bail!("the hub did not exit within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
