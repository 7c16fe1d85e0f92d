//! MentorService and the admin usage figures.

use tonic::Code;
use tt_proto::matching::v1 as pb;

use crate::support::{Stack, assert_bad_fields, code};

#[tokio::test]
async fn learners_browse_active_mentors_by_name_filter_and_text() {
    let s = Stack::start().await;
    let ann = s.learner("ann").await;
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let page = s
            .mentors(&ann.token)
            .list_mentors(pb::ListMentorsRequest {
                page_size: 10,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        assert!(
            page.mentors.iter().all(|m| m.model.is_none() && m.status == pb::MentorStatus::Active as i32)
        );
        names.extend(page.mentors.into_iter().map(|m| m.name));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(names.len(), 24);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "by name");

    let list = |r: pb::ListMentorsRequest| {
        let mut client = s.mentors(&ann.token);
        async move { client.list_mentors(r).await.expect("list").into_inner().mentors }
    };
    let found =
        list(pb::ListMentorsRequest { query: "MAINFRAME hartford".into(), ..Default::default() }).await;
    assert_eq!(found.iter().map(|m| m.mentor_id.as_str()).collect::<Vec<_>>(), ["dorothea-wilmarth"]);
    let french = list(pb::ListMentorsRequest {
        language: "fr".into(),
        field: "security-defender".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(french.iter().map(|m| m.mentor_id.as_str()).collect::<Vec<_>>(), ["mireille-dautremont"]);

    let bad = s
        .mentors(&ann.token)
        .list_mentors(pb::ListMentorsRequest {
            page_size: -3,
            query: "x".repeat(201),
            status: pb::MentorStatus::Draft.into(),
            ..Default::default()
        })
        .await;
    assert_bad_fields(bad, &["query", "status", "page_size"]);
}

#[tokio::test]
async fn a_mentor_shows_its_model_only_to_admins_and_services() {
    let s = Stack::start().await;
    let ann = s.learner("ann").await;
    let get = |token: String, version: i32| {
        let mut client = s.mentors(&token);
        async move { client.get_mentor(pb::GetMentorRequest { mentor_id: "ren-takamatsu".into(), version }).await }
    };
    let seen = get(ann.token.clone(), 0).await.expect("get").into_inner().mentor.expect("mentor");
    assert_eq!((seen.version, seen.published_version, seen.capacity), (1, 1, 8));
    assert!(seen.model.is_none());
    assert_bad_fields(get(ann.token.clone(), 1).await, &["version"]);
    let admin = s.admin_token().await;
    let full = get(admin.clone(), 1).await.expect("admin").into_inner().mentor.expect("mentor");
    let model = full.model.expect("admins see the model");
    assert!(model.system_prompt_template.contains("{{learner_name}}"));
    assert_eq!(code(get(admin, 2).await), Code::NotFound);
    let service = s.service_token().await;
    assert!(get(service, 0).await.expect("services").into_inner().mentor.expect("m").model.is_some());
    let missing = s
        .mentors(&ann.token)
        .get_mentor(pb::GetMentorRequest { mentor_id: "nobody-here".into(), version: 0 })
        .await;
    assert_eq!(code(missing), Code::NotFound);
    let bad = s
        .mentors(&ann.token)
        .get_mentor(pb::GetMentorRequest { mentor_id: "Not An Id".into(), version: -1 })
        .await;
    assert_bad_fields(bad, &["mentor_id", "version"]);
}

#[tokio::test]
async fn admins_get_the_usage_figures() {
    let s = Stack::start().await;
    let ann = s.learner("ann").await;
    s.choose(&ann, "odessa-tan").await;
    assert_eq!(code(s.admin(&ann.token).get_usage(pb::GetUsageRequest {}).await), Code::PermissionDenied);
    let admin = s.admin_token().await;
    let usage = s
        .admin(&admin)
        .get_usage(pb::GetUsageRequest {})
        .await
        .expect("usage")
        .into_inner()
        .usage
        .expect("usage");
    assert_eq!(usage.service, "matching");
    let count = |name: &str| usage.resources.iter().find(|r| r.name == name).map_or(0, |r| r.count);
    assert_eq!((count("mentors.active"), count("mentorships.active")), (24, 1));
    assert!(usage.outbox_pending >= 0 && usage.outbox_dead_letters == 0);
}
