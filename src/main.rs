//! `vallee`: parse the configuration, set up tracing, run the command.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use vallee::cli::{
    BenchCommand, Cli, Command, CommonArgs, GraphqlCommand, LakeArgs, LakeCommand, SchemasCommand,
    SimArgs,
};
use vallee::config::Config;
use vallee::hub::{self, HubConfig};
use vallee::simulator::SimulatorOptions;
use vallee_kafka::Membership;

/// mimalloc rather than the system's allocator: the stages allocate an event's strings on
/// a decoding thread and free them on the stage's, and glibc's arenas made that a fifth of
/// the stage's thread (`malloc_consolidate`, `unlink_chunk`; docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Log filter when `RUST_LOG` is not set: our stages at info, chatty dependencies at warn.
const DEFAULT_LOG: &str = "info,tansu_broker=warn,tansu_storage=warn,tansu_sans_io=warn,tansu_schema=warn,\
tansu_service=warn,tansu_model=warn,tansu_auth=warn,buoyant_kernel=off,delta_kernel=warn,deltalake_core=warn,\
datafusion=warn,rdkafka=warn,librdkafka=warn";

/// The file's `[simulator]` under the flags, producing to `brokers`.
fn sim_options(args: &SimArgs, config: &Config, brokers: &str) -> Result<SimulatorOptions> {
    let mut options = SimulatorOptions {
        kafka: vallee_kafka::KafkaOptions {
            brokers: brokers.to_string(),
            topics: config.topics.clone(),
            ..config.kafka.clone()
        },
        ..config.simulator.clone()
    };
    args.apply(&mut options);
    options.validate().context("simulator flags")?;
    Ok(options)
}

fn hub_config(common: &CommonArgs, config: &Config) -> Result<HubConfig> {
    let brokers = common.kafka_brokers.clone().unwrap_or_default();
    let mut placed = config.clone().placed(&common.data_dir, &brokers);
    // Ingest lands the API's events only when they carry the replicas' signature.
    let secret = vallee_graphql::replicas_secret(&placed.api).context("the replicas' secret")?;
    placed.ingest.decode.event_key = Some(vallee_schemas::signing::EventKey::derive(&secret));
    Ok(HubConfig {
        data_dir: common.data_dir.clone(),
        kafka_brokers: common.kafka_brokers.clone(),
        broker_listen: "127.0.0.1:9092".parse()?,
        http_addr: common.http_addr,
        partitions: common.partitions,
        kafka: placed.kafka,
        ingest: placed.ingest,
        lake: placed.lake,
        simulator: None,
        ingest_stage: true,
        stream: Some(placed.stream),
        api: Some(placed.api),
    })
}

async fn lake_command(command: LakeCommand, file: &Config) -> Result<()> {
    let (task, args) = match command {
        LakeCommand::Optimize(a) => (vallee::upkeep::Task::Optimize, a),
        LakeCommand::Checkpoint(a) => (vallee::upkeep::Task::Checkpoint, a),
        LakeCommand::Vacuum {
            args,
            retention_days,
        } => (
            vallee::upkeep::Task::Vacuum {
                retention: chrono::Duration::days(retention_days.max(0)),
            },
            args,
        ),
        LakeCommand::AcceptLoss {
            data_dir,
            topic,
            partitions,
        } => return accept_loss(&data_dir, &topic, &partitions, file).await,
        LakeCommand::FoldLate { data_dir } => return fold_late(&data_dir, file).await,
        LakeCommand::Check(args) => return lake_check(&args, file, false).await,
        LakeCommand::Repair(args) => return lake_check(&args, file, true).await,
        LakeCommand::Refill {
            args,
            kafka_brokers,
        } => return refill(&args, kafka_brokers, file).await,
    };
    lake_upkeep(task, &args, file).await
}

/// `vallee lake fold-late`: what it folded, hour by hour.
async fn fold_late(data_dir: &std::path::Path, file: &Config) -> Result<()> {
    let options = vallee_lake::LakeOptions {
        root: data_dir.join("lake"),
        ..file.lake.clone()
    };
    let lake = vallee_lake::Lake::open(options).await?;
    let done = vallee_stream::late::fold::run(&lake).await?;
    for (site, hour, revision, visitors) in &done.corrected {
        println!(
            "site_presence {site} {}: {visitors} visitors (revision {revision})",
            hour.format("%Y-%m-%dT%H:%MZ")
        );
    }
    println!(
        "{} late visits pending: {} folded, {} waiting for ingest to land them; {} hours corrected",
        done.pending,
        done.folded,
        done.not_landed,
        done.corrected.len()
    );
    Ok(())
}

