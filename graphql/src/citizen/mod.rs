//! Citizens' writes and the view of them every replica keeps.
//!
//! ```text
//!   command ─► CitizenEvent ─► Kafka (acks=all) ─► applied to this replica's view ─► answer
//!                                  │
//!                                  ├─► replay consumer (every replica) ─► view (dedup by id)
//!                                  └─► ingest ─► Delta (citizen_reports, citizen_ideas, staff_audit)
//! ```
//! What a person wrote is sealed before the event leaves (see
//! `vallee_schemas::citizen::sealed`): its key is kept in `private/text-keys` and handed to
//! the other replicas on `vallee.private.text-keys`, which the replay reads with the other
//! topics; an erasure (`TextsErased`) deletes keys and contacts on every replica.
//!
//! A command (see [`crate::commands`]) answers only once the broker acknowledged its
//! event (through the [`sink::EventSink`]), so an answered write survives any crash; the
//! view is rebuilt from the topics on start (they are kept forever), and `/readyz` says
//! 200 once the replay reached the end seen at start. [`reads`] are the view's queries
//! every door shares.

pub mod contacts;
pub mod reads;
pub mod retention;
pub mod sink;
pub mod view;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use vallee_lake::TextKeys;
use vallee_schemas::citizen::sealed::TextKey;
use vallee_schemas::citizen::{CitizenChange, CitizenEvent};
use vallee_schemas::contract::{Stream, TEXT_KEYS_TOPIC};
use vallee_schemas::signing::{EventKey, SIGNATURE_HEADER};

use crate::options::ApiOptions;
use crate::{Error, Result};
use contacts::ContactStore;
use sink::{EventSink, KafkaSink};
use view::{Changed, CitizenView};

/// Writes citizens' events and keeps the view of them.
pub struct CitizenHub {
    pub view: RwLock<CitizenView>,
    pub changes: broadcast::Sender<Changed>,
    sink: Arc<dyn EventSink>,
    options: ApiOptions,
    /// Checks the replayed events' signatures (`None`: the unit tests' in-memory hub,
    /// which replays nothing).
    event_key: Option<EventKey>,
    /// The keys of what people wrote (see `vallee_schemas::citizen::sealed`).
    texts: Arc<TextKeys>,
    /// Wraps those keys for the other replicas, on the keys topic.
    wrapping: TextKey,
    /// Keys the e-mail digests that find a person's reports.
    digests: TextKey,
    /// This replica's contact store, which an erasure read from the topic empties too.
    contacts: Option<ContactStore>,
    ready: AtomicBool,
}

/// One record of the keys topic.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct KeyRecord {
    pub subject: String,
    /// The subject's key wrapped under the replicas' secret.
    pub key: String,
}

