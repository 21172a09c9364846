//! Vineyard partner feeds (pilot action 7): `GET /feeds/vineyard?since=<cursor>`.
//!
//! A partner (a wine estate, the cooperative) is configured with the SHA-256 of its token
//! and the parcels it owns, and sees only those: its parcels' sensor readings, the readings
//! of the weather stations covering them, those stations' daily indicators, and the alerts
//! raised on its parcels. The answer is NDJSON, one row per line tagged with `feed`
//! (`parcelRecord`, `weather`, `indicators`, `alert`), closed by a line
//! `{"feed":"cursor","cursor":"…"}` (also in the `X-Feed-Cursor` header). Asking again with
//! that cursor in `since` serves exactly the rows that landed since: no gap, no duplicate.
//! "Landed" as the API's snapshot of the lake sees it ([`crate::limits::lake`]), which lags
//! the lake by up to `lake_refresh_ms` (1 s): a row committed within that lag is not
//! skipped, it comes with a later ask (the cursor only moves past rows served).
//! Without `since`, the whole history (the partner's download of its own data).
//!
//! Why the cursor is exact. Ingest lands each partition's records once and in offset order,
//! so for the raw tables "offset above the last one served, per table, topic and partition"
//! resumes exactly. The stage commits its derived rows a flush at a time, every row of a
//! flush computed after every row of the previous one, so for `vine_indicators` and
//! `vine_alerts` "computed after the last row served" does too.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vallee_schemas::contract::Table;
use vallee_schemas::tables::OutputTable;

use crate::ApiState;
// Who a partner is belongs to the audience layer, which every door (this feed included)
// asks; re-exported where the feed's callers look for it.
pub use crate::audience::{FeedPartner, partner_of_token};
use crate::auth::bearer;
pub use crate::options::Partner;
use crate::sensors::lit;

/// Where a partner's feed stopped.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Raw tables: `table` → `topic/partition` → last offset served.
    #[serde(default)]
    offsets: BTreeMap<String, BTreeMap<String, i64>>,
    /// Derived tables: `table` → computation time (µs) of the last row served.
    #[serde(default)]
    computed: BTreeMap<String, i64>,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim())
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

#[derive(Debug, Deserialize)]
pub struct FeedQuery {
    since: Option<String>,
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

/// The partner named by the bearer token.
fn partner<'a>(state: &'a ApiState, headers: &HeaderMap) -> Option<&'a Partner> {
    partner_of_token(state, bearer(headers)?)
}

/// `col IN (…)`, false for an empty list.
fn any_of(column: &str, values: &[String]) -> String {
    if values.is_empty() {
        return "FALSE".into();
    }
    let list: Vec<String> = values.iter().map(|v| lit(v)).collect();
    format!("{column} IN ({})", list.join(", "))
}

/// Rows of a raw table past the cursor's offsets, in offset order.
fn after_offsets(cursor: &Cursor, table: &str) -> String {
    let Some(positions) = cursor.offsets.get(table) else {
        return "TRUE".into();
    };
    let mut seen = Vec::new();
    let mut after = Vec::new();
    for (key, offset) in positions {
        let Some((topic, partition)) = key.rsplit_once('/') else {
            continue;
        };
        let Ok(partition) = partition.parse::<i32>() else {
            continue;
        };
        let here = format!("_topic = {} AND _partition = {partition}", lit(topic));
        after.push(format!("({here} AND _offset > {offset})"));
        seen.push(format!("({here})"));
    }
    if seen.is_empty() {
        return "TRUE".into();
    }
    format!("({} OR NOT ({}))", after.join(" OR "), seen.join(" OR "))
}

fn after_computed(cursor: &Cursor, table: &str) -> String {
    match cursor.computed.get(table) {
        Some(us) => format!("CAST(_computed_at AS BIGINT) > {us}"),
        None => "TRUE".into(),
    }
}

/// A feed row: the table's columns and `feed` (its kind).
pub type FeedRow = serde_json::Map<String, Value>;

/// One feed's rows as JSON objects, with the cursor moved past them.
async fn rows(
    state: &ApiState,
    sql: &str,
    feed: &str,
    table: &str,
    cursor: &mut Cursor,
    out: &mut Vec<FeedRow>,
) -> Result<(), String> {
    // Through the API's lake snapshot and gate, as every lake read of the API.
    let batches: Vec<RecordBatch> = state.sensors.sql(sql).await.map_err(|e| e.to_string())?;
    for batch in &batches {
        for mut row in vallee_opendata::export::json_rows(batch).map_err(|e| e.to_string())? {
            let position = row.remove("_feed_position").and_then(|p| p.as_i64());
            let topic = row
                .get("_topic")
                .and_then(Value::as_str)
                .map(str::to_string);
            match (position, topic) {
                (Some(offset), Some(topic)) => {
                    let partition = row.get("_partition").and_then(Value::as_i64).unwrap_or(0);
                    let key = format!("{topic}/{partition}");
                    let slot = cursor
                        .offsets
                        .entry(table.to_string())
                        .or_default()
                        .entry(key)
                        .or_insert(offset);
                    *slot = (*slot).max(offset);
                }
                (Some(computed), None) => {
                    let slot = cursor.computed.entry(table.to_string()).or_insert(computed);
                    *slot = (*slot).max(computed);
                }
                _ => {}
            }
            row.insert("feed".into(), Value::String(feed.into()));
            out.push(row);
        }
    }
    Ok(())
}