async fn accept_loss(
    data_dir: &std::path::Path,
    topic: &str,
    partitions: &[i32],
    file: &Config,
) -> Result<()> {
    let options = vallee_lake::LakeOptions {
        root: data_dir.join("lake"),
        ..file.lake.clone()
    };
    let lake = vallee_lake::Lake::open_bare(options)?;
    let writer = &file.ingest.writer_id;
    let reset = vallee::repair::accept_loss(&lake, writer, &file.topics, topic, partitions).await?;
    for (table, partition, was) in &reset {
        println!("{table}: {topic}[{partition}] was at offset {was}; now read from the start");
    }
    println!("{} positions reset", reset.len());
    Ok(())
}

/// `vallee lake refill`: on `kafka_brokers`, else on the data dir's embedded broker.
async fn refill(args: &LakeArgs, kafka_brokers: Option<String>, file: &Config) -> Result<()> {
    let options = vallee_lake::LakeOptions {
        root: args.data_dir.join("lake"),
        ..file.lake.clone()
    };
    let lake = vallee_lake::Lake::open_bare(options)?;
    let embedded = match &kafka_brokers {
        Some(_) => None,
        None => Some(
            vallee::broker::EmbeddedBroker::start(
                "127.0.0.1:0".parse()?,
                &args.data_dir.join("broker"),
            )
            .await?,
        ),
    };
    let brokers = match (&kafka_brokers, &embedded) {
        (Some(b), _) => b.clone(),
        (None, Some(e)) => e.bootstrap(),
        (None, None) => unreachable!("one broker or the other"),
    };
    let kafka = vallee_kafka::KafkaOptions {
        brokers,
        topics: file.topics.clone(),
        ..file.kafka.clone()
    };
    let writer = &file.ingest.writer_id;
    let refilled =
        vallee::repair::refill(&lake, &kafka, &file.decode, writer, &args.tables).await?;
    for r in &refilled {
        println!(
            "{}[{}]: {} offsets missing from the lake, {} brought back, {} no longer in the topic",
            r.topic, r.partition, r.missing, r.restored, r.gone
        );
    }
    let restored: u64 = refilled.iter().map(|r| r.restored).sum();
    let gone: u64 = refilled.iter().map(|r| r.gone).sum();
    println!("{restored} rows brought back, {gone} lost for good");
    if let Some(broker) = embedded {
        broker.stop();
    }
    Ok(())
}

/// `vallee lake check` (`repair` false) and `vallee lake repair`.
async fn lake_check(args: &LakeArgs, file: &Config, repair: bool) -> Result<()> {
    let options = vallee_lake::LakeOptions {
        root: args.data_dir.join("lake"),
        ..file.lake.clone()
    };
    let lake = vallee_lake::Lake::open_bare(options)?;
    if repair {
        let quarantine = args.data_dir.join("quarantine");
        let repaired = vallee::repair::repair(&lake, &args.tables, &quarantine).await?;
        for (d, copy) in &repaired {
            println!(
                "{}: removed {} ({}); it held {}; kept as {}",
                d.table,
                d.path,
                d.error,
                d.held,
                copy.display()
            );
        }
        println!("{} damaged files set aside", repaired.len());
        return Ok(());
    }
    let damaged = vallee::repair::check(&lake, &args.tables).await?;
    for d in &damaged {
        println!(
            "{}: {} is damaged: {}; it held {}",
            d.table, d.path, d.error, d.held
        );
    }
    if damaged.is_empty() {
        println!("every data file reads whole");
        return Ok(());
    }
    eprintln!(
        "{} damaged files: `vallee lake repair` sets them aside (see the README, Operations)",
        damaged.len()
    );
    std::process::exit(1)
}

