//! Local calendar days in any time zone, mapped onto the UTC quarter-hours the rollups are
//! keyed by. Every offset in the tz database since 1970 is a multiple of 15 minutes, so a local
//! day (23, 24 or 25 hours long) is exactly a run of quarter-hours.

use jiff::{Timestamp, civil::Date, tz::TimeZone};
use tt_common::clock::Millis;
use tt_common::error::Invalid;

pub const QUARTER_MS: Millis = 15 * 60 * 1000;
pub const QUARTERS_PER_DAY: i64 = 96;
/// Quarter-hours per mask column (`early`, `late`).
const HALF: i64 = 48;

/// The quarter-hour (since the epoch, UTC) holding `ms`.
pub fn quarter(ms: Millis) -> i64 {
    ms.div_euclid(QUARTER_MS)
}

/// Where an event's quarter-hour sits in the activity rollup: (UTC day, early bits, late bits).
pub fn activity_bits(ms: Millis) -> (i64, i64, i64) {
    let q = quarter(ms);
    let slot = q.rem_euclid(QUARTERS_PER_DAY);
    let day = q.div_euclid(QUARTERS_PER_DAY);
    if slot < HALF { (day, 1 << slot, 0) } else { (day, 0, 1 << (slot - HALF)) }
}

/// A stable 63-bit key for a user id (FNV-1a): the activity rollup stores this instead of the
/// id. Two of a million users collide with a probability around 3e-8.
pub fn user_key(user_id: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in user_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash >> 1) as i64
}

/// A validated range of local dates in one time zone.
#[derive(Debug, Clone)]
pub struct Range {
    pub start: Date,
    pub end: Date,
    pub tz: TimeZone,
    /// The name the caller gave ("UTC" when none).
    pub tz_name: String,
}

/// Parses a time zone name (empty: UTC).
pub fn time_zone(name: &str) -> Result<(TimeZone, String), Invalid> {
    if name.is_empty() {
        return Ok((TimeZone::UTC, "UTC".to_owned()));
    }
    TimeZone::get(name)
        .map(|tz| (tz, name.to_owned()))
        .map_err(|_| format!("unknown time zone {name:?}").into())
}

pub fn date(s: &str) -> Result<Date, Invalid> {
    if s.len() != 10 {
        return Err("must be a date YYYY-MM-DD".into());
    }
    let d = s.parse::<Date>().map_err(|_| Invalid::from("must be a date YYYY-MM-DD"))?;
    if !(FIRST_DATE..=LAST_DATE).contains(&d) {
        return Err(format!("must be between {FIRST_DATE} and {LAST_DATE}").into());
    }
    Ok(d)
}

/// The dates reports accept. Events exist from 2020 on; the window leaves the month a report
/// looks back and the day it looks ahead far from the ends of the calendar in every zone.
pub const FIRST_DATE: Date = jiff::civil::date(2000, 1, 1);
pub const LAST_DATE: Date = jiff::civil::date(2199, 12, 31);

impl Range {
    /// Number of days, both ends included.
    pub fn days(&self) -> i64 {
        days_between(self.start, self.end) + 1
    }

    /// The local days from `offset` days before the start to the end, in order.
    pub fn days_from(&self, offset: i64) -> Vec<Date> {
        (-offset..self.days()).filter_map(|i| add_days(self.start, i)).collect()
    }

    /// Whether local days are UTC days (the zone never leaves offset zero).
    pub fn is_utc(&self) -> bool {
        self.tz == TimeZone::UTC
            || self.tz.iana_name() == Some("Etc/UTC")
            || self.tz.iana_name() == Some("UTC")
    }

    /// Where the local day `d` starts, in unix millis.
    pub fn start_of(&self, d: Date) -> Millis {
        start_of(d, &self.tz)
    }
}

pub fn start_of(d: Date, tz: &TimeZone) -> Millis {
    d.to_zoned(tz.clone()).map(|z| z.timestamp().as_millisecond()).unwrap_or(0)
}

