//! End to end: a new learner builds a complete profile on the all-in-one server (every call
//! through the generated clients, tokens verified with keys fetched from identity over gRPC),
//! then an admin deletes the account and identity's outbox has profiles purge the data.

use std::time::{Duration, Instant};

use tonic::{Code, transport::Channel};
use tt_e2e::{ADMIN_EMAIL, ADMIN_PASSWORD, AllInOne};
use tt_proto::{
    identity::v1::{
        self as ipb, admin_service_client::AdminServiceClient, auth_service_client::AuthServiceClient,
    },
    profiles::v1::{
        self as pb, assessment_service_client::AssessmentServiceClient,
        experience_service_client::ExperienceServiceClient, goal_service_client::GoalServiceClient,
        profile_service_client::ProfileServiceClient, skill_service_client::SkillServiceClient,
    },
};
use tt_testkit::{AuthedChannel, Bearer};

fn with(ch: &Channel, token: &str) -> AuthedChannel {
    tonic::service::interceptor::InterceptedService::new(ch.clone(), Bearer::new(token))
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() })
}

#[tokio::test]
async fn a_learner_completes_a_profile_and_deletion_purges_it() -> anyhow::Result<()> {
    let server = AllInOne::start().await?;
    let ch = server.channel().await?;
    let mut auth = AuthServiceClient::new(ch.clone());
    let reg = auth
        .register(ipb::RegisterRequest {
            email: "lin@example.org".into(),
            password: "a long enough passphrase".into(),
            display_name: "Lin".into(),
        })
        .await?
        .into_inner();
    let user_id = reg.user.expect("user").id;
    let token = reg.tokens.expect("tokens").access_token;
    let mut profile = ProfileServiceClient::new(with(&ch, &token));
    let completion = |c: pb::GetCompletionResponse| c.completion.expect("completion").percent;

    let created =
        profile.get_profile(pb::GetProfileRequest::default()).await?.into_inner().profile.expect("profile");
    assert_eq!(created.user_id, user_id);
    assert_eq!(
        completion(profile.get_completion(pb::GetCompletionRequest::default()).await?.into_inner()),
        0
    );

    profile
        .update_profile(pb::UpdateProfileRequest {
            profile: Some(pb::Profile {
                headline: "SOC analyst heading for threat hunting".into(),
                current_role: "SOC analyst".into(),
                fields_of_work: vec!["security-defender".into()],
                location: "Singapore".into(),
                timezone: "Asia/Singapore".into(),
                languages: vec!["en".into(), "zh".into()],
                preferences: Some(pb::Preferences {
                    session_cadence: pb::SessionCadence::TwiceWeekly.into(),
                    communication_style: pb::CommunicationStyle::Socratic.into(),
                    feedback_style: pb::FeedbackStyle::Balanced.into(),
                    notifications: Some(pb::NotificationPreferences { email: true, ..Default::default() }),
                }),
                etag: created.etag,
                ..Default::default()
            }),
            update_mask: mask(&[
                "headline",
                "current_role",
                "fields_of_work",
                "location",
                "timezone",
                "languages",
                "preferences",
            ]),
        })
        .await?;
    GoalServiceClient::new(with(&ch, &token))
        .create_goal(pb::CreateGoalRequest {
            goal: Some(pb::Goal {
                kind: pb::GoalKind::LongTerm.into(),
                title: "Lead a threat-hunting team".into(),
                target_role: "Threat hunting lead".into(),
                skill_ids: vec!["threat-hunting".into()],
                ..Default::default()
            }),
            request_id: "first-goal".into(),
        })
        .await?;
    let mut assessment = AssessmentServiceClient::new(with(&ch, &token));
    let q = assessment
        .get_assessment(pb::GetAssessmentRequest {})
        .await?
        .into_inner()
        .assessment
        .expect("assessment");
    let answers = q
        .questions
        .iter()
        .map(|x| pb::Answer { question_id: x.id.clone(), option_id: x.options[2].id.clone() });
    let result = assessment
        .submit_assessment(pb::SubmitAssessmentRequest { version: q.version, answers: answers.collect() })
        .await?
        .into_inner()
        .result
        .expect("result");
    assert!(!result.explanation.is_empty());
    ExperienceServiceClient::new(with(&ch, &token))
        .create_position(pb::CreatePositionRequest {
            position: Some(pb::Position {
                title: "SOC analyst".into(),
                organization: "Harbour Bank".into(),
                start: Some(pb::YearMonth { year: 2024, month: 2 }),
                current: true,
                skill_ids: vec!["siem".into()],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?;
    let mut skills = SkillServiceClient::new(with(&ch, &token));
    let found = skills
        .search_skills(pb::SearchSkillsRequest { query: "threat".into(), ..Default::default() })
        .await?;
    assert!(found.get_ref().skills.iter().any(|s| s.id == "threat-hunting"));
    for (skill, level) in [("threat-hunting", 2), ("siem", 3), ("incident-response", 3)] {
        skills
            .upsert_learner_skill(pb::UpsertLearnerSkillRequest {
                skill_id: skill.into(),
                proficiency: level,
                years: 1.5,
                last_used: None,
            })
            .await?;
    }
    let done = profile.get_completion(pb::GetCompletionRequest::default()).await?.into_inner();
    assert_eq!(completion(done), 100);

    // The admin deletes the account; identity's outbox tells profiles, which purges the data.
    let admin = auth
        .login(ipb::LoginRequest { email: ADMIN_EMAIL.into(), password: ADMIN_PASSWORD.into() })
        .await?
        .into_inner()
        .tokens
        .expect("tokens")
        .access_token;
    AdminServiceClient::new(with(&ch, &admin))
        .delete_user(ipb::DeleteUserRequest { user_id: user_id.clone() })
        .await?;
    let mut as_admin = ProfileServiceClient::new(with(&ch, &admin));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match as_admin.get_profile(pb::GetProfileRequest { user_id: user_id.clone() }).await {
            Err(s) if s.code() == Code::NotFound => break,
            other => {
                anyhow::ensure!(Instant::now() < deadline, "profile still there after deletion: {other:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    server.stop().await
}
