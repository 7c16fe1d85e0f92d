//! Repository conformance: the same suite on SQLite (default) and PostgreSQL
//! (`TT_TEST_DATABASE_URL`), each test on a fresh, empty database.

use std::sync::Arc;

use prost::Message;
use sqlx::Row;
use tt_matching::{
    domain::catalog::{self, DemoMentor},
    store::{MentorshipError, NewMentorship, Store, mentorships::Ending},
};
use tt_proto::{
    common::v1::Event,
    matching::v1::{EndReason, MentorshipOrigin, MentorshipState},
};
use tt_testkit::TestDatabase;

async fn store() -> (Store, TestDatabase) {
    let db = TestDatabase::new().await;
    let store = Store::new(db.connect());
    store.migrate().await.expect("migrations apply to an empty database");
    store.migrate().await.expect("and are idempotent");
    (store, db)
}

fn demo() -> Vec<DemoMentor> {
    catalog::demo().expect("the shipped mentors parse")
}

async fn seeded() -> (Store, TestDatabase, Vec<DemoMentor>) {
    let (store, db) = store().await;
    let mentors = demo();
    assert_eq!(store.seed_demo(&mentors, 1_000).await.expect("seed"), mentors.len());
    (store, db, mentors)
}

async fn set_capacity(store: &Store, mentor: &str, capacity: i64) {
    sqlx::query("UPDATE mentors SET capacity = $2 WHERE mentor_id = $1")
        .bind(mentor)
        .bind(capacity)
        .execute(store.db().pool())
        .await
        .expect("capacity");
}

async fn seats(store: &Store, mentor: &str) -> i64 {
    store.seats().await.expect("seats").into_iter().find(|(id, _)| id == mentor).expect("mentor").1
}

/// The types of the events in the outbox, in the order they were written.
async fn events(store: &Store) -> Vec<String> {
    let rows = sqlx::query("SELECT payload FROM outbox ORDER BY id")
        .fetch_all(store.db().pool())
        .await
        .expect("outbox");
    rows.iter()
        .map(|r| {
            Event::decode(r.try_get::<Vec<u8>, _>("payload").expect("payload").as_slice())
                .expect("event")
                .r#type
        })
        .collect()
}

fn choice<'a>(user: &'a str, mentor: &'a str, request_id: Option<&'a str>) -> NewMentorship<'a> {
    NewMentorship {
        user_id: user,
        mentor_id: mentor,
        origin: MentorshipOrigin::Chosen,
        request_id,
        actor: user,
        now: 5_000,
        expires_at: None,
    }
}

fn proposal<'a>(user: &'a str, mentor: &'a str, expires_at: i64) -> NewMentorship<'a> {
    NewMentorship {
        origin: MentorshipOrigin::Admin,
        actor: "admin",
        expires_at: Some(expires_at),
        ..choice(user, mentor, None)
    }
}

fn ending<'a>(user: &'a str, id: &'a str, reason: EndReason) -> Ending<'a> {
    Ending { user_id: user, mentorship_id: id, reason, note: "too fast for me", actor: user, now: 9_000 }
}

#[tokio::test]
async fn the_demo_mentors_load_once_and_follow_the_data_file() {
    let (store, _db, mut mentors) = seeded().await;
    assert_eq!(store.seed_demo(&mentors, 2_000).await.expect("again"), 0, "nothing changed");
    let catalog = store.catalog().await.expect("catalog");
    assert_eq!(catalog.len(), mentors.len());
    assert!(catalog.iter().all(|m| m.row.published_version == 1 && m.latest.version == 1 && m.row.demo));

    mentors[0].content.capacity += 1;
    assert_eq!(store.seed_demo(&mentors, 3_000).await.expect("edited"), 1);
    let record = store
        .catalog()
        .await
        .expect("catalog")
        .into_iter()
        .find(|m| m.row.mentor_id == mentors[0].id)
        .expect("mentor");
    assert_eq!((record.row.latest_version, record.row.published_version), (2, 2));
    assert_eq!(record.latest.content, mentors[0].content);
    assert_eq!(record.row.capacity, i64::from(mentors[0].content.capacity));
    let first = store.version(&mentors[0].id, 1).await.expect("read").expect("version 1 is kept");
    assert_eq!(first.content.capacity + 1, mentors[0].content.capacity);
}

