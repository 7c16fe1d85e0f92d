//! The analytics test stack: identity and profiles (the sources, emitting through their
//! outboxes) on one server, analytics on another that a test can stop and restart on the same
//! port and database. Real tokens throughout; SQLite and the in-process cache by default,
//! PostgreSQL and Redis with `TT_TEST_DATABASE_URL` / `TT_TEST_REDIS_URL`.

use std::{net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;
use tonic::transport::Channel;
use tt_analytics::Analytics;
use tt_common::{auth::Role, clock::ManualClock};
use tt_identity::Identity;
use tt_proto::{
    analytics::v1::{
        self as pb, admin_service_client::AdminServiceClient, event_service_client::EventServiceClient,
        ingest_service_client::IngestServiceClient, report_service_client::ReportServiceClient,
    },
    profiles::v1::profile_service_client::ProfileServiceClient,
};
use tt_testkit::{AuthedChannel, Bearer, Kit, TestDatabase, TestPlatform};
pub use tt_testkit::{Learner, assert_bad_fields, code};

pub struct Stack {
    /// Identity and profiles.
    pub sources: Kit,
    pub analytics_server: Option<Kit>,
    pub analytics_addr: SocketAddr,
    pub analytics: Arc<Analytics>,
    pub identity: Arc<Identity>,
    pub profiles: Arc<tt_profiles::Profiles>,
    pub clock: ManualClock,
    dashboard_ttl: String,
    analytics_db: Arc<TestDatabase>,
}

impl Stack {
    pub async fn start() -> Self {
        Self::with_dashboard_ttl("60s").await
    }

    pub async fn with_dashboard_ttl(ttl: &str) -> Self {
        let analytics_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let analytics_addr = analytics_listener.local_addr().expect("addr");
        let sources = TestPlatform::new()
            .module(&tt_profiles::MODULE)
            .knows(&tt_analytics::MODULE)
            .peer("analytics", &format!("http://{analytics_addr}"))
            .start()
            .await;
        let (identity, profiles, clock) = (sources.identity(), sources.module(), sources.clock.clone());
        let analytics_server = Self::analytics_platform(&sources, ttl, Arc::new(TestDatabase::new().await))
            .listener(analytics_listener)
            .start()
            .await;
        Stack {
            analytics: analytics_server.module::<Analytics>(),
            analytics_db: analytics_server.database("analytics"),
            analytics_server: Some(analytics_server),
            analytics_addr,
            sources,
            identity,
            profiles,
            clock,
            dashboard_ttl: ttl.to_owned(),
        }
    }

    /// Analytics alone, verifying tokens with the sources' identity, on `db`.
    fn analytics_platform(sources: &Kit, ttl: &str, db: Arc<TestDatabase>) -> TestPlatform {
        TestPlatform::new()
            .identity_at(&sources.url())
            .knows(&tt_profiles::MODULE)
            .module(&tt_analytics::MODULE)
            .set("analytics-dashboard-ttl", ttl)
            .clock(&sources.clock)
            .secret(&sources.secret)
            .cache(&sources.cache)
            .database("analytics", db)
    }

    /// Stops analytics (the sources keep running and keep their events in their outboxes).
    pub async fn stop_analytics(&mut self) {
        if let Some(server) = self.analytics_server.take() {
            server.stop().await;
        }
    }

    /// Starts analytics again on the same port and database (a fresh process's state).
    pub async fn restart_analytics(&mut self) {
        let listener = TcpListener::bind(self.analytics_addr).await.expect("rebind the same port");
        let server = Self::analytics_platform(&self.sources, &self.dashboard_ttl, self.analytics_db.clone())
            .listener(listener)
            .start()
            .await;
        self.analytics = server.module::<Analytics>();
        self.analytics_server = Some(server);
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
        ProfileServiceClient::new(self.sources.authed(token))
    }

    pub async fn learner(&self, name: &str) -> Learner {
        self.sources.learner(name).await
    }

    pub async fn admin_token(&self) -> String {
        self.sources.admin_token().await
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

/// Today's date (UTC) on the stack's clock, as YYYY-MM-DD.
pub fn today(clock: &ManualClock) -> String {
    use tt_common::clock::Clock;
    tt_analytics::domain::calendar::local_date(clock.now_ms(), &jiff::tz::TimeZone::UTC).to_string()
}

pub fn range(start: &str, end: &str, zone: &str) -> Option<pb::DateRange> {
    Some(pb::DateRange { start_date: start.into(), end_date: end.into(), time_zone: zone.into() })
}
