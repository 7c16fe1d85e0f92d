//! The one server builder every service uses.
//!
//! A service registers its tonic services with their descriptor sets, the method prefixes that
//! need no token, and a readiness check (migrations ran, dependencies answer). The builder adds
//! grpc.health.v1 (a status per registered service, NOT_SERVING until its readiness check passed
//! and again from the first shutdown signal), reflection v1 and v1alpha (with the health and
//! google.rpc error-detail descriptors), the tower stack in [`stack`], transport limits and
//! keepalive, Prometheus metrics, and graceful shutdown (drain, then a bounded grace).

pub mod coalesce;
pub mod edge;
pub mod listener;
mod main;
pub mod metrics;
pub mod shutdown;
pub mod stack;

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::future::BoxFuture;
use http::{Request, Response};
use tokio::{net::TcpListener, sync::Semaphore};
use tonic::{
    body::Body,
    server::NamedService,
    service::{Routes, RoutesBuilder},
};
use tonic_health::{ServingStatus, server::HealthReporter};
use tower_service::Service;

pub use self::{main::run_binary, shutdown::Shutdown, stack::current_call};
use crate::{auth::TokenVerifier, config::ServerArgs};

/// A health name that answers SERVING for as long as the process serves at all (startup and
/// drain included): the liveness probe's, so a pod is never restarted for being not ready.
pub const LIVENESS: &str = "timetravelers.liveness";

/// The gRPC service over the outboxes of the services on a server.
pub const OUTBOX_ADMIN: &str = "timetravelers.common.v1.OutboxAdminService";

/// A readiness check: retried with backoff until it succeeds.
pub type ReadyCheck =
    Box<dyn Fn() -> BoxFuture<'static, Result<(), crate::platform::BoxError>> + Send + Sync>;

/// Serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("reflection: {0}")]
    Reflection(String),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// A tonic service the builder can mount (every generated server is one).
pub trait GrpcService:
    Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send + 'static>
    + NamedService
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> GrpcService for S where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send + 'static>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Collects services, then serves them.
pub struct ServerBuilder {
    args: ServerArgs,
    routes: RoutesBuilder,
    descriptors: Vec<&'static [u8]>,
    services: Vec<String>,
    public: Vec<String>,
    checks: Vec<(Vec<String>, ReadyCheck)>,
    verifier: Option<Arc<TokenVerifier>>,
    background: Vec<(String, BoxFuture<'static, ()>)>,
    outboxes: Vec<crate::outbox::OutboxSource>,
    domains: HashMap<String, crate::error::Domain>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder").field("services", &self.services).finish()
    }
}

impl ServerBuilder {
    pub fn new(args: ServerArgs) -> Self {
        Self {
            args,
            routes: Routes::builder(),
            descriptors: Vec::new(),
            services: Vec::new(),
            public: Vec::new(),
            checks: Vec::new(),
            verifier: None,
            background: Vec::new(),
            outboxes: Vec::new(),
            domains: HashMap::new(),
        }
    }

    /// A task that runs while the server serves (maintenance, relays) and is stopped at
    /// shutdown. It should loop on its own schedule and log its failures.
    pub fn background(&mut self, name: &str, task: BoxFuture<'static, ()>) -> &mut Self {
        self.background.push((name.to_owned(), task));
        self
    }

    /// The serving settings (services read the message-size limit from here).
    pub fn args(&self) -> &ServerArgs {
        &self.args
    }

    /// Mounts a tonic service with the encoded `FileDescriptorSet` that describes it (for
    /// reflection); its health status starts NOT_SERVING.
    pub fn add_service<S: GrpcService>(&mut self, svc: S, descriptors: &'static [u8]) -> &mut Self {
        self.services.push(S::NAME.to_owned());
        self.routes.add_service(svc);
        if !self.descriptors.contains(&descriptors) {
            self.descriptors.push(descriptors);
        }
        self
    }

    /// [`ServerBuilder::add_service`] for a module whose errors carry `domain` (storage errors
    /// that become statuses by `?` in its handlers take it from the call).
    pub fn add_module_service<S: GrpcService>(
        &mut self,
        svc: S,
        descriptors: &'static [u8],
        domain: crate::error::Domain,
    ) -> &mut Self {
        self.domains.insert(S::NAME.to_owned(), domain);
        self.add_service(svc, descriptors)
    }

    /// Adds a service's outbox to the server's `OutboxAdminService` (mounted with the first).
    pub fn outbox(&mut self, source: crate::outbox::OutboxSource) -> &mut Self {
        if self.outboxes.is_empty() {
            self.services.push(OUTBOX_ADMIN.to_owned());
            self.domains.insert(OUTBOX_ADMIN.to_owned(), crate::outbox::admin::DOMAIN);
            let fds = tt_proto::common::v1::FILE_DESCRIPTOR_SET;
            if !self.descriptors.contains(&fds) {
                self.descriptors.push(fds);
            }
        }
        self.outboxes.push(source);
        self
    }

