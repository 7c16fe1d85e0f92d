//! The mentor catalog's content: what a mentor version holds, its validation (every problem
//! listed), the system-prompt template and its rendering, and the demo mentors shipped in
//! `data/mentors.toml`.

use serde::{Deserialize, Serialize};
use tt_common::error::Invalid;

use super::score::{self, Modality, Stage, TeachingStyle};

/// The demo mentors, shipped with the binary.
pub const DEMO: &str = include_str!("../../data/mentors.toml");

/// The longest mentor id.
pub const MAX_ID: usize = 40;
/// The most mentees a mentor takes at once.
pub const MAX_CAPACITY: u32 = 1000;
/// The placeholders a system-prompt template may use; the first two are required.
pub const PLACEHOLDERS: [&str; 6] =
    ["name", "learner_name", "era", "voice", "learner_goals", "learner_stage"];

/// One version of a mentor, as stored (JSON) and as shipped (TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    pub name: String,
    pub era: String,
    pub background: String,
    pub voice: String,
    /// Track ids.
    pub fields: Vec<String>,
    /// Skill ids.
    pub specializations: Vec<String>,
    /// `CAREER_STAGE_*` names.
    pub stages: Vec<String>,
    /// BCP 47 tags.
    pub languages: Vec<String>,
    pub capacity: u32,
    pub style: Style,
    pub model: Model,
    /// The language the persona is written in.
    #[serde(default = "english")]
    pub content_language: String,
}

fn english() -> String {
    "en".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Style {
    /// visual | auditory | reading_writing | kinesthetic
    pub modality: String,
    pub pace: f64,
    pub structure: f64,
    pub feedback: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    #[serde(default)]
    pub provider: String,
    #[serde(default)]
    pub model: String,
    pub temperature: f64,
    pub system_prompt: String,
}

/// A shipped mentor: its id and its first version.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DemoMentor {
    pub id: String,
    #[serde(flatten)]
    pub content: Content,
}

#[derive(Deserialize)]
struct DemoFile {
    mentor: Vec<DemoMentor>,
}

/// Parses the shipped mentors (the shape only; [`problems`] checks each).
pub fn demo() -> Result<Vec<DemoMentor>, Invalid> {
    let file: DemoFile =
        toml::from_str(DEMO).map_err(|e| Invalid::from(format!("data/mentors.toml: {e}")))?;
    Ok(file.mentor)
}

/// `n` synthetic mentors (`bench-000000` ...) for benchmarks of large catalogs, the same for
/// the same seed: the shipped mentors recombined (a second track now and then, skills of two
/// mentors, random stages, languages, capacity and style, a story of five sentences drawn from
/// all the shipped stories), within the published limits.
pub fn synthetic(n: usize, seed: u64) -> Result<Vec<DemoMentor>, Invalid> {
    const STAGES: [&str; 6] = [
        "CAREER_STAGE_STUDENT",
        "CAREER_STAGE_EARLY_CAREER",
        "CAREER_STAGE_MID_LEVEL",
        "CAREER_STAGE_SENIOR",
        "CAREER_STAGE_LEADER",
        "CAREER_STAGE_CAREER_CHANGER",
    ];
    const LANGUAGES: [&str; 8] = ["pt-BR", "es", "de", "fr", "pl", "ja", "hi", "sw"];
    const MODALITIES: [&str; 4] = ["visual", "auditory", "reading_writing", "kinesthetic"];
    let shipped = demo()?;
    let mut state = seed | 1;
    // xorshift64: below(k) is in 0..k.
    let mut below = |k: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % k.max(1) as u64).unwrap_or(0)
    };
    let sentences: Vec<&str> =
        shipped.iter().flat_map(|m| m.content.background.split_inclusive(". ")).collect();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let base = &shipped[i % shipped.len()].content;
        let other = &shipped[below(shipped.len())].content;
        let mut c = base.clone();
        c.name = format!("{} {i}", base.name);
        c.fields.truncate(1);
        if other.fields[0] != c.fields[0] && below(10) < 3 {
            c.fields.push(other.fields[0].clone());
        }
        let mut skills: Vec<String> =
            base.specializations.iter().chain(&other.specializations).cloned().collect();
        skills.sort();
        skills.dedup();
        for k in (1..skills.len()).rev() {
            skills.swap(k, below(k + 1));
        }
        skills.truncate(3 + below(6));
        c.specializations = skills;
        let mut stages: Vec<String> = STAGES.iter().map(|s| (*s).to_owned()).collect();
        for k in (1..stages.len()).rev() {
            stages.swap(k, below(k + 1));
        }
        stages.truncate(1 + below(3));
        c.stages = stages;
        c.languages = vec!["en".to_owned()];
        if below(10) < 4 {
            c.languages.push(LANGUAGES[below(LANGUAGES.len())].to_owned());
        }
        c.capacity = 5 + u32::try_from(below(36)).unwrap_or(0);
        c.style.modality = MODALITIES[below(MODALITIES.len())].to_owned();
        let lean = |k: usize| f64::from(u32::try_from(k).unwrap_or(0)) / 10.0 - 1.0;
        c.style.pace = lean(below(21));
        c.style.structure = lean(below(21));
        c.style.feedback = lean(below(21));
        c.background =
            (0..5).map(|_| sentences[below(sentences.len())]).collect::<String>().trim().to_owned();
        out.push(DemoMentor { id: format!("bench-{i:06}"), content: c });
    }
    Ok(out)
}

