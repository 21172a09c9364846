//! Command-line interface: `vallee up | ingest | stream | serve | simulate | schemas export |
//! graphql schema | bench ingest`.
//!
//! Precedence: command-line flag, then `VALLEE_*` environment variable, then the TOML file
//! given by `--config` (tuning knobs only), then the built-in default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use vallee_ingest::IngestOptions;
use vallee_lake::LakeOptions;
use vallee_schemas::contract::Stream;

#[derive(Debug, Parser)]
#[command(
    name = "vallee",
    version,
    about = "Smart Vallée data hub: Kafka sensor streams into a Delta Lake"
)]
pub struct Cli {
    /// TOML file with tuning options (see docs/configuration.md); unknown keys are errors.
    #[arg(long, global = true, env = "VALLEE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole hub: embedded broker (unless --kafka-brokers), ingest, HTTP, simulator.
    Up(UpArgs),
    /// Ingest alone, as one member of the ingest consumer group.
    Ingest(IngestArgs),
    /// The stream stage alone (event-time windows and alerts), its own consumer group.
    Stream(IngestArgs),
    /// The API alone (GraphQL, Open311), a stateless replica: its view comes from the
    /// topics and the lake.
    Serve(IngestArgs),
    /// The simulator alone, producing to a running broker.
    Simulate(SimulateArgs),
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
    /// Do not run the built-in simulator.
    #[arg(long, env = "VALLEE_NO_SIMULATE")]
    pub no_simulate: bool,
    #[command(flatten)]
    pub sim: SimArgs,
}

#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Simulated seconds per real second.
    #[arg(long, env = "VALLEE_SIM_SPEED", default_value_t = 60.0)]
    pub speed: f64,
    /// Cap on produced messages per second.
    #[arg(long, env = "VALLEE_SIM_RATE", default_value_t = 2000)]
    pub rate: u32,
    /// Seed of the valley model.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of connected bins.
    #[arg(long, default_value_t = 300)]
    pub bins: usize,
    /// Share of malformed events (exercises the dead letters).
    #[arg(long, default_value_t = 0.002)]
    pub fault_ratio: f64,
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
}

