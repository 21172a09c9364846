//! `POST /sql` for researchers: DataFusion over the public tables only (the session holds
//! nothing else), SELECT only; results as JSON, CSV or Arrow IPC by `Accept`. The
//! researcher's token is checked before the body is even read.
//!
//! What a query may take is bounded whatever it asks:
//! - time: the whole request, planning, execution and the encoding of the result, within
//!   `sql_timeout_s` (past it the query is cancelled);
//! - memory: every research query draws from one pool of `sql_memory_bytes` ([`memory`]);
//! - rows: `sql_max_rows` (more: truncated, said in `X-Truncated`);
//! - turns: `sql_max_concurrent_per_researcher` queries at once per researcher and
//!   `sql_max_concurrent` in all; past them, 429 at once;
//! - cores: queries run on their own runtime (as many threads as queries may run at once,
//!   at most the machine's cores), so the reactor serving HTTP, ingest and the stream stage
//!   keeps its own.
//!
//! # Layout
//! - this file: the handler, the turns, the time limit.
//! - [`memory`]: the pool, the sessions that draw from it, amplifying functions metered.
//! - [`encode`]: the result as it leaves, counted against the same memory.

pub mod encode;
pub mod memory;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ApiState;
use crate::auth::{bearer, sha256_hex};
use crate::options::ApiOptions;
use encode::{EncodeError, Format};

/// What research queries share: their memory, their runtime and their turns.
pub struct Research {
    pool: Arc<dyn MemoryPool>,
    runtime: Option<tokio::runtime::Runtime>,
    all: Arc<Semaphore>,
    running: Arc<Mutex<HashMap<String, usize>>>,
    per_researcher: usize,
    memory_bytes: usize,
    timeout: Duration,
    max_rows: usize,
}

impl std::fmt::Debug for Research {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Research")
            .field("memory_bytes", &self.memory_bytes)
            .field("per_researcher", &self.per_researcher)
            .finish_non_exhaustive()
    }
}

impl Research {
    pub fn new(options: &ApiOptions) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Without threads of its own (the system refused them), queries run on the
        // caller's runtime: still bounded in time and memory.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.sql_max_concurrent.clamp(1, cores))
            .thread_name("vallee-sql")
            .enable_all()
            .build()
            .inspect_err(|e| tracing::warn!(error = %e, "no runtime of its own for /sql"))
            .ok();
        Research {
            pool: memory::pool(options.sql_memory_bytes),
            runtime,
            all: Arc::new(Semaphore::new(options.sql_max_concurrent.max(1))),
            running: Arc::default(),
            per_researcher: options.sql_max_concurrent_per_researcher.max(1),
            memory_bytes: options.sql_memory_bytes,
            timeout: options.sql_timeout,
            max_rows: options.sql_max_rows,
        }
    }

    /// A turn for `who`, within both caps.
    fn enter(&self, who: &str) -> Result<Turn, &'static str> {
        let all = (self.all.clone().try_acquire_owned())
            .map_err(|_| "research queries run at once already: retry in a moment")?;
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mine = running.entry(who.to_string()).or_default();
        if *mine >= self.per_researcher {
            return Err("you run as many queries at once as you may: wait for one to end");
        }
        *mine += 1;
        Ok(Turn {
            _all: all,
            running: self.running.clone(),
            who: who.to_string(),
        })
    }
}

impl Drop for Research {
    fn drop(&mut self) {
        // A runtime cannot be dropped from within another one (the router is dropped on
        // the server's): let its threads end on their own.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A research query's place among those running, given back when it ends.
struct Turn {
    _all: OwnedSemaphorePermit,
    running: Arc<Mutex<HashMap<String, usize>>>,
    who: String,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = running.get_mut(&self.who) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.who);
            }
        }
    }
}

/// The state of `POST /sql`.
#[derive(Clone)]
pub struct ResearchDoor {
    pub state: Arc<ApiState>,
    pub research: Arc<Research>,
}

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

