//! Redis as a cache that fails well: the connection, a breaker, and invalidations to redo.
//!
//! - **Reconnect and retry once.** The `ConnectionManager` notices a broken connection only when
//!   a command fails on it (a restarted Redis answers the first call with "broken pipe"); a
//!   command that failed because the connection dropped is sent once more on the re-opened one.
//! - **Breaker.** After a failure that says Redis is away (timeout, refused, dropped), calls fail
//!   at once for a short, growing while (250 ms doubling to 5 s) instead of each waiting for its
//!   own timeout; the first call after that tries Redis again. Reads then go to the database
//!   without delay, and security state that must fail closed fails closed just as fast.
//! - **Invalidations are not lost.** An invalidation that could not reach Redis is remembered;
//!   until it is redone (before the next use of Redis, once it answers), reads of that key skip
//!   the cache, so a Redis that comes back with its old data (it was frozen, or a replica took
//!   over) cannot serve what the write replaced. Should more keys wait than [`MAX_LOST`], this
//!   process stops reading the cache for [`LOST_OVERFLOW_BYPASS`], longer than any entry lives.

use std::{
    collections::HashSet,
    future::Future,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{RedisError, RedisResult, aio::ConnectionManager};

use super::CacheError;

/// Keys whose invalidation waits to be redone, at most.
pub const MAX_LOST: usize = 100_000;
/// How long reads skip the cache when more invalidations were lost than can be remembered.
pub const LOST_OVERFLOW_BYPASS: Duration = Duration::from_secs(600);

const BREAK_FIRST: Duration = Duration::from_millis(250);
const BREAK_MAX: Duration = Duration::from_secs(5);

/// Invalidations that did not reach Redis.
#[derive(Default)]
struct Lost {
    keys: HashSet<String>,
    /// Set when `keys` overflowed: reads skip the cache until then.
    bypass_until: Option<Instant>,
}

/// The Redis connection with its breaker and lost invalidations.
pub(super) struct Redis {
    pub(super) conn: ConnectionManager,
    open_until: Mutex<Option<Instant>>,
    failures: AtomicU32,
    lost: Mutex<Lost>,
    /// Whether `lost` holds anything (keys or a bypass): reads check this before the lock.
    pending: AtomicBool,
}

/// Whether an error says Redis is away (rather than that a command was wrong).
fn is_outage(e: &RedisError) -> bool {
    e.is_timeout() || e.is_connection_dropped() || e.is_io_error() || e.is_connection_refusal()
}

impl Redis {
    pub(super) fn new(conn: ConnectionManager) -> Self {
        Self {
            conn,
            open_until: Mutex::new(None),
            failures: AtomicU32::new(0),
            lost: Mutex::new(Lost::default()),
            pending: AtomicBool::new(false),
        }
    }

    /// Runs one command (built afresh per attempt by `op`) through the breaker, once more if the
    /// connection had dropped.
    pub(super) async fn run<T, F, Fut>(&self, op: F) -> Result<T, CacheError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if let Some(until) = *self.open_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
            && Instant::now() < until
        {
            return Err(CacheError("redis is unavailable (failing fast after recent failures)".into()));
        }
        let mut result = op(self.conn.clone()).await;
        if let Err(e) = &result
            && (e.is_connection_dropped() || e.is_io_error())
        {
            tracing::debug!(error = %e, "redis connection dropped; retrying once on a new one");
            result = op(self.conn.clone()).await;
        }
        match result {
            Ok(v) => {
                if self.failures.swap(0, Ordering::AcqRel) > 0 {
                    *self.open_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                    tracing::info!("redis answers again");
                }
                Ok(v)
            }
            Err(e) => {
                if is_outage(&e) {
                    let n = self.failures.fetch_add(1, Ordering::AcqRel);
                    let wait = BREAK_FIRST.saturating_mul(2u32.saturating_pow(n.min(8))).min(BREAK_MAX);
                    *self.open_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(Instant::now() + wait);
                    if n == 0 {
                        tracing::warn!(error = %e, "redis unavailable: reads use the database, security state fails closed");
                    }
                    metrics::counter!("tt_cache_failures_total").increment(1);
                }
                Err(e.into())
            }
        }
    }

    /// Remembers invalidations that did not reach Redis.
    pub(super) fn lost(&self, keys: &[String]) {
        let mut lost = self.lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if lost.keys.len() + keys.len() > MAX_LOST {
            lost.keys.clear();
            lost.bypass_until = Some(Instant::now() + LOST_OVERFLOW_BYPASS);
            self.pending.store(true, Ordering::Release);
            tracing::error!(
                max = MAX_LOST,
                bypass = ?LOST_OVERFLOW_BYPASS,
                "too many cache invalidations could not reach redis: reads skip the cache for a while"
            );
            return;
        }
        lost.keys.extend(keys.iter().cloned());
        self.pending.store(!lost.keys.is_empty() || lost.bypass_until.is_some(), Ordering::Release);
        metrics::gauge!("tt_cache_lost_invalidations").set(lost.keys.len() as f64);
    }

    /// Whether reads of `key` must skip the cache (its invalidation is still to be redone).
    pub(super) fn must_skip(&self, key: &str) -> bool {
        if !self.pending.load(Ordering::Acquire) {
            return false;
        }
        let mut lost = self.lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if lost.bypass_until.is_some_and(|t| Instant::now() >= t) {
            lost.bypass_until = None;
            self.pending.store(!lost.keys.is_empty(), Ordering::Release);
        }
        lost.bypass_until.is_some() || lost.keys.contains(key)
    }

    /// The invalidations to redo now (taken out; put back with [`Redis::lost`] if redoing fails).
    pub(super) fn take_lost(&self) -> Vec<String> {
        if !self.pending.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut lost = self.lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if lost.keys.is_empty() {
            return Vec::new();
        }
        let keys: Vec<String> = lost.keys.drain().collect();
        self.pending.store(lost.bypass_until.is_some(), Ordering::Release);
        metrics::gauge!("tt_cache_lost_invalidations").set(0.0);
        keys
    }

    /// Whether invalidations wait to be redone.
    pub(super) fn has_lost(&self) -> bool {
        self.pending.load(Ordering::Acquire)
            && !self.lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner).keys.is_empty()
    }
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("failures", &self.failures.load(Ordering::Relaxed)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_keys_are_skipped_until_redone_and_overflow_bypasses_everything() {
        let client = redis::Client::open("redis://127.0.0.1:1").expect("client");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        let conn = rt
            .block_on(async {
                ConnectionManager::new_lazy_with_config(client, redis::aio::ConnectionManagerConfig::new())
            })
            .expect("lazy manager");
        let r = Redis::new(conn);
        r.lost(&["a".into(), "b".into()]);
        assert!(r.must_skip("a") && r.must_skip("b") && !r.must_skip("c"));
        let mut taken = r.take_lost();
        taken.sort();
        assert_eq!(taken, ["a", "b"]);
        assert!(!r.must_skip("a") && !r.has_lost());
        let many: Vec<String> = (0..=MAX_LOST).map(|i| i.to_string()).collect();
        r.lost(&many);
        assert!(r.must_skip("anything"), "an overflow bypasses the cache for every key");
        assert!(!r.has_lost(), "and forgets the keys");
    }
}
