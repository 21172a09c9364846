//! `vallee up` and `vallee ingest | stream | serve`: building the stages and running them
//! under one shutdown tree.
//!
//! ```text
//!  root token (SIGINT / SIGTERM, or a stage failing)
//!   ├─ stages (a failure stops the hub)
//!   │   ├─ simulator        stops producing
//!   │   ├─ ingest           drains: final commit of what was read, then leaves its group
//!   │   ├─ stream stage     final commit of its outputs, then leaves its group
//!   │   └─ http             stops accepting, finishes in-flight requests
//!   └─ background (restarted or logged on failure)
//!       ├─ API              citizens' view replay, alerts feed, contact retention, publisher
//!       ├─ metrics sampler, lake upkeep, simulated citizens
//!  every task is awaited (background ones for at most 30 s, naming what did not stop);
//!  then the embedded broker stops (it must outlive the stages' last commits)
//! ```
//!
//! An unreachable broker at start is waited for, with a back-off, rather than a reason to
//! exit: a hub restarted by its supervisor before the broker is back comes up by itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use vallee_ingest::{IngestOptions, IngestStats};
use vallee_kafka::KafkaOptions;
use vallee_lake::{Lake, LakeOptions};

use vallee_graphql::ops::{IngestCounters, StagePartitions, StageStatus};
use vallee_schemas::contract::{Stream, Table};
use vallee_schemas::decode::Reason;
use vallee_stream::stage::{SharedLiveView, StreamOptions};

use crate::broker::EmbeddedBroker;
use crate::simulator::SimulatorOptions;

/// Everything `up` needs, resolved from the command line and the file.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub data_dir: PathBuf,
    /// `None`: embed a broker listening on `broker_listen`.
    pub kafka_brokers: Option<String>,
    pub broker_listen: std::net::SocketAddr,
    pub http_addr: std::net::SocketAddr,
    pub partitions: i32,
    /// Topics and client overrides every stage shares; its brokers are set in [`up`]
    /// (external or embedded).
    pub kafka: KafkaOptions,
    pub ingest: IngestOptions,
    pub lake: LakeOptions,
    /// `None`: no simulator.
    pub simulator: Option<SimulatorOptions>,
    /// Run the ingest stage.
    pub ingest_stage: bool,
    /// `None`: no stream stage.
    pub stream: Option<StreamOptions>,
    /// `None`: no API (only `/healthz`).
    pub api: Option<vallee_graphql::ApiOptions>,
}

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        }
        token.cancel();
    });
}

/// The embedded broker's address: loopback, unless `--expose-broker` says otherwise.
pub fn exposed_only_if_asked(
    listen: std::net::SocketAddr,
    expose: bool,
) -> Result<std::net::SocketAddr> {
    if listen.ip().is_loopback() {
        return Ok(listen);
    }
    anyhow::ensure!(
        expose,
        "--broker-listen {listen} is not a loopback address: the embedded broker \
         authenticates nobody, so whoever reaches it could read every topic (beacon \
         pseudonyms included) and produce sensor readings. Put an authenticating Kafka \
         cluster in front (--kafka-brokers), or pass --expose-broker on a network you trust."
    );
    eprintln!(
        "WARNING: the embedded broker listens on {listen} (--expose-broker). It authenticates \
         nobody: whoever reaches it reads every topic and produces to any. The API's own \
         events are signed (forgeries become dead letters); sensor streams are not."
    );
    Ok(listen)
}

