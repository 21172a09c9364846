//! Citizens' writes and staff actions: the events the API puts on Kafka, and what they
//! mean (the reports' service catalogue, statuses, the idea box's themes and states).
//!
//! The API never keeps state of its own: every write is one [`CitizenEvent`] on a topic
//! (`vallee.citizen.reports`, `vallee.citizen.ideas`, `vallee.staff.audit`), keyed by the
//! report or idea id so one entity's events stay in order on one partition. Ingest lands
//! them in Delta through the same exactly-once path as the sensors; every API replica
//! rebuilds its view by replaying the topics. Contact details are *not* in these events
//! (only whether there are some): they stay in the restricted store under `private/`.
//!
//! Citizens appear only as pseudonyms (a keyed hash of their anonymous token, computed by
//! the API), enough to count one support per citizen exactly after a rebuild.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, SchemaRef};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::events::{Observation, closing_fields, observation_fields, schema_of};
use crate::rejection::Rejection;
use crate::streams::Stream;
use crate::time::TimeSource;

pub mod devices;
pub mod fleet;
pub mod sealed;
mod services;

pub use devices::{DeviceProfile, DeviceRegistered};
pub use fleet::{DepotUpdated, TruckUpdated};
pub use services::{Competence, SERVICES, Service, service};

/// Open311 status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    Open,
    Closed,
}

/// The finer status staff set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Substatus {
    Acknowledged,
    InProgress,
    Scheduled,
    Fixed,
    Duplicate,
    NotResponsible,
}

/// The policy's six orientations, the idea box's themes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdeaTheme {
    DigitalServices,
    DigitalCommunication,
    LocalEconomy,
    WineSector,
    TourismCulture,
    DigitalForAll,
}

/// An idea's answer state (Decidim's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdeaState {
    NotAnswered,
    Evaluating,
    Accepted,
    Rejected,
    Withdrawn,
}

/// Why a citizen flags an idea for moderation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagReason {
    Spam,
    Offensive,
    DoesNotBelong,
}

/// A new report (Open311 `POST requests`), as routed by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportSubmitted {
    pub report_id: String,
    pub service_code: String,
    pub description: String,
    pub lat: f64,
    pub long: f64,
    pub address_string: Option<String>,
    pub media_url: Option<String>,
    pub commune_code: String,
    pub agency_responsible: String,
    pub expected_datetime: DateTime<Utc>,
    /// Whether contact details were left (they are in the restricted store, not here).
    pub has_contact: bool,
    /// Pseudonym of the citizen's token, if the report was not anonymous.
    pub author: Option<String>,
    /// A keyed digest of the e-mail left, sealed with the report's texts: how any replica
    /// finds a person's reports for an erasure request (see [`sealed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_digest: Option<String>,
    /// Photos the reporter joined (ids in the API's photo store), at most
    /// [`MAX_REPORT_PHOTOS`]: shown publicly only once staff accepted them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub photos: Vec<String>,
}

/// Most photos one report carries.
pub const MAX_REPORT_PHOTOS: usize = 3;

impl ReportSubmitted {
    /// What the reporter wrote, by field name (sealed on Kafka and in the lake).
    pub fn personal_texts_mut(&mut self) -> Vec<(&'static str, &mut String)> {
        let mut texts = vec![("description", &mut self.description)];
        if let Some(a) = self.address_string.as_mut() {
            texts.push(("addressString", a));
        }
        if let Some(d) = self.contact_digest.as_mut() {
            texts.push(("contactDigest", d));
        }
        texts
    }
}

/// A new idea.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdeaSubmitted {
    pub idea_id: String,
    pub title: String,
    pub body: String,
    pub theme: IdeaTheme,
    pub commune_code: Option<String>,
    pub author: String,
    /// False when pre-moderation is on: hidden until a moderator shows it.
    pub visible: bool,
}

impl IdeaSubmitted {
    /// What the author wrote, by field name (sealed on Kafka and in the lake).
    pub fn personal_texts_mut(&mut self) -> Vec<(&'static str, &mut String)> {
        vec![("title", &mut self.title), ("body", &mut self.body)]
    }
}

/// Reference places and sessions staff keep up to date (pilot actions of the policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaceKind {
    /// A place of the digital gallery (public digital-access points).
    DigitalGallery,
    Coworking,
    /// A digital-training session (with a date and seats).
    TrainingSession,
    /// A childcare facility (crèche, micro-crèche, childminders' house), with vacancies.
    Childcare,
}

