//! WebSocket connections (graphql-transport-ws on `/graphql/ws`): so many at once from one
//! address and in all, a `connection_init` within `ws_init_timeout_s` or the connection is
//! closed (4408, as the protocol says), and messages no larger than `max_body_bytes` (set on
//! the upgrade). The connection's session carries its client's address and caller, so a
//! mutation sent over it counts against the same limits as over HTTP, and its
//! [`WsSession`], through which [`super::graphql`] counts its operations.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::Data;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};

use crate::rate_limit::group;

/// The WebSocket connections open, in all and per address group.
#[derive(Debug, Default)]
pub struct Connections {
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Why a connection was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This address has as many open as it may.
    Address,
    /// The hub has as many open as it may.
    Total,
}

/// A place among the open connections, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    connections: Arc<Connections>,
    address: IpAddr,
}

impl Connections {
    /// A place for a connection from `client`, within both caps.
    pub fn open(
        self: &Arc<Self>,
        client: IpAddr,
        per_address: usize,
        total: usize,
    ) -> Result<Slot, Refused> {
        let address = group(client);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.0 >= total {
            return Err(Refused::Total);
        }
        let mine = open.1.entry(address).or_default();
        if *mine >= per_address {
            return Err(Refused::Address);
        }
        *mine += 1;
        open.0 += 1;
        Ok(Slot {
            connections: self.clone(),
            address,
        })
    }

    /// Connections open now (tests, metrics).
    pub fn count(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.address);
            }
        }
    }
}

/// One connection's share of the limits: the operations it runs at once.
#[derive(Debug)]
pub struct WsSession {
    running: AtomicUsize,
    max: usize,
}

/// An operation running on a connection, counted until dropped.
#[derive(Debug)]
pub struct Running(Arc<WsSession>);

impl WsSession {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(WsSession {
            running: AtomicUsize::new(0),
            max,
        })
    }

    /// One more operation, if the connection runs fewer than its maximum.
    pub fn start(self: &Arc<Self>) -> Option<Running> {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Running(self.clone()))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves one connection: graphql-transport-ws over `socket`, with `data` as its session
/// (completed by `on_init` from the `connection_init` payload); closed with 4408 when no
/// `connection_init` came within `init_timeout`. `slot` is given back when it ends.
pub async fn serve<E, F, R>(
    socket: WebSocket,
    schema: E,
    protocol: GraphQLProtocol,
    data: Data,
    on_init: F,
    init_timeout: Duration,
    slot: Slot,
) where
    // Any executor (the API's schema): this module names no schema, which names it.
    E: async_graphql::Executor,
    F: FnOnce(serde_json::Value) -> R + Send + 'static,
    R: Future<Output = async_graphql::Result<Data>> + Send + 'static,
{
    let (mut sink, stream) = socket.split();
    // The protocol writes into a channel this loop forwards, so that the loop keeps the
    // socket and can close it itself when the client never initialises.
    let (tx, mut rx) = futures::channel::mpsc::channel::<Message>(16);
    let initialised = Arc::new(AtomicBool::new(false));
    let flag = initialised.clone();
    let graphql = GraphQLWebSocket::new_with_pair(tx, stream, schema, protocol)
        .with_data(data)
        .on_connection_init(move |payload| {
            let init = on_init(payload);
            async move {
                let data = init.await?;
                flag.store(true, Ordering::Release);
                Ok(data)
            }
        })
        .serve();
    tokio::pin!(graphql);
    let deadline = tokio::time::sleep(init_timeout);
    tokio::pin!(deadline);
    let (mut served, mut waiting) = (false, true);
    loop {
        tokio::select! {
            () = &mut graphql, if !served => served = true,
            message = rx.next() => match message {
                Some(m) => {
                    if sink.send(m).await.is_err() {
                        break;
                    }
                }
                // The protocol ended and all it said was sent.
                None => break,
            },
            () = &mut deadline, if waiting => {
                waiting = false;
                if !initialised.load(Ordering::Acquire) {
                    let close = CloseFrame {
                        code: 4408,
                        reason: "Connection initialisation timeout".into(),
                    };
                    let _ = sink.send(Message::Close(Some(close))).await;
                    break;
                }
            }
        }
    }
    drop(slot);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_per_address_group_and_in_all_and_given_back() {
        let c = Arc::new(Connections::default());
        let a: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:0:1::2".parse().unwrap();
        let b: IpAddr = "192.0.2.1".parse().unwrap();
        let first = c.open(a, 2, 3).unwrap();
        let _second = c.open(same_64, 2, 3).unwrap();
        assert_eq!(c.open(a, 2, 3).unwrap_err(), Refused::Address);
        let _third = c.open(b, 2, 3).unwrap();
        assert_eq!(
            c.open("192.0.2.2".parse().unwrap(), 2, 3).unwrap_err(),
            Refused::Total
        );
        drop(first);
        assert_eq!(c.count(), 2);
        c.open(a, 2, 3).expect("a place given back");
    }

    #[test]
    fn a_session_runs_so_many_operations_at_once() {
        let s = WsSession::new(2);
        let one = s.start().unwrap();
        let _two = s.start().unwrap();
        assert!(s.start().is_none());
        drop(one);
        assert!(s.start().is_some());
    }
}
