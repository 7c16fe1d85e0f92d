//! Profile completion: weighted sections, what is missing, and the next best step.

/// What completion looks at (counts and flags, read from the learner's data).
#[derive(Debug, Clone, Default)]
pub struct CompletionInput {
    pub headline: bool,
    pub role: bool,
    pub fields_of_work: bool,
    pub location: bool,
    pub timezone: bool,
    pub languages: bool,
    pub cadence: bool,
    pub communication: bool,
    pub feedback: bool,
    pub active_goals: usize,
    pub assessments: usize,
    pub positions: usize,
    pub skills: usize,
}

/// Skills a complete inventory lists at least.
pub const MIN_SKILLS: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: &'static str,
    pub weight: i32,
    /// Empty when complete.
    pub missing: Vec<&'static str>,
    pub step: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub percent: i32,
    pub sections: Vec<Section>,
    /// The heaviest incomplete section (earliest on ties).
    pub next: Option<usize>,
}

fn section(name: &'static str, weight: i32, checks: &[(bool, &'static str)], step: &'static str) -> Section {
    Section { name, weight, missing: checks.iter().filter(|(ok, _)| !ok).map(|(_, m)| *m).collect(), step }
}

/// Weights: basics 20, goals 20, assessment 15, skills 15, location 10, preferences 10,
/// experience 10 (100 in all).
pub fn compute(c: &CompletionInput) -> Completion {
    let sections = vec![
        section(
            "basics",
            20,
            &[
                (c.headline, "a headline"),
                (c.role, "your current role"),
                (c.fields_of_work, "a field of work"),
            ],
            "Add a headline, your current role and your fields of work",
        ),
        section(
            "goals",
            20,
            &[(c.active_goals > 0, "an active career goal")],
            "Set a career goal so your mentors know where you are heading",
        ),
        section(
            "assessment",
            15,
            &[(c.assessments > 0, "the learning-style assessment")],
            "Take the learning-style assessment (GetAssessment, then SubmitAssessment)",
        ),
        section(
            "skills",
            15,
            &[(c.skills >= MIN_SKILLS, "at least 3 skills")],
            "List at least 3 skills with your proficiency",
        ),
        section(
            "location",
            10,
            &[(c.location, "a location"), (c.timezone, "a time zone"), (c.languages, "a language")],
            "Add your location, time zone and languages",
        ),
        section(
            "preferences",
            10,
            &[
                (c.cadence, "a session cadence"),
                (c.communication, "a communication style"),
                (c.feedback, "a feedback style"),
            ],
            "Choose your session cadence, communication style and feedback style",
        ),
        section(
            "experience",
            10,
            &[(c.positions > 0, "a position")],
            "Add your professional experience (or a first internship or project role)",
        ),
    ];
    let percent = sections.iter().filter(|s| s.missing.is_empty()).map(|s| s.weight).sum();
    let next = sections
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.missing.is_empty())
        .max_by(|(ia, a), (ib, b)| a.weight.cmp(&b.weight).then(ib.cmp(ia)))
        .map(|(i, _)| i);
    Completion { percent, sections, next }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> CompletionInput {
        CompletionInput {
            headline: true,
            role: true,
            fields_of_work: true,
            location: true,
            timezone: true,
            languages: true,
            cadence: true,
            communication: true,
            feedback: true,
            active_goals: 1,
            assessments: 1,
            positions: 1,
            skills: 3,
        }
    }

    #[test]
    fn weights_add_up_and_empty_is_zero() {
        let c = compute(&CompletionInput::default());
        assert_eq!(c.sections.iter().map(|s| s.weight).sum::<i32>(), 100);
        assert_eq!(c.percent, 0);
        assert_eq!(c.sections[c.next.expect("something missing")].name, "basics");
        let done = compute(&full());
        assert_eq!(done.percent, 100);
        assert_eq!(done.next, None);
    }

    #[test]
    fn partial_sections_count_nothing_and_name_what_is_missing() {
        let c = compute(&CompletionInput { headline: true, skills: 2, ..full() });
        let basics = &c.sections[0];
        assert!(basics.missing.is_empty());
        let skills = c.sections.iter().find(|s| s.name == "skills").expect("skills");
        assert_eq!(skills.missing, vec!["at least 3 skills"]);
        assert_eq!(c.percent, 85);
        assert_eq!(c.sections[c.next.expect("skills missing")].name, "skills");
    }

    #[test]
    fn next_step_is_the_heaviest_missing_section() {
        let c = compute(&CompletionInput { active_goals: 0, positions: 0, ..full() });
        assert_eq!(c.percent, 70);
        assert_eq!(c.sections[c.next.expect("goals missing")].name, "goals");
    }
}
