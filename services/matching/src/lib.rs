//! Matching: learners and AI mentors. Built in steps (issue 13); so far its domain rules:
//! [`domain::score`], a mentor's compatibility with a learner explained per criterion, and
//! [`domain::cohort`], the optimal assignment of a cohort of learners to mentors with seats.

pub mod domain;
