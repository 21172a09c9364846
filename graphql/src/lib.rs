//! The hub's HTTP surface, on one address (`--http-addr`).
//!
//! Today: the operations endpoints (`/healthz`). The GraphQL API (async-graphql on axum:
//! reports, idea box, sensor results, subscriptions) grows here; the binary only mounts
//! [`router`] and calls [`serve`].
//!
//! # Layout
//! - [`router`] — the routes and their handlers.
//! - [`serve`] — binds, serves, and drains on shutdown.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

/// Errors of the HTTP surface.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address could not be bound (in use, or not ours).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The server failed while serving.
    #[error("http server: {0}")]
    Serve(#[source] std::io::Error),
}

/// Result alias of the HTTP crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The hub's routes. `/healthz` answers 200 while the process serves requests.
pub fn router() -> Router {
    Router::new().route("/healthz", get(|| async { "ok\n" }))
}

/// A bound listener, so the caller learns the real address before serving (port 0).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Serves `router` until `shutdown` is cancelled, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(Error::Serve)
}
