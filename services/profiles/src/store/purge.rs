//! Applying other services' events: a deleted user's data is purged, once per event id.

use tt_common::{clock::Millis, storage::StorageError};

use super::Store;

/// The tables holding a learner's data, children first.
const TABLES: &[&str] = &["goals", "assessment_results", "positions", "learner_skills", "profiles"];

impl Store {
    /// Removes everything about `user_id` and remembers the user as deleted (so no profile is
    /// created for them again), atomically with recording `event_id`. Returns false when the
    /// event was applied before (nothing is done again).
    pub async fn purge_user(&self, event_id: &str, user_id: &str, now: Millis) -> Result<bool, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        if !record(&mut tx, event_id, now).await? {
            return Ok(false);
        }
        for table in TABLES {
            // Table names come from the constant list above, never from input.
            let sql = format!("DELETE FROM {table} WHERE user_id = $1");
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user_id).execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO purged_users (user_id, purged_at) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records an event that needs no action; false when it was seen before.
    pub async fn acknowledge_event(&self, event_id: &str, now: Millis) -> Result<bool, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        let fresh = record(&mut tx, event_id, now).await?;
        tx.commit().await?;
        Ok(fresh)
    }

    /// Forgets event ids consumed before `before`. Safe: applying an old event again changes
    /// nothing (a purge of a purged user is empty), so the ids only need to outlive redelivery.
    pub async fn prune_consumed(&self, before: Millis) -> Result<u64, StorageError> {
        let done = sqlx::query("DELETE FROM consumed_events WHERE consumed_at < $1")
            .bind(before)
            .execute(self.db().pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// True when the user was deleted in identity.
    pub async fn is_purged(&self, user_id: &str) -> Result<bool, StorageError> {
        let row = sqlx::query("SELECT user_id FROM purged_users WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(self.db().pool())
            .await?;
        Ok(row.is_some())
    }

    /// Rows left about `user_id` across every table (for tests and audits).
    pub async fn rows_about(&self, user_id: &str) -> Result<i64, StorageError> {
        use sqlx::Row;
        let mut total = 0;
        for table in TABLES {
            let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE user_id = $1");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user_id).fetch_one(self.db().pool()).await?;
            total += row.try_get::<i64, _>("n")?;
        }
        Ok(total)
    }
}

async fn record(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    event_id: &str,
    now: Millis,
) -> Result<bool, StorageError> {
    let done = sqlx::query("INSERT INTO consumed_events (event_id, consumed_at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING")
        .bind(event_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}
