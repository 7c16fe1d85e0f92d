//! Admins' operations: the weights (audited, re-ranking without a restart), proposals and
//! their expiry, cohort assignments computed in the background and applied once.

use std::time::{Duration, Instant};

use tonic::Code;
use tt_proto::matching::v1 as pb;

use crate::support::{Stack, assert_bad_fields, code, ids};

#[tokio::test]
async fn a_weight_change_re_ranks_at_once_and_is_audited() {
    let s = Stack::start().await;
    let ann = s.learner("ann").await;
    s.add_goal(&ann, "design", &["accessibility", "usability-testing"]).await;
    let admin = s.admin_token().await;
    let mut ops = s.admin(&admin);
    let before = s.find(&ann, pb::FindMatchesRequest::default()).await;
    let current =
        ops.get_matching_weights(pb::GetMatchingWeightsRequest {}).await.expect("weights").into_inner();
    assert_eq!(current.etag, "v0");
    let only_capacity = pb::MatchingWeights { capacity: 1.0, ..Default::default() };
    let updated = ops
        .update_matching_weights(pb::UpdateMatchingWeightsRequest {
            weights: Some(only_capacity),
            etag: current.etag.clone(),
            reason: "spread learners over free seats this week".into(),
        })
        .await
        .expect("updated")
        .into_inner();
    assert_eq!(updated.etag, "v1");
    let after = s.find(&ann, pb::FindMatchesRequest::default()).await;
    assert_ne!(ids(&before.matches), ids(&after.matches), "the ranking follows the weights");
    let capacity = |m: &pb::Match| {
        m.breakdown
            .iter()
            .find(|c| c.criterion == pb::Criterion::Capacity as i32)
            .map(|c| (c.score, c.weight))
    };
    assert!(after.matches.windows(2).all(|w| capacity(&w[0]).expect("c").0 >= capacity(&w[1]).expect("c").0));
    assert_eq!(capacity(&after.matches[0]).map(|c| c.1), Some(1.0));

    let stale = ops
        .update_matching_weights(pb::UpdateMatchingWeightsRequest {
            weights: Some(only_capacity),
            etag: "v0".into(),
            reason: "late".into(),
        })
        .await;
    assert_eq!(code(stale), Code::Aborted);
    let bad = ops
        .update_matching_weights(pb::UpdateMatchingWeightsRequest {
            weights: Some(pb::MatchingWeights { focus: -1.0, style: 11.0, ..Default::default() }),
            etag: String::new(),
            reason: " ".into(),
        })
        .await;
    assert_bad_fields(bad, &["weights.focus", "weights.style", "reason"]);
    let zero = ops
        .update_matching_weights(pb::UpdateMatchingWeightsRequest {
            weights: Some(pb::MatchingWeights::default()),
            etag: String::new(),
            reason: "off".into(),
        })
        .await;
    assert_bad_fields(zero, &["weights"]);
    let trail = ops
        .list_weight_changes(pb::ListWeightChangesRequest::default())
        .await
        .expect("trail")
        .into_inner()
        .changes;
    assert_eq!(trail.len(), 1);
    assert_eq!(
        (trail[0].version, trail[0].reason.as_str()),
        (1, "spread learners over free seats this week")
    );
    assert_eq!(trail[0].previous.as_ref().map(|w| w.focus), Some(0.35));
    assert_eq!(
        code(s.admin(&ann.token).get_matching_weights(pb::GetMatchingWeightsRequest {}).await),
        Code::PermissionDenied
    );
}

