//! Operations: `/metrics` (Prometheus text), `/readyz`, `/healthz`, for every process
//! (`up`, a lone ingest or stream stage, an API replica).
//!
//! Every series exists from the start, zero-valued until something happens, so dashboards
//! and alerts never see a series appear out of nowhere. Values that cost I/O (consumer
//! lag, files per table) are sampled in the background ([`Ops::run_sampler`]); the handler
//! only formats.
//!
//! What the stages running in this process know (ingest's counters, the stream stage's
//! watermarks) comes through a [`StageStatus`] the binary hands in: the API crate does not
//! depend on the stages.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;
use vallee_lake::upkeep::ExistingTable;
use vallee_lake::{Lake, Latest};
use vallee_schemas::contract::{Stream, Table};
use vallee_schemas::decode::Reason;
use vallee_schemas::tables::columns::Columns;
use vallee_schemas::tables::{LateState, OutputTable, lake_table_names};

/// What the stages running in this process tell the metrics, read at each sample or
/// scrape. The binary implements it over ingest's counters and the stream stage's live
/// view.
pub trait StageStatus: Send + Sync + std::fmt::Debug {
    /// Ingest's writer id (its offsets in the lake are recorded under it), when this
    /// process runs ingest.
    fn ingest_writer(&self) -> Option<String>;
    /// Ingest's counters so far (zero when it does not run here).
    fn ingest_counters(&self) -> IngestCounters;
    /// The stream stage's event-time watermark per stream, when this process runs it.
    fn watermarks(&self) -> BTreeMap<Stream, Option<DateTime<Utc>>>;

    /// Rows the stream stage received later than their stream's correction horizon (in no
    /// window), per stream, since it started; none when this process does not run it.
    fn too_late(&self) -> BTreeMap<Stream, u64> {
        BTreeMap::new()
    }
    /// Each Kafka stage running here, with its partitions as its probe last saw them.
    fn partitions(&self) -> Vec<StagePartitions>;
}

/// A stage's partitions, for `/readyz` and `/metrics`.
#[derive(Debug, Clone)]
pub struct StagePartitions {
    /// `ingest` or `stream`.
    pub stage: &'static str,
    pub health: vallee_kafka::StageHealth,
    /// A partition whose lag has not moved for this long is stalled.
    pub stall_after: Duration,
    /// Fresh consumers the stage started because its partitions stopped flowing.
    pub recoveries: u64,
}

impl StagePartitions {
    /// A sample older than this (the broker unreachable, the probe stuck) tells nothing.
    pub const MAX_SAMPLE_AGE: Duration = Duration::from_secs(15);

    /// Whether every partition flows, as of a fresh sample.
    pub fn flowing(&self) -> bool {
        !self.health.is_stale(Self::MAX_SAMPLE_AGE, Instant::now())
            && self.health.stalled(self.stall_after).is_empty()
    }
}

/// Ingest's counters, as the metrics report them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestCounters {
    /// Messages read (data and dead letters).
    pub messages: u64,
    /// Rows committed, per table.
    pub rows: BTreeMap<Table, u64>,
    /// Dead letters committed, per reason.
    pub dead_letters: BTreeMap<Reason, u64>,
    /// Delta commits, and their total duration in microseconds.
    pub commits: u64,
    pub commit_micros: u64,
    /// Commits refused because another member owned the partition.
    pub fenced: u64,
}

/// The metrics' own consumer (metadata and watermarks only).
struct ProbeConsumer(BaseConsumer);

impl std::fmt::Debug for ProbeConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProbeConsumer")
    }
}

/// (low, high) offsets per (topic, partition).
type Watermarks = BTreeMap<(String, i32), (i64, i64)>;

/// Kinds of GraphQL operation counted.
pub const OPERATION_KINDS: [&str; 3] = ["query", "mutation", "subscription"];

/// GraphQL request counters (per operation kind and outcome) and latency sums.
#[derive(Debug, Default)]
pub struct GraphqlCounters {
    ok: [AtomicU64; 3],
    error: [AtomicU64; 3],
    micros: [AtomicU64; 3],
}

