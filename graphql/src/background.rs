//! The API's background tasks: the citizens' view replay, the alerts feed, contact
//! retention, the open-data publisher, the closing of emptied bins' reports, the
//! e-mails to reporters, the sensors' health for the metrics, the partners' alerts
//! pushed to them and the uplinks of an MQTT broker.
//!
//! Each runs in the caller's `JoinSet`, stops when the shutdown token is cancelled, and is
//! awaited by the binary (one shutdown tree). A task that fails (the broker unreachable at
//! start, a lost connection) starts again after a back-off that doubles up to 30 s, instead
//! of leaving the replica without a view or a feed until the next restart; readiness says
//! "not ready" meanwhile, since the view or the feed is not marked ready.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use vallee_schemas::citizen::{BIN_SERVICES, ReportStatus};
use vallee_schemas::contract::ALERTS_TOPIC;

use crate::schema::sensors::Alert;
use crate::{ApiState, Result, alerts_feed, citizen};

/// The first wait after a failure, doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Starts every background task of the API in `tasks`.
pub fn start(
    state: &Arc<ApiState>,
    citizens: Arc<citizen::CitizenHub>,
    alerts: broadcast::Sender<Alert>,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    tasks.spawn(retrying(
        "citizen view replay",
        shutdown.child_token(),
        move |token| citizens.clone().replay(token),
    ));
    let (brokers, ready) = (
        state.options.kafka.brokers.clone(),
        state.alerts_ready.clone(),
    );
    tasks.spawn(retrying(
        "alerts feed",
        shutdown.child_token(),
        move |token| {
            alerts_feed::run(
                brokers.clone(),
                ALERTS_TOPIC.into(),
                alerts.clone(),
                ready.clone(),
                token,
            )
        },
    ));
    tasks.spawn(contact_retention(state.clone(), shutdown.child_token()));
    tasks.spawn(publisher(state.clone(), shutdown.child_token()));
    tasks.spawn(emptied_bins(state.clone(), shutdown.child_token()));
    tasks.spawn(crate::notify::run(state.clone(), shutdown.child_token()));
    tasks.spawn(sensor_health(state.clone(), shutdown.child_token()));
    if state.photos.is_some() {
        tasks.spawn(photo_sweep(state.clone(), shutdown.child_token()));
    }
    if !state.options.gateways.is_empty() {
        let door = state.field_door.clone();
        tasks.spawn(retrying(
            "field doors' memory",
            shutdown.child_token(),
            move |token| door.clone().remember_sent(token),
        ));
    }
    if !state.options.mqtt.url.is_empty() {
        let (mqtt, connected) = (state.clone(), state.mqtt_connected.clone());
        tasks.spawn(retrying(
            "MQTT uplinks",
            shutdown.child_token(),
            move |token| crate::mqtt::run(mqtt.clone(), connected.clone(), token),
        ));
    }
    let pushing = state.clone();
    tasks.spawn(retrying(
        "partners' alerts",
        shutdown.child_token(),
        move |token| crate::partner_alerts::run(pushing.clone(), token),
    ));
}

/// Checks every sensor's health each publish interval, for the metrics, and records the
/// judgements in `device_health` every `record_every_s`.
async fn sensor_health(state: Arc<ApiState>, shutdown: CancellationToken) {
    // The last check this replica found recorded: the table's log is read once a check.
    let mut recorded = None;
    loop {
        let register = {
            let view = state.citizens.view.read().expect("view lock");
            crate::sensors::health::registered(&view, &state.options.devices)
        };
        let now = chrono::Utc::now();
        let o = &state.options.sensor_health;
        match state.sensors.sensor_health(now, None, o, &register).await {
            Ok(all) => {
                crate::sensors::health::count(&all);
                // The register is whole once the view caught up: before, a registered
                // device could be missing from a recorded check.
                let check = crate::sensors::health::check_number(now, o.record_every);
                if state.citizens.is_ready() && recorded != Some(check) {
                    match crate::sensors::health::record(
                        state.sensors.lake(),
                        &all,
                        now,
                        o.record_every,
                    )
                    .await
                    {
                        Ok(0) => recorded = Some(check),
                        Ok(rows) => {
                            recorded = Some(check);
                            tracing::info!(rows, "device health recorded");
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "device health: cannot record the check")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "sensor health: cannot read the lake"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(state.options.publish_interval.max(Duration::from_secs(10))) => {}
        }
    }
}

/// Deletes, every hour, the photos no report joined within a day and those of reports
/// whose texts were erased; only once the view has caught up (before, a photo of a report
/// not replayed yet would look unclaimed).
async fn photo_sweep(state: Arc<ApiState>, shutdown: CancellationToken) {
    let mut wait = Duration::from_secs(10);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if !state.citizens.is_ready() {
            continue;
        }
        let Some(store) = state.photos.clone() else {
            return;
        };
        let (named, erased) = state
            .citizens
            .view
            .read()
            .expect("view lock")
            .photos_named();
        match store.sweep(&named, &erased).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "photos deleted (unclaimed or erased)"),
            Err(e) => tracing::warn!(error = %e, "photos: the sweep failed"),
        }
        wait = Duration::from_secs(3600);
    }
}