impl PlaceKind {
    pub const ALL: [PlaceKind; 4] = [
        PlaceKind::DigitalGallery,
        PlaceKind::Coworking,
        PlaceKind::TrainingSession,
        PlaceKind::Childcare,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PlaceKind::DigitalGallery => "digital_gallery",
            PlaceKind::Coworking => "coworking",
            PlaceKind::TrainingSession => "training_session",
            PlaceKind::Childcare => "childcare",
        }
    }
}

/// A reference place (or training session) as staff publish it; a new version replaces
/// the previous one whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaceUpdated {
    pub place_id: String,
    pub kind: PlaceKind,
    pub name: String,
    pub commune_code: String,
    pub address: Option<String>,
    pub lat: Option<f64>,
    pub long: Option<f64>,
    /// Opening hours in OpenStreetMap `opening_hours` syntax.
    pub opening_hours: Option<String>,
    /// The place's public phone or email (a service's, never a person's).
    pub contact: Option<String>,
    pub website: Option<String>,
    pub description: Option<String>,
    /// Training sessions: when, and seats offered.
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub seats: Option<u32>,
    /// Childcare: places, and the ages taken (months).
    pub capacity: Option<u32>,
    pub age_min_months: Option<u32>,
    pub age_max_months: Option<u32>,
}

/// What happened; the `type` of the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum CitizenChange {
    ReportSubmitted(ReportSubmitted),
    #[serde(rename_all = "camelCase")]
    ReportFollowed {
        report_id: String,
        follower: String,
    },
    #[serde(rename_all = "camelCase")]
    ReportStatusChanged {
        report_id: String,
        status: ReportStatus,
        substatus: Option<Substatus>,
        status_notes: Option<String>,
    },
    /// The hub tied a waste report to the bin it is about (the nearest within
    /// [`BIN_LINK_RADIUS_M`]).
    #[serde(rename_all = "camelCase")]
    ReportLinkedToBin {
        report_id: String,
        bin_id: String,
        distance_m: f64,
    },
    /// Staff undid a wrong link.
    #[serde(rename_all = "camelCase")]
    ReportUnlinkedFromBin {
        report_id: String,
        bin_id: String,
    },
    /// Staff accepted (shown publicly) or hid one of a report's photos.
    #[serde(rename_all = "camelCase")]
    ReportPhotoModerated {
        report_id: String,
        photo_id: String,
        visible: bool,
    },
    IdeaSubmitted(IdeaSubmitted),
    #[serde(rename_all = "camelCase")]
    IdeaSupported {
        idea_id: String,
        supporter: String,
    },
    #[serde(rename_all = "camelCase")]
    IdeaSupportWithdrawn {
        idea_id: String,
        supporter: String,
    },
    #[serde(rename_all = "camelCase")]
    IdeaCommented {
        idea_id: String,
        comment_id: String,
        body: String,
        author: String,
    },
    #[serde(rename_all = "camelCase")]
    IdeaFlagged {
        idea_id: String,
        flagger: String,
        reason: FlagReason,
    },
    #[serde(rename_all = "camelCase")]
    IdeaAnswered {
        idea_id: String,
        state: IdeaState,
        answer: Option<String>,
    },
    /// A moderator hides or shows an idea.
    #[serde(rename_all = "camelCase")]
    IdeaModerated {
        idea_id: String,
        hidden: bool,
    },
    /// A moderator hides or shows one comment of an idea.
    #[serde(rename_all = "camelCase")]
    CommentModerated {
        idea_id: String,
        comment_id: String,
        hidden: bool,
    },
    /// A citizen flags one comment of an idea for moderation.
    #[serde(rename_all = "camelCase")]
    CommentFlagged {
        idea_id: String,
        comment_id: String,
        flagger: String,
        reason: FlagReason,
    },
    PlaceUpdated(PlaceUpdated),
    #[serde(rename_all = "camelCase")]
    PlaceRemoved {
        place_id: String,
    },
    /// A depot of the collection fleet, whole (see [`fleet`]).
    DepotUpdated(DepotUpdated),
    #[serde(rename_all = "camelCase")]
    DepotRemoved {
        depot_id: String,
    },
    /// A collection truck, whole.
    TruckUpdated(TruckUpdated),
    #[serde(rename_all = "camelCase")]
    TruckRemoved {
        truck_id: String,
    },
    /// A field device of the register, whole (see [`devices`]).
    DeviceRegistered(DeviceRegistered),
    #[serde(rename_all = "camelCase")]
    DeviceRemoved {
        dev_eui: String,
    },
    /// The vacancies of a childcare facility right now.
    #[serde(rename_all = "camelCase")]
    ChildcareVacanciesUpdated {
        place_id: String,
        vacancies: u32,
    },
    /// What people wrote under these subjects (reports, ideas, comments) is erased: every
    /// replica deletes their text keys and contacts (GDPR article 17; see [`sealed`]).
    #[serde(rename_all = "camelCase")]
    TextsErased {
        request_id: String,
        subjects: Vec<String>,
    },
    /// A staff action, recorded in the audit table whatever it was.
    #[serde(rename_all = "camelCase")]
    StaffAction {
        action: String,
        target: String,
        /// The staff member's scope: a commune code, or `intercommunality`.
        scope: String,
        detail: Option<String>,
    },
}