/// One problem of a mentor: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub problem: String,
}

/// Whether `id` is a mentor id: kebab-case (lowercase letters and digits in words joined by
/// single hyphens), at most [`MAX_ID`] characters.
pub fn is_mentor_id(id: &str) -> bool {
    id.len() <= MAX_ID
        && !id.is_empty()
        && id
            .split('-')
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// Parses a modality name of the catalog.
pub fn modality(name: &str) -> Option<Modality> {
    Some(match name {
        "visual" => Modality::Visual,
        "auditory" => Modality::Auditory,
        "reading_writing" => Modality::ReadingWriting,
        "kinesthetic" => Modality::Kinesthetic,
        _ => return None,
    })
}

/// Parses a stage name (`CAREER_STAGE_*`, not UNSPECIFIED).
pub fn stage(name: &str) -> Option<Stage> {
    Stage::from_str_name(name).filter(|s| *s != Stage::Unspecified)
}

/// Whether `tag` looks like a BCP 47 language tag: a 2-3 letter primary subtag, then
/// alphanumeric subtags of 1-8 characters.
pub fn is_language(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or("");
    (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_lowercase())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// What the taxonomy knows (profiles' skills and tracks), for checking a mentor's ids.
pub trait Taxonomy {
    fn is_track(&self, id: &str) -> bool;
    fn is_skill(&self, id: &str) -> bool;
}

/// Every problem of `content` (empty: it may be published). Field names are those of the
/// `Mentor` message.
pub fn problems(content: &Content, taxonomy: &dyn Taxonomy) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut add = |field: &str, problem: String| out.push(Problem { field: field.to_owned(), problem });
    for (field, value, max) in [
        ("name", &content.name, 100),
        ("era", &content.era, 200),
        ("background", &content.background, 4000),
        ("voice", &content.voice, 1000),
    ] {
        let n = value.trim().chars().count();
        if n == 0 || n > max {
            add(field, format!("must be 1 to {max} characters"));
        }
    }
    if !(1..=3).contains(&content.fields.len()) {
        add("fields", "must name 1 to 3 tracks".to_owned());
    }
    for (i, f) in content.fields.iter().enumerate().take(3) {
        if !taxonomy.is_track(f) {
            add(&format!("fields[{i}]"), format!("unknown track {f:?}"));
        }
    }
    if !(1..=12).contains(&content.specializations.len()) {
        add("specializations", "must name 1 to 12 skills".to_owned());
    }
    for (i, s) in content.specializations.iter().enumerate().take(12) {
        if !taxonomy.is_skill(s) {
            add(&format!("specializations[{i}]"), format!("unknown skill {s:?}"));
        } else if content.specializations[..i].contains(s) {
            add(&format!("specializations[{i}]"), format!("{s:?} is listed twice"));
        }
    }
    if content.stages.is_empty() || content.stages.len() > 6 {
        add("stages", "must name 1 to 6 career stages".to_owned());
    }
    for (i, s) in content.stages.iter().enumerate().take(6) {
        if stage(s).is_none() {
            add(&format!("stages[{i}]"), format!("unknown career stage {s:?}"));
        } else if content.stages[..i].contains(s) {
            add(&format!("stages[{i}]"), format!("{s} is listed twice"));
        }
    }
    if content.languages.is_empty() || content.languages.len() > 10 {
        add("languages", "must name 1 to 10 languages".to_owned());
    }
    for (i, l) in content.languages.iter().enumerate().take(10) {
        if !is_language(l) {
            add(&format!("languages[{i}]"), format!("{l:?} is not a BCP 47 language tag"));
        }
    }
    if !is_language(&content.content_language) {
        add("content_language", "must be a BCP 47 language tag".to_owned());
    }
    if content.capacity == 0 || content.capacity > MAX_CAPACITY {
        add("capacity", format!("must be 1 to {MAX_CAPACITY}"));
    }
    if modality(&content.style.modality).is_none() {
        add("teaching_style.modality", "must be visual, auditory, reading_writing or kinesthetic".to_owned());
    }
    for (field, v) in [
        ("teaching_style.pace", content.style.pace),
        ("teaching_style.structure", content.style.structure),
        ("teaching_style.feedback", content.style.feedback),
    ] {
        if !(-1.0..=1.0).contains(&v) {
            add(field, "must be -1 to 1".to_owned());
        }
    }
    if !(0.0..=2.0).contains(&content.model.temperature) {
        add("model.temperature", "must be 0 to 2".to_owned());
    }
    if let Err(e) = check_template(&content.model.system_prompt) {
        add("model.system_prompt_template", e.to_string());
    }
    out
}

/// Checks a system-prompt template: 1 to 8,000 characters, only [`PLACEHOLDERS`] between
/// `{{` and `}}`, `{{name}}` and `{{learner_name}}` present.
pub fn check_template(template: &str) -> Result<(), Invalid> {
    if template.trim().is_empty() || template.chars().count() > 8000 {
        return Err("must be 1 to 8000 characters".into());
    }
    let mut used = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err("a {{ is never closed".into());
        };
        let name = after[..close].trim();
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!("unknown placeholder {{{{{name}}}}}; use {}", PLACEHOLDERS.join(", ")).into());
        }
        used.push(name);
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        return Err("a }} has no {{".into());
    }
    for required in &PLACEHOLDERS[..2] {
        if !used.contains(required) {
            return Err(format!("must use {{{{{required}}}}}").into());
        }
    }
    Ok(())
}

