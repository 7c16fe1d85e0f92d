//! Revocations: what the revocation feed streams to every verifier.

use sqlx::{Any, Transaction};
use tt_common::{clock::Millis, storage::StorageError};

use super::{Store, col};

/// Records, in the caller's transaction, that `subject`'s tokens issued before `at` are revoked.
/// A mark only moves forward.
pub(crate) async fn revoke(
    tx: &mut Transaction<'_, Any>,
    subject: &str,
    at: Millis,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO revocations (subject, valid_after) VALUES ($1, $2) \
         ON CONFLICT (subject) DO UPDATE SET valid_after = excluded.valid_after \
         WHERE revocations.valid_after < excluded.valid_after",
    )
    .bind(subject)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Revocations whose mark is after `since`.
    pub async fn revocations_since(&self, since: Millis) -> Result<Vec<(String, Millis)>, StorageError> {
        let rows = sqlx::query("SELECT subject, valid_after FROM revocations WHERE valid_after > $1")
            .bind(since)
            .fetch_all(self.db().pool())
            .await?;
        rows.iter().map(|r| Ok((col(r, "subject")?, col(r, "valid_after")?))).collect()
    }

    /// Forgets revocations older than `before` (no token issued before them is still valid).
    pub async fn prune_revocations(&self, before: Millis) -> Result<u64, StorageError> {
        let done = sqlx::query("DELETE FROM revocations WHERE valid_after < $1")
            .bind(before)
            .execute(self.db().pool())
            .await?;
        Ok(done.rows_affected())
    }
}
