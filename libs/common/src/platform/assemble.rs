//! The one bootstrap: the platform opened once ([`Platform`]), then every module built, mounted
//! and wired the same way ([`assemble`]).

use std::{collections::BTreeMap, sync::Arc};

use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tonic::Status;
use tt_proto::common::v1::Event;

use super::{Built, Context, Definition, Deliver, Mount, PlatformError, Readiness};
use crate::{
    auth::{
        ClientCredentials, GrpcKeySource, GrpcRevocationSource, KeySource, RevocationSource, Revocations,
        TokenSettings, TokenVerifier,
    },
    cache::Cache,
    client::{Credentials, Peer, PeerOptions, TokenProvider},
    clock::SharedClock,
    config::{ConfigError, ServerArgs},
    outbox::{
        ANALYTICS, AnalyticsSink, Backlog, Outbox, OutboxSource, Relay, Routes, Sink, schema::EventType,
    },
    secrets::Secret,
    server::{ServerBuilder, Shutdown},
    storage::{Database, PageTokens},
};

/// Verification keys and the revocation feed, as a module offers them in process.
pub type VerifyingSources = (Arc<dyn KeySource>, Arc<dyn RevocationSource>);

/// Signs service tokens for a subject in process (identity does, for the modules beside it).
pub trait ServiceTokens: Send + Sync {
    fn for_subject(&self, subject: &str) -> Arc<dyn TokenProvider>;
}

/// What every module stands on, opened once per process.
pub struct Platform {
    pub secret: Secret,
    pub clock: SharedClock,
    /// The platform cache, unscoped (modules get their namespace in [`Context::cache`]).
    pub cache: Cache,
    /// Identity, without credentials (its keys and revocation feed are public).
    pub identity: Peer,
    /// The revoked subjects this process's verifier refuses (from identity's feed).
    pub revocations: Arc<Revocations>,
    /// Page tokens, sealed with a key derived from the secret and dated on the clock.
    pub pages: PageTokens,
    verifier: std::sync::OnceLock<Arc<TokenVerifier>>,
    pub tokens: TokenSettings,
    pub server: ServerArgs,
    catalog: &'static [&'static dyn Definition],
    peers: BTreeMap<String, String>,
    account: Option<(String, String)>,
    issuer: std::sync::OnceLock<Arc<dyn ServiceTokens>>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform").field("peers", &self.peers).finish_non_exhaustive()
    }
}

impl Platform {
    /// Verifies the tokens of every call: keys and revocations from identity over gRPC, or in
    /// process in identity's own binary. Set once every module is mounted.
    pub fn verifier(&self) -> Option<&Arc<TokenVerifier>> {
        self.verifier.get()
    }

    /// Every module this build knows (mounted here or not).
    pub fn catalog(&self) -> &'static [&'static dyn Definition] {
        self.catalog
    }

    /// The schemas of every event type a known module emits.
    pub fn emitted(&self) -> Vec<&'static EventType> {
        self.catalog.iter().flat_map(|d| d.manifest().emits.iter()).collect()
    }

    /// Where events go: analytics, and each module that declared it consumes a type.
    pub fn routes(&self) -> Routes {
        routes(self.catalog)
    }

    /// The URL `TT_<NAME>_URL` gave for peer `name`, if any.
    pub fn peer_url(&self, name: &str) -> Option<&str> {
        self.peers.get(name).map(String::as_str).filter(|u| !u.is_empty())
    }

    /// The credentials `subject` calls peers with: tokens identity signs in this process, else
    /// the configured service account's, else none.
    pub fn service_credentials(&self, subject: &str) -> Option<Credentials> {
        if let Some(issuer) = self.issuer.get() {
            return Some(Credentials::Service(issuer.for_subject(subject)));
        }
        let (id, secret) = self.account.clone()?;
        let tokens = ClientCredentials::new(self.identity.clone(), id, secret, self.clock.clone());
        Some(Credentials::Service(tokens))
    }

    /// A client of peer `name` carrying `subject`'s service token: `None` while its URL is not
    /// configured or `subject` has no credentials (logged).
    pub fn service_peer(&self, name: &str, subject: &str) -> Result<Option<Peer>, PlatformError> {
        match self.peer_url(name) {
            Some(url) => self.service_peer_at(name, url, subject),
            None => Ok(None),
        }
    }

    /// [`Platform::service_peer`] at `url`.
    pub fn service_peer_at(
        &self,
        name: &str,
        url: &str,
        subject: &str,
    ) -> Result<Option<Peer>, PlatformError> {
        let Some(credentials) = self.service_credentials(subject) else {
            tracing::error!(
                peer = name,
                "TT_{}_URL is set but {subject} has no service account (TT_SERVICE_CLIENT_ID and its \
                 secret): its calls wait until one is configured",
                name.to_uppercase()
            );
            return Ok(None);
        };
        let peer = Peer::connect_lazy(PeerOptions::new(url), credentials)
            .map_err(|source| PlatformError::Peer { name: name.to_owned(), source })?;
        Ok(Some(peer))
    }

    /// The relay that delivers module `source`'s events for `destination` (analytics, or a
    /// module that declared it consumes them) at `url`, from `db` (the source's database), woken
    /// by `outbox`. `None` when `destination` consumes nothing or `source` has no credentials.
    pub fn relay(
        &self,
        source: &str,
        db: Database,
        outbox: &Outbox,
        destination: &str,
        url: &str,
    ) -> Result<Option<Relay>, PlatformError> {
        let deliver = self
            .catalog
            .iter()
            .find(|d| d.manifest().name == destination)
            .and_then(|d| d.manifest().consumes);
        if destination != ANALYTICS && deliver.is_none() {
            return Ok(None);
        }
        let Some(peer) = self.service_peer_at(destination, url, source)? else { return Ok(None) };
        let sink: Arc<dyn Sink> = match deliver {
            Some(c) if destination != ANALYTICS => Arc::new(Consumer { peer, deliver: c.deliver }),
            _ => Arc::new(AnalyticsSink::new(peer, source)),
        };
        Ok(Some(Relay::new(db, destination, sink, self.clock.clone()).with_signal(outbox.signal())))
    }
}