    /// Marks every method under a path prefix (`/pkg.Service/` or `/pkg.Service/Method`) public.
    pub fn public(&mut self, prefix: &str) -> &mut Self {
        self.public.push(prefix.to_owned());
        self
    }

    /// The token verifier for non-public methods.
    pub fn verifier(&mut self, verifier: Arc<TokenVerifier>) -> &mut Self {
        self.verifier = Some(verifier);
        self
    }

    /// `services` turn SERVING once `check` succeeds (retried with backoff until then).
    pub fn ready_when(&mut self, services: &[&str], check: ReadyCheck) -> &mut Self {
        self.checks.push((services.iter().map(|s| (*s).to_owned()).collect(), check));
        self
    }

    /// Names of the mounted services (for health probes and the authorization matrix).
    pub fn service_names(&self) -> &[String] {
        &self.services
    }

    /// Serves on `listener` until `shutdown` triggers, then: NOT_SERVING at once, keep serving
    /// for the drain period, stop accepting, and give in-flight calls the grace period.
    pub async fn serve(self, listener: TcpListener, shutdown: Shutdown) -> Result<(), ServeError> {
        let addr = listener.local_addr()?;
        if let Some(metrics_addr) =
            self.args.metrics_addr().map_err(|e| ServeError::Reflection(e.to_string()))?
        {
            if let Err(e) = metrics::install_exporter(metrics_addr) {
                tracing::warn!(error = %e, %metrics_addr, "metrics endpoint not started");
            } else {
                tracing::info!(%metrics_addr, "metrics on /metrics");
            }
        }

        let (reporter, health_service) = tonic_health::server::health_reporter();
        reporter.set_service_status("", ServingStatus::NotServing).await;
        reporter.set_service_status(LIVENESS, ServingStatus::Serving).await;
        let mut ready = HashMap::new();
        for name in &self.services {
            reporter.set_service_status(name, ServingStatus::NotServing).await;
            ready.insert(name.clone(), Arc::new(AtomicBool::new(false)));
        }

        let mut routes = self.routes;
        if !self.outboxes.is_empty() {
            let admin = crate::outbox::OutboxAdmin::new(self.outboxes).server(self.args.max_message_bytes);
            routes.add_service(admin);
        }
        routes.add_service(health_service);
        let (v1, v1alpha) = reflection(&self.descriptors)?;
        routes.add_service(v1);
        routes.add_service(v1alpha);

        let mut checks = self.checks;
        let mut background = self.background;
        if let Some(verifier) = &self.verifier {
            background.push(("auth.revocations".to_owned(), verifier.follow()));
            // A service that takes tokens is ready once revocations have arrived from identity.
            let needs_tokens: Vec<String> = self
                .services
                .iter()
                .filter(|name| !self.public.iter().any(|p| *p == format!("/{name}/")))
                .cloned()
                .collect();
            checks = gate_on_revocations(checks, &needs_tokens, verifier);
        }
        let state = Arc::new(stack::StackState {
            timeout: self.args.request_timeout.0,
            limit: Arc::new(Semaphore::new(self.args.max_concurrent_requests)),
            verifier: self.verifier,
            public: self.public,
            ready: ready.clone(),
            domains: self.domains,
        });

        let mut tasks = spawn_readiness(checks, &ready, &reporter, &shutdown);
        for (name, task) in background {
            tracing::debug!(task = %name, "background task started");
            tasks.push(tokio::spawn(task));
        }

        let keepalive = self.args.keepalive.0;
        let server = tonic::transport::Server::builder()
            .max_concurrent_streams(self.args.max_concurrent_streams)
            .http2_keepalive_interval(Some(keepalive))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .layer(stack::PlatformLayer { state })
            .add_routes(routes.routes());
        let file_limit = listener::raise_file_limit();
        let cap = listener::connection_cap(self.args.max_connections, file_limit);
        if cap < self.args.max_connections {
            tracing::info!(cap, ?file_limit, "connection cap lowered below the open-file limit");
        }
        let incoming = listener::guarded(listener, cap, self.args.handshake_timeout.0, keepalive);

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = server.serve_with_incoming_shutdown(incoming, async {
            let _ = stop_rx.await;
        });
        tokio::pin!(serving);
        tracing::info!(%addr, "serving gRPC");

        tokio::select! {
            result = &mut serving => return result.map_err(Into::into),
            () = shutdown.wait() => {}
        }
        for task in tasks {
            task.abort();
        }
        reporter.set_service_status("", ServingStatus::NotServing).await;
        for name in ready.keys() {
            reporter.set_service_status(name, ServingStatus::NotServing).await;
        }
        let drain = self.args.shutdown_drain.0;
        tracing::info!(?drain, "NOT_SERVING; draining");
        tokio::select! {
            result = &mut serving => return result.map_err(Into::into),
            () = tokio::time::sleep(drain) => {}
        }
        let _ = stop_tx.send(());
        let grace = self.args.shutdown_grace.0;
        match tokio::time::timeout(grace, &mut serving).await {
            Ok(result) => result.map_err(Into::into),
            Err(_) => {
                tracing::warn!(?grace, "grace period over; closing remaining connections");
                Ok(())
            }
        }
    }
}

