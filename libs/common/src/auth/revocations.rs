//! Revocations as verifiers learn them: from identity's revocation feed, never from the cache.
//!
//! identity writes a revocation (a subject's tokens issued before an instant stop verifying) in
//! the same transaction as the change that causes it (suspension, deletion, password change,
//! LogoutAll, role change) and streams it to every verifier that follows its feed
//! (`RevocationService.WatchRevocations`): the recent set when the verifier connects, each new
//! one moments after it commits, and a heartbeat every second. Nothing of it lives in Redis, so
//! no cache restart, flush, eviction or failover can undo a revocation, and a Redis outage does
//! not stop authentication.
//!
//! How stale a verifier may be: a revocation reaches it within identity's poll interval (250 ms
//! by default) plus the network. Should it stop hearing from identity (identity down or cut
//! off, or unable to read its database) for longer than `max_staleness` (60 s by default,
//! `TT_REVOCATION_MAX_STALENESS`), it refuses every token with UNAVAILABLE until the feed is back:
//! it can no longer vouch that a token was not revoked. What it learned stays in memory; a
//! reconnect starts with a fresh snapshot.
//!
//! The feed names nobody: subjects travel as keyed hashes ([`SubjectKeys`], a key derived from
//! the platform secret every service holds), with a check value so a verifier whose secret
//! differs refuses tokens loudly instead of silently missing revocations.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use aws_lc_rs::hmac;
use futures::{StreamExt, future::BoxFuture, stream::BoxStream};
use tonic::Status;
use tt_proto::identity::v1::{
    WatchRevocationsRequest, WatchRevocationsResponse, revocation_service_client::RevocationServiceClient,
};

use super::AuthError;
use crate::{client::Peer, secrets::Secret};

/// Bytes of a subject key on the feed.
pub const SUBJECT_KEY_BYTES: usize = 16;

/// A verifier that heard nothing (not even a heartbeat) for this long reconnects.
const SILENCE: Duration = Duration::from_secs(5);

/// Marks older than this are forgotten: no token lives that long.
const FORGET_AFTER_MS: i64 = 24 * 3600 * 1000;

/// The keyed hash that names a subject on the feed.
#[derive(Clone)]
pub struct SubjectKeys {
    key: hmac::Key,
}

impl std::fmt::Debug for SubjectKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectKeys")
    }
}

impl SubjectKeys {
    pub fn new(secret: &Secret) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, &secret.derive("revocation-feed")) }
    }

    /// The feed's name for `subject`.
    pub fn of(&self, subject: &str) -> [u8; SUBJECT_KEY_BYTES] {
        let tag = hmac::sign(&self.key, subject.as_bytes());
        let mut out = [0; SUBJECT_KEY_BYTES];
        out.copy_from_slice(&tag.as_ref()[..SUBJECT_KEY_BYTES]);
        out
    }

    /// A value that tells whether two parties hold the same key.
    pub fn check_value(&self) -> Vec<u8> {
        hmac::sign(&self.key, b"timetravelers revocation feed key check").as_ref()[..8].to_vec()
    }
}

/// Where a verifier's revocations come from: identity's feed over gRPC, or identity's own hub.
pub trait RevocationSource: Send + Sync {
    /// Opens the feed: a snapshot first, then new revocations and heartbeats.
    fn watch(
        &self,
    ) -> BoxFuture<'_, Result<BoxStream<'static, Result<WatchRevocationsResponse, Status>>, Status>>;
}

/// identity's `RevocationService` over gRPC (the method is public; the peer needs no token).
#[derive(Debug, Clone)]
pub struct GrpcRevocationSource {
    identity: Peer,
}

impl GrpcRevocationSource {
    pub fn new(identity: Peer) -> Self {
        Self { identity }
    }
}

impl RevocationSource for GrpcRevocationSource {
    fn watch(
        &self,
    ) -> BoxFuture<'_, Result<BoxStream<'static, Result<WatchRevocationsResponse, Status>>, Status>> {
        Box::pin(async move {
            // The peer's transport without a deadline: the stream lives as long as we follow it.
            let mut client = RevocationServiceClient::new(self.identity.channel());
            let stream = client.watch_revocations(WatchRevocationsRequest {}).await?.into_inner();
            Ok(stream.boxed())
        })
    }
}

/// The revocations a verifier knows, and how fresh that knowledge is.
pub struct Revocations {
    keys: SubjectKeys,
    marks: RwLock<HashMap<[u8; SUBJECT_KEY_BYTES], i64>>,
    /// When identity last vouched for the set (its read time, on this process's clock).
    fresh_at: Mutex<Option<Instant>>,
    max_staleness: Duration,
    synced: tokio::sync::Notify,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations").field("max_staleness", &self.max_staleness).finish()
    }
}

/// A revocation feed keyed with another platform secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the revocation feed is keyed with another platform secret: every service must share \
     TT_SECRET_KEY_FILE with identity"
)]
pub struct ForeignFeed;

impl Revocations {
    pub fn new(secret: &Secret, max_staleness: Duration) -> Self {
        Self::with_keys(SubjectKeys::new(secret), max_staleness)
    }

    pub fn with_keys(keys: SubjectKeys, max_staleness: Duration) -> Self {
        Self {
            keys,
            marks: RwLock::new(HashMap::new()),
            fresh_at: Mutex::new(None),
            max_staleness,
            synced: tokio::sync::Notify::new(),
        }
    }

    pub fn keys(&self) -> &SubjectKeys {
        &self.keys
    }

