//! Reads for reports: all from the rollups, except one learner's own events (their heatmap).

use futures::TryStreamExt;
use sqlx::Row;
use tt_common::{clock::Millis, storage::StorageError};

use super::Store;
use crate::domain::calendar::Piece;

/// The pieces as a `p(i, day, early, late)` table of integer literals (only numbers computed
/// here enter the SQL).
fn pieces_cte(pieces: &[Piece]) -> String {
    let mut sql = String::from("WITH p(i, day, early, late) AS (VALUES ");
    for (n, p) in pieces.iter().enumerate() {
        if n == 0 {
            sql.push_str(&format!(
                "(CAST({} AS BIGINT), CAST({} AS BIGINT), CAST({} AS BIGINT), CAST({} AS BIGINT))",
                p.index, p.day, p.early, p.late
            ));
        } else {
            sql.push_str(&format!(", ({}, {}, {}, {})", p.index, p.day, p.early, p.late));
        }
    }
    sql.push_str(") ");
    sql
}

const ACTIVE_ON_PIECE: &str = "FROM p JOIN activity_days a ON a.day = p.day \
     WHERE ((a.early & p.early) <> 0 OR (a.late & p.late) <> 0)";

/// Usage figures for admins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub events_total: i64,
    pub events_since: i64,
    pub users_total: i64,
    pub dead_letters_pending: i64,
    pub sources: Vec<SourceRow>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceRow {
    pub source: String,
    pub events: i64,
    pub duplicates: i64,
    pub dead_letters: i64,
    pub batches: i64,
    pub last_ingest_at: Millis,
    pub outbox_pending: i64,
    pub oldest_pending_at: Option<Millis>,
    pub backlog_reported_at: Option<Millis>,
}

