//! The API's reads of the lake: from a snapshot shared by every query and refreshed at most
//! every `lake_refresh_ms`, apart from the tables writers commit through (ingest and the
//! stream stage run in the same process under `vallee up`), so a read never waits for a
//! commit nor delays one; and a gate that lets so many lake queries run at once, the others
//! waiting their turn briefly, then refused as busy.
//!
//! The snapshot is refreshed by the first query that finds it older than the interval; the
//! queries meanwhile read the previous one. Nothing refreshes while nobody reads.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use tokio::sync::{Mutex, Semaphore, SemaphorePermit};
use vallee_lake::{ReadOnlyTables, TablesAt};

use crate::{Error, Result};

/// How many lake queries run at once; the others wait at most so long.
#[derive(Debug)]
pub struct LakeGate {
    permits: Semaphore,
    wait: Duration,
}

impl LakeGate {
    pub fn new(max: usize, wait: Duration) -> Self {
        LakeGate {
            permits: Semaphore::new(max.max(1)),
            wait,
        }
    }

    /// A turn to query the lake; [`Error::Busy`] when none came within the wait.
    pub async fn enter(&self) -> Result<SemaphorePermit<'_>> {
        match tokio::time::timeout(self.wait, self.permits.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Error::Busy("too many lake queries at once")),
        }
    }
}

/// Lake queries over a shared, periodically refreshed snapshot, one gate turn each.
#[derive(Debug)]
pub struct LakeReads {
    gate: Arc<LakeGate>,
    every: Duration,
    /// The refresher's copies (whoever holds the lock refreshes).
    copies: Mutex<ReadOnlyTables>,
    current: RwLock<Option<(Instant, TablesAt)>>,
}

impl LakeReads {
    pub fn new(copies: ReadOnlyTables, gate: Arc<LakeGate>, every: Duration) -> Self {
        LakeReads {
            gate,
            every,
            copies: Mutex::new(copies),
            current: RwLock::new(None),
        }
    }

    pub fn gate(&self) -> &Arc<LakeGate> {
        &self.gate
    }

    /// Runs one query (after its turn) over the snapshot.
    pub async fn sql(&self, query: &str) -> Result<Vec<RecordBatch>> {
        let _turn = self.gate.enter().await?;
        let tables = self.tables().await?;
        tables.sql(query).await.map_err(lake_error)
    }

    fn last(&self) -> Option<(Instant, TablesAt)> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The snapshot, refreshed first when it is older than the interval and nobody else is
    /// refreshing it (they read the last one meanwhile; the very first read waits).
    async fn tables(&self) -> Result<TablesAt> {
        let last = self.last();
        if let Some((at, tables)) = &last
            && at.elapsed() < self.every
        {
            return Ok(tables.clone());
        }
        let mut copies = match (self.copies.try_lock(), last) {
            (Ok(copies), _) => copies,
            (Err(_), Some((_, tables))) => return Ok(tables),
            (Err(_), None) => self.copies.lock().await,
        };
        // Someone may have refreshed while this one waited for the lock.
        if let Some((at, tables)) = self.last()
            && at.elapsed() < self.every
        {
            return Ok(tables);
        }
        match copies.refresh().await {
            Ok(tables) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), tables.clone()));
                Ok(tables)
            }
            Err(e) => match self.last() {
                Some((_, tables)) => {
                    tracing::warn!(error = %e, "refreshing the lake snapshot failed: reading the last one");
                    Ok(tables)
                }
                None => Err(lake_error(e)),
            },
        }
    }
}

fn lake_error(e: vallee_lake::Error) -> Error {
    Error::Lake(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn past_its_capacity_the_gate_refuses_after_the_wait() {
        let gate = LakeGate::new(2, Duration::from_millis(50));
        let a = gate.enter().await.unwrap();
        let _b = gate.enter().await.unwrap();
        let started = Instant::now();
        let refused = gate.enter().await.unwrap_err();
        assert!(matches!(refused, Error::Busy(_)), "{refused}");
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(a);
        let _turn = gate.enter().await.expect("a turn once one is free");
    }
}
