//! Completion, cached views staying true, the export, and deletion through identity's outbox.

use tonic::Code;
use tt_common::outbox::backlog;
use tt_proto::{
    identity::v1 as ipb,
    profiles::v1::{self as pb, GoalKind},
};

use crate::support::{Learner, Stack, assert_bad_fields, code, goal, mask, position};

/// Fills every section of `who`'s profile, checking completion after each step.
async fn fill(s: &Stack, who: &Learner) {
    let mut percent = s.completion(who).await.percent;
    assert_eq!(percent, 0);
    let mut step = |p: i32| {
        assert!(p > percent, "completion grows: {percent} -> {p}");
        percent = p;
    };
    s.profile(&who.token)
        .update_profile(pb::UpdateProfileRequest {
            profile: Some(pb::Profile {
                headline: "Analyst".into(),
                current_role: "Data analyst".into(),
                fields_of_work: vec!["data".into()],
                location: "Lisbon".into(),
                timezone: "Europe/Lisbon".into(),
                languages: vec!["pt".into(), "en".into()],
                preferences: Some(pb::Preferences {
                    session_cadence: pb::SessionCadence::Weekly.into(),
                    communication_style: pb::CommunicationStyle::Concise.into(),
                    feedback_style: pb::FeedbackStyle::Direct.into(),
                    notifications: None,
                }),
                ..Default::default()
            }),
            update_mask: mask(&[
                "headline",
                "current_role",
                "fields_of_work",
                "location",
                "timezone",
                "languages",
                "preferences",
            ]),
        })
        .await
        .expect("profile");
    step(s.completion(who).await.percent);
    s.goals(&who.token)
        .create_goal(pb::CreateGoalRequest {
            goal: Some(goal(GoalKind::LongTerm, "Data scientist")),
            request_id: String::new(),
        })
        .await
        .expect("goal");
    step(s.completion(who).await.percent);
    let q =
        s.assessment(&who.token).get_assessment(pb::GetAssessmentRequest {}).await.expect("q").into_inner();
    let q = q.assessment.expect("q");
    let answers = q
        .questions
        .iter()
        .map(|x| pb::Answer { question_id: x.id.clone(), option_id: x.options[1].id.clone() });
    s.assessment(&who.token)
        .submit_assessment(pb::SubmitAssessmentRequest { version: q.version, answers: answers.collect() })
        .await
        .expect("assessment");
    step(s.completion(who).await.percent);
    s.experience(&who.token)
        .create_position(pb::CreatePositionRequest {
            position: Some(position("Analyst", (2025, 6), None)),
            request_id: String::new(),
        })
        .await
        .expect("position");
    step(s.completion(who).await.percent);
    for skill in ["sql", "python", "statistics"] {
        let r = pb::UpsertLearnerSkillRequest {
            skill_id: skill.into(),
            proficiency: 3,
            years: 1.0,
            last_used: None,
        };
        s.skills(&who.token).upsert_learner_skill(r).await.expect("skill");
    }
    step(s.completion(who).await.percent);
}

#[tokio::test]
async fn completion_follows_every_change_to_one_hundred_percent() {
    let s = Stack::start().await;
    let ada = s.learner("ada").await;
    let empty = s.completion(&ada).await;
    assert_eq!(empty.next_section, "basics");
    assert_eq!(empty.sections.iter().map(|x| x.weight).sum::<i32>(), 100);
    fill(&s, &ada).await;
    let full = s.completion(&ada).await;
    assert_eq!(full.percent, 100);
    assert!(full.next_step.is_empty());
    // Deleting a skill drops below three: the cached completion is invalidated at once.
    s.skills(&ada.token)
        .delete_learner_skill(pb::DeleteLearnerSkillRequest { skill_id: "sql".into() })
        .await
        .expect("delete");
    let c = s.completion(&ada).await;
    assert_eq!((c.percent, c.next_section.as_str()), (85, "skills"));
}

