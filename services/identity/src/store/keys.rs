//! Signing keys: at most one active; retired keys stay listed until their tokens expired.

use sqlx::any::AnyRow;
use tt_common::{clock::Millis, storage::StorageError};

use super::{Store, audit::AuditRecord, col};

/// A stored signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub kid: String,
    /// Raw Ed25519 public key, base64.
    pub public_key: String,
    /// Encrypted PKCS#8, base64; empty for a key loaded from a file.
    pub private_key: String,
    pub active: bool,
    pub created_at: Millis,
    pub retired_at: Option<Millis>,
}

impl KeyRow {
    /// The raw public key.
    pub fn public_key_bytes(&self) -> Result<Vec<u8>, StorageError> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&self.public_key)
            .map_err(|e| StorageError::Other(format!("corrupt public key {}: {e}", self.kid).into()))
    }
}

fn decode(row: &AnyRow) -> Result<KeyRow, StorageError> {
    Ok(KeyRow {
        kid: col(row, "kid")?,
        public_key: col(row, "public_key")?,
        private_key: col(row, "private_key")?,
        active: col::<i64>(row, "active")? != 0,
        created_at: col(row, "created_at")?,
        retired_at: col(row, "retired_at")?,
    })
}

impl Store {
    /// The active key, if any.
    pub async fn active_key(&self) -> Result<Option<KeyRow>, StorageError> {
        let row = sqlx::query(
            "SELECT kid, public_key, private_key, active, created_at, retired_at FROM signing_keys \
             WHERE active = 1 ORDER BY created_at DESC LIMIT 1",
        )
        .fetch_optional(self.db().pool())
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Keys that verify tokens at `now`: the active one and those retired after `retired_after`.
    pub async fn verifying_keys(&self, retired_after: Millis) -> Result<Vec<KeyRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT kid, public_key, private_key, active, created_at, retired_at FROM signing_keys \
             WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC",
        )
        .bind(retired_after)
        .fetch_all(self.db().pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Makes `key` the active key and retires the previous one, atomically (with an audit
    /// record when given). Inserting a kid that exists only re-activates it.
    pub async fn activate_key(
        &self,
        key: &KeyRow,
        now: Millis,
        audit: Option<&AuditRecord>,
    ) -> Result<(), StorageError> {
        let mut tx = self.db().pool().begin().await?;
        sqlx::query("UPDATE signing_keys SET active = 0, retired_at = $1 WHERE active = 1 AND kid <> $2")
            .bind(now)
            .bind(&key.kid)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, public_key, private_key, active, created_at, retired_at) \
             VALUES ($1, $2, $3, 1, $4, NULL) \
             ON CONFLICT (kid) DO UPDATE SET active = 1, retired_at = NULL",
        )
        .bind(&key.kid)
        .bind(&key.public_key)
        .bind(&key.private_key)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        if let Some(a) = audit {
            self.record(&mut tx, a).await?;
        }
        self.commit(tx).await?;
        Ok(())
    }
}
