//! Cohort assignment: a cohort of learners to mentors with seats.
//!
//! **What is optimal.** As many learners as the seats and their eligible mentors allow get a
//! mentor, and among the assignments that seat that many, the total compatibility is the
//! largest. A learner gets one mentor at most; a mentor takes at most its free seats; a pair
//! scored `None` (no shared language, a mentor the learner ended with) is never made.
//!
//! **How.** A min-cost flow solved as a sequence of shortest augmenting paths, the Hungarian
//! method generalised to mentors with several seats: learners are added one at a time, and
//! each addition finds the cheapest way to seat the new learner, possibly moving learners
//! already seated to other mentors, with Dijkstra over the mentors on reduced costs (dual
//! potentials per learner and per mentor keep them non-negative). A cost is the best possible
//! score plus one, minus the pair's score; "no seat" is a virtual mentor with room for everyone
//! whose cost is above any sum of real costs, so seating a learner always wins over not. After
//! each addition the assignment is optimal for the learners added so far, so it is optimal for
//! the cohort at the end (checked against an exhaustive search in the tests). The path search
//! stops at the first mentor with a free seat, so while seats are plentiful an addition costs
//! about one pass over the mentors; at worst it is O(learners x mentors), and the whole run
//! O(learners^2 x mentors). Ties go to the lower index, so the same input gives the same answer.
//!
//! **Priority.** [`prioritised`] raises a learner's scores by how long they have waited for a
//! mentor (5 % per full week, at most 60 % after 12 weeks), so in a contest for a seat or a
//! preferred mentor the optimum leans towards those who waited longest.
//!
//! [`greedy`] (best pair first) is kept for comparison: the result reports both totals.

/// A pair's compatibility in millionths (0 to 1,000,000), after the priority weight.
pub type Score = i64;

/// Extra weight per full week waited, in percent.
pub const PRIORITY_PER_WEEK: i64 = 5;
/// Weeks of waiting that count at most.
pub const PRIORITY_MAX_WEEKS: i64 = 12;

/// `score` raised for a learner who has waited `days` for a mentor.
pub fn prioritised(score: Score, days: i64) -> Score {
    let weeks = (days / 7).clamp(0, PRIORITY_MAX_WEEKS);
    score + score * weeks * PRIORITY_PER_WEEK / 100
}

/// What to assign: `seats[m]` free seats of mentor `m`, and each learner's score with each
/// mentor, row by row (`scores[l * mentors + m]`; `None`: never pair them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cohort {
    pub learners: usize,
    pub seats: Vec<u32>,
    pub scores: Vec<Option<Score>>,
}

/// An assignment and what it is worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The mentor of each learner; `None`: no seat for them (or no mentor they may have).
    pub mentor_of: Vec<Option<usize>>,
    /// The sum of the seated pairs' scores.
    pub total: Score,
    pub seated: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{learners} learners and {mentors} mentors need {expected} scores, not {got}")]
pub struct ShapeError {
    learners: usize,
    mentors: usize,
    expected: usize,
    got: usize,
}

impl Cohort {
    pub fn new(learners: usize, seats: Vec<u32>, scores: Vec<Option<Score>>) -> Result<Self, ShapeError> {
        let expected = learners.saturating_mul(seats.len());
        if scores.len() != expected {
            return Err(ShapeError { learners, mentors: seats.len(), expected, got: scores.len() });
        }
        Ok(Self { learners, seats, scores })
    }

    pub fn mentors(&self) -> usize {
        self.seats.len()
    }

    fn score(&self, learner: usize, mentor: usize) -> Option<Score> {
        self.scores[learner * self.mentors() + mentor]
    }

    fn assignment(&self, mentor_of: Vec<Option<usize>>) -> Assignment {
        let seated = mentor_of.iter().flatten().count();
        let total = mentor_of.iter().enumerate().filter_map(|(l, m)| m.and_then(|m| self.score(l, m))).sum();
        Assignment { mentor_of, total, seated }
    }
}

/// The optimal assignment (see the module's documentation).
pub fn optimal(cohort: &Cohort) -> Assignment {
    Solver::new(cohort).solve()
}

/// Best pair first: every allowed pair by score (ties by learner, then mentor), taken while
/// the learner is free and the mentor has a seat.
pub fn greedy(cohort: &Cohort) -> Assignment {
    let m = cohort.mentors();
    let mut pairs: Vec<(Score, usize, usize)> = (0..cohort.learners)
        .flat_map(|l| (0..m).filter_map(move |j| cohort.score(l, j).map(|s| (s, l, j))))
        .collect();
    pairs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut free = cohort.seats.clone();
    let mut mentor_of = vec![None; cohort.learners];
    for (_, l, j) in pairs {
        if mentor_of[l].is_none() && free[j] > 0 {
            mentor_of[l] = Some(j);
            free[j] -= 1;
        }
    }
    cohort.assignment(mentor_of)
}