/// A partner's rows past `since`, and the cursor after them.
pub async fn read(
    state: &ApiState,
    partner: &Partner,
    since: &Cursor,
) -> Result<(Vec<FeedRow>, Cursor), String> {
    let lake = state.open_data.lake();
    for t in [Table::ParcelRecords, Table::WeatherObserved] {
        lake.ensure(t).await.map_err(|e| e.to_string())?;
    }
    for t in [OutputTable::VineIndicators, OutputTable::VineAlerts] {
        lake.ensure(t).await.map_err(|e| e.to_string())?;
    }
    let parcels = &partner.parcels;
    let covering = {
        let list: Vec<String> = parcels.iter().map(|p| lit(p)).collect();
        if list.is_empty() {
            "FALSE".to_string()
        } else {
            format!(
                "array_has_any(\"refParcels\", make_array({}))",
                list.join(", ")
            )
        }
    };
    let queries = [
        (
            format!(
                "SELECT *, _offset AS _feed_position FROM parcel_records WHERE {} AND {} ORDER BY _topic, _partition, _offset",
                any_of("\"hasAgriParcel\"", parcels),
                after_offsets(since, Table::ParcelRecords.name())
            ),
            "parcelRecord",
            Table::ParcelRecords.name(),
        ),
        (
            format!(
                "SELECT *, _offset AS _feed_position FROM weather_observed WHERE {covering} AND {} ORDER BY _topic, _partition, _offset",
                after_offsets(since, Table::WeatherObserved.name())
            ),
            "weather",
            Table::WeatherObserved.name(),
        ),
        (
            format!(
                "SELECT *, CAST(_computed_at AS BIGINT) AS _feed_position FROM vine_indicators \
                 WHERE station IN (SELECT DISTINCT id FROM weather_observed WHERE {covering}) AND {} ORDER BY _computed_at",
                after_computed(since, OutputTable::VineIndicators.name())
            ),
            "indicators",
            OutputTable::VineIndicators.name(),
        ),
        (
            format!(
                "SELECT *, CAST(_computed_at AS BIGINT) AS _feed_position FROM vine_alerts WHERE {} AND {} ORDER BY _computed_at",
                any_of("\"entityId\"", parcels),
                after_computed(since, OutputTable::VineAlerts.name())
            ),
            "alert",
            OutputTable::VineAlerts.name(),
        ),
    ];
    let mut cursor = since.clone();
    let mut out = Vec::new();
    for (sql, feed, table) in &queries {
        rows(state, sql, feed, table, &mut cursor, &mut out).await?;
    }
    Ok((out, cursor))
}

/// `GET /feeds/vineyard?since=`: the partner's rows since its cursor, as NDJSON.
pub async fn vineyard(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Query(query): Query<FeedQuery>,
) -> Response {
    let Some(partner) = partner(&state, &headers) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "a partner token is required (Authorization: Bearer …)",
        );
    };
    let since = match query.since.as_deref() {
        None | Some("") => Cursor::default(),
        Some(s) => match Cursor::decode(s) {
            Some(c) => c,
            None => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "since is not a cursor of this feed",
                );
            }
        },
    };
    let (rows, cursor) = match read(&state, partner, &since).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(partner = partner.name, error = %e, "vineyard feed failed");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the feed could not be read",
            );
        }
    };
    let next = cursor.encode();
    let mut body = Vec::new();
    for row in rows
        .into_iter()
        .map(Value::Object)
        .chain([json!({"feed": "cursor", "cursor": next})])
    {
        serde_json::to_writer(&mut body, &row).unwrap_or_default();
        body.push(b'\n');
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header("x-feed-cursor", next)
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_filters_past_what_was_served() {
        let mut c = Cursor::default();
        c.offsets
            .entry("parcel_records".into())
            .or_default()
            .insert("vallee.vineyards/2".into(), 41);
        c.computed
            .insert("vine_alerts".into(), 1_700_000_000_000_000);
        assert_eq!(Cursor::decode(&c.encode()), Some(c.clone()));
        assert_eq!(Cursor::decode("not a cursor"), None);
        assert_eq!(
            after_offsets(&c, "parcel_records"),
            "((_topic = 'vallee.vineyards' AND _partition = 2 AND _offset > 41) OR NOT ((_topic = 'vallee.vineyards' AND _partition = 2)))"
        );
        assert_eq!(after_offsets(&c, "weather_observed"), "TRUE");
        assert_eq!(
            after_computed(&c, "vine_alerts"),
            "CAST(_computed_at AS BIGINT) > 1700000000000000"
        );
    }
}
