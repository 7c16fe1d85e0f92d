//! Brute-force protection, kept in the cache and failing closed when the cache is unreachable.
//!
//! - Per identifier (normalised email, whether or not an account exists): each attempt first
//!   reserves a slot in a 15-minute window; a success clears the window. The 10th failure locks
//!   the identifier for 15 minutes, and a locked identifier gets RESOURCE_EXHAUSTED with RetryInfo
//!   even for the right password. Because slots are reserved before the password is checked, 50
//!   parallel attempts still check at most 10 passwords.
//! - Per client address: a fixed one-minute window of sign-in attempts.

use std::time::Duration;
use tt_common::error::Reason;

use tonic::Status;
use tt_common::cache::Cache;

use crate::DOMAIN;

/// Attempts per window before the lock.
pub const MAX_FAILURES: i64 = 10;
const WINDOW: Duration = Duration::from_secs(15 * 60);
const LOCK: Duration = Duration::from_secs(15 * 60);

/// The guard.
#[derive(Debug, Clone)]
pub struct Guard {
    cache: Cache,
    per_minute: u32,
}

/// The outcome of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Counted,
    /// This failure locked the identifier.
    LockedNow,
}

fn cache_down(e: &dyn std::fmt::Display) -> Status {
    DOMAIN.unavailable("sign-in protection store", e)
}

impl Guard {
    pub fn new(cache: Cache, per_minute: u32) -> Self {
        Self { cache, per_minute }
    }

    /// Counts one sign-in attempt from `client`; refuses past the per-minute limit.
    pub async fn client_attempt(&self, client: &str) -> Result<(), Status> {
        let (n, left) = self
            .cache
            .incr(&format!("signin:client:{client}"), Duration::from_secs(60))
            .await
            .map_err(|e| cache_down(&e))?;
        if n > i64::from(self.per_minute) {
            return Err(DOMAIN.exhausted(
                Reason::new("RATE_LIMITED"),
                "too many sign-in attempts from this client; retry later",
                left,
            ));
        }
        Ok(())
    }

    /// Reserves an attempt for `identifier`, or refuses while it is locked.
    pub async fn begin(&self, identifier: &str) -> Result<(), Status> {
        if let Some((_, left)) =
            self.cache.counter(&lock_key(identifier)).await.map_err(|e| cache_down(&e))?
        {
            return Err(locked(left));
        }
        let (n, _) = self.cache.incr(&attempts_key(identifier), WINDOW).await.map_err(|e| cache_down(&e))?;
        if n > MAX_FAILURES {
            // No lock yet: the slots are taken by attempts still in progress (a burst), not by
            // failures; say so rather than blame failures that did not happen.
            return Err(DOMAIN.exhausted(
                Reason::new("TOO_MANY_ATTEMPTS_IN_PROGRESS"),
                "too many sign-in attempts for this account are in progress; retry in a moment",
                Duration::from_secs(1),
            ));
        }
        Ok(())
    }

    /// Keeps the reserved slot as a failure; the failure that fills the window sets the lock.
    pub async fn failed(&self, identifier: &str) -> Result<Failure, Status> {
        let (n, _) = self
            .cache
            .counter(&attempts_key(identifier))
            .await
            .map_err(|e| cache_down(&e))?
            .unwrap_or((0, WINDOW));
        if n >= MAX_FAILURES {
            let (first, _) =
                self.cache.incr(&lock_key(identifier), LOCK).await.map_err(|e| cache_down(&e))?;
            if first == 1 {
                return Ok(Failure::LockedNow);
            }
        }
        Ok(Failure::Counted)
    }

    /// Clears the identifier's failures after a successful sign-in.
    pub async fn succeeded(&self, identifier: &str) {
        // A counter, not a cached view: delete it (an invalidation marker would break INCR).
        if let Err(e) = self.cache.delete(&attempts_key(identifier)).await {
            tracing::warn!(error = %e, "clearing sign-in failures failed");
        }
    }
}

fn attempts_key(identifier: &str) -> String {
    format!("signin:attempts:{identifier}")
}

fn lock_key(identifier: &str) -> String {
    format!("signin:lock:{identifier}")
}

/// The status of a locked identifier.
pub fn locked(retry_after: Duration) -> Status {
    DOMAIN.exhausted(
        Reason::new("TOO_MANY_ATTEMPTS"),
        "too many failed sign-in attempts; try again later",
        retry_after.max(Duration::from_secs(1)),
    )
}
