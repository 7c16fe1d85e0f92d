//! The one retry loop: retries with backoff before a reply starts, a breaker per endpoint, a
//! fallback chain, and one deadline over all of it.
//!
//! - **Retries** on 429, 5xx, connection failures and a stream that fails before its first
//!   delta, with full-jitter exponential backoff, or exactly the wait the provider asked for
//!   (`Retry-After`). Never on other 4xx, and never once a delta has reached the caller.
//! - **Deadline**: one per call, the sooner of the policy's and the caller's (its remaining gRPC
//!   deadline); retries that cannot finish before it are not tried, and a reply still streaming
//!   at the deadline ends with [`AiError::DeadlineExceeded`].
//! - **Breaker** per endpoint: open after `failures` failures in a row, failing at once while
//!   open; after the cool-down one probe goes through, and its outcome closes or re-opens it.
//! - **Fallback**: the next endpoint of the chain on an open breaker, retries exhausted, a
//!   stall, or a prompt too long for the model. The completion names who answered and whether
//!   it was a fallback.
//! - [`ReliableEmbedder`] puts an embedder behind the same loop and a breaker of its own.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use futures::{StreamExt, future::BoxFuture};
use tt_common::clock::{Millis, SharedClock};

use crate::{
    chat::{ChatEvent, ChatProvider, ChatRequest, ChatStream},
    embed::Embedder,
    error::AiError,
    safety::Redaction,
};

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries per endpoint, the first included.
    pub attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// The whole call, retries, fallbacks and streaming included.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(8),
            deadline: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BreakerPolicy {
    /// Failed attempts in a row that open the breaker. Each retry counts, so keep it above
    /// [`RetryPolicy::attempts`] or one call's retries stop at the breaker.
    pub failures: u32,
    /// How long it stays open before a probe.
    pub cool_down: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self { failures: 5, cool_down: Duration::from_secs(30) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Millis,
    },
    /// One probe is in flight; everyone else fails fast.
    Probing,
}

/// The breaker of one endpoint.
#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
    policy: BreakerPolicy,
    clock: SharedClock,
}

/// Leave to call the endpoint; settle it with the outcome. Dropped unsettled (the caller went
/// away), a probe lets the next call probe instead.
struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    settled: bool,
}

impl Breaker {
    pub fn new(policy: BreakerPolicy, clock: SharedClock) -> Self {
        Self { state: Mutex::new(State::Closed { failures: 0 }), policy, clock }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the breaker lets calls through now.
    pub fn is_open(&self) -> bool {
        !matches!(*self.lock(), State::Closed { .. })
    }

    /// A permit, or how long until a probe may go when open.
    fn admit(&self) -> Result<Permit<'_>, Duration> {
        let mut state = self.lock();
        let now = self.clock.now_ms();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } if now >= until => {
                *state = State::Probing;
                true
            }
            State::Open { until } => {
                return Err(Duration::from_millis(u64::try_from(until - now).unwrap_or(0)));
            }
            State::Probing => return Err(Duration::ZERO),
        };
        Ok(Permit { breaker: self, probe, settled: false })
    }
}

impl Permit<'_> {
    fn settle(mut self, ok: bool) {
        self.settled = true;
        let mut state = self.breaker.lock();
        let policy = self.breaker.policy;
        *state = match (*state, ok) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < policy.failures => {
                State::Closed { failures: failures + 1 }
            }
            (_, false) => {
                let until = self.breaker.clock.now_ms() + tt_common::clock::millis(policy.cool_down);
                State::Open { until }
            }
        };
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            *self.breaker.lock() = State::Open { until: self.breaker.clock.now_ms() };
        }
    }
}

/// Whether an error says the endpoint is failing (rather than that the request was wrong).
fn is_endpoint_failure(e: &AiError) -> bool {
    matches!(
        e,
        AiError::RateLimited { .. }
            | AiError::Unavailable { .. }
            | AiError::Stalled { .. }
            | AiError::Truncated { .. }
    )
}

/// Whether the next endpoint of the chain may do better.
fn falls_back(e: &AiError) -> bool {
    is_endpoint_failure(e) || matches!(e, AiError::ContextLength { .. } | AiError::BreakerOpen { .. })
}

struct Link {
    provider: Arc<dyn ChatProvider>,
    breaker: Breaker,
}

/// Providers behind one retry loop, tried in order.
pub struct Reliable {
    links: Vec<Link>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Reliable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.links.iter().map(|l| l.provider.name()).collect();
        f.debug_struct("Reliable").field("chain", &names).field("retry", &self.retry).finish()
    }
}

