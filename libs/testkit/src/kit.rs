//! The platform for one test: identity and the modules the test asks for, mounted by the real
//! assembly on 127.0.0.1, each on a fresh database (SQLite, or PostgreSQL with
//! `TT_TEST_DATABASE_URL`), one cache under a prefix of its own (Redis with
//! `TT_TEST_REDIS_URL`), a clock the test moves, and real tokens.
//!
//! ```text
//! let kit = TestPlatform::new().module(&tt_profiles::MODULE).set("profiles-cache-ttl", "0s").start().await;
//! let ann = kit.learner("ann").await;
//! let profile = ProfileServiceClient::new(kit.authed(&ann.token)).get_profile(..).await;
//! ```

use std::{
    collections::BTreeMap,
    ffi::OsString,
    sync::{Arc, OnceLock},
};

use tokio::net::TcpListener;
use tonic::{Code, Status, transport::Channel};
use tt_common::{
    cache::Cache,
    clock::{ManualClock, SharedClock},
    config::{ServerArgs, TokenArgs},
    platform::{Assembly, Definition, Module, Modules, Platform, assemble},
    secrets::Secret,
};
use tt_identity::Identity;
use tt_proto::identity::v1::{
    self as ipb, admin_service_client::AdminServiceClient, auth_service_client::AuthServiceClient,
};

use crate::{AuthedChannel, Bearer, TestDatabase, TestServer, test_cache};

/// The first admin every test platform has.
pub const ADMIN_EMAIL: &str = "root@example.com";
pub const ADMIN_PASSWORD: &str = "admin password for tests";
/// The password of the learners [`Kit::learner`] registers.
pub const PASSWORD: &str = "a perfectly fine passphrase";

/// Builds a [`Kit`].
pub struct TestPlatform {
    identity: bool,
    modules: Vec<&'static dyn Definition>,
    known: Vec<&'static dyn Definition>,
    settings: BTreeMap<String, String>,
    peers: BTreeMap<String, String>,
    clock: ManualClock,
    secret: Option<Secret>,
    cache: Option<Cache>,
    databases: BTreeMap<String, Arc<TestDatabase>>,
    listener: Option<TcpListener>,
    real_time: bool,
}

impl Default for TestPlatform {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPlatform {
    /// Identity alone, its first admin [`ADMIN_EMAIL`], sign-in limits out of the way.
    pub fn new() -> Self {
        let settings = [
            ("bootstrap-admin-email", ADMIN_EMAIL),
            ("bootstrap-admin-password", ADMIN_PASSWORD),
            ("signin-rate-per-minute", "10000"),
        ];
        Self {
            identity: true,
            modules: Vec::new(),
            known: Vec::new(),
            settings: settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            peers: BTreeMap::new(),
            clock: ManualClock::new(),
            secret: None,
            cache: None,
            databases: BTreeMap::new(),
            listener: None,
            real_time: false,
        }
    }

    /// Mounts `module` too (after identity, in call order).
    pub fn module(mut self, module: &'static dyn Definition) -> Self {
        self.modules.push(module);
        self
    }

    /// Knows `module` without mounting it: its events are routed and its schemas declared (it
    /// runs on another test server).
    pub fn knows(mut self, module: &'static dyn Definition) -> Self {
        self.known.push(module);
        self
    }

    /// Mounts no identity: it runs on another server at `url` (same secret and clock).
    pub fn identity_at(mut self, url: &str) -> Self {
        self.identity = false;
        self.known.push(&tt_identity::MODULE);
        self.peers.insert("identity".into(), url.to_owned());
        self
    }

    /// A module setting by its long flag (`signin-rate-per-minute`, `profiles-cache-ttl`).
    pub fn set(mut self, flag: &str, value: &str) -> Self {
        self.settings.insert(flag.to_owned(), value.to_owned());
        self
    }

    /// Peer `name` (a module on another test server) is at `url`; an empty `url` leaves it
    /// unreachable, so events for it wait in the outbox (a test delivers them by hand).
    pub fn peer(mut self, name: &str, url: &str) -> Self {
        self.peers.insert(name.to_owned(), url.to_owned());
        self
    }

