//! AdminService: usage figures, the criteria weights (audited), proposals, cohort assignments.

use tonic::{Request, Response, Status};
use tt_common::{
    auth::require_admin,
    clock::to_timestamp,
    error::{Reason, Violations},
    outbox::consumed,
    storage::{etag, etag_version},
};
use tt_proto::{
    common::v1::{ResourceCount, ServiceUsage},
    matching::v1::{self as pb, MentorshipOrigin, admin_service_server::AdminService},
};

use super::{Api, check_mentor_id, request_id, violations};
use crate::{
    DOMAIN, Error,
    cohorts::{CohortRequest, CohortResult},
    convert,
    domain::{mentorship::PROPOSAL_HOLD_MS, score::Weights},
    store::{
        NewMentorship,
        settings::{CohortRow, WeightsRow},
    },
};

/// Learners and mentors one cohort assignment takes at most.
const MAX_COHORT: usize = 5000;
const MAX_COHORT_MENTORS: usize = 1000;
/// The largest weight of a criterion.
const MAX_WEIGHT: f64 = 10.0;

fn weights_pb(w: &Weights) -> pb::MatchingWeights {
    pb::MatchingWeights {
        focus: w.focus,
        style: w.style,
        stage: w.stage,
        language: w.language,
        meaning: w.meaning,
        capacity: w.capacity,
    }
}

/// Checks the weights of a request: each 0 to 10, not all 0.
fn checked_weights(v: &mut Violations, w: Option<pb::MatchingWeights>) -> Weights {
    let w = w.unwrap_or_default();
    let all = [
        ("weights.focus", w.focus),
        ("weights.style", w.style),
        ("weights.stage", w.stage),
        ("weights.language", w.language),
        ("weights.meaning", w.meaning),
        ("weights.capacity", w.capacity),
    ];
    for (field, x) in all {
        v.check(x.is_finite() && (0.0..=MAX_WEIGHT).contains(&x), field, "must be 0 to 10");
    }
    v.check(all.iter().any(|(_, x)| *x > 0.0), "weights", "at least one weight must be above 0");
    Weights {
        focus: w.focus,
        style: w.style,
        stage: w.stage,
        language: w.language,
        meaning: w.meaning,
        capacity: w.capacity,
    }
}

fn weights_answer(row: &WeightsRow) -> pb::GetMatchingWeightsResponse {
    pb::GetMatchingWeightsResponse {
        weights: Some(weights_pb(&row.weights)),
        etag: etag(row.version),
        update_time: (row.updated_at > 0).then(|| to_timestamp(row.updated_at)),
        updated_by: row.updated_by.clone(),
    }
}

fn assignment(row: &CohortRow) -> pb::CohortAssignment {
    let state = pb::CohortState::from_str_name(&row.state).unwrap_or_default();
    let request: Option<CohortRequest> = serde_json::from_str(&row.request).ok();
    let result: Option<CohortResult> = serde_json::from_str(&row.result).ok();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let mut out = pb::CohortAssignment {
        assignment_id: row.id.clone(),
        state: state as i32,
        create_time: Some(to_timestamp(row.created_at)),
        finish_time: row.finished_at.map(to_timestamp),
        learners: count(request.as_ref().map_or(0, |r| r.user_ids.len())),
        error: row.error.clone(),
        ..Default::default()
    };
    if let Some(r) = result {
        out.learners = count(r.learners);
        out.mentors = count(r.mentors);
        out.seats = i32::try_from(r.seats).unwrap_or(i32::MAX);
        out.pairs = r
            .pairs
            .into_iter()
            .map(|p| pb::CohortPair {
                user_id: p.user_id,
                mentor_id: p.mentor_id,
                score: p.score,
                waited_days: p.waited_days,
            })
            .collect();
        out.total_score = r.total_score;
        out.greedy_total_score = r.greedy_total_score;
        out.greedy_seated = count(r.greedy_seated);
        out.unseated_user_ids = r.unseated;
        out.skipped_user_ids = r.skipped;
        out.compute_ms = i64::try_from(r.compute_ms).unwrap_or(i64::MAX);
    }
    out
}