impl GraphqlCounters {
    /// Counts one request of `kind` (an entry of [`OPERATION_KINDS`]).
    pub fn record(&self, kind: &str, ok: bool, took: Duration) {
        let i = OPERATION_KINDS.iter().position(|k| *k == kind).unwrap_or(0);
        if ok {
            self.ok[i].fetch_add(1, Ordering::Relaxed);
        } else {
            self.error[i].fetch_add(1, Ordering::Relaxed);
        }
        self.micros[i].fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }
}

/// What the operations endpoints report on.
#[derive(Debug)]
pub struct Ops {
    pub lake: Arc<Lake>,
    pub brokers: String,
    /// What the stages running in this process report.
    pub stages: Arc<dyn StageStatus>,
    /// Topics whose lag is reported.
    pub topics: Vec<String>,
    /// The stream each topic carries.
    streams: BTreeMap<String, Stream>,
    probe: std::sync::Mutex<Option<ProbeConsumer>>,
    pub graphql: GraphqlCounters,
    /// Ready only while the summed ingest lag is at most this. Default 100 000.
    pub max_ready_lag: i64,
    lag: RwLock<BTreeMap<(String, i32), i64>>,
    files: RwLock<BTreeMap<&'static str, u64>>,
    /// Events in `late_events` per (stream, state), as of the last sample.
    late: RwLock<BTreeMap<(String, String), u64>>,
    broker_seen: RwLock<Option<Instant>>,
    total_lag: AtomicI64,
    started: Instant,
    sampled_once: AtomicBool,
}

impl Ops {
    pub fn new(
        lake: Arc<Lake>,
        brokers: String,
        stages: Arc<dyn StageStatus>,
        topics: &BTreeMap<Stream, String>,
    ) -> Self {
        Ops {
            lake,
            brokers,
            stages,
            topics: topics.values().cloned().collect(),
            streams: topics.iter().map(|(s, t)| (t.clone(), *s)).collect(),
            probe: std::sync::Mutex::new(None),
            graphql: GraphqlCounters::default(),
            max_ready_lag: 100_000,
            lag: RwLock::default(),
            files: RwLock::new(lake_table_names().into_iter().map(|t| (t, 0)).collect()),
            late: RwLock::default(),
            broker_seen: RwLock::default(),
            total_lag: AtomicI64::new(0),
            started: Instant::now(),
            sampled_once: AtomicBool::new(false),
        }
    }

    /// Samples consumer lag every 5 s and files per table every 30 s until `shutdown`.
    pub async fn run_sampler(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = 0u64;
        loop {
            if let Err(e) = self.sample_lag().await {
                tracing::warn!(error = e, "metrics: cannot sample consumer lag");
            }
            if tick.is_multiple_of(6) {
                for table in lake_table_names() {
                    // Only tables that exist: metrics never create one (a stage does).
                    if !self.lake.exists(table).await {
                        continue;
                    }
                    if let Ok(n) = self.lake.file_count(ExistingTable(table)).await {
                        self.files
                            .write()
                            .expect("ops lock")
                            .insert(table, n as u64);
                    }
                }
                if let Err(e) = self.sample_late().await {
                    tracing::warn!(error = %e, "metrics: cannot count late_events");
                }
            }
            self.sampled_once.store(true, Ordering::Release);
            tick += 1;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }

    /// Counts the events of `late_events` per stream and latest state (read from its own
    /// copy: the stage's commits never wait for it).
    async fn sample_late(&self) -> vallee_lake::Result<()> {
        let table = OutputTable::LateEvents;
        if !self.lake.exists(table.name()).await {
            return Ok(());
        }
        let ctx = self
            .lake
            .session_of_existing(&[(table.name(), table.name().to_string())])
            .await?;
        let sql = format!(
            "SELECT stream, state, count(*) AS n FROM ({}) GROUP BY stream, state",
            Latest::of(table)
        );
        let batches = ctx.sql(&sql).await?.collect().await?;
        let mut counts = BTreeMap::new();
        for b in &batches {
            let c = Columns::of_batch(table.name(), b);
            let (mut stream, mut state, mut n) =
                (c.strings("stream")?, c.strings("state")?, c.ints("n")?);
            for i in 0..b.num_rows() {
                counts.insert((stream.need(i)?, state.need(i)?), n.need(i)? as u64);
            }
        }
        *self.late.write().expect("ops lock") = counts;
        Ok(())
    }

    /// End offsets of every partition of the hub's topics (low, high), read with one
    /// probe consumer kept for the process's life. It has its own group id and never
    /// subscribes: a probe in ingest's group would disturb that group's assignments.
    fn watermarks(&self) -> Result<Watermarks, rdkafka::error::KafkaError> {
        let mut probe = self.probe.lock().expect("probe lock");
        if probe.is_none() {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &self.brokers)
                .set("group.id", "vallee-metrics-probe")
                .set("enable.auto.commit", "false")
                .create()?;
            *probe = Some(ProbeConsumer(consumer));
        }
        let probe = &probe.as_ref().expect("created above").0;
        let timeout = Duration::from_secs(5);
        let mut out = BTreeMap::new();
        for topic in &self.topics {
            let metadata = probe.fetch_metadata(Some(topic), timeout)?;
            for t in metadata.topics() {
                for p in t.partitions() {
                    out.insert(
                        (topic.clone(), p.id()),
                        probe.fetch_watermarks(topic, p.id(), timeout)?,
                    );
                }
            }
        }
        Ok(out)
    }

