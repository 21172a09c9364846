//! `vallee bench stream`: the stream stage measured three ways.
//!
//! 1. Engine only, no broker: the stage's processor (decode, per-batch DataFusion plans,
//!    window operators) over beacon and tourism events read from NDJSON files, against a
//!    plain DataFusion batch `GROUP BY` computing the same windows over the same files (and
//!    the two must agree).
//! 2. With the broker: the raw rdkafka consume rate of pre-filled topics, then the stage
//!    (decode, windows, rules, Delta commits) over the same topics, in the same run.
//! 3. Alert latency at a fixed rate: a bin reading crossing its threshold is produced, and
//!    the time until its alert is in the live view is measured, with the broker's own
//!    delivery latency (produce → a plain consumer) for the same messages alongside.
//!
//! Peak memory and files per table per minute close the report.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use datafusion::prelude::{JsonReadOptions, SessionContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use vallee_ingest::IngestOptions;
use vallee_kafka::KafkaOptions;
use vallee_lake::{Lake, LakeOptions};
use vallee_schemas::contract::Stream;
use vallee_schemas::decode::{DecodeOptions, Decoded, Rejection, decode};
use vallee_schemas::tables::OutputTable;
use vallee_stream::microbatch::BATCH_ROWS;
use vallee_stream::stage::decoding::{self, Encoded};
use vallee_stream::stage::dispatcher::Dispatcher;
use vallee_stream::stage::{SharedLiveView, StreamOptions};

use super::{CpuSnapshot, percentile, raw_consume, valley_events};
use crate::cli::BenchStreamArgs;
use crate::simulator;

/// The key of the events closing every window at the end of the engine-only run.
const SENTINEL: &str = "zz-sentinel";

/// The streams of the engine-only comparison (the windowed ones).
const WINDOWED: [Stream; 2] = [Stream::Beacons, Stream::Tourism];

