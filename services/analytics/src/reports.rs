//! Reports computed from the rollups: engagement, cohorts, heatmaps, feature usage and the
//! dashboards made of them. Each first folds in what is still queued ([`Analytics::catch_up`]). Local days come from [`calendar::pieces`]; nothing here scans the
//! event table except one learner's own events for their heatmap.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::{civil::Date, tz::TimeZone};
use tonic::Status;
use tt_proto::analytics::v1 as pb;

use crate::{
    domain::calendar::{self, QUARTER_MS, Range, add_days, monday_of, pieces, quarter, rolling_distinct},
    service::Analytics,
};

const DAY_MS: i64 = 24 * 3600 * 1000;
/// Days before the range that monthly active users look back over.
const MONTH: usize = 30;
const WEEK: usize = 7;

/// One local day's engagement figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Day {
    pub date: Date,
    pub dau: i64,
    pub wau: i64,
    pub mau: i64,
    pub new_users: i64,
}

impl Day {
    pub fn stickiness(&self) -> f64 {
        if self.mau == 0 { 0.0 } else { self.dau as f64 / self.mau as f64 }
    }
}

/// Which local day (index into `starts`) the time `ms` falls on, if any.
fn day_index(starts: &[i64], ms: i64) -> Option<usize> {
    let i = starts.partition_point(|s| *s <= ms);
    (i > 0 && i < starts.len()).then(|| i - 1)
}

impl Analytics {
    /// DAU only, per day of the range (the cheapest engagement series).
    pub async fn daily_active(&self, range: &Range) -> Result<Vec<i64>, Status> {
        self.catch_up().await?;
        let days = range.days_from(0);
        if range.is_utc() {
            // One counter per UTC day.
            let first = calendar::start_of(range.start, &range.tz).div_euclid(DAY_MS);
            let mut out = vec![0; days.len()];
            let counts = self.store.daily_active_utc(first, first + days.len() as i64 - 1).await?;
            for (day, n) in counts {
                if let Some(slot) = usize::try_from(day - first).ok().and_then(|i| out.get_mut(i)) {
                    *slot = n;
                }
            }
            return Ok(out);
        }
        let counts = self.store.daily_active(&pieces(&days, &range.tz)).await?;
        let mut out = vec![0; days.len()];
        for (i, n) in counts {
            if let Some(slot) = out.get_mut(i) {
                *slot = n;
            }
        }
        Ok(out)
    }

    /// Every engagement figure per day of the range.
    pub async fn engagement(&self, range: &Range) -> Result<Vec<Day>, Status> {
        self.catch_up().await?;
        let back = MONTH - 1;
        let days = range.days_from(back as i64);
        let n = days.len();
        let mut pairs = if range.is_utc() {
            let first = calendar::start_of(days[0], &range.tz).div_euclid(DAY_MS);
            self.store.active_pairs_utc(first, first + n as i64 - 1).await?
        } else {
            self.store.active_pairs(&pieces(&days, &range.tz), None).await?
        };
        let dau = rolling_distinct(&mut pairs, n, 1);
        let wau = rolling_distinct(&mut pairs, n, WEEK);
        let mau = rolling_distinct(&mut pairs, n, MONTH);
        let new_users = self.new_users(range).await?;
        Ok((back..n)
            .map(|i| Day {
                date: days[i],
                dau: dau[i],
                wau: wau[i],
                mau: mau[i],
                new_users: new_users.get(i - back).copied().unwrap_or(0),
            })
            .collect())
    }

    /// Registrations per day of the range.
    async fn new_users(&self, range: &Range) -> Result<Vec<i64>, Status> {
        let starts = day_starts(range.days_from(0), &range.tz);
        let (from, to) = (starts[0], starts[starts.len() - 1]);
        let mut out = vec![0; starts.len() - 1];
        for (_, at) in self.store.registrations(from, to).await? {
            if let Some(i) = day_index(&starts, at) {
                out[i] += 1;
            }
        }
        Ok(out)
    }

