//! MentorService and the admin usage figures.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tonic::Code;
use tt_proto::matching::v1 as pb;

use crate::support::{Stack, assert_bad_fields, code, mask};

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

fn draft(id: &str) -> pb::Mentor {
    pb::Mentor {
        mentor_id: id.into(),
        name: "Iris van Tongeren".into(),
        era: "the 1990s Dutch dot-com years".into(),
        background:
            "Iris built one of the first online bookshops in Utrecht and kept it running through two crashes."
                .into(),
        voice: "Calm and wry; she asks what the customer would notice first.".into(),
        fields: vec!["software".into(), "astrology".into()],
        specializations: vec!["postgresql".into(), "quantum-basket-weaving".into()],
        stages: vec![tt_proto::profiles::v1::CareerStage::EarlyCareer.into()],
        teaching_style: Some(pb::TeachingStyle {
            modality: tt_proto::profiles::v1::LearningStyle::Visual.into(),
            pace: 0.1,
            structure: 0.4,
            feedback: -0.2,
        }),
        languages: vec!["en".into(), "nl".into()],
        capacity: 2,
        model: Some(pb::ModelConfig {
            provider: String::new(),
            model: String::new(),
            temperature: 0.5,
            system_prompt_template:
                "You are {{name}} from {{era}}. Coach {{learner_name}} towards {{learner_goals}}.".into(),
        }),
        content_language: "en".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn admins_draft_revise_publish_and_retire_a_mentor_with_every_problem_listed() {
    let s = Stack::start().await;
    let (ann, bob) = (s.learner("ann").await, s.learner("bob").await);
    let admin = s.admin_token().await;
    let mut catalog = s.mentors(&admin);
    let created = catalog
        .create_mentor(pb::CreateMentorRequest { mentor: Some(draft("iris-van-tongeren")) })
        .await
        .expect("created")
        .into_inner()
        .mentor
        .expect("mentor");
    assert_eq!(
        (created.status, created.version, created.published_version),
        (pb::MentorStatus::Draft as i32, 1, 0)
    );
    let learner_view = s
        .mentors(&ann.token)
        .get_mentor(pb::GetMentorRequest { mentor_id: "iris-van-tongeren".into(), version: 0 })
        .await;
    assert_eq!(code(learner_view), Code::NotFound, "learners never see a draft");
    let again =
        catalog.create_mentor(pb::CreateMentorRequest { mentor: Some(draft("iris-van-tongeren")) }).await;
    assert_eq!(code(again), Code::AlreadyExists);

    let refused = catalog
        .publish_mentor(pb::PublishMentorRequest {
            mentor_id: "iris-van-tongeren".into(),
            etag: created.etag.clone(),
        })
        .await
        .expect_err("an unknown track and skill");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(tt_common::error::reason(&refused).as_deref(), Some("MENTOR_INVALID"));
    assert_eq!(tt_common::error::bad_fields(&refused), ["mentor.fields[1]", "mentor.specializations[1]"]);

    let mut fixed = draft("iris-van-tongeren");
    fixed.fields = vec!["software".into()];
    fixed.specializations = vec!["postgresql".into(), "code-review".into()];
    fixed.etag = created.etag.clone();
    let v2 = catalog
        .update_mentor(pb::UpdateMentorRequest {
            mentor: Some(fixed.clone()),
            update_mask: mask(&["fields", "specializations"]),
        })
        .await
        .expect("revised")
        .into_inner()
        .mentor
        .expect("mentor");
    assert_eq!(v2.version, 2);
    let stale = catalog
        .update_mentor(pb::UpdateMentorRequest { mentor: Some(fixed), update_mask: mask(&["fields"]) })
        .await;
    assert_eq!(code(stale), Code::Aborted, "the etag of version 1");
    let published = catalog
        .publish_mentor(pb::PublishMentorRequest {
            mentor_id: "iris-van-tongeren".into(),
            etag: String::new(),
        })
        .await
        .expect("published")
        .into_inner()
        .mentor
        .expect("mentor");
    assert_eq!((published.status, published.published_version), (pb::MentorStatus::Active as i32, 2));
    assert_eq!(s.find(&ann, pb::FindMatchesRequest::default()).await.total_size, 25);
    let embedded = |s: &Stack| {
        let (store, model) = (s.matching.store.clone(), s.matching.embedder.model().to_owned());
        async move {
            let mut kept: Vec<(String, i64)> =
                store.persona_vectors(&model, None).await.expect("vectors").into_keys().collect();
            kept.sort();
            kept.into_iter().filter(|(id, _)| id == "iris-van-tongeren").map(|(_, v)| v).collect::<Vec<_>>()
        }
    };
    assert_eq!(embedded(&s).await, [2], "the published version's persona, embedded once");

    // A later edit stays unseen by learners until published; a mentorship keeps its version.
    let renamed = pb::Mentor { name: "Iris v. Tongeren".into(), ..draft("iris-van-tongeren") };
    catalog
        .update_mentor(pb::UpdateMentorRequest { mentor: Some(renamed), update_mask: mask(&["name"]) })
        .await
        .expect("v3");
    let seen = s
        .mentors(&ann.token)
        .get_mentor(pb::GetMentorRequest { mentor_id: "iris-van-tongeren".into(), version: 0 })
        .await
        .expect("published")
        .into_inner()
        .mentor
        .expect("m");
    assert_eq!((seen.name.as_str(), seen.version), ("Iris van Tongeren", 2));
    assert_eq!(embedded(&s).await, [2], "an unpublished edit is not embedded");
    let chosen = s.choose(&ann, "iris-van-tongeren").await;
    assert_eq!(chosen.mentor_version, 2);

    let retired = catalog
        .retire_mentor(pb::RetireMentorRequest { mentor_id: "iris-van-tongeren".into() })
        .await
        .expect("retired")
        .into_inner()
        .mentor
        .expect("m");
    assert_eq!(retired.status, pb::MentorStatus::Retired as i32);
    assert_eq!(s.find(&bob, pb::FindMatchesRequest::default()).await.total_size, 24);
    let late = s
        .mentorships(&bob.token)
        .choose_mentor(pb::ChooseMentorRequest {
            mentor_id: "iris-van-tongeren".into(),
            request_id: String::new(),
        })
        .await
        .expect_err("retired");
    assert_eq!(tt_common::error::reason(&late).as_deref(), Some("MENTOR_NOT_ACTIVE"));
    let versions = catalog
        .list_mentor_versions(pb::ListMentorVersionsRequest {
            mentor_id: "iris-van-tongeren".into(),
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .expect("versions")
        .into_inner();
    assert_eq!(versions.versions.iter().map(|v| v.version).collect::<Vec<_>>(), [3, 2]);
    assert!(!versions.next_page_token.is_empty());
    assert_eq!(
        code(
            s.mentors(&ann.token)
                .list_mentor_versions(pb::ListMentorVersionsRequest {
                    mentor_id: "iris-van-tongeren".into(),
                    ..Default::default()
                })
                .await
        ),
        Code::PermissionDenied
    );
}

#[tokio::test]
async fn a_malformed_draft_names_every_bad_field_and_learners_cannot_write_the_catalog() {
    let s = Stack::start().await;
    let ann = s.learner("ann").await;
    let admin = s.admin_token().await;
    let mut bad = draft("Bad Id");
    bad.name = String::new();
    bad.capacity = 0;
    bad.stages = vec![99];
    bad.teaching_style = Some(pb::TeachingStyle { modality: 0, pace: 3.0, ..Default::default() });
    bad.model = Some(pb::ModelConfig {
        temperature: 0.5,
        system_prompt_template: "Hi {{learner}}".into(),
        ..Default::default()
    });
    let refused = s.mentors(&admin).create_mentor(pb::CreateMentorRequest { mentor: Some(bad) }).await;
    assert_bad_fields(
        refused,
        &[
            "mentor.mentor_id",
            "mentor.stages[0]",
            "mentor.teaching_style.modality",
            "mentor.name",
            "mentor.stages",
            "mentor.capacity",
            "mentor.teaching_style.pace",
            "mentor.model.system_prompt_template",
        ],
    );
    let denied = s
        .mentors(&ann.token)
        .create_mentor(pb::CreateMentorRequest { mentor: Some(draft("ann-mentor")) })
        .await;
    assert_eq!(code(denied), Code::PermissionDenied);
    let unknown_path = s
        .mentors(&admin)
        .update_mentor(pb::UpdateMentorRequest {
            mentor: Some(draft("odessa-tan")),
            update_mask: mask(&["status", "colour"]),
        })
        .await;
    assert_bad_fields(unknown_path, &["update_mask", "update_mask"]);
}

#[tokio::test]
async fn personas_embedded_once_are_reused_from_memory_then_from_the_store_after_a_restart() {
    use tt_matching::{Matching, domain::score::Embedding, service::Parts};
    let s = Stack::start().await;
    let ann = s.learner("ann").await;
    s.add_goal(&ann, "data", &["sql", "statistics"]).await;
    let model = s.matching.embedder.model().to_owned();
    let kept = s.matching.store.persona_vectors(&model, None).await.expect("vectors");
    assert_eq!(kept.len(), 24, "every shipped persona embedded at start-up");
    let dorothea = |m: &Matching| {
        let catalog = m.catalog();
        let version = catalog.get("dorothea-wilmarth").and_then(|e| e.public.as_ref()).map(|p| p.version);
        catalog.persona("dorothea-wilmarth", version.expect("published")).cloned().expect("embedded")
    };
    let meaning = |found: &pb::FindMatchesResponse, id: &str| {
        let m = found.matches.iter().find(|m| m.mentor.as_ref().is_some_and(|x| x.mentor_id == id));
        let part = m.and_then(|m| m.breakdown.iter().find(|c| c.criterion == pb::Criterion::Meaning as i32));
        part.map(|c| c.score).expect("the mentor's meaning")
    };
    let before = s.find(&ann, pb::FindMatchesRequest::default()).await;
    assert!(meaning(&before, "dorothea-wilmarth") < 0.9);
    let held = dorothea(&s.matching);
    // The store's vector for Dorothea becomes Adaeze's persona: only a read of the store sees it.
    let goals =
        kept.iter().find(|((id, _), _)| id == "adaeze-nwosu").map(|(_, v)| v.clone()).expect("adaeze");
    let ann_goals = s.matching.learner(&ann.id).await.expect("ann").features.goals_vector.clone();
    assert!(
        (Embedding::of(&goals).cosine(&ann_goals) - held.cosine(&ann_goals)).abs() > 0.01,
        "a read of the store would change Ann's meaning score"
    );
    let bytes: Vec<u8> = goals.iter().flat_map(|x| x.to_le_bytes()).collect();
    let updated = sqlx::query("UPDATE persona_vectors SET vector = $1 WHERE mentor_id = $2 AND model = $3")
        .bind(bytes)
        .bind("dorothea-wilmarth")
        .bind(&model)
        .execute(s.matching.store.db().pool())
        .await
        .expect("update");
    assert_eq!(updated.rows_affected(), 1);
    assert_ne!(Embedding::of(&goals), held);

    // Meanwhile Tomasz gets a version 2, published, whose vector another replica stored: the
    // reload shows it and keeps what the catalog in memory holds.
    let store = &s.matching.store;
    let marker = [0.6_f32, -0.8, 0.0];
    let v2 = publish_voice(store, &model, Some(&marker), s.matching.now()).await;
    s.matching.reload().await.expect("reload");
    let tomasz = |m: &Matching, v: i64| m.catalog().persona("tomasz-wierzbicki", v).cloned();
    assert_eq!(tomasz(&s.matching, v2), Some(Embedding::of(&marker)), "the stored vector");
    assert_eq!(dorothea(&s.matching), held, "what memory holds, not the store's changed vector");
    let after = s.find(&ann, pb::FindMatchesRequest::default()).await;
    assert_eq!(meaning(&after, "dorothea-wilmarth"), meaning(&before, "dorothea-wilmarth"));

    // A restart (a new process on the same database) holds nothing: it reads every stored
    // vector and embeds none.
    let embedder = Arc::new(Counting {
        inner: s.matching.embedder.clone(),
        texts: AtomicUsize::new(0),
        race: std::sync::Mutex::new(None),
    });
    let restarted = Matching::new(Parts {
        store: s.matching.store.clone(),
        cache: s.matching.cache.clone(),
        clock: s.matching.clock.clone(),
        pages: s.matching.pages.clone(),
        embedder: embedder.clone(),
        platform: s.kit.platform.clone(),
        view_ttl: s.matching.view_ttl,
        seats_refresh: s.matching.seats_refresh,
    });
    restarted.prepare().await.expect("prepared");
    assert_eq!(dorothea(&restarted), Embedding::of(&goals));
    assert_eq!(tomasz(&restarted, v2), Some(Embedding::of(&marker)));
    assert_eq!(embedder.texts.load(Ordering::Relaxed), 0);
    // Another version stored by another replica: this reload reads just that vector.
    let marker = [0.0_f32, 0.28, -0.96];
    let v3 = publish_voice(store, &model, Some(&marker), s.matching.now()).await;
    restarted.reload().await.expect("reload");
    assert_eq!(tomasz(&restarted, v3), Some(Embedding::of(&marker)));
    assert_eq!(embedder.texts.load(Ordering::Relaxed), 0, "nothing embedded again");
    assert_eq!(dorothea(&restarted), Embedding::of(&goals));
    // A version nobody stored is embedded, but another replica's save lands first: the first
    // save wins, and this replica scores with the stored vector too.
    let v4 = publish_voice(store, &model, None, s.matching.now()).await;
    let rival = [0.8_f32, 0.6, 0.0];
    let (rival_store, rival_model) = (store.clone(), model.clone());
    *embedder.race.lock().expect("race") = Some(Box::pin(async move {
        let saved = [("tomasz-wierzbicki", v4, &rival[..])];
        rival_store.save_persona_vectors(&rival_model, &saved, 0).await.expect("the rival's save");
    }));
    restarted.reload().await.expect("reload");
    assert_eq!(embedder.texts.load(Ordering::Relaxed), 1, "v4 embedded");
    assert_eq!(tomasz(&restarted, v4), Some(Embedding::of(&rival)));
}

/// Publishes a new version of Tomasz (a changed voice) through the store, with `vector` stored
/// for it as another replica would have (when given); the version.
async fn publish_voice(
    store: &tt_matching::store::Store,
    model: &str,
    vector: Option<&[f32]>,
    now: i64,
) -> i64 {
    let latest = store.record("tomasz-wierzbicki").await.expect("shipped").latest;
    let mut content = latest.content.clone();
    content.voice.push_str(" He has mellowed a little.");
    let next =
        store.update_mentor("tomasz-wierzbicki", latest.version, &content, "admin", now).await.expect("edit");
    let v = next.latest.version;
    store.publish_mentor("tomasz-wierzbicki", v, content.capacity, "admin", now).await.expect("published");
    if let Some(vector) = vector {
        store.save_persona_vectors(model, &[("tomasz-wierzbicki", v, vector)], now).await.expect("saved");
    }
    v
}

/// An embedder that counts the texts it is given.
struct Counting {
    inner: Arc<dyn tt_ai::Embedder>,
    texts: AtomicUsize,
    /// Runs before the next embedding: another replica's work racing this one.
    race: std::sync::Mutex<Option<futures::future::BoxFuture<'static, ()>>>,
}

impl tt_ai::Embedder for Counting {
    fn model(&self) -> &str {
        self.inner.model()
    }

    fn dimension(&self) -> usize {
        self.inner.dimension()
    }

    fn embed(
        &self,
        inputs: Vec<String>,
    ) -> futures::future::BoxFuture<'_, Result<Vec<Vec<f32>>, tt_ai::AiError>> {
        self.texts.fetch_add(inputs.len(), Ordering::Relaxed);
        let race = self.race.lock().expect("race").take();
        Box::pin(async move {
            if let Some(race) = race {
                race.await;
            }
            self.inner.embed(inputs).await
        })
    }
}

#[tokio::test]
async fn the_decoded_learner_copy_is_shared_until_the_cached_copy_changes() {
    // Notices held: profiles' notice of the goal, delivered while the copies are read, would
    // invalidate the cached copy between them.
    let s = Stack::holding_events().await;
    let bob = s.learner("bob").await;
    s.add_goal(&bob, "data", &["sql"]).await;
    s.deliver_profiles_notices().await;
    let first = s.matching.learner(&bob.id).await.expect("bob");
    let again = s.matching.learner(&bob.id).await.expect("bob");
    assert!(std::sync::Arc::ptr_eq(&first, &again), "decoded once while the cache holds the same copy");
    assert_eq!(first.features.goals.len(), 1);
    s.add_goal(&bob, "security-defender", &["siem"]).await;
    s.matching.forget_learner(&bob.id).await;
    let fresh = s.matching.learner(&bob.id).await.expect("bob");
    assert!(!std::sync::Arc::ptr_eq(&first, &fresh));
    assert_eq!(fresh.features.goals.len(), 2, "the changed view, not the copy decoded before");
    assert_ne!(fresh.features.goals_vector, first.features.goals_vector);
}
