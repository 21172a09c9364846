//! Creating the hub's topics. Kafka-protocol brokers (Tansu among them) do not auto-create,
//! so the hub creates what it uses at startup, idempotently.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use vallee_schemas::contract::{ALERTS_TOPIC, Stream};

use crate::{Error, IngestOptions, Result};

/// Beacon sightings carry pseudonymous tokens: the topic keeps them 24 h at most.
const BEACON_RETENTION_MS: &str = "86400000";

/// The API rebuilds its view from the citizens' topics: they are kept forever.
const FOREVER_MS: &str = "-1";

/// Every topic the hub uses: the input streams (sensors and citizens), then alerts.
pub fn hub_topics(options: &IngestOptions) -> Vec<(String, Option<&'static str>)> {
    let mut topics: Vec<(String, Option<&'static str>)> = options
        .topics
        .iter()
        .map(|(s, t)| {
            (
                t.clone(),
                match s {
                    Stream::Beacons => Some(BEACON_RETENTION_MS),
                    s if Stream::CITIZEN.contains(s) => Some(FOREVER_MS),
                    _ => None,
                },
            )
        })
        .collect();
    topics.push((ALERTS_TOPIC.to_string(), None));
    topics
}

/// Creates the missing topics with `partitions` partitions each.
pub async fn ensure_topics(
    brokers: &str,
    topics: &[(String, Option<&str>)],
    partitions: i32,
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, retention)| {
            let t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
            match retention {
                Some(ms) => t.set("retention.ms", ms),
                None => t,
            }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &opts).await? {
        match result {
            Ok(topic) => tracing::info!(topic, partitions, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(Error::CreateTopic {
                    topic,
                    message: code.to_string(),
                });
            }
        }
    }
    Ok(())
}
