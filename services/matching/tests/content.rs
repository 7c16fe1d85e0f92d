//! The shipped demo mentors against the rules publishing applies and the profiles taxonomy.

use std::collections::BTreeSet;

use tt_matching::domain::catalog::{self, PromptValues, Taxonomy};
use tt_profiles::domain::taxonomy::{self as tax, TRACKS};

struct Profiles(tax::Taxonomy);

impl Taxonomy for Profiles {
    fn is_track(&self, id: &str) -> bool {
        tax::is_track(id)
    }
    fn is_skill(&self, id: &str) -> bool {
        self.0.get(id).is_some()
    }
}

#[test]
fn every_shipped_mentor_is_publishable_and_distinct() {
    let taxonomy = Profiles(tax::Taxonomy::builtin().expect("taxonomy"));
    let mentors = catalog::demo().expect("data/mentors.toml parses");
    assert!(mentors.len() >= 24, "at least 24 demo mentors, found {}", mentors.len());
    let mut ids = BTreeSet::new();
    let (mut names, mut voices, mut prompts) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for m in &mentors {
        assert!(catalog::is_mentor_id(&m.id), "{}", m.id);
        assert!(ids.insert(m.id.clone()), "{} is listed twice", m.id);
        let problems = catalog::problems(&m.content, &taxonomy);
        assert!(problems.is_empty(), "{}: {problems:?}", m.id);
        assert!(names.insert(m.content.name.clone()) && voices.insert(m.content.voice.clone()), "{}", m.id);
        assert!(prompts.insert(m.content.model.system_prompt.clone()), "{} shares a prompt", m.id);
        assert!(m.content.languages.iter().any(|l| l == "en"), "{} speaks English", m.id);
        let values = PromptValues {
            learner_name: "Ann",
            learner_goals: "a first security role",
            learner_stage: "students",
        };
        let prompt = catalog::render(&m.content, &values).expect("renders");
        assert!(
            prompt.contains(&m.content.name) && prompt.contains("Ann") && !prompt.contains("{{"),
            "{}",
            m.id
        );
    }
    for track in TRACKS {
        let n = mentors.iter().filter(|m| m.content.fields.iter().any(|f| f == track)).count();
        assert!(n >= 2, "track {track} has {n} mentors");
    }
    for stage in ["STUDENT", "EARLY_CAREER", "MID_LEVEL", "SENIOR", "LEADER", "CAREER_CHANGER"] {
        let name = format!("CAREER_STAGE_{stage}");
        assert!(mentors.iter().any(|m| m.content.stages.contains(&name)), "nobody serves {name}");
    }
}

#[test]
fn synthetic_mentors_are_publishable_varied_and_the_same_for_a_seed() {
    let taxonomy = Profiles(tax::Taxonomy::builtin().expect("taxonomy"));
    let mentors = catalog::synthetic(500, 7).expect("synthetic");
    assert_eq!(mentors.len(), 500);
    for m in &mentors {
        assert!(catalog::is_mentor_id(&m.id), "{}", m.id);
        let problems = catalog::problems(&m.content, &taxonomy);
        assert!(problems.is_empty(), "{}: {problems:?}", m.id);
    }
    let ids: BTreeSet<&str> = mentors.iter().map(|m| m.id.as_str()).collect();
    let stories: BTreeSet<&str> = mentors.iter().map(|m| m.content.background.as_str()).collect();
    assert_eq!(ids.len(), 500);
    assert!(stories.len() > 490, "stories repeat: {} distinct", stories.len());
    assert_eq!(catalog::synthetic(500, 7).expect("again"), mentors);
    assert_ne!(catalog::synthetic(500, 8).expect("another seed"), mentors);
}
