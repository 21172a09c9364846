//! Open data over HTTP: `/opendata/catalog.jsonld` (DCAT-AP), `/opendata/catalog.csv`
//! (SCDL catalogue simplifié), `/opendata/<id>/schema.json` (Table Schema) and downloads
//! `/opendata/<id>.{csv,ndjson,geojson,parquet}?commune=&from=&to=&asOf=`, streamed.
//! The response names the version served in `X-Dataset-Version` (and inside GeoJSON and
//! Parquet files).

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use vallee_opendata::export::{Format, encode};
use vallee_opendata::metadata::{self, Publisher};
use vallee_opendata::{AsOf, DATASETS, Filter, OpenData, dataset, parse_as_of};

/// Name and SIREN of the intercommunality (Etalab reference data).
pub const PUBLISHER_NAME: &str = "Communauté de communes Vallée de l'Hérault";
pub const PUBLISHER_SIREN: &str = "243400694";

/// What the open-data routes share: the public's view of the datasets, and the
/// publisher's SIRET when configured (SCDL column `COLL_SIRET`).
#[derive(Debug, Clone)]
struct Site {
    open_data: OpenData,
    siret: Option<String>,
}

pub fn router(open_data: OpenData, siret: Option<String>) -> Router {
    Router::new()
        .route("/opendata/catalog.jsonld", get(dcat))
        .route("/opendata/catalog.csv", get(scdl))
        .route("/opendata/{id}/schema.json", get(schema))
        .route("/opendata/{file}", get(download))
        .with_state(Site { open_data, siret })
}

fn publisher(site: &Site, headers: &HeaderMap) -> Publisher {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    Publisher {
        name: PUBLISHER_NAME.into(),
        siren: PUBLISHER_SIREN.into(),
        siret: site.siret.clone(),
        base_url: format!("http://{host}"),
    }
}

fn failure(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": message.into()})),
    )
        .into_response()
}

fn internal(e: vallee_opendata::Error) -> Response {
    match e {
        vallee_opendata::Error::BadRequest(m) => failure(StatusCode::BAD_REQUEST, m),
        e => {
            tracing::error!(error = %e, "open data request failed");
            failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

async fn states(
    od: &OpenData,
) -> Result<
    Vec<(
        &'static vallee_opendata::Dataset,
        vallee_opendata::DatasetState,
    )>,
    Response,
> {
    let mut out = Vec::new();
    for ds in DATASETS {
        out.push((ds, od.state(ds).await.map_err(internal)?));
    }
    Ok(out)
}

async fn dcat(State(site): State<Site>, headers: HeaderMap) -> Response {
    match states(&site.open_data).await {
        Ok(s) => (
            [(header::CONTENT_TYPE, "application/ld+json")],
            metadata::dcat_catalog(&publisher(&site, &headers), &s).to_string(),
        )
            .into_response(),
        Err(r) => r,
    }
}

async fn scdl(State(site): State<Site>, headers: HeaderMap) -> Response {
    match states(&site.open_data).await {
        Ok(s) => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            metadata::scdl_catalog(&publisher(&site, &headers), &s),
        )
            .into_response(),
        Err(r) => r,
    }
}

async fn schema(State(site): State<Site>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let Some(ds) = dataset(&id) else {
        return failure(StatusCode::NOT_FOUND, format!("no dataset {id}"));
    };
    match site.open_data.state(ds).await {
        Ok(st) => (
            [(header::CONTENT_TYPE, "application/json")],
            metadata::table_schema(&publisher(&site, &headers), ds, &st.schema).to_string(),
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

fn time(q: &HashMap<String, String>, key: &str) -> Result<Option<DateTime<Utc>>, String> {
    q.get(key)
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .or_else(|_| {
                    v.parse::<chrono::NaiveDate>()
                        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
                })
                .map_err(|_| format!("{key} must be an RFC 3339 time or a date"))
        })
        .transpose()
}

async fn download(
    State(site): State<Site>,
    Path(file): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some((id, ext)) = file.rsplit_once('.') else {
        return failure(StatusCode::NOT_FOUND, format!("no dataset {file}"));
    };
    let Some(ds) = dataset(id) else {
        return failure(StatusCode::NOT_FOUND, format!("no dataset {id}"));
    };
    let Some(format) = Format::from_extension(ext) else {
        return failure(
            StatusCode::NOT_FOUND,
            format!("{ext} is not served (csv, ndjson, geojson, parquet)"),
        );
    };
    let filter = match (time(&q, "from"), time(&q, "to")) {
        (Ok(from), Ok(to)) => Filter {
            commune: q.get("commune").cloned(),
            from,
            to,
        },
        (Err(m), _) | (_, Err(m)) => return failure(StatusCode::BAD_REQUEST, m),
    };
    let as_of = match q.get("asOf").map(|s| parse_as_of(s)).transpose() {
        Ok(a) => a.unwrap_or(AsOf::Latest),
        Err(e) => return internal(e),
    };
    let (version, stream) = match site.open_data.stream(ds, &filter, as_of).await {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let bytes = match encode(ds, format, version, stream) {
        Ok(b) => b,
        Err(e) => return internal(e),
    };
    let version_text = version.map_or("none".to_string(), |v| v.to_string());
    let body = Body::from_stream(bytes.map(|r| r.map_err(std::io::Error::other)));
    (
        [
            (header::CONTENT_TYPE, format.media_type().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}-v{version_text}.{ext}\""),
            ),
            (
                header::HeaderName::from_static("x-dataset-version"),
                version_text,
            ),
            (
                header::LINK,
                format!("</opendata/{id}/schema.json>; rel=\"describedby\""),
            ),
        ],
        body,
    )
        .into_response()
}
