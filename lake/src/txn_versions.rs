//! The offsets writers recorded in a table (Delta application transactions), read once.
//!
//! delta-rs answers "what did app id X record?" by replaying the table's log from its last
//! checkpoint: up to `checkpoint_interval` commit files read per question. A writer asks it
//! for every partition at every commit and at every assignment; on a local disk that costs
//! little, on object storage it is one request per commit file per question, and the lake
//! spends its time answering. This cache keeps, per table, what is known as of one version,
//! and brings it forward by reading only the commits written since (each once, whatever the
//! number of app ids); an id it has never seen is asked of delta-rs once.

use std::collections::HashMap;

use deltalake::DeltaTable;

use crate::{Error, Result};

/// What is known of one table's application transactions.
#[derive(Debug, Clone, Default)]
struct Known {
    /// The table version the values hold for.
    version: i64,
    /// App id → last recorded version (`None`: never recorded).
    ids: HashMap<String, Option<i64>>,
    /// Read from the table's first commit: an id missing from `ids` was never recorded.
    complete: bool,
}

/// A table with at most this many commits is read from its first (one request per commit,
/// every app id at once); a longer one asks delta-rs, which starts at the checkpoint.
const READ_WHOLE_LOG_UP_TO: i64 = 200;

/// Per table name, the application transactions known so far.
#[derive(Debug, Default)]
pub(crate) struct TxnVersions {
    tables: std::sync::Mutex<HashMap<String, Known>>,
}

impl TxnVersions {
    /// The offset `app_id` recorded in `delta` as loaded (its version), or `None`.
    pub(crate) async fn get(
        &self,
        delta: &DeltaTable,
        table: &str,
        app_id: &str,
    ) -> Result<Option<i64>> {
        let Some(version) = delta.version().map(|v| v as i64) else {
            return Ok(None);
        };
        let cached = {
            let tables = self.lock();
            let cached = tables.get(table);
            // The hot path (each partition of each commit): known at this very version.
            if let Some(k) = cached.filter(|k| k.version == version) {
                match k.ids.get(app_id) {
                    Some(v) => return Ok(*v),
                    None if k.complete => return Ok(None),
                    None => {}
                }
            }
            cached.cloned()
        };
        let fresh = || Known {
            version: -1,
            ids: HashMap::new(),
            complete: true,
        };
        let mut known = match cached {
            Some(k) if k.version <= version => k,
            // Nothing known, or known of a newer version than this handle's: start again.
            _ if version <= READ_WHOLE_LOG_UP_TO => fresh(),
            _ => Known {
                version,
                ids: HashMap::new(),
                complete: false,
            },
        };
        if known.version < version && !forward(delta, table, &mut known, version).await {
            known = Known {
                version,
                ids: HashMap::new(),
                complete: false,
            };
        }
        let value = match known.ids.get(app_id) {
            Some(v) => *v,
            None if known.complete => None,
            None => {
                let v = replayed(delta, table, app_id).await?;
                known.ids.insert(app_id.to_string(), v);
                v
            }
        };
        let mut tables = self.lock();
        let keep = tables.get(table).is_none_or(|k| k.version <= known.version);
        if keep {
            tables.insert(table.to_string(), known);
        }
        Ok(value)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Known>> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads the commits after `known.version` up to `version`, applying their transactions;
/// false when one cannot be read (cleaned up, or a checkpoint only): start again.
async fn forward(delta: &DeltaTable, table: &str, known: &mut Known, version: i64) -> bool {
    let store = delta.log_store();
    for v in known.version + 1..=version {
        let Ok(Some(bytes)) = store.read_commit_entry(v as _).await else {
            tracing::debug!(
                table,
                version = v,
                "commit not readable: app ids read afresh"
            );
            return false;
        };
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let Ok(action) = serde_json::from_slice::<serde_json::Value>(line) else {
                return false;
            };
            if let Some(txn) = action.get("txn") {
                let (Some(id), Some(recorded)) = (
                    txn.get("appId").and_then(|v| v.as_str()),
                    txn.get("version").and_then(|v| v.as_i64()),
                ) else {
                    return false;
                };
                known.ids.insert(id.to_string(), Some(recorded));
            }
        }
        known.version = v;
    }
    true
}

/// What delta-rs finds for `app_id` by replaying the log.
pub(crate) async fn replayed(delta: &DeltaTable, table: &str, app_id: &str) -> Result<Option<i64>> {
    let snapshot = delta.snapshot().map_err(Error::delta(table))?;
    snapshot
        .transaction_version(delta.log_store().as_ref(), app_id)
        .await
        .map_err(Error::delta(table))
}

#[cfg(test)]
mod tests {
    use vallee_schemas::tables::OutputTable;

    use crate::testing::*;
    use crate::{Lake, LakeOptions, Progress};

    /// Offsets read through the cache equal what delta-rs replays, across commits of
    /// several writers and partitions, from a fresh handle and an old one.
    #[tokio::test]
    async fn cached_offsets_equal_the_replayed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let options = LakeOptions {
            root: dir.path().to_path_buf(),
            ..Default::default()
        };
        let lake = Lake::open(options.clone()).await.unwrap();
        let table = OutputTable::Footfall;
        let mut previous = std::collections::BTreeMap::new();
        for round in 0..6i64 {
            for (writer, partition) in [("a", 0), ("a", 1), ("b", 0)] {
                if round % 2 == 1 && writer == "b" {
                    continue;
                }
                let key = (writer, partition);
                let last = round * 10 + partition as i64;
                let progress = Progress {
                    topic: "t".into(),
                    partition,
                    previous: previous.get(&key).copied(),
                    last,
                };
                lake.append(table, writer, vec![footfall_batch("z", round)], &[progress])
                    .await
                    .unwrap();
                previous.insert(key, last);
            }
        }
        // Another process's view: a new handle, and the one that wrote.
        let other = Lake::open(options).await.unwrap();
        for l in [&lake, &other] {
            for (writer, partition) in [("a", 0), ("a", 1), ("b", 0), ("b", 1)] {
                let got = l
                    .committed_offsets(table, writer, "t", &[partition])
                    .await
                    .unwrap()[&partition];
                let delta = l.refreshed(table).await.unwrap();
                let id = crate::app_id(writer, table.name(), "t", partition);
                let replayed = super::replayed(&delta, table.name(), &id).await.unwrap();
                assert_eq!(got, replayed, "{writer}/{partition}");
                assert_eq!(got, previous.get(&(writer, partition)).copied());
            }
        }
    }
}
