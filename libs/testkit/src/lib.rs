//! The shared test kit (a dev-dependency only: production builds carry no test code).
//!
//! - [`kit`]: [`TestPlatform`] starts identity and the modules a test asks for through the
//!   platform's real assembly and gives learners, admins, service tokens, channels for typed
//!   clients and the error assertions;
//! - a fresh database per test (a SQLite file, or a new PostgreSQL database when
//!   `TT_TEST_DATABASE_URL` is set) and a cache scoped by a unique key prefix (Redis when
//!   `TT_TEST_REDIS_URL` is set, in-process otherwise): this is the one place tests read the
//!   environment;
//! - [`servers`] starts private Redis and PostgreSQL servers for fault tests; [`hostile`]
//!   generates hostile requests from descriptors.

pub mod hostile;
pub mod kit;
pub mod servers;

pub use kit::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Kit, Learner, PASSWORD, TestPlatform, assert_bad_fields, code, fields, mask,
    service_account,
};

use tt_common::{
    cache::{Cache, RedisOptions},
    storage::{Database, DatabaseOptions},
};

/// A database that exists for one test.
pub struct TestDatabase {
    pub url: String,
    /// Keeps the SQLite directory alive.
    _dir: Option<tempfile::TempDir>,
    /// (server URL, database name) to drop afterwards.
    postgres: Option<(String, String)>,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase").field("url", &self.url).finish()
    }
}

impl TestDatabase {
    /// A fresh, empty database of the configured kind.
    pub async fn new() -> Self {
        match std::env::var("TT_TEST_DATABASE_URL") {
            Ok(server) if !server.is_empty() => Self::postgres(server).await,
            _ => {
                let dir = tempfile::tempdir().expect("temp dir for the test database");
                let url = Database::sqlite_url(&dir.path().join("test.db"));
                Self { url, _dir: Some(dir), postgres: None }
            }
        }
    }

    /// A fresh database on the PostgreSQL server at `server` (any database URL there), dropped
    /// with the value (the load generator's scratch databases).
    pub async fn postgres(server: String) -> Self {
        use sqlx::Connection;
        let name = format!("tt_test_{}", tt_common::new_id().replace('-', ""));
        let mut conn =
            sqlx::PgConnection::connect(&server).await.expect("TT_TEST_DATABASE_URL must reach PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let _ = conn.close().await;
        let url = with_database(&server, &name);
        Self { url, _dir: None, postgres: Some((server, name)) }
    }

    /// A lazily connected pool on this database.
    pub fn connect(&self) -> Database {
        Database::connect_lazy(&DatabaseOptions::new(self.url.clone())).expect("test pool")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((server, name)) = self.postgres.take() {
            // Dropped from a plain thread: Drop may run inside or outside a runtime.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    return;
                };
                rt.block_on(async move {
                    use sqlx::Connection;
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                    }
                });
            })
            .join();
        }
    }
}

/// Replaces the database name in a PostgreSQL URL.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = server.split_once('?').map_or((server, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// A cache for one test, under a prefix no other test uses.
pub fn test_cache() -> Cache {
    let prefix = format!("tt-test:{}:", tt_common::new_id());
    match std::env::var("TT_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            Cache::redis_near(&RedisOptions::new(url), &prefix, tt_common::cache::NEAR_CAPACITY)
                .expect("TT_TEST_REDIS_URL must be a redis URL")
        }
        _ => Cache::memory(10_000, &prefix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_database_names() {
        assert_eq!(with_database("postgres://u@h:5432/test", "x"), "postgres://u@h:5432/x");
        assert_eq!(
            with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}

/// A server running on 127.0.0.1:0 for one test; shut down when dropped.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    shutdown: tt_common::server::Shutdown,
    handle: Option<tokio::task::JoinHandle<Result<(), tt_common::server::ServeError>>>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer").field("addr", &self.addr).finish()
    }
}

impl TestServer {
    /// Binds a free port, serves `builder` and waits until overall health is SERVING.
    pub async fn spawn(builder: tt_common::server::ServerBuilder) -> Self {
        let server = Self::spawn_unready(builder).await;
        server.wait_serving("").await;
        server
    }

    /// Binds a free port and serves `builder` without waiting for readiness.
    pub async fn spawn_unready(builder: tt_common::server::ServerBuilder) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        Self::spawn_on(builder, listener)
    }

    /// Serves `builder` on a listener the test bound itself (to know the URL before building
    /// the services, or to restart a server on the same port), without waiting for readiness.
    pub fn spawn_on(builder: tt_common::server::ServerBuilder, listener: tokio::net::TcpListener) -> Self {
        let addr = listener.local_addr().expect("local addr");
        let shutdown = tt_common::server::Shutdown::new();
        let handle = tokio::spawn(builder.serve(listener, shutdown.clone()));
        Self { addr, shutdown, handle: Some(handle) }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client channel to the server.
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connect to the test server")
    }

    /// Polls grpc.health.v1 until `service` is SERVING (at most 20 s).
    pub async fn wait_serving(&self, service: &str) {
        assert!(wait_serving(&self.url(), service).await, "server never became SERVING");
    }

    /// Triggers shutdown and waits for the server to stop.
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
    }

    pub fn shutdown_handle(&self) -> tt_common::server::Shutdown {
        self.shutdown.clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Polls grpc.health.v1 at `url` until `service` is SERVING; false after 20 s.
pub async fn wait_serving(url: &str, service: &str) -> bool {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Ok(endpoint) = tonic::transport::Endpoint::from_shared(url.to_owned())
            && let Ok(ch) = endpoint.connect().await
            && let Ok(reply) =
                HealthClient::new(ch).check(HealthCheckRequest { service: service.to_owned() }).await
            && reply.into_inner().status == ServingStatus::Serving as i32
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

/// A client interceptor that sends `authorization: Bearer <token>`.
#[derive(Debug, Clone, Default)]
pub struct Bearer(pub Option<String>);

impl Bearer {
    pub fn new(token: impl Into<String>) -> Self {
        Self(Some(token.into()))
    }

    pub fn none() -> Self {
        Self(None)
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| tonic::Status::invalid_argument("token is not a header value"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// A channel wrapped with a bearer token.
pub type AuthedChannel = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>;