/// Closes, every publish interval, the open waste reports whose bin was emptied since
/// they were filed (its sensor saw the level fall).
async fn emptied_bins(state: Arc<ApiState>, shutdown: CancellationToken) {
    loop {
        if state.citizens.is_ready() {
            let open: Vec<(String, String, chrono::DateTime<chrono::Utc>)> = {
                let view = state.citizens.view.read().expect("view lock");
                view.reports
                    .values()
                    .filter(|r| r.status == ReportStatus::Open)
                    .filter(|r| BIN_SERVICES.contains(&r.submitted.service_code.as_str()))
                    .filter_map(|r| {
                        let bin = r.bin.clone()?;
                        Some((r.submitted.report_id.clone(), bin, r.requested))
                    })
                    .collect()
            };
            for (report, bin, since) in open {
                match state.sensors.emptied_since(&bin, since).await {
                    Ok(Some(at)) => {
                        match state
                            .commands
                            .close_emptied_bin_report(&report, &bin, at)
                            .await
                        {
                            Ok(()) => {
                                tracing::info!(report, bin, %at, "report closed: its bin was emptied")
                            }
                            Err(e) => {
                                tracing::warn!(report, bin, error = %e, "closing an emptied bin's report failed")
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(bin, error = %e, "reading a bin's levels failed"),
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(state.options.publish_interval) => {}
        }
    }
}

/// Runs `task` until it returns `Ok` (it stopped at shutdown) or shutdown; after an error,
/// waits a back-off and runs it again.
async fn retrying<F, Fut>(name: &'static str, shutdown: CancellationToken, mut task: F)
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut backoff = FIRST_BACKOFF;
    while !shutdown.is_cancelled() {
        match task(shutdown.clone()).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(task = name, error = %e, retry_in = ?backoff, "background task failed; starting it again");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The privacy rule of `private/`: contacts go once their retention is over (hourly once
/// the view is rebuilt, every 5 s until then).
async fn contact_retention(state: Arc<ApiState>, shutdown: CancellationToken) {
    loop {
        let s = state.clone();
        if s.citizens.is_ready() {
            let done = tokio::task::spawn_blocking(move || {
                citizen::retention::enforce(
                    &s.contacts,
                    &s.citizens.view,
                    chrono::Utc::now(),
                    s.options.contact_retention,
                )
            })
            .await;
            match done {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(erased = n, "contacts past their retention erased"),
                Ok(Err(e)) => tracing::warn!(error = %e, "contact retention failed"),
                Err(e) => tracing::warn!(error = %e, "contact retention task failed"),
            }
        }
        let wait = if state.citizens.is_ready() { 3600 } else { 5 };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
        }
    }
}

/// Rewrites the public and research tables whose sources moved, every publish interval.
async fn publisher(state: Arc<ApiState>, shutdown: CancellationToken) {
    let publishers = [state.public.clone(), state.research.clone()];
    loop {
        for publisher in &publishers {
            let audience = publisher.audience();
            match publisher.publish().await {
                Ok(done) if !done.is_empty() => {
                    tracing::info!(?done, ?audience, "published tables updated")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, ?audience, "publishing tables failed"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(state.options.publish_interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_failing_task_starts_again_after_a_doubling_wait_until_it_succeeds() {
        let calls = Arc::new(AtomicU32::new(0));
        let counted = calls.clone();
        let started = tokio::time::Instant::now();
        retrying("test", CancellationToken::new(), move |_| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 3 {
                    Err(crate::Error::Internal("broker unreachable".into()))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // 1 s + 2 s + 4 s of back-off, in paused time.
        assert_eq!(started.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_the_retries() {
        let token = CancellationToken::new();
        let stop = token.clone();
        let calls = Arc::new(AtomicU32::new(0));
        let counted = calls.clone();
        let task = tokio::spawn(retrying("test", token, move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Err(crate::Error::Internal("down".into())) }
        }));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.cancel();
        task.await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "at 0 s and 1 s");
    }
}
