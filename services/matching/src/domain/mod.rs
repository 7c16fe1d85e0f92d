//! Matching's rules, without I/O: the catalog's content and validation, compatibility, the
//! optimal cohort assignment and the mentorship lifecycle.

pub mod catalog;
pub mod cohort;
pub mod mentorship;
pub mod score;
