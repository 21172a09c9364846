//! A planned day as crews take it: a printable sheet (HTML), a CSV for spreadsheets, GPX
//! for navigation devices and GeoJSON for maps, each for the whole day or one round.
//!
//! ```text
//!  GET /rounds/{date}                 every round's sheet, one per printed page, and the
//!                                     bins left out with why
//!  GET /rounds/{date}/{n}             round n's sheet
//!  GET /rounds/{date}/{n}.csv|.gpx|.geojson     round n
//!  GET /rounds/{date}/all.csv|.geojson          every round
//!      ?communeCode=34114&wasteKind=paper       the same filters as GraphQL `rounds`
//! ```
//!
//! Times are the valley's local time; the sheets are in French, with no asset from the
//! internet (they print from a browser offline).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Europe::Paris;
use serde::Deserialize;
use serde_json::{Value, json};
use vallee_schemas::communes;

use super::{DayPlan, Left, PlannedRound, check_date};
use crate::ApiState;
use crate::sensors::collect::{CollectReason, ToCollect};

/// The routes of the exports.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/rounds/{date}", get(day_sheet))
        .route("/rounds/{date}/{file}", get(file))
        .with_state(state)
}

/// The filters of a plan, as GraphQL `rounds` takes them.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filters {
    commune_code: Option<String>,
    waste_kind: Option<String>,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", message.into()),
    )
        .into_response()
}

async fn planned(
    state: &ApiState,
    date: &str,
    filters: &Filters,
) -> Result<Arc<DayPlan>, Response> {
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map_err(|_| refuse(StatusCode::BAD_REQUEST, "the date is written YYYY-MM-DD"))?;
    check_date(date, Utc::now()).map_err(|m| refuse(StatusCode::BAD_REQUEST, m))?;
    if let Some(c) = &filters.commune_code
        && communes::valley().by_code(c).is_none()
    {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "communeCode is not a commune of the valley",
        ));
    }
    if filters.waste_kind.as_ref().is_some_and(|k| k.len() > 40) {
        return Err(refuse(StatusCode::BAD_REQUEST, "wasteKind is too long"));
    }
    state
        .rounds
        .day(
            state,
            date,
            filters.commune_code.as_deref(),
            filters.waste_kind.as_deref(),
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "a day's rounds could not be planned");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the rounds cannot be planned right now",
            )
        })
}

async fn day_sheet(
    State(state): State<Arc<ApiState>>,
    Path(date): Path<String>,
    Query(filters): Query<Filters>,
) -> Response {
    match planned(&state, &date, &filters).await {
        Ok(plan) => html(sheet(&plan, None)),
        Err(refused) => refused,
    }
}

async fn file(
    State(state): State<Arc<ApiState>>,
    Path((date, file)): Path<(String, String)>,
    Query(filters): Query<Filters>,
) -> Response {
    let (name, format) = file.split_once('.').unwrap_or((&file, "html"));
    let plan = match planned(&state, &date, &filters).await {
        Ok(plan) => plan,
        Err(refused) => return refused,
    };
    let round = match name {
        "all" => None,
        n => match n.parse::<usize>().ok().and_then(|n| plan.round(n)) {
            Some(r) => Some(r),
            None => {
                return refuse(
                    StatusCode::NOT_FOUND,
                    format!("no round {n} on {date} ({} planned)", plan.rounds.len()),
                );
            }
        },
    };
    let rounds: Vec<&PlannedRound> = match round {
        Some(r) => vec![r],
        None => plan.rounds.iter().collect(),
    };
    let stem = match round {
        Some(r) => format!("tournee-{}-{}", plan.date, r.number),
        None => format!("tournees-{}", plan.date),
    };
    match (format, round) {
        ("html", Some(r)) => html(sheet(&plan, Some(r))),
        ("csv", _) => download(csv(&rounds), "text/csv; charset=utf-8", &stem, "csv"),
        ("geojson", _) => download(
            geojson(&plan, &rounds).to_string(),
            "application/geo+json",
            &stem,
            "geojson",
        ),
        ("gpx", Some(r)) => download(gpx(&plan, r), "application/gpx+xml", &stem, "gpx"),
        _ => refuse(
            StatusCode::NOT_FOUND,
            "ask for {n}, {n}.csv, {n}.gpx, {n}.geojson, all.csv or all.geojson",
        ),
    }
}

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn download(body: String, kind: &'static str, stem: &str, extension: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{stem}.{extension}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// `HH:MM` in the valley.
fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&Paris).format("%H:%M").to_string()
}

fn commune_name(bin: &ToCollect) -> String {
    bin.bin
        .commune_code
        .as_deref()
        .and_then(|c| communes::valley().by_code(c))
        .map_or_else(String::new, |c| c.name.to_string())
}

