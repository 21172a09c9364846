//! Queries.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use vallee_schemas::tables::OutputTable;
use vallee_schemas::{citizen, communes};

use super::sensors::*;
use super::types::*;
use super::{Code, caller, error, paginate, state};
use crate::audience::Reader;
use crate::citizen::reads::{ReportQuery, SeenBy};
// What a field reading the lake costs in the complexity limit.
use crate::limits::LAKE_QUERY_COST;

/// The root of queries.
#[derive(Debug, Default)]
pub struct Query;

fn window_of(window: Option<String>) -> async_graphql::Result<String> {
    match window.as_deref() {
        None | Some("PT5M") => Ok("PT5M".into()),
        Some("PT1H") => Ok("PT1H".into()),
        Some(other) => Err(error(
            Code::BadUserInput,
            format!("window must be PT5M or PT1H, got {other:?}"),
        )),
    }
}

type Range = Option<(DateTime<Utc>, DateTime<Utc>)>;

fn check_range(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> async_graphql::Result<Range> {
    let (from, to) = match (from, to) {
        (Some(f), Some(t)) => (f, t),
        (None, None) => return Ok(None),
        _ => {
            return Err(error(
                Code::BadUserInput,
                "give both `from` and `to`, or neither",
            ));
        }
    };
    if to <= from {
        return Err(error(Code::BadUserInput, "`to` must be after `from`"));
    }
    if to - from > Duration::days(366) {
        return Err(error(
            Code::BadUserInput,
            "ask for at most one year at a time",
        ));
    }
    Ok(Some((from, to)))
}

#[Object]
impl Query {
    /// The reports' service catalogue.
    async fn services(&self) -> Vec<Service> {
        citizen::SERVICES.iter().map(Into::into).collect()
    }

    /// One service of the catalogue.
    async fn service(&self, service_code: String) -> Option<Service> {
        citizen::service(&service_code).map(Into::into)
    }

    /// The valley's communes.
    async fn communes(&self) -> Vec<Commune> {
        communes::valley().all().iter().map(Into::into).collect()
    }

    /// Citizens' reports, newest first (`orderBy: DUE_FIRST`: the answer due first first).
    async fn reports(
        &self,
        ctx: &Context<'_>,
        filter: Option<ReportFilter>,
        order_by: Option<ReportOrder>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Report>> {
        let f = filter.unwrap_or_default();
        let bbox = match f.bbox.as_deref() {
            None => None,
            Some(&[a, b, c, d]) => Some([a, b, c, d]),
            Some(_) => {
                return Err(error(
                    Code::BadUserInput,
                    "bbox is [minLong, minLat, maxLong, maxLat]",
                ));
            }
        };
        let query = ReportQuery {
            commune_code: f.commune_code,
            status: f.status.map(Into::into),
            service_codes: f.service_code.map(|c| vec![c]),
            since: f.since,
            bbox,
            viewer: Some(caller(ctx).clone()),
            order: order_by.unwrap_or_default().into(),
            ..Default::default()
        };
        let reports: Vec<Report> = state(ctx)
            .citizens
            .view
            .read()
            .expect("view lock")
            .find_reports(&query)
            .into_iter()
            .map(Report)
            .collect();
        paginate(reports, first, after)
    }

    /// Who is asking: anonymous, a citizen (by token) or a staff member with their scope.
    async fn me(&self, ctx: &Context<'_>) -> Viewer {
        match caller(ctx) {
            crate::auth::Caller::Anonymous => Viewer {
                kind: ViewerKind::Anonymous,
                name: None,
                commune_code: None,
            },
            crate::auth::Caller::Citizen { .. } => Viewer {
                kind: ViewerKind::Citizen,
                name: None,
                commune_code: None,
            },
            crate::auth::Caller::Staff(s) => Viewer {
                kind: ViewerKind::Staff,
                name: Some(s.name.clone()),
                commune_code: s.commune.clone(),
            },
        }
    }

    /// One report, with its history.
    async fn report(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Report> {
        let view = state(ctx).citizens.view.read().expect("view lock");
        view.report(&id)
            .map(Report)
            .ok_or_else(|| error(Code::NotFound, format!("no report {}", id.as_str())))
    }

    /// Ideas of the idea box (hidden ones only for staff).
    async fn ideas(
        &self,
        ctx: &Context<'_>,
        filter: Option<IdeaFilter>,
        order_by: Option<IdeaOrder>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Idea>> {
        let f = filter.unwrap_or_default();
        let state = state(ctx);
        let staff = caller(ctx).staff().is_some();
        let now = Utc::now();
        let mut ideas: Vec<Idea> = {
            let view = state.citizens.view.read().expect("view lock");
            view.ideas
                .values()
                .filter(|i| {
                    (staff || i.visible(state.options.flags_to_hide))
                        && f.theme.is_none_or(|t| i.submitted.theme == t.into())
                        && f.state.is_none_or(|s| i.state == s.into())
                        && f.commune_code
                            .as_ref()
                            .is_none_or(|c| i.submitted.commune_code.as_ref() == Some(c))
                })
                .cloned()
                .map(Idea)
                .collect()
        };
        let key = |i: &Idea| (i.0.created, i.0.submitted.idea_id.clone());
        match order_by.unwrap_or_default() {
            IdeaOrder::Newest => ideas.sort_by_key(|i| std::cmp::Reverse(key(i))),
            IdeaOrder::Supports => {
                ideas.sort_by_key(|i| std::cmp::Reverse((i.0.supporters.len(), key(i))))
            }
            IdeaOrder::Trending => ideas.sort_by_key(|i| {
                std::cmp::Reverse((i.0.recent_supports(now, 7), i.0.supporters.len(), key(i)))
            }),
        }
        paginate(ideas, first, after)
    }

    /// One idea.
    /// Reference places staff keep up to date (digital gallery, coworking spaces,
    /// training sessions, childcare), by kind and commune; sessions in start order, the
    /// others by name.
    async fn places(
        &self,
        ctx: &Context<'_>,
        kind: Option<PlaceKind>,
        commune_code: Option<String>,
    ) -> async_graphql::Result<Vec<Place>> {
        let view = state(ctx).citizens.view.read().expect("view lock");
        let mut places: Vec<Place> = view
            .places
            .values()
            .filter(|p| kind.is_none_or(|k| PlaceKind::from(p.place.kind) == k))
            .filter(|p| {
                commune_code
                    .as_deref()
                    .is_none_or(|c| p.place.commune_code == c)
            })
            .map(Place::from)
            .collect();
        places.sort_by(|a, b| (a.starts_at, &a.name).cmp(&(b.starts_at, &b.name)));
        Ok(places)
    }

    /// The early-childhood one-stop shop: childcare facilities of a commune (or the whole
    /// valley) taking a child of `ageMonths`, only those with a free place when
    /// `withVacancies`; most vacancies first.
    async fn childcare_facilities(
        &self,
        ctx: &Context<'_>,
        commune_code: Option<String>,
        age_months: Option<i32>,
        #[graphql(default = false)] with_vacancies: bool,
    ) -> async_graphql::Result<Vec<Place>> {
        if age_months.is_some_and(|a| !(0..=72).contains(&a)) {
            return Err(error(
                Code::BadUserInput,
                "ageMonths must be between 0 and 72",
            ));
        }
        let view = state(ctx).citizens.view.read().expect("view lock");
        let mut places: Vec<Place> = view
            .places
            .values()
            .filter(|p| p.place.kind == citizen::PlaceKind::Childcare)
            .filter(|p| {
                commune_code
                    .as_deref()
                    .is_none_or(|c| p.place.commune_code == c)
            })
            .filter(|p| {
                age_months.is_none_or(|a| {
                    let a = a as u32;
                    p.place.age_min_months.is_none_or(|lo| lo <= a)
                        && p.place.age_max_months.is_none_or(|hi| a <= hi)
                })
            })
            .filter(|p| !with_vacancies || p.vacancies.is_some_and(|v| v > 0))
            .map(Place::from)
            .collect();
        places.sort_by(|a, b| b.vacancies.cmp(&a.vacancies).then(a.name.cmp(&b.name)));
        Ok(places)
    }

    async fn idea(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Idea> {
        let state = state(ctx);
        let seen_by = match caller(ctx).staff() {
            Some(_) => SeenBy::Staff,
            None => SeenBy::Public {
                flags_to_hide: state.options.flags_to_hide,
            },
        };
        let view = state.citizens.view.read().expect("view lock");
        view.idea(&id, seen_by)
            .map(Idea)
            .ok_or_else(|| error(Code::NotFound, format!("no idea {}", id.as_str())))
    }

    /// The open datasets (Licence Ouverte 2.0), with their metadata.
    #[graphql(
        complexity = "vallee_opendata::DATASETS.len() * (LAKE_QUERY_COST + child_complexity)"
    )]
    async fn datasets(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<super::open_data::Dataset>> {
        super::open_data::datasets(ctx).await
    }

    /// One open dataset: metadata and rows.
    #[graphql(complexity = "LAKE_QUERY_COST + child_complexity")]
    async fn dataset(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<super::open_data::Dataset> {
        super::open_data::dataset(ctx, &id).await
    }

    /// The latest reading of every bin.
    #[graphql(complexity = "LAKE_QUERY_COST + child_complexity")]
    async fn bins(
        &self,
        ctx: &Context<'_>,
        commune_code: Option<String>,
        min_filling_level: Option<f64>,
    ) -> async_graphql::Result<Vec<Bin>> {
        let rows = state(ctx)
            .sensors
            .bins(commune_code.as_deref(), min_filling_level)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Bin alerts (fill, fire, status, silent): the latest state of each episode.
    #[graphql(complexity = "LAKE_QUERY_COST + child_complexity")]
    async fn fill_alerts(
        &self,
        ctx: &Context<'_>,
        open: Option<bool>,
        commune_code: Option<String>,
    ) -> async_graphql::Result<Vec<Alert>> {
        let reader = Reader::of(ctx);
        let rows = state(ctx)
            .sensors
            .alerts(
                &reader,
                OutputTable::FillAlerts,
                open,
                commune_code.as_deref(),
            )
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The health of every bin sensor and weather station (in a commune if asked), those
    /// that sent anything and the registered ones never heard from: silent, stuck,
    /// damaged, low battery, weak signal, implausible; `problem` keeps those with it,
    /// `faulty` those with any. Thresholds: `[api.sensor_health]`.
    #[graphql(complexity = "LAKE_QUERY_COST + child_complexity")]
    async fn sensor_health(
        &self,
        ctx: &Context<'_>,
        commune_code: Option<String>,
        problem: Option<SensorProblem>,
        #[graphql(default = false)] faulty: bool,
    ) -> async_graphql::Result<Vec<SensorHealth>> {
        let all = current_health(ctx, commune_code.as_deref()).await?;
        Ok(all
            .into_iter()
            .filter(|h| !faulty || !h.problems.is_empty())
            .filter(|h| problem.is_none_or(|p| h.problems.contains(&p)))
            .collect())
    }

    /// Bins to collect before a time, with why: an open fire or fill alert, an open report
    /// of a citizen tied to it, or a current forecast full by then; none emptied since.
    /// `wasteKind` matches any of a bin's kinds.
    #[graphql(complexity = "LAKE_QUERY_COST + child_complexity")]
    async fn bins_to_collect(
        &self,
        ctx: &Context<'_>,
        before: DateTime<Utc>,
        commune_code: Option<String>,
        waste_kind: Option<String>,
    ) -> async_graphql::Result<Vec<BinToCollect>> {
        let reported = state(ctx)
            .citizens
            .view
            .read()
            .expect("view lock")
            .reported_bins();
        let rows = state(ctx)
            .sensors
            .bins_to_collect(
                before,
                commune_code.as_deref(),
                waste_kind.as_deref(),
                &reported,
            )
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// A day's collection rounds (today to 7 days ahead): the bins due before the crews'
    /// next working day, grouped by depot, kind and truck capacity, each round in a
    /// visiting order from its depot and back, within the depots' shifts. Bins no round
    /// can take are listed with why. Filters as `binsToCollect`.
    #[graphql(complexity = "LAKE_QUERY_COST + child_complexity")]
    async fn rounds(
        &self,
        ctx: &Context<'_>,
        date: NaiveDate,
        commune_code: Option<String>,
        waste_kind: Option<String>,
    ) -> async_graphql::Result<super::rounds::RoundPlan> {
        crate::rounds::check_date(date, Utc::now()).map_err(|m| error(Code::BadUserInput, m))?;
        if let Some(c) = &commune_code
            && communes::valley().by_code(c).is_none()
        {
            return Err(error(
                Code::BadUserInput,
                "communeCode is not a commune of the valley",
            ));
        }
        if waste_kind.as_ref().is_some_and(|k| k.len() > 40) {
            return Err(error(Code::BadUserInput, "wasteKind is too long"));
        }
        let state = state(ctx);
        let plan = state
            .rounds
            .day(state, date, commune_code.as_deref(), waste_kind.as_deref())
            .await?;
        Ok(super::rounds::RoundPlan::of(
            &plan,
            commune_code.as_deref(),
            waste_kind.as_deref(),
        ))
    }

    /// Staff: the vineyard partners, their parcels and where their alerts are pushed.
    async fn partners(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<VineyardPartner>> {
        if caller(ctx).staff().is_none() {
            return Err(error(Code::Forbidden, "only staff see the partners"));
        }
        Ok(state(ctx)
            .options
            .partners
            .iter()
            .map(|p| VineyardPartner {
                name: p.name.clone(),
                parcels: p.parcels.clone(),
                webhook_url: p.webhook_url.clone(),
                email: p.email.clone(),
            })
            .collect())
    }

    /// Staff: the field devices (in a commune if asked) of the register and of the
    /// configuration, by DevEUI, with each one's health as of now; `health` keeps the
    /// devices in that state (people counters, whose health is not judged, are then left
    /// out).
    #[graphql(complexity = "LAKE_QUERY_COST + child_complexity")]
    async fn devices(
        &self,
        ctx: &Context<'_>,
        commune_code: Option<String>,
        health: Option<super::devices::DeviceHealthFilter>,
    ) -> async_graphql::Result<Vec<super::devices::Device>> {
        if caller(ctx).staff().is_none() {
            return Err(error(
                Code::Forbidden,
                "only staff see the register of devices",
            ));
        }
        let mut devices: Vec<super::devices::Device> = {
            let view = state(ctx).citizens.view.read().expect("view lock");
            let configured = state(ctx)
                .options
                .devices
                .iter()
                .filter(|d| !view.devices.contains_key(&d.dev_eui.to_uppercase()))
                .map(super::devices::Device::from);
            let mut all: Vec<super::devices::Device> =
                view.devices.values().cloned().map(Into::into).collect();
            all.extend(configured);
            all.retain(|d| commune_code.as_deref().is_none_or(|c| d.commune_code == c));
            all.sort_by(|a, b| a.dev_eui.cmp(&b.dev_eui));
            all
        };
        if health.is_some() || ctx.look_ahead().field("health").exists() {
            let mut by_entity: std::collections::HashMap<String, SensorHealth> =
                current_health(ctx, commune_code.as_deref())
                    .await?
                    .into_iter()
                    .map(|h| (h.entity_id.to_string(), h))
                    .collect();
            for d in &mut devices {
                d.health = by_entity.remove(&d.entity_id);
            }
        }
        if let Some(filter) = health {
            devices.retain(|d| filter.keeps(d.health.as_ref()));
        }
        Ok(devices)
    }

    /// The collection fleet's depots, by name.
    async fn depots(&self, ctx: &Context<'_>) -> Vec<super::rounds::Depot> {
        let view = state(ctx).citizens.view.read().expect("view lock");
        let mut depots: Vec<super::rounds::Depot> =
            view.depots.values().cloned().map(Into::into).collect();
        depots.sort_by(|a, b| a.name.cmp(&b.name));
        depots
    }

    /// The collection fleet's trucks, by name.
    async fn trucks(&self, ctx: &Context<'_>) -> Vec<super::rounds::Truck> {
        let view = state(ctx).citizens.view.read().expect("view lock");
        let mut trucks: Vec<super::rounds::Truck> =
            view.trucks.values().cloned().map(Into::into).collect();
        trucks.sort_by(|a, b| a.name.cmp(&b.name));
        trucks
    }

    /// People counted per zone and window (`PT5M` or `PT1H`), windows starting in
    /// `[from, to)`; without `from` and `to`, the 6 hours before the newest window. Counts
    /// of 1 to 4 are withheld except for staff (see `Footfall`).
    #[graphql(complexity = "LAKE_QUERY_COST + child_complexity")]
    async fn footfall(
        &self,
        ctx: &Context<'_>,
        zone: Option<String>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        window: Option<String>,
    ) -> async_graphql::Result<Vec<Footfall>> {
        let range = check_range(from, to)?;
        let window = window_of(window)?;
        let reader = Reader::of(ctx);
        let rows = state(ctx)
            .sensors
            .footfall(&reader, zone.as_deref(), range, &window)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// How long visits lasted per zone and hour, hours in `[from, to)`; without `from` and
    /// `to`, the 24 hours before the newest.
    #[graphql(complexity = "LAKE_QUERY_COST + child_complexity")]
    async fn footfall_dwell(
        &self,
        ctx: &Context<'_>,
        zone: Option<String>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> async_graphql::Result<Vec<FootfallDwell>> {
        let range = check_range(from, to)?;
        let reader = Reader::of(ctx);
        let rows = state(ctx)
            .sensors
            .footfall_dwell(&reader, zone.as_deref(), range)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Visitors per site and hour, hours in `[from, to)`; without `from` and `to`, the 24
    /// hours before the newest.
    #[graphql(complexity = "2 * LAKE_QUERY_COST + child_complexity")]
    async fn site_presence(
        &self,
        ctx: &Context<'_>,
        site: Option<String>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> async_graphql::Result<Vec<SitePresence>> {
        let range = check_range(from, to)?;
        let reader = Reader::of(ctx);
        let rows = state(ctx)
            .sensors
            .site_presence(&reader, site.as_deref(), range)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Daily vine indicators per station, `from` and `to` included; without them, the 7
    /// days up to the newest.
    #[graphql(complexity = "LAKE_QUERY_COST + child_complexity")]
    async fn vine_indicators(
        &self,
        ctx: &Context<'_>,
        station: Option<String>,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> async_graphql::Result<Vec<VineIndicator>> {
        let range = match (from, to) {
            (Some(f), Some(t)) if t < f => {
                return Err(error(Code::BadUserInput, "`to` must not be before `from`"));
            }
            (Some(f), Some(t)) => Some((f, t)),
            (None, None) => None,
            _ => {
                return Err(error(
                    Code::BadUserInput,
                    "give both `from` and `to`, or neither",
                ));
            }
        };
        let rows = state(ctx)
            .sensors
            .vine_indicators(station.as_deref(), range)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Vine alerts (frost, mildew): the latest state of each episode, for the parcels the
    /// caller may see (a partner its own, everyone the parcels shared with the public) and
    /// the stations' own.
    #[graphql(complexity = "LAKE_QUERY_COST + child_complexity")]
    async fn vine_alerts(
        &self,
        ctx: &Context<'_>,
        open: Option<bool>,
    ) -> async_graphql::Result<Vec<Alert>> {
        let reader = Reader::of(ctx);
        let rows = state(ctx)
            .sensors
            .alerts(&reader, OutputTable::VineAlerts, open, None)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

/// Every bin sensor's and weather station's health as of now (in a commune if asked), the
/// register's intervals applied; DevEUIs for staff only.
async fn current_health(
    ctx: &Context<'_>,
    commune_code: Option<&str>,
) -> async_graphql::Result<Vec<SensorHealth>> {
    let state = state(ctx);
    let register = {
        let view = state.citizens.view.read().expect("view lock");
        crate::sensors::health::registered(&view, &state.options.devices)
    };
    let all = state
        .sensors
        .sensor_health(
            Utc::now(),
            commune_code,
            &state.options.sensor_health,
            &register,
        )
        .await?;
    let staff = caller(ctx).staff().is_some();
    Ok(all
        .into_iter()
        .map(SensorHealth::from)
        .map(|mut h| {
            if !staff {
                h.dev_eui = None;
            }
            h
        })
        .collect())
}
