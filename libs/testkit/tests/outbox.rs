//! The transactional outbox on SQLite and PostgreSQL (`TT_TEST_DATABASE_URL`): events commit or
//! roll back with the change, are delivered oldest first, survive a failing receiver, are
//! relayed by one holder at a time, and are pruned after delivery; an event the receiver
//! refuses as invalid becomes a dead letter while the rest flow on, and admins replay or
//! discard it.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tonic::Status;
use tt_common::{
    clock::{ManualClock, SharedClock},
    outbox::{self, EventBuilder, Relay, Sink, backlog},
    storage::Database,
};
use tt_proto::common::v1::Event;
use tt_testkit::TestDatabase;

/// Records deliveries; fails while `down` is set, refuses a whole batch as INVALID_ARGUMENT
/// when it holds an event about a subject in `poison`, and answers `refuse` when set.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<String>>,
    down: Mutex<bool>,
    poison: Mutex<Vec<String>>,
    refuse: Mutex<Option<tonic::Code>>,
    backlogs: Mutex<Vec<i64>>,
}

impl Sink for Recorder {
    fn deliver(&self, events: Vec<Event>, backlog: outbox::Backlog) -> BoxFuture<'_, Result<(), Status>> {
        Box::pin(async move {
            if *self.down.lock().expect("lock") {
                return Err(Status::unavailable("receiver down"));
            }
            if let Some(code) = *self.refuse.lock().expect("lock") {
                return Err(Status::new(code, "refused"));
            }
            let poison = self.poison.lock().expect("lock").clone();
            if let Some(bad) = events.iter().position(|e| poison.contains(&e.subject)) {
                return Err(Status::invalid_argument(format!("invalid request: events[{bad}].subject")));
            }
            self.backlogs.lock().expect("lock").push(backlog.pending);
            self.seen.lock().expect("lock").extend(events.into_iter().map(|e| e.subject));
            Ok(())
        })
    }
}

fn seen(sink: &Recorder) -> Vec<String> {
    sink.seen.lock().expect("lock").clone()
}

async fn setup() -> (Database, TestDatabase, ManualClock) {
    let test = TestDatabase::new().await;
    let db = test.connect();
    db.migrate(&[outbox::migration(1), outbox::dead_letter_migration(2)]).await.expect("outbox tables");
    (db, test, ManualClock::new())
}

async fn write(db: &Database, subject: &str, commit: bool) {
    let mut tx = db.pool().begin().await.expect("tx");
    let event = EventBuilder::new("test", "test.happened", subject, "", 1).int("n", 1).build();
    outbox::enqueue(&mut tx, &["a", "b"], &event).await.expect("enqueue");
    if commit {
        tx.commit().await.expect("commit");
    } else {
        tx.rollback().await.expect("rollback");
    }
}

fn relay(db: &Database, sink: Arc<Recorder>, clock: &ManualClock) -> Relay {
    let clock: SharedClock = Arc::new(clock.clone());
    Relay::new(db.clone(), "a", sink, clock)
}

#[tokio::test]
async fn events_commit_with_the_change_and_arrive_in_order_once() {
    let (db, _t, clock) = setup().await;
    for i in 0..5 {
        write(&db, &format!("s{i}"), true).await;
    }
    write(&db, "rolled-back", false).await;
    assert_eq!(backlog(db.pool(), "a").await.expect("backlog").pending, 5);
    let sink = Arc::new(Recorder::default());
    let r = relay(&db, sink.clone(), &clock);
    assert_eq!(r.deliver_pending().await.expect("deliver"), 5);
    assert_eq!(r.deliver_pending().await.expect("again"), 0, "delivered rows are not sent again");
    assert_eq!(*sink.seen.lock().expect("lock"), vec!["s0", "s1", "s2", "s3", "s4"]);
    assert_eq!(backlog(db.pool(), "a").await.expect("backlog").pending, 0);
    assert_eq!(backlog(db.pool(), "b").await.expect("backlog").pending, 5, "each destination on its own");
}

#[tokio::test]
async fn a_failing_receiver_loses_nothing() {
    let (db, _t, clock) = setup().await;
    write(&db, "s0", true).await;
    let sink = Arc::new(Recorder::default());
    *sink.down.lock().expect("lock") = true;
    let r = relay(&db, sink.clone(), &clock);
    assert!(r.deliver_pending().await.is_err());
    assert!(r.deliver_pending().await.is_err());
    let pending = backlog(db.pool(), "a").await.expect("backlog");
    assert_eq!(pending.pending, 1);
    assert!(pending.oldest.is_some());
    write(&db, "s1", true).await;
    *sink.down.lock().expect("lock") = false;
    assert_eq!(r.deliver_pending().await.expect("deliver"), 2);
    assert_eq!(*sink.seen.lock().expect("lock"), vec!["s0", "s1"], "still in order after the outage");
}