/// Why a bin is on a round, in French.
pub fn reason_label(reason: CollectReason) -> &'static str {
    match reason {
        CollectReason::FireAlert => "feu",
        CollectReason::FillAlert => "plein",
        CollectReason::CitizenReport => "signalé débordant",
        CollectReason::Forecast => "plein avant la prochaine tournée",
    }
}

fn reasons(bin: &ToCollect) -> String {
    let labels: Vec<&str> = bin.reasons.iter().map(|r| reason_label(*r)).collect();
    labels.join(", ")
}

/// Why a bin is in no round, in French.
pub fn left_label(why: Left) -> &'static str {
    match why {
        Left::NoTruckForKind => "aucun camion de ce type de déchet ne travaille ce jour-là",
        Left::NoTimeLeft => "plus de temps dans les horaires des équipes",
    }
}

/// A CSV field, quoted when it must be (RFC 4180).
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// One line per stop.
pub fn csv(rounds: &[&PlannedRound]) -> String {
    let mut out = String::from(
        "tournee,camion,ordre,arrivee,conteneur,commune,dechets,remplissage,raisons,latitude,longitude\n",
    );
    for r in rounds {
        for s in &r.stops {
            let line = [
                r.number.to_string(),
                field(&r.truck.name),
                s.order.to_string(),
                s.arrives.with_timezone(&Paris).to_rfc3339(),
                field(&s.bin.bin.id),
                field(&commune_name(&s.bin)),
                field(&s.bin.waste_kinds().join(" ")),
                format!("{:.2}", s.bin.bin.filling_level),
                field(&reasons(&s.bin)),
                format!("{:.6}", s.bin.bin.latitude),
                format!("{:.6}", s.bin.bin.longitude),
            ];
            out.push_str(&line.join(","));
            out.push('\n');
        }
    }
    out
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// GPX 1.1: the bins as waypoints, and the round as a route from the depot and back.
pub fn gpx(plan: &DayPlan, r: &PlannedRound) -> String {
    let name = format!("Tournée {} du {} – {}", r.number, plan.date, r.truck.name);
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<gpx version=\"1.1\" creator=\"vallee\" xmlns=\"http://www.topografix.com/GPX/1/1\">\n",
    );
    let _ = writeln!(
        out,
        "  <metadata><name>{}</name><time>{}</time></metadata>",
        xml(&name),
        plan.planned_at.to_rfc3339()
    );
    for s in &r.stops {
        let _ = writeln!(
            out,
            "  <wpt lat=\"{:.6}\" lon=\"{:.6}\"><name>{}. {}</name><desc>{}</desc><type>{}</type></wpt>",
            s.bin.bin.latitude,
            s.bin.bin.longitude,
            s.order,
            xml(&s.bin.bin.id),
            xml(&format!("{} – {}", local(s.arrives), reasons(&s.bin))),
            xml(&s.bin.waste_kinds().join(" ")),
        );
    }
    let _ = writeln!(out, "  <rte><name>{}</name>", xml(&name));
    let depot = |out: &mut String| {
        let _ = writeln!(
            out,
            "    <rtept lat=\"{:.6}\" lon=\"{:.6}\"><name>{}</name></rtept>",
            r.depot.lat,
            r.depot.long,
            xml(&r.depot.name)
        );
    };
    depot(&mut out);
    for s in &r.stops {
        let _ = writeln!(
            out,
            "    <rtept lat=\"{:.6}\" lon=\"{:.6}\"><name>{}. {}</name></rtept>",
            s.bin.bin.latitude,
            s.bin.bin.longitude,
            s.order,
            xml(&s.bin.bin.id)
        );
    }
    depot(&mut out);
    out.push_str("  </rte>\n</gpx>\n");
    out
}

/// A FeatureCollection: each round's path (depot, bins, depot) and each bin.
pub fn geojson(plan: &DayPlan, rounds: &[&PlannedRound]) -> Value {
    let mut features = Vec::new();
    for r in rounds {
        let mut path = vec![json!([r.depot.long, r.depot.lat])];
        path.extend(
            r.stops
                .iter()
                .map(|s| json!([s.bin.bin.longitude, s.bin.bin.latitude])),
        );
        path.push(json!([r.depot.long, r.depot.lat]));
        features.push(json!({
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": path},
            "properties": {
                "round": r.number, "truck": r.truck.truck_id, "truckName": r.truck.name,
                "depot": r.depot.depot_id, "wasteKind": r.waste_kind,
                "departs": r.departs.to_rfc3339(), "returns": r.returns.to_rfc3339(),
                "distanceKm": (r.distance_km * 10.0).round() / 10.0,
                "loadLitres": r.load_litres.round(), "bins": r.stops.len(),
            },
        }));
        for s in &r.stops {
            features.push(json!({
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [s.bin.bin.longitude, s.bin.bin.latitude]},
                "properties": {
                    "round": r.number, "order": s.order, "bin": s.bin.bin.id,
                    "communeCode": s.bin.bin.commune_code, "wasteKinds": s.bin.waste_kinds(),
                    "fillingLevel": s.bin.bin.filling_level,
                    "reasons": s.bin.reasons.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>(),
                    "arrives": s.arrives.to_rfc3339(),
                },
            }));
        }
    }
    json!({
        "type": "FeatureCollection",
        "properties": {"date": plan.date.to_string(), "plannedAt": plan.planned_at.to_rfc3339()},
        "features": features,
    })
}

