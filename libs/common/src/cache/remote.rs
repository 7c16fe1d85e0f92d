//! The Redis backend: each cache operation as Redis commands, through the resilient connection
//! (`resilient.rs`) and, when there is one, the near cache in front (`near.rs`). Keys arrive
//! already prefixed.

use std::time::Duration;

use redis::{AsyncCommands, aio::ConnectionManager};

use super::{
    CacheError, RedisOptions, Window,
    near::{self, Near},
    resilient::Redis,
    scripts::{ADD_IN_WINDOW, ADJUST, INVALIDATED, INVALIDATED_FOR, REPLACE_IF},
};

pub(super) struct Remote {
    redis: Redis,
    /// In-process copy of Redis values (see `near.rs`).
    pub(super) near: Option<std::sync::Arc<Near>>,
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Remote {
    /// Connects lazily: start-up does not wait for Redis, and calls fail fast while it is away.
    /// With `near_capacity`, a near cache of that many entries (its subscriber needs a Tokio
    /// runtime).
    pub(super) fn connect(options: &RedisOptions, near_capacity: Option<u64>) -> Result<Self, CacheError> {
        let client = redis::Client::open(options.url.as_str())?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        let near = near_capacity
            .map(|capacity| Near::start(client, manager.clone(), capacity, options.connect_timeout));
        Ok(Self { redis: Redis::new(manager), near })
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let read = || self.redis.run(|mut c| async move { c.get::<_, Option<Vec<u8>>>(key).await });
        let Some(near) = &self.near else { return read().await };
        if let Some(value) = near.get(key) {
            return Ok(Some(value));
        }
        let epoch = near.epoch();
        let value: Option<Vec<u8>> = read().await?;
        // Markers are never kept near: a load must see the current one.
        if let Some(v) = value.as_deref().filter(|v| !v.starts_with(INVALIDATED)) {
            near.fill(key, v, epoch);
        }
        Ok(value)
    }

    pub(super) async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let ms = ttl_ms(ttl);
        self.redis.run(|mut c| async move { c.pset_ex::<_, _, ()>(key, value, ms).await }).await?;
        self.changed(key).await;
        Ok(())
    }

    pub(super) async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let ms = ttl_ms(ttl);
        let stored: Option<String> = self
            .redis
            .run(|mut c| {
                let mut cmd = redis::cmd("SET");
                cmd.arg(key).arg(value).arg("NX").arg("PX").arg(ms);
                async move { cmd.query_async(&mut c).await }
            })
            .await?;
        Ok(stored.is_some())
    }

    pub(super) async fn replace_if(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let ms = ttl_ms(ttl);
        let script = redis::Script::new(REPLACE_IF);
        let stored: Option<String> = self
            .redis
            .run(|mut c| {
                let mut call = script.key(key);
                call.arg(expected).arg(value).arg(ms);
                async move { call.invoke_async(&mut c).await }
            })
            .await?;
        Ok(stored.is_some())
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.redis.run(|mut c| async move { c.del::<_, ()>(key).await }).await?;
        self.changed(key).await;
        Ok(())
    }

    pub(super) async fn add_within(
        &self,
        key: &str,
        amount: i64,
        limit: Option<i64>,
        window: Duration,
    ) -> Result<Window, CacheError> {
        let script = redis::Script::new(ADD_IN_WINDOW);
        let (added, count, ttl): (i64, i64, i64) = self
            .redis
            .run(|mut c| {
                let mut call = script.key(key);
                call.arg(amount).arg(ttl_ms(window)).arg(limit.map_or(-1, |l| l.max(0)));
                async move { call.invoke_async(&mut c).await }
            })
            .await?;
        Ok(Window { added: added == 1, count, left: Duration::from_millis(u64::try_from(ttl).unwrap_or(0)) })
    }

    pub(super) async fn adjust(&self, key: &str, delta: i64) -> Result<Option<i64>, CacheError> {
        let script = redis::Script::new(ADJUST);
        self.redis
            .run(|mut c| {
                let mut call = script.key(key);
                call.arg(delta);
                async move { call.invoke_async(&mut c).await }
            })
            .await
    }

    pub(super) async fn counter(&self, key: &str) -> Result<Option<(i64, Duration)>, CacheError> {
        let (count, ttl): (Option<i64>, i64) = self
            .redis
            .run(|mut c| {
                let mut pipe = redis::pipe();
                pipe.get(key).pttl(key);
                async move { pipe.query_async(&mut c).await }
            })
            .await?;
        Ok(count.map(|c| (c, Duration::from_millis(u64::try_from(ttl).unwrap_or(0)))))
    }

    /// Whether a read of `key` must skip the cache: its invalidation has not reached Redis yet
    /// (after redoing the waiting invalidations, if Redis answers now).
    pub(super) async fn must_skip(&self, key: &str) -> bool {
        self.redo_lost().await;
        self.redis.must_skip(key)
    }

    /// Replaces `keys` by `marker` (and drops them near, on every replica); remembered and
    /// redone later when Redis cannot be reached.
    pub(super) async fn invalidate(&self, keys: &[String], marker: &[u8]) {
        self.redo_lost().await;
        if let Err(e) = self.mark_invalidated(keys, marker).await {
            tracing::warn!(keys = ?keys, error = %e, "cache invalidation failed; redone when redis answers");
            self.redis.lost(keys);
        }
        if let Some(near) = &self.near {
            keys.iter().for_each(|key| near.forget(key));
        }
    }

    /// A write of `key` went through: drop it near, here and on every replica.
    async fn changed(&self, key: &str) {
        if let Some(near) = &self.near {
            near.changed(key).await;
        }
    }

    /// Writes invalidation markers (and near-cache invalidations) for `keys` in one round trip.
    async fn mark_invalidated(&self, keys: &[String], marker: &[u8]) -> Result<(), CacheError> {
        let ms = ttl_ms(INVALIDATED_FOR);
        let publish = self.near.is_some();
        self.redis
            .run(|mut c| {
                let mut pipe = redis::pipe();
                for key in keys {
                    pipe.pset_ex(key, marker, ms).ignore();
                    if publish {
                        pipe.publish(near::CHANNEL, key).ignore();
                    }
                }
                async move { pipe.query_async::<()>(&mut c).await }
            })
            .await
    }

    /// Redoes invalidations that did not reach Redis, if any (kept for later if it still fails).
    async fn redo_lost(&self) {
        if !self.redis.has_lost() {
            return;
        }
        let keys = self.redis.take_lost();
        match self.mark_invalidated(&keys, &super::marker()).await {
            Ok(()) => tracing::info!(keys = keys.len(), "cache invalidations redone after a redis outage"),
            Err(_) => self.redis.lost(&keys),
        }
    }
}
