//! Per-user quotas, shared by every replica and service through the platform cache (Redis in
//! production, in process in the all-in-one): requests per minute, and tokens per local day.
//!
//! A call reserves its estimated tokens before it goes out ([`Quotas::reserve`]) and settles
//! with the provider's usage after ([`Reservation::settle`]), so concurrent calls of one learner
//! cannot together pass the quota: each reservation is added atomically only if it fits, and a
//! settled call can pass its reservation by no more than its own misestimate. A refused call
//! costs nothing (neither its request nor its tokens are counted). The day is the learner's
//! local day; a refusal says when it refills (their next local midnight, or the minute's end).
//! The cache unreachable means no call: cost control is security state, it fails closed.

use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;
use tonic::Status;
use tt_common::{
    cache::Cache,
    clock::SharedClock,
    error::{Domain, Reason},
};
use tt_proto::identity::v1::{GetAiQuotaRequest, admin_service_client::AdminServiceClient};

/// The `ErrorInfo` domain of the library's refusals.
pub const DOMAIN: Domain = Domain::new("ai.timetravelers.dev");

#[derive(Debug, Clone, Copy)]
pub struct QuotaPolicy {
    pub requests_per_minute: u32,
    /// Tokens (prompt and completion) per learner per local day, unless identity holds an
    /// override for the learner.
    pub daily_tokens: i64,
}

impl Default for QuotaPolicy {
    fn default() -> Self {
        Self { requests_per_minute: 20, daily_tokens: 100_000 }
    }
}

/// Where per-user overrides of the daily quota live (identity, through its admin settings).
pub trait Limits: Send + Sync {
    /// The learner's own daily token quota, if an admin set one.
    fn daily_tokens(&self, user: &str) -> BoxFuture<'_, Result<Option<i64>, Status>>;
}

/// The quotas identity keeps (a learner's own, else the `default_daily_ai_token_quota`
/// setting), read with `AdminService.GetAiQuota` under a service token and cached in the
/// platform cache for `ttl` under [`tt_common::cache::shared::AI_LIMITS`]. Identity
/// invalidates a learner's entry when an admin changes their quota, so the change applies at
/// once; the TTL bounds a change of the default setting (and a missed invalidation).
#[derive(Debug, Clone)]
pub struct IdentityLimits {
    identity: tt_common::client::Peer,
    cache: Cache,
    ttl: Duration,
}

impl IdentityLimits {
    /// `cache`: the platform cache, unscoped (`Platform::cache`), so identity's invalidations
    /// reach it.
    pub fn new(identity: tt_common::client::Peer, cache: &Cache, ttl: Duration) -> Self {
        Self { identity, cache: cache.clone(), ttl }
    }
}

impl Limits for IdentityLimits {
    fn daily_tokens(&self, user: &str) -> BoxFuture<'_, Result<Option<i64>, Status>> {
        let user = user.to_owned();
        Box::pin(async move {
            let key = format!("{}{user}", tt_common::cache::shared::AI_LIMITS);
            self.cache
                .get_or_load(&key, self.ttl, || async {
                    let quota = self
                        .identity
                        .call(|ch| {
                            let request = GetAiQuotaRequest { user_id: user.clone() };
                            async move { AdminServiceClient::new(ch).get_ai_quota(request).await }
                        })
                        .await?;
                    Ok(quota.quota.map(|q| q.daily_tokens))
                })
                .await
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error("more than {limit} model calls a minute")]
    RequestsPerMinute { limit: u32, retry_after: Duration },
    #[error("the daily quota of {limit} tokens is spent ({used} used)")]
    DailyTokens { limit: i64, used: i64, retry_after: Duration },
    /// The quota store or the limits could not be read: no call goes out.
    #[error("quotas cannot be checked: {0}")]
    Unavailable(String),
}

impl From<QuotaError> for Status {
    fn from(e: QuotaError) -> Self {
        let message = e.to_string();
        match e {
            QuotaError::RequestsPerMinute { retry_after, .. } => DOMAIN.quota_exhausted(
                Reason::new("AI_RATE_LIMITED"),
                message,
                "ai:requests_per_minute",
                "the learner's model calls per minute",
                retry_after,
            ),
            QuotaError::DailyTokens { retry_after, .. } => DOMAIN.quota_exhausted(
                Reason::new("AI_QUOTA_EXHAUSTED"),
                message,
                "ai:daily_tokens",
                "the learner's model tokens per local day",
                retry_after,
            ),
            QuotaError::Unavailable(cause) => DOMAIN.unavailable("the AI quota store", &cause),
        }
    }
}

/// The quotas of every learner.
#[derive(Clone)]
pub struct Quotas {
    cache: Cache,
    clock: SharedClock,
    policy: QuotaPolicy,
    limits: Option<Arc<dyn Limits>>,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas").field("policy", &self.policy).finish_non_exhaustive()
    }
}

/// Tokens held for one call until it settles. Unsettled (the call's outcome never known), the
/// reservation stays counted: the safe side for cost.
#[derive(Debug)]
#[must_use = "settle the reservation with the call's usage"]
pub struct Reservation {
    cache: Cache,
    key: String,
    tokens: i64,
}

impl Reservation {
    pub fn tokens(&self) -> i64 {
        self.tokens
    }

