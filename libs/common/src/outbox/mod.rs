//! The transactional outbox: how a service tells others what happened without losing anything.
//!
//! A service writes its change and the event in one transaction ([`enqueue`]), one row per
//! destination. A [`Relay`] per destination (started as a background task) delivers pending rows
//! in batches, oldest first, to a [`Sink`] (a peer's gRPC method), retrying with exponential
//! backoff and full jitter while the receiver is down; delivered rows are marked and pruned after
//! a retention period. Receivers are idempotent on the event id, so at-least-once delivery is
//! exactly-once in effect.
//!
//! Order: rows are delivered in id order (UUIDv7, time-ordered) by one relay at a time per
//! destination (a lease in `outbox_leases`, taken over when its holder stops renewing it), and a
//! batch that failed for the receiver's reasons (down, overloaded, refusing our credentials) is
//! retried whole before anything after it: events about one subject arrive in the order they
//! were written.
//!
//! Poison: an event the receiver refuses as invalid (INVALID_ARGUMENT, FAILED_PRECONDITION) would
//! block the destination forever if retried whole. Such a batch is delivered one event at a time
//! to find the culprit, which becomes a dead letter at the sender with the receiver's reason;
//! later events about its subject wait behind it (order per subject is kept) while every other
//! subject flows on. Admins list, replay or discard dead letters through one
//! `OutboxAdminService` that every server mounts for the outboxes of its services ([`admin`]).

pub mod admin;
mod analytics;
pub mod consumed;
mod relay;
mod routes;
pub mod schema;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use prost::Message;
use sqlx::{Any, Transaction};
use tt_proto::common::v1::{AttributeValue, Event, attribute_value::Kind};

pub use admin::{OutboxAdmin, OutboxSource};
pub use analytics::{ANALYTICS, AnalyticsSink};
pub use relay::{Refusal, Relay, RelayOptions, Sink};
pub use routes::{Outbox, Routes};

use crate::{clock::Millis, storage::Migration, storage::StorageError};

/// The event identity writes when a user is deleted (subject: the user id). Every module that
/// keeps data about users consumes it and forgets the user.
pub const USER_DELETED: &str = "identity.user.deleted";

/// The notice identity writes when a user is named (at sign-up) or renamed (subject: the user
/// id; attribute `display_name`). Modules that show the name consume it; analytics never hears
/// it (it is personal data).
pub const USER_NAMED: &str = "identity.user.named";

/// The outbox tables. A service lists this among its own migrations under a version of its
/// choosing (`outbox::migration(2)`), followed by [`dead_letter_migration`].
pub const fn migration(version: i64) -> Migration {
    Migration { version, description: "outbox", sql: include_str!("outbox.sql") }
}

/// Dead letters at the sender (a column and an index on the outbox table).
pub const fn dead_letter_migration(version: i64) -> Migration {
    Migration { version, description: "outbox dead letters", sql: include_str!("dead_letters.sql") }
}

/// Builds an event (id and time assigned here).
#[derive(Debug, Clone)]
pub struct EventBuilder(Event);

impl EventBuilder {
    /// `kind` is the dotted type, e.g. `identity.user.deleted`; `source` the emitting service.
    pub fn new(source: &str, kind: &str, subject: &str, actor: &str, now: Millis) -> Self {
        Self(Event {
            id: crate::new_id(),
            r#type: kind.to_owned(),
            version: 1,
            time: Some(crate::clock::to_timestamp(now)),
            actor: actor.to_owned(),
            subject: subject.to_owned(),
            source: source.to_owned(),
            attributes: HashMap::new(),
        })
    }

    pub fn version(mut self, version: u32) -> Self {
        self.0.version = version;
        self
    }

    pub fn string(mut self, key: &str, value: impl Into<String>) -> Self {
        self.0
            .attributes
            .insert(key.to_owned(), AttributeValue { kind: Some(Kind::StringValue(value.into())) });
        self
    }

    pub fn int(mut self, key: &str, value: i64) -> Self {
        self.0.attributes.insert(key.to_owned(), AttributeValue { kind: Some(Kind::IntValue(value)) });
        self
    }

    pub fn bool(mut self, key: &str, value: bool) -> Self {
        self.0.attributes.insert(key.to_owned(), AttributeValue { kind: Some(Kind::BoolValue(value)) });
        self
    }

    pub fn build(self) -> Event {
        self.0
    }
}

/// Writes `event` for each destination inside the caller's transaction: it commits or rolls
/// back with the change it describes.
pub async fn enqueue(
    tx: &mut Transaction<'_, Any>,
    destinations: &[&str],
    event: &Event,
) -> Result<(), StorageError> {
    let payload = event.encode_to_vec();
    let created_at = event.time.as_ref().map_or(0, crate::clock::from_timestamp);
    for destination in destinations {
        sqlx::query(
            "INSERT INTO outbox (id, destination, event_id, subject, payload, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(crate::new_id())
        .bind(*destination)
        .bind(&event.id)
        .bind(&event.subject)
        .bind(payload.clone())
        .bind(created_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Raised by a writer after a commit that wrote events; wakes every relay subscribed to it (one
/// per destination) so delivery does not wait for the next poll.
#[derive(Debug, Clone, Default)]
pub struct Signal(Arc<Mutex<Vec<Arc<tokio::sync::Notify>>>>);

impl Signal {
    pub fn new() -> Self {
        Self::default()
    }

    /// A notifier raised with every [`Signal::raise`] (it keeps one pending wake-up).
    pub fn subscribe(&self) -> Arc<tokio::sync::Notify> {
        let notify = Arc::new(tokio::sync::Notify::new());
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(notify.clone());
        notify
    }

    pub fn raise(&self) {
        for notify in self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            notify.notify_one();
        }
    }
}

/// How far behind a destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    pub pending: i64,
    /// Creation time of the oldest pending event, if any.
    pub oldest: Option<Millis>,
}

/// The backlog of `destination` (for readiness, metrics and admin statistics): events not yet
/// delivered, those waiting behind a dead letter included, dead letters themselves not.
pub async fn backlog(pool: &sqlx::AnyPool, destination: &str) -> Result<Backlog, StorageError> {
    backlog_without(pool, destination, &[]).await
}

/// The backlog once the rows `ids` (a batch being delivered) are gone: what a receiver should
/// be told is left, so the figure reads 0 once the last batch arrives.
pub(crate) async fn backlog_without(
    pool: &sqlx::AnyPool,
    destination: &str,
    ids: &[String],
) -> Result<Backlog, StorageError> {
    use sqlx::Row;
    let mut sql = "SELECT COUNT(*) AS pending, MIN(created_at) AS oldest FROM outbox \
         WHERE destination = $1 AND delivered_at IS NULL AND dead_at IS NULL"
        .to_owned();
    if !ids.is_empty() {
        sql.push_str(&format!(" AND id NOT IN ({})", crate::storage::query::list(ids.len(), 2)));
    }
    // Only numbered placeholders and fixed text enter the SQL.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(destination);
    for id in ids {
        query = query.bind(id.clone());
    }
    let row = query.fetch_one(pool).await?;
    Ok(Backlog { pending: row.try_get("pending")?, oldest: row.try_get("oldest")? })
}
