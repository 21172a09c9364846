//! GraphQL object, input and enum types of the citizens' side, the places and the
//! reference data (the sensor results' are in [`super::sensors`]).

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use vallee_schemas::citizen;
use vallee_schemas::communes;

use super::{caller, state};
use crate::citizen::{reads, view};

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

/// Order of a list of reports.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum ReportOrder {
    /// Newest first.
    #[default]
    Newest,
    /// The one whose answer is due first first: the most overdue at the top (a staff
    /// queue; give `status: OPEN`).
    DueFirst,
}

impl From<ReportOrder> for crate::citizen::reads::ReportOrder {
    fn from(o: ReportOrder) -> Self {
        match o {
            ReportOrder::Newest => crate::citizen::reads::ReportOrder::Newest,
            ReportOrder::DueFirst => crate::citizen::reads::ReportOrder::DueFirst,
        }
    }
}

/// A vineyard partner (configured in `[[api.partners]]`), as staff see it.
#[derive(SimpleObject, Debug, Clone)]
pub struct VineyardPartner {
    pub name: String,
    pub parcels: Vec<String>,
    /// Where its parcels' alerts are posted (signed).
    pub webhook_url: Option<String>,
    /// Where its parcels' alerts are e-mailed.
    pub email: Option<String>,
}

