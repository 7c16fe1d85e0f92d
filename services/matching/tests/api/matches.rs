//! FindMatches: ranked, explained, filtered, paged, and following the learner's profile.

use tonic::Code;
use tt_proto::matching::v1::{self as pb, Criterion};

use crate::support::{Stack, assert_bad_fields, code, ids};

#[tokio::test]
async fn matches_are_explained_and_follow_the_profile_once_profiles_says_it_changed() {
    let s = Stack::holding_events().await;
    let ann = s.learner("ann").await;
    let before = s.find(&ann, pb::FindMatchesRequest::default()).await;
    assert_eq!(before.total_size, 24, "every active mentor with a free seat");
    assert_eq!(before.matches.len(), 24);
    assert!(before.matches.windows(2).all(|w| w[0].score >= w[1].score), "best first");
    for m in &before.matches {
        let criteria: Vec<i32> = m.breakdown.iter().map(|c| c.criterion).collect();
        let all = [
            Criterion::Focus,
            Criterion::Style,
            Criterion::Stage,
            Criterion::Language,
            Criterion::Meaning,
            Criterion::Capacity,
        ];
        assert_eq!(criteria, all.map(|c| c as i32));
        assert!(
            m.breakdown
                .iter()
                .all(|c| !c.reason.is_empty() && (0.0..=1.0).contains(&c.score) && c.weight > 0.0)
        );
        assert!(
            m.mentor.as_ref().is_some_and(|x| x.model.is_none()),
            "learners never see the model configuration"
        );
    }

    // A goal in incident response: profiles writes its change notice, which waits for delivery.
    s.add_goal(&ann, "security-defender", &["incident-response", "digital-forensics", "memory-forensics"])
        .await;
    let cached = s.find(&ann, pb::FindMatchesRequest::default()).await;
    assert_eq!(ids(&cached.matches), ids(&before.matches), "matching still has its copy of the view");
    assert!(s.deliver_profiles_notices().await >= 1);
    let after = s.find(&ann, pb::FindMatchesRequest::default()).await;
    let top = &after.matches[0];
    assert_eq!(
        top.mentor.as_ref().expect("mentor").mentor_id,
        "mireille-dautremont",
        "{:?}",
        ids(&after.matches)
    );
    let focus = &top.breakdown[0];
    assert!(focus.reason.contains("covers 3 of the 3 skills"), "{}", focus.reason);
    assert!(
        top.score
            > before
                .matches
                .iter()
                .find(|m| m.mentor.as_ref().expect("m").mentor_id == "mireille-dautremont")
                .expect("there")
                .score
    );
}

