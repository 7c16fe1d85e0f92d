//! Repository conformance: the same suite on SQLite (default) and PostgreSQL
//! (`TT_TEST_DATABASE_URL`), each test on a fresh, empty database.

use tt_profiles::{
    domain::career::month_index,
    store::{
        GoalRow, PositionRow, Store, WriteError,
        goals::ACTIVE,
        skills::{SelfAssessment, Verification},
    },
};
use tt_testkit::TestDatabase;

async fn store() -> (Store, TestDatabase) {
    let db = TestDatabase::new().await;
    // The platform's routes for profiles' events, with a subscriber to its change notices.
    let routes = tt_common::platform::routes(&[&tt_profiles::MODULE])
        .consumer(tt_profiles::LEARNER_CHANGED, "matching");
    let store = Store::with_outbox(db.connect(), tt_common::outbox::Outbox::new(routes));
    store.migrate().await.expect("migrations apply to an empty database");
    store.migrate().await.expect("and are idempotent");
    (store, db)
}

fn goal(user: &str, title: &str) -> GoalRow {
    GoalRow {
        id: tt_common::new_id(),
        user_id: user.into(),
        kind: "GOAL_KIND_SHORT_TERM".into(),
        title: title.into(),
        target_role: String::new(),
        target_field: String::new(),
        target_date: String::new(),
        priority: 3,
        status: ACTIVE.into(),
        skill_ids: vec!["rust".into()],
        rank: 0,
        request_id: None,
        version: 1,
        created_at: 1,
        updated_at: 1,
        achieved_at: None,
    }
}

fn position(user: &str, start: (i32, i32)) -> PositionRow {
    PositionRow {
        id: tt_common::new_id(),
        user_id: user.into(),
        title: "Engineer".into(),
        organization: "Acme".into(),
        start_month: month_index(start.0, start.1),
        end_month: None,
        current: true,
        description: String::new(),
        skill_ids: vec![],
        request_id: None,
        version: 1,
        created_at: 1,
        updated_at: 1,
    }
}

#[tokio::test]
async fn profiles_are_created_once_and_updated_with_a_version_check() {
    let (store, _db) = store().await;
    let user = tt_common::new_id();
    assert!(store.ensure_profile(&user, &user, 10).await.expect("create"));
    assert!(!store.ensure_profile(&user, &user, 11).await.expect("exists"));
    let mut p = store.profile(&user).await.expect("read").expect("profile");
    assert_eq!((p.version, p.created_at), (1, 10));
    p.headline = "hello".into();
    p.languages = vec!["en".into(), "de".into()];
    p.notify_push = true;
    let updated = store
        .update_profile(&p, 1, 20, &["headline".to_owned()])
        .await
        .expect("update")
        .expect("version matched");
    assert_eq!((updated.version, updated.headline.as_str(), updated.updated_at), (2, "hello", 20));
    assert_eq!(updated.languages, vec!["en", "de"]);
    assert!(updated.notify_push);
    assert!(
        store.update_profile(&p, 1, 30, &["headline".to_owned()]).await.expect("update").is_none(),
        "stale version"
    );
}

#[tokio::test]
async fn the_active_goal_limit_holds_under_concurrent_creates() {
    let (store, _db) = store().await;
    let user = tt_common::new_id();
    store.ensure_profile(&user, &user, 1).await.expect("profile");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            let g = goal(&user, &format!("g{i}"));
            tokio::spawn(async move { store.create_goal(&g).await })
        })
        .collect();
    let mut created = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => created += 1,
            Err(WriteError::Limit(_)) => limited += 1,
            // SQLite may report a busy database under this contention; that is a retryable
            // refusal, not a broken limit.
            Err(WriteError::Storage(e)) if e.is_retryable() => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(created <= 10 && limited >= 6, "created {created}, limited {limited}");
    let learner = store.learner(&user).await.expect("read").expect("learner");
    assert_eq!(learner.goals.len(), created);
    let ranks: Vec<i32> = learner.goals.iter().map(|g| g.rank).collect();
    assert_eq!(
        ranks,
        (0..i32::try_from(created).expect("small")).collect::<Vec<_>>(),
        "ranks stay contiguous"
    );
}

#[tokio::test]
async fn child_writes_need_a_profile_and_request_ids_are_idempotent() {
    let (store, _db) = store().await;
    let user = tt_common::new_id();
    assert!(matches!(store.create_goal(&goal(&user, "x")).await, Err(WriteError::NoProfile)));
    store.ensure_profile(&user, &user, 1).await.expect("profile");
    let mut g = goal(&user, "x");
    g.request_id = Some("r1".into());
    let first = store.create_goal(&g).await.expect("create");
    let retry = store.create_goal(&GoalRow { id: tt_common::new_id(), ..g }).await.expect("retry");
    assert_eq!(first, retry);
    let mut p = position(&user, (2020, 1));
    p.request_id = Some("r1".into());
    let pos = store.create_position(&p).await.expect("position");
    let again = store.create_position(&PositionRow { id: tt_common::new_id(), ..p }).await.expect("retry");
    assert_eq!(pos, again);
}

