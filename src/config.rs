//! The configuration file: one TOML section per options struct, each read by the struct
//! itself (`Deserialize`, unknown keys refused) and checked by its own `validate()`.
//!
//! ```text
//!  [kafka]      KafkaOptions      (vallee-kafka)   client overrides for every stage
//!  [topics]     TopicMap          (vallee-kafka)   topic of each stream
//!  [decode]     DecodeOptions     (vallee-schemas)  given to ingest and the stream stage
//!  [ingest]     IngestOptions     (vallee-ingest)
//!  [stream]     StreamOptions     (vallee-stream)
//!  [lake]       LakeOptions       (vallee-lake)
//!  [api]        ApiOptions        (vallee-graphql)
//!  [simulator]  SimulatorOptions  (this crate)
//! ```
//!
//! Every section and key is in `docs/configuration.md`; the tests keep the two in step.
//!
//! Addresses (brokers, data directory, HTTP) come from the command line ([`crate::cli`]),
//! which also overrides the simulator's knobs.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use vallee_graphql::ApiOptions;
use vallee_ingest::IngestOptions;
use vallee_kafka::{KafkaOptions, TopicMap};
use vallee_lake::LakeOptions;
use vallee_schemas::decode::DecodeOptions;
use vallee_stream::stage::StreamOptions;

use crate::simulator::SimulatorOptions;

/// The whole file; a missing section or key keeps its default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub kafka: KafkaOptions,
    /// The topic of each stream, by stream name (the file's `[topics]`).
    pub topics: TopicMap,
    /// Limits every reader of the topics applies alike (ingest and the stream stage).
    pub decode: DecodeOptions,
    pub ingest: IngestOptions,
    pub stream: StreamOptions,
    pub lake: LakeOptions,
    pub api: ApiOptions,
    pub simulator: SimulatorOptions,
}

impl Config {
    /// Reads and checks the file, or the defaults when there is none.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("invalid configuration in {}", path.display()))
    }

    /// Parses and checks a file's text.
    pub fn parse(text: &str) -> Result<Config> {
        let mut config: Config = toml::from_str(text)?;
        config.kafka.topics = config.topics.clone();
        config.validate()?;
        Ok(config)
    }

    /// Every section's own checks, each error naming its section.
    pub fn validate(&self) -> Result<()> {
        self.kafka.validate().context("[kafka] and [topics]")?;
        self.decode
            .validate()
            .map_err(anyhow::Error::msg)
            .context("[decode]")?;
        self.ingest.validate().context("[ingest]")?;
        self.stream.validate().context("[stream]")?;
        self.lake.validate().context("[lake]")?;
        self.api.validate().context("[api]")?;
        self.simulator.validate().context("[simulator]")?;
        Ok(())
    }

    /// Every stage pointed at `brokers` and the file's topics, every store under
    /// `data_dir`: what the command line adds to the file.
    pub fn placed(mut self, data_dir: &Path, brokers: &str) -> Config {
        self.kafka.brokers = brokers.to_string();
        self.kafka.topics = self.topics.clone();
        self.ingest.kafka = self.kafka.clone();
        self.ingest.decode = self.decode.clone();
        self.stream.decode = self.decode.clone();
        self.stream.kafka = self.kafka.clone();
        self.api.kafka = self.kafka.clone();
        self.api.decode = self.decode.clone();
        self.simulator.kafka = self.kafka.clone();
        self.lake.root = data_dir.join("lake");
        self.api.private_dir = data_dir.join("private");
        self.api.public_dir = data_dir.join("public");
        self.api.research_dir = data_dir.join("research");
        self
    }
}

#[cfg(test)]
mod tests;
