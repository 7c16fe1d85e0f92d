//! Identity's repositories: one sqlx implementation over `AnyPool`, in the SQL subset SQLite and
//! PostgreSQL both accept. The same conformance tests (`tests/store.rs`) run on both.
//!
//! Guarantees that callers rely on are stated on each method; "atomic" means one transaction.

pub mod audit;
pub mod keys;
pub mod service_accounts;
pub mod sessions;
pub mod settings;
pub mod users;

pub(crate) use tt_common::storage::col;
use tt_common::storage::{Database, Migration, StorageError};

/// Identity's migrations, embedded in the binary.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "identity",
        sql: include_str!("../../migrations/0001_identity.sql"),
    },
    tt_common::outbox::migration(2),
];

/// Who hears about user lifecycle events (deletions): each gets its own outbox rows.
pub const USER_EVENT_DESTINATIONS: &[&str] = &["profiles"];

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
