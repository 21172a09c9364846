//! The command layer: every write of citizens and staff, with its rules declared once for
//! every door (GraphQL mutations, Open311's `POST requests.json`).
//!
//! ```text
//!  GraphQL mutation ─┐
//!  Open311 POST ─────┴─► Command ─► Commands::execute
//!                                     1. rate limit (per address; per citizen token)
//!                                     2. who may: anonymous, citizen token or staff
//!                                     3. load from the view, scope (staff's commune), validate
//!                                     4. StaffAction ─► vallee.staff.audit     (staff, first)
//!                                     5. CitizenEvent(s) ─► sink (acks=all) ─► view
//!                                     6. Applied: the entity re-read from the view
//! ```
//!
//! Who may send what (the dispatch of [`Commands::execute`] says it in code: a handler
//! takes a `Citizen` or a `Staff`, so it cannot run for another caller):
//!
//! | command                                               | anonymous | citizen | staff        |
//! |-------------------------------------------------------|-----------|---------|--------------|
//! | issue citizen token, submit report                    | yes       | yes     | yes          |
//! | follow report; submit, support, withdraw support,     | —         | yes     | —            |
//! | comment, flag idea; withdraw idea (its author only);  |           |         |              |
//! | erase what they wrote                                 |           |         |              |
//! | update report status, merge a duplicate report,       | —         | —       | in its scope |
//! | answer and moderate idea,                             |           |         |              |
//! | export and erase reporter data, update and remove     |           |         |              |
//! | place, update childcare vacancies, update and remove  |           |         |              |
//! | depot and truck (the collection fleet)                |           |         |              |
//!
//! Staff of a commune act on that commune only, the intercommunality's on everything.
//! Refusals keep the codes clients know ([`CommandError`]); a second support, follow or
//! flag by the same citizen writes nothing and answers as the first did.
//!
//! # Layout
//! - this file: [`Command`], [`Applied`], [`CommandError`], [`Commands::execute`] (limits
//!   and dispatch).
//! - `access`: the caller kinds a command needs, the staff's scope.
//! - `validate`: free-text rules.
//! - `writes`: the events of one command, the audit record first.
//! - `reports`, `reporter_data` (GDPR), `ideas`, `places` (and childcare), `fleet` (depots
//!   and trucks), `tokens`: the commands of each area.

mod access;
pub mod devices;
mod fleet;
mod ideas;
mod places;
mod reporter_data;
mod reports;
mod tokens;
mod validate;
mod writes;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use vallee_schemas::citizen::{
    DepotUpdated, DeviceRegistered, FlagReason, IdeaState, IdeaTheme, PlaceKind, ReportStatus,
    Substatus, TruckUpdated,
};

use crate::auth::{Authenticator, Caller};
use crate::citizen::CitizenHub;
use crate::citizen::contacts::{Contact, ContactStore};
use crate::citizen::reads::SeenBy;
use crate::citizen::view::{Comment, Idea, Place, Report};
use crate::options::{ApiOptions, Limits};
use crate::rate_limit::{RateLimiter, address_key};
use access::{citizen, staff};