impl std::fmt::Debug for CitizenHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CitizenHub")
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl CitizenHub {
    /// Writes to the broker of `options`, signing with the replicas' `secret`; replays
    /// only what that secret signed; seals and opens people's texts with `texts`; an
    /// erasure read from the topic empties `contacts` too.
    pub fn new(
        options: ApiOptions,
        secret: &[u8],
        texts: Arc<TextKeys>,
        contacts: ContactStore,
    ) -> Result<Arc<Self>> {
        let event_key = EventKey::derive(secret);
        let sink = KafkaSink::new(
            &options.kafka.brokers,
            options.write_timeout,
            event_key.clone(),
        )?;
        let mut hub = Self::hub(options, Arc::new(sink), secret, texts);
        hub.event_key = Some(event_key);
        hub.contacts = Some(contacts);
        Ok(Arc::new(hub))
    }

    fn hub(
        options: ApiOptions,
        sink: Arc<dyn EventSink>,
        secret: &[u8],
        texts: Arc<TextKeys>,
    ) -> Self {
        CitizenHub {
            view: RwLock::new(CitizenView::with_keys(texts.clone())),
            changes: broadcast::channel(1024).0,
            sink,
            options,
            event_key: None,
            texts,
            wrapping: TextKey::derive(secret, "text keys"),
            digests: TextKey::derive(secret, "contact digests"),
            contacts: None,
            ready: AtomicBool::new(false),
        }
    }

    /// Writes to `sink` (the command layer's unit tests give an in-memory one), keys in
    /// memory; an erasure empties `contacts`, if given.
    pub fn with_sink(
        options: ApiOptions,
        sink: Arc<dyn EventSink>,
        contacts: Option<ContactStore>,
    ) -> Arc<Self> {
        let mut hub = Self::hub(options, sink, b"unit tests", Arc::new(TextKeys::default()));
        hub.contacts = contacts;
        Arc::new(hub)
    }

    /// The keys of what people wrote.
    pub fn texts(&self) -> &Arc<TextKeys> {
        &self.texts
    }

    /// The digest under which a report's e-mail is found (see `ReportSubmitted`).
    pub fn contact_digest(&self, email: &str) -> String {
        self.digests.contact_digest(email)
    }

    /// Whether the view was rebuilt up to the end of the topics seen at start.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Sends `event` on its stream's topic, waits for the sink's acknowledgement, then
    /// applies it to this replica's view (a write is visible at once where it was taken).
    ///
    /// What a person wrote is sealed first, under a new key of its subject: the key is
    /// kept in `private/` and acknowledged on the keys topic before the event is sent,
    /// so no replica ever holds a sealed text whose key could be lost.
    pub async fn publish(&self, event: &CitizenEvent) -> Result<()> {
        let stream = event.change.stream();
        // What ingest would refuse must not be written (it would be a dead letter).
        let invalid = |r: vallee_schemas::rejection::Rejection| {
            Error::Internal(format!("refusing to write an invalid event: {r}"))
        };
        event.validate().map_err(invalid)?;
        let mut event = event.clone();
        if let Some((subject, texts)) = event.change.personal_texts_mut() {
            let (store, id) = (self.texts.clone(), subject.clone());
            let key = tokio::task::spawn_blocking(move || store.create(&id))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
            self.sink
                .send_key(
                    TEXT_KEYS_TOPIC,
                    &subject,
                    &key.wrap(&self.wrapping, &subject),
                )
                .await?;
            for (field, text) in texts {
                *text = key.seal(&subject, field, text);
            }
            event.validate().map_err(invalid)?;
        }
        let topic = self.options.topic(stream);
        self.sink.send(stream, &topic, &event).await?;
        self.apply(&event);
        Ok(())
    }

    /// Whether a replayed message carries the replicas' signature: a forged status change
    /// or answer must not reach the view (ingest dead-letters it with reason `signature`).
    fn check_signature(&self, message: &impl Message) -> std::result::Result<(), String> {
        let Some(key) = &self.event_key else {
            return Ok(());
        };
        let stream = Stream::CITIZEN
            .into_iter()
            .find(|s| self.options.topic(*s) == message.topic())
            .ok_or_else(|| format!("topic {} is not an API stream", message.topic()))?;
        let signature = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == SIGNATURE_HEADER)
                .and_then(|h| h.value)
        });
        key.verify(stream, message.payload().unwrap_or_default(), signature)
            .map_err(|r| r.to_string())
    }

    /// Applies an event read from a topic (or just written) to this replica.
    pub(crate) fn apply(&self, event: &CitizenEvent) {
        if let CitizenChange::TextsErased { subjects, .. } = &event.change {
            // Before the view: a text opened from now on finds no key.
            for subject in subjects {
                let erased = self
                    .texts
                    .erase(subject)
                    .and_then(|_| match &self.contacts {
                        Some(c) => c.erase(subject).map(|_| ()),
                        None => Ok(()),
                    });
                if let Err(e) = erased {
                    tracing::error!(subject, error = %e, "erasure: the key or contact could not be deleted");
                }
            }
        }
        let changed = self.view.write().expect("view lock").apply(event);
        if let Some(c) = changed {
            let _ = self.changes.send(c);
        }
    }

    /// A record of the keys topic: the key is kept (unless its subject was erased) and
    /// the texts waiting for it opened. A record that does not unwrap under the replicas'
    /// secret (forged, or another hub's) is skipped.
    pub(crate) fn key_record(&self, payload: Option<&[u8]>) -> std::result::Result<(), String> {
        let record: KeyRecord = serde_json::from_slice(payload.unwrap_or_default())
            .map_err(|e| format!("key record: {e}"))?;
        let key = TextKey::unwrap_from(&self.wrapping, &record.subject, &record.key)
            .map_err(|e| format!("key record of {}: {e}", record.subject))?;
        if self
            .texts
            .put(&record.subject, &key)
            .map_err(|e| e.to_string())?
        {
            let changed = self
                .view
                .write()
                .expect("view lock")
                .key_arrived(&record.subject);
            if let Some(c) = changed {
                let _ = self.changes.send(c);
            }
        }
        Ok(())
    }

    /// Replays the reports, ideas and reference-places topics from the start, then follows them, until
    /// `shutdown`.
    pub async fn replay(self: Arc<Self>, shutdown: CancellationToken) -> Result<()> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.options.kafka.brokers)
            .set("group.id", format!("vallee-api-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()?;
        let topics = [
            TEXT_KEYS_TOPIC.to_string(),
            self.options.topic(Stream::CitizenReports),
            self.options.topic(Stream::CitizenIdeas),
            self.options.topic(Stream::ReferencePlaces),
        ];
        let brokers = self.options.kafka.brokers.clone();
        let probe_topics = topics.clone();
        let (assignment, mut remaining) =
            tokio::task::spawn_blocking(move || end_offsets(&brokers, &probe_topics))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
        consumer.assign(&assignment)?;
        let mut replayed = 0u64;
        if remaining.is_empty() {
            self.ready.store(true, Ordering::Release);
            tracing::info!("citizen view ready (nothing to replay)");
        }
        loop {
            let Some(message) =
                vallee_kafka::next_message(&consumer, &shutdown, "citizen replay").await
            else {
                return Ok(());
            };
            // A key record or an erasure writes and syncs files under `private/`: done off
            // the async workers.
            let applied = if message.topic() == TEXT_KEYS_TOPIC {
                let (hub, payload) = (self.clone(), message.payload().map(<[u8]>::to_vec));
                tokio::task::spawn_blocking(move || hub.key_record(payload.as_deref()))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r)
            } else {
                match self
                    .check_signature(&message)
                    .and_then(|()| message.payload().ok_or_else(|| "empty payload".to_string()))
                    .and_then(|p| serde_json::from_slice(p).map_err(|e| e.to_string()))
                    .and_then(|v| CitizenEvent::parse(v).map_err(|r| r.to_string()))
                {
                    Ok(event) if matches!(event.change, CitizenChange::TextsErased { .. }) => {
                        let hub = self.clone();
                        tokio::task::spawn_blocking(move || hub.apply(&event))
                            .await
                            .map_err(|e| e.to_string())
                    }
                    other => other.map(|event| self.apply(&event)),
                }
            };
            // Ingest keeps a bad event in dead_letters; the view has nothing to learn
            // from it, nor from a key record that does not unwrap.
            if let Err(e) = applied {
                tracing::warn!(
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    error = e,
                    "citizen replay: record skipped"
                );
            }
            replayed += 1;
            if !remaining.is_empty() {
                let key = (message.topic().to_string(), message.partition());
                if remaining
                    .get(&key)
                    .is_some_and(|high| message.offset() + 1 >= *high)
                {
                    remaining.remove(&key);
                }
                if remaining.is_empty() {
                    self.ready.store(true, Ordering::Release);
                    tracing::info!(events = replayed, "citizen view rebuilt");
                }
            }
        }
    }
}

/// Where the replay starts (every partition at its beginning) and the end offset it must
/// reach on each non-empty partition.
type ReplayPlan = (TopicPartitionList, BTreeMap<(String, i32), i64>);

/// Every partition of `topics` from the beginning, and the end offset of each non-empty
/// one (the replay is complete once it reached them all).
fn end_offsets(brokers: &str, topics: &[String]) -> Result<ReplayPlan> {
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "vallee-api-probe")
        .create()?;
    let timeout = Duration::from_secs(10);
    let mut assignment = TopicPartitionList::new();
    let mut remaining = BTreeMap::new();
    for topic in topics {
        let metadata = probe.fetch_metadata(Some(topic), timeout)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                assignment.add_partition_offset(topic, p.id(), Offset::Beginning)?;
                let (_, high) = probe.fetch_watermarks(topic, p.id(), timeout)?;
                if high > 0 {
                    remaining.insert((topic.clone(), p.id()), high);
                }
            }
        }
    }
    Ok((assignment, remaining))
}
