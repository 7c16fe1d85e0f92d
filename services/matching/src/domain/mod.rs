//! Matching's rules, without I/O.

pub mod cohort;
