//! The pipeline end to end: identity and profiles keep emitting while analytics is down; after
//! a restart every event is there exactly once, in the event store and in the rollups.

use std::collections::HashSet;

use sqlx::Row;
use tt_common::outbox::backlog;
use tt_proto::{analytics::v1 as pb, profiles::v1 as ppb};

use crate::support::{Stack, range, today};

/// The ids of the events a source's outbox wrote for analytics, and how many are pending.
async fn outbox(pool: &sqlx::AnyPool) -> (Vec<String>, i64) {
    let rows = sqlx::query("SELECT event_id FROM outbox WHERE destination = 'analytics'")
        .fetch_all(pool)
        .await
        .expect("outbox rows");
    let ids = rows.iter().map(|r| r.get::<String, _>("event_id")).collect();
    (ids, backlog(pool, "analytics").await.expect("backlog").pending)
}

/// Waits until both sources have delivered everything; the ids of all events they emitted.
async fn drained(s: &Stack) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (i, ip) = outbox(s.identity.store.db().pool()).await;
        let (p, pp) = outbox(s.profiles.store.db().pool()).await;
        if ip == 0 && pp == 0 {
            return i.into_iter().chain(p).collect();
        }
        assert!(std::time::Instant::now() < deadline, "outboxes never drained: {ip} and {pp} pending");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn activity(s: &Stack, name: &str) -> String {
    let who = s.learner(name).await;
    s.profile(&who.token)
        .update_profile(ppb::UpdateProfileRequest {
            profile: Some(ppb::Profile { headline: format!("{name} learns"), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["headline".into()] }),
        })
        .await
        .expect("update profile");
    who.id
}

#[tokio::test]
async fn events_emitted_while_analytics_is_down_arrive_exactly_once_after_a_restart() {
    let mut s = Stack::start().await;
    let admin = s.admin_token().await;
    let mut users = vec![activity(&s, "before").await];
    // The first events reach analytics before it goes down (the batch counted below).
    drained(&s).await;
    s.stop_analytics().await;
    for i in 0..4 {
        users.push(activity(&s, &format!("during{i}")).await);
    }
    let (_, pending) = outbox(s.identity.store.db().pool()).await;
    assert!(pending >= 4, "identity kept its events while analytics was down ({pending} pending)");
    s.restart_analytics().await;
    users.push(activity(&s, "after").await);

    let emitted = drained(&s).await;
    let emitted_set: HashSet<&String> = emitted.iter().collect();
    assert_eq!(emitted_set.len(), emitted.len(), "the sources emitted distinct events");

    // Every emitted event about these users is stored once; nothing else is.
    let mut stored = Vec::new();
    for user in &users {
        let timeline = s.timeline(&admin, user).await;
        assert!(timeline.len() >= 3, "registered, profile created and updated for {user}");
        stored.extend(timeline.into_iter().map(|e| e.id));
    }
    let stored_set: HashSet<&String> = stored.iter().collect();
    assert_eq!(stored_set.len(), stored.len(), "no event stored twice");
    assert!(stored_set.is_subset(&emitted_set), "nothing stored that was not emitted");
    let admin_id = s.timeline(&admin, "").await.len();
    let stats =
        s.admin(&admin).await.get_usage_stats(pb::GetUsageStatsRequest {}).await.expect("stats").into_inner();
    assert_eq!(stats.events_total as usize, emitted.len(), "every emitted event was stored");
    assert_eq!(stored.len() + admin_id, emitted.len(), "the admin's own events are the rest");

    // The rollups counted each event once too.
    let day = today(&s.clock);
    let usage = s
        .reports(&admin)
        .await
        .get_feature_usage(pb::GetFeatureUsageRequest { range: range(&day, &day, "") })
        .await
        .expect("usage")
        .into_inner();
    assert_eq!(usage.total_events as usize, emitted.len());
    let registered =
        usage.features.iter().find(|f| f.event_type == "identity.user.registered").expect("registered");
    assert_eq!(registered.events, 6);
    let lag = stats.sources.iter().find(|x| x.source == "identity").expect("identity stats");
    assert!(lag.backlog_report_time.is_some() && lag.batches >= 2, "{lag:?}");
    // The sources' outboxes are empty, and the figure the admin sees says so.
    for source in &stats.sources {
        assert_eq!((source.outbox_pending, source.outbox_lag_ms), (0, 0), "{source:?}");
    }
}
