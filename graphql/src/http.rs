//! Routes: GraphQL over HTTP and WebSocket (one schema, the same limits), GraphiQL with its
//! assets, Open311, open data, research, feeds, health.

use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::parser::types::OperationType;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;

use crate::ApiState;
use crate::limits::Guards;
use crate::limits::ws::{self, Refused, WsSession};
use crate::ops::Ops;
use crate::schema::{self, ApiSchema, ClientAddr, Code};

/// The one schema, and what its routes share.
#[derive(Clone)]
pub struct Schemas {
    state: Arc<ApiState>,
    ops: Arc<Ops>,
    schema: ApiSchema,
    guards: Arc<Guards>,
}

/// graphql-transport-ws, within the WebSocket limits ([`crate::limits::ws`]). The
/// connection's session holds its client's address and caller, so mutations sent over it
/// count against the same limits as over HTTP: the caller is named by the upgrade's
/// `Authorization` header or, as browsers cannot set one, by `Authorization` in the
/// `connection_init` payload. A `{"token": …}` in that payload names a vineyard partner
/// (for `partnerFeed`); an unknown token is refused.
async fn websocket(
    State(schemas): State<Schemas>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let limits = &schemas.guards.limits;
    let client = addr.ip();
    let slot = match schemas.guards.connections.open(
        client,
        limits.max_ws_connections_per_address,
        limits.max_ws_connections,
    ) {
        Ok(slot) => slot,
        Err(refused) => {
            let (status, message) = match refused {
                Refused::Address => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many WebSocket connections from this address",
                ),
                Refused::Total => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the hub has as many WebSocket connections as it serves",
                ),
            };
            return error_response(status, Code::RateLimited, message);
        }
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let state = schemas.state.clone();
    let guards = schemas.guards.clone();
    let mut data = async_graphql::Data::default();
    data.insert(ClientAddr(client));
    data.insert(WsSession::new(limits.max_subscriptions_per_connection));
    let on_init = move |payload: serde_json::Value| async move {
        let mut data = async_graphql::Data::default();
        let from_payload = ["Authorization", "authorization"]
            .iter()
            .find_map(|k| payload.get(*k).and_then(|v| v.as_str()));
        let caller = state
            .auth
            .caller(from_payload.or(authorization.as_deref()))
            .map_err(|e| {
                crate::limits::http::failed_authentication(&guards, client);
                async_graphql::Error::new(e.to_string())
            })?;
        data.insert(caller);
        if let Some(token) = payload.get("token").and_then(|t| t.as_str()) {
            let partner = crate::feeds::partner_of_token(&state, token).ok_or_else(|| {
                crate::limits::http::failed_authentication(&guards, client);
                async_graphql::Error::new("unknown token")
            })?;
            data.insert(crate::feeds::FeedPartner(partner.clone()));
        }
        Ok::<_, async_graphql::Error>(data)
    };
    let (schema, init_timeout) = (schemas.schema.clone(), limits.ws_init_timeout);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(limits.max_body_bytes)
        .max_frame_size(limits.max_body_bytes)
        .on_upgrade(move |socket| {
            ws::serve(socket, schema, protocol, data, on_init, init_timeout, slot)
        })
        .into_response()
}

/// The operations routes every process serves: `/healthz`, `/readyz`, `/metrics`.
pub fn ops_router(ops: Arc<Ops>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/readyz", get(ops_readyz))
        .with_state(ops)
}

async fn metrics(State(ops): State<Arc<Ops>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        ops.render(),
    )
        .into_response()
}

async fn ops_readyz(State(ops): State<Arc<Ops>>) -> Response {
    readiness(ops.checks(), ops.stalled(), ops.lake_refusing())
}

/// 200 when every check holds, else 503; the partitions that do not flow are named.
fn readiness(
    checks: std::collections::BTreeMap<&'static str, bool>,
    stalled: Vec<serde_json::Value>,
    lake_refusing: Vec<serde_json::Value>,
) -> Response {
    let ready = checks.values().all(|ok| *ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({
            "ready": ready,
            "checks": checks,
            "stalled": stalled,
            "lakeRefusing": lake_refusing,
        })),
    )
        .into_response()
}

/// The hub's routes with the API: GraphQL, GraphiQL, Open311, the dashboard, operations;
/// every one behind the limits' middleware ([`crate::limits::http`]) and the body limit.
pub fn router(state: Arc<ApiState>, ops: Arc<Ops>) -> Router {
    let guards = Arc::new(Guards::new(
        &state.options.limits,
        state.sensors.gate().clone(),
    ));
    let schemas = Schemas {
        schema: schema::build_with(state.clone(), guards.clone()),
        state: state.clone(),
        ops: ops.clone(),
        guards: guards.clone(),
    };
    let api = Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(websocket))
        .route("/graphql/assets/{file}", get(asset))
        .route("/readyz", get(readyz))
        .with_state(schemas)
        .merge(crate::open311::router(state.clone()))
        .merge(crate::dashboard::router())
        .merge(crate::pages::router())
        .merge(crate::notify::router(state.clone()))
        .merge(crate::rounds::export::router(state.clone()))
        .merge(crate::open_data::router(
            state.open_data.clone(),
            state.options.publisher_siret.clone(),
        ))
        .route(
            "/sql",
            axum::routing::post(crate::research::sql).with_state(crate::research::ResearchDoor {
                state: state.clone(),
                research: Arc::new(crate::research::Research::new(&state.options)),
            }),
        )
        .route(
            "/feeds/vineyard",
            get(crate::feeds::vineyard).with_state(state.clone()),
        )
        .route(
            "/ingest/v1/ttn",
            axum::routing::post(crate::lorawan::ttn).with_state(state.field_door.clone()),
        )
        .route(
            "/ingest/v1/chirpstack",
            axum::routing::post(crate::lorawan::chirpstack).with_state(state.field_door.clone()),
        )
        .route(
            "/ingest/v1/{stream}",
            axum::routing::post(crate::field_ingest::post).with_state(state.field_door.clone()),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics).with_state(ops))
        .layer(RequestBodyLimitLayer::new(
            state.options.limits.max_body_bytes,
        ))
        // Photos have a body limit of their own, and the same guard as every door.
        .merge(
            crate::media::router(state.clone()).layer(RequestBodyLimitLayer::new(
                state.options.limits.max_photo_bytes,
            )),
        )
        .layer(axum::middleware::from_fn_with_state(
            guards,
            crate::limits::http::guard,
        ));
    match cors(&state.options.cors_origins) {
        Some(layer) => api.layer(layer),
        None => api,
    }
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]),
    )
}

