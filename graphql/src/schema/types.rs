//! GraphQL object, input and enum types.

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use vallee_schemas::citizen;
use vallee_schemas::communes;

use super::{Code, caller, error, state};
use crate::citizen::view;
use crate::sensors;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "vallee_schemas::citizen::Competence")]
pub enum Competence {
    Commune,
    Intercommunality,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "vallee_schemas::citizen::ReportStatus")]
pub enum ReportStatus {
    Open,
    Closed,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "vallee_schemas::citizen::Substatus")]
pub enum Substatus {
    Acknowledged,
    InProgress,
    Scheduled,
    Fixed,
    Duplicate,
    NotResponsible,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "vallee_schemas::citizen::IdeaTheme")]
pub enum IdeaTheme {
    DigitalServices,
    DigitalCommunication,
    LocalEconomy,
    WineSector,
    TourismCulture,
    DigitalForAll,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "vallee_schemas::citizen::IdeaState")]
pub enum IdeaState {
    NotAnswered,
    Evaluating,
    Accepted,
    Rejected,
    Withdrawn,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "vallee_schemas::citizen::FlagReason")]
pub enum FlagReason {
    Spam,
    Offensive,
    DoesNotBelong,
}

/// One row of a vineyard partner's feed.
#[derive(SimpleObject, Debug, Clone)]
pub struct PartnerFeedItem {
    /// `parcelRecord`, `weather`, `indicators` or `alert`.
    pub feed: String,
    /// The row's columns, as in `GET /feeds/vineyard`.
    pub row: async_graphql::Json<serde_json::Map<String, serde_json::Value>>,
    /// Resumes the feed after this item's batch.
    pub cursor: String,
}

/// Kinds of reference places staff keep up to date.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "vallee_schemas::citizen::PlaceKind")]
pub enum PlaceKind {
    /// A place of the digital gallery (public digital access).
    DigitalGallery,
    Coworking,
    /// A digital-training session.
    TrainingSession,
    /// A childcare facility, with its vacancies.
    Childcare,
}

/// A reference place (or training session), as staff last published it.
#[derive(SimpleObject, Debug, Clone)]
pub struct Place {
    pub id: ID,
    pub kind: PlaceKind,
    pub name: String,
    /// INSEE code of the commune.
    pub commune_code: String,
    pub address: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// OpenStreetMap `opening_hours` syntax.
    pub opening_hours: Option<String>,
    /// The place's public phone or email.
    pub contact: Option<String>,
    pub website: Option<String>,
    pub description: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub seats: Option<i32>,
    /// Childcare: places, and the ages taken (months).
    pub capacity: Option<i32>,
    pub age_min_months: Option<i32>,
    pub age_max_months: Option<i32>,
    /// Childcare: places free right now, as staff last said.
    pub vacancies: Option<i32>,
    pub vacancies_updated_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

fn int(v: Option<u32>) -> Option<i32> {
    v.map(|v| i32::try_from(v).unwrap_or(i32::MAX))
}

impl From<view::Place> for Place {
    fn from(p: view::Place) -> Self {
        Place::from(&p)
    }
}

impl From<&view::Place> for Place {
    fn from(p: &view::Place) -> Self {
        let q = &p.place;
        Place {
            id: ID(q.place_id.clone()),
            kind: q.kind.into(),
            name: q.name.clone(),
            commune_code: q.commune_code.clone(),
            address: q.address.clone(),
            latitude: q.lat,
            longitude: q.long,
            opening_hours: q.opening_hours.clone(),
            contact: q.contact.clone(),
            website: q.website.clone(),
            description: q.description.clone(),
            starts_at: q.starts_at,
            ends_at: q.ends_at,
            seats: int(q.seats),
            capacity: int(q.capacity),
            age_min_months: int(q.age_min_months),
            age_max_months: int(q.age_max_months),
            vacancies: int(p.vacancies),
            vacancies_updated_at: p.vacancies_at,
            updated_at: p.updated,
        }
    }
}

/// Order of the idea list.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum IdeaOrder {
    /// Most supported first.
    Supports,
    /// Newest first.
    #[default]
    Newest,
    /// Most supported over the last 7 days first.
    Trending,
}