    /// The system clock instead of the test's (load generation).
    pub fn real_time(mut self) -> Self {
        self.real_time = true;
        self
    }

    /// Shares a clock (two servers of one test).
    pub fn clock(mut self, clock: &ManualClock) -> Self {
        self.clock = clock.clone();
        self
    }

    /// Shares the process secret (two servers of one test must).
    pub fn secret(mut self, secret: &Secret) -> Self {
        self.secret = Some(secret.clone());
        self
    }

    /// Shares a cache.
    pub fn cache(mut self, cache: &Cache) -> Self {
        self.cache = Some(cache.clone());
        self
    }

    /// Module `name` keeps `db` (a restart on the same data).
    pub fn database(mut self, name: &str, db: Arc<TestDatabase>) -> Self {
        self.databases.insert(name.to_owned(), db);
        self
    }

    /// Serves on `listener` (its address known before the start, or a port reused).
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Builds, mounts and serves the modules, and waits until the server is SERVING.
    pub async fn start(self) -> Kit {
        let kit = self.start_unready().await;
        kit.server.wait_serving("").await;
        kit
    }

    /// [`TestPlatform::start`] without waiting for readiness.
    pub async fn start_unready(mut self) -> Kit {
        let mut mounted: Vec<&'static dyn Definition> = Vec::new();
        if self.identity {
            mounted.push(&tt_identity::MODULE);
        }
        mounted.extend(self.modules.iter().copied());
        let mut catalog = mounted.clone();
        catalog.extend(self.known.iter().copied());
        // The assembly takes a catalog for the life of the process; a test's is small.
        let catalog: &'static [&'static dyn Definition] = Box::leak(catalog.into_boxed_slice());

        let listener = match self.listener.take() {
            Some(listener) => listener,
            None => TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0"),
        };
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let mut peers = self.peers.clone();
        for module in &mounted {
            peers.entry(module.manifest().name.to_owned()).or_insert_with(|| url.clone());
        }
        for module in &mounted {
            let name = module.manifest().name.to_owned();
            if let std::collections::btree_map::Entry::Vacant(slot) = self.databases.entry(name) {
                slot.insert(Arc::new(TestDatabase::new().await));
            }
        }
        let secret = self.secret.clone().unwrap_or_else(|| Secret::random().expect("secret"));
        let cache = self.cache.clone().unwrap_or_else(test_cache);
        let settings = self.settings(catalog);
        let databases = self.databases.clone();
        let open = move |name: &str| {
            databases.get(name).map(|db| db.connect()).ok_or_else(|| {
                tt_common::config::ConfigError::new("modules", format!("no test database for {name}")).into()
            })
        };
        let clock: SharedClock = if self.real_time {
            Arc::new(tt_common::clock::SystemClock)
        } else {
            Arc::new(self.clock.clone())
        };
        let tokens: TokenArgs = tt_common::config::defaults();
        let assembled = assemble(Assembly {
            catalog,
            modules: &mounted,
            settings: &settings,
            server: ServerArgs::for_tests(),
            tokens: tokens.settings(),
            secret: secret.clone(),
            clock,
            cache: cache.clone(),
            databases: &open,
            peers,
            account: None,
            verify_in_process: false,
        })
        .await
        .expect("the test platform assembles");
        let server = TestServer::spawn_on(assembled.builder, listener);
        let channel = tonic::transport::Endpoint::from_shared(server.url()).expect("url").connect_lazy();
        Kit {
            server,
            channel,
            clock: self.clock,
            secret,
            cache,
            platform: assembled.platform,
            modules: assembled.modules,
            databases: self.databases,
            service_token: OnceLock::new(),
        }
    }

    fn settings(&self, catalog: &'static [&'static dyn Definition]) -> clap::ArgMatches {
        let command = catalog.iter().fold(clap::Command::new("test"), |command, m| m.args(command));
        let command = tt_common::config::without_env(command);
        let mut args: Vec<OsString> = vec!["test".into()];
        let known: Vec<String> =
            command.get_arguments().filter_map(|a| a.get_long().map(str::to_owned)).collect();
        for (flag, value) in &self.settings {
            // Identity's defaults apply only where identity's settings exist.
            if known.contains(flag) {
                args.push(format!("--{flag}={value}").into());
            }
        }
        match tt_common::config::matches_from(command, args) {
            Ok(matches) => {
                for module in catalog {
                    if let Err(e) = module.validate(&matches) {
                        panic!("test settings: {e}");
                    }
                }
                matches
            }
            Err(e) => panic!("test settings: {e:?}"),
        }
    }
}

