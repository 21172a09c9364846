//! Mutations: thin adapters over the command layer ([`crate::commands`]). Each one turns
//! its arguments into a [`Command`], has it executed for the request's caller and address,
//! and shapes what was applied into its payload; every rule (limits, permissions, scope,
//! validation, audit, events) is the command's.

mod inputs;
mod payloads;

use async_graphql::{Context, ID, Object};

pub use inputs::*;
pub use payloads::*;

use super::types::FlagReason;
use super::{ClientAddr, caller, command_error, state};
use crate::commands::Command;

/// The root of mutations.
#[derive(Debug, Default)]
pub struct Mutation;

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

/// What a test push to a partner did.
#[derive(async_graphql::SimpleObject, Debug)]
pub struct TestPartnerPushPayload {
    pub partner: String,
    /// Sent with `test: true` and this `delivery`.
    pub delivery: String,
    /// The webhook's answer (null: no webhook, or no answer).
    pub webhook_status: Option<u16>,
    /// Why the webhook did not take it.
    pub error: Option<String>,
}

#[Object]
impl Mutation {
    /// Staff of the intercommunality: sends a test alert (`test: true`) to a vineyard
    /// partner's webhook, once, signed as real ones are, and says what it answered
    /// (audited).
    async fn test_partner_push(
        &self,
        ctx: &Context<'_>,
        partner: String,
    ) -> async_graphql::Result<TestPartnerPushPayload> {
        let address = ctx.data_opt::<ClientAddr>().map(|a| a.0);
        let state = state(ctx);
        state
            .commands
            .execute(
                caller(ctx),
                address,
                Command::TestPartnerPush {
                    partner: partner.clone(),
                },
            )
            .await
            .map_err(command_error)?;
        let Some(p) = state.options.partners.iter().find(|p| p.name == partner) else {
            return Err(super::error(
                super::Code::NotFound,
                format!("no partner {partner}"),
            ));
        };
        let alert = crate::schema::sensors::Alert {
            alert_id: ID(format!("test-{}", vallee_schemas::citizen::uuid_v4())),
            kind: crate::schema::sensors::AlertKind::Frost,
            entity_id: p.parcels.first().cloned().unwrap_or_default(),
            state: crate::schema::sensors::AlertState::Open,
            date_observed: chrono::Utc::now(),
            clear_reason: None,
            filling_level: None,
            commune_code: None,
            risk_level: None,
        };
        let delivery = alert.alert_id.to_string();
        let body = crate::partner_alerts::body(p, &alert, &delivery, true);
        let (webhook_status, error) = if p.webhook_url.is_none() {
            (None, Some("no webhook_url for this partner".to_string()))
        } else {
            match crate::partner_alerts::post_once(
                &crate::partner_alerts::client(),
                p,
                &delivery,
                &body,
            )
            .await
            {
                Ok(status) => (Some(status), None),
                Err(e) => (None, Some(e)),
            }
        };
        Ok(TestPartnerPushPayload {
            partner,
            delivery,
            webhook_status,
            error,
        })
    }

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

    /// Staff of both reports' scope: closes report `id` as a duplicate of `into`
    /// (`DUPLICATE`, with a note naming it); its reporter and followers follow `into`.
    /// Returns `into`.
    async fn merge_report(
        &self,
        ctx: &Context<'_>,
        id: ID,
        into: ID,
    ) -> async_graphql::Result<MergeReportPayload> {
        run(
            ctx,
            Command::MergeReport {
                report_id: id.0,
                into: into.0,
            },
        )
        .await
    }

    /// Staff of the report's scope: shows one of its photos publicly (`visible: true`) or
    /// hides it (a face, a number plate, off topic).
    async fn moderate_report_photo(
        &self,
        ctx: &Context<'_>,
        id: ID,
        photo_id: ID,
        visible: bool,
    ) -> async_graphql::Result<ModerateReportPhotoPayload> {
        run(
            ctx,
            Command::ModerateReportPhoto {
                report_id: id.0,
                photo_id: photo_id.0,
                visible,
            },
        )
        .await
    }

