//! Creating the hub's topics. Kafka-protocol brokers (Tansu among them) do not auto-create,
//! so the hub creates what it uses at startup, idempotently.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use vallee_schemas::contract::{ALERTS_TOPIC, Stream};

use crate::{Error, KafkaOptions, Result, TopicMap};

/// Beacon sightings carry pseudonymous tokens: the topic keeps them 24 h at most.
const BEACON_RETENTION_MS: &str = "86400000";

/// The API rebuilds its view from the citizens' topics: they are kept forever.
const FOREVER_MS: &str = "-1";

/// Every topic the hub uses, with its `retention.ms` when not the broker's default: the
/// input streams (sensors and citizens), then alerts.
pub fn hub_topics(topics: &TopicMap) -> Vec<(String, Option<&'static str>)> {
    let mut out: Vec<(String, Option<&'static str>)> = topics
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
    out.push((ALERTS_TOPIC.to_string(), None));
    out
}

/// Creates the missing `topics` (name, `retention.ms`) with `partitions` partitions each.
pub async fn ensure_topics(
    options: &KafkaOptions,
    topics: &[(String, Option<&str>)],
    partitions: i32,
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = options.client_config(&[]).create()?;
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
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beacons_expire_citizens_stay_and_alerts_come_last() {
        let topics = hub_topics(&TopicMap::default());
        assert_eq!(topics.len(), Stream::ALL.len() + 1);
        let retention = |name: &str| topics.iter().find(|(t, _)| t == name).unwrap().1;
        assert_eq!(retention("vallee.beacons"), Some(BEACON_RETENTION_MS));
        assert_eq!(retention("vallee.citizen.ideas"), Some(FOREVER_MS));
        assert_eq!(retention("vallee.waste.containers"), None);
        assert_eq!(topics.last().unwrap(), &(ALERTS_TOPIC.to_string(), None));
    }
}
