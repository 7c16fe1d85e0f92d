//! The skill taxonomy, the learner's inventory with service verification, and the assessment.

use tonic::Code;
use tt_proto::profiles::v1::{self as pb};

use crate::support::{Stack, assert_bad_fields, code};

fn upsert(skill: &str, level: i32) -> pb::UpsertLearnerSkillRequest {
    pb::UpsertLearnerSkillRequest { skill_id: skill.into(), proficiency: level, years: 2.5, last_used: None }
}

#[tokio::test]
async fn search_ranks_exact_aliases_first_and_pages() {
    let s = Stack::start().await;
    let ada = s.learner("ada").await;
    let mut skills = s.skills(&ada.token);
    let k8s = skills
        .search_skills(pb::SearchSkillsRequest { query: "k8s".into(), ..Default::default() })
        .await
        .expect("search")
        .into_inner();
    assert_eq!(k8s.skills[0].id, "kubernetes");
    let first = skills
        .search_skills(pb::SearchSkillsRequest { query: "s".into(), page_size: 5, ..Default::default() })
        .await
        .expect("page 1")
        .into_inner();
    assert_eq!(first.skills.len(), 5);
    let second = skills
        .search_skills(pb::SearchSkillsRequest {
            query: "s".into(),
            page_size: 5,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .expect("page 2")
        .into_inner();
    assert!(second.skills.iter().all(|x| !first.skills.contains(x)), "pages do not repeat");
    // A token belongs to its query.
    let other = skills
        .search_skills(pb::SearchSkillsRequest {
            query: "t".into(),
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await;
    assert_bad_fields(other, &["page_token"]);
    let bad = skills
        .search_skills(pb::SearchSkillsRequest {
            query: " ".into(),
            track: "cooking".into(),
            ..Default::default()
        })
        .await;
    assert_bad_fields(bad, &["query", "track"]);
}

#[tokio::test]
async fn a_batch_lookup_answers_every_id_at_once_and_the_tracks_are_listed() {
    let s = Stack::start().await;
    let service = s.service_token().await;
    let mut skills = s.skills(&service);
    let ids = ["sql", "no-such-skill", "kubernetes", "sql", "zzz-unknown"].map(String::from).to_vec();
    let found = skills.batch_get_skills(pb::BatchGetSkillsRequest { ids }).await.expect("batch").into_inner();
    assert_eq!(found.skills.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), ["sql", "kubernetes"]);
    assert_eq!(found.skills[1].track, "software");
    assert_eq!(found.missing_ids, ["no-such-skill", "zzz-unknown"], "every unknown id, once, in order");
    let malformed = vec!["ok-id".into(), "Not An Id".into(), "x".repeat(65)];
    assert_bad_fields(
        skills.batch_get_skills(pb::BatchGetSkillsRequest { ids: malformed }).await,
        &["ids[1]", "ids[2]"],
    );
    assert_bad_fields(skills.batch_get_skills(pb::BatchGetSkillsRequest { ids: Vec::new() }).await, &["ids"]);
    let too_many = vec!["sql".to_owned(); 201];
    assert_bad_fields(skills.batch_get_skills(pb::BatchGetSkillsRequest { ids: too_many }).await, &["ids"]);
    let tracks = skills.list_tracks(pb::ListTracksRequest {}).await.expect("tracks").into_inner().tracks;
    assert_eq!(tracks.len(), 9);
    assert_eq!(tracks[0].id, "software");
    assert!(tracks.iter().all(|t| t.skill_count > 0), "{tracks:?}");
}

#[tokio::test]
async fn unknown_skills_suggest_and_verification_needs_a_service() {
    let s = Stack::start().await;
    let ada = s.learner("ada").await;
    let mut skills = s.skills(&ada.token);
    let typo = skills.upsert_learner_skill(upsert("pythn", 3)).await.expect_err("unknown");
    assert_eq!(typo.code(), Code::InvalidArgument);
    assert!(typo.message().contains("skill_id"));
    let details = tonic_types::StatusExt::get_details_bad_request(&typo).expect("bad request");
    assert!(details.field_violations[0].description.contains("python"), "{:?}", details.field_violations);
    assert_bad_fields(skills.upsert_learner_skill(upsert("rust", 6)).await, &["proficiency"]);

    let own = skills
        .upsert_learner_skill(upsert("rust", 3))
        .await
        .expect("upsert")
        .into_inner()
        .skill
        .expect("skill");
    assert_eq!(own.proficiency, 3);
    assert_eq!(own.years, 2.5);
    assert!(own.verification.is_none());

    // A learner cannot verify, not even their own skill.
    let verify = |token: &str| {
        let mut client = s.integration(token);
        let user_id = ada.id.clone();
        async move {
            client
                .verify_learner_skill(pb::VerifyLearnerSkillRequest {
                    user_id,
                    skill_id: "rust".into(),
                    proficiency: 4,
                    source: "missions/m-42".into(),
                })
                .await
        }
    };
    assert_eq!(code(verify(&ada.token).await), Code::PermissionDenied);
    let service = s.service_token().await;
    let verified = verify(&service).await.expect("verified").into_inner().skill.expect("skill");
    let v = verified.verification.expect("verification");
    assert_eq!((v.proficiency, v.source.as_str()), (4, "missions/m-42"));
    assert!(!v.verifier.is_empty(), "records which service verified it");

    // The learner's own update keeps the verification; the learner view uses the verified level.
    let again = skills
        .upsert_learner_skill(upsert("rust", 5))
        .await
        .expect("upsert")
        .into_inner()
        .skill
        .expect("skill");
    assert_eq!(again.proficiency, 5);
    assert_eq!(again.verification.map(|v| v.proficiency), Some(4));
    let view = s
        .integration(&service)
        .get_learner_view(pb::GetLearnerViewRequest { user_id: ada.id.clone() })
        .await
        .expect("view")
        .into_inner()
        .view
        .expect("view");
    let rust = view.skills.iter().find(|x| x.skill_id == "rust").expect("rust");
    assert_eq!((rust.level, rust.verified, rust.track.as_str()), (4, true, "software"));
}

#[tokio::test]
async fn assessment_validates_scores_and_keeps_history() {
    let s = Stack::start().await;
    let ada = s.learner("ada").await;
    let mut a = s.assessment(&ada.token);
    let q =
        a.get_assessment(pb::GetAssessmentRequest {}).await.expect("get").into_inner().assessment.expect("q");
    assert!(q.questions.len() >= 16);
    let answers = |pick: usize| -> Vec<pb::Answer> {
        q.questions
            .iter()
            .map(|x| pb::Answer {
                question_id: x.id.clone(),
                option_id: x.options[pick.min(x.options.len() - 1)].id.clone(),
            })
            .collect()
    };
    let mut partial = answers(0);
    partial.pop();
    partial[0].option_id = "zz".into();
    let refused =
        a.submit_assessment(pb::SubmitAssessmentRequest { version: q.version + 1, answers: partial }).await;
    assert_bad_fields(refused, &["version", "answers[0].option_id", "answers"]);
    assert!(
        a.list_assessment_results(pb::ListAssessmentResultsRequest::default())
            .await
            .expect("list")
            .get_ref()
            .results
            .is_empty(),
        "nothing kept"
    );

    let first = a
        .submit_assessment(pb::SubmitAssessmentRequest { version: q.version, answers: answers(0) })
        .await
        .expect("submit")
        .into_inner()
        .result
        .expect("result");
    let w = first.weights.expect("weights");
    assert!((w.visual + w.auditory + w.reading_writing + w.kinesthetic - 1.0).abs() < 0.01);
    assert_ne!(first.dominant_style, 0);
    assert!(!first.explanation.is_empty());
    s.clock.advance(std::time::Duration::from_secs(1));
    let second = a
        .submit_assessment(pb::SubmitAssessmentRequest { version: q.version, answers: answers(3) })
        .await
        .expect("submit")
        .into_inner()
        .result
        .expect("result");
    let history = a
        .list_assessment_results(pb::ListAssessmentResultsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        history.results.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![second.id.clone(), first.id]
    );
    let service = s.service_token().await;
    let view = s
        .integration(&service)
        .get_learner_view(pb::GetLearnerViewRequest { user_id: ada.id.clone() })
        .await
        .expect("view")
        .into_inner()
        .view
        .expect("view");
    assert_eq!(view.learning_style, second.weights, "the latest result is the one others use");
    assert_eq!(view.dominant_style, second.dominant_style);
    assert_ne!(second.pace, 0);
    assert_eq!(
        (view.pace, view.structure, view.feedback),
        (second.pace, second.structure, second.feedback),
        "every dimension, not only the modality"
    );
    assert_eq!(
        (view.pace_score, view.structure_score, view.feedback_score),
        (second.pace_score, second.structure_score, second.feedback_score)
    );
    assert_ne!(
        (first.pace_score, first.structure_score, first.feedback_score),
        (second.pace_score, second.structure_score, second.feedback_score),
        "the two answer sets differ on the other dimensions too"
    );
}

/// Bytes a status takes in the trailers (message plus base64 details), roughly.
fn status_bytes(status: &tonic::Status) -> usize {
    status.message().len() + status.details().len().div_ceil(3) * 4
}

#[tokio::test]
async fn hostile_skill_ids_cost_little_and_answer_small() {
    let s = Stack::start().await;
    let ada = s.learner("ada").await;
    // A megabyte of skill id is refused on its length, without the "did you mean" pass (which
    // took 18 CPU-seconds for this before).
    let started = std::time::Instant::now();
    let err = s
        .skills(&ada.token)
        .upsert_learner_skill(upsert(&"k".repeat(1_000_000), 3))
        .await
        .expect_err("1 MB id");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(status_bytes(&err) < 4096, "{} bytes", status_bytes(&err));

    // 1,000 unknown skills on a goal: one count violation, not a thousand.
    let mut g = crate::support::goal(pb::GoalKind::LongTerm, "Everything");
    g.skill_ids = (0..1000).map(|i| format!("no-such-skill-{i}")).collect();
    let err = s
        .goals(&ada.token)
        .create_goal(pb::CreateGoalRequest { goal: Some(g.clone()), request_id: String::new() })
        .await
        .expect_err("too many skills");
    assert_eq!(tt_common::error::bad_fields(&err), ["goal.skill_ids"]);
    assert!(status_bytes(&err) < 4096, "{} bytes", status_bytes(&err));

    // Within the count, every unknown id is named; only the first few get suggestions.
    g.skill_ids = (0..20).map(|i| format!("kubernets{i}")).collect();
    let err = s
        .goals(&ada.token)
        .create_goal(pb::CreateGoalRequest { goal: Some(g), request_id: String::new() })
        .await
        .expect_err("unknown skills");
    let fields = tt_common::error::bad_fields(&err);
    assert_eq!(fields.len(), 20, "{fields:?}");
    assert!(status_bytes(&err) < 4096, "{} bytes", status_bytes(&err));
}
