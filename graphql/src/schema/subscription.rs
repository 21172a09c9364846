//! Subscriptions (graphql-transport-ws on `/graphql/ws`).

use async_graphql::{Context, ID, Subscription as SubscriptionDerive};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;

use super::state;
use super::types::{Alert, AlertKind, Report};
use crate::citizen::view::Changed;

/// The root of subscriptions.
#[derive(Debug, Default)]
pub struct Subscription;

/// A broadcast receiver as a stream; a lagging subscriber skips what it missed rather
/// than holding the sender back.
fn receive<T: Clone + Send + 'static>(rx: broadcast::Receiver<T>) -> impl Stream<Item = T> {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(v) => return Some((v, rx)),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "subscriber too slow: skipped messages");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

#[SubscriptionDerive]
impl Subscription {
    /// Alerts as they open or clear, from the stage's alerts topic (at least once: dedupe
    /// on `alertId` + `state`).
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        kinds: Option<Vec<AlertKind>>,
        commune_code: Option<String>,
    ) -> impl Stream<Item = Alert> + use<> {
        let rx = state(ctx).alerts.subscribe();
        receive(rx).filter(move |a: &Alert| {
            let keep = kinds.as_ref().is_none_or(|k| k.contains(&a.kind))
                && commune_code
                    .as_ref()
                    .is_none_or(|c| a.commune_code.as_ref() == Some(c));
            async move { keep }
        })
    }

    /// A report each time it changes (status, followers).
    async fn report_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> impl Stream<Item = Report> + use<> {
        let state = state(ctx).clone();
        let rx = state.citizens.changes.subscribe();
        let id = id.to_string();
        receive(rx).filter_map(move |c| {
            let report = match c {
                Changed::Report(r) if r == id => state
                    .citizens
                    .view
                    .read()
                    .expect("view lock")
                    .reports
                    .get(&r)
                    .cloned()
                    .map(Report),
                _ => None,
            };
            async move { report }
        })
    }
}
