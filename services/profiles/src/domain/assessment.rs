//! The learning-style questionnaire (data in `data/assessment-v1.toml`) and its scoring.
//!
//! Scoring: each chosen option adds its weights. The four modality totals are normalised into
//! weights that add up to 1 (the dominant style is the largest; ties go to the earlier of
//! visual, auditory, reading/writing, kinesthetic). Pace, structure and feedback totals are
//! divided by the largest total the questionnaire allows on that axis, giving a score in -1..1;
//! beyond +-1/3 the preference is the named pole, else balanced/moderate.

use std::collections::HashMap;
use tt_common::error::Invalid;

use serde::{Deserialize, Serialize};
use tt_common::error::quote;

/// The questionnaire.
#[derive(Debug, Clone, Deserialize)]
pub struct Questionnaire {
    pub version: i32,
    pub title: String,
    pub questions: Vec<Question>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Question {
    pub id: String,
    pub text: String,
    pub options: Vec<Choice>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Choice {
    pub id: String,
    pub text: String,
    #[serde(default)]
    pub weights: Weights,
}

/// What one option contributes.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    pub visual: i32,
    pub auditory: i32,
    pub reading: i32,
    pub kinesthetic: i32,
    pub pace: i32,
    pub structure: i32,
    pub feedback: i32,
}

/// The four modalities, in tie-break order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Style {
    Visual,
    Auditory,
    ReadingWriting,
    Kinesthetic,
}

/// A three-way preference on one axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lean {
    /// Steady pace, autonomy, encouraging feedback.
    Low,
    Balanced,
    /// Intensive pace, structure, direct feedback.
    High,
}

/// A scored result (stored as JSON with the answers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub visual: f64,
    pub auditory: f64,
    pub reading_writing: f64,
    pub kinesthetic: f64,
    pub dominant: Style,
    pub pace: f64,
    pub structure: f64,
    pub feedback: f64,
    pub explanation: String,
}

impl Scores {
    pub fn pace_lean(&self) -> Lean {
        lean(self.pace)
    }
    pub fn structure_lean(&self) -> Lean {
        lean(self.structure)
    }
    pub fn feedback_lean(&self) -> Lean {
        lean(self.feedback)
    }
}

fn lean(score: f64) -> Lean {
    if score > 1.0 / 3.0 {
        Lean::High
    } else if score < -1.0 / 3.0 {
        Lean::Low
    } else {
        Lean::Balanced
    }
}

/// A problem with submitted answers: the field path and what is wrong.
pub type AnswerProblem = (String, String);

impl Questionnaire {
    /// The questionnaire compiled into the binary.
    pub fn builtin() -> Result<Self, Invalid> {
        Self::parse(include_str!("../../data/assessment-v1.toml"))
    }