#[tokio::test]
async fn persona_vectors_are_kept_per_version_and_model_until_a_new_version_is_published() {
    let (store, _db, mentors) = seeded().await;
    let (a, b) = (mentors[0].id.as_str(), mentors[1].id.as_str());
    let v = [0.25_f32, -1.5, 3.0e-7, f32::MAX];
    store.save_persona_vectors("m1", &[(a, 1, &v), (b, 1, &v[..2])], 10).await.expect("save");
    store.save_persona_vectors("m2", &[(a, 1, &v[1..])], 11).await.expect("another model");
    let kept = store.save_persona_vectors("m1", &[(a, 1, &[9.0])], 12).await.expect("a second save");
    assert_eq!(kept.into_iter().collect::<Vec<_>>(), [((a.to_owned(), 1), v.to_vec())], "keeps the first");
    let saved = store.save_persona_vectors("m2", &[(b, 1, &[7.0])], 12).await.expect("a first save");
    assert_eq!(saved.into_iter().collect::<Vec<_>>(), [((b.to_owned(), 1), vec![7.0])], "returns it");
    let m1 = store.persona_vectors("m1", None).await.expect("read");
    assert_eq!(m1.len(), 2);
    assert_eq!(m1[&(a.to_owned(), 1)], v.to_vec(), "bit for bit");
    assert_eq!(m1[&(b.to_owned(), 1)], v[..2].to_vec());
    let m2 = store.persona_vectors("m2", None).await.expect("read");
    assert_eq!((m2.len(), &m2[&(a.to_owned(), 1)]), (2, &v[1..].to_vec()));
    assert!(store.persona_vectors("m3", None).await.expect("read").is_empty());
    // Only the versions asked for, in chunks of the query's size: (a, 2) was never embedded.
    let mut only: Vec<(String, i64)> = (0..600).map(|i| (format!("no-such-mentor-{i}"), 1)).collect();
    only.extend([(a.to_owned(), 2), (b.to_owned(), 1)]);
    let some = store.persona_vectors("m1", Some(&only)).await.expect("read");
    assert_eq!(some.into_iter().collect::<Vec<_>>(), [((b.to_owned(), 1), v[..2].to_vec())]);
    let other_model = store.persona_vectors("m2", Some(&only)).await.expect("read");
    assert_eq!(
        other_model.into_iter().collect::<Vec<_>>(),
        [((b.to_owned(), 1), vec![7.0])],
        "(a, 2) has none"
    );

    // An edit is not published yet: the published version's vector stays, and public() is it.
    let mut edited = mentors[0].content.clone();
    edited.voice.push_str(" Now with more patience.");
    let record = store.update_mentor(a, 1, &edited, "admin", 20).await.expect("edit");
    assert_eq!(record.public().map(|p| p.version), Some(1));
    assert_eq!(record.public().map(|p| &p.content), Some(&mentors[0].content));
    let (_, latest, public) = record.into_shared();
    assert_eq!((latest.version, public.as_ref().map(|p| p.version)), (2, Some(1)));
    store.save_persona_vectors("m1", &[], 21).await.expect("prune");
    assert_eq!(store.persona_vectors("m1", None).await.expect("read").len(), 2);
    // Published: version 1's vectors go (every model) at the next save.
    let record = store.publish_mentor(a, 2, 10, "admin", 22).await.expect("publish");
    assert_eq!(record.public().map(|p| (p.version, &p.content)), Some((2, &edited)));
    let (_, latest, public) = record.into_shared();
    assert!(public.is_some_and(|p| std::sync::Arc::ptr_eq(&p, &latest)), "the latest, shared");
    store.save_persona_vectors("m1", &[(a, 2, &v)], 23).await.expect("save v2");
    let m1 = store.persona_vectors("m1", None).await.expect("read");
    assert_eq!(m1.len(), 2);
    assert!(m1.contains_key(&(a.to_owned(), 2)) && !m1.contains_key(&(a.to_owned(), 1)));
    let m2 = store.persona_vectors("m2", None).await.expect("read");
    assert_eq!(m2.into_keys().collect::<Vec<_>>(), [(b.to_owned(), 1)], "a's version 1 gone for every model");
}

