//! Open311 GeoReport v2 over the same reports, so existing Open311 apps work unchanged.
//!
//! - `GET  /open311/v2/services.json`
//! - `GET  /open311/v2/requests.json?service_code=&status=&start_date=&end_date=`
//! - `GET  /open311/v2/requests/{id}.json`
//! - `POST /open311/v2/requests.json` (form: service_code, lat, long, address_string,
//!   description, media_url, email, phone, first_name, last_name)
//!
//! A POST runs the GraphQL `submitReport` mutation, so both doors share one set of rules.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use vallee_schemas::citizen;

use crate::ApiState;
use crate::citizen::view::Report;
use crate::schema::{self, ClientAddr};

#[derive(Clone)]
struct Open311 {
    state: Arc<ApiState>,
    schema: schema::ApiSchema,
}

pub fn router(state: Arc<ApiState>) -> Router {
    let s = Open311 {
        schema: schema::build(state.clone(), true),
        state,
    };
    Router::new()
        .route("/open311/v2/services.json", get(services))
        .route("/open311/v2/requests.json", get(requests).post(create))
        .route("/open311/v2/requests/{file}", get(request))
        .with_state(s)
}

fn error(status: StatusCode, code: u16, description: &str) -> Response {
    (
        status,
        Json(json!([{"code": code, "description": description}])),
    )
        .into_response()
}

fn status_str(s: citizen::ReportStatus) -> &'static str {
    match s {
        citizen::ReportStatus::Open => "open",
        citizen::ReportStatus::Closed => "closed",
    }
}

fn as_open311(r: &Report) -> Value {
    let s = &r.submitted;
    json!({
        "service_request_id": s.report_id,
        "status": status_str(r.status),
        "status_notes": r.status_notes,
        "service_code": s.service_code,
        "service_name": citizen::service(&s.service_code).map(|x| x.name),
        "description": s.description,
        "agency_responsible": s.agency_responsible,
        "requested_datetime": r.requested.to_rfc3339(),
        "updated_datetime": r.updated.to_rfc3339(),
        "expected_datetime": s.expected_datetime.to_rfc3339(),
        "address": s.address_string,
        "lat": s.lat,
        "long": s.long,
        "media_url": s.media_url,
    })
}

async fn services() -> Json<Value> {
    Json(Value::Array(
        citizen::SERVICES
            .iter()
            .map(|s| {
                json!({
                    "service_code": s.code,
                    "service_name": s.name,
                    "description": s.name,
                    "metadata": false,
                    "type": "realtime",
                    "keywords": s.keywords.join(","),
                    "group": s.group,
                })
            })
            .collect(),
    ))
}

async fn requests(State(s): State<Open311>, Query(q): Query<HashMap<String, String>>) -> Response {
    let parse_time = |k: &str| -> Result<Option<DateTime<Utc>>, String> {
        q.get(k)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| format!("{k} is not an RFC 3339 time"))
            })
            .transpose()
    };
    let (start, end) = match (parse_time("start_date"), parse_time("end_date")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, 400, &e),
    };
    let ids: Option<Vec<&str>> = q.get("service_request_id").map(|v| v.split(',').collect());
    let codes: Option<Vec<&str>> = q.get("service_code").map(|v| v.split(',').collect());
    let status = q.get("status").map(String::as_str);
    let view = s.state.citizens.view.read().expect("view lock");
    let mut list: Vec<&Report> = view
        .reports
        .values()
        .filter(|r| {
            ids.as_ref()
                .is_none_or(|i| i.contains(&r.submitted.report_id.as_str()))
                && codes
                    .as_ref()
                    .is_none_or(|c| c.contains(&r.submitted.service_code.as_str()))
                && status.is_none_or(|st| st == status_str(r.status))
                && start.is_none_or(|t| r.requested >= t)
                && end.is_none_or(|t| r.requested <= t)
        })
        .collect();
    list.sort_by_key(|r| std::cmp::Reverse(r.requested));
    // GeoReport v2: at most 1000 requests, newest first, 90 days by default.
    if start.is_none() && ids.is_none() {
        let since = Utc::now() - chrono::Duration::days(90);
        list.retain(|r| r.requested >= since);
    }
    list.truncate(1000);
    Json(Value::Array(list.into_iter().map(as_open311).collect())).into_response()
}

async fn request(State(s): State<Open311>, Path(file): Path<String>) -> Response {
    let Some(id) = file.strip_suffix(".json") else {
        return error(
            StatusCode::NOT_FOUND,
            404,
            "only the .json format is served",
        );
    };
    let view = s.state.citizens.view.read().expect("view lock");
    match view.reports.get(id) {
        Some(r) => Json(json!([as_open311(r)])).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            404,
            &format!("no service request {id}"),
        ),
    }
}

async fn create(
    State(s): State<Open311>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let num = |k: &str| -> Result<Option<f64>, String> {
        f.get(k)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse::<f64>().map_err(|_| format!("{k} is not a number")))
            .transpose()
    };
    let (lat, long) = match (num("lat"), num("long")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, 400, &e),
    };
    let text = |k: &str| f.get(k).filter(|v| !v.is_empty()).cloned();
    let contact = json!({
        "email": text("email"), "phone": text("phone"),
        "firstName": text("first_name"), "lastName": text("last_name"),
    });
    let variables = json!({"input": {
        "serviceCode": text("service_code").unwrap_or_default(),
        "description": text("description").unwrap_or_default(),
        "lat": lat, "long": long,
        "addressString": text("address_string"),
        "mediaUrl": text("media_url"),
        "contact": contact,
    }});
    let request = async_graphql::Request::new(
        "mutation($input: SubmitReportInput!) { submitReport(input: $input) { report { id } } }",
    )
    .variables(async_graphql::Variables::from_json(variables))
    .data(crate::auth::Caller::Anonymous)
    .data(ClientAddr(addr.ip()));
    let response = s.schema.execute(request).await;
    if let Some(e) = response.errors.first() {
        let code = e
            .extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        let status = if code.contains("RATE_LIMITED") {
            StatusCode::TOO_MANY_REQUESTS
        } else if code.contains("INTERNAL") {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::BAD_REQUEST
        };
        return error(status, status.as_u16(), &e.message);
    }
    let data = response.data.into_json().unwrap_or_default();
    let id = data["submitReport"]["report"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (
        StatusCode::CREATED,
        Json(json!([{"service_request_id": id, "service_notice": "", "account_id": null}])),
    )
        .into_response()
}