/// A write a citizen or a staff member asks for.
#[derive(Debug, Clone)]
pub enum Command {
    /// An anonymous citizen token.
    IssueCitizenToken,
    /// Reports a problem (anonymously or with a citizen token).
    SubmitReport(SubmitReport),
    /// "Me too": the citizen follows a report.
    FollowReport {
        report_id: String,
    },
    /// Staff: a report's new status.
    UpdateReportStatus(UpdateReportStatus),
    /// Staff (GDPR, right of access): a reporter's contact and reports.
    ExportReporterData(ReporterOf),
    /// Staff (GDPR, right to erasure): erases a reporter's texts and contact details.
    EraseReporterData(ReporterOf),
    /// A citizen (GDPR, right to erasure): erases what they wrote under their token.
    EraseMyContributions,
    SubmitIdea(SubmitIdea),
    SupportIdea {
        idea_id: String,
    },
    WithdrawSupport {
        idea_id: String,
    },
    CommentIdea {
        idea_id: String,
        body: String,
    },
    /// Flags an idea for moderation.
    FlagIdea {
        idea_id: String,
        reason: FlagReason,
    },
    /// Flags one comment of an idea for moderation.
    FlagComment {
        idea_id: String,
        comment_id: String,
        reason: FlagReason,
    },
    /// The author withdraws their idea.
    WithdrawIdea {
        idea_id: String,
    },
    /// Staff: answers an idea.
    AnswerIdea {
        idea_id: String,
        state: IdeaState,
        answer: Option<String>,
    },
    /// Staff: unties a waste report from the bin the hub tied it to (a wrong match).
    UnlinkReportFromBin {
        report_id: String,
    },
    /// Staff: closes a report as a duplicate of another, whose followers it joins.
    MergeReport {
        report_id: String,
        into: String,
    },
    /// Staff: shows one of a report's photos publicly, or hides it.
    ModerateReportPhoto {
        report_id: String,
        photo_id: String,
        visible: bool,
    },
    /// Staff: hides or shows an idea.
    ModerateIdea {
        idea_id: String,
        hidden: bool,
    },
    /// Staff: hides or shows one comment of an idea.
    ModerateComment {
        idea_id: String,
        comment_id: String,
        hidden: bool,
    },
    /// Staff: publishes a reference place (a new one, or the whole new version of one).
    UpdatePlace(UpdatePlace),
    /// Staff: removes a reference place.
    RemovePlace {
        place_id: String,
    },
    /// Staff: the places free right now in a childcare facility.
    UpdateChildcareVacancies {
        place_id: String,
        vacancies: u32,
    },
    /// Staff: publishes a depot of the collection fleet (an empty id: a new one).
    UpdateDepot(DepotUpdated),
    /// Staff: removes a depot no truck leaves from.
    RemoveDepot {
        depot_id: String,
    },
    /// Staff: publishes a collection truck.
    UpdateTruck(TruckUpdated),
    /// Staff: removes a truck.
    RemoveTruck {
        truck_id: String,
    },
    /// Staff of the device's commune: registers a field device (or its new version).
    RegisterDevice(devices::Registration),
    /// Staff: registers every device of a CSV, once all are valid and in scope.
    ImportDevices {
        csv: String,
    },
    /// Staff of the device's commune: removes it from the register.
    RemoveDevice {
        dev_eui: String,
    },
    /// Staff of the intercommunality: a test push to a vineyard partner (audited; the
    /// caller then sends it).
    TestPartnerPush {
        partner: String,
    },
}

/// A report as the citizen gave it (checked by the command, not by the door).
#[derive(Debug, Clone, Default)]
pub struct SubmitReport {
    pub service_code: String,
    pub description: String,
    /// WGS 84; give `lat` and `long`, or `address_string`.
    pub lat: Option<f64>,
    pub long: Option<f64>,
    /// Free address naming a commune of the valley (or its postal code).
    pub address_string: Option<String>,
    pub media_url: Option<String>,
    /// Kept in the restricted store, never in an event.
    pub contact: Option<Contact>,
    /// Ids of photos sent to `POST /media/v1/photos` (at most three).
    pub photos: Vec<String>,
}

/// A report's new status.
#[derive(Debug, Clone)]
pub struct UpdateReportStatus {
    pub report_id: String,
    pub status: ReportStatus,
    pub substatus: Option<Substatus>,
    pub status_notes: Option<String>,
}

/// The reporter a GDPR request is about: by one report, or by email (give one of them).
#[derive(Debug, Clone, Default)]
pub struct ReporterOf {
    pub report_id: Option<String>,
    pub email: Option<String>,
}

/// An idea as the citizen proposed it.
#[derive(Debug, Clone)]
pub struct SubmitIdea {
    pub title: String,
    pub body: String,
    pub theme: IdeaTheme,
    /// INSEE code of the commune it is about (`None`: the whole valley).
    pub commune_code: Option<String>,
}

