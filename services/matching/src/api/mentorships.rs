//! MentorshipService: choosing, ending, rematching, history, feedback and export.

use tonic::{Request, Response, Status};
use tt_common::auth::{read_target, require_user};
use tt_proto::matching::v1::{self as pb, MentorshipOrigin, mentorship_service_server::MentorshipService};

use super::{Api, check_mentor_id, request_id, violations};
use crate::{
    DOMAIN, Error, convert,
    domain::mentorship::{self, MAX_NOTE},
    store::{MentorshipRow, NewMentorship, mentorships::Ending},
};

/// Checks an ending's reason and note into `v`.
fn ending(v: &mut tt_common::error::Violations, reason: i32, note: &str) -> pb::EndReason {
    v.check_text("note", note, MAX_NOTE);
    match mentorship::check_ending(reason, note) {
        Ok(r) => r,
        Err((field, why)) => {
            v.add(field, why);
            pb::EndReason::Unspecified
        }
    }
}

impl Api {
    /// After a write that moved seats: the catalog in memory follows at once.
    fn moved(&self, freed: Option<&MentorshipRow>, taken: Option<&MentorshipRow>) {
        let catalog = self.catalog();
        if let Some(r) = freed {
            catalog.adjust_seats(&r.mentor_id, -1);
        }
        if let Some(r) = taken {
            catalog.adjust_seats(&r.mentor_id, 1);
        }
    }

    /// The learner `me` ends their mentorship, or declines the proposal (`declining`), with a
    /// reason; their copy (with its history) is dropped, as they left this mentor.
    async fn leave(
        &self,
        me: &str,
        mentorship_id: &str,
        reason: i32,
        note: &str,
        declining: bool,
    ) -> Result<pb::Mentorship, Status> {
        let mut v = violations();
        v.check_id("mentorship_id", mentorship_id);
        let reason = ending(&mut v, reason, note);
        if declining {
            v.check(
                reason != pb::EndReason::GoalsReached,
                "reason",
                "a proposal is declined for another reason",
            );
        }
        v.into_result()?;
        let end =
            Ending { user_id: me, mentorship_id, reason, note: note.trim(), actor: me, now: self.now() };
        let row = if declining { self.store.decline(&end).await } else { self.store.end(&end).await };
        let row = row.map_err(Error::from)?;
        self.moved(Some(&row), None);
        self.forget_learner(me).await;
        Ok(convert::mentorship(&row))
    }
}

