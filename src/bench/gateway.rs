//! `vallee bench gateway`: the field doors against the broker behind them, in the same run.
//! `vallee serve` runs as a child process (the real HTTP server, its limits, its producer);
//! the bench posts bin readings in NDJSON batches to `POST /ingest/v1/waste_containers`
//! and single ChirpStack uplinks to `POST /ingest/v1/chirpstack`, from several clients at
//! once, and compares each with a plain rdkafka producer sending the same events in the
//! same shape (batches of the same size, the same number of senders, the door's producer
//! settings: `acks=all`, `linger.ms=5`) to a topic of the same broker. Every answer is
//! checked (each item accepted), then the topics' offsets: each event is in the topic once.
//! Reported: events per second and the latency of an answer (HTTP: the response, which
//! comes once the broker acknowledged every item; raw: the batch's acknowledgements).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use chrono::{DateTime, Utc};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use vallee_kafka::KafkaOptions;
use vallee_schemas::contract::Stream;

use super::{percentile, wait_ready};
use crate::cli::BenchGatewayArgs;

/// The key the bench's gateway posts with.
const KEY: &str = "bench-gateway-key";

/// One phase's outcome: events sent, seconds, and each answer's latency in ms.
struct Phase {
    events: usize,
    secs: f64,
    latencies_ms: Vec<u32>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.events as f64 / self.secs
    }

    fn line(&self, name: &str, reference: Option<&Phase>) -> String {
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_unstable();
        let ratio = reference.map_or("[reference]".to_string(), |r| {
            format!("{:.2} of raw", self.rate() / r.rate())
        });
        format!(
            "  {name:<28}{:>9.0} ev/s  answer p50 {} ms, p99 {} ms, max {} ms  {ratio}",
            self.rate(),
            percentile(&sorted, 0.5),
            percentile(&sorted, 0.99),
            sorted.last().copied().unwrap_or(0),
        )
    }
}

/// Bin reading `i` of the bench: distinct (so no retry memory answers it), dated within
/// the last hour.
fn reading(i: usize, base: DateTime<Utc>) -> Vec<u8> {
    let date = base + chrono::Duration::milliseconds(i as i64);
    json!({"id": format!("urn:ngsi-ld:WasteContainer:bench-{}", i % 500),
        "type": "WasteContainer", "dateObserved": date.to_rfc3339(),
        "fillingLevel": (i % 100) as f64 / 100.0,
        "location": {"type": "Point", "coordinates": [3.5512, 43.6521]}})
    .to_string()
    .into_bytes()
}

/// The DevEUI of bench device `d`.
fn dev_eui(d: usize) -> String {
    format!("B0B0{d:012X}")
}

/// Uplink `k` (ChirpStack v4, JSON marshaler): device `k % devices`, its own frame
/// counter, a distance and a battery.
fn uplink(template: &Value, k: usize, devices: usize, base: DateTime<Utc>) -> Vec<u8> {
    let mut up = template.clone();
    up["deviceInfo"]["devEui"] = json!(dev_eui(k % devices));
    up["fCnt"] = json!(k / devices);
    up["time"] = json!((base + chrono::Duration::milliseconds(k as i64)).to_rfc3339());
    let distance = 200 + (k % 900) as u16;
    let bytes = [(distance >> 8) as u8, distance as u8, 80];
    up["data"] = json!(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        bytes
    ));
    serde_json::to_vec(&up).expect("a value serializes")
}

/// Runs `senders` workers over `jobs`, each job through `send` (which returns when its
/// answer came); the phase's figures.
async fn run_phase<F, Fut>(jobs: Vec<Vec<Vec<u8>>>, senders: usize, send: F) -> Result<Phase>
where
    F: Fn(Vec<Vec<u8>>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let events = jobs.iter().map(Vec::len).sum();
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let send = Arc::new(send);
    let started = Instant::now();
    let workers: Vec<_> = (0..senders)
        .map(|_| {
            let (jobs, next, send) = (jobs.clone(), next.clone(), send.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else {
                        return Ok::<_, anyhow::Error>(latencies);
                    };
                    let asked = Instant::now();
                    send(job.clone()).await?;
                    latencies.push(asked.elapsed().as_millis() as u32);
                }
            })
        })
        .collect();
    let mut latencies_ms = Vec::new();
    for worker in workers {
        latencies_ms.extend(worker.await??);
    }
    Ok(Phase {
        events,
        secs: started.elapsed().as_secs_f64(),
        latencies_ms,
    })
}