/// The values a template is rendered with.
#[derive(Debug, Clone, Default)]
pub struct PromptValues<'a> {
    pub learner_name: &'a str,
    pub learner_goals: &'a str,
    pub learner_stage: &'a str,
}

/// Renders a checked template for `content`'s mentor and a learner.
pub fn render(content: &Content, values: &PromptValues<'_>) -> Result<String, Invalid> {
    let template = &content.model.system_prompt;
    check_template(template)?;
    let mut out = String::with_capacity(template.len() + 128);
    let mut rest = template.as_str();
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}").unwrap_or(after.len());
        out.push_str(match after[..close].trim() {
            "name" => &content.name,
            "era" => &content.era,
            "voice" => &content.voice,
            "learner_name" => values.learner_name,
            "learner_goals" => values.learner_goals,
            _ => values.learner_stage,
        });
        rest = after.get(close + 2..).unwrap_or("");
    }
    out.push_str(rest);
    Ok(out)
}

/// The text a mentor's persona is embedded from (the meaning criterion).
pub fn persona_text(content: &Content) -> String {
    format!(
        "{}. {} {} Works in {}; specializes in {}.",
        content.era,
        content.background,
        content.voice,
        content.fields.join(", ").replace('-', " "),
        content.specializations.join(", ").replace('-', " "),
    )
}

/// The scoring features of a valid version, its persona not yet embedded
/// ([`score::Mentor::with_embedding`]; seats are the caller's).
pub fn features(content: &Content) -> score::Mentor {
    let stages: Vec<Stage> = content.stages.iter().filter_map(|s| stage(s)).collect();
    score::Mentor::new(&score::Profile {
        name: &content.name,
        fields: &content.fields,
        specializations: &content.specializations,
        stages: &stages,
        languages: &content.languages,
        style: TeachingStyle {
            modality: modality(&content.style.modality).unwrap_or(Modality::ReadingWriting),
            pace: content.style.pace,
            structure: content.style.structure,
            feedback: content.style.feedback,
        },
        capacity: content.capacity,
        persona: &[],
    })
}