/// Runs the hub until `shutdown`.
pub async fn up(config: HubConfig, shutdown: CancellationToken) -> Result<()> {
    let broker = match &config.kafka_brokers {
        Some(_) => None,
        None => Some(
            EmbeddedBroker::start(config.broker_listen, &config.data_dir.join("broker")).await?,
        ),
    };
    let brokers = match (&broker, &config.kafka_brokers) {
        (Some(b), _) => b.bootstrap(),
        (None, Some(b)) => b.clone(),
        (None, None) => unreachable!("either embedded or external"),
    };
    let kafka = KafkaOptions {
        brokers: brokers.clone(),
        ..config.kafka.clone()
    };
    let ingest = IngestOptions {
        kafka: kafka.clone(),
        ..config.ingest.clone()
    };
    if !ensure_topics_when_reachable(&kafka, config.partitions, &shutdown).await {
        if let Some(b) = broker {
            b.stop();
        }
        return Ok(());
    }
    let lake = Arc::new(
        Lake::open(config.lake.clone())
            .await
            .context("opening the lake")?,
    );
    let listener = vallee_graphql::bind(config.http_addr).await?;
    let http_addr = listener.local_addr()?;

    let stats = Arc::new(IngestStats::default());
    let live = SharedLiveView::default();
    let mut stages = JoinSet::new();
    let mut background = JoinSet::new();
    if config.ingest_stage {
        let (lake, stats, token) = (lake.clone(), stats.clone(), shutdown.child_token());
        stages.spawn(async move {
            vallee_ingest::run(ingest, lake, stats, token)
                .await
                .context("ingest")
        });
    }
    if let Some(mut stream) = config.stream.clone() {
        stream.kafka = kafka.clone();
        let (lake, live, token) = (lake.clone(), live.clone(), shutdown.child_token());
        stages.spawn(async move {
            vallee_stream::stage::run(stream, lake, live, token)
                .await
                .context("stream stage")
        });
    }
    let status = HubStatus {
        ingest: config
            .ingest_stage
            .then(|| (stats.clone(), config.ingest.writer_id.clone())),
        live: config.stream.is_some().then(|| live.clone()),
        stall_after: kafka.stall_after,
    };
    let ops = Arc::new(vallee_graphql::ops::Ops::new(
        lake.clone(),
        brokers.clone(),
        Arc::new(status),
        &kafka.topics,
    ));
    background.spawn(ops.clone().run_sampler(shutdown.child_token()));
    // Part of the simulated valley reaches the hub through its field doors, as registered
    // devices and a gateway of its own, on the simulator's clock.
    let field = match (&config.simulator, &config.api) {
        (Some(sim), Some(api)) => {
            let valley = crate::simulator::Valley::new(sim.shape.clone(), chrono::Utc::now());
            Some(crate::simulator::field::FieldPlan::new(
                http_addr,
                &valley.bin_layout(),
                sim.speed,
                api.limits.max_body_bytes,
            ))
        }
        _ => None,
    };
    let router = match config.api.clone() {
        Some(mut api) => {
            api.kafka = kafka.clone();
            if let Some(field) = &field {
                api.gateways.push(field.gateway());
                api.devices.extend(field.devices.iter().cloned());
                api.field_clock = field.clock.clone();
            }
            vallee_graphql::Api::start(api, lake.clone(), &shutdown, &mut background)
                .await
                .context("starting the API")?
                .router(ops)
        }
        None => vallee_graphql::http::ops_router(ops),
    };
    {
        let token = shutdown.child_token();
        stages.spawn(async move {
            vallee_graphql::serve(listener, router, token)
                .await
                .context("http")
        });
    }
    if let Some(mut sim) = config.simulator.clone() {
        sim.kafka = kafka.clone();
        sim.field = field;
        if config.api.is_some() {
            // Citizens through the API; a refused or failed write is not a hub failure.
            let (speed, seed, token) = (sim.speed, sim.shape.seed, shutdown.child_token());
            background.spawn(async move {
                if let Err(e) = crate::simulator::citizens::run(http_addr, speed, seed, token).await
                {
                    tracing::warn!(error = format!("{e:#}"), "simulated citizens stopped");
                }
            });
        }
        let token = shutdown.child_token();
        stages.spawn(async move {
            crate::simulator::run(sim, token)
                .await
                .map(|_| ())
                .context("simulator")
        });
    }
    if config.ingest_stage {
        // Lake upkeep where ingest writes: hourly compaction and checkpoints, daily vacuum.
        let (lake, token) = (lake.clone(), shutdown.child_token());
        let published = crate::upkeep::published_lakes(&lake, &config.data_dir)?;
        background.spawn(async move {
            let every = std::time::Duration::from_secs(3600);
            crate::upkeep::schedule(&lake, &published, every, token).await;
        });
    }
    print_banner(&config, &brokers, broker.is_some(), http_addr, lake.root());

    // The first stage to end (error or not) stops the others; every stage is awaited.
    let mut first_error = None;
    while let Some(joined) = stages.join_next().await {
        let result = joined.context("a stage panicked").and_then(|r| r);
        if let Err(e) = result {
            tracing::error!(error = format!("{e:#}"), "stage failed; stopping the hub");
            first_error.get_or_insert(e);
        }
        shutdown.cancel();
    }
    join_background(background).await;
    if let Some(b) = broker {
        b.stop();
    }
    report_totals(&stats);
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Creates the hub's topics, waiting for the broker with a back-off (1 s doubling to 30 s)
/// while it is unreachable. `false`: shutdown came first.
async fn ensure_topics_when_reachable(
    kafka: &KafkaOptions,
    partitions: i32,
    shutdown: &CancellationToken,
) -> bool {
    let topics = vallee_kafka::hub_topics(&kafka.topics);
    let mut backoff = std::time::Duration::from_secs(1);
    loop {
        match vallee_kafka::ensure_topics(kafka, &topics, partitions).await {
            Ok(()) => return true,
            Err(e) => tracing::warn!(
                brokers = kafka.brokers,
                error = %e,
                retry_in = ?backoff,
                "cannot create the topics (broker unreachable?); waiting for it"
            ),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
    }
}

/// Awaits the background tasks once the stages stopped: they all watch the shutdown
/// token; one still running after 30 s is named and left behind.
async fn join_background(mut background: JoinSet<()>) {
    let deadline = tokio::time::sleep(std::time::Duration::from_secs(30));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            joined = background.join_next() => match joined {
                None => return,
                Some(Err(e)) if e.is_panic() => tracing::error!(error = %e, "a background task panicked"),
                Some(_) => {}
            },
            _ = &mut deadline => {
                tracing::warn!(left = background.len(), "background tasks still running 30 s after shutdown; leaving them");
                background.abort_all();
                return;
            }
        }
    }
}

