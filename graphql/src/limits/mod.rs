//! Request limits, enforced once for every door: whatever a request's shape and whichever
//! door it comes through, it meets the same limits here, so a new door cannot forget them.
//!
//! ```text
//!  every HTTP request ──► http::guard ── client address (trusted proxies), per-address
//!   (GraphQL, WebSocket       │           request rate and failed authentications (any
//!                             │           401), lake turn for /opendata
//!    upgrade, Open311,        ▼           (body size: the router's RequestBodyLimitLayer)
//!    downloads, feeds,     handler
//!    /sql, dashboard)         │
//!                             ├─ /graphql/ws ──► ws::serve ── connections per address and
//!                             │                   │            in all, connection_init
//!                             │                   │            timeout, message size
//!                             ▼                   ▼
//!        every GraphQL operation ──► graphql::Shape (an extension of the one schema):
//!          (HTTP or WebSocket)         aliases and fields (fragments expanded), depth and
//!                                      complexity (a lake field costs LAKE_QUERY_COST),
//!                                      answer size, error codes; over WebSocket also the
//!                                      request rate and operations per connection
//!        every lake read ──────────► lake::LakeReads: a snapshot refreshed apart from the
//!          (sensors, feeds)             writers, LakeGate: so many queries at once
//!        every write ──────────────► commands::Commands (mutations per address and token)
//!        POST /sql ────────────────► research: memory pool, queries per researcher
//! ```
//!
//! # Layout
//! - [`client`] — the client's address, from the peer or its trusted proxies.
//! - [`http`] — the middleware every HTTP route passes through.
//! - [`graphql`] — the schema extension every operation passes through.
//! - [`ws`] — WebSocket connections: caps, init timeout, the session of a connection.
//! - [`lake`] — the lake snapshot the API reads and the gate of concurrent lake queries.

pub mod client;
pub mod graphql;
pub mod http;
pub mod lake;
pub mod ws;

use std::sync::Arc;

use crate::options::Limits;
use crate::rate_limit::RateLimiter;

/// What a field that queries the lake adds to an operation's complexity: a lake query
/// costs milliseconds where a field of the view costs microseconds, so an operation may
/// ask for at most `max_complexity / LAKE_QUERY_COST` of them (19 with the defaults; the
/// dashboard asks for 7).
pub const LAKE_QUERY_COST: usize = 100;

/// The limits' shared state: one per router, shared by its doors.
#[derive(Debug)]
pub struct Guards {
    pub limits: Limits,
    pub proxies: client::TrustedProxies,
    /// Requests per client address (HTTP requests, WebSocket operations).
    pub requests: RateLimiter,
    /// Failed authentications per client address.
    pub failed_auth: RateLimiter,
    pub connections: Arc<ws::Connections>,
    /// The turn of lake reads (shared with the sensor reader).
    pub lake: Arc<lake::LakeGate>,
}

impl Guards {
    /// The guards of `limits`, lake reads taking their turn at `lake`. The options are
    /// validated when read ([`Limits::validate`]); were a trusted proxy not a block here,
    /// no proxy would be trusted (the safe side: the client is the peer).
    pub fn new(limits: &Limits, lake: Arc<lake::LakeGate>) -> Self {
        let proxies = client::TrustedProxies::parse(&limits.trusted_proxies).unwrap_or_else(|e| {
            tracing::error!(error = %e, "no proxy trusted");
            client::TrustedProxies::default()
        });
        Guards {
            proxies,
            requests: RateLimiter::with_max_keys(limits.max_rate_limit_keys),
            failed_auth: RateLimiter::with_max_keys(limits.max_rate_limit_keys),
            connections: Arc::new(ws::Connections::default()),
            lake,
            limits: limits.clone(),
        }
    }
}
