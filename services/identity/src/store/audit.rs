//! The security audit log: append-only, written in the same transaction as the change it
//! records, listed newest first.

use sqlx::{Any, Transaction, any::AnyRow};
use tt_common::{clock::Millis, storage::StorageError};

use super::{Store, col};

/// One audit entry to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: String,
    pub kind: String,
    pub actor_id: String,
    pub subject: String,
    /// A JSON object.
    pub details: String,
    pub created_at: Millis,
}

impl AuditRecord {
    pub fn new(kind: &str, actor_id: &str, subject: &str, details: serde_json::Value, now: Millis) -> Self {
        Self {
            id: tt_common::new_id(),
            kind: kind.to_owned(),
            actor_id: actor_id.to_owned(),
            subject: subject.to_owned(),
            details: details.to_string(),
            created_at: now,
        }
    }

    /// Writes the record inside `tx`, with the event it tells other services when it is one of
    /// those (see [`crate::events::for_audit`]): both commit or roll back with the change.
    pub async fn insert(&self, tx: &mut Transaction<'_, Any>) -> Result<(), StorageError> {
        if let Some((event, destinations)) = crate::events::for_audit(self) {
            tt_common::outbox::enqueue(tx, destinations, &event).await?;
        }
        sqlx::query(
            "INSERT INTO audit_events (id, type, actor_id, subject, details, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&self.id)
        .bind(&self.kind)
        .bind(&self.actor_id)
        .bind(&self.subject)
        .bind(&self.details)
        .bind(self.created_at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

fn decode(row: &AnyRow) -> Result<AuditRecord, StorageError> {
    Ok(AuditRecord {
        id: col(row, "id")?,
        kind: col(row, "type")?,
        actor_id: col(row, "actor_id")?,
        subject: col(row, "subject")?,
        details: col(row, "details")?,
        created_at: col(row, "created_at")?,
    })
}

impl Store {
    /// Records events that change nothing else (failed logins, lockouts), in one transaction.
    pub async fn audit(&self, records: &[AuditRecord]) -> Result<(), StorageError> {
        let mut tx = self.db().pool().begin().await?;
        for record in records {
            record.insert(&mut tx).await?;
        }
        self.commit(tx).await?;
        Ok(())
    }

    /// Entries newest first, before `before` (an id), optionally of one type and/or concerning
    /// one id (as actor or subject).
    pub async fn list_audit(
        &self,
        kind: Option<&str>,
        subject: Option<&str>,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StorageError> {
        let rows = sqlx::query(
            "SELECT id, type, actor_id, subject, details, created_at FROM audit_events \
             WHERE ($1 = '' OR id < $1) AND ($2 = '' OR type = $2) \
             AND ($3 = '' OR subject = $3 OR actor_id = $3) \
             ORDER BY id DESC LIMIT $4",
        )
        .bind(before.unwrap_or(""))
        .bind(kind.unwrap_or(""))
        .bind(subject.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.db().pool())
        .await?;
        rows.iter().map(decode).collect()
    }
}