const SHEET_STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:1.5rem;color:#111}\
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem}table{border-collapse:collapse;width:100%}\
th,td{border:1px solid #444;padding:.25rem .4rem;text-align:left;vertical-align:top}\
th{background:#eee}td.box{width:2.5rem}td.notes{width:22%}.meta{margin:.2rem 0 .8rem}\
section{page-break-after:always;break-after:page;margin-bottom:2rem}\
@media print{body{margin:0}a{color:inherit;text-decoration:none}}";

fn escape(text: &str) -> String {
    xml(text)
}

/// The sheets of `only` (a round) or of every round, with the bins left out.
pub fn sheet(plan: &DayPlan, only: Option<&PlannedRound>) -> String {
    let date = plan.date.format("%d/%m/%Y");
    let title = match only {
        Some(r) => format!("Tournée {} du {date}", r.number),
        None => format!("Tournées de collecte du {date}"),
    };
    let mut out = format!(
        "<!doctype html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><style>{SHEET_STYLE}</style></head><body>\n",
        escape(&title)
    );
    let planned = plan
        .planned_at
        .with_timezone(&Paris)
        .format("%d/%m/%Y à %H:%M");
    let rounds: Vec<&PlannedRound> = match only {
        Some(r) => vec![r],
        None => plan.rounds.iter().collect(),
    };
    if only.is_none() {
        let _ = writeln!(
            out,
            "<h1>{}</h1><p class=\"meta\">Planifiées le {planned} : {} tournées, {} conteneurs, {:.1} km.</p>",
            escape(&title),
            plan.rounds.len(),
            plan.rounds.iter().map(|r| r.stops.len()).sum::<usize>(),
            plan.distance_km()
        );
    }
    for r in rounds {
        let _ = writeln!(
            out,
            "<section aria-labelledby=\"t{n}\"><h1 id=\"t{n}\">Tournée {n} du {date} — {truck}</h1>\
<p class=\"meta\">Dépôt : {depot}. Départ {departs}, retour prévu {returns}. Déchets : {kind}. \
{bins} conteneurs, {km:.1} km, charge prévue {load:.0} L sur {capacity} L \
(remplissage moyen {fill:.0} %). Planifiée le {planned}.</p>",
            n = r.number,
            truck = escape(&r.truck.name),
            depot = escape(&r.depot.name),
            departs = local(r.departs),
            returns = local(r.returns),
            kind = escape(&r.waste_kind),
            bins = r.stops.len(),
            km = r.distance_km,
            load = r.load_litres,
            capacity = r.truck.capacity_litres,
            fill = r.average_fill() * 100.0,
        );
        out.push_str(
            "<table><thead><tr><th scope=\"col\">N°</th><th scope=\"col\">Heure</th>\
<th scope=\"col\">Conteneur</th><th scope=\"col\">Commune</th><th scope=\"col\">Remplissage</th>\
<th scope=\"col\">Pourquoi</th><th scope=\"col\">Collecté</th><th scope=\"col\">Observations</th></tr></thead><tbody>\n",
        );
        for s in &r.stops {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}<br><small>{:.5}, {:.5}</small></td><td>{}</td>\
<td>{:.0} %</td><td>{}</td><td class=\"box\">☐</td><td class=\"notes\"></td></tr>",
                s.order,
                local(s.arrives),
                escape(&s.bin.bin.id),
                s.bin.bin.latitude,
                s.bin.bin.longitude,
                escape(&commune_name(&s.bin)),
                s.bin.bin.filling_level * 100.0,
                escape(&reasons(&s.bin)),
            );
        }
        out.push_str("</tbody></table></section>\n");
    }
    if only.is_none() && !plan.left.is_empty() {
        out.push_str(
            "<section><h2>Conteneurs à collecter hors tournées</h2><table><thead><tr>\
<th scope=\"col\">Conteneur</th><th scope=\"col\">Commune</th><th scope=\"col\">Pourquoi à collecter</th>\
<th scope=\"col\">Pourquoi hors tournée</th></tr></thead><tbody>\n",
        );
        for (bin, why) in &plan.left {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&bin.bin.id),
                escape(&commune_name(bin)),
                escape(&reasons(bin)),
                left_label(*why)
            );
        }
        out.push_str("</tbody></table></section>\n");
    }
    out.push_str("</body></html>\n");
    out
}
