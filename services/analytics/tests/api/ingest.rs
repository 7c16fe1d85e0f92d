//! Ingestion over gRPC: idempotent batches and streams, dead letters and their replay.

use tonic::Code;
use tt_common::outbox::EventBuilder;
use tt_proto::{analytics::v1 as pb, common::v1::Event};

use crate::support::{Stack, assert_bad_fields, code};

fn login(user: &str, at: i64) -> Event {
    EventBuilder::new("identity", "identity.user.logged_in", user, user, at).build()
}

fn now(stack: &Stack) -> i64 {
    use tt_common::clock::Clock;
    stack.clock.now_ms()
}

#[tokio::test]
async fn only_services_ingest_and_a_replayed_batch_adds_nothing() {
    let s = Stack::start().await;
    let ann = s.learner("ann").await;
    let service = s.service_token().await;
    let user = tt_common::new_id();
    let events: Vec<Event> = (0..3).map(|i| login(&user, now(&s) - i * 1000)).collect();
    let request = || pb::IngestEventsRequest { events: events.clone(), backlog: None };
    assert_eq!(code(s.ingest(&ann.token).await.ingest_events(request()).await), Code::PermissionDenied);
    let first = s.ingest(&service).await.ingest_events(request()).await.expect("ingest").into_inner();
    assert_eq!(first.summary, Some(pb::IngestSummary { accepted: 3, duplicates: 0, dead_lettered: 0 }));
    let again = s.ingest(&service).await.ingest_events(request()).await.expect("replay").into_inner();
    assert_eq!(again.summary, Some(pb::IngestSummary { accepted: 0, duplicates: 3, dead_lettered: 0 }));
    let admin = s.admin_token().await;
    assert_eq!(s.timeline(&admin, &user).await.len(), 3);

    let too_many = pb::IngestEventsRequest { events: vec![login("x", now(&s)); 5001], backlog: None };
    assert_bad_fields(s.ingest(&service).await.ingest_events(too_many).await, &["events"]);
    let bad_backlog = pb::IngestEventsRequest {
        events: vec![],
        backlog: Some(pb::SourceBacklog { source: String::new(), pending: -1, oldest_pending_time: None }),
    };
    assert_bad_fields(
        s.ingest(&service).await.ingest_events(bad_backlog).await,
        &["backlog.source", "backlog.pending"],
    );
}

#[tokio::test]
async fn a_stream_commits_each_message_and_sums_up() {
    let s = Stack::start().await;
    let service = s.service_token().await;
    let batches: Vec<pb::StreamEventsRequest> = (0..4)
        .map(|b| pb::StreamEventsRequest {
            events: (0..250).map(|i| login(&format!("s{b}-{i}"), now(&s) - i)).collect(),
        })
        .collect();
    let mut repeated = batches.clone();
    repeated.push(batches[0].clone());
    let reply = s
        .ingest(&service)
        .await
        .stream_events(tokio_stream::iter(repeated))
        .await
        .expect("stream")
        .into_inner();
    assert_eq!(reply.summary, Some(pb::IngestSummary { accepted: 1000, duplicates: 250, dead_lettered: 0 }));
    let admin = s.admin_token().await;
    let stats =
        s.admin(&admin).await.get_usage_stats(pb::GetUsageStatsRequest {}).await.expect("stats").into_inner();
    let identity = stats.sources.iter().find(|x| x.source == "identity").expect("identity source");
    assert!(identity.events >= 1000 && identity.duplicates == 250, "{identity:?}");
}

#[tokio::test]
async fn bad_events_become_dead_letters_that_admins_list_and_replay() {
    let s = Stack::start().await;
    let service = s.service_token().await;
    let admin = s.admin_token().await;
    let future_user = tt_common::new_id();
    let good = login(&tt_common::new_id(), now(&s));
    let unknown = EventBuilder::new("profiles", "profiles.badge.won", "u-dl", "u-dl", now(&s)).build();
    let mut malformed = login("u-dl", now(&s));
    malformed.time = None;
    malformed.source = "profiles".into();
    // Six minutes ahead of analytics' clock: refused until the clocks agree.
    let future = login(&future_user, now(&s) + 6 * 60_000);
    let request =
        pb::IngestEventsRequest { events: vec![good, unknown.clone(), malformed, future], backlog: None };
    let reply = s.ingest(&service).await.ingest_events(request.clone()).await.expect("ingest").into_inner();
    assert_eq!(reply.summary, Some(pb::IngestSummary { accepted: 1, duplicates: 0, dead_lettered: 3 }));
    s.ingest(&service).await.ingest_events(request).await.expect("redelivered");

    let learner = s.learner("lee").await;
    let list =
        || pb::ListDeadLettersRequest { page_size: 2, page_token: String::new(), include_replayed: false };
    assert_eq!(code(s.admin(&learner.token).await.list_dead_letters(list()).await), Code::PermissionDenied);
    let first = s.admin(&admin).await.list_dead_letters(list()).await.expect("list").into_inner();
    assert_eq!(first.dead_letters.len(), 2);
    let second = s
        .admin(&admin)
        .await
        .list_dead_letters(pb::ListDeadLettersRequest { page_token: first.next_page_token.clone(), ..list() })
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!(second.dead_letters.len(), 1, "a redelivered bad event is kept once");
    assert!(second.next_page_token.is_empty());
    let reasons: Vec<&str> =
        first.dead_letters.iter().chain(&second.dead_letters).map(|d| d.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("UNKNOWN_TYPE: no schema for profiles.badge.won v1")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("time is required")), "{reasons:?}");
    let stats =
        s.admin(&admin).await.get_usage_stats(pb::GetUsageStatsRequest {}).await.expect("stats").into_inner();
    assert_eq!(stats.dead_letters_pending, 3);

    // After the fix (here: the clocks agree) the future event passes; the others stay, with
    // the attempt counted.
    s.clock.advance(std::time::Duration::from_secs(120));
    let ids: Vec<String> =
        first.dead_letters.iter().chain(&second.dead_letters).map(|d| d.id.clone()).collect();
    let replay = s
        .admin(&admin)
        .await
        .replay_dead_letters(pb::ReplayDeadLettersRequest { dead_letter_ids: ids.clone(), all: false })
        .await
        .expect("replay")
        .into_inner();
    assert_eq!((replay.replayed, replay.still_failing), (1, 2));
    assert_eq!(s.timeline(&admin, &future_user).await.len(), 1, "the replayed event is stored");
    assert_bad_fields(
        s.admin(&admin)
            .await
            .replay_dead_letters(pb::ReplayDeadLettersRequest { dead_letter_ids: ids, all: true })
            .await,
        &["dead_letter_ids"],
    );
    let listed =
        s.admin(&admin).await.list_dead_letters(pb::ListDeadLettersRequest { page_size: 10, ..list() }).await;
    let pending = listed.expect("list").into_inner().dead_letters;
    assert_eq!(pending.len(), 2, "the replayed one is no longer pending");
    assert!(pending.iter().all(|d| d.replay_attempts == 1 && d.event.is_some()));
}
