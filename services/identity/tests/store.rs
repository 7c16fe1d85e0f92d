//! Repository conformance: the same suite on SQLite (default) and PostgreSQL
//! (`TT_TEST_DATABASE_URL`), each test on a fresh, empty database.

use serde_json::json;
use tt_common::{auth::Role, outbox::backlog, storage::StorageError};
use tt_identity::{
    domain::UserStatus,
    store::{
        Store,
        audit::AuditRecord,
        sessions::{Rotation, SessionRow},
        users::{Revoke, UserFilter, UserRow},
    },
};
use tt_testkit::TestDatabase;

async fn store() -> (Store, TestDatabase) {
    let db = TestDatabase::new().await;
    // Routed as the platform routes identity's events when profiles is known (it consumes
    // deletions and names; names are notices, which analytics does not hear).
    let routes = tt_common::outbox::Routes::new()
        .notice(tt_identity::events::USER_NAMED)
        .consumer(tt_identity::events::USER_DELETED, "profiles")
        .consumer(tt_identity::events::USER_NAMED, "profiles");
    let store = Store::with_outbox(db.connect(), tt_common::outbox::Outbox::new(routes));
    store.migrate().await.expect("migrations apply to an empty database");
    store.migrate().await.expect("and are idempotent");
    (store, db)
}

fn user(email: &str) -> UserRow {
    UserRow {
        id: tt_common::new_id(),
        email: email.into(),
        display_name: "x".into(),
        password_hash: "h".into(),
        roles: vec![Role::Learner],
        status: UserStatus::Active,
        tokens_valid_after: 0,
        version: 1,
        created_at: 1,
        updated_at: 1,
    }
}

fn audit(kind: &str) -> AuditRecord {
    AuditRecord::new(kind, "", "s", json!({}), 1)
}

fn session(user_id: &str, id: &str) -> SessionRow {
    SessionRow {
        id: id.into(),
        user_id: user_id.into(),
        user_agent: "t".into(),
        created_at: 1,
        last_used_at: 1,
        idle_expires_at: 1000,
        absolute_expires_at: 2000,
        revoked_at: None,
    }
}

#[tokio::test]
async fn users_round_trip_and_emails_are_unique() {
    let (s, _db) = store().await;
    let u = user("a@x.io");
    s.create_user(&u, &audit("c")).await.expect("create");
    assert_eq!(s.user_by_email("a@x.io").await.expect("get"), Some(u.clone()));
    assert_eq!(s.user_by_id(&u.id).await.expect("get"), Some(u));
    let dup = s.create_user(&user("a@x.io"), &audit("c")).await.expect_err("duplicate");
    assert!(matches!(dup, StorageError::Conflict(_)), "{dup:?}");
    // The failed insert wrote no audit record either.
    assert_eq!(s.list_audit(Some("c"), None, None, 10).await.expect("audit").len(), 1);
}

#[tokio::test]
async fn list_users_filters_and_orders_by_id() {
    let (s, _db) = store().await;
    let mut ids = Vec::new();
    for (email, admin) in [("ann@x.io", true), ("al@x.io", false), ("bo@x.io", false)] {
        let mut u = user(email);
        if admin {
            u.roles.push(Role::Admin);
        }
        ids.push(u.id.clone());
        s.create_user(&u, &audit("c")).await.expect("create");
    }
    let a = UserFilter { email_prefix: Some("a".into()), ..Default::default() };
    let page = s.list_users(&a, None, 10).await.expect("list");
    assert_eq!(page.iter().map(|u| u.id.clone()).collect::<Vec<_>>(), ids[..2]);
    let after = s.list_users(&a, Some(&ids[0]), 10).await.expect("after");
    assert_eq!(after.len(), 1);
    let admins = UserFilter { role: Some(Role::Admin), ..Default::default() };
    assert_eq!(s.list_users(&admins, None, 10).await.expect("admins").len(), 1);
    let suspended = UserFilter { status: Some(UserStatus::Suspended), ..Default::default() };
    assert!(s.list_users(&suspended, None, 10).await.expect("none").is_empty());
}

#[tokio::test]
async fn of_two_rotations_of_one_token_exactly_one_wins() {
    let (s, _db) = store().await;
    let u = user("r@x.io");
    s.create_user(&u, &audit("c")).await.expect("create");
    let sid = tt_common::new_id();
    s.create_session(&session(&u.id, &sid), "t0", &audit("l")).await.expect("session");
    let (a, b) = tokio::join!(s.rotate(&sid, "t0", "t1", 10, 500), s.rotate(&sid, "t0", "t2", 10, 500));
    let outcomes = [a.expect("a"), b.expect("b")];
    assert_eq!(outcomes.iter().filter(|o| **o == Rotation::Rotated).count(), 1, "{outcomes:?}");
    let winner = if outcomes[0] == Rotation::Rotated { "t1" } else { "t2" };
    assert!(s.is_current_token(winner).await.expect("current"));
    assert!(!s.is_current_token("t0").await.expect("old"));
    let row = s.session(&sid).await.expect("load").expect("session");
    assert_eq!(row.idle_expires_at, 500);
    // Idle expiry never passes the absolute one.
    s.rotate(&sid, winner, "t3", 20, 9_999).await.expect("rotate");
    assert_eq!(s.session(&sid).await.expect("load").expect("session").idle_expires_at, 2000);
}

