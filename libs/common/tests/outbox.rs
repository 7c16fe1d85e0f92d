//! The transactional outbox on SQLite and PostgreSQL (`TT_TEST_DATABASE_URL`): events commit or
//! roll back with the change, are delivered oldest first, survive a failing receiver, are
//! relayed by one holder at a time, and are pruned after delivery.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tonic::Status;
use tt_common::{
    clock::{ManualClock, SharedClock},
    outbox::{self, EventBuilder, Relay, Sink, backlog},
    storage::Database,
    testing::TestDatabase,
};
use tt_proto::common::v1::Event;

/// Records deliveries; fails while `down` is set.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<String>>,
    down: Mutex<bool>,
}

impl Sink for Recorder {
    fn deliver(&self, events: Vec<Event>, _backlog: outbox::Backlog) -> BoxFuture<'_, Result<(), Status>> {
        Box::pin(async move {
            if *self.down.lock().expect("lock") {
                return Err(Status::unavailable("receiver down"));
            }
            self.seen.lock().expect("lock").extend(events.into_iter().map(|e| e.subject));
            Ok(())
        })
    }
}

async fn setup() -> (Database, TestDatabase, ManualClock) {
    let test = TestDatabase::new().await;
    let db = test.connect();
    db.migrate(&[outbox::migration(1)]).await.expect("outbox tables");
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