    /// Lag per partition: the high watermark minus the next offset ingest needs, as the
    /// lake records it (the smallest over the tables the topic feeds). Without ingest in
    /// this process: what the topic keeps (high minus low).
    async fn sample_lag(self: &Arc<Self>) -> Result<(), String> {
        let me = self.clone();
        let marks = tokio::task::spawn_blocking(move || me.watermarks())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        *self.broker_seen.write().expect("ops lock") = Some(Instant::now());
        // The next offset ingest needs, per (topic, partition): one lake read per (table,
        // topic) for all the topic's partitions.
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        if let Some(writer) = &self.stages.ingest_writer() {
            let mut partitions: BTreeMap<&String, Vec<i32>> = BTreeMap::new();
            for (topic, p) in marks.keys() {
                partitions.entry(topic).or_default().push(*p);
            }
            for (topic, parts) in partitions {
                let Some(stream) = self.streams.get(topic) else {
                    continue;
                };
                for table in stream.tables() {
                    let stored = self
                        .lake
                        .committed_offsets(table, writer, topic, &parts)
                        .await
                        .map_err(|e| e.to_string())?;
                    for p in &parts {
                        let low = marks[&(topic.clone(), *p)].0;
                        let n = stored.get(p).copied().flatten().map_or(low, |o| o + 1);
                        next.entry((topic.clone(), *p))
                            .and_modify(|m| *m = (*m).min(n))
                            .or_insert(n);
                    }
                }
            }
        }
        let mut lag = BTreeMap::new();
        for (key, (low, high)) in marks {
            let n = next.get(&key).copied().unwrap_or(low);
            lag.insert(key, (high - n).max(0));
        }
        self.total_lag
            .store(lag.values().sum::<i64>(), Ordering::Relaxed);
        *self.lag.write().expect("ops lock") = lag;
        Ok(())
    }

