//! `POST /sql` for researchers: DataFusion over the public tables only (the session holds
//! nothing else), SELECT only, with a time and a row limit; results as JSON, CSV or Arrow
//! IPC by `Accept`. The researcher's token is checked before the body is even read.

use std::sync::Arc;

use arrow::array::RecordBatch;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use datafusion::execution::context::SQLOptions;
use serde_json::json;

use crate::ApiState;
use crate::auth::{bearer, sha256_hex};

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

/// The researcher named by the bearer token, if any.
fn researcher(state: &ApiState, request: &Request) -> Option<String> {
    let hash = sha256_hex(bearer(request.headers())?);
    state
        .options
        .researchers
        .iter()
        .find(|r| r.token_sha256.eq_ignore_ascii_case(&hash))
        .map(|r| r.name.clone())
}

pub async fn sql(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let Some(who) = researcher(&state, &request) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "a researcher token is required (Authorization: Bearer …)",
        );
    };
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = match axum::body::to_bytes(request.into_body(), 64 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the query is larger than 64 KiB",
            );
        }
    };
    let Some(query) = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("sql").and_then(|s| s.as_str()).map(str::to_string))
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the body must be {\"sql\": \"SELECT …\"}",
        );
    };
    let limits = (state.options.sql_timeout, state.options.sql_max_rows);
    tracing::info!(researcher = who, sql = query, "research query");
    let run = async {
        let ctx = state
            .public
            .session(Some(&state.research))
            .await
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = ctx
            .sql_with_options(&query, options)
            .await
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
        let df = df
            .limit(0, Some(limits.1 + 1))
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
        df.collect()
            .await
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))
    };
    let batches = match tokio::time::timeout(limits.0, run).await {
        Err(_) => {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!("the query ran longer than {} s", limits.0.as_secs()),
            );
        }
        Ok(Err((status, message))) => return refuse(status, message),
        Ok(Ok(b)) => b,
    };
    let (batches, truncated) = truncate(batches, limits.1);
    encode(&accept, &batches, truncated)
}

fn truncate(batches: Vec<RecordBatch>, max: usize) -> (Vec<RecordBatch>, bool) {
    let mut out = Vec::new();
    let mut left = max;
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    for b in batches {
        if left == 0 {
            break;
        }
        let n = b.num_rows().min(left);
        out.push(b.slice(0, n));
        left -= n;
    }
    (out, total > max)
}

fn encode(accept: &str, batches: &[RecordBatch], truncated: bool) -> Response {
    let truncated_header = (
        header::HeaderName::from_static("x-truncated"),
        truncated.to_string(),
    );
    let plain: Vec<RecordBatch> = match batches
        .iter()
        .map(vallee_opendata::export::plain)
        .collect::<Result<_, _>>()
    {
        Ok(p) => p,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if accept.contains("text/csv") {
        let mut out = Vec::new();
        {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for b in &plain {
                if w.write(b).is_err() {
                    return refuse(StatusCode::INTERNAL_SERVER_ERROR, "CSV encoding failed");
                }
            }
        }
        return (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                truncated_header,
            ],
            out,
        )
            .into_response();
    }
    if accept.contains("application/vnd.apache.arrow.stream") {
        let Some(first) = plain.first() else {
            return (StatusCode::NO_CONTENT, [truncated_header]).into_response();
        };
        let mut out = Vec::new();
        let written = (|| -> Result<(), arrow::error::ArrowError> {
            let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut out, &first.schema())?;
            for b in &plain {
                w.write(b)?;
            }
            w.finish()
        })();
        if written.is_err() {
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, "Arrow encoding failed");
        }
        return (
            [
                (
                    header::CONTENT_TYPE,
                    "application/vnd.apache.arrow.stream".to_string(),
                ),
                truncated_header,
            ],
            Body::from(out),
        )
            .into_response();
    }
    let mut w = arrow::json::ArrayWriter::new(Vec::new());
    for b in &plain {
        if w.write(b).is_err() {
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, "JSON encoding failed");
        }
    }
    let _ = w.finish();
    let rows: serde_json::Value =
        serde_json::from_slice(&w.into_inner()).unwrap_or_else(|_| json!([]));
    let columns: Vec<String> = plain
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default();
    (
        [truncated_header],
        axum::Json(json!({"columns": columns, "rows": rows, "truncated": truncated})),
    )
        .into_response()
}