fn reflection<'a>(
    descriptors: &[&'static [u8]],
) -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection + use<'a>,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection + use<'a>,
        >,
    ),
    ServeError,
> {
    // The builder is consumed by build_*, so it is made twice.
    let make = || {
        let mut b = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET);
        for d in descriptors {
            b = b.register_encoded_file_descriptor_set(d);
        }
        b
    };
    let v1 = make().build_v1().map_err(|e| ServeError::Reflection(e.to_string()))?;
    let v1alpha = make().build_v1alpha().map_err(|e| ServeError::Reflection(e.to_string()))?;
    Ok((v1, v1alpha))
}

/// Makes `services` wait for the verifier's first revocations from identity on top of their own
/// readiness check (services without one get this alone).
fn gate_on_revocations(
    checks: Vec<(Vec<String>, ReadyCheck)>,
    services: &[String],
    verifier: &Arc<TokenVerifier>,
) -> Vec<(Vec<String>, ReadyCheck)> {
    let synced = |verifier: Arc<TokenVerifier>| async move {
        let revocations = verifier.revocations().clone();
        tokio::time::timeout(Duration::from_secs(2), revocations.wait_synced())
            .await
            .map_err(|_| crate::platform::BoxError::from("no revocations from identity yet"))
    };
    let mut gated: Vec<String> = Vec::new();
    let mut out: Vec<(Vec<String>, ReadyCheck)> = Vec::new();
    for (names, check) in checks {
        let (tokens, public): (Vec<String>, Vec<String>) =
            names.into_iter().partition(|n| services.contains(n));
        if tokens.is_empty() {
            out.push((public, check));
            continue;
        }
        gated.extend(tokens.iter().cloned());
        // Public services (the feed itself among them) must not wait for the feed.
        let check: Arc<dyn Fn() -> BoxFuture<'static, Result<(), crate::platform::BoxError>> + Send + Sync> =
            Arc::from(check);
        if !public.is_empty() {
            let own = check.clone();
            out.push((public, Box::new(move || own())));
        }
        let verifier = verifier.clone();
        let combined: ReadyCheck = Box::new(move || {
            let own = check();
            let synced = synced(verifier.clone());
            Box::pin(async move {
                own.await?;
                synced.await
            })
        });
        out.push((tokens, combined));
    }
    let rest: Vec<String> = services.iter().filter(|s| !gated.contains(s)).cloned().collect();
    if !rest.is_empty() {
        let verifier = verifier.clone();
        out.push((rest, Box::new(move || Box::pin(synced(verifier.clone())))));
    }
    out
}

fn spawn_readiness(
    checks: Vec<(Vec<String>, ReadyCheck)>,
    ready: &HashMap<String, Arc<AtomicBool>>,
    reporter: &HealthReporter,
    shutdown: &Shutdown,
) -> Vec<tokio::task::JoinHandle<()>> {
    let pending = Arc::new(std::sync::atomic::AtomicUsize::new(checks.len()));
    // Services without a check are ready at once.
    let checked: Vec<String> = checks.iter().flat_map(|(names, _)| names.clone()).collect();
    let unchecked: Vec<(String, Arc<AtomicBool>)> = ready
        .iter()
        .filter(|(name, _)| !checked.contains(name))
        .map(|(n, f)| (n.clone(), f.clone()))
        .collect();
    let mut tasks = Vec::new();
    {
        let reporter = reporter.clone();
        let pending = pending.clone();
        tasks.push(tokio::spawn(async move {
            for (name, flag) in unchecked {
                flag.store(true, Ordering::Release);
                reporter.set_service_status(&name, ServingStatus::Serving).await;
            }
            if pending.load(Ordering::Acquire) == 0 {
                reporter.set_service_status("", ServingStatus::Serving).await;
            }
        }));
    }
    for (names, check) in checks {
        let reporter = reporter.clone();
        let flags: Vec<(String, Arc<AtomicBool>)> =
            names.iter().filter_map(|n| ready.get(n).map(|f| (n.clone(), f.clone()))).collect();
        let pending = pending.clone();
        let shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match check().await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(services = ?names, error = %e, ?backoff, "not ready yet");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            if shutdown.is_triggered() {
                return;
            }
            for (name, flag) in flags {
                flag.store(true, Ordering::Release);
                reporter.set_service_status(&name, ServingStatus::Serving).await;
                tracing::info!(service = %name, "SERVING");
            }
            if pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                reporter.set_service_status("", ServingStatus::Serving).await;
            }
        }));
    }
    tasks
}
