//! Compatibility: how well a mentor suits a learner, as a total and a breakdown per criterion,
//! each with a one-line reason the learner can read.
//!
//! Every criterion scores 0 to 1:
//! - **focus**: the mentor's fields and specializations against what the learner is heading for.
//!   Fields count against the fields of their active goals (weighted by priority) and their
//!   fields of work; specializations against their skill gaps: the skills their goals name that
//!   they have below level 3 or not at all, weighted by the goal's priority. 40 % fields, 60 %
//!   gaps (when the goals name no skills, fields alone).
//! - **style**: the mentor's teaching style against the learner's assessed learning style: the
//!   learner's weight for the mentor's modality (relative to their strongest), and closeness on
//!   pace, structure and feedback (1 minus half the distance on each -1..1 scale), averaged.
//!   Without an assessment: 0.5, said so.
//! - **stage**: 1 when the mentor serves the learner's career stage, 0.5 for a neighbouring
//!   stage, else 0.
//! - **language**: 1 when they share a language, else 0.
//! - **meaning**: the cosine similarity of the learner's goals and the mentor's persona as
//!   embedded (0 below, 1 at identical direction).
//! - **capacity**: the share of the mentor's seats still free.
//!
//! The total is the weighted mean (weights are matching's settings). A mentor the learner ended
//! or declined before is halved, and says why.

use std::sync::Arc;

/// The criteria, in the order breakdowns list them.
pub const CRITERIA: [Criterion; 6] = [
    Criterion::Focus,
    Criterion::Style,
    Criterion::Stage,
    Criterion::Language,
    Criterion::Meaning,
    Criterion::Capacity,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Criterion {
    Focus,
    Style,
    Stage,
    Language,
    Meaning,
    Capacity,
}

impl Criterion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Focus => "focus",
            Self::Style => "style",
            Self::Stage => "stage",
            Self::Language => "language",
            Self::Meaning => "meaning",
            Self::Capacity => "capacity",
        }
    }
}

/// How much each criterion counts (any non-negative numbers; they need not add up to 1).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Weights {
    pub focus: f64,
    pub style: f64,
    pub stage: f64,
    pub language: f64,
    pub meaning: f64,
    pub capacity: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self { focus: 0.35, style: 0.15, stage: 0.15, language: 0.10, meaning: 0.20, capacity: 0.05 }
    }
}

impl Weights {
    pub fn of(&self, c: Criterion) -> f64 {
        match c {
            Criterion::Focus => self.focus,
            Criterion::Style => self.style,
            Criterion::Stage => self.stage,
            Criterion::Language => self.language,
            Criterion::Meaning => self.meaning,
            Criterion::Capacity => self.capacity,
        }
    }
}

/// The four modalities, in the assessment's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modality {
    Visual,
    Auditory,
    ReadingWriting,
    Kinesthetic,
}

impl Modality {
    fn index(self) -> usize {
        self as usize
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Visual => "visual",
            Self::Auditory => "spoken",
            Self::ReadingWriting => "written",
            Self::Kinesthetic => "hands-on",
        }
    }
}

/// A learner's assessed style: modality weights (adding up to 1) and three -1..1 leanings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnerStyle {
    pub modalities: [f64; 4],
    pub pace: f64,
    pub structure: f64,
    pub feedback: f64,
}

/// A mentor's teaching style.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TeachingStyle {
    pub modality: Modality,
    pub pace: f64,
    pub structure: f64,
    pub feedback: f64,
}

/// Career stages, as profiles names them.
pub use tt_proto::profiles::v1::CareerStage as Stage;

/// Whether two stages are next to each other: working stages one apart in their natural order
/// (student, early career, mid-level, senior, leader); a career changer is next to every
/// working stage.
fn neighbours(a: Stage, b: Stage) -> bool {
    use Stage::*;
    match (a, b) {
        (Unspecified, _) | (_, Unspecified) => false,
        (CareerChanger, Student) | (Student, CareerChanger) => false,
        (CareerChanger, _) | (_, CareerChanger) => true,
        (a, b) => (a as i32 - b as i32).abs() == 1,
    }
}

/// The people at a stage, as reasons name them.
pub fn describe_stage(stage: Stage) -> &'static str {
    match stage {
        Stage::Unspecified => "learners",
        Stage::Student => "students",
        Stage::EarlyCareer => "early-career professionals",
        Stage::MidLevel => "mid-level professionals",
        Stage::Senior => "senior professionals",
        Stage::Leader => "leaders",
        Stage::CareerChanger => "career changers",
    }
}

