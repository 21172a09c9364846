//! `vallee bench ingest`: the ingest rate into Delta against the raw consume rate of the
//! same topics, measured in the same run on `vallee broker` (or any broker), then lake freshness
//! (produce → visible) under a live load, and peak memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use vallee_ingest::{IngestOptions, IngestStats};
use vallee_kafka::KafkaOptions;
use vallee_lake::{Lake, LakeOptions};
use vallee_schemas::contract::Stream;

use super::{CpuSnapshot, percentile, raw_consume, valley_events, valley_events_before};
use crate::cli::BenchIngestArgs;
use crate::simulator;

/// Runs the ingest benchmark and prints its report. The lake is a temporary folder, or,
/// when `lake` names a bucket (`--lake s3://…`), a prefix of its own under it.
pub async fn ingest(args: BenchIngestArgs, lake: &LakeOptions) -> Result<()> {
    if args.members > 1 && !matches!(args.membership, vallee_kafka::Membership::Group) {
        bail!("several --members share the partitions through a group: add --membership group");
    }
    let dir = tempfile::tempdir()?;
    let broker = super::BenchBroker::start(
        args.kafka_brokers.as_deref(),
        args.broker_storage,
        &dir.path().join("broker"),
    )
    .await?;
    eprintln!("[0/4] on {}", broker.describe());
    let brokers = broker.brokers.clone();
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let topics: BTreeMap<Stream, String> = Stream::SENSORS
        .iter()
        .map(|s| (*s, format!("bench-{run}.{}", s.name())))
        .collect();
    let kafka = KafkaOptions {
        brokers: brokers.clone(),
        topics: topics.clone().into(),
        ..Default::default()
    };
    let options = IngestOptions {
        kafka: kafka.clone(),
        group_id: format!("bench-{run}"),
        membership: args.membership,
        ..Default::default()
    };
    vallee_kafka::ensure_topics(
        &kafka,
        &vallee_kafka::hub_topics(&kafka.topics),
        args.partitions,
    )
    .await?;

    eprintln!(
        "[1/4] producing {} valley events to 5 fresh topics ({} partitions each)…",
        args.events, args.partitions
    );
    let events = valley_events(
        args.events,
        DateTime::parse_from_rfc3339("2026-05-04T00:00:00Z")?.with_timezone(&Utc),
        0.001,
    );
    let producer = simulator::producer(&brokers)?;
    let started = Instant::now();
    let produced = simulator::produce(&producer, &topics, &events).await?;
    let produce_secs = started.elapsed().as_secs_f64();

    eprintln!("[2/4] raw rdkafka consume of the backlog…");
    let raw_cpu = CpuSnapshot::take(broker.pid());
    let raw_secs = raw_consume(&options, produced).await?;
    let raw_cpu = CpuSnapshot::take(broker.pid()).since(&raw_cpu);

    eprintln!("[3/4] ingest of the same backlog into Delta…");
    let lake_options = LakeOptions {
        root: dir.path().join("lake"),
        url: lake
            .url
            .as_ref()
            .map(|u| format!("{}/bench-{run}", u.trim_end_matches('/'))),
        storage: lake.storage.clone(),
        ..Default::default()
    };
    let lake_place = lake_options
        .url
        .clone()
        .unwrap_or_else(|| "a folder on this disk".into());
    let lake = Arc::new(Lake::open(lake_options.clone()).await?);
    let stats = Arc::new(IngestStats::default());
    let shutdown = CancellationToken::new();
    let ingest_cpu = CpuSnapshot::take(broker.pid());
    let ingest_started = Instant::now();
    // Members as separate processes would be: a lake handle each (their commits meet in
    // the tables' logs), one group; the counters are shared to sum what they land.
    let mut tasks = Vec::new();
    for member in 0..args.members {
        let lake = if member == 0 {
            lake.clone()
        } else {
            Arc::new(Lake::open(lake_options.clone()).await?)
        };
        tasks.push(tokio::spawn(vallee_ingest::run(
            options.clone(),
            lake,
            stats.clone(),
            shutdown.clone(),
        )));
    }
    // A member that stopped before the end: its error.
    async fn stopped(
        tasks: &mut Vec<tokio::task::JoinHandle<vallee_ingest::Result<()>>>,
    ) -> Option<String> {
        let i = tasks.iter().position(|t| t.is_finished())?;
        Some(format!("{:?}", tasks.remove(i).await))
    }
    // Start-up (joining a group, or not) ends at the first message read: the steady rate
    // runs from there, the end-to-end one from the start.
    while stats.messages.load(Ordering::Relaxed) == 0 {
        if let Some(e) = stopped(&mut tasks).await {
            bail!("an ingest member stopped before reading anything: {e}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let started = Instant::now();
    let to_first_ms = started.duration_since(ingest_started).as_millis();
    while stats.total_rows() < produced {
        if let Some(e) = stopped(&mut tasks).await {
            bail!("an ingest member stopped early: {e}");
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!(
                "ingest did not finish within 30 minutes ({} of {produced} rows)",
                stats.total_rows()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ingest_cpu = CpuSnapshot::take(broker.pid()).since(&ingest_cpu);
    let ingest_secs = started.elapsed().as_secs_f64();
    let end_to_end_secs = ingest_started.elapsed().as_secs_f64();
    let commits_backlog = stats.commits.load(Ordering::Relaxed);
    let commit_secs = stats.commit_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let commit_wait_secs = stats.commit_wait_micros.load(Ordering::Relaxed) as f64 / 1e6;

    eprintln!(
        "[4/4] live load at {} msg/s for {} s, measuring produce → visible…",
        args.live_rate, args.live_seconds
    );
    stats.record_freshness.store(true, Ordering::Relaxed);
    let before = stats.total_rows();
    let dead_letters = |stats: &IngestStats| -> u64 {
        stats
            .dead_letters
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    };
    let dead_before = dead_letters(&stats);
    let live_total = (args.live_rate as u64 * args.live_seconds) as usize;
    let mut live = valley_events_before(live_total, Utc::now(), 0.001);
    let tick = Duration::from_millis(100);
    let per_tick = (args.live_rate as usize / 10).max(1);
    let live_started = Instant::now();
    let mut sent = 0u64;
    for (i, chunk) in live.chunks_mut(per_tick).enumerate() {
        let due = live_started + tick * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let now = Utc::now();
        for e in chunk.iter_mut() {
            e.time = now; // the Kafka timestamp: the moment of sending
        }
        sent += simulator::produce(&producer, &topics, chunk).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while stats.total_rows() < before + sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let live_dead = dead_letters(&stats) - dead_before;
    shutdown.cancel();
    for task in tasks {
        task.await??;
    }
    let mut fresh =
        std::mem::take(&mut *stats.freshness_ms.lock().unwrap_or_else(|e| e.into_inner()));
    fresh.sort_unstable();

    let files: usize = {
        let mut n = 0;
        for t in vallee_schemas::contract::Table::ALL {
            n += lake.file_count(t).await.context("counting files")?;
        }
        n
    };
    let raw_rate = produced as f64 / raw_secs;
    let ingest_rate = produced as f64 / ingest_secs;
    println!(
        "vallee bench ingest — {produced} events, {} partitions × 5 topics, {} member(s) ({}), on {}, lake in {lake_place}",
        args.partitions,
        args.members,
        args.membership,
        broker.describe()
    );
    println!(
        "  produce                {:>10.0} msg/s  ({produce_secs:.1} s)",
        produced as f64 / produce_secs
    );
    println!("  raw rdkafka consume    {raw_rate:>10.0} msg/s  ({raw_secs:.2} s)  [reference]");
    println!(
        "  ingest into Delta      {ingest_rate:>10.0} msg/s  steady state ({ingest_secs:.2} s from the first message read, {to_first_ms} ms after start; {commits_backlog} commits)"
    );
    println!(
        "  ingest end to end      {:>10.0} msg/s  ({end_to_end_secs:.2} s from start to the last row in the lake)",
        produced as f64 / end_to_end_secs
    );
    println!(
        "  ratio ingest / raw     {:>10.2} steady state, {:.2} end to end",
        ingest_rate / raw_rate,
        produced as f64 / end_to_end_secs / raw_rate
    );
    println!(
        "  commits                {commits_backlog} tables' commits, {:.0} ms each on average; ingest's thread waited {commit_wait_secs:.2} s for them",
        commit_secs * 1e3 / commits_backlog.max(1) as f64
    );
    println!("  CPU of raw consume     {}", raw_cpu.describe());
    println!("  CPU of ingest          {}", ingest_cpu.describe());
    println!(
        "  freshness at {} msg/s   p50 {} ms, p99 {} ms, max {} ms  ({} rows, {live_dead} dead letters)",
        args.live_rate,
        percentile(&fresh, 0.5),
        percentile(&fresh, 0.99),
        fresh.last().copied().unwrap_or(0),
        fresh.len()
    );
    println!("  lake files             {files} over 7 tables");
    println!(
        "  peak RSS               {:.0} MiB",
        crate::peak_rss_bytes().unwrap_or(0) as f64 / 1048576.0
    );
    drop(broker);
    Ok(())
}