#[tokio::test]
async fn one_relay_holds_a_destination_until_its_lease_runs_out() {
    let (db, _t, clock) = setup().await;
    write(&db, "s0", true).await;
    let (one, two) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let first = relay(&db, one.clone(), &clock);
    assert_eq!(first.deliver_pending().await.expect("first"), 1);
    write(&db, "s1", true).await;
    let second = relay(&db, two.clone(), &clock);
    assert_eq!(second.deliver_pending().await.expect("second"), 0, "the first holds the lease");
    clock.advance(std::time::Duration::from_secs(16));
    assert_eq!(second.deliver_pending().await.expect("second"), 1, "taken over after the lease expired");
    assert_eq!(*two.seen.lock().expect("lock"), vec!["s1"]);
    assert_eq!(first.deliver_pending().await.expect("first"), 0, "the old holder stays out");
}

#[tokio::test]
async fn delivered_rows_are_pruned_after_the_retention() {
    let (db, _t, clock) = setup().await;
    write(&db, "s0", true).await;
    let r = relay(&db, Arc::new(Recorder::default()), &clock);
    r.deliver_pending().await.expect("deliver");
    assert_eq!(r.prune().await.expect("prune"), 0, "kept for the retention period");
    clock.advance(std::time::Duration::from_secs(25 * 3600));
    assert_eq!(r.prune().await.expect("prune"), 1);
    assert_eq!(backlog(db.pool(), "b").await.expect("backlog").pending, 1, "other destinations untouched");
}

#[tokio::test]
async fn the_backlog_a_batch_reports_is_what_is_left_after_it() {
    let (db, _t, clock) = setup().await;
    for i in 0..5 {
        write(&db, &format!("s{i}"), true).await;
    }
    let sink = Arc::new(Recorder::default());
    let r = relay(&db, sink.clone(), &clock)
        .with_options(outbox::RelayOptions { batch: 2, ..Default::default() });
    assert_eq!(r.deliver_pending().await.expect("deliver"), 5);
    assert_eq!(
        *sink.backlogs.lock().expect("lock"),
        vec![3, 1, 0],
        "the last batch reports a drained outbox"
    );
}

/// The outbox admin service over `db`, as an admin calls it.
fn admin(db: &Database, clock: &ManualClock) -> outbox::OutboxAdmin {
    outbox::OutboxAdmin::new(vec![outbox::OutboxSource {
        service: "test".into(),
        db: db.clone(),
        destinations: vec!["a".into(), "b".into()],
        pages: tt_common::storage::PageTokens::new(
            &tt_common::secrets::Secret::from_bytes([3; 32]),
            std::sync::Arc::new(tt_common::clock::SystemClock),
        ),
        clock: Arc::new(clock.clone()),
        signal: None,
    }])
}

fn as_admin<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.extensions_mut().insert(tt_common::auth::Principal {
        subject: tt_common::new_id(),
        kind: tt_common::auth::PrincipalKind::User,
        roles: vec![tt_common::auth::Role::Admin],
        session_id: None,
        token: String::new(),
        expires_at_ms: i64::MAX,
    });
    request
}