/// A reference place to publish, whole.
#[derive(Debug, Clone)]
pub struct UpdatePlace {
    /// `None`: a new place.
    pub place_id: Option<String>,
    pub kind: PlaceKind,
    pub name: String,
    pub commune_code: String,
    pub address: Option<String>,
    pub lat: Option<f64>,
    pub long: Option<f64>,
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

/// What a command did, with the entity it changed as the view now has it.
#[derive(Debug, Clone)]
pub enum Applied {
    /// A fresh citizen token (it cannot be recovered).
    CitizenToken(String),
    /// A new report, and open reports of the same service nearby that may be the same
    /// problem (newest first).
    ReportSubmitted {
        report: Report,
        possible_duplicates: Vec<Report>,
    },
    Report(Report),
    Idea(Idea),
    /// A comment, and the idea it is on.
    IdeaCommented {
        idea: Idea,
        comment: Comment,
    },
    Place(Place),
    PlaceRemoved {
        place_id: String,
    },
    Depot(DepotUpdated),
    Truck(TruckUpdated),
    /// A depot or truck removed.
    FleetRemoved {
        id: String,
    },
    /// Only the audit record was written (the action follows).
    Audited,
    Device(DeviceRegistered),
    /// How many devices an import registered.
    DevicesImported(usize),
    /// A reporter's data: one record per report with a kept contact.
    ReporterData(Vec<ReporterRecord>),
    /// The reports whose texts and contact details were erased.
    ReporterDataErased(Vec<String>),
    /// What a citizen's erasure covered.
    ContributionsErased {
        reports: Vec<String>,
        ideas: Vec<String>,
        comments: Vec<String>,
    },
}

/// A reporter's contact and the report it came with.
#[derive(Debug, Clone)]
pub struct ReporterRecord {
    pub report_id: String,
    pub contact: Contact,
    /// `None`: the report is not (yet) in this replica's view.
    pub report: Option<Report>,
}

/// Why a command was not applied. Each refusal names the code a door answers with; the
/// messages are the API's.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The input breaks a rule (`BAD_USER_INPUT`).
    #[error("{0}")]
    BadInput(String),
    /// The command needs a token the caller did not give (`UNAUTHENTICATED`).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this, or not there (`FORBIDDEN`).
    #[error("{0}")]
    Forbidden(String),
    /// What the command names does not exist, or not for this caller (`NOT_FOUND`).
    #[error("{0}")]
    NotFound(String),
    /// Too many commands from this address or token (`RATE_LIMITED`).
    #[error("too many requests: retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    /// The hub could not carry it out (broker, restricted store): not the caller's fault.
    #[error(transparent)]
    Failed(#[from] crate::Error),
}

impl CommandError {
    fn bad(message: impl Into<String>) -> Self {
        CommandError::BadInput(message.into())
    }
}

impl From<std::io::Error> for CommandError {
    fn from(e: std::io::Error) -> Self {
        CommandError::Failed(e.into())
    }
}

type Result<T, E = CommandError> = std::result::Result<T, E>;

/// Carries out commands: the one way citizens' and staff's writes reach the hub.
pub struct Commands {
    citizens: Arc<CitizenHub>,
    contacts: ContactStore,
    auth: Authenticator,
    limiter: RateLimiter,
    limits: Limits,
    /// New ideas wait for a moderator.
    pre_moderation: bool,
    /// Distinct flags that hide an idea from the public.
    flags_to_hide: usize,
    /// Where the bins stand, to tie waste reports to them (`None`: reports stay untied).
    bins: Option<Arc<dyn BinLocator>>,
    /// The photos reports may join (`None`: a report with photos is refused).
    photos: Option<Arc<crate::media::PhotoStore>>,
}

/// Where the bins stand: the nearest to a place, within a radius (the lake's latest
/// readings; the unit tests give a fixed list).
pub trait BinLocator: Send + Sync {
    /// The nearest bin to `(lat, long)` within `radius_m`: its id and distance in metres.
    fn nearest(
        &self,
        lat: f64,
        long: f64,
        radius_m: f64,
    ) -> futures::future::BoxFuture<'_, std::result::Result<Option<(String, f64)>, String>>;
}

impl BinLocator for crate::sensors::SensorReader {
    fn nearest(
        &self,
        lat: f64,
        long: f64,
        radius_m: f64,
    ) -> futures::future::BoxFuture<'_, std::result::Result<Option<(String, f64)>, String>> {
        Box::pin(async move {
            self.nearest_bin(lat, long, radius_m)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commands")
            .field("citizens", &self.citizens)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Commands {
    /// Commands writing through `citizens`, keeping contacts in `contacts`, issuing tokens
    /// with `auth`, under the limits and idea-box settings of `options`.
    pub fn new(
        citizens: Arc<CitizenHub>,
        contacts: ContactStore,
        auth: Authenticator,
        options: &ApiOptions,
    ) -> Self {
        Commands {
            citizens,
            contacts,
            auth,
            limiter: RateLimiter::with_max_keys(options.limits.max_rate_limit_keys),
            limits: options.limits.clone(),
            pre_moderation: options.pre_moderation,
            flags_to_hide: options.flags_to_hide,
            bins: None,
            photos: None,
        }
    }

    /// The same, with the photo store reports join photos from.
    pub fn with_photos(self, photos: Arc<crate::media::PhotoStore>) -> Self {
        Commands {
            photos: Some(photos),
            ..self
        }
    }

    /// The same, tying waste reports to the bins `bins` locates.
    pub fn with_bins(self, bins: Arc<dyn BinLocator>) -> Self {
        Commands {
            bins: Some(bins),
            ..self
        }
    }

    /// Carries out `command` for `caller`, who sent it from `address` (when the door knows
    /// it: the per-address limits count it, an IPv6 address by its /64). Every door passes
    /// both: GraphQL over HTTP and over a WebSocket (from the connection's session), Open311.
    pub async fn execute(
        &self,
        caller: &Caller,
        address: Option<IpAddr>,
        command: Command,
    ) -> Result<Applied> {
        self.count(caller, address, &command)?;
        match command {
            Command::IssueCitizenToken => Ok(self.issue_citizen_token()),
            Command::SubmitReport(report) => self.submit_report(caller, report).await,
            Command::FollowReport { report_id } => {
                self.follow_report(citizen(caller)?, &report_id).await
            }
            Command::UpdateReportStatus(change) => {
                self.update_report_status(staff(caller)?, change).await
            }
            Command::ExportReporterData(reporter) => {
                self.export_reporter_data(staff(caller)?, reporter).await
            }
            Command::EraseReporterData(reporter) => {
                self.erase_reporter_data(staff(caller)?, reporter).await
            }
            Command::EraseMyContributions => self.erase_my_contributions(citizen(caller)?).await,
            Command::SubmitIdea(idea) => self.submit_idea(citizen(caller)?, idea).await,
            Command::SupportIdea { idea_id } => self.support_idea(citizen(caller)?, &idea_id).await,
            Command::WithdrawSupport { idea_id } => {
                self.withdraw_support(citizen(caller)?, &idea_id).await
            }
            Command::CommentIdea { idea_id, body } => {
                self.comment_idea(citizen(caller)?, &idea_id, &body).await
            }
            Command::FlagIdea { idea_id, reason } => {
                self.flag_idea(citizen(caller)?, &idea_id, reason).await
            }
            Command::FlagComment {
                idea_id,
                comment_id,
                reason,
            } => {
                self.flag_comment(citizen(caller)?, &idea_id, &comment_id, reason)
                    .await
            }
            Command::WithdrawIdea { idea_id } => {
                self.withdraw_idea(citizen(caller)?, &idea_id).await
            }
            Command::AnswerIdea {
                idea_id,
                state,
                answer,
            } => {
                self.answer_idea(staff(caller)?, &idea_id, state, answer)
                    .await
            }
            Command::MergeReport { report_id, into } => {
                self.merge_report(staff(caller)?, &report_id, &into).await
            }
            Command::ModerateReportPhoto {
                report_id,
                photo_id,
                visible,
            } => {
                self.moderate_report_photo(staff(caller)?, &report_id, &photo_id, visible)
                    .await
            }
            Command::UnlinkReportFromBin { report_id } => {
                self.unlink_report_from_bin(staff(caller)?, &report_id)
                    .await
            }
            Command::ModerateIdea { idea_id, hidden } => {
                self.moderate_idea(staff(caller)?, &idea_id, hidden).await
            }
            Command::ModerateComment {
                idea_id,
                comment_id,
                hidden,
            } => {
                self.moderate_comment(staff(caller)?, &idea_id, &comment_id, hidden)
                    .await
            }
            Command::UpdatePlace(place) => self.update_place(staff(caller)?, place).await,
            Command::RemovePlace { place_id } => self.remove_place(staff(caller)?, &place_id).await,
            Command::UpdateChildcareVacancies {
                place_id,
                vacancies,
            } => {
                self.update_childcare_vacancies(staff(caller)?, &place_id, vacancies)
                    .await
            }
            Command::UpdateDepot(depot) => self.update_depot(staff(caller)?, depot).await,
            Command::RemoveDepot { depot_id } => self.remove_depot(staff(caller)?, &depot_id).await,
            Command::UpdateTruck(truck) => self.update_truck(staff(caller)?, truck).await,
            Command::RemoveTruck { truck_id } => self.remove_truck(staff(caller)?, &truck_id).await,
            Command::RegisterDevice(device) => self.register_device(staff(caller)?, device).await,
            Command::ImportDevices { csv } => self.import_devices(staff(caller)?, &csv).await,
            Command::RemoveDevice { dev_eui } => self.remove_device(staff(caller)?, &dev_eui).await,
            Command::TestPartnerPush { partner } => {
                let staff = staff(caller)?;
                // Partners are the intercommunality's (vineyard data of the whole valley).
                staff.check_scope(None)?;
                self.write(writes::Writes::audited(
                    staff,
                    "testPartnerPush",
                    &partner,
                    None,
                ))
                .await?;
                Ok(Applied::Audited)
            }
        }
    }

    /// A command's share of the limits: tokens per address for a new token; otherwise
    /// commands per address and per citizen token. Counted before anything else, so a
    /// refused or failing command costs as much as an applied one.
    fn count(&self, caller: &Caller, address: Option<IpAddr>, command: &Command) -> Result<()> {
        let check = |key: String, limit: u32| {
            self.limiter
                .check(&key, limit)
                .map_err(|retry_after| CommandError::RateLimited { retry_after })
        };
        if let Command::IssueCitizenToken = command {
            if let Some(ip) = address {
                check(
                    address_key("tok", ip),
                    self.limits.tokens_per_minute_per_address,
                )?;
            }
            return Ok(());
        }
        if let Some(ip) = address {
            check(
                address_key("m", ip),
                self.limits.mutations_per_minute_per_address,
            )?;
        }
        if let Caller::Citizen { pseudonym } = caller {
            check(
                format!("t/{pseudonym}"),
                self.limits.mutations_per_minute_per_token,
            )?;
        }
        Ok(())
    }

    /// A report as this replica sees it.
    fn report(&self, id: &str) -> Result<Report> {
        self.citizens
            .view
            .read()
            .expect("view lock")
            .report(id)
            .ok_or_else(|| CommandError::NotFound(format!("no report {id}")))
    }

    /// An idea as `seen_by` sees it on this replica.
    fn idea(&self, id: &str, seen_by: SeenBy) -> Result<Idea> {
        self.citizens
            .view
            .read()
            .expect("view lock")
            .idea(id, seen_by)
            .ok_or_else(|| CommandError::NotFound(format!("no idea {id}")))
    }

    /// How the public sees ideas.
    fn public(&self) -> SeenBy {
        SeenBy::Public {
            flags_to_hide: self.flags_to_hide,
        }
    }

    /// A reference place as this replica sees it.
    fn place(&self, id: &str) -> Result<Place> {
        self.citizens
            .view
            .read()
            .expect("view lock")
            .place(id)
            .ok_or_else(|| CommandError::NotFound("no such place".into()))
    }
}
