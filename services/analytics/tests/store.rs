//! Repository conformance: the same suite on SQLite (default) and PostgreSQL
//! (`TT_TEST_DATABASE_URL`), each test on a fresh, empty database.

use tt_analytics::{
    domain::{
        calendar::{self, pieces},
        schema::{self, Accepted},
    },
    service::dead_letter,
    store::{Backlog, Batch, Store, Summary, events::Filter},
};
use tt_common::outbox::EventBuilder;
use tt_testkit::TestDatabase;

/// The types identity and profiles declare, as the platform hands them to analytics.
fn registry() -> schema::Registry {
    schema::Registry::new(tt_identity::events::EMITS.iter().chain(tt_profiles::EMITS))
}
use tt_proto::common::v1::Event;

/// 2026-03-02T00:00:00Z.
const DAY0: i64 = 1_772_409_600_000;
const HOUR: i64 = 3_600_000;
const NOW: i64 = DAY0 + 40 * 24 * HOUR;

async fn store() -> (Store, TestDatabase) {
    let db = TestDatabase::new().await;
    let store = Store::new(db.connect());
    store.migrate().await.expect("migrations apply to an empty database");
    store.migrate().await.expect("and are idempotent");
    (store, db)
}

fn event(kind: &str, user: &str, actor: &str, at: i64) -> Event {
    EventBuilder::new(kind.split('.').next().unwrap_or(""), kind, user, actor, at).build()
}

fn accepted(e: &Event) -> Accepted {
    registry().check(e, NOW).expect("valid event")
}

/// Ingests and folds the queue into the rollups.
async fn ingest(store: &Store, batch: &Batch) -> Result<Summary, tt_common::storage::StorageError> {
    let summary = store.ingest(batch).await?;
    while store.roll_up(1000).await? > 0 {}
    Ok(summary)
}

fn batch(events: &[Event]) -> Batch {
    Batch { accepted: events.iter().map(accepted).collect(), now: NOW, ..Batch::default() }
}

/// DAU per UTC day from `from` (a date) for `days` days.
async fn dau(store: &Store, from: &str, days: i64, zone: &str) -> Vec<i64> {
    let (tz, _) = calendar::time_zone(zone).expect("zone");
    let start = calendar::date(from).expect("date");
    let list: Vec<_> = (0..days).filter_map(|i| calendar::add_days(start, i)).collect();
    let mut out = vec![0; days as usize];
    for (i, n) in store.daily_active(&pieces(&list, &tz)).await.expect("dau") {
        out[i] = n;
    }
    out
}

#[tokio::test]
async fn a_replayed_batch_adds_nothing_to_events_or_rollups() {
    let (store, _db) = store().await;
    let events = vec![
        event("identity.user.registered", "ann", "ann", DAY0 + HOUR),
        event("identity.user.logged_in", "ann", "ann", DAY0 + 2 * HOUR),
        event("identity.user.logged_in", "bob", "bob", DAY0 + 23 * HOUR + 50 * 60_000),
        event("identity.user.suspended", "cat", "admin", DAY0 + 3 * HOUR),
    ];
    let mut first = batch(&events);
    first.accepted.push(accepted(&events[0])); // twice in one batch
    let s = ingest(&store, &first).await.expect("ingest");
    assert_eq!(s, Summary { accepted: 4, duplicates: 1, dead_lettered: 0 });
    let again = ingest(&store, &batch(&events)).await.expect("replay");
    assert_eq!(again, Summary { accepted: 0, duplicates: 4, dead_lettered: 0 });

    assert_eq!(store.count_events(&Filter::default()).await.expect("count"), 4);
    // cat was suspended by an admin: not their activity.
    assert_eq!(dau(&store, "2026-03-02", 2, "").await, vec![2, 0]);
    let day0 = DAY0 / (24 * HOUR);
    assert_eq!(
        store.daily_active_utc(day0, day0 + 1).await.expect("counters"),
        vec![(day0, 2)],
        "counted once"
    );
    // 23:50Z is the next morning in Paris.
    assert_eq!(dau(&store, "2026-03-02", 2, "Europe/Paris").await, vec![1, 1]);
    let counts = store
        .event_counts(calendar::quarter(DAY0), calendar::quarter(DAY0 + 24 * HOUR))
        .await
        .expect("counts");
    assert_eq!(counts.iter().map(|c| c.2).sum::<i64>(), 4, "each event counted once");
    assert_eq!(
        store.registrations(DAY0, DAY0 + 24 * HOUR).await.expect("reg"),
        vec![(calendar::user_key("ann"), DAY0 + HOUR)]
    );
    let usage = store.usage(0).await.expect("usage");
    assert_eq!((usage.events_total, usage.events_since, usage.users_total), (4, 4, 1));
    let identity = &usage.sources[0];
    assert_eq!(
        (identity.source.as_str(), identity.events, identity.duplicates, identity.batches),
        ("identity", 4, 5, 2)
    );
}