/// Runs the gateway benchmark and prints its report.
pub async fn gateway(args: BenchGatewayArgs) -> Result<()> {
    ensure!(args.batch >= 1 && args.senders >= 1 && args.devices >= 1);
    let dir = tempfile::tempdir()?;
    let broker = super::BenchBroker::start(
        args.kafka_brokers.as_deref(),
        args.broker_storage,
        &dir.path().join("broker"),
    )
    .await?;
    eprintln!("[0/4] on {}", broker.describe());
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let topic = |name: &str| format!("bench-{run}.{name}");
    let kafka = KafkaOptions {
        brokers: broker.brokers.clone(),
        topics: (Stream::ALL.iter())
            .map(|s| (*s, topic(s.name())))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into(),
        ..Default::default()
    };
    let mut wanted = vallee_kafka::hub_topics(&kafka.topics);
    let (raw_batches, raw_single) = (topic("raw-batches"), topic("raw-single"));
    for raw in [&raw_batches, &raw_single] {
        wanted.push((raw.clone(), vallee_kafka::Retention::Default));
    }
    vallee_kafka::ensure_topics(&kafka, &wanted, args.partitions).await?;

    // `vallee serve` with a gateway, the bench's devices, and limits a single bench
    // client does not hit (the limits stay on the path; only their figures change).
    let mut config = String::from("[topics]\n");
    for s in Stream::ALL {
        config += &format!("{} = \"{}\"\n", s.name(), topic(s.name()));
    }
    config += &format!(
        "\n[api]\ntoken_secret = \"bench-gateway-secret\"\nrequests_per_minute_per_address = 100000000\n\n\
         [[api.gateways]]\nname = \"bench\"\nkey_sha256 = \"{}\"\nstreams = [\"waste_containers\"]\n",
        vallee_graphql::auth::sha256_hex(KEY)
    );
    for d in 0..args.devices {
        config += &format!(
            "\n[[api.devices]]\ndev_eui = \"{}\"\nentity_id = \"urn:ngsi-ld:WasteContainer:bench-lora-{d}\"\n\
             profile = \"ultrasonic_fill\"\ndepth_mm = 1200.0\nlatitude = 43.6521\nlongitude = 3.5512\n",
            dev_eui(d)
        );
    }
    let config_path = dir.path().join("bench-gateway.toml");
    std::fs::write(&config_path, config)?;
    let http: std::net::SocketAddr =
        format!("127.0.0.1:{}", crate::broker::free_port()?).parse()?;
    let log = dir.path().join("serve.log");
    let mut serve = std::process::Command::new(std::env::current_exe()?)
        .arg("--config")
        .arg(&config_path)
        .args(["serve", "--kafka-brokers", &broker.brokers])
        .args(["--http-addr", &http.to_string()])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let outcome = measure(&args, &kafka, http, &raw_batches, &raw_single).await;
    let _ = serve.kill();
    let _ = serve.wait();
    let (raw_b, http_b, raw_1, hook, note) = outcome.with_context(|| {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        format!(
            "`vallee serve` said, last:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    })?;

    println!(
        "vallee bench gateway — {} readings in batches of {}, {} uplinks of {} devices, {} senders, on {}",
        args.events,
        args.batch,
        args.uplinks,
        args.devices,
        args.senders,
        broker.describe()
    );
    println!("{}", raw_b.line("raw produce, batches", None));
    println!("{}", http_b.line("POST /ingest/v1/{stream}", Some(&raw_b)));
    println!("{}", raw_1.line("raw produce, one by one", None));
    println!("{}", hook.line("ChirpStack webhook", Some(&raw_1)));
    println!("  {note}");
    drop(broker);
    Ok(())
}

/// The four phases, then the offsets check.
async fn measure(
    args: &BenchGatewayArgs,
    kafka: &KafkaOptions,
    http: std::net::SocketAddr,
    raw_batches: &str,
    raw_single: &str,
) -> Result<(Phase, Phase, Phase, Phase, String)> {
    wait_ready(http, Duration::from_secs(120))
        .await
        .context("`vallee serve` did not get ready")?;
    let base = Utc::now() - chrono::Duration::minutes(50);
    let readings: Vec<Vec<u8>> = (0..args.events).map(|i| reading(i, base)).collect();
    let template: Value =
        serde_json::from_str(include_str!("../../tests/fixtures/chirpstack/uplink.json"))?;
    let uplinks: Vec<Vec<u8>> = (0..args.uplinks)
        .map(|k| uplink(&template, k, args.devices, base))
        .collect();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()?;
    let produce = |topic: String| {
        let producer = producer.clone();
        move |batch: Vec<Vec<u8>>| {
            let (producer, topic) = (producer.clone(), topic.clone());
            async move {
                let sends = batch.iter().map(|payload| {
                    producer.send(
                        FutureRecord::<(), _>::to(&topic).payload(payload),
                        Duration::from_secs(0),
                    )
                });
                for sent in futures::future::join_all(sends).await {
                    sent.map_err(|(e, _)| anyhow::anyhow!("not acknowledged: {e}"))?;
                }
                Ok(())
            }
        }
    };
    let client = reqwest::Client::new();
    let post = |path: &'static str, ndjson: bool| {
        let client = client.clone();
        move |batch: Vec<Vec<u8>>| {
            let client = client.clone();
            let expected = batch.len();
            async move {
                let body = if ndjson {
                    batch.join(&b'\n')
                } else {
                    batch.concat()
                };
                let answer = client
                    .post(format!("http://{http}{path}"))
                    .bearer_auth(KEY)
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await?;
                let status = answer.status();
                let answer: Value = answer.json().await.unwrap_or_default();
                if !status.is_success() || answer["accepted"].as_u64() != Some(expected as u64) {
                    bail!("{path} answered {status}: {answer}");
                }
                Ok(())
            }
        }
    };
    let chunks = |events: &[Vec<u8>], size: usize| -> Vec<Vec<Vec<u8>>> {
        events.chunks(size).map(<[Vec<u8>]>::to_vec).collect()
    };
    eprintln!(
        "[1/4] raw produce of the readings, batches of {}…",
        args.batch
    );
    let raw_b = run_phase(
        chunks(&readings, args.batch),
        args.senders,
        produce(raw_batches.to_string()),
    )
    .await?;
    eprintln!("[2/4] the same readings through POST /ingest/v1/waste_containers…");
    let http_b = run_phase(
        chunks(&readings, args.batch),
        args.senders,
        post("/ingest/v1/waste_containers", true),
    )
    .await?;
    eprintln!("[3/4] raw produce of single events…");
    let raw_1 = run_phase(
        chunks(&readings[..args.uplinks.min(readings.len())], 1),
        args.senders,
        produce(raw_single.to_string()),
    )
    .await?;
    eprintln!("[4/4] uplinks through the ChirpStack webhook, one per request…");
    let hook = run_phase(
        chunks(&uplinks, 1),
        args.senders,
        post("/ingest/v1/chirpstack?event=up", false),
    )
    .await?;

    let in_topic = |topic: &str| -> Result<i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &kafka.brokers)
            .create()?;
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let mut n = 0;
        for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
            n += high - low;
        }
        Ok(n)
    };
    let waste = kafka.topics.topic(Stream::WasteContainers).to_string();
    let landed = in_topic(&waste)?;
    let sent = (args.events + args.uplinks) as i64;
    let raw_landed = in_topic(raw_batches)?;
    if args.broker_storage == crate::broker::BrokerStorage::Memory && args.kafka_brokers.is_none() {
        // Tansu's memory engine is known to lose records: the count says what it kept,
        // the check is for a broker that keeps what it acknowledges.
        let note = format!(
            "every item accepted; the memory engine kept {landed} of {sent} door events and {raw_landed} of {} raw ones (the offsets check needs --broker-storage sqlite or a real broker)",
            args.events
        );
        return Ok((raw_b, http_b, raw_1, hook, note));
    }
    ensure!(landed == sent, "{landed} events in {waste}, {sent} sent");
    ensure!(
        raw_landed == args.events as i64,
        "{raw_landed} raw events kept"
    );
    let note = "every item accepted, each event in its topic once (offsets checked)".to_string();
    Ok((raw_b, http_b, raw_1, hook, note))
}