#[tokio::test]
async fn positions_page_newest_first() {
    let (store, _db) = store().await;
    let user = tt_common::new_id();
    store.ensure_profile(&user, &user, 1).await.expect("profile");
    for year in [2015, 2019, 2017, 2021, 2013] {
        store.create_position(&position(&user, (year, 1))).await.expect("create");
    }
    let first = store.list_positions(&user, (i32::MAX, ""), 3).await.expect("page");
    let years: Vec<i32> = first.iter().map(|p| p.start_month / 12).collect();
    assert_eq!(years, vec![2021, 2019, 2017]);
    let last = first.last().expect("row");
    let rest = store.list_positions(&user, (last.start_month, &last.id), 3).await.expect("page");
    assert_eq!(rest.iter().map(|p| p.start_month / 12).collect::<Vec<_>>(), vec![2015, 2013]);
}

#[tokio::test]
async fn verification_survives_self_assessment_and_retries_are_idempotent() {
    let (store, _db) = store().await;
    let user = tt_common::new_id();
    store.ensure_profile(&user, &user, 1).await.expect("profile");
    let stated =
        SelfAssessment { proficiency: 2, years_tenths: 15, last_used_month: Some(month_index(2024, 5)) };
    let (created, row) = store.upsert_skill(&user, "rust", stated, 5).await.expect("upsert");
    assert!(created);
    assert_eq!(row.last_used_month, Some(month_index(2024, 5)));
    let v =
        Verification { proficiency: 4, source: "missions/1".into(), verifier: "svc".into(), verified_at: 9 };
    assert!(store.verify_skill(&user, "rust", &v).await.expect("verify").0);
    assert!(!store.verify_skill(&user, "rust", &v).await.expect("again").0, "same verification: no change");
    let (created, row) = store
        .upsert_skill(&user, "rust", SelfAssessment { proficiency: 5, ..stated }, 10)
        .await
        .expect("upsert");
    assert!(!created);
    assert_eq!(row.proficiency, 5);
    assert_eq!(row.verification, Some(v.clone()));
    // Verifying a skill the learner never listed adds it.
    let (_, added) = store.verify_skill(&user, "sql", &v).await.expect("verify new");
    assert_eq!((added.proficiency, added.verification.map(|x| x.proficiency)), (4, Some(4)));
    assert!(matches!(store.delete_skill(&user, "go", 11).await, Err(WriteError::NotFound)));
}

#[tokio::test]
async fn purging_removes_everything_once_and_blocks_recreation() {
    let (store, _db) = store().await;
    let (user, other) = (tt_common::new_id(), tt_common::new_id());
    for u in [&user, &other] {
        store.ensure_profile(u, u, 1).await.expect("profile");
        store.create_goal(&goal(u, "g")).await.expect("goal");
        store.create_position(&position(u, (2020, 1))).await.expect("position");
        store
            .upsert_skill(
                u,
                "rust",
                SelfAssessment { proficiency: 3, years_tenths: 0, last_used_month: None },
                1,
            )
            .await
            .expect("skill");
    }
    assert!(store.purge_user("event-1", &user, 50).await.expect("purge"));
    assert_eq!(store.rows_about(&user).await.expect("count"), 0);
    assert_eq!(store.rows_about(&other).await.expect("count"), 4, "other learners untouched");
    assert!(!store.purge_user("event-1", &user, 60).await.expect("replay"), "a replay does nothing");
    assert!(!store.ensure_profile(&user, &user, 70).await.expect("ensure"), "no profile for a deleted user");
    assert!(store.is_purged(&user).await.expect("purged"));
    assert!(store.acknowledge_event("event-2", 1).await.expect("ack"));
    assert!(!store.acknowledge_event("event-2", 2).await.expect("ack again"));
    // event-1 was consumed at 50, event-2 at 1: pruning before 10 forgets only event-2.
    assert_eq!(store.prune_consumed(10).await.expect("prune"), 1);
    assert!(store.acknowledge_event("event-2", 3).await.expect("forgotten"));
    assert!(!store.acknowledge_event("event-1", 3).await.expect("kept"));
}