#[tokio::test]
async fn cached_and_uncached_views_agree() {
    let (cached, uncached) = (Stack::start().await, Stack::with_cache_ttl("0s").await);
    for s in [&cached, &uncached] {
        let ada = s.learner("ada").await;
        fill(s, &ada).await;
        let service = s.service_token().await;
        let view = s
            .integration(&service)
            .get_learner_view(pb::GetLearnerViewRequest { user_id: ada.id.clone() })
            .await
            .expect("view")
            .into_inner()
            .view
            .expect("view");
        assert_eq!(view.fields_of_work, vec!["data"]);
        assert_eq!(view.skills.len(), 3);
        assert_eq!(view.goals.len(), 1);
        assert_eq!(view.timezone, "Europe/Lisbon");
        assert!(view.learning_style.is_some());
        let profile = s.get_profile(&ada).await;
        assert_eq!(view.career_stage, profile.career_stage);
        assert_eq!(view.years_of_experience, profile.experience.map_or(0.0, |e| e.total_years));
        // A write shows in the next read of every view.
        s.profile(&ada.token)
            .update_profile(pb::UpdateProfileRequest {
                profile: Some(pb::Profile {
                    timezone: "Asia/Tokyo".into(),
                    visibility: pb::Visibility::Mentors.into(),
                    ..Default::default()
                }),
                update_mask: mask(&["timezone", "visibility"]),
            })
            .await
            .expect("update");
        assert_eq!(s.get_profile(&ada).await.timezone, "Asia/Tokyo");
        let view = s
            .integration(&service)
            .get_learner_view(pb::GetLearnerViewRequest { user_id: ada.id.clone() })
            .await
            .expect("view");
        let view = view.into_inner().view.expect("view");
        assert_eq!(view.timezone, "Asia/Tokyo");
        assert_eq!(view.visibility(), pb::Visibility::Mentors, "consumers see what the learner shares");
        let unknown = s
            .integration(&service)
            .get_learner_view(pb::GetLearnerViewRequest { user_id: tt_common::new_id() })
            .await;
        assert_eq!(code(unknown), Code::NotFound);
    }
}

#[tokio::test]
async fn export_holds_everything_as_json() {
    let s = Stack::start().await;
    let ada = s.learner("ada").await;
    fill(&s, &ada).await;
    let json = s
        .profile(&ada.token)
        .export_profile(pb::ExportProfileRequest::default())
        .await
        .expect("export")
        .into_inner()
        .json;
    let doc: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(doc["profile"]["user_id"], ada.id.as_str());
    assert_eq!(doc["profile"]["timezone"], "Europe/Lisbon");
    assert_eq!(doc["goals"].as_array().map(Vec::len), Some(1));
    assert_eq!(doc["positions"].as_array().map(Vec::len), Some(1));
    assert_eq!(doc["positions"][0]["start"], "2025-06", "months as people write them");
    assert_eq!(doc["skills"][0]["years"], 1.0);
    assert_eq!(doc["skills"].as_array().map(Vec::len), Some(3));
    assert_eq!(doc["assessment_results"].as_array().map(Vec::len), Some(1));
    assert_eq!(doc["completion"]["percent"], 100);
}

#[tokio::test]
async fn deleting_a_user_purges_their_profile_even_when_profiles_was_down() {
    let s = Stack::holding_deletions().await;
    let relay = |url: &str| {
        let store = &s.identity.store;
        s.kit.platform.relay("identity", store.db().clone(), store.outbox(), "profiles", url).expect("relay")
    };
    let ada = s.learner("ada").await;
    fill(&s, &ada).await;
    assert!(s.profiles.store.rows_about(&ada.id).await.expect("rows") > 0);
    let admin = s.admin_token().await;
    s.admin(&admin).delete_user(ipb::DeleteUserRequest { user_id: ada.id.clone() }).await.expect("delete");

    // Profiles is unreachable: the events (the admin's and Ada's names at sign-up, her
    // deletion) wait in identity's outbox, nothing is lost.
    let db = s.identity.store.db().clone();
    let dead = relay("http://127.0.0.1:1").expect("profiles consumes deletions");
    assert!(dead.deliver_pending().await.is_err());
    assert_eq!(backlog(db.pool(), "profiles").await.expect("backlog").pending, 3);
    assert!(s.profiles.store.rows_about(&ada.id).await.expect("rows") > 0);

    // Profiles is back: the failed relay's lease runs out, and the next relay delivers once,
    // the data is gone and the backlog empty.
    s.clock.advance(std::time::Duration::from_secs(16));
    let live = relay(&s.kit.url()).expect("profiles consumes deletions");
    assert_eq!(live.deliver_pending().await.expect("delivered"), 3);
    assert_eq!(backlog(db.pool(), "profiles").await.expect("backlog").pending, 0);
    assert_eq!(s.profiles.store.rows_about(&ada.id).await.expect("rows"), 0);
    let read = s.profile(&admin).get_profile(pb::GetProfileRequest { user_id: ada.id.clone() }).await;
    assert_eq!(code(read), Code::NotFound);
    assert!(s.profiles.store.is_purged(&ada.id).await.expect("purged"));

    // A replayed event changes nothing and counts as already applied.
    let service = s.service_token().await;
    let replay = tt_proto::common::v1::Event {
        id: "replayed".into(),
        r#type: tt_profiles::api::integration::USER_DELETED.into(),
        subject: ada.id.clone(),
        ..Default::default()
    };
    let mut integration = s.integration(&service);
    let applied =
        |n: i32| move |r: tonic::Response<pb::ConsumeEventsResponse>| assert_eq!(r.into_inner().applied, n);
    let request = || pb::ConsumeEventsRequest { events: vec![replay.clone()] };
    applied(1)(integration.consume_events(request()).await.expect("first"));
    applied(0)(integration.consume_events(request()).await.expect("replay"));
}

