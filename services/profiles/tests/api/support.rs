//! The profiles test stack: identity (for real tokens and deletions) and profiles on fresh
//! databases, one per-test cache prefix, a clock the test moves.

use std::sync::Arc;

use tonic::{Code, transport::Channel};
use tt_common::{
    clock::{ManualClock, SharedClock},
    config::ServerArgs,
    secrets::Secret,
    server::ServerBuilder,
    testing::{AuthedChannel, Bearer, TestDatabase, TestServer, test_cache},
};
use tt_identity::{Identity, config::IdentityArgs};
use tt_profiles::{Profiles, config::ProfilesArgs};
use tt_proto::{
    identity::v1::{
        self as ipb, admin_service_client::AdminServiceClient, auth_service_client::AuthServiceClient,
    },
    profiles::v1::{
        self as pb, assessment_service_client::AssessmentServiceClient,
        experience_service_client::ExperienceServiceClient, goal_service_client::GoalServiceClient,
        integration_service_client::IntegrationServiceClient, profile_service_client::ProfileServiceClient,
        skill_service_client::SkillServiceClient,
    },
};

pub const ADMIN_EMAIL: &str = "root@example.com";
pub const ADMIN_PASSWORD: &str = "admin password for tests";
const PASSWORD: &str = "a perfectly fine passphrase";

pub struct Stack {
    pub server: TestServer,
    pub identity: Arc<Identity>,
    pub profiles: Arc<Profiles>,
    pub clock: ManualClock,
    pub channel: Channel,
    _dbs: (TestDatabase, TestDatabase),
}

/// A signed-in learner.
pub struct Learner {
    pub id: String,
    pub token: String,
}

impl Stack {
    pub async fn start() -> Self {
        Self::with_cache_ttl("5m").await
    }

    /// `ttl` "0s" turns profiles' view cache off.
    pub async fn with_cache_ttl(ttl: &str) -> Self {
        let (identity_db, profiles_db) = (TestDatabase::new().await, TestDatabase::new().await);
        let clock = ManualClock::new();
        let shared: SharedClock = Arc::new(clock.clone());
        let secret = Secret::random().expect("secret");
        let cache = test_cache();
        let mut args = IdentityArgs::defaults();
        args.bootstrap_admin_email = ADMIN_EMAIL.into();
        args.bootstrap_admin_password = ADMIN_PASSWORD.into();
        args.signin_rate_per_minute = 10_000;
        let identity = tt_identity::run::build(identity_db.connect(), &cache, &secret, shared.clone(), args)
            .await
            .expect("identity");
        let mut profile_args: ProfilesArgs = tt_common::config::defaults();
        profile_args.profiles_cache_ttl = ttl.parse().expect("duration");
        let profiles =
            tt_profiles::run::build(profiles_db.connect(), &cache, &secret, shared.clone(), &profile_args)
                .expect("profiles");
        let mut builder = ServerBuilder::new(ServerArgs::for_tests());
        builder.verifier(tt_identity::run::local_verifier(&identity, shared));
        tt_identity::register(&mut builder, identity.clone());
        tt_profiles::register(&mut builder, profiles.clone(), None);
        let server = TestServer::spawn(builder).await;
        let channel = server.channel().await;
        Stack { server, identity, profiles, clock, channel, _dbs: (identity_db, profiles_db) }
    }

    fn authed(&self, token: &str) -> AuthedChannel {
        tonic::service::interceptor::InterceptedService::new(self.channel.clone(), Bearer::new(token))
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
        let r = AuthServiceClient::new(self.channel.clone())
            .register(ipb::RegisterRequest {
                email: format!("{name}@example.com"),
                password: PASSWORD.into(),
                display_name: name.into(),
            })
            .await
            .expect("register")
            .into_inner();
        Learner { id: r.user.expect("user").id, token: r.tokens.expect("tokens").access_token }
    }

    pub async fn admin_token(&self) -> String {
        AuthServiceClient::new(self.channel.clone())
            .login(ipb::LoginRequest { email: ADMIN_EMAIL.into(), password: ADMIN_PASSWORD.into() })
            .await
            .expect("admin login")
            .into_inner()
            .tokens
            .expect("tokens")
            .access_token
    }

    /// A service token (a service account made by the admin).
    pub async fn service_token(&self) -> String {
        let admin = self.admin_token().await;
        let created = self
            .admin(&admin)
            .create_service_account(ipb::CreateServiceAccountRequest {
                name: "missions".into(),
                description: String::new(),
            })
            .await
            .expect("service account")
            .into_inner();
        AuthServiceClient::new(self.channel.clone())
            .issue_service_token(ipb::IssueServiceTokenRequest {
                client_id: created.service_account.expect("account").id,
                client_secret: created.client_secret,
            })
            .await
            .expect("service token")
            .into_inner()
            .access_token
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

pub fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() })
}

/// Asserts an INVALID_ARGUMENT naming exactly `fields` (in any order).
pub fn assert_bad_fields(result: Result<impl std::fmt::Debug, tonic::Status>, fields: &[&str]) {
    let status = result.expect_err("should be refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let mut got = tt_common::error::bad_fields(&status);
    got.sort();
    let mut want: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
    want.sort();
    assert_eq!(got, want, "{status:?}");
}

pub fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> Code {
    result.expect_err("should fail").code()
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
