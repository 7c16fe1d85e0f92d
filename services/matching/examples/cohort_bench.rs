//! The cohort target's computation: 2,000 learners to 200 mentors with 2,400 seats, optimal and
//! greedy, on two score shapes: independent scores, and scores where every learner ranks the
//! same popular mentors first (the hard case: long chains of moves). One core.
//! `cargo run --release -p tt-matching --example cohort_bench`

use std::time::Instant;

use tt_matching::domain::cohort::{Cohort, Score, greedy, optimal};

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
