//! Lineage of derived rows: which Kafka records fed a window, an alert or a day.
//!
//! Every row the stage writes carries the list of `(topic, partition, min offset, max
//! offset)` of the records it was computed from, so a researcher (or an auditor of an alert)
//! can go back to the raw events in the contract tables (`_topic`, `_partition`, `_offset`).
//! A range may include offsets of other keys: it bounds the sources, it does not list them.

use std::sync::Arc;

use serde::Serialize;
use serde::ser::SerializeSeq;

/// Where one record was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
}

/// Offset ranges per topic partition, ordered by topic and partition. A sorted vector, not
/// a map: a lineage holds a handful of partitions, and the stage builds one per partial
/// aggregate (a map would allocate a whole node for its single range).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Lineage(Vec<(Arc<str>, i32, i64, i64)>);

impl Lineage {
    pub fn of(source: &Source) -> Self {
        let mut l = Lineage::default();
        l.add(source);
        l
    }

    /// Offsets `min..=max` of one topic partition.
    pub fn range(topic: &Arc<str>, partition: i32, min: i64, max: i64) -> Self {
        Lineage(vec![(topic.clone(), partition, min, max)])
    }

    pub fn add(&mut self, source: &Source) {
        self.widen(
            &source.topic,
            source.partition,
            source.offset,
            source.offset,
        );
    }

    pub fn merge(&mut self, other: &Lineage) {
        for (topic, partition, min, max) in &other.0 {
            self.widen(topic, *partition, *min, *max);
        }
    }

    /// Widens the range of `topic[partition]` to cover `min..=max`.
    fn widen(&mut self, topic: &Arc<str>, partition: i32, min: i64, max: i64) {
        let found = self
            .0
            .binary_search_by(|(t, p, ..)| (t.as_ref(), *p).cmp(&(topic.as_ref(), partition)));
        match found {
            Ok(i) => {
                let range = &mut self.0[i];
                range.2 = range.2.min(min);
                range.3 = range.3.max(max);
            }
            Err(i) => self.0.insert(i, (topic.clone(), partition, min, max)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(topic, partition, min offset, max offset)`, ordered by topic and partition.
    pub fn ranges(&self) -> impl Iterator<Item = (&str, i32, i64, i64)> {
        self.0
            .iter()
            .map(|(t, p, min, max)| (t.as_ref(), *p, *min, *max))
    }

    /// The Arrow type of the `lineage` column: a list of structs.
    pub fn data_type() -> arrow::datatypes::DataType {
        use arrow::datatypes::{DataType, Field, Fields};
        let fields = Fields::from(vec![
            Field::new("topic", DataType::Utf8, false),
            Field::new("partition", DataType::Int32, false),
            Field::new("minOffset", DataType::Int64, false),
            Field::new("maxOffset", DataType::Int64, false),
        ]);
        DataType::List(Arc::new(Field::new_list_field(
            DataType::Struct(fields),
            false,
        )))
    }

    pub fn field() -> arrow::datatypes::Field {
        arrow::datatypes::Field::new("lineage", Self::data_type(), false)
    }
}

#[derive(Serialize)]
struct Range<'a> {
    topic: &'a str,
    partition: i32,
    #[serde(rename = "minOffset")]
    min_offset: i64,
    #[serde(rename = "maxOffset")]
    max_offset: i64,
}

impl Serialize for Lineage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for (topic, partition, min_offset, max_offset) in self.ranges() {
            seq.serialize_element(&Range {
                topic,
                partition,
                min_offset,
                max_offset,
            })?;
        }
        seq.end()
    }
}

/// Topic names shared by every row's lineage (one allocation per topic, not per event).
#[derive(Debug, Default, Clone)]
pub struct Topics(Vec<Arc<str>>);

impl Topics {
    pub fn source(&mut self, topic: &str, partition: i32, offset: i64) -> Source {
        let topic = match self.0.iter().find(|t| t.as_ref() == topic) {
            Some(t) => t.clone(),
            None => {
                let t: Arc<str> = Arc::from(topic);
                self.0.push(t.clone());
                t
            }
        };
        Source {
            topic,
            partition,
            offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_widen_per_partition_and_merge() {
        let mut topics = Topics::default();
        let mut a = Lineage::default();
        for (p, o) in [(0, 7), (0, 3), (1, 10), (0, 5)] {
            a.add(&topics.source("vallee.beacons", p, o));
        }
        let b = Lineage::of(&topics.source("vallee.beacons", 1, 12));
        a.merge(&b);
        let ranges: Vec<_> = a.ranges().collect();
        assert_eq!(
            ranges,
            vec![("vallee.beacons", 0, 3, 7), ("vallee.beacons", 1, 10, 12)]
        );
        // Another topic keeps the order by topic, then partition.
        let mut c = a.clone();
        c.merge(&Lineage::range(&Arc::from("vallee.a-topic"), 2, 1, 4));
        c.add(&topics.source("vallee.beacons", 0, 9));
        assert_eq!(
            c.ranges().collect::<Vec<_>>(),
            vec![
                ("vallee.a-topic", 2, 1, 4),
                ("vallee.beacons", 0, 3, 9),
                ("vallee.beacons", 1, 10, 12)
            ]
        );
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(
            json,
            r#"[{"topic":"vallee.beacons","partition":0,"minOffset":3,"maxOffset":7},{"topic":"vallee.beacons","partition":1,"minOffset":10,"maxOffset":12}]"#
        );
    }
}
