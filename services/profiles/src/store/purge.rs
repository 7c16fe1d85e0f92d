//! Applying other services' events: a deleted user's data is purged and a user's display name
//! kept, once per event id.

use sqlx::{Any, Row, Transaction};
use tt_common::{clock::Millis, outbox::consumed, storage::StorageError};

use super::{Part, Store};

/// The tables holding a learner's data, children first.
const TABLES: &[&str] =
    &["goals", "assessment_results", "positions", "learner_skills", "profiles", "display_names"];

/// The user's display name as identity last named them (empty when no notice came yet).
pub(crate) async fn display_name(
    tx: &mut Transaction<'_, Any>,
    user_id: &str,
) -> Result<String, StorageError> {
    let row = sqlx::query("SELECT display_name FROM display_names WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|r| r.try_get("display_name")).transpose()?.unwrap_or_default())
}

impl Store {
    /// Removes everything about `user_id` and remembers the user as deleted (so no profile is
    /// created for them again), atomically with recording `event_id`. Returns false when the
    /// event was applied before (nothing is done again).
    pub async fn purge_user(&self, event_id: &str, user_id: &str, now: Millis) -> Result<bool, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        if !consumed::record(&mut tx, event_id, now).await? {
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

    /// Keeps `display_name` for `user_id` as of `at` (an older name arriving late is ignored; a
    /// deleted user is not named again), with a change notice, atomically with recording
    /// `event_id`. Returns false when the event was applied before.
    pub async fn name_user(
        &self,
        event_id: &str,
        user_id: &str,
        display_name: &str,
        at: Millis,
    ) -> Result<bool, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        if !consumed::record(&mut tx, event_id, at).await? {
            return Ok(false);
        }
        let done = sqlx::query(
            "INSERT INTO display_names (user_id, display_name, named_at) \
             SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM purged_users WHERE user_id = $1) \
             ON CONFLICT (user_id) DO UPDATE SET display_name = excluded.display_name, \
             named_at = excluded.named_at WHERE display_names.named_at <= excluded.named_at",
        )
        .bind(user_id)
        .bind(display_name)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.commit().await?;
        } else {
            self.commit_change(tx, (user_id, user_id, at), Part::Profile, Vec::new()).await?;
        }
        Ok(true)
    }

    /// Records an event that needs no action; false when it was seen before.
    pub async fn acknowledge_event(&self, event_id: &str, now: Millis) -> Result<bool, StorageError> {
        consumed::acknowledge(self.db(), event_id, now).await
    }

    /// Forgets event ids consumed before `before` ([`consumed::prune`]).
    pub async fn prune_consumed(&self, before: Millis) -> Result<u64, StorageError> {
        consumed::prune(self.db(), before).await
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
