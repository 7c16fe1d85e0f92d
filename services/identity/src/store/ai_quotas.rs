//! Users' own daily AI token quotas (the default is a setting).

use tt_common::{clock::Millis, storage::StorageError};

use super::{Store, audit::AuditRecord, col};

/// A user's own quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiQuotaRow {
    pub user_id: String,
    pub daily_tokens: i64,
    pub updated_at: Millis,
    pub updated_by: String,
}

impl Store {
    pub async fn ai_quota(&self, user_id: &str) -> Result<Option<AiQuotaRow>, StorageError> {
        let row = sqlx::query(
            "SELECT user_id, daily_tokens, updated_at, updated_by FROM ai_quotas WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(self.db().pool())
        .await?;
        row.map(|r| {
            Ok(AiQuotaRow {
                user_id: col(&r, "user_id")?,
                daily_tokens: col(&r, "daily_tokens")?,
                updated_at: col(&r, "updated_at")?,
                updated_by: col(&r, "updated_by")?,
            })
        })
        .transpose()
    }

    /// Sets (`Some`) or clears (`None`) the user's own quota and writes `audit(previous)`, the
    /// previous own quota read in the same transaction; false when the user does not exist.
    pub async fn put_ai_quota(
        &self,
        user_id: &str,
        row: Option<&AiQuotaRow>,
        audit: impl FnOnce(Option<i64>) -> AuditRecord,
    ) -> Result<bool, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        let found = sqlx::query(
            "SELECT u.id, q.daily_tokens FROM users u LEFT JOIN ai_quotas q ON q.user_id = u.id WHERE u.id = $1",
        )
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(found) = found else { return Ok(false) };
        let previous: Option<i64> = col(&found, "daily_tokens")?;
        match row {
            Some(row) => {
                sqlx::query(
                    "INSERT INTO ai_quotas (user_id, daily_tokens, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (user_id) DO UPDATE SET daily_tokens = $2, updated_at = $3, updated_by = $4",
                )
                .bind(&row.user_id)
                .bind(row.daily_tokens)
                .bind(row.updated_at)
                .bind(&row.updated_by)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM ai_quotas WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        self.record(&mut tx, &audit(previous)).await?;
        self.commit(tx).await?;
        Ok(true)
    }
}
