//! The lake against real Delta tables on disk.

use chrono::Utc;
use vallee_lake::{Lake, LakeOptions, Progress};
use vallee_schemas::batch::{Lineage, TableBuffer};
use vallee_schemas::contract::{Stream, Table};
use vallee_schemas::decode::{DecodeOptions, decode};

const WRITER: &str = "vallee-ingest";

fn bins(offsets: std::ops::Range<i64>) -> arrow::array::RecordBatch {
    let mut buffer = TableBuffer::new(Table::WasteContainers).unwrap();
    for offset in offsets {
        let payload = format!(
            r#"{{"id":"urn:ngsi-ld:WasteContainer:b{offset}","type":"WasteContainer","dateObserved":"2026-11-2{}T10:00:00Z","fillingLevel":0.5,"location":{{"type":"Point","coordinates":[3.55,43.65]}}}}"#,
            offset % 3
        );
        let d = decode(
            Stream::WasteContainers,
            Some(payload.as_bytes()),
            None,
            &DecodeOptions::default(),
        )
        .unwrap();
        let lineage = Lineage {
            topic: "bins",
            partition: 0,
            offset,
            ingested_at_micros: Utc::now().timestamp_micros(),
        };
        d.append_to(&mut buffer, &lineage).unwrap();
    }
    buffer.finish().unwrap().unwrap()
}

/// Appends bins read at `offsets` of partition 0, the table holding `previous` before.
async fn append_bins(
    lake: &Lake,
    offsets: std::ops::Range<i64>,
    previous: Option<i64>,
) -> vallee_lake::Result<u64> {
    let last = offsets.end - 1;
    let committed = lake
        .append(
            Table::WasteContainers,
            WRITER,
            vec![bins(offsets)],
            &progress(previous, last),
        )
        .await?;
    Ok(committed.rows as u64)
}

fn progress(previous: Option<i64>, last: i64) -> Vec<Progress> {
    vec![Progress {
        topic: "bins".into(),
        partition: 0,
        previous,
        last,
    }]
}

async fn open_lake(dir: &std::path::Path) -> Lake {
    Lake::open(LakeOptions {
        root: dir.join("lake"),
        checkpoint_interval: 5,
        ..Default::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn every_table_is_created_empty_and_partitioned_by_day() {
    let dir = tempfile::tempdir().unwrap();
    let lake = open_lake(dir.path()).await;
    for table in Table::ALL {
        assert_eq!(lake.count(table).await.unwrap(), 0, "{table}");
        assert!(
            dir.path()
                .join("lake")
                .join(table.name())
                .join("_delta_log")
                .is_dir()
        );
    }
    // Opening again finds the tables rather than recreating them.
    let again = open_lake(dir.path()).await;
    assert_eq!(again.version(Table::DeadLetters).await.unwrap(), 0);
}

#[tokio::test]
async fn appends_record_offsets_that_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let lake = open_lake(dir.path()).await;
    append_bins(&lake, 0..10, None).await.unwrap();
    append_bins(&lake, 10..15, Some(9)).await.unwrap();
    drop(lake);

    let lake = open_lake(dir.path()).await;
    let stored = lake
        .committed_offsets(Table::WasteContainers, WRITER, "bins", &[0, 1])
        .await
        .unwrap();
    assert_eq!(stored[&0], Some(14));
    assert_eq!(stored[&1], None);
    assert_eq!(lake.count(Table::WasteContainers).await.unwrap(), 15);
    // Rows were spread over three day partitions.
    let days = lake
        .sql("SELECT count(DISTINCT day) AS d FROM waste_containers")
        .await
        .unwrap();
    let d = days[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(d, 3);
}

#[tokio::test]
async fn a_stale_writer_is_fenced_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = open_lake(dir.path()).await;
    append_bins(&lake, 0..10, None).await.unwrap();
    // A second writer that took over at "nothing committed" must not append offsets 0..9 again.
    let err = append_bins(&lake, 0..10, None).await.unwrap_err();
    assert!(err.is_fenced(), "{err}");
    assert_eq!(lake.count(Table::WasteContainers).await.unwrap(), 10);
}

#[tokio::test]
async fn a_progress_only_commit_moves_offsets_without_rows() {
    let dir = tempfile::tempdir().unwrap();
    let lake = open_lake(dir.path()).await;
    let before = lake.version(Table::DeadLetters).await.unwrap();
    let c = lake
        .append(Table::DeadLetters, WRITER, vec![], &progress(None, 500))
        .await
        .unwrap();
    assert_eq!(c.rows, 0);
    assert_eq!(c.version, before + 1);
    let stored = lake
        .committed_offsets(Table::DeadLetters, WRITER, "bins", &[0])
        .await
        .unwrap();
    assert_eq!(stored[&0], Some(500));
    assert_eq!(lake.count(Table::DeadLetters).await.unwrap(), 0);
}

#[tokio::test]
async fn checkpoints_are_written_periodically() {
    let dir = tempfile::tempdir().unwrap();
    let lake = open_lake(dir.path()).await;
    let mut previous = None;
    for i in 0..6 {
        let last = i * 2 + 1;
        append_bins(&lake, i * 2..last + 1, previous).await.unwrap();
        previous = Some(last);
    }
    let log = dir.path().join("lake/waste_containers/_delta_log");
    let checkpoints = std::fs::read_dir(&log)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".checkpoint.parquet")
        })
        .count();
    assert!(checkpoints >= 1, "no checkpoint in {log:?}");
    assert_eq!(lake.count(Table::WasteContainers).await.unwrap(), 12);
}

