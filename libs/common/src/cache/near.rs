//! The near cache: a small in-process copy of Redis values in front of Redis, kept coherent
//! across replicas by an invalidation channel.
//!
//! Every write through [`super::Cache`] (set, delete, invalidate) drops the key here and
//! publishes it on [`CHANNEL`]; every replica's subscriber drops it from its own copy. Reads fill
//! the copy only when no invalidation arrived while they were reading from Redis (an epoch
//! counter), so a value being replaced is never kept. While the subscription is down the copy is
//! emptied and bypassed: reads go to Redis. Entries live at most [`NEAR_TTL`], which also bounds
//! staleness if a publish is lost.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use redis::aio::ConnectionManager;

/// The Redis channel carrying invalidated keys.
pub const CHANNEL: &str = "tt:cache:invalidations";
/// Longest life of a near entry.
pub const NEAR_TTL: Duration = Duration::from_secs(10);

pub(crate) struct Near {
    values: moka::sync::Cache<String, Arc<[u8]>>,
    epoch: AtomicU64,
    healthy: AtomicBool,
    publisher: ConnectionManager,
}

impl Near {
    /// Starts the subscriber (needs a Tokio runtime) and returns the near cache.
    pub fn start(
        client: redis::Client,
        publisher: ConnectionManager,
        capacity: u64,
        connect: Duration,
    ) -> Arc<Self> {
        let near = Arc::new(Self {
            values: moka::sync::Cache::builder().max_capacity(capacity).time_to_live(NEAR_TTL).build(),
            epoch: AtomicU64::new(0),
            healthy: AtomicBool::new(false),
            publisher,
        });
        tokio::spawn(subscribe(near.clone(), client, connect));
        near
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        if !self.healthy.load(Ordering::Acquire) {
            return None;
        }
        self.values.get(key).map(|v| v.to_vec())
    }

    /// The epoch to pass to [`Near::fill`], read before reading Redis.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Keeps a value read from Redis unless an invalidation arrived since `epoch`.
    pub fn fill(&self, key: &str, value: &[u8], epoch: u64) {
        if self.healthy.load(Ordering::Acquire) && self.epoch() == epoch {
            self.values.insert(key.to_owned(), value.into());
        }
    }

    /// Drops `key` here.
    pub fn forget(&self, key: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.values.invalidate(key);
    }

    /// Drops `key` here and on every other replica.
    pub async fn changed(&self, key: &str) {
        self.forget(key);
        let published: Result<i64, _> =
            redis::cmd("PUBLISH").arg(CHANNEL).arg(key).query_async(&mut self.publisher.clone()).await;
        if let Err(e) = published {
            tracing::warn!(key, error = %e, "cache invalidation not published; other replicas catch up within 10 s");
        }
    }

    fn down(&self) {
        self.healthy.store(false, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.values.invalidate_all();
    }
}

/// Listens for invalidations for the life of the process, reconnecting after failures.
async fn subscribe(near: Arc<Near>, client: redis::Client, connect: Duration) {
    loop {
        match tokio::time::timeout(connect, client.get_async_pubsub()).await {
            Ok(Ok(mut pubsub)) => match pubsub.subscribe(CHANNEL).await {
                Ok(()) => {
                    near.healthy.store(true, Ordering::Release);
                    let mut messages = pubsub.into_on_message();
                    while let Some(message) = messages.next().await {
                        match message.get_payload::<String>() {
                            Ok(key) => near.forget(&key),
                            Err(_) => near.down(),
                        }
                    }
                    tracing::warn!("cache invalidation channel closed; near cache off until it is back");
                }
                Err(e) => tracing::warn!(error = %e, "cache invalidation channel: subscribe failed"),
            },
            Ok(Err(e)) => tracing::debug!(error = %e, "cache invalidation channel: connect failed"),
            Err(_) => tracing::debug!("cache invalidation channel: connect timed out"),
        }
        near.down();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
