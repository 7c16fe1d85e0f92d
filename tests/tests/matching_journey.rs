//! End to end on the all-in-one server: a learner with goals in data finds explained matches
//! (matching reads their view from profiles over gRPC), chooses the best one, rates it, rematches
//! with a reason, sees the mentorship in analytics' timeline (matching's outbox), and after an
//! admin deletes the account, identity's outbox has matching forget them and free the seat.

use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tt_e2e::{ADMIN_EMAIL, ADMIN_PASSWORD, AllInOne};
use tt_proto::{
    analytics::v1::{self as apb, event_service_client::EventServiceClient},
    identity::v1::{
        self as ipb, admin_service_client::AdminServiceClient, auth_service_client::AuthServiceClient,
    },
    matching::v1::{
        self as pb, match_service_client::MatchServiceClient, mentor_service_client::MentorServiceClient,
        mentorship_service_client::MentorshipServiceClient,
    },
    profiles::v1::{
        self as ppb, goal_service_client::GoalServiceClient, profile_service_client::ProfileServiceClient,
    },
};
use tt_testkit::{AuthedChannel, Bearer};

fn with(ch: &Channel, token: &str) -> AuthedChannel {
    tonic::service::interceptor::InterceptedService::new(ch.clone(), Bearer::new(token))
}

/// A generous bound that catches a hang.
const PATIENCE: Duration = Duration::from_secs(20);

async fn seats(ch: &Channel, token: &str, mentor_id: &str) -> anyhow::Result<i32> {
    let m = MentorServiceClient::new(with(ch, token))
        .get_mentor(pb::GetMentorRequest { mentor_id: mentor_id.into(), version: 0 })
        .await?
        .into_inner()
        .mentor
        .expect("mentor");
    Ok(m.seats_taken)
}

#[tokio::test]
async fn a_learner_finds_chooses_rates_and_rematches_a_mentor_and_deletion_forgets_it() -> anyhow::Result<()>
{
    let server = AllInOne::start().await?;
    let ch = server.channel().await?;
    let reg = AuthServiceClient::new(ch.clone())
        .register(ipb::RegisterRequest {
            email: "noor@example.org".into(),
            password: "a long enough passphrase".into(),
            display_name: "Noor".into(),
        })
        .await?
        .into_inner();
    let user_id = reg.user.expect("user").id;
    let token = reg.tokens.expect("tokens").access_token;

    ProfileServiceClient::new(with(&ch, &token))
        .update_profile(ppb::UpdateProfileRequest {
            profile: Some(ppb::Profile {
                fields_of_work: vec!["software".into()],
                languages: vec!["en".into(), "es".into()],
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["fields_of_work".into(), "languages".into()],
            }),
        })
        .await?;
    GoalServiceClient::new(with(&ch, &token))
        .create_goal(ppb::CreateGoalRequest {
            goal: Some(ppb::Goal {
                kind: ppb::GoalKind::LongTerm.into(),
                title: "Build LLM features that hold up".into(),
                target_role: "AI engineer".into(),
                target_field: "data".into(),
                priority: 1,
                skill_ids: vec!["large-language-models".into(), "retrieval-augmented-generation".into()],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?;

    let mut matches = MatchServiceClient::new(with(&ch, &token));
    let found = matches
        .find_matches(pb::FindMatchesRequest { page_size: 5, ..Default::default() })
        .await?
        .into_inner();
    assert_eq!(found.total_size, 24);
    let best = found.matches[0].mentor.clone().expect("mentor");
    assert_eq!(best.mentor_id, "joaquin-ferreyra", "the LLM mentor who speaks Spanish: {found:?}");
    let focus = &found.matches[0].breakdown[0];
    assert!(focus.reason.contains("covers 2 of the 2 skills"), "{}", focus.reason);
    let language = found.matches[0]
        .breakdown
        .iter()
        .find(|c| c.criterion == pb::Criterion::Language as i32)
        .expect("language");
    assert!(language.reason.contains("es"), "{}", language.reason);

    let mut mentorships = MentorshipServiceClient::new(with(&ch, &token));
    let chosen = mentorships
        .choose_mentor(pb::ChooseMentorRequest {
            mentor_id: best.mentor_id.clone(),
            request_id: "journey".into(),
        })
        .await?
        .into_inner()
        .mentorship
        .expect("mentorship");
    assert_eq!(seats(&ch, &token, &best.mentor_id).await?, 1);
    mentorships
        .submit_feedback(pb::SubmitFeedbackRequest {
            mentorship_id: chosen.mentorship_id.clone(),
            rating: 3,
            reason: "good, a bit fast".into(),
        })
        .await?;
    let rematched = mentorships
        .rematch(pb::RematchRequest {
            mentorship_id: chosen.mentorship_id.clone(),
            reason: pb::EndReason::StyleMismatch.into(),
            note: "I need more structure".into(),
            mentor_id: "helga-brandvold".into(),
            request_id: "journey-rematch".into(),
        })
        .await?
        .into_inner();
    let current = rematched.mentorship.expect("current");
    assert_eq!(
        (seats(&ch, &token, &best.mentor_id).await?, seats(&ch, &token, "helga-brandvold").await?),
        (0, 1)
    );
    let again = matches
        .find_matches(pb::FindMatchesRequest { field: "data".into(), ..Default::default() })
        .await?
        .into_inner();
    let joaquin = again
        .matches
        .iter()
        .find(|m| m.mentor.as_ref().is_some_and(|x| x.mentor_id == best.mentor_id))
        .expect("listed");
    assert!(joaquin.demotion.contains("I need more structure"), "{}", joaquin.demotion);

    // Analytics heard it through matching's outbox.
    let mut events = EventServiceClient::new(with(&ch, &token));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let timeline = events
            .list_timeline_events(apb::ListTimelineEventsRequest { page_size: 50, ..Default::default() })
            .await?
            .into_inner();
        let types: Vec<&str> = timeline.events.iter().map(|e| e.r#type.as_str()).collect();
        if ["matching.mentorship.started", "matching.feedback.submitted", "matching.mentorship.ended"]
            .iter()
            .all(|t| types.contains(t))
        {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "analytics lacks matching's events: {types:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let export =
        mentorships.export_matching_data(pb::ExportMatchingDataRequest::default()).await?.into_inner().json;
    assert!(
        export.contains(&chosen.mentorship_id)
            && export.contains(&current.mentorship_id)
            && export.contains("a bit fast")
    );

    let admin = AuthServiceClient::new(ch.clone())
        .login(ipb::LoginRequest { email: ADMIN_EMAIL.into(), password: ADMIN_PASSWORD.into() })
        .await?
        .into_inner()
        .tokens
        .expect("tokens")
        .access_token;
    AdminServiceClient::new(with(&ch, &admin))
        .delete_user(ipb::DeleteUserRequest { user_id: user_id.clone() })
        .await?;
    let deadline = Instant::now() + PATIENCE;
    let mut as_admin = MentorshipServiceClient::new(with(&ch, &admin));
    loop {
        let left = as_admin
            .list_mentorships(pb::ListMentorshipsRequest { user_id: user_id.clone(), ..Default::default() })
            .await?
            .into_inner()
            .mentorships;
        if left.is_empty() && seats(&ch, &admin, "helga-brandvold").await? == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "matching still holds the deleted learner's data: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await
}