/// Upkeep changes files, never rows nor the recorded offsets, and keeps time travel within
/// the retention.
#[tokio::test]
async fn compaction_vacuum_and_checkpoints_keep_rows_offsets_and_time_travel() {
    let dir = tempfile::tempdir().unwrap();
    let lake = open_lake(dir.path()).await;
    let mut previous = None;
    for i in 0..8i64 {
        append_bins(&lake, i * 10..i * 10 + 10, previous)
            .await
            .unwrap();
        previous = Some(i * 10 + 9);
    }
    let table = Table::WasteContainers;
    let version_before = lake.version(table).await.unwrap();
    let files_before = lake.file_count(table).await.unwrap();
    assert!(files_before >= 8, "{files_before} files");
    let compacted = lake.optimize(table).await.unwrap();
    assert_eq!(compacted.files_before, files_before);
    // One file per day partition is what is left (three days of readings).
    assert_eq!(compacted.files_after, 3, "{compacted:?}");
    assert_eq!(lake.count(table).await.unwrap(), 80);
    let offsets = lake
        .committed_offsets(table, WRITER, "bins", &[0])
        .await
        .unwrap();
    assert_eq!(offsets.get(&0).copied().flatten(), Some(79));
    // The version before compaction still reads (its files are kept within the retention).
    let (ctx, v) = lake
        .session_as_of(table, vallee_lake::AsOf::Version(version_before))
        .await
        .unwrap();
    assert_eq!(v, Some(version_before));
    let n = ctx
        .sql("SELECT count(*) FROM waste_containers")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(
        n[0].column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0),
        80
    );
    assert_eq!(
        lake.vacuum(table, chrono::Duration::days(30))
            .await
            .unwrap(),
        0
    );
    // With no retention, the files the compaction replaced go.
    assert_eq!(
        lake.vacuum(table, chrono::Duration::zero()).await.unwrap(),
        files_before
    );
    assert_eq!(
        lake.vacuum(table, chrono::Duration::zero()).await.unwrap(),
        0,
        "a second vacuum finds nothing left to delete"
    );
    assert_eq!(lake.count(table).await.unwrap(), 80);
    let checkpointed = lake.checkpoint(table).await.unwrap();
    let log = dir.path().join("lake/waste_containers/_delta_log");
    assert!(
        log.join(format!("{checkpointed:020}.checkpoint.parquet"))
            .is_file()
    );
}