    /// Replaces the estimate by what the call used (0 for a call that never reached a model).
    pub async fn settle(self, used: u32) {
        let delta = i64::from(used) - self.tokens;
        if delta == 0 {
            return;
        }
        if let Err(e) = self.cache.adjust(&self.key, delta).await {
            // The reservation stays as estimated; the quota errs by this call's misestimate.
            tracing::warn!(error = %e, delta, "an AI token reservation could not be settled");
        }
    }
}

impl Quotas {
    /// `cache` is the platform cache, unscoped (`Platform::cache`), so that every service
    /// counts a learner's calls together (the library keys its counters under `ai:quota:`).
    pub fn new(
        cache: &Cache,
        clock: SharedClock,
        policy: QuotaPolicy,
        limits: Option<Arc<dyn Limits>>,
    ) -> Self {
        Self { cache: cache.scoped("ai:quota:"), clock, policy, limits }
    }

    /// Counts one call of `user` and reserves `tokens` of their day in `time_zone` (IANA; UTC
    /// when unknown), or refuses with when to try again.
    pub async fn reserve(&self, user: &str, time_zone: &str, tokens: u32) -> Result<Reservation, QuotaError> {
        let unavailable = |e: &dyn std::fmt::Display| QuotaError::Unavailable(e.to_string());
        let rpm_key = format!("rpm:{user}");
        let limit = i64::from(self.policy.requests_per_minute);
        let minute = self
            .cache
            .add_within(&rpm_key, 1, Some(limit), Duration::from_secs(60))
            .await
            .map_err(|e| unavailable(&e))?;
        if !minute.added {
            let limit = self.policy.requests_per_minute;
            return Err(QuotaError::RequestsPerMinute { limit, retry_after: minute.left });
        }
        let refund_request = || async {
            if let Err(e) = self.cache.adjust(&rpm_key, -1).await {
                tracing::warn!(error = %e, "a refused AI call could not be taken back from the minute's count");
            }
        };
        let daily = match &self.limits {
            Some(limits) => match limits.daily_tokens(user).await {
                Ok(own) => own.unwrap_or(self.policy.daily_tokens),
                Err(e) => {
                    refund_request().await;
                    return Err(QuotaError::Unavailable(e.message().to_owned()));
                }
            },
            None => self.policy.daily_tokens,
        };
        let (date, until_midnight) = local_day(self.clock.now_ms(), time_zone);
        let key = format!("tokens:{user}:{date}");
        // The counter outlives the day by an hour (DST shifts); the key names the day anyway.
        let window = until_midnight + Duration::from_secs(3600);
        let tokens = i64::from(tokens);
        let day = match self.cache.add_within(&key, tokens, Some(daily), window).await {
            Ok(day) => day,
            Err(e) => {
                refund_request().await;
                return Err(unavailable(&e));
            }
        };
        if !day.added {
            refund_request().await;
            return Err(QuotaError::DailyTokens {
                limit: daily,
                used: day.count,
                retry_after: until_midnight,
            });
        }
        Ok(Reservation { cache: self.cache.clone(), key, tokens })
    }

    /// Tokens `user` has used (and holds) today, in `time_zone`.
    pub async fn used_today(&self, user: &str, time_zone: &str) -> Result<i64, QuotaError> {
        let (date, _) = local_day(self.clock.now_ms(), time_zone);
        let counter = self
            .cache
            .counter(&format!("tokens:{user}:{date}"))
            .await
            .map_err(|e| QuotaError::Unavailable(e.to_string()))?;
        Ok(counter.map_or(0, |(n, _)| n))
    }
}

/// The local date at `now_ms` in `time_zone` and the time until the next local midnight.
fn local_day(now_ms: i64, time_zone: &str) -> (String, Duration) {
    let tz = jiff::tz::TimeZone::get(time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let Ok(now) = jiff::Timestamp::from_millisecond(now_ms) else {
        return ("unknown".into(), Duration::from_secs(24 * 3600));
    };
    let local = now.to_zoned(tz);
    let date = local.date();
    let next = date
        .tomorrow()
        .ok()
        .and_then(|d| d.to_zoned(local.time_zone().clone()).ok())
        .map_or(24 * 3600 * 1000, |z| z.timestamp().as_millisecond() - now_ms);
    (date.to_string(), Duration::from_millis(u64::try_from(next.max(1)).unwrap_or(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_is_local_and_ends_at_local_midnight() {
        // 2026-03-29 00:30 UTC: still the 28th in New York (20:30), already the 29th in Paris.
        let t = jiff::Timestamp::from_second(1_774_744_200).expect("time").as_millisecond();
        let (ny, ny_left) = local_day(t, "America/New_York");
        assert_eq!((ny.as_str(), ny_left), ("2026-03-28", Duration::from_secs(3 * 3600 + 30 * 60)));
        // Paris (01:30 local) skips 02:00-03:00 that night: midnight is 21 h 30 min away, not
        // the 22 h 30 min of an ordinary day.
        let (paris, paris_left) = local_day(t, "Europe/Paris");
        assert_eq!(paris, "2026-03-29");
        assert_eq!(paris_left, Duration::from_secs(21 * 3600 + 30 * 60));
        let (utc, _) = local_day(t, "not/a zone");
        assert_eq!(utc, "2026-03-29", "an unknown zone is UTC");
    }
}