pub fn add_days(d: Date, n: i64) -> Option<Date> {
    d.checked_add(jiff::Span::new().days(n)).ok()
}

pub fn days_between(a: Date, b: Date) -> i64 {
    a.until(b).map(|span| i64::from(span.get_days())).unwrap_or(0)
}

/// The local date of `ms` in `tz`.
pub fn local_date(ms: Millis, tz: &TimeZone) -> Date {
    Timestamp::from_millisecond(ms).map(|t| t.to_zoned(tz.clone()).date()).unwrap_or_default()
}

/// Day of week (1 = Monday) and hour of `ms` in `tz`.
pub fn weekday_hour(ms: Millis, tz: &TimeZone) -> (i32, i32) {
    Timestamp::from_millisecond(ms)
        .map(|t| {
            let z = t.to_zoned(tz.clone());
            (i32::from(z.weekday().to_monday_one_offset()), i32::from(z.hour()))
        })
        .unwrap_or((1, 0))
}

/// The Monday on or before `d`.
pub fn monday_of(d: Date) -> Date {
    add_days(d, -i64::from(d.weekday().to_monday_zero_offset())).unwrap_or(d)
}

/// The part of one UTC day's quarter-hours that belongs to local day number `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub index: usize,
    pub day: i64,
    pub early: i64,
    pub late: i64,
}

/// Bits `from..to` (clamped to one 48-bit column).
fn bits(from: i64, to: i64) -> i64 {
    let (from, to) = (from.clamp(0, HALF), to.clamp(0, HALF));
    if from >= to {
        return 0;
    }
    ((1i64 << to) - 1) & !((1i64 << from) - 1)
}

/// Splits consecutive local `days` (in `tz`) into pieces of UTC days: a user whose rollup row
/// for `piece.day` shares a bit with the piece was active on local day `piece.index`.
pub fn pieces(days: &[Date], tz: &TimeZone) -> Vec<Piece> {
    let mut out = Vec::with_capacity(days.len() * 2);
    for (index, d) in days.iter().enumerate() {
        let from = quarter(start_of(*d, tz));
        let to = add_days(*d, 1).map_or(from + QUARTERS_PER_DAY, |next| quarter(start_of(next, tz)));
        let mut day = from.div_euclid(QUARTERS_PER_DAY);
        while day * QUARTERS_PER_DAY < to {
            let base = day * QUARTERS_PER_DAY;
            let (lo, hi) = (from.max(base) - base, to.min(base + QUARTERS_PER_DAY) - base);
            out.push(Piece { index, day, early: bits(lo, hi), late: bits(lo - HALF, hi - HALF) });
            day += 1;
        }
    }
    out
}