    /// Weekly signup cohorts of the range, each followed for `weeks` weeks (up to today).
    pub async fn cohorts(&self, range: &Range, weeks: usize) -> Result<Vec<pb::Cohort>, Status> {
        self.catch_up().await?;
        let first = monday_of(range.start);
        let last = monday_of(range.end);
        let today = calendar::local_date(self.now(), &range.tz);
        let horizon = add_days(last, (7 * (weeks + 1)) as i64 - 1).unwrap_or(last).min(today.max(first));
        let cohort_count = (calendar::days_between(first, last) / 7 + 1) as usize;
        let days: Vec<Date> =
            (0..=calendar::days_between(first, horizon)).filter_map(|i| add_days(first, i)).collect();
        let week_starts: Vec<Date> =
            (0..=cohort_count).filter_map(|w| add_days(first, 7 * w as i64)).collect();
        let starts = day_starts(week_starts.clone(), &range.tz);
        let (from, to) = (starts[0], starts[cohort_count]);
        let mut cohort_of: HashMap<i64, usize> = HashMap::new();
        let mut sizes = vec![0i64; cohort_count];
        for (key, at) in self.store.registrations(from, to).await? {
            if let Some(c) = day_index(&starts, at) {
                cohort_of.insert(key, c);
                sizes[c] += 1;
            }
        }
        let pairs = self.store.active_pairs(&pieces(&days, &range.tz), Some((from, to))).await?;
        let mut active: HashSet<(usize, usize, i64)> = HashSet::new();
        for (key, day) in pairs {
            let Some(&c) = cohort_of.get(&key) else { continue };
            let since_cohort = day as i64 - 7 * c as i64;
            if since_cohort >= 0 {
                let week = (since_cohort / 7) as usize;
                if week <= weeks {
                    active.insert((c, week, key));
                }
            }
        }
        let mut counts: BTreeMap<(usize, usize), i64> = BTreeMap::new();
        for (c, w, _) in active {
            *counts.entry((c, w)).or_default() += 1;
        }
        Ok((0..cohort_count)
            .map(|c| {
                let start = week_starts[c];
                let started = (0..=weeks)
                    .take_while(|w| add_days(start, 7 * *w as i64).is_some_and(|d| d <= today))
                    .map(|w| {
                        let n = counts.get(&(c, w)).copied().unwrap_or(0);
                        pb::CohortWeek {
                            week: w as i32,
                            active_users: n,
                            retention: if sizes[c] == 0 { 0.0 } else { n as f64 / sizes[c] as f64 },
                        }
                    })
                    .collect();
                pb::Cohort { week_start: start.to_string(), size: sizes[c], weeks: started }
            })
            .collect())
    }

    /// Events by local weekday and hour: one user's (from their events) or everyone's (from
    /// the quarter-hour rollup).
    pub async fn heatmap(&self, range: &Range, user: Option<&str>) -> Result<[[i64; 24]; 7], Status> {
        let starts = day_starts(range.days_from(0), &range.tz);
        let (from, to) = (starts[0], starts[starts.len() - 1]);
        let mut cells = [[0i64; 24]; 7];
        let mut add = |ms: i64, n: i64| {
            let (weekday, hour) = calendar::weekday_hour(ms, &range.tz);
            cells[(weekday - 1) as usize][hour as usize] += n;
        };
        match user {
            Some(user) => {
                self.store.subject_event_times(user, from, to, |ms| add(ms, 1)).await?;
            }
            None => {
                self.catch_up().await?;
                let (qa, qb) = (quarter(from), quarter(to));
                let mut per_bucket: BTreeMap<i64, i64> = BTreeMap::new();
                for (bucket, _, n) in self.store.event_counts(qa, qb).await? {
                    *per_bucket.entry(bucket).or_default() += n;
                }
                for (bucket, n) in per_bucket {
                    add(bucket * QUARTER_MS, n);
                }
            }
        }
        Ok(cells)
    }

    /// Events per type over the range, most used first.
    pub async fn feature_usage(&self, range: &Range) -> Result<Vec<(String, i64)>, Status> {
        self.catch_up().await?;
        let starts = day_starts(range.days_from(0), &range.tz);
        let (qa, qb) = (quarter(starts[0]), quarter(starts[starts.len() - 1]));
        let mut totals: HashMap<String, i64> = HashMap::new();
        for (_, kind, n) in self.store.event_counts(qa, qb).await? {
            *totals.entry(kind).or_default() += n;
        }
        let mut out: Vec<_> = totals.into_iter().collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Events per local day, in all and per type.
    pub async fn activity(&self, range: &Range) -> Result<BTreeMap<String, Vec<i64>>, Status> {
        self.catch_up().await?;
        let starts = day_starts(range.days_from(0), &range.tz);
        let days = starts.len() - 1;
        let (qa, qb) = (quarter(starts[0]), quarter(starts[days]));
        let mut series: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        series.insert("events".to_owned(), vec![0; days]);
        for (bucket, kind, n) in self.store.event_counts(qa, qb).await? {
            if let Some(i) = day_index(&starts, bucket * QUARTER_MS) {
                for name in ["events".to_owned(), format!("events.{kind}")] {
                    series.entry(name).or_insert_with(|| vec![0; days])[i] += n;
                }
            }
        }
        Ok(series)
    }
}

/// Where each of `days` starts, and where the last one ends.
fn day_starts(mut days: Vec<Date>, tz: &TimeZone) -> Vec<i64> {
    if let Some(next) = days.last().and_then(|d| add_days(*d, 1)) {
        days.push(next);
    }
    days.iter().map(|d| calendar::start_of(*d, tz)).collect()
}
