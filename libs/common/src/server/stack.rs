//! The tower stack in front of every service: request id, a span per RPC with the caller's
//! trace context, per-RPC metrics, readiness gating, a global concurrency limit with load
//! shedding, the request timeout (DEADLINE_EXCEEDED), authentication, and a panic guard (a
//! handler that panics answers INTERNAL, logged and counted, instead of resetting the stream).
//! Every status then passes [`super::edge::normalize`] on its way out.
//!
//! It is one service rather than seven layers so the order is explicit and the per-call state
//! (labels, deadline, principal) is computed once.

use crate::error::Reason;
use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use tokio::sync::Semaphore;
use tonic::{Code, body::Body};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

use super::metrics::{CallLabels, ObservedBody, code_of, record, split_path};
use crate::auth::TokenVerifier;
pub use crate::call::{CallContext, current_call};

const DOMAIN: crate::error::Domain = crate::error::Domain::new("server.timetravelers.dev");
const REQUEST_ID: &str = "x-request-id";

/// State shared by every connection.
pub struct StackState {
    pub(super) timeout: Duration,
    pub(super) limit: Arc<Semaphore>,
    pub(super) verifier: Option<Arc<TokenVerifier>>,
    /// Path prefixes that need no token (health, reflection, sign-in methods).
    pub(super) public: Vec<String>,
    /// Per gRPC service: whether its readiness check has passed.
    pub(super) ready: HashMap<String, Arc<AtomicBool>>,
    /// The error domain of each mounted service's module.
    pub(super) domains: HashMap<String, crate::error::Domain>,
}

/// The layer that wraps the router.
#[derive(Clone)]
pub struct PlatformLayer {
    pub(super) state: Arc<StackState>,
}

impl<S> Layer<S> for PlatformLayer {
    type Service = Platform<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Platform { inner, state: self.state.clone() }
    }
}

/// The stack as a service.
#[derive(Clone)]
pub struct Platform<S> {
    inner: S,
    state: Arc<StackState>,
}

impl<S> Service<Request<Body>> for Platform<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is decided per call (load shedding); the router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, inner);
        let state = self.state.clone();
        let started = Instant::now();
        let request_id = request_id(req.headers());
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            req.headers_mut().insert(REQUEST_ID, v);
        }
        let path = req.uri().path().to_owned();
        let (service, method) = split_path(&path);
        let (service, method) = (service.to_owned(), method.to_owned());
        let span = tracing::info_span!(
            "rpc",
            rpc.service = %service,
            rpc.method = %method,
            request_id = %request_id,
            otel.kind = "server",
            rpc.grpc.status_code = tracing::field::Empty,
            enduser.id = tracing::field::Empty,
        );
        crate::telemetry::extract_context(req.headers(), &span);

        let fut = async move {
            let labels = CallLabels { service, method, started };
            let result = serve(inner, &state, req, &labels, request_id.clone()).await;
            let mut response = match result {
                Ok(r) => r,
                Err(status) => status.into_http(),
            };
            super::edge::normalize(response.headers_mut());
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(REQUEST_ID, v);
            }
            // A trailers-only response carries its status in the headers.
            let early = code_of(response.headers());
            if let Some(code) = early {
                tracing::Span::current().record("rpc.grpc.status_code", code as i32);
                record(&labels.service, &labels.method, code, started);
            }
            Ok(response.map(|b| Body::new(ObservedBody::new(b, labels, early.is_some()))))
        };
        Box::pin(fut.instrument(span))
    }
}

