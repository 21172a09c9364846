//! The mutations' input objects, and the commands they become. The door only reshapes:
//! every rule (trimming, bounds, places, permissions) is the command layer's.

use async_graphql::{ID, InputObject};
use chrono::{DateTime, Utc};

use crate::citizen::contacts::Contact;
use crate::commands;
use crate::schema::types::{IdeaState, IdeaTheme, PlaceKind, ReportStatus, Substatus};

#[derive(InputObject, Debug)]
pub struct ContactInput {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

impl From<ContactInput> for Contact {
    fn from(c: ContactInput) -> Self {
        Contact {
            email: c.email,
            phone: c.phone,
            first_name: c.first_name,
            last_name: c.last_name,
        }
    }
}

#[derive(InputObject, Debug)]
pub struct SubmitReportInput {
    pub service_code: String,
    pub description: String,
    /// WGS 84 latitude; give `lat` and `long`, or `addressString`.
    pub lat: Option<f64>,
    pub long: Option<f64>,
    /// Free address naming a commune of the valley (or its postal code).
    pub address_string: Option<String>,
    pub media_url: Option<String>,
    /// Kept in the restricted store, never published.
    pub contact: Option<ContactInput>,
    /// Up to three photos, each sent first to `POST /media/v1/photos` (its `photoId`):
    /// shown publicly once staff accepted them.
    pub photos: Option<Vec<ID>>,
}

impl From<SubmitReportInput> for commands::SubmitReport {
    fn from(i: SubmitReportInput) -> Self {
        commands::SubmitReport {
            service_code: i.service_code,
            description: i.description,
            lat: i.lat,
            long: i.long,
            address_string: i.address_string,
            media_url: i.media_url,
            contact: i.contact.map(Into::into),
            photos: i
                .photos
                .unwrap_or_default()
                .into_iter()
                .map(|p| p.0)
                .collect(),
        }
    }
}

#[derive(InputObject, Debug)]
pub struct UpdateReportStatusInput {
    pub status: ReportStatus,
    pub substatus: Option<Substatus>,
    pub status_notes: Option<String>,
}

impl UpdateReportStatusInput {
    /// The command changing report `id`.
    pub fn into_command(self, id: ID) -> commands::UpdateReportStatus {
        commands::UpdateReportStatus {
            report_id: id.0,
            status: self.status.into(),
            substatus: self.substatus.map(Into::into),
            status_notes: self.status_notes,
        }
    }
}

#[derive(InputObject, Debug)]
pub struct ReporterDataInput {
    pub report_id: Option<ID>,
    pub email: Option<String>,
}

impl From<ReporterDataInput> for commands::ReporterOf {
    fn from(i: ReporterDataInput) -> Self {
        commands::ReporterOf {
            report_id: i.report_id.map(|id| id.0),
            email: i.email,
        }
    }
}

#[derive(InputObject, Debug)]
pub struct SubmitIdeaInput {
    pub title: String,
    pub body: String,
    pub theme: IdeaTheme,
    pub commune_code: Option<String>,
}

impl From<SubmitIdeaInput> for commands::SubmitIdea {
    fn from(i: SubmitIdeaInput) -> Self {
        commands::SubmitIdea {
            title: i.title,
            body: i.body,
            theme: i.theme.into(),
            commune_code: i.commune_code,
        }
    }
}

#[derive(InputObject, Debug)]
pub struct CommentIdeaInput {
    pub body: String,
}

#[derive(InputObject, Debug)]
pub struct AnswerIdeaInput {
    pub state: IdeaState,
    pub answer: Option<String>,
}

#[derive(InputObject, Debug)]
pub struct ModerateIdeaInput {
    pub hidden: bool,
}

/// A reference place to publish (a new one without `id`, or the whole new version of one).
#[derive(InputObject, Debug, Clone)]
pub struct UpdatePlaceInput {
    pub id: Option<ID>,
    pub kind: PlaceKind,
    pub name: String,
    pub commune_code: String,
    pub address: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub opening_hours: Option<String>,
    pub contact: Option<String>,
    pub website: Option<String>,
    pub description: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub seats: Option<u32>,
    pub capacity: Option<u32>,
    pub age_min_months: Option<u32>,
    pub age_max_months: Option<u32>,
}

impl From<UpdatePlaceInput> for commands::UpdatePlace {
    fn from(i: UpdatePlaceInput) -> Self {
        commands::UpdatePlace {
            place_id: i.id.map(|id| id.0),
            kind: i.kind.into(),
            name: i.name,
            commune_code: i.commune_code,
            address: i.address,
            lat: i.latitude,
            long: i.longitude,
            opening_hours: i.opening_hours,
            contact: i.contact,
            website: i.website,
            description: i.description,
            starts_at: i.starts_at,
            ends_at: i.ends_at,
            seats: i.seats,
            capacity: i.capacity,
            age_min_months: i.age_min_months,
            age_max_months: i.age_max_months,
        }
    }
}
