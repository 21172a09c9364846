//! Mutations: every write is an event acknowledged by the broker before the answer.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{Duration, Utc};
use vallee_schemas::citizen::{self, CitizenChange, CitizenEvent, Competence};
use vallee_schemas::communes;
use vallee_schemas::contract::Stream;
use vallee_schemas::geo::GeoPoint;

use super::types::*;
use super::{ClientAddr, Code, caller, count_mutation, error, rate_limited, state};
use crate::auth::Caller;
use crate::citizen::contacts::Contact;
use crate::options::StaffMember;

/// The root of mutations.
#[derive(Debug, Default)]
pub struct Mutation;

/// Name of the intercommunality (agency of its competences).
pub const INTERCOMMUNALITY: &str = "Communauté de communes Vallée de l'Hérault";
/// Reports of the same service closer than this are suggested as duplicates.
const DUPLICATE_RADIUS_M: f64 = 50.0;
/// …and newer than this.
const DUPLICATE_DAYS: i64 = 7;

#[derive(SimpleObject, Debug)]
pub struct IssueCitizenTokenPayload {
    /// Bearer token: send it as `Authorization: Bearer <token>`. Keep it: it cannot be
    /// recovered.
    pub token: String,
}

#[derive(InputObject, Debug)]
pub struct ContactInput {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
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
}

#[derive(SimpleObject, Debug)]
pub struct SubmitReportPayload {
    pub report: Report,
    /// Open reports of the same service within 50 m and 7 days.
    pub possible_duplicates: Vec<Report>,
}

#[derive(SimpleObject, Debug)]
pub struct FollowReportPayload {
    pub report: Report,
}

#[derive(InputObject, Debug)]
pub struct UpdateReportStatusInput {
    pub status: ReportStatus,
    pub substatus: Option<Substatus>,
    pub status_notes: Option<String>,
}

#[derive(SimpleObject, Debug)]
pub struct UpdateReportStatusPayload {
    pub report: Report,
}

#[derive(InputObject, Debug)]
pub struct ReporterDataInput {
    pub report_id: Option<ID>,
    pub email: Option<String>,
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

#[derive(SimpleObject, Debug)]
pub struct EraseReporterDataPayload {
    /// Reports whose contact details were erased.
    pub erased: Vec<ID>,
}

#[derive(InputObject, Debug)]
pub struct SubmitIdeaInput {
    pub title: String,
    pub body: String,
    pub theme: IdeaTheme,
    pub commune_code: Option<String>,
}

macro_rules! idea_payloads {
    ($($name:ident),*) => {$(
        #[derive(SimpleObject, Debug)]
        pub struct $name {
            pub idea: Idea,
        }
    )*};
}

idea_payloads!(
    SubmitIdeaPayload,
    SupportIdeaPayload,
    WithdrawSupportPayload,
    FlagIdeaPayload,
    WithdrawIdeaPayload,
    AnswerIdeaPayload,
    ModerateIdeaPayload
);

#[derive(InputObject, Debug)]
pub struct CommentIdeaInput {
    pub body: String,
}

#[derive(SimpleObject, Debug)]
pub struct CommentIdeaPayload {
    pub idea: Idea,
    pub comment: Comment,
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

fn bad(message: impl Into<String>) -> async_graphql::Error {
    error(Code::BadUserInput, message)
}

fn text(name: &str, value: &str, max: usize) -> async_graphql::Result<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(bad(format!("{name} must not be empty")));
    }
    if v.chars().count() > max {
        return Err(bad(format!("{name} is longer than {max} characters")));
    }
    Ok(v.to_string())
}

fn opt_text(
    name: &str,
    value: Option<String>,
    max: usize,
) -> async_graphql::Result<Option<String>> {
    value
        .filter(|v| !v.trim().is_empty())
        .map(|v| text(name, &v, max))
        .transpose()
}

