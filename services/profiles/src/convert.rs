//! Rows to protobuf messages, and the derived views (experience, stage, completion, learner view).

use tt_common::clock::{Millis, to_timestamp};
use tt_proto::profiles::v1 as pb;

use crate::{
    domain::{
        assessment::{Lean, Scores, Style},
        career::{self, Stage, StageInput},
        completion::{self, CompletionInput},
        taxonomy::{SkillDef, Taxonomy},
    },
    store::{GoalRow, Learner, PositionRow, ResultRow, SkillRow, goals::ACTIVE},
};

/// Months of experience (overlaps merged) and the derived stage.
pub fn experience(l: &Learner, now: Millis) -> (i32, Stage) {
    let this_month = career::current_month(now);
    let periods: Vec<_> = l
        .positions
        .iter()
        .map(|p| (p.start_month, if p.current { this_month } else { p.end_month.unwrap_or(p.start_month) }))
        .collect();
    let months = career::total_months(&periods);
    let input = StageInput {
        positions: l.positions.len(),
        total_months: months,
        titles: l.positions.iter().map(|p| p.title.as_str()).collect(),
        fields_of_work: &l.profile.fields_of_work,
        goal_fields: l.goals.iter().filter(|g| g.status == ACTIVE).map(|g| g.target_field.as_str()).collect(),
    };
    (months, career::derive_stage(&input))
}

pub fn stage(s: Stage) -> pb::CareerStage {
    match s {
        Stage::Student => pb::CareerStage::Student,
        Stage::EarlyCareer => pb::CareerStage::EarlyCareer,
        Stage::MidLevel => pb::CareerStage::MidLevel,
        Stage::Senior => pb::CareerStage::Senior,
        Stage::Leader => pb::CareerStage::Leader,
        Stage::CareerChanger => pb::CareerStage::CareerChanger,
    }
}

/// The stage others use: the override when set, else the derived one.
fn effective_stage(l: &Learner, derived: Stage) -> pb::CareerStage {
    match pb::CareerStage::from_str_name(&l.profile.career_stage_override) {
        Some(s) if s != pb::CareerStage::Unspecified => s,
        _ => stage(derived),
    }
}

fn enum_value<E: Into<i32>>(name: &str, parse: fn(&str) -> Option<E>) -> i32 {
    parse(name).map_or(0, Into::into)
}

fn years(months: i32) -> f64 {
    (f64::from(months) / 12.0 * 10.0).round() / 10.0
}

pub fn preferences(l: &Learner) -> pb::Preferences {
    let p = &l.profile;
    pb::Preferences {
        session_cadence: enum_value(&p.session_cadence, pb::SessionCadence::from_str_name),
        communication_style: enum_value(&p.communication_style, pb::CommunicationStyle::from_str_name),
        feedback_style: enum_value(&p.feedback_style, pb::FeedbackStyle::from_str_name),
        notifications: Some(pb::NotificationPreferences {
            email: p.notify_email,
            push: p.notify_push,
            weekly_digest: p.notify_weekly_digest,
            mission_reminders: p.notify_mission_reminders,
        }),
    }
}

pub fn profile(l: &Learner, now: Millis) -> pb::Profile {
    let (months, derived) = experience(l, now);
    let p = &l.profile;
    pb::Profile {
        user_id: p.user_id.clone(),
        headline: p.headline.clone(),
        current_role: p.current_role.clone(),
        fields_of_work: p.fields_of_work.clone(),
        location: p.location.clone(),
        timezone: p.timezone.clone(),
        languages: p.languages.clone(),
        career_stage: effective_stage(l, derived).into(),
        career_stage_override: enum_value(&p.career_stage_override, pb::CareerStage::from_str_name),
        derived_career_stage: stage(derived).into(),
        preferences: Some(preferences(l)),
        visibility: enum_value(&p.visibility, pb::Visibility::from_str_name),
        experience: Some(pb::ExperienceSummary {
            total_months: months,
            total_years: years(months),
            position_count: i32::try_from(l.positions.len()).unwrap_or(i32::MAX),
        }),
        create_time: Some(to_timestamp(p.created_at)),
        update_time: Some(to_timestamp(p.updated_at)),
        etag: tt_common::storage::etag(p.version),
    }
}

