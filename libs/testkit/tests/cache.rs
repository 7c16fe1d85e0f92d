//! The cache against real Redis servers started for the test (restarted, frozen) and the test
//! cache (Redis when `TT_TEST_REDIS_URL` is set).

use std::time::{Duration, Instant};

use tt_common::cache::{Cache, RedisOptions};
use tt_testkit::servers::PrivateRedis;

/// A private Redis server and a cache on it; `None` (said on stderr) where `redis-server` is not
/// installed.
fn private_redis() -> Option<(PrivateRedis, Cache)> {
    let Some(redis) = PrivateRedis::start() else {
        eprintln!("skipped: redis-server is not installed");
        return None;
    };
    let cache = Cache::redis(&RedisOptions::new(redis.url()), "t:").expect("client");
    Some((redis, cache))
}

/// Polls until Redis answers again (the breaker lets a call through and it succeeds).
async fn until_redis_answers(cache: &Cache) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while cache.set("probe", b"1", Duration::from_secs(5)).await.is_err() {
        assert!(Instant::now() < deadline, "redis never answered again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_first_call_after_a_redis_restart_succeeds() {
    let Some((mut redis, cache)) = private_redis() else { return };
    cache.set("a", b"1", Duration::from_secs(60)).await.expect("set");
    assert!(redis.restart(), "redis restarted");
    // The pooled connection is dead; the command is sent again on a new one.
    cache.set("b", b"2", Duration::from_secs(60)).await.expect("first call after the restart");
    assert_eq!(cache.get("b").await.expect("get"), Some(b"2".to_vec()));
}

#[tokio::test]
async fn a_frozen_redis_costs_one_timeout_then_fails_fast() {
    let Some((redis, cache)) = private_redis() else { return };
    cache.set("a", b"1", Duration::from_secs(60)).await.expect("set");
    redis.freeze();
    assert!(cache.get("a").await.is_err(), "the first call times out");
    let started = Instant::now();
    for _ in 0..20 {
        let v: Result<u32, ()> = cache.get_or_load("k", Duration::from_secs(5), || async { Ok(4) }).await;
        assert_eq!(v, Ok(4), "reads go to the loader");
    }
    assert!(
        started.elapsed() < Duration::from_millis(250 * 5),
        "the breaker made them fast: {:?}",
        started.elapsed()
    );
    redis.thaw();
    until_redis_answers(&cache).await;
    assert_eq!(cache.get("a").await.expect("get"), Some(b"1".to_vec()));
}

#[tokio::test]
async fn an_invalidation_lost_while_redis_is_frozen_is_redone_before_the_cache_is_read() {
    let Some((redis, cache)) = private_redis() else { return };
    let ttl = Duration::from_secs(300);
    let read = |value: u32| cache.get_or_load("k", ttl, move || async move { Ok::<u32, ()>(value) });
    assert_eq!(read(1).await, Ok(1));
    assert_eq!(read(9).await, Ok(1), "cached");
    redis.freeze();
    cache.invalidate("k").await; // the write committed; Redis did not hear of it
    assert_eq!(read(2).await, Ok(2), "while frozen: the database");
    redis.thaw(); // Redis comes back holding the old value
    until_redis_answers(&cache).await;
    assert_eq!(read(3).await, Ok(3), "the old value is never served again");
    assert_eq!(read(9).await, Ok(3), "and the new one is cached");
}

#[tokio::test]
async fn a_load_racing_an_invalidation_cannot_cache_the_old_value() {
    // Redis when TT_TEST_REDIS_URL is set, in-process otherwise.
    let cache = tt_testkit::test_cache();
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
    let cached: Result<u32, ()> = cache.get_or_load("k", ttl, || async { Ok(3) }).await;
    assert_eq!(cached, Ok(2), "the first read after the invalidation cached the new value");
    // Two invalidations: a load that saw the first marker cannot store over the second.
    cache.invalidate("k").await;
    let racing: Result<u32, ()> = cache
        .get_or_load("k", ttl, || async {
            cache.invalidate("k").await;
            Ok(5)
        })
        .await;
    assert_eq!(racing, Ok(5));
    let after: Result<u32, ()> = cache.get_or_load("k", ttl, || async { Ok(6) }).await;
    assert_eq!(after, Ok(6));
    let again: Result<u32, ()> = cache.get_or_load("k", ttl, || async { Ok(7) }).await;
    assert_eq!(again, Ok(6), "and then it is cached");
}

#[tokio::test]
async fn reservations_stay_under_their_limit_under_concurrency_and_settle_in_their_window() {
    // Redis when TT_TEST_REDIS_URL is set, in-process otherwise.
    let cache = tt_testkit::test_cache();
    let window = Duration::from_secs(60);
    // 64 concurrent reservations of 10 against a limit of 200: exactly 20 fit.
    let tries = (0..64).map(|_| {
        let cache = cache.clone();
        async move { cache.add_within("budget", 10, Some(200), window).await.expect("reserve") }
    });
    let results = futures::future::join_all(tries).await;
    assert_eq!(results.iter().filter(|w| w.added).count(), 20);
    assert!(results.iter().all(|w| w.count <= 200 && w.left <= window));
    // A refused reservation adds nothing and says how long until the window ends.
    let refused = cache.add_within("budget", 1, Some(200), window).await.expect("reserve");
    assert!(!refused.added && refused.count == 200 && refused.left > Duration::ZERO, "{refused:?}");
    // Settling gives back what was not used (and can take more), in the same window.
    assert_eq!(cache.adjust("budget", -35).await.expect("settle"), Some(165));
    assert!(cache.add_within("budget", 35, Some(200), window).await.expect("reserve").added);
    // Nothing to settle once the window ended (or never began): no counter is created.
    assert_eq!(cache.adjust("other", -5).await.expect("settle"), None);
    assert_eq!(cache.counter("other").await.expect("read"), None);
    // Without a limit it is the plain counter.
    assert_eq!(cache.incr("hits", window).await.expect("incr").0, 1);
    assert_eq!(cache.add_within("hits", 4, None, window).await.expect("add").count, 5);
}