fn citizen_of(ctx: &Context<'_>) -> async_graphql::Result<String> {
    match caller(ctx) {
        Caller::Citizen { pseudonym } => Ok(pseudonym.clone()),
        _ => Err(error(
            Code::Unauthenticated,
            "this needs a citizen token (issueCitizenToken)",
        )),
    }
}

fn staff_of<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a StaffMember> {
    match caller(ctx) {
        Caller::Staff(s) => Ok(s),
        Caller::Anonymous => Err(error(Code::Unauthenticated, "this needs a staff token")),
        Caller::Citizen { .. } => Err(error(Code::Forbidden, "only staff may do this")),
    }
}

/// Staff of a commune act on that commune only; the intercommunality's on everything.
fn check_scope(staff: &StaffMember, commune: Option<&str>) -> async_graphql::Result<()> {
    match (&staff.commune, commune) {
        (None, _) => Ok(()),
        (Some(mine), Some(c)) if mine == c => Ok(()),
        (Some(_), _) => Err(error(
            Code::Forbidden,
            "this belongs to another commune than yours",
        )),
    }
}

/// Where a report is: its point and commune, from lat/long or an address.
fn place(
    input: &SubmitReportInput,
) -> async_graphql::Result<(GeoPoint, &'static communes::Commune)> {
    let valley = communes::valley();
    match (input.lat, input.long, input.address_string.as_deref()) {
        (Some(lat), Some(lon), _) => {
            if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                return Err(bad("lat/long is not a WGS 84 position"));
            }
            let point = GeoPoint { lon, lat };
            let commune = valley
                .locate(&point)
                .ok_or_else(|| bad("this position is outside the valley's communes"))?;
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
                    bad("the address names no commune of the valley: give lat and long")
                })?;
            Ok((commune.centre, commune))
        }
        (Some(_), None, _) | (None, Some(_), _) => Err(bad("give both lat and long")),
        (None, None, None) => Err(bad("give lat and long, or addressString")),
    }
}

/// Publishes the audit record of a staff action.
async fn audit(
    ctx: &Context<'_>,
    staff: &StaffMember,
    action: &str,
    target: &str,
    detail: Option<String>,
) -> async_graphql::Result<()> {
    let event = CitizenEvent::new(
        format!("staff:{}", staff.name),
        CitizenChange::StaffAction {
            action: action.into(),
            target: target.into(),
            scope: staff
                .commune
                .clone()
                .unwrap_or_else(|| "intercommunality".into()),
            detail,
        },
    );
    state(ctx)
        .citizens
        .publish(Stream::StaffAudit, &event)
        .await?;
    Ok(())
}

fn report(ctx: &Context<'_>, id: &str) -> async_graphql::Result<Report> {
    let view = state(ctx).citizens.view.read().expect("view lock");
    view.reports
        .get(id)
        .cloned()
        .map(Report)
        .ok_or_else(|| error(Code::NotFound, format!("no report {id}")))
}

fn idea(ctx: &Context<'_>, id: &str, for_staff: bool) -> async_graphql::Result<Idea> {
    let state = state(ctx);
    let view = state.citizens.view.read().expect("view lock");
    view.ideas
        .get(id)
        .filter(|i| for_staff || i.visible(state.options.flags_to_hide))
        .cloned()
        .map(Idea)
        .ok_or_else(|| error(Code::NotFound, format!("no idea {id}")))
}

/// A reference place as this replica sees it.
fn place_of(ctx: &Context<'_>, id: &str) -> async_graphql::Result<Place> {
    let view = state(ctx).citizens.view.read().expect("view lock");
    view.places
        .get(id)
        .map(Place::from)
        .ok_or_else(|| error(Code::NotFound, "no such place"))
}

async fn publish_idea(ctx: &Context<'_>, change: CitizenChange) -> async_graphql::Result<()> {
    let event = CitizenEvent::new(caller(ctx).actor(), change);
    state(ctx)
        .citizens
        .publish(Stream::CitizenIdeas, &event)
        .await?;
    Ok(())
}