pub async fn sql(State(door): State<ResearchDoor>, request: Request) -> Response {
    let ResearchDoor { state, research } = door;
    let Some(who) = researcher(&state, &request) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "a researcher token is required (Authorization: Bearer …)",
        );
    };
    let format = Format::of(
        request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json"),
    );
    let max_body = state.options.limits.max_body_bytes;
    let Ok(body) = axum::body::to_bytes(request.into_body(), max_body).await else {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the query is larger than {max_body} bytes"),
        );
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
    let turn = match research.enter(&who) {
        Ok(turn) => turn,
        Err(message) => {
            let mut r = refuse(StatusCode::TOO_MANY_REQUESTS, message);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return r;
        }
    };
    tracing::info!(researcher = who, sql = query, "research query");
    let timeout = research.timeout;
    let job = {
        let research = research.clone();
        async move {
            let answer = run(&state, &research, &query, format).await;
            drop(turn);
            answer
        }
    };
    // The turn is given back when the job ends, cancelled or not: a query still
    // computing after its time keeps its place until it stops.
    let mut handle = match &research.runtime {
        Some(runtime) => runtime.spawn(job),
        None => tokio::spawn(job),
    };
    let answer = match tokio::time::timeout(timeout, &mut handle).await {
        Err(_) => {
            handle.abort();
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the query, with its result, took longer than {} s",
                    timeout.as_secs()
                ),
            );
        }
        Ok(Err(e)) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Ok(Ok(Err((status, message)))) => return refuse(status, message),
        Ok(Ok(Ok(answer))) => answer,
    };
    let truncated = (
        header::HeaderName::from_static("x-truncated"),
        answer.truncated.to_string(),
    );
    match answer.bytes {
        None => (StatusCode::NO_CONTENT, [truncated]).into_response(),
        Some(bytes) => (
            [
                (header::CONTENT_TYPE, format.content_type().to_string()),
                truncated,
            ],
            Body::from(bytes),
        )
            .into_response(),
    }
}

/// An encoded result.
struct Answer {
    bytes: Option<Vec<u8>>,
    truncated: bool,
}

type Failure = (StatusCode, String);

/// A query's failure as the researcher reads it: out of memory said so, others as
/// DataFusion words them.
fn query_error(memory_bytes: usize) -> impl Fn(DataFusionError) -> Failure {
    move |e| {
        let message = e.to_string();
        if matches!(e.find_root(), DataFusionError::ResourcesExhausted(_))
            || message.contains("Resources exhausted")
        {
            return out_of_memory(memory_bytes, &message);
        }
        (StatusCode::BAD_REQUEST, message)
    }
}

fn out_of_memory(memory_bytes: usize, why: &str) -> Failure {
    (
        StatusCode::BAD_REQUEST,
        format!(
            "the query needs more memory than research queries may use together ({} MiB): {why}",
            memory_bytes / (1024 * 1024)
        ),
    )
}

async fn run(
    state: &ApiState,
    research: &Research,
    query: &str,
    format: Format,
) -> Result<Answer, Failure> {
    let failed = query_error(research.memory_bytes);
    let public = (state.public.session(Some(&state.research)).await)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let (ctx, _functions) = memory::session(&public, &research.pool)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx
        .sql_with_options(query, options)
        .await
        .map_err(&failed)?;
    let df = df.limit(0, Some(research.max_rows + 1)).map_err(&failed)?;
    let plan = df.clone().into_optimized_plan().map_err(&failed)?;
    memory::check_constants(&plan, research.memory_bytes).map_err(&failed)?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    // The result is held against the same pool as the query's operators.
    let held = MemoryConsumer::new("research result").register(&research.pool);
    let mut stream = df.execute_stream().await.map_err(&failed)?;
    let (mut batches, mut rows, mut truncated) = (Vec::<RecordBatch>::new(), 0, false);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(&failed)?;
        held.try_grow(batch.get_array_memory_size())
            .map_err(|e| out_of_memory(research.memory_bytes, &e.to_string()))?;
        let keep = batch.num_rows().min(research.max_rows - rows);
        if keep < batch.num_rows() {
            truncated = true;
        }
        rows += keep;
        batches.push(batch.slice(0, keep));
        if truncated {
            break;
        }
    }
    drop(stream);
    let bytes =
        encode::encode(format, &schema, &batches, truncated, &held).map_err(|e| match e {
            EncodeError::Memory(m) => out_of_memory(research.memory_bytes, &m),
            EncodeError::Encoding(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
        })?;
    Ok(Answer { bytes, truncated })
}
