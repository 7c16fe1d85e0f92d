//! Rows and views to messages, and profiles' learner view to scoring features.

use tt_common::{clock::to_timestamp, storage::etag};
use tt_proto::{
    matching::v1 as pb,
    profiles::v1::{CareerStage, LearnerView, LearningStyle},
};

use crate::{
    catalog::Entry,
    domain::score::{self, Criterion},
    store::{MentorshipRow, VersionRow},
};

/// The text a learner's goals are embedded from: each active goal's role, field and skills.
pub fn goals_text(view: &LearnerView) -> String {
    view.goals
        .iter()
        .map(|g| {
            let skills = g.skill_ids.join(", ").replace('-', " ");
            format!("{} in {}: {}", g.target_role, g.target_field.replace('-', " "), skills).trim().to_owned()
        })
        .filter(|t| t.len() > 4)
        .collect::<Vec<_>>()
        .join(". ")
}

/// The scoring features of a learner.
pub fn learner(view: Option<&LearnerView>, goals_vector: score::Embedding) -> score::Learner {
    let empty = LearnerView::default();
    let v = view.unwrap_or(&empty);
    let style = v.learning_style.as_ref().map(|w| score::LearnerStyle {
        modalities: [w.visual, w.auditory, w.reading_writing, w.kinesthetic],
        pace: v.pace_score,
        structure: v.structure_score,
        feedback: v.feedback_score,
    });
    let stage = CareerStage::try_from(v.career_stage).ok().filter(|s| *s != CareerStage::Unspecified);
    score::Learner {
        fields: v.fields_of_work.clone(),
        goals: v
            .goals
            .iter()
            .map(|g| score::Goal {
                field: g.target_field.clone(),
                skills: g.skill_ids.clone(),
                priority: g.priority,
            })
            .collect(),
        skills: v.skills.iter().map(|s| (s.skill_id.clone(), s.level)).collect(),
        style,
        stage,
        languages: v.languages.clone(),
        goals_vector,
    }
}

fn modality(name: &str) -> LearningStyle {
    match name {
        "visual" => LearningStyle::Visual,
        "auditory" => LearningStyle::Auditory,
        "reading_writing" => LearningStyle::ReadingWriting,
        "kinesthetic" => LearningStyle::Kinesthetic,
        _ => LearningStyle::Unspecified,
    }
}

/// A mentor as a reader sees `version` of it; the model configuration only for admins and
/// services.
pub fn mentor(entry: &Entry, version: &VersionRow, privileged: bool) -> pb::Mentor {
    shown(entry, version, privileged, true)
}

/// How much of a mentor a match carries (`MENTOR_VIEW_SUMMARY`, `MENTOR_VIEW_BASIC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Card {
    Summary = 0,
    Basic = 1,
}

/// A mentor's card in a match: the summary, or all but the background story and the voice.
pub fn card(entry: &Entry, version: &VersionRow, card: Card) -> pb::Mentor {
    match card {
        Card::Summary => summary(entry, version),
        Card::Basic => shown(entry, version, false, false),
    }
}

/// What a list of matches shows of a mentor.
fn summary(entry: &Entry, version: &VersionRow) -> pb::Mentor {
    let c = &version.content;
    let row = &entry.row;
    pb::Mentor {
        mentor_id: row.mentor_id.clone(),
        version: i32::try_from(version.version).unwrap_or(i32::MAX),
        status: pb::MentorStatus::from_str_name(&row.status).unwrap_or_default() as i32,
        name: c.name.clone(),
        era: c.era.clone(),
        fields: c.fields.clone(),
        languages: c.languages.clone(),
        capacity: i32::try_from(c.capacity).unwrap_or(i32::MAX),
        seats_taken: i32::try_from(entry.seats_taken()).unwrap_or(i32::MAX),
        ..Default::default()
    }
}

fn shown(entry: &Entry, version: &VersionRow, privileged: bool, story: bool) -> pb::Mentor {
    let c = &version.content;
    let text = |t: &String| if story { t.clone() } else { String::new() };
    let row = &entry.row;
    pb::Mentor {
        background: text(&c.background),
        voice: text(&c.voice),
        specializations: c.specializations.clone(),
        stages: c.stages.iter().filter_map(|s| CareerStage::from_str_name(s)).map(|s| s as i32).collect(),
        teaching_style: Some(pb::TeachingStyle {
            modality: modality(&c.style.modality) as i32,
            pace: c.style.pace,
            structure: c.style.structure,
            feedback: c.style.feedback,
        }),
        model: privileged.then(|| pb::ModelConfig {
            provider: c.model.provider.clone(),
            model: c.model.model.clone(),
            temperature: c.model.temperature,
            system_prompt_template: c.model.system_prompt.clone(),
        }),
        content_language: c.content_language.clone(),
        published_version: i32::try_from(row.published_version).unwrap_or(i32::MAX),
        create_time: Some(to_timestamp(row.created_at)),
        update_time: Some(to_timestamp(version.created_at)),
        etag: etag(row.latest_version),
        ..summary(entry, version)
    }
}

fn criterion(c: Criterion) -> pb::Criterion {
    match c {
        Criterion::Focus => pb::Criterion::Focus,
        Criterion::Style => pb::Criterion::Style,
        Criterion::Stage => pb::Criterion::Stage,
        Criterion::Language => pb::Criterion::Language,
        Criterion::Meaning => pb::Criterion::Meaning,
        Criterion::Capacity => pb::Criterion::Capacity,
    }
}

/// A ranked mentor with its breakdown.
pub fn matched(mentor: pb::Mentor, c: score::Compatibility, weights: &score::Weights) -> pb::Match {
    pb::Match {
        mentor: Some(mentor),
        score: c.total,
        breakdown: c
            .parts
            .into_iter()
            .map(|p| pb::CriterionScore {
                criterion: criterion(p.criterion) as i32,
                score: p.score,
                weight: weights.of(p.criterion),
                reason: p.reason,
            })
            .collect(),
        demotion: c.demoted.unwrap_or_default(),
    }
}

pub fn mentorship(r: &MentorshipRow) -> pb::Mentorship {
    let ts = |ms: Option<i64>| ms.map(to_timestamp);
    pb::Mentorship {
        mentorship_id: r.id.clone(),
        user_id: r.user_id.clone(),
        mentor_id: r.mentor_id.clone(),
        mentor_version: i32::try_from(r.mentor_version).unwrap_or(i32::MAX),
        mentor_name: r.mentor_name.clone(),
        state: r.state() as i32,
        origin: pb::MentorshipOrigin::from_str_name(&r.origin).unwrap_or_default() as i32,
        create_time: Some(to_timestamp(r.created_at)),
        start_time: ts(r.started_at),
        end_time: ts(r.ended_at),
        end_reason: pb::EndReason::from_str_name(&r.end_reason).unwrap_or_default() as i32,
        end_note: r.end_note.clone(),
        expire_time: ts(r.expires_at),
        feedback: r.rating.map(|rating| pb::Feedback {
            rating: i32::try_from(rating).unwrap_or(0),
            reason: r.feedback_reason.clone(),
            submit_time: ts(r.feedback_at),
        }),
    }
}
