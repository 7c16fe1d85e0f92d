//! The service kit: a service is a [`Module`] the platform mounts.
//!
//! A module declares, in one place ([`Module`] and its [`Manifest`]): its name and error
//! domain, its own settings (a `clap::Args` group), how it is built from the opened platform
//! ([`Context`]), one prepare step (migrations, bootstrap; run once, awaited by readiness), and
//! what it mounts ([`Mount`]: its gRPC servers, public methods and background jobs). The
//! manifest also names the events it emits (with their schemas: analytics accepts exactly the
//! declared types) and the events it consumes with how they are delivered to it (so an
//! emitter's outbox routes them to every module that declared them), and the peers it calls.
//!
//! The platform does the rest the same way for every module ([`assemble`]): its database, its
//! cache namespace, its outbox (routes, relays, the admin service), the message-size limits and
//! health names of its servers, readiness from its prepare step, and jobs started once that
//! step succeeded. A per-service binary mounts one module ([`standalone`]); the all-in-one
//! mounts them all on one port.

mod assemble;
mod error;
pub mod standalone;

use std::{any::Any, marker::PhantomData, sync::Arc};

use futures::future::BoxFuture;
use tonic::{Status, server::NamedService};
use tt_proto::{MessageLimits, common::v1::Event};

pub use self::{
    assemble::{Assembled, Assembly, Modules, Platform, ServiceTokens, VerifyingSources, assemble, routes},
    error::{BoxError, PlatformError},
};
use crate::{
    cache::Cache,
    client::Peer,
    config::{ConfigError, Validate},
    outbox::{Outbox, schema::EventType},
    server::{GrpcService, ServerBuilder},
    storage::{Database, PageTokens},
};

/// What a module is, as data known before it is built: the platform reads the manifests of
/// every module it knows to route events and accept their schemas.
#[derive(Debug, Clone, Copy)]
pub struct Manifest {
    /// Lower case, one word: its database, cache namespace, outbox name, the subject of its
    /// service tokens and the `TT_<NAME>_URL` its peers reach it at.
    pub name: &'static str,
    /// The `ErrorInfo` domain of its errors.
    pub domain: crate::error::Domain,
    /// The event types it writes to its outbox.
    pub emits: &'static [EventType],
    /// The event types it consumes from other modules' outboxes, if any.
    pub consumes: Option<Consumes>,
    /// Modules it calls over gRPC besides identity (which every module reaches) and the
    /// receivers of its events.
    pub peers: &'static [&'static str],
}

/// How events reach a consumer: `deliver` calls the consumer's receiving RPC on its peer (it
/// must be idempotent on the event id and acknowledge types it does not know).
#[derive(Debug, Clone, Copy)]
pub struct Consumes {
    pub types: &'static [&'static str],
    pub deliver: Deliver,
}

/// Hands a batch of events to a consumer through its gRPC client.
pub type Deliver = fn(Peer, Vec<Event>) -> BoxFuture<'static, Result<(), Status>>;

/// The request of every consumer's `ConsumeEvents` (`repeated timetravelers.common.v1.Event
/// events = 1`), whatever package declares it.
#[derive(Clone, PartialEq, prost::Message)]
struct ConsumeEvents {
    #[prost(message, repeated, tag = "1")]
    events: Vec<Event>,
}

/// The body of a consumer's [`Deliver`]: `events` to the `ConsumeEvents` method at `path`
/// (`/timetravelers.<module>.v1.IntegrationService/ConsumeEvents`) through `peer`, with its
/// retries and deadline; the answer's content is not needed.
pub fn consume_events(
    peer: Peer,
    path: &'static str,
    events: Vec<Event>,
) -> BoxFuture<'static, Result<(), Status>> {
    Box::pin(async move {
        let request = ConsumeEvents { events };
        peer.call(|ch| {
            let request = request.clone();
            async move {
                let mut grpc = tonic::client::Grpc::new(ch);
                grpc.ready().await.map_err(|e| {
                    Status::unavailable(format!("{path}: {}", Into::<tonic::codegen::StdError>::into(e)))
                })?;
                let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
                grpc.unary::<_, (), _>(tonic::Request::new(request), path, tonic_prost::ProstCodec::default())
                    .await
            }
        })
        .await
        .map(|_| ())
    })
}

/// What a module is given to build itself: the opened platform and its own resources.
pub struct Context {
    pub platform: Arc<Platform>,
    /// Its own database (connected lazily).
    pub db: Database,
    /// The platform cache under the module's namespace (`<name>:`).
    pub cache: Cache,
    /// Its outbox: routes of its events to their receivers, and the signal waking its relays.
    pub outbox: Outbox,
    /// Page tokens sealed with the process secret, on the platform clock.
    pub pages: PageTokens,
}

/// A service, as the platform mounts it.
pub trait Module: Send + Sync + Sized + 'static {
    /// Its own settings (flags and `TT_...` variables), beside the platform's, with the checks
    /// clap cannot express.
    type Args: clap::Args + clap::FromArgMatches + Validate + Clone + Send + Sync + 'static;

    const MANIFEST: &'static Manifest;

    /// Builds the module on the opened platform; nothing may touch the database yet.
    fn build(context: Context, args: Self::Args) -> BoxFuture<'static, Result<Arc<Self>, BoxError>>;

    /// What it needs before it serves (migrations, bootstrap data). The platform runs it once,
    /// its services report NOT_SERVING until it succeeded (retried with backoff), and its jobs
    /// start after it.
    fn prepare(self: Arc<Self>) -> BoxFuture<'static, Result<(), BoxError>>;

    /// Mounts its servers, public methods and jobs.
    fn mount(self: &Arc<Self>, mount: &mut Mount<'_>);
}