/// The shortest-augmenting-path solver's state. Mentor `m` (one past the real ones) is "no
/// seat".
struct Solver<'a> {
    cohort: &'a Cohort,
    /// The cost of seating a learner at their best possible score, plus one.
    top: i64,
    /// The cost of "no seat": above any sum of real costs.
    unseated: i64,
    /// Dual potentials: learners, then mentors (the last is "no seat").
    u: Vec<i64>,
    v: Vec<i64>,
    /// The mentor of each learner added so far.
    mentor_of: Vec<usize>,
    /// The learners each mentor holds.
    held: Vec<Vec<usize>>,
}

impl<'a> Solver<'a> {
    fn new(cohort: &'a Cohort) -> Self {
        let best = cohort.scores.iter().flatten().copied().max().unwrap_or(0).max(0);
        let top = best + 1;
        let n = i64::try_from(cohort.learners).unwrap_or(i64::MAX);
        let unseated = top.saturating_mul(n.saturating_add(1));
        let m = cohort.mentors();
        Self {
            cohort,
            top,
            unseated,
            u: vec![0; cohort.learners],
            v: vec![0; m + 1],
            mentor_of: vec![m; cohort.learners],
            held: vec![Vec::new(); m + 1],
        }
    }

    /// The cost of seating `learner` with `mentor` (`m`: no seat), if allowed.
    fn cost(&self, learner: usize, mentor: usize) -> Option<i64> {
        if mentor == self.cohort.mentors() {
            return Some(self.unseated);
        }
        self.cohort.score(learner, mentor).map(|s| self.top - s.max(0))
    }

    fn has_room(&self, mentor: usize) -> bool {
        mentor == self.cohort.mentors()
            || self.held[mentor].len() < usize::try_from(self.cohort.seats[mentor]).unwrap_or(usize::MAX)
    }

    fn solve(mut self) -> Assignment {
        let mentors = self.cohort.mentors() + 1;
        let mut dist = vec![i64::MAX; mentors];
        let mut via = vec![usize::MAX; mentors];
        let mut settled = vec![false; mentors];
        let mut reached: Vec<(usize, i64)> = Vec::new();
        for learner in 0..self.cohort.learners {
            dist.fill(i64::MAX);
            settled.fill(false);
            reached.clear();
            // The new learner's potential makes its cheapest edge tight.
            self.u[learner] =
                (0..mentors).filter_map(|j| self.cost(learner, j).map(|c| c - self.v[j])).min().unwrap_or(0);
            self.relax(learner, 0, &mut dist, &mut via, &settled);
            reached.push((learner, 0));
            let end = loop {
                let Some(j) =
                    (0..mentors).filter(|&j| !settled[j] && dist[j] < i64::MAX).min_by_key(|&j| dist[j])
                else {
                    // Unreachable: "no seat" is open to everyone.
                    break mentors - 1;
                };
                settled[j] = true;
                if self.has_room(j) {
                    break j;
                }
                // Moving a learner off `j` is free in reduced costs: they are reached at `j`'s
                // distance.
                for r in self.held[j].clone() {
                    reached.push((r, dist[j]));
                    self.relax(r, dist[j], &mut dist, &mut via, &settled);
                }
            };
            let total = dist[end];
            for &(r, d) in &reached {
                self.u[r] += total - d;
            }
            for j in (0..mentors).filter(|&j| settled[j]) {
                self.v[j] -= total - dist[j];
            }
            self.augment(learner, end, &via);
        }
        let m = self.cohort.mentors();
        let mentor_of = self.mentor_of.iter().map(|&j| (j < m).then_some(j)).collect();
        self.cohort.assignment(mentor_of)
    }

    /// Offers every mentor not settled yet a path through `learner`, reached at `at`.
    fn relax(&self, learner: usize, at: i64, dist: &mut [i64], via: &mut [usize], settled: &[bool]) {
        for (j, seen) in settled.iter().enumerate() {
            if *seen {
                continue;
            }
            if let Some(c) = self.cost(learner, j) {
                let d = at + c - self.u[learner] - self.v[j];
                if d < dist[j] {
                    dist[j] = d;
                    via[j] = learner;
                }
            }
        }
    }