    /// Staff of the report's scope: unties a waste report from the bin the hub tied it to
    /// (a wrong match); the report's history says so.
    async fn unlink_report_from_bin(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<UnlinkReportFromBinPayload> {
        run(ctx, Command::UnlinkReportFromBin { report_id: id.0 }).await
    }

    /// Staff (GDPR, right of access): a reporter's data, by report or email.
    async fn export_reporter_data(
        &self,
        ctx: &Context<'_>,
        input: ReporterDataInput,
    ) -> async_graphql::Result<ExportReporterDataPayload> {
        run(ctx, Command::ExportReporterData(input.into())).await
    }

    /// Staff (GDPR, right to erasure): erases what a reporter wrote (descriptions,
    /// addresses) and their contact details, by report or email, on every replica and in
    /// every copy (the texts' keys are deleted). The reports stay, without their texts.
    async fn erase_reporter_data(
        &self,
        ctx: &Context<'_>,
        input: ReporterDataInput,
    ) -> async_graphql::Result<EraseReporterDataPayload> {
        run(ctx, Command::EraseReporterData(input.into())).await
    }

    /// A citizen (GDPR, right to erasure): erases everything they wrote under their
    /// token — reports' texts and contacts, ideas (which leave the public's view),
    /// comments — on every replica and in every copy.
    async fn erase_my_contributions(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<EraseMyContributionsPayload> {
        run(ctx, Command::EraseMyContributions).await
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

    /// Flags one comment of an idea for moderation (citizen token); after 3 distinct
    /// flags it is hidden pending a moderator's decision.
    async fn flag_comment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        comment_id: ID,
        reason: FlagReason,
    ) -> async_graphql::Result<FlagCommentPayload> {
        let command = Command::FlagComment {
            idea_id: id.0,
            comment_id: comment_id.0,
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
        run(ctx, Command::UpdatePlace(input.into())).await
    }

    /// Staff: removes a reference place (a closed facility, a cancelled session).
    async fn remove_place(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<RemovePlacePayload> {
        run(ctx, Command::RemovePlace { place_id: id.0 }).await
    }

    /// Staff: publishes a depot of the collection fleet (a new one without `id`, or its
    /// new version): where rounds leave from, the crews' shift and working days.
    async fn update_depot(
        &self,
        ctx: &Context<'_>,
        input: super::rounds::UpdateDepotInput,
    ) -> async_graphql::Result<UpdateDepotPayload> {
        run(ctx, Command::UpdateDepot(input.into())).await
    }

    /// Staff: removes a depot no truck leaves from.
    async fn remove_depot(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<RemoveFleetPayload> {
        run(ctx, Command::RemoveDepot { depot_id: id.0 }).await
    }

    /// Staff: publishes a collection truck, whole (its id is the one its positions carry).
    async fn update_truck(
        &self,
        ctx: &Context<'_>,
        input: super::rounds::UpdateTruckInput,
    ) -> async_graphql::Result<UpdateTruckPayload> {
        run(ctx, Command::UpdateTruck(input.into())).await
    }

    /// Staff of the commune the device stands in: registers a field device (or its new
    /// version); its uplinks are then decoded by its profile.
    async fn register_device(
        &self,
        ctx: &Context<'_>,
        input: super::devices::RegisterDeviceInput,
    ) -> async_graphql::Result<RegisterDevicePayload> {
        run(ctx, Command::RegisterDevice(input.into())).await
    }

    /// Staff: registers every device of a CSV (header `dev_eui,entity_id,profile,latitude,
    /// longitude[,depth_mm,report_interval_s,installed_on,fill_threshold]`, `,` or `;`),
    /// once every line is valid and in the caller's scope; otherwise nothing, and which
    /// lines are wrong.
    async fn import_devices(
        &self,
        ctx: &Context<'_>,
        csv: String,
    ) -> async_graphql::Result<ImportDevicesPayload> {
        run(ctx, Command::ImportDevices { csv }).await
    }

    /// Staff of the device's commune: removes it from the register.
    async fn remove_device(
        &self,
        ctx: &Context<'_>,
        dev_eui: ID,
    ) -> async_graphql::Result<RemoveFleetPayload> {
        run(ctx, Command::RemoveDevice { dev_eui: dev_eui.0 }).await
    }

    /// Staff: removes a collection truck.
    async fn remove_truck(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<RemoveFleetPayload> {
        run(ctx, Command::RemoveTruck { truck_id: id.0 }).await
    }

    /// Staff: the places free right now in a childcare facility.
    async fn update_childcare_vacancies(
        &self,
        ctx: &Context<'_>,
        id: ID,
        vacancies: u32,
    ) -> async_graphql::Result<UpdateChildcareVacanciesPayload> {
        let command = Command::UpdateChildcareVacancies {
            place_id: id.0,
            vacancies,
        };
        run(ctx, command).await
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

    /// Staff of the idea's scope: hides or shows one of its comments (a hidden comment
    /// reaches staff only).
    async fn moderate_comment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        comment_id: ID,
        input: ModerateIdeaInput,
    ) -> async_graphql::Result<ModerateCommentPayload> {
        let command = Command::ModerateComment {
            idea_id: id.0,
            comment_id: comment_id.0,
            hidden: input.hidden,
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
