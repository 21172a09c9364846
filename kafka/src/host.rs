//! The stage host: a stage's blocking consumer loop on its own OS thread.
//!
//! librdkafka's rebalance callback runs inside `poll` and must read the offsets the lake
//! stored *before* the assignment takes effect, which means blocking on the lake from inside
//! `poll`: something a tokio worker thread must never do. So each stage polls on a
//! dedicated thread and reaches the runtime through a [`Handle`]. The host starts that
//! thread, hands it the handle and the stage's shutdown token, and awaits its result; a
//! stage that fails cancels the token, which stops the whole hub cleanly.

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::BorrowedMessage;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// Runs `stage` on a new thread named `thread` until it returns, then returns its result.
/// An error cancels `shutdown` (a fatal error stops every stage, cleanly).
pub async fn run_on_thread<E, F>(
    thread: &'static str,
    shutdown: CancellationToken,
    stage: F,
) -> Result<(), E>
where
    F: FnOnce(Handle, CancellationToken) -> Result<(), E> + Send + 'static,
    E: From<Error> + Send + 'static,
{
    let handle = Handle::current();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            let result = stage(handle, shutdown.clone());
            if result.is_err() {
                shutdown.cancel();
            }
            let _ = done_tx.send(result);
        })
        .map_err(|source| Error::ThreadStart { thread, source })?;
    done_rx.await.map_err(|_| Error::ThreadDied { thread })?
}

/// The partitions of `topics` that are this member's own under `membership` (every one
/// of them in a group: the coordinator then decides which it gets), from the brokers'
/// metadata.
pub fn owned_partitions<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topics: &[&str],
    membership: crate::Membership,
    timeout: std::time::Duration,
) -> KafkaResult<Vec<(String, i32)>> {
    let mut owned = Vec::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for t in metadata.topics() {
            owned.extend(
                t.partitions()
                    .iter()
                    .filter(|p| membership.owns(p.id()))
                    .map(|p| (topic.to_string(), p.id())),
            );
        }
    }
    Ok(owned)
}

/// The partitions of `topics` this member owns under `membership` and does not read yet
/// (`reading`): what a member assigning its partitions itself takes over, at start and
/// when partitions are added to its topics.
pub fn partitions_to_take<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topics: &[&str],
    membership: crate::Membership,
    reading: &[(String, i32)],
) -> KafkaResult<rdkafka::TopicPartitionList> {
    let all = owned_partitions(
        consumer,
        topics,
        membership,
        std::time::Duration::from_secs(5),
    )?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (topic, partition) in all.iter().filter(|p| !reading.contains(p)) {
        tpl.add_partition(topic, *partition);
    }
    Ok(tpl)
}

/// A consumer built from `config` with `context` (the stage's rebalance hook), subscribed
/// to `topics`. Joining again after a [`crate::RejoinPolicy`] verdict is calling this anew.
pub fn subscribe<C: ConsumerContext>(
    config: &ClientConfig,
    context: C,
    topics: &[&str],
) -> KafkaResult<BaseConsumer<C>> {
    let consumer: BaseConsumer<C> = config.create_with_context(context)?;
    consumer.subscribe(topics)?;
    Ok(consumer)
}

/// The next message of a consumer read on the async runtime, or `None` once `shutdown` is
/// cancelled. A consumer error (librdkafka retries by itself) is logged under `what` and
/// followed by a short pause, so a broker gone away does not spin the task.
pub async fn next_message<'a>(
    consumer: &'a StreamConsumer,
    shutdown: &CancellationToken,
    what: &str,
) -> Option<BorrowedMessage<'a>> {
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return None,
            m = consumer.recv() => m,
        };
        match message {
            Ok(m) => return Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "{what}: consumer error");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum StageError {
        #[error("{0}")]
        Host(#[from] Error),
        #[error("the stage failed")]
        Failed,
    }

    #[tokio::test]
    async fn the_stage_runs_on_its_named_thread_and_a_success_leaves_the_hub_running() {
        let shutdown = CancellationToken::new();
        let result = run_on_thread("vallee-test", shutdown.clone(), |handle, _| {
            // A failed assertion panics the thread, which the host reports as an error.
            assert_eq!(std::thread::current().name(), Some("vallee-test"));
            assert_eq!(
                handle.block_on(async { 42 }),
                42,
                "the runtime is reachable"
            );
            Ok::<(), StageError>(())
        })
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert!(!shutdown.is_cancelled());
    }

    #[tokio::test]
    async fn a_failing_stage_cancels_the_shutdown_token() {
        let shutdown = CancellationToken::new();
        let result = run_on_thread("vallee-test", shutdown.clone(), |_, token| {
            assert!(!token.is_cancelled());
            Err::<(), _>(StageError::Failed)
        })
        .await;
        assert!(matches!(result, Err(StageError::Failed)));
        assert!(shutdown.is_cancelled());
    }

    #[tokio::test]
    async fn a_panicking_stage_is_reported_as_dead() {
        let result = run_on_thread(
            "vallee-test",
            CancellationToken::new(),
            |_, _| -> Result<(), StageError> { panic!("boom") },
        )
        .await;
        match result {
            Err(StageError::Host(e)) => assert_eq!(e.to_string(), "the vallee-test thread died"),
            other => panic!("expected a dead thread, got {other:?}"),
        }
    }
}
