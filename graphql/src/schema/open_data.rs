//! Open datasets in GraphQL: the catalogue's metadata and paged rows (`asOf` included).

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use vallee_opendata::{AsOf, DatasetState, Filter, parse_as_of};

use super::{Code, error, state};

/// A way to download a dataset.
#[derive(SimpleObject, Debug, Clone)]
pub struct Distribution {
    /// csv, ndjson, geojson or parquet.
    pub format: String,
    pub media_type: String,
    /// Path on the hub (`/opendata/<id>.<format>`).
    pub url: String,
}

/// One row of a dataset, its columns as a JSON object.
#[derive(SimpleObject, Debug, Clone)]
pub struct DatasetRow {
    pub values: Json<serde_json::Value>,
}

/// Filter of a dataset's rows.
#[derive(InputObject, Debug, Clone, Default)]
pub struct DatasetFilter {
    /// INSEE code (datasets with a commune column).
    pub commune_code: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// An open dataset (Licence Ouverte 2.0).
#[derive(Debug, Clone)]
pub struct Dataset {
    pub dataset: &'static vallee_opendata::Dataset,
    pub state: DatasetState,
}

#[Object]
impl Dataset {
    async fn id(&self) -> ID {
        ID(self.dataset.id.to_string())
    }
    async fn title(&self) -> &str {
        self.dataset.title
    }
    async fn description(&self) -> &str {
        self.dataset.description
    }
    async fn keywords(&self) -> Vec<&str> {
        self.dataset.keywords.to_vec()
    }
    async fn theme(&self) -> &str {
        self.dataset.theme
    }
    /// SPDX identifier of the licence.
    async fn license(&self) -> &str {
        vallee_opendata::metadata::LICENCE_SPDX
    }
    /// Delta version of the source table (null: nothing published yet).
    async fn version(&self) -> Option<i64> {
        self.state.version
    }
    async fn modified(&self) -> Option<DateTime<Utc>> {
        self.state.modified
    }
    async fn coverage_start(&self) -> Option<NaiveDate> {
        self.state.coverage.map(|c| c.0)
    }
    async fn coverage_end(&self) -> Option<NaiveDate> {
        self.state.coverage.map(|c| c.1)
    }
    /// Path of the Table Schema.
    async fn schema_url(&self) -> String {
        format!("/opendata/{}/schema.json", self.dataset.id)
    }
    async fn distributions(&self) -> Vec<Distribution> {
        vallee_opendata::metadata::formats(self.dataset)
            .into_iter()
            .map(|(ext, media)| Distribution {
                format: ext.into(),
                media_type: media.into(),
                url: format!("/opendata/{}.{ext}", self.dataset.id),
            })
            .collect()
    }
    /// Rows, in the order of the dataset's time column; `asOf`: a Delta version or an
    /// RFC 3339 time.
    #[graphql(complexity = "crate::limits::LAKE_QUERY_COST + child_complexity")]
    async fn rows(
        &self,
        ctx: &Context<'_>,
        filter: Option<DatasetFilter>,
        first: Option<i32>,
        after: Option<String>,
        as_of: Option<String>,
    ) -> async_graphql::Result<Connection<String, DatasetRow>> {
        let f = filter.unwrap_or_default();
        let filter = Filter {
            commune: f.commune_code,
            from: f.from,
            to: f.to,
        };
        let as_of = match as_of {
            Some(s) => parse_as_of(&s).map_err(|e| error(Code::BadUserInput, e.to_string()))?,
            None => AsOf::Latest,
        };
        let (start, first) = super::page_window(first, after)?;
        let (_, rows) = state(ctx)
            .open_data
            .page(self.dataset, &filter, as_of, start, first + 1)
            .await
            .map_err(|e| match e {
                vallee_opendata::Error::BadRequest(m) => error(Code::BadUserInput, m),
                e => error(Code::Internal, e.to_string()),
            })?;
        let has_next = rows.len() > first;
        let mut connection = Connection::new(start > 0, has_next);
        connection
            .edges
            .extend(rows.into_iter().take(first).enumerate().map(|(i, r)| {
                Edge::new(
                    super::encode_cursor(start + i),
                    DatasetRow {
                        values: Json(serde_json::Value::Object(r)),
                    },
                )
            }));
        Ok(connection)
    }
}

/// The catalogue, in GraphQL.
pub async fn datasets(ctx: &Context<'_>) -> async_graphql::Result<Vec<Dataset>> {
    let od = &state(ctx).open_data;
    let mut out = Vec::new();
    for ds in vallee_opendata::DATASETS {
        let st = od
            .state(ds)
            .await
            .map_err(|e| error(Code::Internal, e.to_string()))?;
        out.push(Dataset {
            dataset: ds,
            state: st,
        });
    }
    Ok(out)
}

/// One dataset.
pub async fn dataset(ctx: &Context<'_>, id: &str) -> async_graphql::Result<Dataset> {
    let ds = vallee_opendata::dataset(id)
        .ok_or_else(|| error(Code::NotFound, format!("no dataset {id}")))?;
    let st = state(ctx)
        .open_data
        .state(ds)
        .await
        .map_err(|e| error(Code::Internal, e.to_string()))?;
    Ok(Dataset {
        dataset: ds,
        state: st,
    })
}