    /// Whether identity vouched for the set within the allowed staleness.
    pub fn is_fresh(&self) -> bool {
        self.fresh_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|t| t.elapsed() <= self.max_staleness)
    }

    /// Waits until the first snapshot arrived (readiness).
    pub async fn wait_synced(&self) {
        loop {
            let notified = self.synced.notified();
            if self.is_fresh() {
                return;
            }
            notified.await;
        }
    }

    /// Refuses a token of the subject keyed `key` issued at `iat_ms` if it was revoked, and
    /// every token while the feed is staler than allowed.
    pub fn check(&self, key: &[u8; SUBJECT_KEY_BYTES], iat_ms: i64) -> Result<(), AuthError> {
        if !self.is_fresh() {
            return Err(AuthError::Unavailable(format!(
                "revocations from identity are older than {} s",
                self.max_staleness.as_secs()
            )));
        }
        let marks = self.marks.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        match marks.get(key) {
            // A token issued in the mark's own millisecond is kept: ChangePassword issues the
            // caller's new tokens right after revoking the old ones.
            Some(mark) if iat_ms < *mark => Err(AuthError::Invalid("token revoked")),
            _ => Ok(()),
        }
    }

    /// Applies one feed message; refuses a feed hashed with another key.
    pub fn apply(&self, message: &WatchRevocationsResponse, now_ms: i64) -> Result<(), ForeignFeed> {
        if message.key_check != self.keys.check_value() {
            return Err(ForeignFeed);
        }
        {
            let mut marks = self.marks.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            for r in &message.revocations {
                let Ok(key) = <[u8; SUBJECT_KEY_BYTES]>::try_from(r.subject_key.as_slice()) else { continue };
                let mark = marks.entry(key).or_insert(r.valid_after_ms);
                *mark = (*mark).max(r.valid_after_ms);
            }
            if message.snapshot {
                marks.retain(|_, mark| *mark > now_ms - FORGET_AFTER_MS);
            }
        }
        let age = Duration::from_millis(u64::try_from(message.staleness_ms).unwrap_or(0));
        let vouched = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        let mut fresh = self.fresh_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *fresh = Some(fresh.map_or(vouched, |f| f.max(vouched)));
        drop(fresh);
        self.synced.notify_waiters();
        Ok(())
    }

    /// Follows `source` forever: reconnects with backoff when the stream ends, fails or falls
    /// silent, and logs (as an error) a feed it cannot use.
    pub async fn follow(
        self: Arc<Self>,
        source: Arc<dyn RevocationSource>,
        clock: crate::clock::SharedClock,
    ) {
        let mut failures = 0u32;
        loop {
            match source.watch().await {
                Ok(mut stream) => loop {
                    match tokio::time::timeout(SILENCE, stream.next()).await {
                        Ok(Some(Ok(message))) => match self.apply(&message, clock.now_ms()) {
                            Ok(()) => failures = 0,
                            Err(e) => {
                                tracing::error!(error = %e, "revocation feed unusable; tokens are refused");
                                break;
                            }
                        },
                        Ok(Some(Err(status))) => {
                            tracing::warn!(code = ?status.code(), message = status.message(), "revocation feed failed");
                            break;
                        }
                        Ok(None) => {
                            tracing::warn!("revocation feed ended");
                            break;
                        }
                        Err(_) => {
                            tracing::warn!(silence = ?SILENCE, "revocation feed went silent; reconnecting");
                            break;
                        }
                    }
                },
                Err(status) => {
                    tracing::warn!(code = ?status.code(), message = status.message(), "revocation feed unavailable");
                }
            }
            failures = failures.saturating_add(1);
            let wait = crate::client::backoff(failures, Duration::from_millis(100), Duration::from_secs(5));
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use tt_proto::identity::v1::Revocation;

    use super::*;

    fn feed(keys: &SubjectKeys, marks: &[(&str, i64)], staleness_ms: i64) -> WatchRevocationsResponse {
        WatchRevocationsResponse {
            revocations: marks
                .iter()
                .map(|(s, at)| Revocation { subject_key: keys.of(s).to_vec(), valid_after_ms: *at })
                .collect(),
            snapshot: true,
            staleness_ms,
            key_check: keys.check_value(),
        }
    }

    #[test]
    fn marks_refuse_older_tokens_and_staleness_refuses_all() {
        let secret = Secret::from_bytes([1; 32]);
        let r = Revocations::new(&secret, Duration::from_secs(60));
        let ada = r.keys().of("ada");
        assert!(matches!(r.check(&ada, 1), Err(AuthError::Unavailable(_))), "nothing vouched for yet");
        r.apply(&feed(r.keys(), &[("ada", 100)], 0), 1000).expect("apply");
        assert!(matches!(r.check(&ada, 99), Err(AuthError::Invalid(_))));
        assert!(r.check(&ada, 100).is_ok(), "a token of the mark's own millisecond is kept");
        assert!(r.check(&r.keys().of("bob"), 1).is_ok());
        // Marks only move forward.
        r.apply(&feed(r.keys(), &[("ada", 50)], 0), 1000).expect("apply");
        assert!(matches!(r.check(&ada, 99), Err(AuthError::Invalid(_))));
        // A message identity sent from a view 61 s old vouches for nothing fresh.
        let stale = Revocations::new(&secret, Duration::from_secs(60));
        stale.apply(&feed(stale.keys(), &[], 61_000), 1000).expect("apply");
        assert!(matches!(stale.check(&ada, 1), Err(AuthError::Unavailable(_))));
    }

    #[test]
    fn a_feed_keyed_with_another_secret_is_refused() {
        let ours = Revocations::new(&Secret::from_bytes([1; 32]), Duration::from_secs(60));
        let theirs = SubjectKeys::new(&Secret::from_bytes([2; 32]));
        assert!(ours.apply(&feed(&theirs, &[("ada", 1)], 0), 1000).is_err());
        assert!(!ours.is_fresh());
    }
}
