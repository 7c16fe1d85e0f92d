//! Injected time. Services read "now" from a [`Clock`] so tests can move time forward
//! (token expiry, lockout windows, session lifetimes) without sleeping.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

/// Unix milliseconds.
pub type Millis = i64;

/// The source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> Millis;
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        millis(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default())
    }
}

/// A test clock: starts at the wall-clock time, moves when told, and ticks one millisecond per
/// reading, so two events are never simultaneous (as on a real clock between two RPCs).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new() -> Self {
        Self(Arc::new(AtomicI64::new(SystemClock.now_ms())))
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.0.fetch_add(millis(by), Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

/// A duration in milliseconds, saturating (durations past i64 milliseconds do not occur here).
pub fn millis(d: std::time::Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// Converts a protobuf timestamp to unix millis.
pub fn from_timestamp(t: &prost_types::Timestamp) -> Millis {
    t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos) / 1_000_000)
}

/// Converts unix millis to a protobuf timestamp.
pub fn to_timestamp(ms: Millis) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}
