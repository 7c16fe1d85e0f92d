//! The identity test stack: identity on a fresh database (SQLite, or PostgreSQL when
//! `TT_TEST_DATABASE_URL` is set) and a per-test cache prefix (Redis when `TT_TEST_REDIS_URL` is
//! set), served by the real server builder on 127.0.0.1:0, with a clock the test moves.

use std::sync::Arc;

use tonic::transport::Channel;
use tt_common::clock::ManualClock;
use tt_identity::Identity;
use tt_proto::identity::v1::{
    self as pb, account_service_client::AccountServiceClient, admin_service_client::AdminServiceClient,
    auth_service_client::AuthServiceClient, settings_service_client::SettingsServiceClient,
};
pub use tt_testkit::{ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, fields};
use tt_testkit::{AuthedChannel, Kit, TestPlatform};

pub struct Stack {
    kit: Kit,
    pub identity: Arc<Identity>,
    pub clock: ManualClock,
    pub channel: Channel,
}

/// Builds a stack with identity's settings adjusted.
pub struct StackBuilder {
    platform: TestPlatform,
}

impl StackBuilder {
    pub fn signin_rate(mut self, per_minute: u32) -> Self {
        self.platform = self.platform.set("signin-rate-per-minute", &per_minute.to_string());
        self
    }

    pub async fn start(self) -> Stack {
        let kit = self.platform.start().await;
        Stack { identity: kit.identity(), clock: kit.clock.clone(), channel: kit.channel.clone(), kit }
    }
}

impl Stack {
    pub fn builder() -> StackBuilder {
        StackBuilder { platform: TestPlatform::new().set("signin-rate-per-minute", "1000") }
    }

    pub async fn start() -> Self {
        Self::builder().start().await
    }

    pub fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel.clone())
    }

    fn authed(&self, token: Option<&str>) -> AuthedChannel {
        token.map_or_else(|| self.kit.anonymous(), |t| self.kit.authed(t))
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
        self.kit.admin_token().await
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