/// The TOML configuration file (tuning only; addresses come from flags or environment).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub ingest: IngestFile,
    #[serde(default)]
    pub lake: LakeFile,
    #[serde(default)]
    pub stream: StreamFile,
    #[serde(default)]
    pub api: ApiFile,
    /// Topic per input stream: `waste_containers`, `waste_vehicles`, `beacons`, `tourism`, `vineyards`.
    #[serde(default)]
    pub topics: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestFile {
    pub group_id: Option<String>,
    pub flush_max_messages: Option<usize>,
    pub flush_interval_ms: Option<u64>,
    pub progress_max_lag: Option<i64>,
    pub progress_interval_s: Option<u64>,
    pub max_message_bytes: Option<usize>,
    /// Extra librdkafka settings for the consumer.
    #[serde(default)]
    pub kafka: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamFile {
    /// Consumer group of the stream stage.
    pub group_id: Option<String>,
    /// A partition silent this long stops holding its stream's watermark back.
    pub idle_timeout_ms: Option<u64>,
    /// Outputs are committed this often.
    pub flush_interval_ms: Option<u64>,
    /// Capacity (people) of each activity-zone area, for `congested`.
    #[serde(default)]
    pub zone_capacity: BTreeMap<String, i64>,
    /// Allowed lateness per input stream, seconds (`beacons = 30`, …).
    #[serde(default)]
    pub lateness_s: BTreeMap<String, i64>,
    /// Gap between two visits of a device (dwell time), seconds.
    pub dwell_gap_s: Option<i64>,
    /// Zones whose people are counted with a sketch (approximate, constant memory).
    #[serde(default)]
    pub sketch_zones: Vec<String>,
    /// Critical air temperature of the frost alert, °C.
    pub frost_critical_c: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFile {
    /// Secret keying citizens' tokens; replicas must share it. Default: generated once
    /// into `<data-dir>/private/token-secret`.
    pub token_secret: Option<String>,
    /// Origins allowed to call the API from a browser (`"*"` for any).
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Hide new ideas until a moderator shows them.
    pub pre_moderation: Option<bool>,
    /// Distinct flags that hide an idea pending moderation.
    pub flags_to_hide: Option<usize>,
    pub tokens_per_minute_per_address: Option<u32>,
    pub mutations_per_minute_per_address: Option<u32>,
    pub mutations_per_minute_per_token: Option<u32>,
    pub max_body_bytes: Option<usize>,
    pub max_depth: Option<usize>,
    pub max_complexity: Option<usize>,
    /// Staff members: `[[api.staff]] name = "…", token_sha256 = "…", commune = "34114"`
    /// (no commune: the whole intercommunality).
    #[serde(default)]
    pub staff: Vec<StaffFile>,
    /// Researchers allowed on `POST /sql`: `[[api.researchers]] name = "…", token_sha256 = "…"`.
    #[serde(default)]
    pub researchers: Vec<ResearcherFile>,
    /// Vineyard partners of `GET /feeds/vineyard`:
    /// `[[api.partners]] name = "…", token_sha256 = "…", parcels = ["…"]`, and the
    /// parcels each chose to share: `share_public = ["…"]`, `share_researchers = ["…"]`.
    #[serde(default)]
    pub partners: Vec<PartnerFile>,
    /// SIRET of the intercommunality's publishing establishment (14 digits, starting with
    /// its SIREN 243400694), for the SCDL catalogue.
    pub publisher_siret: Option<String>,
    /// How often the public tables (`<data-dir>/public`) are brought up to date, seconds.
    pub publish_interval_s: Option<u64>,
    /// Days a reporter's contact is kept after the report closed.
    pub contact_retention_days: Option<u64>,
    /// Longest research query, seconds.
    pub sql_timeout_s: Option<u64>,
    /// Most rows a research query returns.
    pub sql_max_rows: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResearcherFile {
    pub name: String,
    pub token_sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerFile {
    pub name: String,
    pub token_sha256: String,
    /// The parcels the partner owns (their `hasAgriParcel` identifiers).
    pub parcels: Vec<String>,
    /// Parcels whose daily aggregates the partner publishes as open data (researchers
    /// see them too). Default: none, every parcel is private.
    #[serde(default)]
    pub share_public: Vec<String>,
    /// Parcels whose daily aggregates only researchers see.
    #[serde(default)]
    pub share_researchers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffFile {
    pub name: String,
    /// `sha256sum` of the bearer token, in hex (the token itself is never configured).
    pub token_sha256: String,
    pub commune: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeFile {
    pub checkpoint_interval: Option<u64>,
    pub target_file_size: Option<u64>,
}

impl FileConfig {
    /// Reads the file, or the defaults when there is none.
    pub fn load(path: Option<&Path>) -> Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("invalid configuration in {}", path.display()))
    }

    /// Ingest options for `brokers`, with the file's overrides.
    pub fn ingest_options(&self, brokers: &str) -> Result<IngestOptions> {
        let mut o = IngestOptions {
            kafka: vallee_kafka::KafkaOptions {
                brokers: brokers.to_string(),
                topics: self.topics()?.into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let f = &self.ingest;
        if let Some(v) = &f.group_id {
            o.group_id = v.clone();
        }
        if let Some(v) = f.flush_max_messages {
            o.flush_max_messages = v;
        }
        if let Some(v) = f.flush_interval_ms {
            o.flush_interval = Duration::from_millis(v);
        }
        if let Some(v) = f.progress_max_lag {
            o.progress_max_lag = v;
        }
        if let Some(v) = f.progress_interval_s {
            o.progress_interval = Duration::from_secs(v);
        }
        if let Some(v) = f.max_message_bytes {
            o.decode.max_message_bytes = v;
        }
        o.consumer_overrides = f.kafka.clone();
        Ok(o)
    }

    /// Topic per stream, defaults overridden by the file.
    pub fn topics(&self) -> Result<BTreeMap<Stream, String>> {
        let mut topics: BTreeMap<Stream, String> = Stream::ALL
            .iter()
            .map(|s| (*s, s.default_topic().to_string()))
            .collect();
        for (name, topic) in &self.topics {
            let stream = Stream::ALL
                .into_iter()
                .find(|s| s.name() == name)
                .with_context(|| {
                    let names: Vec<&str> = Stream::ALL.iter().map(|s| s.name()).collect();
                    format!(
                        "[topics] {name}: not a stream (one of {})",
                        names.join(", ")
                    )
                })?;
            topics.insert(stream, topic.clone());
        }
        Ok(topics)
    }

    /// Stream-stage options with the file's overrides.
    pub fn stream_options(&self) -> Result<vallee_stream::stage::StreamOptions> {
        let mut o = vallee_stream::stage::StreamOptions {
            kafka: vallee_kafka::KafkaOptions {
                topics: self.topics()?.into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let f = &self.stream;
        if let Some(v) = &f.group_id {
            o.group_id = v.clone();
        }
        if let Some(v) = f.idle_timeout_ms {
            o.idle_timeout = Duration::from_millis(v);
        }
        if let Some(v) = f.flush_interval_ms {
            o.flush_interval = Duration::from_millis(v);
        }
        o.zone_capacity = f.zone_capacity.clone();
        for (name, seconds) in &f.lateness_s {
            let stream = Stream::SENSORS
                .into_iter()
                .find(|s| s.name() == name)
                .with_context(|| format!("[stream] lateness_s: unknown stream {name:?}"))?;
            o.lateness
                .insert(stream, chrono::Duration::seconds(*seconds));
        }
        if let Some(v) = f.dwell_gap_s {
            o.dwell_gap = chrono::Duration::seconds(v);
        }
        o.sketch_zones = f.sketch_zones.iter().cloned().collect();
        if let Some(v) = f.frost_critical_c {
            o.frost_critical = v;
        }
        Ok(o)
    }

    /// API options for `brokers`, with the restricted store under `<data-dir>/private`.
    pub fn api_options(
        &self,
        brokers: &str,
        data_dir: &Path,
    ) -> Result<vallee_graphql::ApiOptions> {
        let mut o = vallee_graphql::ApiOptions {
            kafka: vallee_kafka::KafkaOptions {
                brokers: brokers.to_string(),
                topics: self.topics()?.into(),
                ..Default::default()
            },
            private_dir: data_dir.join("private"),
            public_dir: data_dir.join("public"),
            research_dir: data_dir.join("research"),
            ..Default::default()
        };
        let f = &self.api;
        o.token_secret = f.token_secret.clone();
        if let Some(siret) = &f.publisher_siret {
            let siret = siret.replace(' ', "");
            let siren = vallee_graphql::open_data::PUBLISHER_SIREN;
            if siret.len() != 14
                || !siret.bytes().all(|b| b.is_ascii_digit())
                || !siret.starts_with(siren)
                || !luhn(&siret)
            {
                anyhow::bail!(
                    "[api] publisher_siret {siret:?}: 14 digits starting with the SIREN {siren}, with a valid Luhn key"
                );
            }
            o.publisher_siret = Some(siret);
        }
        o.cors_origins = f.cors_origins.clone();
        if let Some(v) = f.pre_moderation {
            o.pre_moderation = v;
        }
        if let Some(v) = f.flags_to_hide {
            o.flags_to_hide = v;
        }
        let l = &mut o.limits;
        for (v, slot) in [
            (
                f.tokens_per_minute_per_address,
                &mut l.tokens_per_minute_per_address,
            ),
            (
                f.mutations_per_minute_per_address,
                &mut l.mutations_per_minute_per_address,
            ),
            (
                f.mutations_per_minute_per_token,
                &mut l.mutations_per_minute_per_token,
            ),
        ] {
            if let Some(v) = v {
                *slot = v;
            }
        }
        if let Some(v) = f.max_body_bytes {
            l.max_body_bytes = v;
        }
        if let Some(v) = f.max_depth {
            l.max_depth = v;
        }
        if let Some(v) = f.max_complexity {
            l.max_complexity = v;
        }
        if let Some(v) = f.contact_retention_days {
            o.contact_retention = Duration::from_secs(v * 86_400);
        }
        if let Some(v) = f.publish_interval_s {
            o.publish_interval = Duration::from_secs(v.max(1));
        }
        if let Some(v) = f.sql_timeout_s {
            o.sql_timeout = Duration::from_secs(v.max(1));
        }
        if let Some(v) = f.sql_max_rows {
            o.sql_max_rows = v;
        }
        for r in &f.researchers {
            let hash = r.token_sha256.trim().to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                anyhow::bail!(
                    "[[api.researchers]] {}: token_sha256 must be 64 hex digits",
                    r.name
                );
            }
            o.researchers.push(vallee_graphql::Researcher {
                name: r.name.clone(),
                token_sha256: hash,
            });
        }
        for p in &f.partners {
            let hash = p.token_sha256.trim().to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                anyhow::bail!(
                    "[[api.partners]] {}: token_sha256 must be 64 hex digits",
                    p.name
                );
            }
            use vallee_opendata::sharing::Audience;
            let shared: Vec<(String, Audience)> = (p.share_public.iter())
                .map(|parcel| (parcel.clone(), Audience::Public))
                .chain(
                    (p.share_researchers.iter())
                        .map(|parcel| (parcel.clone(), Audience::Researchers)),
                )
                .collect();
            if let Some((foreign, _)) = shared.iter().find(|(s, _)| !p.parcels.contains(s)) {
                anyhow::bail!(
                    "[[api.partners]] {}: shares {foreign}, which is not among its parcels",
                    p.name
                );
            }
            o.partners.push(vallee_graphql::feeds::Partner {
                name: p.name.clone(),
                token_sha256: hash,
                parcels: p.parcels.clone(),
                shared,
            });
        }
        // A parcel two partners list (an estate and the cooperative) is shared only if
        // neither keeps it private: one cannot publish it over the other's default.
        for p in &o.partners {
            for (parcel, _) in &p.shared {
                if let Some(other) =
                    (o.partners.iter()).find(|q| q.name != p.name && q.parcels.contains(parcel))
                {
                    anyhow::bail!(
                        "[[api.partners]] {} shares {parcel}, which {} also lists: only a parcel one partner owns alone can be shared",
                        p.name,
                        other.name
                    );
                }
            }
        }
        for s in &f.staff {
            let hash = s.token_sha256.trim().to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                anyhow::bail!(
                    "[[api.staff]] {}: token_sha256 must be 64 hex digits",
                    s.name
                );
            }
            if let Some(c) = &s.commune
                && vallee_schemas::communes::valley().by_code(c).is_none()
            {
                anyhow::bail!(
                    "[[api.staff]] {}: {c} is not a commune of the valley",
                    s.name
                );
            }
            o.staff.push(vallee_graphql::StaffMember {
                name: s.name.clone(),
                token_sha256: hash,
                commune: s.commune.clone(),
            });
        }
        Ok(o)
    }

    /// Lake options rooted in `<data-dir>/lake`.
    pub fn lake_options(&self, data_dir: &Path) -> LakeOptions {
        let mut o = LakeOptions {
            root: data_dir.join("lake"),
            ..Default::default()
        };
        if let Some(v) = self.lake.checkpoint_interval {
            o.checkpoint_interval = v;
        }
        if let Some(v) = self.lake.target_file_size {
            o.target_file_size = v;
        }
        o
    }
}

/// The Luhn key SIREN and SIRET numbers carry.
fn luhn(digits: &str) -> bool {
    let sum: u32 = (digits.bytes().rev().enumerate())
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let d = d * 2;
                if d > 9 { d - 9 } else { d }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publisher_siret_is_checked() {
        assert!(luhn("243400694"), "the intercommunality's SIREN");
        let siret = |v: &str| {
            let f: FileConfig =
                toml::from_str(&format!("[api]\npublisher_siret = \"{v}\"\n")).unwrap();
            f.api_options("b:1", Path::new("d"))
                .map(|o| o.publisher_siret)
        };
        assert_eq!(
            siret("243 400 694 00010").unwrap().as_deref(),
            Some("24340069400010")
        );
        assert!(siret("24340069400011").is_err(), "bad key");
        assert!(siret("12345678900010").is_err(), "another body's SIREN");
    }

    #[test]
    fn typos_in_the_file_fail_loudly() {
        let err = toml::from_str::<FileConfig>("[ingest]\nflush_max_mesages = 3\n").unwrap_err();
        assert!(err.to_string().contains("flush_max_mesages"), "{err}");
    }

    #[test]
    fn the_file_overrides_defaults() {
        let f: FileConfig = toml::from_str(
            "[ingest]\nflush_interval_ms = 250\n[topics]\nbeacons = \"zone.beacons\"\n[lake]\ncheckpoint_interval = 7\n",
        )
        .unwrap();
        let o = f.ingest_options("b:1").unwrap();
        assert_eq!(o.flush_interval, Duration::from_millis(250));
        assert_eq!(o.kafka.topics[&Stream::Beacons], "zone.beacons");
        assert_eq!(o.kafka.topics[&Stream::Tourism], "vallee.tourism");
        assert_eq!(f.lake_options(Path::new("d")).checkpoint_interval, 7);
        let bad: FileConfig = toml::from_str("[topics]\nbeacon = \"x\"\n").unwrap();
        assert!(bad.topics().is_err());
    }

    #[test]
    fn a_partner_shares_only_its_own_parcels() {
        let partner = |shares: &str| {
            let text = format!(
                "[[api.partners]]\nname = \"pins\"\ntoken_sha256 = \"{}\"\nparcels = [\"p1\", \"p2\"]\n{shares}",
                "ab".repeat(32)
            );
            let f: FileConfig = toml::from_str(&text).unwrap();
            f.api_options("b:1", Path::new("d"))
        };
        let private = partner("").unwrap();
        assert!(private.partners[0].shared.is_empty(), "private by default");
        let o = partner("share_public = [\"p1\"]\nshare_researchers = [\"p2\"]\n").unwrap();
        use vallee_opendata::sharing::Audience;
        assert_eq!(
            o.partners[0].shared,
            [
                ("p1".to_string(), Audience::Public),
                ("p2".to_string(), Audience::Researchers)
            ]
        );
        let err = partner("share_public = [\"neighbour\"]\n").unwrap_err();
        assert!(err.to_string().contains("neighbour"), "{err}");
        let co_owned = format!(
            "[[api.partners]]\nname = \"pins\"\ntoken_sha256 = \"{a}\"\nparcels = [\"p1\"]\nshare_public = [\"p1\"]\n\
             [[api.partners]]\nname = \"cave\"\ntoken_sha256 = \"{b}\"\nparcels = [\"p1\"]\n",
            a = "ab".repeat(32),
            b = "cd".repeat(32)
        );
        let f: FileConfig = toml::from_str(&co_owned).unwrap();
        let err = f.api_options("b:1", Path::new("d")).unwrap_err();
        assert!(err.to_string().contains("cave also lists"), "{err}");
    }
}
