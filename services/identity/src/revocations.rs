//! The revocation feed's source: identity reads its `revocations` table and streams what it
//! finds to every verifier (`RevocationService.WatchRevocations`, and identity's own verifier
//! in process).
//!
//! One poll loop per process reads the marks written in the last minute (marks are written with
//! the writer's clock before its transaction commits, so a window rather than a cursor: a slow
//! commit is still seen) every `poll` (250 ms), or at once when this process revoked something;
//! new or moved marks go to every subscriber through a broadcast channel, and a heartbeat goes
//! out every second while the database answers. A subscriber that falls behind gets a fresh
//! snapshot. Other replicas' revocations are seen at their next poll.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tt_common::error::Reason;

use futures::{StreamExt, future::BoxFuture, stream::BoxStream};
use tokio::sync::{Notify, broadcast};
use tonic::Status;
use tt_common::{
    auth::{RevocationSource, SubjectKeys},
    clock::{Millis, SharedClock, millis},
};
use tt_proto::identity::v1::{Revocation, WatchRevocationsResponse};

use crate::{DOMAIN, store::Store};

/// How far back each poll reads: commits later than this after their mark was taken are missed.
const OVERLAP: Duration = Duration::from_secs(60);

/// A heartbeat goes out at least this often while the database answers.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// What the poll loop knows.
struct State {
    /// Subject key to mark, for marks younger than the window.
    marks: HashMap<[u8; 16], Millis>,
    /// The newest mark seen.
    watermark: Millis,
    /// When the last poll succeeded.
    read_at: Option<Instant>,
}

/// The feed's source inside identity.
pub struct RevocationHub {
    store: Store,
    keys: SubjectKeys,
    clock: SharedClock,
    /// Marks older than this are no longer relevant (no token that old is still valid).
    window: Duration,
    poll: Duration,
    state: Mutex<State>,
    updates: broadcast::Sender<Vec<Revocation>>,
    wake: Notify,
    loaded: Notify,
    /// Verifiers in this process, updated before [`RevocationHub::sync`] returns, so the
    /// process that revoked honours it before its RPC answers.
    attached: Mutex<Vec<std::sync::Weak<tt_common::auth::Revocations>>>,
}

impl std::fmt::Debug for RevocationHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationHub").field("window", &self.window).finish()
    }
}

impl RevocationHub {
    pub fn new(
        store: Store,
        keys: SubjectKeys,
        clock: SharedClock,
        window: Duration,
        poll: Duration,
    ) -> Arc<Self> {
        let (updates, _) = broadcast::channel(256);
        Arc::new(Self {
            store,
            keys,
            clock,
            window,
            poll,
            state: Mutex::new(State { marks: HashMap::new(), watermark: 0, read_at: None }),
            updates,
            wake: Notify::new(),
            loaded: Notify::new(),
            attached: Mutex::new(Vec::new()),
        })
    }

    pub fn keys(&self) -> &SubjectKeys {
        &self.keys
    }

    /// Updates `revocations` (a verifier in this process) directly as well as through its feed.
    pub fn attach(&self, revocations: Arc<tt_common::auth::Revocations>) {
        let mut attached = self.attached.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        attached.retain(|w| w.strong_count() > 0);
        attached.push(Arc::downgrade(&revocations));
    }

    /// Reads the revocations now (after this process committed one) and hands what changed to
    /// this process's verifiers and every subscriber before returning. A failed read is logged:
    /// the next poll finds the mark, which is committed.
    pub async fn sync(&self) {
        match self.poll_once().await {
            Ok(changed) if !changed.is_empty() => {
                let _ = self.updates.send(changed);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading revocations failed; the next poll retries");
                self.wake.notify_one();
            }
        }
    }

    /// Polls forever (start it once the migrations ran).
    pub async fn run(self: Arc<Self>) {
        let mut last_beat = Instant::now();
        loop {
            match self.poll_once().await {
                Ok(changed) if !changed.is_empty() || last_beat.elapsed() >= HEARTBEAT => {
                    last_beat = Instant::now();
                    // No subscriber is not an error.
                    let _ = self.updates.send(changed);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading revocations failed; verifiers will see the feed age")
                }
            }
            let _ = tokio::time::timeout(self.poll, self.wake.notified()).await;
        }
    }

