//! A partner's sharing settings against a real lake: the public table follows them both
//! ways, and a withdrawn share leaves no file behind in the table's history.

use std::sync::Arc;

use chrono::Utc;
use vallee_lake::{Lake, LakeOptions, Progress};
use vallee_opendata::OpenData;
use vallee_opendata::publish::PublicLake;
use vallee_opendata::sharing::{Audience, Sharing};
use vallee_schemas::batch::{Lineage, TableBuffer};
use vallee_schemas::contract::{Stream, Table};
use vallee_schemas::decode::{DecodeOptions, decode};

/// Readings of parcels `pins-1` and `pins-2` into the internal lake.
async fn lake_with_two_parcels(root: &std::path::Path) -> Arc<Lake> {
    let lake = Lake::open(LakeOptions {
        root: root.join("lake"),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut buffer = TableBuffer::new(Table::ParcelRecords).unwrap();
    for (offset, parcel) in ["pins-1", "pins-2"].iter().enumerate() {
        let payload = format!(
            r#"{{"id":"r{offset}","type":"AgriParcelRecord","hasAgriParcel":"{parcel}","soilMoistureVwc":0.2,"dateObserved":"2026-05-12T06:00:00Z"}}"#
        );
        let decoded = decode(
            Stream::Vineyards,
            Some(payload.as_bytes()),
            None,
            &DecodeOptions::default(),
        )
        .unwrap();
        let lineage = Lineage {
            topic: "vineyards",
            partition: 0,
            offset: offset as i64,
            ingested_at_micros: Utc::now().timestamp_micros(),
        };
        decoded.append_to(&mut buffer, &lineage).unwrap();
    }
    let progress = [Progress {
        topic: "vineyards".into(),
        partition: 0,
        previous: None,
        last: 1,
    }];
    lake.append(
        Table::ParcelRecords,
        "vallee-ingest",
        vec![buffer.finish().unwrap().unwrap()],
        &progress,
    )
    .await
    .unwrap();
    Arc::new(lake)
}

/// The public lake's publisher under `shared` (parcels shared with the public).
fn publisher(lake: &Arc<Lake>, root: &std::path::Path, shared: &[&str]) -> PublicLake {
    let sharing = Sharing::new(shared.iter().map(|p| (p.to_string(), Audience::Public)));
    let public = Lake::open_bare(LakeOptions {
        root: root.join("public"),
        ..Default::default()
    })
    .unwrap();
    PublicLake::new(
        OpenData::new(lake.clone()).with_sharing(Arc::new(sharing), Audience::Public),
        Arc::new(public),
    )
}

/// The parcels of the published table, and every parcel any of its files on disk holds.
async fn published(public: &PublicLake, root: &std::path::Path) -> (String, String) {
    let ctx = public.session(None).await.unwrap();
    let rows = ctx
        .sql("SELECT string_agg(parcelle, ',' ORDER BY parcelle) FROM parcelles_partagees")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&rows)
        .unwrap()
        .to_string();
    let mut on_disk = Vec::new();
    let dir = root.join("public/parcelles-partagees");
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() && e.file_name() != "_delta_log" {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                let bytes = std::fs::read(&path).unwrap();
                for parcel in ["pins-1", "pins-2"] {
                    if bytes.windows(parcel.len()).any(|w| w == parcel.as_bytes()) {
                        on_disk.push(parcel);
                    }
                }
            }
        }
    }
    on_disk.sort();
    on_disk.dedup();
    (text, on_disk.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_share_leaves_the_public_table_and_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_with_two_parcels(dir.path()).await;

    let sharing_one = publisher(&lake, dir.path(), &["pins-1"]);
    let done = sharing_one.publish().await.unwrap();
    assert!(done.iter().any(|(id, _)| *id == "parcelles-partagees"));
    let (rows, files) = published(&sharing_one, dir.path()).await;
    assert!(
        rows.contains("pins-1") && !rows.contains("pins-2"),
        "{rows}"
    );
    assert_eq!(files, "pins-1");
    assert!(
        sharing_one.publish().await.unwrap().is_empty(),
        "nothing moved: nothing rewritten"
    );

    // Withdrawn: no source commit in between, yet the table is rewritten and its history
    // holds the parcel no more.
    let sharing_none = publisher(&lake, dir.path(), &[]);
    let done = sharing_none.publish().await.unwrap();
    assert_eq!(
        done.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        ["parcelles-partagees"]
    );
    let (rows, files) = published(&sharing_none, dir.path()).await;
    assert!(!rows.contains("pins-1"), "{rows}");
    assert_eq!(files, "", "no file of the table holds a withdrawn parcel");

    // Granted again: back to the first setting's fingerprint, rewritten again.
    let again = publisher(&lake, dir.path(), &["pins-1"]);
    assert!(!again.publish().await.unwrap().is_empty());
    let (rows, _) = published(&again, dir.path()).await;
    assert!(rows.contains("pins-1"), "{rows}");
}
