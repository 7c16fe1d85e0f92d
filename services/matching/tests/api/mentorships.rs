//! Mentorships through the API: choose, end, rematch, feedback, history, export, deletion.

use std::time::{Duration, Instant};

use tonic::Code;
use tt_proto::{identity::v1 as ipb, matching::v1 as pb};

use crate::support::{Stack, assert_bad_fields, code};

fn seats_of(matches: &pb::FindMatchesResponse, mentor_id: &str) -> Option<i32> {
    matches
        .matches
        .iter()
        .filter_map(|m| m.mentor.as_ref())
        .find(|m| m.mentor_id == mentor_id)
        .map(|m| m.seats_taken)
}

#[tokio::test]
async fn a_learner_chooses_ends_with_a_reason_rematches_and_rates() {
    let s = Stack::start().await;
    let ann = s.learner("ann").await;
    let chosen = s.choose(&ann, "helga-brandvold").await;
    assert_eq!(chosen.state, pb::MentorshipState::Active as i32);
    assert_eq!((chosen.mentor_version, chosen.mentor_name.as_str()), (1, "Helga Brandvold"));
    let full = s.find(&ann, pb::FindMatchesRequest { include_full: true, ..Default::default() }).await;
    assert_eq!(seats_of(&full, "helga-brandvold"), Some(1), "the seat shows at once");

    let second = s
        .mentorships(&ann.token)
        .choose_mentor(pb::ChooseMentorRequest { mentor_id: "odessa-tan".into(), request_id: String::new() })
        .await;
    let status = second.expect_err("one running mentorship");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(tt_common::error::reason(&status).as_deref(), Some("MENTORSHIP_EXISTS"));

    let rematched = s
        .mentorships(&ann.token)
        .rematch(pb::RematchRequest {
            mentorship_id: chosen.mentorship_id.clone(),
            reason: pb::EndReason::StyleMismatch.into(),
            note: "too much theory for me".into(),
            mentor_id: "odessa-tan".into(),
            request_id: "rematch-1".into(),
        })
        .await
        .expect("rematched")
        .into_inner();
    let ended = rematched.ended.expect("ended");
    assert_eq!(
        (ended.state, ended.end_reason),
        (pb::MentorshipState::Ended as i32, pb::EndReason::StyleMismatch as i32)
    );
    let current = rematched.mentorship.expect("new");
    assert_eq!(current.mentor_id, "odessa-tan");

    let matches = s.find(&ann, pb::FindMatchesRequest::default()).await;
    let helga = matches
        .matches
        .iter()
        .find(|m| m.mentor.as_ref().is_some_and(|x| x.mentor_id == "helga-brandvold"))
        .expect("still listed");
    assert!(helga.demotion.contains("style mismatch: too much theory for me"), "{}", helga.demotion);
    assert_eq!(seats_of(&matches, "helga-brandvold"), Some(0), "the seat came back");

    let rated = s
        .mentorships(&ann.token)
        .submit_feedback(pb::SubmitFeedbackRequest {
            mentorship_id: current.mentorship_id.clone(),
            rating: 5,
            reason: "sharp and kind".into(),
        })
        .await
        .expect("rated")
        .into_inner()
        .mentorship
        .expect("m");
    assert_eq!(rated.feedback.as_ref().map(|f| f.rating), Some(5));
    let done = s
        .mentorships(&ann.token)
        .end_mentorship(pb::EndMentorshipRequest {
            mentorship_id: current.mentorship_id.clone(),
            reason: pb::EndReason::GoalsReached.into(),
            note: String::new(),
        })
        .await
        .expect("completed")
        .into_inner()
        .mentorship
        .expect("m");
    assert_eq!(done.state, pb::MentorshipState::Completed as i32);

    let history = s
        .mentorships(&ann.token)
        .list_mentorships(pb::ListMentorshipsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .mentorships;
    assert_eq!(
        history.iter().map(|m| m.mentor_id.as_str()).collect::<Vec<_>>(),
        ["odessa-tan", "helga-brandvold"]
    );
    let export = s
        .mentorships(&ann.token)
        .export_matching_data(pb::ExportMatchingDataRequest::default())
        .await
        .expect("export")
        .into_inner()
        .json;
    let json: serde_json::Value = serde_json::from_str(&export).expect("JSON");
    assert_eq!(json["user_id"], ann.id.as_str());
    assert_eq!(json["mentorships"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["mentorships"][1]["rating"], 5);
    assert_eq!(json["mentorships"][1]["feedback_reason"], "sharp and kind");
}

#[tokio::test]
async fn bad_requests_name_every_field_and_others_mentorships_are_not_found() {
    let s = Stack::start().await;
    let (ann, bob) = (s.learner("ann").await, s.learner("bob").await);
    let mine = s.choose(&ann, "samuel-oduya").await;
    let mut client = s.mentorships(&ann.token);
    assert_bad_fields(
        client
            .choose_mentor(pb::ChooseMentorRequest { mentor_id: "-bad-".into(), request_id: "x".repeat(65) })
            .await,
        &["mentor_id", "request_id"],
    );
    assert_bad_fields(
        client
            .end_mentorship(pb::EndMentorshipRequest {
                mentorship_id: "nope".into(),
                reason: 0,
                note: "y".repeat(1001),
            })
            .await,
        &["mentorship_id", "note", "reason"],
    );
    assert_bad_fields(
        client
            .end_mentorship(pb::EndMentorshipRequest {
                mentorship_id: mine.mentorship_id.clone(),
                reason: pb::EndReason::Other.into(),
                note: " ".into(),
            })
            .await,
        &["note"],
    );
    assert_bad_fields(
        client
            .submit_feedback(pb::SubmitFeedbackRequest {
                mentorship_id: mine.mentorship_id.clone(),
                rating: 9,
                reason: String::new(),
            })
            .await,
        &["rating", "reason"],
    );
    assert_bad_fields(
        client
            .rematch(pb::RematchRequest {
                mentorship_id: mine.mentorship_id.clone(),
                reason: pb::EndReason::NotAFit.into(),
                mentor_id: "samuel-oduya".into(),
                ..Default::default()
            })
            .await,
        &["mentor_id"],
    );
    let unknown = client
        .choose_mentor(pb::ChooseMentorRequest { mentor_id: "nobody-here".into(), request_id: String::new() })
        .await;
    assert_eq!(code(unknown), Code::NotFound);

    let mut theirs = s.mentorships(&bob.token);
    let get =
        theirs.get_mentorship(pb::GetMentorshipRequest { mentorship_id: mine.mentorship_id.clone() }).await;
    assert_eq!(code(get), Code::NotFound, "someone else's mentorship");
    let end = theirs
        .end_mentorship(pb::EndMentorshipRequest {
            mentorship_id: mine.mentorship_id.clone(),
            reason: pb::EndReason::NoTime.into(),
            note: String::new(),
        })
        .await;
    assert_eq!(code(end), Code::NotFound);
    let list = theirs
        .list_mentorships(pb::ListMentorshipsRequest { user_id: ann.id.clone(), ..Default::default() })
        .await;
    assert_eq!(code(list), Code::PermissionDenied);
    let still = client
        .get_mentorship(pb::GetMentorshipRequest { mentorship_id: mine.mentorship_id.clone() })
        .await
        .expect("mine");
    assert_eq!(
        still.into_inner().mentorship.expect("m").state,
        pb::MentorshipState::Active as i32,
        "nothing changed"
    );
}

#[tokio::test]
async fn a_deleted_learner_is_forgotten_and_their_seat_freed() {
    let s = Stack::start().await;
    let ann = s.learner("ann").await;
    s.choose(&ann, "beatrix-lindqvist").await;
    let admin = s.admin_token().await;
    s.identity_admin(&admin)
        .delete_user(ipb::DeleteUserRequest { user_id: ann.id.clone() })
        .await
        .expect("deleted");
    // Identity's relay delivers the deletion on its own; a generous bound catches a hang.
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.matching.store.rows_about(&ann.id).await.expect("rows") > 0 {
        assert!(Instant::now() < deadline, "the deletion never reached matching");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bob = s.learner("bob").await;
    let seen = s.find(&bob, pb::FindMatchesRequest { include_full: true, ..Default::default() }).await;
    assert_eq!(seats_of(&seen, "beatrix-lindqvist"), Some(0));
}