/// Kind of an alert.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
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
    pub fn parse(s: &str) -> Self {
        match s {
            "fill" => AlertKind::Fill,
            "fire" => AlertKind::Fire,
            "status" => AlertKind::Status,
            "silent" => AlertKind::Silent,
            "frost" => AlertKind::Frost,
            "downy_mildew" => AlertKind::DownyMildew,
            "powdery_mildew" => AlertKind::PowderyMildew,
            _ => AlertKind::Other,
        }
    }
}

/// Whether an alert episode is ongoing.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum AlertState {
    Open,
    Cleared,
}

impl AlertState {
    /// From the stage's `open` / `cleared`.
    pub fn parse(s: &str) -> Self {
        if s == "open" {
            AlertState::Open
        } else {
            AlertState::Cleared
        }
    }
}

/// One entry of the reports' catalogue (Open311 service).
#[derive(SimpleObject, Debug, Clone)]
pub struct Service {
    pub service_code: String,
    /// Name shown to citizens, in French.
    pub service_name: String,
    pub group: String,
    pub keywords: Vec<String>,
    pub competence: Competence,
    /// Days within which the competent agency commits to act.
    pub expected_delay_days: i32,
}

impl From<&citizen::Service> for Service {
    fn from(s: &citizen::Service) -> Self {
        Service {
            service_code: s.code.into(),
            service_name: s.name.into(),
            group: s.group.into(),
            keywords: s.keywords.iter().map(|k| k.to_string()).collect(),
            competence: s.competence.into(),
            expected_delay_days: s.delay_days as i32,
        }
    }
}

/// A commune of the valley (reference data).
#[derive(SimpleObject, Debug, Clone)]
pub struct Commune {
    /// INSEE code.
    pub code: ID,
    pub name: String,
    pub population: i32,
    pub latitude: f64,
    pub longitude: f64,
}

impl From<&communes::Commune> for Commune {
    fn from(c: &communes::Commune) -> Self {
        Commune {
            code: ID(c.insee_code.clone()),
            name: c.name.clone(),
            population: c.population_municipale as i32,
            latitude: c.centre.lat,
            longitude: c.centre.lon,
        }
    }
}

/// One status change of a report.
#[derive(SimpleObject, Debug, Clone)]
pub struct HistoryEntry {
    pub status: ReportStatus,
    pub substatus: Option<Substatus>,
    pub status_notes: Option<String>,
    pub at: DateTime<Utc>,
}