async fn serve<S>(
    mut inner: S,
    state: &StackState,
    mut req: Request<Body>,
    labels: &CallLabels,
    request_id: String,
) -> Result<Response<Body>, tonic::Status>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    let infra = is_infrastructure(&labels.service);
    if !infra
        && let Some(ready) = state.ready.get(&labels.service)
        && !ready.load(Ordering::Acquire)
    {
        return Err(DOMAIN.status(
            Code::Unavailable,
            Reason::new("SERVICE_STARTING"),
            "the service is starting; retry shortly",
        ));
    }

    // Health and reflection are never shed, so probes tell the truth under load.
    let _permit = if infra {
        None
    } else {
        Some(state.limit.clone().try_acquire_owned().map_err(|_| {
            DOMAIN.status(
                Code::ResourceExhausted,
                Reason::new("OVERLOADED"),
                "the server is at its concurrency limit; retry with backoff",
            )
        })?)
    };

    // tonic's own header timer runs outside this stack and answers CANCELLED; finishing a
    // little earlier lets the caller see DEADLINE_EXCEEDED, the code the protocol specifies.
    let timeout = grpc_timeout(req.headers()).map_or(state.timeout, |t| {
        t.saturating_sub((t / 10).min(Duration::from_millis(5))).min(state.timeout)
    });
    let deadline = Instant::now() + timeout;

    let bearer = if infra { None } else { bearer(req.headers())? };
    let public = infra || state.public.iter().any(|p| req.uri().path().starts_with(p.as_str()));
    if !public {
        let verifier = state.verifier.as_ref().ok_or_else(|| {
            DOMAIN.status(
                Code::Unauthenticated,
                Reason::new("NO_VERIFIER"),
                "authentication is not configured",
            )
        })?;
        let token = bearer.as_deref().ok_or_else(|| {
            DOMAIN.unauthenticated(
                Reason::new("MISSING_TOKEN"),
                "this method needs `authorization: Bearer <access token>`",
            )
        })?;
        let principal = verifier.verify(token).await.map_err(|e| e.to_status())?;
        tracing::Span::current().record("enduser.id", principal.subject.as_str());
        req.extensions_mut().insert(principal);
    }

    let domain = state.domains.get(&labels.service).copied().unwrap_or(DOMAIN);
    let call = CallContext { deadline, bearer, request_id, domain };
    let fut = crate::call::scope(call, async move {
        match inner.call(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    });
    let guarded = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(fut));
    match tokio::time::timeout(timeout, guarded).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(panic)) => Err(panicked(&labels.service, &labels.method, panic.as_ref())),
        Err(_) => Err(DOMAIN.status(
            Code::DeadlineExceeded,
            Reason::new("DEADLINE_EXCEEDED"),
            "the request timed out",
        )),
    }
}

/// The status of a call whose handler panicked: logged with its cause, counted, INTERNAL.
pub(super) fn panicked(service: &str, method: &str, panic: &(dyn std::any::Any + Send)) -> tonic::Status {
    let cause = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    tracing::error!(rpc.service = service, rpc.method = method, cause = %cause, "handler panicked");
    metrics::counter!(
        "grpc_server_panics_total",
        &[("service", service.to_owned()), ("method", method.to_owned())]
    )
    .increment(1);
    DOMAIN.status(Code::Internal, Reason::new("INTERNAL"), "internal error")
}

fn is_infrastructure(service: &str) -> bool {
    service.starts_with("grpc.health.") || service.starts_with("grpc.reflection.")
}

/// The caller's `x-request-id` when it is sane (visible ASCII, at most 128 bytes), else a new one.
fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(crate::new_id, str::to_owned)
}

/// The bearer token of the call. More than one `authorization` header is ambiguous (which one
/// did the caller mean?) and refused rather than picking one.
fn bearer(headers: &http::HeaderMap) -> Result<Option<String>, tonic::Status> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(DOMAIN.unauthenticated(
            Reason::new("AMBIGUOUS_CREDENTIALS"),
            "send one `authorization` header, not several",
        ));
    }
    let Some((scheme, token)) = first.to_str().ok().and_then(|v| v.split_once(' ')) else {
        return Ok(None);
    };
    Ok(scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned()))
}

/// Parses the gRPC `grpc-timeout` header (`<digits><unit>`).
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers.get("grpc-timeout")?.to_str().ok()?;
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_timeouts_and_bearer() {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-timeout", HeaderValue::from_static("250m"));
        h.insert("authorization", HeaderValue::from_static("bearer abc"));
        assert_eq!(grpc_timeout(&h), Some(Duration::from_millis(250)));
        assert_eq!(bearer(&h).expect("one header").as_deref(), Some("abc"));
        h.append("authorization", HeaderValue::from_static("Bearer other"));
        let refused = bearer(&h).expect_err("two headers");
        assert_eq!(crate::error::reason(&refused).as_deref(), Some("AMBIGUOUS_CREDENTIALS"));
        h.insert("x-request-id", HeaderValue::from_static("req-1"));
        assert_eq!(request_id(&h), "req-1");
        h.insert("x-request-id", HeaderValue::from_static(""));
        assert_ne!(request_id(&h), "");
    }
}