    /// Reads recent marks; returns those that are new or moved.
    async fn poll_once(&self) -> Result<Vec<Revocation>, tt_common::storage::StorageError> {
        let now = self.clock.now_ms();
        let horizon = now - millis(self.window);
        let since = {
            let state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if state.read_at.is_none() { horizon } else { (state.watermark - millis(OVERLAP)).max(horizon) }
        };
        let rows = self.store.revocations_since(since).await?;
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut changed = Vec::new();
        for (subject, at) in rows {
            let key = self.keys.of(&subject);
            let known = state.marks.get(&key).copied();
            if known.is_none_or(|k| k < at) {
                state.marks.insert(key, at);
                changed.push(Revocation { subject_key: key.to_vec(), valid_after_ms: at });
            }
            state.watermark = state.watermark.max(at);
        }
        state.marks.retain(|_, at| *at > horizon);
        let first = state.read_at.is_none();
        state.read_at = Some(Instant::now());
        drop(state);
        if first {
            self.loaded.notify_waiters();
        }
        if !changed.is_empty() {
            let message = self.update(changed.clone());
            let attached = self.attached.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for verifier in attached.iter().filter_map(std::sync::Weak::upgrade) {
                if let Err(e) = verifier.apply(&message, now) {
                    tracing::error!(error = %e, "a verifier in this process refused the revocations");
                }
            }
        }
        Ok(changed)
    }

    /// The current set as a feed message, or `None` before the first successful read.
    fn snapshot(&self) -> Option<WatchRevocationsResponse> {
        let state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let read_at = state.read_at?;
        Some(WatchRevocationsResponse {
            revocations: state
                .marks
                .iter()
                .map(|(k, at)| Revocation { subject_key: k.to_vec(), valid_after_ms: *at })
                .collect(),
            snapshot: true,
            staleness_ms: staleness(read_at),
            key_check: self.keys.check_value(),
        })
    }

    fn update(&self, revocations: Vec<Revocation>) -> WatchRevocationsResponse {
        let read_at = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).read_at;
        WatchRevocationsResponse {
            revocations,
            snapshot: false,
            staleness_ms: read_at.map_or(i64::MAX, staleness),
            key_check: self.keys.check_value(),
        }
    }

    /// The feed: the snapshot (waiting up to a few seconds for the first read), then updates
    /// and heartbeats; a fresh snapshot whenever this subscriber fell behind.
    pub async fn watch(
        self: Arc<Self>,
    ) -> Result<BoxStream<'static, Result<WatchRevocationsResponse, Status>>, Status> {
        let updates = self.updates.subscribe();
        let first = match self.snapshot() {
            Some(s) => s,
            None => {
                let loaded = self.loaded.notified();
                if self.snapshot().is_none() {
                    let _ = tokio::time::timeout(Duration::from_secs(3), loaded).await;
                }
                self.snapshot().ok_or_else(|| {
                    DOMAIN.status(
                        tonic::Code::Unavailable,
                        Reason::new("REVOCATIONS_LOADING"),
                        "revocations are not loaded yet; retry shortly",
                    )
                })?
            }
        };
        let rest = futures::stream::unfold((self, updates), |(hub, mut updates)| async move {
            let message = match updates.recv().await {
                Ok(revocations) => hub.update(revocations),
                Err(broadcast::error::RecvError::Lagged(_)) => hub.snapshot()?,
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((Ok(message), (hub, updates)))
        });
        Ok(futures::stream::once(async move { Ok(first) }).chain(rest).boxed())
    }
}

fn staleness(read_at: Instant) -> i64 {
    i64::try_from(read_at.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// identity's own verifier follows the hub in process.
#[derive(Debug, Clone)]
pub struct LocalRevocations(pub Arc<RevocationHub>);

impl RevocationSource for LocalRevocations {
    fn watch(
        &self,
    ) -> BoxFuture<'_, Result<BoxStream<'static, Result<WatchRevocationsResponse, Status>>, Status>> {
        Box::pin(self.0.clone().watch())
    }
}