#[tonic::async_trait]
impl MentorshipService for Api {
    async fn choose_mentor(
        &self,
        request: Request<pb::ChooseMentorRequest>,
    ) -> Result<Response<pb::ChooseMentorResponse>, Status> {
        let me = require_user(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = violations();
        check_mentor_id(&mut v, "mentor_id", &req.mentor_id);
        let rid = request_id(&mut v, &req.request_id);
        v.into_result()?;
        let now = self.now();
        let new = NewMentorship {
            user_id: &me,
            mentor_id: &req.mentor_id,
            origin: MentorshipOrigin::Chosen,
            request_id: rid,
            actor: &me,
            now,
            expires_at: None,
        };
        let (row, fresh) = self.store.choose(&new).await.map_err(Error::from)?;
        if fresh {
            self.moved(None, Some(&row));
        }
        Ok(Response::new(pb::ChooseMentorResponse { mentorship: Some(convert::mentorship(&row)) }))
    }

    async fn end_mentorship(
        &self,
        request: Request<pb::EndMentorshipRequest>,
    ) -> Result<Response<pb::EndMentorshipResponse>, Status> {
        let me = require_user(&request)?.subject.clone();
        let req = request.into_inner();
        let row = self.leave(&me, &req.mentorship_id, req.reason, &req.note, false).await?;
        Ok(Response::new(pb::EndMentorshipResponse { mentorship: Some(row) }))
    }

    async fn rematch(
        &self,
        request: Request<pb::RematchRequest>,
    ) -> Result<Response<pb::RematchResponse>, Status> {
        let me = require_user(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = violations();
        v.check_id("mentorship_id", &req.mentorship_id);
        let reason = ending(&mut v, req.reason, &req.note);
        check_mentor_id(&mut v, "mentor_id", &req.mentor_id);
        let rid = request_id(&mut v, &req.request_id);
        v.into_result()?;
        let now = self.now();
        let end = Ending {
            user_id: &me,
            mentorship_id: &req.mentorship_id,
            reason,
            note: req.note.trim(),
            actor: &me,
            now,
        };
        let new = NewMentorship {
            user_id: &me,
            mentor_id: &req.mentor_id,
            origin: MentorshipOrigin::Chosen,
            request_id: rid,
            actor: &me,
            now,
            expires_at: None,
        };
        let (ended, row, fresh) = self.store.rematch(&end, &new).await.map_err(Error::from)?;
        if fresh {
            self.moved(Some(&ended), Some(&row));
            self.forget_learner(&me).await;
        }
        Ok(Response::new(pb::RematchResponse {
            ended: Some(convert::mentorship(&ended)),
            mentorship: Some(convert::mentorship(&row)),
        }))
    }

    async fn get_mentorship(
        &self,
        request: Request<pb::GetMentorshipRequest>,
    ) -> Result<Response<pb::GetMentorshipResponse>, Status> {
        let me = require_user(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = violations();
        v.check_id("mentorship_id", &req.mentorship_id);
        v.into_result()?;
        let row = self.store.mentorship(&me, &req.mentorship_id).await?;
        let row = row.ok_or_else(|| DOMAIN.not_found("mentorship", &req.mentorship_id))?;
        Ok(Response::new(pb::GetMentorshipResponse { mentorship: Some(convert::mentorship(&row)) }))
    }

    async fn list_mentorships(
        &self,
        request: Request<pb::ListMentorshipsRequest>,
    ) -> Result<Response<pb::ListMentorshipsResponse>, Status> {
        let (user_id, _) = read_target(&request, &request.get_ref().user_id, DOMAIN)?;
        let req = request.into_inner();
        let mut v = violations();
        let state = pb::MentorshipState::try_from(req.state);
        v.check(state.is_ok(), "state", "must be a MENTORSHIP_STATE_ value");
        let state = state.ok().filter(|s| *s != pb::MentorshipState::Unspecified);
        let scope = format!("ListMentorships:{user_id}:{}", req.state);
        let page = self.pages.page::<(i64, String)>(&mut v, scope, req.page_size, &req.page_token);
        v.into_result()?;
        let mut rows = self.store.list(&user_id, state, page.after.as_ref(), page.limit()).await?;
        let next_page_token = page.next(&mut rows, |r| (r.created_at, r.id.clone()));
        Ok(Response::new(pb::ListMentorshipsResponse {
            mentorships: rows.iter().map(convert::mentorship).collect(),
            next_page_token,
        }))
    }

    async fn submit_feedback(
        &self,
        request: Request<pb::SubmitFeedbackRequest>,
    ) -> Result<Response<pb::SubmitFeedbackResponse>, Status> {
        let me = require_user(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = violations();
        v.check_id("mentorship_id", &req.mentorship_id);
        v.check((1..=5).contains(&req.rating), "rating", "must be 1 to 5");
        let reason = req.reason.trim();
        v.check(!reason.is_empty(), "reason", "must say why");
        v.check_text("reason", reason, MAX_NOTE);
        v.into_result()?;
        let row = self
            .store
            .feedback(&me, &req.mentorship_id, req.rating, reason, self.now())
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::SubmitFeedbackResponse { mentorship: Some(convert::mentorship(&row)) }))
    }

    async fn accept_proposal(
        &self,
        request: Request<pb::AcceptProposalRequest>,
    ) -> Result<Response<pb::AcceptProposalResponse>, Status> {
        let me = require_user(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = violations();
        v.check_id("mentorship_id", &req.mentorship_id);
        v.into_result()?;
        let row = self.store.accept(&me, &req.mentorship_id, self.now()).await.map_err(|e| {
            if let crate::store::MentorshipError::Expired(Some(mentor_id)) = &e {
                // Its seat came back with the expiry.
                self.catalog().adjust_seats(mentor_id, -1);
            }
            Error::from(e)
        })?;
        Ok(Response::new(pb::AcceptProposalResponse { mentorship: Some(convert::mentorship(&row)) }))
    }

    async fn decline_proposal(
        &self,
        request: Request<pb::DeclineProposalRequest>,
    ) -> Result<Response<pb::DeclineProposalResponse>, Status> {
        let me = require_user(&request)?.subject.clone();
        let req = request.into_inner();
        let row = self.leave(&me, &req.mentorship_id, req.reason, &req.note, true).await?;
        Ok(Response::new(pb::DeclineProposalResponse { mentorship: Some(row) }))
    }

    async fn export_matching_data(
        &self,
        request: Request<pb::ExportMatchingDataRequest>,
    ) -> Result<Response<pb::ExportMatchingDataResponse>, Status> {
        let (user_id, _) = read_target(&request, &request.get_ref().user_id, DOMAIN)?;
        let rows = self.store.all_of(&user_id).await?;
        let first_seen = self.store.first_seen(&user_id).await?;
        let json =
            serde_json::json!({ "user_id": user_id, "first_seen_at": first_seen, "mentorships": rows });
        Ok(Response::new(pb::ExportMatchingDataResponse { json: json.to_string() }))
    }
}
