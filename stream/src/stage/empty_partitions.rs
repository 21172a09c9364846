//! Which assigned partitions are empty from where the stage started reading them, told by
//! the Kafka client's own statistics.
//!
//! A partition that has delivered nothing holds its stream's watermark back: it may still
//! replay old rows after a restart. When it really is empty (a zone-keyed topic where no
//! zone hashes to it, a new topic), that hold would last the whole idle timeout (30 s) and
//! delay every window of the stream. Asking the broker for its high-water mark from the
//! poll loop is not an option: the request blocks the loop, and the embedded broker times
//! it out under load. But the answer already arrives for free: every fetch response carries
//! the partition's high-water mark, and librdkafka reports it, with the fetch position and
//! the number of messages received, in the statistics it emits every
//! [`STATISTICS_INTERVAL`] on the consumer's own poll.
//!
//! A partition counts as empty when the fetcher is active on it, its next fetch offset has
//! reached the broker's high-water mark, and this client has never received a message of
//! it: there is nothing to deliver from where it started. A partition that received
//! anything is judged by its event times and the idle timeout, as before.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use vallee_kafka::watch::Observation;

/// How often librdkafka reports its statistics (`statistics.interval.ms`): an empty
/// partition stops holding the watermark at most this long after its first fetch.
pub const STATISTICS_INTERVAL: Duration = Duration::from_secs(1);

/// The few fields of librdkafka's statistics this needs (its `STATISTICS.md`).
#[derive(Debug, Deserialize)]
struct ClientStatistics {
    #[serde(default)]
    topics: BTreeMap<String, TopicStatistics>,
}

#[derive(Debug, Deserialize)]
struct TopicStatistics {
    #[serde(default)]
    partitions: BTreeMap<String, PartitionStatistics>,
}

#[derive(Debug, Deserialize)]
struct PartitionStatistics {
    partition: i32,
    /// Assigned to this consumer.
    desired: bool,
    /// `active` once the fetcher knows where it reads from.
    fetch_state: String,
    /// The next offset to fetch (negative while unknown).
    next_offset: i64,
    /// The broker's high-water mark from the last fetch response (-1 before any).
    hi_offset: i64,
    /// Messages of this partition received by this client.
    rxmsgs: u64,
    /// The offset after the last message handed to the stage (negative before any).
    #[serde(default = "unknown")]
    app_offset: i64,
    /// The broker's low-water mark (negative while unknown).
    #[serde(default = "unknown")]
    lo_offset: i64,
}

fn unknown() -> i64 {
    -1
}

/// Every partition assigned to this client in `statistics` (librdkafka's JSON), with its
/// topic (not the client's internal partition -1).
fn assigned(statistics: &[u8]) -> serde_json::Result<Vec<(String, PartitionStatistics)>> {
    let statistics: ClientStatistics = serde_json::from_slice(statistics)?;
    Ok(statistics
        .topics
        .into_iter()
        .flat_map(|(topic, t)| {
            t.partitions
                .into_values()
                .filter(|p| p.partition >= 0 && p.desired)
                .map(move |p| (topic.clone(), p))
        })
        .collect())
}

/// Each assigned partition's progress as `statistics` shows it: its ends from the last
/// fetch response and how far this client handed messages to the stage. What the stall
/// watch needs of a consumer that commits nothing to a group (the trucks' broadcast
/// consumer of a stage member: no probe reads its progress from the broker).
pub fn partition_progress(statistics: &[u8]) -> serde_json::Result<Vec<Observation>> {
    Ok(assigned(statistics)?
        .into_iter()
        .filter(|(_, p)| p.hi_offset >= 0)
        .map(|(topic, p)| Observation {
            topic,
            partition: p.partition,
            low: p.lo_offset.max(0),
            end: p.hi_offset,
            committed: (p.app_offset >= 0).then_some(p.app_offset),
        })
        .collect())
}

