//! The topic of each stream, and the way back from a topic to its stream.
//!
//! Every stage names topics through one [`TopicMap`]: ingest and the stream stage to route a
//! message to its stream, the API to write citizens' events, the simulator to produce. In
//! the configuration file it is the `[topics]` section, keyed by stream name; a stream it
//! does not name keeps its default topic.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use vallee_schemas::contract::Stream;

use crate::{Error, Result};

/// The topic of each stream. Read it as a `BTreeMap<Stream, String>` (it dereferences to
/// one); [`TopicMap::stream_of`] goes back from a topic to its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMap(BTreeMap<Stream, String>);

impl Default for TopicMap {
    /// Every stream on its default topic (`vallee.waste.containers`, …).
    fn default() -> Self {
        Stream::ALL
            .iter()
            .map(|s| (*s, s.default_topic().to_string()))
            .collect()
    }
}

impl TopicMap {
    /// The stream `topic` carries, if it is one of ours.
    pub fn stream_of(&self, topic: &str) -> Option<Stream> {
        self.0
            .iter()
            .find(|(_, t)| t.as_str() == topic)
            .map(|(s, _)| *s)
    }

    /// The topic of `stream`; its default topic when the map does not name it.
    pub fn topic(&self, stream: Stream) -> &str {
        self.0
            .get(&stream)
            .map_or_else(|| stream.default_topic(), String::as_str)
    }

    /// The topics of `streams` this map names, in the order given.
    pub fn topics_of(&self, streams: &[Stream]) -> Vec<&str> {
        streams
            .iter()
            .filter_map(|s| self.0.get(s).map(String::as_str))
            .collect()
    }

    /// Puts `stream` on `topic`.
    pub fn insert(&mut self, stream: Stream, topic: impl Into<String>) {
        self.0.insert(stream, topic.into());
    }

    /// Every topic is named, and no two streams share one (a topic must tell its stream).
    pub fn validate(&self) -> Result<()> {
        let mut seen: BTreeMap<&str, Stream> = BTreeMap::new();
        for (stream, topic) in &self.0 {
            if topic.trim().is_empty() {
                return Err(Error::Options(format!(
                    "{}: the topic name is empty",
                    stream.name()
                )));
            }
            if let Some(other) = seen.insert(topic, *stream) {
                return Err(Error::Options(format!(
                    "{} and {} both use topic {topic}: one topic per stream",
                    other.name(),
                    stream.name()
                )));
            }
        }
        Ok(())
    }
}

impl Deref for TopicMap {
    type Target = BTreeMap<Stream, String>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<BTreeMap<Stream, String>> for TopicMap {
    fn from(map: BTreeMap<Stream, String>) -> Self {
        TopicMap(map)
    }
}

impl FromIterator<(Stream, String)> for TopicMap {
    fn from_iter<I: IntoIterator<Item = (Stream, String)>>(iter: I) -> Self {
        TopicMap(iter.into_iter().collect())
    }
}

/// The stream called `name` (`waste_containers`, `beacons`, …).
pub fn stream_named(name: &str) -> Result<Stream, String> {
    Stream::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| {
            let names: Vec<&str> = Stream::ALL.iter().map(|s| s.name()).collect();
            format!("{name}: not a stream (one of {})", names.join(", "))
        })
}

impl Serialize for TopicMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (stream, topic) in &self.0 {
            map.serialize_entry(stream.name(), topic)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for TopicMap {
    /// Stream name → topic, over the defaults: a stream not named keeps its default topic.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = TopicMap;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of stream name = \"topic\"")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut access: A,
            ) -> std::result::Result<TopicMap, A::Error> {
                let mut topics = TopicMap::default();
                while let Some((name, topic)) = access.next_entry::<String, String>()? {
                    let stream = stream_named(&name).map_err(serde::de::Error::custom)?;
                    topics.insert(stream, topic);
                }
                Ok(topics)
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_leads_back_to_its_stream() {
        let mut topics = TopicMap::default();
        topics.insert(Stream::Beacons, "zone.beacons");
        assert_eq!(topics.stream_of("zone.beacons"), Some(Stream::Beacons));
        assert_eq!(
            topics.stream_of("vallee.tourism"),
            Some(Stream::Tourism),
            "defaults kept"
        );
        assert_eq!(topics.stream_of("vallee.beacons"), None, "moved away");
        assert_eq!(topics.topic(Stream::Beacons), "zone.beacons");
        assert_eq!(
            topics.topics_of(&[Stream::Tourism, Stream::Beacons]),
            ["vallee.tourism", "zone.beacons"]
        );
    }

    #[test]
    fn the_file_names_streams_over_the_defaults_and_typos_fail() {
        let topics: TopicMap = toml::from_str("beacons = \"zone.beacons\"\n").unwrap();
        assert_eq!(topics[&Stream::Beacons], "zone.beacons");
        assert_eq!(topics[&Stream::Tourism], Stream::Tourism.default_topic());
        assert_eq!(topics.len(), Stream::ALL.len());
        let err = toml::from_str::<TopicMap>("beacon = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("beacon: not a stream"), "{err}");
        let back: TopicMap = toml::from_str(&toml::to_string(&topics).unwrap()).unwrap();
        assert_eq!(back, topics);
    }

    #[test]
    fn two_streams_on_one_topic_are_refused() {
        assert!(TopicMap::default().validate().is_ok());
        let mut topics = TopicMap::default();
        topics.insert(Stream::Tourism, Stream::Beacons.default_topic());
        let err = topics.validate().unwrap_err().to_string();
        assert!(err.contains("both use topic vallee.beacons"), "{err}");
        topics.insert(Stream::Tourism, " ");
        assert!(topics.validate().is_err());
    }
}
