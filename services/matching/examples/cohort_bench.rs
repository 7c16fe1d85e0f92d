//! The cohort target's computation: 2,000 learners to 200 mentors with 2,400 seats, optimal and
//! greedy, on two score shapes: independent scores, and scores where every learner ranks the
//! same popular mentors first (the hard case: long chains of moves); then the whole computation
//! the service runs (`cohorts::compute`: every pair scored on the six criteria with 384-dimension
//! persona vectors, then both assignments) over learners and mentors made from the demo
//! catalog's tracks and skills. One core.
//! `cargo run --release -p tt-matching --example cohort_bench`

use std::time::Instant;

use tt_matching::{
    cohorts::{CohortLearner, CohortMentor, compute},
    domain::{
        catalog,
        cohort::{Cohort, Score, greedy, optimal},
        score::{self, Goal, LearnerStyle, Stage},
    },
};

/// xorshift: the same cohorts on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn cohort(popular: bool) -> Cohort {
    let (learners, mentors) = (2_000, 200);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let appeal: Vec<Score> = (0..mentors).map(|_| rng.below(500_000) as Score).collect();
    let scores = (0..learners * mentors)
        .map(|i| {
            let own = rng.below(if popular { 500_000 } else { 1_000_000 }) as Score;
            // One pair in twenty is not allowed (no shared language).
            (rng.below(20) != 0).then_some(if popular { appeal[i % mentors] + own } else { own })
        })
        .collect();
    Cohort::new(learners, vec![12; mentors], scores).expect("shape")
}

fn main() {
    scored();
    for (name, popular) in [("independent scores", false), ("popular mentors", true)] {
        let c = cohort(popular);
        let started = Instant::now();
        let best = optimal(&c);
        let took = started.elapsed();
        let started = Instant::now();
        let quick = greedy(&c);
        let greedy_took = started.elapsed();
        println!(
            "{name}: optimal {} seated, total {} in {:.0?}; greedy {} seated, total {} in {:.0?} ({:+.2} %)",
            best.seated,
            best.total,
            took,
            quick.seated,
            quick.total,
            greedy_took,
            (quick.total - best.total) as f64 * 100.0 / best.total as f64
        );
    }
}

/// A unit vector of 384 pseudo-random dimensions.
fn vector(rng: &mut Rng) -> Vec<f32> {
    let v: Vec<f32> = (0..384).map(|_| rng.below(2_001) as f32 / 1_000.0 - 1.0).collect();
    score::unit(&v)
}

/// 200 mentors (the 24 demo personas, varied) with 12 seats each, and 2,000 learners with
/// goals over the same tracks and skills.
fn population() -> (Vec<CohortLearner>, Vec<CohortMentor>) {
    let demo = catalog::demo().expect("demo mentors");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mentors: Vec<CohortMentor> = (0..200)
        .map(|i| {
            let features = catalog::features(&demo[i % demo.len()].content).with_persona(&vector(&mut rng));
            CohortMentor { id: format!("mentor-{i}"), features, taken: 0, free: 12 }
        })
        .collect();
    let stages = [
        Stage::Student,
        Stage::EarlyCareer,
        Stage::MidLevel,
        Stage::Senior,
        Stage::Leader,
        Stage::CareerChanger,
    ];
    let learners = (0..2_000)
        .map(|_| {
            let pick = &demo[rng.below(demo.len() as u64) as usize].content;
            let skills: Vec<String> = pick.specializations.iter().take(3).cloned().collect();
            let learner = score::Learner {
                fields: vec![pick.fields[0].clone()],
                goals: vec![Goal { field: pick.fields[0].clone(), skills: skills.clone(), priority: 1 }],
                skills: skills.iter().map(|s| (s.clone(), rng.below(5) as i32 + 1)).collect(),
                style: Some(LearnerStyle {
                    modalities: [0.4, 0.2, 0.2, 0.2],
                    pace: 0.1,
                    structure: 0.5,
                    feedback: -0.3,
                }),
                stage: Some(stages[rng.below(6) as usize]),
                languages: vec!["en".into()],
                goals_vector: score::Embedding::of(&vector(&mut rng)),
            };
            (learner, rng.below(120) as i64, Vec::new())
        })
        .collect();
    (learners, mentors)
}

fn scored() {
    let (learners, mentors) = population();
    let started = Instant::now();
    let (_raw, best, quick) = compute(&learners, &mentors, &score::Weights::default());
    println!(
        "scored (2,000 x 200, six criteria, 384-d vectors): optimal {} seated, greedy {} seated ({:+.2} %), all in {:.0?}",
        best.seated,
        quick.seated,
        (quick.total - best.total) as f64 * 100.0 / best.total.max(1) as f64,
        started.elapsed()
    );
}
