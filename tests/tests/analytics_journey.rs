//! End to end on the all-in-one server: two learners sign up and work on their profiles, an
//! admin suspends one of them; identity's and profiles' outboxes carry every step to analytics,
//! whose DAU and timelines then tell exactly that story.

use std::time::{Duration, Instant};

use tonic::{Code, transport::Channel};
use tt_e2e::{ADMIN_EMAIL, ADMIN_PASSWORD, AllInOne};
use tt_proto::{
    analytics::v1::{
        self as apb, event_service_client::EventServiceClient, report_service_client::ReportServiceClient,
    },
    identity::v1::{
        self as ipb, admin_service_client::AdminServiceClient, auth_service_client::AuthServiceClient,
    },
    profiles::v1::{
        self as pb, goal_service_client::GoalServiceClient, profile_service_client::ProfileServiceClient,
        skill_service_client::SkillServiceClient,
    },
};
use tt_testkit::{AuthedChannel, Bearer};

fn with(ch: &Channel, token: &str) -> AuthedChannel {
    tonic::service::interceptor::InterceptedService::new(ch.clone(), Bearer::new(token))
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() })
}

async fn sign_up(ch: &Channel, name: &str) -> anyhow::Result<(String, String)> {
    let reg = AuthServiceClient::new(ch.clone())
        .register(ipb::RegisterRequest {
            email: format!("{name}@example.org"),
            password: "a long enough passphrase".into(),
            display_name: name.into(),
        })
        .await?
        .into_inner();
    Ok((reg.user.expect("user").id, reg.tokens.expect("tokens").access_token))
}

/// The event types of `user`'s timeline, newest first, once it holds `n` events (at most 20 s).
async fn timeline(ch: &Channel, token: &str, user: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = EventServiceClient::new(with(ch, token))
            .list_timeline_events(apb::ListTimelineEventsRequest {
                user_id: user.into(),
                page_size: 100,
                ..Default::default()
            })
            .await?
            .into_inner();
        let types: Vec<String> = page.events.into_iter().map(|e| e.r#type).collect();
        if types.len() >= n || Instant::now() > deadline {
            return Ok(types);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn dau_and_the_learner_timeline_follow_a_scripted_journey() -> anyhow::Result<()> {
    let server = AllInOne::start().await?;
    let ch = server.channel().await?;
    let (ada, ada_token) = sign_up(&ch, "ada").await?;
    let (bo, _) = sign_up(&ch, "bo").await?;

    // Ada: a profile, a goal she then achieves, a skill.
    ProfileServiceClient::new(with(&ch, &ada_token))
        .update_profile(pb::UpdateProfileRequest {
            profile: Some(pb::Profile { headline: "Data engineer".into(), ..Default::default() }),
            update_mask: mask(&["headline"]),
        })
        .await?;
    let mut goals = GoalServiceClient::new(with(&ch, &ada_token));
    let goal = goals
        .create_goal(pb::CreateGoalRequest {
            goal: Some(pb::Goal {
                kind: pb::GoalKind::ShortTerm.into(),
                title: "Ship a pipeline".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .goal
        .expect("goal");
    goals
        .update_goal(pb::UpdateGoalRequest {
            goal: Some(pb::Goal {
                id: goal.id,
                status: pb::GoalStatus::Achieved.into(),
                ..Default::default()
            }),
            update_mask: mask(&["status"]),
        })
        .await?;
    SkillServiceClient::new(with(&ch, &ada_token))
        .upsert_learner_skill(pb::UpsertLearnerSkillRequest {
            skill_id: "rust".into(),
            proficiency: 3,
            ..Default::default()
        })
        .await?;

    // The admin suspends Bo.
    let admin = AuthServiceClient::new(ch.clone())
        .login(ipb::LoginRequest { email: ADMIN_EMAIL.into(), password: ADMIN_PASSWORD.into() })
        .await?
        .into_inner()
        .tokens
        .expect("tokens")
        .access_token;
    AdminServiceClient::new(with(&ch, &admin))
        .suspend_user(ipb::SuspendUserRequest { user_id: bo.clone(), reason: "test".into() })
        .await?;

    // An active goal completes the goals section (+20 %); achieving it empties it again.
    let ada_story = [
        "profiles.skill.added",
        "profiles.completion.changed",
        "profiles.goal.achieved",
        "profiles.completion.changed",
        "profiles.goal.created",
        "profiles.profile.updated",
        "profiles.profile.created",
        "identity.user.logged_in",
        "identity.user.registered",
    ];
    let types = timeline(&ch, &ada_token, "", ada_story.len()).await?;
    assert_eq!(types, ada_story, "Ada's own timeline, newest first");
    assert_eq!(timeline(&ch, &admin, &ada, ada_story.len()).await?, ada_story, "as an admin sees it");
    let bo_story = ["identity.user.suspended", "identity.user.logged_in", "identity.user.registered"];
    assert_eq!(timeline(&ch, &admin, &bo, bo_story.len()).await?, bo_story);
    let denied = EventServiceClient::new(with(&ch, &ada_token))
        .list_timeline_events(apb::ListTimelineEventsRequest { user_id: bo, ..Default::default() })
        .await
        .expect_err("Ada may not read Bo's timeline");
    assert_eq!(denied.code(), Code::PermissionDenied);
    // Let the admin's own sign-in arrive too.
    assert!(!timeline(&ch, &admin, "", 1).await?.is_empty());

    // Today, in UTC: Ada, Bo and the admin did something themselves (Bo's suspension was the
    // admin's act, not his).
    let day = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
    let engagement = ReportServiceClient::new(with(&ch, &admin))
        .get_engagement(apb::GetEngagementRequest {
            range: Some(apb::DateRange {
                start_date: day.clone(),
                end_date: day.clone(),
                time_zone: String::new(),
            }),
        })
        .await?
        .into_inner();
    let today = &engagement.days[0];
    assert_eq!((today.date.as_str(), today.daily_active_users, today.new_users), (day.as_str(), 3, 2));
    server.stop().await
}
