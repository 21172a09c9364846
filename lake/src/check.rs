//! Finding and setting aside damaged data files: `vallee lake check` and `vallee lake repair`.
//!
//! A Parquet file cut short (a disk that filled up under another program, a copy
//! interrupted, a restore from a bad backup) or with flipped bytes makes every query that
//! touches it fail, and a query names the file only sometimes. [`Lake::check`] reads each
//! active file of a table whole — footer, every row group, every page — and names the ones
//! that cannot be read. [`Lake::quarantine`] moves them out of the table into a quarantine
//! folder (kept, never deleted: someone may salvage them) and commits their removal with
//! delta-rs's own file-system check, so every reader works again. What the removed files
//! held is reported from the statistics the log keeps of them (rows, days, the Kafka
//! partitions and offsets of their lineage), since the files themselves cannot say.
//!
//! ```text
//!  check:      every active file ─► read whole ─► damaged? (path, error, what the log says)
//!  quarantine: damaged ─► copied to <quarantine>/<table>/<path> ─► deleted from the table
//!                      ─► filesystem_check commit (remove actions, rows unchanged elsewhere)
//! ```
//!
//! Rows of a raw table that were in a damaged file can come back from Kafka while the
//! topic still holds them; the report gives the offsets to look for.

use std::path::{Path, PathBuf};

use deltalake::logstore::object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use crate::{Error, Lake, LakeTable, Result};

/// A data file of a table that cannot be read whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Damaged {
    pub table: &'static str,
    /// The file, relative to the table's folder (as the Delta log names it).
    pub path: String,
    /// Why it cannot be read.
    pub error: String,
    /// What the log's statistics say the file held, when it kept them.
    pub held: Held,
}

/// What the Delta log says a file held (its statistics), since the file cannot say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Held {
    pub rows: Option<u64>,
    /// Partition values (`day=2026-12-04`).
    pub partition: Vec<(String, String)>,
    /// Kafka lineage of a raw table's rows: partitions `min..=max`, offsets `min..=max`.
    pub kafka_partitions: Option<(i64, i64)>,
    pub kafka_offsets: Option<(i64, i64)>,
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rows {
            Some(rows) => write!(f, "{rows} rows")?,
            None => f.write_str("rows unknown (no statistics)")?,
        }
        for (column, value) in &self.partition {
            write!(f, ", {column}={value}")?;
        }
        if let (Some((p0, p1)), Some((o0, o1))) = (self.kafka_partitions, self.kafka_offsets) {
            let partitions = if p0 == p1 {
                format!("partition {p0}")
            } else {
                format!("partitions {p0}–{p1}")
            };
            write!(f, ", Kafka {partitions}, offsets {o0}–{o1}")?;
        }
        Ok(())
    }
}

