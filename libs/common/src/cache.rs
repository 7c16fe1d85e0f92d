//! One cache interface over Redis (`REDIS_URL`) or an in-process store (moka) when unset.
//!
//! Reads that fail (Redis down or frozen) come back as errors after a short timeout; the
//! cache-aside helper [`Cache::get_or_load`] treats them as misses and goes to the database, and the
//! `ConnectionManager` reconnects on its own when Redis returns. Callers that keep security state
//! here (lockouts, rate limits, revocation marks) use the raw methods and fail closed on errors.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use redis::{AsyncCommands, aio::ConnectionManager};
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

/// How values are stored in the cache.
#[derive(Debug, Clone, Copy)]
pub struct Codec<T> {
    pub encode: fn(&T) -> Option<Vec<u8>>,
    pub decode: fn(&[u8]) -> Option<T>,
}

/// Opens the platform cache: Redis when a URL is given, else in-process. Every service keys
/// its entries under its own scope of the shared `tt:` namespace.
pub fn open(redis_url: &str) -> Result<Cache, String> {
    if redis_url.is_empty() {
        Ok(Cache::memory(100_000, "tt:"))
    } else {
        Cache::redis(&RedisOptions::new(redis_url), "tt:").map_err(|e| format!("REDIS_URL: {e}"))
    }
}

impl<T: prost::Message + Default> Codec<T> {
    /// Protobuf messages, encoded as on the wire.
    pub fn protobuf() -> Self {
        Self { encode: |v: &T| Some(v.encode_to_vec()), decode: |b: &[u8]| T::decode(b).ok() }
    }
}

/// What an invalidated key holds for [`INVALIDATED_FOR`].
const INVALIDATED: &[u8] = b"\0tt:invalidated";
/// Longer than any load that could have read the value the write replaced: loads are bounded by
/// the call deadline (TT_REQUEST_TIMEOUT, 30 s by default) and the statement timeout (10 s).
const INVALIDATED_FOR: Duration = Duration::from_secs(35);

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
    Redis(ConnectionManager),
    Memory(Arc<Memory>),
}

impl Cache {
    /// Connects lazily to Redis: start-up does not wait for it, and calls fail fast while it is
    /// away.
    pub fn redis(options: &RedisOptions, prefix: &str) -> Result<Self, CacheError> {
        let client = redis::Client::open(options.url.as_str())?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self { backend: Backend::Redis(manager), prefix: prefix.into() })
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
            Backend::Redis(conn) => Ok(conn.clone().get(key).await?),
            Backend::Memory(m) => Ok(m.get(&key).await),
        }
    }

    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis(conn) => {
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                let _: () = conn.clone().pset_ex(key, value, ms).await?;
                Ok(())
            }
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
            Backend::Redis(conn) => {
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                let stored: Option<String> = redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(stored.is_some())
            }
            Backend::Memory(m) => Ok(m.set_if_absent(key, value, ttl).await),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis(conn) => {
                let _: () = conn.clone().del(key).await?;
                Ok(())
            }
            Backend::Memory(m) => {
                m.delete(&key).await;
                Ok(())
            }
        }
    }

    /// Fixed-window counter: adds one and returns the new count and the time left in the window
    /// (which starts at the first increment and lasts `window`).
    pub async fn incr(&self, key: &str, window: Duration) -> Result<(i64, Duration), CacheError> {
        let key = self.key(key);
        let window_ms = crate::clock::millis(window).max(1);
        match &self.backend {
            Backend::Redis(conn) => {
                let (count, ttl): (i64, i64) = redis::Script::new(
                    "local n = redis.call('INCR', KEYS[1]) \
                     if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end \
                     local t = redis.call('PTTL', KEYS[1]) \
                     if t < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) t = tonumber(ARGV[1]) end \
                     return {n, t}",
                )
                .key(key)
                .arg(window_ms)
                .invoke_async(&mut conn.clone())
                .await?;
                Ok((count, Duration::from_millis(u64::try_from(ttl).unwrap_or(0))))
            }
            Backend::Memory(m) => Ok(m.incr(key, window)),
        }
    }

    /// Reads a counter without changing it: (count, time left), or `None` when absent.
    pub async fn counter(&self, key: &str) -> Result<Option<(i64, Duration)>, CacheError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let (count, ttl): (Option<i64>, i64) =
                    redis::pipe().get(&key).pttl(&key).query_async(&mut conn).await?;
                Ok(count.map(|c| (c, Duration::from_millis(u64::try_from(ttl).unwrap_or(0)))))
            }
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
        match self.get(key).await {
            // Invalidated moments ago: read through, and leave the marker in place.
            Ok(Some(bytes)) if bytes == INVALIDATED => {}
            Ok(Some(bytes)) => match (codec.decode)(&bytes) {
                Some(v) => return Ok(v),
                None => tracing::warn!(key, "undecodable cache entry"),
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(key, error = %e, "cache read failed; using the database"),
        }
        let value = load().await?;
        if let Some(bytes) = (codec.encode)(&value)
            && let Err(e) = self.set_if_absent(key, &bytes, ttl).await
        {
            tracing::warn!(key, error = %e, "cache write failed");
        }
        Ok(value)
    }

    /// Invalidation on write: replaces the entry with a short-lived marker rather than deleting
    /// it. A read that loaded the old value before the write cannot store it afterwards
    /// ([`Cache::get_or_load_with`] only fills empty keys), which a plain delete would allow;
    /// reads go to the database until the marker expires. Logs a failure instead of failing the
    /// write (the TTL bounds staleness).
    pub async fn invalidate(&self, key: &str) {
        if let Err(e) = self.set(key, INVALIDATED, INVALIDATED_FOR).await {
            tracing::warn!(key, error = %e, "cache invalidation failed");
        }
    }
}

