//! Command-line interface: `vallee up | ingest | stream | serve | simulate | lake |
//! schemas export | graphql schema | bench`. Arguments only: the options live in the
//! crates that own them and are read from the file by [`crate::config`].
//!
//! Precedence: command-line flag, then `VALLEE_*` environment variable (clap), then the
//! TOML file given by `--config`, then the built-in default (serde). Addresses (brokers,
//! data directory, HTTP, the embedded broker) come from flags or environment only; the
//! simulator's knobs may also be set in the file's `[simulator]` section, under the flags
//! ([`SimArgs::apply`]). See `docs/configuration.md`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::simulator::SimulatorOptions;

#[derive(Debug, Parser)]
#[command(
    name = "vallee",
    version,
    about = "Smart Vallée data hub: Kafka sensor streams into a Delta Lake"
)]
pub struct Cli {
    /// TOML file with the options of each stage (see docs/configuration.md); unknown keys
    /// are errors.
    #[arg(long, global = true, env = "VALLEE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the lake's tables live instead of `<data-dir>/lake`: `s3://bucket/prefix`
    /// (S3-compatible object storage; settings from `AWS_*` and the file's
    /// `[lake.storage]`) or `file:///abs/folder`. Wins over the file's `[lake] url`.
    #[arg(long, global = true, env = "VALLEE_LAKE")]
    pub lake: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole hub: embedded broker (unless --kafka-brokers), ingest, HTTP, simulator.
    Up(UpArgs),
    /// Ingest alone, as one member of the ingest consumer group.
    Ingest(StageArgs),
    /// The stream stage alone (event-time windows and alerts), its own consumer group.
    Stream(StageArgs),
    /// The API alone (GraphQL, Open311), a stateless replica: its view comes from the
    /// topics and the lake.
    Serve(ServeArgs),
    /// The simulator alone, producing to a running broker.
    Simulate(SimulateArgs),
    /// The embedded Kafka-protocol broker alone (Tansu on SQLite under
    /// `<data-dir>/broker`), for ingest, stream and serve run as separate processes.
    Broker(BrokerArgs),
    /// The input contract's JSON Schemas.
    Schemas {
        #[command(subcommand)]
        command: SchemasCommand,
    },
    /// Lake upkeep: compaction, vacuum, checkpoints (also scheduled inside `vallee up`).
    Lake {
        #[command(subcommand)]
        command: LakeCommand,
    },
    /// The GraphQL schema.
    Graphql {
        #[command(subcommand)]
        command: GraphqlCommand,
    },
    /// Benchmarks, each against a reference measured in the same run.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum SchemasCommand {
    /// Writes one `<Type>.schema.json` per event type into DIR.
    Export { dir: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum LakeCommand {
    /// Rewrites small files into large ones (rows and recorded offsets unchanged).
    Optimize(LakeArgs),
    /// Deletes files no version younger than the retention needs (lake, public and
    /// research tables).
    Vacuum {
        #[command(flatten)]
        args: LakeArgs,
        /// Versions younger than this stay readable (`asOf` downloads).
        #[arg(long, default_value_t = 30)]
        retention_days: i64,
    },
    /// Writes a checkpoint of every table's latest version.
    Checkpoint(LakeArgs),
    /// Reads every data file of the tables whole and names the damaged ones (truncated,
    /// corrupt or missing) with what the log says they held; exits with 1 when any is.
    Check(LakeArgs),
    /// Moves the damaged files to `<data-dir>/quarantine/<table>/` and removes them from
    /// their tables in one commit each, so every reader works again. Rows in other files
    /// are unchanged; what the removed files held is printed (see the README, Operations).
    Repair(LakeArgs),
    /// Brings back from the topics the rows the lake recorded as landed but no longer holds
    /// (after `repair` set a damaged file aside), decoded as ingest decodes them; counts
    /// what the topics no longer hold. Without --kafka-brokers it starts the embedded
    /// broker on `<data-dir>/broker` (stop the hub first). Running it again changes nothing.
    Refill {
        #[command(flatten)]
        args: LakeArgs,
        /// The broker holding the topics; default: the embedded one of the data dir.
        #[arg(long, env = "VALLEE_KAFKA_BROKERS")]
        kafka_brokers: Option<String>,
    },
    /// Folds the late visits kept in `late_events` (later than the tourism stream's
    /// correction horizon) into their sites' hours: each hour is counted again from
    /// `site_visits` and written to `site_presence` as a new revision when it changed. Safe
    /// while the hub runs; running it again changes nothing.
    FoldLate {
        /// Data directory (`lake/` under it).
        #[arg(long, env = "VALLEE_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
    /// After the broker lost records the lake had landed (ingest stopped saying so):
    /// records that nothing of the partitions' new logs landed yet, so ingest reads them
    /// from their start. Rows already in the tables stay. Run it with ingest stopped.
    AcceptLoss {
        /// Data directory (`lake/` under it).
        #[arg(long, env = "VALLEE_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// The topic ingest named.
        #[arg(long)]
        topic: String,
        /// The partitions ingest named (repeatable).
        #[arg(long = "partition", required = true)]
        partitions: Vec<i32>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct LakeArgs {
    /// Data directory (`lake/`, `public/` and `research/` under it).
    #[arg(long, env = "VALLEE_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Only these tables (repeatable); default: all.
    #[arg(long = "table")]
    pub tables: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum GraphqlCommand {
    /// Prints the SDL (committed as graphql/schema.graphql).
    Schema,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Raw consume rate vs ingest-into-Delta rate on the same topics, lake freshness, peak RSS.
    Ingest(BenchIngestArgs),
    /// The stream stage: engine vs a DataFusion batch query, end to end vs raw consume,
    /// alert latency vs the broker's, peak RSS, files per minute.
    Stream(BenchStreamArgs),
    /// The whole hub SIGKILLed at random moments under a steady producer: every
    /// acknowledged message landed once, every partition flowing, restart times.
    Chaos(BenchChaosArgs),
    /// Time-to-full on a held-out simulated week: the straight line since the last
    /// emptying vs the week profile the stage learns (mean absolute error of each).
    Forecast(BenchForecastArgs),
    /// Planned rounds by fill level vs fixed schedules on the simulated valley: kilometres,
    /// emptyings, fill at collection, overflowing bin-hours.
    Rounds(BenchRoundsArgs),
    /// The field doors (NDJSON batches, a network server's webhook) through `vallee
    /// serve` vs a plain producer sending the same events in the same shape: events per
    /// second, answer latency p50/p99.
    Gateway(BenchGatewayArgs),
}

#[derive(Debug, Clone, Args)]
pub struct BenchGatewayArgs {
    /// Bin readings posted in NDJSON batches.
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Readings a request (the default body limit, 64 KiB, takes about 300).
    #[arg(long, default_value_t = 200)]
    pub batch: usize,
    /// Uplinks posted to the ChirpStack webhook, one a request.
    #[arg(long, default_value_t = 5_000)]
    pub uplinks: usize,
    /// Registered LoRaWAN devices the uplinks come from.
    #[arg(long, default_value_t = 200)]
    pub devices: usize,
    /// Clients posting at once (and producers sending at once, for the reference).
    #[arg(long, default_value_t = 8)]
    pub senders: usize,
    /// Partitions of the benchmark topics.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Run against this broker (any Kafka-protocol broker; the bench's topics are its
    /// own) instead of starting `vallee broker`.
    #[arg(long)]
    pub kafka_brokers: Option<String>,
    /// The storage of the `vallee broker` the bench starts (`memory`: for benchmarks
    /// only, never for data).
    #[arg(long, value_enum, default_value_t = crate::broker::BrokerStorage::Sqlite)]
    pub broker_storage: crate::broker::BrokerStorage,
}

#[derive(Debug, Clone, Args)]
pub struct BenchRoundsArgs {
    /// Simulated weeks.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=52))]
    pub weeks: u32,
    /// Bins of the simulated valley.
    #[arg(long, default_value_t = 300)]
    pub bins: usize,
    /// Factor on the simulator's fill rates: its bins fill in about a day, for lively
    /// demos; the valley's take several (0.2: about five days for household waste).
    #[arg(long, default_value_t = 0.2)]
    pub rate_scale: f64,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

#[derive(Debug, Clone, Args)]
pub struct BenchForecastArgs {
    /// Simulated weeks, the last one held out (at least 2).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=52))]
    pub weeks: u32,
    /// Bins of the simulated valley.
    #[arg(long, default_value_t = 120)]
    pub bins: usize,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Options every long-running command shares.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Data directory: `lake/`, `broker/`, `private/`, `public/` and `research/`.
    #[arg(long, env = "VALLEE_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// External Kafka bootstrap servers; without it `up` embeds a broker.
    #[arg(long, env = "VALLEE_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Partitions of the topics the hub creates when missing.
    #[arg(long, env = "VALLEE_PARTITIONS", default_value_t = 3)]
    pub partitions: i32,
    /// Address of every HTTP endpoint of the hub.
    #[arg(long, env = "VALLEE_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where the embedded broker listens (an IP literal; port 0 picks a free one).
    #[arg(long, env = "VALLEE_BROKER_LISTEN", default_value = "127.0.0.1:9092")]
    pub broker_listen: SocketAddr,
    /// Let the embedded broker listen on an address other machines reach. It
    /// authenticates nobody: whoever reaches it reads every topic and produces to any.
    #[arg(long, env = "VALLEE_EXPOSE_BROKER")]
    pub expose_broker: bool,
    /// Do not run the built-in simulator.
    #[arg(long, env = "VALLEE_NO_SIMULATE")]
    pub no_simulate: bool,
    #[command(flatten)]
    pub sim: SimArgs,
}

/// `vallee broker`: the embedded broker as a process of its own.
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// Data directory (the broker's SQLite file under `broker/`).
    #[arg(long, env = "VALLEE_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Where it listens (an IP literal).
    #[arg(long, env = "VALLEE_BROKER_LISTEN", default_value = "127.0.0.1:9092")]
    pub broker_listen: SocketAddr,
    /// Listen on an address other machines reach. The broker authenticates nobody:
    /// whoever reaches it reads every topic and produces to any.
    #[arg(long, env = "VALLEE_EXPOSE_BROKER")]
    pub expose_broker: bool,
    /// `memory` is for benchmarks only: Tansu's memory engine loses the rest of a batch
    /// when a consumer seeks and everything when it stops. Never for data.
    #[arg(long, value_enum, default_value_t = crate::broker::BrokerStorage::Sqlite)]
    pub storage: crate::broker::BrokerStorage,
}

/// `vallee ingest` and `vallee stream`: one stage, one member of its consumer group.
#[derive(Debug, Clone, Args)]
pub struct StageArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// How the stage gets its partitions: `group` (the coordinator assigns; the default
    /// here), `sole` (the stage's only process takes them all) or `static:<i>/<n>`
    /// (member i of n takes partitions p with p mod n = i; no coordinator)
    /// [default: `[ingest]`/`[stream] membership`, else group].
    #[arg(long, env = "VALLEE_MEMBERSHIP")]
    pub membership: Option<vallee_kafka::Membership>,
}

/// `vallee serve`: an API replica.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The simulator's knobs; each, when given, wins over the file's `[simulator]` section.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Simulated seconds per real second [default: 60, or `[simulator] speed`].
    #[arg(long, env = "VALLEE_SIM_SPEED")]
    pub speed: Option<f64>,
    /// Cap on produced messages per second [default: 2000, or `[simulator] max_rate`].
    #[arg(long, env = "VALLEE_SIM_RATE")]
    pub rate: Option<u32>,
    /// Seed of the valley model [default: 42, or `[simulator] seed`].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of connected bins [default: 300, or `[simulator] bins`].
    #[arg(long)]
    pub bins: Option<usize>,
    /// Share of malformed events, exercising the dead letters [default: 0.002, or
    /// `[simulator] fault_ratio`].
    #[arg(long)]
    pub fault_ratio: Option<f64>,
}

impl SimArgs {
    /// The flags given (or their environment variables) over the file's options.
    pub fn apply(&self, options: &mut SimulatorOptions) {
        let shape = &mut options.shape;
        if let Some(v) = self.speed {
            options.speed = v;
        }
        if let Some(v) = self.rate {
            options.max_rate = v;
        }
        if let Some(v) = self.seed {
            shape.seed = v;
        }
        if let Some(v) = self.bins {
            shape.bins = v;
        }
        if let Some(v) = self.fault_ratio {
            shape.fault_ratio = v;
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "VALLEE_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<u64>,
    #[command(flatten)]
    pub sim: SimArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BenchIngestArgs {
    /// Events in the backlog.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Rate of the live phase that measures freshness, messages per second.
    #[arg(long, default_value_t = 2_000)]
    pub live_rate: u32,
    /// Length of the live phase, seconds.
    #[arg(long, default_value_t = 15)]
    pub live_seconds: u64,
    /// Partitions of the benchmark topics.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Run against this broker (any Kafka-protocol broker; the bench's topics are its
    /// own) instead of starting `vallee broker`.
    #[arg(long)]
    pub kafka_brokers: Option<String>,
    /// The storage of the `vallee broker` the bench starts. `memory` (Tansu's memory
    /// engine) serves several times faster than SQLite, so the stage, not the broker, is
    /// the limit; it loses data on a consumer's seek: for benchmarks only, never for data.
    #[arg(long, value_enum, default_value_t = crate::broker::BrokerStorage::Sqlite)]
    pub broker_storage: crate::broker::BrokerStorage,
    /// How the stage gets its partitions (`sole`, as under `vallee up`: every partition,
    /// no group join; `group`: from the group coordinator; `static:<i>/<n>`).
    #[arg(long, default_value = "sole")]
    pub membership: vallee_kafka::Membership,
    /// Ingest processes' worth of members in one consumer group (with `--membership
    /// group`), each with its own lake handle, sharing the backlog.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub members: u32,
}

#[derive(Debug, Clone, Args)]
pub struct BenchStreamArgs {
    /// Events of the valley model (all five streams).
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Partitions of the benchmark topics.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Threshold crossings produced per second in the latency phase.
    #[arg(long, default_value_t = 200)]
    pub alert_rate: u32,
    /// Length of the latency phase, seconds.
    #[arg(long, default_value_t = 10)]
    pub alert_seconds: u64,
    /// The stage's commit interval, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub flush_ms: u64,
    /// Runs of the engine-only comparison (each side's median is reported).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Only the engine-only comparison (no broker), e.g. under a profiler.
    #[arg(long)]
    pub engine_only: bool,
    /// Run against this broker (any Kafka-protocol broker; the bench's topics are its
    /// own) instead of starting `vallee broker`.
    #[arg(long)]
    pub kafka_brokers: Option<String>,
    /// The storage of the `vallee broker` the bench starts. `memory` (Tansu's memory
    /// engine) serves several times faster than SQLite, so the stage, not the broker, is
    /// the limit; it loses data on a consumer's seek: for benchmarks only, never for data.
    #[arg(long, value_enum, default_value_t = crate::broker::BrokerStorage::Sqlite)]
    pub broker_storage: crate::broker::BrokerStorage,
    /// How the stage gets its partitions (`sole`, as under `vallee up`: every partition,
    /// no group join; `group`: from the group coordinator; `static:<i>/<n>`).
    #[arg(long, default_value = "sole")]
    pub membership: vallee_kafka::Membership,
    /// Stream processes' worth of members in one consumer group (with `--membership
    /// group`), each with its own lake handle and live view, sharing the backlog.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub members: u32,
}

#[derive(Debug, Clone, Args)]
pub struct BenchChaosArgs {
    /// SIGKILLs of the whole hub (every fourth during its start-up).
    #[arg(long, default_value_t = 20)]
    pub kills: usize,
    /// SIGTERMs (graceful stops), spread over the run.
    #[arg(long, default_value_t = 3)]
    pub terms: usize,
    /// Bin readings produced per second, steadily, through every restart.
    #[arg(long, default_value_t = 300)]
    pub rate: u32,
    /// Distinct bins (message keys) the readings come from.
    #[arg(long, default_value_t = 200)]
    pub bins: u32,
    /// Partitions of the hub's topics.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Seed of the kill moments.
    #[arg(long, default_value_t = 15)]
    pub seed: u64,
    /// Keep the data dir and the hub's logs (printed at the end).
    #[arg(long)]
    pub keep: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_arguments_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_the_defaults() {
        let mut options = SimulatorOptions {
            speed: 10.0,
            max_rate: 500,
            ..Default::default()
        };
        let cli = Cli::parse_from(["vallee", "up", "--speed", "120", "--bins", "20"]);
        let Command::Up(args) = cli.command else {
            panic!("parsed as up")
        };
        args.sim.apply(&mut options);
        assert_eq!(options.speed, 120.0, "flag over file");
        assert_eq!(options.shape.bins, 20, "flag over default");
        assert_eq!(options.max_rate, 500, "file kept without a flag");
        assert_eq!(options.shape.seed, 42, "default kept");
    }
}