/// Longest free text accepted (description, body, notes, answers), in characters.
pub const MAX_TEXT_CHARS: usize = 5_000;

/// How far from a waste report the bin it is about may stand, in metres.
pub const BIN_LINK_RADIUS_M: f64 = 30.0;

/// The services whose reports are about one bin: tied to the nearest, and closed when the
/// bin is emptied.
pub const BIN_SERVICES: &[&str] = &["bin-overflowing"];

/// Most subjects one erasure event names (a person's reports, ideas and comments).
pub const MAX_ERASED_SUBJECTS: usize = 10_000;

impl CitizenChange {
    /// The event's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            CitizenChange::ReportSubmitted(_) => "ReportSubmitted",
            CitizenChange::ReportFollowed { .. } => "ReportFollowed",
            CitizenChange::ReportStatusChanged { .. } => "ReportStatusChanged",
            CitizenChange::ReportLinkedToBin { .. } => "ReportLinkedToBin",
            CitizenChange::ReportUnlinkedFromBin { .. } => "ReportUnlinkedFromBin",
            CitizenChange::ReportPhotoModerated { .. } => "ReportPhotoModerated",
            CitizenChange::IdeaSubmitted(_) => "IdeaSubmitted",
            CitizenChange::IdeaSupported { .. } => "IdeaSupported",
            CitizenChange::IdeaSupportWithdrawn { .. } => "IdeaSupportWithdrawn",
            CitizenChange::IdeaCommented { .. } => "IdeaCommented",
            CitizenChange::IdeaFlagged { .. } => "IdeaFlagged",
            CitizenChange::IdeaAnswered { .. } => "IdeaAnswered",
            CitizenChange::IdeaModerated { .. } => "IdeaModerated",
            CitizenChange::CommentModerated { .. } => "CommentModerated",
            CitizenChange::CommentFlagged { .. } => "CommentFlagged",
            CitizenChange::PlaceUpdated(_) => "PlaceUpdated",
            CitizenChange::PlaceRemoved { .. } => "PlaceRemoved",
            CitizenChange::ChildcareVacanciesUpdated { .. } => "ChildcareVacanciesUpdated",
            CitizenChange::DepotUpdated(_) => "DepotUpdated",
            CitizenChange::DepotRemoved { .. } => "DepotRemoved",
            CitizenChange::TruckUpdated(_) => "TruckUpdated",
            CitizenChange::TruckRemoved { .. } => "TruckRemoved",
            CitizenChange::DeviceRegistered(_) => "DeviceRegistered",
            CitizenChange::DeviceRemoved { .. } => "DeviceRemoved",
            CitizenChange::TextsErased { .. } => "TextsErased",
            CitizenChange::StaffAction { .. } => "StaffAction",
        }
    }

    /// The stream this event is written on. Every event a stream carries must be one of
    /// its routes ([`Stream::routes`]), or ingest would set it aside as a dead letter: the
    /// match is exhaustive so that a new event has to choose.
    pub fn stream(&self) -> Stream {
        match self {
            CitizenChange::ReportSubmitted(_)
            | CitizenChange::ReportFollowed { .. }
            | CitizenChange::ReportStatusChanged { .. }
            | CitizenChange::ReportLinkedToBin { .. }
            | CitizenChange::ReportUnlinkedFromBin { .. }
            | CitizenChange::ReportPhotoModerated { .. }
            | CitizenChange::TextsErased { .. } => Stream::CitizenReports,
            CitizenChange::IdeaSubmitted(_)
            | CitizenChange::IdeaSupported { .. }
            | CitizenChange::IdeaSupportWithdrawn { .. }
            | CitizenChange::IdeaCommented { .. }
            | CitizenChange::IdeaFlagged { .. }
            | CitizenChange::IdeaAnswered { .. }
            | CitizenChange::IdeaModerated { .. }
            | CitizenChange::CommentModerated { .. }
            | CitizenChange::CommentFlagged { .. } => Stream::CitizenIdeas,
            CitizenChange::PlaceUpdated(_)
            | CitizenChange::PlaceRemoved { .. }
            | CitizenChange::ChildcareVacanciesUpdated { .. }
            | CitizenChange::DepotUpdated(_)
            | CitizenChange::DepotRemoved { .. }
            | CitizenChange::TruckUpdated(_)
            | CitizenChange::TruckRemoved { .. }
            | CitizenChange::DeviceRegistered(_)
            | CitizenChange::DeviceRemoved { .. } => Stream::ReferencePlaces,
            CitizenChange::StaffAction { .. } => Stream::StaffAudit,
        }
    }

    /// The report, idea or staff target the event is about (the Kafka key).
    pub fn entity_id(&self) -> &str {
        match self {
            CitizenChange::ReportSubmitted(r) => &r.report_id,
            CitizenChange::ReportFollowed { report_id, .. }
            | CitizenChange::ReportStatusChanged { report_id, .. }
            | CitizenChange::ReportLinkedToBin { report_id, .. }
            | CitizenChange::ReportUnlinkedFromBin { report_id, .. }
            | CitizenChange::ReportPhotoModerated { report_id, .. } => report_id,
            CitizenChange::IdeaSubmitted(i) => &i.idea_id,
            CitizenChange::IdeaSupported { idea_id, .. }
            | CitizenChange::IdeaSupportWithdrawn { idea_id, .. }
            | CitizenChange::IdeaCommented { idea_id, .. }
            | CitizenChange::IdeaFlagged { idea_id, .. }
            | CitizenChange::IdeaAnswered { idea_id, .. }
            | CitizenChange::IdeaModerated { idea_id, .. }
            | CitizenChange::CommentModerated { idea_id, .. }
            | CitizenChange::CommentFlagged { idea_id, .. } => idea_id,
            CitizenChange::PlaceUpdated(p) => &p.place_id,
            CitizenChange::PlaceRemoved { place_id }
            | CitizenChange::ChildcareVacanciesUpdated { place_id, .. } => place_id,
            CitizenChange::DepotUpdated(d) => &d.depot_id,
            CitizenChange::DepotRemoved { depot_id } => depot_id,
            CitizenChange::TruckUpdated(t) => &t.truck_id,
            CitizenChange::TruckRemoved { truck_id } => truck_id,
            CitizenChange::DeviceRegistered(d) => &d.dev_eui,
            CitizenChange::DeviceRemoved { dev_eui } => dev_eui,
            CitizenChange::StaffAction { target, .. } => target,
            CitizenChange::TextsErased { request_id, .. } => request_id,
        }
    }

    /// The subject whose key seals what a person wrote in this event (a report, an idea
    /// or a comment), and those texts by field name; `None` for events without any.
    pub fn personal_texts_mut(&mut self) -> Option<(String, Vec<(&'static str, &mut String)>)> {
        match self {
            CitizenChange::ReportSubmitted(r) => {
                Some((r.report_id.clone(), r.personal_texts_mut()))
            }
            CitizenChange::IdeaSubmitted(i) => Some((i.idea_id.clone(), i.personal_texts_mut())),
            CitizenChange::IdeaCommented {
                comment_id, body, ..
            } => Some((comment_id.clone(), vec![("body", body)])),
            _ => None,
        }
    }

    /// The subject of [`Self::personal_texts_mut`].
    pub fn personal_subject(&self) -> Option<&str> {
        match self {
            CitizenChange::ReportSubmitted(r) => Some(&r.report_id),
            CitizenChange::IdeaSubmitted(i) => Some(&i.idea_id),
            CitizenChange::IdeaCommented { comment_id, .. } => Some(comment_id),
            _ => None,
        }
    }

    /// The commune the event is about, when it names one.
    pub fn commune_code(&self) -> Option<&str> {
        match self {
            CitizenChange::ReportSubmitted(r) => Some(&r.commune_code),
            CitizenChange::IdeaSubmitted(i) => i.commune_code.as_deref(),
            CitizenChange::PlaceUpdated(p) => Some(&p.commune_code),
            CitizenChange::DepotUpdated(d) => Some(&d.commune_code),
            CitizenChange::DeviceRegistered(d) => Some(&d.commune_code),
            _ => None,
        }
    }

    fn texts(&self) -> Vec<(&'static str, &str)> {
        let mut texts = vec![("entity id", self.entity_id())];
        match self {
            CitizenChange::ReportSubmitted(r) => texts.push(("description", &r.description)),
            CitizenChange::ReportStatusChanged {
                status_notes: Some(n),
                ..
            } => texts.push(("statusNotes", n)),
            CitizenChange::IdeaSubmitted(i) => {
                texts.push(("title", &i.title));
                texts.push(("body", &i.body));
            }
            CitizenChange::IdeaCommented { body, .. } => texts.push(("body", body)),
            CitizenChange::PlaceUpdated(p) => {
                texts.push(("name", &p.name));
                for (name, text) in [
                    ("address", &p.address),
                    ("openingHours", &p.opening_hours),
                    ("contact", &p.contact),
                    ("website", &p.website),
                    ("description", &p.description),
                ] {
                    if let Some(t) = text {
                        texts.push((name, t));
                    }
                }
            }
            CitizenChange::IdeaAnswered {
                answer: Some(a), ..
            } => texts.push(("answer", a)),
            CitizenChange::DepotUpdated(d) => texts.push(("name", &d.name)),
            CitizenChange::TruckUpdated(t) => {
                texts.push(("name", &t.name));
                texts.push(("depotId", &t.depot_id));
            }
            _ => {}
        }
        texts
    }
}