/// A replaced table is rewritten when its source moved on, or when a setting it depends on
/// changed, back to an earlier value included (a share withdrawn after being granted).
#[tokio::test]
async fn a_replaced_table_follows_its_source_and_its_settings_both_ways() {
    use vallee_lake::replace::Stamp;

    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open_bare(LakeOptions {
        root: dir.path().join("public"),
        ..Default::default()
    })
    .unwrap();
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("n", arrow::datatypes::DataType::Int64, false),
    ]));
    let batch = |n: i64| {
        arrow::array::RecordBatch::try_new(
            schema.clone(),
            vec![std::sync::Arc::new(arrow::array::Int64Array::from(vec![n]))],
        )
        .unwrap()
    };
    let stamps = |source: i64, setting: i64| {
        [
            Stamp::AtLeast("vallee-publish/t".into(), source),
            Stamp::Exactly("vallee-sharing".into(), setting),
        ]
    };
    let mut written = Vec::new();
    for (source, setting) in [(1, 7), (1, 7), (0, 7), (2, 7), (2, -3), (2, 7), (2, 7)] {
        let version = lake
            .replace("t", vec![batch(source)], &stamps(source, setting))
            .await
            .unwrap();
        written.push(version.is_some());
    }
    assert_eq!(
        written,
        [true, false, false, true, true, true, false],
        "first; same; an older source; a newer source; a changed setting; the setting back; same"
    );
    assert!(lake.replaced_with("t", &stamps(2, 7)).await.unwrap());
    assert!(!lake.replaced_with("t", &stamps(2, -3)).await.unwrap());
}

/// Two writers owning different partitions of the same topic (two ingest members, or a
/// member and its successor overlapping during a rebalance) commit to one table at once,
/// while compaction rewrites its files: a storm of concurrent commits. No writer is fenced
/// for it, every row lands once, and each partition's offset is its writer's last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_compaction_lose_nothing_duplicate_nothing_and_fence_no_one() {
    let dir = tempfile::tempdir().unwrap();
    let table = Table::WasteContainers;
    open_lake(dir.path()).await.ensure(table).await.unwrap();
    const COMMITS: i64 = 25;
    const ROWS: i64 = 4;
    let stop = tokio_util::sync::CancellationToken::new();
    let mut writers = Vec::new();
    for partition in 0..2 {
        // Each writer a lake of its own, on its own task: as two processes would.
        let lake = open_lake(dir.path()).await;
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut previous = None;
            for c in 0..COMMITS {
                // Offsets of partition 1 start at 1 000: every bin id is distinct.
                let first = partition as i64 * 1_000 + c * ROWS;
                let last = first + ROWS - 1;
                let progress = vec![Progress {
                    topic: "bins".into(),
                    partition,
                    previous,
                    last,
                }];
                lake.append_retrying(table, WRITER, &[bins(first..last + 1)], &progress, &stop)
                    .await
                    .unwrap_or_else(|e| panic!("writer of partition {partition}, commit {c}: {e}"));
                previous = Some(last);
            }
        }));
    }
    let compactor = open_lake(dir.path()).await;
    let mut compacted = 0;
    while !writers.iter().all(|w| w.is_finished()) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // A compaction that loses the race to an append is tried again next time.
        if compactor.optimize(table).await.is_ok() {
            compacted += 1;
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(compacted > 0, "compaction ran beside the writers");

    let lake = open_lake(dir.path()).await;
    assert_eq!(
        lake.count(table).await.unwrap(),
        (2 * COMMITS * ROWS) as u64
    );
    let distinct = lake
        .sql("SELECT count(DISTINCT id) AS n FROM waste_containers")
        .await
        .unwrap();
    let n = distinct[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n, 2 * COMMITS * ROWS, "no row twice");
    let offsets = lake
        .committed_offsets(table, WRITER, "bins", &[0, 1])
        .await
        .unwrap();
    assert_eq!(offsets.get(&0).copied().flatten(), Some(COMMITS * ROWS - 1));
    assert_eq!(
        offsets.get(&1).copied().flatten(),
        Some(1_000 + COMMITS * ROWS - 1)
    );
}
