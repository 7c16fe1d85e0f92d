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

use tt_common::storage::{Database, Migration, StorageError};

/// Identity's migrations, embedded in the binary.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "identity",
    sql: include_str!("../../migrations/0001_identity.sql"),
}];

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

/// Reads a column, turning a decode failure into a storage error.
pub(crate) fn col<T>(row: &sqlx::any::AnyRow, name: &str) -> Result<T, StorageError>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    row.try_get(name).map_err(StorageError::from)
}