async fn lake_upkeep(task: vallee::upkeep::Task, args: &LakeArgs, config: &Config) -> Result<()> {
    let options = vallee_lake::LakeOptions {
        root: args.data_dir.join("lake"),
        ..config.lake.clone()
    };
    let lake = vallee_lake::Lake::open(options).await?;
    let published = vallee::upkeep::published_lakes(&lake, &args.data_dir)?;
    let done = vallee::upkeep::run(task, &lake, &published, &args.tables, true).await?;
    if let vallee::upkeep::Task::Optimize = task {
        let (before, after) = done.iter().fold((0, 0), |(b, a), (_, x, y)| (b + x, a + y));
        println!(
            "{} tables: {before} files before, {after} after",
            done.len()
        );
    } else {
        println!("{} tables done", done.len());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG)),
        )
        .init();
    let cli = Cli::parse();
    let mut file = Config::load(cli.config.as_deref())?;
    if let Some(lake) = &cli.lake {
        file.lake.url = Some(lake.clone());
        file.lake.validate().context("--lake")?;
    }
    let shutdown = CancellationToken::new();
    hub::cancel_on_signals(shutdown.clone());
    match cli.command {
        Command::Up(args) => {
            let mut config = hub_config(&args.common, &file)?;
            // The whole hub in one process: each stage is its group's only member and
            // takes its partitions itself (no coordinator to strand one, no join wait).
            config.ingest.membership = config.ingest.membership.or(Membership::Sole);
            if let Some(stream) = config.stream.as_mut() {
                stream.membership = stream.membership.or(Membership::Sole);
            }
            config.broker_listen =
                hub::exposed_only_if_asked(args.broker_listen, args.expose_broker)?;
            if !args.no_simulate {
                config.simulator = Some(sim_options(&args.sim, &file, "")?);
            }
            hub::up(config, shutdown).await
        }
        Command::Ingest(args) => {
            let mut config = HubConfig {
                stream: None,
                api: None,
                ..hub_config(&args.common, &file)?
            };
            config.ingest.membership = args
                .membership
                .unwrap_or(config.ingest.membership)
                .or(Membership::Group);
            hub::stage_only(config, shutdown).await
        }
        Command::Stream(args) => {
            let mut config = HubConfig {
                ingest_stage: false,
                api: None,
                ..hub_config(&args.common, &file)?
            };
            if let Some(stream) = config.stream.as_mut() {
                stream.membership = args
                    .membership
                    .unwrap_or(stream.membership)
                    .or(Membership::Group);
            }
            hub::stage_only(config, shutdown).await
        }
        Command::Serve(args) => {
            let config = HubConfig {
                ingest_stage: false,
                stream: None,
                ..hub_config(&args.common, &file)?
            };
            hub::stage_only(config, shutdown).await
        }
        Command::Broker(args) => {
            let listen = hub::exposed_only_if_asked(args.broker_listen, args.expose_broker)?;
            let broker = vallee::broker::EmbeddedBroker::start_on(
                listen,
                &args.data_dir.join("broker"),
                vallee::broker::RETENTION_CHECK,
                args.storage,
            )
            .await?;
            // The address on stdout, once listening: scripts (and benches) wait for it.
            println!("listening on {}", broker.bootstrap());
            shutdown.cancelled().await;
            broker.stop();
            Ok(())
        }
        Command::Lake { command } => lake_command(command, &file).await,
        Command::Graphql {
            command: GraphqlCommand::Schema,
        } => {
            print!("{}", vallee_graphql::schema::sdl());
            Ok(())
        }
        Command::Simulate(args) => {
            let mut options = sim_options(&args.sim, &file, &args.kafka_brokers)?;
            options.duration = args.duration.map(Duration::from_secs);
            let report = vallee::simulator::run(options, shutdown).await?;
            println!(
                "produced {} events {:?}",
                report.produced, report.per_stream
            );
            Ok(())
        }
        Command::Schemas {
            command: SchemasCommand::Export { dir },
        } => {
            std::fs::create_dir_all(&dir)?;
            for (name, schema) in vallee_schemas::json_schema::all() {
                let path = dir.join(format!("{name}.schema.json"));
                std::fs::write(&path, serde_json::to_string_pretty(&schema)? + "\n")?;
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::Bench {
            command: BenchCommand::Ingest(args),
        } => vallee::bench::ingest(args, &file.lake).await,
        Command::Bench {
            command: BenchCommand::Stream(args),
        } => vallee::bench::stream(args).await,
        Command::Bench {
            command: BenchCommand::Chaos(args),
        } => vallee::bench::chaos(args).await,
        Command::Bench {
            command: BenchCommand::Forecast(args),
        } => vallee::bench::forecast(args).await,
        Command::Bench {
            command: BenchCommand::Rounds(args),
        } => vallee::bench::rounds(args).await,
        Command::Bench {
            command: BenchCommand::Gateway(args),
        } => vallee::bench::gateway(args).await,
    }
}