/// The in-process store: moka for values (bounded, per-entry TTL), a map for counters.
struct Memory {
    values: moka::future::Cache<String, Entry>,
    counters: Mutex<HashMap<String, (i64, Instant)>>,
}

#[derive(Clone)]
struct Entry {
    bytes: Arc<[u8]>,
    ttl: Duration,
}

struct PerEntryTtl;

impl moka::Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, value: &Entry, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        value: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

impl Memory {
    fn new(capacity: u64) -> Self {
        Self {
            values: moka::future::Cache::builder().max_capacity(capacity).expire_after(PerEntryTtl).build(),
            counters: Mutex::new(HashMap::new()),
        }
    }

    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.values.get(key).await.map(|e| e.bytes.to_vec())
    }

    async fn set(&self, key: String, value: &[u8], ttl: Duration) {
        self.values.insert(key, Entry { bytes: value.into(), ttl }).await;
    }

    async fn set_if_absent(&self, key: String, value: &[u8], ttl: Duration) -> bool {
        let entry = self.values.entry(key).or_insert(Entry { bytes: value.into(), ttl }).await;
        entry.is_fresh()
    }

    async fn delete(&self, key: &str) {
        self.values.invalidate(key).await;
        self.lock_counters().remove(key);
    }

    fn lock_counters(&self) -> std::sync::MutexGuard<'_, HashMap<String, (i64, Instant)>> {
        // A poisoned lock only means another thread panicked mid-update of plain integers.
        self.counters.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn incr(&self, key: String, window: Duration) -> (i64, Duration) {
        let now = Instant::now();
        let mut counters = self.lock_counters();
        if counters.len() > 100_000 {
            counters.retain(|_, (_, until)| *until > now);
        }
        let slot = counters.entry(key).or_insert((0, now + window));
        if slot.1 <= now {
            *slot = (0, now + window);
        }
        slot.0 += 1;
        (slot.0, slot.1 - now)
    }

    fn counter(&self, key: &str) -> Option<(i64, Duration)> {
        let now = Instant::now();
        self.lock_counters().get(key).filter(|(_, until)| *until > now).map(|(n, until)| (*n, *until - now))
    }
}

#[cfg(test)]
mod tests {
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
    async fn a_load_racing_an_invalidation_cannot_cache_the_old_value() {
        // Redis when TT_TEST_REDIS_URL is set, in-process otherwise.
        let cache = crate::testing::test_cache();
        let ttl = Duration::from_secs(60);
        // The loader reads the old value; a write invalidates before the loader stores it.
        let stale: Result<u32, ()> = cache
            .get_or_load("k", ttl, || async {
                cache.invalidate("k").await;
                Ok(1)
            })
            .await;
        assert_eq!(stale, Ok(1));
        let fresh: Result<u32, ()> = cache.get_or_load("k", ttl, || async { Ok(2) }).await;
        assert_eq!(fresh, Ok(2), "the old value was not cached after the invalidation");
        // Without a racing write, values are cached as before.
        let first: Result<u32, ()> = cache.get_or_load("j", ttl, || async { Ok(3) }).await;
        let second: Result<u32, ()> = cache.get_or_load("j", ttl, || async { Ok(4) }).await;
        assert_eq!((first, second), (Ok(3), Ok(3)));
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
