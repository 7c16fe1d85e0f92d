//! Profile, goals and experience as a learner uses them.

use tonic::Code;
use tt_proto::profiles::v1::{self as pb, GoalKind, GoalStatus};

use crate::support::{Stack, assert_bad_fields, code, goal, mask, position};

#[tokio::test]
async fn profile_is_created_on_first_access_and_updated_by_mask_with_etag() {
    let s = Stack::start().await;
    let ada = s.learner("ada").await;
    let first = s.get_profile(&ada).await;
    assert_eq!(first.user_id, ada.id);
    assert_eq!(first.career_stage, i32::from(pb::CareerStage::Student), "no positions yet");
    assert!(first.headline.is_empty());

    let update = pb::Profile {
        headline: "Backend engineer moving into security".into(),
        timezone: "Europe/Berlin".into(),
        languages: vec!["en".into(), "pt-BR".into()],
        fields_of_work: vec!["software".into()],
        preferences: Some(pb::Preferences {
            session_cadence: pb::SessionCadence::Weekly.into(),
            ..Default::default()
        }),
        etag: first.etag.clone(),
        ..Default::default()
    };
    let updated = s
        .profile(&ada.token)
        .update_profile(pb::UpdateProfileRequest {
            profile: Some(update.clone()),
            update_mask: mask(&[
                "headline",
                "timezone",
                "languages",
                "fields_of_work",
                "preferences.session_cadence",
            ]),
        })
        .await
        .expect("update")
        .into_inner()
        .profile
        .expect("profile");
    assert_eq!(updated.headline, "Backend engineer moving into security");
    assert_eq!(updated.languages, vec!["en", "pt-BR"]);
    assert_eq!(
        updated.preferences.as_ref().map(|p| p.session_cadence),
        Some(pb::SessionCadence::Weekly.into())
    );
    assert_ne!(updated.etag, first.etag);
    // The cached view follows the write.
    assert_eq!(s.get_profile(&ada).await, updated);

    // The old etag is stale now.
    let stale = s
        .profile(&ada.token)
        .update_profile(pb::UpdateProfileRequest { profile: Some(update), update_mask: mask(&["headline"]) })
        .await;
    assert_eq!(code(stale), Code::Aborted);
}

#[tokio::test]
async fn bad_profile_updates_name_every_field_and_change_nothing() {
    let s = Stack::start().await;
    let ada = s.learner("ada").await;
    let before = s.get_profile(&ada).await;
    let bad = pb::Profile {
        headline: "x".repeat(161),
        timezone: "Mars/Olympus_Mons".into(),
        languages: vec!["english".into()],
        fields_of_work: vec!["cooking".into()],
        visibility: 42,
        ..Default::default()
    };
    let result = s
        .profile(&ada.token)
        .update_profile(pb::UpdateProfileRequest {
            profile: Some(bad),
            update_mask: mask(&[
                "headline",
                "timezone",
                "languages",
                "fields_of_work",
                "visibility",
                "career_stage",
                "favourite_colour",
            ]),
        })
        .await;
    assert_bad_fields(
        result,
        &[
            "profile.headline",
            "profile.timezone",
            "profile.languages",
            "profile.fields_of_work",
            "profile.visibility",
            "update_mask",
            "update_mask",
        ],
    );
    assert_eq!(s.get_profile(&ada).await, before);
    let empty = s.profile(&ada.token).update_profile(pb::UpdateProfileRequest::default()).await;
    assert_bad_fields(empty, &["update_mask"]);
}

