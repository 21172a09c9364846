//! GraphQL types of the sensor results: bins, alerts, bins to collect, footfall, dwell
//! times, site presence and vine indicators, each mapped from the lake's contract rows
//! (`vallee_schemas::tables`) that [`crate::sensors`] reads.

use async_graphql::{ComplexObject, Context, Enum, ID, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use vallee_schemas::tables::{self as contract, AlertRow};

use super::{Code, error};
use crate::sensors;

/// Kind of an alert.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "vallee_schemas::tables::AlertKind")]
pub enum AlertKind {
    /// A bin at or above its fullness threshold.
    Fill,
    /// A bin at 60 °C or more, or reported burning.
    Fire,
    /// A bin vandalized, dropped or moved.
    Status,
    /// A bin silent for 24 h of event time.
    Silent,
    /// Frost risk on a vineyard parcel.
    Frost,
    /// Downy-mildew risk of a parcel changed (3-10 rule).
    DownyMildew,
    /// Powdery-mildew risk of a parcel changed (Gubler-Thomas index).
    PowderyMildew,
    /// Another kind (newer stages may add some).
    Other,
}

impl AlertKind {
    /// The kind as the stage writes it (`fill`, `downy_mildew`…; anything else is OTHER).
    pub fn parse(s: &str) -> Self {
        contract::AlertKind::parse(s).into()
    }
}

/// Whether an alert episode is ongoing.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "vallee_schemas::tables::AlertState")]
pub enum AlertState {
    Open,
    Cleared,
}

impl AlertState {
    /// From the stage's `open` / `cleared`.
    pub fn parse(s: &str) -> Self {
        contract::AlertState::parse(s).into()
    }
}

/// A mildew risk level.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "vallee_schemas::tables::RiskLevel")]
pub enum RiskLevel {
    Low,
    Moderate,
    High,
}

impl RiskLevel {
    /// The level as the stage writes it (`low`, `moderate`, `high`).
    pub fn parse(s: &str) -> Option<Self> {
        contract::RiskLevel::parse(s).map(Into::into)
    }
}

/// What a sensor is.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorKind {
    Bin,
    WeatherStation,
}

/// What is wrong with a sensor.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorProblem {
    /// No reading for `[api.sensor_health] silent_intervals` expected intervals.
    Silent,
    /// The same level for hours (a bin sensor blinded by a bag).
    Stuck,
    /// The bin says it is vandalized, burning or damaged.
    Damaged,
    LowBattery,
    WeakSignal,
    /// Emptied with no garbage truck nearby, or readings refused as out of range.
    Implausible,
}

impl From<crate::sensors::health::Problem> for SensorProblem {
    fn from(p: crate::sensors::health::Problem) -> Self {
        use crate::sensors::health::Problem;
        match p {
            Problem::Silent => SensorProblem::Silent,
            Problem::Stuck => SensorProblem::Stuck,
            Problem::Damaged => SensorProblem::Damaged,
            Problem::LowBattery => SensorProblem::LowBattery,
            Problem::WeakSignal => SensorProblem::WeakSignal,
            Problem::Implausible => SensorProblem::Implausible,
        }
    }
}

/// A sensor's health, from what it sent and the radio metadata kept with it.
#[derive(SimpleObject, Debug, Clone)]
pub struct SensorHealth {
    pub entity_id: ID,
    /// Staff only (null for others): its device in the register.
    pub dev_eui: Option<ID>,
    pub kind: SensorKind,
    pub commune_code: Option<String>,
    /// Its latest reading's time; null: registered, never heard from.
    pub last_seen: Option<DateTime<Utc>>,
    pub readings_last_24_hours: i64,
    /// Share, 0 to 1 (from its field door's uplinks).
    pub battery_level: Option<f64>,
    pub rssi: Option<f64>,
    pub snr: Option<f64>,
    pub gateway_count: Option<i64>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// Level falls with no garbage truck nearby, over the last `stuck_hours`.
    pub emptied_without_truck: i64,
    /// Readings refused as out of range (dead letters), over the last `stuck_hours`.
    pub refused_readings: i64,
    /// Empty: working.
    pub problems: Vec<SensorProblem>,
}

