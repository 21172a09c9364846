//! Subscriptions (graphql-transport-ws on `/graphql/ws`).

use async_graphql::{Context, ID, Subscription as SubscriptionDerive};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;

use std::collections::VecDeque;
use std::time::Duration;

use super::sensors::{Alert, AlertKind};
use super::types::{PartnerFeedItem, Report};
use super::{Code, error, state};
use crate::audience::Reader;
use crate::citizen::view::Changed;
use crate::feeds::{self, Cursor, FeedPartner};

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
    /// on `alertId` + `state`): bins' alerts, and vineyard alerts of the parcels the
    /// connection may see (a partner's token in `connection_init`: its own; everyone the
    /// parcels shared with the public) and of the stations.
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        kinds: Option<Vec<AlertKind>>,
        commune_code: Option<String>,
    ) -> impl Stream<Item = Alert> + use<> {
        let reader = Reader::of(ctx);
        let rx = state(ctx).alerts.subscribe();
        receive(rx).filter(move |a: &Alert| {
            let keep = reader.sees_alert(a.kind.into(), &a.entity_id)
                && kinds.as_ref().is_none_or(|k| k.contains(&a.kind))
                && commune_code
                    .as_ref()
                    .is_none_or(|c| a.commune_code.as_ref() == Some(c));
            async move { keep }
        })
    }

    /// A vineyard partner's rows as they land (its parcels' readings, the covering stations'
    /// readings and indicators, alerts on its parcels). The partner's token goes in the
    /// `connection_init` payload (`{"token": …}`). From `since` (a cursor of
    /// `GET /feeds/vineyard` or of an earlier item), else from now; each item carries the
    /// cursor to resume after it.
    async fn partner_feed(
        &self,
        ctx: &Context<'_>,
        since: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = PartnerFeedItem> + use<>> {
        let partner = ctx
            .data_opt::<FeedPartner>()
            .map(|p| p.0.clone())
            .ok_or_else(|| {
                error(
                    Code::Unauthenticated,
                    "partnerFeed needs a partner token in the connection_init payload",
                )
            })?;
        let state = state(ctx).clone();
        let cursor = match since {
            Some(s) => Cursor::decode(&s)
                .ok_or_else(|| error(Code::BadUserInput, "since is not a cursor of the feed"))?,
            None => {
                feeds::read(&state, &partner, &Cursor::default())
                    .await
                    .map_err(|e| error(Code::Internal, &e))?
                    .1
            }
        };
        let start = (state, partner, cursor, VecDeque::new());
        Ok(futures::stream::unfold(
            start,
            |(state, partner, mut cursor, mut queue)| async move {
                loop {
                    if let Some(item) = queue.pop_front() {
                        return Some((item, (state, partner, cursor, queue)));
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    match feeds::read(&state, &partner, &cursor).await {
                        Ok((rows, next)) => {
                            let at = next.encode();
                            queue.extend(rows.into_iter().map(|mut row| {
                                PartnerFeedItem {
                                    feed: row
                                        .remove("feed")
                                        .and_then(|f| f.as_str().map(str::to_string))
                                        .unwrap_or_default(),
                                    row: async_graphql::Json(row),
                                    cursor: at.clone(),
                                }
                            }));
                            cursor = next;
                        }
                        Err(e) => {
                            tracing::warn!(partner = partner.name, error = %e, "partner feed read failed")
                        }
                    }
                }
            },
        ))
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
