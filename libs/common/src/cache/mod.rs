//! One cache interface over Redis (`REDIS_URL`) or an in-process store (moka) when unset.
//!
//! Redis is a cache, never the only copy of anything: reads that fail (Redis down or frozen)
//! come back as errors after a short timeout, and then at once while a breaker is open
//! (`resilient.rs`); the cache-aside helper [`Cache::get_or_load`] treats them as misses and goes
//! to the database. Invalidations that cannot reach Redis are remembered and redone when it
//! answers, and their keys bypass the cache until then, so writes go on and nothing stale is
//! served afterwards. A connection Redis dropped is re-opened and the command sent once more.
//! Callers that keep security state here (sign-in lockouts and rate limits) use the raw methods
//! and fail closed on errors.
//!
//! With Redis, a near cache (`near.rs`) keeps recently read values in process, invalidated on
//! every replica through a Redis channel, so hot reads skip the Redis round trip.

use std::{future::Future, sync::Arc, time::Duration};

mod memory;
mod near;
mod remote;
mod resilient;
mod scripts;

use self::{
    memory::Memory,
    remote::Remote,
    scripts::{INVALIDATED, INVALIDATED_FOR},
};
use serde::{Serialize, de::DeserializeOwned};

/// A cache failure: Redis unreachable, too slow or answering nonsense.
#[derive(Debug, thiserror::Error)]
#[error("cache unavailable: {0}")]
pub struct CacheError(String);

impl From<redis::RedisError> for CacheError {
    fn from(e: redis::RedisError) -> Self {
        Self(e.to_string())
    }
}

/// Redis connection settings.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    pub url: String,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

impl RedisOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            connect_timeout: Duration::from_millis(500),
            response_timeout: Duration::from_millis(250),
        }
    }
}

/// A fixed-window counter after an addition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Whether the amount was added (it fitted under the limit).
    pub added: bool,
    pub count: i64,
    /// Until the window ends and the count starts again from zero.
    pub left: Duration,
}

/// How values are stored in the cache.
#[derive(Debug, Clone, Copy)]
pub struct Codec<T> {
    pub encode: fn(&T) -> Option<Vec<u8>>,
    pub decode: fn(&[u8]) -> Option<T>,
}

/// Opens the platform cache: Redis when a URL is given, else in-process. Every service keys
/// its entries under its own scope of the shared `tt:` namespace.
pub fn open(redis_url: &str) -> Result<Cache, CacheError> {
    if redis_url.is_empty() {
        Ok(Cache::memory(100_000, "tt:"))
    } else {
        Cache::redis_near(&RedisOptions::new(redis_url), "tt:", NEAR_CAPACITY)
    }
}

/// Entries of the in-process near cache in front of Redis.
pub const NEAR_CAPACITY: u64 = 10_000;

/// Keys more than one module reads or writes, under the platform cache (unscoped).
pub mod shared {
    /// `ai:limits:<user id>`: a user's daily AI token quota as libs/ai read it from identity;
    /// identity invalidates it when an admin changes the quota.
    pub const AI_LIMITS: &str = "ai:limits:";
}

impl Codec<Vec<u8>> {
    /// The stored bytes as they are (the caller decodes, for example once per distinct value).
    pub fn raw() -> Self {
        Self { encode: |v: &Vec<u8>| Some(v.clone()), decode: |b: &[u8]| Some(b.to_vec()) }
    }
}

impl<T: prost::Message + Default> Codec<T> {
    /// Protobuf messages, encoded as on the wire.
    pub fn protobuf() -> Self {
        Self { encode: |v: &T| Some(v.encode_to_vec()), decode: |b: &[u8]| T::decode(b).ok() }
    }
}

/// The cache handle: cheap to clone, namespaced by a key prefix.
#[derive(Clone)]
pub struct Cache {
    backend: Backend,
    prefix: Arc<str>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backend {
            Backend::Redis(_) => "redis",
            Backend::Memory(_) => "memory",
        };
        f.debug_struct("Cache").field("backend", &kind).field("prefix", &self.prefix).finish()
    }
}

#[derive(Clone)]
enum Backend {
    Redis(Arc<Remote>),
    Memory(Arc<Memory>),
}

/// A marker unique to one invalidation (see [`Cache::invalidate`]).
fn marker() -> Vec<u8> {
    let mut marker = INVALIDATED.to_vec();
    marker.extend_from_slice(crate::new_id().as_bytes());
    marker
}

impl Cache {
    /// Connects lazily to Redis: start-up does not wait for it, and calls fail fast while it is
    /// away.
    pub fn redis(options: &RedisOptions, prefix: &str) -> Result<Self, CacheError> {
        Ok(Self { backend: Backend::Redis(Arc::new(Remote::connect(options, None)?)), prefix: prefix.into() })
    }

    /// Redis with a near cache of `capacity` entries in front (needs a Tokio runtime: it
    /// subscribes to the invalidation channel).
    pub fn redis_near(options: &RedisOptions, prefix: &str, capacity: u64) -> Result<Self, CacheError> {
        let remote = Remote::connect(options, Some(capacity))?;
        Ok(Self { backend: Backend::Redis(Arc::new(remote)), prefix: prefix.into() })
    }