impl Lake {
    /// Reads every active data file of `table` whole; returns the ones that fail, in the
    /// log's order. A table that does not exist has none.
    pub async fn check(&self, table: impl LakeTable) -> Result<Vec<Damaged>> {
        let name = table.name();
        if !self.exists(name).await {
            return Ok(Vec::new());
        }
        let delta = self.refreshed(table).await?;
        let store = delta.log_store().object_store(None);
        let files: Vec<_> = delta
            .snapshot()
            .map_err(Error::delta(name))?
            .log_data()
            .into_iter()
            .collect();
        drop(delta);
        let mut damaged = Vec::new();
        for file in files {
            let path = file.object_store_path();
            let read = match store.get(&path).await {
                // Decoding a whole file is CPU work: off the async runtime.
                Ok(got) => match got.bytes().await {
                    Ok(bytes) => tokio::task::spawn_blocking(move || read_whole(bytes))
                        .await
                        .unwrap_or_else(|e| Err(format!("the reading task failed: {e}"))),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            if let Err(error) = read {
                damaged.push(Damaged {
                    table: name,
                    path: file.path().into_owned(),
                    error,
                    held: held(
                        file.stats().as_deref(),
                        file.partition_values_map()
                            .into_iter()
                            .map(|(column, value)| (column, value.unwrap_or_default()))
                            .collect::<std::collections::BTreeMap<_, _>>()
                            .into_iter()
                            .collect(),
                    ),
                });
            }
        }
        Ok(damaged)
    }

    /// Moves `damaged` files of `table` to `<quarantine>/<table>/<path>` and commits their
    /// removal from the table (rows in other files unchanged). Files already gone from the
    /// table are skipped; returns each file moved with its copy's path.
    pub async fn quarantine(
        &self,
        table: impl LakeTable,
        damaged: &[Damaged],
        quarantine: &Path,
    ) -> Result<Vec<(Damaged, PathBuf)>> {
        let name = table.name();
        let mut handle = self.refreshed(table).await?;
        let store = handle.log_store().object_store(None);
        let io = |path: &Path, e: std::io::Error| Error::Location {
            location: path.display().to_string(),
            message: e.to_string(),
        };
        let stored = |e: deltalake::ObjectStoreError| Error::delta(name)(e.into());
        let mut moved = Vec::new();
        for file in damaged.iter().filter(|d| d.table == name) {
            let path = deltalake::Path::from(file.path.as_str());
            let bytes = match store.get(&path).await {
                Ok(got) => got.bytes().await.map_err(stored)?,
                Err(deltalake::ObjectStoreError::NotFound { .. }) => continue,
                Err(e) => return Err(stored(e)),
            };
            let copy = quarantine.join(name).join(&file.path);
            if let Some(dir) = copy.parent() {
                std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
            }
            std::fs::write(&copy, &bytes).map_err(|e| io(&copy, e))?;
            store.delete(&path).await.map_err(stored)?;
            moved.push((file.clone(), copy));
        }
        // delta-rs's file-system check removes, in one commit, every active file missing
        // from storage: the ones just moved (and any lost before).
        let (checked, _) = handle
            .clone()
            .filesystem_check()
            .await
            .map_err(Error::delta(name))?;
        *handle = checked;
        Ok(moved)
    }
}

/// Decodes every row of a Parquet file; the error when it cannot.
fn read_whole(bytes: impl parquet::file::reader::ChunkReader + 'static) -> Result<(), String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())?;
    for batch in reader {
        batch.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// What a file's statistics (the log's `stats` JSON) say it held.
fn held(stats: Option<&str>, partition: Vec<(String, String)>) -> Held {
    let stats: Value = stats
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    let range = |column: &str| {
        let min = stats["minValues"][column].as_i64()?;
        let max = stats["maxValues"][column].as_i64()?;
        Some((min, max))
    };
    Held {
        rows: stats["numRecords"].as_u64(),
        partition,
        kafka_partitions: range("_partition"),
        kafka_offsets: range("_offset"),
    }
}

#[cfg(test)]
mod tests {
    use vallee_schemas::tables::OutputTable;

    use super::*;
    use crate::testing::footfall_batch;

    #[tokio::test]
    async fn a_truncated_file_is_found_set_aside_and_the_table_reads_again() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open_bare(crate::LakeOptions {
            root: dir.path().join("lake"),
            ..Default::default()
        })
        .unwrap();
        for zone in ["za", "zb"] {
            lake.append(
                OutputTable::Footfall,
                "test",
                vec![footfall_batch(zone, 7)],
                &[],
            )
            .await
            .unwrap();
        }
        assert!(lake.check(OutputTable::Footfall).await.unwrap().is_empty());
        let table = dir.path().join("lake").join("footfall");
        let victim = walk(&table).remove(0);
        let bytes = std::fs::read(&victim).unwrap();
        std::fs::write(&victim, &bytes[..bytes.len() - 20]).unwrap();

        let damaged = lake.check(OutputTable::Footfall).await.unwrap();
        assert_eq!(damaged.len(), 1, "{damaged:?}");
        assert!(victim.ends_with(&damaged[0].path), "{damaged:?}");
        assert_eq!(damaged[0].held.rows, Some(1));
        let reading = "SELECT count(DISTINCT zone) FROM footfall";
        assert!(
            lake.sql(reading).await.is_err(),
            "the damaged file fails reads"
        );

        let quarantine = dir.path().join("quarantine");
        let moved = lake
            .quarantine(OutputTable::Footfall, &damaged, &quarantine)
            .await
            .unwrap();
        assert_eq!(moved.len(), 1);
        assert_eq!(std::fs::read(&moved[0].1).unwrap().len(), bytes.len() - 20);
        assert!(!victim.exists());
        assert!(lake.check(OutputTable::Footfall).await.unwrap().is_empty());
        let left = lake.sql(reading).await.unwrap();
        let n = left[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(n, 1, "the other file's row is still there");
        // Setting aside again finds nothing to move.
        let again = lake
            .quarantine(OutputTable::Footfall, &damaged, &quarantine)
            .await
            .unwrap();
        assert!(again.is_empty());
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("_delta_log") {
                out.extend(walk(&path));
            } else if path.extension().is_some_and(|x| x == "parquet") {
                out.push(path);
            }
        }
        out
    }

    #[test]
    fn what_a_file_held_is_read_from_its_statistics() {
        let stats = r#"{"numRecords":120,"minValues":{"_partition":0,"_offset":40},
            "maxValues":{"_partition":2,"_offset":917},"nullCount":{}}"#;
        let held = held(Some(stats), vec![("day".into(), "2026-12-04".into())]);
        assert_eq!(held.rows, Some(120));
        assert_eq!(held.kafka_partitions, Some((0, 2)));
        assert_eq!(held.kafka_offsets, Some((40, 917)));
        assert_eq!(
            held.to_string(),
            "120 rows, day=2026-12-04, Kafka partitions 0–2, offsets 40–917"
        );
        let unknown = super::held(None, Vec::new());
        assert_eq!(unknown.to_string(), "rows unknown (no statistics)");
    }
}