/// Runs one stage alone against an external broker (and `/healthz`): ingest, or the stream
/// stage, as set in `config`.
pub async fn stage_only(config: HubConfig, shutdown: CancellationToken) -> Result<()> {
    let brokers = config
        .kafka_brokers
        .clone()
        .context("--kafka-brokers is required")?;
    up(
        HubConfig {
            kafka_brokers: Some(brokers),
            simulator: None,
            ..config
        },
        shutdown,
    )
    .await
}

/// What the metrics read from the stages this process runs: ingest's counters and writer
/// id, the stream stage's live view (its watermarks, and its partitions' health).
#[derive(Debug)]
struct HubStatus {
    ingest: Option<(Arc<IngestStats>, String)>,
    live: Option<SharedLiveView>,
    stall_after: std::time::Duration,
}

impl StageStatus for HubStatus {
    fn ingest_writer(&self) -> Option<String> {
        self.ingest.as_ref().map(|(_, writer)| writer.clone())
    }

    fn ingest_counters(&self) -> IngestCounters {
        use std::sync::atomic::Ordering::Relaxed;
        let Some((stats, _)) = &self.ingest else {
            return IngestCounters::default();
        };
        IngestCounters {
            messages: stats.messages.load(Relaxed),
            rows: Table::ALL.into_iter().map(|t| (t, stats.rows(t))).collect(),
            dead_letters: Reason::ALL
                .into_iter()
                .map(|r| (r, stats.dead_letters(r)))
                .collect(),
            commits: stats.commits.load(Relaxed),
            commit_micros: stats.commit_micros.load(Relaxed),
            fenced: stats.fenced.load(Relaxed),
        }
    }