    /// An in-process cache holding at most `capacity` entries.
    pub fn memory(capacity: u64, prefix: &str) -> Self {
        Self { backend: Backend::Memory(Arc::new(Memory::new(capacity))), prefix: prefix.into() }
    }

    /// The same store under a longer prefix (one per service, one per test).
    pub fn scoped(&self, prefix: &str) -> Self {
        Self { backend: self.backend.clone(), prefix: format!("{}{prefix}", self.prefix).into() }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis(r) => r.get(&key).await,
            Backend::Memory(m) => Ok(m.get(&key).await),
        }
    }

    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis(r) => r.set(&key, value, ttl).await,
            Backend::Memory(m) => {
                m.set(key, value, ttl).await;
                Ok(())
            }
        }
    }

    /// Stores `value` only when the key holds nothing (not even an invalidation marker).
    /// Returns whether it was stored.
    pub async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CacheError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis(r) => r.set_if_absent(&key, value, ttl).await,
            Backend::Memory(m) => Ok(m.set_if_absent(key, value, ttl).await),
        }
    }

    /// Stores `value` only while the key still holds `expected`. Returns whether it was stored.
    pub async fn replace_if(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis(r) => r.replace_if(&key, expected, value, ttl).await,
            Backend::Memory(m) => Ok(m.replace_if(key, expected, value, ttl).await),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis(r) => r.delete(&key).await,
            Backend::Memory(m) => {
                m.delete(&key).await;
                Ok(())
            }
        }
    }

    /// Fixed-window counter: adds one and returns the new count and the time left in the window
    /// (which starts at the first increment and lasts `window`).
    pub async fn incr(&self, key: &str, window: Duration) -> Result<(i64, Duration), CacheError> {
        let w = self.add_within(key, 1, None, window).await?;
        Ok((w.count, w.left))
    }

    /// Adds `amount` to a fixed-window counter unless the total would pass `limit`, atomically
    /// (every replica shares the count): a reservation against a budget.
    pub async fn add_within(
        &self,
        key: &str,
        amount: i64,
        limit: Option<i64>,
        window: Duration,
    ) -> Result<Window, CacheError> {
        let key = self.key(key);
        let window = window.max(Duration::from_millis(1));
        match &self.backend {
            Backend::Redis(r) => r.add_within(&key, amount, limit, window).await,
            Backend::Memory(m) => Ok(m.add_within(key, amount, limit, window)),
        }
    }

    /// Adds `delta` (negative too) to a counter whose window has not ended, keeping the window:
    /// settles a reservation. `None` when the window ended (nothing to settle against).
    pub async fn adjust(&self, key: &str, delta: i64) -> Result<Option<i64>, CacheError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis(r) => r.adjust(&key, delta).await,
            Backend::Memory(m) => Ok(m.adjust(&key, delta)),
        }
    }

    /// Reads a counter without changing it: (count, time left), or `None` when absent.
    pub async fn counter(&self, key: &str) -> Result<Option<(i64, Duration)>, CacheError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis(r) => r.counter(&key).await,
            Backend::Memory(m) => Ok(m.counter(&key)),
        }
    }

    /// Cache-aside with JSON values: the cached value when there is one, else `load()` (stored
    /// for `ttl`). Cache failures count as misses, so a Redis outage degrades to the database.
    pub async fn get_or_load<T, E, F, Fut>(&self, key: &str, ttl: Duration, load: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let codec = Codec {
            encode: |v: &T| serde_json::to_vec(v).ok(),
            decode: |b: &[u8]| serde_json::from_slice(b).ok(),
        };
        self.get_or_load_with(key, ttl, codec, load).await
    }

    /// Cache-aside with any encoding (protobuf messages, for example).
    pub async fn get_or_load_with<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        codec: Codec<T>,
        load: F,
    ) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Backend::Redis(r) = &self.backend
            && r.must_skip(&self.key(key)).await
        {
            return load().await; // its invalidation has not reached Redis yet
        }
        // What the key held before the load: the value is stored only if it still holds that.
        let observed = match self.get(key).await {
            Ok(Some(bytes)) if bytes.starts_with(INVALIDATED) => Some(bytes),
            Ok(Some(bytes)) => match (codec.decode)(&bytes) {
                Some(v) => return Ok(v),
                None => {
                    tracing::warn!(key, "undecodable cache entry");
                    Some(bytes)
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(key, error = %e, "cache read failed; using the database");
                return load().await;
            }
        };
        let value = load().await?;
        if let Some(bytes) = (codec.encode)(&value) {
            let stored = match &observed {
                // The marker was set after its write committed, so this load saw that write;
                // a newer write has replaced the marker and the value is not stored.
                Some(marker) => self.replace_if(key, marker, &bytes, ttl).await,
                // A write during the load leaves a marker, and the value is not stored.
                None => self.set_if_absent(key, &bytes, ttl).await,
            };
            if let Err(e) = stored {
                tracing::warn!(key, error = %e, "cache write failed");
            }
        }
        Ok(value)
    }

    /// Invalidation after a write commits: replaces the entry with a marker unique to this
    /// invalidation rather than deleting it. [`Cache::get_or_load_with`] stores a loaded value
    /// only over exactly what it saw before loading (nothing, or a marker), so a read that loaded
    /// the old row before the write cannot cache it afterwards (a plain delete would let it),
    /// while the first read after the write caches the new value at once. Logs a failure instead
    /// of failing the write (the TTL bounds staleness).
    pub async fn invalidate(&self, key: &str) {
        self.invalidate_many(&[key]).await;
    }

    /// [`Cache::invalidate`] for several keys in one Redis round trip (markers, then the near
    /// cache invalidations).
    pub async fn invalidate_many(&self, keys: &[&str]) {
        let marker = marker();
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        match &self.backend {
            Backend::Redis(r) => r.invalidate(&full, &marker).await,
            Backend::Memory(m) => {
                for key in full {
                    m.set(key, &marker, INVALIDATED_FOR).await;
                }
            }
        }
    }
}

