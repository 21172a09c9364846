//! [`KafkaOptions`], shared by every stage, and the librdkafka settings built from them.
//!
//! A client's settings are layered, each layer overriding the one before:
//!
//! ```text
//!  bootstrap.servers ─► the consumer base every stage shares (consumers only)
//!    ─► the stage's own settings (ingest's fetch queues, the stream stage's statistics…)
//!    ─► KafkaOptions::overrides (`[kafka.overrides]`: every client)
//!    ─► the stage's overrides (`[ingest.kafka]`: its consumer only)
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::{Error, Result, TopicMap};

/// What every stage knows of Kafka: where the brokers are, the topic of each stream, and
/// librdkafka settings applied last to every client built from them. `Default` runs on a
/// laptop against the embedded broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaOptions {
    /// Bootstrap servers, `host:port[,host:port]`. Not read from the file: the command line
    /// (`--kafka-brokers`, `VALLEE_KAFKA_BROKERS`) or the embedded broker sets it.
    #[serde(skip)]
    pub brokers: String,
    /// Topic of each stream. In the file: the `[topics]` section.
    #[serde(skip)]
    pub topics: TopicMap,
    /// librdkafka settings (`key = "value"`) applied last to every client built here:
    /// security settings, timeouts. Default: none.
    pub overrides: BTreeMap<String, String>,
    /// A partition whose lag has not moved for this long is stalled: `/readyz` fails
    /// naming it, and the stage starts a fresh consumer. Default 30 s.
    #[serde(rename = "stall_after_s", with = "vallee_schemas::units::seconds")]
    pub stall_after: Duration,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        KafkaOptions {
            brokers: "127.0.0.1:9092".into(),
            topics: TopicMap::default(),
            overrides: BTreeMap::new(),
            stall_after: Duration::from_secs(30),
        }
    }
}

/// The consumer settings every stage shares: positioning is the stage's business (its
/// rebalance hook reads the offsets its tables stored), so no auto-commit, and a dead
/// member is noticed within seconds. The fetch and queue sizes let a backlog be read at
/// the broker's speed: with librdkafka's defaults (1 MiB per partition per fetch, a
/// 64 MiB local queue) the stream stage waited for messages more than half the time on a
/// fast broker (`vallee bench stream --broker-storage memory`, docs/performance.md). And
/// once a partition's local queue is full, librdkafka waits `fetch.queue.backoff.ms`
/// (1 s by default) before fetching it again, even if the stage empties it in 20 ms: a
/// consumer that processes between polls then starved for up to a second at a time.
const CONSUMER_BASE: [(&str, &str); 10] = [
    ("enable.auto.commit", "false"),
    ("auto.offset.reset", "earliest"),
    ("partition.assignment.strategy", "range"),
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "1000"),
    ("queued.min.messages", "200000"),
    ("queued.max.messages.kbytes", "262144"),
    ("fetch.max.bytes", "52428800"),
    ("max.partition.fetch.bytes", "8388608"),
    ("fetch.queue.backoff.ms", "10"),
];

/// One stage's consumer: its group, its client id, what it sets on top of the shared base.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerSettings<'a> {
    /// The stage's consumer group.
    pub group_id: &'a str,
    /// The client id brokers log it under.
    pub client_id: &'a str,
    /// The stage's own librdkafka settings, over the shared base.
    pub settings: &'a [(&'a str, String)],
    /// The stage's overrides, applied after [`KafkaOptions::overrides`].
    pub overrides: &'a BTreeMap<String, String>,
}

impl KafkaOptions {
    /// Settings of a client of these brokers: `bootstrap.servers`, then `settings`, then
    /// [`Self::overrides`]. Producers and admin clients are built from it.
    pub fn client_config(&self, settings: &[(&str, String)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in settings {
            config.set(*key, value);
        }
        for (key, value) in &self.overrides {
            config.set(key, value);
        }
        config
    }

    /// Settings of a stage's consumer (see the module's layers).
    pub fn consumer_config(&self, consumer: ConsumerSettings<'_>) -> ClientConfig {
        let mut settings: Vec<(&str, String)> = vec![
            ("group.id", consumer.group_id.to_string()),
            ("client.id", consumer.client_id.to_string()),
        ];
        settings.extend(CONSUMER_BASE.iter().map(|(k, v)| (*k, v.to_string())));
        settings.extend(consumer.settings.iter().cloned());
        let mut config = self.client_config(&settings);
        for (key, value) in consumer.overrides {
            config.set(key, value);
        }
        config
    }

    /// The topics are consistent and no override is nameless.
    pub fn validate(&self) -> Result<()> {
        self.topics.validate()?;
        if self.overrides.keys().any(|k| k.trim().is_empty()) {
            return Err(Error::Options("an override has an empty name".into()));
        }
        if self.stall_after < Duration::from_secs(1) {
            return Err(Error::Options("stall_after_s must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_layers_base_stage_settings_and_both_overrides() {
        let options = KafkaOptions {
            brokers: "b:1".into(),
            overrides: [
                ("session.timeout.ms", "10000"),
                ("security.protocol", "ssl"),
                ("fetch.wait.max.ms", "50"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
            ..Default::default()
        };
        let stage_overrides = [("fetch.wait.max.ms".to_string(), "7".to_string())].into();
        let config = options.consumer_config(ConsumerSettings {
            group_id: "g",
            client_id: "c",
            settings: &[
                ("fetch.wait.max.ms", "100".into()),
                ("queued.min.messages", "200000".into()),
            ],
            overrides: &stage_overrides,
        });
        let get = |k: &str| config.get(k);
        assert_eq!(get("bootstrap.servers"), Some("b:1"));
        assert_eq!(get("group.id"), Some("g"));
        assert_eq!(get("client.id"), Some("c"));
        assert_eq!(get("enable.auto.commit"), Some("false"));
        assert_eq!(get("partition.assignment.strategy"), Some("range"));
        assert_eq!(get("heartbeat.interval.ms"), Some("1000"));
        assert_eq!(get("queued.min.messages"), Some("200000"), "stage setting");
        assert_eq!(get("session.timeout.ms"), Some("10000"), "shared override");
        assert_eq!(get("security.protocol"), Some("ssl"));
        assert_eq!(get("fetch.wait.max.ms"), Some("7"), "stage override last");
    }

    #[test]
    fn a_producer_gets_its_settings_then_the_overrides() {
        let options = KafkaOptions {
            overrides: [("linger.ms".to_string(), "0".to_string())].into(),
            ..Default::default()
        };
        let config = options.client_config(&[
            ("linger.ms", "5".into()),
            ("compression.type", "lz4".into()),
        ]);
        assert_eq!(config.get("bootstrap.servers"), Some("127.0.0.1:9092"));
        assert_eq!(config.get("compression.type"), Some("lz4"));
        assert_eq!(config.get("linger.ms"), Some("0"));
        assert_eq!(config.get("group.id"), None);
    }

    #[test]
    fn the_file_section_holds_the_overrides_only() {
        let options: KafkaOptions =
            toml::from_str("[overrides]\n\"security.protocol\" = \"ssl\"\n").unwrap();
        assert_eq!(options.overrides["security.protocol"], "ssl");
        assert_eq!(options.brokers, KafkaOptions::default().brokers);
        assert!(toml::from_str::<KafkaOptions>("brokers = \"x:1\"\n").is_err());
        let nameless = KafkaOptions {
            overrides: [(" ".to_string(), "x".to_string())].into(),
            ..Default::default()
        };
        assert!(nameless.validate().is_err());
    }
}
