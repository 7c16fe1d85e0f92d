//! The in-process backend (the all-in-one's and the tests' cache without Redis).

use super::Window;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// The in-process store: moka for values (bounded, per-entry TTL), a map for counters.
pub(super) struct Memory {
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
    pub(super) fn new(capacity: u64) -> Self {
        Self {
            values: moka::future::Cache::builder().max_capacity(capacity).expire_after(PerEntryTtl).build(),
            counters: Mutex::new(HashMap::new()),
        }
    }

    pub(super) async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.values.get(key).await.map(|e| e.bytes.to_vec())
    }

    pub(super) async fn set(&self, key: String, value: &[u8], ttl: Duration) {
        self.values.insert(key, Entry { bytes: value.into(), ttl }).await;
    }

    pub(super) async fn set_if_absent(&self, key: String, value: &[u8], ttl: Duration) -> bool {
        let entry = self.values.entry(key).or_insert(Entry { bytes: value.into(), ttl }).await;
        entry.is_fresh()
    }

    pub(super) async fn replace_if(&self, key: String, expected: &[u8], value: &[u8], ttl: Duration) -> bool {
        use moka::ops::compute::{CompResult, Op};
        let new = Entry { bytes: value.into(), ttl };
        let result = self
            .values
            .entry(key)
            .and_compute_with(|current| async move {
                match current {
                    Some(e) if &*e.value().bytes == expected => Op::Put(new),
                    _ => Op::Nop,
                }
            })
            .await;
        matches!(result, CompResult::ReplacedWith(_))
    }

    pub(super) async fn delete(&self, key: &str) {
        self.values.invalidate(key).await;
        self.lock_counters().remove(key);
    }

    pub(super) fn lock_counters(&self) -> std::sync::MutexGuard<'_, HashMap<String, (i64, Instant)>> {
        // A poisoned lock only means another thread panicked mid-update of plain integers.
        self.counters.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn add_within(
        &self,
        key: String,
        amount: i64,
        limit: Option<i64>,
        window: Duration,
    ) -> Window {
        let now = Instant::now();
        let mut counters = self.lock_counters();
        if counters.len() > 100_000 {
            counters.retain(|_, (_, until)| *until > now);
        }
        let slot = counters.entry(key).or_insert((0, now + window));
        if slot.1 <= now {
            *slot = (0, now + window);
        }
        let added = limit.is_none_or(|limit| slot.0.saturating_add(amount) <= limit);
        if added {
            slot.0 = slot.0.saturating_add(amount);
        }
        Window { added, count: slot.0, left: slot.1 - now }
    }

    pub(super) fn adjust(&self, key: &str, delta: i64) -> Option<i64> {
        let now = Instant::now();
        let mut counters = self.lock_counters();
        let slot = counters.get_mut(key).filter(|(_, until)| *until > now)?;
        slot.0 = slot.0.saturating_add(delta);
        Some(slot.0)
    }

    pub(super) fn counter(&self, key: &str) -> Option<(i64, Duration)> {
        let now = Instant::now();
        self.lock_counters().get(key).filter(|(_, until)| *until > now).map(|(n, until)| (*n, *until - now))
    }
}
