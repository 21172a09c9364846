//! Lineage of derived rows: which Kafka records fed a window, an alert or a day.
//!
//! Every row the stream stage writes carries the list of `(topic, partition, min offset,
//! max offset)` of the records it was computed from, so a researcher (or an auditor of an
//! alert) can go back to the raw events in the contract tables (`_topic`, `_partition`,
//! `_offset`). A range may include offsets of other keys: it bounds the sources, it does
//! not list them. The `lineage` column is part of every derived table's contract.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields};
use serde::Serialize;
use serde::ser::SerializeSeq;

use super::columns::Columns;
use crate::Result;

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
    pub fn data_type() -> DataType {
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

    /// The `lineage` column of every derived table.
    pub fn field() -> Field {
        Field::new("lineage", Self::data_type(), false)
    }

    /// The lineage of each row of a batch. The column is the one a query may leave out (the
    /// heaviest, and only audits need it): then every row reads an empty lineage.
    pub fn read(columns: &Columns) -> Result<Vec<Lineage>> {
        if !columns.has("lineage") {
            return Ok(vec![Lineage::default(); columns.len()]);
        }
        let mut lists = columns.struct_lists("lineage")?;
        (0..columns.len())
            .map(|row| {
                let ranges = lists.need(row)?;
                let mut topic = ranges.strings("topic")?;
                let mut partition = ranges.ints("partition")?;
                let (mut min, mut max) = (ranges.ints("minOffset")?, ranges.ints("maxOffset")?);
                let mut lineage = Lineage::default();
                for i in 0..ranges.len() {
                    let t: Arc<str> = Arc::from(topic.need(i)?);
                    lineage.widen(&t, partition.need(i)? as i32, min.need(i)?, max.need(i)?);
                }
                Ok(lineage)
            })
            .collect()
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
