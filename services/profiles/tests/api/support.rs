//! The profiles test stack: identity (for real tokens and deletions) and profiles on fresh
//! databases, one per-test cache prefix, a clock the test moves.

use std::sync::Arc;

use tt_common::clock::ManualClock;
use tt_identity::Identity;
use tt_profiles::Profiles;
use tt_proto::{
    identity::v1::admin_service_client::AdminServiceClient,
    profiles::v1::{
        self as pb, assessment_service_client::AssessmentServiceClient,
        experience_service_client::ExperienceServiceClient, goal_service_client::GoalServiceClient,
        integration_service_client::IntegrationServiceClient, profile_service_client::ProfileServiceClient,
        skill_service_client::SkillServiceClient,
    },
};
use tt_testkit::{AuthedChannel, Kit, TestPlatform};
pub use tt_testkit::{Learner, assert_bad_fields, code, mask};

pub struct Stack {
    pub kit: Kit,
    pub identity: Arc<Identity>,
    pub profiles: Arc<Profiles>,
    pub clock: ManualClock,
}

impl Stack {
    pub async fn start() -> Self {
        Self::with_cache_ttl("5m").await
    }

    /// `ttl` "0s" turns profiles' view cache off.
    pub async fn with_cache_ttl(ttl: &str) -> Self {
        Self::on(TestPlatform::new().module(&tt_profiles::MODULE).set("profiles-cache-ttl", ttl)).await
    }

    /// Identity's deletions wait in its outbox (no relay to profiles runs) until a test
    /// delivers them.
    pub async fn holding_deletions() -> Self {
        Self::on(TestPlatform::new().module(&tt_profiles::MODULE).peer("profiles", "")).await
    }

    async fn on(platform: TestPlatform) -> Self {
        let kit = platform.start().await;
        Stack { identity: kit.identity(), profiles: kit.module::<Profiles>(), clock: kit.clock.clone(), kit }
    }

    fn authed(&self, token: &str) -> AuthedChannel {
        self.kit.authed(token)
    }

    pub fn profile(&self, token: &str) -> ProfileServiceClient<AuthedChannel> {
        ProfileServiceClient::new(self.authed(token))
    }
    pub fn goals(&self, token: &str) -> GoalServiceClient<AuthedChannel> {
        GoalServiceClient::new(self.authed(token))
    }
    pub fn assessment(&self, token: &str) -> AssessmentServiceClient<AuthedChannel> {
        AssessmentServiceClient::new(self.authed(token))
    }
    pub fn experience(&self, token: &str) -> ExperienceServiceClient<AuthedChannel> {
        ExperienceServiceClient::new(self.authed(token))
    }
    pub fn skills(&self, token: &str) -> SkillServiceClient<AuthedChannel> {
        SkillServiceClient::new(self.authed(token))
    }
    pub fn integration(&self, token: &str) -> IntegrationServiceClient<AuthedChannel> {
        IntegrationServiceClient::new(self.authed(token))
    }
    pub fn admin(&self, token: &str) -> AdminServiceClient<AuthedChannel> {
        AdminServiceClient::new(self.authed(token))
    }

    pub async fn learner(&self, name: &str) -> Learner {
        self.kit.learner(name).await
    }

    pub async fn admin_token(&self) -> String {
        self.kit.admin_token().await
    }

    /// A service token (a service account made by the admin).
    pub async fn service_token(&self) -> String {
        self.kit.service_token().await
    }

    pub async fn get_profile(&self, who: &Learner) -> pb::Profile {
        self.profile(&who.token)
            .get_profile(pb::GetProfileRequest::default())
            .await
            .expect("get profile")
            .into_inner()
            .profile
            .expect("profile")
    }

    pub async fn completion(&self, who: &Learner) -> pb::Completion {
        self.profile(&who.token)
            .get_completion(pb::GetCompletionRequest::default())
            .await
            .expect("completion")
            .into_inner()
            .completion
            .expect("completion")
    }
}

pub fn goal(kind: pb::GoalKind, title: &str) -> pb::Goal {
    pb::Goal { kind: kind.into(), title: title.into(), ..Default::default() }
}

pub fn position(title: &str, start: (i32, i32), end: Option<(i32, i32)>) -> pb::Position {
    pb::Position {
        title: title.into(),
        organization: "Acme".into(),
        start: Some(pb::YearMonth { year: start.0, month: start.1 }),
        end: end.map(|(year, month)| pb::YearMonth { year, month }),
        current: end.is_none(),
        ..Default::default()
    }
}