#[tokio::test]
async fn goals_keep_order_limits_and_idempotent_creates() {
    let s = Stack::start().await;
    let ada = s.learner("ada").await;
    let mut goals = s.goals(&ada.token);
    let create = |g: pb::Goal, request_id: &str| pb::CreateGoalRequest {
        goal: Some(g),
        request_id: request_id.into(),
    };

    let first =
        goals.create_goal(create(goal(GoalKind::ShortTerm, "Pass the CKA"), "req-1")).await.expect("create");
    let again =
        goals.create_goal(create(goal(GoalKind::ShortTerm, "Pass the CKA"), "req-1")).await.expect("retry");
    assert_eq!(first.get_ref().goal, again.get_ref().goal, "a retried create returns the first goal");
    for i in 1..10 {
        goals.create_goal(create(goal(GoalKind::LongTerm, &format!("goal {i}")), "")).await.expect("create");
    }
    let over = goals.create_goal(create(goal(GoalKind::Aspiration, "one too many"), "")).await;
    let status = over.expect_err("11th active goal");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(tt_common::error::reason(&status).as_deref(), Some("GOAL_LIMIT_REACHED"));
    // An achieved goal is not active: it fits.
    let done = pb::Goal { status: GoalStatus::Achieved.into(), ..goal(GoalKind::ShortTerm, "Learn Rust") };
    let achieved =
        goals.create_goal(create(done, "")).await.expect("achieved goal").into_inner().goal.expect("goal");
    assert!(achieved.achieve_time.is_some());

    // Pages of 4 in rank order.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = goals
            .list_goals(pb::ListGoalsRequest {
                page_size: 4,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        seen.extend(page.goals);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen.len(), 11);
    assert!(seen.windows(2).all(|w| w[0].rank + 1 == w[1].rank), "ranks 0..n in order");

    // Reverse the order; then delete the first and the ranks close up.
    let mut ids: Vec<String> = seen.iter().map(|g| g.id.clone()).collect();
    ids.reverse();
    let reordered =
        goals.reorder_goals(pb::ReorderGoalsRequest { goal_ids: ids.clone() }).await.expect("reorder");
    assert_eq!(reordered.get_ref().goals.iter().map(|g| g.id.clone()).collect::<Vec<_>>(), ids);
    let partial = goals.reorder_goals(pb::ReorderGoalsRequest { goal_ids: ids[1..].to_vec() }).await;
    assert_bad_fields(partial, &["goal_ids"]);
    goals.delete_goal(pb::DeleteGoalRequest { goal_id: ids[0].clone() }).await.expect("delete");
    let after =
        goals.list_goals(pb::ListGoalsRequest { page_size: 100, ..Default::default() }).await.expect("list");
    let ranks: Vec<i32> = after.get_ref().goals.iter().map(|g| g.rank).collect();
    assert_eq!(ranks, (0..10).collect::<Vec<_>>());
    assert_eq!(
        code(goals.delete_goal(pb::DeleteGoalRequest { goal_id: ids[0].clone() }).await),
        Code::NotFound
    );
}

#[tokio::test]
async fn goal_updates_validate_and_track_achievement() {
    let s = Stack::start().await;
    let ada = s.learner("ada").await;
    let mut goals = s.goals(&ada.token);
    let bad = pb::Goal {
        kind: 0,
        title: String::new(),
        priority: 9,
        target_field: "astrology".into(),
        target_date: Some(pb::Date { year: 2001, month: 1, day: 1 }),
        skill_ids: vec!["kubernets".into()],
        ..Default::default()
    };
    let refused =
        goals.create_goal(pb::CreateGoalRequest { goal: Some(bad), request_id: String::new() }).await;
    let status = refused.expect_err("invalid goal");
    let mut fields = tt_common::error::bad_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "goal.kind",
            "goal.priority",
            "goal.skill_ids[0]",
            "goal.target_date",
            "goal.target_field",
            "goal.title"
        ]
    );
    assert!(status.message().contains("goal.skill_ids[0]"));
    let details = tonic_types::StatusExt::get_details_bad_request(&status).expect("bad request");
    let skill = details.field_violations.iter().find(|f| f.field == "goal.skill_ids[0]").expect("skill");
    assert!(skill.description.contains("kubernetes"), "suggests the closest skill: {}", skill.description);

    let g = goals
        .create_goal(pb::CreateGoalRequest {
            goal: Some(pb::Goal {
                target_field: "security-defender".into(),
                ..goal(GoalKind::LongTerm, "Move to SecOps")
            }),
            request_id: String::new(),
        })
        .await
        .expect("create")
        .into_inner()
        .goal
        .expect("goal");
    let achieved = goals
        .update_goal(pb::UpdateGoalRequest {
            goal: Some(pb::Goal {
                id: g.id.clone(),
                status: GoalStatus::Achieved.into(),
                etag: g.etag.clone(),
                ..Default::default()
            }),
            update_mask: mask(&["status"]),
        })
        .await
        .expect("achieve")
        .into_inner()
        .goal
        .expect("goal");
    assert!(achieved.achieve_time.is_some());
    assert_eq!(achieved.title, "Move to SecOps", "fields outside the mask are kept");
    let stale = goals
        .update_goal(pb::UpdateGoalRequest {
            goal: Some(pb::Goal { id: g.id.clone(), title: "x".into(), etag: g.etag, ..Default::default() }),
            update_mask: mask(&["title"]),
        })
        .await;
    assert_eq!(code(stale), Code::Aborted);
    let immutable = goals
        .update_goal(pb::UpdateGoalRequest {
            goal: Some(pb::Goal { id: g.id, ..Default::default() }),
            update_mask: mask(&["rank"]),
        })
        .await;
    assert_bad_fields(immutable, &["update_mask"]);
}

