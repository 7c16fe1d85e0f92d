//! Stored setting overrides (defaults live in the domain registry).

use tt_common::{clock::Millis, storage::StorageError};

use super::{Store, audit::AuditRecord, col};

/// A stored override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingRow {
    pub key: String,
    /// JSON.
    pub value: String,
    pub updated_at: Millis,
    pub updated_by: String,
}

fn decode(r: &sqlx::any::AnyRow) -> Result<SettingRow, StorageError> {
    Ok(SettingRow {
        key: col(r, "key")?,
        value: col(r, "value")?,
        updated_at: col(r, "updated_at")?,
        updated_by: col(r, "updated_by")?,
    })
}

impl Store {
    /// Every stored override, by key.
    pub async fn settings(&self) -> Result<Vec<SettingRow>, StorageError> {
        let rows = sqlx::query("SELECT key, value, updated_at, updated_by FROM settings ORDER BY key")
            .fetch_all(self.db().pool())
            .await?;
        rows.iter().map(decode).collect()
    }

    /// The stored override of one setting, if any.
    pub async fn setting(&self, key: &str) -> Result<Option<SettingRow>, StorageError> {
        let row = sqlx::query("SELECT key, value, updated_at, updated_by FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(self.db().pool())
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Upserts an override with its audit record, atomically.
    pub async fn put_setting(&self, row: &SettingRow, audit: &AuditRecord) -> Result<(), StorageError> {
        let mut tx = self.db().pool().begin().await?;
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET value = $2, updated_at = $3, updated_by = $4",
        )
        .bind(&row.key)
        .bind(&row.value)
        .bind(row.updated_at)
        .bind(&row.updated_by)
        .execute(&mut *tx)
        .await?;
        self.record(&mut tx, audit).await?;
        self.commit(tx).await?;
        Ok(())
    }
}