/// The routes the manifests of `catalog` declare.
pub fn routes(catalog: &[&'static dyn Definition]) -> Routes {
    let mut routes = Routes::new();
    for definition in catalog {
        let manifest = definition.manifest();
        for notice in manifest.emits.iter().filter(|t| !t.analytics) {
            routes = routes.notice(notice.name);
        }
        if let Some(consumes) = &manifest.consumes {
            for event_type in consumes.types {
                routes = routes.consumer(event_type, manifest.name);
            }
        }
    }
    routes
}

/// What [`assemble`] opens the platform from.
pub struct Assembly<'a> {
    /// Every module of this build: their manifests route events and declare schemas.
    pub catalog: &'static [&'static dyn Definition],
    /// The modules this process serves.
    pub modules: &'a [&'static dyn Definition],
    /// The parsed settings, the modules' sections among them.
    pub settings: &'a clap::ArgMatches,
    pub server: ServerArgs,
    pub tokens: TokenSettings,
    pub secret: Secret,
    pub clock: SharedClock,
    pub cache: Cache,
    /// The database of the module named.
    pub databases: &'a (dyn Fn(&str) -> Result<Database, PlatformError> + Sync),
    /// Peer name -> gRPC URL; `identity` is required.
    pub peers: BTreeMap<String, String>,
    /// This process's service account (client id and secret), if configured.
    pub account: Option<(String, String)>,
    /// Verify tokens with the keys and revocations a mounted module offers in process
    /// (identity's own binary), rather than over gRPC.
    pub verify_in_process: bool,
}

struct Mounted {
    name: &'static str,
    built: Arc<Built>,
    readiness: Arc<Readiness>,
    db: Database,
}

/// The modules built and mounted on one server, ready to serve.
#[derive(Debug)]
pub struct Assembled {
    pub platform: Arc<Platform>,
    pub builder: ServerBuilder,
    pub modules: Modules,
}

/// The modules of an assembly.
pub struct Modules(Vec<Mounted>);

impl std::fmt::Debug for Modules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|m| m.name)).finish()
    }
}

impl Modules {
    /// The mounted module of type `M`.
    pub fn get<M: super::Module>(&self) -> Option<Arc<M>> {
        self.0.iter().find_map(|m| m.built.get::<M>())
    }

    /// Runs every module's prepare step now, in mount order (readiness then finds it done).
    pub async fn prepare(&self) -> Result<(), PlatformError> {
        for m in &self.0 {
            m.readiness
                .prepare(&m.built)
                .await
                .map_err(|source| PlatformError::Module { module: m.name, source })?;
        }
        Ok(())
    }

    /// Closes the modules' databases.
    pub async fn close(&self) {
        for m in &self.0 {
            m.db.close().await;
        }
    }
}

impl Assembled {
    /// The mounted module of type `M`.
    pub fn module<M: super::Module>(&self) -> Option<Arc<M>> {
        self.modules.get::<M>()
    }

    /// Runs every module's prepare step now (readiness then finds it done).
    pub async fn prepare(&self) -> Result<(), PlatformError> {
        self.modules.prepare().await
    }

    /// Serves until `shutdown`, then closes the modules' databases.
    pub async fn serve(self, listener: TcpListener, shutdown: Shutdown) -> Result<(), PlatformError> {
        let result = self.builder.serve(listener, shutdown).await;
        self.modules.close().await;
        Ok(result?)
    }
}