#[Object]
impl Mutation {
    /// An anonymous citizen token, needed to follow reports and to take part in the idea
    /// box.
    async fn issue_citizen_token(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<IssueCitizenTokenPayload> {
        let state = state(ctx);
        if let Some(ClientAddr(ip)) = ctx.data_opt::<ClientAddr>() {
            state
                .limiter
                .check(
                    &format!("tok/{ip}"),
                    state.options.limits.tokens_per_minute_per_address,
                )
                .map_err(rate_limited)?;
        }
        Ok(IssueCitizenTokenPayload {
            token: state.auth.issue_citizen_token(),
        })
    }

    /// Reports a problem (anonymously or with a citizen token).
    async fn submit_report(
        &self,
        ctx: &Context<'_>,
        input: SubmitReportInput,
    ) -> async_graphql::Result<SubmitReportPayload> {
        count_mutation(ctx)?;
        let state = state(ctx);
        let service = citizen::service(&input.service_code)
            .ok_or_else(|| bad(format!("unknown serviceCode {:?}", input.service_code)))?;
        let description = text("description", &input.description, citizen::MAX_TEXT_CHARS)?;
        let (point, commune) = place(&input)?;
        let media_url = opt_text("mediaUrl", input.media_url.clone(), 2_000)?;
        if let Some(u) = &media_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(bad("mediaUrl must be an http(s) URL"));
        }
        let contact = match &input.contact {
            Some(c) => {
                let contact = Contact {
                    email: opt_text("email", c.email.clone(), 320)?,
                    phone: opt_text("phone", c.phone.clone(), 40)?,
                    first_name: opt_text("firstName", c.first_name.clone(), 100)?,
                    last_name: opt_text("lastName", c.last_name.clone(), 100)?,
                };
                if let Some(e) = &contact.email
                    && !e.contains('@')
                {
                    return Err(bad("email is not an email address"));
                }
                Some(contact).filter(|c| !c.is_empty())
            }
            None => None,
        };
        let agency = match service.competence {
            Competence::Commune => format!("Mairie de {}", commune.name),
            Competence::Intercommunality => INTERCOMMUNALITY.to_string(),
        };
        let report_id = citizen::uuid_v4();
        // The contact is stored first: a report never points to a contact that is not
        // kept; a contact whose report failed to publish is orphaned, never public.
        // Written and synced off the async workers (an fsync can take milliseconds).
        if let Some(c) = contact.clone() {
            let (store, id) = (state.contacts.clone(), report_id.clone());
            tokio::task::spawn_blocking(move || store.put(&id, &c))
                .await
                .map_err(|e| error(Code::Internal, e.to_string()))??;
        }
        let author = match caller(ctx) {
            Caller::Citizen { pseudonym } => Some(pseudonym.clone()),
            _ => None,
        };
        let now = Utc::now();
        let mut event = CitizenEvent::new(
            caller(ctx).actor(),
            CitizenChange::ReportSubmitted(citizen::ReportSubmitted {
                report_id: report_id.clone(),
                service_code: service.code.into(),
                description,
                lat: point.lat,
                long: point.lon,
                address_string: opt_text("addressString", input.address_string, 500)?,
                media_url,
                commune_code: commune.insee_code.clone(),
                agency_responsible: agency,
                expected_datetime: now + Duration::days(i64::from(service.delay_days)),
                has_contact: contact.is_some(),
                author,
            }),
        );
        event.date_observed = now;
        state
            .citizens
            .publish(Stream::CitizenReports, &event)
            .await?;
        let report = report(ctx, &report_id)?;
        let possible_duplicates = {
            let view = state.citizens.view.read().expect("view lock");
            let mut d: Vec<Report> = view
                .reports
                .values()
                .filter(|r| {
                    r.submitted.report_id != report_id
                        && r.status == citizen::ReportStatus::Open
                        && r.submitted.service_code == service.code
                        && r.requested >= now - Duration::days(DUPLICATE_DAYS)
                        && point.distance_m(&GeoPoint {
                            lon: r.submitted.long,
                            lat: r.submitted.lat,
                        }) <= DUPLICATE_RADIUS_M
                })
                .cloned()
                .map(Report)
                .collect();
            d.sort_by_key(|r| std::cmp::Reverse(r.0.requested));
            d
        };
        Ok(SubmitReportPayload {
            report,
            possible_duplicates,
        })
    }

