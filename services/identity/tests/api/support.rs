//! The identity test stack: identity on a fresh database (SQLite, or PostgreSQL when
//! `TT_TEST_DATABASE_URL` is set) and a per-test cache prefix (Redis when `TT_TEST_REDIS_URL` is
//! set), served by the real server builder on 127.0.0.1:0, with a clock the test moves.

use std::sync::Arc;

use tonic::transport::Channel;
use tt_common::{
    clock::{ManualClock, SharedClock},
    config::ServerArgs,
    secrets::Secret,
    server::ServerBuilder,
    testing::{AuthedChannel, Bearer, TestDatabase, TestServer, test_cache},
};
use tt_identity::{Identity, config::IdentityArgs};
use tt_proto::identity::v1::{
    self as pb, account_service_client::AccountServiceClient, admin_service_client::AdminServiceClient,
    auth_service_client::AuthServiceClient, settings_service_client::SettingsServiceClient,
};

pub const ADMIN_EMAIL: &str = "root@example.com";
pub const ADMIN_PASSWORD: &str = "admin password for tests";
pub const PASSWORD: &str = "a perfectly fine passphrase";

pub struct Stack {
    _server: TestServer,
    pub identity: Arc<Identity>,
    pub clock: ManualClock,
    pub channel: Channel,
    _db: TestDatabase,
}

/// Builds a stack; `tune` adjusts identity's settings first.
pub struct StackBuilder {
    args: IdentityArgs,
}

impl StackBuilder {
    pub fn signin_rate(mut self, per_minute: u32) -> Self {
        self.args.signin_rate_per_minute = per_minute;
        self
    }

    pub async fn start(self) -> Stack {
        let db = TestDatabase::new().await;
        let clock = ManualClock::new();
        let shared: SharedClock = Arc::new(clock.clone());
        let secret = Secret::random().expect("secret");
        let identity =
            tt_identity::run::build(db.connect(), &test_cache(), &secret, shared.clone(), self.args)
                .await
                .expect("identity");
        let mut builder = ServerBuilder::new(ServerArgs::for_tests());
        builder.verifier(tt_identity::run::local_verifier(&identity, shared));
        tt_identity::register(&mut builder, identity.clone());
        let server = TestServer::spawn(builder).await;
        let channel = server.channel().await;
        Stack { _server: server, identity, clock, channel, _db: db }
    }
}

impl Stack {
    pub fn builder() -> StackBuilder {
        let mut args = IdentityArgs::defaults();
        args.bootstrap_admin_email = ADMIN_EMAIL.into();
        args.bootstrap_admin_password = ADMIN_PASSWORD.into();
        args.signin_rate_per_minute = 1000;
        StackBuilder { args }
    }

    pub async fn start() -> Self {
        Self::builder().start().await
    }

    pub fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel.clone())
    }

    fn authed(&self, token: Option<&str>) -> AuthedChannel {
        tonic::service::interceptor::InterceptedService::new(
            self.channel.clone(),
            Bearer(token.map(str::to_owned)),
        )
    }

    pub fn account(&self, token: &str) -> AccountServiceClient<AuthedChannel> {
        AccountServiceClient::new(self.authed(Some(token)))
    }

    pub fn admin(&self, token: &str) -> AdminServiceClient<AuthedChannel> {
        AdminServiceClient::new(self.authed(Some(token)))
    }

    pub fn settings(&self, token: &str) -> SettingsServiceClient<AuthedChannel> {
        SettingsServiceClient::new(self.authed(Some(token)))
    }

    /// Registers `email` with [`PASSWORD`].
    pub async fn register(&self, email: &str) -> (pb::User, pb::TokenPair) {
        let r = self
            .auth()
            .register(pb::RegisterRequest {
                email: email.into(),
                password: PASSWORD.into(),
                display_name: String::new(),
            })
            .await
            .expect("register")
            .into_inner();
        (r.user.expect("user"), r.tokens.expect("tokens"))
    }

    pub async fn login(&self, email: &str, password: &str) -> Result<pb::LoginResponse, tonic::Status> {
        self.auth()
            .login(pb::LoginRequest { email: email.into(), password: password.into() })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Exchanges a refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<pb::TokenPair, tonic::Status> {
        self.auth()
            .refresh_token(pb::RefreshTokenRequest { refresh_token: refresh_token.into() })
            .await
            .map(|r| r.into_inner().tokens.unwrap_or_default())
    }

    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .expect("admin login")
            .tokens
            .expect("tokens")
            .access_token
    }

    pub async fn audit_types(&self, subject: &str) -> Vec<String> {
        let token = self.admin_token().await;
        self.admin(&token)
            .list_audit_events(pb::ListAuditEventsRequest {
                page_size: 100,
                subject: subject.into(),
                ..Default::default()
            })
            .await
            .expect("audit")
            .into_inner()
            .events
            .into_iter()
            .map(|e| e.r#type)
            .collect()
    }
}

/// The fields a status's BadRequest names, sorted.
pub fn fields(status: &tonic::Status) -> Vec<String> {
    let mut f = tt_common::error::bad_fields(status);
    f.sort();
    f
}