#[cfg(test)]
impl Cache {
    fn near(&self) -> Option<&Arc<near::Near>> {
        match &self.backend {
            Backend::Redis(r) => r.near.as_ref(),
            Backend::Memory(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn an_unreachable_redis_degrades_reads_to_the_loader_quickly() {
        // Nothing listens on port 1: every cache call fails fast and the loader answers.
        let cache = Cache::redis(&RedisOptions::new("redis://127.0.0.1:1"), "t:").expect("client");
        let started = Instant::now();
        for _ in 0..3 {
            let v: Result<u32, ()> = cache.get_or_load("k", Duration::from_secs(5), || async { Ok(7) }).await;
            assert_eq!(v, Ok(7));
        }
        assert!(cache.incr("c", Duration::from_secs(1)).await.is_err(), "security state fails closed");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_frozen_redis_times_out_instead_of_hanging() {
        // A server that accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let frozen = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let cache = Cache::redis(&RedisOptions::new(format!("redis://{addr}")), "t:").expect("client");
        let v: Result<u32, ()> = tokio::time::timeout(
            Duration::from_secs(10),
            cache.get_or_load("k", Duration::from_secs(5), || async { Ok(9) }),
        )
        .await
        .expect("no hang");
        assert_eq!(v, Ok(9));
        frozen.abort();
    }

    #[tokio::test]
    async fn near_caches_of_two_replicas_stay_coherent() {
        // Runs on Redis only (TT_TEST_REDIS_URL): two replicas with their own near caches.
        let Ok(url) = std::env::var("TT_TEST_REDIS_URL") else { return };
        let prefix = format!("tt-test:{}:", crate::new_id());
        let a = Cache::redis_near(&RedisOptions::new(url.as_str()), &prefix, 100).expect("a");
        let b = Cache::redis_near(&RedisOptions::new(url.as_str()), &prefix, 100).expect("b");
        let ttl = Duration::from_secs(60);
        let deadline = Instant::now() + Duration::from_secs(5);
        // Wait until both subscriptions are up (a near read then comes from process memory).
        loop {
            a.set("k", b"1", ttl).await.expect("set");
            let _ = b.get("k").await.expect("get");
            if b.near().and_then(|n| n.get(&b.key("k"))).is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "the near cache never filled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A write on replica A reaches B's near copy through the channel.
        a.set("k", b"2", ttl).await.expect("set");
        loop {
            if b.get("k").await.expect("get").as_deref() == Some(&b"2"[..]) {
                break;
            }
            assert!(Instant::now() < deadline, "replica B kept the old value");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Invalidation markers are never kept near: cache-aside on B sees A's invalidation.
        let v: Result<u32, ()> = b.get_or_load("view", ttl, || async { Ok(1) }).await;
        assert_eq!(v, Ok(1));
        a.invalidate("view").await;
        let mut fresh: Result<u32, ()> = Ok(0);
        while Instant::now() < deadline {
            fresh = b.get_or_load("view", ttl, || async { Ok(2) }).await;
            if fresh == Ok(2) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(fresh, Ok(2), "B reloaded after A's invalidation");
    }

    #[tokio::test]
    async fn memory_counter_windows_and_scoping() {
        let cache = Cache::memory(100, "t:");
        let a = cache.scoped("a:");
        let b = cache.scoped("b:");
        assert_eq!(a.incr("k", Duration::from_secs(60)).await.expect("incr").0, 1);
        assert_eq!(a.incr("k", Duration::from_secs(60)).await.expect("incr").0, 2);
        assert_eq!(b.counter("k").await.expect("read"), None);
        a.set("v", b"1", Duration::from_secs(60)).await.expect("set");
        assert_eq!(a.get("v").await.expect("get"), Some(b"1".to_vec()));
        assert_eq!(b.get("v").await.expect("get"), None);
        a.delete("v").await.expect("del");
        assert_eq!(a.get("v").await.expect("get"), None);
    }
}
