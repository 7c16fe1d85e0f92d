//! Quotas on the test cache (Redis when `TT_TEST_REDIS_URL` is set, in process otherwise).

use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use tt_ai::{Limits, QuotaError, QuotaPolicy, Quotas};
use tt_common::{
    cache::{Cache, RedisOptions},
    clock::ManualClock,
};

fn quotas(rpm: u32, daily: i64, limits: Option<Arc<dyn Limits>>) -> (Quotas, ManualClock) {
    let clock = ManualClock::new();
    let policy = QuotaPolicy { requests_per_minute: rpm, daily_tokens: daily };
    (Quotas::new(&tt_testkit::test_cache(), Arc::new(clock.clone()), policy, limits), clock)
}

#[tokio::test]
async fn parallel_calls_of_one_learner_pass_the_quota_by_at_most_one_reservation() {
    let (q, _) = quotas(1000, 10_000, None);
    let tries = (0..64).map(|_| q.reserve("ann", "Europe/Paris", 1000));
    let results = futures::future::join_all(tries).await;
    let (held, refused): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    assert_eq!(held.len(), 10);
    for r in &refused {
        let Err(QuotaError::DailyTokens { limit, retry_after, .. }) = r else { panic!("{r:?}") };
        assert_eq!(*limit, 10_000);
        assert!(*retry_after > Duration::ZERO && *retry_after <= Duration::from_secs(25 * 3600));
    }
    assert_eq!(q.used_today("ann", "Europe/Paris").await.expect("used"), 10_000);
    // Each call used a little more than it reserved.
    for reservation in held {
        reservation.expect("held").settle(1100).await;
    }
    let used = q.used_today("ann", "Europe/Paris").await.expect("used");
    assert!(used > 10_000 && used <= 10_000 + 1000, "{used}");
    assert!(matches!(q.reserve("ann", "Europe/Paris", 1).await, Err(QuotaError::DailyTokens { .. })));
    // Another learner's quota is their own.
    q.reserve("bob", "Europe/Paris", 1000).await.expect("bob's own day").settle(0).await;
    assert_eq!(q.used_today("bob", "Europe/Paris").await.expect("used"), 0, "settled at nothing");
}

#[tokio::test]
async fn a_refused_call_costs_nothing_and_the_minute_limit_holds() {
    let (q, clock) = quotas(2, 100, None);
    for _ in 0..5 {
        assert!(matches!(q.reserve("ann", "UTC", 200).await, Err(QuotaError::DailyTokens { .. })));
    }
    assert_eq!(q.used_today("ann", "UTC").await.expect("used"), 0);
    // The five refusals did not use the minute's two calls.
    q.reserve("ann", "UTC", 10).await.expect("first").settle(10).await;
    q.reserve("ann", "UTC", 10).await.expect("second").settle(10).await;
    let e = q.reserve("ann", "UTC", 10).await.expect_err("third in the minute");
    let QuotaError::RequestsPerMinute { limit: 2, retry_after } = e else { panic!("{e:?}") };
    assert!(retry_after <= Duration::from_secs(60));
    assert_eq!(q.used_today("ann", "UTC").await.expect("used"), 20, "the refused call reserved nothing");
    // A new local day starts a new count (the minute window is the cache's own time).
    clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(q.used_today("ann", "UTC").await.expect("used"), 0);
}

#[tokio::test]
async fn refusals_are_resource_exhausted_with_quota_failure_and_retry_info() {
    let (q, _) = quotas(10, 100, None);
    let status: Status = q.reserve("ann", "Asia/Tokyo", 500).await.expect_err("too many").into();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let details = status.get_error_details();
    let failure = details.quota_failure().expect("QuotaFailure");
    assert_eq!(failure.violations[0].subject, "ai:daily_tokens");
    let retry = details.retry_info().and_then(|r| r.retry_delay).expect("RetryInfo");
    assert!(retry > Duration::ZERO && retry <= Duration::from_secs(25 * 3600), "{retry:?}");
    assert_eq!(details.error_info().map(|i| i.reason.as_str()), Some("AI_QUOTA_EXHAUSTED"));
}

struct Overrides;

impl Limits for Overrides {
    fn daily_tokens(&self, user: &str) -> BoxFuture<'_, Result<Option<i64>, Status>> {
        let answer = match user {
            "vip" => Ok(Some(5_000)),
            "broken" => Err(Status::unavailable("identity is down")),
            _ => Ok(None),
        };
        Box::pin(async move { answer })
    }
}

#[tokio::test]
async fn a_learners_own_quota_applies_and_unreadable_limits_fail_closed() {
    let (q, _) = quotas(10, 100, Some(Arc::new(Overrides)));
    q.reserve("vip", "UTC", 4_000).await.expect("the admin's override").settle(4_000).await;
    assert!(matches!(q.reserve("ann", "UTC", 4_000).await, Err(QuotaError::DailyTokens { limit: 100, .. })));
    let e = q.reserve("broken", "UTC", 1).await.expect_err("fail closed");
    assert!(matches!(e, QuotaError::Unavailable(_)), "{e:?}");
    assert_eq!(Status::from(e).code(), Code::Unavailable);
}

#[tokio::test]
async fn an_unreachable_quota_store_refuses_every_call() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let cache = Cache::redis(&RedisOptions::new(format!("redis://127.0.0.1:{port}")), "t:").expect("client");
    let q = Quotas::new(&cache, Arc::new(ManualClock::new()), QuotaPolicy::default(), None);
    let e = q.reserve("ann", "UTC", 1).await.expect_err("no store, no call");
    assert!(matches!(e, QuotaError::Unavailable(_)), "{e:?}");
    assert_eq!(Status::from(e).code(), Code::Unavailable);
}

#[tokio::test]
async fn identity_holds_the_learners_own_quota_and_a_change_applies_at_once() {
    use tt_proto::identity::v1::{SetAiQuotaRequest, admin_service_client::AdminServiceClient};
    let kit = tt_testkit::TestPlatform::new().start().await;
    let identity =
        kit.platform.service_peer_at("identity", &kit.url(), "missions").expect("peer").expect("credentials");
    // An hour's cache: only identity's invalidation can make a change visible within the test.
    let limits = tt_ai::IdentityLimits::new(identity, &kit.cache, Duration::from_secs(3600));
    let policy = QuotaPolicy { requests_per_minute: 1000, daily_tokens: 1 };
    let q = Quotas::new(&kit.cache, Arc::new(kit.clock.clone()), policy, Some(Arc::new(limits)));
    let ann = kit.learner("ann").await;
    let mut admin = AdminServiceClient::new(kit.authed(&kit.admin_token().await));
    let set = |tokens: Option<i64>| SetAiQuotaRequest { user_id: ann.id.clone(), daily_tokens: tokens };

    // Identity's default (100,000), not the policy's 1.
    q.reserve(&ann.id, "UTC", 2_000).await.expect("within the default").settle(2_000).await;
    admin.set_ai_quota(set(Some(1_000))).await.expect("set");
    let e = q.reserve(&ann.id, "UTC", 10).await.expect_err("over her own quota");
    assert!(matches!(e, QuotaError::DailyTokens { limit: 1_000, used: 2_000, .. }), "{e:?}");
    admin.set_ai_quota(set(Some(5_000))).await.expect("raise");
    q.reserve(&ann.id, "UTC", 2_000).await.expect("within the raised quota").settle(2_000).await;
    admin.set_ai_quota(set(None)).await.expect("clear");
    q.reserve(&ann.id, "UTC", 50_000).await.expect("the default again").settle(0).await;
    kit.stop().await;
}
