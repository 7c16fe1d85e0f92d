//! The analytics test stack: identity and profiles (the sources, emitting through their
//! outboxes) on one server, analytics on another that a test can stop and restart on the same
//! port and database. Real tokens throughout; SQLite and the in-process cache by default,
//! PostgreSQL and Redis with `TT_TEST_DATABASE_URL` / `TT_TEST_REDIS_URL`.

use std::{net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;
use tonic::{Code, transport::Channel};
use tt_analytics::{Analytics, config::AnalyticsArgs};
use tt_common::{
    auth::Role,
    cache::Cache,
    client::{Credentials, Peer, PeerOptions},
    clock::{ManualClock, SharedClock},
    config::ServerArgs,
    secrets::Secret,
    server::ServerBuilder,
    testing::{AuthedChannel, Bearer, TestDatabase, TestServer, test_cache},
};
use tt_identity::{Identity, config::IdentityArgs};
use tt_proto::{
    analytics::v1::{
        self as pb, admin_service_client::AdminServiceClient, event_service_client::EventServiceClient,
        ingest_service_client::IngestServiceClient, report_service_client::ReportServiceClient,
    },
    identity::v1::{self as ipb, auth_service_client::AuthServiceClient},
    profiles::v1::profile_service_client::ProfileServiceClient,
};

pub const ADMIN_EMAIL: &str = "root@example.com";
pub const ADMIN_PASSWORD: &str = "admin password for tests";
const PASSWORD: &str = "a perfectly fine passphrase";

pub struct Stack {
    /// Identity and profiles.
    pub sources: TestServer,
    pub analytics_server: Option<TestServer>,
    pub analytics_addr: SocketAddr,
    pub analytics: Arc<Analytics>,
    pub identity: Arc<Identity>,
    pub profiles: Arc<tt_profiles::Profiles>,
    pub clock: ManualClock,
    cache: Cache,
    secret: Secret,
    dashboard_ttl: String,
    analytics_db: TestDatabase,
    _dbs: (TestDatabase, TestDatabase),
}

/// A signed-in learner.
pub struct Learner {
    pub id: String,
    pub token: String,
}

impl Stack {
    pub async fn start() -> Self {
        Self::with_dashboard_ttl("60s").await
    }

    pub async fn with_dashboard_ttl(ttl: &str) -> Self {
        let (identity_db, profiles_db, analytics_db) =
            (TestDatabase::new().await, TestDatabase::new().await, TestDatabase::new().await);
        let clock = ManualClock::new();
        let shared: SharedClock = Arc::new(clock.clone());
        let secret = Secret::random().expect("secret");
        let cache = test_cache();
        let analytics_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let analytics_addr = analytics_listener.local_addr().expect("addr");

        let mut args = IdentityArgs::defaults();
        args.bootstrap_admin_email = ADMIN_EMAIL.into();
        args.bootstrap_admin_password = ADMIN_PASSWORD.into();
        args.signin_rate_per_minute = 10_000;
        args.analytics_url = format!("http://{analytics_addr}");
        let identity = tt_identity::run::build(identity_db.connect(), &cache, &secret, shared.clone(), args)
            .await
            .expect("identity");
        let profiles = tt_profiles::run::build(
            profiles_db.connect(),
            &cache,
            &secret,
            shared.clone(),
            &tt_common::config::defaults(),
        )
        .expect("profiles");
        let tokens = tt_identity::events::SelfIssued::new(identity.clone(), "profiles");
        let to_analytics = Peer::connect_lazy(
            PeerOptions::new(format!("http://{analytics_addr}")),
            Credentials::Service(tokens),
        )
        .expect("peer");
        let mut builder = ServerBuilder::new(ServerArgs::for_tests());
        builder.verifier(tt_identity::run::local_verifier(&identity, shared.clone()));
        tt_identity::register(&mut builder, identity.clone());
        tt_profiles::register(&mut builder, profiles.clone(), Some(to_analytics));
        let sources = TestServer::spawn(builder).await;

        let mut stack = Stack {
            sources,
            analytics_server: None,
            analytics_addr,
            analytics: build_analytics(&analytics_db, &cache, &secret, &clock, ttl),
            identity,
            profiles,
            clock,
            cache,
            secret,
            dashboard_ttl: ttl.to_owned(),
            analytics_db,
            _dbs: (identity_db, profiles_db),
        };
        stack.serve_analytics(analytics_listener).await;
        stack
    }

    async fn serve_analytics(&mut self, listener: TcpListener) {
        let shared: SharedClock = Arc::new(self.clock.clone());
        let mut builder = ServerBuilder::new(ServerArgs::for_tests());
        builder.verifier(tt_identity::run::local_verifier(&self.identity, shared));
        tt_analytics::register(&mut builder, self.analytics.clone());
        let server = TestServer::spawn_on(builder, listener);
        server.wait_serving("").await;
        self.analytics_server = Some(server);
    }

    /// Stops analytics (the sources keep running and keep their events in their outboxes).
    pub async fn stop_analytics(&mut self) {
        if let Some(server) = self.analytics_server.take() {
            server.stop().await;
        }
    }

    /// Starts analytics again on the same port and database (a fresh process's state).
    pub async fn restart_analytics(&mut self) {
        self.analytics =
            build_analytics(&self.analytics_db, &self.cache, &self.secret, &self.clock, &self.dashboard_ttl);
        let listener = TcpListener::bind(self.analytics_addr).await.expect("rebind the same port");
        self.serve_analytics(listener).await;
    }

    async fn analytics_channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.analytics_addr))
            .expect("url")
            .connect()
            .await
            .expect("connect to analytics")
    }

    async fn authed(&self, token: &str) -> AuthedChannel {
        tonic::service::interceptor::InterceptedService::new(
            self.analytics_channel().await,
            Bearer::new(token),
        )
    }

    pub async fn ingest(&self, token: &str) -> IngestServiceClient<AuthedChannel> {
        IngestServiceClient::new(self.authed(token).await)
    }
    pub async fn reports(&self, token: &str) -> ReportServiceClient<AuthedChannel> {
        ReportServiceClient::new(self.authed(token).await)
    }
    pub async fn events(&self, token: &str) -> EventServiceClient<AuthedChannel> {
        EventServiceClient::new(self.authed(token).await)
    }
    pub async fn admin(&self, token: &str) -> AdminServiceClient<AuthedChannel> {
        AdminServiceClient::new(self.authed(token).await)
    }
    pub fn profile(&self, token: &str) -> ProfileServiceClient<AuthedChannel> {
        let ch = tonic::transport::Endpoint::from_shared(self.sources.url()).expect("url").connect_lazy();
        ProfileServiceClient::new(tonic::service::interceptor::InterceptedService::new(
            ch,
            Bearer::new(token),
        ))
    }

    fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(
            tonic::transport::Endpoint::from_shared(self.sources.url()).expect("url").connect_lazy(),
        )
    }

    pub async fn learner(&self, name: &str) -> Learner {
        let r = self
            .auth()
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
        self.auth()
            .login(ipb::LoginRequest { email: ADMIN_EMAIL.into(), password: ADMIN_PASSWORD.into() })
            .await
            .expect("admin login")
            .into_inner()
            .tokens
            .expect("tokens")
            .access_token
    }

    /// A service token, as a source's relay (or a bulk loader) holds.
    pub async fn service_token(&self) -> String {
        self.identity
            .access_token("loader", &[Role::Service], None, std::time::Duration::from_secs(600))
            .await
            .expect("service token")
            .0
    }

    /// Waits (up to 20 s) until analytics stored `n` events about `user` (through its own
    /// timeline as an admin).
    pub async fn wait_for_events(
        &self,
        admin: &str,
        user: &str,
        n: usize,
    ) -> Vec<tt_proto::common::v1::Event> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let events = self.timeline(admin, user).await;
            if events.len() >= n || std::time::Instant::now() > deadline {
                return events;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Every event about `user`, newest first (all pages).
    pub async fn timeline(&self, token: &str, user: &str) -> Vec<tt_proto::common::v1::Event> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .events(token)
                .await
                .list_timeline_events(pb::ListTimelineEventsRequest {
                    user_id: user.into(),
                    page_size: 100,
                    page_token,
                    types: vec![],
                })
                .await
                .expect("timeline")
                .into_inner();
            out.extend(page.events);
            if page.next_page_token.is_empty() {
                return out;
            }
            page_token = page.next_page_token;
        }
    }
}

fn build_analytics(
    db: &TestDatabase,
    cache: &Cache,
    secret: &Secret,
    clock: &ManualClock,
    ttl: &str,
) -> Arc<Analytics> {
    let mut args: AnalyticsArgs = tt_common::config::defaults();
    args.analytics_dashboard_ttl = ttl.parse().expect("duration");
    let shared: SharedClock = Arc::new(clock.clone());
    tt_analytics::run::build(db.connect(), cache, secret, shared, &args)
}

/// Today's date (UTC) on the stack's clock, as YYYY-MM-DD.
pub fn today(clock: &ManualClock) -> String {
    use tt_common::clock::Clock;
    tt_analytics::domain::calendar::local_date(clock.now_ms(), &jiff::tz::TimeZone::UTC).to_string()
}

pub fn range(start: &str, end: &str, zone: &str) -> Option<pb::DateRange> {
    Some(pb::DateRange { start_date: start.into(), end_date: end.into(), time_zone: zone.into() })
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