/// Contact details left by a reporter (staff only).
#[derive(SimpleObject, Debug, Clone, Default)]
pub struct ContactDetails {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

impl From<crate::citizen::contacts::Contact> for ContactDetails {
    fn from(c: crate::citizen::contacts::Contact) -> Self {
        ContactDetails {
            email: c.email,
            phone: c.phone,
            first_name: c.first_name,
            last_name: c.last_name,
        }
    }
}

/// A citizen's report (Open311 service request).
#[derive(Debug, Clone)]
pub struct Report(pub view::Report);

impl From<view::Report> for Report {
    fn from(r: view::Report) -> Self {
        Report(r)
    }
}

#[Object]
impl Report {
    async fn id(&self) -> ID {
        ID(self.0.submitted.report_id.clone())
    }
    /// Open311 `service_request_id` (same as `id`).
    async fn service_request_id(&self) -> &str {
        &self.0.submitted.report_id
    }
    async fn service_code(&self) -> &str {
        &self.0.submitted.service_code
    }
    async fn service_name(&self) -> Option<&str> {
        citizen::service(&self.0.submitted.service_code).map(|s| s.name)
    }
    async fn description(&self) -> &str {
        &self.0.submitted.description
    }
    async fn lat(&self) -> f64 {
        self.0.submitted.lat
    }
    async fn long(&self) -> f64 {
        self.0.submitted.long
    }
    async fn address_string(&self) -> Option<&str> {
        self.0.submitted.address_string.as_deref()
    }
    async fn media_url(&self) -> Option<&str> {
        self.0.submitted.media_url.as_deref()
    }
    async fn status(&self) -> ReportStatus {
        self.0.status.into()
    }
    async fn substatus(&self) -> Option<Substatus> {
        self.0.substatus.map(Into::into)
    }
    async fn status_notes(&self) -> Option<&str> {
        self.0.status_notes.as_deref()
    }
    /// INSEE code of the commune the report is located in.
    async fn commune_code(&self) -> &str {
        &self.0.submitted.commune_code
    }
    async fn agency_responsible(&self) -> &str {
        &self.0.submitted.agency_responsible
    }
    async fn requested_datetime(&self) -> DateTime<Utc> {
        self.0.requested
    }
    async fn updated_datetime(&self) -> DateTime<Utc> {
        self.0.updated
    }
    async fn expected_datetime(&self) -> DateTime<Utc> {
        self.0.submitted.expected_datetime
    }
    /// Citizens who said "me too".
    async fn followers(&self) -> i32 {
        self.0.followers.len() as i32
    }
    /// Whether the caller follows it.
    async fn followed_by_me(&self, ctx: &Context<'_>) -> bool {
        match caller(ctx) {
            crate::auth::Caller::Citizen { pseudonym } => self.0.followers.contains(pseudonym),
            _ => false,
        }
    }
    async fn history(&self) -> Vec<HistoryEntry> {
        self.0
            .history
            .iter()
            .map(|h| HistoryEntry {
                status: h.status.into(),
                substatus: h.substatus.map(Into::into),
                status_notes: h.status_notes.clone(),
                at: h.at,
            })
            .collect()
    }
    /// The reporter's contact details: staff of the competent scope only.
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ContactDetails>> {
        let Some(staff) = caller(ctx).staff() else {
            return Err(error(Code::Forbidden, "contact details are for staff only"));
        };
        if staff
            .commune
            .as_deref()
            .is_some_and(|c| c != self.0.submitted.commune_code)
        {
            return Err(error(
                Code::Forbidden,
                "this report is in another commune than yours",
            ));
        }
        Ok(state(ctx)
            .contacts
            .get(&self.0.submitted.report_id)?
            .map(Into::into))
    }
}

/// A comment on an idea.
#[derive(SimpleObject, Debug, Clone)]
pub struct Comment {
    pub id: ID,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

impl From<&view::Comment> for Comment {
    fn from(c: &view::Comment) -> Self {
        Comment {
            id: ID(c.id.clone()),
            body: c.body.clone(),
            created_at: c.at,
        }
    }
}

/// An idea of the idea box.
#[derive(Debug, Clone)]
pub struct Idea(pub view::Idea);

impl From<view::Idea> for Idea {
    fn from(i: view::Idea) -> Self {
        Idea(i)
    }
}

/// Supports an idea of this commune (`None`: the whole valley) needs to be eligible.
pub fn support_threshold(options: &crate::ApiOptions, commune: Option<&str>) -> i32 {
    let valley = communes::valley();
    let population = commune
        .and_then(|c| valley.by_code(c))
        .map_or(valley.population(), |c| c.population_municipale);
    let n = (f64::from(population) * options.supports_per_inhabitant).ceil() as i32;
    n.max(options.min_supports_for_eligibility as i32)
}

#[Object]
impl Idea {
    async fn id(&self) -> ID {
        ID(self.0.submitted.idea_id.clone())
    }
    async fn title(&self) -> &str {
        &self.0.submitted.title
    }
    async fn body(&self) -> &str {
        &self.0.submitted.body
    }
    async fn theme(&self) -> IdeaTheme {
        self.0.submitted.theme.into()
    }
    async fn commune_code(&self) -> Option<&str> {
        self.0.submitted.commune_code.as_deref()
    }
    async fn state(&self) -> IdeaState {
        self.0.state.into()
    }
    /// The official answer.
    async fn answer(&self) -> Option<&str> {
        self.0.answer.as_deref()
    }
    async fn supports(&self) -> i32 {
        self.0.supporters.len() as i32
    }
    /// Supports needed to be eligible (proportional to the commune's population).
    async fn support_threshold(&self, ctx: &Context<'_>) -> i32 {
        support_threshold(
            &state(ctx).options,
            self.0.submitted.commune_code.as_deref(),
        )
    }
    async fn eligible(&self, ctx: &Context<'_>) -> bool {
        self.0.supporters.len() as i32
            >= support_threshold(
                &state(ctx).options,
                self.0.submitted.commune_code.as_deref(),
            )
    }
    async fn supported_by_me(&self, ctx: &Context<'_>) -> bool {
        match caller(ctx) {
            crate::auth::Caller::Citizen { pseudonym } => self.0.supporters.contains_key(pseudonym),
            _ => false,
        }
    }
    /// Whether the caller wrote it.
    async fn mine(&self, ctx: &Context<'_>) -> bool {
        matches!(caller(ctx), crate::auth::Caller::Citizen { pseudonym } if *pseudonym == self.0.submitted.author)
    }
    async fn comments(&self) -> Vec<Comment> {
        self.0.comments.iter().map(Comment::from).collect()
    }
    /// Distinct citizens who flagged it.
    async fn flags(&self) -> i32 {
        self.0.flags.len() as i32
    }
    /// Hidden from the public (flagged, pre-moderated or hidden by a moderator).
    async fn hidden(&self, ctx: &Context<'_>) -> bool {
        !self.0.visible(state(ctx).options.flags_to_hide)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated
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
    type Error = std::sync::Arc<String>;

    async fn load(
        &self,
        keys: &[String],
    ) -> Result<std::collections::HashMap<String, Bin>, Self::Error> {
        let rows = self
            .0
            .sensors
            .bins_by_id(keys)
            .await
            .map_err(|e| std::sync::Arc::new(e.to_string()))?;
        Ok(rows
            .into_iter()
            .map(|r| (r.id.clone(), Bin::from(r)))
            .collect())
    }
}

/// The bin of an entity id, through the batching loader.
async fn bin_of(ctx: &Context<'_>, id: &str) -> async_graphql::Result<Option<Bin>> {
    let loader = ctx.data_unchecked::<async_graphql::dataloader::DataLoader<BinLoader>>();
    loader
        .load_one(id.to_string())
        .await
        .map_err(|e| error(Code::Internal, e.as_str()))
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
        vallee_schemas::tables::RiskLevel::parse(s).map(Into::into)
    }
}

#[ComplexObject]
impl Alert {
    /// The bin's latest reading (fill alerts; batched across the answer).
    async fn bin(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Bin>> {
        bin_of(ctx, &self.entity_id).await
    }
}

impl From<sensors::AlertRow> for Alert {
    fn from(r: sensors::AlertRow) -> Self {
        Alert {
            alert_id: ID(r.alert_id),
            kind: AlertKind::parse(&r.kind),
            entity_id: r.entity_id,
            state: AlertState::parse(&r.state),
            date_observed: r.date_observed,
            clear_reason: r.clear_reason,
            filling_level: r.filling_level,
            commune_code: r.commune_code,
            risk_level: r.risk_level.as_deref().and_then(RiskLevel::parse),
        }
    }
}

/// A bin to collect: full already, or predicted full before the asked time.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub struct BinToCollect {
    pub entity_id: ID,
    pub commune_code: Option<String>,
    pub waste_kind: Option<String>,
    pub filling_level: f64,
    pub threshold: f64,
    pub fill_rate_per_hour: f64,
    /// When it reaches its threshold (null: already past it or not filling).
    pub full_at: Option<DateTime<Utc>>,
    pub date_observed: DateTime<Utc>,
}

#[ComplexObject]
impl BinToCollect {
    /// The bin's latest reading (batched across the answer).
    async fn bin(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Bin>> {
        bin_of(ctx, &self.entity_id).await
    }
}

impl From<sensors::ForecastRow> for BinToCollect {
    fn from(r: sensors::ForecastRow) -> Self {
        BinToCollect {
            entity_id: ID(r.entity_id),
            commune_code: r.commune_code,
            waste_kind: r.waste_kind,
            filling_level: r.filling_level,
            threshold: r.threshold,
            fill_rate_per_hour: r.fill_rate_per_hour,
            full_at: r.full_at,
            date_observed: r.date_observed,
        }
    }
}

/// People counted in a zone over a window (CrowdFlowObserved).
#[derive(SimpleObject, Debug, Clone)]
pub struct Footfall {
    pub zone: String,
    /// ISO 8601 duration: PT5M or PT1H.
    pub window: String,
    pub date_observed_from: DateTime<Utc>,
    pub date_observed_to: DateTime<Utc>,
    pub people_count: i64,
    pub congested: bool,
    pub revision: i32,
    /// True once the watermark passed the window's end.
    #[graphql(name = "final")]
    pub is_final: bool,
}

impl From<sensors::FootfallRow> for Footfall {
    fn from(r: sensors::FootfallRow) -> Self {
        Footfall {
            zone: r.zone,
            window: r.window,
            date_observed_from: r.date_observed_from,
            date_observed_to: r.date_observed_to,
            people_count: r.people_count,
            congested: r.congested,
            revision: r.revision,
            is_final: r.is_final,
        }
    }
}

/// How long visits lasted in a zone during an hour (a visit: a device's sightings with no
/// gap longer than `sessionGap`; visits are cut at hour boundaries).
#[derive(SimpleObject, Debug, Clone)]
pub struct FootfallDwell {
    pub zone: String,
    pub hour: DateTime<Utc>,
    /// ISO 8601 duration, e.g. PT10M.
    pub session_gap: String,
    pub visits: i64,
    pub dwell_under_5_min: i64,
    pub dwell_5_to_15_min: i64,
    pub dwell_15_to_30_min: i64,
    pub dwell_30_to_60_min: i64,
    pub mean_dwell_seconds: f64,
    pub median_dwell_minutes: i64,
    pub revision: i32,
}

impl From<sensors::DwellRow> for FootfallDwell {
    fn from(r: sensors::DwellRow) -> Self {
        FootfallDwell {
            zone: r.zone,
            hour: r.hour,
            session_gap: r.session_gap,
            visits: r.visits,
            dwell_under_5_min: r.dwell_under5_min,
            dwell_5_to_15_min: r.dwell5_to15_min,
            dwell_15_to_30_min: r.dwell15_to30_min,
            dwell_30_to_60_min: r.dwell30_to60_min,
            mean_dwell_seconds: r.mean_dwell_seconds,
            median_dwell_minutes: r.median_dwell_minutes,
            revision: r.revision,
        }
    }
}

/// Visitors of a site in an hour (TourismPresenceObserved).
#[derive(SimpleObject, Debug, Clone)]
pub struct SitePresence {
    pub site: String,
    /// INSEE code of the site's commune.
    pub location_code: String,
    pub hour: DateTime<Utc>,
    pub visitor_count: i64,
    pub ar_checkins: i64,
    /// AR-trail check-ins per point of the trail.
    pub ar_checkins_by_point: Vec<PointCheckins>,
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
    pub checkins: i64,
}

impl From<sensors::PresenceRow> for SitePresence {
    fn from(r: sensors::PresenceRow) -> Self {
        SitePresence {
            site: r.site,
            location_code: r.location_code,
            hour: r.hour,
            visitor_count: r.visitor_count,
            ar_checkins: r.ar_checkins,
            ar_checkins_by_point: r
                .ar_checkins_by_point
                .into_iter()
                .map(|p| PointCheckins {
                    point: p.point,
                    checkins: p.checkins,
                })
                .collect(),
            revision: r.revision,
            is_final: r.is_final,
            dwell: r.dwell.map(Into::into),
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

impl From<sensors::VineRow> for VineIndicator {
    fn from(r: sensors::VineRow) -> Self {
        VineIndicator {
            station: r.station,
            day: r.day,
            tmin: r.tmin,
            tmax: r.tmax,
            tmean: r.tmean,
            rain_mm: r.rain_mm,
            growing_degree_days: r.growing_degree_days,
            winkler_index: r.winkler_index,
            huglin_index: r.huglin_index,
            oospore_degree_days: r.oospore_degree_days,
            downy_mildew_310: r.downy_mildew310,
            gubler_thomas_index: r.gubler_thomas_index,
        }
    }
}

/// Filter of the report list.
#[derive(InputObject, Debug, Clone, Default)]
pub struct ReportFilter {
    pub commune_code: Option<String>,
    pub status: Option<ReportStatus>,
    pub service_code: Option<String>,
    /// `[minLong, minLat, maxLong, maxLat]`.
    pub bbox: Option<Vec<f64>>,
    /// Reports requested at or after this time.
    pub since: Option<DateTime<Utc>>,
}

/// Filter of the idea list.
#[derive(InputObject, Debug, Clone, Default)]
pub struct IdeaFilter {
    pub theme: Option<IdeaTheme>,
    pub commune_code: Option<String>,
    pub state: Option<IdeaState>,
}