/// Opens the platform, builds `modules` in order and mounts them on one server: their gRPC
/// servers (limits applied), readiness from their prepare steps, their jobs (started after
/// it), their outboxes (the admin service, and a relay per destination whose URL is known).
pub async fn assemble(a: Assembly<'_>) -> Result<Assembled, PlatformError> {
    let identity_url = a
        .peers
        .get("identity")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ConfigError::new("TT_IDENTITY_URL", "is required"))?;
    let identity = Peer::connect_lazy(PeerOptions::new(identity_url.clone()), Credentials::None)
        .map_err(|source| PlatformError::Peer { name: "identity".into(), source })?;
    let revocations = Arc::new(Revocations::new(&a.secret, a.tokens.max_revocation_staleness));
    let pages = PageTokens::new(&a.secret, a.clock.clone());
    let platform = Arc::new(Platform {
        pages,
        secret: a.secret,
        clock: a.clock,
        cache: a.cache,
        identity,
        revocations,
        verifier: std::sync::OnceLock::new(),
        tokens: a.tokens,
        server: a.server.clone(),
        catalog: a.catalog,
        peers: a.peers,
        account: a.account,
        issuer: std::sync::OnceLock::new(),
    });

    let routes = platform.routes();
    let mut built = Vec::new();
    for definition in a.modules {
        let name = definition.manifest().name;
        let db = (a.databases)(name)?;
        let outbox = Outbox::new(routes.clone());
        let context = Context {
            platform: platform.clone(),
            db: db.clone(),
            cache: platform.cache.scoped(&format!("{name}:")),
            outbox: outbox.clone(),
            pages: platform.pages.clone(),
        };
        let module = definition
            .build(context, a.settings)
            .await
            .map_err(|source| PlatformError::Module { module: name, source })?;
        built.push((*definition, Arc::new(module), db, outbox));
    }

    let mut builder = ServerBuilder::new(a.server);
    let mut in_process: Option<VerifyingSources> = None;
    let mut modules = Vec::new();
    let mut outboxes = Vec::new();
    for (definition, module, db, outbox) in built {
        let manifest = definition.manifest();
        let readiness = Arc::new(Readiness::default());
        let mut mount = Mount {
            builder: &mut builder,
            domain: manifest.domain,
            platform: &platform,
            services: Vec::new(),
            jobs: Vec::new(),
            issuer: None,
            verifying: None,
        };
        (module.mount)(&mut mount);
        let Mount { services, jobs, issuer, verifying, .. } = mount;
        if let Some(issuer) = issuer {
            let _ = platform.issuer.set(issuer);
        }
        in_process = in_process.or(verifying);
        let names: Vec<&str> = services.iter().map(String::as_str).collect();
        let (check_module, check_readiness) = (module.clone(), readiness.clone());
        builder.ready_when(
            &names,
            Box::new(move || {
                let (module, readiness) = (check_module.clone(), check_readiness.clone());
                Box::pin(async move { readiness.prepare(&module).await })
            }),
        );
        for (name, job) in jobs {
            builder.background(&name, after(&readiness, job));
        }
        if !manifest.emits.is_empty() {
            let destinations = routes.destinations_of(manifest.emits.iter().map(|t| t.name));
            builder.outbox(OutboxSource {
                service: manifest.name.to_owned(),
                db: db.clone(),
                destinations: destinations.clone(),
                pages: platform.pages.clone(),
                clock: platform.clock.clone(),
                signal: Some(outbox.signal().clone()),
            });
            outboxes.push((manifest.name, db.clone(), outbox, destinations, readiness.clone()));
        }
        modules.push(Mounted { name: manifest.name, built: module, readiness, db });
    }
    let (keys, feed): VerifyingSources = match in_process.filter(|_| a.verify_in_process) {
        Some(local) => local,
        None => (
            Arc::new(GrpcKeySource::new(platform.identity.clone())),
            Arc::new(GrpcRevocationSource::new(platform.identity.clone())),
        ),
    };
    let verifier = Arc::new(TokenVerifier::new(
        platform.tokens.clone(),
        keys,
        platform.revocations.clone(),
        feed,
        platform.clock.clone(),
    ));
    let _ = platform.verifier.set(verifier.clone());
    builder.verifier(verifier);
    // Relays start once every module is mounted: identity's in-process token issuer is known.
    for (name, db, outbox, destinations, readiness) in outboxes {
        for destination in destinations {
            let Some(url) = platform.peer_url(&destination).map(str::to_owned) else {
                tracing::info!(module = name, %destination, "no URL for the destination yet: its events wait in the outbox");
                continue;
            };
            if let Some(relay) = platform.relay(name, db.clone(), &outbox, &destination, &url)? {
                builder.background(
                    &format!("{name}.outbox.{destination}"),
                    after(&readiness, Box::pin(relay.run())),
                );
            }
        }
    }
    Ok(Assembled { platform, builder, modules: Modules(modules) })
}

/// `task`, once the module is prepared (its tables exist).
fn after(readiness: &Arc<Readiness>, task: BoxFuture<'static, ()>) -> BoxFuture<'static, ()> {
    let readiness = readiness.clone();
    Box::pin(async move {
        readiness.wait().await;
        task.await;
    })
}

/// Delivers to a consumer module through the function its manifest declares.
struct Consumer {
    peer: Peer,
    deliver: Deliver,
}

impl Sink for Consumer {
    fn deliver(&self, events: Vec<Event>, _backlog: Backlog) -> BoxFuture<'_, Result<(), Status>> {
        (self.deliver)(self.peer.clone(), events)
    }
}