#[tokio::test]
async fn proposals_are_accepted_declined_or_expire_and_free_their_seat() {
    let s = Stack::start().await;
    let (ann, bob) = (s.learner("ann").await, s.learner("bob").await);
    let admin = s.admin_token().await;
    let propose = |user: &str, mentor: &str| {
        let mut ops = s.admin(&admin);
        let request = pb::ProposeMentorshipRequest {
            user_id: user.into(),
            mentor_id: mentor.into(),
            request_id: String::new(),
        };
        async move { ops.propose_mentorship(request).await.expect("proposed").into_inner().mentorship.expect("m") }
    };
    let offer = propose(&ann.id, "kofi-mensah-larbi").await;
    assert_eq!(
        (offer.state, offer.origin),
        (pb::MentorshipState::Proposed as i32, pb::MentorshipOrigin::Admin as i32)
    );
    assert!(offer.expire_time.is_some());
    let accepted = s
        .mentorships(&ann.token)
        .accept_proposal(pb::AcceptProposalRequest { mentorship_id: offer.mentorship_id.clone() })
        .await
        .expect("accepted")
        .into_inner()
        .mentorship
        .expect("m");
    assert_eq!(accepted.state, pb::MentorshipState::Active as i32);
    let not_hers = s
        .mentorships(&bob.token)
        .accept_proposal(pb::AcceptProposalRequest { mentorship_id: offer.mentorship_id })
        .await;
    assert_eq!(code(not_hers), Code::NotFound);

    let to_bob = propose(&bob.id, "yusuf-demirtas").await;
    let declined = s
        .mentorships(&bob.token)
        .decline_proposal(pb::DeclineProposalRequest {
            mentorship_id: to_bob.mentorship_id,
            reason: pb::EndReason::WrongFocus.into(),
            note: "I want defence, not offence".into(),
        })
        .await
        .expect("declined")
        .into_inner()
        .mentorship
        .expect("m");
    assert_eq!(declined.state, pb::MentorshipState::Declined as i32);
    let seen = s
        .find(&bob, pb::FindMatchesRequest { field: "security-offensive".into(), ..Default::default() })
        .await;
    let yusuf = seen
        .matches
        .iter()
        .find(|m| m.mentor.as_ref().is_some_and(|x| x.mentor_id == "yusuf-demirtas"))
        .expect("listed");
    assert!(yusuf.demotion.contains("I want defence"), "{}", yusuf.demotion);
    assert_eq!(yusuf.mentor.as_ref().map(|m| m.seats_taken), Some(0));

    let late = propose(&bob.id, "beatrix-lindqvist").await;
    s.kit.clock.advance(Duration::from_secs(8 * 24 * 3600));
    assert_eq!(s.matching.expire_due().await, 1);
    let bob = s.sign_in("bob", &bob.id).await;
    let gone = s
        .mentorships(&bob.token)
        .accept_proposal(pb::AcceptProposalRequest { mentorship_id: late.mentorship_id.clone() })
        .await;
    assert_eq!(code(gone), Code::FailedPrecondition);
    let history = s
        .mentorships(&bob.token)
        .list_mentorships(pb::ListMentorshipsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(history.mentorships[0].state, pb::MentorshipState::Expired as i32);
    assert_bad_fields(
        s.mentorships(&bob.token)
            .decline_proposal(pb::DeclineProposalRequest {
                mentorship_id: "x".into(),
                reason: pb::EndReason::GoalsReached.into(),
                note: String::new(),
            })
            .await,
        &["mentorship_id", "reason"],
    );
}

#[tokio::test]
async fn a_cohort_is_assigned_in_the_background_and_applied_once() {
    let s = Stack::start().await;
    let admin = s.admin_token().await;
    let mut learners = Vec::new();
    for (i, (field, skills)) in [
        ("data", ["large-language-models", "retrieval-augmented-generation"]),
        ("data", ["apache-kafka", "stream-processing"]),
        ("design", ["accessibility", "usability-testing"]),
        ("design", ["typography", "visual-design"]),
        ("security-defender", ["incident-response", "digital-forensics"]),
    ]
    .into_iter()
    .enumerate()
    {
        let l = s.learner(&format!("learner{i}")).await;
        s.add_goal(&l, field, &skills).await;
        learners.push(l);
    }
    let busy = s.learner("busy").await;
    s.choose(&busy, "odessa-tan").await;
    let mut user_ids: Vec<String> = learners.iter().map(|l| l.id.clone()).collect();
    user_ids.push(busy.id.clone());
    let mentors =
        ["joaquin-ferreyra", "helga-brandvold", "camila-arantes", "ottilie-brenner", "mireille-dautremont"];
    let mut ops = s.admin(&admin);
    let started = ops
        .start_cohort_assignment(pb::StartCohortAssignmentRequest {
            user_ids: user_ids.clone(),
            mentor_ids: mentors.map(String::from).to_vec(),
            request_id: "cohort-1".into(),
        })
        .await
        .expect("started")
        .into_inner()
        .assignment
        .expect("assignment");
    let id = started.assignment_id.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let a = ops
            .get_cohort_assignment(pb::GetCohortAssignmentRequest { assignment_id: id.clone() })
            .await
            .expect("poll")
            .into_inner()
            .assignment
            .expect("a");
        if a.state != pb::CohortState::Running as i32 {
            break a;
        }
        assert!(Instant::now() < deadline, "still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(done.state, pb::CohortState::Succeeded as i32, "{}", done.error);
    assert_eq!((done.learners, done.mentors, done.pairs.len()), (5, 5, 5));
    assert_eq!(done.skipped_user_ids, std::slice::from_ref(&busy.id));
    assert!(done.unseated_user_ids.is_empty());
    assert!(
        done.total_score + 1e-9 >= done.greedy_total_score,
        "{} < {}",
        done.total_score,
        done.greedy_total_score
    );
    let mentor_of =
        |i: usize| done.pairs.iter().find(|p| p.user_id == learners[i].id).map(|p| p.mentor_id.as_str());
    assert_eq!(mentor_of(0), Some("joaquin-ferreyra"));
    assert_eq!(mentor_of(4), Some("mireille-dautremont"));
    let again = ops
        .start_cohort_assignment(pb::StartCohortAssignmentRequest {
            user_ids,
            mentor_ids: vec![],
            request_id: "cohort-1".into(),
        })
        .await
        .expect("retried")
        .into_inner()
        .assignment
        .expect("a");
    assert_eq!(again.assignment_id, id, "the same request gives the same assignment");

    let applied = ops
        .apply_cohort_assignment(pb::ApplyCohortAssignmentRequest { assignment_id: id.clone() })
        .await
        .expect("applied")
        .into_inner();
    assert_eq!(applied.proposed.len(), 5);
    assert!(applied.proposed.iter().all(|m| m.state == pb::MentorshipState::Proposed as i32
        && m.origin == pb::MentorshipOrigin::Cohort as i32));
    let twice = ops
        .apply_cohort_assignment(pb::ApplyCohortAssignmentRequest { assignment_id: id })
        .await
        .expect_err("once");
    assert_eq!(tt_common::error::reason(&twice).as_deref(), Some("ASSIGNMENT_APPLIED"));
    let bad = ops
        .start_cohort_assignment(pb::StartCohortAssignmentRequest {
            user_ids: vec![learners[0].id.clone(), learners[0].id.clone()],
            mentor_ids: vec!["Nope".into(), "odessa-tan".into(), "odessa-tan".into()],
            request_id: String::new(),
        })
        .await;
    assert_bad_fields(bad, &["user_ids[1]", "mentor_ids[0]", "mentor_ids[2]"]);
}
