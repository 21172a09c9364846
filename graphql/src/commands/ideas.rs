//! The idea box: citizens propose, support, comment on and flag ideas, and withdraw their
//! own; staff of the idea's scope answer and moderate them. A citizen acts on the ideas
//! the public sees (not on hidden ones); staff on all of them.

use vallee_schemas::citizen::{
    self, CitizenChange, FlagReason, IdeaState, IdeaSubmitted, MAX_TEXT_CHARS,
};
use vallee_schemas::communes;

use super::access::{Citizen, Staff};
use super::validate::{opt_text, text};
use super::writes::Writes;
use super::{Applied, CommandError, Commands, Result, SubmitIdea};
use crate::citizen::reads::SeenBy;

impl Commands {
    /// A citizen proposes an idea (hidden until moderated under pre-moderation).
    pub(super) async fn submit_idea(
        &self,
        author: Citizen<'_>,
        idea: SubmitIdea,
    ) -> Result<Applied> {
        let title = text("title", &idea.title, 200)?;
        let body = text("body", &idea.body, MAX_TEXT_CHARS)?;
        if let Some(c) = &idea.commune_code
            && communes::valley().by_code(c).is_none()
        {
            return Err(CommandError::bad(format!(
                "{c} is not the INSEE code of a commune of the valley"
            )));
        }
        let idea_id = citizen::uuid_v4();
        let submitted = author.event(CitizenChange::IdeaSubmitted(IdeaSubmitted {
            idea_id: idea_id.clone(),
            title,
            body,
            theme: idea.theme,
            commune_code: idea.commune_code,
            author: author.pseudonym().to_string(),
            visible: !self.pre_moderation,
        }));
        self.write(Writes::event(submitted)).await?;
        Ok(Applied::Idea(self.idea(&idea_id, SeenBy::Staff)?))
    }

    /// A citizen supports an idea, once (repeating writes nothing); not a withdrawn one.
    pub(super) async fn support_idea(&self, supporter: Citizen<'_>, id: &str) -> Result<Applied> {
        // A withdrawn idea left the public's view; its supporters are told why.
        if self
            .idea(id, SeenBy::Staff)
            .is_ok_and(|i| i.state == IdeaState::Withdrawn)
        {
            return Err(CommandError::bad("this idea was withdrawn"));
        }
        let current = self.idea(id, self.public())?;
        if !current.supporters.contains_key(supporter.pseudonym()) {
            let support = supporter.event(CitizenChange::IdeaSupported {
                idea_id: id.to_string(),
                supporter: supporter.pseudonym().to_string(),
            });
            self.write(Writes::event(support)).await?;
        }
        Ok(Applied::Idea(self.idea(id, self.public())?))
    }

    /// A citizen withdraws their support (nothing to write if they gave none).
    pub(super) async fn withdraw_support(
        &self,
        supporter: Citizen<'_>,
        id: &str,
    ) -> Result<Applied> {
        let current = self.idea(id, self.public())?;
        if current.supporters.contains_key(supporter.pseudonym()) {
            let withdrawal = supporter.event(CitizenChange::IdeaSupportWithdrawn {
                idea_id: id.to_string(),
                supporter: supporter.pseudonym().to_string(),
            });
            self.write(Writes::event(withdrawal)).await?;
        }
        Ok(Applied::Idea(self.idea(id, self.public())?))
    }

    /// A citizen comments on an idea.
    pub(super) async fn comment_idea(
        &self,
        author: Citizen<'_>,
        id: &str,
        body: &str,
    ) -> Result<Applied> {
        let body = text("body", body, MAX_TEXT_CHARS)?;
        self.idea(id, self.public())?;
        let comment_id = citizen::uuid_v4();
        let comment = author.event(CitizenChange::IdeaCommented {
            idea_id: id.to_string(),
            comment_id: comment_id.clone(),
            body,
            author: author.pseudonym().to_string(),
        });
        self.write(Writes::event(comment)).await?;
        let idea = self.idea(id, SeenBy::Staff)?;
        let comment = idea
            .comments
            .iter()
            .find(|c| c.id == comment_id)
            .cloned()
            .ok_or_else(|| crate::Error::Internal("the comment was not applied".into()))?;
        Ok(Applied::IdeaCommented { idea, comment })
    }

    /// A citizen flags an idea, once; enough distinct flags hide it until a moderator
    /// decides.
    pub(super) async fn flag_idea(
        &self,
        flagger: Citizen<'_>,
        id: &str,
        reason: FlagReason,
    ) -> Result<Applied> {
        let current = self.idea(id, self.public())?;
        if !current.flags.contains_key(flagger.pseudonym()) {
            let flag = flagger.event(CitizenChange::IdeaFlagged {
                idea_id: id.to_string(),
                flagger: flagger.pseudonym().to_string(),
                reason,
            });
            self.write(Writes::event(flag)).await?;
        }
        Ok(Applied::Idea(self.idea(id, SeenBy::Staff)?))
    }