/// Who is asking, as the API sees them.
#[derive(SimpleObject, Debug, Clone)]
pub struct Viewer {
    pub kind: ViewerKind,
    /// A staff member's name.
    pub name: Option<String>,
    /// A staff member's commune (INSEE code); null for the intercommunality's staff.
    pub commune_code: Option<String>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ViewerKind {
    Anonymous,
    Citizen,
    Staff,
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

/// What staff decided of a report's photo.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoState {
    /// Not looked at yet: staff only see it.
    Pending,
    /// Shown publicly.
    Accepted,
    /// Hidden (a face, a plate, off topic): staff only see it.
    Hidden,
}

/// A photo of a report (a JPEG re-encoded by the hub: no metadata).
#[derive(async_graphql::SimpleObject, Debug, Clone)]
pub struct ReportPhoto {
    pub id: ID,
    /// Path on the hub (`/media/photos/<id>.jpg`); staff fetch pending and hidden photos
    /// with their token in `Authorization`.
    pub url: String,
    pub state: PhotoState,
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
    /// As typed for staff of the report's scope; for everyone else with e-mail addresses
    /// and phone numbers masked.
    async fn description(&self, ctx: &Context<'_>) -> String {
        let as_filed = self.0.as_filed_for(caller(ctx));
        reads::text(as_filed, &self.0.submitted.description).into_owned()
    }
    /// As filed for staff of the report's scope; for everyone else rounded to 3 decimals
    /// (about 100 m), as in the open data.
    async fn lat(&self, ctx: &Context<'_>) -> f64 {
        self.0.position_for(caller(ctx)).0
    }
    /// As `lat`.
    async fn long(&self, ctx: &Context<'_>) -> f64 {
        self.0.position_for(caller(ctx)).1
    }
    /// The address typed by the reporter: staff of the report's scope only (null for
    /// everyone else: it is the exact position in words).
    async fn address_string(&self, ctx: &Context<'_>) -> Option<&str> {
        self.0.address_for(caller(ctx))
    }
    async fn media_url(&self) -> Option<&str> {
        self.0.submitted.media_url.as_deref()
    }
    /// Its photos: for staff of the report's scope every one with its state; for everyone
    /// else those staff accepted (none once the reporter's texts were erased).
    async fn photos(&self, ctx: &Context<'_>) -> Vec<ReportPhoto> {
        let staff = self.0.as_filed_for(caller(ctx));
        if self.0.erased {
            return Vec::new();
        }
        self.0
            .photos
            .iter()
            .filter(|p| staff || p.visible == Some(true))
            .map(|p| ReportPhoto {
                id: ID(p.id.clone()),
                url: format!("/media/photos/{}.jpg", p.id),
                state: match p.visible {
                    None => PhotoState::Pending,
                    Some(true) => PhotoState::Accepted,
                    Some(false) => PhotoState::Hidden,
                },
            })
            .collect()
    }
    /// The bin a waste report is about: the nearest within 30 m when it was filed (staff
    /// may untie a wrong match). The report closes when that bin is emptied.
    async fn bin(&self) -> Option<ID> {
        self.0.bin.clone().map(ID)
    }
    async fn status(&self) -> ReportStatus {
        self.0.status.into()
    }
    async fn substatus(&self) -> Option<Substatus> {
        self.0.substatus.map(Into::into)
    }
    /// As `description`.
    async fn status_notes(&self, ctx: &Context<'_>) -> Option<String> {
        let as_filed = self.0.as_filed_for(caller(ctx));
        (self.0.status_notes.as_deref()).map(|n| reads::text(as_filed, n).into_owned())
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
    /// Its status changes; notes as `description`.
    async fn history(&self, ctx: &Context<'_>) -> Vec<HistoryEntry> {
        let as_filed = self.0.as_filed_for(caller(ctx));
        self.0
            .history
            .iter()
            .map(|h| HistoryEntry {
                status: h.status.into(),
                substatus: h.substatus.map(Into::into),
                status_notes: (h.status_notes.as_deref())
                    .map(|n| reads::text(as_filed, n).into_owned()),
                at: h.at,
            })
            .collect()
    }
    /// The reporter's contact details: staff of the competent scope only; every read is
    /// audited (`readContact` on the staff audit).
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ContactDetails>> {
        let contact = state(ctx)
            .commands
            .read_contact(caller(ctx), &self.0.submitted.report_id)
            .await
            .map_err(super::command_error)?;
        Ok(contact.map(Into::into))
    }
}

/// A comment on an idea.
#[derive(SimpleObject, Debug, Clone)]
pub struct Comment {
    pub id: ID,
    pub body: String,
    pub created_at: DateTime<Utc>,
    /// Hidden from the public, by a moderator or by flags pending a moderator's decision
    /// (only staff see such a comment).
    pub hidden: bool,
    /// Distinct citizens who flagged it.
    pub flags: i32,
}

impl From<&view::Comment> for Comment {
    fn from(c: &view::Comment) -> Self {
        Comment {
            id: ID(c.id.clone()),
            body: c.body.clone(),
            created_at: c.at,
            hidden: c.moderated_hidden == Some(true),
            flags: c.flags.len() as i32,
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
    /// As written for staff of the idea's scope; for everyone else with e-mail addresses
    /// and phone numbers masked.
    async fn title(&self, ctx: &Context<'_>) -> String {
        let as_filed = self.0.as_filed_for(caller(ctx));
        reads::text(as_filed, &self.0.submitted.title).into_owned()
    }
    /// As `title`.
    async fn body(&self, ctx: &Context<'_>) -> String {
        let as_filed = self.0.as_filed_for(caller(ctx));
        reads::text(as_filed, &self.0.submitted.body).into_owned()
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
    /// The official answer (as `title`).
    async fn answer(&self, ctx: &Context<'_>) -> Option<String> {
        let as_filed = self.0.as_filed_for(caller(ctx));
        (self.0.answer.as_deref()).map(|a| reads::text(as_filed, a).into_owned())
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
    /// Comments, bodies as `title`.
    async fn comments(&self, ctx: &Context<'_>) -> Vec<Comment> {
        let as_filed = self.0.as_filed_for(caller(ctx));
        let flags_to_hide = state(ctx).options.flags_to_hide;
        let shown = |c: &view::Comment| Comment {
            body: reads::text(as_filed, &c.body).into_owned(),
            hidden: !c.visible(flags_to_hide),
            ..Comment::from(c)
        };
        // A comment a moderator or the flags hid reaches staff only.
        let staff = caller(ctx).staff().is_some();
        (self.0.comments.iter())
            .filter(|c| staff || c.visible(flags_to_hide))
            .map(shown)
            .collect()
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
