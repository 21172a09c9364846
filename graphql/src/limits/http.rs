//! The middleware every HTTP route of the API passes through: it resolves the client's
//! address once (the peer, or what its trusted proxies say: [`super::client`]) and puts it
//! where every handler reads it (`ConnectInfo`, [`ClientAddr`]), counts the request against
//! its address (`requests_per_minute_per_address`; the probes and `/metrics` are exempt),
//! refuses an address that failed to authenticate too often this minute (any door's 401
//! counts: a new door that refuses a bad token is covered without a line of its own), and
//! makes open-data requests, which read the lake, wait their turn at the lake gate.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Guards;
use crate::rate_limit::address_key;
use crate::schema::codes::{ClientAddr, Code};

/// Routes no limit applies to: the orchestrator's probes and the metrics scrape.
const EXEMPT: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Routes whose handlers read the lake themselves (the others read it through the sensor
/// reader, which takes its own turn).
const LAKE_PREFIXES: [&str; 1] = ["/opendata/"];

/// The guard of every request (`axum::middleware::from_fn_with_state`).
pub async fn guard(
    State(guards): State<Arc<Guards>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Some(peer) = peer {
        let client = guards.proxies.client(peer.ip(), request.headers());
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(SocketAddr::new(client, peer.port())));
        extensions.insert(ClientAddr(client));
        if !EXEMPT.contains(&path.as_str()) {
            let failures = guards.limits.failed_auth_per_minute_per_address;
            if let Some(wait) = guards
                .failed_auth
                .exhausted(&address_key("auth", client), failures)
            {
                return refuse(
                    &path,
                    StatusCode::TOO_MANY_REQUESTS,
                    Some(wait),
                    &format!(
                        "too many failed authentications from this address: retry in {wait} s"
                    ),
                );
            }
            let limit = guards.limits.requests_per_minute_per_address;
            if let Err(wait) = guards.requests.check(&address_key("r", client), limit) {
                return refuse(
                    &path,
                    StatusCode::TOO_MANY_REQUESTS,
                    Some(wait),
                    &format!("too many requests: retry in {wait} s"),
                );
            }
        }
    }
    if LAKE_PREFIXES.iter().any(|p| path.starts_with(p)) {
        let Ok(_turn) = guards.lake.enter().await else {
            return refuse(
                &path,
                StatusCode::SERVICE_UNAVAILABLE,
                Some(1),
                "the hub is busy (too many lake queries at once): retry in 1 s",
            );
        };
        return counted(&guards, client_of(&request), next.run(request).await);
    }
    let client = client_of(&request);
    counted(&guards, client, next.run(request).await)
}

fn client_of(request: &Request) -> Option<std::net::IpAddr> {
    request.extensions().get::<ClientAddr>().map(|c| c.0)
}

/// Counts a refused credential against its address.
fn counted(guards: &Guards, client: Option<std::net::IpAddr>, response: Response) -> Response {
    if response.status() == StatusCode::UNAUTHORIZED
        && let Some(client) = client
    {
        failed_authentication(guards, client);
    }
    response
}

/// Records one failed authentication of `client` (also called by the WebSocket's init).
pub fn failed_authentication(guards: &Guards, client: std::net::IpAddr) {
    let _ = guards
        .failed_auth
        .check(&address_key("auth", client), u32::MAX);
    tracing::info!(%client, "failed authentication");
}

/// A refusal in the shape the route's clients read: GraphQL errors on `/graphql…`,
/// `{"error": …}` elsewhere; with `Retry-After` when there is a time to wait.
fn refuse(path: &str, status: StatusCode, retry_after: Option<u64>, message: &str) -> Response {
    let body = if path.starts_with("/graphql") {
        let mut extensions = json!({"code": Code::RateLimited.as_str()});
        if let Some(wait) = retry_after {
            extensions["retryAfter"] = json!(wait);
        }
        json!({"errors": [{"message": message, "extensions": extensions}]})
    } else {
        json!({"error": message})
    };
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(wait) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
    response
}
