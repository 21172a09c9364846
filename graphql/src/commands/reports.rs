//! Reports: anyone submits one, citizens follow them ("me too"), staff of the report's
//! scope change their status. A report of an overflowing bin is tied to the nearest bin
//! within 30 m (the bin moves up the list of bins to collect), staff may untie it, and the
//! hub closes it once that bin was emptied.

use chrono::{Duration, Utc};
use vallee_schemas::citizen::{
    self, BIN_LINK_RADIUS_M, BIN_SERVICES, CitizenChange, CitizenEvent, Competence, MAX_TEXT_CHARS,
    ReportStatus, ReportSubmitted, Substatus,
};
use vallee_schemas::communes::{self, Commune};
use vallee_schemas::geo::GeoPoint;

use super::access::{Citizen, Staff};
use super::validate::{opt_text, text};
use super::writes::Writes;
use super::{Applied, CommandError, Commands, Result, SubmitReport, UpdateReportStatus};
use crate::auth::Caller;
use crate::citizen::contacts::Contact;
use crate::citizen::view::Report;

/// Name of the intercommunality (agency of its competences).
pub const INTERCOMMUNALITY: &str = "Communauté de communes Vallée de l'Hérault";
/// Reports of the same service closer than this are suggested as duplicates…
const DUPLICATE_RADIUS_M: f64 = 50.0;
/// …and newer than this.
const DUPLICATE_DAYS: i64 = 7;

/// Where a report is: its point and commune, from lat/long or an address.
fn locate(report: &SubmitReport) -> Result<(GeoPoint, &'static Commune)> {
    let valley = communes::valley();
    match (report.lat, report.long, report.address_string.as_deref()) {
        (Some(lat), Some(lon), _) => {
            if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                return Err(CommandError::bad("lat/long is not a WGS 84 position"));
            }
            let point = GeoPoint { lon, lat };
            let commune = valley.locate(&point).ok_or_else(|| {
                CommandError::bad("this position is outside the valley's communes")
            })?;
            Ok((point, commune))
        }
        (None, None, Some(address)) => {
            let a = address.to_lowercase();
            let commune = valley
                .all()
                .iter()
                .filter(|c| {
                    a.contains(&c.name.to_lowercase())
                        || c.postal_codes.iter().any(|p| a.contains(p.as_str()))
                })
                .max_by_key(|c| c.name.len())
                .ok_or_else(|| {
                    CommandError::bad(
                        "the address names no commune of the valley: give lat and long",
                    )
                })?;
            Ok((commune.centre, commune))
        }
        (Some(_), None, _) | (None, Some(_), _) => Err(CommandError::bad("give both lat and long")),
        (None, None, None) => Err(CommandError::bad("give lat and long, or addressString")),
    }
}

/// The contact a reporter left, checked; `None` when they left nothing.
fn checked_contact(contact: Option<Contact>) -> Result<Option<Contact>> {
    let Some(c) = contact else {
        return Ok(None);
    };
    let contact = Contact {
        email: opt_text("email", c.email, 320)?,
        phone: opt_text("phone", c.phone, 40)?,
        first_name: opt_text("firstName", c.first_name, 100)?,
        last_name: opt_text("lastName", c.last_name, 100)?,
    };
    // Written into messages' envelopes and headers later: a plain address only.
    if let Some(e) = &contact.email
        && !crate::notify::message::deliverable(e)
    {
        return Err(CommandError::bad("email is not an email address"));
    }
    Ok(Some(contact).filter(|c| !c.is_empty()))
}