/// The kind of a request's operation, for the metrics.
fn kind(query: &str) -> &'static str {
    let Ok(doc) = async_graphql::parser::parse_query(query) else {
        return "query";
    };
    match doc.operations.iter().next().map(|(_, op)| op.node.ty) {
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
        _ => "query",
    }
}

fn error_response(status: StatusCode, code: Code, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({
            "errors": [{"message": message, "extensions": {"code": code.as_str()}}]
        })),
    )
        .into_response()
}

/// `POST /graphql`.
async fn graphql(
    State(schemas): State<Schemas>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (caller, partner) = match crate::audience::identify(&schemas.state, authorization) {
        Ok(identified) => identified,
        Err(e) => {
            return error_response(
                StatusCode::UNAUTHORIZED,
                Code::Unauthenticated,
                &e.to_string(),
            );
        }
    };
    let mut request = request
        .into_inner()
        .data(caller)
        .data(ClientAddr(addr.ip()));
    if let Some(partner) = partner {
        request = request.data(partner);
    }
    let kind = kind(&request.query);
    let started = std::time::Instant::now();
    // Limits, answer size and error codes: the schema's extension, as over WebSocket.
    let response = schemas.schema.execute(request).await;
    schemas
        .ops
        .graphql
        .record(kind, response.errors.is_empty(), started.elapsed());
    GraphQLResponse::from(response).into_response()
}

/// `GET /readyz`: 200 once the broker answered, the lake is writable, ingest's lag is
/// bounded (where ingest runs), the citizens' view is rebuilt, the alerts feed follows
/// its topic and the MQTT broker (if one is named) is reached; 503 with the failing
/// checks before.
async fn readyz(State(schemas): State<Schemas>) -> Response {
    let mut checks = schemas.ops.checks();
    checks.insert("citizenView", schemas.state.citizens.is_ready());
    checks.insert(
        "alertsFeed",
        schemas
            .state
            .alerts_ready
            .load(std::sync::atomic::Ordering::Acquire),
    );
    if !schemas.state.options.gateways.is_empty() {
        checks.insert("fieldDoors", schemas.state.field_door.remembers());
    }
    if !schemas.state.options.mqtt.url.is_empty() {
        checks.insert(
            "mqtt",
            (schemas.state.mqtt_connected).load(std::sync::atomic::Ordering::Acquire),
        );
    }
    readiness(checks, schemas.ops.stalled(), schemas.ops.lake_refusing())
}

/// `GET /graphql`: GraphiQL, with its assets served by the hub (works offline).
async fn graphiql() -> Html<&'static str> {
    Html(GRAPHIQL_PAGE)
}

const GRAPHIQL_PAGE: &str = r#"<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<title>Smart Vallée · GraphiQL</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/graphql/assets/graphiql.min.css">
<style>html, body, #graphiql { height: 100%; margin: 0; }</style>
</head>
<body>
<div id="graphiql">Chargement de GraphiQL…</div>
<script src="/graphql/assets/react.production.min.js"></script>
<script src="/graphql/assets/react-dom.production.min.js"></script>
<script src="/graphql/assets/graphiql.min.js"></script>
<script>
  const fetcher = GraphiQL.createFetcher({ url: '/graphql' });
  ReactDOM.render(
    React.createElement(GraphiQL, {
      fetcher,
      headerEditorEnabled: true,
      defaultQuery: '# Smart Vallée — essayez :\n{\n  services { serviceCode serviceName competence }\n  fillAlerts(open: true) { alertId kind entityId communeCode fillingLevel }\n}\n',
    }),
    document.getElementById('graphiql'),
  );
</script>
</body>
</html>
"#;

/// GraphiQL 1.4.7 and React 17 (MIT), committed gzipped under `graphql/assets/graphiql`.
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (bytes, kind): (&[u8], &str) = match file.as_str() {
        "graphiql.min.js" => (
            include_bytes!("../assets/graphiql/graphiql.min.js.gz"),
            "text/javascript",
        ),
        "graphiql.min.css" => (
            include_bytes!("../assets/graphiql/graphiql.min.css.gz"),
            "text/css",
        ),
        "react.production.min.js" => (
            include_bytes!("../assets/graphiql/react.production.min.js.gz"),
            "text/javascript",
        ),
        "react-dom.production.min.js" => (
            include_bytes!("../assets/graphiql/react-dom.production.min.js.gz"),
            "text/javascript",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CONTENT_ENCODING, "gzip"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operation_kind_is_read_from_the_query() {
        assert_eq!(kind("mutation { issueCitizenToken { token } }"), "mutation");
        assert_eq!(kind("subscription { alerts { alertId } }"), "subscription");
        assert_eq!(kind("{ services { serviceCode } }"), "query");
        assert_eq!(kind("not graphql"), "query");
    }
}
