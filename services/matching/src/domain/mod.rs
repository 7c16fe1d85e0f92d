//! Matching's rules, without I/O.

pub mod cohort;
pub mod score;
