//! The matching test stack: identity (real tokens, deletions), profiles (the learner views
//! matching reads over gRPC) and matching, on fresh databases, a clock the test moves.

use std::sync::Arc;

use tt_matching::Matching;
use tt_profiles::Profiles;
use tt_proto::{
    identity::v1::admin_service_client::AdminServiceClient as IdentityAdminClient,
    matching::v1::{
        self as pb, admin_service_client::AdminServiceClient, match_service_client::MatchServiceClient,
        mentor_service_client::MentorServiceClient, mentorship_service_client::MentorshipServiceClient,
    },
    profiles::v1::{self as ppb, goal_service_client::GoalServiceClient},
};
use tt_testkit::{AuthedChannel, Kit, TestPlatform};
pub use tt_testkit::{Learner, assert_bad_fields, code, mask};

pub struct Stack {
    pub kit: Kit,
    pub matching: Arc<Matching>,
    pub profiles: Arc<Profiles>,
}

impl Stack {
    pub async fn start() -> Self {
        Self::on(TestPlatform::new().module(&tt_profiles::MODULE).module(&tt_matching::MODULE)).await
    }

    /// Events for matching (profiles' change notices, identity's deletions) wait in their
    /// outboxes until a test delivers them ([`Stack::deliver_to_matching`]).
    pub async fn holding_events() -> Self {
        Self::on(
            TestPlatform::new()
                .module(&tt_profiles::MODULE)
                .module(&tt_matching::MODULE)
                .peer("matching", ""),
        )
        .await
    }

    async fn on(platform: TestPlatform) -> Self {
        let kit = platform.start().await;
        Stack { matching: kit.module::<Matching>(), profiles: kit.module::<Profiles>(), kit }
    }

    /// Delivers what profiles' outbox holds for matching; how many events went.
    pub async fn deliver_profiles_notices(&self) -> usize {
        let store = &self.profiles.store;
        let outbox = tt_common::outbox::Outbox::new(tt_common::platform::routes(&[&tt_profiles::MODULE]));
        let relay = self
            .kit
            .platform
            .relay("profiles", store.db().clone(), &outbox, "matching", &self.kit.url())
            .expect("relay")
            .expect("matching consumes profiles' notices");
        relay.deliver_pending().await.expect("delivered")
    }

    fn authed(&self, token: &str) -> AuthedChannel {
        self.kit.authed(token)
    }

    pub fn mentors(&self, token: &str) -> MentorServiceClient<AuthedChannel> {
        MentorServiceClient::new(self.authed(token))
    }
    pub fn matches(&self, token: &str) -> MatchServiceClient<AuthedChannel> {
        MatchServiceClient::new(self.authed(token))
    }
    pub fn mentorships(&self, token: &str) -> MentorshipServiceClient<AuthedChannel> {
        MentorshipServiceClient::new(self.authed(token))
    }
    pub fn admin(&self, token: &str) -> AdminServiceClient<AuthedChannel> {
        AdminServiceClient::new(self.authed(token))
    }
    pub fn identity_admin(&self, token: &str) -> IdentityAdminClient<AuthedChannel> {
        IdentityAdminClient::new(self.authed(token))
    }
    pub fn goals(&self, token: &str) -> GoalServiceClient<AuthedChannel> {
        GoalServiceClient::new(self.authed(token))
    }

    pub async fn learner(&self, name: &str) -> Learner {
        self.kit.learner(name).await
    }

    /// Learner `name` (`id`) signed in again: a fresh access token, after the clock moved past
    /// the old one's.
    pub async fn sign_in(&self, name: &str, id: &str) -> Learner {
        let tokens = self
            .kit
            .auth()
            .login(tt_proto::identity::v1::LoginRequest {
                email: format!("{name}@example.com"),
                password: tt_testkit::PASSWORD.into(),
            })
            .await
            .expect("login")
            .into_inner()
            .tokens
            .expect("tokens");
        Learner { id: id.to_owned(), token: tokens.access_token }
    }

    pub async fn admin_token(&self) -> String {
        self.kit.admin_token().await
    }

    pub async fn service_token(&self) -> String {
        self.kit.service_token().await
    }

    /// Every match of `who` (one page of 50).
    pub async fn find(&self, who: &Learner, request: pb::FindMatchesRequest) -> pb::FindMatchesResponse {
        self.matches(&who.token)
            .find_matches(pb::FindMatchesRequest { page_size: 50, ..request })
            .await
            .expect("matches")
            .into_inner()
    }

    /// Gives `who` an active goal in `field` naming `skills`.
    pub async fn add_goal(&self, who: &Learner, field: &str, skills: &[&str]) {
        let goal = ppb::Goal {
            kind: ppb::GoalKind::ShortTerm.into(),
            title: format!("grow in {field}"),
            target_role: format!("{field} engineer"),
            target_field: field.into(),
            priority: 1,
            skill_ids: skills.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        self.goals(&who.token)
            .create_goal(ppb::CreateGoalRequest { goal: Some(goal), request_id: String::new() })
            .await
            .expect("goal");
    }

    pub async fn choose(&self, who: &Learner, mentor_id: &str) -> pb::Mentorship {
        self.mentorships(&who.token)
            .choose_mentor(pb::ChooseMentorRequest { mentor_id: mentor_id.into(), request_id: String::new() })
            .await
            .expect("chosen")
            .into_inner()
            .mentorship
            .expect("mentorship")
    }
}

/// The mentor ids of `matches`, in their order.
pub fn ids(matches: &[pb::Match]) -> Vec<String> {
    matches.iter().map(|m| m.mentor.as_ref().expect("mentor").mentor_id.clone()).collect()
}
