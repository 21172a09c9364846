//! Where citizens' events are written: a write counts once its sink acknowledged it.
//!
//! In production the sink is the broker ([`KafkaSink`], `acks=all`): an answered write
//! survives any crash, and every event carries the replicas' signature (see
//! [`vallee_schemas::signing`]) that ingest and the other replicas check. The command layer's unit tests use an in-memory sink instead, which
//! keeps what it was sent, in order, and can refuse a topic to play a broker failure.

use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use vallee_schemas::citizen::CitizenEvent;
use vallee_schemas::contract::Stream;
use vallee_schemas::signing::{EventKey, SIGNATURE_HEADER};

use crate::{Error, Result};

/// Sends one event and waits for its acknowledgement.
pub trait EventSink: Send + Sync {
    /// Sends `event` of `stream` to `topic`, keyed by the entity it names (one entity's
    /// events keep their order on one partition); resolves once the event is acknowledged.
    fn send<'a>(
        &'a self,
        stream: Stream,
        topic: &'a str,
        event: &'a CitizenEvent,
    ) -> BoxFuture<'a, Result<()>>;

    /// Sends the wrapped key of `subject` to the keys `topic`; resolves once acknowledged.
    fn send_key<'a>(
        &'a self,
        topic: &'a str,
        subject: &'a str,
        wrapped: &'a str,
    ) -> BoxFuture<'a, Result<()>>;
}

/// The broker: every write waits for all in-sync replicas (`acks=all`).
pub struct KafkaSink {
    producer: FutureProducer,
    timeout: Duration,
    key: EventKey,
}

impl KafkaSink {
    /// A producer on `brokers` signing with `key`; a write not acknowledged within
    /// `timeout` fails.
    pub fn new(brokers: &str, timeout: Duration, key: EventKey) -> Result<Self> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("enable.idempotence", "false")
            .set("message.timeout.ms", timeout.as_millis().to_string())
            .set("linger.ms", "0")
            .create()?;
        Ok(KafkaSink {
            producer,
            timeout,
            key,
        })
    }
}

impl EventSink for KafkaSink {
    fn send<'a>(
        &'a self,
        stream: Stream,
        topic: &'a str,
        event: &'a CitizenEvent,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let payload = event.to_json();
            let signature = self.key.sign(stream, &payload);
            let record = FutureRecord::to(topic)
                .key(event.change.entity_id())
                .payload(&payload)
                .headers(OwnedHeaders::new().insert(Header {
                    key: SIGNATURE_HEADER,
                    value: Some(signature.as_bytes()),
                }));
            self.producer
                .send(record, self.timeout)
                .await
                .map_err(|(e, _)| Error::Kafka(e))?;
            Ok(())
        })
    }

    fn send_key<'a>(
        &'a self,
        topic: &'a str,
        subject: &'a str,
        wrapped: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let payload = serde_json::to_vec(&super::KeyRecord {
                subject: subject.into(),
                key: wrapped.into(),
            })
            .map_err(|e| Error::Internal(e.to_string()))?;
            let record = FutureRecord::to(topic).key(subject).payload(&payload);
            self.producer
                .send(record, self.timeout)
                .await
                .map_err(|(e, _)| Error::Kafka(e))?;
            Ok(())
        })
    }
}

/// Keeps every event it is sent, in order (unit tests only: the e2e tests use the broker).
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct MemorySink {
    sent: std::sync::Mutex<Vec<(String, CitizenEvent)>>,
    keys: std::sync::Mutex<Vec<(String, String)>>,
    refused: std::sync::Mutex<Option<String>>,
}

#[cfg(test)]
impl MemorySink {
    /// What was acknowledged so far: (topic, event), in order.
    pub(crate) fn sent(&self) -> Vec<(String, CitizenEvent)> {
        self.sent.lock().unwrap().clone()
    }

    /// The keys sent so far: (subject, wrapped key), in order.
    pub(crate) fn keys(&self) -> Vec<(String, String)> {
        self.keys.lock().unwrap().clone()
    }

    fn reachable(&self, topic: &str) -> Result<()> {
        match self.refused.lock().unwrap().as_deref() == Some(topic) {
            true => Err(Error::Internal(format!("{topic} is unreachable"))),
            false => Ok(()),
        }
    }

    /// From now on, writes to `topic` fail as an unreachable broker's would.
    pub(crate) fn refuse(&self, topic: &str) {
        *self.refused.lock().unwrap() = Some(topic.to_string());
    }
}

#[cfg(test)]
impl EventSink for MemorySink {
    fn send<'a>(
        &'a self,
        _stream: Stream,
        topic: &'a str,
        event: &'a CitizenEvent,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.reachable(topic)?;
            self.sent
                .lock()
                .unwrap()
                .push((topic.to_string(), event.clone()));
            Ok(())
        })
    }

    fn send_key<'a>(
        &'a self,
        topic: &'a str,
        subject: &'a str,
        wrapped: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.reachable(topic)?;
            self.keys
                .lock()
                .unwrap()
                .push((subject.to_string(), wrapped.to_string()));
            Ok(())
        })
    }
}