/// Runs the stream benchmark and prints its report.
pub async fn stream(args: BenchStreamArgs) -> Result<()> {
    if args.members > 1 && !matches!(args.membership, vallee_kafka::Membership::Group) {
        bail!("several --members share the partitions through a group: add --membership group");
    }
    let dir = tempfile::tempdir()?;
    let start = DateTime::parse_from_rfc3339("2026-05-04T06:00:00Z")?.with_timezone(&Utc);

    eprintln!(
        "[1/4] engine only: {} valley events to files, the stage's processor vs a DataFusion batch query…",
        args.events
    );
    let clean = valley_events(args.events, start, 0.0);
    let files = write_files(dir.path(), &clean)?;
    let windowed_events: usize = clean
        .iter()
        .filter(|e| WINDOWED.contains(&e.stream))
        .count();
    drop(clean);
    // Each side `repeat` times, alternating, so a passing load weighs on both; medians.
    let (mut engine_runs, mut batch_runs) = (Vec::new(), Vec::new());
    let (mut engine_windows, mut engine_peak) = (None, 0);
    for _ in 0..args.repeat.max(1) {
        let engine_files = files.clone();
        clear_peak_rss();
        let (secs, windows) =
            tokio::task::spawn_blocking(move || engine_only(&engine_files)).await??;
        // The stage's runs only: the batch query's memory is not the stage's.
        engine_peak = engine_peak.max(crate::peak_rss_bytes().unwrap_or(0));
        engine_runs.push(secs);
        let (batch_secs, batch_windows) = batch_query(&files).await?;
        batch_runs.push(batch_secs);
        if windows != batch_windows {
            bail!(
                "the stage and the batch query disagree: {} vs {} (windows, people, visitors)",
                fmt_windows(&windows),
                fmt_windows(&batch_windows)
            );
        }
        engine_windows = Some(windows);
    }
    let engine_windows = engine_windows.context("at least one run")?;
    let (engine_secs, batch_secs) = (median(&mut engine_runs), median(&mut batch_runs));
    let engine_rate = windowed_events as f64 / engine_secs;
    let batch_rate = windowed_events as f64 / batch_secs;
    let engine_report = || {
        println!(
            "  engine only, {windowed_events} beacon and tourism events from NDJSON files ({}), median of {} runs:",
            fmt_windows(&engine_windows),
            engine_runs.len()
        );
        println!(
            "    DataFusion batch GROUP BY  {batch_rate:>10.0} events/s  ({batch_secs:.2} s)  [reference]"
        );
        println!(
            "    stage processor            {engine_rate:>10.0} events/s  ({engine_secs:.2} s)"
        );
        println!(
            "    ratio stage / batch        {:>10.2}",
            engine_rate / batch_rate
        );
        println!(
            "    peak RSS of the process during the stage runs  {:.0} MiB",
            engine_peak as f64 / 1048576.0
        );
    };
    if args.engine_only {
        println!(
            "vallee bench stream --engine-only — {} valley events",
            args.events
        );
        engine_report();
        return Ok(());
    }

    eprintln!(
        "[2/4] with the broker: producing {} events to 5 topics ({} partitions each), raw consume…",
        args.events, args.partitions
    );
    let broker = super::BenchBroker::start(
        args.kafka_brokers.as_deref(),
        args.broker_storage,
        &dir.path().join("broker"),
    )
    .await?;
    let on = broker.describe();
    eprintln!("      on {on}");
    let brokers = broker.brokers.clone();
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let topic_names: BTreeMap<Stream, String> = Stream::SENSORS
        .iter()
        .map(|s| (*s, format!("bench-{run}.{}", s.name())))
        .collect();
    let kafka = KafkaOptions {
        brokers: brokers.clone(),
        topics: topic_names.clone().into(),
        ..Default::default()
    };
    let ingest_options = IngestOptions {
        kafka: kafka.clone(),
        group_id: format!("bench-{run}"),
        ..Default::default()
    };
    vallee_kafka::ensure_topics(
        &kafka,
        &vallee_kafka::hub_topics(&kafka.topics),
        args.partitions,
    )
    .await?;
    let events = valley_events(args.events, start, 0.001);
    let producer = simulator::producer(&brokers)?;
    let produced = simulator::produce(&producer, &topic_names, &events).await?;
    drop(events);
    let raw_cpu = CpuSnapshot::take(broker.pid());
    let raw_secs = raw_consume(&ingest_options, produced).await?;
    let raw_cpu = CpuSnapshot::take(broker.pid()).since(&raw_cpu);

    eprintln!("[3/4] the stream stage over the same topics (decode, windows, rules, Delta)…");
    clear_peak_rss();
    let rss_before = current_rss_bytes().unwrap_or(0);
    let lake = Arc::new(
        Lake::open(LakeOptions {
            root: dir.path().join("lake"),
            ..Default::default()
        })
        .await?,
    );
    let shutdown = CancellationToken::new();
    let options = StreamOptions {
        kafka: kafka.clone(),
        group_id: format!("bench-{run}-stage"),
        flush_interval: Duration::from_millis(args.flush_ms),
        membership: args.membership,
        ..Default::default()
    };
    let stage_cpu = CpuSnapshot::take(broker.pid());
    let stage_started = Instant::now();
    // Members as separate processes would be: a lake handle and a live view each (their
    // commits meet in the tables' logs), one group.
    let mut lives = Vec::new();
    let mut tasks = Vec::new();
    for member in 0..args.members {
        let lake = if member == 0 {
            lake.clone()
        } else {
            Arc::new(
                Lake::open(LakeOptions {
                    root: dir.path().join("lake"),
                    ..Default::default()
                })
                .await?,
            )
        };
        let live = SharedLiveView::default();
        lives.push(live.clone());
        tasks.push(tokio::spawn(vallee_stream::stage::run(
            options.clone(),
            lake,
            live,
            shutdown.clone(),
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(1800);
    // Until every message read has its results committed: `consumed` moves at commits
    // for one member; members replay what they take over, so theirs is the group's
    // offsets, which each member moves after its commits.
    let done = Arc::new(GroupDone::new(&brokers, &options, &topic_names)?);
    loop {
        let finished = if args.members == 1 {
            lives[0].read().unwrap_or_else(|p| p.into_inner()).consumed >= produced
        } else {
            // Broker round trips: off the runtime the stage's commits run on.
            let done = done.clone();
            tokio::task::spawn_blocking(move || done.caught_up()).await??
        };
        if finished {
            break;
        }
        if tasks.iter().any(|t| t.is_finished()) || Instant::now() > deadline {
            bail!("a stage member stopped or stalled before the end of the backlog");
        }
        tokio::time::sleep(Duration::from_millis(if args.members == 1 {
            2
        } else {
            20
        }))
        .await;
    }
    let stage_cpu = CpuSnapshot::take(broker.pid()).since(&stage_cpu);
    // Start-up (restoring from the lake, joining a group or not) ends at the first read.
    let first_at = lives
        .iter()
        .filter_map(|l| l.read().unwrap_or_else(|p| p.into_inner()).first_read_at)
        .min()
        .context("the stage read its messages")?;
    let to_first_ms = first_at.duration_since(stage_started).as_millis();
    let stage_secs = stage_started.elapsed().as_secs_f64();
    let steady_secs = first_at.elapsed().as_secs_f64();

    eprintln!(
        "[4/4] alert latency: {} threshold crossings per second for {} s…",
        args.alert_rate, args.alert_seconds
    );
    let (alert_ms, broker_ms) = alert_latency(&args, &brokers, &topic_names, &lives).await?;
    shutdown.cancel();
    for task in tasks {
        task.await??;
    }
    let stage_minutes = stage_started.elapsed().as_secs_f64() / 60.0;
    let mut files_per_table = Vec::new();
    for t in OutputTable::ALL {
        files_per_table.push((
            t.name(),
            lake.file_count(t).await.context("counting files")?,
        ));
    }
    let peak = crate::peak_rss_bytes().unwrap_or(0);
    drop(broker);

    let raw_rate = produced as f64 / raw_secs;
    let stage_rate = produced as f64 / stage_secs;
    let steady_rate = produced as f64 / steady_secs;
    println!(
        "vallee bench stream — {} valley events; {} partitions × 5 topics on {on}",
        args.events, args.partitions
    );
    engine_report();
    println!(
        "  with the broker, {produced} messages (stage membership {}, {} member{}):",
        args.membership,
        args.members,
        if args.members > 1 { "s" } else { "" }
    );
    println!(
        "    raw rdkafka consume        {raw_rate:>10.0} msg/s  ({raw_secs:.2} s)  [reference]"
    );
    println!(
        "    stream stage end to end    {stage_rate:>10.0} msg/s  ({stage_secs:.2} s from start to the last record, flush every {} ms)",
        args.flush_ms
    );
    println!(
        "    stream stage steady state  {steady_rate:>10.0} msg/s  (first record {to_first_ms} ms after start)"
    );
    println!(
        "    ratio stage / raw          {:>10.2} end to end, {:.2} steady state",
        stage_rate / raw_rate,
        steady_rate / raw_rate
    );
    println!("    CPU of raw consume         {}", raw_cpu.describe());
    println!("    CPU of the stage           {}", stage_cpu.describe());
    println!(
        "  alert latency at {} crossings/s ({} alerts): produced → live view p50 {} ms, p99 {} ms, max {} ms",
        args.alert_rate,
        alert_ms.len(),
        percentile(&alert_ms, 0.5),
        percentile(&alert_ms, 0.99),
        alert_ms.last().copied().unwrap_or(0)
    );
    println!(
        "    broker alone (produced → consumer)  p50 {} ms, p99 {} ms  → p99 above the broker's: {} ms",
        percentile(&broker_ms, 0.5),
        percentile(&broker_ms, 0.99),
        percentile(&alert_ms, 0.99).saturating_sub(percentile(&broker_ms, 0.99))
    );
    println!(
        "  memory: RSS {:.0} MiB before the stage started, peak {:.0} MiB while it ran (the bench's process: producer and stage; the broker is a process of its own)",
        rss_before as f64 / 1048576.0,
        peak as f64 / 1048576.0
    );
    println!(
        "  files per minute ({:.1} min of stage): {}",
        stage_minutes,
        files_per_table
            .iter()
            .map(|(t, n)| format!("{t} {:.1}", *n as f64 / stage_minutes))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// The middle value (the upper one of an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Writes each stream's payloads to `<dir>/events/<stream>.ndjson`, one per line.
fn write_files(
    dir: &Path,
    events: &[simulator::Event],
) -> Result<BTreeMap<Stream, std::path::PathBuf>> {
    let folder = dir.join("events");
    std::fs::create_dir_all(&folder)?;
    let mut writers = BTreeMap::new();
    let mut paths = BTreeMap::new();
    for s in WINDOWED {
        let path = folder.join(format!("{}.ndjson", s.name()));
        writers.insert(s, BufWriter::new(std::fs::File::create(&path)?));
        paths.insert(s, path);
    }
    for e in events {
        if let Some(w) = writers.get_mut(&e.stream) {
            w.write_all(e.payload.as_bytes())?;
            w.write_all(b"\n")?;
        }
    }
    for (_, mut w) in writers {
        w.flush()?;
    }
    Ok(paths)
}

/// What both sides computed: (footfall windows, their people counts summed, site-hours,
/// their visitors summed).
type Windows = (usize, i64, usize, i64);

fn fmt_windows(w: &Windows) -> String {
    format!(
        "{} footfall windows, {} people; {} site-hours, {} visitors",
        w.0, w.1, w.2, w.3
    )
}

/// The stage's processor over the files, every window closed at the end.
fn engine_only(files: &BTreeMap<Stream, std::path::PathBuf>) -> Result<(f64, Windows)> {
    let options = StreamOptions::default();
    let decode_options = DecodeOptions::default();
    let started = Instant::now();
    // Its per-batch DataFusion plans run on the benchmark's runtime.
    let mut dispatcher = Dispatcher::new(&options, tokio::runtime::Handle::current());
    let now = Instant::now();
    // As the worker does: each chunk decoded on the other cores beside the thread that
    // processes it, in order; the windows advance once per chunk of a batch (the worker
    // advances them every second, folding a batch whenever one fills up).
    let helpers = vallee_kafka::decoding::helpers();
    for (stream, path) in files {
        let topic = stream.name();
        // The file is read on its own thread, a chunk ahead, as the Kafka client fetches
        // on its own threads for the worker.
        let (chunks, received) =
            std::sync::mpsc::sync_channel::<(Vec<u8>, Vec<std::ops::Range<usize>>)>(2);
        let file = std::fs::File::open(path)?;
        let reading = std::thread::spawn(move || -> std::io::Result<()> {
            let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
            loop {
                // One buffer per chunk, lines as ranges of it (as a fetch would be).
                let (mut chunk, mut lines) = (Vec::with_capacity(BATCH_ROWS * 256), Vec::new());
                while lines.len() < BATCH_ROWS {
                    let start = chunk.len();
                    if reader.read_until(b'\n', &mut chunk)? == 0 {
                        break;
                    }
                    let end = if chunk.last() == Some(&b'\n') {
                        chunk.len() - 1
                    } else {
                        chunk.len()
                    };
                    lines.push(start..end);
                }
                if lines.is_empty() || chunks.send((chunk, lines)).is_err() {
                    return Ok(());
                }
            }
        });
        let mut offset = 0i64;
        for (chunk, lines) in received {
            let encoded: Vec<Encoded<'_>> = lines
                .iter()
                .map(|l| Encoded {
                    stream: *stream,
                    payload: Some(&chunk[l.clone()]),
                    timestamp_ms: None,
                })
                .collect();
            let metas: Vec<i64> = (offset..offset + lines.len() as i64).collect();
            offset += lines.len() as i64;
            let mut process = |offset: i64, event: Result<Decoded, Rejection>| {
                let event =
                    event.map_err(|e| anyhow::anyhow!("{}:{offset}: {e}", path.display()))?;
                dispatcher.process(*stream, topic, 0, offset, &event, now)?;
                anyhow::Ok(())
            };
            decoding::decode_and_process(&metas, &encoded, &decode_options, helpers, &mut process)?;
            dispatcher.tick(now)?;
        }
        reading
            .join()
            .map_err(|_| anyhow::anyhow!("the reading thread panicked"))??;
    }
    // A sentinel a day later on each stream moves its watermark past every window: they
    // all close (the sentinel's own key is left out of the comparison).
    let far = "2026-12-31T00:00:00Z";
    let sentinels = [
        (
            Stream::Beacons,
            format!(
                r#"{{"id":"sentinel","type":"BeaconSighting","dateObserved":"{far}","zone":"{SENTINEL}","deviceToken":"{:032x}","saltEpoch":"2026-12-31","rssi":-60}}"#,
                1
            ),
        ),
        (
            Stream::Tourism,
            format!(
                r#"{{"id":"sentinel","type":"SiteVisit","dateObserved":"{far}","site":"{SENTINEL}","locationCode":"34261","source":"counter","count":1}}"#
            ),
        ),
    ];
    for (stream, payload) in sentinels {
        let event = decode(stream, Some(payload.as_bytes()), None, &decode_options)
            .map_err(|e| anyhow::anyhow!("the sentinel: {e}"))?;
        dispatcher.process(stream, stream.name(), 0, i64::MAX - 1, &event, now)?;
    }
    dispatcher.tick(now)?;
    let secs = started.elapsed().as_secs_f64();
    // Latest revision per window.
    let mut footfall: HashMap<(String, i64), i64> = HashMap::new();
    for r in dispatcher
        .footfall
        .pending
        .footfall
        .iter()
        .filter(|r| r.window == "PT5M" && r.zone != SENTINEL)
    {
        footfall.insert((r.zone.clone(), r.from.timestamp_micros()), r.people_count);
    }
    let mut presence: HashMap<(String, i64), i64> = HashMap::new();
    for r in dispatcher
        .presence
        .pending
        .iter()
        .filter(|r| r.site != SENTINEL)
    {
        presence.insert((r.site.clone(), r.hour.timestamp_micros()), r.visitor_count);
    }
    Ok((
        secs,
        (
            footfall.len(),
            footfall.values().sum(),
            presence.len(),
            presence.values().sum(),
        ),
    ))
}

/// The same windows as one DataFusion batch query per output over the same files.
async fn batch_query(files: &BTreeMap<Stream, std::path::PathBuf>) -> Result<(f64, Windows)> {
    let started = Instant::now();
    let ctx = SessionContext::new();
    for (stream, path) in files {
        ctx.register_json(
            stream.name(),
            path.to_str().context("a UTF-8 path")?,
            JsonReadOptions::default().file_extension(".ndjson"),
        )
        .await?;
    }
    let one = |sql: &'static str| {
        let ctx = ctx.clone();
        async move {
            let batches = ctx.sql(sql).await?.collect().await?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            let mut total = 0i64;
            for b in &batches {
                let c = arrow::compute::cast(b.column(2), &arrow::datatypes::DataType::Int64)?;
                let a = c
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .context("an integer column")?;
                total += a.iter().flatten().sum::<i64>();
            }
            anyhow::Ok((rows, total))
        }
    };
    let (footfall, people) = one(
        "SELECT zone, date_bin(INTERVAL '5 minutes', CAST(\"dateObserved\" AS TIMESTAMP)) AS w, \
         count(DISTINCT \"deviceToken\") AS n FROM beacons GROUP BY 1, 2",
    )
    .await?;
    one(
        "SELECT zone, date_bin(INTERVAL '1 hour', CAST(\"dateObserved\" AS TIMESTAMP)) AS w, \
         count(DISTINCT \"deviceToken\") AS n FROM beacons GROUP BY 1, 2",
    )
    .await?;
    let (hours, visitors) = one(
        "SELECT site, date_bin(INTERVAL '1 hour', CAST(\"dateObserved\" AS TIMESTAMP)) AS h, \
         sum(CASE WHEN source = 'ar-trail' THEN 0 ELSE \"count\" END) AS v, \
         sum(CASE WHEN source = 'ar-trail' THEN \"count\" ELSE 0 END) AS ar FROM tourism GROUP BY 1, 2",
    )
    .await?;
    Ok((
        started.elapsed().as_secs_f64(),
        (footfall, people, hours, visitors),
    ))
}

/// Produces bin readings crossing their threshold at `alert_rate` per second, each for a
/// new bin; returns the latencies (ms) produced → alert in the live view, and produced →
/// received by a plain consumer of the same topic.
async fn alert_latency(
    args: &BenchStreamArgs,
    brokers: &str,
    topics: &BTreeMap<Stream, String>,
    lives: &[SharedLiveView],
) -> Result<(Vec<u32>, Vec<u32>)> {
    let topic = topics[&Stream::WasteContainers].clone();
    // The broker's own latency: a consumer with the stage's fetch settings and no group,
    // from the end of every partition.
    let probe: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bench-latency-probe")
        .set("enable.auto.commit", "false")
        .set(
            "fetch.wait.max.ms",
            StreamOptions::default().fetch_wait.as_millis().to_string(),
        )
        .create()?;
    let metadata = probe.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(t.name(), p.id(), Offset::End)?;
        }
    }
    probe.assign(&tpl)?;
    let total = (args.alert_rate as u64 * args.alert_seconds) as usize;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_probe = stop.clone();
    let received = std::thread::spawn(move || {
        let mut seen: HashMap<String, Instant> = HashMap::new();
        while !stop_probe.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(Ok(m)) = probe.poll(Duration::from_millis(5))
                && let Some(key) = m.key()
            {
                seen.entry(String::from_utf8_lossy(key).into_owned())
                    .or_insert_with(Instant::now);
            }
        }
        seen
    });
    // Let the probe's positions settle before the first reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let producer = simulator::producer(brokers)?;
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut alerted: HashMap<String, Instant> = HashMap::new();
    let tick = Duration::from_millis(10);
    let per_tick = (args.alert_rate as usize / 100).max(1);
    let started = Instant::now();
    let mut i = 0usize;
    let mut deliveries = Vec::new();
    while i < total
        || (alerted.len() < total
            && started.elapsed() < Duration::from_secs(args.alert_seconds + 60))
    {
        if i < total && Instant::now() >= started + tick * (i / per_tick) as u32 {
            let bin = format!("bench-bin-{i:06}");
            let payload = format!(
                r#"{{"id":"{bin}","type":"WasteContainer","dateObserved":"{}","fillingLevel":0.95,"storedWasteKind":["glass"],"location":{{"type":"Point","coordinates":[3.5512,43.6521]}}}}"#,
                Utc::now().to_rfc3339()
            );
            sent.insert(bin.clone(), Instant::now());
            match producer.send_result(FutureRecord::to(&topic).key(&bin).payload(&payload)) {
                Ok(d) => deliveries.push(d),
                Err((e, _)) => bail!("cannot queue a bench reading: {e}"),
            }
            i += 1;
            continue;
        }
        for live in lives {
            let view = live.read().unwrap_or_else(|p| p.into_inner());
            for row in view.open_alerts.values() {
                if row.entity_id.starts_with("bench-bin-") && !alerted.contains_key(&row.entity_id)
                {
                    alerted.insert(row.entity_id.clone(), Instant::now());
                }
            }
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    for d in deliveries {
        let _ = d.await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let received = received
        .join()
        .map_err(|_| anyhow::anyhow!("the latency probe panicked"))?;
    let ms = |at: &HashMap<String, Instant>| {
        let mut v: Vec<u32> = at
            .iter()
            .filter_map(|(bin, t)| Some(t.duration_since(*sent.get(bin)?).as_millis() as u32))
            .collect();
        v.sort_unstable();
        v
    };
    if alerted.len() < total {
        bail!(
            "only {} of {total} alerts reached the live view",
            alerted.len()
        );
    }
    Ok((ms(&alerted), ms(&received)))
}

/// Whether a stage group's members have committed results up to the end of every
/// partition of the keyed topics (the group offsets each member moves after its output
/// commits; the trucks, read whole by every member, are outside the group).
struct GroupDone {
    consumer: BaseConsumer,
    partitions: TopicPartitionList,
}

impl GroupDone {
    fn new(
        brokers: &str,
        options: &StreamOptions,
        topics: &BTreeMap<Stream, String>,
    ) -> Result<Self> {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", &options.group_id)
            .set("enable.auto.commit", "false")
            .create()?;
        let mut partitions = TopicPartitionList::new();
        for stream in vallee_stream::stage::consumer::INPUTS {
            if stream == Stream::WasteVehicles {
                continue;
            }
            let topic = &topics[&stream];
            let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
            for t in metadata.topics() {
                for p in t.partitions() {
                    partitions.add_partition(t.name(), p.id());
                }
            }
        }
        Ok(GroupDone {
            consumer,
            partitions,
        })
    }

    fn caught_up(&self) -> Result<bool> {
        let committed = self
            .consumer
            .committed_offsets(self.partitions.clone(), Duration::from_secs(5))?;
        for e in committed.elements() {
            let (_, high) =
                self.consumer
                    .fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(5))?;
            let at = match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            };
            if at < high {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Resets the kernel's peak-RSS mark to the current RSS (Linux `clear_refs` 5).
fn clear_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn current_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