    /// The readiness checks other than the API's: broker reachable lately, lake writable,
    /// ingest lag below its bound.
    pub fn checks(&self) -> BTreeMap<&'static str, bool> {
        let broker = self
            .broker_seen
            .read()
            .expect("ops lock")
            .is_some_and(|t| t.elapsed() < Duration::from_secs(30));
        let lake = self
            .lake
            .root()
            .to_file_path()
            .map(|dir| {
                let probe = dir.join(".vallee-ready-probe");
                std::fs::create_dir_all(&dir).is_ok()
                    && std::fs::write(&probe, b"ok").is_ok()
                    && std::fs::remove_file(&probe).is_ok()
            })
            // Object stores are checked by the commits themselves.
            .unwrap_or(true);
        let mut checks = BTreeMap::from([
            ("broker", broker),
            ("lakeWritable", lake),
            ("lakeCommits", self.lake.commit_failures().is_empty()),
        ]);
        if self.stages.ingest_writer().is_some() {
            checks.insert(
                "ingestLag",
                self.sampled_once.load(Ordering::Acquire)
                    && self.total_lag.load(Ordering::Relaxed) <= self.max_ready_lag,
            );
        }
        for stage in self.stages.partitions() {
            let name = match stage.stage {
                "ingest" => "ingestPartitionsFlowing",
                _ => "streamPartitionsFlowing",
            };
            checks.insert(name, stage.flowing());
        }
        checks
    }

    /// What `/readyz` says of the tables whose commits the lake refuses (a full disk, the
    /// storage unreachable): each with how long, how many tries and the last error. The
    /// stages keep the rows and try again until the lake accepts.
    pub fn lake_refusing(&self) -> Vec<serde_json::Value> {
        self.lake
            .commit_failures()
            .into_iter()
            .map(|f| {
                serde_json::json!({
                    "table": f.table,
                    "failingSeconds": f.since.elapsed().as_secs(),
                    "attempts": f.attempts,
                    "error": f.error,
                })
            })
            .collect()
    }

    /// What `/readyz` says of the partitions that do not flow: each stalled one with its
    /// stage, lag and how long it has not moved; a stage whose probe has no fresh sample,
    /// with why.
    pub fn stalled(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let now = Instant::now();
        for stage in self.stages.partitions() {
            if stage.health.is_stale(StagePartitions::MAX_SAMPLE_AGE, now) {
                out.push(serde_json::json!({
                    "stage": stage.stage,
                    "unknown": stage.health.error.clone()
                        .unwrap_or_else(|| "no sample of the partitions yet".into()),
                }));
                continue;
            }
            for p in stage.health.stalled(stage.stall_after) {
                out.push(serde_json::json!({
                    "stage": stage.stage,
                    "topic": p.topic,
                    "partition": p.partition,
                    "lag": p.lag,
                    "stalledSeconds": p.stalled_for.map_or(0, |d| d.as_secs()),
                }));
            }
        }
        out
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let _ = writeln!(
            out,
            "# HELP vallee_up_seconds Seconds since the process started.\n# TYPE vallee_up_seconds gauge"
        );
        let _ = writeln!(
            out,
            "vallee_up_seconds {}",
            self.started.elapsed().as_secs_f64()
        );
        crate::notify::render_metrics(&mut out);
        crate::sensors::health::render_metrics(&mut out);
        crate::partner_alerts::render_metrics(&mut out);
        crate::field_ingest::render_metrics(&mut out);

        let _ = writeln!(
            out,
            "# HELP vallee_consumer_lag Messages not yet consumed by ingest, per topic and partition.\n# TYPE vallee_consumer_lag gauge"
        );
        let lag = self.lag.read().expect("ops lock");
        for topic in &self.topics {
            let mut any = false;
            for ((t, p), v) in lag.iter().filter(|((t, _), _)| t == topic) {
                any = true;
                let _ = writeln!(
                    out,
                    "vallee_consumer_lag{{topic=\"{t}\",partition=\"{p}\"}} {v}"
                );
            }
            if !any {
                let _ = writeln!(
                    out,
                    "vallee_consumer_lag{{topic=\"{topic}\",partition=\"0\"}} 0"
                );
            }
        }
        drop(lag);

        let stats = self.stages.ingest_counters();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP vallee_events_in_total Messages read by ingest (data and dead letters).\n# TYPE vallee_events_in_total counter\nvallee_events_in_total {}",
            stats.messages
        );
        let _ = writeln!(
            out,
            "# HELP vallee_events_out_total Rows committed to the lake, per table.\n# TYPE vallee_events_out_total counter"
        );
        for t in Table::ALL {
            let _ = writeln!(
                out,
                "vallee_events_out_total{{table=\"{t}\"}} {}",
                stats.rows.get(&t).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "# HELP vallee_dead_letters_total Refused messages kept in dead_letters, per reason.\n# TYPE vallee_dead_letters_total counter"
        );
        for r in Reason::ALL {
            let _ = writeln!(
                out,
                "vallee_dead_letters_total{{reason=\"{r}\"}} {}",
                stats.dead_letters.get(&r).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "# HELP vallee_commit_seconds Delta commits of ingest and their duration.\n# TYPE vallee_commit_seconds summary\nvallee_commit_seconds_sum {}\nvallee_commit_seconds_count {}",
            stats.commit_micros as f64 / 1e6,
            stats.commits
        );
        let _ = writeln!(
            out,
            "# HELP vallee_commits_fenced_total Commits refused because another member owned the partition.\n# TYPE vallee_commits_fenced_total counter\nvallee_commits_fenced_total {}",
            stats.fenced
        );

        self.render_partitions(&mut out);

        let _ = writeln!(
            out,
            "# HELP vallee_lake_files Data files in the latest version of each table.\n# TYPE vallee_lake_files gauge"
        );
        for (t, n) in self.files.read().expect("ops lock").iter() {
            let _ = writeln!(out, "vallee_lake_files{{table=\"{t}\"}} {n}");
        }

        let _ = writeln!(
            out,
            "# HELP vallee_lake_commit_failing_seconds How long the lake has refused each table's commits (0: it accepts them).\n# TYPE vallee_lake_commit_failing_seconds gauge"
        );
        let failing: BTreeMap<&str, f64> = self
            .lake
            .commit_failures()
            .iter()
            .map(|f| (f.table, f.since.elapsed().as_secs_f64()))
            .collect();
        for t in lake_table_names() {
            let seconds = failing.get(t).copied().unwrap_or(0.0);
            let _ = writeln!(
                out,
                "vallee_lake_commit_failing_seconds{{table=\"{t}\"}} {seconds:.1}"
            );
        }

        let _ = writeln!(
            out,
            "# HELP vallee_watermark_delay_seconds Wall clock minus the stream's event-time watermark (negative when a simulator runs ahead of real time).\n# TYPE vallee_watermark_delay_seconds gauge"
        );
        let watermarks = self.stages.watermarks();
        let now = chrono::Utc::now();
        for s in Stream::SENSORS {
            let delay = watermarks
                .get(&s)
                .copied()
                .flatten()
                .map_or(0.0, |w| (now - w).num_milliseconds() as f64 / 1e3);
            let _ = writeln!(
                out,
                "vallee_watermark_delay_seconds{{stream=\"{s}\"}} {delay}"
            );
        }
        let too_late = self.stages.too_late();
        if !too_late.is_empty() {
            let _ = writeln!(
                out,
                "# HELP vallee_stream_too_late_total Rows too late for their windows or day (beyond the correction horizon; a station's closed day), kept in late_events (since the stage started).\n# TYPE vallee_stream_too_late_total counter"
            );
            for (s, n) in &too_late {
                let _ = writeln!(out, "vallee_stream_too_late_total{{stream=\"{s}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP vallee_late_events Events in late_events per stream and state (pending: waiting for vallee lake fold-late), every 30 s.\n# TYPE vallee_late_events gauge"
        );
        let mut late = self.late.read().expect("ops lock").clone();
        late.entry((
            Stream::Tourism.to_string(),
            LateState::Pending.as_str().to_string(),
        ))
        .or_insert(0);
        for ((stream, state), n) in &late {
            let _ = writeln!(
                out,
                "vallee_late_events{{stream=\"{stream}\",state=\"{state}\"}} {n}"
            );
        }

        let _ = writeln!(
            out,
            "# HELP vallee_graphql_requests_total GraphQL requests per operation kind and outcome.\n# TYPE vallee_graphql_requests_total counter"
        );
        for (i, kind) in OPERATION_KINDS.iter().enumerate() {
            for (outcome, counters) in [("ok", &self.graphql.ok), ("error", &self.graphql.error)] {
                let _ = writeln!(
                    out,
                    "vallee_graphql_requests_total{{operation=\"{kind}\",outcome=\"{outcome}\"}} {}",
                    load(&counters[i])
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP vallee_graphql_request_seconds Time spent answering GraphQL requests.\n# TYPE vallee_graphql_request_seconds summary"
        );
        for (i, kind) in OPERATION_KINDS.iter().enumerate() {
            let count = load(&self.graphql.ok[i]) + load(&self.graphql.error[i]);
            let _ = writeln!(
                out,
                "vallee_graphql_request_seconds_sum{{operation=\"{kind}\"}} {}\nvallee_graphql_request_seconds_count{{operation=\"{kind}\"}} {count}",
                load(&self.graphql.micros[i]) as f64 / 1e6
            );
        }
        out
    }
}

impl Ops {
    /// Per stage and partition: lag, how long it has not moved, the sample's age, and the
    /// stage's recoveries.
    fn render_partitions(&self, out: &mut String) {
        let stages = self.stages.partitions();
        let now = Instant::now();
        let _ = writeln!(
            out,
            "# HELP vallee_partition_lag Messages a stage has not landed yet, per partition (its probe, every few seconds).\n# TYPE vallee_partition_lag gauge"
        );
        for s in &stages {
            for p in &s.health.partitions {
                let _ = writeln!(
                    out,
                    "vallee_partition_lag{{stage=\"{}\",topic=\"{}\",partition=\"{}\"}} {}",
                    s.stage, p.topic, p.partition, p.lag
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP vallee_partition_stalled_seconds How long a partition's lag has not moved (0: no lag, or moving).\n# TYPE vallee_partition_stalled_seconds gauge"
        );
        for s in &stages {
            for p in &s.health.partitions {
                let _ = writeln!(
                    out,
                    "vallee_partition_stalled_seconds{{stage=\"{}\",topic=\"{}\",partition=\"{}\"}} {}",
                    s.stage,
                    p.topic,
                    p.partition,
                    p.stalled_for.map_or(0.0, |d| d.as_secs_f64())
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP vallee_partition_sample_age_seconds Age of the stage's last sample of its partitions (-1: none yet).\n# TYPE vallee_partition_sample_age_seconds gauge"
        );
        for s in &stages {
            let age = s
                .health
                .sampled_at
                .map_or(-1.0, |t| now.saturating_duration_since(t).as_secs_f64());
            let _ = writeln!(
                out,
                "vallee_partition_sample_age_seconds{{stage=\"{}\"}} {age}",
                s.stage
            );
        }
        let _ = writeln!(
            out,
            "# HELP vallee_stage_recoveries_total Fresh consumers started because partitions stopped flowing.\n# TYPE vallee_stage_recoveries_total counter"
        );
        for s in &stages {
            let _ = writeln!(
                out,
                "vallee_stage_recoveries_total{{stage=\"{}\"}} {}",
                s.stage, s.recoveries
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ingest with a few counts, and a stream stage whose beacons are 90 s behind.
    #[derive(Debug)]
    struct Running;

    impl StageStatus for Running {
        fn ingest_writer(&self) -> Option<String> {
            Some("ingest-1".into())
        }
        fn ingest_counters(&self) -> IngestCounters {
            IngestCounters {
                messages: 5,
                rows: BTreeMap::from([(Table::WasteContainers, 3)]),
                dead_letters: BTreeMap::from([(Reason::ALL[0], 2)]),
                commits: 4,
                commit_micros: 2_000_000,
                fenced: 1,
            }
        }
        fn watermarks(&self) -> BTreeMap<Stream, Option<DateTime<Utc>>> {
            let behind = Utc::now() - chrono::Duration::seconds(90);
            BTreeMap::from([(Stream::Beacons, Some(behind))])
        }
        fn too_late(&self) -> BTreeMap<Stream, u64> {
            BTreeMap::from([(Stream::Beacons, 0), (Stream::Tourism, 3)])
        }
        fn partitions(&self) -> Vec<StagePartitions> {
            use vallee_kafka::watch::PartitionHealth;
            let partition = |p: i32, lag: i64, still: u64| PartitionHealth {
                topic: "vallee.beacons".into(),
                partition: p,
                end: 1_000,
                lag,
                stalled_for: (still > 0).then(|| Duration::from_secs(still)),
            };
            vec![StagePartitions {
                stage: "ingest",
                health: vallee_kafka::StageHealth {
                    sampled_at: Some(Instant::now()),
                    partitions: vec![partition(0, 0, 0), partition(2, 420, 45)],
                    error: None,
                },
                stall_after: Duration::from_secs(30),
                recoveries: 1,
            }]
        }
    }

    /// Operations over a lake in a temporary folder (kept as long as the ops are).
    fn ops(stages: Arc<dyn StageStatus>) -> (Ops, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open_bare(vallee_lake::LakeOptions {
            root: dir.path().to_path_buf(),
            ..Default::default()
        })
        .unwrap();
        let ops = Ops::new(
            Arc::new(lake),
            "127.0.0.1:1".into(),
            stages,
            &BTreeMap::new(),
        );
        (ops, dir)
    }

    #[test]
    fn the_metrics_report_what_the_stages_say() {
        let text = ops(Arc::new(Running)).0.render();
        for line in [
            "vallee_events_in_total 5",
            "vallee_events_out_total{table=\"waste_containers\"} 3",
            "vallee_events_out_total{table=\"dead_letters\"} 0",
            "vallee_commit_seconds_sum 2\nvallee_commit_seconds_count 4",
            "vallee_commits_fenced_total 1",
            "vallee_watermark_delay_seconds{stream=\"vineyards\"} 0",
            "vallee_stream_too_late_total{stream=\"tourism\"} 3",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        let reason = Reason::ALL[0];
        assert!(text.contains(&format!(
            "vallee_dead_letters_total{{reason=\"{reason}\"}} 2"
        )));
        let delay = text
            .lines()
            .find_map(|l| l.strip_prefix("vallee_watermark_delay_seconds{stream=\"beacons\"} "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap();
        assert!((89.0..120.0).contains(&delay), "{delay}");
    }

    #[derive(Debug)]
    struct ApiOnly;

    impl StageStatus for ApiOnly {
        fn ingest_writer(&self) -> Option<String> {
            None
        }
        fn ingest_counters(&self) -> IngestCounters {
            IngestCounters::default()
        }
        fn watermarks(&self) -> BTreeMap<Stream, Option<DateTime<Utc>>> {
            BTreeMap::new()
        }
        fn partitions(&self) -> Vec<StagePartitions> {
            Vec::new()
        }
    }

    #[test]
    fn a_stalled_partition_fails_readiness_by_name_and_shows_in_the_metrics() {
        let (ops, _dir) = ops(Arc::new(Running));
        assert!(!ops.checks()["ingestPartitionsFlowing"]);
        let stalled = ops.stalled();
        assert_eq!(stalled.len(), 1, "{stalled:?}");
        assert_eq!(stalled[0]["topic"], "vallee.beacons");
        assert_eq!(stalled[0]["partition"], 2);
        assert_eq!(stalled[0]["lag"], 420);
        let text = ops.render();
        for line in [
            "vallee_partition_stalled_seconds{stage=\"ingest\",topic=\"vallee.beacons\",partition=\"2\"} 45",
            "vallee_partition_stalled_seconds{stage=\"ingest\",topic=\"vallee.beacons\",partition=\"0\"} 0",
            "vallee_partition_lag{stage=\"ingest\",topic=\"vallee.beacons\",partition=\"2\"} 420",
            "vallee_stage_recoveries_total{stage=\"ingest\"} 1",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    #[test]
    fn a_stage_without_a_fresh_sample_is_not_ready_and_says_why() {
        let stale = StagePartitions {
            stage: "stream",
            health: vallee_kafka::StageHealth {
                sampled_at: Some(Instant::now() - Duration::from_secs(60)),
                partitions: Vec::new(),
                error: Some("broker transport failure".into()),
            },
            stall_after: Duration::from_secs(30),
            recoveries: 0,
        };
        assert!(!stale.flowing());
        let fresh = StagePartitions {
            health: vallee_kafka::StageHealth {
                sampled_at: Some(Instant::now()),
                ..stale.health.clone()
            },
            ..stale.clone()
        };
        assert!(fresh.flowing());
    }

    #[test]
    fn ingest_lag_is_a_readiness_check_only_where_ingest_runs() {
        assert!(ops(Arc::new(Running)).0.checks().contains_key("ingestLag"));
        let (api, _dir) = ops(Arc::new(ApiOnly));
        assert!(!api.checks().contains_key("ingestLag"));
        assert!(api.render().contains("vallee_events_in_total 0"));
    }
}