pub fn completion(l: &Learner) -> pb::Completion {
    let p = &l.profile;
    let input = CompletionInput {
        headline: !p.headline.is_empty(),
        role: !p.current_role.is_empty(),
        fields_of_work: !p.fields_of_work.is_empty(),
        location: !p.location.is_empty(),
        timezone: !p.timezone.is_empty(),
        languages: !p.languages.is_empty(),
        cadence: !p.session_cadence.is_empty(),
        communication: !p.communication_style.is_empty(),
        feedback: !p.feedback_style.is_empty(),
        active_goals: l.goals.iter().filter(|g| g.status == ACTIVE).count(),
        assessments: usize::try_from(l.results).unwrap_or(0),
        positions: l.positions.len(),
        skills: l.skills.len(),
    };
    let c = completion::compute(&input);
    let next = c.next.map(|i| &c.sections[i]);
    pb::Completion {
        percent: c.percent,
        next_step: next.map(|s| s.step.to_owned()).unwrap_or_default(),
        next_section: next.map(|s| s.name.to_owned()).unwrap_or_default(),
        sections: c
            .sections
            .iter()
            .map(|s| pb::CompletionSection {
                name: s.name.to_owned(),
                weight: s.weight,
                complete: s.missing.is_empty(),
                missing: s.missing.join(", "),
            })
            .collect(),
    }
}

pub fn learner_view(l: &Learner, taxonomy: &Taxonomy, now: Millis) -> pb::LearnerView {
    let (months, derived) = experience(l, now);
    let scores = l.latest_result.as_ref().map(|r| &r.scores);
    let leaned = scores.map(leans);
    pb::LearnerView {
        user_id: l.profile.user_id.clone(),
        fields_of_work: l.profile.fields_of_work.clone(),
        skills: l
            .skills
            .iter()
            .map(|s| pb::LearnerViewSkill {
                skill_id: s.skill_id.clone(),
                track: taxonomy.get(&s.skill_id).map(|d| d.track.clone()).unwrap_or_default(),
                level: s.verification.as_ref().map_or(s.proficiency, |v| v.proficiency),
                verified: s.verification.is_some(),
            })
            .collect(),
        goals: l
            .goals
            .iter()
            .filter(|g| g.status == ACTIVE)
            .map(|g| pb::LearnerViewGoal {
                goal_id: g.id.clone(),
                kind: enum_value(&g.kind, pb::GoalKind::from_str_name),
                target_role: g.target_role.clone(),
                target_field: g.target_field.clone(),
                priority: g.priority,
                skill_ids: g.skill_ids.clone(),
            })
            .collect(),
        learning_style: scores.map(weights),
        dominant_style: scores.map_or(0, |s| style(s.dominant).into()),
        pace: leaned.map_or(0, |l| l.0.into()),
        structure: leaned.map_or(0, |l| l.1.into()),
        feedback: leaned.map_or(0, |l| l.2.into()),
        pace_score: scores.map_or(0.0, |s| s.pace),
        structure_score: scores.map_or(0.0, |s| s.structure),
        feedback_score: scores.map_or(0.0, |s| s.feedback),
        visibility: enum_value(&l.profile.visibility, pb::Visibility::from_str_name),
        display_name: l.display_name.clone(),
        career_stage: effective_stage(l, derived).into(),
        timezone: l.profile.timezone.clone(),
        languages: l.profile.languages.clone(),
        preferences: Some(preferences(l)),
        years_of_experience: years(months),
    }
}

pub fn goal(g: &GoalRow) -> pb::Goal {
    let date = g.target_date.split('-').map(|p| p.parse::<i32>().unwrap_or(0)).collect::<Vec<_>>();
    pb::Goal {
        id: g.id.clone(),
        kind: enum_value(&g.kind, pb::GoalKind::from_str_name),
        title: g.title.clone(),
        target_role: g.target_role.clone(),
        target_field: g.target_field.clone(),
        target_date: match date.as_slice() {
            [year, month, day] => Some(pb::Date { year: *year, month: *month, day: *day }),
            _ => None,
        },
        priority: g.priority,
        status: enum_value(&g.status, pb::GoalStatus::from_str_name),
        skill_ids: g.skill_ids.clone(),
        rank: g.rank,
        create_time: Some(to_timestamp(g.created_at)),
        update_time: Some(to_timestamp(g.updated_at)),
        achieve_time: g.achieved_at.map(to_timestamp),
        etag: tt_common::storage::etag(g.version),
    }
}