    /// Parses and validates: unique question and option ids, at least 16 questions, every
    /// option weighing something.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let q: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        if q.questions.len() < 16 {
            return Err(format!("{} questions; at least 16 are needed", q.questions.len()).into());
        }
        let mut ids = std::collections::HashSet::new();
        for question in &q.questions {
            if !ids.insert(&question.id) || question.options.len() < 2 {
                return Err(format!("question {}: duplicate id or fewer than 2 options", question.id).into());
            }
            let mut options = std::collections::HashSet::new();
            for o in &question.options {
                let w = o.weights;
                let all_zero =
                    [w.visual, w.auditory, w.reading, w.kinesthetic, w.pace, w.structure, w.feedback]
                        .iter()
                        .all(|x| *x == 0);
                if !options.insert(&o.id) || all_zero {
                    return Err(
                        format!("question {} option {}: duplicate or weightless", question.id, o.id).into()
                    );
                }
            }
        }
        Ok(q)
    }

    /// Scores one answer per question (`answers`: question id to option id, in request order).
    /// Every problem is reported: missing, duplicate or unknown questions, unknown options.
    pub fn score(&self, answers: &[(String, String)]) -> Result<Scores, Vec<AnswerProblem>> {
        let mut problems = Vec::new();
        let mut chosen: HashMap<&str, &Choice> = HashMap::new();
        for (i, (question_id, option_id)) in answers.iter().enumerate() {
            let field = format!("answers[{i}]");
            match self.questions.iter().find(|q| q.id == *question_id) {
                None => problems
                    .push((format!("{field}.question_id"), format!("no question {}", quote(question_id)))),
                Some(q) => match q.options.iter().find(|o| o.id == *option_id) {
                    None => problems.push((
                        format!("{field}.option_id"),
                        format!("question {question_id} has no option {}", quote(option_id)),
                    )),
                    Some(o) => {
                        if chosen.insert(q.id.as_str(), o).is_some() {
                            problems.push((
                                format!("{field}.question_id"),
                                format!("{question_id} answered twice"),
                            ));
                        }
                    }
                },
            }
        }
        let missing: Vec<&str> =
            self.questions.iter().map(|q| q.id.as_str()).filter(|id| !chosen.contains_key(id)).collect();
        if !missing.is_empty() {
            problems.push(("answers".into(), format!("unanswered: {}", missing.join(", "))));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let sum = |f: fn(&Weights) -> i32| -> f64 { chosen.values().map(|o| f64::from(f(&o.weights))).sum() };
        let reach = |f: fn(&Weights) -> i32| -> f64 {
            self.questions
                .iter()
                .map(|q| q.options.iter().map(|o| f(&o.weights).abs()).max().unwrap_or(0))
                .map(f64::from)
                .sum()
        };
        let axis = |f: fn(&Weights) -> i32| -> f64 {
            let max = reach(f);
            if max == 0.0 { 0.0 } else { round3(sum(f) / max) }
        };
        let modal = [sum(|w| w.visual), sum(|w| w.auditory), sum(|w| w.reading), sum(|w| w.kinesthetic)];
        let total: f64 = modal.iter().sum();
        let shares = modal.map(|m| if total > 0.0 { round3(m / total) } else { 0.25 });
        let styles = [Style::Visual, Style::Auditory, Style::ReadingWriting, Style::Kinesthetic];
        let mut order: Vec<usize> = (0..4).collect();
        order.sort_by(|&a, &b| shares[b].total_cmp(&shares[a]).then(a.cmp(&b)));
        let mut scores = Scores {
            visual: shares[0],
            auditory: shares[1],
            reading_writing: shares[2],
            kinesthetic: shares[3],
            dominant: styles[order[0]],
            pace: axis(|w| w.pace),
            structure: axis(|w| w.structure),
            feedback: axis(|w| w.feedback),
            explanation: String::new(),
        };
        scores.explanation = explain(&scores, styles[order[1]], shares[order[0]], shares[order[1]]);
        Ok(scores)
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn style_words(s: Style) -> (&'static str, &'static str) {
    match s {
        Style::Visual => ("visual", "diagrams, maps and worked examples you can see"),
        Style::Auditory => ("auditory", "conversation, explaining ideas aloud and talks you can listen to"),
        Style::ReadingWriting => {
            ("reading/writing", "well-written guides, notes and summaries in your own words")
        }
        Style::Kinesthetic => ("hands-on", "trying things yourself: labs, exercises and real tasks"),
    }
}

fn explain(s: &Scores, second: Style, top: f64, next: f64) -> String {
    let (name, how) = style_words(s.dominant);
    let (second_name, _) = style_words(second);
    let pct = |x: f64| (x * 100.0).round();
    let mut text = format!("You learn best through {how}: your answers lean {name} ({}%)", pct(top));
    if top - next < 0.05 {
        text.push_str(&format!(", almost as much {second_name} ({}%), so mixing both will help", pct(next)));
    } else {
        text.push_str(&format!(", with {second_name} next ({}%)", pct(next)));
    }
    let pace = match s.pace_lean() {
        Lean::High => "an intensive pace",
        Lean::Balanced => "a moderate pace",
        Lean::Low => "a steady, unhurried pace",
    };
    let structure = match s.structure_lean() {
        Lean::High => "a clear step-by-step plan",
        Lean::Balanced => "a plan with room to explore",
        Lean::Low => "freedom to choose your own path",
    };
    let feedback = match s.feedback_lean() {
        Lean::High => "direct, candid feedback",
        Lean::Balanced => "balanced feedback",
        Lean::Low => "encouraging feedback",
    };
    text.push_str(&format!(". You prefer {pace}, {structure} and {feedback}."));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(q: &Questionnaire, pick: impl Fn(&Question) -> String) -> Vec<(String, String)> {
        q.questions.iter().map(|x| (x.id.clone(), pick(x))).collect()
    }

    /// The option of `q` weighing most on `f` (the highest value).
    fn best(q: &Question, f: fn(&Weights) -> i32) -> String {
        q.options.iter().max_by_key(|o| f(&o.weights)).map(|o| o.id.clone()).unwrap_or_default()
    }

    #[test]
    fn shipped_questionnaire_is_valid() {
        let q = Questionnaire::builtin().expect("valid");
        assert!(q.questions.len() >= 16);
        assert_eq!(q.version, 1);
    }

    #[test]
    fn a_kinesthetic_fast_structured_direct_learner() {
        let q = Questionnaire::builtin().expect("valid");
        let answers = all(&q, |x| {
            let k = best(x, |w| w.kinesthetic);
            if x.options.iter().any(|o| o.weights.kinesthetic > 0) && x.id.as_str() <= "q12" {
                k
            } else if x.id.as_str() <= "q15" {
                best(x, |w| w.pace)
            } else if x.id.as_str() <= "q18" {
                best(x, |w| w.structure)
            } else {
                best(x, |w| w.feedback)
            }
        });
        let s = q.score(&answers).expect("complete answers");
        assert_eq!(s.dominant, Style::Kinesthetic);
        assert!(s.kinesthetic > 0.5, "{s:?}");
        let sum = s.visual + s.auditory + s.reading_writing + s.kinesthetic;
        assert!((sum - 1.0).abs() < 0.01, "weights add up to 1: {sum}");
        assert_eq!(s.pace_lean(), Lean::High);
        assert_eq!(s.structure_lean(), Lean::High);
        assert_eq!(s.feedback_lean(), Lean::High);
        assert!(s.explanation.contains("hands-on"), "{}", s.explanation);
    }

    #[test]
    fn the_opposite_poles() {
        let q = Questionnaire::builtin().expect("valid");
        let answers = all(&q, |x| {
            let lowest = |f: fn(&Weights) -> i32| {
                x.options.iter().min_by_key(|o| f(&o.weights)).map(|o| o.id.clone()).unwrap_or_default()
            };
            match x.id.as_str() {
                id if id <= "q12" => best(x, |w| w.visual),
                id if id <= "q15" => lowest(|w| w.pace),
                id if id <= "q18" => lowest(|w| w.structure),
                _ => lowest(|w| w.feedback),
            }
        });
        let s = q.score(&answers).expect("complete answers");
        assert_eq!(s.dominant, Style::Visual);
        assert_eq!((s.pace_lean(), s.structure_lean(), s.feedback_lean()), (Lean::Low, Lean::Low, Lean::Low));
    }

    #[test]
    fn every_problem_is_reported() {
        let q = Questionnaire::builtin().expect("valid");
        let mut answers = all(&q, |x| x.options[0].id.clone());
        answers.truncate(q.questions.len() - 2);
        answers[0].1 = "z".into();
        answers.push(("q99".into(), "a".into()));
        answers.push((answers[1].0.clone(), "a".into()));
        let problems = q.score(&answers).expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert!(fields.contains(&"answers[0].option_id"), "{fields:?}");
        assert!(fields.iter().any(|f| f.ends_with(".question_id")), "{fields:?}");
        assert!(fields.contains(&"answers"), "missing questions: {fields:?}");
        assert_eq!(problems.len(), 4, "{problems:?}");
    }
}