impl From<crate::sensors::health::Health> for SensorHealth {
    fn from(h: crate::sensors::health::Health) -> Self {
        SensorHealth {
            entity_id: ID(h.entity_id),
            dev_eui: h.dev_eui.map(ID),
            kind: match h.kind {
                crate::sensors::health::SensorKind::Bin => SensorKind::Bin,
                crate::sensors::health::SensorKind::WeatherStation => SensorKind::WeatherStation,
            },
            commune_code: h.commune_code,
            last_seen: h.last_seen,
            readings_last_24_hours: h.readings_24h,
            battery_level: h.battery,
            rssi: h.rssi,
            snr: h.snr,
            gateway_count: h.gateways,
            latitude: h.latitude,
            longitude: h.longitude,
            emptied_without_truck: h.emptied_without_truck,
            refused_readings: h.refused_readings,
            problems: h.problems.into_iter().map(Into::into).collect(),
        }
    }
}

/// The latest reading of a connected bin.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub struct Bin {
    pub id: ID,
    pub commune_code: Option<String>,
    pub filling_level: f64,
    pub temperature: Option<f64>,
    pub status: Option<String>,
    pub waste_kind: Option<String>,
    pub date_observed: DateTime<Utc>,
    pub latitude: f64,
    pub longitude: f64,
    #[graphql(skip)]
    pub own_threshold: Option<f64>,
}

#[ComplexObject]
impl Bin {
    /// Fullness threshold in force (the bin's own, else the default 0.8).
    async fn threshold(&self) -> f64 {
        self.own_threshold.unwrap_or(0.8)
    }
}

impl From<sensors::BinRow> for Bin {
    fn from(r: sensors::BinRow) -> Self {
        Bin {
            id: ID(r.id),
            commune_code: r.commune_code,
            filling_level: r.filling_level,
            temperature: r.temperature,
            status: r.status,
            waste_kind: r.waste_kind,
            date_observed: r.date_observed,
            latitude: r.latitude,
            longitude: r.longitude,
            own_threshold: r.threshold,
        }
    }
}

/// Loads bins by id in batches: one lake query per batch of `bin` fields in an answer.
pub struct BinLoader(pub std::sync::Arc<crate::ApiState>);

impl async_graphql::dataloader::Loader<String> for BinLoader {
    type Value = Bin;
    type Error = std::sync::Arc<crate::Error>;

    async fn load(
        &self,
        keys: &[String],
    ) -> Result<std::collections::HashMap<String, Bin>, Self::Error> {
        let rows = self
            .0
            .sensors
            .bins_by_id(keys)
            .await
            .map_err(std::sync::Arc::new)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.id.clone(), Bin::from(r)))
            .collect())
    }
}

/// The bin of an entity id, through the batching loader.
async fn bin_of(ctx: &Context<'_>, id: &str) -> async_graphql::Result<Option<Bin>> {
    let loader = ctx.data_unchecked::<async_graphql::dataloader::DataLoader<BinLoader>>();
    loader.load_one(id.to_string()).await.map_err(|e| match *e {
        crate::Error::Busy(_) => super::rate_limited(1),
        _ => error(Code::Internal, e.to_string()),
    })
}

/// An alert episode's latest state (fill alerts and vine alerts share it).
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub struct Alert {
    /// Stable per episode: consumers dedupe on it.
    pub alert_id: ID,
    pub kind: AlertKind,
    /// The bin (or parcel) concerned.
    pub entity_id: String,
    pub state: AlertState,
    pub date_observed: DateTime<Utc>,
    /// Why it cleared: level_drop, collection, status_ok, reporting_again.
    pub clear_reason: Option<String>,
    pub filling_level: Option<f64>,
    pub commune_code: Option<String>,
    /// Mildew alerts: the risk level reached (a cleared episode is back to LOW).
    pub risk_level: Option<RiskLevel>,
}

#[ComplexObject]
impl Alert {
    /// The bin's latest reading (fill alerts; batched across the answer).
    #[graphql(complexity = "crate::limits::LAKE_QUERY_COST + child_complexity")]
    async fn bin(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Bin>> {
        bin_of(ctx, &self.entity_id).await
    }
}

impl From<AlertRow> for Alert {
    fn from(r: AlertRow) -> Self {
        Alert {
            alert_id: ID(r.alert_id),
            kind: AlertKind::parse(r.kind),
            entity_id: r.entity_id,
            state: AlertState::parse(r.state),
            date_observed: r.date_observed,
            clear_reason: r.clear_reason.map(str::to_string),
            filling_level: r.filling_level,
            commune_code: r.commune_code,
            risk_level: r.risk_level.and_then(RiskLevel::parse),
        }
    }
}

/// Why a bin is on the list to collect.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum CollectReason {
    /// Its fire alert is open.
    FireAlert,
    /// Its fill alert is open: full now.
    FillAlert,
    /// A citizen reported it overflowing (an open report tied to it).
    CitizenReport,
    /// Its current forecast reaches its threshold before the asked time.
    Forecast,
}