/// The events in the analytics outbox, oldest first: (type, actor, attributes as sorted pairs).
async fn events_to(store: &Store, destination: &str) -> Vec<(String, String, Vec<(String, String)>)> {
    use prost::Message;
    use sqlx::Row;
    let rows = sqlx::query("SELECT payload FROM outbox WHERE destination = $1 ORDER BY id")
        .bind(destination)
        .fetch_all(store.db().pool())
        .await
        .expect("outbox");
    rows.iter()
        .map(|r| {
            let e = tt_proto::common::v1::Event::decode(r.get::<Vec<u8>, _>("payload").as_slice())
                .expect("event");
            let mut attrs: Vec<(String, String)> =
                e.attributes.iter().map(|(k, v)| (k.clone(), format!("{:?}", v.kind))).collect();
            attrs.sort();
            (e.r#type, e.actor, attrs)
        })
        .collect()
}

#[tokio::test]
async fn writes_commit_their_analytics_events_with_them_and_only_real_changes_emit() {
    let (store, _db) = store().await;
    let user = tt_common::new_id();
    store.ensure_profile(&user, &user, 1).await.expect("profile");
    store.ensure_profile(&user, &user, 2).await.expect("again");
    let mut p = store.profile(&user).await.expect("read").expect("profile");
    p.timezone = "Europe/Paris".into();
    let fields = ["timezone".to_owned(), "headline".to_owned()];
    store.update_profile(&p, 1, 3, &fields).await.expect("update").expect("matched");
    assert!(store.update_profile(&p, 1, 4, &fields).await.expect("stale").is_none());
    let done =
        GoalRow { status: "GOAL_STATUS_ACHIEVED".into(), request_id: Some("r1".into()), ..goal(&user, "g") };
    store.create_goal(&done).await.expect("goal");
    store.create_goal(&GoalRow { id: tt_common::new_id(), ..done }).await.expect("retried create");
    let stated = SelfAssessment { proficiency: 3, years_tenths: 0, last_used_month: None };
    store.upsert_skill(&user, "rust", stated, 5).await.expect("skill");
    store.upsert_skill(&user, "rust", stated, 6).await.expect("same skill");
    let v =
        Verification { proficiency: 4, source: "missions/1".into(), verifier: "svc".into(), verified_at: 7 };
    store.verify_skill(&user, "rust", &v).await.expect("verify");
    store.verify_skill(&user, "rust", &v).await.expect("verify again");
    let job = store.create_position(&position(&user, (2020, 1))).await.expect("position");
    store.delete_position(&user, &job.id, 8).await.expect("delete position");
    store.delete_skill(&user, "rust", 8).await.expect("delete skill");
    store.delete_goal(&user, &done.id, 8).await.expect("delete goal");
    assert!(store.report_completion(&user, 0, 20, 8).await.expect("report"));
    assert!(!store.report_completion(&user, 0, 30, 9).await.expect("stale report"), "reported once");

    let s = |v: &str| format!("Some(StringValue({v:?}))");
    let i = |v: i64| format!("Some(IntValue({v}))");
    let a = |pairs: &[(&str, String)]| {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect::<Vec<_>>()
    };
    let u = user.as_str();
    let changed = |actor: &str, part: &str| {
        ("profiles.learner.changed".to_owned(), actor.to_owned(), a(&[("part", s(part))]))
    };
    assert_eq!(
        events_to(&store, "analytics").await,
        vec![
            ("profiles.profile.created".into(), u.into(), vec![]),
            (
                "profiles.profile.updated".into(),
                u.into(),
                a(&[("fields", s("timezone,headline")), ("time_zone", s("Europe/Paris"))])
            ),
            (
                "profiles.goal.created".into(),
                u.into(),
                a(&[("goal_id", s(&done.id)), ("kind", s("GOAL_KIND_SHORT_TERM"))])
            ),
            ("profiles.goal.achieved".into(), u.into(), a(&[("goal_id", s(&done.id))])),
            ("profiles.skill.added".into(), u.into(), a(&[("level", i(3)), ("skill_id", s("rust"))])),
            (
                "profiles.skill.verified".into(),
                "svc".into(),
                a(&[("proficiency", i(4)), ("skill_id", s("rust")), ("source", s("missions/1"))])
            ),
            (
                "profiles.completion.changed".into(),
                String::new(),
                a(&[("percent", i(20)), ("previous", i(0))])
            ),
        ]
    );
    // Each real change to what the learner view shows, to its subscribers only.
    assert_eq!(
        events_to(&store, "matching").await,
        vec![
            changed(u, "profile"),
            changed(u, "profile"),
            changed(u, "goals"),
            changed(u, "skills"),
            changed("svc", "skills"),
            changed(u, "positions"),
            changed(u, "positions"),
            changed(u, "skills"),
            changed(u, "goals"),
        ]
    );
}
