//! Routes: GraphQL over HTTP and WebSocket, GraphiQL with its assets, Open311, health.

use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::ServerError;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::parser::types::{OperationType, Selection};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;

use crate::ApiState;
use crate::ops::Ops;
use crate::schema::{self, ApiSchema, ClientAddr, Code};

/// Both schemas: with limits (every ordinary request) and without (introspection only).
#[derive(Clone)]
pub struct Schemas {
    state: Arc<ApiState>,
    ops: Arc<Ops>,
    limited: ApiSchema,
    introspection: ApiSchema,
}

/// graphql-transport-ws. A `{"token": …}` in the `connection_init` payload names a vineyard
/// partner (for `partnerFeed`; an unknown token is refused); the other subscriptions are
/// public and need none.
async fn websocket(
    State(schemas): State<Schemas>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let schema = schemas.limited.clone();
    let state = schemas.state.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| {
            GraphQLWebSocket::new(stream, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let mut data = async_graphql::Data::default();
                    if let Some(token) = payload.get("token").and_then(|t| t.as_str()) {
                        let partner = crate::feeds::partner_of_token(&state, token)
                            .ok_or_else(|| async_graphql::Error::new("unknown token"))?;
                        data.insert(crate::feeds::FeedPartner(partner.clone()));
                    }
                    Ok(data)
                })
                .serve()
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
    readiness(ops.checks(), ops.stalled())
}

/// 200 when every check holds, else 503; the partitions that do not flow are named.
fn readiness(
    checks: std::collections::BTreeMap<&'static str, bool>,
    stalled: Vec<serde_json::Value>,
) -> Response {
    let ready = checks.values().all(|ok| *ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({"ready": ready, "checks": checks, "stalled": stalled})),
    )
        .into_response()
}

/// The hub's routes with the API: GraphQL, GraphiQL, Open311, the dashboard, operations.
pub fn router(state: Arc<ApiState>, ops: Arc<Ops>) -> Router {
    let schemas = Schemas {
        limited: schema::build(state.clone(), true),
        introspection: schema::build(state.clone(), false),
        state: state.clone(),
        ops: ops.clone(),
    };
    let api = Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(websocket))
        .route("/graphql/assets/{file}", get(asset))
        .route("/readyz", get(readyz))
        .with_state(schemas)
        .merge(crate::open311::router(state.clone()))
        .merge(crate::dashboard::router())
        .merge(crate::open_data::router(
            state.open_data.clone(),
            state.options.publisher_siret.clone(),
        ))
        .route(
            "/sql",
            axum::routing::post(crate::research::sql).with_state(state.clone()),
        )
        .route(
            "/feeds/vineyard",
            get(crate::feeds::vineyard).with_state(state.clone()),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics).with_state(ops))
        .layer(RequestBodyLimitLayer::new(
            state.options.limits.max_body_bytes,
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

/// Whether a query only asks for the schema (`__schema`, `__type`), which GraphiQL sends
/// and which is exempt from the complexity and depth limits; and its operation kind.
fn classify(query: &str) -> (bool, &'static str) {
    let Ok(doc) = async_graphql::parser::parse_query(query) else {
        return (false, "query");
    };
    let kind = match doc.operations.iter().next().map(|(_, op)| op.node.ty) {
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
        _ => "query",
    };
    let introspection = doc.operations.iter().all(|(_, op)| {
        op.node.ty == OperationType::Query
            && op.node.selection_set.node.items.iter().all(
                |s| matches!(&s.node, Selection::Field(f) if f.node.name.node.starts_with("__")),
            )
    });
    (introspection, kind)
}

/// Every error answered carries `extensions.code`: request-level errors (syntax,
/// validation, limits) are the client's; field errors without a code are ours.
fn add_codes(errors: &mut [ServerError]) {
    for e in errors {
        let has_code = e
            .extensions
            .as_ref()
            .is_some_and(|x| x.get("code").is_some());
        if has_code {
            continue;
        }
        let code = if e.path.is_empty() {
            Code::BadUserInput
        } else {
            tracing::error!(error = %e.message, path = ?e.path, "request failed");
            Code::Internal
        };
        e.extensions
            .get_or_insert_with(Default::default)
            .set("code", code.as_str());
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
    let (introspection, kind) = classify(&request.query);
    let schema = if introspection {
        &schemas.introspection
    } else {
        &schemas.limited
    };
    let started = std::time::Instant::now();
    let mut response = schema.execute(request).await;
    schemas
        .ops
        .graphql
        .record(kind, response.errors.is_empty(), started.elapsed());
    add_codes(&mut response.errors);
    GraphQLResponse::from(response).into_response()
}

/// `GET /readyz`: 200 once the broker answered, the lake is writable, ingest's lag is
/// bounded (where ingest runs), the citizens' view is rebuilt and the alerts feed follows
/// its topic; 503 with the failing checks before.
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
    readiness(checks, schemas.ops.stalled())
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
    fn only_schema_queries_are_introspection() {
        let introspection = |q: &str| classify(q).0;
        assert!(introspection("{ __schema { types { name } } }"));
        assert!(introspection(
            "query IntrospectionQuery { __schema { queryType { name } } }"
        ));
        assert!(!introspection(
            "{ __schema { types { name } } services { serviceCode } }"
        ));
        assert!(!introspection("{ services { serviceCode } }"));
        assert!(!introspection("mutation { issueCitizenToken { token } }"));
        assert!(!introspection("not graphql"));
        assert_eq!(
            classify("mutation { issueCitizenToken { token } }").1,
            "mutation"
        );
    }
}
