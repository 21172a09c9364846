//! The mutations' payloads, each built from what its command applied.

use async_graphql::{ID, SimpleObject};

use crate::commands::Applied;
use crate::schema::types::{Comment, ContactDetails, Idea, Place, Report};

/// A payload made of what a command applied; `None` when the command applied something
/// else (a mismatch between a mutation and its command, never the caller's doing).
pub trait FromApplied: Sized {
    fn from_applied(applied: Applied) -> Option<Self>;
}

#[derive(SimpleObject, Debug)]
pub struct IssueCitizenTokenPayload {
    /// Bearer token: send it as `Authorization: Bearer <token>`. Keep it: it cannot be
    /// recovered.
    pub token: String,
}

impl FromApplied for IssueCitizenTokenPayload {
    fn from_applied(applied: Applied) -> Option<Self> {
        match applied {
            Applied::CitizenToken(token) => Some(IssueCitizenTokenPayload { token }),
            _ => None,
        }
    }
}

#[derive(SimpleObject, Debug)]
pub struct SubmitReportPayload {
    pub report: Report,
    /// Open reports of the same service within 50 m and 7 days.
    pub possible_duplicates: Vec<Report>,
}

impl FromApplied for SubmitReportPayload {
    fn from_applied(applied: Applied) -> Option<Self> {
        match applied {
            Applied::ReportSubmitted {
                report,
                possible_duplicates,
            } => Some(SubmitReportPayload {
                report: Report(report),
                possible_duplicates: possible_duplicates.into_iter().map(Report).collect(),
            }),
            _ => None,
        }
    }
}

macro_rules! payloads_of {
    ($variant:ident => $field:ident: $ty:ident, $($name:ident),*) => {$(
        #[derive(SimpleObject, Debug)]
        pub struct $name {
            pub $field: $ty,
        }

        impl FromApplied for $name {
            fn from_applied(applied: Applied) -> Option<Self> {
                match applied {
                    Applied::$variant(x) => Some($name { $field: $ty::from(x) }),
                    _ => None,
                }
            }
        }
    )*};
}

payloads_of!(Report => report: Report, FollowReportPayload, UpdateReportStatusPayload, UnlinkReportFromBinPayload, MergeReportPayload, ModerateReportPhotoPayload);

payloads_of!(
    Idea => idea: Idea,
    SubmitIdeaPayload,
    SupportIdeaPayload,
    WithdrawSupportPayload,
    FlagIdeaPayload,
    FlagCommentPayload,
    WithdrawIdeaPayload,
    AnswerIdeaPayload,
    ModerateIdeaPayload,
    ModerateCommentPayload
);

payloads_of!(Place => place: Place, UpdatePlacePayload, UpdateChildcareVacanciesPayload);

use crate::schema::rounds::{Depot, Truck};
payloads_of!(Depot => depot: Depot, UpdateDepotPayload);
payloads_of!(Truck => truck: Truck, UpdateTruckPayload);
use crate::schema::devices::Device;
payloads_of!(Device => device: Device, RegisterDevicePayload);

/// How many devices an import registered.
#[derive(SimpleObject, Debug)]
pub struct ImportDevicesPayload {
    pub registered: u32,
}

impl FromApplied for ImportDevicesPayload {
    fn from_applied(applied: Applied) -> Option<Self> {
        match applied {
            Applied::DevicesImported(n) => Some(ImportDevicesPayload {
                registered: n as u32,
            }),
            _ => None,
        }
    }
}

/// A depot or truck removed.
#[derive(SimpleObject, Debug)]
pub struct RemoveFleetPayload {
    pub removed_id: ID,
}

impl FromApplied for RemoveFleetPayload {
    fn from_applied(applied: Applied) -> Option<Self> {
        match applied {
            Applied::FleetRemoved { id } => Some(RemoveFleetPayload { removed_id: ID(id) }),
            _ => None,
        }
    }
}

/// A reporter's data: the contact left and the report it came with.
#[derive(SimpleObject, Debug)]
pub struct ReporterData {
    pub report_id: ID,
    pub contact: ContactDetails,
    pub report: Option<Report>,
}

#[derive(SimpleObject, Debug)]
pub struct ExportReporterDataPayload {
    pub records: Vec<ReporterData>,
}

impl FromApplied for ExportReporterDataPayload {
    fn from_applied(applied: Applied) -> Option<Self> {
        match applied {
            Applied::ReporterData(records) => Some(ExportReporterDataPayload {
                records: records
                    .into_iter()
                    .map(|r| ReporterData {
                        report_id: ID(r.report_id),
                        contact: r.contact.into(),
                        report: r.report.map(Report),
                    })
                    .collect(),
            }),
            _ => None,
        }
    }
}

#[derive(SimpleObject, Debug)]
pub struct EraseReporterDataPayload {
    /// Reports whose texts and contact details were erased.
    pub erased: Vec<ID>,
}

#[derive(SimpleObject, Debug)]
pub struct EraseMyContributionsPayload {
    /// Reports whose texts and contact details were erased.
    pub reports: Vec<ID>,
    /// Ideas whose texts were erased (they left the public's view).
    pub ideas: Vec<ID>,
    /// Comments whose texts were erased.
    pub comments: Vec<ID>,
}

impl FromApplied for EraseMyContributionsPayload {
    fn from_applied(applied: Applied) -> Option<Self> {
        let ids = |v: Vec<String>| v.into_iter().map(ID).collect();
        match applied {
            Applied::ContributionsErased {
                reports,
                ideas,
                comments,
            } => Some(EraseMyContributionsPayload {
                reports: ids(reports),
                ideas: ids(ideas),
                comments: ids(comments),
            }),
            _ => None,
        }
    }
}

impl FromApplied for EraseReporterDataPayload {
    fn from_applied(applied: Applied) -> Option<Self> {
        match applied {
            Applied::ReporterDataErased(ids) => Some(EraseReporterDataPayload {
                erased: ids.into_iter().map(ID).collect(),
            }),
            _ => None,
        }
    }
}

#[derive(SimpleObject, Debug)]
pub struct CommentIdeaPayload {
    pub idea: Idea,
    pub comment: Comment,
}

impl FromApplied for CommentIdeaPayload {
    fn from_applied(applied: Applied) -> Option<Self> {
        match applied {
            Applied::IdeaCommented { idea, comment } => Some(CommentIdeaPayload {
                idea: Idea(idea),
                comment: Comment::from(&comment),
            }),
            _ => None,
        }
    }
}

#[derive(SimpleObject, Debug, Clone)]
pub struct RemovePlacePayload {
    pub removed_id: ID,
}

impl FromApplied for RemovePlacePayload {
    fn from_applied(applied: Applied) -> Option<Self> {
        match applied {
            Applied::PlaceRemoved { place_id } => Some(RemovePlacePayload {
                removed_id: ID(place_id),
            }),
            _ => None,
        }
    }
}
