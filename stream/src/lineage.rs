//! Lineage of derived rows: which Kafka records fed a window, an alert or a day.
//!
//! The [`Lineage`] value and its column are part of the tables' contract
//! (`vallee_schemas::tables::lineage`); what is the stage's own is how it names sources
//! cheaply: one shared topic name per topic, not one per event ([`Topics`]).

use std::sync::Arc;

pub use vallee_schemas::tables::lineage::{Lineage, Source};

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
