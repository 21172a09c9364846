//! Mutations: every write is an event acknowledged by the broker before the answer. Those
//! of reports, reporter data, ideas and tokens are thin adapters over the command layer
//! ([`crate::commands`]); the places' still hold their rules here.

mod inputs;
mod payloads;

use async_graphql::{Context, ID, Object};
use vallee_schemas::citizen::{self, CitizenChange, CitizenEvent};
use vallee_schemas::communes;
use vallee_schemas::contract::Stream;

pub use inputs::*;
pub use payloads::*;

use super::ClientAddr;
use super::types::*;
use super::{Code, caller, command_error, count_mutation, error, state};
use crate::auth::Caller;
use crate::commands::Command;
use crate::options::StaffMember;

/// The root of mutations.
#[derive(Debug, Default)]
pub struct Mutation;

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

/// A reference place as this replica sees it.
fn place_of(ctx: &Context<'_>, id: &str) -> async_graphql::Result<Place> {
    let view = state(ctx).citizens.view.read().expect("view lock");
    view.places
        .get(id)
        .map(Place::from)
        .ok_or_else(|| error(Code::NotFound, "no such place"))
}

/// Executes `command` for this request's caller and takes what it applied as `P`.
async fn run<P: FromApplied>(ctx: &Context<'_>, command: Command) -> async_graphql::Result<P> {
    let address = ctx.data_opt::<ClientAddr>().map(|a| a.0);
    let applied = state(ctx)
        .commands
        .execute(caller(ctx), address, command)
        .await
        .map_err(command_error)?;
    P::from_applied(applied)
        .ok_or_else(|| async_graphql::Error::new("the command applied something else"))
}

#[Object]
impl Mutation {
    /// An anonymous citizen token, needed to follow reports and to take part in the idea
    /// box.
    async fn issue_citizen_token(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<IssueCitizenTokenPayload> {
        run(ctx, Command::IssueCitizenToken).await
    }

    /// Reports a problem (anonymously or with a citizen token).
    async fn submit_report(
        &self,
        ctx: &Context<'_>,
        input: SubmitReportInput,
    ) -> async_graphql::Result<SubmitReportPayload> {
        run(ctx, Command::SubmitReport(input.into())).await
    }

    /// "Me too": the caller follows a report (once; repeating changes nothing).
    async fn follow_report(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<FollowReportPayload> {
        run(ctx, Command::FollowReport { report_id: id.0 }).await
    }

    /// Staff: changes a report's status.
    async fn update_report_status(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateReportStatusInput,
    ) -> async_graphql::Result<UpdateReportStatusPayload> {
        run(ctx, Command::UpdateReportStatus(input.into_command(id))).await
    }

    /// Staff (GDPR, right of access): a reporter's data, by report or email.
    async fn export_reporter_data(
        &self,
        ctx: &Context<'_>,
        input: ReporterDataInput,
    ) -> async_graphql::Result<ExportReporterDataPayload> {
        run(ctx, Command::ExportReporterData(input.into())).await
    }

    /// Staff (GDPR, right to erasure): erases a reporter's contact details, by report or
    /// email. The reports stay (they hold no personal data).
    async fn erase_reporter_data(
        &self,
        ctx: &Context<'_>,
        input: ReporterDataInput,
    ) -> async_graphql::Result<EraseReporterDataPayload> {
        run(ctx, Command::EraseReporterData(input.into())).await
    }

    /// Proposes an idea (needs a citizen token).
    async fn submit_idea(
        &self,
        ctx: &Context<'_>,
        input: SubmitIdeaInput,
    ) -> async_graphql::Result<SubmitIdeaPayload> {
        run(ctx, Command::SubmitIdea(input.into())).await
    }

    /// Supports an idea (once per citizen; repeating changes nothing).
    async fn support_idea(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<SupportIdeaPayload> {
        run(ctx, Command::SupportIdea { idea_id: id.0 }).await
    }

    /// Withdraws the caller's support.
    async fn withdraw_support(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<WithdrawSupportPayload> {
        run(ctx, Command::WithdrawSupport { idea_id: id.0 }).await
    }

    /// Comments on an idea.
    async fn comment_idea(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: CommentIdeaInput,
    ) -> async_graphql::Result<CommentIdeaPayload> {
        let command = Command::CommentIdea {
            idea_id: id.0,
            body: input.body,
        };
        run(ctx, command).await
    }

    /// Flags an idea for moderation; after 3 distinct flags it is hidden pending a
    /// moderator's decision.
    async fn flag_idea(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: FlagReason,
    ) -> async_graphql::Result<FlagIdeaPayload> {
        let command = Command::FlagIdea {
            idea_id: id.0,
            reason: reason.into(),
        };
        run(ctx, command).await
    }

    /// The author withdraws their idea.
    async fn withdraw_idea(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<WithdrawIdeaPayload> {
        run(ctx, Command::WithdrawIdea { idea_id: id.0 }).await
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
        let command = Command::AnswerIdea {
            idea_id: id.0,
            state: input.state.into(),
            answer: input.answer,
        };
        run(ctx, command).await
    }

    /// Staff: hides or shows an idea (overrides flags and pre-moderation).
    async fn moderate_idea(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: ModerateIdeaInput,
    ) -> async_graphql::Result<ModerateIdeaPayload> {
        let command = Command::ModerateIdea {
            idea_id: id.0,
            hidden: input.hidden,
        };
        run(ctx, command).await
    }
}