impl From<sensors::CollectReason> for CollectReason {
    fn from(r: sensors::CollectReason) -> Self {
        match r {
            sensors::CollectReason::FireAlert => CollectReason::FireAlert,
            sensors::CollectReason::FillAlert => CollectReason::FillAlert,
            sensors::CollectReason::CitizenReport => CollectReason::CitizenReport,
            sensors::CollectReason::Forecast => CollectReason::Forecast,
        }
    }
}

/// A bin to collect: on fire, full, or predicted full before the asked time; never one
/// emptied since (a level drop or a collection the trucks proved).
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub struct BinToCollect {
    pub entity_id: ID,
    pub commune_code: Option<String>,
    /// The kinds of waste, comma-separated (see `wasteKinds`).
    pub waste_kind: Option<String>,
    pub waste_kinds: Vec<String>,
    /// Its latest reading's level.
    pub filling_level: f64,
    /// The threshold its forecast is made against (null: no current forecast).
    pub threshold: Option<f64>,
    /// Fill rate since its last emptying (null: no current forecast, fewer than two
    /// readings since).
    pub fill_rate_per_hour: Option<f64>,
    /// When it reaches its threshold (null: already past it, not filling, or no forecast).
    pub full_at: Option<DateTime<Utc>>,
    /// Its latest reading's time.
    pub date_observed: DateTime<Utc>,
    /// Why it is on the list, the most urgent first.
    pub reasons: Vec<CollectReason>,
}