impl Reliable {
    /// `chain`: the first provider, then its fallbacks in order.
    pub fn new(
        chain: Vec<Arc<dyn ChatProvider>>,
        retry: RetryPolicy,
        breaker: BreakerPolicy,
        clock: SharedClock,
    ) -> Self {
        let links = chain
            .into_iter()
            .map(|provider| Link { provider, breaker: Breaker::new(breaker, clock.clone()) })
            .collect();
        Self { links, retry }
    }

    /// The breaker of the chain's `index`th provider.
    pub fn breaker(&self, index: usize) -> Option<&Breaker> {
        self.links.get(index).map(|l| &l.breaker)
    }

    /// A reply from the first provider that gives one before `caller_deadline` (and the
    /// policy's deadline). A model the request names applies to the first provider; fallbacks
    /// use their own.
    pub async fn stream_until(
        &self,
        request: ChatRequest,
        caller_deadline: Option<Instant>,
    ) -> Result<ChatStream, AiError> {
        let own = Instant::now() + self.retry.deadline;
        let deadline = caller_deadline.map_or(own, |d| d.min(own));
        let mut last = AiError::Unavailable {
            provider: "chain".into(),
            detail: "no providers".into(),
            retry_after: None,
        };
        for (i, link) in self.links.iter().enumerate() {
            let request =
                if i == 0 { request.clone() } else { ChatRequest { model: None, ..request.clone() } };
            match self.start(link, request, deadline).await {
                Ok(stream) => return Ok(finish(stream, i > 0, deadline)),
                Err(e) if falls_back(&e) => {
                    tracing::warn!(provider = link.provider.name(), error = %e, "falling back to the next provider");
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// One endpoint's retry loop, up to the reply's first event.
    async fn start(
        &self,
        link: &Link,
        request: ChatRequest,
        deadline: Instant,
    ) -> Result<ChatStream, AiError> {
        let provider = link.provider.as_ref();
        retrying(provider.name(), &link.breaker, &self.retry, deadline, AiError::is_retryable, || {
            first_event(provider, request.clone())
        })
        .await
    }
}

/// The one retry loop: `call` through `breaker` until it succeeds, fails for good (not
/// `retryable`), has had its attempts, or could not finish a retry before `deadline`.
pub(crate) async fn retrying<T, F, Fut>(
    name: &str,
    breaker: &Breaker,
    retry: &RetryPolicy,
    deadline: Instant,
    retryable: fn(&AiError) -> bool,
    mut call: F,
) -> Result<T, AiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AiError>>,
{
    let mut attempt = 0;
    loop {
        let permit = breaker
            .admit()
            .map_err(|wait| AiError::BreakerOpen { provider: name.to_owned(), retry_after: Some(wait) })?;
        let left = deadline.saturating_duration_since(Instant::now());
        let error = match tokio::time::timeout(left, call()).await {
            Ok(Ok(value)) => {
                permit.settle(true);
                return Ok(value);
            }
            Ok(Err(e)) => {
                permit.settle(!is_endpoint_failure(&e));
                e
            }
            // The call's time ran out, which says nothing of the endpoint (its own timeouts
            // do): the count stands, and a probe lets the next call probe.
            Err(_) => {
                drop(permit);
                AiError::DeadlineExceeded
            }
        };
        attempt += 1;
        if !retryable(&error) || attempt >= retry.attempts {
            return Err(error);
        }
        let wait = error.retry_after().unwrap_or_else(|| {
            tt_common::client::backoff(attempt - 1, retry.backoff_base, retry.backoff_max)
        });
        if Instant::now() + wait >= deadline {
            return Err(error);
        }
        tracing::debug!(provider = name, attempt, wait_ms = wait.as_millis(), error = %error, "retrying");
        tokio::time::sleep(wait).await;
    }
}

/// Starts a reply and waits for its first event: a reply that fails before saying anything is
/// a failed start (and may be retried); after that the stream belongs to the caller.
async fn first_event(provider: &dyn ChatProvider, request: ChatRequest) -> Result<ChatStream, AiError> {
    let mut stream = provider.stream(request).await?;
    match stream.next().await {
        Some(Ok(first)) => Ok(futures::stream::once(async move { Ok(first) }).chain(stream).boxed()),
        Some(Err(e)) => Err(e),
        None => Err(AiError::Truncated { provider: provider.name().to_owned() }),
    }
}

/// The caller's stream: marks a fallback's completion and ends at the deadline.
fn finish(stream: ChatStream, fallback: bool, deadline: Instant) -> ChatStream {
    let deadline = tokio::time::Instant::from_std(deadline);
    futures::stream::unfold(Some(stream), move |stream| async move {
        let mut stream = stream?;
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => Some((Err(AiError::DeadlineExceeded), None)),
            Ok(None) => None,
            Ok(Some(Ok(ChatEvent::Done(mut completion)))) => {
                completion.fallback = fallback;
                Some((Ok(ChatEvent::Done(completion)), Some(stream)))
            }
            Ok(Some(item)) => Some((item, Some(stream))),
        }
    })
    .boxed()
}

impl ChatProvider for Reliable {
    fn name(&self) -> &str {
        self.links.first().map_or("chain", |l| l.provider.name())
    }

    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatStream, AiError>> {
        Box::pin(self.stream_until(request, None))
    }
}

/// An embedder behind the retry loop and a breaker of its own, its inputs redacted first.
pub struct ReliableEmbedder {
    inner: Arc<dyn Embedder>,
    retry: RetryPolicy,
    breaker: Breaker,
    redaction: Redaction,
}

impl std::fmt::Debug for ReliableEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReliableEmbedder").field("model", &self.inner.model()).finish_non_exhaustive()
    }
}

impl ReliableEmbedder {
    pub fn new(
        inner: Arc<dyn Embedder>,
        retry: RetryPolicy,
        breaker: BreakerPolicy,
        clock: SharedClock,
        redaction: Redaction,
    ) -> Self {
        Self { inner, retry, breaker: Breaker::new(breaker, clock), redaction }
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    async fn embed_reliably(&self, inputs: Vec<String>) -> Result<Vec<Vec<f32>>, AiError> {
        let inputs: Vec<String> = inputs.iter().map(|t| self.redaction.text(t).0).collect();
        let deadline = Instant::now() + self.retry.deadline;
        let inner = self.inner.as_ref();
        retrying(inner.model(), &self.breaker, &self.retry, deadline, AiError::is_retryable, || {
            inner.embed(inputs.clone())
        })
        .await
    }
}

impl Embedder for ReliableEmbedder {
    fn model(&self) -> &str {
        self.inner.model()
    }

