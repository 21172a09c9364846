//! Where citizens' events are written: a write counts once its sink acknowledged it.
//!
//! In production the sink is the broker ([`KafkaSink`], `acks=all`): an answered write
//! survives any crash. Behind a trait so the command layer can be tested without one.

use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use vallee_schemas::citizen::CitizenEvent;

use crate::{Error, Result};

/// Sends one event and waits for its acknowledgement.
pub trait EventSink: Send + Sync {
    /// Sends `event` to `topic`, keyed by the entity it names (one entity's events keep
    /// their order on one partition); resolves once the event is acknowledged.
    fn send<'a>(&'a self, topic: &'a str, event: &'a CitizenEvent) -> BoxFuture<'a, Result<()>>;
}

/// The broker: every write waits for all in-sync replicas (`acks=all`).
pub struct KafkaSink {
    producer: FutureProducer,
    timeout: Duration,
}

impl KafkaSink {
    /// A producer on `brokers`; a write not acknowledged within `timeout` fails.
    pub fn new(brokers: &str, timeout: Duration) -> Result<Self> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("enable.idempotence", "false")
            .set("message.timeout.ms", timeout.as_millis().to_string())
            .set("linger.ms", "0")
            .create()?;
        Ok(KafkaSink { producer, timeout })
    }
}

impl EventSink for KafkaSink {
    fn send<'a>(&'a self, topic: &'a str, event: &'a CitizenEvent) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let payload = event.to_json();
            let record = FutureRecord::to(topic)
                .key(event.change.entity_id())
                .payload(&payload);
            self.producer
                .send(record, self.timeout)
                .await
                .map_err(|(e, _)| Error::Kafka(e))?;
            Ok(())
        })
    }
}