#[tonic::async_trait]
impl AdminService for Api {
    async fn get_usage(
        &self,
        request: Request<pb::GetUsageRequest>,
    ) -> Result<Response<pb::GetUsageResponse>, Status> {
        require_admin(&request)?;
        let counts = self.store.usage().await?;
        let outbox = consumed::outbox_figures(self.store.db()).await?;
        Ok(Response::new(pb::GetUsageResponse {
            usage: Some(ServiceUsage {
                service: "matching".to_owned(),
                resources: counts.into_iter().map(|(name, count)| ResourceCount { name, count }).collect(),
                outbox_pending: outbox.pending,
                outbox_dead_letters: outbox.dead_letters,
                oldest_pending_time: outbox.oldest_pending.map(to_timestamp),
            }),
        }))
    }

    async fn get_matching_weights(
        &self,
        request: Request<pb::GetMatchingWeightsRequest>,
    ) -> Result<Response<pb::GetMatchingWeightsResponse>, Status> {
        require_admin(&request)?;
        Ok(Response::new(weights_answer(&self.store.weights().await?)))
    }

    async fn update_matching_weights(
        &self,
        request: Request<pb::UpdateMatchingWeightsRequest>,
    ) -> Result<Response<pb::UpdateMatchingWeightsResponse>, Status> {
        let admin = require_admin(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = violations();
        let weights = checked_weights(&mut v, req.weights);
        let expected = etag_version(&req.etag);
        v.check(req.etag.is_empty() || expected.is_some(), "etag", "must be an etag this service gave");
        let reason = req.reason.trim();
        v.check(!reason.is_empty(), "reason", "must say why (it is kept in the audit trail)");
        v.check_text("reason", reason, 500);
        v.into_result()?;
        let current = self.store.weights().await?.version;
        let expected = expected.unwrap_or(current);
        let row = self
            .store
            .set_weights(expected, &weights, reason, &admin, self.now())
            .await?
            .ok_or_else(|| DOMAIN.etag_mismatch("weights"))?;
        self.set_weights(row.version, row.weights);
        let a = weights_answer(&row);
        Ok(Response::new(pb::UpdateMatchingWeightsResponse {
            weights: a.weights,
            etag: a.etag,
            update_time: a.update_time,
            updated_by: a.updated_by,
        }))
    }

    async fn list_weight_changes(
        &self,
        request: Request<pb::ListWeightChangesRequest>,
    ) -> Result<Response<pb::ListWeightChangesResponse>, Status> {
        require_admin(&request)?;
        let req = request.into_inner();
        let mut v = violations();
        let page = self.pages.page::<i64>(&mut v, "ListWeightChanges", req.page_size, &req.page_token);
        v.into_result()?;
        let mut rows = self.store.weight_changes(page.after, page.limit()).await?;
        let next_page_token = page.next(&mut rows, |r| r.version);
        Ok(Response::new(pb::ListWeightChangesResponse {
            changes: rows
                .iter()
                .map(|r| pb::WeightChange {
                    version: r.version,
                    previous: Some(weights_pb(&r.previous)),
                    weights: Some(weights_pb(&r.weights)),
                    reason: r.reason.clone(),
                    actor: r.actor.clone(),
                    change_time: Some(to_timestamp(r.changed_at)),
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn propose_mentorship(
        &self,
        request: Request<pb::ProposeMentorshipRequest>,
    ) -> Result<Response<pb::ProposeMentorshipResponse>, Status> {
        let admin = require_admin(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = violations();
        v.check_id("user_id", &req.user_id);
        check_mentor_id(&mut v, "mentor_id", &req.mentor_id);
        let rid = request_id(&mut v, &req.request_id);
        v.into_result()?;
        let now = self.now();
        let new = NewMentorship {
            user_id: &req.user_id,
            mentor_id: &req.mentor_id,
            origin: MentorshipOrigin::Admin,
            request_id: rid,
            actor: &admin,
            now,
            expires_at: Some(now + PROPOSAL_HOLD_MS),
        };
        let (row, fresh) = self.store.choose(&new).await.map_err(Error::from)?;
        if fresh {
            self.catalog().adjust_seats(&row.mentor_id, 1);
        }
        Ok(Response::new(pb::ProposeMentorshipResponse { mentorship: Some(convert::mentorship(&row)) }))
    }

    async fn start_cohort_assignment(
        &self,
        request: Request<pb::StartCohortAssignmentRequest>,
    ) -> Result<Response<pb::StartCohortAssignmentResponse>, Status> {
        let admin = require_admin(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = violations();
        v.check(!req.user_ids.is_empty(), "user_ids", "must name at least one learner");
        if v.check_count("user_ids", req.user_ids.len(), MAX_COHORT) {
            v.check_ids("user_ids", &req.user_ids, MAX_COHORT);
        }
        if v.check_count("mentor_ids", req.mentor_ids.len(), MAX_COHORT_MENTORS) {
            for (i, id) in req.mentor_ids.iter().enumerate().take(MAX_COHORT_MENTORS) {
                check_mentor_id(&mut v, &format!("mentor_ids[{i}]"), id);
            }
            v.check_unique("mentor_ids", &req.mentor_ids);
        }
        let rid = request_id(&mut v, &req.request_id);
        v.into_result()?;
        let cohort = CohortRequest { user_ids: req.user_ids.clone(), mentor_ids: req.mentor_ids.clone() };
        let row = self.0.start_cohort(&admin, cohort, rid).await?;
        Ok(Response::new(pb::StartCohortAssignmentResponse { assignment: Some(assignment(&row)) }))
    }

    async fn get_cohort_assignment(
        &self,
        request: Request<pb::GetCohortAssignmentRequest>,
    ) -> Result<Response<pb::GetCohortAssignmentResponse>, Status> {
        require_admin(&request)?;
        let req = request.into_inner();
        let mut v = violations();
        v.check_id("assignment_id", &req.assignment_id);
        v.into_result()?;
        let row = self
            .store
            .cohort(&req.assignment_id)
            .await?
            .ok_or_else(|| DOMAIN.not_found("cohort assignment", &req.assignment_id))?;
        Ok(Response::new(pb::GetCohortAssignmentResponse { assignment: Some(assignment(&row)) }))
    }

    async fn apply_cohort_assignment(
        &self,
        request: Request<pb::ApplyCohortAssignmentRequest>,
    ) -> Result<Response<pb::ApplyCohortAssignmentResponse>, Status> {
        let admin = require_admin(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = violations();
        v.check_id("assignment_id", &req.assignment_id);
        v.into_result()?;
        let row = self
            .store
            .cohort(&req.assignment_id)
            .await?
            .ok_or_else(|| DOMAIN.not_found("cohort assignment", &req.assignment_id))?;
        let result: Option<CohortResult> = serde_json::from_str(&row.result).ok();
        let Some(result) = result.filter(|_| row.state == crate::store::settings::SUCCEEDED) else {
            let (reason, message) = match row.state.as_str() {
                crate::store::settings::APPLIED => {
                    ("ASSIGNMENT_APPLIED", "the assignment was applied already")
                }
                crate::store::settings::RUNNING => {
                    ("ASSIGNMENT_RUNNING", "the assignment is still being computed")
                }
                _ => ("ASSIGNMENT_FAILED", "the assignment failed; start a new one"),
            };
            return Err(DOMAIN.status(tonic::Code::FailedPrecondition, Reason::new(reason), message));
        };
        let pairs: Vec<(String, String)> =
            result.pairs.into_iter().map(|p| (p.user_id, p.mentor_id)).collect();
        let now = self.now();
        let (proposed, skipped) = self
            .store
            .apply_cohort(&req.assignment_id, &pairs, &admin, now, now + PROPOSAL_HOLD_MS)
            .await
            .map_err(|e| match e {
                crate::store::MentorshipError::WrongState(_) => DOMAIN.status(
                    tonic::Code::FailedPrecondition,
                    Reason::new("ASSIGNMENT_APPLIED"),
                    "the assignment was applied already",
                ),
                e => Error::from(e).into(),
            })?;
        let catalog = self.catalog();
        for r in &proposed {
            catalog.adjust_seats(&r.mentor_id, 1);
        }
        Ok(Response::new(pb::ApplyCohortAssignmentResponse {
            proposed: proposed.iter().map(convert::mentorship).collect(),
            skipped: skipped
                .into_iter()
                .map(|(user_id, mentor_id, reason)| pb::SkippedPair {
                    user_id,
                    mentor_id,
                    reason: reason.to_owned(),
                })
                .collect(),
        }))
    }
}