/// An active goal, as far as matching uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    pub field: String,
    pub skills: Vec<String>,
    /// 1 (highest) to 5.
    pub priority: i32,
}

/// What matching knows of a learner.
#[derive(Debug, Clone, PartialEq)]
pub struct Learner {
    pub fields: Vec<String>,
    pub goals: Vec<Goal>,
    /// Skill id and level (1 to 5, verified when verified).
    pub skills: Vec<(String, i32)>,
    pub style: Option<LearnerStyle>,
    pub stage: Option<Stage>,
    pub languages: Vec<String>,
    /// The learner's goals embedded, quantized as scoring compares it (empty: no goals to
    /// embed).
    pub goals_vector: Embedding,
}

/// What matching knows of a mentor (one version), in the compact form ranking a large catalog
/// needs: taxonomy ids and language subtags as [`Sym`]s in inline arrays, stages as bits, the
/// persona as an [`Embedding`] of i8s (see [`Mentor::new`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Mentor {
    pub name: String,
    /// BCP 47 tags (for reasons).
    pub languages: Vec<String>,
    pub style: TeachingStyle,
    pub capacity: u32,
    pub active_mentees: u32,
    fields: Syms<3>,
    specializations: Syms<12>,
    /// Primary subtags, lowercased.
    subtags: Syms<10>,
    /// Bit `stage as i32` per stage served.
    stages: u8,
    persona: Embedding,
}

/// A mentor as described (within the published limits: at most 3 fields, 12 specializations
/// and 10 languages; more are not compared).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile<'a> {
    pub name: &'a str,
    pub fields: &'a [String],
    pub specializations: &'a [String],
    pub stages: &'a [Stage],
    pub languages: &'a [String],
    pub style: TeachingStyle,
    pub capacity: u32,
    /// The persona embedded (any length; kept at unit length, compactly).
    pub persona: &'a [f32],
}

impl Mentor {
    pub fn new(p: &Profile<'_>) -> Self {
        let subtags: Vec<String> = p.languages.iter().map(|l| primary(l)).collect();
        Self {
            name: p.name.to_owned(),
            languages: p.languages.to_vec(),
            style: p.style,
            capacity: p.capacity,
            active_mentees: 0,
            fields: Syms::of(p.fields.iter().map(String::as_str)),
            specializations: Syms::of(p.specializations.iter().map(String::as_str)),
            subtags: Syms::of(subtags.iter().map(String::as_str)),
            stages: p.stages.iter().fold(0, |bits, s| bits | stage_bit(*s)),
            persona: Embedding::of(p.persona),
        }
    }

    /// The same mentor with another persona vector.
    pub fn with_persona(self, persona: &[f32]) -> Self {
        self.with_embedding(Embedding::of(persona))
    }

    /// The same mentor with its persona as embedded and packed already.
    pub fn with_embedding(mut self, persona: Embedding) -> Self {
        self.persona = persona;
        self
    }

    /// The persona as embedded.
    pub fn persona(&self) -> &Embedding {
        &self.persona
    }

    fn serves(&self, stage: Stage) -> bool {
        self.stages & stage_bit(stage) != 0
    }
}

/// Every stage, in profiles' order.
const STAGES: [Stage; 6] =
    [Stage::Student, Stage::EarlyCareer, Stage::MidLevel, Stage::Senior, Stage::Leader, Stage::CareerChanger];

fn stage_bit(stage: Stage) -> u8 {
    u32::try_from(stage as i32).ok().and_then(|n| 1_u8.checked_shl(n)).unwrap_or(0)
}

/// A taxonomy id or language subtag as scoring compares it: a 64-bit hash, so learners and
/// mentors need no shared table (two of the platform's few thousand ids collide with odds of
/// about one in 10^13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sym(u64);

pub fn sym(text: &str) -> Sym {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    Sym(h.finish())
}

/// Up to `N` distinct symbols, inline.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Syms<const N: usize> {
    items: [Sym; N],
    len: u8,
}

impl<const N: usize> Syms<N> {
    fn of<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = Self { items: [Sym::default(); N], len: 0 };
        for x in values.into_iter().map(sym) {
            let n = usize::from(out.len);
            if n < N && !out.contains(x) {
                out.items[n] = x;
                out.len += 1;
            }
        }
        out
    }

    fn contains(&self, x: Sym) -> bool {
        self.items[..usize::from(self.len)].contains(&x)
    }
}