    fn partitions(&self) -> Vec<StagePartitions> {
        use std::sync::atomic::Ordering::Relaxed;
        let ingest = self.ingest.iter().map(|(stats, _)| StagePartitions {
            stage: "ingest",
            health: vallee_kafka::probe::read(&stats.health),
            stall_after: self.stall_after,
            recoveries: stats.recoveries.load(Relaxed),
        });
        let stream = self.live.iter().map(|live| {
            let (health, broadcast, recoveries) = {
                let view = live.read().unwrap_or_else(|p| p.into_inner());
                let broadcast = view.broadcast_health.partitions.clone();
                (view.health.clone(), broadcast, view.recoveries)
            };
            // The trucks' partitions a member reads whole, outside the group, beside the
            // group's.
            let mut health = vallee_kafka::probe::read(&health);
            health.partitions.extend(broadcast);
            StagePartitions {
                stage: "stream",
                health,
                stall_after: self.stall_after,
                recoveries,
            }
        });
        ingest.chain(stream).collect()
    }

    fn too_late(&self) -> BTreeMap<Stream, u64> {
        (self.live.as_ref())
            .map(|l| l.read().unwrap_or_else(|p| p.into_inner()).too_late.clone())
            .unwrap_or_default()
    }

    fn watermarks(&self) -> BTreeMap<Stream, Option<chrono::DateTime<chrono::Utc>>> {
        self.live
            .as_ref()
            .map(|l| {
                l.read()
                    .unwrap_or_else(|p| p.into_inner())
                    .watermarks
                    .clone()
            })
            .unwrap_or_default()
    }
}

fn report_totals(stats: &IngestStats) {
    use std::sync::atomic::Ordering::Relaxed;
    tracing::info!(
        messages = stats.messages.load(Relaxed),
        rows = stats.total_rows(),
        commits = stats.commits.load(Relaxed),
        "hub stopped"
    );
}

fn print_banner(
    config: &HubConfig,
    brokers: &str,
    embedded: bool,
    http: std::net::SocketAddr,
    lake: &url::Url,
) {
    let broker = if embedded {
        format!(
            "{brokers} (embedded Tansu, {})",
            config.data_dir.join("broker").display()
        )
    } else {
        format!("{brokers} (external)")
    };
    let sim = match &config.simulator {
        Some(s) if config.api.is_some() => format!(
            "on, {}× real time, at most {} msg/s; part through the field doors \
             (LoRaWAN bins, a beacon gateway, a daily counter)",
            s.speed, s.max_rate
        ),
        Some(s) => format!("on, {}× real time, at most {} msg/s", s.speed, s.max_rate),
        None => "off".into(),
    };
    let stages = match (config.ingest_stage, config.stream.is_some()) {
        (true, true) => {
            "ingest → lake; stream stage → footfall, site_presence, fill_alerts, vine_*, bin_forecast, late_events, vallee.alerts"
        }
        (true, false) => "ingest → lake",
        (false, true) => {
            "stream stage → footfall, site_presence, fill_alerts, vine_*, bin_forecast, late_events, vallee.alerts"
        }
        (false, false) if config.api.is_some() => "API replica (its view replayed from the topics)",
        (false, false) => "none",
    };
    let api = if config.api.is_some() {
        format!(
            "  dashboard  http://{http}/\n  residents  http://{http}/signaler, /mes-signalements, /idees, /petite-enfance, /lieux\n  graphql    http://{http}/graphql (GraphiQL; subscriptions on ws://{http}/graphql/ws)\n  open311    http://{http}/open311/v2/services.json\n"
        )
    } else {
        String::new()
    };
    println!(
        "\nSmart Vallée hub is up\n  broker     {broker}\n  lake       {lake}\n  stages     {stages}\n{api}  metrics    http://{http}/metrics\n  health     http://{http}/healthz, http://{http}/readyz\n  simulator  {sim}\nCtrl-C stops it after a final commit of what was read.\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_broker_stays_on_loopback_unless_exposed_on_purpose() {
        for local in ["127.0.0.1:9092", "[::1]:9092"] {
            assert!(exposed_only_if_asked(local.parse().unwrap(), false).is_ok());
        }
        let everywhere = "0.0.0.0:9092".parse().unwrap();
        let refused = exposed_only_if_asked(everywhere, false).unwrap_err();
        assert!(
            refused.to_string().contains("authenticates nobody"),
            "{refused}"
        );
        assert_eq!(exposed_only_if_asked(everywhere, true).unwrap(), everywhere);
    }
}
