//! Two ingest processes in one consumer group, one stopped mid-run: exact counts.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_leaving_mid_run_hands_over_without_loss_or_duplicates() {
    let world = World::new(3).await;
    let events = valley_events(16_000, 13);
    let lake = world.lake().await;
    let mut a = world.spawn_ingest("ingest-a");
    let mut b = world.spawn_ingest("ingest-b");
    let (first, rest) = events.split_at(6_000);
    let produced_first = world.produce(first).await;
    eventually(
        Duration::from_secs(90),
        "both members owning partitions",
        || async {
            world.log("ingest-a").contains("partition assigned")
                && world.log("ingest-b").contains("partition assigned")
        },
    )
    .await;
    eventually(Duration::from_secs(60), "ingest under way", || async {
        total(&lake).await > 1_000
    })
    .await;
    // Stop one member mid-run; the other takes its partitions over.
    terminate(&a);
    assert!(wait_exit(&mut a, Duration::from_secs(30)).await.success());
    let produced = produced_first + world.produce(rest).await;
    eventually(
        Duration::from_secs(240),
        "every message in the lake",
        || async { total(&lake).await >= produced },
    )
    .await;
    terminate(&b);
    assert!(wait_exit(&mut b, Duration::from_secs(30)).await.success());
    assert_exactly_once(&lake, produced).await;
    // Both members owned partitions at some point, and the survivor was reassigned.
    let (log_a, log_b) = (world.log("ingest-a"), world.log("ingest-b"));
    assert!(log_a.contains("partition assigned"), "{log_a}");
    assert!(log_b.matches("partitions revoked").count() >= 1, "{log_b}");
}