    /// "Me too": the caller follows a report (once; repeating changes nothing).
    async fn follow_report(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<FollowReportPayload> {
        count_mutation(ctx)?;
        let follower = citizen_of(ctx)?;
        let current = report(ctx, &id)?;
        if !current.0.followers.contains(&follower) {
            let event = CitizenEvent::new(
                caller(ctx).actor(),
                CitizenChange::ReportFollowed {
                    report_id: id.to_string(),
                    follower,
                },
            );
            state(ctx)
                .citizens
                .publish(Stream::CitizenReports, &event)
                .await?;
        }
        Ok(FollowReportPayload {
            report: report(ctx, &id)?,
        })
    }

    /// Staff: changes a report's status.
    async fn update_report_status(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateReportStatusInput,
    ) -> async_graphql::Result<UpdateReportStatusPayload> {
        count_mutation(ctx)?;
        let staff = staff_of(ctx)?;
        let current = report(ctx, &id)?;
        check_scope(staff, Some(&current.0.submitted.commune_code))?;
        let notes = opt_text("statusNotes", input.status_notes, citizen::MAX_TEXT_CHARS)?;
        audit(
            ctx,
            staff,
            "updateReportStatus",
            &id,
            Some(format!("{:?}/{:?}", input.status, input.substatus)),
        )
        .await?;
        let event = CitizenEvent::new(
            caller(ctx).actor(),
            CitizenChange::ReportStatusChanged {
                report_id: id.to_string(),
                status: input.status.into(),
                substatus: input.substatus.map(Into::into),
                status_notes: notes,
            },
        );
        state(ctx)
            .citizens
            .publish(Stream::CitizenReports, &event)
            .await?;
        Ok(UpdateReportStatusPayload {
            report: report(ctx, &id)?,
        })
    }

    /// Staff (GDPR, right of access): a reporter's data, by report or email.
    async fn export_reporter_data(
        &self,
        ctx: &Context<'_>,
        input: ReporterDataInput,
    ) -> async_graphql::Result<ExportReporterDataPayload> {
        count_mutation(ctx)?;
        let staff = staff_of(ctx)?;
        let ids = reporter_reports(ctx, staff, &input)?;
        audit(ctx, staff, "exportReporterData", &audit_target(&ids), None).await?;
        let mut records = Vec::new();
        for id in ids {
            if let Some(c) = state(ctx).contacts.get(&id)? {
                records.push(ReporterData {
                    report_id: ID(id.clone()),
                    contact: c.into(),
                    report: report(ctx, &id).ok(),
                });
            }
        }
        Ok(ExportReporterDataPayload { records })
    }

    /// Staff (GDPR, right to erasure): erases a reporter's contact details, by report or
    /// email. The reports stay (they hold no personal data).
    async fn erase_reporter_data(
        &self,
        ctx: &Context<'_>,
        input: ReporterDataInput,
    ) -> async_graphql::Result<EraseReporterDataPayload> {
        count_mutation(ctx)?;
        let staff = staff_of(ctx)?;
        let ids = reporter_reports(ctx, staff, &input)?;
        audit(ctx, staff, "eraseReporterData", &audit_target(&ids), None).await?;
        let mut erased = Vec::new();
        for id in ids {
            if state(ctx).contacts.erase(&id)? {
                erased.push(ID(id));
            }
        }
        Ok(EraseReporterDataPayload { erased })
    }

    /// Proposes an idea (needs a citizen token).
    async fn submit_idea(
        &self,
        ctx: &Context<'_>,
        input: SubmitIdeaInput,
    ) -> async_graphql::Result<SubmitIdeaPayload> {
        count_mutation(ctx)?;
        let author = citizen_of(ctx)?;
        let title = text("title", &input.title, 200)?;
        let body = text("body", &input.body, citizen::MAX_TEXT_CHARS)?;
        if let Some(c) = &input.commune_code
            && communes::valley().by_code(c).is_none()
        {
            return Err(bad(format!(
                "{c} is not the INSEE code of a commune of the valley"
            )));
        }
        let idea_id = citizen::uuid_v4();
        publish_idea(
            ctx,
            CitizenChange::IdeaSubmitted(citizen::IdeaSubmitted {
                idea_id: idea_id.clone(),
                title,
                body,
                theme: input.theme.into(),
                commune_code: input.commune_code,
                author,
                visible: !state(ctx).options.pre_moderation,
            }),
        )
        .await?;
        Ok(SubmitIdeaPayload {
            idea: idea(ctx, &idea_id, true)?,
        })
    }

    /// Supports an idea (once per citizen; repeating changes nothing).
    async fn support_idea(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<SupportIdeaPayload> {
        count_mutation(ctx)?;
        let supporter = citizen_of(ctx)?;
        let current = idea(ctx, &id, false)?;
        if current.0.state == citizen::IdeaState::Withdrawn {
            return Err(bad("this idea was withdrawn"));
        }
        if !current.0.supporters.contains_key(&supporter) {
            publish_idea(
                ctx,
                CitizenChange::IdeaSupported {
                    idea_id: id.to_string(),
                    supporter,
                },
            )
            .await?;
        }
        Ok(SupportIdeaPayload {
            idea: idea(ctx, &id, false)?,
        })
    }

    /// Withdraws the caller's support.
    async fn withdraw_support(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<WithdrawSupportPayload> {
        count_mutation(ctx)?;
        let supporter = citizen_of(ctx)?;
        let current = idea(ctx, &id, false)?;
        if current.0.supporters.contains_key(&supporter) {
            publish_idea(
                ctx,
                CitizenChange::IdeaSupportWithdrawn {
                    idea_id: id.to_string(),
                    supporter,
                },
            )
            .await?;
        }
        Ok(WithdrawSupportPayload {
            idea: idea(ctx, &id, false)?,
        })
    }

    /// Comments on an idea.
    async fn comment_idea(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: CommentIdeaInput,
    ) -> async_graphql::Result<CommentIdeaPayload> {
        count_mutation(ctx)?;
        let author = citizen_of(ctx)?;
        let body = text("body", &input.body, citizen::MAX_TEXT_CHARS)?;
        idea(ctx, &id, false)?;
        let comment_id = citizen::uuid_v4();
        publish_idea(
            ctx,
            CitizenChange::IdeaCommented {
                idea_id: id.to_string(),
                comment_id: comment_id.clone(),
                body: body.clone(),
                author,
            },
        )
        .await?;
        let idea = idea(ctx, &id, true)?;
        let comment = idea
            .0
            .comments
            .iter()
            .find(|c| c.id == comment_id)
            .map(|c| Comment {
                id: ID(c.id.clone()),
                body: c.body.clone(),
                created_at: c.at,
            })
            .ok_or_else(|| error(Code::Internal, "the comment was not applied"))?;
        Ok(CommentIdeaPayload { idea, comment })
    }

    /// Flags an idea for moderation; after 3 distinct flags it is hidden pending a
    /// moderator's decision.
    async fn flag_idea(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: FlagReason,
    ) -> async_graphql::Result<FlagIdeaPayload> {
        count_mutation(ctx)?;
        let flagger = citizen_of(ctx)?;
        let current = idea(ctx, &id, false)?;
        if !current.0.flags.contains_key(&flagger) {
            publish_idea(
                ctx,
                CitizenChange::IdeaFlagged {
                    idea_id: id.to_string(),
                    flagger,
                    reason: reason.into(),
                },
            )
            .await?;
        }
        Ok(FlagIdeaPayload {
            idea: idea(ctx, &id, true)?,
        })
    }

    /// The author withdraws their idea.
    async fn withdraw_idea(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<WithdrawIdeaPayload> {
        count_mutation(ctx)?;
        let me = citizen_of(ctx)?;
        let current = idea(ctx, &id, true)?;
        if current.0.submitted.author != me {
            return Err(error(
                Code::Forbidden,
                "only the author may withdraw an idea",
            ));
        }
        publish_idea(
            ctx,
            CitizenChange::IdeaAnswered {
                idea_id: id.to_string(),
                state: citizen::IdeaState::Withdrawn,
                answer: None,
            },
        )
        .await?;
        Ok(WithdrawIdeaPayload {
            idea: idea(ctx, &id, true)?,
        })
    }

    /// Staff: publishes a reference place (a new one without `id`, or its new version).
    async fn update_place(
        &self,
        ctx: &Context<'_>,
        input: UpdatePlaceInput,
    ) -> async_graphql::Result<UpdatePlacePayload> {
        count_mutation(ctx)?;
        let staff = staff_of(ctx)?;
        if communes::valley().by_code(&input.commune_code).is_none() {
            return Err(bad("communeCode is not a commune of the valley"));
        }
        check_scope(staff, Some(&input.commune_code))?;
        let id = match &input.id {
            Some(id) => {
                let view = state(ctx).citizens.view.read().expect("view lock");
                let current = view
                    .places
                    .get(id.as_str())
                    .ok_or_else(|| error(Code::NotFound, "no such place"))?;
                check_scope(staff, Some(&current.place.commune_code))?;
                id.to_string()
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        let max = citizen::MAX_TEXT_CHARS;
        let place = citizen::PlaceUpdated {
            place_id: id.clone(),
            kind: input.kind.into(),
            name: text("name", &input.name, 200)?,
            commune_code: input.commune_code.clone(),
            address: opt_text("address", input.address, 500)?,
            lat: input.latitude,
            long: input.longitude,
            opening_hours: opt_text("openingHours", input.opening_hours, 500)?,
            contact: opt_text("contact", input.contact, 200)?,
            website: opt_text("website", input.website, 500)?,
            description: opt_text("description", input.description, max)?,
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            seats: input.seats,
            capacity: input.capacity,
            age_min_months: input.age_min_months,
            age_max_months: input.age_max_months,
        };
        let event = CitizenEvent::new(caller(ctx).actor(), CitizenChange::PlaceUpdated(place));
        event.validate().map_err(|r| bad(r.to_string()))?;
        audit(ctx, staff, "updatePlace", &id, Some(input.name.clone())).await?;
        state(ctx)
            .citizens
            .publish(Stream::ReferencePlaces, &event)
            .await?;
        Ok(UpdatePlacePayload {
            place: place_of(ctx, &id)?,
        })
    }

    /// Staff: removes a reference place (a closed facility, a cancelled session).
    async fn remove_place(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<RemovePlacePayload> {
        count_mutation(ctx)?;
        let staff = staff_of(ctx)?;
        let commune = place_of(ctx, &id)?.commune_code;
        check_scope(staff, Some(&commune))?;
        audit(ctx, staff, "removePlace", &id, None).await?;
        let event = CitizenEvent::new(
            caller(ctx).actor(),
            CitizenChange::PlaceRemoved {
                place_id: id.to_string(),
            },
        );
        state(ctx)
            .citizens
            .publish(Stream::ReferencePlaces, &event)
            .await?;
        Ok(RemovePlacePayload { removed_id: id })
    }

    /// Staff: the places free right now in a childcare facility.
    async fn update_childcare_vacancies(
        &self,
        ctx: &Context<'_>,
        id: ID,
        vacancies: u32,
    ) -> async_graphql::Result<UpdateChildcareVacanciesPayload> {
        count_mutation(ctx)?;
        let staff = staff_of(ctx)?;
        let current = place_of(ctx, &id)?;
        if current.kind != PlaceKind::Childcare {
            return Err(bad("only a childcare facility has vacancies"));
        }
        if current
            .capacity
            .is_some_and(|c| i64::from(vacancies) > i64::from(c))
        {
            return Err(bad("vacancies exceed the facility's capacity"));
        }
        check_scope(staff, Some(&current.commune_code))?;
        audit(
            ctx,
            staff,
            "updateChildcareVacancies",
            &id,
            Some(vacancies.to_string()),
        )
        .await?;
        let event = CitizenEvent::new(
            caller(ctx).actor(),
            CitizenChange::ChildcareVacanciesUpdated {
                place_id: id.to_string(),
                vacancies,
            },
        );
        state(ctx)
            .citizens
            .publish(Stream::ReferencePlaces, &event)
            .await?;
        Ok(UpdateChildcareVacanciesPayload {
            place: place_of(ctx, &id)?,
        })
    }

    /// Staff: answers an idea.
    async fn answer_idea(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: AnswerIdeaInput,
    ) -> async_graphql::Result<AnswerIdeaPayload> {
        count_mutation(ctx)?;
        let staff = staff_of(ctx)?;
        let current = idea(ctx, &id, true)?;
        check_scope(staff, current.0.submitted.commune_code.as_deref())?;
        let answer = opt_text("answer", input.answer, citizen::MAX_TEXT_CHARS)?;
        audit(
            ctx,
            staff,
            "answerIdea",
            &id,
            Some(format!("{:?}", input.state)),
        )
        .await?;
        publish_idea(
            ctx,
            CitizenChange::IdeaAnswered {
                idea_id: id.to_string(),
                state: input.state.into(),
                answer,
            },
        )
        .await?;
        Ok(AnswerIdeaPayload {
            idea: idea(ctx, &id, true)?,
        })
    }

    /// Staff: hides or shows an idea (overrides flags and pre-moderation).
    async fn moderate_idea(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: ModerateIdeaInput,
    ) -> async_graphql::Result<ModerateIdeaPayload> {
        count_mutation(ctx)?;
        let staff = staff_of(ctx)?;
        let current = idea(ctx, &id, true)?;
        check_scope(staff, current.0.submitted.commune_code.as_deref())?;
        audit(
            ctx,
            staff,
            "moderateIdea",
            &id,
            Some(format!("hidden={}", input.hidden)),
        )
        .await?;
        publish_idea(
            ctx,
            CitizenChange::IdeaModerated {
                idea_id: id.to_string(),
                hidden: input.hidden,
            },
        )
        .await?;
        Ok(ModerateIdeaPayload {
            idea: idea(ctx, &id, true)?,
        })
    }
}

/// The audit target of a GDPR request: the reports it covered (never the email asked for:
/// the audit is in the lake).
fn audit_target(ids: &[String]) -> String {
    if ids.is_empty() {
        "no-report".into()
    } else {
        ids.join(",")
    }
}

/// The reports a GDPR request names, within the staff member's scope.
fn reporter_reports(
    ctx: &Context<'_>,
    staff: &StaffMember,
    input: &ReporterDataInput,
) -> async_graphql::Result<Vec<String>> {
    let ids = match (&input.report_id, &input.email) {
        (Some(id), None) => vec![id.to_string()],
        (None, Some(email)) => state(ctx).contacts.reports_of_email(email)?,
        _ => return Err(bad("give reportId or email")),
    };
    for id in &ids {
        if let Ok(r) = report(ctx, id) {
            check_scope(staff, Some(&r.0.submitted.commune_code))?;
        } else if staff.commune.is_some() {
            return Err(error(
                Code::Forbidden,
                "only the intercommunality's staff may act on unknown reports",
            ));
        }
    }
    Ok(ids)
}
