//! Service accounts (client credentials).

use sqlx::any::AnyRow;
use tt_common::{clock::Millis, storage::StorageError};

use super::{Store, audit::AuditRecord, col};

/// A stored service account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountRow {
    pub id: String,
    pub name: String,
    pub description: String,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    pub created_at: Millis,
    pub created_by: String,
}

fn decode(row: &AnyRow) -> Result<ServiceAccountRow, StorageError> {
    Ok(ServiceAccountRow {
        id: col(row, "id")?,
        name: col(row, "name")?,
        description: col(row, "description")?,
        secret_hash: col(row, "secret_hash")?,
        created_at: col(row, "created_at")?,
        created_by: col(row, "created_by")?,
    })
}

const COLUMNS: &str = "id, name, description, secret_hash, created_at, created_by";

impl Store {
    /// Inserts an account with its audit record, atomically. A taken name is `Conflict`.
    pub async fn create_service_account(
        &self,
        account: &ServiceAccountRow,
        audit: &AuditRecord,
    ) -> Result<(), StorageError> {
        let mut tx = self.db().pool().begin().await?;
        sqlx::query(
            "INSERT INTO service_accounts (id, name, description, secret_hash, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&account.id)
        .bind(&account.name)
        .bind(&account.description)
        .bind(&account.secret_hash)
        .bind(account.created_at)
        .bind(&account.created_by)
        .execute(&mut *tx)
        .await?;
        self.record(&mut tx, audit).await?;
        self.commit(tx).await?;
        Ok(())
    }

    pub async fn service_account(&self, id: &str) -> Result<Option<ServiceAccountRow>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM service_accounts WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(self.db().pool()).await?;
        row.as_ref().map(decode).transpose()
    }

    /// Accounts in id order after `after`.
    pub async fn list_service_accounts(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ServiceAccountRow>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM service_accounts WHERE id > $1 ORDER BY id LIMIT $2");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(self.db().pool())
            .await?;
        rows.iter().map(decode).collect()
    }

    /// Deletes an account with its audit record; false when absent.
    pub async fn delete_service_account(&self, id: &str, audit: &AuditRecord) -> Result<bool, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        let done =
            sqlx::query("DELETE FROM service_accounts WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        super::revocations::revoke(&mut tx, id, audit.created_at).await?;
        self.record(&mut tx, audit).await?;
        self.commit(tx).await?;
        Ok(true)
    }
}
