//! The built-in simulator: realistic traffic for the valley's topics (`vallee simulate`,
//! and inside `vallee up`).
//!
//! The model ([`valley`]) runs on a simulated clock `speed` times faster than real time;
//! events are produced with their event time as the Kafka timestamp, keyed by entity id
//! so each sensor's readings stay ordered within a partition.

pub mod citizens;
pub mod field;
pub mod valley;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use vallee_kafka::KafkaOptions;
use vallee_schemas::contract::Stream;

pub use valley::{BinLayout, Event, Valley, ValleyShape, fill_pace};

/// Options of the simulator (the `[simulator]` section of the file). `Default` runs on a
/// laptop against the embedded broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorOptions {
    /// Brokers and the topic of each stream, shared with the stages (the file's `[kafka]`
    /// and `[topics]` sections).
    #[serde(skip)]
    pub kafka: KafkaOptions,
    /// Simulated seconds per real second (60: an hour a minute).
    pub speed: f64,
    /// Cap on messages per second; the simulated clock waits when the cap binds.
    pub max_rate: u32,
    /// Stop after this long (real time); `None`: until shutdown. Only `vallee simulate
    /// --duration` sets it: inside `vallee up` the simulator's end would stop the hub.
    #[serde(skip)]
    pub duration: Option<Duration>,
    /// Simulated start time; `None`: [`lively_start`] of now.
    #[serde(skip)]
    pub start: Option<DateTime<Utc>>,
    /// The size of the valley: `seed`, `bins`, `trucks`, `fault_ratio`.
    #[serde(flatten)]
    pub shape: ValleyShape,
    /// The part of the traffic sent through the hub's field doors ([`field`]); `None`:
    /// everything straight to Kafka. Set by `vallee up` when its API runs.
    #[serde(skip)]
    pub field: Option<field::FieldPlan>,
}

impl Default for SimulatorOptions {
    fn default() -> Self {
        SimulatorOptions {
            kafka: KafkaOptions::default(),
            speed: 60.0,
            max_rate: 2_000,
            duration: None,
            start: None,
            shape: ValleyShape::default(),
            field: None,
        }
    }
}

impl SimulatorOptions {
    /// The clock runs forward, the rate cap lets something through, the fault ratio is a
    /// share.
    pub fn validate(&self) -> Result<()> {
        if !(self.speed.is_finite() && self.speed > 0.0) {
            anyhow::bail!("speed must be more than 0 (simulated seconds per second)");
        }
        if self.max_rate == 0 {
            anyhow::bail!("max_rate must be at least 1 (messages per second)");
        }
        if !(0.0..=1.0).contains(&self.shape.fault_ratio) {
            anyhow::bail!("fault_ratio must be between 0 and 1");
        }
        Ok(())
    }
}

/// What a simulator run produced.
#[derive(Debug, Default, Clone)]
pub struct SimulatorReport {
    pub produced: u64,
    pub per_stream: BTreeMap<Stream, u64>,
    pub simulated_until: Option<DateTime<Utc>>,
    /// Events the field doors accepted (LoRaWAN uplinks, gateways' batches), and refused.
    pub through_doors: u64,
    pub refused_at_doors: u64,
}

/// A producer of `brokers` tuned for throughput with safe delivery (see [`kafka_producer`]).
pub fn producer(brokers: &str) -> Result<FutureProducer> {
    kafka_producer(&KafkaOptions {
        brokers: brokers.to_string(),
        ..Default::default()
    })
}

/// A producer tuned for throughput with safe delivery (acks from the broker, lz4: Tansu's
/// SQLite engine does not take snappy), then `kafka`'s overrides.
pub fn kafka_producer(kafka: &KafkaOptions) -> Result<FutureProducer> {
    let settings = [
        ("acks", "all"),
        ("compression.type", "lz4"),
        ("linger.ms", "5"),
        ("batch.num.messages", "5000"),
        ("queue.buffering.max.messages", "200000"),
        ("message.timeout.ms", "60000"),
    ]
    .map(|(k, v)| (k, v.to_string()));
    kafka
        .client_config(&settings)
        .create()
        .context("creating the Kafka producer")
}