/// One citizen or staff event as it travels on Kafka (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CitizenEvent {
    /// Event id (a UUID), unique: replays and redeliveries are recognised by it.
    pub id: String,
    /// When the API accepted the write.
    #[serde(rename = "dateObserved")]
    pub date_observed: DateTime<Utc>,
    /// `anonymous`, `citizen:<pseudonym>` or `staff:<name>`.
    pub actor: String,
    #[serde(flatten)]
    pub change: CitizenChange,
}

impl CitizenEvent {
    /// A new event with a fresh id, now.
    pub fn new(actor: impl Into<String>, change: CitizenChange) -> Self {
        CitizenEvent {
            id: uuid_v4(),
            date_observed: Utc::now(),
            actor: actor.into(),
            change,
        }
    }

    /// The JSON sent on Kafka.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("citizen events always serialize")
    }

    /// Parses and checks an event (ingest and every API replica use this).
    pub fn parse(value: serde_json::Value) -> Result<Self, Rejection> {
        let event: CitizenEvent = serde_json::from_value(value)
            .map_err(|e| Rejection::schema(format!("citizen event: {e}")))?;
        event.validate()?;
        Ok(event)
    }

    /// Checks identifiers, text lengths and coordinates.
    pub fn validate(&self) -> Result<(), Rejection> {
        if self.id.trim().is_empty() {
            return Err(Rejection::schema("id must be a non-empty string"));
        }
        for (name, text) in self.change.texts() {
            if name == "entity id" && text.trim().is_empty() {
                return Err(Rejection::schema(
                    "the entity id must be a non-empty string",
                ));
            }
            let too_long = if sealed::is_sealed(text) {
                text.len() > sealed::max_sealed_len(MAX_TEXT_CHARS)
            } else {
                text.chars().count() > MAX_TEXT_CHARS
            };
            if too_long {
                return Err(Rejection::range(format!(
                    "{name} is longer than {MAX_TEXT_CHARS} characters"
                )));
            }
        }
        if let CitizenChange::TextsErased { subjects, .. } = &self.change
            && (subjects.len() > MAX_ERASED_SUBJECTS
                || subjects
                    .iter()
                    .any(|s| s.trim().is_empty() || s.len() > 200))
        {
            return Err(Rejection::range(format!(
                "an erasure names 0 to {MAX_ERASED_SUBJECTS} subjects of 1 to 200 bytes"
            )));
        }
        if let CitizenChange::PlaceUpdated(p) = &self.change {
            if p.name.trim().is_empty() {
                return Err(Rejection::schema("a place needs a name"));
            }
            if let (Some(lat), Some(long)) = (p.lat, p.long)
                && (!(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&long))
            {
                return Err(Rejection::range(format!(
                    "lat/long = {lat}/{long} is not a WGS 84 position"
                )));
            }
            if let (Some(lo), Some(hi)) = (p.age_min_months, p.age_max_months)
                && lo > hi
            {
                return Err(Rejection::range("ageMinMonths is above ageMaxMonths"));
            }
            if let (Some(a), Some(b)) = (p.starts_at, p.ends_at)
                && a > b
            {
                return Err(Rejection::range("startsAt is after endsAt"));
            }
        }
        match &self.change {
            CitizenChange::DepotUpdated(d) => d.check()?,
            CitizenChange::TruckUpdated(t) => t.check()?,
            CitizenChange::DeviceRegistered(d) => d.check()?,
            _ => {}
        }
        if let CitizenChange::ReportSubmitted(r) = &self.change {
            if !(-90.0..=90.0).contains(&r.lat) || !(-180.0..=180.0).contains(&r.long) {
                return Err(Rejection::range(format!(
                    "lat/long = {}/{} is not a WGS 84 position",
                    r.lat, r.long
                )));
            }
            if service(&r.service_code).is_none() {
                return Err(Rejection::range(format!(
                    "unknown serviceCode {:?}",
                    r.service_code
                )));
            }
        }
        Ok(())
    }

    /// The event as one row of its lake table.
    pub fn record(&self) -> CitizenRecord {
        let mut payload = serde_json::to_value(&self.change).unwrap_or_default();
        if let Some(o) = payload.as_object_mut() {
            o.remove("type");
        }
        CitizenRecord {
            observation: Observation {
                id: self.id.clone(),
                date_observed: self.date_observed,
                time_source: TimeSource::DateObserved,
            },
            kind: self.change.kind().to_string(),
            entity_id: self.change.entity_id().to_string(),
            actor: self.actor.clone(),
            commune_code: self.change.commune_code().map(str::to_string),
            payload: payload.to_string(),
        }
    }
}

