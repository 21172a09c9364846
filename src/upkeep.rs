//! `vallee lake optimize | vacuum | checkpoint`, and the same on a schedule inside
//! `vallee up`: compaction of the small files ingest and the stage leave, vacuum with a
//! retention that keeps `asOf` downloads working (30 days by default), checkpoints.

use std::time::{Duration, Instant};

use anyhow::Result;
use tokio_util::sync::CancellationToken;
use vallee_lake::upkeep::ExistingTable;
use vallee_lake::{Lake, LakeTable};
use vallee_schemas::tables::lake_table_names;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Optimize,
    Vacuum { retention: chrono::Duration },
    Checkpoint,
}

/// The lakes the open-data publisher rewrites: `<data-dir>/public` and
/// `<data-dir>/research`, or `_public/` and `_research/` in the bucket of a lake on object
/// storage (each commit replaces the whole table, so only vacuum concerns them).
pub fn published_lakes(lake: &Lake, data_dir: &std::path::Path) -> Result<Vec<Lake>> {
    ["public", "research"]
        .into_iter()
        .map(|folder| Ok(lake.beside(folder, &data_dir.join(folder))?))
        .collect()
}

/// Runs `task` on every existing table of `lake` (and, for vacuum, of `published`), printing
/// one progress line per table when `progress` is set. Returns (table, before, after):
/// files for optimize, files deleted for vacuum, the checkpointed version for checkpoint.
pub async fn run(
    task: Task,
    lake: &Lake,
    published: &[Lake],
    only: &[String],
    progress: bool,
) -> Result<Vec<(String, i64, i64)>> {
    let mut targets: Vec<(&Lake, &'static str)> = Vec::new();
    for t in lake_table_names() {
        if lake.exists(t).await {
            targets.push((lake, t));
        }
    }
    if let Task::Vacuum { .. } = task {
        for p in published {
            for ds in vallee_opendata::DATASETS {
                if p.exists(ds.id).await {
                    targets.push((p, ds.id));
                }
            }
        }
    }
    targets.retain(|(_, t)| only.is_empty() || only.iter().any(|o| o == t));
    let total = targets.len();
    let mut out = Vec::new();
    for (i, (l, name)) in targets.into_iter().enumerate() {
        let started = Instant::now();
        let table = ExistingTable(name);
        let (before, after, what) = match task {
            Task::Optimize => {
                let c = l.optimize(table).await?;
                (c.files_before as i64, c.files_after as i64, "files")
            }
            Task::Vacuum { retention } => {
                let n = l.vacuum(table, retention).await?;
                (n as i64, 0, "files deleted")
            }
            Task::Checkpoint => {
                let v = l.checkpoint(table).await?;
                (v, v, "version")
            }
        };
        if progress {
            let detail = match task {
                Task::Optimize => format!("{before} → {after} {what}"),
                Task::Vacuum { .. } => format!("{before} {what}"),
                Task::Checkpoint => format!("checkpoint at {what} {after}"),
            };
            eprintln!(
                "[{}/{total}] {}: {detail} ({:.1} s)",
                i + 1,
                table.name(),
                started.elapsed().as_secs_f64()
            );
        }
        out.push((name.to_string(), before, after));
    }
    Ok(out)
}

/// The schedule inside `vallee up`: every `every`, compaction then a checkpoint of every
/// table; vacuum (30 days) once a day. Failures are logged (a commit racing another
/// writer is retried next round), never fatal.
pub async fn schedule(
    lake: &Lake,
    published: &[Lake],
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut last_vacuum = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        for task in [Task::Optimize, Task::Checkpoint] {
            match run(task, lake, &[], &[], false).await {
                Ok(done) if task == Task::Optimize => {
                    let changed: Vec<_> = done.iter().filter(|(_, b, a)| b != a).collect();
                    if !changed.is_empty() {
                        tracing::info!(tables = ?changed, "compacted (table, files before, after)");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = format!("{e:#}"), ?task, "lake upkeep failed"),
            }
        }
        if last_vacuum.elapsed() >= Duration::from_secs(24 * 3600) {
            last_vacuum = Instant::now();
            let task = Task::Vacuum {
                retention: chrono::Duration::days(30),
            };
            if let Err(e) = run(task, lake, published, &[], false).await {
                tracing::warn!(error = format!("{e:#}"), "lake vacuum failed");
            }
        }
    }
}