/// Produces events, waiting for every delivery report; returns how many were delivered.
pub async fn produce(
    producer: &FutureProducer,
    topics: &BTreeMap<Stream, String>,
    events: &[Event],
) -> Result<u64> {
    let mut inflight = FuturesUnordered::new();
    let mut delivered = 0u64;
    for e in events {
        let topic = &topics[&e.stream];
        let mut record = FutureRecord::to(topic)
            .key(&e.key)
            .payload(&e.payload)
            .timestamp(e.time.timestamp_millis());
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    inflight.push(delivery);
                    break;
                }
                Err((err, back)) => {
                    // Local queue full: wait for some deliveries, then retry.
                    record = back;
                    match inflight.next().await {
                        Some(r) => delivered += check(r)?,
                        None => return Err(anyhow::anyhow!("producer refused a message: {err}")),
                    }
                }
            }
        }
        while inflight.len() > 50_000 {
            if let Some(r) = inflight.next().await {
                delivered += check(r)?;
            }
        }
    }
    while let Some(r) = inflight.next().await {
        delivered += check(r)?;
    }
    Ok(delivered)
}

fn check(
    r: Result<
        rdkafka::producer::future_producer::OwnedDeliveryResult,
        futures::channel::oneshot::Canceled,
    >,
) -> Result<u64> {
    match r {
        Ok(Ok(_)) => Ok(1),
        Ok(Err((e, _))) => Err(anyhow::anyhow!("delivery failed: {e}")),
        Err(_) => Err(anyhow::anyhow!("delivery report lost")),
    }
}

/// Runs the simulator until `shutdown` or the configured duration.
pub async fn run(
    options: SimulatorOptions,
    shutdown: CancellationToken,
) -> Result<SimulatorReport> {
    let producer = kafka_producer(&options.kafka)?;
    let start = options.start.unwrap_or_else(|| lively_start(Utc::now()));
    let mut valley = Valley::new(options.shape.clone(), start);
    let mut field = options.field.clone().map(field::Field::new);
    let mut report = SimulatorReport::default();
    let began = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut events = Vec::new();
    let budget_per_tick = (options.max_rate as f64 / 5.0).max(1.0) as usize;
    let mut last_progress = Duration::ZERO;
    tracing::info!(speed = options.speed, max_rate = options.max_rate, %start, "simulator started");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if options.duration.is_some_and(|d| began.elapsed() >= d) {
            break;
        }
        // Advance the simulated clock, unless the rate cap is holding events back.
        if events.len() < budget_per_tick {
            let target = start
                + chrono::Duration::milliseconds(
                    (began.elapsed().as_secs_f64() * options.speed * 1000.0) as i64,
                );
            valley.advance(target, &mut events);
        }
        let now = Utc::now();
        let mut batch: Vec<Event> = events.drain(..events.len().min(budget_per_tick)).collect();
        if let Some(field) = &mut field {
            field.take(&mut batch, valley.now());
        }
        for e in &mut batch {
            e.time = record_time(e.time, now);
        }
        report.produced += produce(&producer, &options.kafka.topics, &batch).await?;
        for e in &batch {
            *report.per_stream.entry(e.stream).or_default() += 1;
        }
        if let Some(field) = &mut field {
            field.send().await;
            (report.through_doors, report.refused_at_doors) = (field.accepted, field.refused);
        }
        report.simulated_until = Some(valley.now());
        // Progress of a run with a duration, every 5 s, on stderr (stdout is the report).
        if let Some(d) = options.duration
            && began.elapsed() >= last_progress + Duration::from_secs(5)
        {
            last_progress = began.elapsed();
            eprintln!(
                "simulate: {:>3.0} % ({:.0} s of {} s), {} events, simulated clock {}",
                100.0 * began.elapsed().as_secs_f64() / d.as_secs_f64(),
                began.elapsed().as_secs_f64(),
                d.as_secs(),
                report.produced,
                valley.now().format("%Y-%m-%d %H:%M")
            );
        }
    }
    tracing::info!(
        produced = report.produced,
        through_doors = report.through_doors,
        refused_at_doors = report.refused_at_doors,
        "simulator stopped"
    );
    Ok(report)
}