/// One row of `citizen_reports`, `citizen_ideas` or `staff_audit`: the event's common
/// columns, and the rest of it as JSON text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CitizenRecord {
    #[serde(flatten)]
    pub observation: Observation,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "entityId")]
    pub entity_id: String,
    pub actor: String,
    #[serde(rename = "communeCode")]
    pub commune_code: Option<String>,
    pub payload: String,
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    schema_of([
        observation_fields(),
        vec![
            Field::new("type", DataType::Utf8, false),
            Field::new("entityId", DataType::Utf8, false),
            Field::new("actor", DataType::Utf8, false),
            Field::new("communeCode", DataType::Utf8, true),
            Field::new("payload", DataType::Utf8, false),
        ],
        closing_fields(false),
    ])
});

/// Arrow schema of the citizen tables.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// A random (version 4) UUID.
pub fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submitted() -> CitizenEvent {
        CitizenEvent::new(
            "anonymous",
            CitizenChange::ReportSubmitted(ReportSubmitted {
                report_id: "r-1".into(),
                service_code: "pothole".into(),
                description: "Un trou profond devant la mairie".into(),
                lat: 43.6521,
                long: 3.5512,
                address_string: None,
                media_url: None,
                commune_code: "34114".into(),
                agency_responsible: "Mairie de Gignac".into(),
                expected_datetime: Utc::now(),
                has_contact: true,
                author: None,
                contact_digest: None,
                photos: Vec::new(),
            }),
        )
    }

    /// One event of every kind, and which kind each is (the match is exhaustive, so a new
    /// kind fails to compile here until it has a sample).
    fn one_of_each() -> Vec<CitizenChange> {
        let text = |s: &str| s.to_string();
        let place = PlaceUpdated {
            place_id: text("p-1"),
            kind: PlaceKind::Childcare,
            name: text("Crèche"),
            commune_code: text("34114"),
            address: None,
            lat: None,
            long: None,
            opening_hours: None,
            contact: None,
            website: None,
            description: None,
            starts_at: None,
            ends_at: None,
            seats: None,
            capacity: Some(20),
            age_min_months: None,
            age_max_months: None,
        };
        let idea = IdeaSubmitted {
            idea_id: text("i-1"),
            title: text("Des bancs"),
            body: text("Sur la place"),
            theme: IdeaTheme::DigitalServices,
            commune_code: None,
            author: text("a"),
            visible: true,
        };
        let (report, idea_id) = (|| text("r-1"), || text("i-1"));
        let samples = vec![
            submitted().change,
            CitizenChange::ReportFollowed {
                report_id: report(),
                follower: text("f"),
            },
            CitizenChange::ReportStatusChanged {
                report_id: report(),
                status: ReportStatus::Closed,
                substatus: None,
                status_notes: None,
            },
            CitizenChange::ReportLinkedToBin {
                report_id: report(),
                bin_id: text("b"),
                distance_m: 3.0,
            },
            CitizenChange::ReportUnlinkedFromBin {
                report_id: report(),
                bin_id: text("b"),
            },
            CitizenChange::IdeaSubmitted(idea),
            CitizenChange::IdeaSupported {
                idea_id: idea_id(),
                supporter: text("s"),
            },
            CitizenChange::IdeaSupportWithdrawn {
                idea_id: idea_id(),
                supporter: text("s"),
            },
            CitizenChange::IdeaCommented {
                idea_id: idea_id(),
                comment_id: text("c"),
                body: text("Oui"),
                author: text("a"),
            },
            CitizenChange::IdeaFlagged {
                idea_id: idea_id(),
                flagger: text("f"),
                reason: FlagReason::Spam,
            },
            CitizenChange::IdeaAnswered {
                idea_id: idea_id(),
                state: IdeaState::Accepted,
                answer: None,
            },
            CitizenChange::IdeaModerated {
                idea_id: idea_id(),
                hidden: true,
            },
            CitizenChange::PlaceUpdated(place),
            CitizenChange::PlaceRemoved {
                place_id: text("p-1"),
            },
            CitizenChange::ChildcareVacanciesUpdated {
                place_id: text("p-1"),
                vacancies: 2,
            },
            CitizenChange::DepotUpdated(DepotUpdated {
                depot_id: text("d"),
                name: text("Dépôt"),
                commune_code: text("34114"),
                lat: 43.65,
                long: 3.55,
                shift_start: text("06:00"),
                shift_end: text("13:00"),
                working_days: vec![1, 2, 3, 4, 5],
            }),
            CitizenChange::DepotRemoved {
                depot_id: text("d"),
            },
            CitizenChange::TruckUpdated(TruckUpdated {
                truck_id: text("t"),
                name: text("Benne"),
                depot_id: text("d"),
                waste_kinds: vec![text("refuse")],
                capacity_litres: 60_000,
            }),
            CitizenChange::TruckRemoved {
                truck_id: text("t"),
            },
            CitizenChange::DeviceRegistered(DeviceRegistered {
                dev_eui: text("0101010101010101"),
                entity_id: text("urn:ngsi-ld:WasteContainer:b"),
                profile: DeviceProfile::UltrasonicFill,
                lat: 43.65,
                long: 3.55,
                commune_code: text("34114"),
                installed_on: None,
                report_interval_s: Some(1800),
                depth_mm: Some(1200.0),
                fill_threshold: None,
            }),
            CitizenChange::DeviceRemoved {
                dev_eui: text("0101010101010101"),
            },
            CitizenChange::CommentModerated {
                idea_id: idea_id(),
                comment_id: text("c"),
                hidden: true,
            },
            CitizenChange::TextsErased {
                request_id: text("e"),
                subjects: vec![report()],
            },
            CitizenChange::StaffAction {
                action: text("a"),
                target: text("t"),
                scope: text("intercommunality"),
                detail: None,
            },
            CitizenChange::ReportPhotoModerated {
                report_id: report(),
                photo_id: text("p"),
                visible: true,
            },
            CitizenChange::CommentFlagged {
                idea_id: idea_id(),
                comment_id: text("c"),
                flagger: text("f"),
                reason: FlagReason::Offensive,
            },
        ];
        let which = |c: &CitizenChange| match c {
            CitizenChange::ReportSubmitted(_) => 0,
            CitizenChange::ReportFollowed { .. } => 1,
            CitizenChange::ReportStatusChanged { .. } => 2,
            CitizenChange::ReportLinkedToBin { .. } => 3,
            CitizenChange::ReportUnlinkedFromBin { .. } => 4,
            CitizenChange::IdeaSubmitted(_) => 5,
            CitizenChange::IdeaSupported { .. } => 6,
            CitizenChange::IdeaSupportWithdrawn { .. } => 7,
            CitizenChange::IdeaCommented { .. } => 8,
            CitizenChange::IdeaFlagged { .. } => 9,
            CitizenChange::IdeaAnswered { .. } => 10,
            CitizenChange::IdeaModerated { .. } => 11,
            CitizenChange::PlaceUpdated(_) => 12,
            CitizenChange::PlaceRemoved { .. } => 13,
            CitizenChange::ChildcareVacanciesUpdated { .. } => 14,
            CitizenChange::DepotUpdated(_) => 15,
            CitizenChange::DepotRemoved { .. } => 16,
            CitizenChange::TruckUpdated(_) => 17,
            CitizenChange::TruckRemoved { .. } => 18,
            CitizenChange::DeviceRegistered(_) => 19,
            CitizenChange::DeviceRemoved { .. } => 20,
            CitizenChange::CommentModerated { .. } => 21,
            CitizenChange::TextsErased { .. } => 22,
            CitizenChange::StaffAction { .. } => 23,
            CitizenChange::ReportPhotoModerated { .. } => 24,
            CitizenChange::CommentFlagged { .. } => 25,
        };
        let covered: Vec<usize> = samples.iter().map(which).collect();
        assert_eq!(
            covered,
            (0..=25).collect::<Vec<_>>(),
            "one sample of each kind"
        );
        samples
    }

    #[test]
    fn every_kind_of_event_lands_in_a_table_of_the_stream_it_is_written_on() {
        // Not a dead letter: a link to a bin or an erasure once was, and the lake missed
        // them.
        for change in one_of_each() {
            let stream = change.stream();
            assert!(
                stream
                    .routes()
                    .iter()
                    .any(|(kind, _)| *kind == change.kind()),
                "{} is written on {stream}, which does not carry it",
                change.kind()
            );
            let event = CitizenEvent::new("hub", change);
            let json: serde_json::Value = serde_json::from_slice(&event.to_json()).unwrap();
            assert_eq!(CitizenEvent::parse(json).unwrap(), event);
        }
    }

    #[test]
    fn an_event_round_trips_through_json_with_its_type() {
        let e = submitted();
        let json: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(json["type"], "ReportSubmitted");
        assert_eq!(json["serviceCode"], "pothole");
        assert_eq!(CitizenEvent::parse(json).unwrap(), e);
    }

    #[test]
    fn contact_details_have_no_field_in_the_event() {
        let json = String::from_utf8(submitted().to_json()).unwrap();
        for word in ["email", "phone", "contact\""] {
            assert!(!json.contains(word), "{word} in {json}");
        }
    }

    #[test]
    fn bad_events_are_refused_with_a_reason() {
        let mut e = submitted();
        if let CitizenChange::ReportSubmitted(r) = &mut e.change {
            r.lat = 123.0;
        }
        let err = e.validate().unwrap_err();
        assert_eq!(err.reason, crate::rejection::Reason::Range);
        let mut e = submitted();
        if let CitizenChange::ReportSubmitted(r) = &mut e.change {
            r.description = "x".repeat(MAX_TEXT_CHARS + 1);
        }
        assert_eq!(
            e.validate().unwrap_err().reason,
            crate::rejection::Reason::Range
        );
        let unknown = serde_json::json!({"id": "e", "type": "ReportDeleted", "actor": "x",
            "dateObserved": "2026-11-28T10:00:00Z", "reportId": "r"});
        assert_eq!(
            CitizenEvent::parse(unknown).unwrap_err().reason,
            crate::rejection::Reason::Schema
        );
    }

    #[test]
    fn the_record_keeps_the_common_columns_and_the_rest_as_json() {
        let r = submitted().record();
        assert_eq!(r.kind, "ReportSubmitted");
        assert_eq!(r.entity_id, "r-1");
        assert_eq!(r.commune_code.as_deref(), Some("34114"));
        let payload: serde_json::Value = serde_json::from_str(&r.payload).unwrap();
        assert_eq!(payload["description"], "Un trou profond devant la mairie");
        assert!(payload.get("type").is_none());
    }

    #[test]
    fn every_service_has_a_unique_code_and_a_french_name() {
        let mut codes: Vec<_> = SERVICES.iter().map(|s| s.code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), SERVICES.len());
        assert!(service("pothole").is_some() && service("nope").is_none());
    }

    #[test]
    fn uuids_are_version_4_and_distinct() {
        let (a, b) = (uuid_v4(), uuid_v4());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
