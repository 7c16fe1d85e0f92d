//! Identity's repositories: one sqlx implementation over `AnyPool`, in the SQL subset SQLite and
//! PostgreSQL both accept. The same conformance tests (`tests/store.rs`) run on both.
//!
//! Guarantees that callers rely on are stated on each method; "atomic" means one transaction.

pub mod ai_quotas;
pub mod audit;
pub mod keys;
pub mod revocations;
pub mod service_accounts;
pub mod sessions;
pub mod settings;
pub mod users;

use sqlx::{Any, Transaction};
pub(crate) use tt_common::storage::col;
use tt_common::{
    outbox::Outbox,
    storage::{Database, Migration, StorageError},
};

/// Identity's migrations, embedded in the binary.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "identity",
        sql: include_str!("../../migrations/0001_identity.sql"),
    },
    tt_common::outbox::migration(2),
    tt_common::outbox::dead_letter_migration(3),
    Migration {
        version: 4,
        description: "revocations",
        sql: include_str!("../../migrations/0004_identity_revocations.sql"),
    },
    Migration {
        version: 5,
        description: "ai quotas",
        sql: include_str!("../../migrations/0005_identity_ai_quotas.sql"),
    },
];

/// The repositories over one database.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
    outbox: Outbox,
}

impl Store {
    /// The repositories over `db`, events routed to analytics only (store tests).
    pub fn new(db: Database) -> Self {
        Self::with_outbox(db, Outbox::default())
    }

    /// The repositories over `db`, events routed by `outbox` (the platform's routes).
    pub fn with_outbox(db: Database, outbox: Outbox) -> Self {
        Self { db, outbox }
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The outbox audited changes write their events to.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Commits and wakes the outbox relays.
    pub(crate) async fn commit(&self, tx: Transaction<'_, Any>) -> Result<(), StorageError> {
        self.outbox.commit(tx).await
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        self.db.migrate(MIGRATIONS).await
    }
}