/// A module as a value (what catalogs list): `pub static MODULE: Def<Profiles> = Def::new();`.
pub struct Def<M>(PhantomData<fn() -> M>);

impl<M> Def<M> {
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<M> Default for Def<M> {
    fn default() -> Self {
        Self::new()
    }
}

/// The object-safe face of a [`Module`] (implemented by [`Def`]).
pub trait Definition: Send + Sync {
    fn manifest(&self) -> &'static Manifest;
    /// Adds the module's settings to `command`.
    fn args(&self, command: clap::Command) -> clap::Command;
    /// Reads and checks the module's settings from parsed arguments.
    fn validate(&self, matches: &clap::ArgMatches) -> Result<(), ConfigError>;
    /// Builds the module from its settings in `matches`.
    fn build(
        &self,
        context: Context,
        matches: &clap::ArgMatches,
    ) -> BoxFuture<'static, Result<Built, BoxError>>;
}

impl<M: Module> Definition for Def<M> {
    fn manifest(&self) -> &'static Manifest {
        M::MANIFEST
    }

    fn args(&self, command: clap::Command) -> clap::Command {
        <M::Args as clap::Args>::augment_args(command)
    }

    fn validate(&self, matches: &clap::ArgMatches) -> Result<(), ConfigError> {
        settings::<M>(matches)?.validate()
    }

    fn build(
        &self,
        context: Context,
        matches: &clap::ArgMatches,
    ) -> BoxFuture<'static, Result<Built, BoxError>> {
        let args = settings::<M>(matches);
        Box::pin(async move {
            let module = M::build(context, args?).await?;
            Ok(Built::new(module))
        })
    }
}

fn settings<M: Module>(matches: &clap::ArgMatches) -> Result<M::Args, ConfigError> {
    <M::Args as clap::FromArgMatches>::from_arg_matches(matches)
        .map_err(|e| ConfigError::new(M::MANIFEST.name, e.render().to_string()))
}

/// A built module: its prepare step, mount and the module itself (for assemblies that need it,
/// such as the all-in-one reading identity's first admin).
pub struct Built {
    module: Arc<dyn Any + Send + Sync>,
    prepare: Box<dyn Fn() -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>,
    mount: Box<dyn Fn(&mut Mount<'_>) + Send + Sync>,
}

impl Built {
    fn new<M: Module>(module: Arc<M>) -> Self {
        let (for_prepare, for_mount) = (module.clone(), module.clone());
        Self {
            module,
            prepare: Box::new(move || for_prepare.clone().prepare()),
            mount: Box::new(move |m| for_mount.mount(m)),
        }
    }

    /// The module, when it is an `M`.
    pub fn get<M: Module>(&self) -> Option<Arc<M>> {
        self.module.clone().downcast::<M>().ok()
    }
}

/// The prepare step of one module, run at most once (concurrent callers share it), and the
/// moment it succeeded, which jobs await.
#[derive(Default)]
struct Readiness {
    once: tokio::sync::OnceCell<()>,
    notify: tokio::sync::Notify,
}

impl Readiness {
    async fn prepare(&self, built: &Built) -> Result<(), BoxError> {
        self.once.get_or_try_init(|| (built.prepare)()).await?;
        self.notify.notify_waiters();
        Ok(())
    }

    async fn wait(&self) {
        loop {
            // Registered before the check, so a prepare finishing in between still wakes it.
            let notified = self.notify.notified();
            if self.once.initialized() {
                return;
            }
            notified.await;
        }
    }
}

/// Where a module mounts what it serves.
pub struct Mount<'a> {
    builder: &'a mut ServerBuilder,
    domain: crate::error::Domain,
    platform: &'a Arc<Platform>,
    services: Vec<String>,
    jobs: Vec<(String, BoxFuture<'static, ()>)>,
    issuer: Option<Arc<dyn ServiceTokens>>,
    verifying: Option<VerifyingSources>,
}

impl<'a> Mount<'a> {
    /// Serves a generated gRPC server with the platform's message-size limits; its health name
    /// is its `S::NAME`, SERVING once the module is prepared.
    pub fn grpc<S: MessageLimits + GrpcService>(
        &mut self,
        server: S,
        descriptors: &'static [u8],
    ) -> &mut Self {
        let max = self.builder.args().max_message_bytes;
        self.builder.add_module_service(server.with_message_limits(max), descriptors, self.domain);
        self.services.push(S::NAME.to_owned());
        self
    }

    /// Every method of the mounted server `S` needs no token.
    pub fn public<S: NamedService>(&mut self) -> &mut Self {
        self.builder.public(&format!("/{}/", S::NAME));
        self
    }

    /// A job that runs while the server serves, started once the module is prepared and
    /// stopped at shutdown. It loops on its own schedule and logs its failures.
    pub fn job(&mut self, name: &str, task: BoxFuture<'static, ()>) -> &mut Self {
        self.jobs.push((name.to_owned(), task));
        self
    }

    /// This module holds the verification keys and the revocations itself (only identity
    /// does): its own binary verifies tokens with them, without a network hop.
    pub fn verify_in_process(&mut self, sources: VerifyingSources) -> &mut Self {
        self.verifying = Some(sources);
        self
    }

    /// The opened platform (revocations, clock, peers).
    pub fn platform(&self) -> &Arc<Platform> {
        self.platform
    }

    /// This module signs the service tokens the process's modules call their peers with (only
    /// identity does).
    pub fn issue_service_tokens(&mut self, issuer: Arc<dyn ServiceTokens>) -> &mut Self {
        self.issuer = Some(issuer);
        self
    }
}
