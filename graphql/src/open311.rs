//! Open311 GeoReport v2 over the same reports, so existing Open311 apps work unchanged.
//!
//! - `GET  /open311/v2/services.json`
//! - `GET  /open311/v2/requests.json?service_code=&status=&start_date=&end_date=`
//! - `GET  /open311/v2/requests/{id}.json`
//! - `POST /open311/v2/requests.json` (form: service_code, lat, long, address_string,
//!   description, media_url, email, phone, first_name, last_name)
//!
//! A POST sends the same [`Command::SubmitReport`] as GraphQL's `submitReport`, and the
//! GETs read the view through the same [`reads`](crate::citizen::reads) as GraphQL's
//! `reports` and `report`: both doors share one set of rules, the public projection
//! included (positions rounded, contacts masked in free text, no typed address) unless
//! the GET carries the token of staff whose scope covers the report.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use vallee_schemas::citizen;

use crate::ApiState;
use crate::auth::Caller;
use crate::citizen::contacts::Contact;
use crate::citizen::reads::{self, ReportQuery};
use crate::citizen::view::Report;
use crate::commands::{Applied, Command, CommandError, SubmitReport};

#[derive(Clone)]
struct Open311 {
    state: Arc<ApiState>,
}

pub fn router(state: Arc<ApiState>) -> Router {
    let s = Open311 { state };
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

/// A report as `caller` sees it (see the module docs). `media_url` is the link the reporter
/// gave, else the first of its photos the caller may see (accepted ones for the public),
/// under `base` (`[api.mail] public_url`, where residents reach the hub).
fn as_open311(r: &Report, caller: &Caller, base: &str) -> Value {
    let s = &r.submitted;
    let as_filed = r.as_filed_for(caller);
    let photo = (r.photos.iter())
        .find(|p| !r.erased && (as_filed || p.visible == Some(true)))
        .map(|p| format!("{}/media/photos/{}.jpg", base.trim_end_matches('/'), p.id));
    let (lat, long) = r.position_for(caller);
    json!({
        "service_request_id": s.report_id,
        "status": status_str(r.status),
        "status_notes": r.status_notes.as_deref().map(|n| reads::text(as_filed, n)),
        "service_code": s.service_code,
        "service_name": citizen::service(&s.service_code).map(|x| x.name),
        "description": reads::text(as_filed, &s.description),
        "agency_responsible": s.agency_responsible,
        "requested_datetime": r.requested.to_rfc3339(),
        "updated_datetime": r.updated.to_rfc3339(),
        "expected_datetime": s.expected_datetime.to_rfc3339(),
        "address": r.address_for(caller),
        "lat": lat,
        "long": long,
        "media_url": s.media_url.clone().or(photo),
    })
}

/// The caller of a GET: anonymous, or who its bearer token names (an unknown token is
/// refused, as on `/graphql`).
fn reader(s: &Open311, headers: &HeaderMap) -> Result<Caller, crate::auth::BadToken> {
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    s.state.auth.caller(authorization)
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

async fn requests(
    State(s): State<Open311>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let caller = match reader(&s, &headers) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::UNAUTHORIZED, 401, &e.to_string()),
    };
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
    let split = |k: &str| {
        q.get(k)
            .map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>())
    };
    let status = match q.get("status").map(String::as_str) {
        None => None,
        Some("open") => Some(citizen::ReportStatus::Open),
        Some("closed") => Some(citizen::ReportStatus::Closed),
        // No report has another status.
        Some(_) => return Json(Value::Array(Vec::new())).into_response(),
    };
    let query = ReportQuery {
        ids: split("service_request_id"),
        service_codes: split("service_code"),
        status,
        since: start,
        until: end,
        ..Default::default()
    };
    let mut list = s
        .state
        .citizens
        .view
        .read()
        .expect("view lock")
        .find_reports(&query);
    // GeoReport v2: at most 1000 requests, newest first, 90 days by default.
    if start.is_none() && query.ids.is_none() {
        let since = Utc::now() - chrono::Duration::days(90);
        list.retain(|r| r.requested >= since);
    }
    list.truncate(1000);
    let base = &s.state.options.mail.public_url;
    let list = list.iter().map(|r| as_open311(r, &caller, base)).collect();
    Json(Value::Array(list)).into_response()
}

async fn request(
    State(s): State<Open311>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Response {
    let caller = match reader(&s, &headers) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::UNAUTHORIZED, 401, &e.to_string()),
    };
    let Some(id) = file.strip_suffix(".json") else {
        return error(
            StatusCode::NOT_FOUND,
            404,
            "only the .json format is served",
        );
    };
    let report = s.state.citizens.view.read().expect("view lock").report(id);
    match report {
        Some(r) => {
            let base = &s.state.options.mail.public_url;
            Json(json!([as_open311(&r, &caller, base)])).into_response()
        }
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
            // `nan` and `inf` parse; this door always took them as absent (it once went
            // through GraphQL's JSON variables, where they are null).
            .map(|n| n.filter(|x| x.is_finite()))
    };
    let (lat, long) = match (num("lat"), num("long")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, 400, &e),
    };
    let text = |k: &str| f.get(k).filter(|v| !v.is_empty()).cloned();
    let report = SubmitReport {
        service_code: text("service_code").unwrap_or_default(),
        description: text("description").unwrap_or_default(),
        lat,
        long,
        address_string: text("address_string"),
        media_url: text("media_url"),
        contact: Some(Contact {
            email: text("email"),
            phone: text("phone"),
            first_name: text("first_name"),
            last_name: text("last_name"),
        }),
        photos: Vec::new(),
    };
    let applied = s
        .state
        .commands
        .execute(
            &Caller::Anonymous,
            Some(addr.ip()),
            Command::SubmitReport(report),
        )
        .await;
    let id = match applied {
        Ok(Applied::ReportSubmitted { report, .. }) => report.submitted.report_id,
        Ok(_) => {
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            return error(
                status,
                status.as_u16(),
                "the command applied something else",
            );
        }
        Err(e) => {
            let status = match &e {
                CommandError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                CommandError::Failed(_) => {
                    tracing::error!(error = %e, "Open311 request failed");
                    StatusCode::INTERNAL_SERVER_ERROR
                }
                _ => StatusCode::BAD_REQUEST,
            };
            return error(status, status.as_u16(), &e.to_string());
        }
    };
    (
        StatusCode::CREATED,
        Json(json!([{"service_request_id": id, "service_notice": "", "account_id": null}])),
    )
        .into_response()
}
