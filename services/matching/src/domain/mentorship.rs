//! The mentorship lifecycle: states, end reasons and which changes are allowed.
//!
//! proposed -> active (accepted) | declined | expired; active -> completed (goals reached) |
//! ended (any other reason). A learner has at most one proposed or active mentorship; the
//! others are history. A proposal holds its mentor's seat until it is answered or expires.

use tt_proto::matching::v1::{EndReason, MentorshipState};

/// How long a proposal holds its seat before it expires (documented in the contract).
pub const PROPOSAL_HOLD_MS: i64 = 7 * 24 * 3600 * 1000;
/// The longest note on an ending, a decline or a feedback.
pub const MAX_NOTE: usize = 1000;

/// Whether a mentorship in `state` still holds a seat (and counts as the learner's running one).
pub fn is_running(state: MentorshipState) -> bool {
    matches!(state, MentorshipState::Proposed | MentorshipState::Active)
}

/// The state an active mentorship ends in for `reason`.
pub fn ended_state(reason: EndReason) -> MentorshipState {
    if reason == EndReason::GoalsReached { MentorshipState::Completed } else { MentorshipState::Ended }
}

/// Whether an ending for `reason` ranks the mentor down in the learner's later matches: every
/// reason but reaching one's goals.
pub fn demotes(reason: EndReason) -> bool {
    reason != EndReason::GoalsReached && reason != EndReason::Unspecified
}

/// The words of `reason` in a demotion ("ranked down: ... (not a fit: we did not click)").
pub fn describe(reason: EndReason, note: &str) -> String {
    let words = match reason {
        EndReason::Unspecified => "no reason",
        EndReason::GoalsReached => "goals reached",
        EndReason::NotAFit => "not a fit",
        EndReason::StyleMismatch => "style mismatch",
        EndReason::WrongFocus => "wrong focus",
        EndReason::NoTime => "no time",
        EndReason::Other => "other",
    };
    if note.trim().is_empty() { words.to_owned() } else { format!("{words}: {}", note.trim()) }
}

/// Checks an ending's reason and note: a reason is required, and a note with OTHER.
pub fn check_ending(reason: i32, note: &str) -> Result<EndReason, (&'static str, &'static str)> {
    let reason = EndReason::try_from(reason).unwrap_or(EndReason::Unspecified);
    if reason == EndReason::Unspecified {
        return Err(("reason", "must be one of the END_REASON_ values"));
    }
    if reason == EndReason::Other && note.trim().is_empty() {
        return Err(("note", "must say why when the reason is END_REASON_OTHER"));
    }
    Ok(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaching_goals_completes_and_never_ranks_down() {
        assert_eq!(ended_state(EndReason::GoalsReached), MentorshipState::Completed);
        assert_eq!(ended_state(EndReason::NotAFit), MentorshipState::Ended);
        assert!(!demotes(EndReason::GoalsReached));
        assert!(demotes(EndReason::StyleMismatch));
        assert_eq!(describe(EndReason::NotAFit, " too slow "), "not a fit: too slow");
    }

    #[test]
    fn endings_need_a_reason_and_other_needs_words() {
        assert!(check_ending(0, "").is_err());
        assert!(check_ending(99, "").is_err());
        assert_eq!(check_ending(EndReason::Other as i32, " ").expect_err("needs a note").0, "note");
        assert_eq!(check_ending(EndReason::NoTime as i32, ""), Ok(EndReason::NoTime));
        assert!(is_running(MentorshipState::Proposed) && !is_running(MentorshipState::Completed));
    }
}
