//! Creating the hub's topics. Kafka-protocol brokers (Tansu among them) do not auto-create,
//! so the hub creates what it uses at startup, idempotently, each with its retention.
//!
//! Retention only deletes where it is asked to. Tansu 0.6 (the embedded broker) deletes
//! old records only from topics whose `cleanup.policy` contains `delete`, so a topic with a
//! finite retention is created with `cleanup.policy = delete` too; and it reads
//! `retention.ms = -1` literally (every record is older than −1 ms), so the topics kept
//! forever get no cleanup policy at all (Kafka keeps them as well: there, `-1` means
//! forever and `delete` is the default). A topic created before its retention applied is
//! brought in line at start (IncrementalAlterConfigs); a broker that refuses is named in a
//! warning with the setting to apply by hand.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use vallee_schemas::contract::{ALERTS_TOPIC, Stream, TEXT_KEYS_RETENTION_DAYS, TEXT_KEYS_TOPIC};

use crate::{Error, KafkaOptions, Result, TopicMap};

/// How long a topic keeps its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// The broker's default (sensor streams, alerts: the lake keeps what matters).
    Default,
    /// Forever (`retention.ms = -1`, no cleanup policy): the citizens' topics, which the
    /// API replays from the start to rebuild its view.
    Forever,
    /// Deleted once older than this (`retention.ms`, with `cleanup.policy = delete`):
    /// beacon sightings, whose pseudonymous tokens may live 24 h at most.
    Delete(Duration),
}

/// Beacon sightings carry pseudonymous tokens: the topic keeps them 24 h at most.
pub const BEACON_RETENTION: Retention = Retention::Delete(Duration::from_secs(24 * 3600));

impl Retention {
    /// The topic configuration that says it.
    pub fn configs(self) -> Vec<(&'static str, String)> {
        match self {
            Retention::Default => Vec::new(),
            Retention::Forever => vec![("retention.ms", "-1".into())],
            Retention::Delete(d) => vec![
                ("retention.ms", d.as_millis().max(1).to_string()),
                ("cleanup.policy", "delete".into()),
            ],
        }
    }
}

/// The keys of sealed texts leave the broker within a month (see
/// `vallee_schemas::citizen::sealed`): an erased key is gone from every copy by then.
pub const TEXT_KEYS_RETENTION: Retention =
    Retention::Delete(Duration::from_secs(TEXT_KEYS_RETENTION_DAYS * 24 * 3600));

/// Every topic the hub uses, with its retention: the input streams (sensors and
/// citizens), then alerts and the keys of sealed texts.
pub fn hub_topics(topics: &TopicMap) -> Vec<(String, Retention)> {
    let mut out: Vec<(String, Retention)> = topics
        .iter()
        .map(|(s, t)| {
            let retention = match s {
                Stream::Beacons => BEACON_RETENTION,
                s if Stream::CITIZEN.contains(s) => Retention::Forever,
                _ => Retention::Default,
            };
            (t.clone(), retention)
        })
        .collect();
    out.push((ALERTS_TOPIC.to_string(), Retention::Default));
    out.push((TEXT_KEYS_TOPIC.to_string(), TEXT_KEYS_RETENTION));
    out
}

/// Creates the missing `topics` with `partitions` partitions each, and sets the retention
/// of those that already existed and must delete (a topic created before its
/// `cleanup.policy` was set would otherwise keep everything).
pub async fn ensure_topics(
    options: &KafkaOptions,
    topics: &[(String, Retention)],
    partitions: i32,
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = options.client_config(&[]).create()?;
    let configs: Vec<(&String, Vec<(&str, String)>)> = topics
        .iter()
        .map(|(name, retention)| (name, retention.configs()))
        .collect();
    let new: Vec<NewTopic> = configs
        .iter()
        .map(|(name, configs)| {
            let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
            configs.iter().fold(topic, |t, (k, v)| t.set(k, v))
        })
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)));
    let mut existing = Vec::new();
    for result in admin.create_topics(&new, &opts).await? {
        match result {
            Ok(topic) => tracing::info!(topic, partitions, "created topic"),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => existing.push(topic),
            Err((topic, code)) => {
                return Err(Error::CreateTopic {
                    topic,
                    message: code.to_string(),
                });
            }
        }
    }
    for (name, retention) in topics {
        if matches!(retention, Retention::Delete(_)) && existing.contains(name) {
            apply_retention(options, name, *retention).await;
        }
    }
    Ok(())
}

/// Sets an existing topic's retention; a refusal is a warning (the hub runs, but keeps
/// what it promised to delete), with what to run instead.
async fn apply_retention(options: &KafkaOptions, topic: &str, retention: Retention) {
    let client = options.client_config(&[]);
    let configs = retention.configs();
    let (name, wanted) = (topic.to_string(), configs.clone());
    let done = tokio::task::spawn_blocking(move || {
        crate::topic_config::set_topic_configs(&client, &name, &wanted, Duration::from_secs(10))
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let settings: Vec<String> = configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let settings = settings.join(",");
    match done {
        Ok(()) => tracing::info!(topic, settings, "topic retention set"),
        Err(error) => tracing::warn!(
            topic,
            settings,
            error,
            "could not set this topic's retention: the broker keeps its records past it. \
             Set it by hand, e.g. `kafka-configs.sh --bootstrap-server {} --alter \
             --entity-type topics --entity-name {topic} --add-config {settings}`",
            options.brokers
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beacons_and_text_keys_expire_citizens_stay_and_alerts_come_after_streams() {
        let topics = hub_topics(&TopicMap::default());
        assert_eq!(topics.len(), Stream::ALL.len() + 2);
        let retention = |name: &str| topics.iter().find(|(t, _)| t == name).unwrap().1;
        assert_eq!(retention("vallee.beacons"), BEACON_RETENTION);
        assert_eq!(retention("vallee.citizen.ideas"), Retention::Forever);
        assert_eq!(retention("vallee.waste.containers"), Retention::Default);
        assert_eq!(
            topics[Stream::ALL.len()],
            (ALERTS_TOPIC.to_string(), Retention::Default)
        );
        assert_eq!(
            retention(TEXT_KEYS_TOPIC),
            Retention::Delete(Duration::from_secs(30 * 24 * 3600))
        );
    }

    /// Tansu deletes only with `delete` in the policy, and deletes everything of a topic
    /// with `delete` and `-1`: a finite retention carries the policy, forever never does.
    #[test]
    fn only_a_finite_retention_asks_for_deletion() {
        assert_eq!(
            BEACON_RETENTION.configs(),
            [
                ("retention.ms", "86400000".to_string()),
                ("cleanup.policy", "delete".to_string())
            ]
        );
        assert_eq!(
            Retention::Forever.configs(),
            [("retention.ms", "-1".to_string())]
        );
        assert!(Retention::Default.configs().is_empty());
        let every = hub_topics(&TopicMap::default());
        for (topic, retention) in &every {
            let configs = retention.configs();
            let deletes = configs
                .iter()
                .any(|(k, v)| *k == "cleanup.policy" && v == "delete");
            let forever = configs
                .iter()
                .any(|(k, v)| *k == "retention.ms" && v == "-1");
            assert!(!(deletes && forever), "{topic} would lose everything");
            let expires = *topic == "vallee.beacons" || topic == TEXT_KEYS_TOPIC;
            assert_eq!(deletes, expires, "{topic}");
        }
    }
}