pub fn month(index: career::MonthIndex) -> pb::YearMonth {
    let (year, month) = career::year_month(index);
    pb::YearMonth { year, month }
}

pub fn position(p: &PositionRow) -> pb::Position {
    pb::Position {
        id: p.id.clone(),
        title: p.title.clone(),
        organization: p.organization.clone(),
        start: Some(month(p.start_month)),
        end: p.end_month.map(month),
        current: p.current,
        description: p.description.clone(),
        skill_ids: p.skill_ids.clone(),
        create_time: Some(to_timestamp(p.created_at)),
        update_time: Some(to_timestamp(p.updated_at)),
        etag: tt_common::storage::etag(p.version),
    }
}

pub fn skill_def(d: &SkillDef) -> pb::Skill {
    pb::Skill {
        id: d.id.clone(),
        name: d.name.clone(),
        track: d.track.clone(),
        category: d.category.clone(),
        aliases: d.aliases.clone(),
    }
}

pub fn learner_skill(s: &SkillRow, taxonomy: &Taxonomy) -> pb::LearnerSkill {
    pb::LearnerSkill {
        skill: Some(
            taxonomy
                .get(&s.skill_id)
                .map_or_else(|| pb::Skill { id: s.skill_id.clone(), ..Default::default() }, skill_def),
        ),
        proficiency: s.proficiency,
        years: f64::from(s.years_tenths) / 10.0,
        last_used: s.last_used_month.map(month),
        verification: s.verification.as_ref().map(|v| pb::SkillVerification {
            proficiency: v.proficiency,
            source: v.source.clone(),
            verifier: v.verifier.clone(),
            verify_time: Some(to_timestamp(v.verified_at)),
        }),
        update_time: Some(to_timestamp(s.updated_at)),
    }
}

fn style(s: Style) -> pb::LearningStyle {
    match s {
        Style::Visual => pb::LearningStyle::Visual,
        Style::Auditory => pb::LearningStyle::Auditory,
        Style::ReadingWriting => pb::LearningStyle::ReadingWriting,
        Style::Kinesthetic => pb::LearningStyle::Kinesthetic,
    }
}

fn weights(s: &Scores) -> pb::StyleWeights {
    pb::StyleWeights {
        visual: s.visual,
        auditory: s.auditory,
        reading_writing: s.reading_writing,
        kinesthetic: s.kinesthetic,
    }
}

/// Pace, structure and feedback as their enums.
fn leans(s: &Scores) -> (pb::Pace, pb::StructurePreference, pb::FeedbackPreference) {
    use pb::{FeedbackPreference as F, Pace as P, StructurePreference as S};
    let pick = |l: Lean| match l {
        Lean::Low => 0,
        Lean::Balanced => 1,
        Lean::High => 2,
    };
    (
        [P::Steady, P::Moderate, P::Intensive][pick(s.pace_lean())],
        [S::Autonomous, S::Balanced, S::Structured][pick(s.structure_lean())],
        [F::Encouraging, F::Balanced, F::Direct][pick(s.feedback_lean())],
    )
}

pub fn result(r: &ResultRow) -> pb::AssessmentResult {
    let s = &r.scores;
    let (pace, structure, feedback) = leans(s);
    pb::AssessmentResult {
        id: r.id.clone(),
        version: r.version,
        weights: Some(weights(s)),
        dominant_style: style(s.dominant).into(),
        pace: pace.into(),
        structure: structure.into(),
        feedback: feedback.into(),
        pace_score: s.pace,
        structure_score: s.structure,
        feedback_score: s.feedback,
        explanation: s.explanation.clone(),
        create_time: Some(to_timestamp(r.created_at)),
    }
}