    /// Seats `learner` along the path ending at `end`: each learner on it moves to the mentor
    /// that reached through them.
    fn augment(&mut self, learner: usize, end: usize, via: &[usize]) {
        let mut mentor = end;
        loop {
            let moved = via[mentor];
            let from = self.mentor_of[moved];
            if moved != learner
                && let Some(pos) = self.held[from].iter().position(|&r| r == moved)
            {
                self.held[from].swap_remove(pos);
            }
            self.held[mentor].push(moved);
            self.mentor_of[moved] = mentor;
            if moved == learner {
                return;
            }
            mentor = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The best (seated, total) over every assignment, by trying them all.
    fn exhaustive(c: &Cohort) -> (usize, Score) {
        fn go(
            c: &Cohort,
            l: usize,
            free: &mut [u32],
            seated: usize,
            total: Score,
            best: &mut (usize, Score),
        ) {
            if l == c.learners {
                *best = (*best).max((seated, total));
                return;
            }
            go(c, l + 1, free, seated, total, best);
            for j in 0..c.mentors() {
                if let (Some(s), true) = (c.score(l, j), free[j] > 0) {
                    free[j] -= 1;
                    go(c, l + 1, free, seated + 1, total + s, best);
                    free[j] += 1;
                }
            }
        }
        let mut best = (0, 0);
        go(c, 0, &mut c.seats.clone(), 0, 0, &mut best);
        best
    }

    /// A small deterministic generator (xorshift), so the cases are the same on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn random(rng: &mut Rng) -> Cohort {
        let learners = 1 + rng.below(7) as usize;
        let mentors = 1 + rng.below(4) as usize;
        let seats = (0..mentors).map(|_| rng.below(3) as u32).collect();
        let scores =
            (0..learners * mentors).map(|_| (rng.below(5) != 0).then(|| rng.below(1_000) as Score)).collect();
        Cohort::new(learners, seats, scores).expect("shape")
    }

    fn check(c: &Cohort, a: &Assignment) {
        let mut used = vec![0_u32; c.mentors()];
        for (l, m) in a.mentor_of.iter().enumerate() {
            if let Some(m) = *m {
                assert!(c.score(l, m).is_some(), "a pair that is not allowed: {l} with {m}");
                used[m] += 1;
            }
        }
        assert!(used.iter().zip(&c.seats).all(|(u, s)| u <= s), "over a mentor's seats: {used:?}");
    }

    #[test]
    fn the_optimum_matches_an_exhaustive_search_on_small_cohorts() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut beaten = 0;
        for case in 0..2_000 {
            let c = random(&mut rng);
            let a = optimal(&c);
            check(&c, &a);
            assert_eq!((a.seated, a.total), exhaustive(&c), "case {case}: {c:?} gave {a:?}");
            let g = greedy(&c);
            check(&c, &g);
            assert!((g.seated, g.total) <= (a.seated, a.total), "case {case}: greedy beat the optimum");
            beaten += usize::from((g.seated, g.total) < (a.seated, a.total));
        }
        assert!(beaten > 50, "the cases include many where greedy falls short: {beaten}");
    }

    #[test]
    fn greedy_takes_the_best_pair_and_the_optimum_does_better() {
        // Ann is best with Xu, but Bo can only have Xu: greedy seats Ann there and leaves Bo out.
        let c = Cohort::new(2, vec![1, 1], vec![Some(900), Some(800), Some(500), None]).expect("shape");
        let g = greedy(&c);
        assert_eq!((g.mentor_of.clone(), g.seated, g.total), (vec![Some(0), None], 1, 900));
        let a = optimal(&c);
        assert_eq!((a.mentor_of, a.seated, a.total), (vec![Some(1), Some(0)], 2, 1300));
    }

    #[test]
    fn the_same_cohort_gives_the_same_assignment() {
        // Every score equal: many optima, always the same one.
        let c = Cohort::new(6, vec![2, 2, 2], vec![Some(10); 18]).expect("shape");
        let first = optimal(&c);
        assert_eq!(first, optimal(&c.clone()));
        assert_eq!(first.seated, 6);
    }

    #[test]
    fn learners_without_a_possible_mentor_or_a_seat_stay_unseated() {
        let c = Cohort::new(3, vec![1, 0], vec![None, None, Some(5), Some(9), Some(7), None]).expect("shape");
        let a = optimal(&c);
        assert_eq!(
            a.mentor_of,
            vec![None, None, Some(0)],
            "Ann may have nobody; the one seat goes to the better pair"
        );
        assert!(Cohort::new(2, vec![1], vec![Some(1)]).is_err(), "a score per pair");
        let empty = optimal(&Cohort::new(0, vec![3], Vec::new()).expect("shape"));
        assert_eq!((empty.seated, empty.total), (0, 0));
    }

    #[test]
    fn waiting_raises_a_learners_scores_up_to_a_cap() {
        assert_eq!(prioritised(1_000, 0), 1_000);
        assert_eq!(prioritised(1_000, 6), 1_000, "a week counts when it is full");
        assert_eq!(prioritised(1_000, 14), 1_100);
        assert_eq!(prioritised(1_000, 365), 1_600, "at most 12 weeks count");
        // Two learners want the one seat of their favourite mentor: the one who waited gets it.
        let (ann, bo) = (prioritised(800, 0), prioritised(780, 28));
        let c = Cohort::new(2, vec![1, 1], vec![Some(ann), Some(100), Some(bo), Some(100)]).expect("shape");
        assert_eq!(optimal(&c).mentor_of, vec![Some(1), Some(0)]);
    }
}
