//! The security audit log: append-only, written in the same transaction as the change it
//! records, listed newest first.

use sqlx::{Any, Transaction, any::AnyRow};
use tt_common::{
    clock::Millis,
    outbox::{EventBuilder, USER_DELETED},
    storage::StorageError,
};
use tt_proto::common::v1::Event;

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

    /// The event this record tells other modules, if any. Every event is about a user (its
    /// subject); the actor is whoever caused it (empty: the system). Where it goes is the
    /// platform's routing: analytics, and the modules that consume its type.
    pub fn event(&self) -> Option<Event> {
        let event = |kind: &str, subject: &str, actor: &str| {
            EventBuilder::new(crate::events::SELF_SUBJECT, kind, subject, actor, self.created_at)
        };
        let event = match self.kind.as_str() {
            "user.registered" => event("identity.user.registered", &self.subject, &self.actor_id),
            "login.succeeded" => {
                let e = event("identity.user.logged_in", &self.subject, &self.actor_id);
                let client = serde_json::from_str::<serde_json::Value>(&self.details)
                    .ok()
                    .and_then(|d| d.get("client").and_then(|c| c.as_str()).map(str::to_owned))
                    .unwrap_or_default();
                if client.is_empty() { e } else { e.string("client", client) }
            }
            // The subject of a lockout record is the sign-in name; only known users are reported.
            "login.locked_out" if !self.actor_id.is_empty() => {
                event("identity.user.locked_out", &self.actor_id, "")
            }
            "user.suspended" => event("identity.user.suspended", &self.subject, &self.actor_id),
            "user.deleted" => event(USER_DELETED, &self.subject, &self.actor_id),
            _ => return None,
        };
        Some(event.build())
    }
}

impl Store {
    /// Writes `record` inside `tx`, with the event it tells other modules when it is one of
    /// those ([`AuditRecord::event`]): both commit or roll back with the change.
    pub(crate) async fn record(
        &self,
        tx: &mut Transaction<'_, Any>,
        record: &AuditRecord,
    ) -> Result<(), StorageError> {
        if let Some(event) = record.event() {
            self.outbox.enqueue(tx, &event).await?;
        }
        let r = record;
        sqlx::query(
            "INSERT INTO audit_events (id, type, actor_id, subject, details, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&r.id)
        .bind(&r.kind)
        .bind(&r.actor_id)
        .bind(&r.subject)
        .bind(&r.details)
        .bind(r.created_at)
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
            self.record(&mut tx, record).await?;
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
