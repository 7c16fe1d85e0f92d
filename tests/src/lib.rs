//! Cross-service end-to-end support and the load generator's building blocks.
//!
//! - [`echo`]: the bare tonic echo service, the baseline every performance figure is a ratio of;
//! - [`AllInOne`]: the all-in-one server started in this process on 127.0.0.1:0;
//! - [`raw`]: a pass-through codec for calling any method by path (the authorization matrix);
//! - [`analytics_load`]: synthetic events, the direct-INSERT baseline and streaming ingestion;
//! - [`bench_catalog`]: a synthetic mentor catalog of any size (large-catalog FindMatches).

pub mod analytics_load;
pub mod bench_catalog;
pub mod echo;
pub mod fixtures;
pub mod load;
pub mod raw;

use std::{net::SocketAddr, path::PathBuf};

use tonic::transport::Channel;
use tt_common::server::Shutdown;

/// Generated code of the test-only protos.
pub mod pb {
    pub mod loadtest {
        tonic::include_proto!("timetravelers.loadtest.v1");

        /// Encoded descriptors of the echo service, for reflection.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/echo.descriptor.bin"));
    }
    pub mod reflection_v1 {
        tonic::include_proto!("grpc.reflection.v1");
    }
    pub mod reflection_v1alpha {
        tonic::include_proto!("grpc.reflection.v1alpha");
    }
}

/// The admin password the in-process all-in-one is started with.
pub const ADMIN_PASSWORD: &str = "e2e admin passphrase";
pub const ADMIN_EMAIL: &str = "admin@timetravelers.local";

/// The all-in-one server running in this process.
pub struct AllInOne {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    shutdown: Shutdown,
    handle: tokio::task::JoinHandle<Result<(), String>>,
    _dir: Option<tempfile::TempDir>,
    _databases: Vec<tt_testkit::TestDatabase>,
}

impl std::fmt::Debug for AllInOne {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AllInOne").field("addr", &self.addr).finish()
    }
}

impl AllInOne {
    /// Starts on a fresh data directory and waits for SERVING.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().to_path_buf();
        let mut me = Self::start_in(path, |_| {}).await?;
        me._dir = Some(dir);
        Ok(me)
    }

    /// Starts on `data_dir` (kept), with `tune` applied to the test configuration.
    pub async fn start_in(
        data_dir: PathBuf,
        tune: impl FnOnce(&mut timetravelers::Config),
    ) -> anyhow::Result<Self> {
        let (config, listener, addr) = Self::configure(data_dir.clone(), tune).await?;
        let (_, assembled) = timetravelers::start(config, addr).await?;
        Self::serve(assembled, listener, data_dir, Vec::new()).await
    }

    /// Starts on a fresh database per service of the configured kind (PostgreSQL when
    /// `TT_TEST_DATABASE_URL` is set) and the test cache (Redis when `TT_TEST_REDIS_URL` is).
    pub async fn start_isolated() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (config, listener, addr) = Self::configure(dir.path().to_path_buf(), |_| {}).await?;
        let mut databases = Vec::new();
        for name in timetravelers::MODULES.iter().map(|m| m.manifest().name) {
            databases.push((name, tt_testkit::TestDatabase::new().await));
        }
        let open = |name: &str| {
            databases.iter().find(|(n, _)| *n == name).map(|(_, db)| db.connect()).ok_or_else(|| {
                tt_common::config::ConfigError::new("modules", format!("no test database for {name}")).into()
            })
        };
        let cache = tt_testkit::test_cache();
        let (_, assembled) = timetravelers::start_with(config, addr, &open, cache).await?;
        let databases = databases.into_iter().map(|(_, db)| db).collect();
        let mut me = Self::serve(assembled, listener, dir.path().to_path_buf(), databases).await?;
        me._dir = Some(dir);
        Ok(me)
    }

    async fn configure(
        data_dir: PathBuf,
        tune: impl FnOnce(&mut timetravelers::Config),
    ) -> anyhow::Result<(timetravelers::Config, tokio::net::TcpListener, SocketAddr)> {
        let mut config = timetravelers::Config::for_tests(data_dir);
        config.set("bootstrap-admin-password", ADMIN_PASSWORD).set("signin-rate-per-minute", "100000");
        tune(&mut config);
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        Ok((config, listener, addr))
    }

    async fn serve(
        assembled: tt_common::platform::Assembled,
        listener: tokio::net::TcpListener,
        data_dir: PathBuf,
        databases: Vec<tt_testkit::TestDatabase>,
    ) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let shutdown = Shutdown::new();
        let serving = assembled.serve(listener, shutdown.clone());
        let handle = tokio::spawn(async move { serving.await.map_err(|e| e.to_string()) });
        let me = Self { addr, data_dir, shutdown, handle, _dir: None, _databases: databases };
        me.wait_serving().await?;
        Ok(me)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(tonic::transport::Endpoint::from_shared(self.url())?.connect().await?)
    }

    async fn wait_serving(&self) -> anyhow::Result<()> {
        if tt_testkit::wait_serving(&self.url(), "").await {
            Ok(())
        } else {
            anyhow::bail!("the all-in-one server never became SERVING")
        }
    }

    /// Stops the server (drain and grace as configured) and waits for it.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        self.handle.await?.map_err(anyhow::Error::msg)
    }
}