#[tokio::test]
async fn a_poison_event_is_dead_lettered_its_subject_waits_and_the_rest_flow() {
    use tt_proto::common::v1::{self as pb, outbox_admin_service_server::OutboxAdminService};
    let (db, _t, clock) = setup().await;
    for subject in ["s0", "bad", "s1", "bad", "s2"] {
        write(&db, subject, true).await;
    }
    let sink = Arc::new(Recorder::default());
    sink.poison.lock().expect("lock").push("bad".into());
    let r = relay(&db, sink.clone(), &clock);
    assert_eq!(r.deliver_pending().await.expect("poison does not stop the relay"), 3);
    assert_eq!(seen(&sink), ["s0", "s1", "s2"]);
    // More events flow; the poisoned subject's stay behind its dead letter.
    write(&db, "s3", true).await;
    write(&db, "bad", true).await;
    assert_eq!(r.deliver_pending().await.expect("deliver"), 1);
    assert_eq!(seen(&sink), ["s0", "s1", "s2", "s3"]);
    let left = backlog(db.pool(), "a").await.expect("backlog");
    assert_eq!(left.pending, 2, "two events wait behind the dead letter");

    let admin = admin(&db, &clock);
    let outboxes =
        admin.list_outboxes(as_admin(pb::ListOutboxesRequest {})).await.expect("list").into_inner();
    let a = outboxes.outboxes.iter().find(|o| o.destination == "a").expect("destination a");
    assert_eq!((a.pending, a.held, a.dead_letters), (2, 2, 1));
    let dead = admin
        .list_outbox_dead_letters(as_admin(pb::ListOutboxDeadLettersRequest {
            service: "test".into(),
            destination: "a".into(),
            ..Default::default()
        }))
        .await
        .expect("dead letters")
        .into_inner()
        .dead_letters;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event.as_ref().map(|e| e.subject.as_str()), Some("bad"));
    assert!(dead[0].reason.contains("events[0].subject"), "the receiver's reason: {}", dead[0].reason);
    assert_eq!(dead[0].held_events, 2);

    // The receiver is fixed; a replay delivers the dead letter first, then what waited.
    sink.poison.lock().expect("lock").clear();
    let replayed = admin
        .replay_outbox_dead_letters(as_admin(pb::ReplayOutboxDeadLettersRequest {
            service: "test".into(),
            dead_letter_ids: vec![],
            all: true,
        }))
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(replayed.requeued, 1);
    assert_eq!(r.deliver_pending().await.expect("deliver"), 3);
    assert_eq!(seen(&sink), ["s0", "s1", "s2", "s3", "bad", "bad", "bad"]);
    assert_eq!(backlog(db.pool(), "a").await.expect("backlog").pending, 0);
}

#[tokio::test]
async fn a_discarded_dead_letter_lets_its_subject_flow_and_is_never_sent() {
    use tt_proto::common::v1::{self as pb, outbox_admin_service_server::OutboxAdminService};
    let (db, _t, clock) = setup().await;
    write(&db, "bad", true).await;
    write(&db, "bad", true).await;
    let sink = Arc::new(Recorder::default());
    sink.poison.lock().expect("lock").push("bad".into());
    let r = relay(&db, sink.clone(), &clock);
    assert_eq!(r.deliver_pending().await.expect("deliver"), 0);
    let admin = admin(&db, &clock);
    let list = || {
        admin.list_outbox_dead_letters(as_admin(pb::ListOutboxDeadLettersRequest {
            service: "test".into(),
            ..Default::default()
        }))
    };
    let dead = list().await.expect("dead letters").into_inner().dead_letters;
    assert_eq!(dead.len(), 1, "the second waits behind the first");
    sink.poison.lock().expect("lock").clear();
    let discarded = admin
        .discard_outbox_dead_letters(as_admin(pb::DiscardOutboxDeadLettersRequest {
            service: "test".into(),
            dead_letter_ids: vec![dead[0].id.clone()],
        }))
        .await
        .expect("discard")
        .into_inner();
    assert_eq!(discarded.discarded, 1);
    assert_eq!(r.deliver_pending().await.expect("deliver"), 1, "only the one that waited");
    assert!(list().await.expect("dead letters").into_inner().dead_letters.is_empty());

    // Bad requests name their fields and change nothing.
    let err = admin
        .replay_outbox_dead_letters(as_admin(pb::ReplayOutboxDeadLettersRequest {
            service: "nope".into(),
            dead_letter_ids: vec!["x".into()],
            all: true,
        }))
        .await
        .expect_err("invalid");
    assert_eq!(tt_common::error::bad_fields(&err), ["service", "dead_letter_ids", "dead_letter_ids[0]"]);
    let anonymous =
        admin.list_outboxes(tonic::Request::new(pb::ListOutboxesRequest {})).await.expect_err("no principal");
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn refused_credentials_are_retried_not_dead_lettered() {
    let (db, _t, clock) = setup().await;
    write(&db, "s0", true).await;
    let sink = Arc::new(Recorder::default());
    let r = relay(&db, sink.clone(), &clock);
    for code in [tonic::Code::Unauthenticated, tonic::Code::PermissionDenied, tonic::Code::Internal] {
        *sink.refuse.lock().expect("lock") = Some(code);
        let err = r.deliver_pending().await.expect_err("refused");
        assert!(err.to_string().contains(&format!("{code:?}")), "{err}");
    }
    assert_eq!(backlog(db.pool(), "a").await.expect("backlog").pending, 1, "still pending, not dead");
    *sink.refuse.lock().expect("lock") = None;
    assert_eq!(r.deliver_pending().await.expect("deliver"), 1);
}
