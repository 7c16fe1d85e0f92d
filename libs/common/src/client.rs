//! Peer clients: how one service calls another.
//!
//! [`Peer`] connects lazily (start-up order does not matter), stamps every call with a deadline
//! (the caller's remaining deadline when inside a call, capped by the peer's own timeout), the
//! trace context and a bearer token (the caller's, forwarded, or a service token), and retries
//! only UNAVAILABLE with exponential backoff, full jitter and a retry budget shared by all calls
//! to that peer.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use http::{HeaderValue, Request};
use tonic::{
    Code, Status,
    body::Body,
    transport::{Channel, Endpoint},
};
use tower_service::Service;

use crate::call::current_call;

/// How a peer call authenticates.
#[derive(Clone)]
pub enum Credentials {
    /// No token (public methods such as ListPublicKeys).
    None,
    /// The token of the call being served, passed on.
    Forward,
    /// A token of this service's own.
    Service(Arc<dyn TokenProvider>),
}

/// Supplies service tokens (cached and renewed by the implementation).
pub trait TokenProvider: Send + Sync {
    fn token(&self) -> BoxFuture<'_, Result<String, Status>>;
}

/// Peer settings.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    pub url: String,
    /// Deadline of a call when the caller has none shorter.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts after the first.
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl PeerOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            max_retries: 3,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_secs(1),
        }
    }
}

/// A peer service endpoint. Cheap to clone; clones share the connection and retry budget.
#[derive(Clone)]
pub struct Peer {
    channel: Channel,
    options: Arc<PeerOptions>,
    credentials: Credentials,
    budget: Arc<RetryBudget>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("url", &self.options.url).finish()
    }
}

/// A peer URL that is not one.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {source}")]
pub struct PeerError {
    pub url: String,
    pub source: tonic::transport::Error,
}

impl Peer {
    /// Creates the peer without connecting.
    pub fn connect_lazy(options: PeerOptions, credentials: Credentials) -> Result<Self, PeerError> {
        let endpoint = Endpoint::from_shared(options.url.clone())
            .map_err(|source| PeerError { url: options.url.clone(), source })?
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        Ok(Self {
            channel: endpoint.connect_lazy(),
            options: Arc::new(options),
            credentials,
            budget: Arc::new(RetryBudget::new()),
        })
    }

    /// The transport to build a generated client on: `FooClient::new(peer.channel())`.
    pub fn channel(&self) -> PeerChannel {
        PeerChannel { inner: self.channel.clone(), credentials: self.credentials.clone() }
    }

    /// Runs one call with deadline, retries and budget. `call` is invoked once per attempt with
    /// a fresh transport, so it must build its request each time.
    pub async fn call<T, F, Fut>(&self, mut call: F) -> Result<T, Status>
    where
        F: FnMut(PeerChannel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let own = Instant::now() + self.options.timeout;
        let deadline = current_call().map_or(own, |c| c.deadline.min(own));
        self.budget.deposit();
        let mut attempt = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Status::deadline_exceeded("deadline exceeded before calling peer"));
            }
            let fut = ATTEMPT_DEADLINE.scope(remaining, call(self.channel()));
            let result = match tokio::time::timeout(remaining, fut).await {
                Ok(r) => r,
                Err(_) => Err(Status::deadline_exceeded("peer call timed out")),
            };
            match result {
                Ok(response) => return Ok(response.into_inner()),
                Err(status)
                    if status.code() == Code::Unavailable
                        && attempt < self.options.max_retries
                        && self.budget.withdraw() =>
                {
                    let delay = backoff(attempt, self.options.backoff_base, self.options.backoff_max);
                    tracing::debug!(peer = %self.options.url, attempt, ?delay, "retrying UNAVAILABLE");
                    if Instant::now() + delay >= deadline {
                        return Err(status);
                    }
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(status) => return Err(status),
            }
        }
    }
}

tokio::task_local! {
    static ATTEMPT_DEADLINE: Duration;
}

/// Full-jitter exponential backoff: a random wait up to `base` doubled `attempt` times, at most
/// `max`.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let cap = base.saturating_mul(2u32.saturating_pow(attempt)).min(max);
    let ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(rand::random_range(0..=ms))
}

/// Retries may add at most 10% to the calls made, plus a small reserve.
struct RetryBudget {
    /// Thousandths of a retry token.
    balance: AtomicI64,
}

impl RetryBudget {
    const CAP: i64 = 10_000;

    fn new() -> Self {
        Self { balance: AtomicI64::new(Self::CAP) }
    }

    fn deposit(&self) {
        let _ = self
            .balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| Some((b + 100).min(Self::CAP)));
    }

    fn withdraw(&self) -> bool {
        self.balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| (b >= 1000).then_some(b - 1000))
            .is_ok()
    }
}

/// The transport under generated clients: adds `grpc-timeout`, trace context and the bearer.
#[derive(Clone)]
pub struct PeerChannel {
    inner: Channel,
    credentials: Credentials,
}

impl Service<Request<Body>> for PeerChannel {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        if let Ok(remaining) = ATTEMPT_DEADLINE.try_with(|d| *d) {
            let ms = remaining.as_millis().clamp(1, 99_999_999);
            if let Ok(v) = HeaderValue::from_str(&format!("{ms}m")) {
                req.headers_mut().insert("grpc-timeout", v);
            }
        }
        crate::telemetry::inject_context(req.headers_mut());
        if let Some(call) = current_call()
            && let Ok(v) = HeaderValue::from_str(&call.request_id)
        {
            req.headers_mut().insert("x-request-id", v);
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let credentials = self.credentials.clone();
        Box::pin(async move {
            let token = match &credentials {
                Credentials::None => None,
                Credentials::Forward => current_call().and_then(|c| c.bearer),
                Credentials::Service(provider) => provider.token().await.ok(),
            };
            if let Some(token) = token
                && let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}"))
            {
                req.headers_mut().insert(http::header::AUTHORIZATION, v);
            }
            inner.call(req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_limits_retries() {
        let b = RetryBudget::new();
        let mut granted = 0;
        while b.withdraw() {
            granted += 1;
        }
        assert_eq!(granted, 10);
        for _ in 0..10 {
            b.deposit();
        }
        assert!(b.withdraw());
        assert!(!b.withdraw());
    }

    #[test]
    fn backoff_is_bounded() {
        for attempt in 0..20 {
            assert!(
                backoff(attempt, Duration::from_millis(25), Duration::from_secs(1)) <= Duration::from_secs(1)
            );
        }
    }
}