/// A vector at unit length, stored compactly: i8 components (the largest is 127) and the one
/// scale that gives them unit length. The cosine of two is their i8 dot product, scaled: within about 10^-3 of
/// the f32 cosine, at a quarter of the memory and of the bandwidth a scan of the catalog reads.
/// [`Embedding::pack`] keeps many in one block, in order, so a scan reads memory sequentially.
#[derive(Clone, Default)]
pub struct Embedding {
    block: Arc<[i8]>,
    at: usize,
    len: usize,
    scale: f32,
}

impl std::fmt::Debug for Embedding {
    // The components, not the whole block the embedding shares.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedding").field("q", &self.q()).field("scale", &self.scale).finish()
    }
}

impl PartialEq for Embedding {
    fn eq(&self, other: &Self) -> bool {
        self.scale == other.scale && self.q() == other.q()
    }
}

/// Where a persona's [`Embedding`] comes from when a catalog is packed: a vector the embedder
/// made (or the store kept), or an embedding already packed, copied as it is.
#[derive(Debug, Clone)]
pub enum Persona {
    Vector(Vec<f32>),
    Packed(Embedding),
}

impl Default for Persona {
    fn default() -> Self {
        Self::Vector(Vec::new())
    }
}

impl Embedding {
    /// `v` at unit length, quantized (empty stays empty; zeros stay zeros).
    pub fn of(v: &[f32]) -> Self {
        let mut block = Vec::with_capacity(v.len());
        let scale = quantize(v, &mut block);
        Self { len: block.len(), block: block.into(), at: 0, scale }
    }

    /// Each of `personas` as [`Embedding::of`] makes it (or as packed already), all in one
    /// block, in order.
    pub fn pack(personas: &[Persona]) -> Vec<Self> {
        let size = |p: &Persona| match p {
            Persona::Vector(v) => v.len(),
            Persona::Packed(e) => e.len,
        };
        let mut block = Vec::with_capacity(personas.iter().map(size).sum());
        let mut scales = Vec::with_capacity(personas.len());
        for p in personas {
            let start = block.len();
            let scale = match p {
                Persona::Vector(v) => quantize(v, &mut block),
                Persona::Packed(e) => {
                    block.extend_from_slice(e.q());
                    e.scale
                }
            };
            scales.push((block.len() - start, scale));
        }
        let block: Arc<[i8]> = block.into();
        let mut at = 0;
        scales
            .into_iter()
            .map(|(len, scale)| {
                let e = Self { block: block.clone(), at, len, scale };
                at += len;
                e
            })
            .collect()
    }