#[tokio::test]
async fn activity_bits_merge_across_batches_and_cohort_pairs_follow_registrations() {
    let (store, _db) = store().await;
    ingest(&store, &batch(&[event("identity.user.registered", "ann", "ann", DAY0)])).await.expect("a");
    ingest(&store, &batch(&[event("identity.user.logged_in", "ann", "ann", DAY0 + 20 * HOUR)]))
        .await
        .expect("b");
    ingest(&store, &batch(&[event("identity.user.logged_in", "old", "old", DAY0 + 20 * HOUR)]))
        .await
        .expect("c");
    let days = [calendar::date("2026-03-02").expect("d")];
    let p = pieces(&days, &jiff::tz::TimeZone::UTC);
    let mut all = store.active_pairs(&p, None).await.expect("pairs");
    all.sort();
    let mut expected = vec![(calendar::user_key("ann"), 0), (calendar::user_key("old"), 0)];
    expected.sort();
    assert_eq!(all, expected);
    let cohort = store.active_pairs(&p, Some((DAY0, DAY0 + HOUR))).await.expect("cohort");
    assert_eq!(cohort, vec![(calendar::user_key("ann"), 0)], "only users registered in the span");
    // Both of ann's quarter-hours (00:00 and 20:00) are in her one row.
    let late = pieces(&days, &jiff::tz::TimeZone::fixed(jiff::tz::offset(-4)));
    assert_eq!(store.daily_active(&late).await.expect("dau"), vec![(0, 2)], "20:00Z is 16:00 at UTC-4");
}

#[tokio::test]
async fn timelines_page_newest_first_with_filters() {
    let (store, _db) = store().await;
    let mut events: Vec<Event> =
        (0..5).map(|i| event("identity.user.logged_in", "ann", "ann", DAY0 + i * HOUR)).collect();
    events.push(event("identity.user.registered", "ann", "ann", DAY0));
    events.push(event("identity.user.logged_in", "bob", "bob", DAY0 + HOUR));
    ingest(&store, &batch(&events)).await.expect("ingest");
    let mine = Filter { subject: Some("ann".into()), ..Filter::default() };
    let page = store.events_page(&mine, None, true, 4).await.expect("page");
    assert_eq!(
        page.iter().map(|r| r.time).collect::<Vec<_>>(),
        vec![DAY0 + 4 * HOUR, DAY0 + 3 * HOUR, DAY0 + 2 * HOUR, DAY0 + HOUR]
    );
    let last = page.last().map(|r| (r.time, r.id.clone())).expect("last");
    let rest = store.events_page(&mine, Some(&last), true, 4).await.expect("rest");
    assert_eq!(rest.len(), 2, "the two events at DAY0");
    assert!(rest.iter().all(|r| r.subject == "ann"));
    let logins = Filter { types: vec!["identity.user.registered".into()], ..mine.clone() };
    assert_eq!(store.events_page(&logins, None, true, 10).await.expect("typed").len(), 1);
    let window = Filter { from: Some(DAY0 + HOUR), to: Some(DAY0 + 3 * HOUR), ..Filter::default() };
    let oldest_first = store.events_page(&window, None, false, 10).await.expect("window");
    assert_eq!(oldest_first.len(), 3, "ann at 1h and 2h, bob at 1h");
    assert!(oldest_first.windows(2).all(|w| (w[0].time, &w[0].id) < (w[1].time, &w[1].id)));
}