#[tokio::test]
async fn suspension_marks_and_ends_sessions_atomically() {
    // (The revocation row is what the feed streams to every verifier.)
    let (s, _db) = store().await;
    let u = user("s@x.io");
    s.create_user(&u, &audit("c")).await.expect("create");
    let sid = tt_common::new_id();
    s.create_session(&session(&u.id, &sid), "t0", &audit("l")).await.expect("session");
    let row = s
        .admin_update(&u.id, None, Some(UserStatus::Suspended), Revoke::EVERYTHING, 77, &audit("sus"))
        .await
        .expect("update")
        .expect("user");
    assert_eq!((row.status, row.tokens_valid_after, row.version), (UserStatus::Suspended, 77, 2));
    assert_eq!(s.session(&sid).await.expect("load").expect("session").revoked_at, Some(77));
    assert_eq!(s.revocations_since(50).await.expect("marks"), vec![(u.id.clone(), 77)]);
    // A mark only moves forward; an older one changes nothing.
    s.admin_update(&u.id, None, None, Revoke::TOKENS, 60, &audit("old")).await.expect("update");
    assert_eq!(s.revocations_since(0).await.expect("marks"), vec![(u.id.clone(), 77)]);
    let missing = s.admin_update("nobody", None, None, Revoke::NOTHING, 1, &audit("x")).await.expect("ok");
    assert_eq!(missing, None);
}

#[tokio::test]
async fn deleting_a_user_removes_sessions_and_tokens_and_tells_profiles_and_analytics() {
    let (s, _db) = store().await;
    let u = user("d@x.io");
    let deleted = |id: &str| AuditRecord::new("user.deleted", "admin", id, json!({}), 5);
    s.create_user(&u, &audit("c")).await.expect("create");
    let sid = tt_common::new_id();
    s.create_session(&session(&u.id, &sid), "t0", &audit("l")).await.expect("session");
    let pending = |dest: &'static str| {
        let s = s.clone();
        async move { backlog(s.db().pool(), dest).await.expect("backlog").pending }
    };
    assert_eq!(pending("analytics").await, 0, "records without events write none");
    assert_eq!(pending("profiles").await, 1, "the name given at sign-up");
    assert!(s.delete_user(&u.id, &deleted(&u.id)).await.expect("delete"));
    assert!(s.token_by_hash("t0").await.expect("token").is_none());
    assert!(s.session(&sid).await.expect("session").is_none());
    assert_eq!(pending("profiles").await, 2, "event committed with it");
    assert_eq!(pending("analytics").await, 1, "analytics hears of it too");
    assert_eq!(
        s.revocations_since(0).await.expect("marks"),
        vec![(u.id.clone(), 5)],
        "the deleted user's tokens stay revoked after the row is gone"
    );
    assert_eq!(s.prune_revocations(5).await.expect("prune"), 0, "kept until older than asked");
    assert!(!s.delete_user(&u.id, &deleted(&u.id)).await.expect("again"));
    assert_eq!(pending("profiles").await, 2, "nothing for a no-op");
}

#[tokio::test]
async fn audited_user_events_reach_the_outbox_only_when_committed() {
    let (s, _db) = store().await;
    let u = user("e@x.io");
    let registered = AuditRecord::new("user.registered", &u.id, &u.id, json!({}), 5);
    s.create_user(&u, &registered).await.expect("create");
    assert!(s.create_user(&u, &registered).await.is_err(), "a duplicate user is refused");
    let b = backlog(s.db().pool(), "analytics").await.expect("backlog");
    assert_eq!(b.pending, 1, "one event: the refused duplicate wrote none");
    assert_eq!(b.oldest, Some(5));
    assert_eq!(
        backlog(s.db().pool(), "profiles").await.expect("backlog").pending,
        1,
        "the name, to profiles only"
    );
    // A rename tells profiles too, in the same transaction; a stale one tells nobody.
    let renamed = s.update_display_name(&u.id, u.version, "Eve", 6).await.expect("rename");
    assert!(renamed.is_some());
    assert!(s.update_display_name(&u.id, u.version, "Old", 7).await.expect("stale").is_none());
    assert_eq!(backlog(s.db().pool(), "profiles").await.expect("backlog").pending, 2);
    assert_eq!(backlog(s.db().pool(), "analytics").await.expect("backlog").pending, 1);
}

#[tokio::test]
async fn pruning_removes_only_sessions_that_ended_long_ago() {
    let (s, _db) = store().await;
    let u = user("p@x.io");
    s.create_user(&u, &audit("c")).await.expect("create");
    let (old, live) = (tt_common::new_id(), tt_common::new_id());
    s.create_session(&session(&u.id, &old), "t-old", &audit("l")).await.expect("old");
    let mut fresh = session(&u.id, &live);
    fresh.idle_expires_at = 1_000_000;
    fresh.absolute_expires_at = 2_000_000;
    s.create_session(&fresh, "t-live", &audit("l")).await.expect("live");
    // The first session ended at 1000; keep ended sessions for 500 ms, prune at 10_000.
    assert_eq!(s.prune_sessions(10_000, 500).await.expect("prune"), 1);
    assert!(s.session(&old).await.expect("old").is_none());
    assert!(s.token_by_hash("t-old").await.expect("token").is_none());
    assert!(s.session(&live).await.expect("live").is_some());
}