impl Commands {
    /// Anyone: a new report, placed in its commune, with the agency competent for its
    /// service; the contact (if any) kept in the restricted store first.
    pub(super) async fn submit_report(
        &self,
        caller: &Caller,
        report: SubmitReport,
    ) -> Result<Applied> {
        let service = citizen::service(&report.service_code).ok_or_else(|| {
            CommandError::bad(format!("unknown serviceCode {:?}", report.service_code))
        })?;
        let description = text("description", &report.description, MAX_TEXT_CHARS)?;
        let (point, commune) = locate(&report)?;
        let media_url = opt_text("mediaUrl", report.media_url, 2_000)?;
        if let Some(u) = &media_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(CommandError::bad("mediaUrl must be an http(s) URL"));
        }
        let contact = checked_contact(report.contact)?;
        let address_string = opt_text("addressString", report.address_string, 500)?;
        let photos = self.checked_photos(report.photos).await?;
        let agency = match service.competence {
            Competence::Commune => format!("Mairie de {}", commune.name),
            Competence::Intercommunality => INTERCOMMUNALITY.to_string(),
        };
        let report_id = citizen::uuid_v4();
        // The contact is stored first: a report never points to a contact that is not
        // kept; a contact whose report failed to publish is orphaned, never public.
        // Written and synced off the async workers (an fsync can take milliseconds).
        if let Some(c) = contact.clone() {
            let (store, id) = (self.contacts.clone(), report_id.clone());
            tokio::task::spawn_blocking(move || store.put(&id, &c))
                .await
                .map_err(|e| crate::Error::Internal(e.to_string()))??;
        }
        let author = match caller {
            Caller::Citizen { pseudonym } => Some(pseudonym.clone()),
            _ => None,
        };
        // One instant for the request and its due date: the delay is whole days.
        let now = Utc::now();
        let mut event = CitizenEvent::new(
            caller.actor(),
            CitizenChange::ReportSubmitted(ReportSubmitted {
                report_id: report_id.clone(),
                service_code: service.code.into(),
                description,
                lat: point.lat,
                long: point.lon,
                address_string,
                media_url,
                commune_code: commune.insee_code.clone(),
                agency_responsible: agency,
                expected_datetime: now + Duration::days(i64::from(service.delay_days)),
                has_contact: contact.is_some(),
                author,
                contact_digest: contact
                    .as_ref()
                    .and_then(|c| c.email.as_deref())
                    .map(|e| self.citizens.contact_digest(e)),
                photos,
            }),
        );
        event.date_observed = now;
        self.write(Writes::event(event)).await?;
        if BIN_SERVICES.contains(&service.code) {
            self.tie_to_bin(&report_id, point).await;
        }
        let report = self.report(&report_id)?;
        let possible_duplicates = self.possible_duplicates(&report);
        Ok(Applied::ReportSubmitted {
            report,
            possible_duplicates,
        })
    }

    /// Open reports of the same service within 50 m and 7 days of `report`, newest first.
    fn possible_duplicates(&self, report: &Report) -> Vec<Report> {
        let new = &report.submitted;
        let point = GeoPoint {
            lon: new.long,
            lat: new.lat,
        };
        let view = self.citizens.view.read().expect("view lock");
        let mut found: Vec<Report> = view
            .reports
            .values()
            .filter(|r| {
                r.submitted.report_id != new.report_id
                    && r.status == citizen::ReportStatus::Open
                    && r.submitted.service_code == new.service_code
                    && r.requested >= report.requested - Duration::days(DUPLICATE_DAYS)
                    && point.distance_m(&GeoPoint {
                        lon: r.submitted.long,
                        lat: r.submitted.lat,
                    }) <= DUPLICATE_RADIUS_M
            })
            .cloned()
            .collect();
        found.sort_by_key(|r| std::cmp::Reverse(r.requested));
        found
    }

    /// A citizen: "me too", once (repeating writes nothing).
    pub(super) async fn follow_report(&self, citizen: Citizen<'_>, id: &str) -> Result<Applied> {
        let current = self.report(id)?;
        if !current.followers.contains(citizen.pseudonym()) {
            let follow = citizen.event(CitizenChange::ReportFollowed {
                report_id: id.to_string(),
                follower: citizen.pseudonym().to_string(),
            });
            self.write(Writes::event(follow)).await?;
        }
        Ok(Applied::Report(self.report(id)?))
    }

    /// Staff of the report's scope: its new status.
    pub(super) async fn update_report_status(
        &self,
        staff: Staff<'_>,
        change: UpdateReportStatus,
    ) -> Result<Applied> {
        let id = change.report_id;
        let current = self.report(&id)?;
        staff.check_scope(Some(&current.submitted.commune_code))?;
        let notes = opt_text("statusNotes", change.status_notes, MAX_TEXT_CHARS)?;
        let detail = format!("{:?}/{:?}", change.status, change.substatus);
        let status = staff.event(CitizenChange::ReportStatusChanged {
            report_id: id.clone(),
            status: change.status,
            substatus: change.substatus,
            status_notes: notes,
        });
        self.write(Writes::audited(staff, "updateReportStatus", &id, Some(detail)).then(status))
            .await?;
        Ok(Applied::Report(self.report(&id)?))
    }

    /// Ties a waste report to the nearest bin within [`BIN_LINK_RADIUS_M`], if the bins'
    /// positions are known. The report stands whatever happens here: a failure is logged,
    /// and staff see an untied report.
    async fn tie_to_bin(&self, report_id: &str, point: GeoPoint) {
        let Some(bins) = &self.bins else { return };
        let tied = match bins.nearest(point.lat, point.lon, BIN_LINK_RADIUS_M).await {
            Ok(Some((bin_id, distance_m))) => {
                let link = CitizenEvent::new(
                    HUB_ACTOR,
                    CitizenChange::ReportLinkedToBin {
                        report_id: report_id.to_string(),
                        bin_id,
                        distance_m,
                    },
                );
                self.write(Writes::event(link))
                    .await
                    .map_err(|e| e.to_string())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(error) = tied {
            tracing::warn!(
                report_id,
                error,
                "a waste report could not be tied to its bin"
            );
        }
    }

    /// Staff of both reports' scope: closes `id` as a duplicate of `into` (status note
    /// naming it), and its reporter (when they had a token) and followers follow `into`,
    /// so they hear what happens to the problem.
    pub(super) async fn merge_report(
        &self,
        staff: Staff<'_>,
        id: &str,
        into: &str,
    ) -> Result<Applied> {
        if id == into {
            return Err(CommandError::bad(
                "a report cannot be a duplicate of itself",
            ));
        }
        let (duplicate, original) = (self.report(id)?, self.report(into)?);
        staff.check_scope(Some(&duplicate.submitted.commune_code))?;
        staff.check_scope(Some(&original.submitted.commune_code))?;
        if duplicate.status == ReportStatus::Closed {
            return Err(CommandError::bad("this report is already closed"));
        }
        let mut writes = Writes::audited(staff, "mergeReport", id, Some(into.to_string()));
        let people: std::collections::BTreeSet<&String> = duplicate
            .followers
            .iter()
            .chain(duplicate.submitted.author.iter())
            .filter(|p| !original.followers.contains(*p))
            .collect();
        for follower in people {
            writes = writes.then(staff.event(CitizenChange::ReportFollowed {
                report_id: into.to_string(),
                follower: follower.clone(),
            }));
        }
        writes = writes.then(staff.event(CitizenChange::ReportStatusChanged {
            report_id: id.to_string(),
            status: ReportStatus::Closed,
            substatus: Some(Substatus::Duplicate),
            status_notes: Some(format!(
                "Doublon du signalement {into} : suivez-le pour la suite."
            )),
        }));
        self.write(writes).await?;
        Ok(Applied::Report(self.report(into)?))
    }

    /// The photos a new report joins: at most three, each sent to the photo store before
    /// and joined to no other report.
    async fn checked_photos(&self, photos: Vec<String>) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for id in photos {
            if !out.contains(&id) {
                out.push(id);
            }
        }
        if out.len() > citizen::MAX_REPORT_PHOTOS {
            return Err(CommandError::bad(format!(
                "at most {} photos",
                citizen::MAX_REPORT_PHOTOS
            )));
        }
        if out.is_empty() {
            return Ok(out);
        }
        let Some(store) = &self.photos else {
            return Err(CommandError::bad("photos are not kept here"));
        };
        for id in &out {
            if !store.contains(id).await {
                return Err(CommandError::bad(format!(
                    "photos: {id:?} is not a photo sent to POST /media/v1/photos (or it expired)"
                )));
            }
        }
        let view = self.citizens.view.read().expect("view lock");
        for id in &out {
            if view.photo(id).is_some() {
                return Err(CommandError::bad(
                    "photos: this photo is already joined to another report",
                ));
            }
        }
        Ok(out)
    }

    /// Staff of the report's scope: shows one of its photos publicly, or hides it.
    pub(super) async fn moderate_report_photo(
        &self,
        staff: Staff<'_>,
        id: &str,
        photo_id: &str,
        visible: bool,
    ) -> Result<Applied> {
        let current = self.report(id)?;
        staff.check_scope(Some(&current.submitted.commune_code))?;
        if !current.photos.iter().any(|p| p.id == photo_id) {
            return Err(CommandError::NotFound(
                "no such photo on this report".into(),
            ));
        }
        let moderated = staff.event(CitizenChange::ReportPhotoModerated {
            report_id: id.to_string(),
            photo_id: photo_id.to_string(),
            visible,
        });
        let detail = format!("{photo_id} {}", if visible { "shown" } else { "hidden" });
        self.write(Writes::audited(staff, "moderateReportPhoto", id, Some(detail)).then(moderated))
            .await?;
        Ok(Applied::Report(self.report(id)?))
    }

    /// Staff of the report's scope: unties it from its bin.
    pub(super) async fn unlink_report_from_bin(
        &self,
        staff: Staff<'_>,
        id: &str,
    ) -> Result<Applied> {
        let current = self.report(id)?;
        staff.check_scope(Some(&current.submitted.commune_code))?;
        let bin_id = current
            .bin
            .ok_or_else(|| CommandError::bad("this report is tied to no bin"))?;
        let unlink = staff.event(CitizenChange::ReportUnlinkedFromBin {
            report_id: id.to_string(),
            bin_id: bin_id.clone(),
        });
        self.write(Writes::audited(staff, "unlinkReportFromBin", id, Some(bin_id)).then(unlink))
            .await?;
        Ok(Applied::Report(self.report(id)?))
    }

    /// The hub: closes a report tied to `bin`, which was emptied at `emptied_at` (its
    /// sensor saw the level fall). Every replica may find it: the event's id is the
    /// report's, so it counts once in every view.
    pub async fn close_emptied_bin_report(
        &self,
        report_id: &str,
        bin: &str,
        emptied_at: chrono::DateTime<Utc>,
    ) -> Result<()> {
        let mut closed = CitizenEvent::new(
            HUB_ACTOR,
            CitizenChange::ReportStatusChanged {
                report_id: report_id.to_string(),
                status: ReportStatus::Closed,
                substatus: Some(Substatus::Fixed),
                status_notes: Some(format!(
                    "Conteneur {bin} vidé le {} (UTC), constaté par son capteur",
                    emptied_at.format("%d/%m/%Y à %H:%M")
                )),
            },
        );
        closed.id = format!("emptied-{report_id}");
        self.write(Writes::event(closed)).await
    }
}

/// The actor of what the hub itself writes (ties, closures).
pub const HUB_ACTOR: &str = "hub";
