//! Profiles' rules, without I/O: the taxonomy, the questionnaire and its scoring, experience and
//! career stage, completion, and the checks on profile fields.

use tt_common::error::Invalid;
pub mod assessment;
pub mod career;
pub mod completion;
pub mod taxonomy;

/// Limits a learner's data is held to.
pub const MAX_ACTIVE_GOALS: usize = 10;
pub const MAX_GOALS: usize = 50;
pub const MAX_POSITIONS: usize = 50;
pub const MAX_SKILLS: usize = 200;
pub const MAX_GOAL_SKILLS: usize = 20;
pub const MAX_POSITION_SKILLS: usize = 30;
pub const MAX_LANGUAGES: usize = 10;
pub const MAX_FIELDS: usize = 5;

/// A trimmed text of at most `max` characters (`required`: not empty).
pub fn text(value: &str, max: usize, required: bool) -> Result<String, Invalid> {
    let t = value.trim();
    if required && t.is_empty() {
        return Err("must not be empty".into());
    }
    if t.chars().count() > max {
        return Err(format!("must be at most {max} characters").into());
    }
    if t.chars().any(|c| c.is_control() && c != '\n') {
        return Err("must not contain control characters".into());
    }
    Ok(t.to_owned())
}

/// An IANA time zone name known to the bundled tz database (empty clears it).
pub fn timezone(name: &str) -> Result<String, Invalid> {
    if name.is_empty() {
        return Ok(String::new());
    }
    if name.len() > 64 || jiff::tz::TimeZone::get(name).is_err() {
        return Err(format!("{name:?} is not an IANA time zone name (e.g. \"Europe/Berlin\")").into());
    }
    Ok(name.to_owned())
}

/// A BCP 47 language tag in its usual form: a 2-3 letter lower-case language, then optional
/// subtags of 2-8 letters or digits ("en", "pt-BR", "zh-Hant-TW").
pub fn language(tag: &str) -> Result<String, Invalid> {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or_default();
    let ok_primary = (2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_lowercase());
    let ok_rest = parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok_primary && ok_rest && tag.len() <= 35 {
        Ok(tag.to_owned())
    } else {
        Err(format!("{tag:?} is not a language tag like \"en\" or \"pt-BR\"").into())
    }
}

/// A list without duplicates, at most `max` long, each element checked by `each`.
pub fn list(
    values: &[String],
    max: usize,
    each: impl Fn(&str) -> Result<String, Invalid>,
) -> Result<Vec<String>, Invalid> {
    if values.len() > max {
        return Err(format!("at most {max} allowed").into());
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for v in values {
        let checked = each(v)?;
        if out.contains(&checked) {
            return Err(format!("{v:?} is listed twice").into());
        }
        out.push(checked);
    }
    Ok(out)
}

/// A field of work: a taxonomy track id.
pub fn field_of_work(s: &str) -> Result<String, Invalid> {
    if taxonomy::is_track(s) {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?} is not a field of work; use one of: {}", taxonomy::TRACKS.join(", ")).into())
    }
}

/// A calendar date "YYYY-MM-DD" from its parts (validated, e.g. no February 30).
pub fn date(year: i32, month: i32, day: i32) -> Result<jiff::civil::Date, Invalid> {
    let y = i16::try_from(year).map_err(|_| "year out of range".to_owned())?;
    let m = i8::try_from(month).map_err(|_| "month out of range".to_owned())?;
    let d = i8::try_from(day).map_err(|_| "day out of range".to_owned())?;
    if !(1900..=2200).contains(&year) {
        return Err("year must be between 1900 and 2200".into());
    }
    jiff::civil::Date::new(y, m, d).map_err(|_| format!("{year:04}-{month:02}-{day:02} is not a date").into())
}

/// A month (year 1900-2200, month 1-12) as a month index.
pub fn month(year: i32, month: i32) -> Result<career::MonthIndex, Invalid> {
    if !(1900..=2200).contains(&year) || !(1..=12).contains(&month) {
        return Err("must be a month: year 1900-2200, month 1-12".into());
    }
    Ok(career::month_index(year, month))
}

/// A month (as [`month`]) that is not after the month of `now_ms`.
pub fn past_month(year: i32, month_of_year: i32, now_ms: i64) -> Result<career::MonthIndex, Invalid> {
    let index = month(year, month_of_year)?;
    if index > career::current_month(now_ms) {
        return Err("must not be in the future".into());
    }
    Ok(index)
}

/// Today's date (UTC) at `now_ms`.
pub fn today(now_ms: i64) -> jiff::civil::Date {
    jiff::Timestamp::from_millisecond(now_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_come_from_the_bundled_database() {
        assert_eq!(timezone("Europe/Berlin").as_deref(), Ok("Europe/Berlin"));
        assert_eq!(timezone("America/Sao_Paulo").as_deref(), Ok("America/Sao_Paulo"));
        assert!(timezone("Mars/Olympus").is_err());
        assert!(timezone("europe/berlin ").is_err());
        assert_eq!(timezone("").as_deref(), Ok(""));
    }

    #[test]
    fn language_tags() {
        for ok in ["en", "pt-BR", "zh-Hant-TW", "fil"] {
            assert!(language(ok).is_ok(), "{ok}");
        }
        for bad in ["", "E", "english", "EN", "en_US", "en-"] {
            assert!(language(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_refuse_duplicates_and_overflow() {
        let v = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(list(&v(&["en", "en"]), 5, language).is_err());
        assert!(list(&v(&["en", "de", "fr"]), 2, language).is_err());
        assert_eq!(list(&v(&["software", "data"]), 5, field_of_work), Ok(v(&["software", "data"])));
        assert!(list(&v(&["cooking"]), 5, field_of_work).is_err());
    }

    #[test]
    fn dates_and_months() {
        assert!(date(2025, 2, 29).is_err());
        assert!(date(2024, 2, 29).is_ok());
        assert!(month(2024, 13).is_err());
        assert_eq!(month(2024, 1), Ok(2024 * 12));
        assert!(text("  hi  ", 5, true).is_ok_and(|t| t == "hi"));
        assert!(text("   ", 5, true).is_err());
        assert!(text("toolong", 5, false).is_err());
    }
}