#[tokio::test]
async fn dead_letters_are_kept_once_listed_and_replayed_atomically() {
    let (store, _db) = store().await;
    let unknown = event("profiles.badge.won", "ann", "ann", DAY0);
    let reason: String = registry().check(&unknown, NOW).expect_err("unknown type").into();
    let mut b = batch(&[]);
    b.dead = vec![dead_letter(&unknown, reason.clone()), dead_letter(&unknown, reason.clone())];
    b.backlog = Some(Backlog { source: "profiles".into(), pending: 7, oldest: Some(DAY0) });
    assert_eq!(ingest(&store, &b).await.expect("ingest").dead_lettered, 2);
    ingest(&store, &b).await.expect("redelivered");
    let listed = store.dead_letters(false, None, 10).await.expect("list");
    assert_eq!(listed.len(), 1, "one dead letter per event id");
    assert_eq!(listed[0].reason, reason);
    let usage = store.usage(0).await.expect("usage");
    assert_eq!(usage.dead_letters_pending, 1);
    assert_eq!((usage.sources[0].outbox_pending, usage.sources[0].oldest_pending_at), (7, Some(DAY0)));

    // A replay that still fails records the new reason; one that passes ingests and marks it.
    let id = listed[0].id.clone();
    let failing = Batch {
        still_failing: vec![(id.clone(), "UNKNOWN_TYPE: still".into())],
        now: NOW,
        ..Batch::default()
    };
    ingest(&store, &failing).await.expect("failing replay");
    let again = store.pending_dead_letters(std::slice::from_ref(&id), 10).await.expect("pending");
    assert_eq!((again[0].reason.as_str(), again[0].replay_attempts), ("UNKNOWN_TYPE: still", 1));
    let mut fixed = EventBuilder::new("profiles", "profiles.goal.achieved", "ann", "ann", DAY0)
        .string("goal_id", "g")
        .build();
    fixed.id = unknown.id.clone();
    let replay =
        Batch { accepted: vec![accepted(&fixed)], replayed: vec![id.clone()], now: NOW, ..Batch::default() };
    assert_eq!(ingest(&store, &replay).await.expect("replay").accepted, 1);
    assert!(store.pending_dead_letters(&[], 10).await.expect("none").is_empty());
    assert_eq!(store.dead_letters(true, None, 10).await.expect("all")[0].replayed_at, Some(NOW));
}

#[tokio::test]
async fn time_zones_follow_the_latest_profile_event() {
    let (store, _db) = store().await;
    let tz = |zone: &str, at: i64| {
        EventBuilder::new("profiles", "profiles.profile.updated", "ann", "ann", at)
            .string("fields", "timezone")
            .string("time_zone", zone)
            .build()
    };
    ingest(&store, &batch(&[tz("Asia/Tokyo", DAY0 + 2), tz("Europe/Paris", DAY0 + 1)])).await.expect("a");
    assert_eq!(store.time_zone_of("ann").await.expect("tz"), "Asia/Tokyo");
    ingest(&store, &batch(&[tz("America/Lima", DAY0)])).await.expect("older");
    assert_eq!(store.time_zone_of("ann").await.expect("tz"), "Asia/Tokyo", "an older event does not win");
    assert_eq!(store.time_zone_of("nobody").await.expect("tz"), "");
}

#[tokio::test]
async fn concurrent_roll_up_passes_apply_each_event_once() {
    let (store, _db) = store().await;
    let events: Vec<Event> = (0..3000)
        .map(|i| {
            event(
                "identity.user.logged_in",
                &format!("u{}", i % 300),
                &format!("u{}", i % 300),
                DAY0 + i * 60_000,
            )
        })
        .collect();
    for chunk in events.chunks(1000) {
        store.ingest(&batch(chunk)).await.expect("ingest");
    }
    assert_eq!(store.rollup_backlog().await.expect("backlog"), 3000, "queued, not yet rolled up");
    let passes = (0..4).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                match store.roll_up(250).await.expect("roll up") {
                    0 => return n,
                    k => n += k,
                }
            }
        })
    });
    let applied: usize = futures::future::join_all(passes).await.into_iter().map(|r| r.expect("task")).sum();
    assert_eq!(applied, 3000, "every queued event applied by exactly one pass");
    assert_eq!(store.rollup_backlog().await.expect("backlog"), 0);
    let counts = store
        .event_counts(calendar::quarter(DAY0), calendar::quarter(DAY0 + 3 * 24 * HOUR))
        .await
        .expect("counts");
    assert_eq!(counts.iter().map(|c| c.2).sum::<i64>(), 3000);
    // The per-day counters agree with the distinct count over the quarter-hour rollup.
    let day0 = DAY0 / (24 * HOUR);
    let mut counters = store.daily_active_utc(day0, day0 + 2).await.expect("counters");
    counters.sort();
    let generic = dau(&store, "2026-03-02", 3, "").await;
    assert_eq!(counters.iter().map(|c| c.1).collect::<Vec<_>>(), generic);
    assert_eq!(generic, vec![300, 300, 120], "minutes 0-1439, 1440-2879 and 2880-2999");
}
