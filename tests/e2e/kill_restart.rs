//! SIGKILL of the ingest process at arbitrary moments, then restart: exactly the produced
//! rows, no duplicates.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_any_moment_loses_and_duplicates_nothing() {
    let world = World::new(3).await;
    let events = valley_events(24_000, 11);
    // Traffic keeps arriving while the ingest process is killed and restarted.
    let producer = world.trickle(events.clone(), 1_000, Duration::from_millis(1_500));
    let lake = world.lake().await;
    // Each round waits until the process is ingesting, then kills it after a different
    // delay: between commits, while buffering, in the middle of a commit.
    for (round, after_ms) in [0u64, 430, 1_150, 170].into_iter().enumerate() {
        let before = total(&lake).await;
        let mut child = world.spawn_ingest(&format!("ingest-{round}"));
        eventually(
            Duration::from_secs(300),
            "the new process ingesting",
            || async { total(&lake).await > before },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let produced = producer.await.unwrap();
    assert_eq!(produced, events.len() as u64);
    let mut child = world.spawn_ingest("ingest-final");
    // The earlier processes may have landed everything already: the last one must still
    // have joined and positioned its partitions before it is stopped.
    eventually(
        Duration::from_secs(300),
        "every produced message in the lake, the last process assigned",
        || async {
            total(&lake).await >= produced && world.log("ingest-final").contains("start=Some(")
        },
    )
    .await;
    terminate(&child);
    assert!(
        wait_exit(&mut child, Duration::from_secs(30))
            .await
            .success()
    );
    assert_exactly_once(&lake, produced).await;
    // The last process resumed from the offsets stored in the tables, not from the start.
    let log = world.log("ingest-final");
    assert!(log.contains("start=Some("), "{log}");
}