/// The learner view once it carries `name` (the relays deliver identity's notices on their
/// own; a generous bound catches a hang).
async fn view_named(s: &Stack, service: &str, user_id: &str, name: &str) -> pb::LearnerView {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let view = s
            .integration(service)
            .get_learner_view(pb::GetLearnerViewRequest { user_id: user_id.into() })
            .await
            .expect("view")
            .into_inner()
            .view
            .expect("view");
        if view.display_name == name {
            return view;
        }
        assert!(std::time::Instant::now() < deadline, "still {:?}, not {name:?}", view.display_name);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_learner_view_carries_the_name_identity_gives_and_follows_a_rename() {
    let s = Stack::start().await;
    let ada = s.learner("ada").await;
    let service = s.service_token().await;
    s.profile(&ada.token).get_profile(pb::GetProfileRequest::default()).await.expect("profile");
    view_named(&s, &service, &ada.id, "ada").await;
    let mut account =
        tt_proto::identity::v1::account_service_client::AccountServiceClient::new(s.kit.authed(&ada.token));
    account
        .update_me(ipb::UpdateMeRequest {
            user: Some(ipb::User { display_name: "Ada Lovelace".into(), ..Default::default() }),
            update_mask: mask(&["display_name"]),
        })
        .await
        .expect("rename");
    // The cached view was dropped when the notice arrived.
    view_named(&s, &service, &ada.id, "Ada Lovelace").await;
}

#[tokio::test]
async fn a_late_name_does_not_overwrite_a_newer_one_and_a_deleted_user_is_not_named_again() {
    let s = Stack::holding_deletions().await;
    let ada = s.learner("ada").await;
    let service = s.service_token().await;
    let named = |id: &str, name: &str, at: i64| tt_proto::common::v1::Event {
        id: id.into(),
        r#type: tt_profiles::api::integration::USER_NAMED.into(),
        subject: ada.id.clone(),
        time: Some(tt_common::clock::to_timestamp(at)),
        attributes: [(
            "display_name".to_owned(),
            tt_proto::common::v1::AttributeValue {
                kind: Some(tt_proto::common::v1::attribute_value::Kind::StringValue(name.into())),
            },
        )]
        .into(),
        ..Default::default()
    };
    let mut integration = s.integration(&service);
    let consume = |events| pb::ConsumeEventsRequest { events };
    integration.consume_events(consume(vec![named("n2", "Ada L.", 2_000)])).await.expect("newer");
    let late = integration.consume_events(consume(vec![named("n1", "ada", 1_000)])).await.expect("older");
    assert_eq!(late.into_inner().applied, 1, "taken, and ignored");
    s.profile(&ada.token).get_profile(pb::GetProfileRequest::default()).await.expect("profile");
    assert_eq!(view_named(&s, &service, &ada.id, "Ada L.").await.display_name, "Ada L.");
    // A notice without its name is refused whole.
    let mut nameless = named("n3", "x", 3_000);
    nameless.attributes.clear();
    assert_bad_fields(integration.consume_events(consume(vec![nameless])).await, &["events[0].attributes"]);
    // After the deletion, a name delivered late does not bring the user back.
    let deleted = tt_proto::common::v1::Event {
        id: "d1".into(),
        r#type: tt_profiles::api::integration::USER_DELETED.into(),
        subject: ada.id.clone(),
        ..Default::default()
    };
    integration.consume_events(consume(vec![deleted])).await.expect("deleted");
    integration.consume_events(consume(vec![named("n4", "Ghost", 9_000)])).await.expect("late");
    assert_eq!(s.profiles.store.rows_about(&ada.id).await.expect("rows"), 0);
}