/// A signed-in learner.
#[derive(Debug, Clone)]
pub struct Learner {
    pub id: String,
    pub token: String,
}

/// A running test platform.
pub struct Kit {
    pub server: TestServer,
    /// A lazily connected channel to the server.
    pub channel: Channel,
    pub clock: ManualClock,
    pub secret: Secret,
    pub cache: Cache,
    pub platform: Arc<Platform>,
    modules: Modules,
    databases: BTreeMap<String, Arc<TestDatabase>>,
    service_token: OnceLock<String>,
}

impl std::fmt::Debug for Kit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kit").field("server", &self.server).field("modules", &self.modules).finish()
    }
}

impl Kit {
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The mounted module of type `M` (to reach its store or settings from a test).
    pub fn module<M: Module>(&self) -> Arc<M> {
        self.modules.get::<M>().expect("the module is mounted")
    }

    /// Identity, when mounted here.
    pub fn identity(&self) -> Arc<Identity> {
        self.module::<Identity>()
    }

    /// The database of module `name`.
    pub fn database(&self, name: &str) -> Arc<TestDatabase> {
        self.databases.get(name).cloned().expect("a database of a mounted module")
    }

    /// The channel with `token` as its bearer: `GoalServiceClient::new(kit.authed(&t))`.
    pub fn authed(&self, token: &str) -> AuthedChannel {
        tonic::service::interceptor::InterceptedService::new(self.channel.clone(), Bearer::new(token))
    }

    /// The channel without a token.
    pub fn anonymous(&self) -> AuthedChannel {
        tonic::service::interceptor::InterceptedService::new(self.channel.clone(), Bearer::none())
    }

    pub fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel.clone())
    }

    /// Registers `name@example.com` with [`PASSWORD`] and signs in.
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

    /// A fresh access token of the first admin.
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

    /// A service token of a service account the admin made (one per kit).
    pub async fn service_token(&self) -> String {
        if let Some(token) = self.service_token.get() {
            return token.clone();
        }
        let admin = self.admin_token().await;
        let (client_id, client_secret) = service_account(self.authed(&admin), "missions").await;
        let token = self
            .auth()
            .issue_service_token(ipb::IssueServiceTokenRequest { client_id, client_secret })
            .await
            .expect("service token")
            .into_inner()
            .access_token;
        let _ = self.service_token.set(token.clone());
        token
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// Creates the service account `name` through identity's AdminService on `admin` (a channel
/// with an admin's token): its client id and secret.
pub async fn service_account(admin: AuthedChannel, name: &str) -> (String, String) {
    let created = AdminServiceClient::new(admin)
        .create_service_account(ipb::CreateServiceAccountRequest {
            name: name.into(),
            description: String::new(),
        })
        .await
        .expect("service account")
        .into_inner();
    (created.service_account.expect("account").id, created.client_secret)
}

/// Asserts an INVALID_ARGUMENT whose BadRequest names exactly `fields` (in any order).
#[track_caller]
pub fn assert_bad_fields(result: Result<impl std::fmt::Debug, Status>, fields: &[&str]) {
    let status = result.expect_err("should be refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let mut got = tt_common::error::bad_fields(&status);
    got.sort();
    let mut want: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
    want.sort();
    assert_eq!(got, want, "{status:?}");
}

/// The code of a call that must fail.
#[track_caller]
pub fn code<T: std::fmt::Debug>(result: Result<T, Status>) -> Code {
    result.expect_err("should fail").code()
}

/// A FieldMask of `paths`.
pub fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() })
}

/// The fields a status's BadRequest names, sorted.
pub fn fields(status: &Status) -> Vec<String> {
    let mut f = tt_common::error::bad_fields(status);
    f.sort();
    f
}