/// Whether `language` (a tag or a primary subtag) is one of `languages`, by primary subtag.
pub fn speaks(languages: &[String], language: &str) -> bool {
    let primary = |t: &str| t.split('-').next().unwrap_or(t).to_ascii_lowercase();
    let wanted = primary(language);
    languages.iter().any(|l| primary(l) == wanted)
}

/// Folds text for search: lowercase, accents of Latin letters dropped.
pub fn fold(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à'..='å' | 'ā' | 'ă' | 'ą' => 'a',
            'ç' | 'ć' | 'č' => 'c',
            'è'..='ë' | 'ē' | 'ę' | 'ě' => 'e',
            'ì'..='ï' | 'ī' => 'i',
            'ñ' | 'ń' | 'ň' => 'n',
            'ò'..='ö' | 'ø' | 'ō' | 'ő' => 'o',
            'ù'..='ü' | 'ū' | 'ů' | 'ű' => 'u',
            'ý' | 'ÿ' => 'y',
            'ś' | 'š' => 's',
            'ź' | 'ż' | 'ž' => 'z',
            'ł' => 'l',
            other => other,
        })
        .collect()
}

/// The folded text a query searches in.
pub fn search_text(content: &Content) -> String {
    fold(&format!(
        "{} {} {} {} {}",
        content.name,
        content.era,
        content.background,
        content.voice,
        content.specializations.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Everything;
    impl Taxonomy for Everything {
        fn is_track(&self, _: &str) -> bool {
            true
        }
        fn is_skill(&self, _: &str) -> bool {
            true
        }
    }

    fn sample() -> Content {
        demo().expect("demo").remove(0).content
    }

    #[test]
    fn ids_are_kebab_case() {
        for good in ["a", "dorothea-wilmarth", "r2-d2"] {
            assert!(is_mentor_id(good), "{good}");
        }
        for bad in ["", "-a", "a-", "a--b", "A", "a_b", "é", &"a".repeat(41)] {
            assert!(!is_mentor_id(bad), "{bad}");
        }
    }

    #[test]
    fn every_problem_is_listed_with_its_field() {
        let mut c = sample();
        c.name = " ".into();
        c.fields = vec![];
        c.stages = vec!["CAREER_STAGE_UNSPECIFIED".into()];
        c.languages = vec!["english".into()];
        c.capacity = 0;
        c.style.modality = "telepathic".into();
        c.style.pace = 2.0;
        c.model.temperature = -1.0;
        c.model.system_prompt = "Hello {{learner}}".into();
        let fields: Vec<String> = problems(&c, &Everything).into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "name",
                "fields",
                "stages[0]",
                "languages[0]",
                "capacity",
                "teaching_style.modality",
                "teaching_style.pace",
                "model.temperature",
                "model.system_prompt_template"
            ]
        );
        assert!(problems(&sample(), &Everything).is_empty());
    }

    #[test]
    fn templates_render_their_placeholders_and_refuse_others() {
        let mut c = sample();
        c.model.system_prompt =
            "I am {{name}} from {{ era }}; hello {{learner_name}} ({{learner_stage}}): {{learner_goals}}."
                .into();
        let values =
            PromptValues { learner_name: "Ann", learner_goals: "ship Rust", learner_stage: "students" };
        assert_eq!(
            render(&c, &values).expect("renders"),
            format!("I am {} from {}; hello Ann (students): ship Rust.", c.name, c.era)
        );
        for bad in [
            "{{name}}",
            "{{name}} {{learner_name",
            "{{name}} {{learner_name}} }}",
            "{{name}}{{learner_name}}{{x}}",
        ] {
            assert!(check_template(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn languages_and_search_fold() {
        assert!(speaks(&["pt-BR".into()], "pt"));
        assert!(speaks(&["pt".into()], "PT-pt"));
        assert!(!speaks(&["en".into()], "es"));
        assert_eq!(fold("Inês ŁÓDŹ"), "ines lodz");
        for tag in ["en", "pt-BR", "zh-Hant-TW"] {
            assert!(is_language(tag), "{tag}");
        }
        for tag in ["", "e", "EN", "english", "en-", "en-toolongtag"] {
            assert!(!is_language(tag), "{tag}");
        }
    }
}