#[tokio::test]
async fn experience_merges_overlaps_and_derives_the_career_stage() {
    let s = Stack::start().await;
    let ada = s.learner("ada").await;
    let mut exp = s.experience(&ada.token);
    let add = |p: pb::Position| pb::CreatePositionRequest { position: Some(p), request_id: String::new() };

    // Invalid: end before start, start in the future, current with an end.
    let mut backwards = position("Engineer", (2020, 5), Some((2019, 1)));
    backwards.organization = String::new();
    assert_bad_fields(exp.create_position(add(backwards)).await, &["position.organization"]);
    assert_bad_fields(
        exp.create_position(add(position("Engineer", (2020, 5), Some((2019, 1))))).await,
        &["position.end"],
    );
    assert_bad_fields(
        exp.create_position(add(position("Engineer", (2999, 1), None))).await,
        &["position.start"],
    );
    let mut both = position("Engineer", (2020, 1), Some((2021, 1)));
    both.current = true;
    assert_bad_fields(exp.create_position(add(both)).await, &["position.end"]);
    assert_eq!(
        s.get_profile(&ada).await.experience.expect("summary").position_count,
        0,
        "nothing was written"
    );

    // 2012-01..2016-12 and 2015-01..2019-12 overlap: 8 years; then a lead role 2019-06..2021-05.
    exp.create_position(add(position("Engineer", (2012, 1), Some((2016, 12))))).await.expect("p1");
    exp.create_position(add(position("Senior Engineer", (2015, 1), Some((2019, 12))))).await.expect("p2");
    let profile = s.get_profile(&ada).await;
    let summary = profile.experience.expect("summary");
    assert_eq!(summary.total_months, 96);
    assert_eq!(
        profile.derived_career_stage,
        i32::from(pb::CareerStage::Senior),
        "8 years, no leadership title"
    );
    let lead = exp
        .create_position(add(position("Engineering Manager", (2019, 6), Some((2021, 5)))))
        .await
        .expect("p3")
        .into_inner()
        .position
        .expect("position");
    let profile = s.get_profile(&ada).await;
    assert_eq!(profile.experience.expect("summary").total_months, 113);
    assert_eq!(profile.career_stage, i32::from(pb::CareerStage::Leader));

    // The learner's override wins; clearing it restores the derived stage.
    let set = |stage: pb::CareerStage| pb::UpdateProfileRequest {
        profile: Some(pb::Profile { career_stage_override: stage.into(), ..Default::default() }),
        update_mask: mask(&["career_stage_override"]),
    };
    let overridden =
        s.profile(&ada.token).update_profile(set(pb::CareerStage::CareerChanger)).await.expect("override");
    let p = overridden.into_inner().profile.expect("profile");
    assert_eq!(p.career_stage, i32::from(pb::CareerStage::CareerChanger));
    assert_eq!(p.derived_career_stage, i32::from(pb::CareerStage::Leader));
    s.profile(&ada.token).update_profile(set(pb::CareerStage::Unspecified)).await.expect("clear");
    assert_eq!(s.get_profile(&ada).await.career_stage, i32::from(pb::CareerStage::Leader));

    // Updating a position re-validates the whole period.
    let moved = exp
        .update_position(pb::UpdatePositionRequest {
            position: Some(pb::Position {
                id: lead.id.clone(),
                end: Some(pb::YearMonth { year: 2018, month: 1 }),
                ..Default::default()
            }),
            update_mask: mask(&["end"]),
        })
        .await;
    assert_bad_fields(moved, &["position.end"]);
    exp.delete_position(pb::DeletePositionRequest { position_id: lead.id }).await.expect("delete");
    assert_eq!(s.get_profile(&ada).await.experience.expect("summary").total_months, 96);
}

#[tokio::test]
async fn a_learner_cannot_read_or_change_another_learners_data() {
    let s = Stack::start().await;
    let (ada, bob) = (s.learner("ada").await, s.learner("bob").await);
    let g = s
        .goals(&ada.token)
        .create_goal(pb::CreateGoalRequest {
            goal: Some(goal(GoalKind::ShortTerm, "mine")),
            request_id: String::new(),
        })
        .await
        .expect("create")
        .into_inner()
        .goal
        .expect("goal");
    let read = s.profile(&bob.token).get_profile(pb::GetProfileRequest { user_id: ada.id.clone() }).await;
    assert_eq!(code(read), Code::PermissionDenied);
    let list = s
        .goals(&bob.token)
        .list_goals(pb::ListGoalsRequest { user_id: ada.id.clone(), ..Default::default() })
        .await;
    assert_eq!(code(list), Code::PermissionDenied);
    let change = s
        .goals(&bob.token)
        .update_goal(pb::UpdateGoalRequest {
            goal: Some(pb::Goal { id: g.id.clone(), title: "hijacked".into(), ..Default::default() }),
            update_mask: mask(&["title"]),
        })
        .await;
    assert_eq!(code(change), Code::NotFound);
    assert_eq!(
        code(s.goals(&bob.token).delete_goal(pb::DeleteGoalRequest { goal_id: g.id }).await),
        Code::NotFound
    );
    // Admins read anyone's.
    let admin = s.admin_token().await;
    let seen = s
        .goals(&admin)
        .list_goals(pb::ListGoalsRequest { user_id: ada.id.clone(), ..Default::default() })
        .await;
    assert_eq!(seen.expect("admin reads").get_ref().goals[0].title, "mine");
}
