//! Analytics' repositories: one sqlx implementation over `AnyPool`, in the SQL subset SQLite and
//! PostgreSQL both accept. The conformance tests (`tests/store.rs`) run on both.
//!
//! Ingestion ([`Store::ingest`]) is one transaction per batch: the new events, their entries in
//! the roll-up queue, the source's statistics and the batch's dead letters commit together, and
//! only events inserted for the first time (by id) are queued, so a replayed batch changes
//! nothing. [`Store::roll_up`] folds queued events into the rollups, each exactly once (the
//! transaction that deletes a queue row applies it). Reports read the rollups, never the event
//! table (except one learner's own events).

pub mod dead_letters;
pub mod events;
pub mod ingest;
pub mod reports;

use tt_common::storage::{Database, Migration, StorageError};

pub use self::ingest::{Backlog, Batch, NewDeadLetter, Summary};

/// Analytics' migrations, embedded in the binary.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "analytics",
        sql: include_str!("../../migrations/0001_analytics.sql"),
    },
    Migration {
        version: 2,
        description: "rollup queue and daily active users",
        sql: include_str!("../../migrations/0002_rollup_queue.sql"),
    },
];

/// The repositories over one database.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        self.db.migrate(MIGRATIONS).await
    }
}

pub(crate) use tt_common::storage::query::{list, rows as placeholders};