/// For each day `i` of `n`, how many users were active on some day of `i - window + 1 ..= i`,
/// given each user's active day numbers (`active`, any order, repeats allowed).
pub fn rolling_distinct(active: &mut [(i64, usize)], n: usize, window: usize) -> Vec<i64> {
    // Sort by user, then day: each user's active days become one union of windows.
    active.sort_unstable();
    let mut delta = vec![0i64; n + 1];
    let mut i = 0;
    while i < active.len() {
        let user = active[i].0;
        let mut covered_to = 0usize; // days below this are already counted for the user
        while i < active.len() && active[i].0 == user {
            let from = active[i].1.max(covered_to);
            let to = (active[i].1 + window).min(n);
            if from < to {
                delta[from] += 1;
                delta[to] -= 1;
                covered_to = to;
            }
            i += 1;
        }
    }
    let mut running = 0;
    delta[..n]
        .iter()
        .map(|d| {
            running += d;
            running
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz(name: &str) -> TimeZone {
        time_zone(name).expect("zone").0
    }

    fn d(s: &str) -> Date {
        date(s).expect("date")
    }

    /// The quarter-hours a list of pieces covers, as absolute numbers per index.
    fn covered(pieces: &[Piece], index: usize) -> Vec<i64> {
        let mut out = Vec::new();
        for p in pieces.iter().filter(|p| p.index == index) {
            for slot in 0..96 {
                let bit = if slot < 48 { p.early >> slot } else { p.late >> (slot - 48) };
                if bit & 1 == 1 {
                    out.push(p.day * 96 + slot);
                }
            }
        }
        out
    }

    #[test]
    fn a_utc_day_is_one_whole_utc_row() {
        let p = pieces(&[d("2026-03-02")], &TimeZone::UTC);
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].early, p[0].late), ((1 << 48) - 1, (1 << 48) - 1));
    }

    #[test]
    fn local_days_cover_their_quarter_hours_exactly_across_dst_and_odd_offsets() {
        // New York loses an hour on 2026-03-08; Kathmandu is UTC+05:45.
        for (zone, day, hours) in [
            ("America/New_York", "2026-03-08", 23),
            ("America/New_York", "2026-11-01", 25),
            ("Asia/Kathmandu", "2026-03-02", 24),
            ("Pacific/Chatham", "2026-04-05", 25),
        ] {
            let z = tz(zone);
            let days = [add_days(d(day), -1).expect("d"), d(day), add_days(d(day), 1).expect("d")];
            let p = pieces(&days, &z);
            let q = covered(&p, 1);
            assert_eq!(q.len() as i64, hours * 4, "{zone} {day}");
            assert_eq!(q[0], quarter(start_of(d(day), &z)), "{zone} starts at local midnight");
            assert!(q.windows(2).all(|w| w[1] == w[0] + 1), "{zone}: contiguous");
            let before = covered(&p, 0);
            let after = covered(&p, 2);
            assert_eq!(before.last().map(|l| l + 1), Some(q[0]), "{zone}: no gap or overlap before");
            assert_eq!(q.last().map(|l| l + 1), after.first().copied(), "{zone}: none after");
        }
    }

    #[test]
    fn an_event_lands_on_its_local_day() {
        // 2026-03-02T23:30Z is 2026-03-03 05:15 in Kathmandu.
        let ms = start_of(d("2026-03-02"), &TimeZone::UTC) + 23 * 3_600_000 + 30 * 60_000;
        let (day, early, late) = activity_bits(ms);
        let z = tz("Asia/Kathmandu");
        let days = [d("2026-03-02"), d("2026-03-03")];
        let hit: Vec<usize> = pieces(&days, &z)
            .iter()
            .filter(|p| p.day == day && (p.early & early != 0 || p.late & late != 0))
            .map(|p| p.index)
            .collect();
        assert_eq!(hit, vec![1]);
        assert_eq!(local_date(ms, &z), d("2026-03-03"));
        assert_eq!(weekday_hour(ms, &z), (2, 5));
    }

    #[test]
    fn rolling_windows_count_each_user_once() {
        // user 1 active on days 0 and 2, user 2 on day 5.
        let mut active = vec![(1, 2), (1, 0), (2, 5), (1, 2)];
        assert_eq!(rolling_distinct(&mut active, 8, 3), vec![1, 1, 1, 1, 1, 1, 1, 1]);
        let mut active = vec![(1, 0), (2, 5)];
        assert_eq!(rolling_distinct(&mut active, 8, 1), vec![1, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(rolling_distinct(&mut active, 8, 7), vec![1, 1, 1, 1, 1, 2, 2, 1]);
    }

    #[test]
    fn ranges_and_zones_are_checked() {
        assert!(time_zone("Mars/Olympus").is_err());
        assert_eq!(time_zone("").expect("utc").1, "UTC");
        assert!(date("2026-02-30").is_err());
        assert!(date("9999-12-31").is_err());
        assert!(date("0001-01-01").is_err());
        assert!(date("2199-12-31").is_ok());
        assert!(date("2026-2-3").is_err());
        assert_eq!(monday_of(d("2026-11-22")), d("2026-11-16"));
        assert_eq!(days_between(d("2026-01-01"), d("2026-12-31")), 364);
        assert_ne!(user_key("a"), user_key("b"));
        assert!(user_key("018f0000-0000-7000-8000-000000000000") >= 0);
    }
}