#[tokio::test]
async fn filters_and_pages_cut_the_same_ranking() {
    let s = Stack::start().await;
    let ann = s.learner("ann").await;
    s.add_goal(&ann, "software", &["rust", "tokio"]).await;
    let all = s.find(&ann, pb::FindMatchesRequest::default()).await;
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = s
            .matches(&ann.token)
            .find_matches(pb::FindMatchesRequest {
                page_size: 5,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        assert_eq!(page.total_size, 24);
        paged.extend(ids(&page.matches));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(paged, ids(&all.matches), "pages of 5 are the full ranking, in order, once each");

    let design = s.find(&ann, pb::FindMatchesRequest { field: "design".into(), ..Default::default() }).await;
    assert_eq!(design.total_size, 3);
    assert!(
        design.matches.iter().all(|m| m.mentor.as_ref().expect("m").fields.contains(&"design".to_owned()))
    );
    let polish = s.find(&ann, pb::FindMatchesRequest { language: "pl".into(), ..Default::default() }).await;
    assert_eq!(ids(&polish.matches), ["tomasz-wierzbicki"]);
    let leaders = s
        .find(
            &ann,
            pb::FindMatchesRequest {
                stage: tt_proto::profiles::v1::CareerStage::Leader.into(),
                ..Default::default()
            },
        )
        .await;
    assert!(leaders.total_size > 0 && leaders.total_size < 24);

    let first = s
        .matches(&ann.token)
        .find_matches(pb::FindMatchesRequest { page_size: 5, ..Default::default() })
        .await
        .expect("page")
        .into_inner();
    let other_query = s
        .matches(&ann.token)
        .find_matches(pb::FindMatchesRequest {
            page_size: 5,
            page_token: first.next_page_token,
            field: "data".into(),
            ..Default::default()
        })
        .await;
    assert_bad_fields(other_query, &["page_token"]);
    // A token of the earlier cursor (the score's bits as an integer) is refused, not misread.
    let old_cursor = (0.5_f64.to_bits(), "dorothea-wilmarth");
    let old = s.matching.pages.encode(&format!("FindMatches:{}:::0:false:5", ann.id), &old_cursor);
    let old_token = s
        .matches(&ann.token)
        .find_matches(pb::FindMatchesRequest { page_size: 5, page_token: old, ..Default::default() })
        .await;
    assert_bad_fields(old_token, &["page_token"]);
    let bad = s
        .matches(&ann.token)
        .find_matches(pb::FindMatchesRequest {
            page_size: -1,
            field: "Not A Track".into(),
            language: "english".into(),
            stage: 42,
            view: 7,
            ..Default::default()
        })
        .await;
    assert_bad_fields(bad, &["field", "language", "stage", "page_size", "view"]);
}

#[tokio::test]
async fn a_learner_sees_only_their_own_matches() {
    let s = Stack::start().await;
    let (ann, bob) = (s.learner("ann").await, s.learner("bob").await);
    let other = s
        .matches(&bob.token)
        .find_matches(pb::FindMatchesRequest { user_id: ann.id.clone(), ..Default::default() })
        .await;
    assert_eq!(code(other), Code::PermissionDenied);
    let admin = s.admin_token().await;
    let for_ann = s
        .matches(&admin)
        .find_matches(pb::FindMatchesRequest { user_id: ann.id.clone(), ..Default::default() })
        .await
        .expect("admins may look")
        .into_inner();
    assert_eq!(for_ann.total_size, 24);
    let service = s.service_token().await;
    assert_eq!(
        code(s.matches(&service).find_matches(pb::FindMatchesRequest::default()).await),
        Code::PermissionDenied
    );
}

#[tokio::test]
async fn each_view_carries_what_it_says_and_no_more() {
    let s = Stack::start().await;
    let ann = s.learner("ann").await;
    let first = |view: pb::MentorView| {
        let s = &s;
        let ann = &ann;
        async move {
            let page = pb::FindMatchesRequest { page_size: 1, view: view.into(), ..Default::default() };
            let found = s.find(ann, page).await;
            found.matches[0].mentor.clone().expect("mentor")
        }
    };
    let summary = first(pb::MentorView::Unspecified).await;
    assert_eq!(summary, first(pb::MentorView::Summary).await, "the summary is the default");
    let basic = first(pb::MentorView::Basic).await;
    let full = first(pb::MentorView::Full).await;
    for m in [&summary, &basic, &full] {
        assert_eq!(m.mentor_id, full.mentor_id);
        assert!(!m.name.is_empty() && !m.era.is_empty() && !m.fields.is_empty() && !m.languages.is_empty());
        assert!(m.version >= 1 && m.capacity > 0 && m.status == pb::MentorStatus::Active as i32);
        assert!(m.model.is_none(), "learners never see the model configuration");
    }
    assert!(
        summary.specializations.is_empty()
            && summary.stages.is_empty()
            && summary.teaching_style.is_none()
            && summary.etag.is_empty()
            && summary.create_time.is_none()
            && summary.background.is_empty(),
        "{summary:?}"
    );
    assert!(!basic.specializations.is_empty() && !basic.stages.is_empty() && basic.teaching_style.is_some());
    assert!(!basic.etag.is_empty() && basic.update_time.is_some() && basic.published_version >= 1);
    assert!(basic.background.is_empty() && basic.voice.is_empty(), "the card leaves the story out");
    assert_eq!(pb::Mentor { background: String::new(), voice: String::new(), ..full.clone() }, basic);
    assert!(!full.background.is_empty() && !full.voice.is_empty());
}
