//! Experience and career stage: how long someone has worked (overlapping positions count once)
//! and the stage the rules derive from it. The rules, in order (the first that applies wins):
//!
//! 1. no position at all: **student**;
//! 2. at least 3 years of experience and an active goal whose target field is none of the
//!    profile's fields of work: **career changer**;
//! 3. at least 8 years and a leadership title in any position (lead, head, manager, director,
//!    chief, vp, vice president, principal, founder, cto/ceo/ciso...): **leader**;
//! 4. at least 5 years: **senior**;
//! 5. at least 2 years: **mid level**;
//! 6. otherwise: **early career**.

/// A month as one integer: `year * 12 + (month - 1)`.
pub type MonthIndex = i32;

pub fn month_index(year: i32, month: i32) -> MonthIndex {
    year * 12 + (month - 1)
}

pub fn year_month(index: MonthIndex) -> (i32, i32) {
    (index.div_euclid(12), index.rem_euclid(12) + 1)
}

/// Writes a month index as "YYYY-MM" (exports show months the way people write them).
pub fn serialize_month<S: serde::Serializer>(index: &MonthIndex, s: S) -> Result<S::Ok, S::Error> {
    let (year, month) = year_month(*index);
    s.serialize_str(&format!("{year:04}-{month:02}"))
}

/// [`serialize_month`] for an optional month (null when unset).
pub fn serialize_opt_month<S: serde::Serializer>(
    index: &Option<MonthIndex>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match index {
        Some(i) => serialize_month(i, s),
        None => s.serialize_none(),
    }
}