/// How far back a record's timestamp may go: well within the shortest retention (beacon
/// sightings, 24 h).
const RECORD_TIME_FLOOR: chrono::Duration = chrono::Duration::hours(6);

/// The Kafka timestamp of an event produced `now`: its event time, but never more than
/// [`RECORD_TIME_FLOOR`] back. Brokers apply retention by record timestamp; a run started on
/// a weekend evening begins on the last working morning, more than 24 h back, and the
/// embedded broker deleted its first beacon sightings before ingest read them (ingest then
/// stops on the gap, rightly). The event time itself travels in the payload
/// (`dateObserved`), which the hub reads first; an event ahead of `now` keeps its own time,
/// so the hub's `future` check passes as before.
pub fn record_time(event: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    event.max(now - RECORD_TIME_FLOOR)
}

/// Where a simulation starting `now` begins: now during a working day (07:00–18:00 in the
/// valley, Monday to Friday), else the last working morning at 07:30. At night or on a
/// Sunday the activity zone is empty and the trucks are parked: a newcomer who starts the
/// hub then would see a valley asleep.
pub fn lively_start(now: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::{Datelike, TimeZone, Timelike, Weekday};
    let paris = chrono_tz::Europe::Paris;
    let local = now.with_timezone(&paris);
    let working = |d: Weekday| !matches!(d, Weekday::Sat | Weekday::Sun);
    if working(local.weekday()) && (7..18).contains(&local.hour()) {
        return now;
    }
    let mut day = local.date_naive();
    if local.hour() < 7 || !working(local.weekday()) {
        day = day.pred_opt().unwrap_or(day);
    }
    while !working(day.weekday()) {
        day = day.pred_opt().unwrap_or(day);
    }
    let morning = day.and_hms_opt(7, 30, 0).expect("a valid time");
    paris
        .from_local_datetime(&morning)
        .earliest()
        .map_or(now, |t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod lively_tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_record_is_never_stamped_older_than_retention_allows() {
        let now = utc("2026-12-05T20:12:00Z");
        // Saturday evening: the run begins on Friday morning, 37 h back.
        let start = lively_start(now);
        assert!(now - start > chrono::Duration::hours(24));
        let stamped = record_time(start, now);
        assert!(
            now - stamped < chrono::Duration::hours(24),
            "within beacons' retention"
        );
        // Recent and simulated-ahead events keep their own time.
        let recent = now - chrono::Duration::minutes(5);
        assert_eq!(record_time(recent, now), recent);
        let ahead = now + chrono::Duration::minutes(50);
        assert_eq!(record_time(ahead, now), ahead);
    }

    #[test]
    fn nights_and_weekends_start_on_the_last_working_morning() {
        // Wednesday 10:00 Paris: now.
        assert_eq!(
            lively_start(utc("2026-11-25T09:00:00Z")),
            utc("2026-11-25T09:00:00Z")
        );
        // Saturday 23:22 Paris: Friday 07:30 Paris.
        assert_eq!(
            lively_start(utc("2026-11-28T22:22:00Z")),
            utc("2026-11-27T06:30:00Z")
        );
        // Monday 05:00 Paris: Friday 07:30.
        assert_eq!(
            lively_start(utc("2026-11-30T04:00:00Z")),
            utc("2026-11-27T06:30:00Z")
        );
        // Tuesday 20:00 Paris (summer time): Tuesday 07:30.
        assert_eq!(
            lively_start(utc("2026-06-02T18:00:00Z")),
            utc("2026-06-02T05:30:00Z")
        );
    }
}