/// The `(topic, partition)` pairs that `statistics` (librdkafka's JSON) shows empty from
/// where this client started reading them.
pub fn empty_partitions(statistics: &[u8]) -> serde_json::Result<Vec<(String, i32)>> {
    Ok(assigned(statistics)?
        .into_iter()
        .filter(|(_, p)| {
            p.fetch_state == "active"
                && p.hi_offset >= 0
                && p.next_offset >= p.hi_offset
                && p.rxmsgs == 0
        })
        .map(|(topic, p)| (topic, p.partition))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trimmed statistics document in librdkafka's shape: one topic, its internal
    /// partition -1 and five real ones in the states that matter.
    fn statistics() -> String {
        let partition = |id: i32, desired: bool, state: &str, next: i64, hi: i64, rx: u64| {
            format!(
                r#""{id}": {{"partition": {id}, "broker": 1, "leader": 1, "desired": {desired},
                "unknown": false, "fetchq_cnt": 0, "fetch_state": "{state}", "query_offset": -1001,
                "next_offset": {next}, "app_offset": -1001, "stored_offset": -1001,
                "committed_offset": -1001, "eof_offset": -1001, "lo_offset": -1,
                "hi_offset": {hi}, "ls_offset": {hi}, "consumer_lag": -1, "rxmsgs": {rx},
                "rxbytes": 0, "msgs": {rx}}}"#
            )
        };
        let partitions = [
            partition(-1, false, "none", -1001, -1, 0),
            partition(0, true, "active", 0, 0, 0), // empty from the start
            partition(1, true, "active", 1200, 5000, 1200), // a backlog being read
            partition(2, true, "active", 5000, 5000, 5000), // caught up after delivering
            partition(3, true, "offset-query", -1001, -1, 0), // start not known yet
            partition(4, false, "none", 7, 7, 0),  // not ours
            partition(5, true, "active", 12, -1, 0), // no fetch response yet
            partition(6, true, "active", 340, 340, 0), // replay offset at the end
        ]
        .join(",");
        format!(
            r#"{{"name": "vallee-stream#consumer-1", "type": "consumer", "ts": 1, "age": 2,
            "brokers": {{"127.0.0.1:9092/1": {{"name": "127.0.0.1:9092/1", "nodeid": 1}}}},
            "topics": {{"valley.beacons": {{"topic": "valley.beacons", "age": 2,
            "metadata_age": 1, "partitions": {{{partitions}}}}}}}}}"#
        )
    }

    #[test]
    fn only_partitions_with_nothing_to_deliver_from_their_start_are_empty() {
        let mut empty = empty_partitions(statistics().as_bytes()).unwrap();
        empty.sort();
        assert_eq!(
            empty,
            vec![
                ("valley.beacons".to_string(), 0),
                ("valley.beacons".to_string(), 6)
            ]
        );
    }

    #[test]
    fn progress_is_each_assigned_partitions_ends_and_what_the_stage_was_handed() {
        let progress = partition_progress(statistics().as_bytes()).unwrap();
        let got: Vec<_> = progress
            .iter()
            .map(|o| (o.partition, o.low, o.end, o.committed))
            .collect();
        // Not ours (4), the internal one (-1) and those with no fetch response yet (3, 5)
        // are left out; nothing handed to the stage yet: no progress of its own.
        assert_eq!(
            got,
            vec![
                (0, 0, 0, None),
                (1, 0, 5000, None),
                (2, 0, 5000, None),
                (6, 0, 340, None)
            ]
        );
        let handed = statistics().replace(
            r#""next_offset": 1200, "app_offset": -1001"#,
            r#""next_offset": 1200, "app_offset": 1180"#,
        );
        let progress = partition_progress(handed.as_bytes()).unwrap();
        assert_eq!(progress[1].committed, Some(1180));
    }

    #[test]
    fn statistics_without_topics_name_nothing_and_garbage_is_an_error() {
        assert!(
            empty_partitions(br#"{"name": "c", "type": "consumer"}"#)
                .unwrap()
                .is_empty()
        );
        assert!(empty_partitions(b"not json").is_err());
    }
}