#[ComplexObject]
impl BinToCollect {
    /// The bin's latest reading (batched across the answer).
    #[graphql(complexity = "crate::limits::LAKE_QUERY_COST + child_complexity")]
    async fn bin(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Bin>> {
        bin_of(ctx, &self.entity_id).await
    }
}

impl From<sensors::ToCollect> for BinToCollect {
    fn from(c: sensors::ToCollect) -> Self {
        let waste_kinds = c.waste_kinds();
        BinToCollect {
            entity_id: ID(c.bin.id),
            commune_code: c.bin.commune_code,
            waste_kind: c.bin.waste_kind,
            waste_kinds,
            filling_level: c.bin.filling_level,
            threshold: c.forecast.as_ref().map(|f| f.threshold),
            fill_rate_per_hour: c.forecast.as_ref().map(|f| f.rate_per_hour),
            full_at: c.forecast.as_ref().and_then(|f| f.full_at),
            date_observed: c.bin.date_observed,
            reasons: c.reasons.into_iter().map(Into::into).collect(),
        }
    }
}

/// People counted in a zone over a window (CrowdFlowObserved). For anyone but staff, a
/// count of 1 to 4 people is withheld (null, `suppressed`), and so is an hour whose count
/// would let a withheld 5-minute window of it be recomputed.
#[derive(SimpleObject, Debug, Clone)]
pub struct Footfall {
    pub zone: String,
    /// ISO 8601 duration: PT5M or PT1H.
    pub window: String,
    pub date_observed_from: DateTime<Utc>,
    pub date_observed_to: DateTime<Utc>,
    /// Null when withheld (`suppressed`).
    pub people_count: Option<i64>,
    /// The zone's capacity was reached (null when the count is withheld: it bounds it).
    pub congested: Option<bool>,
    /// The count is withheld (statistical confidentiality, k = 5).
    pub suppressed: bool,
    pub revision: i32,
    /// True once the watermark passed the window's end.
    #[graphql(name = "final")]
    pub is_final: bool,
}

impl From<sensors::FootfallSeen> for Footfall {
    fn from(sensors::FootfallSeen { row: r, people }: sensors::FootfallSeen) -> Self {
        Footfall {
            zone: r.zone,
            window: r.window,
            date_observed_from: r.from,
            date_observed_to: r.to,
            people_count: people,
            congested: people.is_some().then_some(r.congested),
            suppressed: people.is_none(),
            revision: r.revision,
            is_final: r.is_final,
        }
    }
}

/// How long visits lasted in a zone during an hour (a visit: a device's sightings with no
/// gap longer than `sessionGap`; visits are cut at hour boundaries). For anyone but staff,
/// counts of 1 to 4 are withheld (null, `suppressed`), the visits too when a withheld
/// bucket could be recomputed from them, and the mean and median with any bucket.
#[derive(SimpleObject, Debug, Clone)]
pub struct FootfallDwell {
    pub zone: String,
    pub hour: DateTime<Utc>,
    /// ISO 8601 duration, e.g. PT10M.
    pub session_gap: String,
    pub visits: Option<i64>,
    pub dwell_under_5_min: Option<i64>,
    pub dwell_5_to_15_min: Option<i64>,
    pub dwell_15_to_30_min: Option<i64>,
    pub dwell_30_to_60_min: Option<i64>,
    pub mean_dwell_seconds: Option<f64>,
    pub median_dwell_minutes: Option<i64>,
    /// Something is withheld (statistical confidentiality, k = 5).
    pub suppressed: bool,
    pub revision: i32,
}

impl From<sensors::DwellSeen> for FootfallDwell {
    fn from(sensors::DwellSeen { row: r, shown }: sensors::DwellSeen) -> Self {
        let [under_5, from_5, from_15, from_30] = shown.buckets;
        FootfallDwell {
            zone: r.zone,
            hour: r.hour,
            session_gap: r.session_gap,
            visits: shown.visits,
            dwell_under_5_min: under_5,
            dwell_5_to_15_min: from_5,
            dwell_15_to_30_min: from_15,
            dwell_30_to_60_min: from_30,
            mean_dwell_seconds: shown.mean_seconds,
            median_dwell_minutes: shown.median_minutes,
            suppressed: shown.suppressed(),
            revision: r.revision,
        }
    }
}

/// Visitors of a site in an hour (TourismPresenceObserved). For anyone but staff, counts
/// of 1 to 4 are withheld (null, `suppressed`), and the check-ins' total too when a
/// point's withheld check-ins could be recomputed from it.
#[derive(SimpleObject, Debug, Clone)]
pub struct SitePresence {
    pub site: String,
    /// INSEE code of the site's commune.
    pub location_code: String,
    pub hour: DateTime<Utc>,
    pub visitor_count: Option<i64>,
    pub ar_checkins: Option<i64>,
    /// AR-trail check-ins per point of the trail.
    pub ar_checkins_by_point: Vec<PointCheckins>,
    /// A count of this hour is withheld (statistical confidentiality, k = 5).
    pub suppressed: bool,
    pub revision: i32,
    #[graphql(name = "final")]
    pub is_final: bool,
    /// How long visits lasted, for a site with beacons (its gateway publishes sightings on
    /// the beacons stream with the site's id as `zone`); null for counters alone, which
    /// send no per-visitor signal.
    pub dwell: Option<FootfallDwell>,
}

/// AR-trail check-ins at one point.
#[derive(SimpleObject, Debug, Clone)]
pub struct PointCheckins {
    pub point: String,
    /// Null when withheld (`suppressed`).
    pub checkins: Option<i64>,
    pub suppressed: bool,
}

impl From<sensors::SiteHour> for SitePresence {
    fn from(hour: sensors::SiteHour) -> Self {
        let sensors::SiteHour {
            presence: r,
            shown,
            dwell,
        } = hour;
        SitePresence {
            suppressed: shown.suppressed(),
            site: r.site,
            location_code: r.location_code,
            hour: r.hour,
            visitor_count: shown.visitors,
            ar_checkins: shown.ar_checkins,
            ar_checkins_by_point: (r.ar_checkins_by_point.into_iter())
                .zip(shown.ar_checkins_by_point)
                .map(|(p, checkins)| PointCheckins {
                    point: p.point,
                    checkins,
                    suppressed: checkins.is_none(),
                })
                .collect(),
            revision: r.revision,
            is_final: r.is_final,
            dwell: dwell.map(Into::into),
        }
    }
}

/// Daily vine indicators of a weather station (local day, Europe/Paris).
#[derive(SimpleObject, Debug, Clone)]
pub struct VineIndicator {
    pub station: String,
    pub day: NaiveDate,
    pub tmin: f64,
    pub tmax: f64,
    pub tmean: f64,
    pub rain_mm: f64,
    /// Growing degree days, base 10 °C, since 1 April.
    pub growing_degree_days: f64,
    pub winkler_index: f64,
    pub huglin_index: f64,
    /// Oospore maturation degree days, base 8 °C, since 1 January.
    pub oospore_degree_days: f64,
    /// Downy mildew "3-10" conditions met.
    pub downy_mildew_310: bool,
    /// Gubler-Thomas powdery mildew index (0–100).
    pub gubler_thomas_index: i32,
}

impl From<contract::VineRow> for VineIndicator {
    fn from(r: contract::VineRow) -> Self {
        VineIndicator {
            station: r.station,
            day: r.day,
            tmin: r.tmin,
            tmax: r.tmax,
            tmean: r.tmean,
            rain_mm: r.rain_mm,
            growing_degree_days: r.gdd,
            winkler_index: r.winkler,
            huglin_index: r.huglin,
            oospore_degree_days: r.oospore,
            downy_mildew_310: r.downy,
            gubler_thomas_index: r.gubler_thomas,
        }
    }
}