    fn q(&self) -> &[i8] {
        &self.block[self.at..self.at + self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The cosine of the two vectors (0 when their lengths differ: another embedder's).
    pub fn cosine(&self, other: &Self) -> f32 {
        if self.len != other.len {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let dot = dot(self.q(), other.q()) as f32;
        dot * self.scale * other.scale
    }
}

/// The dot product of two equally long i8 vectors: at most 127 * 127 per component, exact in
/// i32 up to 133,000 dimensions. In blocks of 16 lanes, which the compiler turns into whole
/// vector registers (a plain fold of the zip takes 4 components per step).
fn dot(a: &[i8], b: &[i8]) -> i32 {
    const LANES: usize = 16;
    let product = |(x, y): (&i8, &i8)| i32::from(*x) * i32::from(*y);
    let ((xs, x_tail), (ys, y_tail)) = (a.as_chunks::<LANES>(), b.as_chunks::<LANES>());
    let mut sums = [0_i32; LANES];
    for (x, y) in xs.iter().zip(ys) {
        for (sum, p) in sums.iter_mut().zip(x.iter().zip(y).map(product)) {
            *sum += p;
        }
    }
    sums.iter().sum::<i32>() + x_tail.iter().zip(y_tail).map(product).sum::<i32>()
}

/// Appends `v` at unit length, quantized, to `block`; the scale that gives the quantized vector
/// unit length (a vector's cosine with itself stays 1).
fn quantize(v: &[f32], block: &mut Vec<i8>) -> f32 {
    let u = unit(v);
    let max = u.iter().fold(0.0_f32, |m, x| m.max(x.abs()));
    let step = if max > 0.0 && max.is_finite() { max / 127.0 } else { 0.0 };
    let start = block.len();
    // |x / step| <= 127 by construction.
    #[allow(clippy::cast_possible_truncation)]
    block
        .extend(u.iter().map(|x| if step > 0.0 { (x / step).round().clamp(-127.0, 127.0) as i8 } else { 0 }));
    let norm = block[start..].iter().map(|q| f32::from(*q) * f32::from(*q)).sum::<f32>().sqrt();
    if norm > 0.0 { norm.recip() } else { 0.0 }
}

/// One criterion's score and reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub criterion: Criterion,
    pub score: f64,
    pub reason: String,
}

/// A mentor's compatibility with a learner.
#[derive(Debug, Clone, PartialEq)]
pub struct Compatibility {
    pub total: f64,
    pub parts: Vec<Part>,
    /// Set when the learner ended or declined this mentor before: why it was ranked down.
    pub demoted: Option<String>,
}

/// Below this level a skill a goal names is a gap.
const GAP_BELOW: i32 = 3;
/// What a mentor the learner ended or declined keeps of its total.
const DEMOTED: f64 = 0.5;

/// A learner made ready to be compared with many mentors: what every comparison needs is
/// computed once (weighted fields, skill gaps, the strongest modality, language subtags, the
/// goals embedded compactly).
#[derive(Debug, Clone)]
pub struct Prepared<'a> {
    learner: &'a Learner,
    /// Fields of the active goals (by priority) and of work (as one priority-3 goal).
    fields: Vec<(Sym, &'a str, f64)>,
    fields_total: f64,
    /// Skills the goals name that the learner has below [`GAP_BELOW`], with the highest
    /// priority weight of a goal naming them.
    gaps: Vec<(Sym, &'a str, f64)>,
    gaps_total: f64,
    strongest: f64,
    /// The primary subtags of the learner's languages, lowercased.
    languages: Vec<Sym>,
}

/// Prepares `learner` for [`score`] and [`explain`].
pub fn prepare(learner: &Learner) -> Prepared<'_> {
    let mut fields: Vec<(Sym, &str, f64)> = learner
        .goals
        .iter()
        .map(|g| (sym(&g.field), g.field.as_str(), priority_weight(g.priority)))
        .collect();
    fields.extend(learner.fields.iter().map(|f| (sym(f), f.as_str(), priority_weight(3))));
    fields.retain(|(_, f, _)| !f.is_empty());
    let level = |skill: &str| learner.skills.iter().find(|(s, _)| s == skill).map_or(0, |(_, l)| *l);
    let mut gaps: Vec<(Sym, &str, f64)> = Vec::new();
    for goal in &learner.goals {
        for skill in goal.skills.iter().filter(|s| level(s) < GAP_BELOW) {
            let w = priority_weight(goal.priority);
            match gaps.iter_mut().find(|(_, s, _)| s == skill) {
                Some(entry) => entry.2 = entry.2.max(w),
                None => gaps.push((sym(skill), skill.as_str(), w)),
            }
        }
    }
    Prepared {
        learner,
        fields_total: fields.iter().map(|(_, _, w)| w).sum(),
        fields,
        gaps_total: gaps.iter().map(|(_, _, w)| w).sum(),
        gaps,
        strongest: learner.style.map_or(0.0, |l| l.modalities.iter().copied().fold(0.0_f64, f64::max)),
        languages: learner.languages.iter().map(|l| sym(&primary(l))).collect(),
    }
}

/// `v` scaled to unit length (empty stays empty; all zeros stay zeros).
pub fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 { v.iter().map(|x| x / norm).collect() } else { v.to_vec() }
}

fn primary(tag: &str) -> String {
    tag.split('-').next().unwrap_or(tag).to_ascii_lowercase()
}

/// How `mentor` suits `learner` under `weights`; `history`: why the learner ended or declined
/// this mentor before, if they did. Its seats taken are `mentor.active_mentees`.
pub fn compatibility(
    learner: &Learner,
    mentor: &Mentor,
    weights: &Weights,
    history: Option<&str>,
) -> Compatibility {
    explain(&prepare(learner), mentor, mentor.active_mentees, weights, history)
}

/// [`compatibility`] of a prepared learner with a mentor of which `taken` seats are taken, with
/// every reason. The persona vector must have unit length (see [`unit`]).
pub fn explain(
    p: &Prepared<'_>,
    mentor: &Mentor,
    taken: u32,
    weights: &Weights,
    history: Option<&str>,
) -> Compatibility {
    let parts = parts(p, mentor, taken, true);
    let demoted =
        history.map(|why| format!("ranked down: you ended or declined {} before ({why})", mentor.name));
    Compatibility { total: weighted(&parts, weights, demoted.is_some()), parts: Vec::from(parts), demoted }
}

/// The total alone, without building any reason: what ranking many mentors needs.
pub fn score(p: &Prepared<'_>, mentor: &Mentor, taken: u32, weights: &Weights, demoted: bool) -> f64 {
    weighted(&parts(p, mentor, taken, false), weights, demoted)
}

fn parts(p: &Prepared<'_>, mentor: &Mentor, taken: u32, explain: bool) -> [Part; 6] {
    [
        focus(p, mentor, explain),
        style(p, mentor, explain),
        stage(p.learner, mentor, explain),
        language(p, mentor, explain),
        meaning(p, mentor, explain),
        capacity(mentor, taken, explain),
    ]
}

fn weighted(parts: &[Part], weights: &Weights, demoted: bool) -> f64 {
    let sum: f64 = CRITERIA.iter().map(|c| weights.of(*c)).sum();
    let total = if sum > 0.0 {
        parts.iter().map(|p| weights.of(p.criterion) * p.score).sum::<f64>() / sum
    } else {
        0.0
    };
    if demoted { total * DEMOTED } else { total }
}

fn part(criterion: Criterion, score: f64, explain: bool, reason: impl FnOnce() -> String) -> Part {
    Part { criterion, score: score.clamp(0.0, 1.0), reason: if explain { reason() } else { String::new() } }
}

/// Goal priority 1 counts 5, priority 5 counts 1.
fn priority_weight(priority: i32) -> f64 {
    f64::from(6 - priority.clamp(1, 5))
}

fn focus(p: &Prepared<'_>, mentor: &Mentor, explain: bool) -> Part {
    let fields = if p.fields_total > 0.0 {
        p.fields.iter().filter(|(f, _, _)| mentor.fields.contains(*f)).map(|(_, _, w)| w).sum::<f64>()
            / p.fields_total
    } else {
        0.0
    };
    let covered = || p.gaps.iter().filter(|(s, _, _)| mentor.specializations.contains(*s));
    if p.gaps_total > 0.0 {
        let gap_score = covered().map(|(_, _, w)| w).sum::<f64>() / p.gaps_total;
        part(Criterion::Focus, 0.4 * fields + 0.6 * gap_score, explain, || {
            let covered: Vec<&str> = covered().map(|(_, s, _)| *s).collect();
            if covered.is_empty() {
                format!("covers none of the {} skills your goals need", p.gaps.len())
            } else {
                format!(
                    "covers {} of the {} skills your goals need ({})",
                    covered.len(),
                    p.gaps.len(),
                    covered.join(", ")
                )
            }
        })
    } else {
        part(Criterion::Focus, fields, explain, || {
            match p.fields.iter().find(|(f, _, _)| mentor.fields.contains(*f)) {
                Some((_, f, _)) => format!("works in {f}, where you are heading"),
                None => "works outside the fields you are heading for".to_owned(),
            }
        })
    }
}

fn style(p: &Prepared<'_>, mentor: &Mentor, explain: bool) -> Part {
    let Some(l) = &p.learner.style else {
        return part(Criterion::Style, 0.5, explain, || {
            "take the learning-style assessment to compare styles".to_owned()
        });
    };
    let m = &mentor.style;
    let modality = if p.strongest > 0.0 { l.modalities[m.modality.index()] / p.strongest } else { 0.5 };
    let close = |a: f64, b: f64| 1.0 - (a.clamp(-1.0, 1.0) - b.clamp(-1.0, 1.0)).abs() / 2.0;
    let pace = close(l.pace, m.pace);
    let structure = close(l.structure, m.structure);
    let feedback = close(l.feedback, m.feedback);
    part(Criterion::Style, (modality + pace + structure + feedback) / 4.0, explain, || {
        let mut notes = vec![format!("teaches in a {} way", m.modality.describe())];
        let worst = [(pace, "pace"), (structure, "structure"), (feedback, "feedback")]
            .into_iter()
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .filter(|(v, _)| *v < 0.5);
        match worst {
            Some((_, what)) => notes.push(format!("differs from you most on {what}")),
            None => notes.push("close to you on pace, structure and feedback".to_owned()),
        }
        notes.join("; ")
    })
}

fn stage(learner: &Learner, mentor: &Mentor, explain: bool) -> Part {
    let Some(s) = learner.stage else {
        return part(Criterion::Stage, 0.5, explain, || "your career stage is not known yet".to_owned());
    };
    if mentor.serves(s) {
        part(Criterion::Stage, 1.0, explain, || format!("mentors {}, like you", describe_stage(s)))
    } else if STAGES.iter().any(|m| mentor.serves(*m) && neighbours(*m, s)) {
        part(Criterion::Stage, 0.5, explain, || {
            format!("mentors stages next to yours ({})", describe_stage(s))
        })
    } else {
        part(Criterion::Stage, 0.0, explain, || format!("does not usually mentor {}", describe_stage(s)))
    }
}

/// Whether the learner named no language or shares one with `mentor`.
pub fn may_talk(p: &Prepared<'_>, mentor: &Mentor) -> bool {
    p.languages.is_empty() || shares_language(p, mentor)
}

fn shares_language(p: &Prepared<'_>, mentor: &Mentor) -> bool {
    p.languages.iter().any(|l| mentor.subtags.contains(*l))
}

fn language(p: &Prepared<'_>, mentor: &Mentor, explain: bool) -> Part {
    if p.languages.is_empty() {
        part(Criterion::Language, 0.5, explain, || "add the languages you speak to compare".to_owned())
    } else if shares_language(p, mentor) {
        part(Criterion::Language, 1.0, explain, || {
            let shared: Vec<&str> = mentor
                .languages
                .iter()
                .filter(|m| p.languages.contains(&sym(&primary(m))))
                .map(String::as_str)
                .collect();
            format!("speaks {}", shared.join(", "))
        })
    } else {
        part(Criterion::Language, 0.0, explain, || "shares none of your languages".to_owned())
    }
}

fn meaning(p: &Prepared<'_>, mentor: &Mentor, explain: bool) -> Part {
    if p.learner.goals_vector.is_empty() {
        return part(Criterion::Meaning, 0.0, explain, || {
            "add a goal to compare it with the mentor's story".to_owned()
        });
    }
    // Vectors of another embedder (a model change not re-embedded yet) are not compared.
    let similarity = f64::from(p.learner.goals_vector.cosine(&mentor.persona)).max(0.0);
    part(Criterion::Meaning, similarity, explain, || {
        match similarity {
            s if s >= 0.5 => "their story is close to your goals",
            s if s >= 0.2 => "their story touches on your goals",
            _ => "their story is far from your goals",
        }
        .to_owned()
    })
}

fn capacity(mentor: &Mentor, taken: u32, explain: bool) -> Part {
    let free = mentor.capacity.saturating_sub(taken);
    let score = if mentor.capacity == 0 { 0.0 } else { f64::from(free) / f64::from(mentor.capacity) };
    part(Criterion::Capacity, score, explain, || match free {
        0 => "has no free seat now".to_owned(),
        1 => "has one free seat".to_owned(),
        n => format!("has {n} free seats"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learner() -> Learner {
        Learner {
            fields: vec!["software".into()],
            goals: vec![Goal {
                field: "security-defender".into(),
                skills: vec!["threat-hunting".into(), "siem".into(), "python".into()],
                priority: 1,
            }],
            skills: vec![("python".into(), 4), ("siem".into(), 1)],
            style: Some(LearnerStyle {
                modalities: [0.1, 0.1, 0.2, 0.6],
                pace: 0.5,
                structure: 0.8,
                feedback: 0.9,
            }),
            stage: Some(Stage::CareerChanger),
            languages: vec!["en".into(), "pt-BR".into()],
            goals_vector: Embedding::of(&[1.0, 0.0, 0.0]),
        }
    }

    /// Inês, as the tests change her.
    struct Spec {
        fields: Vec<String>,
        specializations: Vec<String>,
        stages: Vec<Stage>,
        languages: Vec<String>,
        style: TeachingStyle,
        persona: Vec<f32>,
    }

    fn spec() -> Spec {
        Spec {
            fields: vec!["security-defender".into()],
            specializations: vec!["threat-hunting".into(), "siem".into(), "incident-response".into()],
            stages: vec![Stage::CareerChanger, Stage::MidLevel],
            languages: vec!["pt".into(), "en".into()],
            style: TeachingStyle {
                modality: Modality::Kinesthetic,
                pace: 0.5,
                structure: 0.8,
                feedback: 0.9,
            },
            persona: vec![1.0, 0.0, 0.0],
        }
    }

    fn build(s: &Spec) -> Mentor {
        let mut m = Mentor::new(&Profile {
            name: "Inês",
            fields: &s.fields,
            specializations: &s.specializations,
            stages: &s.stages,
            languages: &s.languages,
            style: s.style,
            capacity: 10,
            persona: &s.persona,
        });
        m.active_mentees = 5;
        m
    }

    fn mentor() -> Mentor {
        build(&spec())
    }

    fn score_of(c: &Compatibility, criterion: Criterion) -> f64 {
        c.parts.iter().find(|p| p.criterion == criterion).map_or(-1.0, |p| p.score)
    }

    #[test]
    fn a_mentor_that_fits_in_every_way_scores_high_and_says_why() {
        let c = compatibility(&learner(), &mentor(), &Weights::default(), None);
        assert_eq!(c.parts.iter().map(|p| p.criterion).collect::<Vec<_>>(), CRITERIA.to_vec());
        // Fields: the goal (weight 5) matches, the field of work (3) does not; both gaps covered.
        assert!((score_of(&c, Criterion::Focus) - (0.4 * 5.0 / 8.0 + 0.6)).abs() < 1e-9);
        assert!(c.parts[0].reason.contains("covers 2 of the 2 skills"), "{}", c.parts[0].reason);
        assert_eq!(score_of(&c, Criterion::Style), 1.0);
        assert_eq!(score_of(&c, Criterion::Stage), 1.0);
        assert_eq!(score_of(&c, Criterion::Language), 1.0, "pt-BR and pt share a language");
        assert!((score_of(&c, Criterion::Meaning) - 1.0).abs() < 1e-6);
        assert_eq!(score_of(&c, Criterion::Capacity), 0.5);
        assert!(c.total > 0.8 && c.total <= 1.0, "{}", c.total);
        assert!(c.parts.iter().all(|p| !p.reason.is_empty()));
    }

    #[test]
    fn each_criterion_falls_with_its_own_mismatch() {
        let weights = Weights::default();
        let base = compatibility(&learner(), &mentor(), &weights, None);
        let mut other = build(&Spec {
            fields: vec!["design".into()],
            specializations: vec!["figma".into()],
            stages: vec![Stage::Student],
            languages: vec!["ja".into()],
            style: TeachingStyle {
                modality: Modality::Auditory,
                pace: -1.0,
                structure: -1.0,
                feedback: -1.0,
            },
            persona: vec![0.0, 1.0, 0.0],
        });
        other.active_mentees = 10;
        let worse = compatibility(&learner(), &other, &weights, None);
        for criterion in CRITERIA {
            assert!(score_of(&worse, criterion) < score_of(&base, criterion), "{criterion:?}");
        }
        assert_eq!(score_of(&worse, Criterion::Stage), 0.0, "a career changer is not next to a student");
        assert!(worse.parts.iter().any(|p| p.reason == "has no free seat now"));
        assert!(worse.parts.iter().any(|p| p.reason.contains("differs from you most")));
    }

    #[test]
    fn weights_change_the_total_and_history_ranks_down() {
        let (l, m) = (learner(), mentor());
        let only_capacity =
            Weights { focus: 0.0, style: 0.0, stage: 0.0, language: 0.0, meaning: 0.0, capacity: 1.0 };
        assert_eq!(compatibility(&l, &m, &only_capacity, None).total, 0.5);
        let nothing = Weights { capacity: 0.0, ..only_capacity };
        assert_eq!(compatibility(&l, &m, &nothing, None).total, 0.0);
        let fresh = compatibility(&l, &m, &Weights::default(), None);
        let ended = compatibility(&l, &m, &Weights::default(), Some("we did not click"));
        assert!((ended.total - fresh.total * 0.5).abs() < 1e-12);
        assert!(ended.demoted.as_deref().is_some_and(|d| d.contains("we did not click")));
    }

    #[test]
    fn the_bare_score_is_the_explained_total_and_compact_vectors_keep_the_cosine() {
        let l = learner();
        let m = mentor().with_persona(&[0.3, 0.9, 0.1]);
        let p = prepare(&l);
        for demoted in [None, Some("no")] {
            let explained = explain(&p, &m, 5, &Weights::default(), demoted);
            assert_eq!(score(&p, &m, 5, &Weights::default(), demoted.is_some()), explained.total);
        }
        // i8 components: the cosine within 10^-2 of f32's on 384 dimensions of any spread.
        for (spread, n) in [(1.0_f32, 19), (0.05, 384), (40.0, 384)] {
            let (a, b): (Vec<f32>, Vec<f32>) = (0..n)
                .map(|i| {
                    let x = i as f32;
                    (((x * 0.37).sin() - 0.2) * spread, ((x * x * 0.01).cos() + 0.1) * spread)
                })
                .unzip();
            let compact = Embedding::of(&a).cosine(&Embedding::of(&b));
            assert!((compact - tt_ai::cosine(&a, &b)).abs() < 1e-2, "{compact} vs {}", tt_ai::cosine(&a, &b));
        }
        assert!((Embedding::of(&[3.0, -4.0]).cosine(&Embedding::of(&[6.0, -8.0])) - 1.0).abs() < 1e-6);
        assert!((Embedding::of(&[3.0, -4.0]).cosine(&Embedding::of(&[-3.0, 4.0])) + 1.0).abs() < 1e-6);
        assert_eq!(
            Embedding::of(&[1.0, 0.0]).cosine(&Embedding::of(&[1.0, 0.0, 0.0])),
            0.0,
            "another length"
        );
        assert_eq!(Embedding::of(&[0.0, 0.0]).cosine(&Embedding::of(&[1.0, 0.0])), 0.0);
        // The blocked dot product is the plain one, whatever the length's remainder.
        for n in [0_usize, 1, 15, 16, 17, 384, 389] {
            let a: Vec<i8> = (0..n).map(|i| ((i * 37 % 255) as i32 - 127) as i8).collect();
            let b: Vec<i8> = (0..n).map(|i| ((i * 91 % 255) as i32 - 127) as i8).collect();
            let plain: i32 = a.iter().zip(&b).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
            assert_eq!(dot(&a, &b), plain, "{n} components");
        }
        // Packing quantizes vectors as `of` does and copies packed embeddings as they are (a
        // reload reuses the catalog's in memory).
        let (a, b, c) = (vec![0.3_f32, -0.9, 0.2], vec![5.0_f32, 1.0, -2.0], vec![0.0_f32, 7.0]);
        let packed = Embedding::pack(&[
            Persona::Vector(a.clone()),
            Persona::Packed(Embedding::of(&b)),
            Persona::default(),
            Persona::Vector(c.clone()),
        ]);
        assert_eq!(packed, [Embedding::of(&a), Embedding::of(&b), Embedding::default(), Embedding::of(&c)]);
        let again = Embedding::pack(&packed.iter().cloned().map(Persona::Packed).collect::<Vec<_>>());
        assert_eq!(again, packed);
        assert!(may_talk(&p, &m));
        let japanese = build(&Spec { languages: vec!["ja".into()], ..spec() });
        assert!(!may_talk(&p, &japanese));
        let brazilian = build(&Spec { languages: vec!["PT-br".into()], ..spec() });
        assert!(may_talk(&p, &brazilian), "subtags compare without case");
    }

    #[test]
    fn what_is_not_known_yet_is_neutral_and_said() {
        let mut l = learner();
        l.style = None;
        l.stage = None;
        l.goals.clear();
        l.goals_vector = Embedding::default();
        l.languages.clear();
        let c = compatibility(&l, &mentor(), &Weights::default(), None);
        assert_eq!(score_of(&c, Criterion::Style), 0.5);
        assert_eq!(score_of(&c, Criterion::Stage), 0.5);
        assert_eq!(score_of(&c, Criterion::Language), 0.5, "no language named: none is missed");
        assert!(c.parts[3].reason.contains("add the languages"), "{}", c.parts[3].reason);
        assert_eq!(score_of(&c, Criterion::Meaning), 0.0);
        assert!(
            c.parts[0].reason.contains("outside the fields"),
            "only software, and the mentor is not: {}",
            c.parts[0].reason
        );
        assert!(c.parts[1].reason.contains("assessment"));
    }
}
