//! Open data: the valley publishes its data as datasets (views over lake tables with the
//! privacy rules applied), described by a DCAT-AP catalogue, a French SCDL "catalogue
//! simplifié" and a Table Schema each, and downloaded as CSV, NDJSON, GeoJSON or Parquet,
//! streamed batch by batch (constant memory), filtered by commune and time, at any past
//! version of the lake (`asOf`, Delta time travel) for reproducible citations.
//!
//! # Layout
//! - [`datasets`] — the datasets and their privacy rules, one file per theme.
//! - [`metadata`] — DCAT-AP JSON-LD, SCDL CSV, Table Schema.
//! - [`export`] — record batches → bytes, per format.
//! - [`publish`] — the public lake (`public/<id>` Delta tables) researchers read.
//! - [`sharing`] — the parcels vineyard partners chose to share, and with whom.

pub mod datasets;
pub mod export;
pub mod metadata;
pub mod publish;
pub mod sharing;

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::physical_plan::SendableRecordBatchStream;
pub use datasets::{DATASETS, Dataset, dataset};
use sharing::{Audience, Sharing};
pub use vallee_lake::query::AsOf;
use vallee_lake::{Lake, TextKeys};
use vallee_schemas::tables::columns::Columns;

/// Errors of open data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("lake: {0}")]
    Lake(#[from] Box<vallee_lake::Error>),
    #[error("query: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("encoding: {0}")]
    Encode(String),
    /// A bad filter or `asOf` (the client's fault).
    #[error("{0}")]
    BadRequest(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<vallee_lake::Error> for Error {
    fn from(e: vallee_lake::Error) -> Self {
        Error::Lake(Box::new(e))
    }
}

/// Filters of a download.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// INSEE code.
    pub commune: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Parses `asOf`: a Delta version (digits) or an RFC 3339 time.
pub fn parse_as_of(s: &str) -> Result<AsOf> {
    if let Ok(v) = s.parse::<i64>() {
        return if v >= 0 {
            Ok(AsOf::Version(v))
        } else {
            Err(Error::BadRequest("asOf must be a version ≥ 0".into()))
        };
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| AsOf::Time(t.with_timezone(&Utc)))
        .map_err(|_| {
            Error::BadRequest(format!(
                "asOf {s:?} is neither a version nor an RFC 3339 time"
            ))
        })
}

fn sql_lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The dataset's view with the filters applied.
pub fn query(ds: &Dataset, filter: &Filter) -> Result<String> {
    let mut conditions = Vec::new();
    if let Some(c) = &filter.commune {
        let Some(col) = ds.commune_column else {
            return Err(Error::BadRequest(format!(
                "{} has no commune column",
                ds.id
            )));
        };
        if !c.bytes().all(|b| b.is_ascii_alphanumeric()) || c.len() != 5 {
            return Err(Error::BadRequest(format!(
                "commune {c:?} is not an INSEE code"
            )));
        }
        conditions.push(format!("\"{col}\" = {}", sql_lit(c)));
    }
    let time = |t: DateTime<Utc>| {
        if ds.time_is_date {
            format!("DATE '{}'", t.date_naive())
        } else {
            format!("TIMESTAMP '{}'", t.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
        }
    };
    if let Some(f) = filter.from {
        conditions.push(format!("\"{}\" >= {}", ds.time_column, time(f)));
    }
    if let Some(t) = filter.to {
        conditions.push(format!("\"{}\" < {}", ds.time_column, time(t)));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    Ok(format!(
        "SELECT * FROM ({}) dataset{filter} ORDER BY \"{}\"",
        ds.sql(),
        ds.time_column
    ))
}

/// What the catalogue says of a dataset right now.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetState {
    /// Delta version of the source table (`None`: nothing published yet).
    pub version: Option<i64>,
    /// When that version was committed.
    pub modified: Option<DateTime<Utc>>,
    /// First and last day covered.
    pub coverage: Option<(NaiveDate, NaiveDate)>,
    pub schema: SchemaRef,
}

/// Reads datasets from the lake, for an audience: the public (the downloads, the public
/// lake) or researchers (who also see the parcels shared with them only).
#[derive(Debug, Clone)]
pub struct OpenData {
    lake: Arc<Lake>,
    sharing: Arc<Sharing>,
    audience: Audience,
    /// Opens what people wrote (the ideas' titles); erased texts are not published.
    texts: Arc<TextKeys>,
}

impl OpenData {
    /// The public's view, no parcel shared.
    pub fn new(lake: Arc<Lake>) -> Self {
        OpenData {
            lake,
            sharing: Arc::default(),
            audience: Audience::Public,
            texts: Arc::default(),
        }
    }

    /// The same, opening people's texts with `texts` (without them, sealed texts are
    /// not published).
    pub fn with_texts(self, texts: Arc<TextKeys>) -> Self {
        OpenData { texts, ..self }
    }

    /// The keys people's texts open with.
    pub fn texts(&self) -> &Arc<TextKeys> {
        &self.texts
    }

    /// The same lake read for `audience` under the partners' `sharing` settings.
    pub fn with_sharing(self, sharing: Arc<Sharing>, audience: Audience) -> Self {
        OpenData {
            sharing,
            audience,
            ..self
        }
    }

    pub fn audience(&self) -> Audience {
        self.audience
    }

    pub fn sharing(&self) -> &Sharing {
        &self.sharing
    }

    /// The internal lake the datasets are views over (partner feeds read it too).
    pub fn lake(&self) -> &Arc<Lake> {
        &self.lake
    }

    async fn session(
        &self,
        ds: &Dataset,
        as_of: AsOf,
    ) -> Result<(datafusion::prelude::SessionContext, Option<i64>)> {
        let (ctx, version) = match ds.source {
            datasets::Source::Raw(t) => self.lake.session_as_of(t, as_of).await?,
            datasets::Source::Derived(t) => self.lake.session_as_of(t, as_of).await?,
        };
        self.sharing.register(&ctx, self.audience)?;
        datasets::rules::register(&ctx, &self.texts);
        Ok((ctx, version))
    }

    /// The rows of `ds` (filtered, at `as_of`) as a stream of batches, and the version
    /// read.
    pub async fn stream(
        &self,
        ds: &Dataset,
        filter: &Filter,
        as_of: AsOf,
    ) -> Result<(Option<i64>, SendableRecordBatchStream)> {
        let sql = query(ds, filter)?;
        let (ctx, version) = self.session(ds, as_of).await?;
        let stream = ctx.sql(&sql).await?.execute_stream().await?;
        Ok((version, stream))
    }

    /// Version, last change, temporal coverage and schema of `ds`, now.
    pub async fn state(&self, ds: &Dataset) -> Result<DatasetState> {
        let (ctx, version) = self.session(ds, AsOf::Latest).await?;
        let df = ctx.sql(&query(ds, &Filter::default())?).await?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let bounds = ctx
            .sql(&format!(
                "SELECT CAST(min(\"{c}\") AS VARCHAR) AS lo, CAST(max(\"{c}\") AS VARCHAR) AS hi FROM ({}) d",
                ds.sql(),
                c = ds.time_column
            ))
            .await?
            .collect()
            .await?;
        let coverage = bounds.first().and_then(|b| {
            // The first ten characters of a date or a timestamp: its day.
            let columns = Columns::of_batch(ds.id, b);
            let day = |name: &str| {
                let text = columns.strings(name).ok()?.take(0)?;
                text.get(..10)?.parse::<NaiveDate>().ok()
            };
            Some((day("lo")?, day("hi")?))
        });
        let modified = version.and_then(|v| {
            let root = self.lake.root().to_file_path().ok()?;
            let log = root
                .join(ds.source.name())
                .join("_delta_log")
                .join(format!("{v:020}.json"));
            let t = std::fs::metadata(log).ok()?.modified().ok()?;
            Some(DateTime::<Utc>::from(t))
        });
        Ok(DatasetState {
            version,
            modified,
            coverage,
            schema,
        })
    }
}

impl OpenData {
    /// One page of `ds` (filtered, at `as_of`): rows `offset..offset + limit` as JSON
    /// objects, and the version read.
    pub async fn page(
        &self,
        ds: &Dataset,
        filter: &Filter,
        as_of: AsOf,
        offset: usize,
        limit: usize,
    ) -> Result<(Option<i64>, Vec<serde_json::Map<String, serde_json::Value>>)> {
        let sql = format!("{} LIMIT {limit} OFFSET {offset}", query(ds, filter)?);
        let (ctx, version) = self.session(ds, as_of).await?;
        let batches = ctx.sql(&sql).await?.collect().await?;
        let mut rows = Vec::new();
        for b in &batches {
            rows.extend(export::json_rows(&export::plain(b)?)?);
        }
        Ok((version, rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_conditions_on_the_view_and_bad_ones_are_refused() {
        let ds = dataset("remplissage-conteneurs-quotidien").unwrap();
        let q = query(
            ds,
            &Filter {
                commune: Some("34114".into()),
                from: Some("2026-11-01T00:00:00Z".parse().unwrap()),
                to: None,
            },
        )
        .unwrap();
        assert!(q.contains("\"communeCode\" = '34114'"), "{q}");
        assert!(q.contains("\"day\" >= DATE '2026-11-01'"), "{q}");
        let bad = Filter {
            commune: Some("34114' OR 1=1 --".into()),
            ..Default::default()
        };
        assert!(matches!(query(ds, &bad), Err(Error::BadRequest(_))));
        let zone = dataset("frequentation-zone-activites").unwrap();
        let by_commune = Filter {
            commune: Some("34114".into()),
            ..Default::default()
        };
        assert!(matches!(
            query(zone, &by_commune),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn as_of_is_a_version_or_a_time() {
        assert_eq!(parse_as_of("12").unwrap(), AsOf::Version(12));
        assert!(matches!(
            parse_as_of("2026-11-28T10:00:00Z").unwrap(),
            AsOf::Time(_)
        ));
        assert!(parse_as_of("-1").is_err());
        assert!(parse_as_of("yesterday").is_err());
    }
}