#[tokio::test]
async fn choosing_takes_a_seat_and_one_running_mentorship_per_learner() {
    let (store, _db, mentors) = seeded().await;
    let (a, b) = (&mentors[0].id, &mentors[1].id);
    let (row, fresh) = store.choose(&choice("u1", a, Some("r1"))).await.expect("chosen");
    assert!(fresh);
    assert_eq!(
        (row.state(), row.mentor_version, row.mentor_name.as_str()),
        (MentorshipState::Active, 1, mentors[0].content.name.as_str())
    );
    assert_eq!(seats(&store, a).await, 1);

    let (again, fresh) = store.choose(&choice("u1", a, Some("r1"))).await.expect("retried");
    assert!(!fresh && again.id == row.id, "the same request gives the first result");
    assert_eq!(seats(&store, a).await, 1, "and takes no second seat");

    let second = store.choose(&choice("u1", b, None)).await;
    assert!(matches!(second, Err(MentorshipError::Exists(Some(ref id))) if *id == row.id), "{second:?}");
    assert_eq!(seats(&store, b).await, 0, "the refused choice took no seat");
    assert!(matches!(
        store.choose(&choice("u2", "nobody", None)).await,
        Err(MentorshipError::MentorNotFound)
    ));

    set_capacity(&store, b, 1).await;
    store.choose(&choice("u2", b, None)).await.expect("the last seat");
    assert!(matches!(store.choose(&choice("u3", b, None)).await, Err(MentorshipError::MentorFull)));
    assert_eq!(events(&store).await, ["matching.mentorship.started", "matching.mentorship.started"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_learners_racing_for_the_last_seat_give_one_mentorship() {
    let (store, _db, mentors) = seeded().await;
    let mentor = mentors[2].id.clone();
    set_capacity(&store, &mentor, 1).await;
    let store = Arc::new(store);
    let racers: Vec<_> = (0..50)
        .map(|i| {
            let (store, mentor) = (store.clone(), mentor.clone());
            tokio::spawn(async move {
                let user = format!("racer-{i}");
                store.choose(&choice(&user, &mentor, None)).await
            })
        })
        .collect();
    let mut won = 0;
    for r in racers {
        match r.await.expect("joined") {
            Ok(_) => won += 1,
            Err(MentorshipError::MentorFull) => {}
            Err(e) => panic!("only MENTOR_FULL may refuse: {e:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(seats(&store, &mentor).await, 1);
    let active = sqlx::query("SELECT COUNT(*) AS n FROM mentorships WHERE mentor_id = $1")
        .bind(&mentor)
        .fetch_one(store.db().pool())
        .await
        .expect("count");
    assert_eq!(active.try_get::<i64, _>("n").expect("n"), 1);
}

#[tokio::test]
async fn ending_frees_the_seat_and_keeps_the_history() {
    let (store, _db, mentors) = seeded().await;
    let (a, b) = (&mentors[0].id, &mentors[1].id);
    let (first, _) = store.choose(&choice("u1", a, None)).await.expect("chosen");
    let ended = store.end(&ending("u1", &first.id, EndReason::StyleMismatch)).await.expect("ended");
    assert_eq!((ended.state(), ended.end_note.as_str()), (MentorshipState::Ended, "too fast for me"));
    assert_eq!(seats(&store, a).await, 0);
    assert!(matches!(
        store.end(&ending("u1", &first.id, EndReason::NoTime)).await,
        Err(MentorshipError::WrongState(_))
    ));
    assert!(
        matches!(
            store.end(&ending("u2", &first.id, EndReason::NoTime)).await,
            Err(MentorshipError::NotFound)
        ),
        "another learner's"
    );

    let (second, _) = store.choose(&choice("u1", b, None)).await.expect("another");
    let done = store.end(&ending("u1", &second.id, EndReason::GoalsReached)).await.expect("completed");
    assert_eq!(done.state(), MentorshipState::Completed);
    let history = store.history("u1").await.expect("history");
    assert_eq!(history.len(), 1, "a completed mentorship ranks nobody down");
    assert_eq!((history[0].0.as_str(), history[0].1), (a.as_str(), EndReason::StyleMismatch));
    let listed = store.list("u1", None, None, 10).await.expect("list");
    assert_eq!(
        listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [second.id.as_str(), first.id.as_str()]
    );
    let page =
        store.list("u1", None, Some(&(listed[0].created_at, listed[0].id.clone())), 10).await.expect("next");
    assert_eq!(page.len(), 1);
    assert_eq!(
        store.list("u1", Some(MentorshipState::Completed), None, 10).await.expect("by state").len(),
        1
    );
}

#[tokio::test]
async fn a_rematch_changes_both_or_neither() {
    let (store, _db, mentors) = seeded().await;
    let (a, b, c) = (&mentors[0].id, &mentors[1].id, &mentors[2].id);
    let (first, _) = store.choose(&choice("u1", a, None)).await.expect("chosen");
    assert!(matches!(
        store.rematch(&ending("u1", &first.id, EndReason::NotAFit), &choice("u1", a, None)).await,
        Err(MentorshipError::SameMentor)
    ));
    set_capacity(&store, b, 0).await;
    assert!(matches!(
        store.rematch(&ending("u1", &first.id, EndReason::NotAFit), &choice("u1", b, None)).await,
        Err(MentorshipError::MentorFull)
    ));
    let still = store.mentorship("u1", &first.id).await.expect("read").expect("row");
    assert_eq!(still.state(), MentorshipState::Active, "the refused rematch ended nothing");
    assert_eq!(seats(&store, a).await, 1);

    let (ended, next, fresh) = store
        .rematch(&ending("u1", &first.id, EndReason::NotAFit), &choice("u1", c, Some("rm")))
        .await
        .expect("rematched");
    assert!(fresh);
    assert_eq!(
        (ended.state(), next.state(), next.mentor_id.as_str()),
        (MentorshipState::Ended, MentorshipState::Active, c.as_str())
    );
    assert_eq!((seats(&store, a).await, seats(&store, c).await), (0, 1));
    let (_, again, fresh) = store
        .rematch(&ending("u1", &first.id, EndReason::NotAFit), &choice("u1", c, Some("rm")))
        .await
        .expect("retried");
    assert!(!fresh && again.id == next.id);
    assert_eq!(
        events(&store).await,
        ["matching.mentorship.started", "matching.mentorship.ended", "matching.mentorship.started"]
    );
}

#[tokio::test]
async fn feedback_is_kept_on_started_mentorships_and_reported() {
    let (store, _db, mentors) = seeded().await;
    let (row, _) = store.choose(&choice("u1", &mentors[0].id, None)).await.expect("chosen");
    let rated = store.feedback("u1", &row.id, 4, "patient and precise", 6_000).await.expect("rated");
    assert_eq!((rated.rating, rated.feedback_reason.as_str()), (Some(4), "patient and precise"));
    let again = store.feedback("u1", &row.id, 2, "less so lately", 7_000).await.expect("re-rated");
    assert_eq!(again.rating, Some(2), "a new rating replaces the last");
    assert!(matches!(store.feedback("u2", &row.id, 5, "x", 7_000).await, Err(MentorshipError::NotFound)));
    assert_eq!(events(&store).await.iter().filter(|t| *t == "matching.feedback.submitted").count(), 2);
    let usage = store.usage().await.expect("usage");
    assert!(
        usage.contains(&("mentors.active".to_owned(), i64::try_from(mentors.len()).expect("n"))),
        "{usage:?}"
    );
    assert!(
        usage.contains(&("mentorships.active".to_owned(), 1)) && usage.contains(&("feedback".to_owned(), 1))
    );
}

#[tokio::test]
async fn a_deleted_learner_is_forgotten_once_and_their_seat_freed() {
    let (store, _db, mentors) = seeded().await;
    let a = &mentors[0].id;
    let (row, _) = store.choose(&choice("u1", a, None)).await.expect("chosen");
    store.end(&ending("u1", &row.id, EndReason::NoTime)).await.expect("ended");
    store.choose(&choice("u1", a, None)).await.expect("again");
    store.choose(&choice("u2", a, None)).await.expect("someone else");
    assert_eq!(seats(&store, a).await, 2);
    assert_eq!(store.purge_user("ev-1", "u1", 10_000).await.expect("purged"), Some(vec![a.clone()]));
    assert_eq!(store.rows_about("u1").await.expect("rows"), 0);
    assert_eq!(seats(&store, a).await, 1, "only the deleted learner's seat is freed");
    assert_eq!(store.purge_user("ev-1", "u1", 11_000).await.expect("redelivered"), None, "applied once");
    assert_eq!(store.purge_user("ev-2", "u3", 11_000).await.expect("no mentorship"), Some(vec![]));
    assert_eq!(seats(&store, a).await, 1);
    assert_eq!(store.rows_about("u2").await.expect("rows"), 1);
}

#[tokio::test]
async fn a_proposal_holds_its_seat_until_accepted_declined_or_expired() {
    let (store, _db, mentors) = seeded().await;
    let a = &mentors[0].id;
    set_capacity(&store, a, 2).await;
    let (p1, _) = store.choose(&proposal("u1", a, 100_000)).await.expect("proposed");
    let (p2, _) = store.choose(&proposal("u2", a, 100_000)).await.expect("proposed");
    assert_eq!((p1.state(), p1.started_at), (MentorshipState::Proposed, None));
    assert_eq!(seats(&store, a).await, 2, "proposals hold seats");
    assert!(matches!(store.choose(&choice("u3", a, None)).await, Err(MentorshipError::MentorFull)));
    assert!(matches!(
        store.choose(&choice("u1", &mentors[1].id, None)).await,
        Err(MentorshipError::Exists(_))
    ));

    let accepted = store.accept("u1", &p1.id, 50_000).await.expect("accepted");
    assert_eq!((accepted.state(), accepted.started_at), (MentorshipState::Active, Some(50_000)));
    assert!(matches!(store.accept("u1", &p1.id, 50_000).await, Err(MentorshipError::WrongState(_))));
    assert!(matches!(store.accept("u2", &p1.id, 50_000).await, Err(MentorshipError::NotFound)));

    // u2 waits too long: accepting after the expiry expires it and frees the seat.
    assert!(matches!(store.accept("u2", &p2.id, 100_000).await, Err(MentorshipError::Expired(Some(_)))));
    assert_eq!(
        store.mentorship("u2", &p2.id).await.expect("read").expect("row").state(),
        MentorshipState::Expired
    );
    assert_eq!(seats(&store, a).await, 1);

    let (p3, _) = store.choose(&proposal("u3", a, 200_000)).await.expect("proposed");
    let declined = store
        .decline(&Ending { reason: EndReason::WrongFocus, ..ending("u3", &p3.id, EndReason::WrongFocus) })
        .await
        .expect("declined");
    assert_eq!(declined.state(), MentorshipState::Declined);
    assert_eq!(seats(&store, a).await, 1);
    assert_eq!(store.history("u3").await.expect("history").len(), 1, "a decline ranks the mentor down");

    let (_p4, _) = store.choose(&proposal("u4", a, 300_000)).await.expect("proposed");
    assert_eq!(store.expire_proposals(299_999).await.expect("none due"), Vec::<String>::new());
    assert_eq!(store.expire_proposals(300_000).await.expect("due"), std::slice::from_ref(a));
    assert_eq!(seats(&store, a).await, 1);
    let types = events(&store).await;
    assert_eq!(types.iter().filter(|t| *t == "matching.mentorship.proposed").count(), 4);
    assert_eq!(types.iter().filter(|t| *t == "matching.mentorship.ended").count(), 3, "{types:?}");
}

#[tokio::test]
async fn weights_change_by_version_with_an_audit_trail() {
    let (store, _db) = store().await;
    let defaults = store.weights().await.expect("defaults");
    assert_eq!(defaults.version, 0);
    let mut w = defaults.weights;
    w.meaning = 1.0;
    let first =
        store.set_weights(0, &w, "meaning matters more", "admin-1", 10).await.expect("set").expect("fresh");
    assert_eq!(first.version, 1);
    assert!(
        store.set_weights(0, &w, "again", "admin-2", 11).await.expect("stale").is_none(),
        "version 0 is gone"
    );
    w.capacity = 0.0;
    store.set_weights(1, &w, "capacity off", "admin-2", 12).await.expect("set").expect("fresh");
    assert_eq!(store.weights().await.expect("read").weights, w);
    let trail = store.weight_changes(None, 10).await.expect("trail");
    assert_eq!(
        trail.iter().map(|c| (c.version, c.actor.as_str())).collect::<Vec<_>>(),
        [(2, "admin-2"), (1, "admin-1")]
    );
    assert_eq!(trail[1].previous, defaults.weights);
    assert_eq!(store.weight_changes(Some(2), 10).await.expect("page").len(), 1);
    assert_eq!(events(&store).await, ["matching.weights.changed", "matching.weights.changed"]);
}

#[tokio::test]
async fn an_applied_cohort_proposes_once_and_skips_what_changed_meanwhile() {
    let (store, _db, mentors) = seeded().await;
    let (a, b) = (&mentors[0].id, &mentors[1].id);
    let users: Vec<String> = ["u1", "u2", "u3"].map(String::from).to_vec();
    store.seen(&users, 1_000).await.expect("seen");
    let (id, fresh) = store.create_cohort("c1", &users, Some("r"), "admin", 2_000).await.expect("created");
    assert!(fresh);
    assert_eq!(
        store.create_cohort("c2", &users, Some("r"), "admin", 2_000).await.expect("again"),
        (id.clone(), false)
    );
    store.finish_cohort(&id, Ok(&"computed"), 3_000).await.expect("finished");
    // Meanwhile u2 chose a mentor and b filled up.
    store.choose(&choice("u2", a, None)).await.expect("u2 chose");
    set_capacity(&store, b, 0).await;
    let pairs = [("u1", a), ("u2", a), ("u3", b)].map(|(u, m)| (u.to_owned(), m.clone()));
    let (proposed, skipped) = store.apply_cohort(&id, &pairs, "admin", 4_000, 9_000).await.expect("applied");
    assert_eq!(
        proposed.iter().map(|r| (r.user_id.as_str(), r.state())).collect::<Vec<_>>(),
        [("u1", MentorshipState::Proposed)]
    );
    assert_eq!(
        skipped.iter().map(|s| (s.0.as_str(), s.2)).collect::<Vec<_>>(),
        [("u2", "MENTORSHIP_EXISTS"), ("u3", "MENTOR_FULL")]
    );
    assert!(matches!(
        store.apply_cohort(&id, &pairs, "admin", 5_000, 9_000).await,
        Err(MentorshipError::WrongState(_))
    ));
    let waiting = store.waiting(&users).await.expect("waiting");
    assert_eq!(waiting.get("u1"), Some(&(Some(1_000), true)));
    assert_eq!(waiting.get("u3"), Some(&(Some(1_000), false)));
    assert_eq!(store.interrupt_cohorts(6_000).await.expect("none running"), 0);
}