    /// A citizen flags a comment the public sees, once; enough distinct flags hide it
    /// until a moderator decides.
    pub(super) async fn flag_comment(
        &self,
        flagger: Citizen<'_>,
        id: &str,
        comment_id: &str,
        reason: FlagReason,
    ) -> Result<Applied> {
        let current = self.idea(id, self.public())?;
        let comment = (current.comments.iter())
            .find(|c| c.id == comment_id && c.visible(self.flags_to_hide))
            .ok_or_else(|| CommandError::NotFound(format!("no comment {comment_id}")))?;
        if !comment.flags.contains_key(flagger.pseudonym()) {
            let flag = flagger.event(CitizenChange::CommentFlagged {
                idea_id: id.to_string(),
                comment_id: comment_id.to_string(),
                flagger: flagger.pseudonym().to_string(),
                reason,
            });
            self.write(Writes::event(flag)).await?;
        }
        Ok(Applied::Idea(self.idea(id, SeenBy::Staff)?))
    }

    /// The author withdraws their idea (even a hidden one); nobody else may.
    pub(super) async fn withdraw_idea(&self, me: Citizen<'_>, id: &str) -> Result<Applied> {
        let current = self.idea(id, SeenBy::Staff)?;
        if current.submitted.author != me.pseudonym() {
            return Err(CommandError::Forbidden(
                "only the author may withdraw an idea".into(),
            ));
        }
        let withdrawal = me.event(CitizenChange::IdeaAnswered {
            idea_id: id.to_string(),
            state: IdeaState::Withdrawn,
            answer: None,
        });
        self.write(Writes::event(withdrawal)).await?;
        Ok(Applied::Idea(self.idea(id, SeenBy::Staff)?))
    }

    /// Staff of the idea's scope answer it (an idea of the whole valley: the
    /// intercommunality's staff).
    pub(super) async fn answer_idea(
        &self,
        staff: Staff<'_>,
        id: &str,
        state: IdeaState,
        answer: Option<String>,
    ) -> Result<Applied> {
        let current = self.idea(id, SeenBy::Staff)?;
        staff.check_scope(current.submitted.commune_code.as_deref())?;
        let answer = opt_text("answer", answer, MAX_TEXT_CHARS)?;
        let answered = staff.event(CitizenChange::IdeaAnswered {
            idea_id: id.to_string(),
            state,
            answer,
        });
        self.write(
            Writes::audited(staff, "answerIdea", id, Some(format!("{state:?}"))).then(answered),
        )
        .await?;
        Ok(Applied::Idea(self.idea(id, SeenBy::Staff)?))
    }

    /// Staff of the idea's scope hide or show it (overrides flags and pre-moderation).
    /// Staff of the idea's scope: hides or shows one of its comments.
    pub(super) async fn moderate_comment(
        &self,
        staff: Staff<'_>,
        idea_id: &str,
        comment_id: &str,
        hidden: bool,
    ) -> Result<Applied> {
        let current = self.idea(idea_id, SeenBy::Staff)?;
        staff.check_scope(current.submitted.commune_code.as_deref())?;
        if !current.comments.iter().any(|c| c.id == comment_id) {
            return Err(CommandError::NotFound(format!(
                "no comment {comment_id} on this idea"
            )));
        }
        let moderated = staff.event(CitizenChange::CommentModerated {
            idea_id: idea_id.to_string(),
            comment_id: comment_id.to_string(),
            hidden,
        });
        self.write(
            Writes::audited(
                staff,
                "moderateComment",
                comment_id,
                Some(format!("hidden={hidden}")),
            )
            .then(moderated),
        )
        .await?;
        Ok(Applied::Idea(self.idea(idea_id, SeenBy::Staff)?))
    }

    pub(super) async fn moderate_idea(
        &self,
        staff: Staff<'_>,
        id: &str,
        hidden: bool,
    ) -> Result<Applied> {
        let current = self.idea(id, SeenBy::Staff)?;
        staff.check_scope(current.submitted.commune_code.as_deref())?;
        let moderated = staff.event(CitizenChange::IdeaModerated {
            idea_id: id.to_string(),
            hidden,
        });
        self.write(
            Writes::audited(staff, "moderateIdea", id, Some(format!("hidden={hidden}")))
                .then(moderated),
        )
        .await?;
        Ok(Applied::Idea(self.idea(id, SeenBy::Staff)?))
    }
}
