//! Follows the stage's `vallee.alerts` topic and fans alerts out to subscriptions.
//! Every replica reads it with its own consumer (no group), from the end: subscriptions
//! are live; the history is in the lake.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::schema::sensors::{Alert, AlertKind, AlertState, RiskLevel};
use crate::{Error, Result};

/// An alert as the stage publishes it (FIWARE `Alert`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AlertMessage {
    alert_id: String,
    sub_category: String,
    alert_source: String,
    state: String,
    date_issued: DateTime<Utc>,
    clear_reason: Option<String>,
    filling_level: Option<f64>,
    risk_level: Option<String>,
    commune_code: Option<String>,
}

impl From<AlertMessage> for Alert {
    fn from(m: AlertMessage) -> Self {
        Alert {
            alert_id: async_graphql::ID(m.alert_id),
            kind: AlertKind::parse(&m.sub_category),
            entity_id: m.alert_source,
            state: AlertState::parse(&m.state),
            date_observed: m.date_issued,
            clear_reason: m.clear_reason,
            filling_level: m.filling_level,
            commune_code: m.commune_code,
            risk_level: m.risk_level.as_deref().and_then(RiskLevel::parse),
        }
    }
}

/// Reads `topic` from its end (as it is when called: `ready` is set once the positions
/// are fixed, so nothing published after is missed) and sends every alert to `tx`, until
/// `shutdown`.
pub async fn run(
    brokers: String,
    topic: String,
    tx: broadcast::Sender<Alert>,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
) -> Result<()> {
    let probe_brokers = brokers.clone();
    let probe_topic = topic.clone();
    let assignment = tokio::task::spawn_blocking(move || -> Result<TopicPartitionList> {
        let probe: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &probe_brokers)
            .set("group.id", "vallee-api-probe")
            .create()?;
        let metadata = probe.fetch_metadata(Some(&probe_topic), Duration::from_secs(10))?;
        let mut list = TopicPartitionList::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                let (_, high) =
                    probe.fetch_watermarks(&probe_topic, p.id(), Duration::from_secs(10))?;
                list.add_partition_offset(&probe_topic, p.id(), Offset::Offset(high))?;
            }
        }
        Ok(list)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set(
            "group.id",
            format!("vallee-api-alerts-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.assign(&assignment)?;
    ready.store(true, Ordering::Release);
    while let Some(m) = vallee_kafka::next_message(&consumer, &shutdown, "alerts topic").await {
        match m
            .payload()
            .map(serde_json::from_slice::<AlertMessage>)
            .transpose()
        {
            Ok(Some(alert)) => {
                let _ = tx.send(alert.into());
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "alerts topic: unreadable alert skipped"),
        }
    }
    Ok(())
}