    fn dimension(&self) -> usize {
        self.inner.dimension()
    }

    fn embed(&self, inputs: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, AiError>> {
        Box::pin(self.embed_reliably(inputs))
    }
}

#[cfg(test)]
mod tests {
    use tt_common::clock::ManualClock;

    use super::*;

    fn down() -> AiError {
        AiError::Unavailable { provider: "a".into(), detail: "503".into(), retry_after: None }
    }

    async fn attempt(breaker: &Breaker, within: Duration, outcome: Option<AiError>) -> Result<(), AiError> {
        let once = RetryPolicy { attempts: 1, ..RetryPolicy::default() };
        retrying("a", breaker, &once, Instant::now() + within, AiError::is_retryable, || {
            let outcome = outcome.clone();
            async move {
                match outcome {
                    Some(e) => Err(e),
                    // Hangs past the deadline.
                    None => futures::future::pending().await,
                }
            }
        })
        .await
    }

    #[tokio::test]
    async fn an_attempt_cut_by_the_deadline_counts_neither_as_a_failure_nor_as_a_success() {
        let clock = Arc::new(ManualClock::new());
        let policy = BreakerPolicy { failures: 2, cool_down: Duration::from_secs(30) };
        let breaker = Breaker::new(policy, Arc::clone(&clock) as SharedClock);
        let long = Duration::from_secs(5);
        assert!(attempt(&breaker, long, Some(down())).await.is_err());
        let cut = attempt(&breaker, Duration::from_millis(20), None).await;
        assert!(matches!(cut, Err(AiError::DeadlineExceeded)), "{cut:?}");
        assert!(!breaker.is_open());
        assert!(attempt(&breaker, long, Some(down())).await.is_err());
        assert!(breaker.is_open(), "the first failure still counted: two in a row open it");
        // After the cool-down, a probe cut by its deadline lets the next call probe.
        clock.advance(Duration::from_secs(31));
        let probe = attempt(&breaker, Duration::from_millis(20), None).await;
        assert!(matches!(probe, Err(AiError::DeadlineExceeded)), "{probe:?}");
        assert!(
            matches!(attempt(&breaker, long, Some(down())).await, Err(AiError::Unavailable { .. })),
            "probed again"
        );
        assert!(breaker.is_open());
    }
}
