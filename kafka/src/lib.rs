//! Kafka plumbing shared by the stages of the Smart Vallée hub, written once.
//!
//! Ingest and the stream stage both run a blocking consumer loop on their own thread, join
//! their own consumer group, position partitions from offsets stored in the lake, rejoin
//! when the group leaves them with nothing, and route each message to its stream by topic.
//! What differs is their rebalance hook and their loop; everything else is here.
//!
//! ```text
//!  KafkaOptions { brokers, topics: TopicMap, overrides }
//!     ├─ consumer_config(ConsumerSettings { group, client id, stage settings, stage overrides })
//!     ├─ client_config(settings)            producers, the admin client
//!     └─ ensure_topics(hub_topics(topics))   the broker never auto-creates
//!  run_on_thread(name, shutdown, |handle, token| loop {
//!      poll … ; if RejoinPolicy::should_rejoin(owns nothing for 12 s, 24 s, … 320 s) {
//!          consumer = subscribe(config, context, topics)   // leave, join again
//!      }
//!  })
//! ```
//!
//! # Layout
//! - [`options`] — [`KafkaOptions`] and the layered librdkafka settings of every client.
//! - [`topics`] — [`TopicMap`]: the topic of each stream and back.
//! - [`admin`] — creating the hub's topics, each with its [`Retention`].
//! - [`topic_config`] — setting an existing topic's configuration (IncrementalAlterConfigs).
//! - [`rejoin`] — [`RejoinPolicy`]: when a consumer with no partition joins again.
//! - [`decoding`] — [`decode_beside`](decoding::decode_beside): a chunk decoded on the
//!   other cores while the stage's thread handles it in order.
//! - [`backlog`] — [`BacklogWatch`]: when a stage reads a backlog, and when its end is
//!   flushed at once rather than at the interval.
//! - [`host`] — the stage thread, subscribing a consumer, the partitions a member owns.
//! - [`membership`] — [`Membership`]: partitions from the group coordinator, or taken by
//!   the stage itself (`sole`, `static:i/n`), so a broker's coordinator cannot strand one.
//! - [`watch`] — which partitions are not flowing: lag that nobody moves.
//! - [`probe`] — the thread sampling each partition's end and its group's progress into
//!   [`StageHealth`], read by the stage and by `/readyz` and `/metrics`.
//!
//! # Example
//! ```
//! use std::collections::BTreeMap;
//! use vallee_kafka::{ConsumerSettings, KafkaOptions};
//! use vallee_schemas::contract::Stream;
//!
//! let kafka = KafkaOptions { brokers: "kafka-1:9092".into(), ..Default::default() };
//! let config = kafka.consumer_config(ConsumerSettings {
//!     group_id: "vallee-ingest",
//!     client_id: "vallee-ingest",
//!     settings: &[("fetch.wait.max.ms", "100".into())],
//!     overrides: &BTreeMap::new(),
//! });
//! assert_eq!(config.get("enable.auto.commit"), Some("false"));
//! assert_eq!(kafka.topics.stream_of("vallee.beacons"), Some(Stream::Beacons));
//! ```

pub mod admin;
pub mod backlog;
pub mod decoding;
mod error;
pub mod host;
pub mod membership;
pub mod options;
pub mod probe;
pub mod rejoin;
pub mod topic_config;
pub mod topics;
pub mod watch;

pub use admin::{Retention, ensure_topics, hub_topics};
pub use backlog::BacklogWatch;
pub use error::{Error, Result};
pub use host::{next_message, owned_partitions, partitions_to_take, run_on_thread, subscribe};
pub use membership::Membership;
pub use options::{ConsumerSettings, KafkaOptions};
pub use probe::{SharedHealth, StageHealth};
pub use rejoin::RejoinPolicy;
pub use topics::TopicMap;