impl Store {
    /// Distinct active users per piece index (indexes with nobody are absent).
    pub async fn daily_active(&self, pieces: &[Piece]) -> Result<Vec<(usize, i64)>, StorageError> {
        if pieces.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "{}SELECT p.i AS i, COUNT(DISTINCT a.user_key) AS n {ACTIVE_ON_PIECE} GROUP BY p.i",
            pieces_cte(pieces)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.db().pool()).await?;
        rows.iter()
            .map(|r| Ok((usize::try_from(r.try_get::<i64, _>("i")?).unwrap_or(0), r.try_get("n")?)))
            .collect()
    }

    /// Distinct active users per UTC day in `[from, to]` (days since the epoch; days with
    /// nobody are absent).
    pub async fn daily_active_utc(&self, from: i64, to: i64) -> Result<Vec<(i64, i64)>, StorageError> {
        let rows = sqlx::query("SELECT day, users FROM daily_active WHERE day >= $1 AND day <= $2")
            .bind(from)
            .bind(to)
            .fetch_all(self.db().pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get("day")?, r.try_get("users")?))).collect()
    }

    /// Every (user key, UTC day - `from`) with activity in UTC days `[from, to]`: the rows of
    /// the rollup themselves (one per user and day), no join.
    pub async fn active_pairs_utc(&self, from: i64, to: i64) -> Result<Vec<(i64, usize)>, StorageError> {
        let mut rows = sqlx::query("SELECT user_key, day FROM activity_days WHERE day >= $1 AND day <= $2")
            .bind(from)
            .bind(to)
            .fetch(self.db().pool());
        let mut out = Vec::new();
        while let Some(r) = rows.try_next().await? {
            let day: i64 = r.try_get("day")?;
            out.push((r.try_get("user_key")?, usize::try_from(day - from).unwrap_or(0)));
        }
        Ok(out)
    }

    /// Every (user key, piece index) with activity, once. With `registered`, only users who
    /// registered in that span of time (cohorts).
    pub async fn active_pairs(
        &self,
        pieces: &[Piece],
        registered: Option<(Millis, Millis)>,
    ) -> Result<Vec<(i64, usize)>, StorageError> {
        if pieces.is_empty() {
            return Ok(Vec::new());
        }
        let (join, filter) = match registered {
            Some(_) => (
                "JOIN users u ON u.user_key = a.user_key ",
                " AND u.registered_at >= $1 AND u.registered_at < $2",
            ),
            None => ("", ""),
        };
        let sql = format!(
            "{}SELECT DISTINCT a.user_key AS k, p.i AS i {} {filter}",
            pieces_cte(pieces),
            ACTIVE_ON_PIECE.replacen("WHERE", &format!("{join}WHERE"), 1),
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some((from, to)) = registered {
            query = query.bind(from).bind(to);
        }
        let mut rows = query.fetch(self.db().pool());
        let mut out = Vec::new();
        while let Some(r) = rows.try_next().await? {
            out.push((r.try_get("k")?, usize::try_from(r.try_get::<i64, _>("i")?).unwrap_or(0)));
        }
        Ok(out)
    }

    /// Registrations in `[from, to)`: (user key, time), oldest first.
    pub async fn registrations(&self, from: Millis, to: Millis) -> Result<Vec<(i64, Millis)>, StorageError> {
        let rows = sqlx::query(
            "SELECT user_key, registered_at FROM users WHERE registered_at >= $1 AND registered_at < $2 \
             ORDER BY registered_at",
        )
        .bind(from)
        .bind(to)
        .fetch_all(self.db().pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get("user_key")?, r.try_get("registered_at")?))).collect()
    }

    /// Event counts per quarter-hour and type for quarter-hours `[from, to)`.
    pub async fn event_counts(&self, from: i64, to: i64) -> Result<Vec<(i64, String, i64)>, StorageError> {
        let rows = sqlx::query(
            "SELECT bucket, type, events FROM event_counts WHERE bucket >= $1 AND bucket < $2 ORDER BY bucket",
        )
        .bind(from)
        .bind(to)
        .fetch_all(self.db().pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get("bucket")?, r.try_get("type")?, r.try_get("events")?))).collect()
    }

    /// Calls `each` with the time of every event about `subject` in `[from, to)`, streaming.
    pub async fn subject_event_times(
        &self,
        subject: &str,
        from: Millis,
        to: Millis,
        mut each: impl FnMut(Millis),
    ) -> Result<(), StorageError> {
        let mut rows = sqlx::query("SELECT time FROM events WHERE subject = $1 AND time >= $2 AND time < $3")
            .bind(subject)
            .bind(from)
            .bind(to)
            .fetch(self.db().pool());
        while let Some(r) = rows.try_next().await? {
            each(r.try_get("time")?);
        }
        Ok(())
    }

    /// The time zone a user's profile last told ('' when unknown).
    pub async fn time_zone_of(&self, user_id: &str) -> Result<String, StorageError> {
        let row = sqlx::query("SELECT time_zone FROM users WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(self.db().pool())
            .await?;
        Ok(match row {
            Some(r) => r.try_get("time_zone")?,
            None => String::new(),
        })
    }

    /// Usage figures; `since` bounds `events_since` (a quarter-hour).
    pub async fn usage(&self, since_bucket: i64) -> Result<Usage, StorageError> {
        let pool = self.db().pool();
        let one = |sql: &'static str| sqlx::query(sql);
        let events_since: i64 =
            one("SELECT CAST(COALESCE(SUM(events), 0) AS BIGINT) AS n FROM event_counts WHERE bucket >= $1")
                .bind(since_bucket)
                .fetch_one(pool)
                .await?
                .try_get("n")?;
        let users_total: i64 = one("SELECT COUNT(*) AS n FROM users WHERE registered_at IS NOT NULL")
            .fetch_one(pool)
            .await?
            .try_get("n")?;
        let dead_letters_pending: i64 =
            one("SELECT COUNT(*) AS n FROM dead_letters WHERE replayed_at IS NULL")
                .fetch_one(pool)
                .await?
                .try_get("n")?;
        let rows =
            one("SELECT source, events, duplicates, dead_letters, batches, last_ingest_at, outbox_pending, \
             oldest_pending_at, backlog_reported_at FROM source_stats ORDER BY source")
            .fetch_all(pool)
            .await?;
        let sources = rows
            .iter()
            .map(|r| {
                Ok(SourceRow {
                    source: r.try_get("source")?,
                    events: r.try_get("events")?,
                    duplicates: r.try_get("duplicates")?,
                    dead_letters: r.try_get("dead_letters")?,
                    batches: r.try_get("batches")?,
                    last_ingest_at: r.try_get("last_ingest_at")?,
                    outbox_pending: r.try_get("outbox_pending")?,
                    oldest_pending_at: r.try_get("oldest_pending_at")?,
                    backlog_reported_at: r.try_get("backlog_reported_at")?,
                })
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        Ok(Usage {
            events_total: sources.iter().map(|s| s.events).sum(),
            events_since,
            users_total,
            dead_letters_pending,
            sources,
        })
    }
}