/// The month of a unix-millis instant (UTC).
pub fn current_month(now_ms: i64) -> MonthIndex {
    let ts = jiff::Timestamp::from_millisecond(now_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let date = ts.to_zoned(jiff::tz::TimeZone::UTC).date();
    month_index(i32::from(date.year()), i32::from(date.month()))
}

/// Months covered by the inclusive periods `(start, end)`, overlaps merged.
pub fn total_months(periods: &[(MonthIndex, MonthIndex)]) -> i32 {
    let mut sorted: Vec<_> = periods.iter().filter(|(s, e)| e >= s).copied().collect();
    sorted.sort_unstable();
    let mut total = 0;
    let mut current: Option<(MonthIndex, MonthIndex)> = None;
    for (s, e) in sorted {
        current = match current {
            Some((cs, ce)) if s <= ce + 1 => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs + 1;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((cs, ce)) = current {
        total += ce - cs + 1;
    }
    total
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Student,
    EarlyCareer,
    MidLevel,
    Senior,
    Leader,
    CareerChanger,
}

/// What the stage rules look at.
#[derive(Debug, Clone, Default)]
pub struct StageInput<'a> {
    pub positions: usize,
    pub total_months: i32,
    pub titles: Vec<&'a str>,
    pub fields_of_work: &'a [String],
    /// Target fields of active goals (empty strings are ignored).
    pub goal_fields: Vec<&'a str>,
}

const LEADERSHIP_WORDS: &[&str] = &[
    "lead",
    "head",
    "manager",
    "director",
    "chief",
    "vp",
    "president",
    "principal",
    "founder",
    "cto",
    "ceo",
    "ciso",
    "cio",
    "cpo",
];

fn is_leadership_title(title: &str) -> bool {
    title.to_lowercase().split(|c: char| !c.is_alphanumeric()).any(|w| LEADERSHIP_WORDS.contains(&w))
}

/// Applies the rules in the module documentation.
pub fn derive_stage(input: &StageInput<'_>) -> Stage {
    let years = f64::from(input.total_months) / 12.0;
    if input.positions == 0 {
        return Stage::Student;
    }
    let changing = !input.fields_of_work.is_empty()
        && input.goal_fields.iter().any(|f| !f.is_empty() && !input.fields_of_work.iter().any(|w| w == f));
    if years >= 3.0 && changing {
        Stage::CareerChanger
    } else if years >= 8.0 && input.titles.iter().any(|t| is_leadership_title(t)) {
        Stage::Leader
    } else if years >= 5.0 {
        Stage::Senior
    } else if years >= 2.0 {
        Stage::MidLevel
    } else {
        Stage::EarlyCareer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(y: i32, mo: i32) -> MonthIndex {
        month_index(y, mo)
    }

    #[test]
    fn overlapping_and_adjacent_positions_count_once() {
        assert_eq!(total_months(&[]), 0);
        assert_eq!(total_months(&[(m(2020, 1), m(2020, 1))]), 1);
        // 2018-01..2020-12 and 2020-06..2021-12 overlap: 2018-01..2021-12 is 48 months.
        assert_eq!(total_months(&[(m(2020, 6), m(2021, 12)), (m(2018, 1), m(2020, 12))]), 48);
        // Contained period adds nothing; a gap is not counted.
        assert_eq!(
            total_months(&[(m(2018, 1), m(2019, 12)), (m(2018, 5), m(2018, 7)), (m(2021, 1), m(2021, 12))]),
            36
        );
        // Adjacent periods join.
        assert_eq!(total_months(&[(m(2018, 1), m(2018, 6)), (m(2018, 7), m(2018, 12))]), 12);
    }

    fn input<'a>(
        positions: usize,
        years: i32,
        titles: Vec<&'a str>,
        fields: &'a [String],
        goals: Vec<&'a str>,
    ) -> StageInput<'a> {
        StageInput { positions, total_months: years * 12, titles, fields_of_work: fields, goal_fields: goals }
    }

    #[test]
    fn stage_rules_in_order() {
        let sw = vec!["software".to_owned()];
        assert_eq!(derive_stage(&input(0, 0, vec![], &sw, vec![])), Stage::Student);
        assert_eq!(derive_stage(&input(1, 1, vec!["Intern"], &sw, vec![])), Stage::EarlyCareer);
        assert_eq!(derive_stage(&input(1, 2, vec!["Engineer"], &sw, vec![])), Stage::MidLevel);
        assert_eq!(derive_stage(&input(2, 5, vec!["Engineer"], &sw, vec![])), Stage::Senior);
        assert_eq!(derive_stage(&input(2, 9, vec!["Engineer"], &sw, vec![])), Stage::Senior);
        assert_eq!(derive_stage(&input(2, 9, vec!["Engineering Manager"], &sw, vec![])), Stage::Leader);
        assert_eq!(
            derive_stage(&input(2, 7, vec!["Head of Data"], &sw, vec![])),
            Stage::Senior,
            "leader needs 8 years"
        );
        // A goal in another field after 3+ years: career changer, even for a would-be leader.
        assert_eq!(
            derive_stage(&input(2, 10, vec!["Director"], &sw, vec!["security-grc"])),
            Stage::CareerChanger
        );
        assert_eq!(
            derive_stage(&input(1, 2, vec!["Engineer"], &sw, vec!["design"])),
            Stage::MidLevel,
            "needs 3 years"
        );
        assert_eq!(
            derive_stage(&input(1, 4, vec!["Engineer"], &sw, vec!["software"])),
            Stage::MidLevel,
            "same field"
        );
        assert_eq!(
            derive_stage(&input(1, 4, vec!["Engineer"], &[], vec!["design"])),
            Stage::MidLevel,
            "no fields named"
        );
    }

    #[test]
    fn leadership_words_match_whole_words() {
        assert!(is_leadership_title("Tech Lead"));
        assert!(is_leadership_title("VP, Product"));
        assert!(!is_leadership_title("Leadership coach assistant"));
        assert!(!is_leadership_title("Engineer"));
    }

    #[test]
    fn months_round_trip() {
        assert_eq!(year_month(month_index(2024, 12)), (2024, 12));
        assert_eq!(year_month(month_index(2024, 1)), (2024, 1));
        assert_eq!(current_month(0), month_index(1970, 1));
    }
}
